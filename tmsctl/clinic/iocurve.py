"""Input–output (recruitment) curves: single pulses at planned intensities, MEPs from EMG, a Boltzmann fit.

The plan: intensities at ``levels_pct_rmt`` of the resting motor threshold (90–150 % rMT in steps
of 10 by default), each rounded half up to whole %MSO, ``pulses_per_level`` pulses each, all in
one seeded random order (so fatigue or drift does not line up with intensity). The pulses are
given by :class:`~tmsctl.clinic.mt_session.MtHunt` — the same delivery, keep-alive, fail-safe disarm and
rejection handling as a threshold hunt: a rejected trial (pre-activation, after-activity, a gap)
is given again at the same intensity, and too many stop the curve, disarmed.

The adaptive upper range (:class:`UpperRange`, on by default in :class:`IoCurveRequest`): a subject
whose S50 lies above 150 % rMT shows no plateau in the planned levels, and a curve without its
plateau gives S50 and the slope only by extrapolation. So after the planned pulses, while the fit
reaches less than 90 % of its MEPmax at the top intensity given, one more level 10 % rMT above it
(``pulses_per_level`` pulses, all at that level), up to a cap that is the lowest of 200 % rMT, the
stimulator's maximum and 100 %MSO. Each added intensity passes the planned ones' checks before it
is planned, the controller's intensity cap is the cap from the first pulse, and the record's
``result["upper_range"]`` keeps what was added and why it ended (benchmarks/bench_io_curve.py: 88 %
→ 95 % of subjects with S50 within 3 %MSO and the slope within 25 %).

The fit (:func:`fit_boltzmann`): the Boltzmann sigmoid

    MEP(x) = MEPmax / (1 + exp(k·(S50 − x))) + baseline

on the *logarithm* of every accepted trial's amplitude. ``k`` is the slope in 1/%MSO (the steepest
gain is MEPmax·k/4 µV per %MSO).

* ``scale="two-source"`` (the default): maximum likelihood with the two variability sources of
  Goetz, Luber, Lisanby & Peterchev 2014 (Brain Stimul 7:541–552, "A novel model incorporating two
  variability sources for describing motor evoked potentials"): a trial-to-trial shift of
  excitability on the *intensity* axis (SD σx %MSO) and a multiplicative one on the amplitude
  (SD σy in log units). A log amplitude at x then scatters about the curve with variance
  σy² + (d log MEP/dx)²·σx²: widely on the rising limb, where a small shift of excitability moves
  the MEP by a factor of several, and little on the plateau. Least squares assumes one spread
  everywhere, so it lets the rising limb's scatter pull S50 and the slope (it recovered 75 % of
  the benchmark's subjects to 3 %MSO / 25 %; this fit 88 %, and 94.5 % of those whose S50 lies
  within the sampled intensities). σx and σy are fitted with the curve (``BoltzmannFit.notes``
  report them); 95 % intervals from the inverse Hessian of the log-likelihood (Student's t on
  n − 6 degrees of freedom; MEPmax, the slope and the baseline on their log scale). Those
  intervals are too narrow at 10 pulses per intensity: they covered the true S50 for 80–84 % of
  the benchmark's subjects, not 95 % (the log least-squares intervals: 91 %).
* ``scale="log"``: least squares on the log amplitudes (scipy's ``curve_fit``): MEP variability
  taken as multiplicative only. ``scale="linear"``: least squares on the amplitudes themselves (the
  common alternative). 95 % intervals from the fit's covariance with Student's t on n − 4 degrees of
  freedom. benchmarks/bench_io_curve.py prints all three.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tmsctl.clinic.stopped import MeasurementStopped
from tmsctl.clinic.threshold import MepResponse, round_half_up
from tmsctl.core.errors import InvalidArgument, TmsError

__all__ = [
    "DEFAULT_LEVELS_PCT_RMT",
    "FIT_SCALES",
    "BoltzmannFit",
    "FitFailed",
    "IoCurvePlan",
    "IoCurveProcedure",
    "UpperRange",
    "fit_boltzmann",
    "plateau_shown",
]

DEFAULT_LEVELS_PCT_RMT = (90.0, 100.0, 110.0, 120.0, 130.0, 140.0, 150.0)
DEFAULT_PULSES_PER_LEVEL = 10
# The adaptive upper range (UpperRange), status D: steps of 10 % rMT as the plan's own, up to twice the
# rMT (recruitment curves in the literature run to 150–200 % rMT or 100 %MSO), plateau at 90 % of MEPmax.
DEFAULT_EXTENSION_STEP_PCT_RMT = 10.0
DEFAULT_EXTENSION_CAP_PCT_RMT = 200.0
DEFAULT_PLATEAU_FRACTION = 0.9
# Below this no amplitude is meaningful on a log scale (an EMG noise floor is a few µV).
_LOG_FLOOR_UV = 1.0


class FitFailed(TmsError):
    hint = "give more pulses per intensity or a wider intensity range (the curve must rise within it)"


@dataclass(frozen=True)
class IoCurvePlan:
    rmt_pct_mso: float
    levels_pct_rmt: tuple[float, ...] = DEFAULT_LEVELS_PCT_RMT
    pulses_per_level: int = DEFAULT_PULSES_PER_LEVEL
    max_pct_mso: int = 100

    def __post_init__(self) -> None:
        rmt = self.rmt_pct_mso
        if isinstance(rmt, bool) or not isinstance(rmt, int | float) or not 0 < rmt <= 100:
            raise InvalidArgument(f"the resting motor threshold must be within (0, 100] %MSO, got {rmt!r}")
        levels = tuple(self.levels_pct_rmt)
        if len(levels) < 4:
            raise InvalidArgument(
                f"a curve needs at least 4 intensities to fit its 4 parameters, got {len(levels)}",
                hint="e.g. --levels 90,100,110,120,130,140,150",
            )
        if any(isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 300 for v in levels):
            raise InvalidArgument(f"intensity levels are % rMT within (0, 300], got {levels!r}")
        object.__setattr__(self, "levels_pct_rmt", levels)
        n = self.pulses_per_level
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 50:
            raise InvalidArgument(f"pulses per intensity must be a whole number within 1–50, got {n!r}")
        intensities = self.intensities_pct_mso
        if len(set(intensities)) != len(intensities):
            raise InvalidArgument(
                f"levels {', '.join(f'{v:g}' for v in levels)} % rMT of {rmt:g} %MSO round to the same %MSO "
                f"({', '.join(map(str, intensities))})",
                hint="space the levels further apart",
            )
        too_high = [i for i in intensities if i > self.max_pct_mso]
        if too_high:
            raise InvalidArgument(
                f"{max(levels):g} % rMT of {rmt:g} %MSO is {max(intensities)} %MSO, above this stimulator's "
                f"{self.max_pct_mso} %MSO",
                hint="lower the top level (--levels) so every intensity is within the stimulator's output",
            )

    @property
    def intensities_pct_mso(self) -> tuple[int, ...]:
        return tuple(round_half_up(self.rmt_pct_mso * level / 100.0) for level in self.levels_pct_rmt)

    @property
    def total_pulses(self) -> int:
        return len(self.levels_pct_rmt) * self.pulses_per_level

    def sequence(self, rng: random.Random) -> tuple[int, ...]:
        """Every planned pulse's intensity in one random order."""
        order = [i for i in self.intensities_pct_mso for _ in range(self.pulses_per_level)]
        rng.shuffle(order)
        return tuple(order)


