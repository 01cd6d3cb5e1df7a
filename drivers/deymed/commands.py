"""DuoMAG host → device commands: doubled raw bytes — pure.

**The DuoMAG never answers a command.** No acknowledgement, no echo, no error byte: the only
thing the unit sends is its status stream (``status``). Each command therefore states how far it
can be confirmed (``CONFIRMATION``):

* ``Confirmation.BY_STATUS`` — a later status record shows the value (intensity, delays); the
  driver must read it back and compare (``status_confirms``);
* ``Confirmation.UNCONFIRMED`` — nothing the unit sends shows it happened (``Fire``); the
  controller must record such an action as unconfirmed.

Byte ranges are disjoint: intensity 00–64, fire 79, recharge delay 80–BF, TTL-out delay C0–FF.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from tmsctl.core.errors import InvalidArgument, ProtocolError

from .delays import DelayCode, code_from_bytes, lower_byte, upper_byte
from .status import DuoMagStatus

MAX_INTENSITY_PCT_MSO = 100
FIRE_BYTE = 0x79

# 3-bit prefixes of the delay bytes.
_RECHARGE_UPPER = 0b100
_RECHARGE_LOWER = 0b101
_TTL_UPPER = 0b110
_TTL_LOWER = 0b111


class Confirmation(Enum):
    BY_STATUS = "by_status"  # the status stream shows the new value: read back and compare
    UNCONFIRMED = "unconfirmed"  # nothing the unit sends shows it; record it as unconfirmed


UNCONFIRMED = Confirmation.UNCONFIRMED
REPLIES_TO_COMMANDS = False  # the unit sends no reply, acknowledgement or error for any command


def _hexdump(raw: bytes) -> str:
    return raw.hex(" ").upper() if raw else "(nothing)"


@dataclass(frozen=True, slots=True)
class SetIntensity:
    CONFIRMATION: ClassVar[Confirmation] = Confirmation.BY_STATUS
    intensity_pct_mso: int

    def __post_init__(self) -> None:
        value = self.intensity_pct_mso
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INTENSITY_PCT_MSO:
            raise InvalidArgument(
                f"DuoMAG intensity must be an integer 0..{MAX_INTENSITY_PCT_MSO} %MSO, got {value!r}",
                hint="tmsctl refuses out-of-range values instead of clamping them",
            )

    def encode(self) -> bytes:
        return bytes((self.intensity_pct_mso,)) * 2


@dataclass(frozen=True, slots=True)
class Fire:
    """One pulse. Unconfirmed: the status stream has no pulse counter."""

    CONFIRMATION: ClassVar[Confirmation] = Confirmation.UNCONFIRMED

    def encode(self) -> bytes:
        return bytes((FIRE_BYTE,)) * 2


def _delay_code(value: object) -> DelayCode:
    if not isinstance(value, DelayCode):
        raise InvalidArgument(f"delay must be a DelayCode (see delay_code_for), got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class SetRechargeDelay:
    """Time after a pulse before the unit recharges."""

    CONFIRMATION: ClassVar[Confirmation] = Confirmation.BY_STATUS
    delay: DelayCode

    def __post_init__(self) -> None:
        _delay_code(self.delay)

    def encode(self) -> bytes:
        upper = upper_byte(_RECHARGE_UPPER, self.delay)
        lower = lower_byte(_RECHARGE_LOWER, self.delay)
        return bytes((upper, upper, lower, lower))


@dataclass(frozen=True, slots=True)
class SetTtlOutDelay:
    """Delay of the TTL output pulse after the stimulus."""

    CONFIRMATION: ClassVar[Confirmation] = Confirmation.BY_STATUS
    delay: DelayCode

    def __post_init__(self) -> None:
        _delay_code(self.delay)

    def encode(self) -> bytes:
        upper = upper_byte(_TTL_UPPER, self.delay)
        lower = lower_byte(_TTL_LOWER, self.delay)
        return bytes((upper, upper, lower, lower))


HostCommand = SetIntensity | Fire | SetRechargeDelay | SetTtlOutDelay


def encode_command(command: HostCommand) -> bytes:
    """The bytes to write. Nothing will come back in reply; see ``Confirmation``."""
    return command.encode()


class DuoMagCommandParser:
    """Host → device byte stream → commands, for the simulator — sans-I/O.

    A command byte counts only when it arrives twice in a row; a delay is an upper pair followed
    by the matching lower pair. Bytes that do not fit are dropped and reported as
    ``ProtocolError`` via ``drain_rejects()``; results do not depend on how the stream was split.
    (What the real unit does with an undoubled byte is not documented.)
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._rejects: list[ProtocolError] = []

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)

    def drain_rejects(self) -> list[ProtocolError]:
        rejects, self._rejects = self._rejects, []
        return rejects

    def _reject(self, count: int, why: str) -> None:
        raw = bytes(self._buffer[:count])
        self._rejects.append(ProtocolError(f"DuoMAG command bytes {_hexdump(raw)} dropped: {why}", raw=raw))
        del self._buffer[:count]

    def feed(self, data: bytes) -> list[HostCommand]:
        self._buffer += data
        commands: list[HostCommand] = []
        buffer = self._buffer
        while len(buffer) >= 2:
            first = buffer[0]
            if buffer[1] != first:
                self._reject(1, "every command byte is sent twice")
                continue
            if first <= MAX_INTENSITY_PCT_MSO:
                commands.append(SetIntensity(first))
                del buffer[:2]
            elif first == FIRE_BYTE:
                commands.append(Fire())
                del buffer[:2]
            elif first >> 5 in (_RECHARGE_UPPER, _TTL_UPPER):
                if len(buffer) < 4:
                    break
                lower_prefix = _RECHARGE_LOWER if first >> 5 == _RECHARGE_UPPER else _TTL_LOWER
                lower = buffer[2]
                if buffer[3] != lower or lower >> 5 != lower_prefix:
                    self._reject(2, "a delay's upper pair must be followed by its lower pair")
                    continue
                code = code_from_bytes(first, lower)
                commands.append(
                    SetRechargeDelay(code) if lower_prefix == _RECHARGE_LOWER else SetTtlOutDelay(code)
                )
                del buffer[:4]
            elif first >> 5 in (_RECHARGE_LOWER, _TTL_LOWER):
                self._reject(2, "a delay's lower pair arrived without its upper pair")
            else:
                self._reject(2, "no DuoMAG command uses this byte")
        return commands


