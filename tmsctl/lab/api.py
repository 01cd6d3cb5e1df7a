"""The embedding API: ``tmsctl.open(url)`` gives a thread-safe ``Stimulator`` for experiment scripts.

::

    import tmsctl

    with tmsctl.open("sim://rapid2", listeners=[my_listener]) as stim:
        stim.set_intensity(50)
        stim.arm()
        delivery = stim.fire()           # one pulse (or the configured train)
        stim.disarm()
        result = stim.run("protocols/library/itbs-600.yaml", subject="S017", mt=48)

One controller thread owns the device: the driver, the ``Controller`` and its keep-alive. Every
public method is a command enqueued to that thread and waited on (a future with a timeout), so
any thread may call it and only one thread ever talks to the port. The thread waits for "a
command or the next keep-alive" on the injected clock, so a ``VirtualClock`` runs it too: the
thread joins the clock as a participant and simulated time jumps only when every participant
waits (hand-offs between the caller and the thread hold the clock still, so a jump never slips in
between a command and its pick-up).

Events (``tmsctl.core.events``) reach the listeners given to ``open`` or ``add_listener``, synchronously
on the controller thread: wrap anything slow in ``events.QueuedListener`` (the LSL sink does). On
top of the controller's own events the facade reports ``pulse_delivered`` for every host-triggered
pulse (timestamped when the trigger left), ``train_started``/``train_finished`` for device-timed
trains and ``coil_temperature`` readings, so markers and audit logs can show them.

``run()`` executes a whole protocol session the way ``tmsctl run`` does (``tmsctl.session.planned``: the
same checks, records and audit log). The session opens the device itself, so the facade releases
the port for its duration and reconnects afterwards.

``close()`` disarms first and is idempotent; a ``Stimulator`` garbage-collected while connected
warns (``ResourceWarning``) and has its thread disarm and release the device.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import math
import os
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from tmsctl.core.clock import Clock, ClockEvent, ParticipantSlot, SystemClock
from tmsctl.core.errors import ConnectionFailed, FaultLatched, InvalidArgument, TmsError, TransportTimeout
from tmsctl.core.events import Dispatcher, Event, Listener, PulseDelivered, TrainFinished, TrainStarted
from tmsctl.core.transport import Tap
from tmsctl.core.url import DeviceURL, parse
from tmsctl.drivers.base import DeviceInfo, DeviceStatus
from tmsctl.session.controller import Controller, Delivery
from tmsctl.session.fsm import ENERGISED, State
from tmsctl.session.host import SessionHost
from tmsctl.session.runner import RunResult, SessionRunner

COMMAND_TIMEOUT_S = 15.0  # arming takes up to ~1 s; this is a bound for a stuck thread, not a delay
CLOSE_TIMEOUT_S = 10.0
AT_EXIT_JOIN_S = 5.0


# -- extra events the facade reports -----------------------------------------------------------------


@dataclass(frozen=True)
class CoilTemperature(Event):
    """The hottest coil sensor, as last read by the controller (it reads every few seconds)."""

    kind: str = field(init=False, default="coil_temperature")
    temperature_c: float = 0.0


@dataclass(frozen=True)
class SessionResult(RunResult):
    """A ``RunResult`` that also names the recorded session."""

    session_id: str = ""


@dataclass(frozen=True)
class StimulatorStatus:
    """A snapshot taken on the controller thread."""

    state: State
    connected: bool
    device: DeviceInfo | None
    device_status: DeviceStatus | None
    intensity_pct_mso: int | None
    train: tuple[float, int] | None
    coil_temperature_c: float | None
    pulses_delivered: int  # known delivered (tmsctl.session.dose)
    last_fault: str | None
    pulses_uncertain: int = 0  # may or may not have gone out

    @property
    def armed(self) -> bool:
        return self.state in (State.ARMED, State.STIMULATING)


# -- holding a virtual clock still across a hand-off ---------------------------------------------------
# A command handed to the idle controller thread (or a result handed back to a waiting caller) is in
# flight between ``set()`` on one side and the wake-up on the other: the clock still counts the
# sleeper as waiting, and a jump decided in that gap would move simulated time for no reason. So the
# handing side takes a ``ParticipantSlot`` (one more participant, not waiting: time cannot jump) that
# the woken side gives back; it needs no time to pass. On a real clock it does nothing.


class _Call:
    """One command for the controller thread, and the caller's way to wait for its outcome."""

    def __init__(self, name: str, fn: Callable[[], Any], clock: Clock) -> None:
        self.name = name
        self.fn = fn
        self.clock = clock
        self.done: ClockEvent = clock.event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.until: Callable[[], bool] | None = None  # completes once this holds (a train's end)
        self._lock = threading.Lock()
        self._abandoned = False
        self._reply_hold: ParticipantSlot | None = None

    # controller thread
    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            self.result, self.error = result, error
            if not self._abandoned:
                self._reply_hold = ParticipantSlot(self.clock)
            self.done.set()

    # caller
    def wait(self, timeout_s: float | None) -> Any:
        deadline = None if timeout_s is None else self.clock.now() + timeout_s
        self.clock.wait(self.done, deadline)
        with self._lock:
            if not self.done.is_set():
                self._abandoned = True
                raise TransportTimeout(
                    f"the controller thread did not finish {self.name!r} within {timeout_s:g} s",
                    hint="the device may be unresponsive; close() disarms and releases it",
                )
            hold = self._reply_hold
        if hold is not None:
            hold.release()
        if self.error is not None:
            raise self.error
        return self.result