@dataclass(frozen=True)
class UpperRange:
    """The adaptive upper range: when the curve shows no plateau at its top intensity, one more
    level ``step_pct_rmt`` above it (``pulses_per_level`` pulses), and again, until the plateau shows
    or the next level would pass the cap.

    The cap is the lowest of ``cap_pct_rmt`` of the rMT, the stimulator's own maximum and the hunts'
    ceiling (``HUNT_MAX_PCT_MSO``, 100 %MSO: no enhanced-power pulses). Every added intensity is
    checked as the planned ones are (whole %MSO, within the stimulator's maximum) before it joins
    the plan, and the controller's intensity cap is set to the cap before the first pulse, so it
    refuses anything above it whatever the procedure asks.

    "The plateau shows": the two-source Boltzmann fit of every trial so far reaches at least
    ``plateau_fraction`` of its rise (MEPmax) at the top intensity given, i.e. the top lies at least
    ln(f/(1 − f))/k above the fitted S50 (2.2/k for 90 %). A curve that cannot be fitted yet shows
    no plateau.
    """

    step_pct_rmt: float = DEFAULT_EXTENSION_STEP_PCT_RMT
    cap_pct_rmt: float = DEFAULT_EXTENSION_CAP_PCT_RMT
    plateau_fraction: float = DEFAULT_PLATEAU_FRACTION

    def __post_init__(self) -> None:
        for name, value, low, high in (("step_pct_rmt", self.step_pct_rmt, 0.0, 100.0),
                                       ("cap_pct_rmt", self.cap_pct_rmt, 0.0, 300.0),
                                       ("plateau_fraction", self.plateau_fraction, 0.5, 1.0)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not low < value < high + (
                    0 if name == "plateau_fraction" else 1e-9):
                raise InvalidArgument(f"the upper range's {name} must lie within ({low:g}, {high:g}), got {value!r}",
                                      hint="e.g. steps of 10 % rMT up to 200 % rMT, plateau at 90 % of MEPmax")

    def cap_pct_mso(self, rmt_pct_mso: float, max_pct_mso: int) -> int:
        """The highest intensity the curve may reach: never above the stimulator's (or the hunts') maximum."""
        return min(int(max_pct_mso), math.floor(rmt_pct_mso * self.cap_pct_rmt / 100.0 + 1e-9))


def plateau_shown(points: Sequence[tuple[float, float]], top_pct_mso: float, *, fraction: float,
                  scale: str = "two-source") -> tuple[bool, str]:
    """Whether the fitted curve reaches ``fraction`` of MEPmax at ``top_pct_mso`` (see :class:`UpperRange`),
    with the words that say why."""
    try:
        fit = fit_boltzmann(points, scale=scale)
    except FitFailed as exc:
        return False, f"no fit yet ({exc.message})"
    s50, k = fit.s50_pct_mso.value, fit.slope_per_pct_mso.value
    reached = 1.0 / (1.0 + math.exp(min(k * (s50 - top_pct_mso), 700.0)))
    words = (f"the fit reaches {100 * reached:.0f} % of MEPmax at {top_pct_mso:g} %MSO "
             f"(S50 {s50:.1f} %MSO, slope {k:.3g}/%MSO)")
    return reached >= fraction, words


@dataclass(frozen=True)
class _Trial:
    index: int
    intensity_pct_mso: int
    amplitude_uv: float
    responded: bool
    estimate_pct_mso: float | None = None


@dataclass(frozen=True)
class SeriesResult:
    """What a pulse series procedure hands back (the hunt's ``result``)."""

    method: str
    trials: tuple[_Trial, ...]
    converged: bool
    stop_reason: str
    value_pct_mso: float | None = None


class IoCurveProcedure:
    """The pulse plan as a :class:`~tmsctl.clinic.mt_session.MtHunt` procedure: the intensities in the planned
    order; a rejected trial leaves the plan where it was, so the same intensity is given again."""

    method = "io-curve"

    def __init__(self, sequence: Sequence[int], *, max_pct_mso: int, criterion_uv: float = 50.0,
                 plan: IoCurvePlan | None = None, upper: UpperRange | None = None,
                 fit_scale: str = "two-source") -> None:
        if not sequence:
            raise InvalidArgument("an input–output curve needs at least one planned pulse")
        _check_intensities(sequence, max_pct_mso)
        if upper is not None and plan is None:
            raise InvalidArgument("an adaptive upper range extends a plan: give the plan")
        self.sequence = tuple(sequence)
        self.criterion_uv = criterion_uv
        self.trials: list[_Trial] = []
        self.plan = plan
        self.upper = upper
        self.fit_scale = fit_scale
        self.extension_levels_pct_rmt: list[float] = []
        self.extension_intensities_pct_mso: list[int] = []
        self.extension_outcome: str | None = None
        self._candidates: list[tuple[float, int]] = []
        self.cap_pct_mso = max(self.sequence)
        if upper is not None and plan is not None:
            self.cap_pct_mso = max(self.cap_pct_mso, upper.cap_pct_mso(plan.rmt_pct_mso, max_pct_mso))
            self._candidates = _extension_levels(plan, upper, self.cap_pct_mso, max(self.sequence))
            # every added intensity is checked as the planned ones were, before any pulse
            _check_intensities([i for _, i in self._candidates], max_pct_mso)
        # The controller's intensity cap (MtHunt sets it from this): the highest the curve may ever reach.
        self.max_pct_mso = self.cap_pct_mso
        per_level = plan.pulses_per_level if plan is not None else 0
        self.max_trials = len(self.sequence) + per_level * len(self._candidates)

    @property
    def done(self) -> bool:
        return len(self.trials) >= len(self.sequence)

    def next_intensity(self) -> int:
        if self.done:
            raise InvalidArgument("the input–output curve's plan is complete")
        return self.sequence[len(self.trials)]

    def record(self, intensity_pct_mso: int, response: MepResponse) -> _Trial:
        expected = self.next_intensity()
        if intensity_pct_mso != expected:
            raise InvalidArgument(f"the plan's next pulse is at {expected} %MSO, not {intensity_pct_mso}")
        if response.amplitude_uv is None:
            raise InvalidArgument("an input–output curve needs measured MEP amplitudes, not seen/not seen",
                                  hint="measure the MEPs from EMG (--emg)")
        trial = _Trial(len(self.trials) + 1, intensity_pct_mso, float(response.amplitude_uv),
                       response.amplitude_uv >= self.criterion_uv)
        self.trials.append(trial)
        if self.upper is not None and len(self.trials) == len(self.sequence):
            self._extend_or_end()
        return trial

    def _extend_or_end(self) -> None:
        """At the end of the plan so far: one more level above it when the curve shows no plateau."""
        assert self.upper is not None and self.plan is not None
        top = max(self.sequence)
        shown, words = plateau_shown(self.points(), top, fraction=self.upper.plateau_fraction, scale=self.fit_scale)
        if shown:
            self.extension_outcome = f"plateau at {top} %MSO: {words}"
            return
        if not self._candidates:
            self.extension_outcome = (f"no plateau by the cap {self.cap_pct_mso} %MSO (the lowest of "
                                      f"{self.upper.cap_pct_rmt:g} % rMT and the stimulator's maximum): {words}")
            return
        level, intensity = self._candidates.pop(0)
        self.extension_levels_pct_rmt.append(level)
        self.extension_intensities_pct_mso.append(intensity)
        self.sequence = self.sequence + (intensity,) * self.plan.pulses_per_level

    def extension_record(self) -> dict[str, Any] | None:
        """What the adaptive upper range did, for the record (None when it was off)."""
        if self.upper is None:
            return None
        return {
            "step_pct_rmt": self.upper.step_pct_rmt, "cap_pct_rmt": self.upper.cap_pct_rmt,
            "cap_pct_mso": self.cap_pct_mso, "plateau_fraction": self.upper.plateau_fraction,
            "levels_added_pct_rmt": list(self.extension_levels_pct_rmt),
            "intensities_added_pct_mso": list(self.extension_intensities_pct_mso),
            "outcome": self.extension_outcome or "stopped before the plan's end",
            "safety": (f"every added intensity was checked as the planned ones (whole %MSO, within the "
                       f"stimulator's maximum) and the controller refused any intensity above "
                       f"{self.cap_pct_mso} %MSO"),
        }

    def points(self) -> tuple[tuple[int, float], ...]:
        return tuple((t.intensity_pct_mso, t.amplitude_uv) for t in self.trials)

    def result(self) -> SeriesResult:
        return SeriesResult(self.method, tuple(self.trials), self.done,
                            "every planned pulse measured" if self.done else "stopped before the plan's end")


def _check_intensities(intensities: Sequence[int], max_pct_mso: int) -> None:
    """The checks every intensity of a curve passes before it is planned, added ones included."""
    for intensity in intensities:
        if isinstance(intensity, bool) or not isinstance(intensity, int) or intensity < 1:
            raise InvalidArgument(f"a curve's intensities are whole %MSO ≥ 1, got {intensity!r}")
        if intensity > max_pct_mso:
            raise InvalidArgument(f"the plan reaches {intensity} %MSO, above {max_pct_mso} %MSO")


def _extension_levels(plan: IoCurvePlan, upper: UpperRange, cap_pct_mso: int, top_pct_mso: int) -> list[tuple[float, int]]:
    """The levels (% rMT, %MSO) the upper range may add, in order, none above the cap; a level that
    rounds to an intensity already given is passed over."""
    levels: list[tuple[float, int]] = []
    level, highest = max(plan.levels_pct_rmt), top_pct_mso
    while True:
        level = round(level + upper.step_pct_rmt, 6)
        intensity = round_half_up(plan.rmt_pct_mso * level / 100.0)
        if intensity > cap_pct_mso:
            return levels
        if intensity > highest:
            levels.append((level, intensity))
            highest = intensity


# -- the fit ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float  # 95 % confidence interval
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": round(self.value, 4), "ci95_low": round(self.low, 4), "ci95_high": round(self.high, 4)}


@dataclass(frozen=True)
class BoltzmannFit:
    mep_max_uv: Estimate
    s50_pct_mso: Estimate
    slope_per_pct_mso: Estimate
    baseline_uv: Estimate
    scale: str
    n: int
    residual_sd: float  # in the fitted scale (log and two-source: natural-log units)
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Two-source fit only: the trial-to-trial spread of excitability (%MSO) and of amplitude (log units).
    intensity_sd_pct_mso: float | None = None
    amplitude_sd_log: float | None = None

    def predict_uv(self, x: float) -> float:
        return _boltzmann(x, self.mep_max_uv.value, self.s50_pct_mso.value, self.slope_per_pct_mso.value,
                          self.baseline_uv.value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": "MEP = MEPmax / (1 + exp(k (S50 - x))) + baseline",
            "scale": self.scale, "n": self.n, "residual_sd": round(self.residual_sd, 5),
            "mep_max_uv": self.mep_max_uv.as_dict(), "s50_pct_mso": self.s50_pct_mso.as_dict(),
            "slope_per_pct_mso": self.slope_per_pct_mso.as_dict(), "baseline_uv": self.baseline_uv.as_dict(),
            "notes": list(self.notes),
            **({} if self.intensity_sd_pct_mso is None else {
                "intensity_sd_pct_mso": round(self.intensity_sd_pct_mso, 4),
                "amplitude_sd_log": None if self.amplitude_sd_log is None else round(self.amplitude_sd_log, 4)}),
        }


def _boltzmann(x: Any, mep_max: float, s50: float, k: float, baseline: float) -> Any:
    import numpy as np

    return mep_max / (1.0 + np.exp(np.clip(k * (s50 - x), -700.0, 700.0))) + baseline


FIT_SCALES = ("two-source", "log", "linear")


def fit_boltzmann(points: Sequence[tuple[float, float]], *, scale: str = "two-source") -> BoltzmannFit:
    """Fit the Boltzmann sigmoid to (intensity %MSO, amplitude µV) trials; see the module docstring."""
    try:
        import numpy as np
        from scipy import stats
        from scipy.optimize import curve_fit
    except ImportError:  # pragma: no cover - depends on the installation
        raise InvalidArgument("fitting a recruitment curve needs scipy",
                              hint="pip install 'tmsctl[clinic]'") from None
    if scale not in FIT_SCALES:
        raise InvalidArgument(f"fit scale must be one of {', '.join(FIT_SCALES)}, got {scale!r}")
    x = np.array([float(p[0]) for p in points])
    y = np.array([float(p[1]) for p in points])
    if len(x) < 8 or len(set(x.tolist())) < 4:
        raise FitFailed(f"{len(x)} trials at {len(set(x.tolist()))} intensities are too few to fit 4 parameters")
    if not (np.all(np.isfinite(y)) and np.all(y >= 0)):
        raise FitFailed("MEP amplitudes must be finite and ≥ 0 µV")
    span = float(x.max() - x.min())
    top = float(np.quantile(y, 0.95))
    p0 = [max(top, 1.0), float(np.median(x)), 4.0 / span, max(float(np.quantile(y, 0.05)), _LOG_FLOOR_UV)]
    # S50 may lie beyond the sampled range, but not absurdly far; the slope within what muscles show.
    lower = [1.0, float(x.min()) - span, 0.2 / span, 0.0]
    upper = [max(50_000.0, top * 10), float(x.max()) + span, 5.0, max(float(y.max()), 1.0)]
    model: Callable[..., Any]
    if scale != "linear":
        lower[3] = _LOG_FLOOR_UV / 10

        def model(xx: Any, a: float, s: float, k: float, b: float) -> Any:  # the log-scale model
            return np.log(_boltzmann(xx, a, s, k, b))

        target = np.log(np.maximum(y, _LOG_FLOOR_UV))
    else:
        model, target = _boltzmann, y
    p0 = [min(max(v, lo), hi) for v, lo, hi in zip(p0, lower, upper)]
    try:
        params, cov = curve_fit(model, x, target, p0=p0, bounds=(lower, upper), maxfev=20_000)
    except (RuntimeError, ValueError) as exc:
        raise FitFailed(f"the Boltzmann fit did not converge: {exc}") from None
    residuals = target - model(x, *params)
    dof = len(x) - 4
    sd = float(np.sqrt(np.sum(residuals ** 2) / dof)) if dof > 0 else math.nan
    t95 = float(stats.t.ppf(0.975, dof)) if dof > 0 else math.inf
    errors = np.sqrt(np.clip(np.diag(cov), 0.0, None)) if np.all(np.isfinite(cov)) else np.full(4, np.inf)
    estimates = [Estimate(float(v), float(v - t95 * e), float(v + t95 * e)) for v, e in zip(params, errors)]
    notes = []
    if params[1] > x.max():
        notes.append("S50 lies above the highest intensity given: the plateau was not reached, MEPmax and S50 are "
                     "extrapolated")
    elif params[1] < x.min():
        notes.append("S50 lies below the lowest intensity given")
    for name, value, lo, hi in zip(("MEPmax", "S50", "slope", "baseline"), params, lower, upper):
        if name != "baseline" and (math.isclose(value, lo, rel_tol=1e-6) or math.isclose(value, hi, rel_tol=1e-6)):
            notes.append(f"{name} sits at the edge of its allowed range: the data do not determine it")
    mep_max, s50, slope, baseline = estimates
    least_squares = BoltzmannFit(mep_max, s50, slope, baseline, scale=scale, n=len(x), residual_sd=sd,
                                 notes=tuple(notes))
    if scale != "two-source":
        return least_squares
    return _fit_two_sources(x, target, least_squares, lower, upper)


# The amplitude's own spread (log units) is kept above 1 %: an exact fit of a few plateau trials
# must not drive the likelihood to infinity.
_MIN_AMPLITUDE_SD_LOG = 0.01


def _fit_two_sources(x: Any, log_y: Any, start: BoltzmannFit, lower: list[float], upper: list[float]) -> BoltzmannFit:
    """Maximum likelihood of the log amplitudes under the two-source model (module docstring),
    started from the log least-squares fit."""
    import numpy as np
    from scipy import stats
    from scipy.optimize import minimize

    def unpack(theta: Any) -> tuple[float, float, float, float, float, float]:
        log_max, s50, log_k, log_base, log_sx, log_sy = (float(v) for v in theta)
        return (math.exp(min(log_max, 50.0)), s50, math.exp(min(log_k, 50.0)), math.exp(min(log_base, 50.0)),
                math.exp(min(log_sx, 50.0)), _MIN_AMPLITUDE_SD_LOG + math.exp(min(log_sy, 50.0)))

    def log_curve(xx: Any, a: float, s: float, k: float, b: float) -> Any:
        return np.log(_boltzmann(xx, a, s, k, b))

    def negative_log_likelihood(theta: Any) -> float:
        a, s, k, b, sx, sy = unpack(theta)
        if not (lower[0] <= a <= upper[0] and lower[1] <= s <= upper[1] and lower[2] <= k <= upper[2]
                and b <= upper[3] and sx <= 100.0):
            return 1e12
        m = log_curve(x, a, s, k, b)
        h = 1e-3
        gradient = (log_curve(x + h, a, s, k, b) - log_curve(x - h, a, s, k, b)) / (2 * h)
        variance = sy ** 2 + gradient ** 2 * sx ** 2
        return float(0.5 * np.sum((log_y - m) ** 2 / variance + np.log(variance)))

    residual = max(start.residual_sd, 0.05)
    theta0 = np.array([
        math.log(start.mep_max_uv.value), start.s50_pct_mso.value, math.log(start.slope_per_pct_mso.value),
        math.log(max(start.baseline_uv.value, _LOG_FLOOR_UV)),
        math.log(residual / start.slope_per_pct_mso.value), math.log(residual / 2),
    ])
    found = minimize(negative_log_likelihood, theta0, method="Nelder-Mead",
                     options={"maxiter": 20_000, "maxfev": 20_000, "xatol": 1e-6, "fatol": 1e-8})
    # restarted from where it stopped: a simplex can stall before the optimum
    found = minimize(negative_log_likelihood, found.x, method="Nelder-Mead",
                     options={"maxiter": 20_000, "maxfev": 20_000, "xatol": 1e-6, "fatol": 1e-8})
    theta = found.x
    if not np.all(np.isfinite(theta)) or found.fun >= 1e12:
        raise FitFailed("the two-source fit did not converge")
    a, s, k, b, sx, sy = unpack(theta)
    covariance = _inverse_hessian(negative_log_likelihood, theta)
    dof = len(x) - 6
    t95 = float(stats.t.ppf(0.975, dof)) if dof > 0 else math.inf
    errors = [math.sqrt(covariance[i][i]) if covariance is not None and covariance[i][i] >= 0 else math.inf
              for i in range(4)]

    def on_log_scale(value: float, error: float) -> Estimate:
        spread = min(t95 * error, 700.0)
        return Estimate(value, value * math.exp(-spread), value * math.exp(spread))

    notes = [n for n in start.notes if "edge of its allowed range" not in n]
    notes.append(f"trial-to-trial spread: {sx:.2f} %MSO of excitability, {100 * (math.exp(sy) - 1):.0f} % of "
                 "amplitude (two-source model)")
    if covariance is None:
        notes.append("the likelihood is flat in some direction: the confidence intervals are unbounded")
    residuals = log_y - log_curve(x, a, s, k, b)
    sd = float(np.sqrt(np.sum(residuals ** 2) / (len(x) - 4))) if len(x) > 4 else math.nan
    return BoltzmannFit(
        on_log_scale(a, errors[0]), Estimate(s, s - t95 * errors[1], s + t95 * errors[1]),
        on_log_scale(k, errors[2]), on_log_scale(b, errors[3]), scale="two-source", n=len(x), residual_sd=sd,
        notes=tuple(notes), intensity_sd_pct_mso=sx, amplitude_sd_log=sy,
    )


def _inverse_hessian(function: Callable[[Any], float], theta: Any) -> list[list[float]] | None:
    """Central-difference Hessian of ``function`` at ``theta``, inverted; None if not positive definite.

    A spread parameter that went to zero (its log to −∞) leaves the likelihood flat along it: it is
    held fixed (its row and column dropped) rather than making every interval unbounded."""
    import numpy as np

    n = len(theta)
    steps = [1e-4 * max(1.0, abs(float(v))) for v in theta]
    hessian = np.zeros((n, n))
    centre = function(theta)
    for i in range(n):
        for j in range(i, n):
            def at(di: int, dj: int, i: int = i, j: int = j) -> float:
                shifted = np.array(theta, dtype=float)
                shifted[i] += di * steps[i]
                shifted[j] += dj * steps[j]
                return function(shifted)

            if i == j:
                value = (at(1, 0) - 2 * centre + at(-1, 0)) / steps[i] ** 2
            else:
                value = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * steps[i] * steps[j])
            hessian[i, j] = hessian[j, i] = value
    keep = [i for i in range(n) if i < 4 or hessian[i, i] > 1e-6]
    try:
        inverse = np.linalg.inv(hessian[np.ix_(keep, keep)])
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(inverse)) or np.any(np.diag(inverse)[:4] < 0):
        return None
    covariance = np.zeros((n, n))
    covariance[np.ix_(keep, keep)] = inverse
    return [[float(v) for v in row] for row in covariance]


