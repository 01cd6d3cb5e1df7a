"""The simulators' truth log (every discharge: instant, output, power, source), in process and in
``tmsctl sim serve --status-file``; and the Rapid²'s device-timed train as armed-idle activity."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from tmsctl.lab.testing import attached_simulator
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import PulseRecord
from tmsctl.simulators.serve import StatusFile


def test_truth_is_every_pulse_with_its_instant_output_power_and_source() -> None:
    with attached_simulator("rapid2") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(45)
        driver.arm()
        driver.wait_ready()
        fired_at = clock.now()
        driver.fire()
        truth = instance.device.truth()
    assert isinstance(truth, tuple) and len(truth) == instance.device.pulse_count == 1
    (pulse,) = truth
    assert (pulse.output, pulse.power_pct, pulse.source) == ("A", 45, "serial")
    assert fired_at < pulse.t < clock.now()


def test_a_bistim_fires_output_a_then_b_one_isi_later_at_their_own_powers() -> None:
    with attached_simulator("bistim") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.set_intensity_b(55)
        driver.set_isi_ms(25)
        driver.arm()
        driver.wait_ready()
        driver.fire()
        clock.sleep(0.1)
        instance.device.advance(clock.now())
        a, b = instance.device.truth()
    assert (a.output, a.power_pct, b.output, b.power_pct) == ("A", 40, "B", 55)
    assert b.t - a.t == pytest.approx(0.025)


def test_a_bistim_whose_output_b_was_never_set_fires_a_alone() -> None:
    with attached_simulator("bistim") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.arm()
        driver.wait_ready()
        driver.fire()
        clock.sleep(0.5)
        instance.device.advance(clock.now())
        assert [p.output for p in instance.device.truth()] == ["A"]


def test_the_status_file_carries_the_truth_log(tmp_path: Path) -> None:
    instance = sims.create("m200")
    device = instance.device
    status = StatusFile(tmp_path / "status.json")
    status.update(device)
    assert json.loads(status.path.read_text())["truth"] == []
    device.pulses.append(PulseRecord(device.started_at + 1.5, 60, "serial", "A"))
    status.update(device)
    written = json.loads(status.path.read_text())
    assert written["pulses"] == 1 and written["armed"] is False and written["faults"] == []
    assert written["truth"] == [{"t": 1.5, "output": "A", "power_pct": 60, "source": "serial"}]


def test_tmsctl_sim_serve_writes_the_truth_log_for_another_process(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    server = subprocess.Popen(
        [sys.executable, "-m", "tmsctl", "sim", "serve", "m200", "--pty", "--status-file", str(status),
         "--fault", "power_drift@0.3s=70"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        path = server.stdout.readline().strip()  # type: ignore[union-attr]
        with serial.Serial(path, 9600, timeout=1) as port:
            for frame in (b"Q@n", b"@050*", b"EBx"):
                port.write(frame)
                assert len(port.read(3)) == 3
            for _ in range(4):  # drift at 0.3 s, charged 0.8 s after arming; armed keep-alive < 1 s
                time.sleep(0.3)
                port.write(b"J@u")
                assert len(port.read(12)) == 12
            port.write(b"EHr")
            assert len(port.read(3)) == 3
            port.write(b"EAy")
            port.read(3)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            written = json.loads(status.read_text()) if status.exists() else {}
            if written.get("pulses") == 1:
                break
            time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
    assert written["pulses"] == 1 and written["faults"] == ["power_drift@0.3s=70"]
    (pulse,) = written["truth"]
    assert (pulse["output"], pulse["power_pct"], pulse["source"]) == ("A", 70, "serial")
    assert 1.0 < pulse["t"] < 10


def test_a_1hz_900_pulse_train_runs_to_its_end_on_the_rapid2() -> None:
    """The armed-idle minute counts from the last pulse of a train, not from its trigger."""
    with attached_simulator("rapid2") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(50)
        assert driver.set_train(1.0, 900).duration_s == 900.0
        driver.arm()
        driver.wait_ready()
        driver.fire()
        while driver.keepalive().train_running:
            clock.sleep(0.5)
        truth = instance.device.truth()
        assert not any("too long" in what for _, what in instance.device.fault_log)
        assert len(truth) == 900 and truth[-1].t - truth[0].t == pytest.approx(899.0)
        assert driver.status().armed  # still armed after the train, for another minute
        for _ in range(130):
            clock.sleep(0.5)
            status = driver.keepalive()
        assert not status.armed  # ...and then the idle rule disarms it, counted from the last pulse
