"""DuoMAG driver in the byte-exchange style: exactly these bytes out; what comes back is the status stream.

The DuoMAG answers nothing, so the "answer" to a write is the stream of status records that
follows it, and a status read without a write waits for the next record of the stream. The port
here is ``tmsctl.lab.testing``'s scripted port plus records that arrive on the virtual clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import (
    DeviceRefused,
    DeviceStateError,
    InvalidArgument,
    ProtocolError,
    TransportTimeout,
)
from tmsctl.core.transport import Transport
from tmsctl.drivers.base import Capability
from tmsctl.drivers.deymed import codec as c
from tmsctl.drivers.deymed.driver import DuoMagDriver
from tmsctl.drivers.deymed.spec import load_spec
from tmsctl.lab.testing import ExchangeMismatch, ScriptedPort

H = bytes.fromhex
SYNC = b"\xff"
GOLDEN_STREAM = H("FF 23 3C 78 6E 64 00 00 03 01 01 64 47 00 00 01 FF")  # deymed.md: 60 %, charged, 70BF
PERIOD_S = 0.02


def rec(
    intensity: int,
    *,
    charged: bool = True,
    omitted: int = 0,
    coil_type: int | None = 1,
    recharge: c.DelayCode = c.DelayCode(100, c.DelayStep.MS_1),
    ttl: c.DelayCode = c.DelayCode(1, c.DelayStep.MS_10),
    **flags: bool,
) -> bytes:
    """One record and the sync byte after it."""
    fields = dict(
        ttl_trigger_demand=False,
        intensity_change_pct=0,
        intensity_pct_mso=intensity,
        coil_temperature_raw=100,
        resistor_temperature_raw=100,
        discharge_temperature_raw=100,
        omitted_pulses=omitted,
        power_overheat=False,
        coil_disconnected=False,
        voltage_hold_error=False,
        voltage_recharge_error=False,
        power_fan_seized=False,
        coil_overheat=False,
        resistor_overheat=False,
        discharge_overheat=False,
        coil_data_ok=True,
        receiving_usb=True,
        idle_time=False,
        charged=charged,
        ttl_out_delay=ttl,
        recharge_delay=recharge,
        coil_type=coil_type,
    )
    fields.update(flags)
    return c.encode_status_record(c.DuoMagStatus(**fields)) + SYNC


class StreamingPort(ScriptedPort):
    """A scripted port whose device also streams: ``stream`` chunks arrive at their clock times."""

    def __init__(
        self, pairs: Sequence[tuple[bytes, bytes]], clock: VirtualClock, stream: Sequence[tuple[float, bytes]]
    ):
        super().__init__(pairs, clock)
        self._stream = sorted(stream, key=lambda item: item[0])

    def _release(self) -> None:
        now = self._clock.now()
        while self._stream and self._stream[0][0] <= now:
            self._rx += self._stream.pop(0)[1]

    @property
    def in_waiting(self) -> int:
        self._release()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        deadline = self._clock.now() + (self.timeout or 0.0)
        while True:
            self._release()
            if len(self._rx) >= size or not self.timeout:
                break
            upcoming = self._stream[0][0] if self._stream else None
            if upcoming is None or upcoming > deadline:
                self._clock.sleep_until(deadline)
                break
            self._clock.sleep_until(upcoming)
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out


def every(record: bytes, start: float, count: int) -> list[tuple[float, bytes]]:
    return [(start + k * PERIOD_S, record) for k in range(count)]


@contextmanager
def exchange(
    pairs: Sequence[tuple[bytes, bytes]],
    stream: Sequence[tuple[float, bytes]],
    *,
    leading: bytes = SYNC + rec(0),
) -> Iterator[tuple[DuoMagDriver, VirtualClock]]:
    clock = VirtualClock()
    port = StreamingPort(pairs, clock, [(0.0, leading), *stream])
    driver = DuoMagDriver(Transport(port, clock, name="scripted"), load_spec())  # type: ignore[arg-type]
    yield driver, clock
    if port.unconsumed():
        raise ExchangeMismatch(f"scripted exchange(s) never happened; next: {port.unconsumed()[0]!r}")


def connect(driver: DuoMagDriver) -> None:
    info = driver.connect()
    assert Capability.CONFIRMED_REPLIES not in info.capabilities


# --- connect ----------------------------------------------------------------------------------------


def test_connect_joins_the_stream_halfway_and_reports_what_it_cannot_confirm() -> None:
    with exchange([], every(rec(0), PERIOD_S, 3), leading=rec(0)[5:] + rec(0)) as (driver, _):
        info = driver.connect()
    assert driver.confirmed_replies is False
    assert info.capabilities == frozenset({Capability.SINGLE_PULSE, Capability.EXTERNAL_TRIGGER})
    assert "none" in info.details["replies"] and info.details["coil"] == "70BF"


def test_connect_brings_a_unit_found_at_60_percent_down_to_zero() -> None:
    # The reference's status-stream vector: the unit sits at 60 %, charged.
    with exchange([(H("00 00"), rec(0))], [(PERIOD_S, GOLDEN_STREAM[1:])], leading=GOLDEN_STREAM) as (
        driver,
        _,
    ):
        driver.connect()
    assert driver.last is not None and driver.last.intensity_pct_mso == 0 and not driver.armed


def test_no_stream_no_connection() -> None:
    with (
        exchange([], [], leading=b"") as (driver, clock),
        pytest.raises(TransportTimeout, match="stream stopped"),
    ):
        driver.connect()
    assert clock.now() >= 1.0


# --- intensity, arm, fire, disarm --------------------------------------------------------------------


def test_intensity_waits_for_arming_then_is_confirmed_from_the_stream() -> None:
    pairs = [
        (H("32 32"), rec(50, charged=False)),  # arm: the unit starts charging to 50 %
        (H("79 79"), rec(50, charged=False)),  # fire: discharged, recharging
        (H("00 00"), rec(0)),  # disarm
    ]
    stream = [(PERIOD_S, rec(0)), *every(rec(50, charged=False), 0.05, 3), *every(rec(50), 0.12, 3)]
    with exchange(pairs, stream) as (driver, _clock):
        connect(driver)
        driver.set_intensity(50)  # no bytes: the unit is held at 0 % while disarmed
        assert driver.target_pct == 50
        armed = driver.arm()
        assert armed.armed and not armed.ready
        assert driver.wait_ready().ready
        fired = driver.fire()
        assert fired.confirmed is False and "cannot confirm" in fired.raw
        assert not driver.disarm().armed
    assert driver.unconfirmed_pulses == 1


def test_an_intensity_change_while_armed_is_confirmed_and_waits_for_the_recharge() -> None:
    pairs = [(H("32 32"), rec(50)), (H("3C 3C"), rec(60, charged=False))]
    stream = (
        [(PERIOD_S, rec(0)), *every(rec(50), 0.05, 2), *every(rec(60, charged=False), 0.1, 2), *every(rec(60), 0.2, 3)]
    )
    with exchange(pairs, stream) as (driver, _clock):
        connect(driver)
        driver.set_intensity(50)
        driver.arm()
        driver.set_intensity(60)
    assert driver.last is not None and driver.last.charged and driver.last.intensity_pct_mso == 60


def test_an_intensity_the_unit_ignored_is_a_refusal() -> None:
    with exchange([(H("32 32"), rec(0))], every(rec(0), PERIOD_S, 60)) as (driver, _):
        connect(driver)
        driver.set_intensity(50)
        with pytest.raises(DeviceRefused, match="still shows 0 %MSO") as refused:
            driver.arm()
    assert refused.value.code == "not_applied" and not driver.armed


@pytest.mark.parametrize("value", [101, -1, 50.0, True, None])
def test_bad_intensities_are_refused_without_a_byte(value: object) -> None:
    with exchange([], every(rec(0), PERIOD_S, 2)) as (driver, _):
        connect(driver)
        with pytest.raises(InvalidArgument):
            driver.set_intensity(value)  # type: ignore[arg-type]


def test_arming_needs_an_intensity_and_firing_needs_arming() -> None:
    with exchange([], every(rec(0), PERIOD_S, 2)) as (driver, _):
        connect(driver)
        with pytest.raises(InvalidArgument, match="set the intensity"):
            driver.arm()
        with pytest.raises(DeviceStateError, match="not armed"):
            driver.fire()


def test_an_omitted_pulse_is_the_one_refusal_the_unit_can_show() -> None:
    pairs = [(H("32 32"), rec(50)), (H("79 79"), rec(50, omitted=1))]
    with exchange(pairs, [(PERIOD_S, rec(0)), *every(rec(50), 0.05, 3)]) as (driver, _):
        connect(driver)
        driver.set_intensity(50)
        driver.arm()
        with pytest.raises(DeviceRefused, match="omitted") as refused:
            driver.fire()
    assert refused.value.code == "omitted_pulse" and driver.unconfirmed_pulses == 0


def test_disarm_that_the_stream_never_shows_is_a_state_error() -> None:
    pairs = [(H("32 32"), rec(50)), (H("00 00"), rec(40))]
    with exchange(pairs, [(PERIOD_S, rec(0)), *every(rec(50), 0.05, 3), *every(rec(40), 0.2, 40)]) as (
        driver,
        _,
    ):
        connect(driver)
        driver.set_intensity(50)
        driver.arm()
        with pytest.raises(DeviceStateError, match="shows 40 %MSO after being sent 0 %MSO"):
            driver.disarm()


# --- watching the stream -------------------------------------------------------------------------------


def test_keepalive_reads_a_fresh_record_not_the_backlog() -> None:
    stream = [(0.1, rec(0)), (0.1 + PERIOD_S, rec(0)), (5.0, rec(0, omitted=7))]
    with exchange([], stream) as (driver, clock):
        connect(driver)
        clock.sleep(4.8)  # the backlog holds a record from long ago
        status = driver.keepalive()
    assert clock.now() >= 5.0 and "7 omitted" in status.raw


def test_a_stopped_stream_is_a_timeout() -> None:
    with exchange([], every(rec(0), PERIOD_S, 2)) as (driver, clock):
        connect(driver)
        clock.sleep(1.0)
        with pytest.raises(TransportTimeout, match="stream stopped"):
            driver.keepalive()


def test_a_front_panel_intensity_change_is_reported() -> None:
    with exchange([], [*every(rec(0), PERIOD_S, 2), (0.5, rec(35))]) as (driver, clock):
        connect(driver)
        clock.sleep(0.45)
        with pytest.raises(DeviceStateError, match="reports 35 %MSO"):
            driver.keepalive()


@pytest.mark.parametrize(
    "flag", ["coil_overheat", "coil_disconnected", "voltage_hold_error", "power_fan_seized"]
)
def test_fault_bits_stop_an_armed_unit_and_show_in_the_status_of_a_disarmed_one(flag: str) -> None:
    faulty = rec(0, **{flag: True})
    with exchange([], [*every(rec(0), PERIOD_S, 2), (0.5, faulty), (0.52, faulty)]) as (driver, clock):
        connect(driver)
        clock.sleep(0.45)
        status = driver.keepalive()
    assert status.error and flag in status.raw and status.coil_present == (flag != "coil_disconnected")
    pairs = [(H("32 32"), rec(50))]
    stream = [(PERIOD_S, rec(0)), *every(rec(50), 0.05, 2), (0.5, rec(50, **{flag: True}))]
    with exchange(pairs, stream) as (driver, clock):
        connect(driver)
        driver.set_intensity(50)
        driver.arm()
        clock.sleep(0.45)
        with pytest.raises(DeviceStateError, match=flag):
            driver.keepalive()


def test_a_corrupted_record_is_a_protocol_error() -> None:
    bad = bytearray(rec(0))
    bad[1] = 0x68  # intensity 104 %
    with exchange([], [*every(rec(0), PERIOD_S, 2), (0.5, bytes(bad))]) as (driver, clock):
        connect(driver)
        clock.sleep(0.45)
        with pytest.raises(ProtocolError, match="104"):
            driver.keepalive()


def test_a_lost_sync_byte_changes_the_record_length_and_is_caught() -> None:
    # 13-byte records; one sync byte corrupted to 00 merges two records into one 27-byte "record".
    short_rec = rec(0, coil_type=None)
    merged = short_rec[:-1] + b"\x00" + short_rec
    stream = [*every(short_rec, PERIOD_S, 2), (0.5, merged)]
    with exchange([], stream, leading=SYNC + short_rec) as (driver, clock):
        connect(driver)
        clock.sleep(0.45)
        with pytest.raises(ProtocolError, match="changed length"):
            driver.keepalive()


# --- delays ---------------------------------------------------------------------------------------------


def test_recharge_and_ttl_delays_go_out_as_the_reference_bytes_and_are_read_back() -> None:
    recharge_120 = c.DelayCode(120, c.DelayStep.MS_1)
    ttl_2 = c.DelayCode(1, c.DelayStep.MS_2)
    pairs = [
        (H("9E 9E B0 B0"), rec(0, recharge=recharge_120)),  # 120 ms as 120 × 1 ms
        (H("C0 C0 F5 F5"), rec(0, recharge=recharge_120, ttl=ttl_2)),  # 2 ms as 1 × 2 ms
    ]
    with exchange(pairs, every(rec(0), PERIOD_S, 2)) as (driver, _):
        connect(driver)
        assert driver.set_recharge_delay_us(120_000) == recharge_120
        assert driver.set_ttl_out_delay_us(2_000) == ttl_2


def test_a_delay_the_unit_never_shows_is_a_refusal() -> None:
    with exchange([(H("80 80 BD BD"), rec(0))], every(rec(0), PERIOD_S, 60)) as (driver, _):
        connect(driver)
        with pytest.raises(DeviceRefused, match="recharge delay"):
            driver.set_recharge_delay_us(10_000)


@pytest.mark.parametrize("delay_us", [10_050, 700_000, 0, 12.5])
def test_delays_off_the_grid_or_out_of_range_never_reach_the_wire(delay_us: object) -> None:
    with exchange([], every(rec(0), PERIOD_S, 2)) as (driver, _):
        connect(driver)
        with pytest.raises(InvalidArgument):
            driver.set_recharge_delay_us(delay_us)  # type: ignore[arg-type]
