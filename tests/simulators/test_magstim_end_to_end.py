"""Driver ⇄ simulator for every Magstim model, over sim://, a pseudo-terminal and TCP."""

from __future__ import annotations

import pytest
import serial

from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import ChecksumError, DeviceRefused, DeviceStateError, ProtocolError, TransportTimeout
from tmsctl.core.registry import open_driver
from tmsctl.drivers.magstim.driver import RemoteControlLost
from tmsctl.lab.testing import attached_simulator, serving
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import FaultKind, parse_fault_plan

MODELS = {"m200": "magstim-200", "bistim": "magstim-bistim", "rapid2": "magstim-rapid2", "rapid2-v8": "magstim-rapid2"}
_counter = iter(range(1_000_000))


def attached(profile: str, attachment: str, faults: str = ""):
    """A driver on a fresh simulator through the given attachment."""
    return attached_simulator(profile, attachment, faults)


@pytest.mark.parametrize("attachment", ["sim", "pty", "tcp"])
@pytest.mark.parametrize("profile", sorted(MODELS))
def test_single_pulse_cycle(profile: str, attachment: str) -> None:
    with attached(profile, attachment) as (driver, instance, _clock):
        info = driver.connect()
        assert info.simulated == (attachment == "sim")
        assert driver.status().remote_control
        driver.set_intensity(45)
        assert driver.arm().armed
        assert driver.wait_ready().ready
        driver.fire()
        assert not driver.disarm().armed
        with instance.lock:
            assert instance.device.pulse_count == 1
            assert instance.device.pulses[0].intensity_pct == 45
            assert instance.device.interlocks == []


@pytest.mark.parametrize("profile", sorted(MODELS))
def test_keepalive_holds_remote_control_through_a_long_idle(profile: str) -> None:
    with attached(profile, "sim") as (driver, instance, clock):
        driver.connect()
        for _ in range(2 * 60 * 20):  # 20 virtual minutes at the recommended 0.5 s period
            clock.sleep(0.5)
            driver.keepalive()
        driver.arm()
        driver.wait_ready()
        for _ in range(2 * 30):  # armed for 30 s, still within the unit's 60 s idle limit
            clock.sleep(0.5)
            assert driver.keepalive().ready
        assert clock.now() > 20 * 60
        assert instance.device.fault_log == []


@pytest.mark.parametrize("profile", sorted(MODELS))
def test_missed_keepalive_disarms_and_driver_reports_it(profile: str) -> None:
    with attached(profile, "sim") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.arm()
        driver.wait_ready()
        clock.sleep(1.5)  # beyond the 1 s armed keep-alive limit
        with pytest.raises(RemoteControlLost):
            driver.keepalive()
        assert not instance.device.armed and not instance.device.ready and not instance.device.remote
        assert "keep-alive missed" in instance.device.fault_log[0][1]


def test_standby_keepalive_limit_is_ten_seconds() -> None:
    with attached("m200", "sim") as (driver, _instance, clock):
        driver.connect()
        clock.sleep(9.5)
        driver.keepalive()
        clock.sleep(10.5)
        with pytest.raises(RemoteControlLost):
            driver.keepalive()


def test_armed_unit_disarms_itself_after_a_minute_without_firing() -> None:
    with attached("rapid2", "sim") as (driver, instance, clock):
        driver.connect()
        driver.arm()
        driver.wait_ready()
        for _ in range(130):
            clock.sleep(0.5)
            status = driver.keepalive()
        assert not status.armed
        assert any("too long" in what for _, what in instance.device.fault_log)


def test_rapid2_train_runs_on_the_simulator() -> None:
    with attached("rapid2", "sim") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(60)
        assert driver.set_train(10.0, 40).duration_s == 4.0
        driver.arm()
        driver.wait_ready()
        start = clock.now()
        driver.fire()
        while driver.keepalive().train_running or clock.now() - start < 0.1:
            clock.sleep(0.25)
        times = [p.t for p in instance.device.pulses]
        assert len(times) == 40
        assert times[-1] - times[0] == pytest.approx(3.9)
        assert instance.device.interlocks == []


