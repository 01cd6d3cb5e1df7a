"""MagPro device → host messages: frozen dataclasses, their payloads, and the decoder.

Any of these can arrive unprompted, including between a request and its answer (reference §4);
``parser.MagProFrameParser`` turns the byte stream into these values. The encoders exist for the
simulator, which must produce the unit's bytes.

Decoding checks what the wire can hold and what the reference defines (enumerations, 0/1 flags,
amplitudes in %); it does not apply our conservative limits to what the unit reports about
itself. Unknown IDs decode to ``UnknownMessage`` (the driver logs and ignores them); a known ID
with the wrong length, an undefined code or a bad flag raises ``ProtocolError`` with the raw
bytes attached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

from tmsctl.core.errors import InvalidArgument, ProtocolError

from .framing import (
    MAX_PAYLOAD_LENGTH,
    S16_MAX,
    S16_MIN,
    U8_MAX,
    U16_MAX,
    U32_MAX,
    decode_code,
    decode_flag,
    decode_payload,
    frame,
    hexdump,
    read_s16_be,
    read_u16_be,
    require_bool,
    require_int,
    s16_be,
    u16_be,
    u32_be,
    unframe,
)
from .tables import (
    BA_RATIO_STEP_X100,
    BURST_IPI_MS_X10,
    MAX_BA_RATIO_X100,
    MAX_BURST_PULSES,
    MIN_BA_RATIO_X100,
    MIN_BURST_PULSES,
    TWIN_DUAL_IPI_MS_X10,
    CurrentDirection,
    MagProModel,
    Mode,
    StatusByte,
    TimingControl,
    Waveform,
    burst_byte,
    burst_ipi_ms_x10,
    burst_pulses_from_byte,
    coil_type_name,
    dual_b_amplitude_pct,
    enum_member,
    page_name,
    twin_ba_ratio_x100,
    twin_dual_ipi_ms_x10,
)

# Message IDs.
SHORT_STATUS = 0
AMPLITUDE_CHANGED = 1
PULSE_DIDT = 2
COIL_CHANGED = 3
MEP_DATA = 4
LONG_STATUS = 5
PROTOCOL_PAGE_AMPLITUDE = 6
PROTOCOL_PAGE_GAIN = 7
PAGE_CHANGED = 8
WAVEFORM_SETTINGS = 9
DELAY_SETTINGS = 10
TIMING_SETTINGS = 11
PAGE_AND_COUNT = 12

MAX_AMPLITUDE_PCT = 100
SERIAL_NUMBER_MAX = 0xFF_FFFF

# ID-12 layout (PYTMS): stimulus count (u16) at data offset 8, page at data offset 12; the other
# bytes are undocumented and the full length is unknown (at least 13 data bytes).
_COUNT_OFFSET = 8
_PAGE_OFFSET = 12
PAGE_AND_COUNT_MIN_DATA = 13

_MAX_TWIN_BA_INDEX = (MAX_BA_RATIO_X100 - MIN_BA_RATIO_X100) // BA_RATIO_STEP_X100
_TIMING_CONTROL_MASK = 0x0F
_EXTENDED_REP_RATE_BIT = 0x10


def _status(value: object) -> StatusByte:
    if not isinstance(value, StatusByte):
        raise InvalidArgument(f"status must be a StatusByte, got {value!r}")
    return value


def _u8(name: str, value: object, *, unit: str = "") -> int:
    return require_int(name, value, 0, U8_MAX, unit=unit)


def _pct(name: str, value: object) -> int:
    return require_int(name, value, 0, MAX_AMPLITUDE_PCT, unit="%")


@dataclass(frozen=True, slots=True)
class _StatusReport:
    """The fields the short and the long status share, in wire order (data bytes 0–7)."""

    status: StatusByte
    serial_number: int
    coil_temperature_c: int
    coil_type: int
    amplitude_a_pct: int
    amplitude_b_pct: int

    def __post_init__(self) -> None:
        _status(self.status)
        require_int("serial_number", self.serial_number, 0, SERIAL_NUMBER_MAX)
        _u8("coil_temperature_c", self.coil_temperature_c, unit="°C")
        _u8("coil_type", self.coil_type)
        _pct("amplitude_a_pct", self.amplitude_a_pct)
        _pct("amplitude_b_pct", self.amplitude_b_pct)

    @property
    def coil_name(self) -> str | None:
        return coil_type_name(self.coil_type)

    def data(self) -> bytes:
        return bytes((self.status.to_byte(),)) + self.serial_number.to_bytes(3, "big") + bytes(
            (self.coil_temperature_c, self.coil_type, self.amplitude_a_pct, self.amplitude_b_pct)
        )


@dataclass(frozen=True, slots=True)
class ShortStatus(_StatusReport):
    """ID 0: answer to 0x00."""

    MESSAGE_ID: ClassVar[int] = SHORT_STATUS


@dataclass(frozen=True, slots=True)
class LongStatus(_StatusReport):
    """ID 5: answer to 0x05 — the short status, then original amplitudes, factors, page, running."""

    MESSAGE_ID: ClassVar[int] = LONG_STATUS
    original_amplitude_a_pct: int
    original_amplitude_b_pct: int
    amplitude_factor_a_pct: int
    amplitude_factor_b_pct: int
    page: int
    sequence_running: bool

    def __post_init__(self) -> None:
        # Named, not super(): slots=True rebuilds the class, which breaks the zero-argument form.
        _StatusReport.__post_init__(self)
        _pct("original_amplitude_a_pct", self.original_amplitude_a_pct)
        _pct("original_amplitude_b_pct", self.original_amplitude_b_pct)
        _u8("amplitude_factor_a_pct", self.amplitude_factor_a_pct, unit="%")
        _u8("amplitude_factor_b_pct", self.amplitude_factor_b_pct, unit="%")
        _u8("page", self.page)
        require_bool("sequence_running", self.sequence_running)

    @property
    def page_name(self) -> str | None:
        return page_name(self.page)

    def data(self) -> bytes:
        return _StatusReport.data(self) + bytes(
            (
                self.original_amplitude_a_pct,
                self.original_amplitude_b_pct,
                self.amplitude_factor_a_pct,
                self.amplitude_factor_b_pct,
                self.page,
                int(self.sequence_running),
            )
        )


@dataclass(frozen=True, slots=True)
class AmplitudeChanged:
    """ID 1: amplitudes changed (by the host, the front panel or the coil buttons)."""

    MESSAGE_ID: ClassVar[int] = AMPLITUDE_CHANGED
    amplitude_a_pct: int
    amplitude_b_pct: int
    status: StatusByte

    def __post_init__(self) -> None:
        _pct("amplitude_a_pct", self.amplitude_a_pct)
        _pct("amplitude_b_pct", self.amplitude_b_pct)
        _status(self.status)

    def data(self) -> bytes:
        return bytes((self.amplitude_a_pct, self.amplitude_b_pct, self.status.to_byte()))


@dataclass(frozen=True, slots=True)
class PulseDidt:
    """ID 2: sent after each pulse with the realised di/dt; Twin/Dual may send one or two per trigger."""

    MESSAGE_ID: ClassVar[int] = PULSE_DIDT
    didt_a_a_per_us: int
    didt_b_a_per_us: int
    status: StatusByte

    def __post_init__(self) -> None:
        _u8("didt_a_a_per_us", self.didt_a_a_per_us, unit="A/µs")
        _u8("didt_b_a_per_us", self.didt_b_a_per_us, unit="A/µs")
        _status(self.status)

    def data(self) -> bytes:
        return bytes((self.didt_a_a_per_us, self.didt_b_a_per_us, self.status.to_byte()))


@dataclass(frozen=True, slots=True)
class CoilChanged:
    """ID 3: coil temperature or coil type changed."""

    MESSAGE_ID: ClassVar[int] = COIL_CHANGED
    coil_temperature_c: int
    coil_type: int
    status: StatusByte

    def __post_init__(self) -> None:
        _u8("coil_temperature_c", self.coil_temperature_c, unit="°C")
        _u8("coil_type", self.coil_type)
        _status(self.status)

    @property
    def coil_name(self) -> str | None:
        return coil_type_name(self.coil_type)

    def data(self) -> bytes:
        return bytes((self.coil_temperature_c, self.coil_type, self.status.to_byte()))


@dataclass(frozen=True, slots=True)
class MepData:
    """ID 4: MEP peak amplitudes (µV) and the time of the maximum (µs)."""

    MESSAGE_ID: ClassVar[int] = MEP_DATA
    max_amplitude_uv: int
    min_amplitude_uv: int
    max_time_us: int

    def __post_init__(self) -> None:
        require_int("max_amplitude_uv", self.max_amplitude_uv, 0, U32_MAX, unit="µV")
        require_int("min_amplitude_uv", self.min_amplitude_uv, 0, U32_MAX, unit="µV")
        require_int("max_time_us", self.max_time_us, 0, U32_MAX, unit="µs")

    def data(self) -> bytes:
        return u32_be(self.max_amplitude_uv) + u32_be(self.min_amplitude_uv) + u32_be(self.max_time_us)


@dataclass(frozen=True, slots=True)
class _ProtocolPageValues:
    """IDs 6 and 7 share one layout: two undocumented raw bytes, then the status byte."""

    value_1: int
    value_2: int
    status: StatusByte

    def __post_init__(self) -> None:
        _u8("value_1", self.value_1)
        _u8("value_2", self.value_2)
        _status(self.status)

    def data(self) -> bytes:
        return bytes((self.value_1, self.value_2, self.status.to_byte()))


@dataclass(frozen=True, slots=True)
class ProtocolPageAmplitude(_ProtocolPageValues):
    """ID 6: Protocol-page amplitude information; the two values are undocumented raw bytes."""

    MESSAGE_ID: ClassVar[int] = PROTOCOL_PAGE_AMPLITUDE


@dataclass(frozen=True, slots=True)
class ProtocolPageGain(_ProtocolPageValues):
    """ID 7: Protocol-page gain; the two values are undocumented raw bytes."""

    MESSAGE_ID: ClassVar[int] = PROTOCOL_PAGE_GAIN


@dataclass(frozen=True, slots=True)
class PageChanged:
    """ID 8: page changed, or a sequence started/stopped."""

    MESSAGE_ID: ClassVar[int] = PAGE_CHANGED
    page: int
    sequence_running: bool
    status: StatusByte

    def __post_init__(self) -> None:
        _u8("page", self.page)
        require_bool("sequence_running", self.sequence_running)
        _status(self.status)

    @property
    def page_name(self) -> str | None:
        return page_name(self.page)

    def data(self) -> bytes:
        return bytes((self.page, int(self.sequence_running), self.status.to_byte()))


@dataclass(frozen=True, slots=True)
class WaveformSettings:
    """ID 9: answer to 0x09 00. Careful: IPI and B/A are *indices* here (IPI little-endian).

    ``flag`` is the first data byte (00 in every answer seen; kept raw because its meaning in
    answers to writes is unknown).
    """

    MESSAGE_ID: ClassVar[int] = WAVEFORM_SETTINGS
    flag: int
    model: MagProModel
    mode: Mode
    current_direction: CurrentDirection
    waveform: Waveform
    burst_pulses: int
    ipi_index: int
    ba_index: int

    def __post_init__(self) -> None:
        _u8("flag", self.flag)
        enum_member(MagProModel, "model", self.model)
        enum_member(Mode, "mode", self.mode)
        enum_member(CurrentDirection, "current_direction", self.current_direction)
        enum_member(Waveform, "waveform", self.waveform)
        require_int("burst_pulses", self.burst_pulses, MIN_BURST_PULSES, MAX_BURST_PULSES)
        require_int("ipi_index", self.ipi_index, 0, max(len(TWIN_DUAL_IPI_MS_X10), len(BURST_IPI_MS_X10)) - 1)
        require_int("ba_index", self.ba_index, 0, 100)

    def ipi_ms_x10(self) -> int | None:
        """The interval the index stands for: Biphasic Burst or Twin/Dual table; ``None`` otherwise."""
        if self.waveform is Waveform.BIPHASIC_BURST:
            return burst_ipi_ms_x10(self.ipi_index)
        if self.mode in (Mode.TWIN, Mode.DUAL):
            return twin_dual_ipi_ms_x10(self.ipi_index)
        return None

    def ba_ratio_x100(self) -> int | None:
        """B/A ratio ×100 (5.00 − 0.05 × index); ``None`` in Dual mode, where the byte is 100 − B."""
        if self.mode is Mode.DUAL or self.ba_index > _MAX_TWIN_BA_INDEX:
            return None
        return twin_ba_ratio_x100(self.ba_index)

    def b_amplitude_pct(self) -> int | None:
        """Dual mode: amplitude B (the byte holds 100 − B); ``None`` in other modes."""
        return dual_b_amplitude_pct(self.ba_index) if self.mode is Mode.DUAL else None

    def data(self) -> bytes:
        return (
            bytes(
                (
                    self.flag,
                    self.model,
                    self.mode,
                    self.current_direction,
                    self.waveform,
                    burst_byte(self.burst_pulses),
                )
            )
            + self.ipi_index.to_bytes(2, "little")
            + bytes((self.ba_index,))
        )


@dataclass(frozen=True, slots=True)
class DelaySettings:
    """ID 10: trigger-in, trigger-out (signed) and charge delays. ``flag``: first data byte, raw."""

    MESSAGE_ID: ClassVar[int] = DELAY_SETTINGS
    flag: int
    input_delay_ms_x10: int
    output_delay_ms_x10: int
    charge_delay_ms: int

    def __post_init__(self) -> None:
        _u8("flag", self.flag)
        require_int("input_delay_ms_x10", self.input_delay_ms_x10, 0, U16_MAX, unit="(0.1 ms)")
        require_int("output_delay_ms_x10", self.output_delay_ms_x10, S16_MIN, S16_MAX, unit="(0.1 ms)")
        require_int("charge_delay_ms", self.charge_delay_ms, 0, U16_MAX, unit="ms")

    def data(self) -> bytes:
        return (
            bytes((self.flag,))
            + u16_be(self.input_delay_ms_x10)
            + s16_be(self.output_delay_ms_x10)
            + u16_be(self.charge_delay_ms)
        )


@dataclass(frozen=True, slots=True)
class TimingSettings:
    """ID 11: the Timing page. ``flag``: first data byte, raw."""

    MESSAGE_ID: ClassVar[int] = TIMING_SETTINGS
    flag: int
    timing_control: TimingControl
    extended_rep_rate: bool
    rate_hz_x10: int
    pulses_per_train: int
    train_count: int
    iti_s_x10: int
    warning_sound: bool
    ramp_up_pct: int
    ramp_up_trains: int

    def __post_init__(self) -> None:
        _u8("flag", self.flag)
        enum_member(TimingControl, "timing_control", self.timing_control)
        require_bool("extended_rep_rate", self.extended_rep_rate)
        require_int("rate_hz_x10", self.rate_hz_x10, 0, U16_MAX, unit="(0.1 Hz)")
        require_int("pulses_per_train", self.pulses_per_train, 0, U16_MAX)
        require_int("train_count", self.train_count, 0, U16_MAX)
        require_int("iti_s_x10", self.iti_s_x10, 0, U16_MAX, unit="(0.1 s)")
        require_bool("warning_sound", self.warning_sound)
        _u8("ramp_up_pct", self.ramp_up_pct, unit="%")
        _u8("ramp_up_trains", self.ramp_up_trains)

    def data(self) -> bytes:
        control = int(self.timing_control) | (_EXTENDED_REP_RATE_BIT if self.extended_rep_rate else 0)
        return (
            bytes((self.flag, control))
            + u16_be(self.rate_hz_x10)
            + u16_be(self.pulses_per_train)
            + u16_be(self.train_count)
            + u16_be(self.iti_s_x10)
            + bytes((int(self.warning_sound), self.ramp_up_pct, self.ramp_up_trains))
        )


@dataclass(frozen=True, slots=True)
class PageAndCount:
    """ID 12: counters. Only the stimulus count (u16) and the page are documented; the other
    data bytes are kept as received so the message re-encodes exactly.

    Build one with ``PageAndCount.build(stimulus_count=…, page=…)`` (undocumented bytes zero).
    """

    MESSAGE_ID: ClassVar[int] = PAGE_AND_COUNT
    data_bytes: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data_bytes, bytes):
            raise InvalidArgument(f"data_bytes must be bytes, got {self.data_bytes!r}")
        if not PAGE_AND_COUNT_MIN_DATA <= len(self.data_bytes) <= MAX_PAYLOAD_LENGTH - 1:
            raise InvalidArgument(
                f"an ID-12 message carries {PAGE_AND_COUNT_MIN_DATA}..{MAX_PAYLOAD_LENGTH - 1} data bytes, "
                f"got {len(self.data_bytes)}"
            )

    @classmethod
    def build(
        cls, *, stimulus_count: int, page: int, data_length: int = PAGE_AND_COUNT_MIN_DATA
    ) -> PageAndCount:
        require_int("stimulus_count", stimulus_count, 0, U16_MAX)
        _u8("page", page)
        require_int("data_length", data_length, PAGE_AND_COUNT_MIN_DATA, MAX_PAYLOAD_LENGTH - 1)
        data = bytearray(data_length)
        data[_COUNT_OFFSET : _COUNT_OFFSET + 2] = u16_be(stimulus_count)
        data[_PAGE_OFFSET] = page
        return cls(bytes(data))

    @property
    def stimulus_count(self) -> int:
        return int.from_bytes(self.data_bytes[_COUNT_OFFSET : _COUNT_OFFSET + 2], "big")

    @property
    def page(self) -> int:
        return self.data_bytes[_PAGE_OFFSET]

    @property
    def page_name(self) -> str | None:
        return page_name(self.page)

    def data(self) -> bytes:
        return self.data_bytes


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A well-framed message whose ID no source documents: log it, do not act on it."""

    message_id: int
    data_bytes: bytes = field(default=b"")

    def __post_init__(self) -> None:
        _u8("message_id", self.message_id)
        if self.message_id in _DECODERS:
            raise InvalidArgument(
                f"message ID {self.message_id} is a known message; build that class instead"
            )
        if not isinstance(self.data_bytes, bytes) or len(self.data_bytes) > MAX_PAYLOAD_LENGTH - 1:
            raise InvalidArgument(f"data_bytes must be bytes, at most {MAX_PAYLOAD_LENGTH - 1} of them")

    @property
    def MESSAGE_ID(self) -> int:  # mirrors the class constant of the known messages
        return self.message_id

    def data(self) -> bytes:
        return self.data_bytes


