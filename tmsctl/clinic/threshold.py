"""Motor-threshold hunting as pure, step-wise procedures a controller (or a test) drives.

A procedure never touches a device. The caller asks it for the next intensity, sets the
stimulator, fires, and records what the technician saw::

    hunt = MlPest(start_pct_mso=60, min_pct_mso=1, max_pct_mso=100)
    while not hunt.done:
        intensity = hunt.next_intensity()          # whole %MSO within [min, max]
        ...set the stimulator, fire...
        hunt.record(intensity, parse_mep_entry(technician_text))
    result = hunt.result()                         # ThresholdResult

Procedures:

* :class:`MlPest` — maximum-likelihood threshold hunting (Awiszus 2003; MTAT 2.0): the next
  intensity is the current maximum-likelihood estimate of the threshold.
* :class:`RelativeFrequency` — the IFCN relative-frequency method: the lowest intensity giving
  MEPs ≥ the criterion in at least 5 of 10 trials (10 of 20 with ``responses_required=10,
  block_size=20``).

The two-threshold (Mills–Nithi) method is not here: the reference defines its two thresholds
but not the stepping that finds them, and a hunt must not invent one silently.

Facts and test vectors: ``shared/reference/targeting.md`` §5. No randomness is used anywhere.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from tmsctl.core.errors import InvalidArgument, TmsError

__all__ = [
    "CRITERIA",
    "MAX_PLAUSIBLE_MEP_UV",
    "NOT_SEEN",
    "SEEN",
    "AmplitudeFit",
    "CountsRejectedPulses",
    "MepCriterion",
    "MepResponse",
    "MlAmplitude",
    "MlPest",
    "MuscleState",
    "RelativeFrequency",
    "ThresholdProcedure",
    "ThresholdProcedureError",
    "ThresholdResult",
    "Trial",
    "fit_amplitude_threshold",
    "parse_mep_entry",
    "round_half_up",
    "run_procedure",
]


class ThresholdProcedureError(TmsError):
    """A procedure was asked for something its state does not allow (e.g. a pulse after it ended)."""

    hint = "start a new threshold hunt"


# --------------------------------------------------------------------------------------------
# MEP criteria and responses
# --------------------------------------------------------------------------------------------


class MuscleState(StrEnum):
    REST = "rest"
    ACTIVE = "active"


@dataclass(frozen=True)
class MepCriterion:
    """Peak-to-peak amplitude an MEP must reach to count as a response."""

    muscle_state: MuscleState
    amplitude_uv: float
    source: str
    status: str


CRITERIA: dict[MuscleState, MepCriterion] = {
    MuscleState.REST: MepCriterion(
        MuscleState.REST,
        50.0,
        "Rossini et al. / IFCN: resting MT, MEPs ≥ 50 µV peak-to-peak, relaxed APB/FDI",
        "V",
    ),
    MuscleState.ACTIVE: MepCriterion(
        MuscleState.ACTIVE,
        200.0,
        "Rossini et al. 2015 (R): active MT, MEPs ≥ 200 µV during slight (10–20 % max) contraction; "
        "also the default of the FCBG MTAT wrapper (C)",
        "R/C",
    ),
}

# Resting MEPs of hand muscles stay in the low millivolts; 50 mV peak-to-peak is far beyond any
# MEP, so an entry above it is a unit slip (mV typed for µV), not a measurement. Status D.
MAX_PLAUSIBLE_MEP_UV = 50_000.0


@dataclass(frozen=True)
class MepResponse:
    """One MEP as the technician reported it: seen / not seen, or a peak-to-peak amplitude."""

    seen: bool | None = None
    amplitude_uv: float | None = None

    def __post_init__(self) -> None:
        if (self.seen is None) == (self.amplitude_uv is None):
            raise InvalidArgument(
                "an MEP response is either seen/not seen or an amplitude, exactly one of them",
                hint="use SEEN, NOT_SEEN or MepResponse.of_amplitude(uv)",
            )
        if self.seen is not None and not isinstance(self.seen, bool):
            raise InvalidArgument(f"seen must be True or False, got {self.seen!r}")
        if self.amplitude_uv is not None:
            amplitude = self.amplitude_uv
            if isinstance(amplitude, bool) or not isinstance(amplitude, int | float):
                raise InvalidArgument(f"MEP amplitude must be a number of µV, got {amplitude!r}")
            if not math.isfinite(amplitude) or amplitude < 0:
                raise InvalidArgument(
                    f"MEP peak-to-peak amplitude must be a finite number ≥ 0 µV, got {amplitude!r}"
                )
            if amplitude > MAX_PLAUSIBLE_MEP_UV:
                raise InvalidArgument(
                    f"MEP amplitude {amplitude:g} µV exceeds the plausible maximum "
                    f"{MAX_PLAUSIBLE_MEP_UV:g} µV (50 mV)",
                    hint="check the unit: 1 mV = 1000 µV",
                )
            object.__setattr__(self, "amplitude_uv", float(amplitude))

    @classmethod
    def of_amplitude(cls, amplitude_uv: float) -> MepResponse:
        return cls(amplitude_uv=amplitude_uv)

    def meets(self, criterion_uv: float) -> bool:
        """Whether this MEP counts as a response: seen, or amplitude ≥ the criterion (IFCN '≥ 50 µV')."""
        if self.seen is not None:
            return self.seen
        assert self.amplitude_uv is not None
        return self.amplitude_uv >= criterion_uv

    def describe(self) -> str:
        if self.seen is not None:
            return "seen" if self.seen else "not seen"
        return f"{self.amplitude_uv:g} µV"


SEEN = MepResponse(seen=True)
NOT_SEEN = MepResponse(seen=False)

_SEEN_WORDS = frozenset({"y", "yes", "seen", "+", "mep", "response"})
_NOT_SEEN_WORDS = frozenset(
    {"n", "no", "not seen", "not-seen", "unseen", "-", "none", "no mep", "no response"}
)
_UNIT_SCALE_TO_UV = {"uv": 1, "µv": 1, "μv": 1, "microvolt": 1, "microvolts": 1,
                     "mv": 1000, "millivolt": 1000, "millivolts": 1000}
_AMPLITUDE_PATTERN = re.compile(
    r"^(?P<sign>[-+−]?)\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[^\d\s.].*)?$"
)
_ENTRY_HINT = "type y / n (seen / not seen) or an amplitude with its unit, e.g. 65uV or 0.12 mV"


def parse_mep_entry(text: str) -> MepResponse:
    """Parse what a technician typed for one MEP.

    Accepts ``y``/``yes``/``seen``/``+`` and ``n``/``no``/``not seen``/``-`` (any case), or a
    peak-to-peak amplitude with a unit: ``65uV``, ``65 µV``, ``0.12 mV``. A number without a unit
    is refused (65 what?). Anything else raises :class:`InvalidArgument` with a hint; the hunt's
    state is untouched, so the technician can simply type the entry again.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"MEP entry must be text, got {text!r}", hint=_ENTRY_HINT)
    normalized = " ".join(text.strip().lower().split())
    if not normalized:
        raise InvalidArgument("MEP entry is empty", hint=_ENTRY_HINT)
    if normalized in _SEEN_WORDS:
        return SEEN
    if normalized in _NOT_SEEN_WORDS:
        return NOT_SEEN
    if "," in normalized:
        raise InvalidArgument(
            f"MEP entry {text.strip()!r} contains a comma", hint="use a decimal point: 0.12 mV, not 0,12 mV"
        )
    match = _AMPLITUDE_PATTERN.match(normalized)
    if match is None:
        raise InvalidArgument(f"MEP entry {text.strip()!r} was not understood", hint=_ENTRY_HINT)
    unit = (match["unit"] or "").strip()
    if not unit:
        raise InvalidArgument(
            f"MEP amplitude {text.strip()!r} has no unit",
            hint=f"add µV or mV, e.g. {match['number']}uV or {match['number']} mV",
        )
    scale = _UNIT_SCALE_TO_UV.get(unit)
    if scale is None:
        raise InvalidArgument(
            f"MEP amplitude unit {unit!r} in {text.strip()!r} is not µV or mV", hint=_ENTRY_HINT
        )
    if match["sign"] in ("-", "−"):
        raise InvalidArgument(
            f"MEP amplitude {text.strip()!r} is negative",
            hint="enter the peak-to-peak amplitude, which is never negative",
        )
    # Decimal so that "0.05 mV" is exactly 50 µV, on the criterion rather than a hair above it.
    return MepResponse.of_amplitude(float(Decimal(match["number"]) * scale))


