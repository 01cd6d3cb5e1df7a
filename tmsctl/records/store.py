"""The store: ``Records``, the records database as one object over its repositories.

The database layer (``tmsctl.records.database``: opening, the damage check, owner locks,
transactions, the SQLite and PostgreSQL backends) holds the one connection; one repository per
aggregate works over it:

* ``subjects.Subjects``, ``thresholds.MotorThresholds``, ``approvals.ProtocolApprovals``;
* ``sessions.Sessions``: the recorded plan, status and lifecycle (``session_status``), a session's detail;
* ``deliveries.DeliveryLedger``: intents and outcomes of every train or pulse, partials, the resume point;
* ``journal.Journal``: operator actions, overrides and faults;
* ``exposure.Exposures``: what a subject received in a window;
* ``courses.Courses`` and ``meps.MepRecords`` (their own modules already).

``Records`` keeps the one public API every caller uses and hands each call to its repository.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tmsctl.core.clock import Clock
from tmsctl.records.approvals import ProtocolApprovals
from tmsctl.records.database import Database, default_db_path
from tmsctl.records.deliveries import DeliveryLedger
from tmsctl.records.exposure import Exposures
from tmsctl.records.journal import Journal
from tmsctl.records.model import (
    Delivery,
    DeliveryPlan,
    DeliveryResult,
    Exposure,
    Fault,
    MotorThreshold,
    OperatorAction,
    Override,
    ProtocolApproval,
    ResumePoint,
    Session,
    SessionDetail,
    SessionPlan,
    SessionStatus,
    StorageSettings,
    Subject,
)
from tmsctl.records.server import ServerConnection
from tmsctl.records.sessions import Sessions
from tmsctl.records.subjects import Subjects
from tmsctl.records.thresholds import MotorThresholds

if TYPE_CHECKING:
    from tmsctl.records.courses import Courses

__all__ = ["Records", "default_db_path"]


class Records:
    """The records database. Thread-safe (one lock around one connection); a context manager.

    Opening it applies pending migrations and marks sessions whose owning process has died
    ``interrupted``. ``close()`` does not end the sessions this process runs: a runner ends them
    explicitly; otherwise the next opener finds them interrupted, exactly as after a crash.

    ``create=False`` refuses a path where no file exists (an explicitly named database that is not
    there is a typo, not a wish for an empty one). ``read_only=True`` opens an existing, current
    database for reading only: nothing is migrated or marked and every write fails, so it works on
    read-only media. A zero-byte file is refused as damaged, never started afresh.
    """

    _database_type: type[Database] = Database
    """What opens the connection; a benchmark swaps in one that never waits for the disk."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        self.database = database = self._database_type(
            path, clock=clock, env=env, create=create, read_only=read_only
        )
        self._subjects = Subjects(database)
        self._thresholds = MotorThresholds(database, self._subjects)
        self._approvals = ProtocolApprovals(database)
        self._journal = Journal(database)
        self._sessions = Sessions(database, self._subjects, self._journal)
        self._deliveries = DeliveryLedger(database, self._journal)
        self._exposures = Exposures(database)
        try:
            if not read_only:
                self.mark_interrupted_sessions()
        except BaseException:
            database.abandon()
            raise

    # -- the database ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file; for a server, the file the local data folder would hold (its folder
        keeps this workstation's audit logs). ``location`` names the database either way."""
        return self.database.path

    @property
    def location(self) -> str:
        """The database file's path, or the server's URL without its password."""
        return self.database.location

    def check_not_damaged(self) -> None:
        """Refuse a damaged file (see ``Database.check_not_damaged``)."""
        self.database.check_not_damaged()

    def close(self) -> None:
        """Close the database and free this process's session locks (sessions keep their status)."""
        self.database.close()

    def __enter__(self) -> Records:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def storage_settings(self) -> StorageSettings:
        """What the connection actually uses (for `tmsctl doctor` and the tests)."""
        return self.database.storage_settings()

    def integrity_check(self) -> tuple[str, ...]:
        """SQLite's ``integrity_check`` and ``foreign_key_check``; ``("ok",)`` when sound. On a server,
        which checks its pages itself: the records' triggers and constraints are all in force."""
        return self.database.integrity_check()

    # The database as the modules beside the store (courses, meps, copy) and a few tests reach it.

    @property
    def _db(self) -> sqlite3.Connection:
        return self.database.connection

    @property
    def _server(self) -> ServerConnection | None:
        return self.database.server

    @property
    def _clock(self) -> Clock:
        return self.database.clock

    def _now(self) -> datetime:
        return self.database.now()

    def _stamp(self, moment: datetime | None) -> str:
        return self.database.stamp(moment)

    def _transaction(self, doing: str, *, wait_for_disk: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        return self.database.transaction(doing, wait_for_disk=wait_for_disk)

    def _read(self, doing: str, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        return self.database.read(doing, sql, params)

    def _require_subject(self, conn: sqlite3.Connection, subject_id: str) -> None:
        self._subjects.require(conn, subject_id)

    @property
    def courses(self) -> Courses:
        """Treatment courses, plan changes and outcome entries (``tmsctl.records.courses``)."""
        from tmsctl.records.courses import Courses

        return Courses(self)

    # -- subjects, thresholds, approvals ---------------------------------------------------------

    def add_subject(self, subject_id: str) -> Subject:
        return self._subjects.add(subject_id)

    def ensure_subject(self, subject_id: str) -> Subject:
        return self._subjects.ensure(subject_id)

    def subject(self, subject_id: str) -> Subject | None:
        return self._subjects.get(subject_id)

    def subjects(self) -> tuple[Subject, ...]:
        return self._subjects.all()

    def record_motor_threshold(self, threshold: MotorThreshold) -> MotorThreshold:
        return self._thresholds.record(threshold)

    def motor_thresholds(self, subject_id: str) -> tuple[MotorThreshold, ...]:
        return self._thresholds.of_subject(subject_id)

    def latest_motor_threshold(
        self, subject_id: str, *, stimulator_model: str, stimulator_serial: str, coil: str
    ) -> MotorThreshold | None:
        """The most recent measurement for exactly this subject, stimulator (model + serial) and coil."""
        return self._thresholds.latest(
            subject_id, stimulator_model=stimulator_model, stimulator_serial=stimulator_serial, coil=coil
        )

    def approve_protocol(
        self, protocol_id: str, content_hash: str, *, approved_by: str, approved_at: datetime | None = None
    ) -> ProtocolApproval:
        return self._approvals.approve(protocol_id, content_hash, approved_by=approved_by, approved_at=approved_at)

    def protocol_approvals(
        self, protocol_id: str | None = None, content_hash: str | None = None
    ) -> tuple[ProtocolApproval, ...]:
        return self._approvals.find(protocol_id, content_hash)

    def is_protocol_approved(self, protocol_id: str, content_hash: str) -> bool:
        """True when this exact content (by hash) of this protocol id has been approved."""
        return self._approvals.is_approved(protocol_id, content_hash)

    # -- sessions --------------------------------------------------------------------------------

    def create_session(self, plan: SessionPlan) -> Session:
        """Record a planned session (status ``planned``); nothing has fired yet."""
        return self._sessions.create(plan)

    def session(self, session_id: str) -> Session:
        return self._sessions.get(session_id)

    def sessions(
        self,
        *,
        subject_id: str | None = None,
        status: SessionStatus | str | None = None,
        newest: int | None = None,
    ) -> tuple[Session, ...]:
        """Sessions in creation order, optionally only one subject's and/or one status; with
        ``newest``, only the last that many created (still oldest first)."""
        return self._sessions.find(subject_id=subject_id, status=status, newest=newest)

    def count_sessions(self, *, subject_id: str | None = None, status: SessionStatus | str | None = None) -> int:
        """How many sessions ``sessions`` would list with the same filters (and no bound)."""
        return self._sessions.count(subject_id=subject_id, status=status)

    def mark_interrupted_sessions(self) -> tuple[str, ...]:
        """Mark running/paused sessions whose owning process is gone ``interrupted``; return their ids.

        Done at open; a long-lived process (a GUI) may call it again.
        """
        return self._sessions.mark_interrupted()

    def start_session(self, session_id: str, *, operator: str, offset_s: float | None = None) -> Session:
        """``planned → running``: this process now owns the session; records a ``start`` action."""
        return self._sessions.start(session_id, operator=operator, offset_s=offset_s)

    def pause_session(
        self, session_id: str, *, operator: str, reason: str = "", offset_s: float | None = None
    ) -> Session:
        return self._sessions.pause(session_id, operator=operator, reason=reason, offset_s=offset_s)

    def resume_session(
        self, session_id: str, *, operator: str, reason: str = "", offset_s: float | None = None
    ) -> Session:
        """``paused/faulted/interrupted → running``. In a new process this starts a new run segment."""
        return self._sessions.resume(session_id, operator=operator, reason=reason, offset_s=offset_s)

    def record_session_device(
        self, session_id: str, *, model: str, firmware: str | None, serial: str | None
    ) -> Session:
        """The unit that answered this session's run, as it reported itself (not as planned)."""
        return self._sessions.record_device(session_id, model=model, firmware=firmware, serial=serial)

    def complete_session(self, session_id: str) -> Session:
        """``running → completed``; refused unless every schedule position is delivered (or skipped)."""
        return self._sessions.complete(session_id)

    def abort_session(
        self, session_id: str, *, operator: str, reason: str, offset_s: float | None = None
    ) -> Session:
        """End the session for good (any non-final status); ``reason`` must say why."""
        return self._sessions.abort(session_id, operator=operator, reason=reason, offset_s=offset_s)

    def fault_session(self, fault: Fault) -> Session:
        """Record ``fault`` and mark the session ``faulted`` in one transaction."""
        return self._sessions.fault(fault)

    def session_detail(self, session_id: str) -> SessionDetail:
        """Everything recorded about one session, read in one snapshot."""
        return self._sessions.detail(session_id)

    # -- deliveries ------------------------------------------------------------------------------

    def begin_delivery(self, plan: DeliveryPlan) -> Delivery:
        """Record that a train or pulse is about to fire (commit before firing)."""
        return self._deliveries.begin_delivery(plan)

    def record_progress(
        self,
        session_id: str,
        index: int,
        *,
        pulses_delivered: int,
        onset_offset_s: float | None = None,
        onset_utc: datetime | None = None,
    ) -> Delivery:
        """For host-timed trains: raise the recorded pulse count of the delivery in progress."""
        return self._deliveries.record_progress(
            session_id, index, pulses_delivered=pulses_delivered, onset_offset_s=onset_offset_s, onset_utc=onset_utc
        )

    def finish_delivery(self, result: DeliveryResult) -> Delivery:
        """Record how a begun train or pulse ended: one transaction, on disk when this returns."""
        return self._deliveries.finish_delivery(result)

    def skip_partial(self, session_id: str, index: int, *, operator: str, reason: str,
                     offset_s: float | None = None) -> ResumePoint:
        """Leave a partial train/pulse as it is and move on (its pulses stay counted)."""
        return self._deliveries.skip_partial(session_id, index, operator=operator, reason=reason, offset_s=offset_s)

    def retry_partial(self, session_id: str, index: int, *, operator: str, reason: str,
                      offset_s: float | None = None) -> ResumePoint:
        """Deliver this position again (a new attempt; the partial's pulses stay counted)."""
        return self._deliveries.retry_partial(session_id, index, operator=operator, reason=reason, offset_s=offset_s)

    def resume_point(self, session_id: str) -> ResumePoint:
        return self._deliveries.resume_point(session_id)

    # -- actions, overrides, faults --------------------------------------------------------------

    def record_action(self, action: OperatorAction) -> OperatorAction:
        """Record an acknowledge or confirm (the lifecycle methods record the other kinds)."""
        return self._journal.record_action(action)

    def record_override(self, override: Override) -> Override:
        """Record an overridden finding (and an ``override`` operator action) in one transaction."""
        return self._journal.record_override(override)

    def record_fault(self, fault: Fault) -> Fault:
        """Record a fault without changing the session's status (see ``fault_session``)."""
        return self._journal.record_fault(fault)

    # -- exposure --------------------------------------------------------------------------------

    def exposure_between(self, subject_id: str, start_utc: datetime, end_utc: datetime) -> Exposure:
        """Pulses and sessions a subject received in ``[start_utc, end_utc)`` (simulated excluded)."""
        return self._exposures.between(subject_id, start_utc, end_utc)

    def exposure_on_day(self, subject_id: str, day: date, *, tz: tzinfo = UTC) -> Exposure:
        """``exposure_between`` over one calendar day in ``tz`` (the site's time zone for daily caps)."""
        return self._exposures.on_day(subject_id, day, tz=tz)

    def pulses_on_day(self, subject_id: str, day: date, *, tz: tzinfo = UTC) -> int:
        """Pulses that may have been delivered to the subject that day (the cap-safe count)."""
        return self.exposure_on_day(subject_id, day, tz=tz).possible_pulses
