"""The delivery ledger: every train or pulse, its intent before the trigger and its outcome after,
partial attempts and their resolution, and where a session resumes."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from tmsctl.records.database import DB_ERRORS, Database, database_error
from tmsctl.records.errors import RecordRefused, SessionOwnedElsewhere, UnknownRecord
from tmsctl.records.journal import Journal
from tmsctl.records.model import (
    _OWNED_STATUSES,
    ActionKind,
    Delivery,
    DeliveryKind,
    DeliveryPlan,
    DeliveryResult,
    DeliveryState,
    OperatorAction,
    Resolution,
    ResumePoint,
    SessionStatus,
    TriggerSource,
    _text,
    normalize_session_id,
)
from tmsctl.records.schema import _from_db_time, _from_db_time_required, _to_db_time
from tmsctl.records.session_status import require_owned_running, status_of

# Pulses that may or may not have gone out: a delivery begun with no outcome on record may have put
# out every pulse not known delivered.
UNCERTAIN_SQL = "CASE WHEN state = 'in_progress' THEN pulses_planned - pulses_delivered ELSE pulses_uncertain END"
_NO_OUTCOME_EVIDENCE = "intent on record, no outcome: the process ended before the device's answer was recorded"


class DeliveryLedger:
    def __init__(self, database: Database, journal: Journal) -> None:
        self._database = database
        self._journal = journal

    def begin_delivery(self, plan: DeliveryPlan) -> Delivery:
        """Record that a train or pulse is about to fire (commit before firing).

        Refused unless the session is running in this process, ``plan.index`` is the resume
        point's ``next_index`` and no partial attempt is unresolved.
        """
        with self._database.transaction("recording the start of a delivery") as conn:
            row = conn.execute(
                "SELECT status, planned_deliveries, run_segments FROM sessions WHERE session_id = ?",
                (plan.session_id,),
            ).fetchone()
            if row is None:
                raise UnknownRecord(f"no session {plan.session_id} in {self._database.where}", path=self._database.where)
            require_owned_running(SessionStatus(row[0]), plan.session_id, "begin a delivery", self._database.owned, self._database.where)
            planned, segments = row[1], row[2]
            if plan.index >= planned:
                raise RecordRefused(
                    f"session {plan.session_id} plans {planned} trains/pulses (0..{planned - 1}); "
                    f"index {plan.index} is outside the plan",
                    path=self._database.where,
                )
            self._check_next(plan.session_id, *next_position(conn, plan.session_id), plan.index)
            attempt = conn.execute(
                "SELECT coalesce(max(attempt), 0) + 1 FROM deliveries "
                "WHERE session_id = ? AND delivery_index = ?",
                (plan.session_id, plan.index),
            ).fetchone()[0]
            conn.execute(
                """INSERT INTO deliveries (session_id, delivery_index, attempt, kind, segment,
                       planned_onset_s, pulses_planned, intensity_pct_mso, trigger_source,
                       second_intensity_pct_mso, ipi_ms,
                       started_at, state, pulses_delivered)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'in_progress', 0)""",
                (
                    plan.session_id,
                    plan.index,
                    attempt,
                    plan.kind.value,
                    segments,
                    plan.planned_onset_s,
                    plan.pulses_planned,
                    plan.intensity_pct_mso,
                    plan.trigger_source.value,
                    plan.second_intensity_pct_mso,
                    plan.ipi_ms,
                    started_at := self._database.stamp(None),
                ),
            )
            # The row as just written, without reading it back (this runs before every train).
            return Delivery(
                session_id=plan.session_id, index=plan.index, attempt=attempt, kind=plan.kind, segment=segments,
                planned_onset_s=plan.planned_onset_s, pulses_planned=plan.pulses_planned,
                intensity_pct_mso=plan.intensity_pct_mso, trigger_source=plan.trigger_source,
                second_intensity_pct_mso=plan.second_intensity_pct_mso, ipi_ms=plan.ipi_ms,
                started_at=_from_db_time_required(started_at), state=DeliveryState.IN_PROGRESS,
                pulses_delivered=0, onset_offset_s=None, onset_utc=None, finished_at=None, resolution=None,
                pulses_uncertain=plan.pulses_planned,
            )

    def _check_next(self, sid: str, next_index: int, partial: Delivery | None, index: int) -> None:
        if partial is not None:
            raise RecordRefused(
                f"session {sid}: train/pulse {partial.index} began but did not complete "
                f"({partial.pulses_delivered} of {partial.pulses_planned} pulses recorded); "
                "it must be resolved before anything else is delivered",
                path=self._database.where,
                hint="decide with the operator, then call skip_partial or retry_partial with a reason",
            )
        if index < next_index:
            raise RecordRefused(
                f"session {sid}: train/pulse {index} is already recorded delivered (or skipped); "
                f"repeating it is refused (next is {next_index})",
                path=self._database.where,
            )
        if index > next_index:
            raise RecordRefused(
                f"session {sid}: delivering train/pulse {index} would skip {next_index}"
                + (f"..{index - 1}" if index - 1 > next_index else "")
                + ", which were not delivered",
                path=self._database.where,
            )

    def _open_delivery_of_this_process(self, conn: sqlite3.Connection, session_id: str, index: int) -> Delivery:
        """The begun, unfinished attempt at ``index``, checked to belong to a session this process
        runs; read with the session's status in one query (this runs after every trigger)."""
        cursor = conn.execute(
            """SELECT d.*, s.status AS session_status FROM deliveries d JOIN sessions s USING (session_id)
               WHERE d.session_id = ? AND d.delivery_index = ? AND d.resolution IS NULL""",
            (session_id, index),
        )
        cursor.row_factory = sqlite3.Row
        row = cursor.fetchone()
        if row is None:
            raise RecordRefused(
                f"session {session_id}: train/pulse {index} has not begun (begin_delivery first)",
                path=self._database.where,
            )
        current = delivery_from_row(row)
        self._check_open(current)
        # A delivery's outcome comes from the process that fired it; it may arrive after a pause
        # or a fault, but not after that process is gone (then skip_partial / retry_partial).
        status = SessionStatus(row["session_status"])
        if status not in (SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.FAULTED):
            raise RecordRefused(
                f"cannot record a delivery outcome for session {session_id}: it is {status.value}",
                path=self._database.where,
                hint="resolve the partial train with skip_partial or retry_partial",
            )
        if session_id not in self._database.owned:
            raise SessionOwnedElsewhere(f"session {session_id} is not run by this process", path=self._database.where)
        return current

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
        progress = DeliveryResult(session_id, index, pulses_delivered, False, onset_offset_s, onset_utc)
        with self._database.transaction("recording delivery progress", wait_for_disk=False) as conn:
            current = self._open_delivery_of_this_process(conn, progress.session_id, progress.index)
            if progress.pulses_delivered < current.pulses_delivered:
                raise RecordRefused(
                    f"session {current.session_id}: train/pulse {index} already has "
                    f"{current.pulses_delivered} pulses recorded; "
                    f"a count cannot go down to {progress.pulses_delivered}",
                    path=self._database.where,
                )
            self._check_count(current, progress.pulses_delivered)
            onset_db = None if progress.onset_utc is None else _to_db_time(progress.onset_utc)
            conn.execute(
                """UPDATE deliveries SET pulses_delivered = ?,
                       onset_offset_s = coalesce(onset_offset_s, ?), onset_utc = coalesce(onset_utc, ?)
                   WHERE session_id = ? AND delivery_index = ? AND attempt = ?""",
                (
                    progress.pulses_delivered,
                    progress.onset_offset_s,
                    onset_db,
                    current.session_id,
                    current.index,
                    current.attempt,
                ),
            )
            # The row as just written, without reading it back (this runs for every train).
            return replace(
                current,
                pulses_delivered=progress.pulses_delivered,
                pulses_uncertain=current.pulses_planned - progress.pulses_delivered,
                onset_offset_s=_coalesce(current.onset_offset_s, progress.onset_offset_s),
                onset_utc=_coalesce(current.onset_utc, _from_db_time(onset_db)),
            )

    def finish_delivery(self, result: DeliveryResult) -> Delivery:
        """Record how a begun train or pulse ended: one transaction, on disk when this returns."""
        with self._database.transaction("recording a delivery", wait_for_disk=False) as conn:
            current = self._open_delivery_of_this_process(conn, result.session_id, result.index)
            self._check_count(current, result.pulses_delivered + result.pulses_uncertain)
            if result.pulses_delivered < current.pulses_delivered:
                raise RecordRefused(
                    f"session {current.session_id}: train/pulse {current.index} already has "
                    f"{current.pulses_delivered} pulses recorded; "
                    f"cannot finish with {result.pulses_delivered}",
                    path=self._database.where,
                )
            if result.completed and result.pulses_delivered != current.pulses_planned:
                raise RecordRefused(
                    f"session {current.session_id}: train/pulse {current.index} delivered "
                    f"{result.pulses_delivered} of {current.pulses_planned} pulses, so it is not complete",
                    path=self._database.where,
                    hint="finish it with completed=False",
                )
            state = DeliveryState.COMPLETED if result.completed else DeliveryState.STOPPED
            onset_utc = None if result.onset_utc is None else _to_db_time(result.onset_utc)
            finished_at = self._database.stamp(None)
            conn.execute(
                """UPDATE deliveries SET state = ?, pulses_delivered = ?, pulses_uncertain = ?, evidence = ?,
                       onset_offset_s = coalesce(?, onset_offset_s), onset_utc = coalesce(?, onset_utc),
                       finished_at = ?
                   WHERE session_id = ? AND delivery_index = ? AND attempt = ?""",
                (
                    state.value,
                    result.pulses_delivered,
                    result.pulses_uncertain,
                    result.evidence or None,
                    result.onset_offset_s,
                    onset_utc,
                    finished_at,
                    current.session_id,
                    current.index,
                    current.attempt,
                ),
            )
            # The row as just written, without reading it back (this runs for every train).
            return replace(
                current,
                state=state,
                pulses_delivered=result.pulses_delivered,
                pulses_uncertain=result.pulses_uncertain,
                evidence=result.evidence or None,
                onset_offset_s=_coalesce(result.onset_offset_s, current.onset_offset_s),
                onset_utc=_coalesce(_from_db_time(onset_utc), current.onset_utc),
                finished_at=_from_db_time(finished_at),
            )

    def _check_open(self, current: Delivery) -> None:
        if current.state is not DeliveryState.IN_PROGRESS:
            raise RecordRefused(
                f"session {current.session_id}: train/pulse {current.index} is already recorded "
                f"{current.state.value}",
                path=self._database.where,
            )

    def _check_count(self, current: Delivery, pulses: int) -> None:
        if pulses > current.pulses_planned:
            raise RecordRefused(
                f"session {current.session_id}: train/pulse {current.index} planned {current.pulses_planned} "
                f"pulses; {pulses} cannot be recorded",
                path=self._database.where,
            )

    def skip_partial(self, session_id: str, index: int, *, operator: str, reason: str,
                     offset_s: float | None = None) -> ResumePoint:
        """Leave a partial train/pulse as it is and move on (its pulses stay counted)."""
        return self._resolve_partial(session_id, index, Resolution.SKIPPED, ActionKind.SKIP_PARTIAL,
                                     operator=operator, reason=reason, offset_s=offset_s)

    def retry_partial(self, session_id: str, index: int, *, operator: str, reason: str,
                      offset_s: float | None = None) -> ResumePoint:
        """Deliver this position again (a new attempt; the partial's pulses stay counted)."""
        return self._resolve_partial(session_id, index, Resolution.RETRIED, ActionKind.RETRY_PARTIAL,
                                     operator=operator, reason=reason, offset_s=offset_s)

    def _resolve_partial(self, session_id: str, index: int, resolution: Resolution, kind: ActionKind, *,
                         operator: str, reason: str, offset_s: float | None) -> ResumePoint:
        _text("reason", reason, max_len=2000)
        action = OperatorAction(
            session_id, kind, operator, f"train/pulse {index + 1}: {reason}", offset_s=offset_s  # 1-based: a person reads it
        )
        sid = action.session_id
        with self._database.transaction(f"recording {kind.value}") as conn:
            status = status_of(conn, sid, self._database.where)
            if status in (SessionStatus.PLANNED, SessionStatus.COMPLETED, SessionStatus.ABORTED):
                raise RecordRefused(f"session {sid} is {status.value}; nothing to resolve", path=self._database.where)
            if status in _OWNED_STATUSES and sid not in self._database.owned:
                raise SessionOwnedElsewhere(f"session {sid} is run by another process", path=self._database.where)
            point = resume_point_in(conn, sid, self._database.where)
            if point.partial is None or point.partial.index != index:
                have = "none" if point.partial is None else f"train/pulse {point.partial.index}"
                raise RecordRefused(
                    f"session {sid}: train/pulse {index} is not the partial one (partial: {have})",
                    path=self._database.where,
                )
            if point.partial.state is DeliveryState.IN_PROGRESS:
                # The attempt's outcome was never recorded: close it as stopped, every pulse not known
                # delivered left uncertain (it may all have gone out; it may not have fired at all).
                conn.execute(
                    "UPDATE deliveries SET state = 'stopped', finished_at = ?, "
                    "pulses_uncertain = pulses_planned - pulses_delivered, evidence = ? "
                    "WHERE session_id = ? AND delivery_index = ? AND attempt = ?",
                    (self._database.stamp(None), _NO_OUTCOME_EVIDENCE, sid, index, point.partial.attempt),
                )
            conn.execute(
                "UPDATE deliveries SET resolution = ? "
                "WHERE session_id = ? AND delivery_index = ? AND attempt = ?",
                (resolution.value, sid, index, point.partial.attempt),
            )
            self._journal.insert_action(action)
            return resume_point_in(conn, sid, self._database.where)

    def resume_point(self, session_id: str) -> ResumePoint:
        session_id = normalize_session_id(session_id)
        with self._database.lock:
            try:
                conn = self._database.connection
                conn.execute("BEGIN")  # one consistent snapshot across the two reads
                try:
                    return resume_point_in(conn, session_id, self._database.where)
                finally:
                    conn.execute("COMMIT")
            except DB_ERRORS as exc:
                raise database_error(exc, self._database.where, "computing the resume point") from exc