DeviceMessage = (
    ShortStatus
    | AmplitudeChanged
    | PulseDidt
    | CoilChanged
    | MepData
    | LongStatus
    | ProtocolPageAmplitude
    | ProtocolPageGain
    | PageChanged
    | WaveformSettings
    | DelaySettings
    | TimingSettings
    | PageAndCount
    | UnknownMessage
)


def encode_device_payload(message: DeviceMessage) -> bytes:
    return bytes((message.MESSAGE_ID,)) + message.data()


def encode_device_message(message: DeviceMessage) -> bytes:
    """The complete frame the unit sends for ``message`` (the simulator's side)."""
    return frame(encode_device_payload(message))


# --- decoding ------------------------------------------------------------------------------------


def _length(name: str, data: bytes, expected: int, raw: bytes) -> None:
    if len(data) != expected:
        raise ProtocolError(
            f"{name} carries {expected} data bytes, got {len(data)}: {hexdump(raw)}", raw=raw
        )


def _status_report(data: bytes, raw: bytes) -> tuple[StatusByte, int, int, int, int, int]:
    """Data bytes 0–7 as ``_StatusReport``'s fields, in order: status, serial, temperature, coil, A, B."""
    return (StatusByte.from_byte(data[0], raw=raw), int.from_bytes(data[1:4], "big"), *data[4:8])


