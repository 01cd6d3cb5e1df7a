"""The vetted library's pinned content hashes match the library files."""

from __future__ import annotations

import json

from tmsctl.approval import library_pins
from tmsctl.protocols.canonical import content_hash
from tmsctl.protocols.library import list_library
from tmsctl.protocols.loader import load_protocol


def test_every_library_protocol_is_pinned_and_unchanged() -> None:
    actual = {entry.id: content_hash(load_protocol(entry.path)) for entry in list_library()}
    pins = library_pins()
    changed = {pid: h for pid, h in actual.items() if pins.get(pid) != h}
    assert not changed and set(pins) == set(actual), (
        "library protocols changed or were added without review. After reviewing them, update "
        "protocols/library/approvals.json 'pins' to:\n" + json.dumps(dict(sorted(actual.items())), indent=2)
    )