# -- events the controller does not emit itself ---------------------------------------------------------


class _DeliveryEvents:
    """Turns the controller's trigger and delivery hooks into train/pulse events and coil readings.

    ``train_started`` goes out as the device takes a schedule position's first trigger (not when the
    train has ended); ``pulse_delivered`` for each host-timed trigger once known delivered;
    ``train_finished`` when a device-timed train has ended, with its dose. Under a runner every one
    carries the 0-based schedule position and ``session_id``.
    """

    def __init__(
        self, controller: Controller, runner_ref: Callable[[], SessionRunner | None] = lambda: None,
        *, session_id: str | None = None,
    ) -> None:
        self.controller = controller
        self.pulses = 0  # known delivered
        self.uncertain = 0  # may have gone out
        self.trains = 0
        self.session_id = session_id
        self._runner_ref = runner_ref
        self._last_coil: float | None = None
        self._started: int | None = None  # the schedule position whose train_started went out last
        self._pending: TrainStarted | None = None  # sent to the hand-off listeners, not yet to the rest
        controller.on_delivered = self
        controller.on_trigger = self.triggered

    def _at(self, t: float) -> dict[str, Any]:
        clock = self.controller.clock
        now = clock.now()
        return {"t_mono": t, "t_wall": clock.wall() - timedelta(seconds=now - t)}

    def _index(self) -> int | None:
        runner = self._runner_ref()
        return runner.progress.next_index if runner is not None else None

    def triggered(self, delivery: Delivery, sent: bool) -> None:
        """A schedule position's first trigger starts the train: ``train_started`` goes to the hand-off
        listeners (the LSL sink) as the trigger leaves, and to the others once the device took it."""
        if sent:
            pending, self._pending = self._pending, None
            if pending is not None:
                self.controller.dispatcher.emit(pending, "rest")
            return
        index = self._index()
        if index is None:  # no runner: every device-timed train is a train of its own
            if not delivery.is_train:
                return
            index = self.trains
        elif index == self._started:
            return  # a host-timed train's later pulses
        self._started = index
        self.trains += 1
        runner = self._runner_ref()
        train = runner.schedule.trains[index] if runner is not None else None
        self._pending = TrainStarted(
            **self._at(delivery.started_at), index=index,
            planned_onset_s=delivery.started_at, n_pulses=train.n_pulses if train is not None else delivery.pulses,
            intensity_pct_mso=delivery.intensity_pct_mso, trigger_source=delivery.trigger_source,
            session_id=self.session_id,
        )
        self.controller.dispatcher.emit(self._pending, "handoff")

    def __call__(self, delivery: Delivery) -> None:
        emit = self.controller.dispatcher.emit
        dose = delivery.dose
        index = self._index()
        if delivery.is_train:
            if index is None:
                index = self.trains - 1
            # What the train delivered by the evidence (tmsctl.session.dose), not what it commanded.
            delivered = delivery.pulses if dose is None else dose.delivered
            self.pulses += delivered
            self.uncertain += 0 if dose is None else dose.uncertain
            emit(TrainFinished(**self._at(self.controller.clock.now()), index=index, pulses_delivered=delivered,
                               pulses_uncertain=0 if dose is None else dose.uncertain, session_id=self.session_id))
        else:
            self.pulses += 1
            emit(PulseDelivered(**self._at(delivery.started_at), n=self.pulses,
                                intensity_pct_mso=delivery.intensity_pct_mso, trigger_source=delivery.trigger_source,
                                train_index=index, session_id=self.session_id))
        self.coil_reading()

    def coil_reading(self) -> None:
        temperature = self.controller.coil_temperature_c
        if temperature is not None and temperature != self._last_coil:
            self._last_coil = temperature
            self.controller.dispatcher.emit(CoilTemperature(**self._at(self.controller.clock.now()),
                                                            temperature_c=temperature))


