"""Lab Streaming Layer markers: one JSON string per event, stamped when the event happened.

::

    from tmsctl.lab.lsl import open_lsl_markers

    markers = open_lsl_markers(source_id="tmsctl:rapid2-lab3")     # the stream is up now
    with tmsctl.open("magstim-rapid2:///dev/ttyUSB0", listeners=[markers]) as stim:
        ...

Stream: name ``tmsctl_markers``, type ``Markers``, one ``string`` channel, irregular rate, a
stable ``source_id`` (receivers such as LabRecorder use it to reconnect after an interruption;
name the stimulator or the set-up, e.g. ``tmsctl:<device serial>``), and ``desc()`` metadata
(package version, host, start time, anything you add). Each sample is compact JSON::

    {"event":"pulse","n":17,"intensity_pct":52,"trigger":"serial","t_wall":"..."}

The full marker schema is in ``docs/lsl-markers.md``. Each schedule position starts with a
``train_start`` pushed as its first trigger leaves (queued before the trigger, never delaying it);
under a session every train and pulse marker carries ``session`` and the 1-based ``train``.
A device-timed train ends with ``{"event":"train_end","train":3,"delivered":14,"uncertain":2,...}``:
``train`` is 1-based, ``delivered`` the pulses known delivered and ``uncertain`` those that may or
may not have gone out (tmsctl.session.dose), the same numbers the records, reports and exports carry.

Timestamps: LSL's ``local_clock()`` and tmsctl's clock are both monotonic; the offset between
them is captured once, when the stream opens, and every sample is pushed with
``event.t_mono + offset`` — the instant the event happened (for a pulse, immediately before the
trigger command was written), never the instant the sample was pushed. Device latency is not
added (the wire time of a serial trigger is ~3 ms at 9600 baud; see the docs).

The sink can never delay a pulse: ``open_lsl_markers`` runs it on its own thread behind a
bounded queue (``LslMarkerListener``, a ``QueuedListener``); when the queue is full events are
dropped, counted in ``dropped``, and the next marker that goes out carries ``"dropped": N``.
One thread owns the outlet (pylsl is not safe to share across threads).

pylsl is an optional extra (``pip install 'tmsctl[lsl]'``). Under a ``VirtualClock`` there is no
LSL time to map to: the sink refuses, unless you give it a fake outlet (tests).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tmsctl import __version__
from tmsctl.core.clock import Clock, SystemClock
from tmsctl.core.errors import InvalidArgument, TmsError
from tmsctl.core.events import Event, QueuedListener
from tmsctl.core.lsl_library import LslUnavailable, load_pylsl

STREAM_NAME = "tmsctl_markers"
STREAM_TYPE = "Markers"
DEFAULT_KINDS = frozenset(
    {"pulse_delivered", "train_started", "train_finished", "fault", "operator_action", "connected", "intensity_set"}
)
DEFAULT_QUEUE_SIZE = 4096


class MarkerOutlet(Protocol):
    def push_sample(self, x: list[str], timestamp: float = 0.0, pushthrough: bool = True) -> None: ...


OutletFactory = Callable[[str, str, str, Mapping[str, str]], MarkerOutlet]


# -- the payload (pure) ----------------------------------------------------------------------------


def marker_payload(event: Event, *, context: Mapping[str, Any] | None = None, dropped: int = 0) -> str:
    """The JSON string for one event (compact, keys in a fixed order)."""
    data = event.as_dict()
    kind = data.pop("kind")
    body: dict[str, Any]
    if kind == "pulse_delivered":
        body = {"event": "pulse", "n": data["n"], "intensity_pct": data["intensity_pct_mso"],
                "trigger": data["trigger_source"]}
        if data.get("train_index") is not None:
            body["train"] = data["train_index"] + 1
    elif kind == "train_started":
        body = {"event": "train_start", "train": data["index"] + 1, "pulses": data["n_pulses"],
                "intensity_pct": data["intensity_pct_mso"], "trigger": data["trigger_source"]}
    elif kind == "train_finished":
        # The dose model's two numbers (tmsctl.session.dose): "pulses" stays for older receivers and equals "delivered".
        body = {"event": "train_end", "train": data["index"] + 1, "delivered": data["pulses_delivered"],
                "uncertain": data.get("pulses_uncertain", 0), "pulses": data["pulses_delivered"]}
    elif kind == "intensity_set":
        body = {"event": "intensity", "intensity_pct": data["intensity_pct_mso"]}
    elif kind == "fault":
        body = {"event": "fault", "code": data["code"], "detail": data["detail"]}
    elif kind == "operator_action":
        body = {"event": data["action"], "reason": data["reason"]}
    elif kind == "connected":
        body = {"event": "connected", "model": data["model"], "simulated": data["simulated"]}
    else:
        data.pop("t_mono", None)
        body = {"event": kind, **{k: v for k, v in data.items() if k != "t_wall"}}
    if data.get("session_id") is not None:
        body["session"] = data["session_id"]
    body.update(context or {})
    body["t_wall"] = data["t_wall"]
    if dropped:
        body["dropped"] = dropped
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)


# -- the sink ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OpenStream(Event):
    """Queued first, so the outlet is created on the sink's own thread."""

    kind: str = field(init=False, default="lsl_open")


def pylsl_outlet(name: str, stream_type: str, source_id: str, metadata: Mapping[str, str]) -> MarkerOutlet:
    """A real LSL outlet: one string channel, irregular rate, ``metadata`` under ``desc()``."""
    pylsl = load_pylsl()
    info = pylsl.StreamInfo(name, stream_type, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id)
    desc = info.desc()
    for key, value in metadata.items():
        desc.append_child_value(key, str(value))
    return pylsl.StreamOutlet(info)


