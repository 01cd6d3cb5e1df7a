"""The injected clocks: virtual time that jumps when every participant waits, and real time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from tmsctl.core.clock import SystemClock, VirtualClock


def test_a_lone_waiter_jumps_straight_to_its_deadline() -> None:
    clock = VirtualClock(start=5.0, wall_start=datetime(2026, 1, 1, tzinfo=UTC))
    clock.sleep(2400.0)
    assert clock.now() == 2405.0
    assert clock.wall().isoformat().startswith("2026-01-01T00:40")


def test_virtual_wall_time_starts_at_the_real_time_and_advances_with_virtual_time() -> None:
    before = SystemClock().wall()
    clock = VirtualClock()
    after = SystemClock().wall()
    assert before <= clock.wall() <= after
    clock.sleep(3 * 86400)
    assert before + timedelta(days=3) <= clock.wall() <= after + timedelta(days=3)


def test_advance_and_manual_mode() -> None:
    clock = VirtualClock(autojump=False)
    clock.advance(1.5)
    clock.advance_to(3.0)
    assert clock.now() == 3.0
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_an_event_wakes_a_waiter_before_its_deadline() -> None:
    clock = VirtualClock()
    event = clock.event()
    event.set()
    assert clock.wait(event, clock.now() + 10) is True
    assert clock.now() == 0.0
    event.clear()
    assert clock.wait(event, clock.now() + 10) is False
    assert clock.now() == 10.0


def test_time_jumps_only_when_every_participant_waits() -> None:
    clock = VirtualClock()
    order: list[tuple[str, float]] = []
    started = threading.Event()

    def worker() -> None:
        with clock.participant():
            started.set()
            for _ in range(3):
                clock.sleep(1.0)
                order.append(("worker", clock.now()))

    thread = threading.Thread(target=worker)
    thread.start()
    started.wait()
    for _ in range(2):
        clock.sleep(1.5)
        order.append(("main", clock.now()))
    thread.join(10)
    assert not thread.is_alive()
    assert sorted(order, key=lambda item: item[1]) == [
        ("worker", 1.0), ("main", 1.5), ("worker", 2.0), ("main", 3.0), ("worker", 3.0),
    ] or sorted(order, key=lambda item: item[1]) == [
        ("worker", 1.0), ("main", 1.5), ("worker", 2.0), ("worker", 3.0), ("main", 3.0),
    ]


def test_a_lone_thread_may_step_the_clock_without_waiting_and_never_backwards() -> None:
    clock = VirtualClock(start=10.0)
    assert clock.jump_if_alone(12.5)
    assert clock.now() == 12.5
    assert clock.jump_if_alone(11.0)  # already past: nothing to wait for, and no going back
    assert clock.now() == 12.5


def test_no_step_without_waiting_while_another_participant_runs_or_waits() -> None:
    clock = VirtualClock()
    joined, release = threading.Event(), threading.Event()
    stepped: list[bool] = []

    def worker() -> None:
        with clock.participant():
            joined.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    joined.wait(10)
    stepped.append(clock.jump_if_alone(5.0))  # the worker runs: it might act at any instant before 5
    release.set()
    thread.join(10)
    assert stepped == [False] and clock.now() == 0.0
    assert clock.jump_if_alone(5.0) and clock.now() == 5.0  # alone again
    assert not VirtualClock(autojump=False).jump_if_alone(1.0)  # a manual clock moves only when told


def test_a_waiter_whose_deadline_passed_gets_to_run(tmp_path) -> None:
    """Regression: a second participant must not spin while the first one's deadline has come."""
    clock = VirtualClock()
    reply = clock.event()

    def responder() -> None:
        with clock.participant():
            clock.sleep(0.5)
            reply.set()

    thread = threading.Thread(target=responder)
    thread.start()
    assert clock.wait(reply, clock.now() + 5.0) is True
    thread.join(5)
    assert clock.now() == 0.5


def test_everyone_waiting_forever_is_a_deadlock_not_a_hang() -> None:
    clock = VirtualClock()
    with pytest.raises(RuntimeError, match="deadlock"):
        clock.wait(clock.event(), None)


def test_system_clock_is_monotonic_and_sleeps() -> None:
    clock = SystemClock()
    t0 = clock.now()
    clock.sleep(0.01)
    assert clock.now() - t0 >= 0.01
    event = clock.event()
    assert clock.wait(event, clock.now() + 0.005) is False
