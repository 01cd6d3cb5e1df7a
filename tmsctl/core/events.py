"""What happened, as data: events the controller emits and the listeners that receive them.

Listeners (python-can's shape: ``on_event``, ``on_error``, ``stop``) are isolated from the control
loop: an exception in one is reported to it and never reaches the loop, and a slow one can be
wrapped in ``QueuedListener`` so it cannot delay a pulse (bounded queue; overflow is counted
and flagged, never blocking).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable


@dataclass(frozen=True)
class Event:
    t_mono: float
    t_wall: datetime
    kind: str = field(init=False, default="event")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["t_wall"] = self.t_wall.isoformat()
        data["kind"] = self.kind
        return data


E = TypeVar("E", bound="Event")


def _kind(name: str) -> Callable[[type[E]], type[E]]:
    def wrap(cls: type[E]) -> type[E]:
        cls.kind = name
        return cls

    return wrap


@_kind("connected")
@dataclass(frozen=True)
class Connected(Event):
    model: str = ""
    display_name: str = ""
    version: str | None = None
    simulated: bool = False
    confirmed_replies: bool = True  # False: the device never confirms what it was told (DuoMAG)


@_kind("state_changed")
@dataclass(frozen=True)
class StateChanged(Event):
    source: str = ""
    dest: str = ""
    trigger: str = ""


@_kind("intensity_set")
@dataclass(frozen=True)
class IntensitySet(Event):
    intensity_pct_mso: int = 0


@_kind("train_configured")
@dataclass(frozen=True)
class TrainConfigured(Event):
    frequency_hz: float = 0.0
    n_pulses: int = 0


@_kind("train_started")
@dataclass(frozen=True)
class TrainStarted(Event):
    """A schedule position's first trigger was sent (``t_mono``: the instant it left the host).
    ``index`` is 0-based; ``session_id`` names the session a runner delivers it for."""

    index: int = 0
    planned_onset_s: float = 0.0
    n_pulses: int = 0
    intensity_pct_mso: int = 0
    trigger_source: str = "serial"
    session_id: str | None = None


@_kind("train_finished")
@dataclass(frozen=True)
class TrainFinished(Event):
    """A device-timed train ended: ``pulses_delivered`` known delivered, ``pulses_uncertain`` may have
    gone out (tmsctl.session.dose). ``index`` is 0-based."""

    index: int = 0
    pulses_delivered: int = 0
    pulses_uncertain: int = 0
    session_id: str | None = None


@_kind("pulse_delivered")
@dataclass(frozen=True)
class PulseDelivered(Event):
    """A host-timed trigger's pulse (or pair) known delivered; ``train_index`` (0-based) is its
    schedule position when a runner delivers it."""

    n: int = 0
    intensity_pct_mso: int = 0
    trigger_source: str = "serial"
    train_index: int | None = None
    session_id: str | None = None


@_kind("keepalive_missed")
@dataclass(frozen=True)
class KeepAliveMissed(Event):
    late_by_s: float = 0.0


@_kind("fault")
@dataclass(frozen=True)
class FaultEvent(Event):
    code: str = ""
    detail: str = ""
    state: str = ""


@_kind("operator_action")
@dataclass(frozen=True)
class OperatorAction(Event):
    action: str = ""
    reason: str = ""


@runtime_checkable
class Listener(Protocol):
    def on_event(self, event: Event) -> None: ...
    def on_error(self, exc: BaseException) -> None: ...
    def stop(self) -> None: ...


class Dispatcher:
    """Delivers each event to every listener; a failing listener is told and skipped."""

    def __init__(self, listeners: tuple[Listener, ...] | list[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self.failures = 0

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event, part: str = "all") -> None:
        """Every listener gets ``event``; ``part="handoff"``: only those that hand it to their own thread
        at once (``hands_off``), ``part="rest"``: the others. An event needed before a pulse goes to the
        hand-off listeners before the trigger and to the rest after it: no listener delays a pulse."""
        for listener in self._listeners:
            try:
                if part != "all" and getattr(listener, "forwards_parts", False):
                    listener.on_event_part(event, part)  # type: ignore[attr-defined]
                    continue
                if part != "all" and getattr(listener, "hands_off", False) != (part == "handoff"):
                    continue
                listener.on_event(event)
            except Exception as exc:  # a sink's bug must never reach the control loop
                self.failures += 1
                try:
                    listener.on_error(exc)
                except Exception:
                    pass

    def stop(self) -> None:
        for listener in self._listeners:
            try:
                listener.stop()
            except Exception:
                pass


class CollectingListener:
    """Keeps every event in a list (tests, the live panel's history)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.errors: list[BaseException] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def stop(self) -> None:
        pass

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


class QueuedListener:
    """Runs a slow listener on its own thread behind a bounded queue.

    ``on_event`` never blocks: when the queue is full the event is dropped and ``overflowed``
    counts it, so the sink can flag the gap.
    """

    stop_timeout_s = 5.0  # how long ``stop`` waits for the queued events to be handed over
    hands_off = True  # on_event only queues: it may run just before a trigger (Dispatcher.emit)

    def __init__(self, inner: Listener, maxsize: int = 10_000) -> None:
        self.inner = inner
        self.overflowed = 0
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name=f"listener-{type(inner).__name__}", daemon=True)
        self._thread.start()

    def on_event(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.overflowed += 1

    def on_error(self, exc: BaseException) -> None:
        self.inner.on_error(exc)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self.inner.on_event(event)
            except Exception as exc:
                try:
                    self.inner.on_error(exc)
                except Exception:
                    pass

    def stop(self) -> None:
        # A full queue must not block the caller: drop the oldest event (counted) to make room.
        while True:
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.overflowed += 1
                except queue.Empty:
                    pass
        self._thread.join(timeout=self.stop_timeout_s)
        if not self._thread.is_alive():  # a sink still stuck in on_event is not stopped under it
            self.inner.stop()