def _decode_short_status(data: bytes, raw: bytes) -> DeviceMessage:
    _length("short status (ID 0)", data, 8, raw)
    return ShortStatus(*_status_report(data, raw))


def _decode_long_status(data: bytes, raw: bytes) -> DeviceMessage:
    _length("long status (ID 5)", data, 14, raw)
    return LongStatus(
        *_status_report(data, raw),
        original_amplitude_a_pct=data[8],
        original_amplitude_b_pct=data[9],
        amplitude_factor_a_pct=data[10],
        amplitude_factor_b_pct=data[11],
        page=data[12],
        sequence_running=decode_flag("sequence running", data[13], raw),
    )


def _three_byte(
    cls: type[AmplitudeChanged | PulseDidt | CoilChanged | ProtocolPageAmplitude | ProtocolPageGain],
    name: str,
) -> Callable[[bytes, bytes], DeviceMessage]:
    def decode(data: bytes, raw: bytes) -> DeviceMessage:
        _length(name, data, 3, raw)
        return cls(data[0], data[1], StatusByte.from_byte(data[2], raw=raw))

    return decode


def _decode_mep(data: bytes, raw: bytes) -> DeviceMessage:
    _length("MEP data (ID 4)", data, 12, raw)
    return MepData(
        int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")
    )


