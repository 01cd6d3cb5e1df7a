"""MagPro driver in the byte-exchange style: exactly these frames out, these frames back, all consumed.

Host frames are written as hex where the reference gives them (magventure.md §7), so these tests
pin the driver to the golden vectors; device frames are built with the codec (itself tested
against the reference's device vectors).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import (
    ChecksumError,
    DeviceRefused,
    DeviceStateError,
    InvalidArgument,
    ProtocolError,
    SafetyViolation,
    TransportTimeout,
)
from tmsctl.drivers.base import Capability
from tmsctl.drivers.magventure import codec as c
from tmsctl.drivers.magventure.driver import MagProDriver
from tmsctl.drivers.magventure.spec import load_spec
from tmsctl.lab.testing import expected_exchange

H = bytes.fromhex
SHORT = H("FE 01 00 00 FF")
LONG = H("FE 01 05 3F FF")
READ_TIMING = H("FE 02 0B 00 23 FF")
READ_WAVEFORM = H("FE 02 09 00 B2 FF")
READ_DELAYS = H("FE 02 0A 00 E7 FF")
ENABLE = H("FE 02 02 01 CF FF")
DISABLE = H("FE 02 02 00 91 FF")
TRIGGER = H("FE 01 03 E2 FF")
START_TRAIN = H("FE 01 04 61 FF")
AMPLITUDE_50 = H("FE 03 01 32 00 17 FF")
PAGE_TIMING = H("FE 03 07 02 00 EB FF")

X100 = c.MagProModel.X100


def sb(
    enabled: bool = False, *, model: c.MagProModel = X100, waveform: c.Waveform = c.Waveform.BIPHASIC
) -> c.StatusByte:
    return c.StatusByte(c.Mode.STANDARD, waveform, enabled, model)


def m(message: c.DeviceMessage) -> bytes:
    return c.encode_device_message(message)


def short(
    enabled: bool = False, amplitude: int = 30, *, model: c.MagProModel = X100, coil: int = 60, temp: int = 25
) -> bytes:
    return m(c.ShortStatus(sb(enabled, model=model), 123456, temp, coil, amplitude, 0))


def long(
    enabled: bool = False,
    amplitude: int = 30,
    page: int = 1,
    running: bool = False,
    *,
    waveform: c.Waveform = c.Waveform.BIPHASIC,
    coil: int = 60,
    temp: int = 25,
) -> bytes:
    status = sb(enabled, waveform=waveform)
    return m(c.LongStatus(status, 123456, temp, coil, amplitude, 0, amplitude, 0, 100, 100, page, running))


def timing(
    rate: int = 10, pulses: int = 10, trains: int = 1, iti: int = 10, control=c.TimingControl.SEQUENCE
) -> bytes:
    return m(c.TimingSettings(0, control, False, rate, pulses, trains, iti, False, 100, 0))


def waveform(
    wf: c.Waveform = c.Waveform.BIPHASIC, burst_pulses: int = 3, ipi_index: int = 80, *, model=X100
) -> bytes:
    return m(
        c.WaveformSettings(
            0, model, c.Mode.STANDARD, c.CurrentDirection.NORMAL, wf, burst_pulses, ipi_index, 80
        )
    )


def didt(enabled: bool = True, a: int = 80, waveform: c.Waveform = c.Waveform.BIPHASIC) -> bytes:
    return m(c.PulseDidt(a, 0, sb(enabled, waveform=waveform)))


CONNECT_X100 = [(SHORT, short()), (LONG, long()), (READ_TIMING, timing()), (READ_WAVEFORM, waveform())]


def connected(
    script, clock: VirtualClock | None = None, *, prefix=CONNECT_X100, model: str = "magventure-magpro"
):
    """An exchange whose first pairs connect an X100; yields the connected driver."""
    return expected_exchange([*prefix, *script], clock)


def driver_for(transport, model: str = "magventure-magpro", **kw) -> MagProDriver:
    return MagProDriver(transport, load_spec(model), **kw)


# --- connect ---------------------------------------------------------------------------------------


def test_connect_identifies_an_x100_and_negotiates_theta_burst() -> None:
    with connected([]) as transport:
        driver = driver_for(transport)
        assert Capability.THETA_BURST not in driver.limits.capabilities  # the generic spec, before connect
        info = driver.connect()
    assert info.model == "magventure-magpro-x100" and driver.limits.model == info.model
    assert {
        Capability.THETA_BURST,
        Capability.INTERNAL_TRAIN,
        Capability.CONFIRMED_REPLIES,
    } <= info.capabilities
    assert info.details["serial_number"] == "123456" and info.details["coil"] == "Cool-B65"
    assert driver.generation == "newer" and driver.coil_temperature == 25


def test_connect_disables_a_unit_found_enabled() -> None:
    script = [
        (SHORT, short(True)),
        (LONG, long(True)),
        (DISABLE, b""),
        (LONG, long()),
        (READ_TIMING, timing()),
        (READ_WAVEFORM, waveform()),
    ]
    with expected_exchange(script) as transport:
        driver_for(transport).connect()


def test_older_firmware_is_silent_to_the_timing_read_and_loses_device_timed_trains() -> None:
    clock = VirtualClock()
    script = [
        (SHORT, short(model=c.MagProModel.R30)),
        (LONG, long()),
        (READ_TIMING, b""),
        (READ_WAVEFORM, waveform(model=c.MagProModel.R30)),
    ]
    with expected_exchange(script, clock) as transport:
        driver = driver_for(transport)
        info = driver.connect()
        with pytest.raises(InvalidArgument, match="older firmware"):
            driver.set_train(10.0, 40)
        with pytest.raises(InvalidArgument, match="older firmware"):
            driver.set_delays(input_delay_ms=0, output_delay_ms=0, charge_delay_ms=0)
    assert info.model == "magventure-magpro-r30" and driver.generation == "older"
    assert (
        Capability.INTERNAL_TRAIN not in info.capabilities
        and Capability.INTERNAL_TRAIN not in driver.limits.capabilities
    )
    assert Capability.SINGLE_PULSE in driver.limits.capabilities
    assert driver.limits.max_frequency_hz(50) == 30  # the rest of the R30's spec is unchanged
    assert "older" in info.details["firmware_generation"]


def test_an_mst_is_refused_before_anything_is_set() -> None:
    status = c.StatusByte(c.Mode.STANDARD, c.Waveform.BIPHASIC, False, c.MagProModel.MST)
    with (
        expected_exchange([(SHORT, m(c.ShortStatus(status, 1, 25, 60, 30, 0)))]) as transport,
        pytest.raises(SafetyViolation, match="MST"),
    ):
        driver_for(transport).connect()


def test_a_per_model_driver_refuses_another_model() -> None:
    with expected_exchange([(SHORT, short(model=c.MagProModel.R30))]) as transport:
        driver = driver_for(transport, "magventure-magpro-x100", expected_model="magventure-magpro-x100")
        with pytest.raises(SafetyViolation, match="reports MagVenture MagPro R30"):
            driver.connect()


# --- amplitude -----------------------------------------------------------------------------------------


def test_set_intensity_sends_a_and_b_and_reads_back_through_the_short_status() -> None:
    amplitude_changed = m(c.AmplitudeChanged(50, 0, sb()))  # the unit's own report, unprompted
    with connected([(AMPLITUDE_50, amplitude_changed), (SHORT, short(amplitude=50))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        driver.set_intensity(50)
    assert driver.amplitude_a_pct == 50 and driver.message_counts[c.AmplitudeChanged.MESSAGE_ID] == 1


def test_amplitude_91_whose_crc_is_ff_goes_out_and_comes_back_whole() -> None:
    frame = H("FE 03 01 5B 00 FF FF")
    with connected([(frame, m(c.AmplitudeChanged(91, 0, sb()))), (SHORT, short(amplitude=91))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        driver.set_intensity(91)
    assert driver.amplitude_a_pct == 91


def test_an_ignored_amplitude_is_a_refusal_and_a_different_one_a_state_error() -> None:
    with connected([(AMPLITUDE_50, b""), (SHORT, short(amplitude=30))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(DeviceRefused) as refused:
            driver.set_intensity(50)
    assert refused.value.code == "not_applied"
    with connected([(AMPLITUDE_50, b""), (SHORT, short(amplitude=45))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(DeviceStateError, match="45 %"):
            driver.set_intensity(50)


@pytest.mark.parametrize("value", [101, -1, 50.5, True, "50"])
def test_bad_amplitudes_never_reach_the_wire(value: object) -> None:
    with connected([]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(InvalidArgument):
            driver.set_intensity(value)  # type: ignore[arg-type]


def test_a_front_panel_amplitude_change_is_reported_at_the_next_keepalive() -> None:
    script = [
        (AMPLITUDE_50, b""),
        (SHORT, short(amplitude=50)),
        # an ID-1 message arrives between the status request and its answer
        (LONG, m(c.AmplitudeChanged(70, 0, sb())) + long(amplitude=70)),
    ]
    with connected(script) as transport:
        driver = driver_for(transport)
        driver.connect()
        driver.set_intensity(50)
        with pytest.raises(DeviceStateError, match="changed to 70 %"):
            driver.keepalive()


# --- enable, trigger, disable ---------------------------------------------------------------------------


def test_arm_fire_disarm_with_the_messages_an_x100_sends_after_enabling() -> None:
    after_enable = (
        m(c.AmplitudeChanged(50, 0, sb(True)))
        + m(c.CoilChanged(26, 60, sb(True)))
        + m(c.PageChanged(1, False, sb(True)))
    )
    script = [
        (AMPLITUDE_50, b""),
        (SHORT, short(amplitude=50)),
        (ENABLE, after_enable),
        (LONG, long(True, 50)),
        (LONG, long(True, 50)),  # wait_ready: enabled with a coil
        (TRIGGER, didt()),
        (DISABLE, b""),
        (LONG, long(False, 50)),
    ]
    with connected(script) as transport:
        driver = driver_for(transport)
        driver.connect()
        driver.set_intensity(50)
        assert driver.arm().armed
        assert driver.wait_ready().ready
        status = driver.fire()
        assert status.armed and not status.train_running
        assert not driver.disarm().armed
    assert [driver.message_counts[i] for i in (1, 3, 8)] == [
        1,
        1,
        1,
    ]  # all three kept, none mistaken for answers
    assert (driver.stimuli_reported, driver.pulses_reported, driver.last_didt_a_per_us) == (1, 1, (80, 0))


def test_a_unit_that_will_not_enable_is_a_refusal() -> None:
    with connected([(ENABLE, b""), (LONG, long(False, coil=0))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(DeviceRefused, match="did not enable"):
            driver.arm()


def test_a_hot_coil_is_refused_before_enabling() -> None:
    prefix = [
        (SHORT, short(temp=41)),
        (LONG, long(temp=41)),
        (READ_TIMING, timing()),
        (READ_WAVEFORM, waveform()),
    ]
    with connected([], prefix=prefix) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(SafetyViolation, match="41 °C"):
            driver.arm()


def test_a_trigger_without_a_didt_report_times_out_with_what_arrived() -> None:
    clock = VirtualClock()
    with connected([(TRIGGER, H("FE 04 02 50"))], clock) as transport:
        driver = driver_for(transport)
        driver.connect()
        before = clock.now()
        with pytest.raises(TransportTimeout, match="di/dt") as timeout:
            driver.fire()
    assert timeout.value.partial == H("FE 04 02 50")
    assert clock.now() - before >= driver.reply_timeout_s


def test_disarm_that_leaves_the_unit_enabled_is_a_state_error() -> None:
    with connected([(DISABLE, b""), (LONG, long(True))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(DeviceStateError, match="still reports enabled"):
            driver.disarm()


def test_a_frame_with_a_bad_crc_is_a_checksum_error_then_the_stream_resynchronises() -> None:
    bad = bytearray(m(c.AmplitudeChanged(50, 0, sb())))
    bad[-2] ^= 0x01
    with connected([(LONG, bytes(bad) + long()), (LONG, long(True))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(ChecksumError):
            driver.status()
        assert driver.status().armed  # the late answer is kept as a message; the new one answers


def test_garbage_between_frames_is_a_protocol_error_then_the_stream_resynchronises() -> None:
    with connected([(LONG, H("00 17") + long()), (LONG, long(True))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(ProtocolError, match="outside any MagPro frame"):
            driver.status()
        assert driver.status().armed
    assert driver.message_counts[c.LongStatus.MESSAGE_ID] == 3


def test_unknown_message_ids_are_kept_and_ignored() -> None:
    unknown = c.frame(bytes((0x42, 1, 2, 3)))
    with connected([(LONG, unknown + long())]) as transport:
        driver = driver_for(transport)
        driver.connect()
        assert not driver.status().armed
    assert driver.message_counts[0x42] == 1


# --- trains and theta burst ------------------------------------------------------------------------------


def _train_write(rate: int, pulses: int) -> bytes:
    return c.encode_host_command(c.SetTiming(c.TimingControl.SEQUENCE, rate, pulses, 1, 10, False))


def test_set_train_switches_to_the_timing_page_and_reads_the_timing_back() -> None:
    script = [
        (PAGE_TIMING, m(c.PageChanged(2, False, sb()))),
        (LONG, long(page=2)),
        (READ_TIMING, timing()),
        (
            H("FE 0C 0B 01 00 00 64 00 28 00 01 00 0A 00 8D FF"),
            b"",
        ),  # Sequence, 10.0 Hz, 40 pulses, 1 train, ITI 1.0 s
        (READ_TIMING, timing(100, 40)),
        (ENABLE, b""),
        (LONG, long(True, page=2)),
        (START_TRAIN, m(c.PageChanged(2, True, sb(True))) + didt()),
        (LONG, didt() + didt() + long(True, page=2, running=True)),
    ]
    with connected(script) as transport:
        driver = driver_for(transport)
        driver.connect()
        plan = driver.set_train(10.0, 40)
        assert (plan.rate_hz, plan.pulses, plan.duration_s) == (10.0, 40, 4.0)
        driver.arm()
        assert driver.fire().train_running
        assert driver.keepalive().train_running
    assert driver.stimuli_reported == 3 and driver.sequence_running


def test_a_timing_write_the_unit_ignored_is_a_refusal() -> None:
    script = [
        (PAGE_TIMING, b""),
        (LONG, long(page=2)),
        (READ_TIMING, timing()),
        (_train_write(100, 40), b""),
        (READ_TIMING, timing()),
    ]
    with connected(script) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(DeviceRefused, match="Timing-page write"):
            driver.set_train(10.0, 40)
    assert driver.train is None


@pytest.mark.parametrize(
    ("frequency", "pulses", "why"),
    [
        (10.05, 40, "multiple of 0.1"),
        (1.5, 10, "not a value the MagPro accepts"),
        (101.0, 10, "not a value"),
        (10.0, 1001, "pulses per train"),
        (10.0, 0, "pulses per train"),
        (10.0, 40.0, "whole number"),
    ],
)
def test_off_grid_trains_are_refused_before_the_wire(frequency: float, pulses: int, why: str) -> None:
    with connected([]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(InvalidArgument, match=why):
            driver.set_train(frequency, pulses)


def test_the_page_changed_at_the_unit_stops_the_train_from_starting() -> None:
    script = [
        (PAGE_TIMING, b""),
        (LONG, long(page=2)),
        (READ_TIMING, timing()),
        (_train_write(100, 40), b""),
        (READ_TIMING, timing(100, 40)),
        (LONG, m(c.PageChanged(1, False, sb())) + long(page=1)),
    ]
    with connected(script) as transport:
        driver = driver_for(transport)
        driver.connect()
        driver.set_train(10.0, 40)
        with pytest.raises(DeviceStateError, match="left the Timing page"):
            driver.keepalive()
        with pytest.raises(DeviceStateError):
            driver.fire()


def test_theta_burst_writes_the_reference_waveform_frame_and_reads_its_index_back() -> None:
    burst = c.Waveform.BIPHASIC_BURST
    script = [
        (READ_WAVEFORM, waveform()),
        (H("FE 0B 09 01 01 00 00 03 02 00 C8 00 64 E9 FF"), b""),  # the reference's waveform-write vector
        (READ_WAVEFORM, H("FE 0A 09 00 01 00 00 03 02 50 00 50 42 FF")),  # ...and its ID-9 answer vector
        (PAGE_TIMING, b""),
        (LONG, long(page=2, waveform=burst)),
        (READ_TIMING, timing()),
        (_train_write(50, 10), b""),
        (READ_TIMING, timing(50, 10)),
        (ENABLE, b""),
        (LONG, long(True, page=2, waveform=burst)),
        (START_TRAIN, didt(waveform=burst)),
    ]
    with connected(script) as transport:
        driver = driver_for(transport)
        driver.connect()
        plan = driver.set_theta_burst(pulses_per_burst=3, burst_frequency_hz=50, burst_rate_hz=5, bursts=10)
        driver.arm()
        driver.fire()
    assert (plan.pulses, plan.duration_s, plan.burst_frequency_hz) == (30, 2.0, 50.0)
    assert driver.waveform is not None and driver.waveform.ipi_ms_x10() == 200
    assert (driver.stimuli_reported, driver.pulses_reported) == (1, 3)  # one di/dt per burst of three


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"burst_frequency_hz": 33}, "not a multiple of 0.1 ms"),
        ({"burst_frequency_hz": 2500}, "not a Biphasic Burst"),
        ({"pulses_per_burst": 6}, "pulses per burst"),
        ({"burst_rate_hz": 25, "burst_frequency_hz": 100}, "ceiling"),
        ({"burst_rate_hz": 20, "pulses_per_burst": 5, "burst_frequency_hz": 50}, "do not fit"),
    ],
)
def test_bad_theta_bursts_are_refused_before_the_wire(kwargs: dict, why: str) -> None:
    args = {"pulses_per_burst": 3, "burst_frequency_hz": 50, "burst_rate_hz": 5, "bursts": 10, **kwargs}
    with connected([(READ_WAVEFORM, waveform())] if why == "pulses per burst" else []) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(InvalidArgument, match=why):
            driver.set_theta_burst(**args)


def test_an_r30_cannot_time_theta_bursts() -> None:
    prefix = [
        (SHORT, short(model=c.MagProModel.R30)),
        (LONG, long()),
        (READ_TIMING, timing()),
        (READ_WAVEFORM, waveform(model=c.MagProModel.R30)),
    ]
    with connected([], prefix=prefix) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(InvalidArgument, match="no Biphasic Burst"):
            driver.set_theta_burst(pulses_per_burst=3, burst_frequency_hz=50, burst_rate_hz=5, bursts=10)


def test_a_single_trigger_is_refused_while_the_unit_is_in_biphasic_burst() -> None:
    prefix = [
        (SHORT, short()),
        (LONG, long(waveform=c.Waveform.BIPHASIC_BURST)),
        (READ_TIMING, timing()),
        (READ_WAVEFORM, waveform(c.Waveform.BIPHASIC_BURST)),
    ]
    with connected([], prefix=prefix) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(InvalidArgument, match="whole burst"):
            driver.fire()


# --- delays ---------------------------------------------------------------------------------------------


def test_delays_write_the_reference_frame_and_read_back() -> None:
    current = m(c.DelaySettings(0, 0, 0, 100))
    script = [
        (READ_TIMING, timing()),
        (READ_DELAYS, current),
        (H("FE 08 0A 01 00 00 FF 9C 00 00 E9 FF"), b""),  # out −10.0 ms (reference vector)
        (READ_DELAYS, H("FE 08 0A 00 00 00 FF 9C 00 00 D4 FF")),
    ]
    with connected(script) as transport:
        driver = driver_for(transport)
        driver.connect()
        got = driver.set_delays(input_delay_ms=0, output_delay_ms=-10.0, charge_delay_ms=0)
    assert got.output_delay_ms_x10 == -100


def test_a_negative_output_delay_needs_sequence_timing() -> None:
    with connected([(READ_TIMING, timing(control=c.TimingControl.EXTERNAL_TRIG))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(InvalidArgument, match="Sequence"):
            driver.set_delays(input_delay_ms=0, output_delay_ms=-10.0, charge_delay_ms=0)


def test_off_grid_delays_are_refused() -> None:
    with connected([]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(InvalidArgument, match=r"multiple of 0.1"):
            driver.set_delays(input_delay_ms=0.05, output_delay_ms=0, charge_delay_ms=0)


# --- coil ------------------------------------------------------------------------------------------------


def test_coil_temperature_comes_from_a_fresh_short_status() -> None:
    with connected([(SHORT, short(temp=31))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        assert driver.coil_temperature_c() == (31.0,)


def test_a_removed_coil_reads_as_no_coil() -> None:
    with connected([(LONG, m(c.CoilChanged(25, 0, sb())) + long(coil=0))]) as transport:
        driver = driver_for(transport)
        driver.connect()
        status = driver.status()
    assert not status.coil_present and not status.ready and "coil none" in status.raw


def test_messages_are_logged_with_their_arrival_time() -> None:
    clock = VirtualClock(start=5.0)
    with connected([], clock) as transport:
        driver = driver_for(transport)
        driver.connect()
    ids = [message.MESSAGE_ID for _, message in driver.messages]
    assert ids == [0, 5, 11, 9] and all(t >= 5.0 for t, _ in driver.messages)


def test_waveform_settings_change_at_the_unit_is_reported() -> None:
    monophasic = replace(sb(), waveform=c.Waveform.MONOPHASIC)
    with connected([(LONG, m(c.AmplitudeChanged(30, 0, monophasic)) + long())]) as transport:
        driver = driver_for(transport)
        driver.connect()
        with pytest.raises(DeviceStateError, match="Monophasic"):
            driver.keepalive()
