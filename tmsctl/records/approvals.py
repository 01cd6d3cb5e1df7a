"""Protocol approvals: who approved which exact content (by hash) of a protocol, and when."""

from __future__ import annotations

from datetime import datetime

from tmsctl.records.database import Database
from tmsctl.records.model import ProtocolApproval, _content_hash, _optional_utc, _text
from tmsctl.records.schema import _from_db_time_required


class ProtocolApprovals:
    def __init__(self, database: Database) -> None:
        self._database = database

    def approve(
        self, protocol_id: str, content_hash: str, *, approved_by: str, approved_at: datetime | None = None
    ) -> ProtocolApproval:
        _text("protocol_id", protocol_id, max_len=120)
        _content_hash(content_hash)
        _text("approved_by", approved_by, max_len=80)
        at = self._database.stamp(_optional_utc("approved_at", approved_at))
        with self._database.transaction("recording a protocol approval") as conn:
            cursor = conn.execute(
                "INSERT INTO protocol_approvals (protocol_id, content_hash, approved_by, approved_at) "
                "VALUES (?, ?, ?, ?)",
                (protocol_id, content_hash, approved_by, at),
            )
            new_id = cursor.lastrowid
        assert new_id is not None
        return ProtocolApproval(protocol_id, content_hash, approved_by, _from_db_time_required(at), new_id)

    def find(self, protocol_id: str | None = None, content_hash: str | None = None) -> tuple[ProtocolApproval, ...]:
        rows = self._database.read(
            "listing protocol approvals",
            """SELECT * FROM protocol_approvals
               WHERE (:p IS NULL OR protocol_id = :p) AND (:h IS NULL OR content_hash = :h)
               ORDER BY approved_at, approval_id""",
            {"p": protocol_id, "h": content_hash},
        )
        return tuple(
            ProtocolApproval(
                r["protocol_id"], r["content_hash"], r["approved_by"],
                _from_db_time_required(r["approved_at"]), r["approval_id"],
            )
            for r in rows
        )

    def is_approved(self, protocol_id: str, content_hash: str) -> bool:
        """True when this exact content (by hash) of this protocol id has been approved."""
        return bool(self.find(protocol_id, content_hash))
