"""DuoMAG driver ⇄ simulator over sim://, a pseudo-terminal and TCP: doubled commands in, the status
stream out, nothing confirmed that the stream cannot show."""

from __future__ import annotations

import pytest

from tmsctl.core.errors import DeviceRefused, DeviceStateError, ProtocolError, TransportTimeout
from tmsctl.drivers.deymed import codec as c
from tmsctl.lab.testing import attached_simulator

_counter = iter(range(1_000_000))


def attached(profile: str = "duomag", attachment: str = "sim", faults: str = ""):
    return attached_simulator(profile, attachment, faults)


@pytest.mark.parametrize("attachment", ["sim", "pty", "tcp"])
def test_single_pulse_cycle_on_every_attachment(attachment: str) -> None:
    with attached(attachment=attachment) as (driver, instance, _clock):
        info = driver.connect()
        assert info.simulated == (attachment == "sim") and driver.confirmed_replies is False
        driver.set_intensity(55)
        with instance.lock:
            assert instance.device.intensity_pct == 0  # held at 0 % until armed
        assert driver.arm().armed
        assert driver.wait_ready().ready
        assert driver.fire().confirmed is False
        assert not driver.disarm().armed
        with instance.lock:
            device = instance.device
            assert [p.intensity_pct for p in device.pulses] == [55]
            assert device.intensity_pct == 0 and not device.is_energised
            assert device.interlocks == [] and device.rejected_bytes == []
    assert driver.unconfirmed_pulses == 1 and driver.records_seen > 3


def test_keepalives_through_a_long_idle_read_fresh_records() -> None:
    with attached() as (driver, instance, clock):
        driver.connect()
        seen = driver.records_seen
        for _ in range(2 * 60 * 5):  # five virtual minutes at the controller's 0.5 s period
            clock.sleep(0.5)
            driver.keepalive()
        # every keep-alive consumed the backlog and waited for a record that ended after it began
        assert driver.records_seen - seen >= 600
        assert instance.device.fault_log == []


def test_the_simulator_counts_a_premature_fire_as_omitted_and_the_driver_reports_it() -> None:
    with attached() as (driver, instance, _clock):
        driver.connect()
        driver.set_intensity(60)
        driver.arm()
        driver.wait_ready()
        driver.fire()
        with pytest.raises(DeviceRefused, match="omitted"):
            driver.fire()  # no controller here: nothing waits for the recharge
        assert instance.device.pulse_count == 1 and instance.device.omitted_pulses == 1
        assert "not charged" in instance.device.interlocks[0][1]


def test_delays_are_confirmed_from_the_stream() -> None:
    with attached() as (driver, instance, _clock):
        driver.connect()
        driver.set_recharge_delay_us(500_000)
        driver.set_ttl_out_delay_us(20_000)
        assert instance.device.recharge_delay == c.DelayCode(100, c.DelayStep.MS_5)
        assert instance.device.ttl_out_delay == c.DelayCode(100, c.DelayStep.US_200)


def test_thirteen_byte_records_of_older_units() -> None:
    with attached("duomag-13") as (driver, instance, _clock):
        info = driver.connect()
        assert info.details["status_record"] == "13 bytes" and info.details["coil"] == "not reported"
        driver.set_intensity(30)
        driver.arm()
        driver.wait_ready()
        driver.fire()
        driver.disarm()
        assert instance.device.pulse_count == 1


@pytest.mark.parametrize(
    ("fault", "error", "why"),
    [
        ("stall@1s+1s", TransportTimeout, "stream stopped"),
        ("garbled_byte@1s", ProtocolError, "corrupted"),
        ("bad_checksum@1s", ProtocolError, "corrupted"),
        ("coil_unplugged@1s", DeviceStateError, "coil_disconnected"),
        ("over_temperature@1s", DeviceStateError, "coil_overheat"),
        ("device_error@1s", DeviceStateError, "voltage_hold_error"),
    ],
)
def test_stream_faults_reach_the_driver_as_typed_errors(fault: str, error: type, why: str) -> None:
    with attached(faults=fault) as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.arm()
        driver.wait_ready()
        with pytest.raises(error, match=why):
            for _ in range(10):
                clock.sleep(0.5)
                driver.keepalive()
        clock.sleep(2.0)
        driver.disarm()  # once the stall is over, 0 % is confirmed again
        assert not instance.device.is_energised


def test_a_dropped_record_goes_unnoticed_and_that_is_why_the_suite_says_so() -> None:
    with attached(faults="no_reply@1s") as (driver, instance, clock):
        driver.connect()
        for _ in range(6):
            clock.sleep(0.5)
            driver.keepalive()
        assert instance.device.fault_log and driver.last is not None
