"""Nothing committed is lost: SIGKILL at many points, concurrent readers, interrupted sessions."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from records_helpers import deliver, running_session, train_plan, wait_until_the_server_saw_it_end

from tmsctl.core.clock import VirtualClock
from tmsctl.records import (
    ActionKind,
    DeliveryResult,
    DeliveryState,
    Fault,
    OperatorAction,
    RecordRefused,
    Records,
    SessionOwnedElsewhere,
    SessionStatus,
)
from tmsctl.session.audit import read_audit_log

CHILD = Path(__file__).with_name("crash_child.py")
TRAINS, PULSES = 12, 4

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and flock are POSIX")


@dataclass
class ChildRun:
    """What a killed child told us it had committed."""

    session_id: str = ""
    begun: list[int] = field(default_factory=list)
    progress: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    done: list[int] = field(default_factory=list)
    completed: bool = False


def start_child(
    db: Path | str, log: Path, which: str, mode: str, trains: int = TRAINS, pulses: int = PULSES
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(log), which, str(trains), str(pulses), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_child(
    db: Path | str, log: Path, which: str, kill_after: str | None, *, free_lines: int | None = None
) -> ChildRun:
    """Run the child step by step until it reports ``kill_after``, then SIGKILL it.

    With ``free_lines`` the child is instead let loose at ``kill_after`` and killed once this many
    further lines arrived: the kill then lands wherever the child happens to be.
    """
    proc = start_child(db, log, which, "lockstep")
    assert proc.stdin is not None and proc.stdout is not None
    seen = ChildRun()
    loose_lines: int | None = None
    try:
        for raw in proc.stdout:
            line = raw.strip()
            kind, _, rest = line.partition(" ")
            if kind == "session":
                seen.session_id = rest
            elif kind == "begun":
                seen.begun.append(int(rest))
            elif kind == "progress":
                index, pulses = map(int, rest.split())
                seen.progress[index] = pulses
            elif kind == "done":
                seen.done.append(int(rest))
            elif kind == "completed":
                seen.completed = True
            if loose_lines is not None:
                loose_lines -= 1
                if loose_lines <= 0:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                continue
            if kill_after in (line, kind):
                if free_lines is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                proc.stdin.write("run\n")
                proc.stdin.flush()
                loose_lines = free_lines
                if free_lines == 0:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                continue
            proc.stdin.write("go\n")
            proc.stdin.flush()
    finally:
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            stream.close()
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        wait_until_the_server_saw_it_end(db, proc.pid)
    if kill_after is None:
        assert proc.returncode == 0, stderr
    elif free_lines is None:
        assert proc.returncode == -signal.SIGKILL, f"child ended by itself ({proc.returncode}): {stderr}"
    else:  # let loose, it may have finished first; either way it must not have failed
        assert proc.returncode in (0, -signal.SIGKILL), stderr
    return seen


def check_nothing_reported_was_lost(store: Records, seen: ChildRun) -> None:
    detail = store.session_detail(seen.session_id)
    live = {d.index: d for d in detail.deliveries if d.resolution is None}
    completed = {d.index for d in detail.deliveries if d.state is DeliveryState.COMPLETED}
    assert set(seen.done) <= completed
    assert set(seen.begun) <= {d.index for d in detail.deliveries}
    for index, pulses in seen.progress.items():
        if index in live:
            assert live[index].pulses_delivered >= pulses, (index, pulses, live[index])


KILL_POINTS = [
    "session",  # started, nothing delivered
    "begun 0",  # first train's intent committed
    "progress 0 1",
    "progress 3 2",  # mid-train
    "progress 5 4",  # every pulse recorded, completion not yet
    "done 6",  # between trains
    "begun 10",
]


# (point at which the child is let loose, lines it may report before the kill)
FREE_RUNS = [("session", 0), ("begun 1", 0), ("progress 2 2", 1), ("done 4", 2), ("progress 8 3", 0)]


def check_killed_run(db: Path | str, log: Path, seen: ChildRun) -> None:
    with Records(db, clock=VirtualClock()) as store:
        assert store.integrity_check() == ("ok",)
        session = store.session(seen.session_id)
        assert session.status is SessionStatus.INTERRUPTED
        assert session.simulated is True
        (fault,) = store.session_detail(seen.session_id).faults
        assert fault.code == "process_ended"
        assert "process ended without closing the session" in fault.detail
        check_nothing_reported_was_lost(store, seen)
        point = store.resume_point(seen.session_id)
        assert point.next_index >= len(seen.done)
        if seen.begun and (not seen.done or seen.begun[-1] > seen.done[-1]):
            # Killed inside a train: the record says so, with the pulses it knows of.
            assert point.partial is not None and point.partial.index == seen.begun[-1]
            assert point.partial.state is DeliveryState.IN_PROGRESS
            assert point.partial.pulses_delivered >= seen.progress.get(seen.begun[-1], 0)
    events = [e for e in read_audit_log(log) if e["event"] == "train_finished"] if log.exists() else []
    assert {e["index"] for e in events} >= set(seen.done)
    assert all(e["session_id"] == seen.session_id and e["simulated"] is True for e in events)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", KILL_POINTS)
def test_sigkill_at_a_chosen_point_loses_nothing_committed(
    tmp_path: Path, db_path: Path | str, kill_after: str
) -> None:
    db, log = db_path, tmp_path / "session.jsonl"
    check_killed_run(db, log, run_child(db, log, "new", kill_after))


@pytest.mark.slow
@pytest.mark.parametrize(("loose_at", "lines"), FREE_RUNS)
def test_sigkill_at_an_arbitrary_instant_loses_nothing_committed(
    tmp_path: Path, db_path: Path | str, loose_at: str, lines: int
) -> None:
    db, log = db_path, tmp_path / "session.jsonl"
    seen = run_child(db, log, "new", loose_at, free_lines=lines)
    if seen.completed:
        pytest.skip("the child finished before the kill arrived")  # rare; nothing to check
    check_killed_run(db, log, seen)


@pytest.mark.slow
def test_repeated_kills_and_resumes_deliver_every_train_exactly_once(tmp_path: Path, db_path: Path | str) -> None:
    db, log = db_path, tmp_path / "session.jsonl"
    first = run_child(db, log, "new", "progress 1 2")
    session_id = first.session_id
    for kill_after in ("progress 1 1", "done 3", "progress 5 4", "begun 8", None):
        seen = run_child(db, log, session_id, kill_after)
        with Records(db, clock=VirtualClock()) as store:
            assert store.integrity_check() == ("ok",)
            check_nothing_reported_was_lost(store, seen)
    with Records(db, clock=VirtualClock()) as store:
        detail = store.session_detail(session_id)
        # the kill after "begun 8" left an intent without an outcome: its pulses stay uncertain, so
        # the session ran to its end without every train known delivered in full
        assert detail.session.status is SessionStatus.INCOMPLETE
        assert detail.resume_point.pulses_uncertain > 0
        assert detail.session.run_segments == 6
        completions: dict[int, int] = defaultdict(int)
        pulses: dict[int, int] = defaultdict(int)
        for delivery in detail.deliveries:
            completions[delivery.index] += delivery.completed
            pulses[delivery.index] += delivery.pulses_delivered
        assert all(completions[i] <= 1 for i in range(TRAINS))  # never repeated
        assert sorted(pulses) == list(range(TRAINS))  # never skipped
        # Each partial was followed by its remainder only: the record adds up to the plan.
        assert all(pulses[i] == PULSES for i in range(TRAINS)), dict(pulses)
        assert detail.resume_point.pulses_delivered == TRAINS * PULSES
        assert len([f for f in detail.faults if f.code == "process_ended"]) == 5
    # The segments each delivery ran in are recorded (one per process).
    assert {d.segment for d in detail.deliveries} <= set(range(1, 7))


@pytest.mark.slow
def test_a_reader_in_another_process_never_blocks_or_interrupts_a_live_writer(
    tmp_path: Path, db_path: Path | str
) -> None:
    db, log = db_path, tmp_path / "session.jsonl"
    proc = start_child(db, log, "new", "free", trains=40, pulses=3)
    assert proc.stdout is not None and proc.stdin is not None
    session_id = proc.stdout.readline().split()[1]
    last_seen = 0
    observations = 0
    try:
        with Records(db, clock=VirtualClock()) as reader:  # opening must not interrupt the live session
            for raw in proc.stdout:
                kind, _, rest = raw.strip().partition(" ")
                if kind != "done":
                    continue
                point = reader.resume_point(session_id)
                assert point.next_index >= int(rest) + 1  # what the writer committed is visible
                assert point.next_index >= last_seen  # and never goes back
                last_seen = point.next_index
                observations += 1
                assert reader.session(session_id).status in (SessionStatus.RUNNING, SessionStatus.COMPLETED)
                # The writer may complete the session between our read and the pause: then the
                # refusal names the final status instead of the owner. Either way, refused.
                with pytest.raises(RecordRefused) as refused:
                    reader.pause_session(session_id, operator="intruder")
                if not isinstance(refused.value, SessionOwnedElsewhere):
                    assert reader.session(session_id).status is SessionStatus.COMPLETED
    finally:
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    assert proc.returncode == 0
    assert observations == 40
    with Records(db, clock=VirtualClock()) as store:
        assert store.session(session_id).status is SessionStatus.COMPLETED


@pytest.mark.sqlite_only
def test_a_reader_sees_committed_state_while_a_write_is_open(records: Records, db_path: Path) -> None:
    session_id = running_session(records)
    deliver(records, session_id, 0)
    writer = sqlite3.connect(db_path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE deliveries SET pulses_delivered = pulses_delivered WHERE 0")
        writer.execute(
            "INSERT INTO faults (session_id, code, detail, state, at) "
            "VALUES (?, 'uncommitted', '', 'x', 'x')",
            (session_id,),
        )
        # WAL: reads proceed during the open write and do not see it.
        assert records.resume_point(session_id).next_index == 1
        assert records.session_detail(session_id).faults == ()
        writer.execute("ROLLBACK")
    finally:
        writer.close()


@pytest.mark.sqlite_only
def test_a_writer_commits_while_another_connection_holds_a_read_snapshot(
    records: Records, db_path: Path
) -> None:
    session_id = running_session(records)
    reader = sqlite3.connect(db_path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
        deliver(records, session_id, 0)  # not blocked by the reader
        deliver(records, session_id, 1)
        assert reader.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0  # its snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 2
    finally:
        reader.close()


# -- ownership and interruption, in one process ----------------------------------------------------


def test_closing_with_a_running_session_leaves_it_interrupted_on_reopen(
    db_path: Path, clock: VirtualClock
) -> None:
    with Records(db_path, clock=clock) as store:
        session_id = running_session(store)
        deliver(store, session_id, 0)
        store.begin_delivery(train_plan(session_id, 1))
        store.record_progress(session_id, 1, pulses_delivered=3)
    clock.advance(60)
    with Records(db_path, clock=clock) as store:
        session = store.session(session_id)
        assert session.status is SessionStatus.INTERRUPTED
        assert session.ended_at is not None and session.ended_at < clock.wall()  # the last activity
        (fault,) = store.session_detail(session_id).faults
        assert (fault.code, fault.state) == ("process_ended", "running")
        assert "delivery 1 had begun (3 of 10 pulses recorded)" in fault.detail
        point = store.resume_point(session_id)
        assert point.next_index == 1 and point.partial is not None and point.partial.pulses_delivered == 3
        # Resuming is explicit, and the partial train must be decided before anything fires.
        with pytest.raises(RecordRefused):
            store.begin_delivery(train_plan(session_id, 1))
        resumed = store.resume_session(session_id, operator="tech1", reason="power restored")
        assert (resumed.status, resumed.run_segments, resumed.ended_at) == (SessionStatus.RUNNING, 2, None)
        with pytest.raises(RecordRefused, match="did not complete"):
            store.begin_delivery(train_plan(session_id, 1))
        store.retry_partial(session_id, 1, operator="tech1", reason="deliver the remaining 7")
        again = store.begin_delivery(train_plan(session_id, 1, pulses_planned=7))
        assert (again.attempt, again.segment) == (2, 2)
    with Records(db_path, clock=clock) as store:  # a paused-or-running session is found again
        assert store.session(session_id).status is SessionStatus.INTERRUPTED


def test_a_second_store_in_the_same_process_sees_the_owner_alive(db_path: Path, clock: VirtualClock) -> None:
    with Records(db_path, clock=clock) as owner:
        session_id = running_session(owner)
        owner.pause_session(session_id, operator="tech1")
        with Records(db_path, clock=clock) as other:
            assert other.mark_interrupted_sessions() == ()
            assert other.session(session_id).status is SessionStatus.PAUSED
            for attempt in (
                lambda: other.resume_session(session_id, operator="x"),
                lambda: other.abort_session(session_id, operator="x", reason="y"),
            ):
                with pytest.raises(SessionOwnedElsewhere, match="another live process"):
                    attempt()
        owner.resume_session(session_id, operator="tech1")
        owner.begin_delivery(train_plan(session_id, 0))
        with Records(db_path, clock=clock) as other, pytest.raises(SessionOwnedElsewhere):
            other.finish_delivery(DeliveryResult(session_id, 0, 10, True))
        owner.finish_delivery(DeliveryResult(session_id, 0, 10, True))
        assert owner.session(session_id).run_segments == 1


def test_a_faulted_session_stays_faulted_after_its_process_ends(db_path: Path, clock: VirtualClock) -> None:
    with Records(db_path, clock=clock) as store:
        session_id = running_session(store)
        store.fault_session(Fault(session_id, "coil_overtemp", "41 C", "armed"))
    with Records(db_path, clock=clock) as store:
        assert store.session(session_id).status is SessionStatus.FAULTED
        assert len(store.session_detail(session_id).faults) == 1
        assert store.resume_session(session_id, operator="tech1", reason="coil cooled").run_segments == 2


def test_one_store_is_safe_to_share_between_threads(records: Records) -> None:
    session_id = running_session(records)
    failures: list[BaseException] = []

    def confirm_many(operator: str) -> None:
        try:
            for number in range(25):
                records.record_action(OperatorAction(session_id, ActionKind.CONFIRM, operator, f"#{number}"))
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=confirm_many, args=(f"op{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    deliver(records, session_id, 0)  # the owning thread keeps recording meanwhile
    for thread in threads:
        thread.join()
    assert failures == []
    actions = records.session_detail(session_id).actions
    assert len([a for a in actions if a.kind is ActionKind.CONFIRM]) == 75
    assert records.resume_point(session_id).next_index == 1