# -- a whole curve on a device (what `tmsctl io-curve` runs) ---------------------------------------


@dataclass(frozen=True)
class IoCurveRequest:
    device_url: str
    subject_id: str
    coil: Any  # tmsctl.protocols.models.Coil
    rmt_pct_mso: float
    levels_pct_rmt: tuple[float, ...] = DEFAULT_LEVELS_PCT_RMT
    pulses_per_level: int = DEFAULT_PULSES_PER_LEVEL
    muscle: str = "FDI"
    operator: str = "operator"
    stimulator_serial: str | None = None
    virtual_time: bool = False
    settings: Any = None  # tmsctl.clinic.mt_session.HuntSettings
    scale: str = "two-source"
    note: str | None = None
    # The adaptive upper range (None: the plan's levels only); see UpperRange.
    upper_range: UpperRange | None = field(default_factory=UpperRange)


@dataclass(frozen=True)
class IoCurveOutcome:
    plan: IoCurvePlan
    points: tuple[tuple[int, float], ...]
    fit: BoltzmannFit | None
    fit_error: str | None
    log: tuple[dict[str, Any], ...]
    pulses_delivered: int
    device: Any  # DeviceInfo
    stimulator_serial: str
    recorded: Any | None = None
    upper_range: dict[str, Any] | None = None  # IoCurveProcedure.extension_record()

    def result_dict(self) -> dict[str, Any]:
        return {
            "rmt_pct_mso": self.plan.rmt_pct_mso, "levels_pct_rmt": list(self.plan.levels_pct_rmt),
            "intensities_pct_mso": list(self.plan.intensities_pct_mso),
            "pulses_per_level": self.plan.pulses_per_level,
            "fit": None if self.fit is None else self.fit.as_dict(), "fit_error": self.fit_error,
            "upper_range": self.upper_range,
        }