def attach_session_events(runner: SessionRunner) -> None:
    """Train and pulse events for a session's runner (``tmsctl run --lsl`` and ``Stimulator.run``):
    ``train_started`` as each schedule position's first trigger is taken, each carrying the session id."""
    _DeliveryEvents(runner.controller, lambda: runner, session_id=getattr(runner.log, "session_id", None))


class _Hub:
    """The controller's one listener: forwards to the facade's dispatcher, which outlives controllers."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    forwards_parts = True

    def on_event(self, event: Event) -> None:
        self.dispatcher.emit(event)

    def on_event_part(self, event: Event, part: str) -> None:
        self.dispatcher.emit(event, part)

    def on_error(self, exc: BaseException) -> None:
        pass

    def stop(self) -> None:
        """A controller closing must not stop the facade's listeners (``run()`` replaces controllers)."""


# -- the controller thread -------------------------------------------------------------------------------

_sim_names = itertools.count(1)
_live_cores: weakref.WeakSet[_Core] = weakref.WeakSet()


class _Core:
    """Everything the controller thread owns. Holds no reference to the ``Stimulator``."""

    def __init__(self, url: str, clock: Clock, listeners: Iterable[Listener], db: Any, tap: Tap | None) -> None:
        self.clock = clock
        self.dispatcher = Dispatcher(list(listeners))
        self.db = db
        self.device, self._sim_name = _own_simulator(parse(url), clock)
        # The device's driver and controller; the controller thread opens and releases them.
        self.host = SessionHost(self.device, clock, listeners=[_Hub(self.dispatcher)], tap=tap)
        self.deliveries: _DeliveryEvents | None = None
        self.runner: SessionRunner | None = None
        self.background_error: TmsError | None = None
        self.closed = False
        self._queue: collections.deque[_Call] = collections.deque()
        self._queue_lock = threading.Lock()
        self._pending: list[_Call] = []
        self._wake = clock.event()
        self.ended = clock.event()  # set by the thread itself as its last act
        self._idle_lock = threading.Lock()
        self._idle = False
        self._wake_hold: ParticipantSlot | None = None
        self._stop_requested = False
        self._thread_hold = ParticipantSlot(clock)  # the thread's participation, entered before it starts
        self.thread = threading.Thread(target=self._loop, name="tmsctl-controller", daemon=True)
        self.thread.start()
        _live_cores.add(self)

    @property
    def controller(self) -> Controller | None:
        return self.host.controller

    # -- any thread ------------------------------------------------------------------------------
    def submit(self, name: str, fn: Callable[[], Any], *, until: Callable[[], bool] | None = None) -> _Call:
        if self.closed or self._stop_requested:
            raise ConnectionFailed(f"cannot {name}: this stimulator is closed", hint="open a new one with tmsctl.open()")
        call = _Call(name, fn, self.clock)
        call.until = until
        with self._queue_lock:
            self._queue.append(call)
        self._poke()
        return call

    def _poke(self) -> None:
        """Wake the thread; if it is idle, hold a virtual clock still until it is awake."""
        with self._idle_lock:
            if self._idle and self._wake_hold is None:
                self._wake_hold = ParticipantSlot(self.clock)
            self._wake.set()

    def call(self, name: str, fn: Callable[[], Any], timeout_s: float | None = COMMAND_TIMEOUT_S) -> Any:
        return self.submit(name, fn).wait(timeout_s)

    @property
    def connected(self) -> bool:
        c = self.controller
        return c is not None and c.state not in (State.DISCONNECTED, State.ESTOP)

    def request_stop(self) -> None:
        """Ask the thread to disarm, release the device and end (returns at once)."""
        self._stop_requested = True
        runner = self.runner
        if runner is not None:
            runner.request_abort("the stimulator was closed")
        self._poke()

    # -- the thread --------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                self._wake.clear()
                self._run_queued()
                if self._stop_requested:
                    break
                nxt = self._service()
                self._complete_pending()
                self._idle_wait(nxt)
        finally:
            try:
                self._shutdown()
            finally:
                self.ended.set()
                self._thread_hold.release()

    def _idle_wait(self, until: float) -> None:
        with self._idle_lock:
            self._idle = True
        try:
            self.clock.wait(self._wake, None if math.isinf(until) else until)
        finally:
            with self._idle_lock:
                self._idle = False
                hold, self._wake_hold = self._wake_hold, None
            if hold is not None:
                hold.release()

    def _run_queued(self) -> None:
        while True:
            with self._queue_lock:
                if not self._queue:
                    return
                call = self._queue.popleft()
            try:
                result = call.fn()
            except BaseException as exc:  # handed to the caller, who re-raises it
                call.finish(error=exc)
                continue
            if call.until is not None and not call.until():
                self._pending.append(call)
                call.result = result
            else:
                call.finish(result)

    def _service(self) -> float:
        c = self.controller
        if c is None:
            return math.inf
        try:
            nxt = c.service()
        except TmsError as exc:  # latched FAULT and disarmed already; the next command learns it
            self.background_error = exc
            for call in self._pending:
                call.finish(error=exc)
            self._pending.clear()
            return math.inf
        if self.deliveries is not None:
            self.deliveries.coil_reading()
        return nxt

    def _complete_pending(self) -> None:
        still = []
        for call in self._pending:
            assert call.until is not None
            if call.until():
                call.finish(call.result)
            else:
                still.append(call)
        self._pending = still

    def _shutdown(self) -> None:
        for call in self._pending:
            call.finish(error=ConnectionFailed(f"{call.name} was cut short: the stimulator closed"))
        self._pending.clear()
        with self._queue_lock:
            left, self._queue = list(self._queue), collections.deque()
        for call in left:
            call.finish(error=ConnectionFailed(f"cannot {call.name}: the stimulator closed"))
        try:
            self.release_device()
        finally:
            self.closed = True
            self.dispatcher.stop()
            if self._sim_name is not None:
                from tmsctl.simulators import registry as sims

                sims.remove(self._sim_name)

    # -- device commands (controller thread only) -------------------------------------------------------
    def new_controller(self) -> Controller:
        self.release_device()
        controller = self.host.open()
        self.deliveries = _DeliveryEvents(controller, lambda: self.runner)
        return controller

    def connect(self) -> DeviceInfo:
        c = self.controller
        if c is None or c.state is State.ESTOP:
            c = self.new_controller()
        if c.state is State.FAULT:
            raise FaultLatched(f"a fault is latched ({c.last_fault})", hint="acknowledge(reason) first, then connect()")
        if c.state is not State.DISCONNECTED and c.info is not None:
            return c.info  # already connected
        self.background_error = None
        try:
            info = self.host.connect()
        except TmsError:
            self.release_device()
            raise
        if self.deliveries is not None:
            self.deliveries.coil_reading()
        return info

    def fire(self, trigger_source: str) -> Delivery:
        c = self.require()
        if c.state is State.ARMED and c.status is not None and not c.status.ready:
            c.wait_ready()
        return c.fire(trigger_source=trigger_source)

    def require(self) -> Controller:
        c = self.controller
        if c is None or c.state is State.DISCONNECTED:
            raise ConnectionFailed("the stimulator is not connected", hint="call connect() first")
        return c

    def release_device(self) -> None:
        """Disarm and close the port (never raises); listeners keep running."""
        self.deliveries = None
        self.host.release("released")

    def status(self) -> StimulatorStatus:
        c = self.controller
        if c is None:
            return StimulatorStatus(State.DISCONNECTED, False, None, None, None, None, None, 0, None)
        return StimulatorStatus(
            c.state, self.connected, c.info, c.status, c.intensity_pct_mso, c.train, c.coil_temperature_c,
            self.deliveries.pulses if self.deliveries else 0, c.last_fault,
            self.deliveries.uncertain if self.deliveries else 0,
        )