def resume_point_in(conn: sqlite3.Connection, session_id: str, where: Path | str) -> ResumePoint:
    """Inside a transaction: where the session stands (one consistent snapshot)."""
    # Aggregates in SQL: the cost stays in the database, not in Python rows, however long the session.
    row = conn.execute(
        "SELECT planned_deliveries FROM sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None:
        raise UnknownRecord(f"no session {session_id} in {where}", path=where)
    planned = row[0]
    completed, skipped, pulses, uncertain = conn.execute(
        f"""SELECT coalesce(sum(state = 'completed'), 0),
                  coalesce(sum(state != 'completed' AND resolution = 'skipped'), 0),
                  coalesce(sum(pulses_delivered), 0),
                  coalesce(sum({UNCERTAIN_SQL}), 0)
           FROM deliveries WHERE session_id = ?""",
        (session_id,),
    ).fetchone()
    next_index, partial = next_position(conn, session_id)
    return ResumePoint(
        session_id=session_id,
        next_index=next_index,
        planned_deliveries=planned,
        completed_deliveries=completed,
        skipped_deliveries=skipped,
        pulses_delivered=pulses,
        partial=partial,
        pulses_uncertain=uncertain,
    )

def next_position(conn: sqlite3.Connection, session_id: str) -> tuple[int, Delivery | None]:
    """The first position neither completed nor skipped, and the unresolved attempt at it that
    did not complete (if any). Runs before every train, inside its transaction."""
    # Done positions are distinct non-negative indexes: when there are top + 1 of them up to
    # top, they are exactly 0..top (begin_delivery keeps them a prefix, but the answer must
    # not depend on that; a gap takes the slower query below).
    count, top = conn.execute(
        """SELECT count(DISTINCT delivery_index), coalesce(max(delivery_index), -1) FROM deliveries
           WHERE session_id = ? AND (state = 'completed' OR resolution = 'skipped')""",
        (session_id,),
    ).fetchone()
    if count == top + 1:
        next_index = count
    else:
        (next_index,) = conn.execute(
            """WITH done(i) AS (SELECT DISTINCT delivery_index FROM deliveries
                                WHERE session_id = ? AND (state = 'completed' OR resolution = 'skipped'))
               SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM done WHERE i = 0) THEN 0
                           ELSE (SELECT min(i + 1) FROM done WHERE i + 1 NOT IN (SELECT i FROM done)) END""",
            (session_id,),
        ).fetchone()
    cursor = conn.execute(
        """SELECT * FROM deliveries WHERE session_id = ? AND delivery_index = ?
           AND resolution IS NULL AND state != 'completed'""",
        (session_id, next_index),
    )
    cursor.row_factory = sqlite3.Row
    partial_row = cursor.fetchone()
    return next_index, None if partial_row is None else delivery_from_row(partial_row)


def _coalesce(first: Any, second: Any) -> Any:
    """SQL's coalesce(first, second)."""
    return first if first is not None else second



def delivery_from_row(r: sqlite3.Row) -> Delivery:
    return Delivery(
        session_id=r["session_id"],
        index=r["delivery_index"],
        attempt=r["attempt"],
        kind=DeliveryKind(r["kind"]),
        segment=r["segment"],
        planned_onset_s=r["planned_onset_s"],
        pulses_planned=r["pulses_planned"],
        intensity_pct_mso=r["intensity_pct_mso"],
        trigger_source=TriggerSource(r["trigger_source"]),
        second_intensity_pct_mso=r["second_intensity_pct_mso"],
        ipi_ms=r["ipi_ms"],
        started_at=_from_db_time_required(r["started_at"]),
        state=DeliveryState(r["state"]),
        pulses_delivered=r["pulses_delivered"],
        pulses_uncertain=(
            r["pulses_planned"] - r["pulses_delivered"] if r["state"] == "in_progress" else r["pulses_uncertain"]
        ),
        evidence=r["evidence"],
        onset_offset_s=r["onset_offset_s"],
        onset_utc=_from_db_time(r["onset_utc"]),
        finished_at=_from_db_time(r["finished_at"]),
        resolution=None if r["resolution"] is None else Resolution(r["resolution"]),
    )
