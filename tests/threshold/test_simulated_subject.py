"""The simulated subject: seeded, documented recruitment curve with an exact threshold."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmsctl.core.errors import InvalidArgument
from tmsctl.simulators.subject import RecruitmentCurve, SimulatedSubject


def test_same_seed_same_meps_different_seed_different_meps():
    intensities = [40, 45, 50, 55, 60] * 4
    first = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=50), seed=7)
    second = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=50), seed=7)
    other = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=50), seed=8)
    a = [first.mep_uv(x) for x in intensities]
    assert a == [second.mep_uv(x) for x in intensities]
    assert a != [other.mep_uv(x) for x in intensities]
    assert first.pulses_received == len(intensities)


def test_sampled_subjects_are_reproducible_and_within_the_range():
    a, b = SimulatedSubject.sample(11), SimulatedSubject.sample(11)
    assert a.curve == b.curve
    assert [a.mep_uv(50) for _ in range(5)] == [b.mep_uv(50) for _ in range(5)]
    thresholds = [SimulatedSubject.sample(seed).threshold_pct_mso for seed in range(100)]
    assert all(30 <= t <= 80 for t in thresholds)
    assert len(set(thresholds)) == 100


def test_default_spread_is_the_ml_pest_model_spread():
    assert RecruitmentCurve(threshold_pct_mso=50).spread_pct_mso == pytest.approx(3.5)


def test_criterion_amplitude_at_threshold_and_curve_shape():
    curve = RecruitmentCurve(threshold_pct_mso=50)
    assert curve.median_amplitude_uv(50) == pytest.approx(50.0)
    medians = [curve.median_amplitude_uv(x) for x in range(0, 131, 5)]
    assert medians == sorted(medians)
    assert curve.median_amplitude_uv(130) == pytest.approx(3000.0, rel=1e-3)
    assert curve.response_probability(50) == pytest.approx(0.5)
    assert curve.response_probability(50 + 3.5) == pytest.approx(0.8413, abs=1e-4)


def test_response_frequency_follows_the_normal_model():
    # P(MEP ≥ 50 µV | x) = Φ((x − t)/σ): 4000 pulses each (binomial SD ≤ 0.008; bound 0.03).
    subject = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=60), seed=3)
    for intensity in (54, 57, 60, 63, 66):
        hits = sum(subject.mep_uv(intensity) >= 50.0 for _ in range(4000)) / 4000
        assert hits == pytest.approx(subject.curve.response_probability(intensity), abs=0.03)


@given(threshold=st.floats(5.0, 125.0), intensity=st.floats(0.0, 130.0), seed=st.integers(0, 2**32))
def test_noise_free_subject_responds_exactly_at_and_above_threshold(threshold, intensity, seed):
    subject = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=threshold, spread_pct_mso=0.0), seed=seed)
    amplitude = subject.mep_uv(intensity)
    assert (amplitude >= 50.0) == (intensity >= threshold)
    assert amplitude >= 5.0  # the EMG noise floor (half of 10 µV at least)


@given(seed=st.integers(0, 2**32), intensity=st.floats(0.0, 130.0))
def test_amplitudes_are_finite_and_within_the_curve(seed, intensity):
    subject = SimulatedSubject.sample(seed)
    amplitude = subject.mep_uv(intensity)
    assert math.isfinite(amplitude) and 0 < amplitude <= subject.curve.max_amplitude_uv


def test_injected_random_generator_is_used():
    rng = random.Random(5)
    subject = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=50), rng=rng)
    state = rng.getstate()
    subject.mep_uv(50)
    assert rng.getstate() != state


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold_pct_mso": 0},
        {"threshold_pct_mso": 131},
        {"threshold_pct_mso": 50, "slope_per_pct_mso": 0},
        {"threshold_pct_mso": 50, "max_amplitude_uv": 40},
        {"threshold_pct_mso": 50, "spread_pct_mso": -1},
        {"threshold_pct_mso": 50, "noise_floor_uv": 50},
        {"threshold_pct_mso": float("nan")},
    ],
)
def test_invalid_curves_are_refused(kwargs):
    with pytest.raises(InvalidArgument):
        RecruitmentCurve(**kwargs)


def test_invalid_subject_setups_and_pulses_are_refused():
    curve = RecruitmentCurve(threshold_pct_mso=50)
    with pytest.raises(InvalidArgument, match="exactly one of seed= or rng="):
        SimulatedSubject(curve)
    with pytest.raises(InvalidArgument, match="exactly one"):
        SimulatedSubject(curve, seed=1, rng=random.Random(1))
    subject = SimulatedSubject(curve, seed=1)
    for bad in (-1, 131, float("nan"), "50", True):
        with pytest.raises(InvalidArgument):
            subject.mep_uv(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        SimulatedSubject.sample(1, threshold_range_pct_mso=(0, 50))