def _own_simulator(device: DeviceURL, clock: Clock) -> tuple[DeviceURL, str | None]:
    """For ``sim://NAME`` not registered yet, build one simulator on ``clock`` and register it.

    Without this every open of the URL would make a fresh simulated device (and ``run()``, which
    reopens the port, would stimulate a different one). Its fault plan comes from the URL.
    """
    if not device.is_simulator:
        return device, None
    from tmsctl.simulators import registry as sims
    from tmsctl.simulators.device import parse_fault_plan

    profile_name = device.simulator_profile or ""
    existing = sims.lookup(profile_name)
    if existing is not None:
        if existing.clock is not clock:
            raise InvalidArgument(
                f"simulator {profile_name!r} is registered on another clock",
                hint="pass clock=<that simulator's clock> to tmsctl.open (the pytest fixtures do)",
            )
        return device, None
    _path, _, query = device.transport.partition("?")
    from urllib.parse import parse_qsl

    options = dict(parse_qsl(query))
    faults = parse_fault_plan(options.pop("fault", ""))
    if options:
        raise InvalidArgument(f"unknown sim:// option(s) {sorted(options)}; known: fault")
    name = f"{profile_name}-api-{os.getpid()}-{next(_sim_names)}"
    sims.create(profile_name, clock=clock, faults=faults, name=name)
    head = device.text.split("://", 1)[0]
    text = f"{head}://{name}"
    return replace(device, transport=f"sim://{name}", options=dict(device.options), text=text), name


