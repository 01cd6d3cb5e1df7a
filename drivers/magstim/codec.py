"""Magstim 200² / BiStim² / Rapid² wire codec — pure, no I/O.

Facts: ``shared/reference/magstim.md`` (TDb086, TDb087). A host frame is one command character,
one or more data characters and a checksum; a reply is the echoed command character, the
instrument status byte, command-specific data and a checksum. The checksum is the inverted low
byte of the sum of every byte before it.

Numeric fields are fixed-width zero-padded ASCII decimal; this module deals only in the scaled
integers that travel on the wire (percent, tenths of a hertz, tenths of a second, milliseconds,
tenths of a degree). Converting physical units to these integers (and refusing off-grid values)
is the driver's job.

Both directions live here because the simulator speaks the device side with the same codec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from tmsctl.core.errors import ChecksumError, DeviceRefused, EchoMismatch, InvalidArgument, ProtocolError
from tmsctl.drivers.base import SIMULATOR_IDENTITY_PREFIX

Version = tuple[int, ...]

PAD = b"@"
UNKNOWN_COMMAND = b"?"
UNLOCK_CODE_LENGTH = 16

# Command characters (host -> device).
SET_POWER_A = ord("@")
SET_POWER_B = ord("A")
SET_ISI = ord("C")
SET_MODE = ord("E")
REMOTE_ON = ord("Q")
REMOTE_OFF = ord("R")
HIGH_RES_ON = ord("Y")
HIGH_RES_OFF = ord("Z")
GET_PARAMETERS = ord("J")
GET_COIL_TEMPERATURE = ord("F")
GET_SYSTEM_MODE = ord("X")
SET_FREQUENCY = ord("B")
SET_PULSES = ord("D")
SET_DURATION = ord("[")
ENHANCED_ON = ord("^")
ENHANCED_OFF = ord("_")
IGNORE_COIL_INTERLOCK = ord("b")
GET_VERSION = ord("N")
GET_RAPID_PARAMETERS = ord("\\")
GET_ERROR_CODE = ord("I")
GET_SYSTEM_STATUS = ord("x")
SET_CHARGE_DELAY = ord("n")
GET_CHARGE_DELAY = ord("o")


class Model(Enum):
    M200 = "200"
    BISTIM = "bistim"
    RAPID2 = "rapid2"

    # Members are singletons, so identity hashing is exact, and in C: a model is part of the key
    # of the cached codec lookups that run on every exchange.
    __hash__ = object.__hash__


class Mode(Enum):
    """The data byte of ``E`` (TDb086 §6): bit 0 stop, bit 1 arm, bit 3 trigger, bit 6 set."""

    DISARM = ord("A")
    ARM = ord("B")
    FIRE = ord("H")


_COMMON = {SET_POWER_A, SET_MODE, REMOTE_ON, REMOTE_OFF, GET_COIL_TEMPERATURE}
COMMANDS_BY_MODEL: dict[Model, frozenset[int]] = {
    Model.M200: frozenset(_COMMON | {GET_PARAMETERS}),
    Model.BISTIM: frozenset(
        _COMMON | {GET_PARAMETERS, SET_POWER_B, SET_ISI, HIGH_RES_ON, HIGH_RES_OFF, GET_SYSTEM_MODE}
    ),
    Model.RAPID2: frozenset(
        _COMMON
        | {
            SET_FREQUENCY,
            SET_PULSES,
            SET_DURATION,
            ENHANCED_ON,
            ENHANCED_OFF,
            IGNORE_COIL_INTERLOCK,
            GET_VERSION,
            GET_RAPID_PARAMETERS,
            GET_ERROR_CODE,
            GET_SYSTEM_STATUS,
            SET_CHARGE_DELAY,
            GET_CHARGE_DELAY,
        }
    ),
}

# Commands whose Rapid² reply carries the Rapid status byte after the instrument status.
_RAPID_STATUS_REPLIES = {
    SET_FREQUENCY,
    SET_PULSES,
    SET_DURATION,
    ENHANCED_ON,
    ENHANCED_OFF,
    GET_RAPID_PARAMETERS,
    GET_SYSTEM_STATUS,
}


def checksum(data: bytes) -> int:
    """Inverted low byte of the sum of ``data`` (TDb086 §3.1)."""
    return ~sum(data) & 0xFF


def with_checksum(data: bytes) -> bytes:
    return bytes(data) + bytes([checksum(data)])


def show(raw: bytes) -> str:
    """Bytes as a technician reads them in a terminal: printable ASCII, others as \\xNN."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02X}" for b in raw)


