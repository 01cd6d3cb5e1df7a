"""Motor evoked potentials from EMG: cut an epoch around a pulse, measure it, or say why not.

Pure: no clock, no I/O. Times are seconds relative to the pulse (the pulse is at 0).

* **Amplitude**: peak-to-peak (max − min) of the samples in the MEP window, 15–50 ms after the
  pulse by default (hand muscles: onset ≈ 20 ms, the window leaves the stimulus artefact of the
  first few ms out). Per muscle configurable (:class:`MuscleConfig`); leg muscles need a later
  window (e.g. tibialis anterior 25–60 ms).
* **Background**: peak-to-peak in a pre-stimulus window (105–5 ms before the pulse by default).
  At rest a background above the limit (50 µV, the resting MEP criterion itself — status D) means
  the muscle was not relaxed (pre-activation) or the electrodes are noisy, and the MEP cannot be
  told from it: the trial is **rejected**, never counted either way.
* **After the window**: peak-to-peak in a window after the MEP (60–110 ms by default). A resting
  muscle is quiet again once its MEP is over; activity there means a contraction that began
  after the background window closed — possibly inside the MEP window, where it would pass for an
  MEP — so the trial is rejected like pre-activation (same limit; None with the background check).
* Every rejected trial carries a :class:`Rejection` reason and a sentence for the operator.
  Rejections: the epoch does not cover a window (the stream ended or lagged), a gap in the
  samples, a sample that is not a finite number, the amplifier at its rail (clipping), and
  background activity above the limit.

The detector never guesses: a trial that cannot be measured is rejected with its reason, and the
caller (a threshold hunt) decides whether to give another pulse or to stop.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from tmsctl.core.errors import InvalidArgument

__all__ = [
    "DEFAULT_MUSCLE",
    "MIN_SAMPLE_RATE_HZ",
    "EmgEpoch",
    "MepMeasurement",
    "MuscleConfig",
    "Rejection",
    "cut_epoch",
    "detect_mep",
]

# Below 1 kHz a 35 ms MEP window holds fewer than 35 samples and the peaks of a 10–15 ms MEP are
# missed by a sizeable fraction (status D); EMG amplifiers for TMS run at 2–10 kHz.
MIN_SAMPLE_RATE_HZ = 1000.0


class Rejection(StrEnum):
    """Why a trial gave no MEP measurement."""

    INCOMPLETE = "incomplete"  # the samples do not cover the background or MEP window
    GAP = "gap"  # samples missing inside a window
    NOT_FINITE = "not-finite"  # NaN or infinity among the samples
    CLIPPED = "clipped"  # the amplifier sat at its rail inside a window
    BACKGROUND = "background"  # pre-stimulus activity (pre-activation) or noise above the limit
    AFTER_ACTIVITY = "after-activity"  # activity after the MEP window: a contraction during the trial


@dataclass(frozen=True)
class MuscleConfig:
    """Where to look for the MEP of one muscle, and what background is acceptable.

    ``background_limit_uv`` None disables the background check (active MT: the muscle is meant to
    contract). ``clip_uv``: the amplifier's input range; samples at or beyond it are clipped.
    """

    name: str = "FDI"
    window_start_ms: float = 15.0
    window_end_ms: float = 50.0
    background_start_ms: float = -105.0
    background_end_ms: float = -5.0
    background_limit_uv: float | None = 50.0
    clip_uv: float | None = None
    # After the MEP has ended (hand muscles: by ~50 ms) a resting muscle is quiet; the limit is the
    # background limit (off with it, as in active MT where the muscle contracts throughout).
    # None: from 10 ms after the MEP window's end, for 50 ms (60–110 ms for the default window).
    after_start_ms: float | None = None
    after_end_ms: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidArgument("a muscle needs a name, e.g. FDI or APB")
        after_start = self.after_start_ms
        if after_start is None:
            after_start = float(self.window_end_ms) + 10.0
            object.__setattr__(self, "after_start_ms", after_start)
        if self.after_end_ms is None:
            object.__setattr__(self, "after_end_ms", float(after_start) + 50.0)
        for field in ("window_start_ms", "window_end_ms", "background_start_ms", "background_end_ms",
                      "after_start_ms", "after_end_ms"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidArgument(f"{field} must be a finite number of ms, got {value!r}")
        if not 0 <= self.window_start_ms < self.window_end_ms <= 500:
            raise InvalidArgument(
                f"MEP window {self.window_start_ms:g}–{self.window_end_ms:g} ms is invalid; it must lie after the "
                "pulse, start before it ends, and end within 500 ms",
                hint="hand muscles: 15–50 ms; leg muscles e.g. 25–60 ms",
            )
        if not -2000 <= self.background_start_ms < self.background_end_ms <= 0:
            raise InvalidArgument(
                f"background window {self.background_start_ms:g}–{self.background_end_ms:g} ms must lie before the "
                "pulse (within 2 s)",
                hint="e.g. -105 to -5 ms",
            )
        after_start, after_end = self.after_window_ms
        if not self.window_end_ms <= after_start < after_end <= 1000:
            raise InvalidArgument(
                f"after-MEP window {self.after_start_ms:g}–{self.after_end_ms:g} ms must start at or after the MEP "
                f"window's end ({self.window_end_ms:g} ms) and end within 1 s",
                hint="hand muscles: 60–110 ms",
            )
        for field in ("background_limit_uv", "clip_uv"):
            value = getattr(self, field)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidArgument(f"{field} must be a positive number of µV or None, got {value!r}")

    @property
    def after_window_ms(self) -> tuple[float, float]:
        """The after-MEP window; __post_init__ fills in what was left None."""
        assert self.after_start_ms is not None and self.after_end_ms is not None
        return self.after_start_ms, self.after_end_ms

    @property
    def before_s(self) -> float:
        """How much EMG before the pulse an epoch needs."""
        return -self.background_start_ms / 1000.0

    @property
    def after_s(self) -> float:
        """How much EMG after the pulse an epoch needs."""
        return (self.after_window_ms[1] if self.background_limit_uv is not None else self.window_end_ms) / 1000.0

    def describe(self) -> str:
        limit = "off" if self.background_limit_uv is None else f"≤ {self.background_limit_uv:g} µV"
        return (
            f"{self.name}: MEP {self.window_start_ms:g}–{self.window_end_ms:g} ms, background "
            f"{self.background_start_ms:g}–{self.background_end_ms:g} ms {limit}"
            + ("" if self.background_limit_uv is None else f", after {self.after_start_ms:g}–{self.after_end_ms:g} ms {limit}")
        )


DEFAULT_MUSCLE = MuscleConfig()


@dataclass(frozen=True)
class EmgEpoch:
    """EMG samples (µV) around one pulse; ``times_s`` relative to the pulse, increasing."""

    times_s: tuple[float, ...]
    values_uv: tuple[float, ...]
    sample_rate_hz: float

    def __post_init__(self) -> None:
        if len(self.times_s) != len(self.values_uv):
            raise InvalidArgument(
                f"an epoch needs one time per sample: {len(self.times_s)} times, {len(self.values_uv)} samples"
            )
        rate = self.sample_rate_hz
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
            raise InvalidArgument(f"sample rate must be a positive number of Hz, got {rate!r}")
        if any(b <= a for a, b in zip(self.times_s, self.times_s[1:])):
            raise InvalidArgument("epoch sample times must increase strictly")


def cut_epoch(
    timestamps: Sequence[float], values: Sequence[float], pulse_time: float, *, before_s: float, after_s: float,
    sample_rate_hz: float,
) -> EmgEpoch:
    """The samples within [pulse − before, pulse + after], with times made relative to the pulse.

    ``timestamps`` and ``pulse_time`` must be on one time base (the caller maps them).
    """
    low, high = pulse_time - before_s, pulse_time + after_s
    times: list[float] = []
    kept: list[float] = []
    for t, v in zip(timestamps, values, strict=True):
        if low <= t <= high:
            times.append(t - pulse_time)
            kept.append(float(v))
    return EmgEpoch(tuple(times), tuple(kept), sample_rate_hz)


@dataclass(frozen=True)
class MepMeasurement:
    """One trial's MEP: its amplitude, or the reason it was rejected (then ``amplitude_uv`` is None)."""

    amplitude_uv: float | None
    latency_ms: float | None  # time of the first extreme in the window (a rough onset marker)
    background_uv: float | None  # pre-stimulus peak-to-peak
    rejection: Rejection | None
    detail: str  # a sentence for the operator

    @property
    def rejected(self) -> bool:
        return self.rejection is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "amplitude_uv": None if self.amplitude_uv is None else round(self.amplitude_uv, 3),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "background_uv": None if self.background_uv is None else round(self.background_uv, 3),
            "rejection": None if self.rejection is None else self.rejection.value,
            "detail": self.detail,
        }


