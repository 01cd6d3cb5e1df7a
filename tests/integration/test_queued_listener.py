"""``QueuedListener``: a slow listener behind a bounded queue never blocks the controller, and its
``stop`` hands over what is queued, or gives up on a stuck listener without stopping it under it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from tmsctl.core.events import CollectingListener, KeepAliveMissed, QueuedListener


def _event(i: int) -> KeepAliveMissed:
    return KeepAliveMissed(t_mono=float(i), t_wall=datetime(2026, 1, 1, tzinfo=UTC), late_by_s=0.1)


class _Gated(CollectingListener):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.stopped = False

    def on_event(self, event) -> None:
        self.gate.wait()
        super().on_event(event)

    def stop(self) -> None:
        self.stopped = True


def test_stop_hands_over_every_queued_event_then_stops_the_listener() -> None:
    inner = _Gated()
    inner.gate.set()
    queued = QueuedListener(inner, maxsize=100)
    for i in range(50):
        queued.on_event(_event(i))
    queued.stop()
    assert [e.t_mono for e in inner.events] == [float(i) for i in range(50)]
    assert inner.stopped and queued.overflowed == 0


def test_a_stuck_listener_drops_and_counts_and_is_not_stopped_under_itself() -> None:
    inner = _Gated()  # blocked in its first on_event
    queued = QueuedListener(inner, maxsize=3)
    queued.stop_timeout_s = 0.05
    for i in range(10):
        queued.on_event(_event(i))  # never blocks
    queued.stop()  # returns after the timeout, even with the queue full
    assert queued.overflowed >= 6
    assert not inner.stopped  # its thread is still inside on_event
    inner.gate.set()