SECRET_MASK = b"*"
_REMOTE_ON_PAD_FRAME = with_checksum(bytes([REMOTE_ON]) + PAD)


def redact_host_frame(frame: bytes) -> bytes:
    """``frame`` (bytes the host sends) with every byte that carries a secret replaced by ``*``.

    Only ``Q`` carries one: on a Rapid² from software 9 its 16 data bytes are the unit's unlock
    code, and its checksum is computed from them (magstim.md §12). Anything after a ``Q`` other
    than the bare ``@`` pad is masked — a mistyped or truncated code too — and the length stays,
    so a masked trace still lines up. Every path that shows, logs, stores or traces a host frame
    goes through here (``show_host_frame``, the transport's taps and its ``+spy`` trace).
    """
    frame = bytes(frame)
    if frame[:1] != bytes([REMOTE_ON]) or frame == _REMOTE_ON_PAD_FRAME:
        return frame
    return frame[:1] + SECRET_MASK * (len(frame) - 1)


def show_host_frame(frame: bytes) -> str:
    """A host frame as text for messages and logs, its secrets masked (``redact_host_frame``)."""
    return show(redact_host_frame(frame))


# ---------------------------------------------------------------------------------------------
# Status bytes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstrumentStatus:
    """Instrument status byte (TDb086 §5, TDb087 §7)."""

    raw: int

    standby = property(lambda self: bool(self.raw & 0x01))
    armed_bit = property(lambda self: bool(self.raw & 0x02))
    ready = property(lambda self: bool(self.raw & 0x04))
    coil_present = property(lambda self: bool(self.raw & 0x08))
    replace_coil = property(lambda self: bool(self.raw & 0x10))
    error_present = property(lambda self: bool(self.raw & 0x20))
    fatal_error = property(lambda self: bool(self.raw & 0x40))
    remote_control = property(lambda self: bool(self.raw & 0x80))

    @property
    def armed(self) -> bool:
        # A real BiStim reports "ready" with the armed bit clear once charged (CBOUL capture
        # 0x8C), so armed means either bit.
        return bool(self.armed_bit or self.ready)

    @classmethod
    def build(
        cls,
        *,
        standby: bool = False,
        armed: bool = False,
        ready: bool = False,
        coil_present: bool = False,
        replace_coil: bool = False,
        error_present: bool = False,
        fatal_error: bool = False,
        remote_control: bool = False,
    ) -> InstrumentStatus:
        return cls(
            bool(standby) | bool(armed) << 1 | bool(ready) << 2 | bool(coil_present) << 3
            | bool(replace_coil) << 4 | bool(error_present) << 5 | bool(fatal_error) << 6
            | bool(remote_control) << 7
        )

    def describe(self) -> str:
        names = [
            name
            for name, on in (
                ("remote", self.remote_control),
                ("standby", self.standby),
                ("armed", self.armed_bit),
                ("ready", self.ready),
                ("coil", self.coil_present),
                ("replace-coil", self.replace_coil),
                ("fatal-error" if self.fatal_error else "error", self.error_present),
            )
            if on
        ]
        return f"0x{self.raw:02X} ({', '.join(names) or 'nothing set'})"


