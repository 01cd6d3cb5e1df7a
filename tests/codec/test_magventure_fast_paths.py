"""MagPro fast paths: every cache and shortcut gives exactly what the plain computation gives.

The caches are keyed by immutable inputs (frame bytes, frozen commands, the simulator's state
fields); these properties compare each one with the computation it stands in for, including the
errors, and check that a cache never lets through a value the plain computation refuses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_magventure_codec import (
    corrupted_frames,
    device_messages,
    host_commands,
    status_bytes,
    truncated_frames,
)

from tmsctl.core.errors import InvalidArgument, ProtocolError
from tmsctl.drivers.magventure import codec as c
from tmsctl.drivers.magventure.driver import _neutral_status
from tmsctl.drivers.magventure.parser import _FrameParser
from tmsctl.simulators import magventure as sim

device_frames = device_messages.map(c.encode_device_message)
host_frames = host_commands.map(c.encode_host_command)
framed_payloads = st.binary(min_size=1, max_size=c.MAX_PAYLOAD_LENGTH).map(c.frame)


def _outcome(decode: Callable[[bytes], Any], raw: bytes) -> tuple[Any, ...]:
    """What a decoder makes of ``raw``: its value, or the error's class, text and attached bytes."""
    try:
        return ("value", decode(raw))
    except ProtocolError as exc:
        return ("error", type(exc), exc.message, exc.raw)


def _two_step_device(raw: bytes) -> c.DeviceMessage:
    return c.decode_device_payload(c.unframe(raw), raw=raw)


def _two_step_host(raw: bytes) -> c.HostCommand:
    return c.decode_host_payload(c.unframe(raw), raw=raw)


# --- whole-frame decoding ------------------------------------------------------------------------


@given(device_frames | framed_payloads | corrupted_frames() | st.binary(max_size=40))
def test_cached_device_frame_decoding_equals_unframe_then_decode(raw: bytes) -> None:
    expected = _outcome(_two_step_device, raw)
    assert _outcome(c.decode_device_frame, raw) == expected
    assert _outcome(c.decode_device_frame, bytearray(raw)) == expected  # the second look is a cache hit
    assert _outcome(c.decode_device_frame_bytes, raw) == expected


@given(host_frames | framed_payloads | corrupted_frames() | st.binary(max_size=40))
def test_cached_host_frame_decoding_equals_unframe_then_decode(raw: bytes) -> None:
    expected = _outcome(_two_step_host, raw)
    assert _outcome(c.decode_host_frame, raw) == expected
    assert _outcome(c.decode_host_frame, bytearray(raw)) == expected
    assert _outcome(c.decode_host_frame_bytes, raw) == expected


# --- host command encoding -----------------------------------------------------------------------


@given(host_commands)
def test_cached_host_encoding_equals_framing_the_payload(command: c.HostCommand) -> None:
    expected = c.frame(c.encode_host_payload(command))
    assert c.encode_host_command(command) == expected
    assert c.encode_host_command(dataclasses.replace(command)) == expected  # an equal copy: a cache hit


def test_commands_with_equal_fields_but_different_ids_keep_their_own_frames() -> None:
    # All of these have no fields (or the same ones): a cache keyed by fields alone would mix them up.
    commands = [
        c.RequestShortStatus(), c.StartTrain(), c.RequestLongStatus(), c.RequestWaveform(),
        c.RequestDelays(), c.RequestTiming(), c.RequestPageAndCount(),
    ]
    for command in commands:
        c.encode_host_command(command)
    frames = [c.encode_host_command(command) for command in commands]
    assert len(set(frames)) == len(commands)
    assert [type(c.decode_host_frame(raw)) for raw in frames] == [type(command) for command in commands]


# --- the stream parsers' shortcuts ----------------------------------------------------------------


def _refuse(raw: bytes) -> Any:
    raise ProtocolError("shortcut disabled: the parser must find out by itself", raw=raw)


def _observe(parser: Any, chunks: list[bytes]) -> tuple[Any, ...]:
    per_feed = [parser.feed(chunk) for chunk in chunks]
    abandoned = parser.abandon_partial()
    rejects = [(type(r), r.message, r.raw) for r in parser.drain_rejects()]
    return per_feed, abandoned, rejects, parser.pending


