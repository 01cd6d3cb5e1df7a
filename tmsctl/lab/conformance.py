"""The conformance suite: one set of checks for every driver + simulator pair.

Any driver that has a simulator profile — ours or an out-of-tree one registered through the
``tmsctl.drivers`` / ``tmsctl.simulators`` entry points — can run the same checks (python-can's
back-to-back idea, zarr's shipped state machine). Everything runs through the real controller,
the real driver and the real bytes, on a ``VirtualClock``::

    from tmsctl.lab.conformance import ConformanceTarget, EXCHANGE_CHECKS, run_stateful

    TARGET = ConformanceTarget("my-profile")

    @pytest.mark.parametrize("check", sorted(EXCHANGE_CHECKS))
    def test_exchanges(check):
        EXCHANGE_CHECKS[check](TARGET)

    def test_safety_machine():
        run_stateful(TARGET)

Two parts:

* **Exchange checks** (``EXCHANGE_CHECKS``): connect; set intensity, arm, ready, fire, disarm;
  a device-timed train where the device has one; keep-alive through a long idle; a missed
  keep-alive ends in a reported fault and a de-energised device; every ``FaultKind`` gives a typed
  error and leaves the device de-energised (after the stall is over and the controller closed).
* **A stateful safety machine** (``stateful_machine``, ``run_stateful``): Hypothesis drives the
  controller with set_intensity, arm, fire, configure_train, single-pulse mode, advance_time,
  drop_keepalive (time passes, nobody services the device), inject_fault, estop, disarm and
  recovery, against a small reference model of what must be allowed. After every step it checks:
  the device never delivers a pulse while the model says disarmed; no two triggers come closer
  than the device's minimum interval (read from the device's pulses, not the controller's books);
  the device's own interlock log stays empty (the controller never provokes it); the device is
  never energised while the controller believes it is not, and vice versa; and, without injected
  faults, the device delivered exactly the pulses the model expects.

Requires ``hypothesis`` (a test dependency; nothing in tmsctl's runtime imports this module).
A simulator joins by exposing ``is_energised``, ``pulses``, ``fault_log`` and ``interlocks``
(``SimulatedDevice`` provides all but the last, which lists refusals made to protect itself).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import FaultLatched, GuardRejected, InvalidArgument, SafetyViolation, TmsError
from tmsctl.core.events import CollectingListener
from tmsctl.core.registry import open_driver
from tmsctl.drivers.base import Capability
from tmsctl.session.controller import Controller
from tmsctl.session.fsm import ENERGISED, State
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import Fault, FaultKind

STALL_S = 2.0  # injected stalls end, so a closed controller can be checked to leave the device safe
LONG_IDLE_S = 10 * 60.0
ARMED_IDLE_S = 30.0  # within every device's own armed-idle limit (Magstim: 60 s)
TRAIN_FREQUENCIES_HZ = (1.0, 2.0, 5.0, 10.0)  # on every device grid; n / f stays on a 0.1 s grid
_TIME_TOLERANCE_S = 1e-4
_names = itertools.count()


@dataclass(frozen=True)
class ConformanceTarget:
    """A simulator profile, and the driver to speak to it (default: the profile's own).

    ``undetectable_faults`` names fault kinds the device has no way to report, each with the
    reason; for those the check asserts the controller stays consistent instead of faulting.
    """

    profile: str
    driver: str | None = None
    undetectable_faults: Mapping[FaultKind, str] = field(default_factory=lambda: MappingProxyType({}))
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or (f"{self.driver}@{self.profile}" if self.driver else self.profile)

    def url(self, instance_name: str) -> str:
        return f"{self.driver}+sim://{instance_name}" if self.driver else f"sim://{instance_name}"


BUILTIN_TARGETS: tuple[ConformanceTarget, ...] = (
    ConformanceTarget("m200", label="magstim-200"),
    ConformanceTarget("bistim", label="magstim-bistim"),
    ConformanceTarget("rapid2", label="magstim-rapid2"),
    ConformanceTarget("magpro", label="magventure-magpro"),
    ConformanceTarget(
        "duomag",
        label="deymed-duomag",
        undetectable_faults=MappingProxyType(
            {
                FaultKind.NO_REPLY: (
                    "the DuoMAG answers nothing: a status record that never comes is followed by the next "
                    "one, "
                    "and no record carries a sequence number"
                ),
            }
        ),
    ),
)


# --- a rig: simulator + driver + controller on one virtual clock ------------------------------------


@dataclass
class Rig:
    target: ConformanceTarget
    clock: VirtualClock
    sim: sims.SimulatorInstance
    controller: Controller
    events: CollectingListener

    @property
    def device(self) -> Any:
        return self.sim.device

    @property
    def energised(self) -> bool:
        with self.sim.lock:
            self.device.advance(self.clock.now())
            return bool(self.device.is_energised)

    @property
    def interlocks(self) -> list[tuple[float, str]]:
        return list(getattr(self.device, "interlocks", []))

    def inject(self, kind: FaultKind) -> None:
        """The fault happens now (a stall lasts ``STALL_S``)."""
        with self.sim.lock:
            self.device.advance(self.clock.now())
            fault = Fault(kind, at_s=0.0, duration_s=STALL_S if kind is FaultKind.STALL else None)
            self.device._trigger_fault(fault, self.clock.now())

    def close(self) -> None:
        try:
            self.controller.close()
        finally:
            sims.remove(self.sim.name)


def open_rig(target: ConformanceTarget, *, connect: bool = True) -> Rig:
    clock = VirtualClock()
    name = f"conformance-{target.profile}-{next(_names)}"
    instance = sims.create(target.profile, clock=clock, name=name)
    events = CollectingListener()
    try:
        controller = Controller(open_driver(target.url(name), clock), clock, listeners=[events])
        if connect:
            controller.connect()
    except BaseException:
        sims.remove(name)
        raise
    return Rig(target, clock, instance, controller, events)


@contextmanager
def conformance_rig(target: ConformanceTarget, *, connect: bool = True) -> Iterator[Rig]:
    rig = open_rig(target, connect=connect)
    try:
        yield rig
    finally:
        rig.close()


def _train_for(rig: Rig, intensity_pct: int) -> tuple[float, int] | None:
    """A short device-timed train the model's limits allow, or None."""
    limits = rig.controller.driver.limits
    if Capability.INTERNAL_TRAIN not in rig.controller.capabilities:
        return None
    for frequency in sorted(TRAIN_FREQUENCIES_HZ, reverse=True):
        pulses = 10
        if frequency <= limits.max_frequency_hz(intensity_pct) and pulses / frequency <= min(
            limits.max_train_duration_s, limits.max_train_on_time_s(intensity_pct, frequency)
        ):
            return frequency, pulses
    return None


def _settle_fire_ready(rig: Rig, intensity_pct: int) -> None:
    """Service the device until the controller's guards allow the next trigger (rate, recharge)."""
    c = rig.controller
    deadline = rig.clock.now() + 30.0
    while reasons := c.fire_guards(rig.clock.now(), 1, intensity_pct):
        assert rig.clock.now() < deadline, f"{rig.target.name}: fire never allowed again: {reasons}"
        c.wait_until(rig.clock.now() + 0.1)


# --- exchange checks -----------------------------------------------------------------------------------


def check_connect(target: ConformanceTarget) -> None:
    """Connect learns the model and capabilities, leaves the device idle and de-energised; the driver
    declares its trigger lead."""
    with conformance_rig(target) as rig:
        c = rig.controller
        info = c.info
        assert info is not None and c.state is State.IDLE
        assert info.model == c.driver.limits.model, "DeviceInfo.model must name the limits the driver uses"
        assert info.simulated
        assert Capability.SINGLE_PULSE in info.capabilities
        confirmed = Capability.CONFIRMED_REPLIES in info.capabilities
        assert c.confirmed_replies == confirmed, "the controller takes confirmation from the declared capability"
        # Declared by every driver: a host-timed train sends each trigger this much early.
        lead = c.driver.trigger_lead_s
        assert isinstance(lead, float) and 0.0 < lead < 0.1, (
            f"trigger_lead_s must be the trigger frame's wire time in seconds, got {lead!r}"
        )
        assert not rig.energised
        assert rig.interlocks == [] and rig.device.fault_log == []


def check_refusals_before_setup(target: ConformanceTarget) -> None:
    """Fire before arming and arm before an intensity: refused by the guards, with every reason."""
    with conformance_rig(target) as rig:
        c = rig.controller
        try:
            c.fire()
        except GuardRejected as exc:
            assert any("not armed" in r for r in exc.reasons) and any("None" in r for r in exc.reasons)
        else:
            raise AssertionError(f"{target.name}: fire was allowed before anything was set")
        try:
            c.arm()
        except GuardRejected as exc:
            assert exc.reasons == ["no intensity set"]
        else:
            raise AssertionError(f"{target.name}: arm was allowed without an intensity")
        assert c.state is State.IDLE and not rig.energised
        assert rig.device.pulse_count == 0 and rig.interlocks == []


def check_single_pulse_cycle(target: ConformanceTarget) -> None:
    """Set intensity, arm, ready, fire twice (rate-limited), disarm: exactly two pulses, nothing refused."""
    with conformance_rig(target) as rig:
        c = rig.controller
        c.set_intensity(50)
        assert not rig.energised or c.state in ENERGISED
        status = c.arm()
        assert c.state is State.ARMED and status.ready and rig.energised
        first = c.fire()
        assert first.confirmed == c.confirmed_replies
        assert rig.device.pulse_count == 1 and rig.device.pulses[0].intensity_pct == 50
        _settle_fire_ready(rig, 50)
        c.fire()
        assert rig.device.pulse_count == 2
        gap = rig.device.pulses[1].t - rig.device.pulses[0].t
        assert gap >= c.driver.limits.min_single_pulse_interval_s(50) - _TIME_TOLERANCE_S
        c.disarm()
        assert c.state is State.IDLE and not rig.energised
        assert c.pulses_delivered == 2
        assert rig.interlocks == []


def check_device_timed_train(target: ConformanceTarget) -> None:
    """Where the device times trains: one trigger, exactly the configured pulses at the configured rate."""
    with conformance_rig(target) as rig:
        c = rig.controller
        c.set_intensity(40)
        train = _train_for(rig, 40)
        if train is None:
            assert Capability.INTERNAL_TRAIN not in c.capabilities
            try:
                c.configure_train(10.0, 10)
            except InvalidArgument:
                return
            raise AssertionError(f"{target.name} has no internal trains but configure_train was accepted")
        frequency, pulses = train
        c.configure_train(frequency, pulses)
        c.arm()
        delivery = c.fire()
        assert delivery.is_train and delivery.pulses == pulses
        while c.delivery is not None:
            c.wait_until(rig.clock.now() + 0.25)
        assert c.state is State.ARMED and rig.device.pulse_count == pulses
        times = [p.t for p in rig.device.pulses]
        assert all(abs((b - a) - 1 / frequency) < 1e-6 for a, b in itertools.pairwise(times))
        c.disarm()
        assert not rig.energised and rig.interlocks == []


def check_long_idle_keepalive(target: ConformanceTarget) -> None:
    """Ten idle minutes and half a minute armed, serviced by keep-alives: no fault on either side."""
    with conformance_rig(target) as rig:
        c = rig.controller
        c.wait_until(rig.clock.now() + LONG_IDLE_S)
        assert c.state is State.IDLE and c.last_fault is None
        c.set_intensity(30)
        c.arm()
        c.wait_until(rig.clock.now() + ARMED_IDLE_S)
        assert c.state is State.ARMED and rig.energised
        c.disarm()
        assert rig.device.fault_log == [] and rig.interlocks == []
        assert not [e for e in rig.events.events if e.kind in ("fault", "keepalive_missed")]


def check_missed_keepalive(target: ConformanceTarget) -> None:
    """Armed and silent past the watchdog: the controller reports it, and the device ends de-energised."""
    with conformance_rig(target) as rig:
        c = rig.controller
        c.set_intensity(40)
        c.arm()
        rig.clock.advance(2.0)  # nobody services the device
        try:
            c.service()
        except TmsError as exc:
            error: TmsError | None = exc
        else:
            error = None
        assert error is not None, f"{target.name}: a missed keep-alive went unreported"
        assert c.state is State.FAULT
        assert any(e.kind == "keepalive_missed" for e in rig.events.events)
        assert not rig.energised
        assert rig.interlocks == []


def check_fault(target: ConformanceTarget, kind: FaultKind) -> None:
    """A fault while armed: a typed error, FAULT latched, the device de-energised (after a stall ends)."""
    with conformance_rig(target) as rig:
        c = rig.controller
        c.set_intensity(50)
        c.arm()
        rig.inject(kind)
        error: TmsError | None = None
        deadline = rig.clock.now() + 10.0
        while rig.clock.now() < deadline and error is None:
            try:
                c.wait_until(rig.clock.now() + 0.5)
                if c.state is State.ARMED and not c.fire_guards(rig.clock.now(), 1, 50):
                    c.fire()
            except TmsError as exc:
                error = exc
        if kind in target.undetectable_faults and error is None:
            assert c.state is State.ARMED and rig.energised
            c.disarm()
            assert not rig.energised
            return
        assert error is not None, f"{target.name}: an injected {kind.value} was never reported"
        assert type(error) is not TmsError, f"{kind.value} must raise a specific error, not the base class"
        assert c.state is State.FAULT, f"{kind.value}: controller ended {c.state.value}, not fault"
        assert any(e.kind == "fault" for e in rig.events.events)
        if kind is not FaultKind.STALL:
            assert not rig.energised, f"{kind.value}: the device is still energised after the fault"
        rig.clock.advance(STALL_S + 1.0)
        c.close()
        assert not rig.energised, f"{kind.value}: the device is still energised after close"


EXCHANGE_CHECKS: Mapping[str, Callable[[ConformanceTarget], None]] = MappingProxyType(
    {
        "connect": check_connect,
        "refusals_before_setup": check_refusals_before_setup,
        "single_pulse_cycle": check_single_pulse_cycle,
        "device_timed_train": check_device_timed_train,
        "long_idle_keepalive": check_long_idle_keepalive,
        "missed_keepalive": check_missed_keepalive,
        **{
            f"fault_{kind.value}": functools.partial(check_fault, kind=kind) for kind in FaultKind
        },
    }
)


def run_exchange_checks(target: ConformanceTarget) -> None:
    for check in EXCHANGE_CHECKS.values():
        check(target)


# --- the stateful safety machine ---------------------------------------------------------------------


@dataclass
class _Model:
    """What should be true, kept from the rules' own reasoning (not read off the controller)."""

    intensity: int | None = None
    train: tuple[float, int] | None = None
    energised: bool = False  # the controller should be armed (or stimulating)
    latched: bool = False  # FAULT or ESTOP
    earliest_trigger: float = -math.inf
    train_end: float | None = None  # a device-timed train runs until then
    pulses_expected: int = 0
    count_exact: bool = True  # false once a train was cut short
    disarm_unconfirmed: bool = False  # a fault left the device energised (a stall ate the disarm)
    last_train_end: float = -math.inf


class ControllerMachine(RuleBasedStateMachine):
    """Controller + driver + simulator against a reference model.

    Bind ``TARGET`` (see ``stateful_machine``).
    """

    TARGET: ConformanceTarget

    def __init__(self) -> None:
        super().__init__()
        self.rig: Rig | None = None
        self._new_rig()

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _new_rig(self) -> None:
        self.rig = open_rig(self.TARGET)
        self.model = _Model()
        self.windows: list[list[float]] = []  # [start, end] when the model allows pulses
        self.pulses_checked = 0
        self.fault_injected_at: float | None = None
        self.fault_log_seen = 0
        self.fault_log_at_arm = 0

    @property
    def c(self) -> Controller:
        assert self.rig is not None
        return self.rig.controller

    @property
    def now(self) -> float:
        assert self.rig is not None
        return self.rig.clock.now()

    @property
    def limits(self) -> Any:
        return self.c.driver.limits

    def teardown(self) -> None:
        if self.rig is not None:
            self.rig.close()

    def _explained(self) -> bool:
        """A fault was injected, or the device acted on its own (its fault log grew)."""
        assert self.rig is not None
        return self.fault_injected_at is not None or len(self.rig.device.fault_log) > self.fault_log_seen

    def _close_window(self, t: float) -> None:
        if self.windows and self.windows[-1][1] == math.inf:
            self.windows[-1][1] = t

    def _now_disarmed(self) -> None:
        """The controller left the energised states: the device must follow, or a fault explains why not."""
        assert self.rig is not None
        end = self.now
        if self.rig.energised:
            assert self._explained(), "the device is still energised after the controller disarmed"
            self.model.disarm_unconfirmed = True
            if self.model.train_end is not None:
                end = max(end, self.model.train_end)
        if self.model.train_end is not None and self.model.train_end > self.now:
            self.model.count_exact = False  # the train was cut short
        self._close_window(end + _TIME_TOLERANCE_S)
        self.model.energised = False
        self.model.train_end = None

    def _call(
        self, what: str, call: Callable[[], Any], expected: tuple[type[TmsError], ...] = ()
    ) -> TmsError | None:
        """Run ``call``; ``expected`` empty means it must succeed.

        Errors the model did not foresee need a fault (injected, or the device's own) to explain them.
        """
        try:
            call()
        except TmsError as exc:
            if expected and isinstance(exc, expected):
                return exc
            if not self._explained():
                raise AssertionError(
                    f"{self.TARGET.name}: {what} raised {type(exc).__name__}: {exc} — nothing explains it "
                    f"(model {self.model}, controller {self.c.state.value})"
                ) from exc
            self._absorb(exc)
            return exc
        if expected:
            raise AssertionError(
                f"{self.TARGET.name}: {what} succeeded; the model expected {[e.__name__ for e in expected]}"
            )
        return None

    def _absorb(self, exc: TmsError) -> None:
        """After an error the model could not foresee: a latched fault is fine, as long as it ends safe."""
        if self.c.state in (State.FAULT, State.ESTOP):
            self.model.latched = True
            self._now_disarmed()
        self.fault_log_seen = len(self.rig.device.fault_log) if self.rig else 0

    def _latch(self) -> None:
        assert self.c.state in (State.FAULT, State.ESTOP), (
            f"expected a latched fault, controller is {self.c.state.value}"
        )
        self.model.latched = True
        self._now_disarmed()

    # -- rules ------------------------------------------------------------------------------------------
    @initialize(pct=st.integers(20, 80))
    def start_with_an_intensity(self, pct: int) -> None:
        """Most runs should reach the interesting states: start with an intensity set."""
        self._call("set_intensity", lambda: self.c.set_intensity(pct))
        self.model.intensity = pct

    @rule(pct=st.integers(1, 105))
    def set_intensity(self, pct: int) -> None:
        m = self.model
        if self.c.state not in (State.IDLE, State.ARMED, State.PAUSED):
            self._call("set_intensity", lambda: self.c.set_intensity(pct), (GuardRejected,))
            return
        too_strong = pct > self.limits.max_intensity_pct_mso or (
            m.train is not None and m.train[0] > self.limits.max_frequency_hz(min(pct, 100))
        )
        if too_strong:
            error = self._call("set_intensity", lambda: self.c.set_intensity(pct), (InvalidArgument,))
            if isinstance(error, InvalidArgument):
                self._latch()  # the driver refused the argument: the controller latches a fault
            return
        if self._call("set_intensity", lambda: self.c.set_intensity(pct)) is None:
            m.intensity = pct

    @rule()
    def arm(self) -> None:
        m, state = self.model, self.c.state
        if state in (State.FAULT, State.ESTOP):
            self._call("arm", self.c.arm, (FaultLatched,))
        elif state in ENERGISED:
            self._call("arm", self.c.arm, (SafetyViolation,))
        elif m.intensity is None:
            self._call("arm", self.c.arm, (GuardRejected,))
        else:
            start = self.now
            self.fault_log_at_arm = len(self.rig.device.fault_log) if self.rig else 0
            if self._call("arm", self.c.arm) is None:
                m.energised = True
                self.windows.append([start, math.inf])

    @precondition(lambda self: self.model.intensity is not None and not self.model.latched)
    @rule()
    def fire_when_allowed(self) -> None:
        """Arm if needed, service the device until the model allows the next trigger and the device is
        charged, then fire (Hypothesis enables a random subset of rules per run: this one reaches a
        pulse on its own)."""
        m = self.model
        if not m.energised:
            self.arm()
            if not m.energised:
                return
        deadline = self.now + 30.0
        target = max(self.now, m.earliest_trigger, m.train_end or -math.inf) + 0.01
        if self._call("service", lambda: self.c.wait_until(target)) is not None:
            return
        while self.c.state is State.STIMULATING or (self.c.status is not None and not self.c.status.ready):
            if (
                self.now >= deadline
                or self._call("service", lambda: self.c.wait_until(self.now + 0.1)) is not None
            ):
                return
        if m.train_end is not None and self.now > m.train_end:
            m.train_end = None
        self.fire()

    @rule()
    def fire(self) -> None:
        m = self.model
        now = self.now
        if self.c.state is not State.ARMED:
            self._call("fire", self.c.fire, (GuardRejected,))
            return
        if now < m.earliest_trigger - 1e-9:
            self._call("fire", self.c.fire, (GuardRejected,))
            return
        intensity = m.intensity
        assert intensity is not None
        try:
            delivery = self.c.fire()
        except GuardRejected as exc:
            # The model does not reproduce the energy budget or the device's own charge state; a refusal
            # may only name those.
            unforeseeable = ("energy budget", "not charged")
            assert all(any(u in r for u in unforeseeable) for r in exc.reasons) or self._explained(), (
                exc.reasons
            )
            return
        except TmsError as exc:
            assert self._explained(), f"{self.TARGET.name}: fire raised {type(exc).__name__}: {exc}"
            self._absorb(exc)
            return
        assert delivery.confirmed == self.c.confirmed_replies
        if m.train is not None:
            frequency, pulses = m.train
            m.train_end = now + (pulses - 1) / frequency
            m.earliest_trigger = max(
                m.train_end + self.limits.min_inter_train_interval_s(intensity, frequency, pulses),
                now + self.limits.min_single_pulse_interval_s(intensity),  # whatever fires next
            )
            m.last_train_end = m.train_end
            m.pulses_expected += pulses
        else:
            m.earliest_trigger = now + self.limits.min_single_pulse_interval_s(intensity)
            m.pulses_expected += 1

    def _post_train_settled(self) -> bool:
        """The device's post-train wait is over (a Rapid² refuses new train settings inside it)."""
        m = self.model
        if m.intensity is None or m.train is None:
            return True
        frequency, pulses = m.train
        wait = self.limits.min_inter_train_interval_s(m.intensity, frequency, pulses)
        return self.now >= m.last_train_end + wait

    @precondition(
        lambda self: (
            Capability.INTERNAL_TRAIN in self.c.capabilities
            and self.model.intensity is not None
            and not self.model.latched
        )
    )
    @rule(frequency=st.sampled_from(TRAIN_FREQUENCIES_HZ), pulses=st.integers(2, 20))
    def configure_train(self, frequency: float, pulses: int) -> None:
        m = self.model
        if self.c.state not in (State.IDLE, State.ARMED, State.PAUSED):
            self._call("configure_train", lambda: self.c.configure_train(frequency, pulses), (GuardRejected,))
            return
        if not self._post_train_settled():
            return  # not explored: see _post_train_settled (a controller gap the runner never hits)
        assert m.intensity is not None
        limits = self.limits
        allowed = (
            frequency <= limits.max_frequency_hz(m.intensity)
            and pulses <= limits.max_pulses_per_train
            and pulses / frequency <= limits.max_train_duration_s
            and pulses / frequency <= limits.max_train_on_time_s(m.intensity, frequency)
        )
        if not allowed:
            error = self._call(
                "configure_train", lambda: self.c.configure_train(frequency, pulses), (InvalidArgument,)
            )
            if isinstance(error, InvalidArgument):
                self._latch()
            return
        if self._call("configure_train", lambda: self.c.configure_train(frequency, pulses)) is None:
            m.train = (frequency, pulses)

    @precondition(lambda self: self.model.train is not None and not self.model.latched)
    @rule()
    def single_pulse_mode(self) -> None:
        if self.c.state not in (State.IDLE, State.ARMED, State.PAUSED) or not self._post_train_settled():
            return
        if self._call("configure_single_pulse", self.c.configure_single_pulse) is None:
            self.model.train = None

    @precondition(lambda self: not self.model.latched)
    @rule(seconds=st.floats(0.0, 10.0))
    def advance_time(self, seconds: float) -> None:
        self._call("service", lambda: self.c.wait_until(self.now + seconds))
        m = self.model
        if m.train_end is not None and not m.latched and self.now > m.train_end + 1.0:
            assert self.c.state is State.ARMED, (
                f"a train that ended at {m.train_end:.3f} s still runs at {self.now:.3f} s"
            )
            m.train_end = None

    @precondition(lambda self: not self.model.latched)
    @rule(seconds=st.floats(1.2, 5.0), now=st.integers(0, 3).map(lambda n: n == 0))
    def drop_keepalive(self, seconds: float, now: bool) -> None:
        """Time passes and nobody services the device (a hung controller thread, a suspended laptop)."""
        assert self.rig is not None
        if not now:
            return
        energised = self.c.state in ENERGISED
        self.rig.clock.advance(seconds)
        if energised:
            self._call("service after a missed keep-alive", self.c.service, (TmsError,))
            self._latch()
        else:
            self._call("service after a late keep-alive", self.c.service)

    # Faults, e-stops and missed keep-alives end a rig's useful life; ``now`` (one draw in four) keeps
    # them from ending most runs before anything was fired, while Hypothesis can still place them anywhere.
    @precondition(lambda self: self.fault_injected_at is None and not self.model.latched)
    @rule(kind=st.sampled_from(FaultKind), now=st.integers(0, 3).map(lambda n: n == 0))
    def inject_fault(self, kind: FaultKind, now: bool) -> None:
        assert self.rig is not None
        if now:
            self.fault_injected_at = self.now
            self.rig.inject(kind)

    @precondition(lambda self: not self.model.latched)
    @rule(now=st.integers(0, 3).map(lambda n: n == 0))
    def estop(self, now: bool) -> None:
        if now:
            self.c.estop("conformance machine")
            self._latch()

    @rule()
    def disarm(self) -> None:
        state = self.c.state
        if state in (State.FAULT, State.ESTOP):
            self._call("disarm", self.c.disarm, (FaultLatched,))
        elif state is State.IDLE:
            self._call("disarm", self.c.disarm)
        elif self._call("disarm", self.c.disarm) is None:
            assert self.c.state is State.IDLE
            self._now_disarmed()

    @precondition(lambda self: self.model.latched)
    @rule()
    def recover(self) -> None:
        """Close the latched controller (after any stall is over): the device must end de-energised."""
        assert self.rig is not None
        self.rig.clock.advance(STALL_S + 1.0)
        self.rig.close()
        assert not self.rig.energised, (
            f"{self.TARGET.name}: the device is energised after the controller closed"
        )
        self._check_pulses()
        self.rig = None
        self._new_rig()

    # -- invariants -------------------------------------------------------------------------------------
    def _check_pulses(self) -> None:
        assert self.rig is not None
        pulses = self.rig.device.pulses
        for pulse in pulses[self.pulses_checked :]:
            assert any(start - _TIME_TOLERANCE_S <= pulse.t <= end for start, end in self.windows), (
                f"{self.TARGET.name}: a pulse at {pulse.t:.4f} s while the model says disarmed "
                f"(windows {self.windows})"
            )
        self.pulses_checked = len(pulses)

    @invariant()
    def pulses_only_while_armed(self) -> None:
        self._check_pulses()

    @invariant()
    def triggers_respect_the_minimum_interval(self) -> None:
        assert self.rig is not None
        groups: list[list[Any]] = []
        for pulse in self.rig.device.pulses:
            if pulse.source == "train" and groups:
                groups[-1].append(pulse)
            else:
                groups.append([pulse])
        limits = self.limits
        for before, after in itertools.pairwise(groups):
            intensity = before[0].intensity_pct
            if len(before) == 1:
                gap = after[0].t - before[0].t
                needed = limits.min_single_pulse_interval_s(intensity)
            else:
                span = before[-1].t - before[0].t
                frequency = round((len(before) - 1) / span, 1)
                gap = after[0].t - before[-1].t
                needed = limits.min_inter_train_interval_s(intensity, frequency, len(before))
            assert gap >= needed - _TIME_TOLERANCE_S, (
                f"{self.TARGET.name}: triggers {gap:.4f} s apart, the device needs {needed:.4f} s"
            )

    @invariant()
    def device_interlocks_never_provoked(self) -> None:
        assert self.rig is not None
        since = self.fault_injected_at if self.fault_injected_at is not None else math.inf
        provoked = [entry for entry in self.rig.interlocks if entry[0] < since]
        assert provoked == [], (
            f"{self.TARGET.name}: the controller provoked the device's own interlock: {provoked}"
        )

    @invariant()
    def controller_and_device_agree(self) -> None:
        assert self.rig is not None
        c, m = self.c, self.model
        device_energised = self.rig.energised
        if device_energised and c.state not in ENERGISED:
            assert m.disarm_unconfirmed, (
                f"{self.TARGET.name}: the device is energised while the controller is {c.state.value}"
            )
        unexplained = (
            self.fault_injected_at is None and len(self.rig.device.fault_log) == self.fault_log_at_arm
        )
        if c.state in (State.ARMED, State.STIMULATING) and unexplained and m.intensity:
            assert device_energised, (
                f"{self.TARGET.name}: the controller is {c.state.value}, the device is not energised"
            )
        if m.latched:
            assert c.state in (State.FAULT, State.ESTOP)
        elif m.energised:
            assert c.state in (State.ARMED, State.STIMULATING), f"model armed, controller {c.state.value}"
        else:
            assert c.state is State.IDLE, f"model idle, controller {c.state.value}"

    @invariant()
    def device_delivered_exactly_what_was_fired(self) -> None:
        assert self.rig is not None
        m = self.model
        if self.fault_injected_at is not None or not m.count_exact or self.c.state is State.STIMULATING:
            return
        assert self.rig.device.pulse_count == m.pulses_expected, (
            f"{self.TARGET.name}: the device delivered {self.rig.device.pulse_count} pulses, "
            f"the model expects {m.pulses_expected}"
        )


def stateful_machine(target: ConformanceTarget) -> type[ControllerMachine]:
    """The safety machine bound to one target; ``.TestCase`` is a unittest case for pytest."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in target.name)
    return type(f"ControllerMachine_{slug}", (ControllerMachine,), {"TARGET": target})


def run_stateful(target: ConformanceTarget, *, max_examples: int | None = None, step_count: int = 25) -> None:
    """Run the safety machine for ``target``; defaults scale with the loaded Hypothesis profile."""
    base = settings()
    examples = max_examples if max_examples is not None else max(20, base.max_examples // 4)
    run_state_machine_as_test(
        stateful_machine(target),
        settings=settings(base, max_examples=examples, stateful_step_count=step_count, deadline=None),
    )


__all__ = [
    "BUILTIN_TARGETS",
    "EXCHANGE_CHECKS",
    "ConformanceTarget",
    "ControllerMachine",
    "Rig",
    "check_connect",
    "check_device_timed_train",
    "check_fault",
    "check_long_idle_keepalive",
    "check_missed_keepalive",
    "check_refusals_before_setup",
    "check_single_pulse_cycle",
    "conformance_rig",
    "open_rig",
    "run_exchange_checks",
    "run_stateful",
    "stateful_machine",
]