@dataclass(frozen=True)
class RapidStatus:
    """Rapid status byte (TDb087 §8)."""

    raw: int

    enhanced_power = property(lambda self: bool(self.raw & 0x01))
    train_running = property(lambda self: bool(self.raw & 0x02))
    wait = property(lambda self: bool(self.raw & 0x04))
    single_pulse_mode = property(lambda self: bool(self.raw & 0x08))
    hv_psu_connected = property(lambda self: bool(self.raw & 0x10))
    coil_ready = property(lambda self: bool(self.raw & 0x20))
    theta_psu_detected = property(lambda self: bool(self.raw & 0x40))
    modified_coil_algorithm = property(lambda self: bool(self.raw & 0x80))

    @classmethod
    def build(
        cls,
        *,
        enhanced_power: bool = False,
        train_running: bool = False,
        wait: bool = False,
        single_pulse_mode: bool = False,
        hv_psu_connected: bool = False,
        coil_ready: bool = False,
        theta_psu_detected: bool = False,
        modified_coil_algorithm: bool = False,
    ) -> RapidStatus:
        return cls(
            bool(enhanced_power) | bool(train_running) << 1 | bool(wait) << 2 | bool(single_pulse_mode) << 3
            | bool(hv_psu_connected) << 4 | bool(coil_ready) << 5 | bool(theta_psu_detected) << 6
            | bool(modified_coil_algorithm) << 7
        )


@dataclass(frozen=True)
class ExtendedStatus:
    """16-bit extended status word (TDb087 §10), sent MSB first then LSB."""

    raw: int

    plus1_module_detected = property(lambda self: bool(self.raw & 0x0001))
    special_trigger_mode = property(lambda self: bool(self.raw & 0x0002))
    charge_delay_set = property(lambda self: bool(self.raw & 0x0004))  # U: MagPy/MAGIC naming


# ---------------------------------------------------------------------------------------------
# Reply payloads
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameters:
    """``J`` reply (200² / BiStim²). A 200² sends zeros for power B and the ISI."""

    power_a_pct: int
    power_b_pct: int
    isi_raw: int  # whole ms in low-resolution mode, tenths of ms in high-resolution mode


@dataclass(frozen=True)
class CoilTemperature:
    coil1_decidegc: int
    coil2_decidegc: int

    @property
    def hottest_c(self) -> float:
        return max(self.coil1_decidegc, self.coil2_decidegc) / 10


@dataclass(frozen=True)
class SystemMode:
    """``X`` reply (BiStim²): '0' single, '1'..'4' master modes, 'Q'..'T' slave modes."""

    mode: str


@dataclass(frozen=True)
class RapidParameters:
    """``\\`` reply (Rapid²)."""

    power_pct: int
    frequency_dhz: int  # tenths of a hertz
    pulses: int
    duration_ds: int  # tenths of a second
    wait_ds: int  # tenths of a second


@dataclass(frozen=True)
class ErrorCode:
    source: str  # 'U' user interface, 'C' coil, 'E' system
    code: int


@dataclass(frozen=True)
class ChargeDelay:
    delay_ms: int


@dataclass(frozen=True)
class SoftwareVersion:
    text: str
    version: Version

    @property
    def from_simulator(self) -> bool:
        """A served simulator answers ``SIM-V9.0``; a real Rapid² answers ``V9.0`` (TDb087 §6.11)."""
        return self.text.startswith(SIMULATOR_IDENTITY_PREFIX)


Payload = (
    None
    | Parameters
    | CoilTemperature
    | SystemMode
    | RapidParameters
    | ErrorCode
    | ExtendedStatus
    | ChargeDelay
    | SoftwareVersion
)


@dataclass(frozen=True)
class Reply:
    command: int
    status: InstrumentStatus | None  # None only for the version reply
    rapid_status: RapidStatus | None = None
    payload: Payload = None
    raw: bytes = b""


# ---------------------------------------------------------------------------------------------
# Field widths that depend on the Rapid² software version
# ---------------------------------------------------------------------------------------------


def _major(version: Version | None) -> int:
    # Unknown version: assume the oldest layout; the driver reads the version before relying on it.
    return version[0] if version else 0


def pulses_digits(version: Version | None) -> int:
    return 5 if _major(version) >= 9 else 4


def duration_digits(version: Version | None) -> int:
    return 4 if _major(version) >= 9 else 3


def wait_digits(version: Version | None) -> int:
    return 4 if _major(version) >= 7 else 3


def charge_delay_digits(version: Version | None) -> int:
    return 5 if _major(version) >= 10 else 4