class LslMarkerSink:
    """Pushes selected events as markers. Not thread-safe: run it behind ``LslMarkerListener``."""

    def __init__(
        self,
        *,
        clock: Clock,
        source_id: str,
        name: str = STREAM_NAME,
        kinds: Iterable[str] = DEFAULT_KINDS,
        metadata: Mapping[str, str] | None = None,
        context: Mapping[str, Any] | None = None,
        outlet_factory: OutletFactory | None = None,
        local_clock: Callable[[], float] | None = None,
    ) -> None:
        if not source_id.strip():
            raise InvalidArgument("an LSL marker stream needs a stable source_id", hint="e.g. tmsctl:<stimulator serial>")
        if clock.is_virtual and outlet_factory is None:
            raise InvalidArgument(
                "LSL markers cannot be stamped from a virtual clock (its time is not LSL time)",
                hint="use the system clock, or pass outlet_factory= a fake outlet in tests",
            )
        self.clock = clock
        self.source_id = source_id
        self.name = name
        self.kinds = frozenset(kinds)
        self.context = dict(context or {})
        self.metadata = {
            "tmsctl_version": __version__, "host": socket.gethostname(), **(metadata or {}),
        }
        self._factory = outlet_factory or pylsl_outlet
        self._local_clock = local_clock
        self.outlet: MarkerOutlet | None = None
        self.offset_s: float | None = None
        self.pushed = 0
        self.opened = threading.Event()
        self.dropped_source: Callable[[], int] = lambda: 0
        self._dropped_reported = 0
        self.errors: list[BaseException] = []

    def open(self) -> None:
        """Create the outlet and capture the clock offset (on the thread that will push)."""
        local_clock = self._local_clock or load_pylsl().local_clock
        self.outlet = self._factory(self.name, STREAM_TYPE, self.source_id,
                                    {**self.metadata, "started_at": self.clock.wall().isoformat()})
        # Both clocks are monotonic; sample them back to back so the mapping error is the gap.
        self.offset_s = local_clock() - self.clock.now()
        self.opened.set()

    def lsl_time(self, t_mono: float) -> float:
        assert self.offset_s is not None
        return t_mono + self.offset_s

    def on_event(self, event: Event) -> None:
        if isinstance(event, _OpenStream):
            try:
                self.open()
            except BaseException as exc:  # reported to open_lsl_markers, which raises it
                self.errors.append(exc)
                self.opened.set()
            return
        if event.kind not in self.kinds:
            return
        if self.outlet is None:
            self.open()
        assert self.outlet is not None
        dropped = self.dropped_source()
        payload = marker_payload(event, context=self.context, dropped=dropped - self._dropped_reported)
        self.outlet.push_sample([payload], self.lsl_time(event.t_mono), True)
        self._dropped_reported = dropped
        self.pushed += 1

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def stop(self) -> None:
        self.outlet = None  # pylsl closes the stream when the outlet is released


class LslMarkerListener(QueuedListener):
    """An ``LslMarkerSink`` on its own thread behind a bounded queue: never blocks the controller."""

    stop_timeout_s = 2.0  # never hold up the closing controller long for a stuck sink

    def __init__(self, sink: LslMarkerSink, maxsize: int = DEFAULT_QUEUE_SIZE) -> None:
        super().__init__(sink, maxsize)
        self.sink = sink
        sink.dropped_source = lambda: self.overflowed

    @property
    def dropped(self) -> int:
        return self.overflowed

    def wait_open(self, timeout_s: float = 5.0) -> bool:
        return self.sink.opened.wait(timeout_s)



def open_lsl_markers(
    *,
    source_id: str | None = None,
    clock: Clock | None = None,
    name: str = STREAM_NAME,
    kinds: Iterable[str] = DEFAULT_KINDS,
    metadata: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
    maxsize: int = DEFAULT_QUEUE_SIZE,
    outlet_factory: OutletFactory | None = None,
    local_clock: Callable[[], float] | None = None,
    wait_open_s: float = 5.0,
) -> LslMarkerListener:
    """Open the marker stream now (receivers can find it before the first pulse) and return its listener.

    ``source_id`` defaults to ``tmsctl:<host name>``; give the stimulator's serial when you have
    more than one. ``clock`` must be the stimulator's clock (the system clock by default).
    """
    sink = LslMarkerSink(
        clock=clock or SystemClock(), source_id=source_id or f"tmsctl:{socket.gethostname()}", name=name,
        kinds=kinds, metadata=metadata, context=context, outlet_factory=outlet_factory, local_clock=local_clock,
    )
    listener = LslMarkerListener(sink, maxsize)
    listener.on_event(_OpenStream(t_mono=sink.clock.now(), t_wall=sink.clock.wall()))
    if not listener.wait_open(wait_open_s) or sink.outlet is None:
        listener.stop()
        if sink.errors and isinstance(sink.errors[-1], TmsError):
            raise sink.errors[-1]
        raise LslUnavailable(
            "the LSL outlet did not open" + (f": {sink.errors[-1]}" if sink.errors else f" within {wait_open_s:g} s")
        )
    return listener


__all__ = [
    "DEFAULT_KINDS", "STREAM_NAME", "STREAM_TYPE", "LslMarkerListener", "LslMarkerSink", "LslUnavailable",
    "marker_payload", "open_lsl_markers", "pylsl_outlet",
]
