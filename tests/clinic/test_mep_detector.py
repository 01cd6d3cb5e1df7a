"""The MEP detector: peak-to-peak in the window, background rejection, a reason for every rejection."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmsctl.clinic.mep import EmgEpoch, MuscleConfig, Rejection, cut_epoch, detect_mep
from tmsctl.core.errors import InvalidArgument

RATE = 5000.0


def epoch_of(fn, *, start_s: float = -0.2, end_s: float = 0.12, rate: float = RATE) -> EmgEpoch:
    n = round((end_s - start_s) * rate) + 1
    times = tuple(start_s + k / rate for k in range(n))
    return EmgEpoch(times, tuple(fn(t) for t in times), rate)


def mep_wave(amplitude: float, onset_s: float = 0.021, period_s: float = 0.012):
    def value(t: float) -> float:
        if onset_s <= t <= onset_s + period_s:
            return amplitude / 2 * math.sin(2 * math.pi * (t - onset_s) / period_s)
        return 0.0
    return value


def test_a_clean_mep_measures_its_peak_to_peak_and_latency() -> None:
    m = detect_mep(epoch_of(mep_wave(800.0)))
    assert m.rejection is None
    assert m.amplitude_uv == pytest.approx(800.0, rel=0.01)
    assert 21.0 <= m.latency_ms <= 33.0
    assert m.background_uv == 0.0


def test_activity_outside_the_window_is_ignored() -> None:
    # a big stimulus artefact at 2 ms and a late wave at 70 ms are not the MEP (active muscle: no
    # background or after-MEP check)
    def value(t: float) -> float:
        if 0.001 <= t <= 0.003:
            return 5000.0
        if 0.07 <= t <= 0.08:
            return -3000.0
        return mep_wave(100.0)(t)
    m = detect_mep(epoch_of(value), MuscleConfig(background_limit_uv=None))
    assert m.amplitude_uv == pytest.approx(100.0, rel=0.01)
    # at rest the same late wave is a contraction during the trial
    assert detect_mep(epoch_of(value)).rejection is Rejection.AFTER_ACTIVITY


def test_a_contraction_that_starts_inside_the_mep_window_is_rejected_not_counted() -> None:
    # quiet background, then voluntary activity from 30 ms on that lasts: no MEP, but 80 µV
    # peak-to-peak inside the MEP window would pass for a response
    def value(t: float) -> float:
        return 40.0 * math.sin(2 * math.pi * 90 * t) if t >= 0.030 else 0.0
    m = detect_mep(epoch_of(value))
    assert m.rejection is Rejection.AFTER_ACTIVITY and m.amplitude_uv is None
    assert "after the pulse" in m.detail and "contracted" in m.detail
    # a clean MEP that is over by 50 ms passes
    assert detect_mep(epoch_of(mep_wave(80.0))).amplitude_uv == pytest.approx(80.0, rel=0.01)


def test_the_after_mep_window_follows_the_mep_window_and_needs_covering() -> None:
    leg = MuscleConfig("TA", window_start_ms=25, window_end_ms=60)
    assert (leg.after_start_ms, leg.after_end_ms) == (70.0, 120.0)
    assert leg.after_s == pytest.approx(0.120)
    assert MuscleConfig(background_limit_uv=None).after_s == pytest.approx(0.050)
    short = detect_mep(epoch_of(mep_wave(300.0), end_s=0.08))
    assert short.rejection is Rejection.INCOMPLETE and "after-MEP" in short.detail
    with pytest.raises(InvalidArgument):
        MuscleConfig(after_start_ms=40.0)  # inside the MEP window


def test_the_window_is_per_muscle() -> None:
    late = epoch_of(mep_wave(400.0, onset_s=0.045))
    hand = detect_mep(late, MuscleConfig("FDI"))
    leg = detect_mep(late, MuscleConfig("TA", window_start_ms=25, window_end_ms=60))
    assert hand.amplitude_uv < leg.amplitude_uv == pytest.approx(400.0, rel=0.01)


def test_pre_activation_is_rejected_with_its_reason() -> None:
    def value(t: float) -> float:
        return 40.0 * math.sin(2 * math.pi * 80 * t) if t < 0 else mep_wave(500.0)(t)
    m = detect_mep(epoch_of(value))
    assert m.rejection is Rejection.BACKGROUND and m.amplitude_uv is None
    assert m.background_uv == pytest.approx(80.0, rel=0.02)
    assert "not relaxed" in m.detail
    # active MT: the background check is off, the MEP is measured
    active = detect_mep(epoch_of(value), MuscleConfig(background_limit_uv=None))
    assert active.amplitude_uv == pytest.approx(500.0, rel=0.01)


def test_an_epoch_that_stops_early_is_incomplete() -> None:
    m = detect_mep(epoch_of(mep_wave(500.0), end_s=0.03))
    assert m.rejection is Rejection.INCOMPLETE and "MEP window" in m.detail


def test_missing_samples_are_a_gap() -> None:
    full = epoch_of(mep_wave(500.0))
    kept = [(t, v) for t, v in zip(full.times_s, full.values_uv) if not 0.030 < t < 0.036]
    gappy = EmgEpoch(tuple(t for t, _ in kept), tuple(v for _, v in kept), RATE)
    m = detect_mep(gappy)
    assert m.rejection is Rejection.GAP and "missing" in m.detail


def test_not_finite_and_clipped_samples_are_rejected() -> None:
    nan = detect_mep(epoch_of(lambda t: math.nan if abs(t - 0.03) < 1e-4 else 0.0))
    assert nan.rejection is Rejection.NOT_FINITE
    clipped = detect_mep(epoch_of(mep_wave(20000.0)), MuscleConfig(clip_uv=5000.0))
    assert clipped.rejection is Rejection.CLIPPED


def test_too_slow_a_sample_rate_is_an_error_not_a_rejection() -> None:
    with pytest.raises(InvalidArgument, match="too slow"):
        detect_mep(epoch_of(mep_wave(500.0), rate=500.0))


def test_bad_muscle_windows_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        MuscleConfig(window_start_ms=50, window_end_ms=15)
    with pytest.raises(InvalidArgument):
        MuscleConfig(background_start_ms=-10, background_end_ms=5)


def test_cut_epoch_places_samples_on_the_pulse_time_base() -> None:
    stamps = [1000.0 + k / RATE for k in range(5000)]
    values = [0.0] * 5000
    epoch = cut_epoch(stamps, values, 1000.5, before_s=0.105, after_s=0.05, sample_rate_hz=RATE)
    assert epoch.times_s[0] == pytest.approx(-0.105, abs=1 / RATE)
    assert epoch.times_s[-1] == pytest.approx(0.05, abs=1 / RATE)


@settings(max_examples=60, deadline=None)
@given(
    amplitude=st.floats(0.0, 10000.0),
    noise=st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=50),
    onset_ms=st.floats(15.0, 36.0),
)
def test_measured_amplitude_is_the_mep_within_the_noise(amplitude, noise, onset_ms) -> None:
    """Peak-to-peak of MEP + noise lies within the MEP's ± the noise's own peak-to-peak."""
    def value(t: float) -> float:
        return mep_wave(amplitude, onset_s=onset_ms / 1e3)(t) + noise[round(t * RATE) % len(noise)]
    m = detect_mep(epoch_of(value))
    spread = max(noise) - min(noise)
    assert m.rejection is None
    assert amplitude * math.cos(math.pi / 60) - spread - 1e-6 <= m.amplitude_uv <= amplitude + spread + 1e-6


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e4, 1e4)),
                    min_size=0, max_size=1600),
    start=st.floats(-0.2, 0.0),
    limit=st.one_of(st.none(), st.floats(1.0, 1000.0)),
)
def test_every_trial_is_measured_or_rejected_with_a_reason(values, start, limit) -> None:
    times = tuple(start + k / RATE for k in range(len(values)))
    m = detect_mep(EmgEpoch(times, tuple(values), RATE), MuscleConfig(background_limit_uv=limit))
    if m.rejection is None:
        assert m.amplitude_uv is not None and math.isfinite(m.amplitude_uv) and m.amplitude_uv >= 0
        assert limit is None or m.background_uv <= limit
    else:
        assert m.amplitude_uv is None and m.detail