def _decode_page_changed(data: bytes, raw: bytes) -> DeviceMessage:
    _length("page changed (ID 8)", data, 3, raw)
    running = decode_flag("sequence running", data[1], raw)
    return PageChanged(data[0], running, StatusByte.from_byte(data[2], raw=raw))


def _decode_waveform(data: bytes, raw: bytes) -> DeviceMessage:
    _length("waveform settings (ID 9)", data, 9, raw)
    if data[5] > MAX_BURST_PULSES - MIN_BURST_PULSES:
        raise ProtocolError(f"burst byte must be 0..3 (5 − pulses), got {data[5]}: {hexdump(raw)}", raw=raw)
    return WaveformSettings(
        flag=data[0],
        model=decode_code(MagProModel, "model", data[1], raw),
        mode=decode_code(Mode, "mode", data[2], raw),
        current_direction=decode_code(CurrentDirection, "current direction", data[3], raw),
        waveform=decode_code(Waveform, "waveform", data[4], raw),
        burst_pulses=burst_pulses_from_byte(data[5]),
        ipi_index=int.from_bytes(data[6:8], "little"),
        ba_index=data[8],
    )


def _decode_delays(data: bytes, raw: bytes) -> DeviceMessage:
    _length("delay settings (ID 10)", data, 7, raw)
    return DelaySettings(
        flag=data[0],
        input_delay_ms_x10=read_u16_be(data, 1),
        output_delay_ms_x10=read_s16_be(data, 3),
        charge_delay_ms=read_u16_be(data, 5),
    )


