"""A simulated subject who answers TMS pulses with motor evoked potentials (MEPs).

Model (ours, status D; chosen so that the true threshold is exact, not estimated):

* Each pulse at intensity x (%MSO) meets a momentary excitability shift η ~ N(0, σ) — all
  trial-to-trial variability lives on the intensity axis. The effective drive is
  z = x − t + η, with t the true threshold.
* The peak-to-peak MEP is a sigmoid recruitment curve of z,
  A(z) = A_max / (1 + exp(−k·(z − z₀))), with z₀ = ln(A_max/c − 1)/k so that A(0) = c, the
  response criterion (50 µV at rest). Hence P(MEP ≥ c | x) = Φ((x − t)/σ) exactly: t is *the*
  intensity at which half the pulses give a criterion MEP, which is what the IFCN definition
  and the ML-PEST model (Awiszus 2003, σ = 0.07·t) both call the threshold.
* The recorded amplitude never falls below the EMG noise floor: the answer is max(A(z), B)
  with B uniform in [½·b, b], b < c, so the floor never creates a false response.

Defaults: slope k = 0.25 /%MSO, A_max = 3000 µV (a few mV at saturation, typical of a resting hand
muscle — R), σ = 0.07·t (the ML-PEST model's spread), noise floor b = 10 µV. With σ = 0 the subject
is deterministic: a response iff x ≥ t (the reference's ML-PEST test-vector subject).

Randomness comes only from the ``random.Random`` the subject owns (seeded) or is given: the same
seed and the same sequence of intensities give the same MEPs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tmsctl.core.errors import InvalidArgument

__all__ = ["RecruitmentCurve", "SimulatedSubject"]

_SQRT2 = math.sqrt(2.0)
HIGHEST_INTENSITY_PCT_MSO = 130.0
DEFAULT_SPREAD_FRACTION = 0.07  # σ = 0.07·t, the ML-PEST model's spread (reference §5.1, C)


def _positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgument(f"{name} must be {'≥' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RecruitmentCurve:
    """The subject's input–output curve and its trial-to-trial variability (see module docstring)."""

    threshold_pct_mso: float
    slope_per_pct_mso: float = 0.25
    max_amplitude_uv: float = 3000.0
    spread_pct_mso: float | None = None  # None → 0.07 · threshold
    criterion_uv: float = 50.0
    noise_floor_uv: float = 10.0

    def __post_init__(self) -> None:
        threshold = _positive("threshold_pct_mso", self.threshold_pct_mso)
        if threshold > HIGHEST_INTENSITY_PCT_MSO:
            raise InvalidArgument(
                f"threshold_pct_mso {threshold:g} exceeds {HIGHEST_INTENSITY_PCT_MSO:g} %MSO"
            )
        _positive("slope_per_pct_mso", self.slope_per_pct_mso)
        criterion = _positive("criterion_uv", self.criterion_uv)
        if _positive("max_amplitude_uv", self.max_amplitude_uv) <= criterion:
            raise InvalidArgument(
                f"max_amplitude_uv {self.max_amplitude_uv:g} must exceed criterion_uv {criterion:g}"
            )
        if self.spread_pct_mso is None:
            object.__setattr__(self, "spread_pct_mso", DEFAULT_SPREAD_FRACTION * threshold)
        else:
            _positive("spread_pct_mso", self.spread_pct_mso, allow_zero=True)
        if _positive("noise_floor_uv", self.noise_floor_uv, allow_zero=True) >= criterion:
            raise InvalidArgument(
                f"noise_floor_uv {self.noise_floor_uv:g} must stay below criterion_uv {criterion:g}",
                hint="a noise floor at the criterion would turn noise into responses",
            )

    @property
    def spread(self) -> float:
        assert self.spread_pct_mso is not None
        return self.spread_pct_mso

    @property
    def _half_criterion_offset_pct_mso(self) -> float:
        # z₀: drive above threshold at which the curve is at half its maximum.
        return math.log(self.max_amplitude_uv / self.criterion_uv - 1.0) / self.slope_per_pct_mso

    def amplitude_uv(self, drive_pct_mso: float) -> float:
        """A(z): the noise-free MEP for drive z = x − t + η (without the noise floor)."""
        exponent = -self.slope_per_pct_mso * (drive_pct_mso - self._half_criterion_offset_pct_mso)
        if exponent > 700.0:  # exp would overflow; the MEP is nil
            return 0.0
        return self.max_amplitude_uv / (1.0 + math.exp(exponent))

    def drive_for_amplitude_uv(self, amplitude_uv: float) -> float:
        """The inverse of :meth:`amplitude_uv`: the drive z at which A(z) = ``amplitude_uv`` (0 < A < A_max)."""
        if not 0 < amplitude_uv < self.max_amplitude_uv:
            raise InvalidArgument(
                f"an amplitude of {amplitude_uv:g} µV is not on the curve (0 < A < {self.max_amplitude_uv:g} µV)"
            )
        return (self._half_criterion_offset_pct_mso
                - math.log(self.max_amplitude_uv / amplitude_uv - 1.0) / self.slope_per_pct_mso)

    def median_amplitude_uv(self, intensity_pct_mso: float) -> float:
        """The median MEP at an intensity (the curve at η = 0)."""
        return max(self.amplitude_uv(intensity_pct_mso - self.threshold_pct_mso), 0.0)

    def response_probability(self, intensity_pct_mso: float) -> float:
        """P(MEP ≥ criterion) at an intensity: Φ((x − t)/σ) (a step at t when σ = 0)."""
        difference = intensity_pct_mso - self.threshold_pct_mso
        if self.spread == 0:
            return 1.0 if difference >= 0 else 0.0
        return 0.5 * math.erfc(-difference / (self.spread * _SQRT2))


