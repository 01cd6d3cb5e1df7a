"""IFCN relative-frequency method (5 of 10) against the reference vector and simulated subjects."""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmsctl.clinic.threshold import (
    NOT_SEEN,
    SEEN,
    MepResponse,
    RelativeFrequency,
    ThresholdProcedureError,
    run_procedure,
)
from tmsctl.core.errors import InvalidArgument
from tmsctl.simulators.subject import SimulatedSubject


def scripted(blocks: dict[int, list[int]]):
    """Answer the n-th pulse at a level with blocks[level][n] (1 = MEP ≥ criterion)."""
    given_at: dict[int, int] = defaultdict(int)

    def respond(intensity: int) -> MepResponse:
        answer = blocks[intensity][given_at[intensity]]
        given_at[intensity] += 1
        return SEEN if answer else NOT_SEEN

    return respond


def deterministic(threshold_pct_mso: float):
    return lambda intensity: SEEN if intensity >= threshold_pct_mso else NOT_SEEN


def test_reference_vector_6_5_4_of_10_gives_47():
    # 6/10 at 48 %, 5/10 at 47 %, 4/10 at 46 % → rMT = 47 %MSO.
    blocks = {
        48: [1, 0, 1, 1, 0, 1, 0, 1, 1, 0],
        47: [0, 1, 0, 1, 1, 0, 0, 1, 1, 0],
        46: [1, 0, 0, 1, 0, 1, 0, 0, 1, 0],
    }
    result = run_procedure(RelativeFrequency(start_pct_mso=48), scripted(blocks))
    assert result.value_pct_mso == 47.0
    assert result.converged
    assert result.method == "relative-frequency-5-of-10"
    assert [t.intensity_pct_mso for t in result.trials] == [48] * 8 + [47] * 9 + [46] * 10
    assert "fewer than 5 of 10 responses at 46 %MSO" in result.stop_reason


def test_blocks_end_as_soon_as_decided():
    # Five responses decide a level positive; the sixth non-response decides it negative.
    hunt = RelativeFrequency(start_pct_mso=50)
    for _ in range(5):
        hunt.record(50, SEEN)
    assert hunt.next_intensity() == 49 and hunt.phase == "descending"
    for _ in range(4):
        hunt.record(49, SEEN)
    for _ in range(5):
        hunt.record(49, NOT_SEEN)
    assert not hunt.done and hunt.next_intensity() == 49
    hunt.record(49, SEEN)
    assert hunt.next_intensity() == 48
    for _ in range(6):
        hunt.record(48, NOT_SEEN)
    assert hunt.done and hunt.result().value_pct_mso == 49.0


def test_ascends_in_5_pct_steps_then_descends_in_1_pct_steps():
    result = run_procedure(RelativeFrequency(start_pct_mso=30), deterministic(47.3))
    levels = []
    for trial in result.trials:
        if not levels or levels[-1] != trial.intensity_pct_mso:
            levels.append(trial.intensity_pct_mso)
    assert levels == [30, 35, 40, 45, 50, 49, 48, 47]
    assert result.value_pct_mso == 48.0
    assert len(result.trials) == 4 * 6 + 3 * 5 + 6


def test_ascending_past_the_maximum_tests_the_maximum_then_stops_unconverged():
    result = run_procedure(RelativeFrequency(start_pct_mso=92, max_pct_mso=100), deterministic(120))
    assert sorted({t.intensity_pct_mso for t in result.trials}) == [92, 97, 100]
    assert not result.converged and result.value_pct_mso is None
    assert "above the hunt range" in result.stop_reason


def test_responses_at_the_minimum_stop_unconverged():
    result = run_procedure(RelativeFrequency(start_pct_mso=12, min_pct_mso=10), deterministic(3))
    assert sorted({t.intensity_pct_mso for t in result.trials}) == [10, 11, 12]
    assert not result.converged and result.value_pct_mso is None
    assert "at or below the hunt range" in result.stop_reason


def test_trial_cap_stops_unconverged():
    result = run_procedure(RelativeFrequency(start_pct_mso=70, max_trials=30), deterministic(40.5))
    assert len(result.trials) == 30 and not result.converged
    assert "trial cap 30" in result.stop_reason


def test_10_of_20_variant_with_2_pct_steps():
    hunt = RelativeFrequency(start_pct_mso=50, responses_required=10, block_size=20, descend_step_pct_mso=2)
    assert hunt.method == "relative-frequency-10-of-20"
    result = run_procedure(hunt, deterministic(45.5))
    assert result.value_pct_mso == 46.0
    assert [t.intensity_pct_mso for t in result.trials if not t.responded] == [44] * 11


