"""What keeps the store's cost independent of how long a clinic has used it.

A clinic's database holds years of sessions. These tests check the query plans (``EXPLAIN QUERY
PLAN``) rather than timings: a plan that searches an index stays cheap at any size; a plan that
scans a table grows with it (``benchmarks/bench_records_scale.py`` shows the figures).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from records_helpers import deliver, running_session, session_plan

from tmsctl.records import (
    Fault,
    InvalidRecord,
    MotorThreshold,
    Records,
    SessionStatus,
    ThresholdReference,
    ThresholdUsed,
)

# The plans read here are SQLite's (EXPLAIN QUERY PLAN); a server plans its own queries.
pytestmark = pytest.mark.sqlite_only


def _plans_of(records: Records, call: Callable[[], Any]) -> dict[str, list[str]]:
    """Every SELECT ``call`` made through the store's connection, with its query plan."""
    statements: list[str] = []
    records._db.set_trace_callback(statements.append)  # observes only: the statements as they ran
    try:
        call()
    finally:
        records._db.set_trace_callback(None)
    raw = sqlite3.connect(records.path)
    try:
        return {
            sql: [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql)]
            for sql in statements
            if sql.lstrip().upper().startswith("SELECT")
        }
    finally:
        raw.close()


def _full_scans(plans: dict[str, list[str]]) -> list[str]:
    return [f"{line}   <- {sql}" for sql, plan in plans.items() for line in plan if line.startswith("SCAN")]


def _clinic(records: Records) -> None:
    """Two subjects' sessions in every status a listing can filter on, some with thresholds."""
    for subject in ("S017", "S018"):
        records.ensure_subject(subject)
        measured = records.record_motor_threshold(
            MotorThreshold(subject, "magstim-rapid2", "SN-1234", "D70", 48.0, ThresholdReference.RMT, "pest",
                           datetime(2025, 12, 30, 9, 0, tzinfo=UTC), "tech1")
        )
        with_threshold = {"thresholds_used": (ThresholdUsed("rMT", 48.0, measured.threshold_id),)}
        records.create_session(session_plan(subject_id=subject, **with_threshold))  # stays planned
        completed = running_session(records, subject_id=subject, planned_deliveries=1, planned_pulses=10,
                                    **with_threshold)
        deliver(records, completed, 0)
        records.complete_session(completed)
        aborted = running_session(records, subject_id=subject)
        records.abort_session(aborted, operator="tech1", reason="subject asked to stop")
        faulted = running_session(records, subject_id=subject, **with_threshold)
        records.fault_session(Fault(faulted, "coil_overtemp", "coil at 41 C", "train 1"))
        running_session(records, subject_id=subject)


def test_one_subjects_sessions_are_found_through_the_subject_index(records: Records) -> None:
    _clinic(records)
    plans = _plans_of(records, lambda: records.sessions(subject_id="S017"))
    assert len(plans) == 2  # the sessions, then their thresholds
    assert _full_scans(plans) == []
    assert all(any("sessions_by_subject" in line for line in plan) for plan in plans.values())


def test_sessions_in_one_status_are_found_through_the_status_index(records: Records) -> None:
    _clinic(records)
    plans = _plans_of(records, lambda: records.sessions(status=SessionStatus.FAULTED))
    assert _full_scans(plans) == []
    assert all(any("sessions_by_status" in line for line in plan) for plan in plans.values())


def test_a_subject_and_status_listing_searches_the_subject_not_the_status(records: Records) -> None:
    # A status such as 'completed' holds most of a clinic's sessions; a subject holds tens.
    _clinic(records)
    plans = _plans_of(records, lambda: records.sessions(subject_id="S017", status="completed"))
    assert _full_scans(plans) == []
    assert all(any("sessions_by_subject" in line for line in plan) for plan in plans.values())


@pytest.mark.parametrize("subject_id", [None, "S017", "S018", "S099"])
@pytest.mark.parametrize("status", [None, *SessionStatus])
def test_a_filtered_listing_is_the_full_listing_filtered(
    records: Records, subject_id: str | None, status: SessionStatus | None
) -> None:
    _clinic(records)
    everything = records.sessions()
    assert len(everything) == 10 and sum(len(s.thresholds_used) for s in everything) == 6
    expected = tuple(
        s for s in everything
        if (subject_id is None or s.subject_id == subject_id) and (status is None or s.status is status)
    )
    assert records.sessions(subject_id=subject_id, status=status) == expected


@pytest.mark.parametrize("subject_id", [None, "S017", "S099"])
@pytest.mark.parametrize("newest", [1, 3, 5, 50])
def test_the_newest_sessions_are_the_tail_of_the_listing_and_the_count_its_length(
    records: Records, subject_id: str | None, newest: int
) -> None:
    _clinic(records)
    everything = records.sessions(subject_id=subject_id)
    assert records.count_sessions(subject_id=subject_id) == len(everything)
    assert records.sessions(subject_id=subject_id, newest=newest) == everything[-newest:]


def test_a_bound_listing_sorts_one_subjects_sessions_once_and_reads_the_chosen_by_rowid(records: Records) -> None:
    _clinic(records)
    plans = _plans_of(records, lambda: records.sessions(subject_id="S017", newest=2))
    choosing, *reading = plans.values()
    assert any("sessions_by_subject" in line for line in choosing)
    assert len(reading) == 2  # the sessions, then their thresholds: neither sorts sessions again
    assert all(not any(line.startswith("SCAN s") for line in plan) for plan in reading)
    assert all(any("rowid=?" in line for line in plan) for plan in reading)


@pytest.mark.parametrize("newest", [0, -1, True, 2.5])
def test_a_bound_must_be_a_positive_whole_number(records: Records, newest: Any) -> None:
    with pytest.raises(InvalidRecord):
        records.sessions(newest=newest)