class IoCurveStopped(MeasurementStopped):
    """The curve stopped before its plan's end; disarmed and released; what was given is on record."""

    measurement = "input–output curve"
    nothing_kept = "no curve was fitted"


def run_io_curve(request: IoCurveRequest, respond: Any, records: Any | None = None, *,
                 rng: random.Random | None = None, on_fired: Any = None, on_trial: Any = None,
                 on_rejected: Any = None, on_connected: Any = None) -> IoCurveOutcome:
    """Give the planned pulses, measure each MEP with ``respond``, fit, and record (also a stopped curve)."""
    from tmsctl.clinic.mt_session import (
        HUNT_MAX_PCT_MSO,
        HuntSettings,
        HuntStopped,
        MtHunt,
        stimulator_serial_for,
    )
    from tmsctl.core.url import parse
    from tmsctl.session.host import SessionHost, clock_for

    rng = rng if rng is not None else random.Random()
    device = parse(request.device_url)
    serial = stimulator_serial_for(device, request.stimulator_serial)
    # refuse a bad plan before the device is touched; the stimulator's own maximum is checked below
    IoCurvePlan(request.rmt_pct_mso, request.levels_pct_rmt, request.pulses_per_level, max_pct_mso=130)
    clock = clock_for(device, virtual_time=request.virtual_time)
    host = SessionHost(device, clock, records=records)
    try:
        controller = host.open()
        info = host.connect()
        max_pct = min(HUNT_MAX_PCT_MSO, int(controller.driver.limits.max_intensity_pct_mso))
        plan = IoCurvePlan(request.rmt_pct_mso, request.levels_pct_rmt, request.pulses_per_level,
                           max_pct_mso=max_pct)
    except BaseException:
        host.close()
        raise
    if on_connected:
        on_connected(info)
    procedure = IoCurveProcedure(plan.sequence(rng), max_pct_mso=max_pct, plan=plan, upper=request.upper_range,
                                 fit_scale=request.scale)
    hunt = MtHunt(controller, procedure, respond, rng=rng, settings=request.settings or HuntSettings(),
                  on_fired=on_fired, on_trial=on_trial, on_rejected=on_rejected, release=host.release)

    def keep(status: str, fit: BoltzmannFit | None, fit_error: str | None, reason: str | None) -> Any:
        if records is None or hunt.pulses_delivered == 0:
            return None
        from tmsctl.records.meps import MepMeasurementRecord, MepRecords
        from tmsctl.session.planned import coil_key

        result = IoCurveOutcome(plan, procedure.points(), fit, fit_error, (), 0, info, serial,
                                upper_range=procedure.extension_record()).result_dict()
        if request.note:
            result["note"] = request.note
        records.ensure_subject(request.subject_id)
        return MepRecords(records).record(MepMeasurementRecord(
            subject_id=request.subject_id, kind="io_curve", status=status, stimulator_model=info.model,
            stimulator_serial=serial, coil=coil_key(request.coil), muscle=request.muscle,
            pulses_delivered=hunt.pulses_delivered, trial_log=hunt.log_so_far(), operator=request.operator,
            measured_at=clock.wall(), result=result, stop_reason=reason,
        ))

    try:
        hunt.run()
    except HuntStopped as stopped:
        raise IoCurveStopped(stopped, keep("stopped", None, None, stopped.message[:500])) from stopped
    except KeyboardInterrupt:
        keep("stopped", None, None, "interrupted by the operator")
        raise
    fit, fit_error = None, None
    try:
        fit = fit_boltzmann(procedure.points(), scale=request.scale)
    except FitFailed as exc:
        fit_error = exc.message
    recorded = keep("completed", fit, fit_error, None)
    return IoCurveOutcome(plan, procedure.points(), fit, fit_error, hunt.log_so_far(), hunt.pulses_delivered, info,
                          serial, recorded, upper_range=procedure.extension_record())