def _reject(reason: Rejection, detail: str, background: float | None = None) -> MepMeasurement:
    return MepMeasurement(None, None, background, reason, detail)


def _window(
    epoch: EmgEpoch, start_s: float, end_s: float, name: str
) -> tuple[list[tuple[float, float]], tuple[Rejection, str] | None]:
    """The (time, value) pairs in [start, end], or a reason the window is not fully covered."""
    period = 1.0 / epoch.sample_rate_hz
    # Half a sample of slack at each edge: sample instants need not fall on the window's edges.
    pairs = [(t, v) for t, v in zip(epoch.times_s, epoch.values_uv) if start_s - period / 2 <= t <= end_s + period / 2]
    # Covered: a sample within one period of each edge (a thousandth of a period of slack for
    # timestamps that went through text or another clock's arithmetic).
    reach = period * 1.001
    if not pairs or pairs[0][0] > start_s + reach or pairs[-1][0] < end_s - reach:
        covered = "no samples" if not pairs else f"samples only from {pairs[0][0] * 1e3:.1f} to {pairs[-1][0] * 1e3:.1f} ms"
        return pairs, (
            Rejection.INCOMPLETE,
            f"the EMG does not cover the {name} window {start_s * 1e3:g}–{end_s * 1e3:g} ms ({covered})",
        )
    # A gap: more than 1.5 sample periods between neighbours.
    for (a, _), (b, _) in itertools.pairwise(pairs):
        if b - a > 1.5 * period:
            return pairs, (Rejection.GAP, f"{(b - a) * 1e3:.1f} ms of EMG missing in the {name} window (at {a * 1e3:.1f} ms)")
    return pairs, None