class SimulatedSubject:
    """Answers each pulse with a peak-to-peak MEP in µV, reproducibly for a seed."""

    def __init__(
        self, curve: RecruitmentCurve, *, seed: int | None = None, rng: random.Random | None = None
    ) -> None:
        if (seed is None) == (rng is None):
            raise InvalidArgument(
                "give a simulated subject exactly one of seed= or rng=",
                hint="a seed makes the subject reproducible",
            )
        self.curve = curve
        self._rng = rng if rng is not None else random.Random(seed)
        self.pulses_received = 0

    @classmethod
    def sample(
        cls,
        seed: int,
        *,
        threshold_range_pct_mso: tuple[float, float] = (30.0, 80.0),
        spread_fraction: float = DEFAULT_SPREAD_FRACTION,
        criterion_uv: float = 50.0,
    ) -> SimulatedSubject:
        """A subject whose threshold and slope are drawn from ``seed`` (threshold uniform in the range,
        slope uniform in 0.15–0.40 /%MSO), answering with the same seed's random stream."""
        low, high = threshold_range_pct_mso
        if not 0 < low <= high <= HIGHEST_INTENSITY_PCT_MSO:
            raise InvalidArgument(f"threshold range {threshold_range_pct_mso!r} is not within (0, 130] %MSO")
        rng = random.Random(seed)
        threshold = rng.uniform(low, high)
        curve = RecruitmentCurve(
            threshold_pct_mso=threshold,
            slope_per_pct_mso=rng.uniform(0.15, 0.40),
            spread_pct_mso=_positive("spread_fraction", spread_fraction, allow_zero=True) * threshold,
            criterion_uv=criterion_uv,
        )
        return cls(curve, rng=rng)

    @property
    def threshold_pct_mso(self) -> float:
        return self.curve.threshold_pct_mso

    def mep_uv(self, intensity_pct_mso: float) -> float:
        """The peak-to-peak MEP (µV) recorded for one pulse at ``intensity_pct_mso``."""
        if (
            isinstance(intensity_pct_mso, bool)
            or not isinstance(intensity_pct_mso, int | float)
            or not 0 <= intensity_pct_mso <= HIGHEST_INTENSITY_PCT_MSO
        ):
            raise InvalidArgument(
                f"pulse intensity must be within 0–{HIGHEST_INTENSITY_PCT_MSO:g} %MSO, "
                f"got {intensity_pct_mso!r}"
            )
        curve = self.curve
        shift = self._rng.gauss(0.0, curve.spread) if curve.spread > 0 else 0.0
        floor = curve.noise_floor_uv * (0.5 + 0.5 * self._rng.random())
        self.pulses_received += 1
        drive = intensity_pct_mso - curve.threshold_pct_mso + shift
        if drive >= 0:
            # Guarantee the criterion at or above threshold despite rounding in the sigmoid.
            return max(curve.amplitude_uv(drive), curve.criterion_uv, floor)
        return min(max(curve.amplitude_uv(drive), floor), math.nextafter(curve.criterion_uv, 0.0))
