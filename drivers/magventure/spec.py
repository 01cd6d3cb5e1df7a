"""MagPro model specs: device limits loaded from reviewed data (``specs/magpro.yaml``).

``load_spec(name)`` returns a :class:`MagProSpec`, which implements
:class:`tmsctl.drivers.base.DeviceLimits` and adds what the MagPro driver and simulator need:
the modes/waveforms each model offers, rate ceilings by mode and waveform, and strict checks of
the scaled integers the codec sends (grids taken conservatively from the sources; off-grid
values are refused, never rounded).

Which MagPro is connected is only known once it has sent a status byte (bits 7–5). Until then
use ``load_spec("magventure-magpro")``: the intersection of every model. Afterwards
``spec_for_model_code(status.model)`` gives the identified model's spec; the MST (code 5) and
undefined codes have none and are refused.

Intensity arguments are whole percentages of maximum output (the unit sets amplitude in 1 %
steps); a fractional or out-of-range value raises :class:`~tmsctl.core.errors.InvalidArgument`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from ruamel.yaml import YAML

from tmsctl.core.errors import InvalidArgument, SafetyViolation
from tmsctl.core.errors import InvalidArgument as _InvalidArgument
from tmsctl.drivers.base import Capability, EnergyModel, NoEnergyModel
from tmsctl.drivers.checks import is_number, positive_hz, whole_percent
from tmsctl.drivers.provenance import Frozen, Provenance, Review, SpecFileError, check_file_coverage, freeze

from .tables import CurrentDirection, MagProModel, Mode, TimingControl, Waveform

SPEC_FILE = "magpro.yaml"
GENERIC_MODEL = "magventure-magpro"
_HEADER_KEYS = ("schema_version", "family", "reviewed")


# --- grids ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grid:
    """Allowed scaled integers: the union of ``[first, last, step]`` segments."""

    segments: tuple[tuple[int, int, int], ...]

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return any(
            first <= value <= last and (value - first) % step == 0 for first, last, step in self.segments
        )

    @property
    def minimum(self) -> int:
        return min(first for first, _, _ in self.segments)

    @property
    def maximum(self) -> int:
        return max(last for _, last, _ in self.segments)

    @property
    def finest_step(self) -> int:
        return min(step for _, _, step in self.segments)

    def values(self) -> tuple[int, ...]:
        """Every allowed value, ascending."""
        return tuple(sorted({v for first, last, step in self.segments for v in range(first, last + 1, step)}))

    def neighbours(self, value: int) -> tuple[int | None, int | None]:
        """The closest allowed values at or below and at or above ``value``."""
        below: list[int] = []
        above: list[int] = []
        for first, last, step in self.segments:
            if value >= first:
                below.append(min(last, first + (value - first) // step * step))
            if value <= last:
                above.append(max(first, first + -(-(value - first) // step) * step))
        return (max(below) if below else None, min(above) if above else None)

    def check(self, name: str, value: object, *, scale: int = 1, unit: str = "") -> int:
        """Return ``value`` if it is on the grid; else ``InvalidArgument`` naming the nearest values."""

        def show(v: int) -> str:
            return f"{v / scale:g}{unit}"

        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{name} must be an integer (scaled ×{scale}), got {value!r}")
        if value not in self:
            near = " or ".join(show(v) for v in dict.fromkeys(self.neighbours(value)) if v is not None)
            raise InvalidArgument(
                f"{name} {show(value)} is not a value the MagPro accepts; nearest: {near}",
                hint="tmsctl never rounds settings; choose one of the allowed values",
            )
        return value


def _grid(value: Any) -> Grid:
    segments = []
    for segment in value:
        if len(segment) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in segment):
            raise ValueError(f"a grid segment is [first, last, step] integers, got {segment!r}")
        first, last, step = segment
        if step < 1 or last < first or (last - first) % step:
            raise ValueError(f"grid segment {segment!r} must run from first to last in whole steps")
        segments.append((first, last, step))
    if not segments:
        raise ValueError("a grid needs at least one segment")
    return Grid(tuple(segments))


GridField = Annotated[Grid, BeforeValidator(_grid)]


def _enum_by_name(enum: type[Any]) -> BeforeValidator:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return enum[value.upper()]
            except KeyError:
                names = ", ".join(member.name.lower() for member in enum)
                raise ValueError(f"unknown {enum.__name__} {value!r}; known: {names}") from None
        return value

    return BeforeValidator(convert)


ModeName = Annotated[Mode, _enum_by_name(Mode)]
WaveformName = Annotated[Waveform, _enum_by_name(Waveform)]
DirectionName = Annotated[CurrentDirection, _enum_by_name(CurrentDirection)]
TimingControlName = Annotated[TimingControl, _enum_by_name(TimingControl)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
RateHz = Annotated[int, Field(ge=1, le=100, strict=True)]


# --- the file schema -----------------------------------------------------------------------------


class Output(Frozen):
    max_pct: int = Field(ge=1, le=100)


class Timing(Frozen):
    min_single_pulse_interval_s: Positive
    min_inter_train_interval_s: Positive
    max_train_duration_s: Positive


class Coil(Frozen):
    temperature_limit_c: Positive


class Grids(Frozen):
    rate_hz_x10: GridField
    pulses_per_train: GridField
    train_count: GridField
    iti_s_x10: GridField
    input_delay_ms_x10: GridField
    output_delay_ms_x10: GridField
    charge_delay_ms: GridField
    ba_ratio_x100: GridField
    burst_pulses: GridField
    twin_dual_ipi_ms_x10: GridField
    twin_dual_monophasic_min_ipi_ms_x10: Annotated[int, Field(ge=1, strict=True)]


class MaxRates(Frozen):
    default: RateHz
    power: RateHz | None = None
    twin_dual: RateHz | None = None
    twin_dual_monophasic: RateHz | None = None
    biphasic_burst: RateHz | None = None

    @model_validator(mode="after")
    def _none_above_default(self) -> MaxRates:
        for name, value in self:
            if value is not None and value > self.default:
                raise ValueError(f"max_rate_hz.{name} {value} is above the default {self.default}")
        if self.twin_dual_monophasic is not None and (
            self.twin_dual is None or self.twin_dual_monophasic > self.twin_dual
        ):
            raise ValueError("twin_dual_monophasic needs twin_dual and may not exceed it")
        return self


class ModelEntry(Frozen):
    display_name: str = Field(min_length=1)
    model_code: Annotated[int, Field(ge=0, le=7, strict=True)] | None
    capabilities: frozenset[Capability]
    modes: tuple[ModeName, ...] = Field(min_length=1)
    current_directions: tuple[DirectionName, ...] = Field(min_length=1)
    waveforms: tuple[WaveformName, ...] = Field(min_length=1)
    max_rate_hz: MaxRates

    @model_validator(mode="after")
    def _consistent(self) -> ModelEntry:
        def must(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"{self.display_name}: {message}")

        modes, waveforms = set(self.modes), set(self.waveforms)
        twin_dual = bool(modes & {Mode.TWIN, Mode.DUAL})
        burst = Waveform.BIPHASIC_BURST in waveforms
        rates, capabilities = self.max_rate_hz, self.capabilities
        must(Mode.STANDARD in modes, "every MagPro offers Standard mode")
        must((rates.power is not None) == (Mode.POWER in modes), "max_rate_hz.power ⟺ Power mode")
        must((rates.twin_dual is not None) == twin_dual, "max_rate_hz.twin_dual ⟺ Twin or Dual mode")
        must(rates.twin_dual_monophasic is None or Waveform.MONOPHASIC in waveforms,
             "twin_dual_monophasic needs the Monophasic waveform")
        must((rates.biphasic_burst is not None) == burst, "max_rate_hz.biphasic_burst ⟺ Biphasic Burst")
        must((Capability.THETA_BURST in capabilities) == burst, "theta_burst capability ⟺ Biphasic Burst")
        must((Capability.PAIRED_PULSE in capabilities) == (Mode.TWIN in modes), "paired_pulse ⟺ Twin mode")
        required = {Capability.SINGLE_PULSE, Capability.INTERNAL_TRAIN, Capability.CONFIRMED_REPLIES}
        must(required <= self.capabilities, f"every MagPro has {sorted(c.value for c in required)}")
        return self


class SpecFile(Frozen):
    """``specs/magpro.yaml``."""

    schema_version: Literal[1]
    family: Literal["magventure-magpro"]
    generic_model: str
    output: Output
    timing: Timing
    coil: Coil
    grids: Grids
    negative_output_delay_timing_controls: tuple[TimingControlName, ...]
    models: Annotated[dict[str, ModelEntry], AfterValidator(freeze)]
    reviewed: Review

    @model_validator(mode="before")
    @classmethod
    def _every_value_reviewed(cls, raw: Any) -> Any:
        return check_file_coverage(raw, _HEADER_KEYS)

    @model_validator(mode="after")
    def _consistent(self) -> SpecFile:
        def must(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(message)

        must(all(name.startswith(self.family) for name in self.models),
             f"model names start with {self.family!r}")
        generic = self.models.get(self.generic_model)
        must(generic is not None and generic.model_code is None,
             "generic_model names the entry without a model code")
        assert generic is not None
        identified = {name: entry for name, entry in self.models.items() if name != self.generic_model}
        codes = [entry.model_code for entry in identified.values()]
        must(None not in codes and len(set(codes)) == len(codes), "every other model has its own model code")
        must(MagProModel.MST not in codes, "the MST has no reviewed limits and must not be listed")
        for name, entry in identified.items():
            must(generic.capabilities <= entry.capabilities, f"the generic model claims more than {name}")
            for offer in ("modes", "current_directions", "waveforms"):
                must(set(getattr(generic, offer)) <= set(getattr(entry, offer)),
                     f"generic {offer} exceed {name}'s")
            must(generic.max_rate_hz.default <= entry.max_rate_hz.default, f"generic rate above {name}'s")
        for name, entry in self.models.items():
            for field_name, rate in entry.max_rate_hz:
                must(rate is None or rate * 10 in self.grids.rate_hz_x10,
                     f"{name}: max_rate_hz.{field_name} {rate} is not on the rate grid")
        must(self.grids.rate_hz_x10.maximum <= 1000 and self.grids.rate_hz_x10.minimum >= 1,
             "the rate grid must lie within the wire field (0.1–100 Hz)")
        return self


# --- the resolved spec ---------------------------------------------------------------------------

# A protocol's ``stimulus`` words (tmsctl.protocols.models.Stimulus) for the unit's settings.
PROTOCOL_WAVEFORMS: dict[str, Waveform] = {
    "monophasic": Waveform.MONOPHASIC,
    "biphasic": Waveform.BIPHASIC,
    "half_sine": Waveform.HALFSINE,
    "biphasic_burst": Waveform.BIPHASIC_BURST,
}
PROTOCOL_DIRECTIONS: dict[str, CurrentDirection] = {
    "normal": CurrentDirection.NORMAL,
    "reversed": CurrentDirection.REVERSE,
}



def _title(member: Mode | Waveform | TimingControl | CurrentDirection) -> str:
    """``BIPHASIC_BURST`` → ``Biphasic Burst``: as the unit's front panel names it."""
    return member.name.replace("_", " ").title()


