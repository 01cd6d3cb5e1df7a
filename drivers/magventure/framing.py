"""MagPro frame layout and checksum — pure.

A frame is ``FE len payload crc FF``: ``len`` counts the payload (one ID byte plus data), the
CRC-8/MAXIM covers the payload only. Facts: ``shared/reference/magventure.md`` §2.

This module knows nothing about message meanings; ``commands`` and ``messages`` build payloads
and hand their decoder tables to ``decode_payload``, ``parser`` finds frames in a byte stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import TypeVar

from tmsctl.core.errors import ChecksumError, InvalidArgument, ProtocolError

_E = TypeVar("_E", bound=IntEnum)
_Decoded = TypeVar("_Decoded")

START = 0xFE
END = 0xFF
OVERHEAD = 4  # start, length, CRC, end

# No source shows a payload longer than 15 bytes (long status); the counters answer (ID 12) is at
# least 14 and its full length is unknown. The bound lets a stray 0xFE followed by a large
# "length" be rejected at once instead of holding back the real frames behind it.
MAX_PAYLOAD_LENGTH = 32


def _crc8_maxim_table() -> tuple[int, ...]:
    # Reflected form of x^8 + x^5 + x^4 + 1: shift right, XOR 0x8C when a one falls out.
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc8_maxim_table()


def crc8_maxim(data: bytes) -> int:
    """CRC-8/MAXIM (Dallas 1-Wire): init 0, reflected in and out, no final XOR. Check: 0xA1."""
    crc = 0
    for byte in data:
        crc = _CRC_TABLE[crc ^ byte]
    return crc


def hexdump(raw: bytes) -> str:
    """Bytes the way the reference and a serial sniffer write them: ``FE 01 00 00 FF``."""
    return raw.hex(" ").upper() if raw else "(nothing)"


def frame(payload: bytes) -> bytes:
    """Wrap an ID+data payload in start, length, CRC and end bytes."""
    if not 1 <= len(payload) <= MAX_PAYLOAD_LENGTH:
        raise InvalidArgument(
            f"a MagPro payload is 1 to {MAX_PAYLOAD_LENGTH} bytes (ID and data), got {len(payload)}",
            hint="this is a bug in the caller building the payload",
        )
    return bytes((START, len(payload))) + bytes(payload) + bytes((crc8_maxim(payload), END))


def unframe(raw: bytes) -> bytes:
    """Check one complete frame and return its payload (ID byte first).

    Raises ``ChecksumError`` for a CRC mismatch and ``ProtocolError`` for any other framing fault,
    each with ``raw`` attached.
    """
    raw = bytes(raw)
    if len(raw) < OVERHEAD + 1:
        raise ProtocolError(
            f"a MagPro frame is at least {OVERHEAD + 1} bytes, got {len(raw)}: {hexdump(raw)}", raw=raw
        )
    if raw[0] != START:
        raise ProtocolError(
            f"a MagPro frame starts with FE, got {raw[0]:02X}: {hexdump(raw)}", raw=raw
        )
    length = raw[1]
    if not 1 <= length <= MAX_PAYLOAD_LENGTH:
        raise ProtocolError(
            f"MagPro length byte must be 1..{MAX_PAYLOAD_LENGTH}, got {length}: {hexdump(raw)}", raw=raw
        )
    if len(raw) != length + OVERHEAD:
        raise ProtocolError(
            f"MagPro length byte {length} means a {length + OVERHEAD}-byte frame, got {len(raw)} bytes: "
            f"{hexdump(raw)}",
            raw=raw,
        )
    payload = raw[2 : 2 + length]
    received_crc = raw[2 + length]
    expected_crc = crc8_maxim(payload)
    if received_crc != expected_crc:
        raise ChecksumError(
            f"MagPro CRC mismatch: payload {hexdump(payload)} needs CRC {expected_crc:02X}, frame carries "
            f"{received_crc:02X}: {hexdump(raw)}",
            raw=raw,
        )
    if raw[-1] != END:
        raise ProtocolError(
            f"a MagPro frame ends with FF, got {raw[-1]:02X}: {hexdump(raw)}", raw=raw
        )
    return payload


# --- fixed-width fields (big-endian on the wire unless a caller says otherwise) -----------------


def require_int(name: str, value: object, low: int, high: int, *, unit: str = "") -> int:
    """Return ``value`` if it is an int within ``[low, high]``; else raise ``InvalidArgument``."""
    suffix = f" {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be an integer{suffix}, got {value!r}")
    if not low <= value <= high:
        raise InvalidArgument(
            f"{name} must be within {low}..{high}{suffix}, got {value}",
            hint="tmsctl refuses out-of-range values instead of clamping them",
        )
    return value


def require_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be True or False, got {value!r}")
    return value


def u16_be(value: int) -> bytes:
    return value.to_bytes(2, "big")


def s16_be(value: int) -> bytes:
    return value.to_bytes(2, "big", signed=True)


def u32_be(value: int) -> bytes:
    return value.to_bytes(4, "big")


U8_MAX = 0xFF
U16_MAX = 0xFFFF
S16_MIN = -0x8000
S16_MAX = 0x7FFF
U32_MAX = 0xFFFF_FFFF


# --- decoding either direction (errors carry the raw bytes) ---------------------------------------


def read_u16_be(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "big")


def read_s16_be(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "big", signed=True)


def decode_flag(name: str, value: int, raw: bytes) -> bool:
    """A 00/01 byte as a bool; any other value is a ``ProtocolError``."""
    if value not in (0, 1):
        raise ProtocolError(f"{name} byte must be 00 or 01, got {value:02X}: {hexdump(raw)}", raw=raw)
    return bool(value)


def decode_code(enum: type[_E], name: str, value: int, raw: bytes) -> _E:
    """A byte as a member of ``enum``; an undefined code is a ``ProtocolError``."""
    try:
        return enum(value)
    except ValueError:
        raise ProtocolError(f"unknown {name} code {value}: {hexdump(raw)}", raw=raw) from None


def decode_payload(
    payload: bytes,
    raw: bytes | None,
    decoders: Mapping[int, Callable[[bytes, bytes], _Decoded]],
    unknown: Callable[[int, bytes], _Decoded],
    *,
    sender: str,
    noun: str,
) -> _Decoded:
    """Payload (ID + data) → the value ``decoders[ID]`` makes of the data, or ``unknown(ID, data)``.

    ``sender`` and ``noun`` word the errors ("host" "command", "device" "message"). Malformed or
    out-of-range → ``ProtocolError`` with ``raw`` (the payload itself when ``raw`` is ``None``).
    """
    payload = bytes(payload)
    raw = payload if raw is None else bytes(raw)
    if not payload:
        raise ProtocolError(f"empty MagPro payload: a payload starts with its {noun} ID", raw=raw)
    decoder = decoders.get(payload[0])
    try:
        if decoder is None:
            return unknown(payload[0], payload[1:])
        return decoder(payload[1:], raw)
    except InvalidArgument as exc:
        raise ProtocolError(
            f"{sender} {noun} {hexdump(raw)} carries a value out of range: {exc.message}", raw=raw
        ) from exc
