"""What a session's report shows of its protocol, derived from the validated protocol once per text.

A recorded session keeps its protocol as the YAML text it ran. To show its title, parameters,
prescribed intensity and target, ``tmsctl session show`` and ``tmsctl report`` validate that text
with the protocol models, which costs a person ~0.1 s of start-up (pydantic and the models)
on every command. Yet a clinic runs the same few protocol texts thousands of times.

So the facts derived from a *validated* protocol (or the finding that the text does not validate)
are kept in a small file per text in the user's cache folder (``cache_folder``: ``$XDG_CACHE_HOME/tmsctl/`` or
``~/.cache/tmsctl/`` on Linux), and read back without building the models. Nothing unvalidated is shown as
validated:

* an entry is written only from the result of ``load_protocol_text`` on exactly that text, and
  read only for exactly that text (its SHA-256 names the entry and is checked inside it);
* the entry's key also covers the code that validates and describes a protocol (tmsctl's version,
  the size and time of every source file of ``tmsctl.protocols``, of this module and the report's,
  the installed pydantic, pydantic-core and ruamel.yaml, and Python's version): after an upgrade
  or an edit the facts are derived again;
* an entry or folder that another user owns or could write, or that does not read back in the
  expected shape, is ignored (and the text validated as if there were none);
* the cache is best effort: a folder that cannot be written only costs the time it saves.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tmsctl import __version__

ENTRY_FORMAT = 1
FOLDER = "protocol-facts"
# The code a protocol's facts depend on, besides tmsctl.protocols itself (all of whose files count).
DERIVING_MODULES = ("tmsctl.lab.report", "tmsctl.lab.protocol_facts", "tmsctl.drivers.base")
VALIDATING_LIBRARIES = ("pydantic", "pydantic_core", "ruamel.yaml")


@dataclass(frozen=True)
class ProtocolFacts:
    """A validated protocol as a session's report shows it."""

    title: str
    parameters: tuple[tuple[str, str], ...]
    prescribed_intensity: str
    target: str
    train_duration_s: float


def derive_facts(text: str, *, label: str) -> ProtocolFacts | None:
    """The facts of the protocol ``text`` from its validated model; None when it does not validate
    (an old or hand-edited record: the report still says what was delivered)."""
    from tmsctl.lab.report import protocol_parameters, target_text

    try:
        from tmsctl.protocols.loader import load_protocol_text

        protocol = load_protocol_text(text, path=label)
    except Exception:
        return None
    return ProtocolFacts(
        protocol.title, protocol_parameters(protocol), protocol.intensity.describe(), target_text(protocol),
        float(protocol.pattern.plan().train_duration_s),
    )


def protocol_facts(text: str, *, label: str, cache: Path | None = None) -> ProtocolFacts | None:
    """``derive_facts(text)``, read from the cache when this text's facts were derived before by the
    same code. ``cache``: the folder (default: ``cache_folder()``)."""
    folder = cache_folder() if cache is None else cache
    text_hash = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    key = hashlib.sha256(f"{text_hash}\0{code_fingerprint()}".encode()).hexdigest()
    entry = folder / f"{key}.json"
    found = _read_entry(entry, key, text_hash)
    if found is not None:
        return found[0]
    facts = derive_facts(text, label=label)
    _write_entry(folder, entry, key, text_hash, facts)
    return facts


def cache_folder() -> Path:
    """``protocol-facts`` in this platform's user cache directory, as platformdirs names it (the same
    library names the records' data directory): ``$XDG_CACHE_HOME/tmsctl`` or ``~/.cache/tmsctl`` on
    Linux, where a relative ``$XDG_CACHE_HOME`` is ignored as the XDG spec requires."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("tmsctl", appauthor=False)) / FOLDER


def code_files() -> list[str]:
    """The source files of the code that validates or describes a protocol."""
    files: list[str] = []
    protocols = find_spec("tmsctl.protocols")
    for location in (protocols.submodule_search_locations or []) if protocols else []:
        files.extend(sorted(str(p) for p in Path(location).glob("*.py")))
    for name in (*DERIVING_MODULES, *VALIDATING_LIBRARIES):
        spec = find_spec(name)
        files.append(str(spec.origin) if spec is not None and spec.origin else f"<{name} not found>")
    return files


def code_fingerprint() -> str:
    """Changes whenever the code that validates or describes a protocol may have changed."""
    parts = [f"format {ENTRY_FORMAT}", f"tmsctl {__version__}", f"python {sys.version}"]
    for file in code_files():
        try:
            stat = os.stat(file)
            parts.append(f"{file} {stat.st_size} {stat.st_mtime_ns}")
        except OSError:
            parts.append(f"{file} missing")
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _private(stat: os.stat_result) -> bool:
    """Ours alone: owned by this user, writable by nobody else."""
    if not hasattr(os, "getuid"):
        return True  # no POSIX owners: the user's profile folder is private already
    return stat.st_uid == os.getuid() and not stat.st_mode & 0o022


def _read_entry(entry: Path, key: str, text_hash: str) -> tuple[ProtocolFacts | None] | None:
    """(the facts, or None for a text that does not validate), or None when there is no usable entry."""
    try:
        if not _private(os.stat(entry.parent)):
            return None
        with open(entry, "rb") as handle:
            if not _private(os.fstat(handle.fileno())):
                return None
            data = json.loads(handle.read(1 << 20))
    except (OSError, ValueError):
        return None
    try:
        if data["format"] != ENTRY_FORMAT or data["key"] != key or data["text_sha256"] != text_hash:
            return None
        facts = data["facts"]
        if facts is None:
            return (None,)
        pairs = facts["parameters"]
        strings = (facts["title"], facts["prescribed_intensity"], facts["target"])
        duration = facts["train_duration_s"]
        if not (
            isinstance(pairs, list)
            and all(isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in pairs)
            and all(isinstance(s, str) for s in strings)
            and type(duration) in (int, float)
        ):
            return None
        parameters = tuple((label, value) for label, value in pairs)
        return (ProtocolFacts(strings[0], parameters, strings[1], strings[2], float(duration)),)
    except (KeyError, TypeError, ValueError):
        return None


def _write_entry(folder: Path, entry: Path, key: str, text_hash: str, facts: ProtocolFacts | None) -> None:
    body: dict[str, Any] = {
        "format": ENTRY_FORMAT, "key": key, "text_sha256": text_hash,
        "facts": None if facts is None else {
            "title": facts.title, "parameters": [list(pair) for pair in facts.parameters],
            "prescribed_intensity": facts.prescribed_intensity, "target": facts.target,
            "train_duration_s": facts.train_duration_s,
        },
    }
    temporary = folder / f".{key}.{os.getpid()}.tmp"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(os.stat(folder)):
            return
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(body, handle, ensure_ascii=False)
        os.replace(temporary, entry)  # whole or not at all, for a command running beside this one
    except OSError:
        try:
            temporary.unlink()
        except OSError:
            pass