def _decode_timing(data: bytes, raw: bytes) -> DeviceMessage:
    _length("timing settings (ID 11)", data, 13, raw)
    control = data[1]
    if control & ~(_TIMING_CONTROL_MASK | _EXTENDED_REP_RATE_BIT):
        raise ProtocolError(
            f"timing-control byte {control:02X} sets bits no source documents (only bits 0–4): "
            f"{hexdump(raw)}",
            raw=raw,
        )
    return TimingSettings(
        flag=data[0],
        timing_control=decode_code(TimingControl, "timing control", control & _TIMING_CONTROL_MASK, raw),
        extended_rep_rate=bool(control & _EXTENDED_REP_RATE_BIT),
        rate_hz_x10=read_u16_be(data, 2),
        pulses_per_train=read_u16_be(data, 4),
        train_count=read_u16_be(data, 6),
        iti_s_x10=read_u16_be(data, 8),
        warning_sound=decode_flag("warning sound", data[10], raw),
        ramp_up_pct=data[11],
        ramp_up_trains=data[12],
    )


def _decode_page_and_count(data: bytes, raw: bytes) -> DeviceMessage:
    if len(data) < PAGE_AND_COUNT_MIN_DATA:
        raise ProtocolError(
            f"page and count (ID 12) carries at least {PAGE_AND_COUNT_MIN_DATA} data bytes, got {len(data)}: "
            f"{hexdump(raw)}",
            raw=raw,
        )
    return PageAndCount(bytes(data))


