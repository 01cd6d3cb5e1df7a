"""The controller: one owner of the driver, the state machine, the keep-alive and the guards.

Every public method is a side effect that returns a confirmation or raises. Device I/O happens
first, then the trigger that records the confirmed fact. Any device error while the unit may be
charged — a timeout, a garbled reply, a lost remote control, a read-back mismatch — makes the
controller try to disarm, latch ``FAULT`` and re-raise, so the caller always learns why.

The controller has no thread of its own. ``service()`` does whatever is due (keep-alive, coil
temperature, end of a train) and returns the next instant it needs attention; ``wait_until(t)``
services the device until ``t``. The session runner, the CLI and the thread-safe facade all
drive it through these two calls, on whatever clock they were given.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from tmsctl.core.clock import Clock
from tmsctl.core.errors import (
    DeviceStateError,
    FaultLatched,
    GuardRejected,
    IntensityMismatch,
    InvalidArgument,
    SafetyViolation,
    TmsError,
)
from tmsctl.core.events import (
    Connected,
    Dispatcher,
    Event,
    FaultEvent,
    IntensitySet,
    KeepAliveMissed,
    Listener,
    OperatorAction,
    StateChanged,
    TrainConfigured,
)
from tmsctl.drivers.base import (
    Capability,
    CoilThermometer,
    DeviceInfo,
    DeviceStatus,
    DeviceTimedTrain,
    NoEnergyModel,
    PairedPulseDriver,
    PairSettings,
    PulseReporting,
    RtsTriggering,
    StimulatorDriver,
    StimulusShape,
    StimulusShaping,
    ThetaBurstTiming,
    capability,
    check_capabilities,
)
from tmsctl.session.dose import DoseCount, TriggerEvidence, reconcile
from tmsctl.session.fsm import ENERGISED, State, StateMachine
from tmsctl.session.safety import RUNTIME_LIMITS, EnergyBudget, PulseCap, RateLimiter, RuntimeLimits

T = TypeVar("T")

COIL_READ_PERIOD_S = 5.0
UNCONFIRMED_DISARM_WORDS = (
    "the device did not confirm the disarm: it may still be armed. Use its own disarm or stop control now "
    "and take the coil away from the subject"
)
TRAIN_END_GRACE_S = 2.0  # a train still running this long after its scheduled end is a fault
# The watch read before a device-timed train's last pulse starts this long after the pulse before
# it was due at the latest: it must report "running" after that pulse and before the last one.
LAST_PULSE_WATCH_DELAY_S = 0.0005
# An RTS edge of a host-timed burst later than this (the status read after the edge before took
# longer than the gap) is not fired: the burst stops, faulted, rather than go off its schedule.
RTS_EDGE_LATE_S = 0.0005
# States tested on every service() and status read. Tuples, like ENERGISED: membership is tested by
# identity first, where each State.X spelled out is a class-attribute load on the enum that the 3.11
# interpreter cannot specialise (~70 ns): three of them were half the time of an idle service().
NOT_SERVICED = (State.DISCONNECTED, State.FAULT, State.ESTOP)  # no device to keep alive
EXPECTED_ARMED = (State.ARMED, State.STIMULATING)  # a status saying "disarmed" here is a fault


@dataclass(frozen=True)
class Delivery:
    """One trigger's worth of stimulation that the controller is delivering or has delivered."""

    pulses: int
    intensity_pct_mso: int
    started_at: float
    expected_end: float
    trigger_source: str
    is_train: bool
    confirmed: bool = True  # False when the device cannot confirm a pulse (no replies, e.g. DuoMAG)
    dose: DoseCount | None = None  # what went out, from the evidence; set when the delivery has ended


class _TriggerWatch:
    """The evidence gathered about the trigger in progress (see tmsctl.session.dose)."""

    __slots__ = (
        "acknowledged_at",
        "device_timed_after_first",
        "edges_seen_fired",
        "first_running_seen_at",
        "last_watch_at",
        "last_watch_done",
        "normal_end",
        "offsets",
        "ready_before",
        "reported_before",
        "running_seen_at",
        "sent_at",
        "stopped_by",
        "unanswered",
    )

    def __init__(
        self, offsets: tuple[float, ...], sent_at: float, reported_before: int | None,
        *, device_timed_after_first: bool = False,
    ) -> None:
        self.reported_before = reported_before  # the device's pulse reports before this trigger, if it reports them
        self.device_timed_after_first = device_timed_after_first  # a pair: the device fires the second itself
        self.offsets = offsets
        self.sent_at = sent_at
        self.acknowledged_at: float | None = None
        self.unanswered = False  # a trigger edge: nothing on the line answers it (RTS)
        self.ready_before = False  # the device reported itself charged after the previous trigger
        self.edges_seen_fired: int | None = None  # RTS edges the status after each showed fired
        self.first_running_seen_at: float | None = None
        self.running_seen_at: float | None = None
        self.stopped_by: float | None = None
        self.normal_end = False
        self.last_watch_at = math.inf  # when to read the status between the last two pulses
        self.last_watch_done = len(offsets) < 2 or device_timed_after_first  # no status tells of a pair's second

    def acknowledged(self, at: float) -> None:
        self.acknowledged_at = at
        if len(self.offsets) >= 2:
            self.last_watch_at = at + self.offsets[-2] + LAST_PULSE_WATCH_DELAY_S

    def running_seen(self, sent_at: float) -> None:
        """A status read sent at ``sent_at`` reported the device-timed train running."""
        self.running_seen_at = sent_at
        if self.first_running_seen_at is None:
            self.first_running_seen_at = sent_at
            if self.acknowledged_at is None and len(self.offsets) >= 2:
                # Unanswered (RTS): the train began by this read at the latest, so its last-but-one
                # pulse was due by this much later; the watch read goes then.
                self.last_watch_at = sent_at + self.offsets[-2] + LAST_PULSE_WATCH_DELAY_S

    @property
    def last_due_earliest(self) -> float:
        return self.sent_at + self.offsets[-1]

    @property
    def last_due_latest(self) -> float:
        """The latest the last pulse can be due."""
        first = self.acknowledged_at if self.acknowledged_at is not None else self.sent_at
        if self.acknowledged_at is None and self.first_running_seen_at is not None:
            first = self.first_running_seen_at
        return first + self.offsets[-1]

    def evidence(self, reported_now: int | None) -> TriggerEvidence:
        count = None if self.reported_before is None or reported_now is None else reported_now - self.reported_before
        return TriggerEvidence(
            self.offsets, self.sent_at, self.acknowledged_at, self.running_seen_at, self.stopped_by, self.normal_end,
            device_count=count, device_count_final=self.stopped_by is not None,
            device_timed_after_first=self.device_timed_after_first,
            first_running_seen_at=self.first_running_seen_at,
            edges_seen_fired=self.edges_seen_fired,
        )