def detect_mep(epoch: EmgEpoch, muscle: MuscleConfig = DEFAULT_MUSCLE) -> MepMeasurement:
    """Measure the MEP in ``epoch`` for ``muscle``, or reject the trial with its reason."""
    if epoch.sample_rate_hz < MIN_SAMPLE_RATE_HZ:
        raise InvalidArgument(
            f"EMG sampled at {epoch.sample_rate_hz:g} Hz is too slow to measure MEPs (at least "
            f"{MIN_SAMPLE_RATE_HZ:g} Hz)",
            hint="set the amplifier to 2–5 kHz",
        )
    background_pairs, missing = _window(
        epoch, muscle.background_start_ms / 1e3, muscle.background_end_ms / 1e3, "background"
    )
    if missing:
        return _reject(*missing)
    mep_pairs, missing = _window(epoch, muscle.window_start_ms / 1e3, muscle.window_end_ms / 1e3, "MEP")
    if missing:
        return _reject(*missing)
    windows = [("background", background_pairs), ("MEP", mep_pairs)]
    if muscle.background_limit_uv is not None:
        after_start, after_end = muscle.after_window_ms
        after_pairs, missing = _window(epoch, after_start / 1e3, after_end / 1e3, "after-MEP")
        if missing:
            return _reject(*missing)
        windows.append(("after-MEP", after_pairs))
    for name, pairs in windows:
        if not all(math.isfinite(v) for _, v in pairs):
            return _reject(Rejection.NOT_FINITE, f"the {name} window holds samples that are not numbers (NaN/inf)")
        if muscle.clip_uv is not None and any(abs(v) >= muscle.clip_uv for _, v in pairs):
            return _reject(
                Rejection.CLIPPED,
                f"the amplifier reached its ±{muscle.clip_uv:g} µV range in the {name} window",
            )
    background_values = [v for _, v in background_pairs]
    background = max(background_values) - min(background_values)
    if muscle.background_limit_uv is not None and background > muscle.background_limit_uv:
        return _reject(
            Rejection.BACKGROUND,
            f"{background:.0f} µV of activity before the pulse (limit {muscle.background_limit_uv:g} µV): the "
            "muscle was not relaxed or the EMG is noisy",
            background,
        )
    if muscle.background_limit_uv is not None:
        after_values = [v for _, v in after_pairs]
        after = max(after_values) - min(after_values)
        if after > muscle.background_limit_uv:
            return _reject(
                Rejection.AFTER_ACTIVITY,
                f"{after:.0f} µV of activity {muscle.after_start_ms:g}–{muscle.after_end_ms:g} ms after the pulse "
                f"(limit {muscle.background_limit_uv:g} µV): the muscle contracted during the trial, so the MEP "
                "window may hold a contraction, not an MEP",
                background,
            )
    high = max(mep_pairs, key=lambda p: p[1])
    low = min(mep_pairs, key=lambda p: p[1])
    latency = min(high[0], low[0]) * 1e3
    amplitude = high[1] - low[1]
    return MepMeasurement(amplitude, latency, background, None, f"MEP {amplitude:.0f} µV")