# -- the HTML page -----------------------------------------------------------------------------------


def io_curve_svg(points: Sequence[tuple[float, float]], fit: BoltzmannFit | None, *, width: int = 720,
                 height: int = 360) -> str:
    """Every trial as a dot, the fitted curve as a line, S50 as a dashed marker (inline SVG)."""
    import html

    from tmsctl.lab.report import COLOURS, _nice_ticks

    left, right, top, bottom = 70, 20, 20, 44
    xs = [p[0] for p in points] or [0.0, 1.0]
    x_lo, x_hi = min(xs) - 2.0, max(xs) + 2.0
    y_hi = max([p[1] for p in points] + ([fit.mep_max_uv.value + fit.baseline_uv.value] if fit else []) + [1.0]) * 1.05

    def sx(v: float) -> float:
        return left + (width - left - right) * (v - x_lo) / (x_hi - x_lo)

    def sy(v: float) -> float:
        return height - bottom - (height - top - bottom) * v / y_hi

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} '
             f'{height}" font-family="DejaVu Sans, sans-serif" role="img" aria-label="input-output curve">']
    for tick in _nice_ticks(0.0, y_hi, 5):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" '
                     f'stroke="{COLOURS["grid"]}"/><text x="{left - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{tick:g}</text>')
    for tick in _nice_ticks(x_lo, x_hi, 8):
        parts.append(f'<text x="{sx(tick):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                     f'font-size="11">{tick:g}</text>')
    parts.append(f'<text x="{(left + width) / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="12">'
                 'intensity (%MSO)</text>')
    parts.append(f'<text x="14" y="{height / 2:.0f}" font-size="12" transform="rotate(-90 14 {height / 2:.0f})" '
                 'text-anchor="middle">MEP peak-to-peak (µV)</text>')
    for x, y in points:
        parts.append(f'<circle class="trial" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{COLOURS["line"]}" '
                     f'fill-opacity="0.45"><title>{y:.0f} µV at {x:g} %MSO</title></circle>')
    if fit is not None:
        steps = 120
        path = " ".join(f"{sx(x_lo + (x_hi - x_lo) * i / steps):.1f},"
                        f"{sy(min(fit.predict_uv(x_lo + (x_hi - x_lo) * i / steps), y_hi)):.1f}"
                        for i in range(steps + 1))
        parts.append(f'<polyline class="fit" points="{path}" fill="none" stroke="{COLOURS["stopped"]}" '
                     'stroke-width="2.5"/>')
        s50 = fit.s50_pct_mso.value
        if x_lo <= s50 <= x_hi:
            parts.append(f'<line class="s50" x1="{sx(s50):.1f}" x2="{sx(s50):.1f}" y1="{top}" '
                         f'y2="{height - bottom}" stroke="{COLOURS["completed"]}" stroke-dasharray="5,4"/>'
                         f'<text x="{sx(s50) + 4:.1f}" y="{top + 12}" font-size="11" fill="{COLOURS["completed"]}">'
                         f'{html.escape(f"S50 {s50:.1f} %MSO")}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _upper_range_html(extension: dict[str, Any] | None) -> str:
    import html

    if not extension or not extension["intensities_added_pct_mso"]:
        return ""
    levels = ", ".join(f"{v:g}" for v in extension["levels_added_pct_rmt"])
    intensities = ", ".join(map(str, extension["intensities_added_pct_mso"]))
    return (f"<p>No plateau at the planned top: the upper range added {html.escape(levels)} % rMT = "
            f"{html.escape(intensities)} %MSO (one level at a time, in steps of {extension['step_pct_rmt']:g} % rMT, "
            f"cap {extension['cap_pct_mso']} %MSO): {html.escape(extension['outcome'])}.</p>")


def render_io_curve_html(outcome: IoCurveOutcome, *, subject_id: str, muscle: str, note: str | None = None) -> str:
    import html

    from tmsctl.lab.report import _page

    e = html.escape
    plan, fit = outcome.plan, outcome.fit
    rows = ""
    if fit is not None:
        for label, est, unit in (("MEPmax", fit.mep_max_uv, "µV"), ("S50", fit.s50_pct_mso, "%MSO"),
                                 ("slope k", fit.slope_per_pct_mso, "1/%MSO"), ("baseline", fit.baseline_uv, "µV")):
            rows += (f"<tr><td>{label}</td><td>{est.value:.4g} {unit}</td>"
                     f"<td>{est.low:.4g} – {est.high:.4g}</td></tr>")
    table = (f"<table><tr><th>parameter</th><th>estimate</th><th>95 % CI</th></tr>{rows}</table>"
             if fit is not None else f"<p><strong>No fit:</strong> {e(outcome.fit_error or '')}</p>")
    notes = "".join(f"<li>{e(n)}</li>" for n in (fit.notes if fit else ()))
    body = (
        f"<h1>Input–output curve — subject {e(subject_id)}</h1>"
        f"<p>{e(outcome.device.display_name)} ({e(outcome.device.model)}{', SIMULATED' if outcome.device.simulated else ''})"
        f", muscle {e(muscle)}, rMT {plan.rmt_pct_mso:g} %MSO; levels "
        f"{', '.join(f'{v:g}' for v in plan.levels_pct_rmt)} % rMT = "
        f"{', '.join(map(str, plan.intensities_pct_mso))} %MSO, {plan.pulses_per_level} pulses each in random order; "
        f"{outcome.pulses_delivered} pulses delivered, {len(outcome.points)} MEPs measured.</p>"
        + (f"<p>{e(note)}</p>" if note else "")
        + _upper_range_html(outcome.upper_range)
        + f'<div class="chart">{io_curve_svg(outcome.points, fit)}</div>'
        + f"<p>Boltzmann fit ({fit.scale if fit else ''} scale): MEP = MEPmax / (1 + exp(k·(S50 − x))) + baseline</p>"
        + table + (f"<ul>{notes}</ul>" if notes else "")
    )
    return _page(f"I/O curve {subject_id}", body)
