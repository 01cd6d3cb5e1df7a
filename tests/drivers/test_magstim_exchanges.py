"""Magstim drivers in the byte-exchange style: exactly these bytes out, these bytes back, all consumed."""

from __future__ import annotations

import pytest

from tmsctl.core.errors import (
    ChecksumError,
    DeviceRefused,
    DeviceStateError,
    InvalidArgument,
    TransportTimeout,
)
from tmsctl.drivers.magstim import codec as c
from tmsctl.drivers.magstim.driver import BiStimDriver, M200Driver, Rapid2Driver, RemoteControlLost
from tmsctl.drivers.magstim.spec import load_spec
from tmsctl.lab.testing import ExchangeMismatch, expected_exchange

H = bytes.fromhex
REMOTE, STANDBY_REMOTE = 0x89, 0x89
UNLOCK = b"1234-12345678-" + H("FD 91")


def ok(cmd: str | int, status: int = 0x89, data: bytes = b"", rapid: int | None = None) -> bytes:
    command = cmd if isinstance(cmd, int) else ord(cmd)
    return c.encode_reply(command, c.InstrumentStatus(status), data, c.RapidStatus(rapid) if rapid is not None else None)


def params(power: int, status: int = 0x89) -> bytes:
    return ok("J", status, c.encode_parameters(c.Parameters(power, 0, 0)))


def rapid_params(power: int, f_dhz: int = 10, pulses: int = 1, dur: int = 0, status: int = 0x89, version=(9, 0)) -> bytes:
    return ok("\\", status, c.encode_rapid_parameters(c.RapidParameters(power, f_dhz, pulses, dur, 5), version), 0x38)


def test_m200_connect_set_power_arm_fire_disarm() -> None:
    script = [
        (H("51 40 6E"), H("51 89 25")),  # Q@ -> remote + coil + standby
        (b"J@u", params(30)),
        (b"@050*", H("40 89 36")),
        (b"J@u", params(50)),
        (b"EBx", ok("E", 0x89)),
        (b"J@u", params(50, 0x8A)),  # armed, charging
        (b"J@u", params(50, 0x8C)),  # ready
        (b"EHr", ok("E", 0x8C)),
        (b"EAy", ok("E", 0x8A)),
        (b"J@u", params(50, 0x89)),
    ]
    with expected_exchange(script) as transport:
        driver = M200Driver(transport, load_spec("magstim-200"))
        info = driver.connect()
        assert info.model == "magstim-200"
        driver.set_intensity(50)
        assert driver.arm().armed
        assert driver.wait_ready().ready
        driver.fire()
        assert not driver.disarm().armed


def test_connect_disarms_a_unit_found_armed() -> None:
    script = [(b"Q@n", ok("Q", 0x8A)), (b"EAy", ok("E", 0x8A)), (b"J@u", params(30)), (b"J@u", params(30))]
    with expected_exchange(script) as transport:
        M200Driver(transport, load_spec("magstim-200")).connect()


def test_readback_mismatch_is_an_error() -> None:
    script = [(b"@050*", H("40 89 36")), (b"J@u", params(49))]
    with expected_exchange(script) as transport, pytest.raises(DeviceStateError, match="49 %"):
        M200Driver(transport, load_spec("magstim-200")).set_intensity(50)


def test_keepalive_reports_lost_remote_control() -> None:
    with (
        expected_exchange([(b"J@u", params(30, status=0x09))]) as transport,
        pytest.raises(RemoteControlLost),
    ):
        M200Driver(transport, load_spec("magstim-200")).keepalive()


def test_refusal_names_the_command() -> None:
    with expected_exchange([(b"EBx", H("45 53 67"))]) as transport, pytest.raises(DeviceRefused) as info:
        M200Driver(transport, load_spec("magstim-200")).arm()
    assert info.value.code == "state_conflict"
    assert "EBx" in str(info.value)


def test_bad_checksum_and_timeout_are_typed() -> None:
    with (
        expected_exchange([(b"J@u", params(30)[:-1] + b"\x00")]) as transport,
        pytest.raises(ChecksumError),
    ):
        M200Driver(transport, load_spec("magstim-200")).status()
    with (
        expected_exchange([(b"J@u", params(30)[:5])]) as transport,
        pytest.raises(TransportTimeout) as info,
    ):
        M200Driver(transport, load_spec("magstim-200")).status()
    assert info.value.partial == params(30)[:5]


