"""The one injected clock. Nothing else in tmsctl calls ``time.sleep`` or ``time.monotonic``.

* ``SystemClock`` is real time: monotonic seconds for deadlines, UTC wall time for records.
* ``VirtualClock`` is simulated time. It advances only when told (``advance``/``advance_to``) or,
  with ``autojump=True``, jumps straight to the earliest pending deadline as soon as every
  participating thread is waiting on it (the idea of trio's ``MockClock(autojump_threshold=0)``).
  A 37-minute session therefore runs as fast as the code between the waits. Its wall time starts
  at the real UTC time when it is made (unless a test passes ``wall_start``) and advances with
  virtual time, so thresholds and sessions recorded on virtual time carry real dates and their age
  is judged against the same wall clock as in real time.

Waiting for "something happens or a deadline passes" goes through ``clock.event()`` +
``clock.wait(event, deadline)``, so a virtual clock can see who is blocked. A thread whose waits
must count (a controller thread, a helper waiting for an operator) joins with
``clock.participant()``, on any clock: on real time it does nothing.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

# Below this, SystemClock spins instead of sleeping: OS sleeps overshoot by up to a millisecond or
# two, and train onsets must land within 2 ms of their schedule.
_SPIN_WINDOW_S = 0.002


@runtime_checkable
class ClockEvent(Protocol):
    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...


@runtime_checkable
class Clock(Protocol):
    """What every time-dependent part of tmsctl is given."""

    def now(self) -> float:
        """Monotonic seconds."""

    def wall(self) -> datetime:
        """UTC wall time corresponding to ``now()``; for records only, never for deadlines."""

    def sleep(self, seconds: float) -> None: ...

    def sleep_until(self, deadline: float) -> None: ...

    def event(self) -> ClockEvent:
        """A flag another thread can set to wake ``wait``."""

    def wait(self, event: ClockEvent, deadline: float | None) -> bool:
        """Block until ``event`` is set (True) or ``deadline`` passes (False)."""

    def participant(self) -> AbstractContextManager[None]:
        """While entered, the current thread's waits take part in the clock's time keeping.

        A virtual clock jumps only when every participant waits; real time needs no one's consent,
        so a real clock's participation does nothing.
        """

    @property
    def is_virtual(self) -> bool: ...


class SystemClock:
    """Real time. Deadlines use ``time.monotonic``; fine waits use ``perf_counter`` spinning."""

    is_virtual = False

    def __init__(self) -> None:
        self._wall_at_zero = datetime.now(UTC)
        self._mono_at_zero = time.monotonic()

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return self._wall_at_zero + timedelta(seconds=time.monotonic() - self._mono_at_zero)

    def sleep(self, seconds: float) -> None:
        self.sleep_until(self.now() + seconds)

    def sleep_until(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining > _SPIN_WINDOW_S:
            time.sleep(remaining - _SPIN_WINDOW_S)
        while time.monotonic() < deadline:
            pass

    def event(self) -> ClockEvent:
        return threading.Event()

    def participant(self) -> AbstractContextManager[None]:
        return nullcontext()  # real time passes whoever waits

    def wait(self, event: ClockEvent, deadline: float | None) -> bool:
        assert isinstance(event, threading.Event)
        if deadline is None:
            return event.wait()
        remaining = deadline - time.monotonic()
        if remaining > _SPIN_WINDOW_S and event.wait(remaining - _SPIN_WINDOW_S):
            return True
        while time.monotonic() < deadline:
            if event.is_set():
                return True
        return event.is_set()


class _VirtualEvent:
    """An event whose ``set`` wakes threads waiting on the owning ``VirtualClock``."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._flag = False

    def set(self) -> None:
        with self._clock._cond:
            self._flag = True
            self._clock._cond.notify_all()

    def clear(self) -> None:
        with self._clock._cond:
            self._flag = False

    def is_set(self) -> bool:
        return self._flag


