"""Sessions: the plan as recorded, its status and lifecycle, who runs it, and everything about one."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime

from tmsctl.core.redaction import redact_text
from tmsctl.records.database import DB_ERRORS, Database, database_error
from tmsctl.records.deliveries import delivery_from_row, resume_point_in
from tmsctl.records.errors import RecordRefused, RecordsError, UnknownRecord
from tmsctl.records.journal import Journal, action_from_row, fault_from_row, override_from_row
from tmsctl.records.model import (
    _OWNED_STATUSES,
    _RESUMABLE_STATUSES,
    ActionKind,
    Fault,
    OperatorAction,
    Session,
    SessionDetail,
    SessionPlan,
    SessionStatus,
    ThresholdReference,
    ThresholdUsed,
    _count,
    _enum,
    _text,
    new_session_id,
    normalize_session_id,
    validate_subject_id,
)
from tmsctl.records.schema import _from_db_time, _from_db_time_required
from tmsctl.records.session_status import change_status, require_owned_running, status_of
from tmsctl.records.subjects import Subjects


class Sessions:
    def __init__(self, database: Database, subjects: Subjects, journal: Journal) -> None:
        self._database = database
        self._subjects = subjects
        self._journal = journal

    def create(self, plan: SessionPlan) -> Session:
        """Record a planned session (status ``planned``); nothing has fired yet."""
        for _ in range(20):
            session_id = plan.session_id or new_session_id()
            with self._database.transaction("creating a session") as conn:
                self._subjects.require(conn, plan.subject_id)
                if conn.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone():
                    if plan.session_id is not None:
                        raise RecordRefused(f"session {session_id} already exists", path=self._database.where,
                                            hint="choose another id, or let tmsctl make one")
                    continue  # a random id collided: draw another
                for used in plan.thresholds_used:
                    self._check_threshold_used(conn, plan.subject_id, used)
                conn.execute(
                    """INSERT INTO sessions (session_id, subject_id, protocol_id, protocol_hash,
                           protocol_text, device_url, device_model, device_serial, device_firmware, coil,
                           simulated, planned_deliveries, planned_pulses, status, created_at,
                           replies_confirmed)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?)""",
                    (
                        session_id,
                        plan.subject_id,
                        plan.protocol_id,
                        plan.protocol_hash,
                        plan.protocol_text,
                        redact_text(plan.device_url),
                        plan.device_model,
                        plan.device_serial,
                        plan.device_firmware,
                        plan.coil,
                        int(plan.simulated),
                        plan.planned_deliveries,
                        plan.planned_pulses,
                        self._database.stamp(None),
                        int(plan.replies_confirmed),
                    ),
                )
                conn.executemany(
                    "INSERT INTO session_thresholds "
                    "(session_id, position, reference, value_pct_mso, threshold_id) VALUES (?, ?, ?, ?, ?)",
                    [
                        (session_id, position, used.reference.value, used.value_pct_mso, used.threshold_id)
                        for position, used in enumerate(plan.thresholds_used)
                    ],
                )
            return self.get(session_id)
        raise RecordsError("could not draw an unused session id in 20 tries", path=self._database.where)

    def _check_threshold_used(self, conn: sqlite3.Connection, subject_id: str, used: ThresholdUsed) -> None:
        if used.threshold_id is None:
            return
        row = conn.execute(
            "SELECT subject_id, reference, value_pct_mso FROM motor_thresholds WHERE threshold_id = ?",
            (used.threshold_id,),
        ).fetchone()
        if row is None:
            raise UnknownRecord(f"motor threshold {used.threshold_id} is not recorded", path=self._database.where)
        if row[0] != subject_id:
            raise RecordRefused(
                f"motor threshold {used.threshold_id} belongs to subject {row[0]!r}, not {subject_id!r}",
                path=self._database.where,
            )
        if (row[1], row[2]) != (used.reference.value, used.value_pct_mso):
            raise RecordRefused(
                f"motor threshold {used.threshold_id} is {row[2]} %MSO {row[1]}, but the session says "
                f"{used.value_pct_mso} %MSO {used.reference.value}",
                path=self._database.where,
            )

    def get(self, session_id: str) -> Session:
        session_id = normalize_session_id(session_id)
        rows = self._database.read("reading a session", "SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        if not rows:
            raise UnknownRecord(f"no session {session_id} in {self._database.where}", path=self._database.where)
        thresholds = self._database.read(
            "reading a session's thresholds",
            "SELECT * FROM session_thresholds WHERE session_id = ? ORDER BY position",
            (session_id,),
        )
        return session_from_row(rows[0], thresholds)

    def find(
        self,
        *,
        subject_id: str | None = None,
        status: SessionStatus | str | None = None,
        newest: int | None = None,
    ) -> tuple[Session, ...]:
        """Sessions in creation order, optionally only one subject's and/or one status; with
        ``newest``, only the last that many created (still oldest first)."""
        where, given = self._session_filter(subject_id, status)
        if newest is not None:
            _count("newest", newest, low=1)
            # Chosen once (the sort is the costly part), then read: a clinic's years of sessions stay on disk.
            chosen = self._database.read(
                "choosing the newest sessions",
                f"SELECT s.rowid FROM sessions s WHERE {where} ORDER BY s.created_at DESC, s.rowid DESC LIMIT :newest",
                {**given, "newest": newest},
            )
            # Integers from the database, written into the SQL: the same text for both backends.
            where, given = f"s.rowid IN ({', '.join(str(int(r[0])) for r in chosen) or 'NULL'})", {}
        rows = self._database.read(
            "listing sessions",
            f"SELECT s.* FROM sessions s WHERE {where} ORDER BY s.created_at, s.rowid",
            given,
        )
        thresholds = self._database.read(
            "reading thresholds",
            f"""SELECT t.* FROM session_thresholds t JOIN sessions s USING (session_id)
               WHERE {where} ORDER BY t.session_id, t.position""",
            given,
        )
        by_session: dict[str, list[sqlite3.Row]] = {}
        for row in thresholds:
            by_session.setdefault(row["session_id"], []).append(row)
        return tuple(session_from_row(r, by_session.get(r["session_id"], [])) for r in rows)

    def count(self, *, subject_id: str | None = None, status: SessionStatus | str | None = None) -> int:
        """How many sessions ``sessions`` would list with the same filters (and no bound)."""
        where, given = self._session_filter(subject_id, status)
        return int(self._database.read("counting sessions", f"SELECT count(*) FROM sessions s WHERE {where}", given)[0][0])

    @staticmethod
    def _session_filter(
        subject_id: str | None, status: SessionStatus | str | None
    ) -> tuple[str, dict[str, str]]:
        """The WHERE clause over ``sessions s`` for these filters, and its parameters."""
        if subject_id is not None:
            validate_subject_id(subject_id)
        status_value = None if status is None else _enum(SessionStatus, "status", status).value
        # Only the filters given become terms: "(:subject IS NULL OR subject_id = :subject)" cannot
        # use an index, so one subject's listing would read every session the clinic ever ran.
        # With both, the status term is kept off its index ("|| ''"): a subject has tens of sessions,
        # a status ("completed") can hold most of the clinic's.
        given = {column: value for column, value in (("subject_id", subject_id), ("status", status_value))
                 if value is not None}
        terms = [f"s.{column} = :{column}" for column in given]
        if len(terms) == 2:
            terms[1] = "s.status || '' = :status"
        return " AND ".join(terms) or "1 = 1", given

    def _lifecycle(
        self,
        session_id: str,
        new: SessionStatus,
        *,
        doing: str,
        action: OperatorAction | None,
        fault: Fault | None = None,
        extra: Callable[[sqlite3.Connection, SessionStatus, bool], None] | None = None,
        only_from: frozenset[SessionStatus] | None = None,
    ) -> Session:
        # Every status change needs the session's owner lock: a live process running the session
        # elsewhere keeps it, so nobody else can pause, abort or complete it behind its back.
        session_id = normalize_session_id(session_id)
        with self._database.lock:
            newly_owned = self._database.take_ownership(session_id)
            try:
                with self._database.transaction(doing) as conn:
                    old = change_status(conn, session_id, new, self._database.where, doing=doing, only_from=only_from)
                    if extra is not None:
                        extra(conn, old, newly_owned)
                    if action is not None:
                        self._journal.insert_action(action)
                    if fault is not None:
                        self._journal.insert_fault(fault)
            except BaseException:
                if newly_owned:
                    self._database.drop_ownership(session_id)
                raise
            if new in (SessionStatus.COMPLETED, SessionStatus.ABORTED):
                self._database.drop_ownership(session_id)
        return self.get(session_id)

    def _set_ended(self, conn: sqlite3.Connection, session_id: str, at: datetime | None) -> None:
        conn.execute("UPDATE sessions SET ended_at = ? WHERE session_id = ?", (self._database.stamp(at), session_id))

    def start(self, session_id: str, *, operator: str, offset_s: float | None = None) -> Session:
        """``planned → running``: this process now owns the session; records a ``start`` action."""
        action = OperatorAction(session_id, ActionKind.START, operator, offset_s=offset_s)

        def stamp(conn: sqlite3.Connection, _old: SessionStatus, _new_owner: bool) -> None:
            conn.execute(
                "UPDATE sessions SET started_at = ?, run_segments = run_segments + 1 WHERE session_id = ?",
                (self._database.stamp(None), action.session_id),
            )

        return self._lifecycle(session_id, SessionStatus.RUNNING, doing="start", action=action, extra=stamp,
                               only_from=frozenset({SessionStatus.PLANNED}))

    def pause(
        self, session_id: str, *, operator: str, reason: str = "", offset_s: float | None = None
    ) -> Session:
        action = OperatorAction(session_id, ActionKind.PAUSE, operator, reason, offset_s=offset_s)
        return self._lifecycle(session_id, SessionStatus.PAUSED, doing="pause", action=action)

    def resume(
        self, session_id: str, *, operator: str, reason: str = "", offset_s: float | None = None
    ) -> Session:
        """``paused/faulted/interrupted → running``. In a new process this starts a new run segment."""
        action = OperatorAction(session_id, ActionKind.RESUME, operator, reason, offset_s=offset_s)

        def reopen(conn: sqlite3.Connection, _old: SessionStatus, new_owner: bool) -> None:
            conn.execute(
                "UPDATE sessions SET ended_at = NULL, run_segments = run_segments + ? WHERE session_id = ?",
                (1 if new_owner else 0, action.session_id),
            )

        return self._lifecycle(session_id, SessionStatus.RUNNING, doing="resume", action=action, extra=reopen,
                               only_from=_RESUMABLE_STATUSES)

    def record_device(
        self, session_id: str, *, model: str, firmware: str | None, serial: str | None
    ) -> Session:
        """The unit that answered this session's run, as it reported itself (not as planned).

        Only while this process runs the session: it connected to the unit that delivers."""
        session_id = normalize_session_id(session_id)
        _text("device_model", model, max_len=80)
        for name, value in (("device_firmware", firmware), ("device_serial", serial)):
            if value is not None:
                _text(name, value, max_len=80)
        with self._database.transaction("recording the connected device") as conn:
            require_owned_running(status_of(conn, session_id, self._database.where), session_id, "record the device", self._database.owned, self._database.where)
            conn.execute(
                "UPDATE sessions SET device_model = ?, device_firmware = ?, device_serial = ? WHERE session_id = ?",
                (model, firmware, serial, session_id),
            )
        return self.get(session_id)

    def complete(self, session_id: str) -> Session:
        """``running → completed``; refused unless every schedule position is delivered (or skipped)."""
        session_id = normalize_session_id(session_id)

        def check_finished(conn: sqlite3.Connection, _old: SessionStatus, _new_owner: bool) -> None:
            point = resume_point_in(conn, session_id, self._database.where)
            if point.finished and point.completed_deliveries < point.planned_deliveries:
                # Ran to its end, but some position was cut short or its outcome is unknown.
                conn.execute("UPDATE sessions SET status = 'incomplete' WHERE session_id = ?", (session_id,))
            if not point.finished:
                missing = point.planned_deliveries - point.next_index
                raise RecordRefused(
                    f"session {session_id} is not finished: {missing} of {point.planned_deliveries} "
                    f"trains/pulses not delivered (next is {point.next_index})",
                    path=self._database.where,
                    hint="end it with abort_session and a reason instead",
                )
            self._set_ended(conn, session_id, None)

        return self._lifecycle(session_id, SessionStatus.COMPLETED, doing="complete", action=None,
                               extra=check_finished)

    def abort(
        self, session_id: str, *, operator: str, reason: str, offset_s: float | None = None
    ) -> Session:
        """End the session for good (any non-final status); ``reason`` must say why."""
        _text("reason", reason, max_len=2000)
        action = OperatorAction(session_id, ActionKind.ABORT, operator, reason, offset_s=offset_s)

        def stamp(conn: sqlite3.Connection, _old: SessionStatus, _new_owner: bool) -> None:
            self._set_ended(conn, action.session_id, None)

        return self._lifecycle(session_id, SessionStatus.ABORTED, doing="abort", action=action, extra=stamp)

    def fault(self, fault: Fault) -> Session:
        """Record ``fault`` and mark the session ``faulted`` in one transaction."""

        def stamp(conn: sqlite3.Connection, _old: SessionStatus, _new_owner: bool) -> None:
            self._set_ended(conn, fault.session_id, fault.at)

        return self._lifecycle(
            fault.session_id, SessionStatus.FAULTED, doing="fault", action=None, fault=fault, extra=stamp
        )

    def mark_interrupted(self) -> tuple[str, ...]:
        """Mark running/paused sessions whose owning process is gone ``interrupted``; return their ids.

        Done at open; a long-lived process (a GUI) may call it again.
        """
        marked: list[str] = []
        rows = self._database.wrap(
            "looking for interrupted sessions",
            lambda: self._database.connection.execute(
                "SELECT session_id FROM sessions WHERE status IN ('running', 'paused')"
            ).fetchall(),
        )
        for (session_id,) in rows:
            if session_id in self._database.owned:
                continue  # ours, alive
            lock = self._database.try_lock(session_id)
            if lock is None:
                continue  # a live process owns it
            try:
                with self._database.transaction("marking an interrupted session"):
                    row = self._database.connection.execute(
                        "SELECT status FROM sessions WHERE session_id = ?", (session_id,)
                    ).fetchone()
                    if row is None or SessionStatus(row[0]) not in _OWNED_STATUSES:
                        continue
                    previous = SessionStatus(row[0])
                    last_activity = self._last_activity(session_id)
                    open_delivery = self._database.connection.execute(
                        "SELECT delivery_index, pulses_delivered, pulses_planned FROM deliveries "
                        "WHERE session_id = ? AND state = 'in_progress' AND resolution IS NULL",
                        (session_id,),
                    ).fetchone()
                    detail = "process ended without closing the session"
                    if last_activity:
                        detail += f"; last recorded activity at {last_activity}"
                    if open_delivery:
                        detail += (
                            f"; delivery {open_delivery[0]} had begun ({open_delivery[1]} of "
                            f"{open_delivery[2]} pulses recorded)"
                        )
                    self._database.connection.execute(
                        "UPDATE sessions SET status = 'interrupted', ended_at = ? WHERE session_id = ?",
                        (last_activity, session_id),
                    )
                    self._journal.insert_fault(Fault(session_id, "process_ended", detail, previous.value))
                    marked.append(session_id)
            finally:
                lock.release(remove=True)
        return tuple(marked)

    def _last_activity(self, session_id: str) -> str | None:
        row = self._database.connection.execute(
            """
            SELECT max(t) FROM (
                SELECT started_at AS t FROM sessions WHERE session_id = :s
                UNION ALL SELECT max(started_at) FROM deliveries WHERE session_id = :s
                UNION ALL SELECT max(finished_at) FROM deliveries WHERE session_id = :s
                UNION ALL SELECT max(at) FROM operator_actions WHERE session_id = :s
                UNION ALL SELECT max(at) FROM faults WHERE session_id = :s
            ) AS activity
            """,
            {"s": session_id},
        ).fetchone()
        return row[0]

    def detail(self, session_id: str) -> SessionDetail:
        """Everything recorded about one session, read in one snapshot."""
        session_id = normalize_session_id(session_id)
        with self._database.lock:
            conn = self._database.connection
            try:
                conn.execute("BEGIN")
                try:
                    session = self.get(session_id)
                    deliveries = tuple(
                        delivery_from_row(r)
                        for r in self._database.read(
                            "reading deliveries",
                            "SELECT * FROM deliveries WHERE session_id = ? ORDER BY delivery_index, attempt",
                            (session_id,),
                        )
                    )
                    actions = tuple(
                        action_from_row(r)
                        for r in self._database.read(
                            "reading actions",
                            "SELECT * FROM operator_actions WHERE session_id = ? ORDER BY action_id",
                            (session_id,),
                        )
                    )
                    overrides = tuple(
                        override_from_row(r)
                        for r in self._database.read(
                            "reading overrides",
                            "SELECT * FROM overrides WHERE session_id = ? ORDER BY override_id",
                            (session_id,),
                        )
                    )
                    faults = tuple(
                        fault_from_row(r)
                        for r in self._database.read(
                            "reading faults", "SELECT * FROM faults WHERE session_id = ? ORDER BY fault_id",
                            (session_id,),
                        )
                    )
                    point = resume_point_in(conn, session_id, self._database.where)
                finally:
                    conn.execute("COMMIT")
            except DB_ERRORS as exc:
                raise database_error(exc, self._database.where, "reading a session") from exc
        return SessionDetail(session, deliveries, actions, overrides, faults, point)


def session_from_row(r: sqlite3.Row, thresholds: Sequence[sqlite3.Row]) -> Session:
    return Session(
        session_id=r["session_id"],
        subject_id=r["subject_id"],
        protocol_id=r["protocol_id"],
        protocol_hash=r["protocol_hash"],
        protocol_text=r["protocol_text"],
        device_url=r["device_url"],
        device_model=r["device_model"],
        device_serial=r["device_serial"],
        device_firmware=r["device_firmware"],
        coil=r["coil"],
        simulated=bool(r["simulated"]),
        planned_deliveries=r["planned_deliveries"],
        planned_pulses=r["planned_pulses"],
        thresholds_used=tuple(
            ThresholdUsed(ThresholdReference(t["reference"]), t["value_pct_mso"], t["threshold_id"])
            for t in thresholds
        ),
        status=SessionStatus(r["status"]),
        created_at=_from_db_time_required(r["created_at"]),
        started_at=_from_db_time(r["started_at"]),
        ended_at=_from_db_time(r["ended_at"]),
        run_segments=r["run_segments"],
        replies_confirmed=bool(r["replies_confirmed"]),
    )