@pytest.mark.parametrize("value", [101, -1, 50.5, "50", True])
def test_power_arguments_are_checked_before_sending(value) -> None:
    with expected_exchange([]) as transport, pytest.raises(InvalidArgument):
        M200Driver(transport, load_spec("magstim-200")).set_intensity(value)


def test_bistim_power_b_and_isi() -> None:
    script = [
        (b"A050)", ok("A")),
        (b"J@u", ok("J", 0x89, c.encode_parameters(c.Parameters(30, 50, 10)))),
        (b"C025%", ok("C")),
        (b"J@u", ok("J", 0x89, c.encode_parameters(c.Parameters(30, 50, 25)))),
        (b"Y@f", ok("Y")),
        (c.encode_isi(25), ok("C")),
        (b"J@u", ok("J", 0x89, c.encode_parameters(c.Parameters(30, 50, 25)))),
    ]
    with expected_exchange(script) as transport:
        driver = BiStimDriver(transport, load_spec("magstim-bistim"))
        driver.set_intensity_b(50)
        driver.set_isi_ms(25)
        driver.set_high_resolution(True)
        driver.set_isi_ms(2.5)
        with pytest.raises(InvalidArgument, match=r"0.1 ms"):
            driver.set_isi_ms(2.55)
        with pytest.raises(InvalidArgument, match="outside"):
            driver.set_isi_ms(120)


def test_rapid2_v9_connect_uses_version_then_unlock_code_then_x_keepalive() -> None:
    script = [
        (b"NDm", H("4E 56 39 2E 30 00 C4")),
        (H("51 31 32 33 34 2D 31 32 33 34 35 36 37 38 2D FD 91 58"), ok("Q")),
        (b"\\@c", rapid_params(30)),
        (b"\\@c", rapid_params(30)),
        (b"x@G", ok("x", 0x89, b"\x00\x00", 0x38)),
    ]
    with expected_exchange(script) as transport:
        driver = Rapid2Driver(transport, load_spec("magstim-rapid2"), unlock_code=UNLOCK)
        info = driver.connect()
        assert info.version == (9, 0)
        assert driver.keepalive().remote_control


def test_rapid2_v9_without_unlock_code_refuses_before_taking_control() -> None:
    with (
        expected_exchange([(b"NDm", H("4E 56 39 2E 30 00 C4"))]) as transport,
        pytest.raises(InvalidArgument, match="unlock"),
    ):
        Rapid2Driver(transport, load_spec("magstim-rapid2")).connect()


def test_rapid2_v8_uses_short_fields() -> None:
    v8 = (8, 1)
    script = [
        (b"NDm", c.encode_version_reply("V8.1")),
        (b"Q@n", ok("Q")),
        (b"\\@c", rapid_params(60, version=v8)),
        (b"\\@c", rapid_params(60, version=v8)),
        (b"B0100\xfc", ok("B", rapid=0x38)),
        (b"D0040\xf7", ok("D", rapid=0x38)),
        (c.encode_duration(40, v8), ok("[", rapid=0x30)),
        (b"\\@c", rapid_params(60, 100, 40, 40, version=v8)),
    ]
    with expected_exchange(script) as transport:
        driver = Rapid2Driver(transport, load_spec("magstim-rapid2"))
        driver.connect()
        assert driver.set_train(10.0, 40).duration_s == 4.0


def test_rapid2_train_arguments_are_checked() -> None:
    with expected_exchange([]) as transport:
        driver = Rapid2Driver(transport, load_spec("magstim-rapid2"), unlock_code=UNLOCK)
        driver.version = (9, 0)
        driver.power_pct = 80
        with pytest.raises(InvalidArgument, match=r"0.1 Hz"):
            driver.set_train(10.05, 40)
        driver.power_pct = 30
        with pytest.raises(InvalidArgument, match=r"0.1 s"):
            driver.set_train(50.0, 3)  # 0.06 s: the Rapid² cannot time it (MagPy issue #12)
        driver.power_pct = 80
        with pytest.raises(InvalidArgument, match="limit"):
            driver.set_train(40.0, 40)  # 80 % allows 18 Hz on a 240 V Rapid²
        with pytest.raises(InvalidArgument, match="pulses"):
            driver.set_train(10.0, 0)


def test_scripted_exchange_catches_wrong_bytes() -> None:
    with pytest.raises(ExchangeMismatch), expected_exchange([(b"EBx", ok("E"))]) as transport:
        M200Driver(transport, load_spec("magstim-200")).fire()
