"""Stimulation protocols: models, expansion and safety rules (import as ``tmsctl.protocols``).

    from tmsctl.protocols import load_protocol, expand, check, MotorThreshold

    protocol = load_protocol("my-protocol.yaml")          # ProtocolFileError on any problem
    verdict = check(protocol, device=limits, thresholds=[mt], overrides={"rule.id": "reason"})
    verdict.status                                        # allowed | needs_override | refused
    verdict.schedule.trains                               # the timed schedule

See ``protocols/README.md`` for the file format and the rulebook.

Each name is imported from its module on first use (PEP 562): a command that only reads a
protocol file does not load the rules, the rulebook, the library or the expansion.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tmsctl.protocols.canonical import canonical_json, content_hash
    from tmsctl.protocols.expand import expand
    from tmsctl.protocols.findings import Finding, Severity
    from tmsctl.protocols.library import LibraryEntry, library_path, list_library, load_library_protocol
    from tmsctl.protocols.loader import ProtocolValidationError, load_protocol, load_protocol_text
    from tmsctl.protocols.models import SCHEMA_VERSION, Protocol
    from tmsctl.protocols.rulebook import rulebook
    from tmsctl.protocols.rules import SitePolicy, Verdict, check
    from tmsctl.protocols.schedule import Schedule, ScheduledTrain
    from tmsctl.protocols.thresholds import MotorThreshold

# name -> the module (under tmsctl.protocols) that defines it
_HOMES: dict[str, str] = {
    "canonical_json": "canonical",
    "content_hash": "canonical",
    "expand": "expand",
    "Finding": "findings",
    "Severity": "findings",
    "LibraryEntry": "library",
    "library_path": "library",
    "list_library": "library",
    "load_library_protocol": "library",
    "ProtocolValidationError": "loader",
    "load_protocol": "loader",
    "load_protocol_text": "loader",
    "SCHEMA_VERSION": "models",
    "Protocol": "models",
    "rulebook": "rulebook",
    "SitePolicy": "rules",
    "Verdict": "rules",
    "check": "rules",
    "Schedule": "schedule",
    "ScheduledTrain": "schedule",
    "MotorThreshold": "thresholds",
}

__all__ = [
    "SCHEMA_VERSION",
    "Finding",
    "LibraryEntry",
    "MotorThreshold",
    "Protocol",
    "ProtocolValidationError",
    "Schedule",
    "ScheduledTrain",
    "Severity",
    "SitePolicy",
    "Verdict",
    "canonical_json",
    "check",
    "content_hash",
    "expand",
    "library_path",
    "list_library",
    "load_library_protocol",
    "load_protocol",
    "load_protocol_text",
    "rulebook",
]


# Functions named like the module that defines them. Loading a submodule binds it on its package
# (``setattr(tmsctl.protocols, "expand", <module>)``): for these names the package keeps the
# function, as it did when this file imported everything up front.
_FUNCTIONS_NAMED_LIKE_THEIR_MODULE = frozenset({"expand", "rulebook"})


class _Package(ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS_NAMED_LIKE_THEIR_MODULE and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