class MagProSpec(Frozen):
    """The limits of one MagPro model. Implements :class:`tmsctl.drivers.base.DeviceLimits`."""

    data: SpecFile
    name: str

    @model_validator(mode="after")
    def _known_name(self) -> MagProSpec:
        if self.name not in self.data.models:
            raise ValueError(f"no MagPro model {self.name!r}")
        return self

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def entry(self) -> ModelEntry:
        return self.data.models[self.name]

    # -- DeviceLimits ---------------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        return self.entry.display_name

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.entry.capabilities

    @property
    def max_intensity_pct_mso(self) -> int:
        return self.data.output.max_pct

    @property
    def max_pulses_per_train(self) -> int:
        return self.data.grids.pulses_per_train.maximum

    @property
    def max_train_duration_s(self) -> float:
        return self.data.timing.max_train_duration_s

    @property
    def frequency_step_hz(self) -> float:
        """The finest rate step (0.1 Hz). Above 1 Hz only whole hertz are accepted: ``check_rate``."""
        return self.data.grids.rate_hz_x10.finest_step / 10

    def max_frequency_hz(self, intensity_pct_mso: float) -> float:
        """The Standard-mode rate ceiling; no source makes it depend on output."""
        self._intensity(intensity_pct_mso)
        return float(self.entry.max_rate_hz.default)

    def max_train_on_time_s(self, intensity_pct_mso: float, frequency_hz: float) -> float:
        """``inf``: no energy or duty rule is published for the MagPro (safety.md §5).

        Trains are still bounded by ``max_train_duration_s`` and ``max_pulses_per_train``.
        """
        self._intensity(intensity_pct_mso)
        self._frequency(frequency_hz)
        return math.inf

    def min_inter_train_interval_s(
        self, intensity_pct_mso: float, frequency_hz: float, pulses_per_train: int
    ) -> float:
        self._intensity(intensity_pct_mso)
        self._frequency(frequency_hz)
        self._pulses(pulses_per_train)
        return self.data.timing.min_inter_train_interval_s

    def min_single_pulse_interval_s(self, intensity_pct_mso: float) -> float:
        self._intensity(intensity_pct_mso)
        return self.data.timing.min_single_pulse_interval_s

    def energy_model(self) -> EnergyModel | NoEnergyModel:
        return NoEnergyModel("MagVenture publishes no energy budget for the MagPro; its own duty-cycle protection and the coil temperature limit it (coil temperature is watched)")

    def for_version(self, version: tuple[int, ...] | None) -> MagProSpec:
        raise _InvalidArgument(f"{self.display_name} limits do not depend on a software version")

    # -- the model ------------------------------------------------------------------------------

    @property
    def model_code(self) -> MagProModel | None:
        """The status-byte model code, or ``None`` for the generic (not yet identified) spec."""
        code = self.entry.model_code
        return None if code is None else MagProModel(code)

    @property
    def modes(self) -> frozenset[Mode]:
        return frozenset(self.entry.modes)

    @property
    def current_directions(self) -> frozenset[CurrentDirection]:
        return frozenset(self.entry.current_directions)

    @property
    def waveforms(self) -> frozenset[Waveform]:
        return frozenset(self.entry.waveforms)

    @property
    def grids(self) -> Grids:
        return self.data.grids

    def max_rate_hz(self, mode: Mode, waveform: Waveform) -> int:
        """Rate ceiling for this mode and waveform (bursts per second for Biphasic Burst)."""
        self._offers(mode, waveform)
        rates = self.entry.max_rate_hz
        if waveform is Waveform.BIPHASIC_BURST:
            assert rates.biphasic_burst is not None  # guaranteed by the file validator
            return rates.biphasic_burst
        if mode in (Mode.TWIN, Mode.DUAL):
            assert rates.twin_dual is not None
            if waveform is Waveform.MONOPHASIC and rates.twin_dual_monophasic is not None:
                return rates.twin_dual_monophasic
            return rates.twin_dual
        if mode is Mode.POWER:
            assert rates.power is not None
            return rates.power
        return rates.default

    # -- strict checks of codec values ----------------------------------------------------------

    def check_amplitude_pct(self, amplitude_pct: object) -> int:
        return self._intensity(amplitude_pct)

    def check_rate(
        self, rate_hz_x10: object, *, mode: Mode = Mode.STANDARD, waveform: Waveform = Waveform.BIPHASIC
    ) -> int:
        """A train rate in 0.1 Hz: on the rate grid and at most this mode's and waveform's ceiling."""
        rate = self.data.grids.rate_hz_x10.check("rate", rate_hz_x10, scale=10, unit=" Hz")
        ceiling = self.max_rate_hz(mode, waveform)
        if rate > ceiling * 10:
            raise InvalidArgument(
                f"{rate / 10:g} Hz is above the {self.display_name}'s {ceiling} Hz ceiling for "
                f"{_title(mode)} mode with the {_title(waveform)} waveform",
                hint="lower the rate; tmsctl never clamps it",
            )
        return rate

    def check_train(
        self,
        rate_hz_x10: object,
        pulses_per_train: object,
        train_count: object,
        iti_s_x10: object,
        *,
        mode: Mode = Mode.STANDARD,
        waveform: Waveform = Waveform.BIPHASIC,
    ) -> None:
        """Every field of a train setting (0x06 or 0x0B 01), strictly."""
        self.check_rate(rate_hz_x10, mode=mode, waveform=waveform)
        grids = self.data.grids
        grids.pulses_per_train.check("pulses per train", pulses_per_train)
        grids.train_count.check("number of trains", train_count)
        grids.iti_s_x10.check("inter-train interval", iti_s_x10, scale=10, unit=" s")

    def check_delays(
        self,
        input_delay_ms_x10: object,
        output_delay_ms_x10: object,
        charge_delay_ms: object,
        *,
        timing_control: TimingControl,
    ) -> None:
        """Trigger-in, trigger-out and charge delays (0x08 or 0x0A 01), strictly."""
        grids = self.data.grids
        grids.input_delay_ms_x10.check("trigger-in delay", input_delay_ms_x10, scale=10, unit=" ms")
        output = grids.output_delay_ms_x10.check(
            "trigger-out delay", output_delay_ms_x10, scale=10, unit=" ms"
        )
        grids.charge_delay_ms.check("charge delay", charge_delay_ms, unit=" ms")
        allowed = self.data.negative_output_delay_timing_controls
        if output < 0 and timing_control not in allowed:
            names = ", ".join(_title(control) for control in allowed)
            raise InvalidArgument(
                f"a negative trigger-out delay ({output / 10:g} ms) needs {names} timing, "
                f"not {_title(timing_control)}",
            )

    def check_waveform(
        self,
        mode: Mode,
        current_direction: CurrentDirection,
        waveform: Waveform,
        *,
        burst_pulses: object,
        ba_ratio_x100: object,
    ) -> None:
        """What this model offers; the IPI tables themselves are checked by the codec."""
        self._offers(mode, waveform)
        if current_direction not in self.current_directions:
            raise InvalidArgument(
                f"the {self.display_name} has no {current_direction.name.title()} current direction",
                hint=f"offered: {', '.join(sorted(d.name.title() for d in self.current_directions))}",
            )
        self.data.grids.burst_pulses.check("pulses per burst", burst_pulses)
        self.data.grids.ba_ratio_x100.check("B/A ratio", ba_ratio_x100, scale=100)

    # -- paired pulses (Twin/Dual) and the stimulus shape ------------------------------------------

    def paired_isi_modes_ms(self) -> tuple[tuple[float, float, float], ...]:
        """The Twin/Dual IPI table's segments as ``(min, max, step)`` in ms, coarsest first
        (``PairedPulseLimits``). The Monophasic waveform's pairs start later: ``stimulus_problem``."""
        segments = self.data.grids.twin_dual_ipi_ms_x10.segments
        return tuple(
            (first / 10, last / 10, step / 10) for first, last, step in sorted(segments, key=lambda s: -s[2])
        )

    def stimulus_problem(
        self, waveform: str, current_direction: str, *, kind: str, isi_ms: float | None = None
    ) -> str | None:
        """Why this model cannot give a protocol's ``stimulus`` (its words: ``half_sine``,
        ``reversed``) to a train of ``kind``; None when it can (``StimulusShapeLimits``)."""
        shape = PROTOCOL_WAVEFORMS.get(waveform)
        direction = PROTOCOL_DIRECTIONS.get(current_direction)
        if shape is None or direction is None:
            return f"the MagPro has no {waveform} waveform with {current_direction} current"
        if shape not in self.waveforms:
            offered = ", ".join(sorted(_title(w) for w in self.waveforms))
            return f"the {self.display_name} has no {_title(shape)} waveform (it offers {offered})"
        if direction not in self.current_directions:
            return f"the {self.display_name} has no {_title(direction)} current direction"
        if shape is Waveform.BIPHASIC_BURST and kind != "theta_burst":
            return f"the Biphasic Burst waveform fires a burst on every trigger; it suits theta burst, not a {kind}"
        if kind == "theta_burst" and shape not in (Waveform.BIPHASIC, Waveform.BIPHASIC_BURST):
            return f"the {self.display_name} times theta bursts with biphasic pulses only, not {_title(shape)}"
        if kind == "paired_pulse" and shape is Waveform.BIPHASIC_BURST:
            return "Twin and Dual modes cannot be combined with Biphasic Burst"
        floor_x10 = self.data.grids.twin_dual_monophasic_min_ipi_ms_x10
        if kind == "paired_pulse" and shape is Waveform.MONOPHASIC and isi_ms is not None and isi_ms * 10 < floor_x10:
            return (
                f"monophasic pairs on the {self.display_name} are at least {floor_x10 / 10:g} ms apart, "
                f"not {isi_ms:g} ms"
            )
        return None

    # -- coil -----------------------------------------------------------------------------------

    @property
    def coil_temperature_limit_c(self) -> float:
        return self.data.coil.temperature_limit_c

    def coil_temperature_allows_arming(self, temperature_c: float) -> bool:
        """False at or above the limit: the boundary itself refuses."""
        if not is_number(temperature_c) or math.isnan(temperature_c):
            raise InvalidArgument(f"a coil temperature in °C is a number, got {temperature_c!r}")
        return temperature_c < self.data.coil.temperature_limit_c

    # -- provenance -----------------------------------------------------------------------------

    def provenance(self, path: str) -> Provenance:
        """Status and sources of a value, by its dotted path in the spec file."""
        return self.data.reviewed.provenance(path)

    # -- argument checks ------------------------------------------------------------------------

    def _offers(self, mode: Mode, waveform: Waveform) -> None:
        if not isinstance(mode, Mode) or not isinstance(waveform, Waveform):
            raise InvalidArgument(
                f"mode and waveform must be Mode and Waveform members, got {mode!r}, {waveform!r}"
            )
        if mode not in self.modes:
            raise InvalidArgument(
                f"the {self.display_name} has no {mode.name.title()} mode",
                hint=f"offered: {', '.join(sorted(m.name.title() for m in self.modes))}",
            )
        if waveform not in self.waveforms:
            raise InvalidArgument(
                f"the {self.display_name} has no {_title(waveform)} waveform",
                hint="offered: " + ", ".join(sorted(_title(w) for w in self.waveforms)),
            )
        if mode in (Mode.TWIN, Mode.DUAL) and waveform is Waveform.BIPHASIC_BURST:
            raise InvalidArgument(f"{mode.name.title()} mode cannot be combined with Biphasic Burst")

    def _intensity(self, value: object) -> int:
        return whole_percent(
            value, who=self.name, ceiling=self.data.output.max_pct,
            step_hint="the MagPro sets amplitude in 1 % steps; round the intensity explicitly first",
        )

    def _frequency(self, value: object) -> float:
        return positive_hz(value, who=self.name)

    def _pulses(self, value: object) -> int:
        cap = self.max_pulses_per_train
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= cap:
            raise InvalidArgument(
                f"{self.name}: pulses per train must be a whole number 1–{cap}, got {value!r}"
            )
        return int(value)