# --------------------------------------------------------------------------------------------
# Trials and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One pulse of a hunt: where it was given, what was seen, and how it was classified."""

    index: int  # 1-based
    intensity_pct_mso: int
    response: MepResponse
    responded: bool
    estimate_pct_mso: float | None  # the procedure's threshold estimate after this trial, if it has one


@dataclass(frozen=True)
class ThresholdResult:
    """The outcome of a hunt, with its complete trial log.

    ``converged`` is True when the procedure's stop rule was met with the threshold inside the
    intensity range; ``stop_reason`` says in words why the hunt ended. ``value_pct_mso`` is None
    when the procedure has no estimate (e.g. the relative-frequency method never bracketed it).
    """

    value_pct_mso: float | None
    method: str
    trials: tuple[Trial, ...]
    converged: bool
    stop_reason: str
    muscle_state: MuscleState
    criterion_uv: float


@runtime_checkable
class CountsRejectedPulses(Protocol):
    """A procedure whose stop rule counts pulses whose MEP the EMG detector rejected (ML-PEST's
    ``max_pulses``); a hunt tells it of each one."""

    def note_rejected_pulse(self) -> None: ...


class ThresholdProcedure(Protocol):
    method: str
    min_pct_mso: int
    max_pct_mso: int
    max_trials: int

    @property
    def done(self) -> bool: ...

    @property
    def trials(self) -> tuple[Trial, ...]: ...

    def next_intensity(self) -> int: ...

    def record(self, intensity_pct_mso: int, response: MepResponse) -> Trial: ...

    def result(self) -> ThresholdResult: ...


def round_half_up(value: Fraction | float) -> int:
    """Whole %MSO for a stimulator: halves go up (47.5 → 48), never banker's rounding."""
    return math.floor(Fraction(value) + Fraction(1, 2))


# Stimulator outputs above 100 %MSO exist only as vendor "enhanced power" modes (≤ 110 %); the
# ML-PEST grid ends at 130 %MSO, so no hunt may go past it.
HIGHEST_HUNT_INTENSITY_PCT_MSO = 130


