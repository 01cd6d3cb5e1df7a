"""A session's status inside a write: read it, change it along the allowed paths, require it."""

from __future__ import annotations

import sqlite3
from collections.abc import Container
from pathlib import Path

from tmsctl.records.errors import RecordRefused, SessionOwnedElsewhere, UnknownRecord
from tmsctl.records.model import ALLOWED_STATUS_CHANGES, SessionStatus


def status_of(conn: sqlite3.Connection, session_id: str, where: Path | str) -> SessionStatus:
    row = conn.execute("SELECT status FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
    if row is None:
        raise UnknownRecord(f"no session {session_id} in {where}", path=where)
    return SessionStatus(row[0])


def change_status(
    conn: sqlite3.Connection,
    session_id: str,
    new: SessionStatus,
    where: Path | str,
    *,
    doing: str,
    only_from: frozenset[SessionStatus] | None = None,
) -> SessionStatus:
    old = status_of(conn, session_id, where)
    if only_from is not None and old not in only_from:
        hint = {
            "start": "a session starts once; use resume_session to continue it",
            "resume": "only a paused, faulted or interrupted session can be resumed",
        }.get(doing)
        raise RecordRefused(f"cannot {doing} session {session_id}: it is {old.value}", path=where, hint=hint)
    if new not in ALLOWED_STATUS_CHANGES[old]:
        allowed = ", ".join(sorted(s.value for s in ALLOWED_STATUS_CHANGES[old])) or "nothing (final)"
        raise RecordRefused(
            f"cannot {doing} session {session_id}: it is {old.value} "
            f"(from {old.value} it can go to {allowed})",
            path=where,
        )
    conn.execute("UPDATE sessions SET status = ? WHERE session_id = ?", (new.value, session_id))
    return old


def require_owned_running(
    status: SessionStatus, session_id: str, doing: str, owned: Container[str], where: Path | str
) -> None:
    if status is not SessionStatus.RUNNING:
        raise RecordRefused(f"cannot {doing} in session {session_id}: it is {status.value}, not running", path=where)
    if session_id not in owned:
        raise SessionOwnedElsewhere(
            f"cannot {doing} in session {session_id}: it is running in another process", path=where
        )