# -- the facade ------------------------------------------------------------------------------------------


class Stimulator:
    """A connected stimulator, safe to use from any thread. Build it with ``tmsctl.open``."""

    def __init__(self, core: _Core) -> None:
        self._core = core
        self._finalizer = weakref.finalize(self, _collected, core)
        self._finalizer.atexit = False  # at exit the module's handler closes live cores in order

    # -- context manager ----------------------------------------------------------------------------
    def __enter__(self) -> Stimulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------------------
    @property
    def clock(self) -> Clock:
        return self._core.clock

    @property
    def url(self) -> str:
        return self._core.device.redacted

    @property
    def info(self) -> DeviceInfo | None:
        c = self._core.controller
        return c.info if c is not None else None

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def last_error(self) -> TmsError | None:
        """A fault found between commands (missed keep-alive, hot coil, self-disarm), if any."""
        return self._core.background_error

    def status(self) -> StimulatorStatus:
        return self._core.call("status", self._core.status)

    def add_listener(self, listener: Listener) -> None:
        self._core.call("add listener", lambda: self._core.dispatcher.add(listener))

    # -- commands -----------------------------------------------------------------------------------------
    def connect(self) -> DeviceInfo:
        """Take remote control of the device (done by ``open`` unless ``connect=False``)."""
        return self._core.call("connect", self._core.connect)

    def set_intensity(self, intensity_pct_mso: int) -> None:
        if isinstance(intensity_pct_mso, bool) or not isinstance(intensity_pct_mso, int):
            raise InvalidArgument(
                f"intensity must be a whole percent of maximum output, got {intensity_pct_mso!r}",
                hint="round it yourself, e.g. set_intensity(round(1.2 * mt))",
            )
        self._core.call(f"set intensity {intensity_pct_mso} %", lambda: self._core.require().set_intensity(intensity_pct_mso))

    def configure_train(self, frequency_hz: float, pulses: int) -> None:
        """Let the device time a train: the next ``fire()`` delivers ``pulses`` at ``frequency_hz``."""
        self._core.call("configure train", lambda: self._core.require().configure_train(frequency_hz, pulses))

    def configure_single_pulse(self) -> None:
        self._core.call("configure single pulse", lambda: self._core.require().configure_single_pulse())

    def arm(self) -> DeviceStatus:
        """Charge; returns when the device reports ready."""
        return self._core.call("arm", lambda: self._core.require().arm())

    def fire(self, *, trigger_source: str = "serial", wait: bool = True) -> Delivery:
        """One trigger. A configured train is waited for to its end unless ``wait=False``.

        A unit still recharging from the previous pulse is waited for (polled until charged, as the
        session runner does), so the pulse may leave later than the call; its ``pulse_delivered``
        event carries the instant the trigger actually left.
        """
        if trigger_source not in ("serial", "rts"):
            raise InvalidArgument(f"trigger_source must be 'serial' or 'rts', got {trigger_source!r}")
        core = self._core
        until = (lambda: core.controller is None or core.controller.delivery is None) if wait else None
        call = core.submit("fire", lambda: core.fire(trigger_source), until=until)
        train_s = 0.0
        c = core.controller
        if c is not None and c.train is not None:
            train_s = c.train_timing
        return call.wait(COMMAND_TIMEOUT_S + train_s)

    def disarm(self) -> DeviceStatus | None:
        return self._core.call("disarm", lambda: self._disarm())

    def _disarm(self) -> DeviceStatus | None:
        c = self._core.controller
        if c is None or c.state not in ENERGISED:
            return c.status if c is not None else None
        return c.disarm()

    def acknowledge(self, reason: str) -> None:
        """Clear a latched fault (recorded with ``reason``); then ``connect()`` again."""
        self._core.call("acknowledge", lambda: self._core.require().acknowledge(reason))

    def abort(self, reason: str = "operator abort") -> None:
        """Stop a running session (from any thread), or disarm now when none runs."""
        runner = self._core.runner
        if runner is not None:
            runner.request_abort(reason)
            return
        self.disarm()

    def run(
        self,
        protocol: str | os.PathLike[str] | Any,
        *,
        subject: str,
        mt: float | None = None,
        operator: str | None = None,
        overrides: Mapping[str, str] | None = None,
        resume: str | None = None,
        trigger_source: str = "serial",
        log_dir: str | os.PathLike[str] | None = None,
        allow_unapproved: str | None = None,
    ) -> SessionResult:
        """Run a protocol session exactly as ``tmsctl run`` does; returns how it ended.

        ``protocol``: a protocol file or a ``tmsctl.protocols.models.Protocol``. The session is
        checked against the device and the subject's records first (``SessionRefused`` lists the
        findings), recorded in the records database (``open(..., db=...)``, default the CLI's)
        and logged to ``log_dir`` (default: ``logs/`` beside the database). A protocol nobody
        approved (``tmsctl protocol approve``) runs only with ``allow_unapproved="reason"``
        (recorded). Ctrl-C aborts the session (disarmed, recorded) and re-raises.
        """
        core = self._core
        call = core.submit("run", lambda: _run_session(core, protocol, subject=subject, mt=mt, operator=operator,
                                                       overrides=overrides or {}, resume=resume,
                                                       trigger_source=trigger_source, log_dir=log_dir,
                                                       allow_unapproved=allow_unapproved))
        try:
            return call.wait(None)
        except KeyboardInterrupt:
            runner = core.runner
            if runner is not None:
                runner.request_abort("operator interrupt (Ctrl-C)")
            try:
                call.wait(None)
            except TmsError:
                pass
            raise

    def close(self) -> None:
        """Disarm, release the device, stop the listeners. Idempotent; never raises for a dead device."""
        core = self._core
        self._finalizer.detach()
        if core.closed:
            return
        if threading.current_thread() is core.thread:
            raise InvalidArgument("close() called from a listener on the controller thread; call it from your code")
        core.request_stop()
        core.clock.wait(core.ended, None if core.clock.is_virtual else core.clock.now() + CLOSE_TIMEOUT_S)


