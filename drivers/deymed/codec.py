"""Deymed DuoMAG wire codec — pure, no I/O, no threads, no clock.

Facts: ``shared/reference/deymed.md``. The single import point for drivers, simulators, tests:

* ``commands`` — doubled raw-byte host commands, their parser (for the simulator), and what can
  confirm them;
* ``delays``   — the steps × step-size delay encoding;
* ``status``   — the 0xFF-separated status stream: record decoder/encoder and stream parser.

**No replies.** The unit answers no command (``REPLIES_TO_COMMANDS = False``): settings can only
be confirmed by reading them back from the status stream (``status_confirms``), and a pulse
cannot be confirmed at all (``Fire.CONFIRMATION is UNCONFIRMED``). The spec accordingly lacks
``Capability.CONFIRMED_REPLIES``.

Serial settings: 1 000 000 baud, 8 data bits, no parity, **2 stop bits** (all sources agree).
"""

from __future__ import annotations

from .commands import (
    FIRE_BYTE,
    REPLIES_TO_COMMANDS,
    UNCONFIRMED,
    Confirmation,
    DuoMagCommandParser,
    Fire,
    HostCommand,
    SetIntensity,
    SetRechargeDelay,
    SetTtlOutDelay,
    decode_commands,
    encode_command,
    status_confirms,
)
from .delays import MAX_DELAY_US, MAX_STEPS, DelayCode, DelayStep, delay_code_for
from .status import (
    COIL_TYPES,
    FAULT_FLAGS,
    SYNC,
    DuoMagStatus,
    DuoMagStatusParser,
    decode_status_record,
    encode_status_record,
    encode_status_stream,
)

BAUD_RATE = 1_000_000
STOP_BITS = 2

__all__ = [
    "BAUD_RATE",
    "COIL_TYPES",
    "FAULT_FLAGS",
    "FIRE_BYTE",
    "MAX_DELAY_US",
    "MAX_STEPS",
    "REPLIES_TO_COMMANDS",
    "STOP_BITS",
    "SYNC",
    "UNCONFIRMED",
    "Confirmation",
    "DelayCode",
    "DelayStep",
    "DuoMagCommandParser",
    "DuoMagStatus",
    "DuoMagStatusParser",
    "Fire",
    "HostCommand",
    "SetIntensity",
    "SetRechargeDelay",
    "SetTtlOutDelay",
    "decode_commands",
    "decode_status_record",
    "delay_code_for",
    "encode_command",
    "encode_status_record",
    "encode_status_stream",
    "status_confirms",
]
