"""MagPro code tables: status byte, modes, waveforms, models, pages, coils, IPI and B/A indices.

Facts: ``shared/reference/magventure.md`` §4 (status byte, code tables). Every table here is what
open-source implementations do (tag C); nothing was checked on hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from tmsctl.core.errors import InvalidArgument, ProtocolError

from .framing import require_bool


class Mode(IntEnum):
    STANDARD = 0
    POWER = 1
    TWIN = 2
    DUAL = 3


class Waveform(IntEnum):
    MONOPHASIC = 0
    BIPHASIC = 1
    HALFSINE = 2
    BIPHASIC_BURST = 3


class CurrentDirection(IntEnum):
    NORMAL = 0
    REVERSE = 1


class MagProModel(IntEnum):
    """Bits 7–5 of the status byte, and the model byte of the waveform messages."""

    R30 = 0
    X100 = 1
    R30_OPTION = 2
    X100_OPTION = 3
    R30_OPTION_MONO = 4
    MST = 5


class Page(IntEnum):
    """Front-panel pages (the unit may report others; device messages keep the raw number)."""

    MAIN = 1
    TIMING = 2  # MAGIC calls it "Train"
    TRIGGER = 3
    CONFIGURE = 4
    DOWNLOAD = 6
    PROTOCOL = 7
    MEP = 8
    SERVICE = 13
    TREATMENT = 15
    TREAT_SELECT = 16
    SERVICE2 = 17
    CALCULATOR = 19


class TimingControl(IntEnum):
    """What starts the pulses of a sequence (Timing page, IDs 0x0B/11)."""

    SEQUENCE = 0
    EXTERNAL_TRIG = 1
    EXT_SEQ_START = 2
    EXT_SEQ_CONT = 3


COIL_TYPES: dict[int, str] = {
    0: "unknown",
    56: "Cool-B35",
    60: "Cool-B65",
    62: "MCF-B65",
    63: "MCF-P-B65",
    64: "Cool-B65 A/P",
    72: "C-B60",
    73: "C-B70",
    81: "MC-125",
    82: "MC-B70",
    86: "D-B80",
}


def coil_type_name(code: int) -> str | None:
    """The coil's name for a coil-type byte, or ``None`` if no source lists the code."""
    return COIL_TYPES.get(code)


def page_name(code: int) -> str | None:
    try:
        return Page(code).name
    except ValueError:
        return None


_E = TypeVar("_E", bound=IntEnum)


