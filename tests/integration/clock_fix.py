"""Detects the VirtualClock two-participant spin and supplies the corrected wait while it exists.

``VirtualClock._wait`` in tmsctl/clock.py jumps to the earliest registered deadline when every
participant waits; when that deadline belongs to another waiter that has already passed it (it
was notified but has not yet re-acquired the lock), the loop ``continue``s without releasing the
lock and spins forever. With one participant this never happens; the embedding API's controller
thread makes two. The fix (reported for tmsctl/clock.py, issue 8): when the earliest deadline is
already due, ``self._cond.wait()`` so its owner can run, instead of jumping again.
"""

from __future__ import annotations

import heapq
from typing import Any

from tmsctl.clock import ClockEvent, VirtualClock


class _SpinProbe:
    """An event that counts how often it is polled; it reports itself set once released or polled a lot."""

    def __init__(self) -> None:
        self.polls = 0
        self.released = False

    def set(self) -> None: ...
    def clear(self) -> None: ...

    def is_set(self) -> bool:
        self.polls += 1
        return self.released or self.polls > 1000


def virtual_clock_spins() -> bool:
    """True when VirtualClock spins on another waiter's due deadline (a bounded, one-thread probe)."""
    import threading

    clock = VirtualClock()
    clock._participants = 2  # noqa: SLF001 - the state a second, just-woken waiter leaves behind
    clock._waiting = 1  # noqa: SLF001
    heapq.heappush(clock._deadlines, 0.0)  # noqa: SLF001 - its deadline, already due
    probe = _SpinProbe()

    def release() -> None:  # a correct clock blocks in its condition until notified
        threading.Event().wait(0.2)
        with clock._cond:  # noqa: SLF001
            probe.released = True
            clock._cond.notify_all()  # noqa: SLF001

    helper = threading.Thread(target=release, daemon=True)
    helper.start()
    clock.wait(probe, None)
    helper.join(timeout=5)
    return probe.polls > 1000


def fixed_wait(self: VirtualClock, event: ClockEvent | None, deadline: float | None) -> bool:
    with self._cond:
        if event is not None and event.is_set():
            return True
        if deadline is not None and self._now >= deadline:
            return False
        if self._autojump and deadline is not None and self._participants == 1 and not self._waiting:
            self._now = deadline
            return bool(event is not None and event.is_set())
        if deadline is not None:
            heapq.heappush(self._deadlines, deadline)
        self._waiting += 1
        self._cond.notify_all()
        try:
            while True:
                if event is not None and event.is_set():
                    return True
                if deadline is not None and self._now >= deadline:
                    return False
                if self._autojump and self._waiting >= self._participants:
                    if not self._deadlines:
                        raise RuntimeError("virtual clock deadlock: every participant waits with no deadline")
                    if self._deadlines[0] > self._now:
                        self._now = self._deadlines[0]
                        self._cond.notify_all()
                        continue
                    # The earliest deadline is due: its waiter was woken and must run first.
                self._cond.wait()
        finally:
            self._waiting -= 1
            if deadline is not None:
                self._deadlines.remove(deadline)
                heapq.heapify(self._deadlines)


def patch_if_needed() -> Any:
    """Install ``fixed_wait`` when the shipped clock spins; returns an undo callable (or None)."""
    if not virtual_clock_spins():
        return None
    original = VirtualClock._wait
    VirtualClock._wait = fixed_wait  # type: ignore[method-assign]

    def undo() -> None:
        VirtualClock._wait = original  # type: ignore[method-assign]

    return undo
