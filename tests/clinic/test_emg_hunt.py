"""Threshold hunts from detected MEPs: simulator truth → simulated EMG → detector → procedure → record."""

from __future__ import annotations

import itertools

import pytest

from tmsctl.clinic.emg import (
    BufferedEmgSource,
    EmgClockMismatch,
    EmgRecorder,
    EmgReplayMismatch,
    EmgStreamStalled,
    FileEmgSource,
    PulseMark,
)
from tmsctl.clinic.mt_session import (
    HuntSettings,
    HuntStopped,
    MtHunt,
    TooManyRejections,
    make_procedure,
    parse_coil,
    threshold_record,
)
from tmsctl.clinic.responder import EmgResponder
from tmsctl.core.errors import InvalidArgument
from tmsctl.records import Records
from tmsctl.session.fsm import State
from tmsctl.simulators.emg import EmgModel
from tmsctl.simulators.subject import RecruitmentCurve, SimulatedSubject


def hunt(bench, method="ml-pest", responder=None, settings=None, **kwargs):
    controller = bench.controller()
    mt = MtHunt(controller, make_procedure(method, start_pct_mso=50, **kwargs), responder or bench.responder(),
                rng=bench.rng(), settings=settings)
    return mt, controller


# 5 of 10 decides on 1 %MSO steps from short blocks: its error spread is wider (benchmarks/bench_mt_emg.py)
@pytest.mark.parametrize(("method", "tolerance"), [("ml-pest", 2.0), ("5of10", 4.0)])
def test_the_hunt_finds_the_threshold_from_emg_and_every_pulse_is_on_record(
    emg_bench, method, tolerance, tmp_path
) -> None:
    bench = emg_bench(seed=11)
    mt, controller = hunt(bench, method)
    outcome = mt.run()
    assert controller.state is State.DISCONNECTED
    assert abs(outcome.result.value_pct_mso - bench.subject.threshold_pct_mso) <= tolerance
    truth = bench.sim.device.truth()
    log = outcome.log_entries()
    # the simulator's own count and power per pulse, against the record
    assert len(truth) == outcome.pulses_delivered == len(log) == len(outcome.trials) + len(outcome.rejections)
    assert [p.intensity_pct for p in truth] == [e["intensity_pct_mso"] for e in log]
    assert [e["pulse"] for e in log] == list(range(1, len(log) + 1))
    for entry in log:
        assert entry["mep"]["detail"]
        if entry["trial"] is not None:
            assert entry["amplitude_uv"] == pytest.approx(entry["mep"]["amplitude_uv"], abs=1e-3)
            assert entry["responded"] == (entry["amplitude_uv"] >= 50.0)
    records = Records(tmp_path / "r.db")
    try:
        records.ensure_subject("S1")
        stored = records.record_motor_threshold(threshold_record(
            outcome, subject_id="S1", coil=parse_coil("figure8"), reference="rMT", operator="t",
            stimulator_serial="SIM-rapid2"))
        (again,) = records.motor_thresholds("S1")
        assert list(again.trial_log) == [dict(e) for e in stored.trial_log]
        assert any("mep" in e for e in again.trial_log)
    finally:
        records.close()


def test_pre_activated_trials_are_rejected_and_given_again_at_the_same_intensity(emg_bench) -> None:
    bench = emg_bench(seed=9, model=EmgModel(pre_activation_rate_per_s=0.25))
    mt, _ = hunt(bench, settings=HuntSettings(max_rejections=40, max_consecutive_rejections=10))
    outcome = mt.run()
    assert outcome.rejections, "this seed's subject tenses up often"
    log = outcome.log_entries()
    for before, after in itertools.pairwise(log):
        if before["trial"] is None:
            assert after["intensity_pct_mso"] == before["intensity_pct_mso"]
    # an episode under way at the pulse shows before it; one that starts during the trial, after it
    assert "background" in {r.measurement.rejection.value for r in outcome.rejections} <= {"background", "after-activity"}
    assert outcome.pulses_delivered == len(bench.sim.device.truth()) == len(log)
    assert len(outcome.trials) == 20


def test_a_pulse_cap_counts_the_rejected_pulses_and_ends_with_the_estimate(emg_bench) -> None:
    bench = emg_bench(seed=9, model=EmgModel(pre_activation_rate_per_s=0.25))
    mt, _ = hunt(bench, settings=HuntSettings(max_rejections=40, max_consecutive_rejections=10),
                 max_trials=30, max_pulses=30)
    outcome = mt.run()
    assert outcome.rejections, "this seed's subject tenses up often"
    assert outcome.pulses_delivered == len(bench.sim.device.truth()) == 30
    assert len(outcome.trials) == 30 - len(outcome.rejections)
    assert outcome.result.converged and outcome.recordable
    assert f"{len(outcome.rejections)} rejected" in outcome.result.stop_reason
    assert abs(outcome.result.value_pct_mso - bench.subject.threshold_pct_mso) <= 2.0