def uses_unlock_code(version: Version | None) -> bool:
    return _major(version) >= 9


def digits(value: int, width: int, what: str) -> bytes:
    """Fixed-width zero-padded ASCII decimal, refusing values that do not fit."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{what} must be a whole number, got {value!r}")
    if value < 0 or value >= 10**width:
        raise InvalidArgument(
            f"{what} = {value} does not fit the {width}-digit field (0..{10**width - 1})"
        )
    return str(value).zfill(width).encode("ascii")


# ---------------------------------------------------------------------------------------------
# Host -> device
# ---------------------------------------------------------------------------------------------


def encode(command: int, data: bytes = PAD) -> bytes:
    """A complete host frame: command character, data, checksum."""
    if not data:
        raise InvalidArgument("a Magstim command needs at least one data byte (use the '@' pad)")
    return with_checksum(bytes([command]) + data)


def encode_set_power(power_pct: int, *, output: str = "A") -> bytes:
    if output not in ("A", "B"):
        raise InvalidArgument(f"output must be 'A' or 'B', got {output!r}")
    if not isinstance(power_pct, int) or not 0 <= power_pct <= 110:
        raise InvalidArgument(f"power must be a whole percentage 0..110, got {power_pct!r}")
    return encode(SET_POWER_A if output == "A" else SET_POWER_B, digits(power_pct, 3, "power"))


def encode_mode(mode: Mode) -> bytes:
    return encode(SET_MODE, bytes([mode.value]))


def encode_remote_on(unlock_code: bytes | None = None) -> bytes:
    if unlock_code is None:
        return encode(REMOTE_ON)
    if len(unlock_code) != UNLOCK_CODE_LENGTH:
        raise InvalidArgument(
            f"a Rapid² unlock code is {UNLOCK_CODE_LENGTH} bytes (4 chars, '-', 8 chars, '-', 2 check "
            f"bytes); got {len(unlock_code)}",
            hint="copy the code exactly as Magstim issued it, hyphens included",
        )
    return encode(REMOTE_ON, bytes(unlock_code))


def encode_isi(isi_raw: int) -> bytes:
    return encode(SET_ISI, digits(isi_raw, 3, "inter-pulse interval"))


def encode_frequency(frequency_dhz: int) -> bytes:
    return encode(SET_FREQUENCY, digits(frequency_dhz, 4, "frequency (0.1 Hz units)"))


def encode_pulses(pulses: int, version: Version | None) -> bytes:
    return encode(SET_PULSES, digits(pulses, pulses_digits(version), "pulses per train"))


def encode_duration(duration_ds: int, version: Version | None) -> bytes:
    return encode(SET_DURATION, digits(duration_ds, duration_digits(version), "train duration (0.1 s units)"))


def encode_charge_delay(delay_ms: int, version: Version | None) -> bytes:
    return encode(SET_CHARGE_DELAY, digits(delay_ms, charge_delay_digits(version), "charge delay (ms)"))


@lru_cache(maxsize=64)  # the keep-alive frame is sent twice a second all session
def encode_query(command: int) -> bytes:
    """Commands that carry only the '@' pad."""
    if command == GET_VERSION:
        return encode(GET_VERSION, b"D")  # 'D' selects the base unit
    return encode(command)


# ---------------------------------------------------------------------------------------------
# Device -> host: reply lengths and framing
# ---------------------------------------------------------------------------------------------


def reply_length(command: int, version: Version | None = None, model: Model = Model.RAPID2) -> int | None:
    """Length in bytes of a successful reply to ``command``; None for the variable version reply."""
    if command == GET_VERSION:
        return None
    if command == GET_PARAMETERS:
        return 12
    if command == GET_COIL_TEMPERATURE:
        return 9
    if command == GET_SYSTEM_MODE:
        return 4
    if command == GET_ERROR_CODE:
        return 6
    if command == GET_SYSTEM_STATUS:
        return 6
    if command == GET_RAPID_PARAMETERS:
        major = _major(version)
        return 24 if major >= 9 else 22 if major >= 7 else 21
    if command == SET_CHARGE_DELAY:
        return 6 if _major(version) >= 10 else 4
    if command == GET_CHARGE_DELAY:
        return 3 + charge_delay_digits(version)
    if model is Model.RAPID2 and command in _RAPID_STATUS_REPLIES:
        return 4
    return 3


def bytes_needed(command: int, received: bytes, version: Version | None = None, model: Model = Model.RAPID2) -> int:
    """How many more bytes complete the reply to ``command`` given the bytes received so far.

    Handles every reply shape (TDb086 §3.3 / TDb087 §5.3): a lone ``?`` for an unknown command,
    ``cmd ? ck`` for bad data, ``cmd S ck`` for a state conflict, the NUL-terminated version
    text, and the fixed-length normal replies. Returns 0 when the reply is complete.
    """
    n = len(received)
    if n == 0:
        return 1
    if received[0:1] == UNKNOWN_COMMAND:
        return 0
    if command == GET_VERSION:
        terminator = received.find(b"\x00", 1)
        if terminator < 0:
            return 1
        return max(0, terminator + 2 - n)
    if n == 1:
        return 2  # every reply other than a lone '?' has at least echo, status/marker, checksum
    if received[1:2] in (b"?", b"S"):
        return max(0, 3 - n)
    expected = reply_length(command, version, model)
    assert expected is not None
    return max(0, expected - n)


@lru_cache(maxsize=256)
def reply_reader(command: int, version: Version | None = None, model: Model = Model.RAPID2) -> Callable[[bytes], int]:
    """``bytes_needed`` for one command, with the command's fixed reply length looked up once.

    The function a transport calls on every read of the reply; ``bytes_needed(command, got, ...)``
    gives the same answer for every prefix (a property test holds them together).
    """
    if command == GET_VERSION:
        return lambda got: bytes_needed(command, got, version, model)
    expected = reply_length(command, version, model)
    assert expected is not None
    unknown, refusals = UNKNOWN_COMMAND[0], (ord("?"), ord("S"))

    def needed(got: bytes) -> int:
        n = len(got)
        if n == 0:
            return 1
        if got[0] == unknown:
            return 0
        if n == 1:
            return 2
        if got[1] in refusals:
            return max(0, 3 - n)
        return max(0, expected - n)

    return needed


# ---------------------------------------------------------------------------------------------
# Device -> host: decoding
# ---------------------------------------------------------------------------------------------


def _number(raw: bytes, start: int, width: int, what: str) -> int:
    field = raw[start : start + width]
    if len(field) != width or not field.isdigit():
        raise ProtocolError(f"expected {width} ASCII digits for {what}, got {show(field)!r}", raw=raw)
    return int(field)


def parse_version(text: str) -> Version:
    """'V9.0' -> (9, 0); accepts an optional leading letter and 2 or 3 numeric groups, after a
    simulator's ``SIM-`` mark."""
    text = text.removeprefix(SIMULATOR_IDENTITY_PREFIX)
    body = text[1:] if text[:1].isalpha() else text
    parts = body.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ProtocolError(f"unreadable software version {text!r} (expected like 'V9.0')")
    return tuple(int(p) for p in parts)