# --- loading -------------------------------------------------------------------------------------


@cache
def load_spec_file() -> SpecFile:
    """Read and validate ``specs/magpro.yaml`` (cached)."""
    resource = files("tmsctl.drivers.magventure").joinpath("specs", SPEC_FILE)
    try:
        raw = YAML(typ="safe", pure=True).load(resource.read_text(encoding="utf-8"))
        return SpecFile.model_validate(raw)
    except (OSError, ValidationError, ValueError) as exc:
        raise SpecFileError(f"spec file {SPEC_FILE} is invalid: {exc}") from exc


def model_names() -> tuple[str, ...]:
    """Every MagPro spec name, the generic one first."""
    data = load_spec_file()
    return (data.generic_model, *sorted(name for name in data.models if name != data.generic_model))


@cache
def load_spec(model: str = GENERIC_MODEL) -> MagProSpec:
    """The limits of a MagPro model by name; ``"magventure-magpro"`` before the model is known."""
    data = load_spec_file()
    if model not in data.models:
        raise InvalidArgument(f"no MagPro model {model!r}; known: {', '.join(model_names())}")
    return MagProSpec(data=data, name=model)


def spec_for_model_code(code: MagProModel | int) -> MagProSpec:
    """The spec for the model code a unit reports (status byte bits 7–5).

    Raises ``SafetyViolation`` for the MST (code 5) and undefined codes: tmsctl has no reviewed
    limits for them and will not drive them.
    """
    if isinstance(code, bool) or not isinstance(code, int):
        raise InvalidArgument(f"a MagPro model code is an integer 0–7, got {code!r}")
    data = load_spec_file()
    for name, entry in data.models.items():
        if entry.model_code == code:
            return load_spec(name)
    known = {member.value: member.name for member in MagProModel}
    label = f"{known[code]} (code {code})" if code in known else f"code {code}, which no source defines"
    raise SafetyViolation(
        f"the unit reports MagPro model {label}; tmsctl has no reviewed limits for it",
        hint="tmsctl will not drive this unit; supported: "
        + ", ".join(entry.display_name for entry in data.models.values() if entry.model_code is not None),
    )