def test_a_pulse_cap_spent_on_rejected_pulses_stops_the_hunt_disarmed(emg_bench) -> None:
    bench = emg_bench(seed=2, model=EmgModel(noise_rms_uv=40.0))
    mt, controller = hunt(bench, max_pulses=3)
    with pytest.raises(HuntStopped) as stopped:
        mt.run()
    assert isinstance(stopped.value.cause, TooManyRejections)
    assert "every pulse rejected" in stopped.value.message
    assert controller.state is State.DISCONNECTED and not bench.sim.device.armed
    assert len(stopped.value.log_entries()) == len(bench.sim.device.truth()) == 3


def test_a_pulse_cap_is_refused_for_five_of_ten() -> None:
    with pytest.raises(InvalidArgument, match="ML-PEST only"):
        make_procedure("5of10", max_pulses=30)


def test_all_noise_trials_stop_the_hunt_disarmed(emg_bench) -> None:
    bench = emg_bench(seed=2, model=EmgModel(noise_rms_uv=40.0))
    mt, controller = hunt(bench)
    with pytest.raises(HuntStopped) as stopped:
        mt.run()
    assert isinstance(stopped.value.cause, TooManyRejections)
    assert "in a row" in stopped.value.message
    assert controller.state is State.DISCONNECTED
    assert not bench.sim.device.armed and not bench.sim.device.remote  # the unit itself: disarmed, released
    log = stopped.value.log_entries()
    assert len(log) == len(bench.sim.device.truth()) == 5 and all(e["rejected"] for e in log)


def test_a_stream_that_stops_stops_the_hunt(emg_bench) -> None:
    bench = emg_bench(seed=3, model=EmgModel(stops_at_s=30.0))
    mt, controller = hunt(bench)
    with pytest.raises(HuntStopped) as stopped:
        mt.run()
    assert isinstance(stopped.value.cause, EmgStreamStalled)
    assert "stopped" in stopped.value.message and stopped.value.hint
    assert controller.state is State.DISCONNECTED and not bench.sim.device.armed
    assert 0 < len(stopped.value.trials) < 20


class ShiftedSource(BufferedEmgSource):
    """Samples stamped on another computer's clock, 30 s off."""

    def __init__(self, bench, offset_s: float) -> None:
        super().__init__(clock=bench.clock, channel="FDI", sample_rate_hz=5000.0, description="'shifted'")
        self.emg, self.offset_s, self.next = bench.emg, offset_s, 0

    def _poll(self) -> None:
        last = self.emg.last_index_until(self.clock.now())
        if last >= self.next:
            values = self.emg.render(self.next, last)
            self._add([self.emg.time_of(k) + self.offset_s for k in range(self.next, last + 1)], values)
            self.next = last + 1


def test_a_clock_offset_between_the_streams_is_an_error(emg_bench) -> None:
    bench = emg_bench(seed=4)
    mt, controller = hunt(bench, responder=EmgResponder(ShiftedSource(bench, 30.0)))
    with pytest.raises(HuntStopped) as stopped:
        mt.run()
    assert isinstance(stopped.value.cause, EmgClockMismatch)
    assert controller.state is State.DISCONNECTED


def test_a_recording_replays_to_the_same_threshold_and_refuses_another_hunt(emg_bench, tmp_path) -> None:
    bench = emg_bench(seed=21)
    recorder = EmgRecorder(bench.source)
    mt, _ = hunt(bench, responder=EmgResponder(recorder))
    original = mt.run()
    path = recorder.write(tmp_path / "sub-01_emg.json")
    replay_bench = emg_bench(seed=21, subject=SimulatedSubject(RecruitmentCurve(threshold_pct_mso=90.0), seed=0))
    mt, _ = hunt(replay_bench, responder=EmgResponder(FileEmgSource(path)))
    replayed = mt.run()
    assert replayed.result.value_pct_mso == original.result.value_pct_mso
    assert [t.response.amplitude_uv for t in replayed.trials] == pytest.approx(
        [t.response.amplitude_uv for t in original.trials], abs=1e-3)
    other = emg_bench(seed=21)
    mt, _ = hunt(other, responder=EmgResponder(FileEmgSource(path)), max_trials=20)
    mt.procedure._planned_pct_mso = 60  # a hunt that starts elsewhere than the recorded one
    with pytest.raises(HuntStopped) as stopped:
        mt.run()
    assert isinstance(stopped.value.cause, EmgReplayMismatch)


def test_a_source_pulse_mark_is_on_the_hunt_clock(emg_bench) -> None:
    bench = emg_bench(seed=5)
    bench.clock.advance(3.0)
    epoch = bench.source.fetch(PulseMark(1, 2.0, 50), 0.105, 0.05)
    assert epoch.times_s[0] == pytest.approx(-0.105, abs=2e-4) and epoch.times_s[-1] >= 0.0498