def decode_reply(command: int, raw: bytes, version: Version | None = None, model: Model = Model.RAPID2) -> Reply:
    """Decode a complete reply to ``command``.

    Raises DeviceRefused for the device's own refusals, ChecksumError/EchoMismatch/ProtocolError
    for anything malformed. Never raises anything else.
    """
    return _decode_reply(command, bytes(raw), version, model)


# A pure function of immutable inputs with immutable results; keep-alive replies repeat the same
# few byte strings thousands of times a session, so their meaning is worked out once.
@lru_cache(maxsize=4096)
def _decode_reply(command: int, raw: bytes, version: Version | None, model: Model) -> Reply:
    sent = show(bytes([command])) if 0 <= command < 256 else repr(command)
    if raw == UNKNOWN_COMMAND:
        raise DeviceRefused(
            f"the stimulator does not know command {sent!r}", code="unknown_command", raw=raw,
            hint="this command is not supported by this model or software version",
        )
    if len(raw) < 2:
        raise ProtocolError(f"reply to {sent!r} too short: {show(raw)!r}", raw=raw)
    if raw[0] != command:
        raise EchoMismatch(
            f"reply to {sent!r} starts with {show(raw[:1])!r}: the reply belongs to another command",
            raw=raw,
        )
    if checksum(raw[:-1]) != raw[-1]:
        raise ChecksumError(
            f"reply to {sent!r} has checksum 0x{raw[-1]:02X}, expected 0x{checksum(raw[:-1]):02X}: "
            f"{show(raw)!r}",
            raw=raw,
        )
    if len(raw) == 3 and raw[1:2] == b"?":
        raise DeviceRefused(
            f"the stimulator rejected the data of command {sent!r} (bad data)", code="bad_data", raw=raw,
            hint="the value is out of range for this model or software version",
        )
    if len(raw) == 3 and raw[1:2] == b"S":
        raise DeviceRefused(
            f"the stimulator refused command {sent!r}: it conflicts with the current state",
            code="state_conflict", raw=raw,
            hint="for example arming an armed unit, or a control command without remote control",
        )
    if command == GET_VERSION:
        if raw[-2] != 0:
            raise ProtocolError(f"version reply not NUL-terminated: {show(raw)!r}", raw=raw)
        try:
            text = raw[1:-2].decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(f"version reply is not ASCII: {show(raw)!r}", raw=raw) from None
        return Reply(command, None, payload=SoftwareVersion(text, parse_version(text)), raw=raw)

    expected = reply_length(command, version, model)
    if len(raw) != expected:
        raise ProtocolError(f"reply to {sent!r} has {len(raw)} bytes, expected {expected}: {show(raw)!r}", raw=raw)
    status = InstrumentStatus(raw[1])
    rapid: RapidStatus | None = None
    payload: Payload = None
    if command == GET_PARAMETERS:
        payload = Parameters(
            _number(raw, 2, 3, "power A"), _number(raw, 5, 3, "power B"), _number(raw, 8, 3, "inter-pulse interval")
        )
    elif command == GET_COIL_TEMPERATURE:
        payload = CoilTemperature(_number(raw, 2, 3, "coil 1 temperature"), _number(raw, 5, 3, "coil 2 temperature"))
    elif command == GET_SYSTEM_MODE:
        payload = SystemMode(chr(raw[2]))
    elif command == GET_ERROR_CODE:
        source = chr(raw[2])
        if source not in "UCE":
            raise ProtocolError(f"unknown error source {show(raw[2:3])!r} in {show(raw)!r}", raw=raw)
        payload = ErrorCode(source, _number(raw, 3, 2, "error code"))
    elif command == GET_CHARGE_DELAY:
        payload = ChargeDelay(_number(raw, 2, charge_delay_digits(version), "charge delay"))
    elif (model is Model.RAPID2 and command in _RAPID_STATUS_REPLIES) or (
        command == SET_CHARGE_DELAY and expected in (4, 6)
    ):
        rapid = RapidStatus(raw[2])
        if command == GET_SYSTEM_STATUS or (command == SET_CHARGE_DELAY and expected == 6):
            payload = ExtendedStatus((raw[3] << 8) | raw[4])
        elif command == GET_RAPID_PARAMETERS:
            pd, dd, wd = pulses_digits(version), duration_digits(version), wait_digits(version)
            at = 3
            power = _number(raw, at, 3, "power")
            at += 3
            frequency = _number(raw, at, 4, "frequency")
            at += 4
            pulses = _number(raw, at, pd, "pulses")
            at += pd
            duration = _number(raw, at, dd, "duration")
            at += dd
            wait = _number(raw, at, wd, "wait")
            payload = RapidParameters(power, frequency, pulses, duration, wait)
    return Reply(command, status, rapid, payload, raw)