_DECODERS: dict[int, Callable[[bytes, bytes], DeviceMessage]] = {
    SHORT_STATUS: _decode_short_status,
    AMPLITUDE_CHANGED: _three_byte(AmplitudeChanged, "amplitude changed (ID 1)"),
    PULSE_DIDT: _three_byte(PulseDidt, "di/dt (ID 2)"),
    COIL_CHANGED: _three_byte(CoilChanged, "coil changed (ID 3)"),
    MEP_DATA: _decode_mep,
    LONG_STATUS: _decode_long_status,
    PROTOCOL_PAGE_AMPLITUDE: _three_byte(ProtocolPageAmplitude, "protocol amplitude (ID 6)"),
    PROTOCOL_PAGE_GAIN: _three_byte(ProtocolPageGain, "protocol gain (ID 7)"),
    PAGE_CHANGED: _decode_page_changed,
    WAVEFORM_SETTINGS: _decode_waveform,
    DELAY_SETTINGS: _decode_delays,
    TIMING_SETTINGS: _decode_timing,
    PAGE_AND_COUNT: _decode_page_and_count,
}


def decode_device_payload(payload: bytes, *, raw: bytes | None = None) -> DeviceMessage:
    """Payload (ID + data) → device message. Malformed → ``ProtocolError`` with ``raw``."""
    return decode_payload(payload, raw, _DECODERS, UnknownMessage, sender="device", noun="message")


def decode_device_frame(raw: bytes) -> DeviceMessage:
    """A complete device frame → message (``ChecksumError``/``ProtocolError`` if malformed)."""
    return decode_device_frame_bytes(bytes(raw))


# The unit repeats the same few frames all session (a status read every keep-alive, a di/dt
# report per stimulus): each distinct frame is checked and decoded once. Messages are frozen,
# so sharing one between callers is safe; a malformed frame raises every time (never cached).
@lru_cache(maxsize=4096)
def decode_device_frame_bytes(raw: bytes) -> DeviceMessage:
    """``decode_device_frame`` for a frame that is already ``bytes`` (the stream parser's case)."""
    return decode_device_payload(unframe(raw), raw=raw)
