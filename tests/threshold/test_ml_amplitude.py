"""The amplitude-based threshold (MlAmplitude): a censored log-amplitude fit near threshold."""

from __future__ import annotations

import math
import random

import pytest

from tmsctl.clinic.mt_session import make_procedure
from tmsctl.clinic.threshold import (
    NOT_SEEN,
    SEEN,
    MepResponse,
    MlAmplitude,
    MlPest,
    fit_amplitude_threshold,
    run_procedure,
)
from tmsctl.core.errors import InvalidArgument
from tmsctl.simulators.subject import SimulatedSubject


def _model_observations(threshold: float, slope: float, log_sd: float, n: int, seed: int):
    """Draws from the fit's own model around the threshold, censored at 25 µV and 1 mV."""
    rng = random.Random(seed)
    observations = []
    for _ in range(n):
        x = float(round(threshold) + rng.choice((-3, -2, -1, 0, 1, 2, 3)))
        log_amplitude = math.log(50.0) + slope * (x - threshold) + rng.gauss(0.0, log_sd)
        if log_amplitude < math.log(25.0):
            observations.append((x, "below", math.log(25.0)))
        elif log_amplitude > math.log(1000.0):
            observations.append((x, "above", math.log(1000.0)))
        else:
            observations.append((x, "at", log_amplitude))
    return observations


def test_the_fit_recovers_the_parameters_of_its_own_model() -> None:
    fit = fit_amplitude_threshold(_model_observations(55.3, 0.25, 0.8, 400, seed=1), criterion_uv=50.0,
                                  start_pct_mso=50.0)
    assert fit is not None
    assert fit.threshold_pct_mso == pytest.approx(55.3, abs=0.3)
    assert fit.slope_per_pct_mso == pytest.approx(0.25, rel=0.15)
    assert fit.log_sd == pytest.approx(0.8, rel=0.15)
    assert fit.spread_pct_mso == pytest.approx(3.2, rel=0.2)
    assert fit.censored > 0 and fit.measured + fit.censored == 400


def test_no_fit_without_an_mep_on_each_side_of_the_criterion() -> None:
    below_only = [(40.0, "at", math.log(30.0))] * 6
    assert fit_amplitude_threshold(below_only, criterion_uv=50.0, start_pct_mso=40.0) is None
    few_measured = [(40.0, "below", math.log(25.0)), (60.0, "above", math.log(1000.0)), (50.0, "at", 4.0)]
    assert fit_amplitude_threshold(few_measured, criterion_uv=50.0, start_pct_mso=50.0) is None


def _hunt_errors(kind: type[MlPest], subjects: int) -> list[float]:
    errors = []
    for seed in range(subjects):
        subject = SimulatedSubject.sample(seed)
        result = run_procedure(kind(start_pct_mso=50, max_trials=30),
                               lambda x, s=subject: MepResponse.of_amplitude(s.mep_uv(x)))
        assert result.converged and result.value_pct_mso is not None
        errors.append(result.value_pct_mso - subject.threshold_pct_mso)
    return errors


def test_amplitudes_give_a_smaller_error_than_one_bit_per_pulse() -> None:
    amplitude = _hunt_errors(MlAmplitude, 40)
    binary = _hunt_errors(MlPest, 40)

    def rms(values: list[float]) -> float:
        return math.sqrt(sum(v * v for v in values) / len(values))

    assert rms(amplitude) < rms(binary)
    assert rms(amplitude) < 1.0


def test_the_hunt_reports_its_fit_and_its_name() -> None:
    subject = SimulatedSubject.sample(3)
    procedure = MlAmplitude(start_pct_mso=50, max_trials=30)
    result = run_procedure(procedure, lambda x: MepResponse.of_amplitude(subject.mep_uv(x)))
    assert result.method == "ml-amplitude"
    assert procedure.fit is not None
    assert "amplitude fit" in result.stop_reason and "censored" in result.stop_reason
    assert result.value_pct_mso == pytest.approx(procedure.fit.threshold_pct_mso)
    assert result.trials[-1].estimate_pct_mso == pytest.approx(procedure.fit.threshold_pct_mso)
    # every pulse went to the estimate before it, rounded, as ML-PEST's do
    for before, trial in zip(result.trials, result.trials[1:], strict=False):
        assert before.estimate_pct_mso is not None
        assert trial.intensity_pct_mso == max(1, min(100, math.floor(before.estimate_pct_mso + 0.5)))


def test_seen_not_seen_alone_is_ml_pest() -> None:
    def respond(x: int) -> MepResponse:
        return SEEN if x >= 47.3 else NOT_SEEN

    amplitude = run_procedure(MlAmplitude(start_pct_mso=60), respond)
    binary = run_procedure(MlPest(start_pct_mso=60), respond)
    assert [t.intensity_pct_mso for t in amplitude.trials] == [t.intensity_pct_mso for t in binary.trials]
    assert amplitude.value_pct_mso == binary.value_pct_mso
    assert "did not determine the fit" in amplitude.stop_reason


def test_a_pulse_budget_counts_rejected_pulses() -> None:
    procedure = make_procedure("ml-amplitude", start_pct_mso=50, max_trials=30, max_pulses=5)
    assert isinstance(procedure, MlAmplitude)
    for _ in range(3):
        procedure.note_rejected_pulse()
    procedure.record(procedure.next_intensity(), MepResponse.of_amplitude(120.0))
    procedure.record(procedure.next_intensity(), MepResponse.of_amplitude(10.0))
    assert procedure.done and "5 pulses given" in procedure.result().stop_reason


@pytest.mark.parametrize(("floor", "ceiling"), [(60.0, 1000.0), (25.0, 40.0), (0.0, 1000.0), (25.0, math.inf)])
def test_floor_and_ceiling_must_lie_either_side_of_the_criterion(floor: float, ceiling: float) -> None:
    with pytest.raises(InvalidArgument):
        MlAmplitude(start_pct_mso=50, floor_uv=floor, ceiling_uv=ceiling)