def test_rts_quick_fire_in_process() -> None:
    with attached("rapid2", "sim") as (driver, instance, _clock):
        driver.connect()
        driver.set_intensity(35)
        driver.arm()
        driver.wait_ready()
        driver.trigger_via_rts()
        assert [p.source for p in instance.device.pulses] == ["rts"]


@pytest.mark.parametrize("profile", ["m200", "bistim", "rapid2"])
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("no_reply@cmd5", TransportTimeout),
        ("stall@cmd5", TransportTimeout),
        ("garbled_byte@cmd5", (ChecksumError, ProtocolError, DeviceRefused)),
        ("bad_checksum@cmd5", ChecksumError),
    ],
)
def test_wire_faults_give_typed_errors_and_leave_the_unit_disarmed(profile, fault, error) -> None:
    with attached(profile, "sim", faults=fault) as (driver, instance, clock):
        with pytest.raises(error):
            driver.connect()
            driver.set_intensity(50)
            driver.arm()
            driver.wait_ready()
            driver.fire()
        driver.close()
        clock.sleep(2.0)  # a unit that heard nothing more disarms itself at the keep-alive limit
        instance.device.advance(clock.now())
        assert not (instance.device.armed or instance.device.ready)
        assert instance.device.pulse_count == 0


@pytest.mark.parametrize("profile", ["m200", "bistim", "rapid2"])
@pytest.mark.parametrize("fault", ["coil_unplugged", "over_temperature", "device_error"])
def test_device_faults_while_armed_disarm_and_block_rearming(profile, fault) -> None:
    with attached(profile, "sim", faults=f"{fault}@5s") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(50)
        driver.arm()
        driver.wait_ready()
        while clock.now() < 5.2:
            clock.sleep(0.25)
            status = driver.keepalive()
        assert not status.armed
        assert not status.coil_present if fault == "coil_unplugged" else True
        assert status.error if fault == "device_error" else True
        with pytest.raises(DeviceRefused) as info:
            driver.arm()
        assert info.value.code == "state_conflict"
        assert instance.device.pulse_count == 0


def test_device_error_code_is_readable() -> None:
    with attached("rapid2", "sim", faults="device_error@1s") as (driver, _instance, clock):
        driver.connect()
        clock.sleep(1.5)
        driver.keepalive()
        code = driver.error_code()
        assert (code.source, code.code) == ("E", 42)


def test_wait_ready_gives_up_and_disarms_when_the_coil_is_gone() -> None:
    with attached("m200", "sim", faults="coil_unplugged@0.5s") as (driver, instance, _clock):
        driver.connect()
        driver.arm()
        with pytest.raises(DeviceStateError):
            driver.wait_ready()
        assert not instance.device.armed


def test_a_third_party_program_can_talk_to_the_pty_simulator() -> None:
    """No tmsctl driver: plain pyserial bytes from the published protocol."""
    instance = sims.create("m200")
    with serving(instance.device) as path, serial.Serial(path, 9600, timeout=1) as port:
        port.write(b"Q@n")
        assert port.read(3) == bytes.fromhex("51 89 25")
        port.write(b"\r")  # the bulletins' own link test: a lone CR gets '?'
        assert port.read(1) == b"?"
        port.write(b"@050*")
        assert port.read(3) == bytes.fromhex("40 89 36")
        port.write(b"R@m")
        assert len(port.read(3)) == 3


def test_sim_url_rejects_unknown_options() -> None:
    with pytest.raises(Exception, match="unknown sim:// option"):
        open_driver("sim://m200?colour=blue", VirtualClock())


def test_fault_plan_parsing() -> None:
    plan = parse_fault_plan("coil_unplugged@30s, no_reply@cmd5,stall@10s+5s")
    assert [f.kind for f in plan] == [FaultKind.COIL_UNPLUGGED, FaultKind.NO_REPLY, FaultKind.STALL]
    assert plan[2].duration_s == 5
    with pytest.raises(Exception, match="cannot read fault"):
        parse_fault_plan("explode@3s")