@pytest.mark.parametrize(
    ("make", "plain", "frames"),
    [
        (c.MagProFrameParser, c.decode_device_payload, device_frames),
        (c.MagProHostFrameParser, c.decode_host_payload, host_frames),
    ],
    ids=["device", "host"],
)
@given(data=st.data())
def test_parsers_with_shortcuts_equal_parsers_that_only_unframe_then_decode(
    make: Callable[[], Any], plain: Callable[..., Any], frames: st.SearchStrategy[bytes], data: st.DataObject
) -> None:
    # Chunks are whole frames (the frame reader's case), garbage, corrupted or
    # truncated frames, and arbitrary cuts of all of them run together.
    pieces = data.draw(
        st.lists(frames | framed_payloads | corrupted_frames() | truncated_frames() | st.binary(max_size=8),
                 max_size=12)
    )
    cuts = data.draw(st.lists(st.integers(0, 64), max_size=6))
    stream = b"".join(pieces)
    recut = [stream[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(stream)], strict=True)]
    for chunks in (pieces, recut):
        assert _observe(make(), chunks) == _observe(_FrameParser(plain, _refuse), chunks)


# --- the driver's status words -------------------------------------------------------------------


@given(
    status_bytes,
    st.booleans(),
    st.none() | st.integers(0, 255),
    st.none() | st.integers(0, 255),
    st.none() | st.integers(0, 255),
)
def test_cached_device_status_equals_the_computed_one(
    status: c.StatusByte, running: bool, coil_type: int | None, temperature: int | None, page: int | None
) -> None:
    # Each argument also in forms that compare equal to it but are another type: a cache hit
    # across them would hand back the other form's words.
    pages: list[Any] = [page] if page is None or page not in set(c.Page) else [page, c.Page(page)]
    for running_form in (running, int(running)):
        for page_form in pages:
            args = (status, running_form, coil_type, temperature, page_form)
            computed = _neutral_status.__wrapped__(*args)
            assert repr(_neutral_status(*args)) == repr(computed)  # repr tells True from 1; == does not


# --- the simulator's status and di/dt frames -----------------------------------------------------


u8 = st.integers(0, 255)
pct = st.integers(0, 100)
serial_numbers = st.integers(0, 0xFFFFFF)
cached_kinds = st.one_of(  # the messages the simulator frames through its cache
    st.builds(c.ShortStatus, status_bytes, serial_numbers, u8, u8, pct, pct),
    st.builds(c.LongStatus, status_bytes, serial_numbers, u8, u8, pct, pct, pct, pct, u8, u8, u8, st.booleans()),
    st.builds(c.PulseDidt, u8, u8, status_bytes),
)


@given(cached_kinds)
def test_cached_simulator_frames_equal_encoding_the_built_message(message: c.DeviceMessage) -> None:
    fields = [getattr(message, f.name) for f in dataclasses.fields(message)]
    expected = c.encode_device_message(message)
    assert sim._message_frame(type(message), *fields) == expected
    assert sim._message_frame(type(message), *fields) == expected


def test_a_cached_frame_never_answers_for_a_value_the_message_refuses() -> None:
    status = sim._status_byte(c.Mode.STANDARD, c.Waveform.MONOPHASIC, False, c.MagProModel.R30)
    sim._message_frame(c.PulseDidt, 80, 0, status)
    # Equal as keys (0 == False, 0 == Mode.STANDARD), refused by the messages: still refused.
    with pytest.raises(InvalidArgument):
        sim._message_frame(c.PulseDidt, 80, False, status)
    with pytest.raises(InvalidArgument):
        sim._status_byte(0, c.Waveform.MONOPHASIC, False, c.MagProModel.R30)


modes_and_waveforms = st.sampled_from(
    [(m, w) for m in c.Mode for w in c.Waveform if not (m in (c.Mode.TWIN, c.Mode.DUAL) and w == 3)]
)


@given(
    st.sampled_from(sorted(sim.PROFILES)),
    modes_and_waveforms,
    st.booleans(),
    st.integers(0, 100),
    st.integers(0, 100),
    st.integers(0, 255),
    st.booleans(),
    st.floats(0, 90),
    st.booleans(),
    st.sampled_from([c.RequestShortStatus(), c.RequestLongStatus()]),
)
def test_the_simulators_status_answer_is_the_encoding_of_its_status(
    profile: str,
    mode_and_waveform: tuple[c.Mode, c.Waveform],
    enabled: bool,
    amplitude_a: int,
    amplitude_b: int,
    page: int,
    running: bool,
    temperature_c: float,
    coil_present: bool,
    request: c.HostCommand,
) -> None:
    device = sim.MagProSimulator(sim.PROFILES[profile])
    device.mode, device.waveform = mode_and_waveform
    device.enabled, device.amplitude_a, device.amplitude_b = enabled, amplitude_a, amplitude_b
    device.page, device.sequence_running = page, running
    device.coil.force(0.0, temperature_c)
    device.coil.present = coil_present
    arrived = device.feed(c.encode_host_command(request), 0.0)
    built = device.short_status if isinstance(request, c.RequestShortStatus) else device.long_status
    expected = c.encode_device_message(built(arrived))
    assert device.read(arrived + 1.0) == expected
