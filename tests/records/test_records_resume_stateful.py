"""Resume points never repeat or skip a train, whatever sequence of records and crashes happens.

A hypothesis state machine drives the real store (a file database, closed and reopened for a
"crash") against a small reference model of what must be allowed. Every operation must succeed
exactly when the model says so and be refused (``RecordRefused``) otherwise; after every step
the resume point, status and pulse totals must agree with the model, and the record must show
each schedule position completed at most once, with the done positions always a prefix.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from records_helpers import session_plan, train_plan

from tmsctl.core.clock import VirtualClock
from tmsctl.records import (
    ActionKind,
    DeliveryResult,
    DeliveryState,
    Fault,
    RecordRefused,
    Records,
    Resolution,
    SessionStatus,
)
from tmsctl.records.pg_throwaway import ThrowawayServer

# This machine checks logic, not the disk (the kill tests do): a RAM file system spares it
# thousands of fsyncs where one exists.
FAST_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@dataclass
class PartialModel:
    index: int
    planned: int
    delivered: int
    in_progress: bool


class ResumeModel:
    """What the record must say, kept by the simplest possible bookkeeping."""

    def __init__(self, planned: int) -> None:
        self.planned = planned
        self.status = SessionStatus.RUNNING
        self.owned = True
        self.completed: set[int] = set()
        self.skipped: set[int] = set()
        self.partial: PartialModel | None = None
        self.pulses = 0
        self.process_faults = 0
        self.segments = 1

    @property
    def next_index(self) -> int:
        index = 0
        while index in self.completed or index in self.skipped:
            index += 1
        return index

    def outcome_allowed(self) -> bool:
        return (
            self.partial is not None
            and self.partial.in_progress
            and self.status in (SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.FAULTED)
            and self.owned
        )


class ResumeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="tmsctl-resume-", dir=FAST_DIR))
        self.path: Path | str = self.new_database()
        self.clock = VirtualClock(autojump=False)
        self.store = Records(self.path, clock=self.clock)
        self.session_id = ""
        self.model = ResumeModel(0)

    def new_database(self) -> Path | str:
        return self.directory / "t.db"

    def drop_database(self) -> None:
        pass

    @initialize(planned=st.integers(1, 6))
    def start(self, planned: int) -> None:
        self.store.ensure_subject("S017")
        plan = session_plan(planned_deliveries=planned, planned_pulses=planned * 5)
        self.session_id = self.store.create_session(plan).session_id
        self.store.start_session(self.session_id, operator="tech1")
        self.model = ResumeModel(planned)

    def expect(self, allowed: bool, action) -> object:  # type: ignore[no-untyped-def]
        self.clock.advance(1.0)
        if allowed:
            return action()
        with pytest.raises(RecordRefused):
            action()
        return None

    # -- deliveries ------------------------------------------------------------------------------

    @rule(offset=st.sampled_from([0, 0, 0, -1, 1, 2]), pulses=st.integers(1, 5))
    def begin(self, offset: int, pulses: int) -> None:
        model = self.model
        index = max(0, model.next_index + offset)
        allowed = (
            model.status is SessionStatus.RUNNING
            and model.partial is None
            and index == model.next_index
            and index < model.planned
        )
        self.expect(allowed, lambda: self.store.begin_delivery(train_plan(self.session_id, index,
                                                                          pulses_planned=pulses)))
        if allowed:
            model.partial = PartialModel(index, pulses, 0, True)

    @rule(step=st.integers(-1, 3))
    def progress(self, step: int) -> None:
        model = self.model
        index = model.partial.index if model.partial else model.next_index
        current = model.partial.delivered if model.partial else 0
        count = max(0, current + step)
        allowed = (
            model.outcome_allowed()
            and model.partial is not None
            and current <= count <= model.partial.planned
        )
        self.expect(
            allowed, lambda: self.store.record_progress(self.session_id, index, pulses_delivered=count)
        )
        if allowed and model.partial is not None:
            model.pulses += count - model.partial.delivered
            model.partial.delivered = count

    @rule(completed=st.booleans(), shortfall=st.integers(0, 2))
    def finish(self, completed: bool, shortfall: int) -> None:
        model = self.model
        partial = model.partial
        index = partial.index if partial else model.next_index
        count = max(0, (partial.planned if partial else 1) - shortfall)
        allowed = (
            model.outcome_allowed()
            and partial is not None
            and partial.delivered <= count <= partial.planned
            and (not completed or count == partial.planned)
        )
        self.expect(allowed, lambda: self.store.finish_delivery(DeliveryResult(self.session_id, index, count,
                                                                               completed)))
        if allowed and partial is not None:
            model.pulses += count - partial.delivered
            if completed:
                model.completed.add(index)
                model.partial = None
            else:
                partial.delivered, partial.in_progress = count, False

    @rule(skip=st.booleans(), wrong_index=st.booleans())
    def resolve(self, skip: bool, wrong_index: bool) -> None:
        model = self.model
        index = (model.partial.index if model.partial else model.next_index) + (1 if wrong_index else 0)
        allowed = (
            model.partial is not None
            and not wrong_index
            and model.status not in (SessionStatus.COMPLETED, SessionStatus.INCOMPLETE, SessionStatus.ABORTED)
            and (model.owned or model.status not in (SessionStatus.RUNNING, SessionStatus.PAUSED))
        )
        method = self.store.skip_partial if skip else self.store.retry_partial
        self.expect(allowed, lambda: method(self.session_id, index, operator="tech1", reason="decided"))
        if allowed:
            if skip:
                model.skipped.add(index)
            model.partial = None

    # -- session lifecycle -----------------------------------------------------------------------

    @rule()
    def crash(self) -> None:
        """The process dies: everything not committed is gone; the next open finds the session."""
        self.store.close()
        self.store = Records(self.path, clock=self.clock)
        model = self.model
        if model.status in (SessionStatus.RUNNING, SessionStatus.PAUSED):
            model.status = SessionStatus.INTERRUPTED
            model.process_faults += 1
        model.owned = False

    @rule()
    def pause(self) -> None:
        model = self.model
        allowed = model.status is SessionStatus.RUNNING
        self.expect(allowed, lambda: self.store.pause_session(self.session_id, operator="tech1"))
        if allowed:
            model.status = SessionStatus.PAUSED

    @rule()
    def resume(self) -> None:
        model = self.model
        allowed = model.status in (SessionStatus.PAUSED, SessionStatus.FAULTED, SessionStatus.INTERRUPTED)
        self.expect(allowed, lambda: self.store.resume_session(self.session_id, operator="tech1"))
        if allowed:
            model.segments += 0 if model.owned else 1
            model.status, model.owned = SessionStatus.RUNNING, True

    @rule()
    def fault(self) -> None:
        model = self.model
        allowed = model.status in (SessionStatus.RUNNING, SessionStatus.PAUSED)
        fault = Fault(self.session_id, "injected", "", "armed")
        self.expect(allowed, lambda: self.store.fault_session(fault))
        if allowed:
            model.status = SessionStatus.FAULTED

    @rule()
    def complete(self) -> None:
        model = self.model
        allowed = (
            model.status is SessionStatus.RUNNING
            and model.partial is None
            and model.next_index >= model.planned
        )
        self.expect(allowed, lambda: self.store.complete_session(self.session_id))
        if allowed:
            # run to its end; 'completed' only when every position is known delivered in full
            whole = len(model.completed) == model.planned
            model.status = SessionStatus.COMPLETED if whole else SessionStatus.INCOMPLETE

    # -- what must always hold -------------------------------------------------------------------

    @invariant()
    def record_agrees_with_the_model(self) -> None:
        if not self.session_id:
            return
        model = self.model
        point = self.store.resume_point(self.session_id)
        assert point.next_index == model.next_index
        assert point.completed_deliveries == len(model.completed)
        assert point.skipped_deliveries == len(model.skipped)
        assert point.pulses_delivered == model.pulses
        if model.partial is None:
            assert point.partial is None
        else:
            assert point.partial is not None
            assert (point.partial.index, point.partial.pulses_planned, point.partial.pulses_delivered) == (
                model.partial.index,
                model.partial.planned,
                model.partial.delivered,
            )
            assert (point.partial.state is DeliveryState.IN_PROGRESS) == model.partial.in_progress
        assert point.finished == (model.partial is None and model.next_index >= model.planned)
        session = self.store.session(self.session_id)
        assert session.status is model.status
        assert session.run_segments == model.segments

    @invariant()
    def never_repeated_never_skipped_silently(self) -> None:
        if not self.session_id:
            return
        detail = self.store.session_detail(self.session_id)
        completions = [d.index for d in detail.deliveries if d.state is DeliveryState.COMPLETED]
        assert len(completions) == len(set(completions))
        done = set(completions) | {d.index for d in detail.deliveries if d.resolution is Resolution.SKIPPED}
        assert done == set(range(len(done)))  # a prefix of the schedule
        skips = [a for a in detail.actions if a.kind is ActionKind.SKIP_PARTIAL]
        assert len(skips) == len(self.model.skipped)  # every skip is an operator's recorded decision
        assert len([f for f in detail.faults if f.code == "process_ended"]) == self.model.process_faults

    def teardown(self) -> None:
        self.store.close()
        self.drop_database()
        shutil.rmtree(self.directory, ignore_errors=True)


ResumeMachine.TestCase.settings = settings(settings.default, stateful_step_count=30)
# the nightly profile runs thousands of sequences: give it the time (pytest-timeout is 120 s)
pytestmark = pytest.mark.timeout(7200 if os.environ.get("HYPOTHESIS_PROFILE") == "nightly" else 120)
test_resume_point_never_repeats_or_skips = ResumeMachine.TestCase


@pytest.mark.timeout(7200 if os.environ.get("HYPOTHESIS_PROFILE") == "nightly" else 600)
def test_resume_point_never_repeats_or_skips_on_a_server(pg_server: ThrowawayServer) -> None:
    """The same machine on the PostgreSQL backend: a fresh database per example (a new database
    and its migrations cost about 0.3 s, so fewer examples than on a file; nightly runs more)."""
    numbers = itertools.count(1)

    class OnServer(ResumeMachine):
        def new_database(self) -> str:
            self.database = f"resume_{os.getpid()}_{next(numbers)}"
            return pg_server.create_database(self.database)

        def drop_database(self) -> None:
            pg_server.drop_database(self.database)

    examples = settings.default.max_examples if os.environ.get("HYPOTHESIS_PROFILE") == "nightly" else 30
    run_state_machine_as_test(OnServer, settings=settings(settings.default, stateful_step_count=30,
                                                          max_examples=examples))
