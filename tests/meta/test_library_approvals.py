"""The vetted library's pinned content hashes match the library files; provisional ones are not vetted."""

from __future__ import annotations

import json
import re

from tmsctl.protocols.canonical import content_hash
from tmsctl.protocols.library import list_library
from tmsctl.protocols.loader import load_protocol
from tmsctl.session.approval import approval_status, library_pins, provisional_library_ids

# What a library file's prose says when its parameters still need confirming.
PROVISIONAL_WORDS = re.compile(r"provisional|confirm against|before clinical use", re.IGNORECASE)


def _library() -> dict[str, object]:
    return {entry.id: load_protocol(entry.path) for entry in list_library()}


def test_every_vetted_library_protocol_is_pinned_and_unchanged() -> None:
    vetted = {pid: content_hash(p) for pid, p in _library().items() if p.status != "provisional"}
    pins = library_pins()
    changed = {pid: h for pid, h in vetted.items() if pins.get(pid) != h}
    assert not changed and set(pins) == set(vetted), (
        "library protocols changed or were added without review. After reviewing them, update "
        "protocols/library/approvals.json 'pins' to:\n" + json.dumps(dict(sorted(vetted.items())), indent=2)
    )


def test_a_provisional_library_protocol_is_never_pinned() -> None:
    provisional = {pid for pid, p in _library().items() if p.status == "provisional"}
    assert provisional_library_ids() == provisional
    assert not provisional & set(library_pins())


def test_a_library_file_that_calls_itself_provisional_is_marked_so() -> None:
    for pid, protocol in _library().items():
        prose = " ".join(filter(None, (protocol.title, protocol.description, protocol.notes)))
        if PROVISIONAL_WORDS.search(prose):
            assert protocol.status == "provisional", f"{pid} says it is provisional but lacks status: provisional"


def test_the_reported_protocols_need_a_site_approval() -> None:
    library = _library()
    for pid in ("bpd-5hz-dmpfc", "bpd-20hz-dmpfc-bilateral", "bpd-5hz-ldlpfc"):
        status = approval_status(pid, content_hash(library[pid]), None)
        assert not status.approved and status.source == "none"
        assert "provisional" in status.detail and "not vetted" in status.detail
    vetted = approval_status("itbs-600", content_hash(library["itbs-600"]), None)
    assert vetted.approved and vetted.source == "library"