class VirtualClock:
    """Simulated time, deterministic and as fast as the code allows.

    Participants are the threads whose waiting counts: the thread that made the clock counts as
    one; a background thread that waits on the clock (the controller loop) joins with
    ``with clock.participant():``. When every participant waits, time jumps to the earliest
    deadline among them. A waiter with no deadline (``wait(event, None)``) never causes a jump by
    itself; if all participants wait without deadlines that is a deadlock and raises.
    """

    is_virtual = True

    def __init__(
        self,
        start: float = 0.0,
        *,
        autojump: bool = True,
        wall_start: datetime | None = None,
    ) -> None:
        self._now = float(start)
        self._start = float(start)
        self._autojump = autojump
        # Records need real dates even on virtual time: a fixed epoch made a threshold hunted a
        # minute ago look months stale to a real-time session, and never stale to a virtual one.
        self._wall_start = wall_start if wall_start is not None else datetime.now(UTC)
        self._mutex = threading.RLock()  # re-entrant: an event may be set from a signal handler
        self._cond = threading.Condition(self._mutex)
        self._deadlines: list[float] = []
        self._waiting = 0
        self._participants = 1

    # -- reading -------------------------------------------------------------------------------
    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    # -- driving ---------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {seconds})")
        self.advance_to(self._now + seconds)

    def advance_to(self, t: float) -> None:
        with self._cond:
            if t > self._now:
                self._now = t
                self._cond.notify_all()

    @contextmanager
    def participant(self) -> Iterator[None]:
        """Count the current thread as one whose waits take part in autojump."""
        with self._cond:
            self._participants += 1
        try:
            yield
        finally:
            with self._cond:
                self._participants -= 1
                self._cond.notify_all()

    # -- waiting ---------------------------------------------------------------------------------
    def sleep(self, seconds: float) -> None:
        self.sleep_until(self._now + max(0.0, seconds))

    def sleep_until(self, deadline: float) -> None:
        self._wait(None, deadline)

    def jump_if_alone(self, deadline: float) -> bool:
        """``sleep_until(deadline)`` when it cannot block: there is one participant (the caller,
        as ``sleep_until``'s own shortcut assumes) and nobody waits, so the clock just moves on.
        Otherwise nothing happens and False comes back (the caller sleeps the ordinary way).

        Because it never blocks, a simulator may take the step while holding its own lock, and
        serve a whole exchange in one pass instead of releasing and retaking it around each wait.
        """
        with self._mutex:
            if not (self._autojump and self._participants == 1 and not self._waiting):
                return False
            if deadline > self._now:
                self._now = deadline
            return True

    def event(self) -> ClockEvent:
        return _VirtualEvent(self)

    def wait(self, event: ClockEvent, deadline: float | None) -> bool:
        return self._wait(event, deadline)

    def _wait(self, event: ClockEvent | None, deadline: float | None) -> bool:
        with self._mutex:  # the C-level lock itself (re-entered by jump_if_alone): this runs every tick
            if event is not None and event.is_set():
                return True
            if deadline is not None and self._now >= deadline:
                return False
            if deadline is not None and self.jump_if_alone(deadline):
                # The only participant waits: nothing else can happen first, so the clock jumped
                # right away (nobody is blocked in the condition, so there is no one to notify).
                return bool(event is not None and event.is_set())
        return self._wait_with_others(event, deadline)

    def _wait_with_others(self, event: ClockEvent | None, deadline: float | None) -> bool:
        with self._cond:
            if event is not None and event.is_set():
                return True
            if deadline is not None and self._now >= deadline:
                return False
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
                            raise RuntimeError(
                                "virtual clock deadlock: every participant waits with no deadline"
                            )
                        if self._deadlines[0] > self._now:
                            self._now = self._deadlines[0]
                            self._cond.notify_all()
                            continue
                        # another waiter's deadline has come: it was notified and must get the
                        # lock to wake up, so wait (releasing it) instead of spinning here
                    self._cond.wait()
            finally:
                self._waiting -= 1
                if deadline is not None:
                    self._deadlines.remove(deadline)
                    heapq.heapify(self._deadlines)


class ParticipantSlot:
    """A clock participation taken now and given back exactly once, by whichever side comes first.

    Taken by the calling thread *before* it hands work to another thread (a helper waiting for an
    operator's entry, a command in flight to the controller thread), so a virtual clock cannot jump
    in the gap; given back by the other thread when it is done, or by the caller when things end
    abnormally (so a helper stuck on ``input()`` can never freeze virtual time). On real time it
    does nothing.
    """

    def __init__(self, clock: Clock) -> None:
        self._lock = threading.Lock()
        context = clock.participant()
        context.__enter__()
        self._context: AbstractContextManager[None] | None = context

    def release(self) -> None:
        with self._lock:
            context, self._context = self._context, None
        if context is not None:
            context.__exit__(None, None, None)


def monotonic_ns_for_benchmarks() -> int:
    """Wall-time stopwatch for benchmarks, which measure real elapsed time by design."""
    return time.perf_counter_ns()