@dataclass(slots=True)
class _DoseTotals:
    delivered: int = 0
    uncertain: int = 0

class Controller:
    def __init__(
        self,
        driver: StimulatorDriver,
        clock: Clock,
        *,
        listeners: tuple[Listener, ...] | list[Listener] = (),
        limits: RuntimeLimits = RUNTIME_LIMITS,
    ) -> None:
        # At most 29 instance attributes (tests/controller/test_controller_layout.py): CPython keeps
        # no more inline, and past that every attribute access here takes the slower dict path (the
        # 10 Hz benchmark session lost 3 % to the 30th). What can be derived is a property instead.
        self.driver = driver
        self.clock = clock
        self.limits = limits
        self.dispatcher = Dispatcher(listeners)
        self.fsm = StateMachine(self._state_changed, self._audit_trigger)
        self.info: DeviceInfo | None = None
        self.status: DeviceStatus | None = None
        self.coil_temperature_c: float | None = None
        self.intensity_pct_mso: int | None = None
        self.train: tuple[float, int] | None = None  # (frequency_hz, pulses) configured on the device
        self.train_offsets: tuple[float, ...] = (0.0,)  # each pulse of the configured train, from its first
        self.pair: PairSettings | None = None  # a paired pulse configured on the device: one trigger, two pulses
        self.last_fault: str | None = None
        # Over every trigger of this controller: known delivered, and may have gone out (a trigger cut
        # short or unanswered). One attribute for both: see pulses_delivered.
        self._totals = _DoseTotals()
        self.delivery: Delivery | None = None
        self.last_delivery: Delivery | None = None  # the latest trigger's outcome, with its dose
        self._watch: _TriggerWatch | None = None
        self._single_pulse_mode_confirmed = False  # this connection has not yet seen the unit leave train mode
        self._ready_since_trigger = False  # a status read since the last trigger found the unit charged
        self.disarm_unconfirmed = False  # a disarm the device never confirmed: it may still be armed
        self.rate = RateLimiter()
        self.energy = self._energy_budget()
        self.pulse_cap: PulseCap | None = None
        self.intensity_cap_pct_mso: int | None = None
        self._last_contact = -math.inf
        self._next_keepalive = math.inf
        self._next_coil_read = math.inf
        self.on_delivered: Callable[[Delivery], None] | None = None
        # Called as a trigger is about to leave (``sent=False``, its delivery stamped) and once the device
        # took it (``sent=True``), not at the delivery's end: markers that must reach a recorder within
        # milliseconds of the pulse. The first call sits between the trigger's stamp and its write, so
        # it may only hand off (Dispatcher.emit(part="handoff")).
        self.on_trigger: Callable[[Delivery, bool], None] | None = None

    # -- events -------------------------------------------------------------------------------
    def _emit(self, cls: type[Event], **fields: object) -> None:
        self.dispatcher.emit(cls(t_mono=self.clock.now(), t_wall=self.clock.wall(), **fields))

    def _state_changed(self, source: State, dest: State, trigger: str) -> None:
        self._emit(StateChanged, source=source.value, dest=dest.value, trigger=trigger)

    def _audit_trigger(self, trigger: str, state: State, ok: bool) -> None:
        """transitions' finalize hook. Nothing to add: a taken trigger is already a StateChanged
        event, and a refused one never reaches the machine (StateMachine.fire raises first)."""

    @property
    def state(self) -> State:
        return self.fsm.state

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.info.capabilities if self.info else frozenset()

    @property
    def confirmed_replies(self) -> bool:
        """False for a device that does not answer commands (no CONFIRMED_REPLIES): every delivery
        is then recorded as unconfirmed."""
        return self.info is None or Capability.CONFIRMED_REPLIES in self.info.capabilities

    @property
    def train_timing(self) -> float:
        """Seconds from the first to the last pulse of the configured train (0 in single-pulse mode)."""
        return self.train_offsets[-1]

    def _energy_budget(self) -> EnergyBudget | None:
        model = self.driver.limits.energy_model()
        if isinstance(model, NoEnergyModel):
            return None  # its reason is in the spec; the rate limiter and coil temperature still apply
        per_pulse = model.energy_per_pulse_j
        return EnergyBudget(model.capacity_j, model.drain_w, lambda pct: per_pulse(min(pct, 100)))

    # -- fault handling ----------------------------------------------------------------------------
    def _device_call(self, what: str, call: Callable[[], T], *, contact: bool = True) -> T:
        """Run one driver call; on failure disarm, latch FAULT and re-raise. ``contact=False``: the
        call reaches the device without an answer from it (an RTS edge), so it keeps nothing alive."""
        try:
            result = call()
        except IntensityMismatch as exc:
            self._fault("intensity_mismatch", f"{what}: {exc.message}")
            raise
        except TmsError as exc:
            self._fault(type(exc).__name__, f"{what}: {exc.message}")
            raise
        except Exception as exc:  # an unexpected bug must still end disarmed and latched
            self._fault("internal_error", f"{what}: {type(exc).__name__}: {exc}")
            raise
        if contact:
            self._last_contact = self.clock.now()
        return result

    def _fault(self, code: str, detail: str) -> None:
        state_before = self.state
        self.last_fault = f"{code}: {detail}"
        confirmed = self._try_disarm()
        live = self.state not in (State.ESTOP, State.DISCONNECTED) or state_before is State.CONNECTING
        if live and self.fsm.may("fault"):
            self.fsm.fire("fault")
        self._end_trigger()
        self._emit(FaultEvent, code=code, detail=detail, state=state_before.value)
        if not confirmed and (state_before in ENERGISED or state_before is State.DISARMING):
            self._disarm_unconfirmed(state_before)

    @property
    def _after_fault(self) -> str:
        """What the operator is told about the unit after a fault: only what the device confirmed."""
        return "the device may still be armed" if self.disarm_unconfirmed else "the device was disarmed"

    def _disarm_unconfirmed(self, state_before: State) -> None:
        self.disarm_unconfirmed = True
        self.last_fault = f"disarm_unconfirmed: {UNCONFIRMED_DISARM_WORDS}"
        self._emit(FaultEvent, code="disarm_unconfirmed", detail=UNCONFIRMED_DISARM_WORDS, state=state_before.value)

    def _try_disarm(self) -> bool:
        """Disarm, twice if need be; True only when the device confirmed it (then nothing more fires)."""
        for _ in range(2):
            try:
                self.driver.disarm()
            except Exception:  # we are already handling a fault; the caller learns it was not confirmed
                continue
            self._stopped(self.clock.now())
            return True
        return False

    def _pulses_reported(self) -> int | None:
        if Capability.PULSE_REPORTS not in self.capabilities:
            return None
        return capability(self.driver, self.capabilities, Capability.PULSE_REPORTS, PulseReporting).pulses_reported

    def _stopped(self, at: float) -> None:
        watch = self._watch
        if watch is not None and watch.stopped_by is None:
            watch.stopped_by = at

    def provisional_pulses(self) -> int | None:
        """While a device-timed train runs: its pulses due by now from the clock at its known timing,
        counted from the acknowledgement (so never ahead of the unit). Provisional: only the
        train's outcome (tmsctl.session.dose) says what went out. None when no train is running."""
        watch = self._watch
        if watch is None or watch.acknowledged_at is None or self.delivery is None or not self.delivery.is_train:
            return None
        elapsed = self.clock.now() - watch.acknowledged_at
        return sum(1 for offset in watch.offsets if offset <= elapsed)

    def settle_trigger(self) -> Delivery | None:
        """Close the books on a trigger still open after a stop (a disarm that raised, a process
        winding down): what it delivered is settled from the evidence so far, the rest uncertain."""
        return self._end_trigger()

    def _end_trigger(self) -> Delivery | None:
        """The trigger in progress is over (ended, cut short or lost): settle its dose from the evidence."""
        delivery, watch = self.delivery, self._watch
        self.delivery = None
        self._watch = None
        if delivery is None or watch is None:
            return None
        dose = reconcile(watch.evidence(self._pulses_reported()))
        final = replace(delivery, dose=dose)
        self.last_delivery = final
        self._totals.delivered += dose.delivered
        self._totals.uncertain += dose.uncertain
        if self.on_delivered:
            self.on_delivered(final)
        return final

    @property
    def pulses_delivered(self) -> int:
        """Pulses known delivered over every trigger of this controller. The two totals share one
        attribute: the controller stays within CPython's inline attributes
        (tests/controller/test_controller_layout.py)."""
        return self._totals.delivered

    @property
    def pulses_uncertain(self) -> int:
        """Pulses that may have gone out (a trigger cut short or unanswered), over every trigger."""
        return self._totals.uncertain

    # -- connection ----------------------------------------------------------------------------------
    def connect(self) -> DeviceInfo:
        self.fsm.fire("connect")
        info = self._device_call("connect", self.driver.connect)
        assert isinstance(info, DeviceInfo)
        self.info = info
        check_capabilities(self.driver, info.capabilities)
        self.status = self._device_call("status", self.driver.status)
        if Capability.PAIRED_PULSE in info.capabilities and isinstance(self.driver, PairedPulseDriver):
            self.pair = self.driver.pair  # left on by the panel or a previous host: a trigger fires two pulses
        self.fsm.fire("connected")
        self._emit(
            Connected, model=info.model, display_name=info.display_name,
            version=".".join(map(str, info.version)) if info.version else None, simulated=info.simulated,
            confirmed_replies=self.confirmed_replies,
        )
        now = self.clock.now()
        self._next_keepalive = now + self.limits.keepalive_period_s
        self._next_coil_read = now
        self._read_coil(now)
        return info

    def close(self, reason: str = "closed") -> None:
        """Disarm, release the device and close the port. Idempotent, never raises."""
        if self.state in ENERGISED:
            state_before = self.state
            confirmed = self._try_disarm()
            self._end_trigger()
            if not confirmed:
                self._disarm_unconfirmed(state_before)
        try:
            self.driver.close()
        finally:
            self._next_keepalive = math.inf
            if self.fsm.may("disconnect"):
                self.fsm.fire("disconnect")
            self.dispatcher.stop()

    # -- settings --------------------------------------------------------------------------------------
    def set_intensity(self, intensity_pct_mso: int) -> None:
        reasons = []
        if self.state not in (State.IDLE, State.ARMED, State.PAUSED):
            reasons.append(f"the controller is {self.state.value}")
        if self.intensity_cap_pct_mso is not None and intensity_pct_mso > self.intensity_cap_pct_mso:
            reasons.append(
                f"{intensity_pct_mso} % exceeds the {self.intensity_cap_pct_mso} % this session was validated for"
            )
        if reasons:
            raise GuardRejected("set intensity", reasons)
        self._device_call(f"set intensity {intensity_pct_mso} %", lambda: self.driver.set_intensity(intensity_pct_mso))
        self.intensity_pct_mso = intensity_pct_mso
        self._emit(IntensitySet, intensity_pct_mso=intensity_pct_mso)

    def configure_train(self, frequency_hz: float, pulses: int) -> None:
        if Capability.INTERNAL_TRAIN not in self.capabilities:
            raise InvalidArgument(f"{self.driver.display_name} cannot time trains itself")
        if self.state not in (State.IDLE, State.ARMED, State.PAUSED):
            raise GuardRejected("configure train", [f"the controller is {self.state.value}"])
        timer = capability(self.driver, self.capabilities, Capability.INTERNAL_TRAIN, DeviceTimedTrain)
        self._device_call(f"set train {pulses} @ {frequency_hz:g} Hz", lambda: timer.set_train(frequency_hz, pulses))
        self.train = (frequency_hz, pulses)
        self._single_pulse_mode_confirmed = False
        self.train_offsets = tuple(k / frequency_hz for k in range(pulses))
        self._emit(TrainConfigured, frequency_hz=frequency_hz, n_pulses=pulses)

    def configure_theta_burst(
        self, *, pulses_per_burst: int, burst_frequency_hz: float, burst_rate_hz: float, bursts: int
    ) -> None:
        """Device-timed theta burst (e.g. 3 pulses at 50 Hz, bursts at 5 Hz, 10 bursts per train)."""
        if Capability.THETA_BURST not in self.capabilities:
            raise InvalidArgument(
                f"{self.driver.display_name} cannot time theta bursts itself",
                hint="run theta burst on a stimulator that can (e.g. a MagPro X100)",
            )
        if self.state not in (State.IDLE, State.ARMED, State.PAUSED):
            raise GuardRejected("configure theta burst", [f"the controller is {self.state.value}"])
        timer = capability(self.driver, self.capabilities, Capability.THETA_BURST, ThetaBurstTiming)
        self._device_call(
            "set theta burst",
            lambda: timer.set_theta_burst(
                pulses_per_burst=pulses_per_burst, burst_frequency_hz=burst_frequency_hz,
                burst_rate_hz=burst_rate_hz, bursts=bursts,
            ),
        )
        self.train = (burst_rate_hz, pulses_per_burst * bursts)
        self.train_offsets = tuple(
            b / burst_rate_hz + p / burst_frequency_hz for b in range(bursts) for p in range(pulses_per_burst)
        )
        self._emit(TrainConfigured, frequency_hz=burst_rate_hz, n_pulses=pulses_per_burst * bursts)

    def configure_single_pulse(self) -> None:
        """One pulse per trigger from now on. A unit that times trains is taken out of train mode
        unless this connection already did so: a unit left in train mode by someone else would
        fire a whole train on a trigger meant for one pulse."""
        times_trains = Capability.INTERNAL_TRAIN in self.capabilities
        if times_trains and (self.train is not None or not self._single_pulse_mode_confirmed):
            timer = capability(self.driver, self.capabilities, Capability.INTERNAL_TRAIN, DeviceTimedTrain)
            self._device_call("leave train mode", timer.set_single_pulse_mode)
        self._single_pulse_mode_confirmed = True
        self.train = None
        self.train_offsets = (0.0,)
        if self.pair is not None:
            paired = self._paired_driver("single pulses")
            self._device_call("turn the second output off", paired.clear_pair)
            self.pair = None

    def _paired_driver(self, what: str) -> PairedPulseDriver:
        driver = self.driver
        if Capability.PAIRED_PULSE not in self.capabilities or not isinstance(driver, PairedPulseDriver):
            raise InvalidArgument(
                f"tmsctl cannot set {what} on the {driver.display_name}: its driver does not drive paired pulses",
                hint="run paired pulses on a stimulator tmsctl drives them on (a Magstim BiStim²)",
            )
        return driver

    def configure_pair(self, first_pct_mso: int, second_pct_mso: int, isi_ms: float) -> PairSettings:
        """A paired pulse: one trigger fires ``first`` and the device fires ``second`` ``isi_ms`` later.
        Both outputs and the interval are set and read back; the session's intensity cap binds both."""
        paired = self._paired_driver("a paired pulse")
        reasons = []
        if self.state not in (State.IDLE, State.ARMED, State.PAUSED):
            reasons.append(f"the controller is {self.state.value}")
        cap = self.intensity_cap_pct_mso
        for what, pct in (("first", first_pct_mso), ("second", second_pct_mso)):
            if cap is not None and pct > cap:
                reasons.append(f"the {what} pulse's {pct} % exceeds the {cap} % this session was validated for")
        if reasons:
            raise GuardRejected("configure paired pulse", reasons)
        if self.train is not None:
            self.configure_single_pulse()
        settings = self._device_call(
            f"set paired pulse {first_pct_mso} % then {second_pct_mso} % after {isi_ms:g} ms",
            lambda: paired.set_pair(first_pct_mso, second_pct_mso, isi_ms),
        )
        assert isinstance(settings, PairSettings)
        self.pair = settings
        self.intensity_pct_mso = settings.first_pct_mso
        self._emit(IntensitySet, intensity_pct_mso=settings.first_pct_mso)
        return settings

    def configure_stimulus(self, waveform: str, current_direction: str) -> StimulusShape:
        """The pulse's waveform and current direction (a protocol's ``stimulus``), set and read back."""
        if Capability.STIMULUS_SHAPE not in self.capabilities:
            raise InvalidArgument(
                f"tmsctl cannot set the waveform or current direction of the {self.driver.display_name}",
                hint="the protocol's stimulus is checked against the device before a session (device.stimulus)",
            )
        if self.state is not State.IDLE:
            raise GuardRejected("set the stimulus shape", [f"the controller is {self.state.value}, not disarmed"])
        shaper = capability(self.driver, self.capabilities, Capability.STIMULUS_SHAPE, StimulusShaping)
        shape = self._device_call(
            f"set the {waveform} waveform, {current_direction} current",
            lambda: shaper.set_stimulus(waveform, current_direction),
        )
        assert isinstance(shape, StimulusShape)
        return shape

    # -- arming ------------------------------------------------------------------------------------------
    def _arm_guards(self, now: float) -> list[str]:
        reasons = []
        status = self.status
        if status is not None and not status.coil_present:
            reasons.append("no coil connected")
        if status is not None and status.error:
            reasons.append("the device reports an error")
        if self.coil_temperature_c is not None and self.coil_temperature_c >= self.limits.coil_arm_limit_c:
            reasons.append(
                f"coil at {self.coil_temperature_c:.1f} °C (arming needs < {self.limits.coil_arm_limit_c:.1f} °C)"
            )
        if self.intensity_pct_mso is None:
            reasons.append("no intensity set")
        elif self.intensity_pct_mso < 1:
            reasons.append(f"the intensity is {self.intensity_pct_mso} %MSO; a pulse needs at least 1 %MSO")
        return reasons

    def arm(self) -> DeviceStatus:
        if not self.fsm.may("arm"):
            self.fsm.fire("arm")  # raises with the reason
        now = self.clock.now()
        if self.coil_temperature_c is not None:
            self._read_coil(now)
        reasons = self._arm_guards(now)
        if reasons:
            raise GuardRejected("arm", reasons)
        if self.state is State.PAUSED:
            self.fsm.fire("resume")
        self.fsm.fire("arm")
        self._device_call("arm", self.driver.arm)
        status = self.wait_ready()
        self.fsm.fire("armed")
        return status

    def disarm(self, reason: str = "") -> DeviceStatus:
        if self.state is State.IDLE:
            return self.status  # type: ignore[return-value]
        self.fsm.fire("disarm")
        status = self._device_call("disarm", self.driver.disarm)
        assert isinstance(status, DeviceStatus)
        self._stopped(self.clock.now())
        self.status = status
        self._end_trigger()
        self.fsm.fire("disarmed")
        return status

    # -- firing ----------------------------------------------------------------------------------------
    def fire_guards(
        self, now: float, pulses: int, intensity_pct_mso: int, *, rate_hz: float | None = None,
        host_rate: bool = True,
    ) -> list[str]:
        """Why a trigger may not go out now. ``host_rate=False``: the pulses' rate is not the host's
        to keep (a trigger box times them; the device enforces its own)."""
        reasons = []
        if self.state is not State.ARMED:
            reasons.append(f"the controller is {self.state.value}, not armed")
        status = self.status
        if status is not None and not status.ready:
            reasons.append("the device is not charged (ready)")
        if self.intensity_pct_mso != intensity_pct_mso:
            reasons.append(f"the device is set to {self.intensity_pct_mso} %, the delivery needs {intensity_pct_mso} %")
        if now - self._last_contact > self.limits.keepalive_stale_s:
            reasons.append(f"no confirmed contact with the device for {now - self._last_contact:.2f} s")
        if self.coil_temperature_c is not None and self.coil_temperature_c >= self.limits.coil_stop_limit_c:
            reasons.append(f"coil at {self.coil_temperature_c:.1f} °C")
        for why in (
            self.rate.why_not(now) if host_rate else None,
            # no intensity yet: already refused above, and the energy table has no entry for it
            self.energy.why_not(now, pulses, intensity_pct_mso, rate_hz if rate_hz is not None else self._train_rate_hz())
            if self.energy and self.intensity_pct_mso is not None else None,
            self.pulse_cap.why_not(pulses) if self.pulse_cap else None,
        ):
            if why:
                reasons.append(why)
        return reasons

    def fire(self, *, trigger_source: str = "serial", burst_offsets_s: tuple[float, ...] = (0.0,)) -> Delivery:
        """One trigger: a single pulse, or the configured train. Returns what is being delivered.

        ``burst_offsets_s`` (RTS only, in single-pulse mode): a burst of edges the host times itself,
        one pulse each, at these offsets from now; the call returns after the last edge. An edge has
        no acknowledgement: what it delivered is settled by the status read that follows it."""
        now = self.clock.now()
        is_train = self.train is not None
        rts = trigger_source == "rts"
        burst = tuple(burst_offsets_s)
        if not burst or burst[0] != 0.0 or any(b <= a for a, b in itertools.pairwise(burst)):
            raise InvalidArgument(f"a burst's pulse offsets start at 0 and rise, got {burst!r}")
        if len(burst) > 1 and (not rts or is_train or self.pair is not None):
            raise InvalidArgument(
                "a host-timed burst is fired through the RTS line in single-pulse mode, one edge per pulse",
                hint="configure single pulses and fire with trigger_source='rts'",
            )
        pair = None if is_train else self.pair
        pulses = self.train[1] if self.train else (2 if pair else len(burst))
        intensity = self.intensity_pct_mso if self.intensity_pct_mso is not None else -1
        strongest = max(intensity, pair.second_pct_mso) if pair else intensity  # what recharge and energy follow
        span = burst[-1]
        rate_hz = self._train_rate_hz() if is_train else ((len(burst) - 1) / span if span > 0 else None)
        reasons = self.fire_guards(now, pulses, intensity, rate_hz=rate_hz)
        if rts and not is_train and intensity >= 0:
            reasons.extend(self._edge_spacing_guard(burst, strongest))
        if reasons:
            raise GuardRejected("fire", reasons)
        self.fsm.fire("fire")
        fired_at = self.clock.now()  # the trigger leaves now; the reply comes a few ms later
        duration = self.train_timing if self.train else (pair.isi_ms / 1000 if pair else span)
        offsets = self.train_offsets if is_train else ((0.0, pair.isi_ms / 1000) if pair else burst)
        # The trigger is on its way from here on: whatever the reply, its pulses count against every
        # limit, and a lost reply leaves them uncertain (settled by _end_trigger), never unrecorded.
        self.delivery = Delivery(pulses, intensity, fired_at, fired_at + duration, trigger_source, is_train)
        watch = self._watch = _TriggerWatch(
            offsets, fired_at, self._pulses_reported(), device_timed_after_first=pair is not None
        )
        watch.ready_before = self._ready_since_trigger
        self._ready_since_trigger = False
        limits = self.driver.limits
        if is_train:
            assert self.train is not None
            gap = limits.min_inter_train_interval_s(intensity, self.train[0], pulses)
            # the next trigger also respects the single-pulse rate, whatever it will fire
            self.rate.record(now, fired_at + duration + gap, limits.min_single_pulse_interval_s(intensity))
        elif rts:
            self.rate.record(now, fired_at + span, self._trigger_input_interval_s(strongest))
        else:
            self.rate.record(now, fired_at, limits.min_single_pulse_interval_s(strongest))
        if self.energy:
            self.energy.record(fired_at, pulses, strongest, rate_hz)
        if self.pulse_cap:
            self.pulse_cap.record(pulses)
        self._call_on_trigger(self.delivery, sent=False)
        if rts:
            return self._fire_edges(burst, fired_at, strongest)
        result = self._device_call("fire", self.driver.fire)
        acknowledged_at = self.clock.now()
        # a status reply says itself whether the device could confirm anything (DuoMAG)
        confirmed = self.confirmed_replies and (result.confirmed if isinstance(result, DeviceStatus) else True)
        watch.acknowledged(acknowledged_at)
        self.delivery = Delivery(
            pulses, intensity, fired_at, watch.last_due_latest, trigger_source, is_train, confirmed
        )
        started = self.delivery
        self._call_on_trigger(started, sent=True)
        if not is_train and acknowledged_at >= self.delivery.expected_end:
            self._finish_delivery()  # a single pulse, or a pair whose second pulse was due by the reply
        return started

    def _call_on_trigger(self, delivery: Delivery, *, sent: bool) -> None:
        if self.on_trigger is None:
            return
        try:
            self.on_trigger(delivery, sent)
        except Exception:  # a marker must never stop a trigger that is on its way
            pass

    def _fire_edges(self, burst: tuple[float, ...], fired_at: float, intensity_pct_mso: int) -> Delivery:
        """RTS: one edge per offset, on the clock. Nothing answers an edge, so the device's status
        is read after each one (the keep-alive read, ~11 ms on a Rapid² v9+): a unit found recharging
        that was charged at the edge fired it (tmsctl.session.dose). Charged at the edge means seen charged by
        a read since the trigger before, or: the edge before is known to have fired and this edge
        came at least the device's rated repetition interval later (its frequency table; a premise,
        as a device-timed train's pulse times are). A device-timed train fired by an edge is watched
        like any train, from the read that follows (due at once)."""
        watch, delivery = self._watch, self.delivery
        assert watch is not None and delivery is not None
        rts = capability(self.driver, self.capabilities, Capability.RTS_TRIGGER, RtsTriggering)
        watch.unanswered = True
        if delivery.is_train:
            self._device_call("RTS trigger", rts.trigger_via_rts, contact=False)
            self._call_on_trigger(delivery, sent=True)
            self.delivery = replace(delivery, confirmed=False)
            self._next_keepalive = self.clock.now()  # the first read tells whether the train runs
            return self.delivery
        interval = self._trigger_input_interval_s(intensity_pct_mso)
        charged = watch.ready_before
        watch.edges_seen_fired = 0
        for k, offset in enumerate(burst):
            late = self.clock.now() - (fired_at + offset)
            if late > RTS_EDGE_LATE_S:
                # The read after the edge before took longer than the gap (a slow reply, a slow link):
                # stop rather than fire off the schedule.
                self._fault("rts_edge_late", f"RTS edge {k + 1} of {len(burst)} would be {late * 1000:.1f} ms late")
                raise DeviceStateError(
                    f"the status read after an RTS edge took too long for the next edge ({late * 1000:.1f} ms late); "
                    f"{self._after_fault}",
                    hint="this link or device cannot confirm pulses this close; space them further apart",
                )
            self.clock.sleep_until(fired_at + offset)
            self._device_call("RTS trigger", rts.trigger_via_rts, contact=False)
            if k == 0:
                self._call_on_trigger(delivery, sent=True)  # the markers that wait for the trigger to leave
            status = self._device_call("status read after an RTS edge", self.driver.keepalive)
            assert isinstance(status, DeviceStatus)
            self.status = status
            self._check_status(status)  # the unit disarmed itself or lost its coil: a fault, said now
            fired = charged and status.armed and not status.ready
            watch.edges_seen_fired += fired
            following = burst[k + 1] - offset if k + 1 < len(burst) else math.inf
            charged = status.ready or (fired and following >= interval - 1e-9)
            self._ready_since_trigger = status.ready  # read after this edge: what the next one finds
        self._next_keepalive = self.clock.now() + self.limits.keepalive_period_s
        self._finish_delivery()
        return replace(delivery, confirmed=False)

    # -- a trigger box outside tmsctl ----------------------------------------------------------------
    def expect_external(self, offsets: tuple[float, ...], *, counted_already: int = 0) -> Delivery:
        """The armed unit waits for a trigger box outside tmsctl to fire ``len(offsets)`` pulses (their
        planned timing, for the record). Nothing is sent: the delivery is open, and what it delivered
        is what the device reports (``Capability.PULSE_REPORTS``: exact). ``counted_already``: pulses
        the device reported beyond the delivery before this one, which belong to this one."""
        if Capability.PULSE_REPORTS not in self.capabilities:
            raise InvalidArgument(
                f"{self.driver.display_name} does not report its pulses: tmsctl cannot count what a trigger box fires",
                hint="use a stimulator that reports every pulse (a MagPro), or trigger through RTS",
            )
        now = self.clock.now()
        pulses = len(offsets)
        intensity = self.intensity_pct_mso if self.intensity_pct_mso is not None else -1
        reasons = self.fire_guards(now, pulses, intensity, host_rate=False)
        if self.train is not None or self.pair is not None:
            reasons.append("the device is set for a train or a pair; a trigger box fires single pulses")
        if reasons:
            raise GuardRejected("wait for the trigger box", reasons)
        self.fsm.fire("fire")
        reported = self._pulses_reported()
        assert reported is not None
        self.delivery = Delivery(pulses, intensity, now, now + offsets[-1], "external_ttl", False, confirmed=False)
        watch = self._watch = _TriggerWatch(offsets, now, reported - counted_already)
        watch.unanswered = True
        if self.energy:
            self.energy.record(now, pulses, intensity, None)
        if self.pulse_cap:
            self.pulse_cap.record(pulses)
        return self.delivery

    def external_count(self) -> int:
        """Pulses the device has reported since the open external delivery began (as of the last exchange)."""
        watch = self._watch
        reported = self._pulses_reported()
        if watch is None or watch.reported_before is None or reported is None:
            return 0
        return reported - watch.reported_before

    def end_external(self) -> Delivery | None:
        """The external delivery is over (its pulses counted, or the box went quiet): settled from the
        device's count. The unit stays armed for the next one."""
        if self.delivery is None or self._watch is None or self.delivery.trigger_source != "external_ttl":
            return None
        self._finish_delivery()
        return self.last_delivery

    def _trigger_input_interval_s(self, intensity_pct_mso: int) -> float:
        """Shortest interval between pulses fired through the trigger input: the device's rated
        repetition rate at this output (its frequency table; a 200²'s recharge). Enhanced power
        keeps its own single-pulse interval."""
        limits = self.driver.limits
        if intensity_pct_mso > limits.max_intensity_pct_mso:
            return limits.min_single_pulse_interval_s(intensity_pct_mso)
        return 1.0 / limits.max_frequency_hz(intensity_pct_mso)

    def _edge_spacing_guard(self, burst: tuple[float, ...], intensity_pct_mso: int) -> list[str]:
        shortest = min((b - a for a, b in itertools.pairwise(burst)), default=math.inf)
        minimum = self._trigger_input_interval_s(intensity_pct_mso)
        if shortest < minimum - 1e-9:
            return [
                f"edges {shortest * 1000:.1f} ms apart; the {self.driver.display_name} repeats at most every "
                f"{minimum * 1000:.1f} ms at {intensity_pct_mso} %"
            ]
        return []

    def _train_rate_hz(self) -> float | None:
        """The configured train's mean pulse rate (theta bursts: pulses over the train's span)."""
        if self.train is None or self.train[1] <= 1 or self.train_timing <= 0:
            return None
        return (self.train[1] - 1) / self.train_timing

    def _finish_delivery(self) -> None:
        """The trigger ended as the device meant it to: a single pulse acknowledged, or a train the
        device ended itself after its last pulse was due."""
        assert self._watch is not None
        self._watch.normal_end = True
        self._stopped(self.clock.now())
        self.fsm.fire("delivered")
        self._end_trigger()

    # -- operator --------------------------------------------------------------------------------------
    def pause(self, reason: str = "") -> None:
        if self.state in ENERGISED:
            self._device_call("disarm for pause", self.driver.disarm)
            self._stopped(self.clock.now())
            self._end_trigger()
        self.fsm.fire("pause")
        self._emit(OperatorAction, action="pause", reason=reason)

    def resume(self, reason: str = "") -> None:
        self.fsm.fire("resume")
        self._emit(OperatorAction, action="resume", reason=reason)

    def finish(self) -> None:
        if self.state in ENERGISED:
            self.disarm()
        self.fsm.fire("finish")

    def estop(self, reason: str = "emergency stop") -> None:
        """Disarm at once (best effort) and end this controller's session for good."""
        state_before = self.state
        confirmed = self._try_disarm()
        self._end_trigger()
        self.fsm.fire("estop")
        self._emit(OperatorAction, action="estop", reason=reason)
        if not confirmed:
            self._disarm_unconfirmed(state_before)

    def acknowledge(self, reason: str) -> None:
        if not reason.strip():
            raise InvalidArgument("acknowledging a fault needs a reason", hint="say what was checked")
        self.fsm.fire("acknowledge")
        self._emit(OperatorAction, action="acknowledge", reason=reason)

    # -- servicing ---------------------------------------------------------------------------------------
    def next_deadline(self) -> float:
        deadline = self._next_keepalive
        delivery = self.delivery
        if delivery is None:
            return deadline  # between triggers (most calls): only the keep-alive
        watch = self._watch
        if watch is not None and not watch.last_watch_done:
            deadline = min(deadline, watch.last_watch_at)
        if delivery.expected_end > self.clock.now():
            deadline = min(deadline, delivery.expected_end)
        return deadline

    def service(self, *, keep_clear_until: float | None = None) -> float:
        """Do what is due now; return when attention is next needed.

        ``keep_clear_until``: a fire is scheduled then; no keep-alive may start within the guard
        window before it (it would delay the trigger), so one due then goes out early instead.
        """
        state = self.fsm.state
        if state in NOT_SERVICED:
            return math.inf
        now = self.clock.now()
        if state in ENERGISED and now - self._last_contact > 1.0:
            self._emit(KeepAliveMissed, late_by_s=now - self._last_contact - self.limits.keepalive_period_s)
            self._fault("keepalive_missed", f"no exchange with the device for {now - self._last_contact:.2f} s")
            raise FaultLatched(
                f"the keep-alive was missed ({now - self._last_contact:.2f} s without contact); {self._after_fault}"
            )
        due = self._next_keepalive <= now
        if keep_clear_until is not None and not due:
            window_start = keep_clear_until - self.limits.fire_lead_guard_s
            due = self._next_keepalive <= keep_clear_until and now >= window_start - 0.05
        delivery, watch = self.delivery, self._watch
        if delivery is not None and delivery.is_train and watch is not None:
            # Two reads the evidence needs: one between the last two pulses (the train still running
            # after all but the last), and one once the last pulse was due (the device ended it).
            if not watch.last_watch_done and now >= watch.last_watch_at:
                watch.last_watch_done = True
                due = True
            if now >= delivery.expected_end:
                due = True
        if due:
            if self._next_coil_read <= now and delivery is None and keep_clear_until is None:
                self._read_coil(now)
            self.refresh_status()
            delivery = self.delivery  # a status read can end the trigger (a fault)
        if delivery is not None:
            if delivery.is_train:
                self._check_train_end()
            elif now >= delivery.expected_end and not (watch is not None and watch.unanswered):
                self._finish_delivery()  # a pair: the device fired its second pulse by now, on its own timer
        return self.next_deadline()

    def wait_ready(self) -> DeviceStatus:
        """Poll the device until it reports charged (after a recharge); faults like any exchange."""
        status = self._device_call("wait until charged", self.driver.wait_ready)
        assert isinstance(status, DeviceStatus)
        self.status = status
        if self.delivery is None and status.ready:
            self._ready_since_trigger = True
        return status

    def verify_before_trigger(self) -> DeviceStatus:
        """Just before a trigger: the status and the output setting, read back from the device (one
        exchange: the cheapest command that carries both). A setting other than the validated one
        disarms and latches FAULT with both values on record."""
        return self.refresh_status(read_back_intensity=True)

    def refresh_status(self, *, read_back_intensity: bool = False) -> DeviceStatus:
        """Read the device's status now (it also serves as a keep-alive) and act on what it says."""
        delivery = self.delivery  # a device-timed train's: the status is evidence of its pulses
        sent_at = self.clock.now()
        if read_back_intensity:
            status = self._device_call("read back the intensity", self.driver.verify_intensity)
        else:
            status = self._device_call("keep-alive (status read)", self.driver.keepalive)
        assert isinstance(status, DeviceStatus)
        self.status = status
        if delivery is not None and delivery.is_train:
            self._watch_train(status, sent_at, raise_early_stop=False)
        # A cause the device states (coil, its own disarm) is named before a stop it left unexplained.
        self._check_status(status)
        if delivery is not None and delivery.is_train:
            self._watch_train(status, sent_at)
        if self.delivery is None and status.ready:
            self._ready_since_trigger = True
        self._next_keepalive = self._last_contact + self.limits.keepalive_period_s  # contact: the reply just now
        return status

    def _watch_train(self, status: DeviceStatus, sent_at: float, *, raise_early_stop: bool = True) -> None:
        """What a status read during a device-timed train says about its pulses: first the evidence
        (``raise_early_stop=False``), then, once the status's own causes are checked, an early stop."""
        watch = self._watch
        assert watch is not None and self.delivery is not None
        if status.train_running:
            watch.running_seen(sent_at)
            return
        if not raise_early_stop:
            self._stopped(self.clock.now())
            return
        now = self.clock.now()
        self._stopped(now)
        reported = self._pulses_reported()
        if reported is not None and watch.reported_before is not None:
            early = reported - watch.reported_before < len(watch.offsets)
        else:
            # Stopped before its last pulse can have been due: early beyond doubt. Stopped in between
            # (the trigger's acknowledgement came late): not a fault; the dose says what is unknown.
            early = now < watch.last_due_earliest
        if not early:
            return  # _check_train_end settles it when the last pulse was due
        delivery = self.delivery
        self._fault(
            "train_stopped_early",
            f"the device ended a {delivery.pulses}-pulse train {sent_at - delivery.started_at:.3f} s after its "
            f"trigger, before its last pulse was due, without a word",
        )
        raise DeviceStateError(
            f"{self.driver.display_name} ended the train early without reporting why; {self._after_fault}",
            hint="check the stimulator's display and coil before resuming; the record says how many pulses went out",
        )

    def _check_status(self, status: DeviceStatus) -> None:
        state = self.fsm.state
        if state in EXPECTED_ARMED and not status.armed:
            self._fault("device_disarmed", f"the device disarmed itself (status {status.raw})")
            raise DeviceStateError(f"{self.driver.display_name} disarmed itself (status {status.raw})")
        if not status.coil_present and state in ENERGISED:
            self._fault("coil_absent", "the coil was disconnected")
            raise DeviceStateError(f"the coil was disconnected; {self._after_fault}")

    def _check_train_end(self) -> None:
        delivery = self.delivery
        assert delivery is not None
        now = self.clock.now()
        if now < delivery.expected_end:
            return
        status = self.status
        if status is not None and status.train_running:
            if now > delivery.expected_end + TRAIN_END_GRACE_S:
                self._fault("train_overrun", "the device still reports a running train well after its end")
                raise DeviceStateError(f"the train did not end when scheduled; {self._after_fault}")
            self._next_keepalive = min(self._next_keepalive, now + 0.05)
            return
        self._finish_delivery()

    def _read_coil(self, now: float) -> None:
        if Capability.COIL_TEMPERATURE not in self.capabilities:
            return
        thermometer = capability(self.driver, self.capabilities, Capability.COIL_TEMPERATURE, CoilThermometer)
        temps = self._device_call("read coil temperature", thermometer.coil_temperature_c)
        self.coil_temperature_c = max(temps)
        self._next_coil_read = now + COIL_READ_PERIOD_S
        if self.coil_temperature_c >= self.limits.coil_stop_limit_c and self.state in ENERGISED:
            self._fault("coil_hot", f"coil at {self.coil_temperature_c:.1f} °C")
            raise SafetyViolation(f"the coil reached {self.coil_temperature_c:.1f} °C; {self._after_fault}")

    def wait_until(self, t: float, *, fire_at: float | None = None) -> None:
        """Service the device until clock time ``t`` (keep-alives, train ends)."""
        while True:
            nxt = self.service(keep_clear_until=fire_at)
            now = self.clock.now()
            if now >= t:
                return
            self.clock.sleep_until(min(t, nxt))