def _collected(core: _Core) -> None:
    if core.closed or core._stop_requested:
        return
    was_connected = core.connected
    core.request_stop()
    if was_connected:
        warnings.warn(
            "a tmsctl Stimulator was garbage-collected while connected; its controller thread disarms "
            "and releases the device. Use `with tmsctl.open(...) as stim:` or call close().",
            ResourceWarning,
            stacklevel=2,
        )


@atexit.register
def _close_at_exit() -> None:
    for core in list(_live_cores):
        if core.closed:
            continue
        core.request_stop()
        if not core.clock.is_virtual:  # a virtual clock's thread may wait for a participant that left
            core.thread.join(timeout=AT_EXIT_JOIN_S)


# -- sessions -----------------------------------------------------------------------------------------------


def _run_session(
    core: _Core,
    protocol: Any,
    *,
    subject: str,
    mt: float | None,
    operator: str | None,
    overrides: Mapping[str, str],
    resume: str | None,
    trigger_source: str,
    log_dir: str | os.PathLike[str] | None,
    allow_unapproved: str | None,
) -> SessionResult:
    """On the controller thread: release the port, run the session as the CLI does, reconnect."""
    from tmsctl.records import Records
    from tmsctl.session.planned import SessionRequest, plan_session, run_planned

    was_connected = core.connected
    path, cleanup = _protocol_path(protocol)
    records = core.db if isinstance(core.db, Records) else (Records(core.db) if core.db is not None else Records())
    try:
        extra: dict[str, Any] = {}
        if allow_unapproved is not None:
            extra["allow_unapproved_reason"] = allow_unapproved
        request = SessionRequest(
            path, core.device.text, subject, operator=operator or os.environ.get("USER", "operator"),
            mt_pct_mso=mt, overrides=dict(overrides), resume_session_id=resume,
            virtual_time=core.clock.is_virtual, trigger_source=trigger_source,
            log_dir=Path(log_dir) if log_dir is not None else Path(records.path).parent / "logs", **extra,
        )
        core.release_device()
        planned = plan_session(request, records)
        if core.clock.is_virtual and planned.clock is not core.clock:
            raise InvalidArgument("the session would run on another clock than this stimulator's")

        def attach(runner: SessionRunner) -> None:
            core.runner = runner
            attach_session_events(runner)

        try:
            session_id, result = run_planned(planned, records, listeners=[_Hub(core.dispatcher)], on_runner=attach)
        finally:
            core.runner = None
        return SessionResult(result.outcome, result.next_index, result.pulses_delivered, result.reason,
                             result.onset_errors_s, result.pulses_uncertain, result.disarm_unconfirmed,
                             session_id=session_id)
    finally:
        if cleanup is not None:
            cleanup()
        if records is not core.db:
            records.close()
        if was_connected and not core._stop_requested:
            try:
                core.connect()
            except TmsError as exc:  # the session's result matters more; the caller may reconnect
                core.background_error = exc