# ---------------------------------------------------------------------------------------------
# Device side (used by the simulator): parse host frames, build replies
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostFrame:
    command: int
    data: bytes
    checksum_ok: bool
    raw: bytes


def host_frame_length(command: int, model: Model, version: Version | None, first_data: int | None = None) -> int | None:
    """Length of a host frame starting with ``command`` on ``model``; None if the command is unknown.

    For ``Q`` on a Rapid² v9+ the length depends on whether the host sent the '@' pad (3 bytes)
    or a 16-byte unlock code (18 bytes); ``first_data`` is the first data byte when known.
    """
    if command not in COMMANDS_BY_MODEL[model]:
        return None
    if command == REMOTE_ON and model is Model.RAPID2 and uses_unlock_code(version) and first_data != PAD[0]:
        return 1 + UNLOCK_CODE_LENGTH + 1
    return 1 + _data_lengths(_major(version)).get(command, 1) + 1


@lru_cache(maxsize=32)
def _data_lengths(major: int) -> dict[int, int]:
    version = (major,)
    return {
        SET_POWER_A: 3,
        SET_POWER_B: 3,
        SET_ISI: 3,
        SET_FREQUENCY: 4,
        SET_PULSES: pulses_digits(version),
        SET_DURATION: duration_digits(version),
        SET_CHARGE_DELAY: charge_delay_digits(version),
    }


