"""DuoMAG codec: every golden vector in shared/reference/deymed.md, the delay choice rule, properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmsctl.core.errors import InvalidArgument, ProtocolError
from tmsctl.drivers.deymed import codec as d

H = bytes.fromhex

# --- golden vectors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "hex_bytes"),
    [
        (d.SetIntensity(50), "32 32"),
        (d.Fire(), "79 79"),
        (d.SetRechargeDelay(d.delay_code_for(120_000)), "9E 9E B0 B0"),
        (d.SetRechargeDelay(d.delay_code_for(10_000)), "80 80 BD BD"),
        (d.SetRechargeDelay(d.delay_code_for(1_000)), "80 80 B1 B1"),
        (d.SetRechargeDelay(d.delay_code_for(5_500)), "9B 9B A2 A2"),
        (d.SetRechargeDelay(d.delay_code_for(635_000)), "9F 9F BB BB"),
        (d.SetTtlOutDelay(d.delay_code_for(2_000)), "C0 C0 F5 F5"),
        (d.SetTtlOutDelay(d.delay_code_for(20_000)), "D9 D9 E8 E8"),
    ],
)
def test_command_golden_vectors(command: d.HostCommand, hex_bytes: str) -> None:
    assert d.encode_command(command) == H(hex_bytes)
    assert d.decode_commands(H(hex_bytes)) == [command]


@pytest.mark.parametrize(
    ("delay_us", "steps", "step"),
    [
        (120_000, 120, d.DelayStep.MS_1),
        (10_000, 1, d.DelayStep.MS_10),
        (1_000, 1, d.DelayStep.MS_1),
        (5_500, 110, d.DelayStep.US_50),
        (635_000, 127, d.DelayStep.MS_5),
        (2_000, 1, d.DelayStep.MS_2),
        (20_000, 100, d.DelayStep.US_200),
    ],
)
def test_golden_delay_choices(delay_us: int, steps: int, step: d.DelayStep) -> None:
    assert d.delay_code_for(delay_us) == d.DelayCode(steps, step)


GOLDEN_STATUS = H("FF 23 3C 78 6E 64 00 00 03 01 01 64 47 00 00 01 FF")


def test_status_golden_vector() -> None:
    parser = d.DuoMagStatusParser()
    (status,) = parser.feed(GOLDEN_STATUS)
    assert parser.drain_rejects() == []
    assert status.ttl_trigger_demand is True
    assert status.intensity_change_pct == 3
    assert status.intensity_pct_mso == 60
    assert status.coil_temperature_raw == 120
    assert status.resistor_temperature_raw == 110
    assert status.discharge_temperature_raw == 100
    assert status.omitted_pulses == 0
    assert status.faults == ()
    assert status.coil_data_ok and status.receiving_usb and status.charged and not status.idle_time
    assert status.ttl_out_delay == d.DelayCode(1, d.DelayStep.MS_10)
    assert status.ttl_out_delay.delay_us == 10_000
    assert status.recharge_delay == d.DelayCode(100, d.DelayStep.MS_1)
    assert status.recharge_delay.delay_us == 100_000
    assert status.coil_type == 1 and status.coil_name == "70BF"


def test_status_golden_vector_with_first_byte_1d() -> None:
    variant = bytearray(GOLDEN_STATUS)
    variant[1] = 0x1D
    (status,) = d.DuoMagStatusParser().feed(bytes(variant))
    assert status.ttl_trigger_demand is False
    assert status.intensity_change_pct == -3


def test_status_golden_vector_re_encodes_exactly() -> None:
    (status,) = d.DuoMagStatusParser().feed(GOLDEN_STATUS)
    assert d.encode_status_stream([status]) == GOLDEN_STATUS


# --- no replies, made explicit -------------------------------------------------------------------


def test_unit_answers_no_command_and_fire_stays_unconfirmed() -> None:
    assert d.REPLIES_TO_COMMANDS is False
    assert d.Fire.CONFIRMATION is d.UNCONFIRMED
    assert d.SetIntensity.CONFIRMATION is d.Confirmation.BY_STATUS
    assert d.SetRechargeDelay.CONFIRMATION is d.Confirmation.BY_STATUS
    assert d.SetTtlOutDelay.CONFIRMATION is d.Confirmation.BY_STATUS


def test_status_confirms_settings_by_read_back() -> None:
    (status,) = d.DuoMagStatusParser().feed(GOLDEN_STATUS)
    assert d.status_confirms(d.SetIntensity(60), status) is True
    assert d.status_confirms(d.SetIntensity(61), status) is False
    assert d.status_confirms(d.SetRechargeDelay(d.delay_code_for(100_000)), status) is True
    assert d.status_confirms(d.SetTtlOutDelay(d.delay_code_for(10_000)), status) is True
    assert d.status_confirms(d.SetTtlOutDelay(d.delay_code_for(20_000)), status) is False
    assert d.status_confirms(d.Fire(), status) is None
    with pytest.raises(InvalidArgument):
        d.status_confirms(d.Fire(), "not a status")  # type: ignore[arg-type]


# --- argument checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 101, 50.0, True, "50"])
def test_intensity_out_of_range_is_refused(value: object) -> None:
    with pytest.raises(InvalidArgument):
        d.SetIntensity(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("delay_us", [-1, 1_270_001, 25, 13_100, 1_269_999, 7.5, True])
def test_unrepresentable_delays_are_refused(delay_us: object) -> None:
    with pytest.raises(InvalidArgument):
        d.delay_code_for(delay_us)  # type: ignore[arg-type]


def test_off_grid_delay_names_neighbours() -> None:
    with pytest.raises(InvalidArgument, match=r"13 ms or 13.2 ms"):
        d.delay_code_for(13_100)


def test_delay_code_checks() -> None:
    with pytest.raises(InvalidArgument):
        d.DelayCode(128, d.DelayStep.MS_1)
    with pytest.raises(InvalidArgument):
        d.DelayCode(1, 4)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        d.SetRechargeDelay(1000)  # type: ignore[arg-type]


def test_where_magic_floors_we_find_the_exact_coarser_step() -> None:
    # 24.5 ms: the smallest covering step (0.2 ms) would need 122.5 steps; MAGIC floors to 24.4 ms.
    assert d.delay_code_for(24_500) == d.DelayCode(49, d.DelayStep.US_500)


# --- delay properties ----------------------------------------------------------------------------

representable_delays = st.builds(
    lambda steps, step: steps * step.step_us, st.integers(0, d.MAX_STEPS), st.sampled_from(d.DelayStep)
)


@given(representable_delays)
def test_every_representable_delay_is_encoded_exactly(delay_us: int) -> None:
    code = d.delay_code_for(delay_us)
    assert code.delay_us == delay_us


@given(st.integers(0, d.MAX_DELAY_US))
def test_delay_choice_is_exact_or_refused(delay_us: int) -> None:
    try:
        code = d.delay_code_for(delay_us)
    except InvalidArgument:
        assert all(delay_us % s.step_us or delay_us // s.step_us > d.MAX_STEPS for s in d.DelayStep)
    else:
        assert code.delay_us == delay_us


@given(representable_delays.filter(lambda v: v > 0))
def test_delay_choice_agrees_with_magic_whenever_magic_is_exact(delay_us: int) -> None:
    code = d.delay_code_for(delay_us)
    step_sizes = {s.step_us: s for s in d.DelayStep}
    if delay_us in step_sizes:
        assert code == d.DelayCode(1, step_sizes[delay_us])
        return
    covering = next(s for s in d.DelayStep if s.step_us * d.MAX_STEPS >= delay_us)
    if delay_us % covering.step_us == 0:
        assert code == d.DelayCode(delay_us // covering.step_us, covering)


# --- command properties --------------------------------------------------------------------------

delay_codes = st.builds(d.DelayCode, st.integers(0, d.MAX_STEPS), st.sampled_from(d.DelayStep))
commands = st.one_of(
    st.builds(d.SetIntensity, st.integers(0, 100)),
    st.just(d.Fire()),
    st.builds(d.SetRechargeDelay, delay_codes),
    st.builds(d.SetTtlOutDelay, delay_codes),
)


@given(commands)
def test_command_bytes_are_doubled_and_in_their_range(command: d.HostCommand) -> None:
    raw = d.encode_command(command)
    assert all(raw[i] == raw[i + 1] for i in range(0, len(raw), 2))
    if isinstance(command, d.SetIntensity):
        assert raw[0] <= 0x64
    elif isinstance(command, d.Fire):
        assert raw == H("79 79")
    elif isinstance(command, d.SetRechargeDelay):
        assert all(0x80 <= b <= 0xBF for b in raw)
    else:
        assert all(0xC0 <= b <= 0xFF for b in raw)


@given(st.lists(commands, max_size=12), st.data())
def test_command_stream_round_trip_in_any_chunks(sent: list[d.HostCommand], data: st.DataObject) -> None:
    stream = b"".join(d.encode_command(command) for command in sent)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=10))))
    parser = d.DuoMagCommandParser()
    received: list[d.HostCommand] = []
    position = 0
    for cut in cuts:
        received += parser.feed(stream[position:cut])
        position = cut
    received += parser.feed(stream[position:])
    assert received == sent
    assert parser.drain_rejects() == [] and parser.pending == b""


@given(st.binary(max_size=40), st.data())
def test_command_parser_on_arbitrary_bytes_is_chunking_independent_and_never_raises(
    raw: bytes, data: st.DataObject
) -> None:
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=10))))

    def run(points: list[int]) -> tuple[list[d.HostCommand], list[bytes], bytes]:
        parser = d.DuoMagCommandParser()
        out: list[d.HostCommand] = []
        position = 0
        for cut in points:
            out += parser.feed(raw[position:cut])
            position = cut
        out += parser.feed(raw[position:])
        rejects = parser.drain_rejects()
        assert all(isinstance(r, ProtocolError) for r in rejects)
        return out, [r.raw for r in rejects], parser.pending

    assert run(cuts) == run([])


@given(st.binary(max_size=40))
def test_decode_commands_returns_or_raises_protocol_error(raw: bytes) -> None:
    try:
        decoded = d.decode_commands(raw)
    except ProtocolError as exc:
        assert exc.raw == raw
    else:
        assert b"".join(d.encode_command(command) for command in decoded) == raw


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("32 79 79", [d.Fire()]),  # an undoubled byte is dropped
        ("9E 9E 79 79", [d.Fire()]),  # upper delay pair without its lower pair
        ("B0 B0 32 32", [d.SetIntensity(50)]),  # lower pair without upper pair
        ("9E 9E F0 F0 32 32", [d.SetIntensity(50)]),  # recharge upper, TTL lower: mismatched kinds
        ("70 70 32 32", [d.SetIntensity(50)]),  # no command uses 0x70
    ],
)
def test_command_parser_drops_what_does_not_fit(raw: str, kept: list[d.HostCommand]) -> None:
    parser = d.DuoMagCommandParser()
    assert parser.feed(H(raw)) == kept
    rejects = parser.drain_rejects()
    assert rejects and all(isinstance(r, ProtocolError) and r.raw for r in rejects)


# --- status properties ---------------------------------------------------------------------------

raw_byte = st.integers(0, 0xFE)
statuses = st.builds(
    d.DuoMagStatus,
    ttl_trigger_demand=st.booleans(),
    intensity_change_pct=st.integers(-16, 15),
    intensity_pct_mso=st.integers(0, 100),
    coil_temperature_raw=raw_byte,
    resistor_temperature_raw=raw_byte,
    discharge_temperature_raw=raw_byte,
    omitted_pulses=raw_byte,
    power_overheat=st.booleans(),
    coil_disconnected=st.booleans(),
    voltage_hold_error=st.booleans(),
    voltage_recharge_error=st.booleans(),
    power_fan_seized=st.booleans(),
    coil_overheat=st.booleans(),
    resistor_overheat=st.booleans(),
    discharge_overheat=st.booleans(),
    coil_data_ok=st.booleans(),
    receiving_usb=st.booleans(),
    idle_time=st.booleans(),
    charged=st.booleans(),
    ttl_out_delay=delay_codes,
    recharge_delay=delay_codes,
    coil_type=st.none() | st.integers(0, 0x7F),
)


@given(statuses)
def test_status_record_round_trip(status: d.DuoMagStatus) -> None:
    record = d.encode_status_record(status)
    assert d.SYNC not in record
    assert d.decode_status_record(record) == status


@given(st.lists(statuses, max_size=6), st.data())
def test_status_stream_round_trip_in_any_chunks(sent: list[d.DuoMagStatus], data: st.DataObject) -> None:
    stream = d.encode_status_stream(sent)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=10))))
    parser = d.DuoMagStatusParser()
    received: list[d.DuoMagStatus] = []
    position = 0
    for cut in cuts:
        received += parser.feed(stream[position:cut])
        position = cut
    received += parser.feed(stream[position:])
    assert received == sent
    assert parser.drain_rejects() == []


@given(st.binary(max_size=80), st.lists(statuses, min_size=1, max_size=4))
def test_status_stream_joined_halfway_recovers_at_the_first_sync(
    prefix: bytes, sent: list[d.DuoMagStatus]
) -> None:
    # A parser opened mid-stream sees the tail of some record first (no sync bytes in it).
    parser = d.DuoMagStatusParser()
    received = parser.feed(prefix.replace(b"\xff", b"") + d.encode_status_stream(sent))
    assert received == sent


@given(st.binary(max_size=120), st.data())
def test_status_parser_on_arbitrary_bytes_never_raises_and_is_chunking_independent(
    raw: bytes, data: st.DataObject
) -> None:
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=10))))

    def run(points: list[int]) -> tuple[list[d.DuoMagStatus], list[bytes], bytes]:
        parser = d.DuoMagStatusParser()
        out: list[d.DuoMagStatus] = []
        position = 0
        for cut in points:
            out += parser.feed(raw[position:cut])
            position = cut
        out += parser.feed(raw[position:])
        rejects = parser.drain_rejects()
        assert all(isinstance(r, ProtocolError) for r in rejects)
        return out, [r.raw for r in rejects], parser.pending

    assert run(cuts) == run([])


@given(st.binary(max_size=40))
def test_decode_status_record_returns_or_raises_protocol_error(record: bytes) -> None:
    try:
        status = d.decode_status_record(record)
    except ProtocolError as exc:
        assert exc.raw == record
    else:
        assert d.decode_status_record(d.encode_status_record(status)) == status


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        ("FF 23 3C 78 6E 64 00 00 03 01 01 64 FF", "13..30 bytes"),  # 12-byte record
        ("FF 23 65 78 6E 64 00 00 03 01 01 64 47 00 FF", "intensity 101"),
        ("FF FF", "empty"),
    ],
)
def test_bad_status_records_are_rejected_with_reason(stream: str, why: str) -> None:
    parser = d.DuoMagStatusParser()
    assert parser.feed(H(stream)) == []
    (reject,) = parser.drain_rejects()
    assert why in reject.message


def test_thirteen_byte_record_has_no_coil_type() -> None:
    (status,) = d.DuoMagStatusParser().feed(GOLDEN_STATUS[:14] + H("FF"))
    assert status.coil_type is None and status.coil_name is None
    assert d.encode_status_record(status) == GOLDEN_STATUS[1:14]


def test_overlong_run_without_sync_is_rejected() -> None:
    parser = d.DuoMagStatusParser()
    assert parser.feed(H("FF") + bytes(40) + H("FF") + GOLDEN_STATUS[1:]) != []
    assert any("without a DuoMAG sync byte" in r.message for r in parser.drain_rejects())


def test_fault_bits_are_named() -> None:
    record = bytearray(GOLDEN_STATUS[1:-1])
    record[6] = 0b0110_0000  # power overheat, coil disconnected
    record[7] |= 0b0001_0000  # coil overheat
    status = d.decode_status_record(bytes(record))
    assert status.faults == ("power_overheat", "coil_disconnected", "coil_overheat")