def decode_commands(raw: bytes) -> list[HostCommand]:
    """A complete host byte string → commands; any byte that does not fit raises ``ProtocolError``."""
    parser = DuoMagCommandParser()
    commands = parser.feed(raw)
    problems = parser.drain_rejects()
    if problems:
        raise ProtocolError(problems[0].message, raw=bytes(raw))
    if parser.pending:
        raise ProtocolError(
            f"DuoMAG command bytes end mid-command: {_hexdump(parser.pending)} left over", raw=bytes(raw)
        )
    return commands


def status_confirms(command: HostCommand, status: DuoMagStatus) -> bool | None:
    """Whether ``status`` shows ``command`` took effect.

    ``None`` when no status can show it (``Fire``): the action stays unconfirmed.
    """
    if not isinstance(status, DuoMagStatus):
        raise InvalidArgument(f"status must be a DuoMagStatus, got {status!r}")
    if isinstance(command, SetIntensity):
        return status.intensity_pct_mso == command.intensity_pct_mso
    if isinstance(command, SetRechargeDelay):
        return status.recharge_delay == command.delay
    if isinstance(command, SetTtlOutDelay):
        return status.ttl_out_delay == command.delay
    if isinstance(command, Fire):
        return None
    raise InvalidArgument(f"not a DuoMAG command: {command!r}")
