"""A simulated subject's EMG: the MEPs it gives to the simulator's *true* pulses, on a noisy baseline.

The EMG answers what the stimulator really did — its truth log (``device.truth()``: instant and
power of every discharge), never what the host believes it sent — so a drifted power, an extra
pulse or a lost one shows in the EMG as it would on a real subject.

Model (ours, status D):

* Samples at ``sample_rate_hz`` on the simulator's clock: sample k is at ``start_s + k / rate``.
* Baseline: Gaussian noise, ``noise_rms_uv`` RMS.
* Each true pulse at power x gives one MEP whose peak-to-peak amplitude is the subject's
  (:meth:`SimulatedSubject.mep_uv`: sigmoid recruitment, trial-to-trial variability), as one sine
  cycle of ``mep_period_ms`` starting ``latency_ms ± latency_jitter_ms`` (Gaussian) after it.
* Pre-activation: episodes of voluntary activity (Gaussian, ``pre_activation_rms_uv`` RMS) start
  at random (``pre_activation_rate_per_s``) and last 0.3–1.0 s; a pulse whose background window
  falls in one should be rejected by the detector.
* Coil position (optional): with a :class:`~tmsctl.simulators.hotspot.CoilPlacement` and a
  :class:`~tmsctl.simulators.hotspot.HotspotMap`, a true pulse at power x with the coil at p
  gives the MEP of a pulse at x·gain(p) (the Gaussian fall-off around the hotspot).
* ``stops_at_s``: the stream ends there (an amplifier that stops), for bad-input tests.

The recorded threshold (:meth:`SimulatedEmg.recorded_threshold_pct_mso`): the subject's threshold t
is the intensity at which half the pulses give an MEP of at least the criterion (50 µV) — the MEP
itself. The IFCN criterion is applied to the *recorded* peak-to-peak, which also holds the baseline
noise under the MEP's peaks (3 µV RMS adds about 7 µV to a 50 µV MEP in a 15–50 ms window), so the
recording reaches 50 µV with half the pulses somewhat below t (0.3–1 %MSO for the default subjects).
That intensity — what any hunt on this recording estimates — is computed from the two models, not
from a hunt: for a noise window i (drawn once per EMG model) the recorded peak-to-peak is a convex
function of the MEP amplitude, so the window responds exactly when the MEP is at least some A*ᵢ, i.e.
when the drive x − t + η reaches zᵢ = A⁻¹(A*ᵢ); hence P(recorded ≥ criterion | x) = meanᵢ Φ((x − t − zᵢ)/σ),
and the recorded threshold is where that mean is ½.

Reproducible: a seed fixes everything, and any sample's value does not depend on how the stream
was read (in chunks, or only around pulses) — noise comes from per-block generators keyed by the
seed and the block number, episodes from per-second generators, MEP draws from the pulse order.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tmsctl.core.errors import InvalidArgument

from .device import PulseRecord
from .subject import SimulatedSubject

if TYPE_CHECKING:
    from .hotspot import CoilPlacement, HotspotMap

__all__ = ["EmgModel", "SimulatedEmg"]

_BLOCK = 1024
# Noise windows behind the recorded threshold: the threshold's Monte Carlo error is about
# 1.25·σ/√draws·(1 + small), under 0.1 %MSO for σ ≤ 6 %MSO.
_THRESHOLD_DRAWS = 2000


@dataclass(frozen=True)
class EmgModel:
    sample_rate_hz: float = 5000.0
    noise_rms_uv: float = 3.0
    latency_ms: float = 21.0
    latency_jitter_ms: float = 1.5
    mep_period_ms: float = 12.0
    pre_activation_rate_per_s: float = 0.04
    pre_activation_rms_uv: float = 40.0
    stops_at_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("sample_rate_hz", "noise_rms_uv", "latency_ms", "latency_jitter_ms", "mep_period_ms",
                     "pre_activation_rate_per_s", "pre_activation_rms_uv"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidArgument(f"EMG model {name} must be a finite number ≥ 0, got {value!r}")
        if self.sample_rate_hz <= 0 or self.mep_period_ms <= 0:
            raise InvalidArgument("EMG sample rate and MEP period must be positive")
        if self.pre_activation_rate_per_s > 1:
            raise InvalidArgument("at most one pre-activation episode per second")


@dataclass(frozen=True)
class _Mep:
    onset_s: float
    amplitude_uv: float


class SimulatedEmg:
    """Renders the EMG of ``subject`` for the pulses ``truth()`` reports (see the module docstring)."""

    def __init__(
        self, subject: SimulatedSubject, truth: Callable[[], Sequence[PulseRecord]], *, seed: int,
        start_s: float, model: EmgModel | None = None, placement: CoilPlacement | None = None,
        hotspot: HotspotMap | None = None,
    ) -> None:
        if (placement is None) != (hotspot is None):
            raise InvalidArgument("a spatial MEP map needs both the coil placement and the hotspot map")
        self.subject = subject
        self.truth = truth
        self.seed = seed
        self.start_s = float(start_s)
        self.model = model or EmgModel()
        self.placement = placement
        self.hotspot = hotspot
        self._latency_rng = random.Random(f"emg-latency-{seed}")
        self._meps: list[_Mep] = []
        self._noise_cache: dict[int, list[float]] = {}

    @property
    def sample_rate_hz(self) -> float:
        return self.model.sample_rate_hz

    def time_of(self, index: int) -> float:
        return self.start_s + index / self.model.sample_rate_hz

    def index_at_or_after(self, t: float) -> int:
        return max(0, math.ceil((t - self.start_s) * self.model.sample_rate_hz - 1e-9))

    def last_index_until(self, t: float) -> int:
        """The last sample at or before ``t`` that exists (−1 if none); respects ``stops_at_s``."""
        if self.model.stops_at_s is not None:
            t = min(t, self.model.stops_at_s)
        return math.floor((t - self.start_s) * self.model.sample_rate_hz + 1e-9)

    def meps(self) -> tuple[tuple[float, float], ...]:
        """(onset, amplitude) of every MEP so far, in pulse order (after a ``render``)."""
        return tuple((m.onset_s, m.amplitude_uv) for m in self._meps)

    def recorded_response_probability(
        self, intensity_pct_mso: float, *, window_ms: tuple[float, float] = (15.0, 50.0),
        draws: int = _THRESHOLD_DRAWS,
    ) -> float:
        """P(recorded peak-to-peak in ``window_ms`` ≥ the criterion | a pulse at the intensity); the
        curve whose ½ point is :meth:`recorded_threshold_pct_mso` (module docstring)."""
        return self._recorded_probability(window_ms, draws)(float(intensity_pct_mso))

    def recorded_threshold_pct_mso(
        self, *, window_ms: tuple[float, float] = (15.0, 50.0), draws: int = _THRESHOLD_DRAWS
    ) -> float:
        """The intensity at which the recorded peak-to-peak in ``window_ms`` after the pulse (the MEP
        detector's window) reaches the subject's criterion in half the pulses (module docstring).

        Pre-activation is left out: the detector rejects those trials rather than measuring them.
        """
        curve = self.subject.curve
        probability = self._recorded_probability(window_ms, draws)
        t, spread = curve.threshold_pct_mso, curve.spread
        low, high = t - 10.0 * spread - 50.0, t + 10.0 * spread + 50.0
        if probability(low) >= 0.5 or probability(high) < 0.5:
            raise InvalidArgument(
                f"the recorded MEP reaches {curve.criterion_uv:g} µV in half the pulses at no intensity near the "
                f"threshold (noise {self.model.noise_rms_uv:g} µV RMS)",
                hint="the EMG noise must stay well below the response criterion",
            )
        for _ in range(60):
            middle = (low + high) / 2
            if probability(middle) >= 0.5:
                high = middle
            else:
                low = middle
        return high

    def _recorded_probability(self, window_ms: tuple[float, float], draws: int) -> Callable[[float], float]:
        curve = self.subject.curve
        amplitudes = _criterion_amplitudes(self.model, (float(window_ms[0]), float(window_ms[1])),
                                           curve.criterion_uv, draws)
        drives = []
        for amplitude in amplitudes:
            if amplitude <= 0.0:
                drives.append(-math.inf)  # the noise alone reaches the criterion in this window
            elif amplitude >= curve.max_amplitude_uv:
                drives.append(math.inf)
            else:
                drives.append(curve.drive_for_amplitude_uv(amplitude))
        t, spread = curve.threshold_pct_mso, curve.spread
        scale = spread * math.sqrt(2.0)

        def probability(x: float) -> float:
            if spread == 0:
                return sum(x - t >= z for z in drives) / len(drives)
            return sum(0.5 * math.erfc(-(x - t - z) / scale) for z in drives) / len(drives)

        return probability

    def _sync_pulses(self) -> None:
        pulses = self.truth()
        model = self.model
        for pulse in pulses[len(self._meps):]:
            effective = float(pulse.intensity_pct)
            if self.placement is not None and self.hotspot is not None:  # both or neither (__init__)
                effective *= self.hotspot.gain(self.placement.position_at(pulse.t))
            amplitude = self.subject.mep_uv(min(effective, 130.0))
            latency = model.latency_ms + (
                self._latency_rng.gauss(0.0, model.latency_jitter_ms) if model.latency_jitter_ms else 0.0
            )
            self._meps.append(_Mep(pulse.t + max(latency, 5.0) / 1e3, amplitude))

    def _noise_block(self, block: int) -> list[float]:
        cached = self._noise_cache.get(block)
        if cached is None:
            rng = random.Random(f"emg-noise-{self.seed}-{block}")
            sigma = self.model.noise_rms_uv
            cached = [rng.gauss(0.0, sigma) for _ in range(_BLOCK)] if sigma else [0.0] * _BLOCK
            if len(self._noise_cache) > 64:
                self._noise_cache.clear()
            self._noise_cache[block] = cached
        return cached

    def _episodes_near(self, t0: float, t1: float) -> list[tuple[float, float, int]]:
        """Pre-activation episodes (start, end, key) overlapping [t0, t1]."""
        rate = self.model.pre_activation_rate_per_s
        if rate == 0:
            return []
        found = []
        for second in range(math.floor(t0) - 1, math.floor(t1) + 1):
            rng = random.Random(f"emg-pre-{self.seed}-{second}")
            if rng.random() < rate:
                start = second + rng.random()
                end = start + rng.uniform(0.3, 1.0)
                if start <= t1 and end >= t0:
                    found.append((start, end, second))
        return found

    def render(self, first: int, last: int) -> list[float]:
        """Samples ``first``..``last`` (inclusive) in µV. The caller must not ask beyond the pulses
        the truth log already holds (it renders up to a moment that has passed)."""
        if last < first:
            return []
        self._sync_pulses()
        values = []
        for k in range(first, last + 1):
            block, offset = divmod(k, _BLOCK)
            values.append(self._noise_block(block)[offset])
        t0, t1 = self.time_of(first), self.time_of(last)
        rate = self.model.sample_rate_hz
        for start, end, key in self._episodes_near(t0, t1):
            rng = random.Random(f"emg-burst-{self.seed}-{key}")
            k_start = self.index_at_or_after(start)
            k_end = math.floor((end - self.start_s) * rate)
            sigma = self.model.pre_activation_rms_uv
            # draw the whole episode so a sample's value does not depend on where a chunk began
            burst = [rng.gauss(0.0, sigma) for _ in range(k_end - k_start + 1)]
            for k in range(max(first, k_start), min(last, k_end) + 1):
                values[k - first] += burst[k - k_start]
        period = self.model.mep_period_ms / 1e3
        for mep in self._meps:
            if mep.onset_s > t1 or mep.onset_s + period < t0:
                continue
            for k in range(max(first, self.index_at_or_after(mep.onset_s)),
                           min(last, math.floor((mep.onset_s + period - self.start_s) * rate)) + 1):
                phase = (self.time_of(k) - mep.onset_s) / period
                values[k - first] += mep.amplitude_uv / 2 * math.sin(2 * math.pi * phase)
        return values


@functools.lru_cache(maxsize=16)
def _criterion_amplitudes(
    model: EmgModel, window_ms: tuple[float, float], criterion_uv: float, draws: int
) -> tuple[float, ...]:
    """For ``draws`` noise windows (fixed seed): the least MEP amplitude whose recorded peak-to-peak
    in the window reaches ``criterion_uv`` (0 when the noise alone does). Rendered as ``render``
    renders: one sine cycle of ``mep_period_ms`` at a jittered latency, Gaussian noise per sample,
    the pulse anywhere between two samples."""
    rng = random.Random(f"emg-recorded-threshold-{criterion_uv!r}")
    rate = model.sample_rate_hz
    period_s = model.mep_period_ms / 1e3
    start_s, end_s = window_ms[0] / 1e3, window_ms[1] / 1e3
    found = []
    for _ in range(draws):
        phase = rng.random() / rate
        times = [start_s + phase + j / rate for j in range(math.floor((end_s - start_s - phase) * rate) + 1)]
        latency = model.latency_ms + (rng.gauss(0.0, model.latency_jitter_ms) if model.latency_jitter_ms else 0.0)
        onset = max(latency, 5.0) / 1e3
        shape = [0.5 * math.sin(2 * math.pi * (u - onset) / period_s) if onset <= u <= onset + period_s else 0.0
                 for u in times]
        noise = [rng.gauss(0.0, model.noise_rms_uv) if model.noise_rms_uv else 0.0 for _ in times]

        def peak_to_peak(amplitude: float, shape: list[float] = shape, noise: list[float] = noise) -> float:
            values = [amplitude * w + n for w, n in zip(shape, noise, strict=True)]
            return max(values) - min(values)

        if peak_to_peak(0.0) >= criterion_uv:
            found.append(0.0)
            continue
        # Convex in the amplitude and below the criterion at 0: it crosses the criterion once.
        low, high = 0.0, 2.0 * criterion_uv
        while peak_to_peak(high) < criterion_uv:
            low, high = high, 2.0 * high
        for _ in range(40):
            middle = (low + high) / 2
            if peak_to_peak(middle) >= criterion_uv:
                high = middle
            else:
                low = middle
        found.append(high)
    return tuple(found)
