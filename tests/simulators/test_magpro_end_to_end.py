"""MagPro driver ⇄ simulator over sim://, a pseudo-terminal and TCP; the unit's unprompted messages
interleaved with answers; device-timed trains and theta bursts; the simulator's own interlocks."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tmsctl.core.clock import SystemClock
from tmsctl.core.errors import DeviceRefused, DeviceStateError, InvalidArgument, TransportTimeout
from tmsctl.core.registry import open_driver
from tmsctl.drivers.magventure import codec as c
from tmsctl.lab.testing import attached_simulator

_counter = iter(range(1_000_000))


def attached(
    profile: str = "magpro-x100", attachment: str = "sim", faults: str = "", driver: str | None = None
):
    return attached_simulator(profile, attachment, faults, driver)


@pytest.mark.parametrize("attachment", ["sim", "pty", "tcp"])
def test_single_pulse_cycle_on_every_attachment(attachment: str) -> None:
    with attached(attachment=attachment) as (driver, instance, _clock):
        info = driver.connect()
        assert info.model == "magventure-magpro-x100" and info.simulated == (attachment == "sim")
        driver.set_intensity(45)
        assert driver.arm().armed
        assert driver.wait_ready().ready
        driver.fire()
        assert not driver.disarm().armed
        with instance.lock:
            device = instance.device
            assert [p.intensity_pct for p in device.pulses] == [45]
            assert device.interlocks == [] and device.rejected_frames == []
    # what the unit said on its own came through every attachment intact
    assert driver.stimuli_reported == 1 and driver.message_counts[c.AmplitudeChanged.MESSAGE_ID] >= 2
    assert driver.message_counts[c.PageChanged.MESSAGE_ID] >= 1


@pytest.mark.parametrize("attachment", ["sim", "tcp"])
def test_a_device_timed_train_counts_every_pulse_through_its_didt_reports(attachment: str) -> None:
    with attached(attachment=attachment) as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(50)
        driver.set_train(20.0, 8)
        driver.arm()
        assert driver.fire().train_running
        while driver.keepalive().train_running:
            clock.sleep(0.05)  # type: ignore[attr-defined]
        driver.disarm()
        with instance.lock:
            times = [p.t for p in instance.device.pulses]
    assert len(times) == 8 and driver.pulses_reported == 8
    assert all(abs((b - a) - 0.05) < 1e-9 for a, b in itertools.pairwise(times))


def test_theta_burst_is_timed_by_the_device() -> None:
    with attached() as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.set_theta_burst(pulses_per_burst=3, burst_frequency_hz=50, burst_rate_hz=5, bursts=10)
        driver.arm()
        driver.fire()
        while driver.keepalive().train_running:
            clock.sleep(0.25)
        times = [p.t for p in instance.device.pulses]
        sources = [p.source for p in instance.device.pulses]
        driver.set_single_pulse_mode()  # leaves Biphasic Burst, confirmed by the unit
        assert instance.device.waveform is c.Waveform.BIPHASIC
    assert len(times) == 30 and sources.count("serial") == 1
    starts = times[::3]
    assert all(abs((b - a) - 0.2) < 1e-9 for a, b in itertools.pairwise(starts))
    for k in range(10):
        burst = times[3 * k : 3 * k + 3]
        assert all(abs((b - a) - 0.02) < 1e-9 for a, b in itertools.pairwise(burst))
    assert (driver.stimuli_reported, driver.pulses_reported) == (10, 30)


def test_an_unprompted_message_between_a_request_and_its_answer_is_parsed_and_kept() -> None:
    with attached() as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(50)
        with instance.lock:
            instance.device.front_panel_amplitude(65, clock.now())  # leaves the unit in 20 ms
        before = len(driver.messages)
        with pytest.raises(DeviceStateError, match="changed to 65 %"):
            driver.keepalive()  # the long status is answered after the ID-1 message
        ids = [m.MESSAGE_ID for _, m in list(driver.messages)[before:]]
    assert ids == [c.AmplitudeChanged.MESSAGE_ID, c.LongStatus.MESSAGE_ID]
    assert driver.amplitude_a_pct == 65


def test_coil_heating_is_reported_unprompted() -> None:
    with attached() as (driver, _instance, clock):
        driver.connect()
        start = driver.coil_temperature_c()[0]
        driver.set_intensity(100)
        driver.set_train(20.0, 1000)
        driver.arm()
        driver.fire()
        while driver.keepalive().train_running:
            clock.sleep(1.0)
        hotter = driver.coil_temperature
        reports = driver.message_counts[c.CoilChanged.MESSAGE_ID]
    assert hotter is not None and hotter >= start + 3 and reports >= 3


def test_older_firmware_runs_single_pulses_only() -> None:
    with attached("magpro-r30-older") as (driver, instance, _clock):
        info = driver.connect()
        assert driver.generation == "older" and "older" in info.details["firmware_generation"]
        with pytest.raises(InvalidArgument, match="cannot be read back"):
            driver.set_train(10.0, 10)
        driver.set_intensity(30)
        driver.arm()
        driver.fire()
        assert instance.device.pulse_count == 1


def test_a_per_model_url_refuses_a_different_unit() -> None:
    from tmsctl.core.errors import SafetyViolation

    # (a sim:// URL must use the profile's own driver; a socket names any driver)
    with (
        attached("magpro-r30", "tcp", driver="magventure-magpro-x100") as (driver, _instance, _clock),
        pytest.raises(SafetyViolation, match="R30"),
    ):
        driver.connect()


def test_the_simulator_ignores_a_trigger_while_disabled_and_the_driver_says_so() -> None:
    with attached() as (driver, instance, _clock):
        driver.connect()
        with pytest.raises(TransportTimeout, match="di/dt"):
            driver.fire()
        assert instance.device.pulse_count == 0
        assert "not enabled" in instance.device.interlocks[0][1]


def test_a_coil_unplugged_unit_will_not_enable() -> None:
    with attached(faults="coil_unplugged@0.5s") as (driver, instance, clock):
        driver.connect()
        clock.sleep(1.0)
        assert not driver.status().coil_present
        with pytest.raises(DeviceRefused, match="did not enable"):
            driver.arm()
        assert "no coil" in instance.device.interlocks[0][1]


def test_an_over_temperature_unit_disables_itself_and_says_so() -> None:
    with attached(faults="over_temperature@2s") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(30)
        driver.arm()
        clock.sleep(2.5)
        status = driver.status()
        assert not status.armed and driver.coil_temperature == 42
        assert any("over_temperature" in what for _, what in instance.device.fault_log)


def test_the_simulator_refuses_a_waveform_write_for_another_model() -> None:
    with attached("magpro-x100") as (driver, instance, clock):
        driver.connect()
        with instance.lock:
            instance.device.feed(
                c.encode_host_command(
                    c.SetWaveform(
                        c.MagProModel.R30,
                        c.Mode.STANDARD,
                        c.CurrentDirection.NORMAL,
                        c.Waveform.MONOPHASIC,
                        2,
                        200,
                        100,
                    )
                ),
                clock.now(),
            )
            instance.device.advance(clock.now() + 0.1)
            assert instance.device.waveform is c.Waveform.BIPHASIC
            assert "names model R30" in instance.device.interlocks[0][1]


def test_tmsctl_sim_serve_magpro_pty_from_the_cli(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tmsctl", "sim", "serve", "magpro", "--pty", "--status-file", str(status)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        path = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert path.startswith("/dev/"), proc.stderr.read()  # type: ignore[union-attr]
        driver = open_driver(f"magventure-magpro://{path}", SystemClock())
        try:
            assert driver.connect().model == "magventure-magpro-x100"
            driver.set_intensity(35)
            driver.arm()
            driver.fire()
            driver.disarm()
        finally:
            driver.close()
        state = json.loads(status.read_text())
        assert state["pulses"] == 1 and state["interlocks"] == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