@lru_cache(maxsize=4096)
def parse_host_frame(buffer: bytes, model: Model, version: Version | None) -> tuple[HostFrame | None, int]:
    """Take one host frame off the front of ``buffer``.

    Returns ``(frame, consumed)``. ``(None, 0)`` means more bytes are needed; ``(None, 1)`` means
    the first byte is not a command this model knows (the device answers a lone ``?``).
    """
    if not buffer:
        return None, 0
    command = buffer[0]
    length = host_frame_length(command, model, version, buffer[1] if len(buffer) > 1 else None)
    if length is None:
        return None, 1
    if command == REMOTE_ON and len(buffer) < 2:
        return None, 0
    if len(buffer) < length:
        return None, 0
    raw = bytes(buffer[:length])
    return HostFrame(command, raw[1:-1], checksum(raw[:-1]) == raw[-1], raw), length


def encode_reply(
    command: int, status: InstrumentStatus, data: bytes = b"", rapid_status: RapidStatus | None = None
) -> bytes:
    return _encoded_reply(command, status.raw, data, None if rapid_status is None else rapid_status.raw)


@lru_cache(maxsize=1024)  # a simulated unit answers the same few keep-alives all session
def _encoded_reply(command: int, status: int, data: bytes, rapid_status: int | None) -> bytes:
    body = bytes((command, status) if rapid_status is None else (command, status, rapid_status)) + data
    return body + bytes((checksum(body),))


def encode_refusal(command: int, code: str) -> bytes:
    if code == "unknown_command":
        return UNKNOWN_COMMAND
    marker = {"bad_data": b"?", "state_conflict": b"S"}[code]
    return with_checksum(bytes([command]) + marker)


def encode_version_reply(text: str) -> bytes:
    return with_checksum(bytes([GET_VERSION]) + text.encode("ascii") + b"\x00")


def encode_parameters(p: Parameters) -> bytes:
    return digits(p.power_a_pct, 3, "power A") + digits(p.power_b_pct, 3, "power B") + digits(p.isi_raw, 3, "ISI")


def encode_coil_temperature(t: CoilTemperature) -> bytes:
    return digits(t.coil1_decidegc, 3, "coil 1 temperature") + digits(t.coil2_decidegc, 3, "coil 2 temperature")


def encode_rapid_parameters(p: RapidParameters, version: Version | None) -> bytes:
    return (
        digits(p.power_pct, 3, "power")
        + digits(p.frequency_dhz, 4, "frequency")
        + digits(p.pulses, pulses_digits(version), "pulses")
        + digits(p.duration_ds, duration_digits(version), "duration")
        + digits(p.wait_ds, wait_digits(version), "wait")
    )


def encode_extended_status(e: ExtendedStatus) -> bytes:
    return bytes([(e.raw >> 8) & 0xFF, e.raw & 0xFF])


def encode_error_code(e: ErrorCode) -> bytes:
    return e.source.encode("ascii") + digits(e.code, 2, "error code")


def encode_charge_delay_value(delay_ms: int, version: Version | None) -> bytes:
    return digits(delay_ms, charge_delay_digits(version), "charge delay")
