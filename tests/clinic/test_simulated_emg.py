"""The simulated subject's EMG: reproducible, independent of how it is read, answering the true pulses."""

from __future__ import annotations

import statistics

import pytest

from tmsctl.clinic.mep import Rejection, cut_epoch, detect_mep
from tmsctl.simulators.device import PulseRecord
from tmsctl.simulators.emg import EmgModel, SimulatedEmg
from tmsctl.simulators.subject import RecruitmentCurve, SimulatedSubject


def emg_with(pulses, seed=3, **model) -> SimulatedEmg:
    subject = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=50.0), seed=seed)
    return SimulatedEmg(subject, lambda: tuple(pulses), seed=seed, start_s=0.0, model=EmgModel(**model))


def test_a_sample_does_not_depend_on_how_the_stream_was_read() -> None:
    pulses = [PulseRecord(1.0, 70, "serial"), PulseRecord(3.5, 40, "serial")]
    whole = emg_with(pulses).render(0, 25_000)
    chunked_emg = emg_with(pulses)
    chunked = []
    for first in range(0, 25_001, 777):
        chunked += chunked_emg.render(first, min(first + 776, 25_000))
    assert chunked == whole
    assert emg_with(pulses, seed=4).render(0, 25_000) != whole


def test_the_mep_follows_the_true_power_and_time() -> None:
    emg = emg_with([PulseRecord(1.0, 80, "serial")], pre_activation_rate_per_s=0.0)
    values = emg.render(0, 10_000)
    times = [emg.time_of(k) for k in range(len(values))]
    big = detect_mep(cut_epoch(times, values, 1.0, before_s=0.105, after_s=0.11, sample_rate_hz=5000))
    before = detect_mep(cut_epoch(times, values, 0.5, before_s=0.105, after_s=0.11, sample_rate_hz=5000))
    ((onset, amplitude),) = emg.meps()
    assert 1.015 < onset < 1.03
    assert big.amplitude_uv == pytest.approx(amplitude, abs=25)
    assert before.amplitude_uv < 30  # noise only where there was no pulse


def test_pre_activation_episodes_happen_occasionally_and_are_rejected() -> None:
    emg = emg_with([], pre_activation_rate_per_s=0.04)
    outcomes = []
    for t in range(1, 599):  # only around each "pulse": a sample's value does not depend on the reading
        first, last = emg.index_at_or_after(t - 0.105), emg.last_index_until(t + 0.11)
        times = [emg.time_of(k) for k in range(first, last + 1)]
        values = emg.render(first, last)
        outcomes.append(detect_mep(cut_epoch(times, values, t, before_s=0.105, after_s=0.11, sample_rate_hz=5000)))
    rejected = [m for m in outcomes if m.rejection is Rejection.BACKGROUND]
    assert 0.005 < len(rejected) / len(outcomes) < 0.08
    quiet = [m.background_uv for m in outcomes if m.rejection is None]
    assert statistics.median(quiet) < 25


def test_a_stream_that_stops_has_no_samples_after_it() -> None:
    emg = emg_with([], stops_at_s=2.0)
    assert emg.time_of(emg.last_index_until(10.0)) == pytest.approx(2.0)


def test_the_recorded_threshold_is_where_the_detector_sees_the_criterion_in_half_the_pulses() -> None:
    # A narrow spread and a shallow curve make the noise's share of the peak-to-peak visible: the
    # noise lifts a near-criterion MEP, so the recording crosses 50 µV below the subject's threshold.
    curve = RecruitmentCurve(threshold_pct_mso=50.0, slope_per_pct_mso=0.15, spread_pct_mso=1.0)
    pulses = [PulseRecord(1.0 + 0.5 * i, 50, "serial") for i in range(600)]
    emg = SimulatedEmg(SimulatedSubject(curve, seed=11), lambda: tuple(pulses), seed=11, start_s=0.0,
                       model=EmgModel(pre_activation_rate_per_s=0.0))
    responded = []
    for pulse in pulses:
        first = emg.index_at_or_after(pulse.t - 0.105)
        last = emg.last_index_until(pulse.t + 0.11)
        values = emg.render(first, last)
        times = [emg.time_of(k) for k in range(first, last + 1)]
        mep = detect_mep(cut_epoch(times, values, pulse.t, before_s=0.105, after_s=0.11, sample_rate_hz=5000))
        assert mep.rejection is None
        responded.append(mep.amplitude_uv >= 50.0)
    seen = sum(responded) / len(responded)
    predicted = emg.recorded_response_probability(50)
    assert seen == pytest.approx(predicted, abs=3 * (0.25 / len(responded)) ** 0.5)
    assert curve.response_probability(50) == 0.5  # the MEP itself: half the pulses
    assert predicted > 0.7  # the recording: most of them
    recorded = emg.recorded_threshold_pct_mso()
    assert 48.5 < recorded < 49.7
    assert emg.recorded_response_probability(recorded) == pytest.approx(0.5, abs=1e-9)


def test_without_noise_the_recorded_threshold_is_the_subjects() -> None:
    subject = SimulatedSubject.sample(1)
    emg = SimulatedEmg(subject, lambda: (), seed=1, start_s=0.0, model=EmgModel(noise_rms_uv=0.0))
    assert emg.recorded_threshold_pct_mso() == pytest.approx(subject.threshold_pct_mso, abs=0.01)
