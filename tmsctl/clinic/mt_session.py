"""Motor-threshold hunting on a stimulator: the pure procedures of :mod:`tmsctl.clinic.threshold` driven
through the :class:`~tmsctl.session.controller.Controller`, and the result recorded.

One hunt, as :class:`MtHunt` runs it::

    take remote control (connect)
    for each trial, until the procedure's stop rule:
        set the procedure's next intensity (the driver reads it back)
        arm if disarmed; wait for the inter-trial interval (jittered) and the device's minimum
        single-pulse interval; confirm the unit is charged; fire one single pulse
        ask respond(trial) for the MEP — while servicing the controller (keep-alive)
        record the MEP in the procedure
    disarm; release remote control (always, also after errors)

The MEP comes from a ``respond(PendingTrial) -> MepResponse`` callback: the technician's entry in
the CLI, or a :class:`~tmsctl.simulators.subject.SimulatedSubject`. A callback that raises
:class:`~tmsctl.core.errors.InvalidArgument` (what :func:`~tmsctl.clinic.threshold.parse_mep_entry` raises for
a garbled entry) is asked again for the same pulse; the procedure only ever sees valid entries,
so no trial is lost and none is counted twice.

Waiting for the technician never starves the device. ``respond`` runs in a helper thread while
the calling thread keeps servicing the controller (keep-alives every 0.5 s; a Magstim drops
remote control and disarms after 1 s of silence while armed). The unit stays armed during a
normal answer — re-arming every trial would charge and dump the capacitors for nothing — but an
answer that takes longer than ``HuntSettings.armed_answer_wait_s`` disarms it (fail safe: a
technician who walked away leaves a disarmed unit, well before the device's own 60 s idle
disarm), and the next pulse re-arms. If the hunt ends abnormally (device fault, Ctrl-C), the
calling thread disarms and releases at once; it never waits for a pending entry.

With a :class:`~tmsctl.core.clock.VirtualClock` the helper thread counts as a participant while it
works, so virtual time stands still while a simulated subject answers: the same seeds give the
same pulse times, and a simulated hunt takes milliseconds.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from tmsctl.clinic.threshold import (
    CountsRejectedPulses,
    MepResponse,
    MlAmplitude,
    MlPest,
    MuscleState,
    RelativeFrequency,
    ThresholdProcedure,
    ThresholdResult,
)
from tmsctl.core.clock import ParticipantSlot
from tmsctl.core.errors import InvalidArgument, TmsError
from tmsctl.core.events import Listener
from tmsctl.core.url import DeviceURL, parse
from tmsctl.drivers.base import SIMULATOR_IDENTITY_PREFIX, DeviceInfo, DeviceStatus
from tmsctl.protocols.models import Coil
from tmsctl.session.controller import Controller
from tmsctl.session.fsm import ENERGISED, State
from tmsctl.session.host import SessionHost, clock_for
from tmsctl.session.safety import PulseCap

__all__ = [
    "METHODS",
    "REFERENCES",
    "HuntOutcome",
    "HuntSettings",
    "HuntStopped",
    "HuntTrial",
    "MtHunt",
    "MtOutcome",
    "MtRequest",
    "PendingTrial",
    "RejectedPulse",
    "TooManyRejections",
    "check_request",
    "make_procedure",
    "muscle_state_for",
    "parse_coil",
    "run_mt",
    "stimulator_serial_for",
    "threshold_record",
]

# Method names as the CLI takes them.
METHODS = ("ml-pest", "5of10", "ml-amplitude")
REFERENCES = ("rMT", "aMT")
DEFAULT_START_PCT_MSO = 50
SIMULATOR_SERIAL_PREFIX = SIMULATOR_IDENTITY_PREFIX  # a threshold measured on a simulator names it so
# The hunt never asks for more than a stimulator's standard output (enhanced power modes above
# 100 % exist on some units for single pulses; an MT above 100 %MSO is out of range anyway).
HUNT_MAX_PCT_MSO = 100


# --------------------------------------------------------------------------------------------
# Settings and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HuntSettings:
    """Timing of a hunt.

    ``inter_trial_interval_s`` ± ``inter_trial_jitter_s`` (uniform, from the injected
    ``random.Random``) is the wait from one pulse to the next: MT hunts typically wait 4–6 s so
    that one pulse does not condition the next, and so the technician can read the MEP. The
    device's own minimum single-pulse interval (the controller's rate limiter) always applies on
    top. ``armed_answer_wait_s``: an MEP entry slower than this disarms the unit until the next
    pulse (it must stay below the Magstim's 60 s armed-idle disarm).
    """

    inter_trial_interval_s: float = 5.0
    inter_trial_jitter_s: float = 1.0
    armed_answer_wait_s: float = 20.0
    # EMG hunts: a rejected trial (pre-activation, noise, a gap) is given again at the same
    # intensity; this many in a row, or this many in all, stop the hunt (disarmed). Status D.
    max_consecutive_rejections: int = 5
    max_rejections: int = 15

    def __post_init__(self) -> None:
        for name in ("inter_trial_interval_s", "inter_trial_jitter_s", "armed_answer_wait_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidArgument(f"{name} must be a finite number of seconds, got {value!r}")
        if self.inter_trial_jitter_s < 0:
            raise InvalidArgument(f"inter_trial_jitter_s must be ≥ 0 s, got {self.inter_trial_jitter_s!r}")
        if self.inter_trial_interval_s - self.inter_trial_jitter_s <= 0:
            raise InvalidArgument(
                f"inter-trial interval {self.inter_trial_interval_s:g} ± {self.inter_trial_jitter_s:g} s "
                "can reach zero",
                hint="MT hunts usually wait 4–6 s between pulses, e.g. 5 ± 1 s",
            )
        for name in ("max_consecutive_rejections", "max_rejections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{name} must be a positive whole number, got {value!r}")
        if not 0 < self.armed_answer_wait_s < 60:
            raise InvalidArgument(
                f"armed_answer_wait_s must be within (0, 60) s, got {self.armed_answer_wait_s!r}",
                hint="stimulators disarm themselves after about 60 s armed without a pulse",
            )


@dataclass(frozen=True)
class PendingTrial:
    """The pulse whose MEP ``respond`` is asked about. ``attempt`` counts re-asks after a bad entry."""

    index: int  # 1-based
    intensity_pct_mso: int
    fired_at_s: float  # clock time of the trigger
    attempt: int = 1


@dataclass(frozen=True)
class HuntTrial:
    """One delivered pulse with its accepted MEP entry and what the procedure made of it."""

    index: int
    intensity_pct_mso: int
    fired_offset_s: float  # seconds from the start of the hunt
    response: MepResponse
    responded: bool
    estimate_pct_mso: float | None
    entry_attempts: int  # 1 + the number of rejected entries for this pulse
    pulse: int | None = None  # the delivered pulse it answers (differs from index after rejected trials)

    def as_log_entry(self) -> dict[str, Any]:
        """Plain JSON data for the records' trial log."""
        entry = {
            "trial": self.index,
            "intensity_pct_mso": self.intensity_pct_mso,
            "entry": self.response.describe(),
            "seen": self.response.seen,
            "amplitude_uv": self.response.amplitude_uv,
            "responded": self.responded,
            "estimate_pct_mso": self.estimate_pct_mso,
            "fired_offset_s": round(self.fired_offset_s, 4),
            "entry_attempts": self.entry_attempts,
        }
        measurement = getattr(self.response, "measurement", None)
        if measurement is not None:  # measured from EMG (tmsctl.clinic)
            entry["pulse"] = self.pulse
            entry["mep"] = measurement.as_dict()
        return entry


@dataclass(frozen=True)
class RejectedPulse:
    """A delivered pulse whose EMG gave no MEP (the detector's reason); the procedure never saw it."""

    pulse: int
    intensity_pct_mso: int
    fired_offset_s: float
    measurement: Any  # tmsctl.clinic.mep.MepMeasurement

    def as_log_entry(self) -> dict[str, Any]:
        return {
            "trial": None, "pulse": self.pulse, "intensity_pct_mso": self.intensity_pct_mso,
            "fired_offset_s": round(self.fired_offset_s, 4), "rejected": True, "mep": self.measurement.as_dict(),
        }


class TooManyRejections(TmsError):
    """EMG trials kept being rejected: the hunt cannot measure MEPs and stops."""

    hint = "the muscle must be relaxed and the EMG clean: check the electrodes and the subject, then hunt again"


@dataclass(frozen=True)
class HuntOutcome:
    """A finished hunt: the procedure's result and every pulse the device delivered."""

    result: ThresholdResult
    trials: tuple[HuntTrial, ...]
    device: DeviceInfo
    started_at_utc: datetime
    ended_at_utc: datetime
    duration_s: float  # on the hunt's clock
    disarms_for_slow_entries: int
    rejections: tuple[RejectedPulse, ...] = ()

    def log_entries(self) -> tuple[dict[str, Any], ...]:
        """Every delivered pulse in order: accepted trials and rejected ones."""
        return _log_entries(self.trials, self.rejections)

    @property
    def pulses_delivered(self) -> int:
        return len(self.trials) + len(self.rejections)

    @property
    def recordable(self) -> bool:
        """Converged with a threshold the records can hold (0 < value ≤ 100 %MSO)."""
        value = self.result.value_pct_mso
        return self.result.converged and value is not None and 0 < value <= HUNT_MAX_PCT_MSO


class HuntStopped(TmsError):
    """The hunt ended before its stop rule; the device was disarmed and released.

    ``cause`` is the error that stopped it; ``trials`` the pulses answered so far and
    ``pulses_delivered`` every pulse fired (one more than the trials when a pulse was awaiting
    its MEP entry). No threshold comes of a stopped hunt; :func:`run_mt` keeps its pulses on record
    as an ``mt_stopped`` MEP measurement (``recorded``) when it was given a records store.
    """

    recorded: Any | None = None  # the stored tmsctl.records.meps.MepMeasurementRecord, if any
    record_error: TmsError | None = None  # why keeping the stopped hunt on record failed, if it did

    def __init__(
        self, message: str, *, cause: TmsError, trials: Sequence[HuntTrial], pulses_delivered: int,
        hint: str | None = None, rejections: Sequence[RejectedPulse] = (),
    ) -> None:
        super().__init__(message, hint=hint)
        self.cause = cause
        self.trials = tuple(trials)
        self.pulses_delivered = pulses_delivered
        self.rejections = tuple(rejections)

    def log_entries(self) -> tuple[dict[str, Any], ...]:
        return _log_entries(self.trials, self.rejections)


def _log_entries(trials: Sequence[HuntTrial], rejections: Sequence[RejectedPulse]) -> tuple[dict[str, Any], ...]:
    entries = [t.as_log_entry() for t in trials] + [r.as_log_entry() for r in rejections]
    if rejections:
        entries.sort(key=lambda e: e["pulse"])
    return tuple(entries)


# --------------------------------------------------------------------------------------------
# The hunt on a controller
# --------------------------------------------------------------------------------------------


Respond = Callable[[PendingTrial], MepResponse]


class HuntTrialRecord(Protocol):
    """What MtHunt reads of the trial a procedure records."""

    @property
    def index(self) -> int: ...
    @property
    def responded(self) -> bool: ...
    @property
    def estimate_pct_mso(self) -> float | None: ...


class HuntProcedure(Protocol):
    """What MtHunt drives: a threshold procedure (tmsctl.clinic.threshold), or any other pulse plan that
    answers the same (the hotspot search, the recruitment-curve series)."""

    @property
    def max_trials(self) -> int: ...
    @property
    def max_pct_mso(self) -> int: ...
    @property
    def done(self) -> bool: ...
    def next_intensity(self) -> int: ...
    def record(self, intensity_pct_mso: int, response: MepResponse) -> HuntTrialRecord: ...
    # Each kind of procedure has its own result (ThresholdResult, HotspotResult, SeriesResult);
    # HuntOutcome hands it back as it came.
    def result(self) -> Any: ...


class MtHunt:
    """Drive one threshold ``procedure`` on the stimulator behind ``controller``.

    ``run()`` connects the controller if it is not connected yet, and always disarms and closes
    it (releasing remote control) before it returns or raises: with ``release`` (a session host's
    ``release``) it gives the controller back that way, else it calls ``controller.close()``. Callbacks (all optional, called
    on the calling thread): ``on_fired(PendingTrial)`` after each pulse, ``on_trial(HuntTrial)``
    after each accepted entry, ``on_bad_entry(PendingTrial, InvalidArgument)`` for each rejected
    entry, ``on_notice(str)`` for things the operator should know (a disarm for a slow entry).
    """

    def __init__(
        self,
        controller: Controller,
        procedure: HuntProcedure,
        respond: Respond,
        *,
        rng: random.Random,
        settings: HuntSettings | None = None,
        on_fired: Callable[[PendingTrial], None] | None = None,
        on_trial: Callable[[HuntTrial], None] | None = None,
        on_bad_entry: Callable[[PendingTrial, InvalidArgument], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        on_rejected: Callable[[RejectedPulse], None] | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        if not isinstance(rng, random.Random):
            raise InvalidArgument(
                f"rng must be a random.Random, got {type(rng).__name__}",
                hint="inject random.Random(seed) for reproducible inter-trial jitter",
            )
        self.controller = controller
        self.clock = controller.clock
        self._release = release if release is not None else controller.close
        self.procedure = procedure
        self.respond = respond
        self.rng = rng
        self.settings = settings or HuntSettings()
        self.on_fired = on_fired
        self.on_trial = on_trial
        self.on_bad_entry = on_bad_entry
        self.on_notice = on_notice
        self.trials: list[HuntTrial] = []
        self.rejections: list[RejectedPulse] = []
        self._rejections_in_a_row = 0
        self.on_rejected = on_rejected
        self.pulses_delivered = 0
        self._unanswered: PendingTrial | None = None  # the last pulse, while its MEP is awaited
        self.disarms_for_slow_entries = 0
        self._started_at = 0.0
        self._last_fired_at: float | None = None

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> HuntOutcome:
        c = self.controller
        self._started_at = self.clock.now()
        started_wall = self.clock.wall()
        try:
            if c.state is State.DISCONNECTED:
                c.connect()
            info = c.info
            assert info is not None
            # Defence in depth: the controller itself refuses a pulse beyond the procedure's cap
            # or an intensity beyond its range, whatever this loop does.
            c.pulse_cap = PulseCap(self.procedure.max_trials + self.settings.max_rejections)
            c.intensity_cap_pct_mso = self.procedure.max_pct_mso
            while not self.procedure.done:
                self._trial()
            if c.state in ENERGISED:
                c.disarm()
        except TmsError as exc:
            if c.state in ENERGISED:
                # Disarm through the state machine, so the controller (not only the device) ends
                # disarmed; close() below disarms again if this fails.
                try:
                    c.disarm()
                except TmsError:
                    pass
            raise self._stopped(exc) from exc
        finally:
            self._release()
        return HuntOutcome(
            self.procedure.result(), tuple(self.trials), info, started_wall, self.clock.wall(),
            self.clock.now() - self._started_at, self.disarms_for_slow_entries, tuple(self.rejections),
        )

    def log_so_far(self) -> tuple[dict[str, Any], ...]:
        """Every pulse delivered so far, in order: answered, rejected, and one still awaiting its MEP."""
        entries = list(_log_entries(self.trials, self.rejections))
        pending = self._unanswered
        if pending is not None:
            entries.append({
                "trial": None, "pulse": self.pulses_delivered, "intensity_pct_mso": pending.intensity_pct_mso,
                "fired_offset_s": round(pending.fired_at_s - self._started_at, 4), "unanswered": True,
            })
        return tuple(entries)

    def _stopped(self, exc: TmsError) -> HuntStopped:
        answered = len(self.trials)
        pending = self.pulses_delivered - answered
        detail = exc.message
        status = self._status_for_diagnosis()
        if status is not None and not status.coil_present and "coil" not in detail.lower():
            detail += "; the device reports no coil connected"
        given = f"{self.pulses_delivered} pulse{'s' if self.pulses_delivered != 1 else ''}"
        if pending:
            given += f" ({answered} answered)"
        return HuntStopped(
            f"the threshold hunt stopped after {given}; no threshold was recorded: {detail}",
            cause=exc, trials=self.trials, pulses_delivered=self.pulses_delivered,
            hint=exc.hint or "check the device and start a new hunt", rejections=self.rejections,
        )

    def _status_for_diagnosis(self) -> DeviceStatus | None:
        """Best effort, after a failure: the device's own status says why (e.g. the coil came off)."""
        try:
            status = self.controller.driver.status()
        except Exception:  # the device may be gone; the error we have must still be reported
            return self.controller.status
        return status if isinstance(status, DeviceStatus) else self.controller.status

    def _trial(self) -> None:
        c = self.controller
        intensity = self.procedure.next_intensity()
        if c.intensity_pct_mso != intensity:
            c.set_intensity(intensity)  # the driver reads it back and refuses a mismatch
        if c.state is not State.ARMED:
            c.arm()  # arms and waits until charged
        fire_at = self.clock.now()
        if self._last_fired_at is not None:
            jitter = self.settings.inter_trial_jitter_s
            interval = self.settings.inter_trial_interval_s + self.rng.uniform(-jitter, jitter)
            fire_at = max(fire_at, self._last_fired_at + interval)
        # The device's minimum interval for this intensity: wait for it instead of being refused.
        fire_at = max(fire_at, c.rate.earliest_next)
        c.wait_until(fire_at)
        self._confirm_charged()
        delivery = c.fire()
        self.pulses_delivered += 1
        if delivery.pulses != 1 or delivery.intensity_pct_mso != intensity:
            raise InvalidArgument(  # a controller in train mode would be a bug, never a hunt pulse
                f"expected one pulse at {intensity} %MSO, the controller delivered {delivery.pulses} at "
                f"{delivery.intensity_pct_mso} %MSO"
            )
        self._last_fired_at = delivery.started_at
        pending = PendingTrial(len(self.trials) + 1, intensity, delivery.started_at)
        self._unanswered = pending
        if self.on_fired:
            self.on_fired(pending)
        from tmsctl.clinic.responder import TrialRejected

        try:
            response, attempts = self._answer(pending)
        except TrialRejected as rejected:
            self._unanswered = None
            self._rejected(pending, delivery.started_at, rejected)
            return
        self._unanswered = None
        self._rejections_in_a_row = 0
        trial = self.procedure.record(intensity, response)
        hunt_trial = HuntTrial(
            trial.index, intensity, delivery.started_at - self._started_at, response, trial.responded,
            trial.estimate_pct_mso, attempts, self.pulses_delivered,
        )
        self.trials.append(hunt_trial)
        if self.on_trial:
            self.on_trial(hunt_trial)

    def _rejected(self, pending: PendingTrial, fired_at: float, rejected: Any) -> None:
        """Keep the rejected pulse on record; the procedure plans the same intensity again."""
        entry = RejectedPulse(self.pulses_delivered, pending.intensity_pct_mso, fired_at - self._started_at,
                              rejected.measurement)
        self.rejections.append(entry)
        self._rejections_in_a_row += 1
        if self.on_rejected:
            self.on_rejected(entry)
        settings = self.settings
        if self._rejections_in_a_row >= settings.max_consecutive_rejections:
            raise TooManyRejections(
                f"{self._rejections_in_a_row} trials in a row were rejected (last: {rejected.measurement.detail})"
            )
        if len(self.rejections) >= settings.max_rejections:
            raise TooManyRejections(
                f"{len(self.rejections)} trials were rejected in this hunt (last: {rejected.measurement.detail})"
            )
        if isinstance(self.procedure, CountsRejectedPulses):
            self.procedure.note_rejected_pulse()
            if self.procedure.done and not self.trials:
                raise TooManyRejections(
                    f"the pulse cap was reached with every pulse rejected (last: {rejected.measurement.detail})"
                )

    def _confirm_charged(self) -> None:
        """Poll until the unit reports charged (a recharge after a pulse or a power change)."""
        # a failure here latches FAULT and disarms like any other device call
        self.controller.wait_ready()

    # -- the MEP entry -------------------------------------------------------------------------------
    def _answer(self, pending: PendingTrial) -> tuple[MepResponse, int]:
        attempt = 1
        while True:
            asked = PendingTrial(pending.index, pending.intensity_pct_mso, pending.fired_at_s, attempt)
            try:
                response = self._ask_while_servicing(asked)
            except InvalidArgument as exc:
                if self.on_bad_entry:
                    self.on_bad_entry(asked, exc)
                attempt += 1
                continue
            if not isinstance(response, MepResponse):
                raise TypeError(f"respond() must return a MepResponse, got {type(response).__name__}")
            return response, attempt

    def _ask_while_servicing(self, pending: PendingTrial) -> MepResponse:
        c = self.controller
        done = self.clock.event()
        box: dict[str, Any] = {}
        participation = ParticipantSlot(self.clock)

        def ask() -> None:
            try:
                box["response"] = self.respond(pending)
            except BaseException as exc:  # handed to the calling thread, which re-raises it
                box["error"] = exc
            finally:
                done.set()  # before releasing, so a virtual clock cannot jump past the answer
                participation.release()

        helper = threading.Thread(target=ask, name=f"tmsctl-mt-entry-{pending.index}", daemon=True)
        disarm_at = pending.fired_at_s + self.settings.armed_answer_wait_s
        try:
            helper.start()
            while not done.is_set():
                wake = c.service()
                if c.state in ENERGISED:
                    if self.clock.now() >= disarm_at:
                        c.disarm()
                        self.disarms_for_slow_entries += 1
                        if self.on_notice:
                            self.on_notice(
                                f"no MEP entry {self.settings.armed_answer_wait_s:g} s after pulse "
                                f"{pending.index}: the stimulator was disarmed; it re-arms for the next pulse"
                            )
                        continue
                    wake = min(wake, disarm_at)
                self.clock.wait(done, wake if math.isfinite(wake) else None)
        finally:
            participation.release()
        if "error" in box:
            raise box["error"]
        return box["response"]


# --------------------------------------------------------------------------------------------
# Choosing a procedure; what gets recorded
# --------------------------------------------------------------------------------------------


def muscle_state_for(reference: str) -> MuscleState:
    if reference not in REFERENCES:
        raise InvalidArgument(
            f"threshold reference must be rMT or aMT, got {reference!r}",
            hint="rMT: resting motor threshold (MEP ≥ 50 µV); aMT: active (MEP ≥ 200 µV)",
        )
    return MuscleState.REST if reference == "rMT" else MuscleState.ACTIVE


def make_procedure(
    method: str,
    *,
    start_pct_mso: int = DEFAULT_START_PCT_MSO,
    max_pct_mso: int = HUNT_MAX_PCT_MSO,
    reference: str = "rMT",
    max_trials: int | None = None,
    max_pulses: int | None = None,
) -> ThresholdProcedure:
    """``ml-pest`` (20 pulses unless ``max_trials``; ``max_pulses`` caps the pulses given, rejected
    ones included), ``ml-amplitude`` (the same, the threshold fitted to the MEP amplitudes:
    :class:`~tmsctl.clinic.threshold.MlAmplitude`) or ``5of10`` (IFCN relative frequency)."""
    state = muscle_state_for(reference)
    extra: dict[str, Any] = {} if max_trials is None else {"max_trials": max_trials}
    if method not in METHODS:
        raise InvalidArgument(f"unknown threshold method {method!r}", hint=f"choose one of: {', '.join(METHODS)}")
    kind: type[MlPest | RelativeFrequency] = {
        "ml-pest": MlPest, "ml-amplitude": MlAmplitude, "5of10": RelativeFrequency,
    }[method]
    if max_pulses is not None:
        if kind is RelativeFrequency:
            raise InvalidArgument(
                "a pulse cap applies to ML-PEST only (ml-pest, and ml-amplitude, which places its pulses as ML-PEST)",
                hint="5 of 10 ends by its own rule; give it a trial cap with max_trials",
            )
        extra["max_pulses"] = max_pulses
    try:
        return kind(start_pct_mso=start_pct_mso, max_pct_mso=max_pct_mso, muscle_state=state, **extra)
    except InvalidArgument as exc:
        if exc.hint:
            raise
        raise InvalidArgument(
            exc.message,
            hint=f"start within 1–{max_pct_mso} %MSO (near the hot-spot intensity); trials a positive whole number",
        ) from None


def parse_coil(text: str) -> Coil:
    """``FAMILY`` or ``FAMILY/MODEL`` (as the records write coils), e.g. ``figure8/D70 Alpha``."""
    from typing import get_args

    from tmsctl.protocols.models import CoilFamily

    families = get_args(CoilFamily)
    family, _, model = text.strip().partition("/")
    family, model = family.strip(), model.strip()
    if family not in families:
        raise InvalidArgument(
            f"coil family {family!r} is not known",
            hint=f"write FAMILY or FAMILY/MODEL with FAMILY one of {', '.join(families)}",
        )
    try:
        return Coil.model_validate({"family": family, "model": model or None})  # text: validated
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise InvalidArgument(f"coil model {model!r} is not accepted: {reason}") from None


def _simulator_name(device: DeviceURL) -> str:
    from tmsctl.simulators import registry as sims

    name = device.simulator_profile or ""
    instance = sims.lookup(name)
    return instance.profile.name if instance is not None else name


def stimulator_serial_for(device: DeviceURL, given: str | None) -> str:
    """The stimulator serial a threshold is recorded under.

    Magstim units do not report a serial number over the serial link, so a real device needs it
    given (from the unit's label). A simulator is always ``SIM-<profile>``, so a simulated
    threshold can never pass for one measured on a real unit.
    """
    text = None if given is None else given.strip()
    if device.is_simulator:
        expected = SIMULATOR_SERIAL_PREFIX + _simulator_name(device)
        if text and text != expected:
            raise InvalidArgument(
                f"a simulator's serial is {expected}, not {text!r}",
                hint="leave --stimulator-serial out for simulators",
            )
        return expected
    if not text:
        raise InvalidArgument(
            "the stimulator's serial number is needed to record the threshold (the unit does not report it)",
            hint="give --stimulator-serial as printed on the stimulator's label",
        )
    if text.upper().startswith(SIMULATOR_SERIAL_PREFIX):
        raise InvalidArgument(f"serial {text!r} is reserved for simulators", hint="use the unit's own serial")
    if len(text) > 80 or any(not ch.isprintable() for ch in text):
        raise InvalidArgument(
            f"serial {text!r} must be printable text of at most 80 characters", hint="copy it from the unit's label"
        )
    return text


def threshold_record(
    outcome: HuntOutcome,
    *,
    subject_id: str,
    coil: Coil,
    reference: str,
    operator: str,
    stimulator_serial: str,
    method_note: str | None = None,
) -> Any:
    """The :class:`tmsctl.records.MotorThreshold` for a converged hunt (refuses anything else)."""
    from tmsctl import records as rec
    from tmsctl.session.planned import coil_key

    result = outcome.result
    if not outcome.recordable:
        raise InvalidArgument(
            f"the hunt did not converge, nothing to record: {result.stop_reason}",
            hint="check the coil position (hot spot) and start range, then hunt again",
        )
    assert result.value_pct_mso is not None
    method = (
        f"{result.method}, {len(result.trials)} pulses, MEP ≥ {result.criterion_uv:g} µV "
        f"({result.muscle_state.value})"
    )
    if outcome.device.simulated:
        method += "; SIMULATED device"
    if method_note:
        method += f"; {method_note}"
    return rec.MotorThreshold(
        subject_id=subject_id,
        stimulator_model=outcome.device.model,
        stimulator_serial=stimulator_serial,
        coil=coil_key(coil),
        value_pct_mso=result.value_pct_mso,
        reference=rec.ThresholdReference(reference),
        method=method[:200],
        measured_at=outcome.ended_at_utc,
        operator=operator,
        trial_log=outcome.log_entries(),
    )


# --------------------------------------------------------------------------------------------
# A whole measurement from a device URL (what `tmsctl mt` does)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MtRequest:
    device_url: str
    subject_id: str
    coil: Coil
    method: str = "ml-pest"
    reference: str = "rMT"
    start_pct_mso: int = DEFAULT_START_PCT_MSO
    operator: str = "operator"
    stimulator_serial: str | None = None
    virtual_time: bool = False  # in-process simulators only
    max_trials: int | None = None
    settings: HuntSettings = field(default_factory=HuntSettings)
    method_note: str | None = None  # e.g. "simulated subject seed 7", appended to the recorded method
    muscle: str = "FDI"  # the target muscle, recorded with a stopped hunt


@dataclass(frozen=True)
class MtOutcome:
    hunt: HuntOutcome
    stimulator_serial: str
    recorded: Any | None  # the stored tmsctl.records.MotorThreshold, when converged and a store was given


def check_request(request: MtRequest) -> tuple[DeviceURL, str]:
    """Everything that can be refused before the device is touched: (device URL, serial)."""
    from tmsctl import records as rec
    from tmsctl.session.planned import coil_key

    if not isinstance(request.coil, Coil):
        raise InvalidArgument(f"coil must be a Coil, got {request.coil!r}", hint="use parse_coil('figure8')")
    make_procedure(  # refuses a bad start, trial count or reference before the device is touched
        request.method, start_pct_mso=request.start_pct_mso, reference=request.reference,
        max_trials=request.max_trials,
    )
    if not request.operator.strip():
        raise InvalidArgument(
            "the operator's name is recorded with the threshold and cannot be empty", hint="give --operator NAME"
        )
    device = parse(request.device_url)
    serial = stimulator_serial_for(device, request.stimulator_serial)
    if request.virtual_time and not device.is_simulator:
        clock_for(device, virtual_time=True)  # raises with the reason
    try:  # every text the threshold record will hold, checked now rather than after the pulses
        rec.MotorThreshold(
            subject_id=request.subject_id, stimulator_model="check", stimulator_serial=serial,
            coil=coil_key(request.coil), value_pct_mso=50.0, reference=rec.ThresholdReference(request.reference),
            method="check", measured_at=datetime(2000, 1, 1, tzinfo=UTC), operator=request.operator,
        )
    except rec.RecordsError as exc:
        raise InvalidArgument(f"cannot record a threshold with these details: {exc.message}", hint=exc.hint) from None
    return device, serial


def run_mt(
    request: MtRequest,
    respond: Respond,
    records: Any | None = None,
    *,
    rng: random.Random | None = None,
    listeners: Sequence[Listener] = (),
    on_connected: Callable[[DeviceInfo], None] | None = None,
    on_fired: Callable[[PendingTrial], None] | None = None,
    on_trial: Callable[[HuntTrial], None] | None = None,
    on_bad_entry: Callable[[PendingTrial, InvalidArgument], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    on_rejected: Callable[[RejectedPulse], None] | None = None,
) -> MtOutcome:
    """Hunt a motor threshold on the device named by the request and record it if it converged.

    ``rng`` draws the inter-trial jitter (a fresh unseeded ``random.Random`` if None). Raises
    :class:`HuntStopped` if the device or the operator ended the hunt early (nothing recorded).
    """
    device, serial = check_request(request)
    clock = clock_for(device, virtual_time=request.virtual_time)
    with SessionHost(device, clock, records=records, listeners=list(listeners)) as host:
        controller = host.open()
        info = host.connect()
        max_pct = min(HUNT_MAX_PCT_MSO, int(controller.driver.limits.max_intensity_pct_mso))
        procedure = make_procedure(
            request.method, start_pct_mso=request.start_pct_mso, max_pct_mso=max_pct,
            reference=request.reference, max_trials=request.max_trials,
        )
        if on_connected:
            on_connected(info)
        hunt = MtHunt(
            controller, procedure, respond, rng=rng if rng is not None else random.Random(),
            settings=request.settings, on_fired=on_fired, on_trial=on_trial, on_bad_entry=on_bad_entry,
            on_notice=on_notice, on_rejected=on_rejected, release=host.release,
        )
        try:
            outcome = hunt.run()
        except HuntStopped as stopped:
            if records is not None:
                stopped.recorded, stopped.record_error = _keep_stopped_hunt(
                    records, hunt, request, serial, info, stopped.message
                )
            raise
        except KeyboardInterrupt:  # Ctrl-C or the operator's input ended: the pulses given stay on record
            if records is not None:
                _keep_stopped_hunt(records, hunt, request, serial, info, "interrupted by the operator")
            raise
    recorded = None
    if records is not None and outcome.recordable:
        record = threshold_record(
            outcome, subject_id=request.subject_id, coil=request.coil, reference=request.reference,
            operator=request.operator, stimulator_serial=serial, method_note=request.method_note,
        )
        records.ensure_subject(request.subject_id)
        recorded = records.record_motor_threshold(record)
    return MtOutcome(outcome, serial, recorded)


def _keep_stopped_hunt(
    records: Any, hunt: MtHunt, request: MtRequest, serial: str, info: DeviceInfo, reason: str
) -> tuple[Any | None, TmsError | None]:
    """Record a stopped hunt's delivered pulses (``mt_stopped``); (record, None) or (None, why not).

    A failure to record never hides why the hunt stopped: the caller re-raises the stop either way.
    """
    from tmsctl.records.meps import MepMeasurementRecord, MepRecords
    from tmsctl.session.planned import coil_key

    if hunt.pulses_delivered == 0:
        return None, None
    log = hunt.log_so_far()
    result = {
        "method": getattr(hunt.procedure, "method", None),
        "reference": request.reference, "trials_answered": len(hunt.trials), "rejections": len(hunt.rejections),
        "start_pct_mso": request.start_pct_mso,
    }
    try:
        records.ensure_subject(request.subject_id)
        stored = MepRecords(records).record(MepMeasurementRecord(
            subject_id=request.subject_id, kind="mt_stopped", status="stopped", stimulator_model=info.model,
            stimulator_serial=serial, coil=coil_key(request.coil), muscle=request.muscle,
            pulses_delivered=hunt.pulses_delivered, trial_log=log, operator=request.operator,
            measured_at=hunt.clock.wall(), result=result, stop_reason=reason[:500] or "stopped",
        ))
    except TmsError as exc:
        return None, exc
    return stored, None
