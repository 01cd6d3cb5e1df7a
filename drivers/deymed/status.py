"""DuoMAG status stream: records separated by 0xFF sync bytes — pure, sans-I/O.

Record layout (byte n is 1-based, bit 7 = MSB; ``shared/reference/deymed.md``, C: MAGIC,
TMS_gui): 1 TTL demand + intensity change, 2 intensity, 3–5 raw temperatures, 6 omitted pulses,
7–8 fault and state bits, 9 idle/charged, 10–11 delay steps, 12 delay step codes, 15 coil type
(newer models, whose records are longer than 13 bytes). Bits no source documents are ignored on
decoding and sent as zero by the encoder.

Every documented field fits in 7 bits except the raw temperatures and the omitted-pulse count,
which the encoder keeps below 0xFF so a record never contains the sync byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tmsctl.core.errors import InvalidArgument, ProtocolError

from .delays import DelayCode, DelayStep

SYNC = 0xFF
MIN_RECORD_LENGTH = 13
COIL_TYPE_RECORD_LENGTH = 15
# Drivers read 32 bytes and decode between two syncs, so a record is shorter than 31 bytes; a
# longer run without a sync byte means we are not looking at a status stream.
MAX_RECORD_LENGTH = 30
MAX_RAW_BYTE = 0xFE  # anything but the sync byte
MAX_INTENSITY_PCT_MSO = 100

COIL_TYPES: dict[int, str] = {
    1: "70BF",
    2: "70BF-COOL",
    3: "120BFV",
    4: "100R",
    5: "125R",
    6: "50BF",
    7: "50BFT",
}

# (byte index 0-based, bit) of each single-bit flag.
_FLAG_BITS: dict[str, tuple[int, int]] = {
    "ttl_trigger_demand": (0, 5),
    "power_overheat": (6, 6),
    "coil_disconnected": (6, 5),
    "voltage_hold_error": (6, 4),
    "voltage_recharge_error": (6, 3),
    "power_fan_seized": (7, 6),
    "coil_overheat": (7, 4),
    "resistor_overheat": (7, 3),
    "discharge_overheat": (7, 2),
    "coil_data_ok": (7, 1),
    "receiving_usb": (7, 0),
    "idle_time": (8, 2),
    "charged": (8, 0),
}

_RAW_BYTE_FIELDS = (
    "coil_temperature_raw",
    "resistor_temperature_raw",
    "discharge_temperature_raw",
    "omitted_pulses",
)

FAULT_FLAGS = (
    "power_overheat",
    "coil_disconnected",
    "voltage_hold_error",
    "voltage_recharge_error",
    "power_fan_seized",
    "coil_overheat",
    "resistor_overheat",
    "discharge_overheat",
)


def _hexdump(raw: bytes) -> str:
    return raw.hex(" ").upper() if raw else "(nothing)"


def _int_in(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be an integer {low}..{high}, got {value!r}")


@dataclass(frozen=True, slots=True)
class DuoMagStatus:
    """One decoded status record. Temperatures are raw ADC counts (units unspecified)."""

    ttl_trigger_demand: bool
    intensity_change_pct: int  # 5-bit two's complement: −16..15
    intensity_pct_mso: int
    coil_temperature_raw: int
    resistor_temperature_raw: int
    discharge_temperature_raw: int
    omitted_pulses: int
    power_overheat: bool
    coil_disconnected: bool
    voltage_hold_error: bool
    voltage_recharge_error: bool
    power_fan_seized: bool
    coil_overheat: bool
    resistor_overheat: bool
    discharge_overheat: bool
    coil_data_ok: bool
    receiving_usb: bool
    idle_time: bool
    charged: bool
    ttl_out_delay: DelayCode
    recharge_delay: DelayCode
    coil_type: int | None = None  # newer models only; None → a 13-byte record

    def __post_init__(self) -> None:
        for name in _FLAG_BITS:
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgument(f"{name} must be True or False, got {getattr(self, name)!r}")
        _int_in("intensity_change_pct", self.intensity_change_pct, -16, 15)
        _int_in("intensity_pct_mso", self.intensity_pct_mso, 0, MAX_INTENSITY_PCT_MSO)
        for name in _RAW_BYTE_FIELDS:
            _int_in(name, getattr(self, name), 0, MAX_RAW_BYTE)
        for name in ("ttl_out_delay", "recharge_delay"):
            if not isinstance(getattr(self, name), DelayCode):
                raise InvalidArgument(f"{name} must be a DelayCode, got {getattr(self, name)!r}")
        if self.coil_type is not None:
            _int_in("coil_type", self.coil_type, 0, 0x7F)

    @property
    def faults(self) -> tuple[str, ...]:
        """Names of the fault bits that are set (empty when the unit reports none)."""
        return tuple(name for name in FAULT_FLAGS if getattr(self, name))

    @property
    def coil_name(self) -> str | None:
        return None if self.coil_type is None else COIL_TYPES.get(self.coil_type)


def encode_status_record(status: DuoMagStatus) -> bytes:
    """The record bytes (no sync bytes) the unit would send for ``status``."""
    record = bytearray(MIN_RECORD_LENGTH if status.coil_type is None else COIL_TYPE_RECORD_LENGTH)
    record[0] = status.intensity_change_pct & 0x1F
    record[1] = status.intensity_pct_mso
    record[2] = status.coil_temperature_raw
    record[3] = status.resistor_temperature_raw
    record[4] = status.discharge_temperature_raw
    record[5] = status.omitted_pulses
    for name, (index, bit) in _FLAG_BITS.items():
        if getattr(status, name):
            record[index] |= 1 << bit
    record[9] = status.ttl_out_delay.steps
    record[10] = status.recharge_delay.steps
    record[11] = int(status.recharge_delay.step) << 4 | int(status.ttl_out_delay.step)
    if status.coil_type is not None:
        record[14] = status.coil_type
    return bytes(record)


def encode_status_stream(statuses: Iterable[DuoMagStatus], *, leading_sync: bool = True) -> bytes:
    """Records as the unit streams them: each followed by a sync byte (and one before the first)."""
    out = bytearray((SYNC,) if leading_sync else ())
    for status in statuses:
        out += encode_status_record(status) + bytes((SYNC,))
    return bytes(out)


def decode_status_record(record: bytes) -> DuoMagStatus:
    """The bytes between two sync bytes → status. Malformed → ``ProtocolError`` with ``raw``."""
    record = bytes(record)
    if not MIN_RECORD_LENGTH <= len(record) <= MAX_RECORD_LENGTH:
        raise ProtocolError(
            f"a DuoMAG status record is {MIN_RECORD_LENGTH}..{MAX_RECORD_LENGTH} bytes between sync bytes, "
            f"got {len(record)}: {_hexdump(record)}",
            raw=record,
        )
    if SYNC in record:
        raise ProtocolError(
            f"a DuoMAG status record cannot contain the sync byte FF: {_hexdump(record)}", raw=record
        )
    if record[1] > MAX_INTENSITY_PCT_MSO:
        raise ProtocolError(
            f"DuoMAG status reports intensity {record[1]} %MSO (byte 2); it must be 0..100: "
            f"{_hexdump(record)}",
            raw=record,
        )
    change = record[0] & 0x1F
    flags = {name: bool(record[index] >> bit & 1) for name, (index, bit) in _FLAG_BITS.items()}
    return DuoMagStatus(
        intensity_change_pct=change - 32 if change & 0x10 else change,
        intensity_pct_mso=record[1],
        coil_temperature_raw=record[2],
        resistor_temperature_raw=record[3],
        discharge_temperature_raw=record[4],
        omitted_pulses=record[5],
        ttl_out_delay=DelayCode(record[9] & 0x7F, DelayStep(record[11] & 0b111)),
        recharge_delay=DelayCode(record[10] & 0x7F, DelayStep(record[11] >> 4 & 0b111)),
        coil_type=record[14] & 0x7F if len(record) >= COIL_TYPE_RECORD_LENGTH else None,
        **flags,
    )


class DuoMagStatusParser:
    """The unit's status stream → records — sans-I/O ``feed(bytes) -> list[DuoMagStatus]``.

    Bytes before the first sync byte belong to a record we joined halfway and are dropped; so are
    empty records (two syncs in a row) and runs longer than a record without a sync byte. Every
    drop is reported as a ``ProtocolError`` via ``drain_rejects()``; results do not depend on how
    the stream was split.
    """

    def __init__(self) -> None:
        self._record = bytearray()
        self._synced = False
        self._overlong = False
        self._rejects: list[ProtocolError] = []

    @property
    def synced(self) -> bool:
        """True once a sync byte has been seen (records can be delimited)."""
        return self._synced

    @property
    def pending(self) -> bytes:
        return bytes(self._record)

    def drain_rejects(self) -> list[ProtocolError]:
        rejects, self._rejects = self._rejects, []
        return rejects

    def feed(self, data: bytes) -> list[DuoMagStatus]:
        statuses: list[DuoMagStatus] = []
        for byte in bytes(data):
            if byte != SYNC:
                if len(self._record) < MAX_RECORD_LENGTH + 1:
                    self._record.append(byte)
                else:
                    self._overlong = True
                continue
            self._end_record(statuses)
        return statuses

    def _end_record(self, statuses: list[DuoMagStatus]) -> None:
        record = bytes(self._record)
        self._record.clear()
        overlong, self._overlong = self._overlong, False
        if not self._synced:
            self._synced = True
            if record:
                self._rejects.append(ProtocolError(
                    f"dropped {len(record)} byte(s) before the first DuoMAG sync byte (a record joined "
                    f"halfway): {_hexdump(record)}",
                    raw=record,
                ))
            return
        if overlong:
            self._rejects.append(ProtocolError(
                f"more than {MAX_RECORD_LENGTH} bytes without a DuoMAG sync byte: not a status stream "
                f"(first bytes {_hexdump(record)})",
                raw=record,
            ))
            return
        if not record:
            self._rejects.append(
                ProtocolError("empty DuoMAG status record (two sync bytes in a row)", raw=b"")
            )
            return
        try:
            statuses.append(decode_status_record(record))
        except ProtocolError as exc:
            self._rejects.append(exc)

