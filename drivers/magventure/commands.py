"""MagPro host → device commands: frozen dataclasses, their payloads, and the host-side decoder.

Every command takes unit-bearing scaled integers (``rate_hz_x10`` = tenths of a hertz,
``iti_s_x10`` = tenths of a second, ``input_delay_ms_x10`` = tenths of a millisecond, …), checks
them against the range any source documents for the wire field (``InvalidArgument`` otherwise),
and encodes them big-endian. Model-dependent grids (which rates an R30 accepts, …) are the spec's
job (``tmsctl.drivers.magventure.spec``); the codec only refuses what no MagPro accepts.

Two firmware generations exist (reference §3): the older train/delay forms 0x06/0x08 and the
newer read/write forms 0x0A/0x0B/0x0C. Both are here; which one a unit speaks is unknown (U).

The simulator decodes host frames with ``decode_host_payload`` / ``decode_host_frame``: any
malformed input raises ``ProtocolError`` with the raw bytes attached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

from tmsctl.core.errors import InvalidArgument, ProtocolError

from .framing import (
    MAX_PAYLOAD_LENGTH,
    U8_MAX,
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
    unframe,
)
from .tables import (
    BA_RATIO_STEP_X100,
    BURST_IPI_MS_X10,
    MAX_BA_RATIO_X100,
    MAX_BURST_PULSES,
    MIN_BA_RATIO_X100,
    MIN_BURST_PULSES,
    MONOPHASIC_TWIN_MIN_IPI_MS_X10,
    TWIN_DUAL_IPI_MS_X10,
    CurrentDirection,
    MagProModel,
    Mode,
    Page,
    TimingControl,
    Waveform,
    burst_byte,
    burst_pulses_from_byte,
    enum_member,
)

# Command IDs.
REQUEST_SHORT_STATUS = 0x00
SET_AMPLITUDE = 0x01
SET_ENABLED = 0x02
TRIGGER = 0x03
START_TRAIN = 0x04
REQUEST_LONG_STATUS = 0x05
SET_TRAIN_LEGACY = 0x06
SET_PAGE = 0x07
SET_DELAYS_LEGACY = 0x08
WAVEFORM = 0x09
DELAYS = 0x0A
TIMING = 0x0B
PAGE_AND_COUNT = 0x0C

_READ = 0x00
_WRITE = 0x01

# Wire-field domains: the union of what any source lets through (reference §4 "Value ranges").
MAX_AMPLITUDE_PCT = 100
RATE_HZ_X10_RANGE = (1, 1000)  # 0.1–100 Hz
PULSES_PER_TRAIN_RANGE = (1, 2000)
TRAIN_COUNT_RANGE = (1, 500)
ITI_S_X10_RANGE = (1, 3000)  # 0.1–300 s
INPUT_DELAY_MS_X10_RANGE = (0, 65000)  # 0–6500 ms
OUTPUT_DELAY_MS_X10_RANGE = (-1000, 1000)  # −100…100 ms
CHARGE_DELAY_MS_RANGE = (0, 12000)


def _check_train(rate_hz_x10: int, pulses_per_train: int, train_count: int, iti_s_x10: int) -> None:
    require_int("rate_hz_x10", rate_hz_x10, *RATE_HZ_X10_RANGE, unit="(0.1 Hz)")
    require_int("pulses_per_train", pulses_per_train, *PULSES_PER_TRAIN_RANGE)
    require_int("train_count", train_count, *TRAIN_COUNT_RANGE)
    require_int("iti_s_x10", iti_s_x10, *ITI_S_X10_RANGE, unit="(0.1 s)")


def _check_delays(input_delay_ms_x10: int, output_delay_ms_x10: int, charge_delay_ms: int) -> None:
    require_int("input_delay_ms_x10", input_delay_ms_x10, *INPUT_DELAY_MS_X10_RANGE, unit="(0.1 ms)")
    require_int("output_delay_ms_x10", output_delay_ms_x10, *OUTPUT_DELAY_MS_X10_RANGE, unit="(0.1 ms)")
    require_int("charge_delay_ms", charge_delay_ms, *CHARGE_DELAY_MS_RANGE, unit="ms")


@dataclass(frozen=True, slots=True)
class _NoData:
    """A command that is its ID alone."""

    def data(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class RequestShortStatus(_NoData):
    """0x00: the unit answers with a short status (ID 0)."""

    COMMAND_ID: ClassVar[int] = REQUEST_SHORT_STATUS


@dataclass(frozen=True, slots=True)
class SetAmplitude:
    """0x01: set amplitude A, and B when given (``None`` sends the one-byte form, standard mode)."""

    COMMAND_ID: ClassVar[int] = SET_AMPLITUDE
    amplitude_a_pct: int
    amplitude_b_pct: int | None = None

    def __post_init__(self) -> None:
        require_int("amplitude_a_pct", self.amplitude_a_pct, 0, MAX_AMPLITUDE_PCT, unit="%")
        if self.amplitude_b_pct is not None:
            require_int("amplitude_b_pct", self.amplitude_b_pct, 0, MAX_AMPLITUDE_PCT, unit="%")

    def data(self) -> bytes:
        if self.amplitude_b_pct is None:
            return bytes((self.amplitude_a_pct,))
        return bytes((self.amplitude_a_pct, self.amplitude_b_pct))


@dataclass(frozen=True, slots=True)
class SetEnabled:
    """0x02: the front-panel "enable" (True) or disable (False)."""

    COMMAND_ID: ClassVar[int] = SET_ENABLED
    enabled: bool

    def __post_init__(self) -> None:
        require_bool("enabled", self.enabled)

    def data(self) -> bytes:
        return bytes((int(self.enabled),))


@dataclass(frozen=True, slots=True)
class Trigger:
    """0x03: one pulse (one burst in Biphasic Burst); only acts when enabled.

    MPC and PYTMS send ``03`` alone (the default); MAGIC sends ``03 01`` (``with_data_byte``).
    """

    COMMAND_ID: ClassVar[int] = TRIGGER
    with_data_byte: bool = False

    def __post_init__(self) -> None:
        require_bool("with_data_byte", self.with_data_byte)

    def data(self) -> bytes:
        return b"\x01" if self.with_data_byte else b""


@dataclass(frozen=True, slots=True)
class StartTrain(_NoData):
    """0x04: start the train/sequence (needs enabled and the Timing page)."""

    COMMAND_ID: ClassVar[int] = START_TRAIN


@dataclass(frozen=True, slots=True)
class RequestLongStatus(_NoData):
    """0x05: the unit answers with a long status (ID 5)."""

    COMMAND_ID: ClassVar[int] = REQUEST_LONG_STATUS


@dataclass(frozen=True, slots=True)
class SetTrainLegacy:
    """0x06 (older firmware): rate, pulses per train, number of trains, ITI; Timing page only."""

    COMMAND_ID: ClassVar[int] = SET_TRAIN_LEGACY
    rate_hz_x10: int
    pulses_per_train: int
    train_count: int
    iti_s_x10: int

    def __post_init__(self) -> None:
        _check_train(self.rate_hz_x10, self.pulses_per_train, self.train_count, self.iti_s_x10)

    def data(self) -> bytes:
        return (
            u16_be(self.rate_hz_x10)
            + u16_be(self.pulses_per_train)
            + u16_be(self.train_count)
            + u16_be(self.iti_s_x10)
        )


@dataclass(frozen=True, slots=True)
class SetPage:
    """0x07: switch the displayed page. MAGIC/MPC add a 00 byte (the default), PYTMS does not."""

    COMMAND_ID: ClassVar[int] = SET_PAGE
    page: Page
    trailing_zero: bool = True

    def __post_init__(self) -> None:
        enum_member(Page, "page", self.page)
        require_bool("trailing_zero", self.trailing_zero)

    def data(self) -> bytes:
        return bytes((self.page, 0)) if self.trailing_zero else bytes((self.page,))


@dataclass(frozen=True, slots=True)
class _DelayFields:
    """Trigger-in delay, trigger-out delay (signed), charge delay: both firmware generations."""

    input_delay_ms_x10: int
    output_delay_ms_x10: int
    charge_delay_ms: int

    def __post_init__(self) -> None:
        _check_delays(self.input_delay_ms_x10, self.output_delay_ms_x10, self.charge_delay_ms)

    def _delay_bytes(self) -> bytes:
        return (
            u16_be(self.input_delay_ms_x10) + s16_be(self.output_delay_ms_x10) + u16_be(self.charge_delay_ms)
        )


@dataclass(frozen=True, slots=True)
class SetDelaysLegacy(_DelayFields):
    """0x08 (older firmware): trigger-in delay, trigger-out delay (signed), charge delay, 00 00."""

    COMMAND_ID: ClassVar[int] = SET_DELAYS_LEGACY

    def data(self) -> bytes:
        return self._delay_bytes() + b"\x00\x00"


@dataclass(frozen=True, slots=True)
class _ReadRequest:
    """The read form of a read/write command: its ID, then 00."""

    def data(self) -> bytes:
        return bytes((_READ,))


@dataclass(frozen=True, slots=True)
class RequestWaveform(_ReadRequest):
    """0x09 00: the unit answers with its waveform settings (ID 9)."""

    COMMAND_ID: ClassVar[int] = WAVEFORM


@dataclass(frozen=True, slots=True)
class SetWaveform:
    """0x09 01: model (must echo the unit's), mode, direction, waveform, burst pulses, IPI, B/A.

    ``ipi_ms_x10`` must be an entry of the IPI table that applies (Biphasic Burst table for
    bursts, Twin/Dual table for Twin/Dual, either otherwise); Twin/Dual cannot be combined with
    Biphasic Burst, and monophasic Twin/Dual intervals stop at 2.0 ms.
    """

    COMMAND_ID: ClassVar[int] = WAVEFORM
    model: MagProModel
    mode: Mode
    current_direction: CurrentDirection
    waveform: Waveform
    burst_pulses: int
    ipi_ms_x10: int
    ba_ratio_x100: int

    def __post_init__(self) -> None:
        enum_member(MagProModel, "model", self.model)
        enum_member(Mode, "mode", self.mode)
        enum_member(CurrentDirection, "current_direction", self.current_direction)
        enum_member(Waveform, "waveform", self.waveform)
        require_int("burst_pulses", self.burst_pulses, MIN_BURST_PULSES, MAX_BURST_PULSES)
        require_int(
            "ipi_ms_x10", self.ipi_ms_x10, min(BURST_IPI_MS_X10), max(TWIN_DUAL_IPI_MS_X10), unit="(0.1 ms)"
        )
        require_int("ba_ratio_x100", self.ba_ratio_x100, MIN_BA_RATIO_X100, MAX_BA_RATIO_X100, unit="(0.01)")
        if self.ba_ratio_x100 % BA_RATIO_STEP_X100:
            raise InvalidArgument(
                f"B/A ratio must be a multiple of 0.05, got {self.ba_ratio_x100 / 100:g}",
                hint="tmsctl does not round ratios",
            )
        twin_or_dual = self.mode in (Mode.TWIN, Mode.DUAL)
        if twin_or_dual and self.waveform is Waveform.BIPHASIC_BURST:
            raise InvalidArgument(
                f"{self.mode.name.title()} mode cannot be combined with Biphasic Burst",
                hint="choose Standard/Power mode for bursts, or another waveform for Twin/Dual",
            )
        if self.waveform is Waveform.BIPHASIC_BURST:
            allowed: set[int] = set(BURST_IPI_MS_X10)
            table = "Biphasic Burst"
        elif twin_or_dual:
            allowed = set(TWIN_DUAL_IPI_MS_X10)
            table = "Twin/Dual"
        else:
            allowed = set(BURST_IPI_MS_X10) | set(TWIN_DUAL_IPI_MS_X10)
            table = "Biphasic Burst or Twin/Dual"
        if self.ipi_ms_x10 not in allowed:
            raise InvalidArgument(
                f"{self.ipi_ms_x10 / 10:g} ms is not in the {table} inter-pulse-interval table",
                hint="tmsctl does not round intervals; see tables.BURST_IPI_MS_X10 / TWIN_DUAL_IPI_MS_X10",
            )
        monophasic_twin = twin_or_dual and self.waveform is Waveform.MONOPHASIC
        if monophasic_twin and self.ipi_ms_x10 < MONOPHASIC_TWIN_MIN_IPI_MS_X10:
            raise InvalidArgument(
                f"monophasic {self.mode.name.title()} intervals stop at 2.0 ms, "
                f"got {self.ipi_ms_x10 / 10:g} ms"
            )

    def data(self) -> bytes:
        return (
            bytes(
                (
                    _WRITE,
                    self.model,
                    self.mode,
                    self.current_direction,
                    self.waveform,
                    burst_byte(self.burst_pulses),
                )
            )
            + u16_be(self.ipi_ms_x10)
            + u16_be(self.ba_ratio_x100)
        )


@dataclass(frozen=True, slots=True)
class RequestDelays(_ReadRequest):
    """0x0A 00 (newer firmware): the unit answers with its delays (ID 10)."""

    COMMAND_ID: ClassVar[int] = DELAYS


@dataclass(frozen=True, slots=True)
class SetDelays(_DelayFields):
    """0x0A 01 (newer firmware): trigger-in delay, trigger-out delay (signed), charge delay."""

    COMMAND_ID: ClassVar[int] = DELAYS

    def data(self) -> bytes:
        return bytes((_WRITE,)) + self._delay_bytes()


@dataclass(frozen=True, slots=True)
class RequestTiming(_ReadRequest):
    """0x0B 00 (newer firmware): the unit answers with its Timing page (ID 11)."""

    COMMAND_ID: ClassVar[int] = TIMING


@dataclass(frozen=True, slots=True)
class SetTiming:
    """0x0B 01 (newer firmware): timing control, rate, pulses, trains, ITI, warning sound.

    The ramp-up fields of the read-back cannot be written (PYTMS), and whether the
    extended-rep-rate bit may be written is unknown, so neither is offered.
    """

    COMMAND_ID: ClassVar[int] = TIMING
    timing_control: TimingControl
    rate_hz_x10: int
    pulses_per_train: int
    train_count: int
    iti_s_x10: int
    warning_sound: bool

    def __post_init__(self) -> None:
        enum_member(TimingControl, "timing_control", self.timing_control)
        _check_train(self.rate_hz_x10, self.pulses_per_train, self.train_count, self.iti_s_x10)
        require_bool("warning_sound", self.warning_sound)

    def data(self) -> bytes:
        return (
            bytes((_WRITE, self.timing_control))
            + u16_be(self.rate_hz_x10)
            + u16_be(self.pulses_per_train)
            + u16_be(self.train_count)
            + u16_be(self.iti_s_x10)
            + bytes((int(self.warning_sound),))
        )


@dataclass(frozen=True, slots=True)
class RequestPageAndCount(_ReadRequest):
    """0x0C 00 (newer firmware): the unit answers with page and stimulus count (ID 12)."""

    COMMAND_ID: ClassVar[int] = PAGE_AND_COUNT


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A well-framed host payload whose ID no source documents (the simulator decides what to do)."""

    command_id: int
    data_bytes: bytes = field(default=b"")

    def __post_init__(self) -> None:
        require_int("command_id", self.command_id, 0, U8_MAX)
        if self.command_id in _DECODERS:
            raise InvalidArgument(
                f"command ID {self.command_id:02X} is a known command; build that class instead"
            )
        if not isinstance(self.data_bytes, bytes) or len(self.data_bytes) > MAX_PAYLOAD_LENGTH - 1:
            raise InvalidArgument(f"data_bytes must be at most {MAX_PAYLOAD_LENGTH - 1} bytes")

    @property
    def COMMAND_ID(self) -> int:  # mirrors the class constant of the known commands
        return self.command_id

    def data(self) -> bytes:
        return self.data_bytes


HostCommand = (
    RequestShortStatus
    | SetAmplitude
    | SetEnabled
    | Trigger
    | StartTrain
    | RequestLongStatus
    | SetTrainLegacy
    | SetPage
    | SetDelaysLegacy
    | RequestWaveform
    | SetWaveform
    | RequestDelays
    | SetDelays
    | RequestTiming
    | SetTiming
    | RequestPageAndCount
    | UnknownCommand
)


def encode_host_payload(command: HostCommand) -> bytes:
    return bytes((command.COMMAND_ID,)) + command.data()


# Commands are frozen and compare equal only within one class and with equal fields, so equal
# commands have equal frames; a driver sends the same status request every keep-alive.
@lru_cache(maxsize=1024)
def encode_host_command(command: HostCommand) -> bytes:
    """The complete frame for a host command."""
    return frame(encode_host_payload(command))


def answer_id(command: HostCommand) -> int | None:
    """The device message ID that answers a read request, or ``None`` if no answer is documented.

    Writes have no documented answer; the unit may still send unprompted messages afterwards
    (ID 1 after amplitude changes, ID 8 after page changes, ID 2 after each pulse).
    """
    return _ANSWER_IDS.get(type(command))


_ANSWER_IDS: dict[type, int] = {
    RequestShortStatus: 0,
    RequestLongStatus: 5,
    RequestWaveform: 9,
    RequestDelays: 10,
    RequestTiming: 11,
    RequestPageAndCount: 12,
}


# --- host-side decoding (the simulator reads these) ----------------------------------------------


def _expect_length(name: str, data: bytes, lengths: tuple[int, ...], raw: bytes) -> None:
    if len(data) not in lengths:
        wanted = " or ".join(str(n) for n in lengths)
        raise ProtocolError(
            f"{name} carries {wanted} data bytes, got {len(data)}: {hexdump(raw)}", raw=raw
        )


def _decode_no_data(cls: Callable[[], HostCommand], name: str) -> Callable[[bytes, bytes], HostCommand]:
    def decode(data: bytes, raw: bytes) -> HostCommand:
        _expect_length(name, data, (0,), raw)
        return cls()

    return decode


def _decode_amplitude(data: bytes, raw: bytes) -> HostCommand:
    _expect_length("set amplitude (01)", data, (1, 2), raw)
    return SetAmplitude(data[0], data[1] if len(data) == 2 else None)


def _decode_enabled(data: bytes, raw: bytes) -> HostCommand:
    _expect_length("enable/disable (02)", data, (1,), raw)
    return SetEnabled(decode_flag("enable", data[0], raw))


def _decode_trigger(data: bytes, raw: bytes) -> HostCommand:
    _expect_length("trigger (03)", data, (0, 1), raw)
    if data and data[0] != 0x01:
        raise ProtocolError(f"trigger (03) data byte must be 01, got {data[0]:02X}: {hexdump(raw)}", raw=raw)
    return Trigger(with_data_byte=bool(data))


def _decode_train_legacy(data: bytes, raw: bytes) -> HostCommand:
    _expect_length("set train (06)", data, (8,), raw)
    return SetTrainLegacy(*(read_u16_be(data, offset) for offset in (0, 2, 4, 6)))


def _decode_page(data: bytes, raw: bytes) -> HostCommand:
    _expect_length("set page (07)", data, (1, 2), raw)
    if len(data) == 2 and data[1] != 0:
        raise ProtocolError(
            f"set page (07) second byte must be 00, got {data[1]:02X}: {hexdump(raw)}", raw=raw
        )
    try:
        page = Page(data[0])
    except ValueError:
        raise ProtocolError(f"set page (07) names unknown page {data[0]}: {hexdump(raw)}", raw=raw) from None
    return SetPage(page, trailing_zero=len(data) == 2)


def _decode_delays_legacy(data: bytes, raw: bytes) -> HostCommand:
    _expect_length("set delays (08)", data, (8,), raw)
    if data[6:8] != b"\x00\x00":
        raise ProtocolError(f"set delays (08) must end with 00 00: {hexdump(raw)}", raw=raw)
    return SetDelaysLegacy(read_u16_be(data, 0), read_s16_be(data, 2), read_u16_be(data, 4))


def _decode_read_or_write(
    name: str,
    request: type[RequestWaveform | RequestDelays | RequestTiming | RequestPageAndCount],
    write_length: int,
    decode_write: Callable[[bytes, bytes], HostCommand],
) -> Callable[[bytes, bytes], HostCommand]:
    """Data byte 0 picks the form: 00 is ``request`` alone, 01 a write of ``write_length`` data bytes."""
    code = f"{request.COMMAND_ID:02X}"

    def decode(data: bytes, raw: bytes) -> HostCommand:
        if not data or data[0] not in (_READ, _WRITE):
            raise ProtocolError(
                f"{name} ({code}) must start with 00 (read) or 01 (write): {hexdump(raw)}", raw=raw
            )
        if data[0] == _READ:
            _expect_length(f"read {name} ({code} 00)", data, (1,), raw)
            return request()
        _expect_length(f"write {name} ({code} 01)", data, (write_length,), raw)
        return decode_write(data, raw)

    return decode


def _decode_set_waveform(data: bytes, raw: bytes) -> HostCommand:
    burst_value = data[5]
    if burst_value > MAX_BURST_PULSES - MIN_BURST_PULSES:
        raise ProtocolError(
            f"burst byte must be 0..3 (5 − pulses), got {burst_value}: {hexdump(raw)}", raw=raw
        )
    return SetWaveform(
        model=decode_code(MagProModel, "model", data[1], raw),
        mode=decode_code(Mode, "mode", data[2], raw),
        current_direction=decode_code(CurrentDirection, "current direction", data[3], raw),
        waveform=decode_code(Waveform, "waveform", data[4], raw),
        burst_pulses=burst_pulses_from_byte(burst_value),
        ipi_ms_x10=read_u16_be(data, 6),
        ba_ratio_x100=read_u16_be(data, 8),
    )


def _decode_set_delays(data: bytes, raw: bytes) -> HostCommand:
    return SetDelays(read_u16_be(data, 1), read_s16_be(data, 3), read_u16_be(data, 5))


def _decode_set_timing(data: bytes, raw: bytes) -> HostCommand:
    return SetTiming(
        timing_control=decode_code(TimingControl, "timing control", data[1], raw),
        rate_hz_x10=read_u16_be(data, 2),
        pulses_per_train=read_u16_be(data, 4),
        train_count=read_u16_be(data, 6),
        iti_s_x10=read_u16_be(data, 8),
        warning_sound=decode_flag("warning sound", data[10], raw),
    )


def _decode_page_and_count(data: bytes, raw: bytes) -> HostCommand:
    _expect_length("read page and count (0C 00)", data, (1,), raw)
    if data[0] != _READ:
        raise ProtocolError(f"page and count (0C) has only a read form (0C 00): {hexdump(raw)}", raw=raw)
    return RequestPageAndCount()


_DECODERS: dict[int, Callable[[bytes, bytes], HostCommand]] = {
    REQUEST_SHORT_STATUS: _decode_no_data(RequestShortStatus, "short status request (00)"),
    SET_AMPLITUDE: _decode_amplitude,
    SET_ENABLED: _decode_enabled,
    TRIGGER: _decode_trigger,
    START_TRAIN: _decode_no_data(StartTrain, "start train (04)"),
    REQUEST_LONG_STATUS: _decode_no_data(RequestLongStatus, "long status request (05)"),
    SET_TRAIN_LEGACY: _decode_train_legacy,
    SET_PAGE: _decode_page,
    SET_DELAYS_LEGACY: _decode_delays_legacy,
    WAVEFORM: _decode_read_or_write("waveform", RequestWaveform, 10, _decode_set_waveform),
    DELAYS: _decode_read_or_write("delays", RequestDelays, 7, _decode_set_delays),
    TIMING: _decode_read_or_write("timing", RequestTiming, 11, _decode_set_timing),
    PAGE_AND_COUNT: _decode_page_and_count,
}


def decode_host_payload(payload: bytes, *, raw: bytes | None = None) -> HostCommand:
    """Payload (ID + data) → host command. Malformed or out-of-range → ``ProtocolError``."""
    return decode_payload(payload, raw, _DECODERS, UnknownCommand, sender="host", noun="command")


def decode_host_frame(raw: bytes) -> HostCommand:
    """A complete host frame → host command (``ChecksumError``/``ProtocolError`` if malformed)."""
    return decode_host_frame_bytes(bytes(raw))


# A host sends the same few frames all session; commands are frozen, so one decoded command can
# be handed out again. A malformed frame raises every time (exceptions are never cached).
@lru_cache(maxsize=4096)
def decode_host_frame_bytes(raw: bytes) -> HostCommand:
    """``decode_host_frame`` for a frame that is already ``bytes`` (the stream parser's case)."""
    return decode_host_payload(unframe(raw), raw=raw)