def _protocol_path(protocol: Any) -> tuple[Path, Callable[[], None] | None]:
    if isinstance(protocol, str | os.PathLike):
        return Path(protocol), None
    from tmsctl.protocols.models import Protocol

    if not isinstance(protocol, Protocol):
        raise InvalidArgument(f"run() takes a protocol file or a Protocol, got {type(protocol).__name__}")
    import json

    # JSON is YAML 1.2: the loader validates the dump exactly as it would a file.
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", prefix=f"{protocol.id}-", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(protocol.model_dump(mode="json", exclude_none=True), handle, indent=2)
    return Path(handle.name), lambda: os.unlink(handle.name)


# -- opening ----------------------------------------------------------------------------------------------


def open(  # the embedding API's entry point, like io.open
    url: str,
    *,
    clock: Clock | None = None,
    listeners: Iterable[Listener] = (),
    db: Any = None,
    tap: Tap | None = None,
    connect: bool = True,
) -> Stimulator:
    """Open the stimulator at ``url`` (e.g. ``sim://rapid2``, ``magstim-rapid2:///dev/ttyUSB0``).

    ``clock``: the system clock by default; a ``VirtualClock`` runs simulators in simulated time.
    ``listeners``: receive every event (``tmsctl.core.events``). ``db``: the records database for
    ``run()`` (a path or a ``tmsctl.records.Records``; default the CLI's). ``tap``: sees every
    byte on the wire (``tap(direction, data, t)``). ``connect``: take remote control now.
    """
    clock = clock or SystemClock()
    core = _Core(url, clock, listeners, db, tap)
    stimulator = Stimulator(core)
    if connect:
        try:
            stimulator.connect()
        except BaseException:
            stimulator.close()
            raise
    return stimulator


__all__ = ["CoilTemperature", "SessionResult", "Stimulator", "StimulatorStatus", "open"]
