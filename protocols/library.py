"""The library of standard protocols shipped with tmsctl (``protocols/library/*.yaml``).

Each file is named after its protocol id and cites its sources with evidence tags; entries whose
parameters are partly our own choice say so in their description and sources (status D).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tmsctl.core.errors import ProtocolFileError
from tmsctl.protocols.loader import load_protocol
from tmsctl.protocols.models import Protocol


@dataclass(frozen=True)
class LibraryEntry:
    id: str
    path: Path


def library_path() -> Path:
    """The folder holding the library's protocol files."""
    return Path(__file__).resolve().parent / "library"


def list_library() -> tuple[LibraryEntry, ...]:
    """Every library protocol, by id (files are named ``<id>.yaml``)."""
    return tuple(LibraryEntry(path.stem, path) for path in sorted(library_path().glob("*.yaml")))


def load_library_protocol(protocol_id: str) -> Protocol:
    """Load one library protocol by id."""
    for entry in list_library():
        if entry.id == protocol_id:
            protocol = load_protocol(entry.path)
            if protocol.id != protocol_id:
                raise ProtocolFileError(
                    f"the file declares id {protocol.id!r}",
                    path=str(entry.path),
                    field="id",
                    hint="library files are named after their id",
                )
            return protocol
    known = ", ".join(entry.id for entry in list_library())
    raise ProtocolFileError(f"no library protocol {protocol_id!r}", hint=f"known: {known}")