def test_amplitudes_are_classified_against_the_criterion():
    hunt = RelativeFrequency(start_pct_mso=50, muscle_state="active")
    for _ in range(6):
        hunt.record(50, MepResponse(amplitude_uv=150.0))  # below the 200 µV active criterion
    assert hunt.next_intensity() == 55


def test_finished_hunt_refuses_more_pulses():
    hunt = RelativeFrequency(start_pct_mso=50)
    run_procedure(hunt, deterministic(47.3))
    with pytest.raises(ThresholdProcedureError):
        hunt.record(hunt.trials[-1].intensity_pct_mso, SEEN)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"responses_required": 11},
        {"block_size": 0},
        {"ascend_step_pct_mso": 0},
        {"descend_step_pct_mso": 1.5},
        {"max_trials": -1},
    ],
)
def test_invalid_setups_are_refused(kwargs):
    with pytest.raises(InvalidArgument):
        RelativeFrequency(start_pct_mso=50, **kwargs)


def _hunt(seed: int, spread_fraction: float):
    subject = SimulatedSubject.sample(seed, spread_fraction=spread_fraction)
    start = round(subject.threshold_pct_mso + random.Random(10_000 + seed).uniform(-10, 5))
    result = run_procedure(
        RelativeFrequency(start_pct_mso=start),
        lambda intensity: MepResponse.of_amplitude(subject.mep_uv(intensity)),
    )
    return subject.threshold_pct_mso, result


SEEDS = range(200)


def test_noise_free_subjects_get_the_lowest_whole_pct_at_or_above_threshold():
    # Start uniform in MT − 10 … MT + 5. Measured (seeds 0–199): pulses median 27, max 49.
    pulses = []
    for seed in SEEDS:
        true_mt, result = _hunt(seed, 0.0)
        assert result.converged
        assert result.value_pct_mso == math.ceil(true_mt)
        pulses.append(len(result.trials))
    assert max(pulses) <= 60


def test_noisy_subjects_over_200_seeds():
    # σ = 0.07·MT. Measured (seeds 0–199): all converged; |error| median 0.71, 63 % within 1.0,
    # 91 % within 2.0, mean signed error +0.18 %MSO; pulses median 37, 95th percentile 70, max 77.
    errors, signed, pulses = [], [], []
    for seed in SEEDS:
        true_mt, result = _hunt(seed, 0.07)
        assert result.converged
        signed.append(result.value_pct_mso - true_mt)
        errors.append(abs(signed[-1]))
        pulses.append(len(result.trials))
    assert statistics.median(errors) <= 1.0
    assert sum(e <= 1.0 for e in errors) / len(SEEDS) >= 0.55
    assert sum(e <= 2.0 for e in errors) / len(SEEDS) >= 0.85
    assert abs(statistics.mean(signed)) <= 0.5
    assert statistics.median(pulses) <= 45 and max(pulses) <= 100


@given(
    bounds=st.tuples(st.integers(1, 130), st.integers(1, 130)).filter(lambda b: b[0] != b[1]).map(sorted),
    start_fraction=st.floats(0, 1),
    max_trials=st.integers(1, 250),
    required_of_block=st.sampled_from([(5, 10), (10, 20), (1, 1), (3, 4)]),
    steps=st.tuples(st.integers(1, 10), st.integers(1, 3)),
    answer_bytes=st.binary(min_size=250, max_size=250),
    response_rate=st.integers(0, 256),
)
def test_relative_frequency_stays_in_range_and_ends_within_its_cap(
    bounds, start_fraction, max_trials, required_of_block, steps, answer_bytes, response_rate
):
    low, high = bounds
    start = low + round(start_fraction * (high - low))
    required, block = required_of_block
    hunt = RelativeFrequency(
        start_pct_mso=start, min_pct_mso=low, max_pct_mso=high, max_trials=max_trials,
        responses_required=required, block_size=block,
        ascend_step_pct_mso=steps[0], descend_step_pct_mso=steps[1],
    )
    for byte in answer_bytes:  # response_rate 0 = never responds, 256 = always
        if hunt.done:
            break
        intensity = hunt.next_intensity()
        assert isinstance(intensity, int) and low <= intensity <= high
        hunt.record(intensity, SEEN if byte < response_rate else NOT_SEEN)
    assert hunt.done
    result = hunt.result()
    assert 1 <= len(result.trials) <= max_trials
    if result.converged:
        assert low <= result.value_pct_mso <= high
        tested = {t.intensity_pct_mso for t in result.trials}
        assert result.value_pct_mso in tested
    else:
        assert result.value_pct_mso is None
