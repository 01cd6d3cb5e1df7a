"""Magstim codec against every golden vector in shared/reference/magstim.md §15, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmsctl.core.errors import ChecksumError, DeviceRefused, EchoMismatch, InvalidArgument, ProtocolError
from tmsctl.drivers.magstim import codec as c

H = bytes.fromhex

HOST_VECTORS = [
    (c.encode_remote_on(), "51 40 6E"),
    (c.encode_query(c.REMOTE_OFF), "52 40 6D"),
    (c.encode_query(c.GET_PARAMETERS), "4A 40 75"),
    (c.encode_query(c.GET_RAPID_PARAMETERS), "5C 40 63"),
    (c.encode_mode(c.Mode.DISARM), "45 41 79"),
    (c.encode_mode(c.Mode.ARM), "45 42 78"),
    (c.encode_mode(c.Mode.FIRE), "45 48 72"),
    (c.encode_query(c.GET_COIL_TEMPERATURE), "46 40 79"),
    (c.encode_query(c.GET_VERSION), "4E 44 6D"),
    (c.encode_query(c.GET_SYSTEM_STATUS), "78 40 47"),
    (c.encode_query(c.GET_ERROR_CODE), "49 40 76"),
    (c.encode_query(c.HIGH_RES_ON), "59 40 66"),
    (c.encode_query(c.HIGH_RES_OFF), "5A 40 65"),
    (c.encode_query(c.ENHANCED_ON), "5E 40 61"),
    (c.encode_query(c.ENHANCED_OFF), "5F 40 60"),
    (c.encode_query(c.IGNORE_COIL_INTERLOCK), "62 40 5D"),
    (c.encode_query(c.GET_CHARGE_DELAY), "6F 40 50"),
    (c.encode_query(c.GET_SYSTEM_MODE), "58 40 67"),
    (c.encode_set_power(50), "40 30 35 30 2A"),
    (c.encode_set_power(0), "40 30 30 30 2F"),
    (c.encode_set_power(30), "40 30 33 30 2C"),
    (c.encode_set_power(40), "40 30 34 30 2B"),
    (c.encode_set_power(66), "40 30 36 36 23"),
    (c.encode_set_power(100), "40 31 30 30 2E"),
    (c.encode_set_power(110), "40 31 31 30 2D"),
    (c.encode_set_power(50, output="B"), "41 30 35 30 29"),
    (c.encode_isi(10), "43 30 31 30 2B"),
    (c.encode_isi(25), "43 30 32 35 25"),
    (c.encode_isi(100), "43 31 30 30 2B"),
    (c.encode_frequency(100), "42 30 31 30 30 FC"),
    (c.encode_frequency(10), "42 30 30 31 30 FC"),
    (c.encode_frequency(200), "42 30 32 30 30 FB"),
    (c.encode_frequency(180), "42 30 31 38 30 F4"),
    (c.encode_pulses(40, (9, 0)), "44 30 30 30 34 30 C7"),
    (c.encode_pulses(40, (8, 1)), "44 30 30 34 30 F7"),
    (c.encode_pulses(36, (9, 0)), "44 30 30 30 33 36 C2"),
    (c.encode_duration(10, (9, 0)), "5B 30 30 31 30 E3"),
    (c.encode_duration(10, (8, 0)), "5B 30 31 30 13"),
    (c.encode_duration(0, (9, 0)), "5B 30 30 30 30 E4"),
    (c.encode_duration(0, (8, 0)), "5B 30 30 30 14"),
    (c.encode_duration(40, (9, 0)), "5B 30 30 34 30 E0"),
    (c.encode_duration(20, (9, 0)), "5B 30 30 32 30 E2"),
    (c.encode_charge_delay(50, (9, 0)), "6E 30 30 35 30 CC"),
    (c.encode_charge_delay(50, (10, 0)), "6E 30 30 30 35 30 9C"),
    (c.encode_charge_delay(2000, (9, 0)), "6E 32 30 30 30 CF"),
    (c.encode_charge_delay(10000, (10, 0)), "6E 31 30 30 30 30 A0"),
    (
        c.encode_remote_on(b"1234-12345678-" + H("FD 91")),
        "51 31 32 33 34 2D 31 32 33 34 35 36 37 38 2D FD 91 58",
    ),
]


@pytest.mark.parametrize(("encoded", "expected"), HOST_VECTORS, ids=[v for _, v in HOST_VECTORS])
def test_host_golden_vectors(encoded: bytes, expected: str) -> None:
    assert encoded == H(expected)


def test_checksum_worked_examples() -> None:
    assert c.checksum(b"@050") == 0x2A
    assert c.checksum(b"Q@") == 0x6E
    assert c.checksum(b"B0100") == 0xFC


def test_simple_acknowledgements() -> None:
    q = c.decode_reply(c.REMOTE_ON, H("51 89 25"))
    assert q.status.remote_control and q.status.coil_present and q.status.standby
    assert not q.status.armed
    standby = c.decode_reply(c.SET_MODE, H("45 89 31")).status
    armed = c.decode_reply(c.SET_MODE, H("45 8A 30")).status
    ready = c.decode_reply(c.SET_MODE, H("45 8C 2E")).status
    assert standby.standby and not standby.armed
    assert armed.armed and not armed.ready
    assert ready.armed and ready.ready and not ready.armed_bit
    assert c.decode_reply(c.SET_POWER_A, H("40 89 36")).status.raw == 0x89


def test_bistim_captures() -> None:
    j = c.decode_reply(c.GET_PARAMETERS, H("4A 09 30 33 30 30 33 30 30 31 30 F5"), model=c.Model.BISTIM)
    assert not j.status.remote_control and j.status.coil_present and j.status.standby
    assert j.payload == c.Parameters(30, 30, 10)
    x = c.decode_reply(c.GET_SYSTEM_MODE, H("58 09 34 6A"), model=c.Model.BISTIM)
    assert x.payload == c.SystemMode("4")


def test_200_parameters_and_temperature() -> None:
    j = c.decode_reply(c.GET_PARAMETERS, H("4A 89 30 34 30 30 30 30 30 30 30 78"), model=c.Model.M200)
    assert j.payload == c.Parameters(40, 0, 0)
    f = c.decode_reply(c.GET_COIL_TEMPERATURE, H("46 89 32 34 35 32 35 30 FE"))
    assert f.payload == c.CoilTemperature(245, 250)
    assert f.payload.hottest_c == 25.0


def test_rapid_status_replies() -> None:
    b = c.decode_reply(c.SET_FREQUENCY, H("42 89 38 FC"))
    assert b.rapid_status.raw == 0x38
    assert b.rapid_status.single_pulse_mode and b.rapid_status.hv_psu_connected and b.rapid_status.coil_ready
    e = c.decode_reply(c.ENHANCED_ON, H("5E 89 39 DF"))
    assert e.rapid_status.enhanced_power
    x = c.decode_reply(c.GET_SYSTEM_STATUS, H("78 89 38 00 01 C5"), (9, 0))
    assert x.payload.plus1_module_detected  # read from the LSB, not the MSB (MagPy bug #3)
    i = c.decode_reply(c.GET_ERROR_CODE, H("49 89 43 31 32 87"))
    assert i.payload == c.ErrorCode("C", 12)


def test_rapid_parameters_by_version() -> None:
    v9 = c.decode_reply(
        c.GET_RAPID_PARAMETERS,
        H("5C 8C 30 30 36 30 30 31 30 30 30 30 30 34 30 30 30 34 30 30 30 30 35 13"),
        (9, 0),
    )
    assert v9.status.ready and not v9.rapid_status.single_pulse_mode
    assert v9.payload == c.RapidParameters(60, 100, 40, 40, 5)
    v7 = c.decode_reply(
        c.GET_RAPID_PARAMETERS, H("5C 89 38 30 33 30 30 30 30 30 30 30 30 31 30 30 30 30 30 31 30 7D"), (7, 2)
    )
    assert v7.payload == c.RapidParameters(30, 0, 1, 0, 10)
    v6 = c.decode_reply(
        c.GET_RAPID_PARAMETERS, H("5C 89 38 30 33 30 30 30 30 30 30 30 30 31 30 30 30 30 31 30 AD"), (6, 0)
    )
    assert v6.payload == c.RapidParameters(30, 0, 1, 0, 10)


def test_versions() -> None:
    assert c.decode_reply(c.GET_VERSION, H("4E 56 39 2E 30 00 C4")).payload.version == (9, 0)
    assert c.decode_reply(c.GET_VERSION, H("4E 56 31 30 2E 32 2E 31 00 3B")).payload.version == (10, 2, 1)


def test_charge_delay() -> None:
    assert c.decode_reply(c.GET_CHARGE_DELAY, H("6F 89 30 30 35 30 42"), (9, 0)).payload.delay_ms == 50
    assert c.decode_reply(c.GET_CHARGE_DELAY, H("6F 89 30 30 30 35 30 12"), (10, 0)).payload.delay_ms == 50
    assert c.decode_reply(c.SET_CHARGE_DELAY, H("6E 89 38 D0"), (9, 0)).rapid_status.raw == 0x38
    v10 = c.decode_reply(c.SET_CHARGE_DELAY, H("6E 89 38 00 04 CC"), (10, 0))
    assert v10.payload.charge_delay_set


@pytest.mark.parametrize(
    ("command", "raw", "code"),
    [(c.SET_POWER_A, "3F", "unknown_command"), (c.SET_POWER_A, "40 3F 80", "bad_data"), (c.SET_MODE, "45 53 67", "state_conflict")],
)
def test_refusals(command: int, raw: str, code: str) -> None:
    with pytest.raises(DeviceRefused) as info:
        c.decode_reply(command, H(raw))
    assert info.value.code == code


def test_negative_vectors() -> None:
    with pytest.raises(ChecksumError):
        c.decode_reply(c.SET_MODE, H("45 89 32"))
    with pytest.raises(EchoMismatch):
        c.decode_reply(c.SET_POWER_A, H("45 89 31"))
    # '?' where a 24-byte reply was expected is complete after one byte
    assert c.bytes_needed(c.GET_RAPID_PARAMETERS, b"?", (9, 0)) == 0


def test_reply_lengths() -> None:
    assert c.reply_length(c.GET_RAPID_PARAMETERS, (9, 0)) == 24
    assert c.reply_length(c.GET_RAPID_PARAMETERS, (8, 0)) == 22
    assert c.reply_length(c.GET_RAPID_PARAMETERS, (6, 0)) == 21
    assert c.reply_length(c.GET_CHARGE_DELAY, (9, 0)) == 7  # MagPy bug #5 reads 8 here
    assert c.reply_length(c.GET_CHARGE_DELAY, (10, 0)) == 8
    assert c.reply_length(c.SET_FREQUENCY) == 4
    assert c.reply_length(c.SET_POWER_A) == 3
    assert c.reply_length(c.SET_POWER_A, model=c.Model.M200) == 3


def test_bytes_needed_walks_every_shape() -> None:
    assert c.bytes_needed(c.SET_MODE, b"") == 1
    assert c.bytes_needed(c.SET_MODE, b"E") == 2
    assert c.bytes_needed(c.SET_MODE, b"ES") == 1
    assert c.bytes_needed(c.SET_MODE, b"E\x89") == 1
    assert c.bytes_needed(c.GET_RAPID_PARAMETERS, b"\\\x89", (9, 0)) == 22
    assert c.bytes_needed(c.GET_VERSION, b"NV9.0") == 1
    assert c.bytes_needed(c.GET_VERSION, b"NV9.0\x00") == 1
    assert c.bytes_needed(c.GET_VERSION, b"NV9.0\x00\xc4") == 0


@given(
    model=st.sampled_from(list(c.Model)),
    version=st.sampled_from([None, (6, 0), (7, 0), (8, 0), (9, 0), (10, 0), (11, 2)]),
    data=st.data(),
)
def test_the_per_command_reply_reader_agrees_with_bytes_needed_on_every_prefix(model, version, data) -> None:
    command = data.draw(st.sampled_from(sorted(c.COMMANDS_BY_MODEL[model])))
    received = data.draw(
        st.one_of(
            st.binary(max_size=30),
            st.builds(lambda tail: bytes([command]) + tail, st.binary(max_size=30)),
            st.builds(lambda m, tail: bytes([command]) + m + tail, st.sampled_from([b"?", b"S"]), st.binary(max_size=3)),
        )
    )
    reader = c.reply_reader(command, version, model)
    for n in range(len(received) + 1):
        assert reader(received[:n]) == c.bytes_needed(command, received[:n], version, model)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: c.encode_set_power(111), "0..110"),
        (lambda: c.encode_set_power(-1), "0..110"),
        (lambda: c.encode_set_power(50.0), "whole"),  # type: ignore[arg-type]
        (lambda: c.encode_frequency(10000), "4-digit"),
        (lambda: c.encode_pulses(10000, (8, 0)), "4-digit"),
        (lambda: c.encode_duration(1000, (8, 0)), "3-digit"),
        (lambda: c.encode_remote_on(b"short"), "16 bytes"),
    ],
)
def test_encoders_refuse_what_does_not_fit(call, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        call()


# --- properties ------------------------------------------------------------------------------

versions = st.sampled_from([None, (6, 0), (7, 2), (8, 1), (9, 0), (10, 2, 1)])
commands = st.sampled_from(sorted(c.COMMANDS_BY_MODEL[c.Model.RAPID2] | c.COMMANDS_BY_MODEL[c.Model.BISTIM]))


@given(commands, st.binary(max_size=40), versions, st.sampled_from(list(c.Model)))
def test_decode_of_arbitrary_bytes_only_raises_our_errors(command, raw, version, model) -> None:
    try:
        reply = c.decode_reply(command, raw, version, model)
    except (ProtocolError, DeviceRefused):
        return
    assert reply.command == command


@given(commands, st.binary(max_size=40), versions)
def test_bytes_needed_never_negative_and_consistent(command, raw, version) -> None:
    need = c.bytes_needed(command, raw, version)
    assert need >= 0
    if need == 0:
        assert c.bytes_needed(command, raw, version) == 0


@given(
    st.integers(0, 100), st.integers(0, 1000), st.integers(0, 6000), st.integers(0, 999), st.integers(0, 999),
    st.integers(0, 255), st.integers(0, 255), versions,
)
def test_rapid_parameters_round_trip(power, freq, pulses, duration, wait, status, rapid, version) -> None:
    if c.pulses_digits(version) == 4:
        pulses = min(pulses, 9999)
    if c.wait_digits(version) == 3:
        wait = min(wait, 999)
    params = c.RapidParameters(power, freq, pulses, duration, wait)
    raw = c.encode_reply(
        c.GET_RAPID_PARAMETERS, c.InstrumentStatus(status), c.encode_rapid_parameters(params, version), c.RapidStatus(rapid)
    )
    reply = c.decode_reply(c.GET_RAPID_PARAMETERS, raw, version)
    assert reply.payload == params
    assert reply.status.raw == status and reply.rapid_status.raw == rapid
    assert c.bytes_needed(c.GET_RAPID_PARAMETERS, raw, version) == 0


@given(st.integers(0, 110), st.sampled_from(["A", "B"]))
def test_power_frames_parse_on_the_device_side(power, output) -> None:
    frame = c.encode_set_power(power, output=output)
    parsed, consumed = c.parse_host_frame(frame + b"extra", c.Model.BISTIM, None)
    assert consumed == len(frame)
    assert parsed.checksum_ok and int(parsed.data) == power


@given(st.binary(max_size=30), st.sampled_from(list(c.Model)), versions)
def test_parse_host_frame_total(buffer, model, version) -> None:
    frame, consumed = c.parse_host_frame(buffer, model, version)
    assert 0 <= consumed <= len(buffer)
    if frame is not None:
        assert frame.raw == buffer[:consumed]


@given(st.sampled_from([(1, 0), (9, 0), (10, 2, 1), (12, 34)]))
def test_version_round_trip(version) -> None:
    text = "V" + ".".join(map(str, version))
    assert c.decode_reply(c.GET_VERSION, c.encode_version_reply(text)).payload.version == version


# -- secrets: the unlock code never reaches text (issue 15, finding 3) -------------------------------


@given(st.binary(min_size=c.UNLOCK_CODE_LENGTH, max_size=c.UNLOCK_CODE_LENGTH))
def test_an_unlock_frame_is_masked_whole_and_keeps_its_length(code: bytes) -> None:
    frame = c.encode_remote_on(code)
    masked = c.redact_host_frame(frame)
    assert masked == b"Q" + b"*" * (len(frame) - 1)
    assert c.show_host_frame(frame) == "Q" + "*" * 17


@pytest.mark.parametrize(
    "frame",
    [c.encode_remote_on(), c.encode_query(c.GET_VERSION), c.encode_set_power(40), c.encode_mode(c.Mode.FIRE)],
)
def test_frames_without_a_secret_are_shown_as_sent(frame: bytes) -> None:
    assert c.redact_host_frame(frame) == frame
    assert c.show_host_frame(frame) == c.show(frame)


@pytest.mark.parametrize("frame", [b"QSIMU-00", b"Q@", b"Q@@n", b"Q" + b"@" * 16 + b"\x00"])
def test_a_truncated_or_odd_q_frame_is_masked_too(frame: bytes) -> None:
    assert c.redact_host_frame(frame) == b"Q" + b"*" * (len(frame) - 1)