def enum_member(enum: type[_E], name: str, value: object) -> _E:
    if not isinstance(value, enum):
        raise InvalidArgument(f"{name} must be a {enum.__name__}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class StatusByte:
    """The status/mode byte: bits 1–0 mode, 3–2 waveform, 4 enabled, 7–5 model."""

    mode: Mode
    waveform: Waveform
    enabled: bool
    model: MagProModel

    def __post_init__(self) -> None:
        enum_member(Mode, "mode", self.mode)
        enum_member(Waveform, "waveform", self.waveform)
        require_bool("enabled", self.enabled)
        enum_member(MagProModel, "model", self.model)

    def to_byte(self) -> int:
        return int(self.mode) | int(self.waveform) << 2 | int(self.enabled) << 4 | int(self.model) << 5

    @classmethod
    def from_byte(cls, value: int, *, raw: bytes = b"") -> StatusByte:
        model_code = value >> 5
        try:
            model = MagProModel(model_code)
        except ValueError:
            raise ProtocolError(
                f"status byte {value:02X} names MagPro model code {model_code}; known codes are 0–5 "
                "(R30, X100, R30+Option, X100+Option, R30+Option+Mono, MST)",
                raw=raw,
                hint="tmsctl has no reviewed data for this unit and will not drive it",
            ) from None
        return cls(
            mode=Mode(value & 0b11),
            waveform=Waveform(value >> 2 & 0b11),
            enabled=bool(value >> 4 & 1),
            model=model,
        )


# --- burst pulses --------------------------------------------------------------------------------

MIN_BURST_PULSES = 2
MAX_BURST_PULSES = 5


def burst_byte(pulses: int) -> int:
    """Pulses per burst (2–5) → the byte the unit uses (5 − pulses)."""
    return MAX_BURST_PULSES - pulses


def burst_pulses_from_byte(value: int) -> int:
    return MAX_BURST_PULSES - value


# --- inter-pulse-interval indices (ID-9 answers) -------------------------------------------------
# Each table is a list of descending segments (first, last, step) in tenths of a millisecond; the
# index counts entries from the top of the list. Writes (0x09 01) carry the value ×10 instead.

_BURST_IPI_SEGMENTS_MS_X10 = ((1000, 200, 10), (195, 100, 5), (99, 5, 1))
# Twin/Dual; monophasic Twin/Dual stops at 2.0 ms (PYTMS).
_TWIN_IPI_SEGMENTS_MS_X10 = (
    (30000, 10000, 1000),
    (9500, 5000, 500),
    (4900, 1000, 100),
    (990, 200, 10),
    (195, 100, 5),
    (99, 10, 1),
)
MONOPHASIC_TWIN_MIN_IPI_MS_X10 = 20


def _expand(segments: tuple[tuple[int, int, int], ...]) -> tuple[int, ...]:
    values: list[int] = []
    for first, last, step in segments:
        values.extend(range(first, last - 1, -step))
    return tuple(values)


BURST_IPI_MS_X10: tuple[int, ...] = _expand(_BURST_IPI_SEGMENTS_MS_X10)
TWIN_DUAL_IPI_MS_X10: tuple[int, ...] = _expand(_TWIN_IPI_SEGMENTS_MS_X10)
_BURST_IPI_INDEX = {value: index for index, value in enumerate(BURST_IPI_MS_X10)}
_TWIN_DUAL_IPI_INDEX = {value: index for index, value in enumerate(TWIN_DUAL_IPI_MS_X10)}


def _lookup_index(table: tuple[int, ...], name: str, index: int) -> int:
    if not 0 <= index < len(table):
        raise InvalidArgument(f"{name} IPI index must be within 0..{len(table) - 1}, got {index}")
    return table[index]


def _nearest(table: tuple[int, ...], value: int) -> str:
    below = max((v for v in table if v <= value), default=None)
    above = min((v for v in table if v >= value), default=None)
    return " or ".join(f"{v / 10:g} ms" for v in dict.fromkeys((below, above)) if v is not None)


def _lookup_value(index_of: dict[int, int], table: tuple[int, ...], name: str, ipi_ms_x10: int) -> int:
    try:
        return index_of[ipi_ms_x10]
    except KeyError:
        raise InvalidArgument(
            f"{ipi_ms_x10 / 10:g} ms is not a {name} inter-pulse interval the MagPro offers; "
            f"nearest: {_nearest(table, ipi_ms_x10)}",
            hint="tmsctl does not round intervals; choose one of the listed values",
        ) from None


def burst_ipi_ms_x10(index: int) -> int:
    """Biphasic Burst IPI for an ID-9 index: 100 → 20 ms step 1, 19.5 → 10 step 0.5, 9.9 → 0.5 step 0.1."""
    return _lookup_index(BURST_IPI_MS_X10, "Biphasic Burst", index)


def burst_ipi_index(ipi_ms_x10: int) -> int:
    return _lookup_value(_BURST_IPI_INDEX, BURST_IPI_MS_X10, "Biphasic Burst", ipi_ms_x10)


def twin_dual_ipi_ms_x10(index: int) -> int:
    """Twin/Dual IPI for an ID-9 index: 3000 ms down to 1.0 ms in six segments."""
    return _lookup_index(TWIN_DUAL_IPI_MS_X10, "Twin/Dual", index)


def twin_dual_ipi_index(ipi_ms_x10: int) -> int:
    return _lookup_value(_TWIN_DUAL_IPI_INDEX, TWIN_DUAL_IPI_MS_X10, "Twin/Dual", ipi_ms_x10)


# --- B/A indices (ID-9 answers) ------------------------------------------------------------------

MIN_BA_RATIO_X100 = 20
MAX_BA_RATIO_X100 = 500
BA_RATIO_STEP_X100 = 5


def twin_ba_ratio_x100(index: int) -> int:
    """Twin mode: ratio = 5.00 − 0.05 × index (index 80 = 1.00)."""
    if not 0 <= index <= (MAX_BA_RATIO_X100 - MIN_BA_RATIO_X100) // BA_RATIO_STEP_X100:
        raise InvalidArgument(f"Twin B/A index must be within 0..96, got {index}")
    return MAX_BA_RATIO_X100 - BA_RATIO_STEP_X100 * index


def twin_ba_index(ba_ratio_x100: int) -> int:
    offset = MAX_BA_RATIO_X100 - ba_ratio_x100
    if not MIN_BA_RATIO_X100 <= ba_ratio_x100 <= MAX_BA_RATIO_X100 or offset % BA_RATIO_STEP_X100:
        raise InvalidArgument(
            f"B/A ratio must be 0.20..5.00 in steps of 0.05, got {ba_ratio_x100 / 100:g}"
        )
    return offset // BA_RATIO_STEP_X100


def dual_b_amplitude_pct(index: int) -> int:
    """Dual mode: the B/A byte holds 100 − amplitude B."""
    if not 0 <= index <= 100:
        raise InvalidArgument(f"Dual B/A byte must be within 0..100, got {index}")
    return 100 - index