def _check_whole_pct(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(
            f"{name} must be a whole number of %MSO, got {value!r}",
            hint="stimulators take whole percent of maximum output",
        )
    return value


class _Procedure:
    """Shared bookkeeping: bounds, the planned intensity, the trial log and the stop state."""

    method: str = ""

    def __init__(
        self,
        *,
        start_pct_mso: int,
        min_pct_mso: int,
        max_pct_mso: int,
        muscle_state: MuscleState | str,
        criterion_uv: float | None,
        max_trials: int,
    ) -> None:
        self.min_pct_mso = _check_whole_pct("min_pct_mso", min_pct_mso)
        self.max_pct_mso = _check_whole_pct("max_pct_mso", max_pct_mso)
        if not 1 <= self.min_pct_mso < self.max_pct_mso <= HIGHEST_HUNT_INTENSITY_PCT_MSO:
            raise InvalidArgument(
                f"intensity range [{min_pct_mso}, {max_pct_mso}] %MSO is invalid; need "
                f"1 ≤ min < max ≤ {HIGHEST_HUNT_INTENSITY_PCT_MSO}",
            )
        start = _check_whole_pct("start_pct_mso", start_pct_mso)
        if not self.min_pct_mso <= start <= self.max_pct_mso:
            raise InvalidArgument(
                f"start intensity {start} %MSO is outside the hunt range "
                f"[{self.min_pct_mso}, {self.max_pct_mso}] %MSO",
            )
        try:
            self.muscle_state = MuscleState(muscle_state)
        except ValueError:
            raise InvalidArgument(
                f"muscle state must be 'rest' or 'active', got {muscle_state!r}"
            ) from None
        if criterion_uv is None:
            criterion_uv = CRITERIA[self.muscle_state].amplitude_uv
        if isinstance(criterion_uv, bool) or not isinstance(criterion_uv, int | float) or not (
            0 < criterion_uv <= MAX_PLAUSIBLE_MEP_UV
        ):
            raise InvalidArgument(
                f"MEP criterion must be a positive amplitude in µV, got {criterion_uv!r}",
                hint="50 µV for resting MT, 200 µV for active MT",
            )
        self.criterion_uv = float(criterion_uv)
        if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
            raise InvalidArgument(f"max_trials must be a positive whole number, got {max_trials!r}")
        self.max_trials = max_trials
        self._planned_pct_mso = start
        self._trials: list[Trial] = []
        self._stop_reason: str | None = None
        self._converged = False

    @property
    def done(self) -> bool:
        return self._stop_reason is not None

    @property
    def trials(self) -> tuple[Trial, ...]:
        return tuple(self._trials)

    def next_intensity(self) -> int:
        """The whole %MSO to give next; always within [min_pct_mso, max_pct_mso]."""
        if self.done:
            raise ThresholdProcedureError(f"{self.method} hunt has ended ({self._stop_reason})")
        return self._planned_pct_mso

    def record(self, intensity_pct_mso: int, response: MepResponse) -> Trial:
        """Record the MEP to the pulse just given at ``intensity_pct_mso`` (must be the planned one)."""
        if self.done:
            raise ThresholdProcedureError(
                f"{self.method} hunt has ended ({self._stop_reason}); the pulse was not recorded"
            )
        intensity = _check_whole_pct("intensity_pct_mso", intensity_pct_mso)
        if intensity != self._planned_pct_mso:
            raise InvalidArgument(
                f"pulse recorded at {intensity} %MSO but the hunt asked for {self._planned_pct_mso} %MSO",
                hint="set the stimulator to next_intensity() before firing; the pulse was not recorded",
            )
        if not isinstance(response, MepResponse):
            raise InvalidArgument(
                f"response must be a MepResponse, got {response!r}", hint="use parse_mep_entry(text)"
            )
        responded = response.meets(self.criterion_uv)
        self._observe(intensity, response)
        estimate = self._update(intensity, responded)
        trial = Trial(
            index=len(self._trials) + 1,
            intensity_pct_mso=intensity,
            response=response,
            responded=responded,
            estimate_pct_mso=estimate,
        )
        self._trials.append(trial)
        if not self.done and len(self._trials) >= self.max_trials:
            self._finish_at_trial_cap()
        self._after_trial()
        return trial

    def result(self) -> ThresholdResult:
        """The estimate and trial log; before the stop rule is met, a partial, unconverged result."""
        if not self._trials:
            raise ThresholdProcedureError(
                f"{self.method} hunt has no trials yet", hint="record a pulse first"
            )
        return ThresholdResult(
            value_pct_mso=self._value_pct_mso(),
            method=self.method,
            trials=tuple(self._trials),
            converged=self._converged,
            stop_reason=self._stop_reason or "stopped before the stop rule was met",
            muscle_state=self.muscle_state,
            criterion_uv=self.criterion_uv,
        )

    def _finish(self, reason: str, *, converged: bool) -> None:
        self._stop_reason = reason
        self._converged = converged

    def _after_trial(self) -> None:
        """A procedure's own stop rule on the trial count, checked after each recorded trial."""

    def _observe(self, intensity_pct_mso: int, response: MepResponse) -> None:
        """What a procedure keeps of the response itself (not only whether it met the criterion),
        before :meth:`_update`; the binary procedures keep nothing more."""

    # Implemented by each procedure.
    def _update(self, intensity_pct_mso: int, responded: bool) -> float | None:
        raise NotImplementedError

    def _finish_at_trial_cap(self) -> None:
        raise NotImplementedError

    def _value_pct_mso(self) -> float | None:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# ML-PEST (Awiszus 2003; MTAT 2.0)
# --------------------------------------------------------------------------------------------

# Parameters of the Awiszus 2003 model as implemented in BoshuoWang/TMS_Thresholding
# Functions/MLEstimation.m (version 1) and loglikelyhood.m (C).
ML_PEST_SPREAD_FRACTION = 0.07  # s = 0.07·t
ML_PEST_GRID_STEPS_PER_PCT = 5  # grid step 0.2 %MSO
ML_PEST_GRID_POINTS = 650  # t = 0.2 … 130.0 %MSO
ML_PEST_PSEUDO_NO_RESPONSE_PCT_MSO = 0.0
ML_PEST_PSEUDO_RESPONSE_PCT_MSO = 130.2  # grid maximum + one step
ML_PEST_LOG_OF_ZERO = -1e5
# "Sharing the maximum" in floating point (D): grid points within 1e-6 of the maximum tie.
ML_PEST_TIE_TOLERANCE = 1e-6
# Likelihood-ratio 95 % interval: log-likelihood within χ²₁(0.95)/2 of its maximum (D).
ML_PEST_CI_LOG_LIKELIHOOD_DROP = 3.841458820694124 / 2
ML_PEST_DEFAULT_TRIALS = 20  # MTAT practice: about 20 stimuli (C/V)

_GRID_INDICES = range(1, ML_PEST_GRID_POINTS + 1)
_GRID_PCT_MSO = tuple(k / ML_PEST_GRID_STEPS_PER_PCT for k in _GRID_INDICES)
_SQRT2 = math.sqrt(2.0)


def _log_normal_cdf(z: float) -> float:
    # erfc keeps full precision in both tails, where 1 − Φ(z) would round to 0 and hit the −1e5 floor.
    p = 0.5 * math.erfc(-z / _SQRT2)
    return math.log(p) if p > 0.0 else ML_PEST_LOG_OF_ZERO


@functools.lru_cache(maxsize=2 * (HIGHEST_HUNT_INTENSITY_PCT_MSO + 2))
def _observation_log_likelihoods(intensity_pct_mso: float, responded: bool) -> tuple[float, ...]:
    # Cached: hunts only ever use whole %MSO, so a few hundred grids serve every trial.
    sign = 1.0 if responded else -1.0
    return tuple(
        _log_normal_cdf(sign * (intensity_pct_mso - t) / (ML_PEST_SPREAD_FRACTION * t)) for t in _GRID_PCT_MSO
    )


def _initial_log_likelihood() -> tuple[float, ...]:
    no_response = _observation_log_likelihoods(ML_PEST_PSEUDO_NO_RESPONSE_PCT_MSO, False)
    response = _observation_log_likelihoods(ML_PEST_PSEUDO_RESPONSE_PCT_MSO, True)
    return tuple(a + b for a, b in zip(no_response, response, strict=True))


_INITIAL_LOG_LIKELIHOOD = _initial_log_likelihood()


class MlPest(_Procedure):
    """Maximum-likelihood threshold hunting (ML-PEST; Awiszus 2003, MTAT 2.0).

    Model: P(response | x; t) = Φ((x − t)/(0.07·t)); candidate thresholds t = 0.2 … 130.0 %MSO;
    pseudo-observations "no response at 0 %MSO" and "response at 130.2 %MSO" before the first
    pulse. After each pulse the estimate is the mean of all grid points whose log-likelihood is
    within 1e-6 of the maximum; the next intensity is that estimate rounded half up to whole
    %MSO, kept within [min, max] (the hunt cannot test outside the stimulator's range; an
    estimate outside it ends the hunt unconverged).

    Stop rules: after ``max_trials`` pulses (MTAT practice: 20); or, with ``ci_width_pct_mso``,
    as soon as the likelihood-ratio 95 % interval is at most that wide (``max_trials`` is then
    the cap, and reaching it means not converged).

    ``max_pulses`` (EMG hunts): a cap on the pulses given to the subject, counting those whose MEP
    the detector rejected (:meth:`note_rejected_pulse`) as well as the answered trials. A fixed-count
    hunt then ends with its estimate after ``max_pulses`` pulses however many were rejected, instead
    of after ``max_trials`` answered ones plus the rejected ones — the same budget spent on as many
    trials as the recording allows.
    """

    method = "ml-pest"

    def __init__(
        self,
        *,
        start_pct_mso: int,
        min_pct_mso: int = 1,
        max_pct_mso: int = 100,
        muscle_state: MuscleState | str = MuscleState.REST,
        criterion_uv: float | None = None,
        max_trials: int = ML_PEST_DEFAULT_TRIALS,
        ci_width_pct_mso: float | None = None,
        max_pulses: int | None = None,
    ) -> None:
        super().__init__(
            start_pct_mso=start_pct_mso,
            min_pct_mso=min_pct_mso,
            max_pct_mso=max_pct_mso,
            muscle_state=muscle_state,
            criterion_uv=criterion_uv,
            max_trials=max_trials,
        )
        if ci_width_pct_mso is not None and (
            isinstance(ci_width_pct_mso, bool)
            or not isinstance(ci_width_pct_mso, int | float)
            or not 0 < ci_width_pct_mso < 100
        ):
            raise InvalidArgument(
                f"ci_width_pct_mso must be a positive width in %MSO, got {ci_width_pct_mso!r}"
            )
        self.ci_width_pct_mso = None if ci_width_pct_mso is None else float(ci_width_pct_mso)
        if max_pulses is not None and (isinstance(max_pulses, bool) or not isinstance(max_pulses, int) or max_pulses < 1):
            raise InvalidArgument(f"max_pulses must be a positive whole number, got {max_pulses!r}")
        self.max_pulses = max_pulses
        self.rejected_pulses = 0
        self._log_likelihood = list(_INITIAL_LOG_LIKELIHOOD)
        self._estimate: Fraction | None = None

    @property
    def estimate_pct_mso(self) -> float | None:
        """Current maximum-likelihood threshold estimate (None before the first pulse)."""
        return None if self._estimate is None else float(self._estimate)

    def confidence_interval_pct_mso(self) -> tuple[float, float]:
        """Likelihood-ratio 95 % interval: the grid points within 1.92 log-units of the maximum."""
        peak = max(self._log_likelihood)
        inside = [
            t
            for t, ll in zip(_GRID_PCT_MSO, self._log_likelihood, strict=True)
            if ll >= peak - ML_PEST_CI_LOG_LIKELIHOOD_DROP
        ]
        return inside[0], inside[-1]

    def _update(self, intensity_pct_mso: int, responded: bool) -> float:
        contributions = _observation_log_likelihoods(float(intensity_pct_mso), responded)
        self._log_likelihood = [a + b for a, b in zip(self._log_likelihood, contributions, strict=True)]
        peak = max(self._log_likelihood)
        tied = [
            k
            for k, ll in zip(_GRID_INDICES, self._log_likelihood, strict=True)
            if ll >= peak - ML_PEST_TIE_TOLERANCE
        ]
        # Exact arithmetic on grid indices so that round-half-up sees true halves (47.5, not 47.4999…).
        self._estimate = Fraction(sum(tied), len(tied) * ML_PEST_GRID_STEPS_PER_PCT)
        self._planned_pct_mso = min(max(round_half_up(self._estimate), self.min_pct_mso), self.max_pct_mso)
        if self.ci_width_pct_mso is not None:
            low, high = self.confidence_interval_pct_mso()
            if high - low <= self.ci_width_pct_mso:
                self._finish_with_estimate(
                    f"95 % interval {low:g}–{high:g} %MSO is within {self.ci_width_pct_mso:g} %MSO"
                )
        return float(self._estimate)

    def note_rejected_pulse(self) -> None:
        """A pulse was given at the planned intensity but its MEP could not be measured: the plan
        stays; with ``max_pulses`` the pulse counts against it."""
        if self.done:
            raise ThresholdProcedureError(f"{self.method} hunt has ended ({self._stop_reason})")
        self.rejected_pulses += 1
        self._check_pulse_budget()

    def _after_trial(self) -> None:
        self._check_pulse_budget()

    def _check_pulse_budget(self) -> None:
        if self.done or self.max_pulses is None:
            return
        given = len(self._trials) + self.rejected_pulses
        if given < self.max_pulses:
            return
        if not self._trials:
            self._finish(f"all {given} pulses were rejected: no MEP was measured", converged=False)
        elif self.ci_width_pct_mso is None:
            self._finish_with_estimate(
                f"{given} pulses given ({len(self._trials)} answered, {self.rejected_pulses} rejected)"
            )
        else:
            low, high = self.confidence_interval_pct_mso()
            self._finish(
                f"pulse cap {self.max_pulses} reached with the 95 % interval {low:g}–{high:g} %MSO still wider "
                f"than {self.ci_width_pct_mso:g} %MSO",
                converged=False,
            )

    def _finish_with_estimate(self, reason: str) -> None:
        assert self._estimate is not None
        if self._estimate > self.max_pct_mso:
            self._finish(f"{reason}, but the threshold is above the maximum {self.max_pct_mso} %MSO",
                         converged=False)
        elif self._estimate < self.min_pct_mso:
            self._finish(f"{reason}, but the threshold is below the minimum {self.min_pct_mso} %MSO",
                         converged=False)
        else:
            self._finish(reason, converged=True)

    def _finish_at_trial_cap(self) -> None:
        if self.ci_width_pct_mso is None:
            self._finish_with_estimate(f"fixed count of {self.max_trials} pulses reached")
        else:
            low, high = self.confidence_interval_pct_mso()
            self._finish(
                f"trial cap {self.max_trials} reached with the 95 % interval {low:g}–{high:g} %MSO "
                f"still wider than {self.ci_width_pct_mso:g} %MSO",
                converged=False,
            )

    def _value_pct_mso(self) -> float | None:
        return self.estimate_pct_mso


# --------------------------------------------------------------------------------------------
# ML from MEP amplitudes (censored log-amplitude regression near threshold)
# --------------------------------------------------------------------------------------------

# The model's bounds (D): the foot of a recruitment curve rises by a factor e every 0.5–50 %MSO,
# and the trial-to-trial scatter of a log amplitude lies within 0.05–5 log units. They only keep the
# optimiser away from degenerate fits (a slope of zero or infinity); no fit we have seen reaches them.
ML_AMPLITUDE_SLOPE_BOUNDS = (0.02, 2.0)  # d ln(MEP)/dx, per %MSO
ML_AMPLITUDE_LOG_SD_BOUNDS = (0.05, 5.0)
# The fit needs this many amplitudes measured between the floor and the ceiling (D): with fewer the
# slope rests on one or two values, and the binary estimate (ML-PEST's) places the pulses instead.
ML_AMPLITUDE_MIN_MEASURED = 4
# Default floor and ceiling as multiples of the criterion (D): at rest 25 µV and 1 mV. Below the
# floor a recorded peak-to-peak is mostly the EMG's own noise (a few µV RMS give 15–20 µV peak to
# peak in a 35 ms window); above the ceiling the recruitment curve bends towards its plateau and is
# no longer exponential. Both are used as censoring bounds: "below 25 µV", "above 1 mV".
ML_AMPLITUDE_FLOOR_FRACTION = 0.5
ML_AMPLITUDE_CEILING_FACTOR = 20.0


@dataclass(frozen=True)
class AmplitudeFit:
    """The censored log-amplitude model fitted to a hunt's MEPs (see :class:`MlAmplitude`)."""

    threshold_pct_mso: float
    slope_per_pct_mso: float  # d ln(MEP)/dx at threshold
    log_sd: float  # SD of ln(MEP) about the line
    measured: int  # amplitudes between the floor and the ceiling (the rest are censored)
    censored: int

    @property
    def spread_pct_mso(self) -> float:
        """The scatter expressed on the intensity axis, log_sd / slope: P(MEP ≥ criterion | x) =
        Φ((x − threshold) / spread)."""
        return self.log_sd / self.slope_per_pct_mso

    def describe(self) -> str:
        return (f"amplitude fit: threshold {self.threshold_pct_mso:.2f} %MSO, MEP ×e per "
                f"{1 / self.slope_per_pct_mso:.2g} %MSO, spread {self.spread_pct_mso:.2g} %MSO, "
                f"{self.measured} amplitudes measured, {self.censored} censored")


def fit_amplitude_threshold(
    observations: Sequence[tuple[float, str, float]], *, criterion_uv: float, start_pct_mso: float
) -> AmplitudeFit | None:
    """Maximum-likelihood fit of ln(MEP) = ln(criterion) + β·(x − T) + ε, ε ~ N(0, s²), to
    observations ``(x, kind, log_bound)``: kind "at" (the log amplitude itself), "below" or
    "above" (censored: the log amplitude is below / at least the bound). None when the data
    do not determine it (no MEP on one side of the criterion, or the optimiser fails).

    T is the IFCN threshold by construction: P(MEP ≥ criterion | x) = Φ(β·(x − T)/s) is ½ at T.
    """
    log_criterion = math.log(criterion_uv)
    above = sum(1 for _, kind, bound in observations if kind != "below" and bound >= log_criterion)
    below = sum(1 for _, kind, bound in observations if kind != "above" and bound < log_criterion)
    measured = sum(1 for _, kind, _ in observations if kind == "at")
    if not above or not below or measured < ML_AMPLITUDE_MIN_MEASURED:
        return None
    try:
        import numpy as np
        from scipy.optimize import minimize
        from scipy.special import log_ndtr
    except ImportError:  # pragma: no cover - scipy comes with the clinic extras
        raise InvalidArgument(
            "the ml-amplitude threshold method needs scipy", hint="pip install 'tmsctl[clinic]', or use --method ml-pest"
        ) from None
    x = np.array([o[0] for o in observations], dtype=float)
    kinds = [o[1] for o in observations]
    y = np.array([o[2] for o in observations], dtype=float)
    at = np.array([k == "at" for k in kinds])
    low = np.array([k == "below" for k in kinds])
    high = np.array([k == "above" for k in kinds])
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def negative_log_likelihood(theta: Any) -> float:
        threshold, log_slope, log_sd = theta
        slope, sd = math.exp(log_slope), math.exp(log_sd)
        z = (y - (log_criterion + slope * (x - threshold))) / sd
        total = float(np.sum(0.5 * z[at] ** 2 + half_log_2pi + log_sd))
        total -= float(np.sum(log_ndtr(z[high] * -1.0))) + float(np.sum(log_ndtr(z[low])))
        return total

    slope_bounds = (math.log(ML_AMPLITUDE_SLOPE_BOUNDS[0]), math.log(ML_AMPLITUDE_SLOPE_BOUNDS[1]))
    sd_bounds = (math.log(ML_AMPLITUDE_LOG_SD_BOUNDS[0]), math.log(ML_AMPLITUDE_LOG_SD_BOUNDS[1]))
    best = None
    for slope0 in (0.1, 0.3):
        solution = minimize(
            negative_log_likelihood, np.array([start_pct_mso, math.log(slope0), math.log(0.8)]),
            method="L-BFGS-B",
            bounds=[(float(x.min()) - 20.0, float(x.max()) + 20.0), slope_bounds, sd_bounds],
        )
        if np.all(np.isfinite(solution.x)) and (best is None or solution.fun < best.fun):
            best = solution
    if best is None:
        return None
    threshold, log_slope, log_sd = (float(v) for v in best.x)
    return AmplitudeFit(threshold, math.exp(log_slope), math.exp(log_sd), measured, len(observations) - measured)


class MlAmplitude(MlPest):
    """Maximum-likelihood threshold from the MEP *amplitudes* (not only whether each reached the criterion).

    ML-PEST keeps one bit of every pulse — MEP ≥ 50 µV or not — so even with every pulse at the
    threshold its error SD is 1.25·σ/√n (σ the intensity-axis spread of the response curve).
    The amplitude says more: near threshold the recruitment curve's foot is exponential in the
    intensity, and a trial-to-trial shift η of excitability on the intensity axis (Goetz et al. 2014,
    Brain Stimul 7:541, the "two variability sources" model; also the model behind Wang, Peterchev
    & Goetz 2023, J Neural Eng 20(5), doi:10.1088/1741-2552/acf1cc) moves ln(MEP) by β·η. So, near threshold,

        ln MEP = ln(criterion) + β·(x − T) + ε,   ε ~ N(0, s²)

    and P(MEP ≥ criterion | x) = Φ((x − T)/(s/β)): T *is* the IFCN threshold (50 % of pulses give a
    criterion MEP), the value this procedure reports. T, β and s are fitted to each hunt's own
    MEPs by maximum likelihood — nothing about the subject is given. Amplitudes below
    ``floor_uv`` (the EMG's noise, not the MEP) or above ``ceiling_uv`` (where the curve bends
    towards its plateau) enter as censored values, "below the floor" / "above the ceiling" (a Tobit
    model; Tobin 1958); a technician's seen / not seen enters as "at least / below the criterion".
    A hunt typed as seen / not seen alone has no measured amplitude and so is ML-PEST throughout.

    Pulses: each goes to the current estimate rounded half up (as ML-PEST), the binary ML-PEST
    estimate until the amplitudes determine the fit (an MEP on each side of the criterion and
    ``ML_AMPLITUDE_MIN_MEASURED`` measured amplitudes). Stop rules: ML-PEST's fixed count
    (``max_trials``) and pulse budget (``max_pulses``); no interval rule. The result's
    ``stop_reason`` carries the fit (slope, spread, censored count); a hunt whose amplitudes
    never determine the fit reports the binary estimate and says so.
    """

    method = "ml-amplitude"

    def __init__(
        self,
        *,
        start_pct_mso: int,
        min_pct_mso: int = 1,
        max_pct_mso: int = 100,
        muscle_state: MuscleState | str = MuscleState.REST,
        criterion_uv: float | None = None,
        max_trials: int = ML_PEST_DEFAULT_TRIALS,
        max_pulses: int | None = None,
        floor_uv: float | None = None,
        ceiling_uv: float | None = None,
    ) -> None:
        super().__init__(
            start_pct_mso=start_pct_mso, min_pct_mso=min_pct_mso, max_pct_mso=max_pct_mso,
            muscle_state=muscle_state, criterion_uv=criterion_uv, max_trials=max_trials, max_pulses=max_pulses,
        )
        floor = ML_AMPLITUDE_FLOOR_FRACTION * self.criterion_uv if floor_uv is None else floor_uv
        ceiling = ML_AMPLITUDE_CEILING_FACTOR * self.criterion_uv if ceiling_uv is None else ceiling_uv
        for name, value in (("floor_uv", floor), ("ceiling_uv", ceiling)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise InvalidArgument(f"{name} must be a positive amplitude in µV, got {value!r}")
        if not floor < self.criterion_uv < ceiling:
            raise InvalidArgument(
                f"the amplitude floor {floor:g} µV and ceiling {ceiling:g} µV must lie either side of the "
                f"criterion {self.criterion_uv:g} µV",
                hint="e.g. a floor of half the criterion and a ceiling of twenty times it",
            )
        self.floor_uv = float(floor)
        self.ceiling_uv = float(ceiling)
        self._observations: list[tuple[float, str, float]] = []
        self._fit: AmplitudeFit | None = None

    @property
    def fit(self) -> AmplitudeFit | None:
        """The amplitude fit after the last pulse (None while the amplitudes do not determine it)."""
        return self._fit

    def _observe(self, intensity_pct_mso: int, response: MepResponse) -> None:
        x = float(intensity_pct_mso)
        if response.amplitude_uv is None:
            kind = "above" if response.seen else "below"
            self._observations.append((x, kind, math.log(self.criterion_uv)))
        elif response.amplitude_uv < self.floor_uv:
            self._observations.append((x, "below", math.log(self.floor_uv)))
        elif response.amplitude_uv > self.ceiling_uv:
            self._observations.append((x, "above", math.log(self.ceiling_uv)))
        else:
            self._observations.append((x, "at", math.log(response.amplitude_uv)))

    def _update(self, intensity_pct_mso: int, responded: bool) -> float:
        binary = super()._update(intensity_pct_mso, responded)  # the binary likelihood and its estimate
        start = binary if self._fit is None else self._fit.threshold_pct_mso
        self._fit = fit_amplitude_threshold(self._observations, criterion_uv=self.criterion_uv, start_pct_mso=start)
        if self._fit is None:
            return binary
        # Exact halves as ML-PEST: the fitted value on the 0.2 %MSO grid is not needed; a Fraction
        # of the float keeps round_half_up exact for it.
        self._estimate = Fraction(self._fit.threshold_pct_mso)
        self._planned_pct_mso = min(max(round_half_up(self._estimate), self.min_pct_mso), self.max_pct_mso)
        return self._fit.threshold_pct_mso

    def _finish(self, reason: str, *, converged: bool) -> None:
        words = self._fit.describe() if self._fit is not None else (
            "the amplitudes did not determine the fit: the binary (ML-PEST) estimate")
        super()._finish(f"{reason}; {words}", converged=converged)


# --------------------------------------------------------------------------------------------
# Relative frequency (IFCN 5 of 10)
# --------------------------------------------------------------------------------------------


class _Phase(StrEnum):
    ASCENDING = "ascending"
    DESCENDING = "descending"


RELATIVE_FREQUENCY_DEFAULT_MAX_TRIALS = 200


class RelativeFrequency(_Procedure):
    """IFCN relative-frequency method (resting MT: MEPs ≥ 50 µV in ≥ 5 of 10 trials).

    Procedure (reference §5, V): from the start intensity, raise in 5 %MSO steps until a level
    gives at least 5 responses in 10 trials; then lower in 1 %MSO steps until a level gives fewer
    than 5 of 10; MT = that level + 1 %MSO (the lowest level that gave at least 5 of 10). A start
    that already gives 5 of 10 descends straight away (the usual start just above the hot-spot
    intensity).

    Each level's block ends as soon as its outcome is decided — at the 5th response, or at the
    6th non-response — which gives the same decision as ten pulses with fewer pulses to the
    subject (as BoshuoWang/TMS_Thresholding IFCNmethod.m does, C). Ascending steps that would
    pass the maximum test the maximum itself.
    """

    def __init__(
        self,
        *,
        start_pct_mso: int,
        min_pct_mso: int = 1,
        max_pct_mso: int = 100,
        muscle_state: MuscleState | str = MuscleState.REST,
        criterion_uv: float | None = None,
        responses_required: int = 5,
        block_size: int = 10,
        ascend_step_pct_mso: int = 5,
        descend_step_pct_mso: int = 1,
        max_trials: int = RELATIVE_FREQUENCY_DEFAULT_MAX_TRIALS,
    ) -> None:
        super().__init__(
            start_pct_mso=start_pct_mso,
            min_pct_mso=min_pct_mso,
            max_pct_mso=max_pct_mso,
            muscle_state=muscle_state,
            criterion_uv=criterion_uv,
            max_trials=max_trials,
        )
        for name, value in (
            ("responses_required", responses_required),
            ("block_size", block_size),
            ("ascend_step_pct_mso", ascend_step_pct_mso),
            ("descend_step_pct_mso", descend_step_pct_mso),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{name} must be a positive whole number, got {value!r}")
        if responses_required > block_size:
            raise InvalidArgument(
                f"responses_required {responses_required} exceeds block_size {block_size}",
                hint="the IFCN rule is 5 of 10 (or 10 of 20)",
            )
        self.responses_required = responses_required
        self.block_size = block_size
        self.ascend_step_pct_mso = ascend_step_pct_mso
        self.descend_step_pct_mso = descend_step_pct_mso
        self.method = f"relative-frequency-{responses_required}-of-{block_size}"
        self._phase = _Phase.ASCENDING
        self._block_responses = 0
        self._block_misses = 0
        self._lowest_positive_pct_mso: int | None = None
        self._value: float | None = None

    @property
    def phase(self) -> str:
        return self._phase.value

    def _update(self, intensity_pct_mso: int, responded: bool) -> None:
        if responded:
            self._block_responses += 1
        else:
            self._block_misses += 1
        if self._block_responses >= self.responses_required:
            self._block_ended(intensity_pct_mso, positive=True)
        elif self._block_misses > self.block_size - self.responses_required:
            self._block_ended(intensity_pct_mso, positive=False)
        return None

    def _block_ended(self, level: int, *, positive: bool) -> None:
        self._block_responses = 0
        self._block_misses = 0
        rule = f"{self.responses_required} of {self.block_size}"
        if positive:
            self._lowest_positive_pct_mso = level
            self._phase = _Phase.DESCENDING
            lower = level - self.descend_step_pct_mso
            if lower < self.min_pct_mso:
                self._finish(
                    f"at least {rule} responses at the minimum {level} %MSO: the threshold is at or "
                    "below the hunt range",
                    converged=False,
                )
            else:
                self._planned_pct_mso = lower
            return
        if self._phase is _Phase.DESCENDING:
            self._value = float(level + self.descend_step_pct_mso)
            self._finish(
                f"fewer than {rule} responses at {level} %MSO and at least {rule} at "
                f"{level + self.descend_step_pct_mso} %MSO",
                converged=True,
            )
            return
        if level >= self.max_pct_mso:
            self._finish(
                f"fewer than {rule} responses at the maximum {level} %MSO: the threshold is above the "
                "hunt range",
                converged=False,
            )
            return
        self._planned_pct_mso = min(level + self.ascend_step_pct_mso, self.max_pct_mso)

    def _finish_at_trial_cap(self) -> None:
        self._finish(
            f"trial cap {self.max_trials} reached before the threshold was bracketed", converged=False
        )

    def _value_pct_mso(self) -> float | None:
        return self._value


# --------------------------------------------------------------------------------------------
# Driving a procedure
# --------------------------------------------------------------------------------------------


def run_procedure(
    procedure: ThresholdProcedure, respond: Callable[[int], MepResponse]
) -> ThresholdResult:
    """Drive ``procedure`` to its end, asking ``respond(intensity_pct_mso)`` for each MEP.

    ``respond`` stands in for "set, fire, read the MEP": a simulated subject in tests, the
    controller plus technician in a session.
    """
    while not procedure.done:
        intensity = procedure.next_intensity()
        procedure.record(intensity, respond(intensity))
    return procedure.result()
