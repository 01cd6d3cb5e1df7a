"""Writes that do not wait for the disk (``wait_for_disk=False``): in order, visible, and a failed
commit is never silent."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from records_helpers import running_session, train_plan

from tmsctl.clock import VirtualClock
from tmsctl.records import DeliveryResult, Records, RecordsError


class _FailingCommit:
    """The real connection, except that the next COMMIT fails as a full disk would."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.fail_next_commit = True
        self.commit_threads: list[str] = []

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT":
            self.commit_threads.append(threading.current_thread().name)
            if self.fail_next_commit:
                self.fail_next_commit = False
                raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_a_write_that_does_not_wait_is_on_disk_for_the_next_reader(records: Records, db_path: Path) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    records.record_progress(session_id, 0, pulses_delivered=10, wait_for_disk=False)
    assert records.resume_point(session_id).partial.pulses_delivered == 10  # this process, after it
    with Records(db_path, clock=VirtualClock()) as other:  # another connection sees it committed
        assert other.resume_point(session_id).partial.pulses_delivered == 10
    records.finish_delivery(DeliveryResult(session_id, 0, 10, True), wait_for_disk=False)
    records.begin_delivery(train_plan(session_id, 1))  # waits for the finish, then follows it
    point = records.resume_point(session_id)
    assert (point.next_index, point.pulses_delivered, point.partial.index) == (1, 10, 1)


def test_the_commit_runs_off_the_calling_thread(records: Records) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    spy = _FailingCommit(records._conn)
    spy.fail_next_commit = False
    records._conn = spy  # type: ignore[assignment]
    records.record_progress(session_id, 0, pulses_delivered=3, wait_for_disk=False)
    records.record_progress(session_id, 0, pulses_delivered=4)
    assert spy.commit_threads == ["tmsctl-records-commit", threading.current_thread().name]


def test_a_failed_commit_that_was_not_waited_for_is_raised_by_the_next_use(records: Records) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    records._conn = _FailingCommit(records._conn)  # type: ignore[assignment]
    records.record_progress(session_id, 0, pulses_delivered=10, wait_for_disk=False)  # returns at once
    with pytest.raises(RecordsError, match="disk is full") as raised:
        records.resume_point(session_id)
    assert "never reached the disk" in raised.value.hint
    # Reported once; the store goes on, and the lost write is not there.
    assert records.resume_point(session_id).partial.pulses_delivered == 0


def test_check_saved_raises_a_failed_commit_without_waiting_for_one_in_flight(records: Records) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    records.check_saved()  # nothing in flight: nothing to say
    records._conn = _FailingCommit(records._conn)  # type: ignore[assignment]
    records.record_progress(session_id, 0, pulses_delivered=10, wait_for_disk=False)
    records._lock.in_flight._thread.join()  # type: ignore[union-attr]  # let the commit fail
    with pytest.raises(RecordsError, match="disk is full"):
        records.check_saved()
    records.check_saved()  # reported once


def test_close_waits_for_a_commit_in_flight_and_reports_its_failure(db_path: Path) -> None:
    store = Records(db_path, clock=VirtualClock())
    session_id = running_session(store)
    store.begin_delivery(train_plan(session_id, 0))
    store.record_progress(session_id, 0, pulses_delivered=5, wait_for_disk=False)
    store.close()
    with Records(db_path, clock=VirtualClock()) as reopened:
        assert reopened.resume_point(session_id).partial.pulses_delivered == 5

    store = Records(db_path, clock=VirtualClock())
    session_id = running_session(store)
    store.begin_delivery(train_plan(session_id, 0))
    store._conn = _FailingCommit(store._conn)  # type: ignore[assignment]
    store.record_progress(session_id, 0, pulses_delivered=7, wait_for_disk=False)
    with pytest.raises(RecordsError, match="disk is full"):
        store.close()
    assert store._conn is None  # closed all the same
