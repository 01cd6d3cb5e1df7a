"""A session's journal: operator actions, overrides and faults, each redacted before it is written."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from tmsctl.core.redaction import redact_text
from tmsctl.records.database import Database
from tmsctl.records.errors import InvalidRecord, RecordRefused
from tmsctl.records.model import ActionKind, Fault, OperatorAction, Override, SessionStatus
from tmsctl.records.schema import _from_db_time
from tmsctl.records.session_status import status_of

# Kinds written by the lifecycle methods themselves; record_action takes the others.
_LIFECYCLE_ACTIONS = {
    ActionKind.START: "start_session",
    ActionKind.PAUSE: "pause_session",
    ActionKind.RESUME: "resume_session",
    ActionKind.ABORT: "abort_session",
    ActionKind.OVERRIDE: "record_override",
    ActionKind.SKIP_PARTIAL: "skip_partial",
    ActionKind.RETRY_PARTIAL: "retry_partial",
}


class Journal:
    def __init__(self, database: Database) -> None:
        self._database = database

    def record_action(self, action: OperatorAction) -> OperatorAction:
        """Record an acknowledge or confirm (the lifecycle methods record the other kinds)."""
        if action.kind in _LIFECYCLE_ACTIONS:
            raise InvalidRecord(
                f"a {action.kind.value!r} action is recorded by {_LIFECYCLE_ACTIONS[action.kind]}(), "
                "together with what it changes"
            )
        if action.action_id is not None:
            raise InvalidRecord("a new action has no action_id yet (the store assigns it)")
        with self._database.transaction("recording an operator action") as conn:
            status_of(conn, action.session_id, self._database.where)
            return self.insert_action(action)

    def insert_action(self, action: OperatorAction) -> OperatorAction:
        """Inside a write: the action's row."""
        at = self._database.stamp(action.at)
        reason = redact_text(action.reason)
        cursor = self._database.connection.execute(
            "INSERT INTO operator_actions (session_id, kind, operator, reason, at, offset_s) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (action.session_id, action.kind.value, action.operator, reason, at, action.offset_s),
        )
        return replace(action, reason=reason, at=_from_db_time(at), action_id=cursor.lastrowid)

    def record_override(self, override: Override) -> Override:
        """Record an overridden finding (and an ``override`` operator action) in one transaction."""
        if override.override_id is not None:
            raise InvalidRecord("a new override has no override_id yet (the store assigns it)")
        where = self._database.where
        with self._database.transaction("recording an override") as conn:
            status = status_of(conn, override.session_id, where)
            if status in (SessionStatus.COMPLETED, SessionStatus.ABORTED):
                raise RecordRefused(f"session {override.session_id} is {status.value}", path=where)
            row = conn.execute(
                "SELECT protocol_hash FROM sessions WHERE session_id = ?", (override.session_id,)
            ).fetchone()
            if row[0] != override.protocol_hash:
                raise RecordRefused(
                    f"override for protocol hash {override.protocol_hash} cannot bind to session "
                    f"{override.session_id}, which runs {row[0]}",
                    path=where,
                    hint="overrides bind to one protocol content and one session only",
                )
            at = self._database.stamp(override.at)
            finding, reason = redact_text(override.finding), redact_text(override.reason)
            cursor = conn.execute(
                """INSERT INTO overrides (session_id, rule_id, finding, operator, reason, protocol_hash,
                       ruleset_version, at, offset_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    override.session_id, override.rule_id, finding, override.operator, reason,
                    override.protocol_hash, override.ruleset_version, at, override.offset_s,
                ),
            )
            stored = replace(override, finding=finding, reason=reason, at=_from_db_time(at),
                             override_id=cursor.lastrowid)
            self.insert_action(
                OperatorAction(
                    override.session_id,
                    ActionKind.OVERRIDE,
                    override.operator,
                    f"{override.rule_id}: {override.reason}",
                    at=stored.at,
                    offset_s=override.offset_s,
                )
            )
        return stored

    def record_fault(self, fault: Fault) -> Fault:
        """Record a fault without changing the session's status (see ``fault_session``)."""
        if fault.fault_id is not None:
            raise InvalidRecord("a new fault has no fault_id yet (the store assigns it)")
        with self._database.transaction("recording a fault") as conn:
            status_of(conn, fault.session_id, self._database.where)
            return self.insert_fault(fault)

    def insert_fault(self, fault: Fault) -> Fault:
        """Inside a write: the fault's row."""
        at = self._database.stamp(fault.at)
        detail = redact_text(fault.detail)
        cursor = self._database.connection.execute(
            "INSERT INTO faults (session_id, code, detail, state, at, offset_s) VALUES (?, ?, ?, ?, ?, ?)",
            (fault.session_id, fault.code, detail, fault.state, at, fault.offset_s),
        )
        return replace(fault, detail=detail, at=_from_db_time(at), fault_id=cursor.lastrowid)


def action_from_row(r: sqlite3.Row) -> OperatorAction:
    return OperatorAction(
        session_id=r["session_id"],
        kind=ActionKind(r["kind"]),
        operator=r["operator"],
        reason=r["reason"],
        at=_from_db_time(r["at"]),
        offset_s=r["offset_s"],
        action_id=r["action_id"],
    )


def override_from_row(r: sqlite3.Row) -> Override:
    return Override(
        session_id=r["session_id"],
        rule_id=r["rule_id"],
        finding=r["finding"],
        operator=r["operator"],
        reason=r["reason"],
        protocol_hash=r["protocol_hash"],
        ruleset_version=r["ruleset_version"],
        at=_from_db_time(r["at"]),
        offset_s=r["offset_s"],
        override_id=r["override_id"],
    )


def fault_from_row(r: sqlite3.Row) -> Fault:
    return Fault(
        session_id=r["session_id"],
        code=r["code"],
        detail=r["detail"],
        state=r["state"],
        at=_from_db_time(r["at"]),
        offset_s=r["offset_s"],
        fault_id=r["fault_id"],
    )
