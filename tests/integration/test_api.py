"""The embedding API: a controller thread behind a thread-safe facade, on a virtual clock."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

import tmsctl.lab.api as api
from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import ConnectionFailed, GuardRejected, InvalidArgument, TmsError
from tmsctl.core.events import CollectingListener
from tmsctl.records import Records, SessionStatus
from tmsctl.session.fsm import State
from tmsctl.session.runner import RunOutcome

SHORT_RTMS = """\
schema_version: 1
id: short-5hz
title: Short 5 Hz test protocol
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern:
  kind: rtms
  frequency_hz: 5
  pulses_per_train: 10
  inter_train_interval_s: 10
  trains: 4
"""


@pytest.fixture
def short_protocol(tmp_path: Path) -> Path:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT_RTMS)
    return path


def approve(records: Records, path: Path) -> None:
    from tmsctl.protocols.canonical import content_hash
    from tmsctl.protocols.loader import load_protocol

    protocol = load_protocol(path)
    records.approve_protocol(protocol.id, content_hash(protocol), approved_by="reviewer")


def test_single_pulses_are_delivered_and_reported_with_their_trigger_time(
    tms_stimulator, tms_simulator, tms_clock, tms_events
) -> None:
    sim = tms_simulator()  # a second simulator, to show the fixture's own is separate
    assert sim.device.pulse_count == 0
    device = _device_of(tms_stimulator)
    tms_stimulator.set_intensity(45)
    tms_stimulator.arm()
    for _ in range(6):
        delivery = tms_stimulator.fire()
        assert delivery.pulses == 1 and not delivery.is_train
        tms_clock.sleep(1.7)
    tms_stimulator.disarm()
    pulses = tms_events.of("pulse_delivered")
    assert [e.n for e in pulses] == [1, 2, 3, 4, 5, 6]
    assert device.pulse_count == 6 and {p.intensity_pct for p in device.pulses} == {45}
    for event, pulse in zip(pulses, device.pulses):
        # the event is stamped when the fire command starts; the pulse follows its last byte
        assert 0 <= pulse.t - event.t_mono < 0.02
    assert not device.is_energised


def test_the_controller_keeps_the_device_alive_while_the_caller_waits(tms_stimulator, tms_clock) -> None:
    device = _device_of(tms_stimulator)
    tms_stimulator.set_intensity(40)
    tms_stimulator.arm()
    tms_clock.sleep(45.0)  # a Rapid² disarms after about a second without a keep-alive
    assert device.is_energised
    assert tms_stimulator.status().state is State.ARMED
    tms_stimulator.fire()
    assert device.pulse_count == 1


def test_a_device_that_disarms_itself_latches_a_fault(tms_stimulator, tms_clock, tms_events) -> None:
    tms_stimulator.set_intensity(40)
    tms_stimulator.arm()
    tms_clock.sleep(75.0)  # armed and idle: the Rapid² disarms itself after 60 s
    assert tms_stimulator.status().state is State.FAULT
    assert [e.code for e in tms_events.of("fault")] == ["device_disarmed"]


def test_a_device_timed_train_is_waited_for_and_reported(tms_stimulator, tms_events, tms_clock) -> None:
    device = _device_of(tms_stimulator)
    tms_stimulator.set_intensity(40)
    tms_stimulator.configure_train(10, 20)
    tms_stimulator.arm()
    delivery = tms_stimulator.fire()
    assert delivery.is_train and delivery.pulses == 20
    assert device.pulse_count == 20  # fire() returned after the train's end
    assert tms_clock.now() >= delivery.expected_end
    started, finished = tms_events.of("train_started"), tms_events.of("train_finished")
    assert len(started) == len(finished) == 1 and finished[0].pulses_delivered == 20
    assert started[0].t_mono == delivery.started_at


def test_fire_without_waiting_returns_while_the_train_runs(tms_stimulator, tms_clock) -> None:
    device = _device_of(tms_stimulator)
    tms_stimulator.set_intensity(40)
    tms_stimulator.configure_train(5, 10)
    tms_stimulator.arm()
    delivery = tms_stimulator.fire(wait=False)
    assert device.pulse_count < 10
    with pytest.raises(GuardRejected):
        tms_stimulator.fire()  # still stimulating
    tms_clock.sleep_until(delivery.expected_end + 0.5)
    assert device.pulse_count == 10
    assert tms_stimulator.status().state is State.ARMED


def test_guard_refusals_reach_the_caller_unchanged(tms_stimulator) -> None:
    with pytest.raises(GuardRejected, match="not armed"):
        tms_stimulator.fire()
    with pytest.raises(InvalidArgument, match="whole percent"):
        tms_stimulator.set_intensity(42.5)  # type: ignore[arg-type]


def test_close_disarms_is_idempotent_and_refuses_later_commands(tms_simulator, tms_clock) -> None:
    sim = tms_simulator()
    stim = api.open(sim.url, clock=tms_clock)
    stim.set_intensity(30)
    stim.arm()
    assert sim.device.is_energised
    stim.close()
    assert not sim.device.is_energised and stim.closed
    stim.close()
    with pytest.raises(ConnectionFailed, match="closed"):
        stim.arm()


def test_the_context_manager_closes_even_when_the_experiment_raises(tms_simulator, tms_clock) -> None:
    sim = tms_simulator()
    with pytest.raises(RuntimeError, match="experiment bug"), api.open(sim.url, clock=tms_clock) as stim:
        stim.set_intensity(30)
        stim.arm()
        raise RuntimeError("experiment bug")
    assert stim.closed and not sim.device.is_energised


def test_a_stimulator_dropped_while_connected_warns_and_is_disarmed(tms_simulator, tms_clock) -> None:
    sim = tms_simulator()
    stim = api.open(sim.url, clock=tms_clock)
    stim.set_intensity(30)
    stim.arm()
    core = stim._core
    with pytest.warns(ResourceWarning, match="garbage-collected while connected"):
        del stim
        gc.collect()
    tms_clock.wait(core.ended, None)
    assert core.closed and not sim.device.is_energised


def test_calls_from_several_threads_are_serialised_on_the_controller_thread(tms_stimulator, tms_clock) -> None:
    device = _device_of(tms_stimulator)
    tms_stimulator.set_intensity(35)
    tms_stimulator.arm()
    finished = tms_clock.event()
    seen: list[object] = []

    def poll_status() -> None:
        with tms_clock.participant():
            for _ in range(20):
                seen.append(tms_stimulator.status().state)
                tms_clock.sleep(0.3)
        finished.set()

    worker = threading.Thread(target=poll_status)
    worker.start()
    for _ in range(4):
        tms_stimulator.fire()
        tms_clock.sleep(1.5)
    tms_clock.wait(finished, None)
    worker.join()
    assert device.pulse_count == 4 and len(seen) == 20
    assert set(seen) <= {State.ARMED, State.STIMULATING}


@pytest.mark.tms_faults("coil_unplugged@3s")
def test_a_fault_between_commands_is_latched_and_reported(tms_stimulator, tms_clock, tms_events) -> None:
    device = _device_of(tms_stimulator)
    tms_stimulator.set_intensity(40)
    tms_stimulator.arm()
    tms_clock.sleep(5.0)
    assert tms_stimulator.status().state is State.FAULT
    assert isinstance(tms_stimulator.last_error, TmsError)
    assert tms_events.of("fault") and not device.is_energised
    with pytest.raises(TmsError):
        tms_stimulator.fire()
    with pytest.raises(TmsError, match="acknowledge"):
        tms_stimulator.connect()


def test_run_records_the_session_like_the_cli_and_reconnects(
    tms_simulator, tms_clock, short_protocol, tmp_path
) -> None:
    sim = tms_simulator()
    events = CollectingListener()
    with Records(tmp_path / "r.db") as records, api.open(sim.url, clock=tms_clock, listeners=[events], db=records) as stim:
        approve(records, short_protocol)
        result = stim.run(short_protocol, subject="S101", mt=50, operator="tester", log_dir=tmp_path / "logs")
        assert result.outcome is RunOutcome.COMPLETED, result.reason
        assert result.pulses_delivered == 40 == sim.device.pulse_count
        session = records.session(result.session_id)
        assert session.status is SessionStatus.COMPLETED and session.simulated and session.subject_id == "S101"
        assert records.resume_point(result.session_id).pulses_delivered == 40
        assert (tmp_path / "logs" / f"{result.session_id}.jsonl").exists()
        assert len(events.of("train_started")) == 4
        assert [e.index for e in events.of("train_finished")] == [0, 1, 2, 3]
        status = stim.status()  # reconnected after the session
        assert status.connected and status.state is State.IDLE
        stim.set_intensity(30)
        stim.arm()
        stim.fire()
        assert sim.device.pulse_count == 41


def test_run_takes_a_protocol_object(tms_simulator, tms_clock, short_protocol, tmp_path) -> None:
    from tmsctl.protocols.loader import load_protocol

    sim = tms_simulator()
    protocol = load_protocol(short_protocol)
    with api.open(sim.url, clock=tms_clock, db=tmp_path / "r.db") as stim:
        result = stim.run(protocol, subject="S102", mt=50, log_dir=tmp_path / "logs", allow_unapproved="pilot")
    assert result.outcome is RunOutcome.COMPLETED and sim.device.pulse_count == 40


def test_abort_from_another_thread_stops_the_session_disarmed(tms_simulator, tms_clock, short_protocol, tmp_path) -> None:
    sim = tms_simulator()
    events = CollectingListener()

    class AbortAfterFirstTrain:
        def on_event(self, event):
            if event.kind == "train_finished":
                threading.Thread(target=stim.abort, args=("subject asked to stop",)).start()

        def on_error(self, exc):
            raise exc

        def stop(self):
            pass

    with Records(tmp_path / "r.db") as records:
        stim = api.open(sim.url, clock=tms_clock, listeners=[events, AbortAfterFirstTrain()], db=records)
        with stim:
            result = stim.run(short_protocol, subject="S103", mt=50, log_dir=tmp_path / "logs", allow_unapproved="pilot")
        assert result.outcome is RunOutcome.ABORTED
        assert records.session(result.session_id).status is SessionStatus.ABORTED
    assert 10 <= sim.device.pulse_count < 40 and not sim.device.is_energised


def test_an_unregistered_sim_url_gets_one_simulator_for_the_whole_stimulator(short_protocol, tmp_path) -> None:
    from tmsctl.simulators import registry as sims

    clock = VirtualClock()
    before = set(sims._INSTANCES)
    with api.open("sim://rapid2", clock=clock, db=tmp_path / "r.db") as stim:
        (name,) = set(sims._INSTANCES) - before
        instance = sims.lookup(name)
        assert instance.clock is clock
        result = stim.run(short_protocol, subject="S104", mt=50, log_dir=tmp_path / "logs", allow_unapproved="pilot")
        assert result.outcome is RunOutcome.COMPLETED
        assert instance.device.pulse_count == 40  # the session stimulated this same simulator
    assert name not in sims._INSTANCES  # removed with the stimulator


def test_a_fault_plan_in_the_url_reaches_the_simulator() -> None:
    clock = VirtualClock()
    events = CollectingListener()
    with api.open("sim://rapid2?fault=coil_unplugged@2s", clock=clock, listeners=[events]) as stim:
        stim.set_intensity(30)
        stim.arm()
        clock.sleep(4.0)
        assert stim.status().state is State.FAULT
    assert events.of("fault")  # the unit disarms when its coil is unplugged; either finding latches


def test_a_registered_simulator_on_another_clock_is_refused(tms_simulator) -> None:
    sim = tms_simulator()
    with pytest.raises(InvalidArgument, match="another clock"):
        api.open(sim.url, clock=VirtualClock())


def _device_of(stimulator):
    from tmsctl.simulators import registry as sims

    return sims.lookup(stimulator.url.split("://", 1)[1]).device
