"""Stimulation protocols: models, expansion and safety rules (import as ``tmsctl.protocols``).

    from tmsctl.protocols import load_protocol, expand, check, MotorThreshold

    protocol = load_protocol("my-protocol.yaml")          # ProtocolFileError on any problem
    verdict = check(protocol, device=limits, thresholds=[mt], overrides={"rule.id": "reason"})
    verdict.status                                        # allowed | needs_override | refused
    verdict.schedule.trains                               # the timed schedule

See ``protocols/README.md`` for the file format and the rulebook.
"""

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
