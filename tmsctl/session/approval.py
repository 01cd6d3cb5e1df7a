"""Protocol approval: a session runs only a protocol whose exact content someone approved.

Two sources, both keyed by the protocol id and its content hash (``tmsctl.protocols.canonical``):

* the vetted library shipped with tmsctl — ``protocols/library/approvals.json`` pins each library
  protocol's hash; a test fails when a library file changes without its pin being reviewed. A
  library protocol marked ``status: provisional`` is listed there as provisional and never pinned:
  it is not vetted, and needs a site approval like any other file;
* the site's own approvals in the records database (``tmsctl protocol approve FILE --by NAME``).

A modified file hashes differently and is therefore unapproved. Running an unapproved protocol
needs an explicit, recorded reason (``--allow-unapproved REASON``); nothing switches the check off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

APPROVAL_RULE_ID = "approval.unapproved-protocol"


@dataclass(frozen=True)
class ApprovalStatus:
    approved: bool
    source: str  # "library", "records" or "none"
    detail: str


@lru_cache(maxsize=1)
def _library_approvals() -> dict[str, Any]:
    text = files("tmsctl.protocols").joinpath("library", "approvals.json").read_text(encoding="utf-8")
    data = json.loads(text)
    pins, provisional = dict(data["pins"]), frozenset(data.get("provisional", ()))
    if provisional & set(pins):  # fail safe: a provisional protocol is never vetted, whatever the data says
        for protocol_id in provisional:
            pins.pop(protocol_id, None)
    return {"pins": pins, "provisional": provisional}


def library_pins() -> dict[str, str]:
    """protocol id → content hash of the vetted library protocols."""
    return dict(_library_approvals()["pins"])


def provisional_library_ids() -> frozenset[str]:
    """Library protocols marked ``status: provisional``: shipped, but not vetted."""
    return frozenset(_library_approvals()["provisional"])


def provisional_text(protocol_id: str) -> str:
    return (
        f"{protocol_id} is provisional (status: provisional): its parameters are still to be confirmed, so it "
        "is not vetted and a session needs a site approval"
    )


def approval_status(protocol_id: str, content_hash: str, records: Any | None) -> ApprovalStatus:
    if library_pins().get(protocol_id) == content_hash:
        return ApprovalStatus(True, "library", f"{protocol_id} is a vetted library protocol (hash pinned)")
    if records is not None and records.is_protocol_approved(protocol_id, content_hash):
        approvals = records.protocol_approvals(protocol_id, content_hash)
        who = ", ".join(f"{a.approved_by} on {a.approved_at:%Y-%m-%d}" for a in approvals)
        return ApprovalStatus(True, "records", f"approved by {who}")
    if protocol_id in provisional_library_ids():
        return ApprovalStatus(False, "none", f"the library protocol {provisional_text(protocol_id)}")
    if protocol_id in library_pins():
        return ApprovalStatus(
            False, "none",
            f"{protocol_id} differs from the vetted library protocol of that name (content hash "
            f"{content_hash[:19]}…, vetted {library_pins()[protocol_id][:19]}…)",
        )
    return ApprovalStatus(False, "none", f"protocol {protocol_id} with content hash {content_hash[:19]}… was never approved")
