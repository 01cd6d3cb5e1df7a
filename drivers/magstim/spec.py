"""Magstim model specs: device limits and timing facts, loaded from reviewed data files.

The numbers live in ``specs/*.yaml`` (one file per model family, every value with its
provenance and status tag). This module validates those files and answers questions about
them; it holds no device numbers of its own. ``load_spec`` returns a :class:`MagstimSpec`,
which implements :class:`tmsctl.drivers.base.DeviceLimits` and adds the helpers the Magstim
driver and simulator need (energy per pulse, field widths by software version, recharge and
keep-alive timing, the coil temperature limit).

Software version. A Rapid²'s field widths and caps depend on its software version, which is
only known after connecting (``ND``). ``load_spec`` returns a spec whose version is unknown;
it uses the most conservative row (pre-v9 widths, 1000 pulses, 99.9 s). Once the driver has
read the version, ``spec.for_version((9, 0))`` returns a refined copy; the original is left
unchanged. Version thresholds compare the major number only.

Power arguments are whole percentages of maximum output (the units accept 1 % steps); a
fractional or out-of-range power raises :class:`~tmsctl.core.errors.InvalidArgument`, and tables
are never extrapolated or interpolated.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator
from ruamel.yaml import YAML

from tmsctl.core.errors import InvalidArgument
from tmsctl.drivers.base import Capability, EnergyModel, NoEnergyModel
from tmsctl.drivers.provenance import Frozen, Review, SpecFileError, freeze

SCHEMA_VERSION = 1
SPEC_FILES: Mapping[str, str] = MappingProxyType(
    {"magstim-200": "m200.yaml", "magstim-bistim": "bistim.yaml", "magstim-rapid2": "rapid2.yaml"}
)
Variant = Literal["rapid2", "super", "superplus"]
VARIANTS: tuple[Variant, ...] = ("rapid2", "super", "superplus")
MainsVoltage = Literal[240, 115]
MAINS_VOLTAGES: tuple[MainsVoltage, ...] = (240, 115)
SoftwareVersion = tuple[int, ...]

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Percent = Annotated[int, Field(ge=0, le=100)]


_freeze = freeze  # shared with the other vendors' specs (tmsctl.drivers.provenance)


# --- the file schema -------------------------------------------------------------------------


class Output(Frozen):
    max_pct: int = Field(ge=1, le=100)
    enhanced_max_pct: int | None = None

    @model_validator(mode="after")
    def _enhanced_above_normal(self) -> Output:
        if self.enhanced_max_pct is not None and self.enhanced_max_pct <= self.max_pct:
            raise ValueError(f"enhanced_max_pct {self.enhanced_max_pct} must exceed max_pct {self.max_pct}")
        return self


class Timing(Frozen):
    keepalive_period_s: Positive
    keepalive_max_gap_standby_s: Positive
    keepalive_max_gap_armed_s: Positive
    arm_to_ready_max_s: Positive
    armed_idle_disarm_s: Positive
    power_settle_s_per_pct_increase: NonNegative
    power_settle_s_per_pct_decrease: NonNegative

    @model_validator(mode="after")
    def _period_within_deadlines(self) -> Timing:
        if self.keepalive_period_s >= self.keepalive_max_gap_armed_s:
            raise ValueError("keepalive_period_s must be shorter than keepalive_max_gap_armed_s")
        return self


class Coil(Frozen):
    temperature_limit_c: Positive


class RechargeStep(Frozen):
    from_pct: Percent
    interval_s: Positive


class IsiRange(Frozen):
    """BiStim inter-pulse interval settings: ``min_ms``..``max_ms`` in steps of ``step_ms``."""

    min_ms: NonNegative
    max_ms: Positive
    step_ms: Positive

    @model_validator(mode="after")
    def _whole_number_of_steps(self) -> IsiRange:
        steps = (self.max_ms - self.min_ms) / self.step_ms
        if self.max_ms <= self.min_ms or abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"{self.min_ms}–{self.max_ms} ms is not whole {self.step_ms} ms steps")
        return self


class PairedPulse(Frozen):
    low_resolution: IsiRange
    high_resolution: IsiRange
    isi_after_enabling_high_resolution_ms: NonNegative
    isi_after_disabling_high_resolution_ms: NonNegative


class EnergyBudget(Frozen):
    shed_rate_j_per_s: Positive
    budget_j: Positive
    budget_window_s: Positive
    continuous_above_on_time_s: Positive

    @model_validator(mode="after")
    def _consistent(self) -> EnergyBudget:
        if not math.isclose(self.shed_rate_j_per_s * self.budget_window_s, self.budget_j):
            raise ValueError("budget_j must equal shed_rate_j_per_s × budget_window_s")
        if self.continuous_above_on_time_s != self.budget_window_s:
            raise ValueError("continuous_above_on_time_s must equal budget_window_s")
        return self


def _check_decade_rows(rows: Mapping[int, tuple[float, ...]]) -> Mapping[int, tuple[float, ...]]:
    """Rows keyed by a multiple of 10, contiguous, ten values each, ending with a 100 % row of one."""
    keys = sorted(rows)
    if not keys or keys[0] % 10 or keys != list(range(keys[0], 101, 10)):
        raise ValueError(f"row keys must be contiguous multiples of 10 ending at 100, got {keys}")
    for key in keys:
        expected = 1 if key == 100 else 10
        if len(rows[key]) != expected:
            raise ValueError(f"row {key} must hold {expected} values, has {len(rows[key])}")
    frozen: Mapping[int, tuple[float, ...]] = _freeze(rows)
    return frozen


DecadeRows = Annotated[dict[int, tuple[NonNegative, ...]], AfterValidator(_check_decade_rows)]


def _row_value(rows: Mapping[int, tuple[float, ...]], power_pct: int) -> float:
    return rows[power_pct - power_pct % 10][power_pct % 10]


class FrequencyTable(Frozen):
    below_table_hz: Positive
    rows: DecadeRows

    def hz_at(self, power_pct: int) -> float:
        if power_pct < min(self.rows):
            return self.below_table_hz
        return _row_value(self.rows, power_pct)


class FrequencyOverride(Frozen):
    mains_v: MainsVoltage
    variant: Variant
    power_pct: Percent
    table_hz: Positive
    use_hz: Positive
    why: str = Field(min_length=1)

    @model_validator(mode="after")
    def _only_lowers(self) -> FrequencyOverride:
        if self.use_hz >= self.table_hz:
            raise ValueError(f"an override may only lower a cell: use_hz {self.use_hz} ≥ {self.table_hz}")
        return self


class ChargeDelay(Frozen):
    digits: int = Field(ge=1)
    min_ms: int = Field(ge=0)
    max_ms: int = Field(ge=1)

    @model_validator(mode="after")
    def _fits_field(self) -> ChargeDelay:
        if not self.min_ms < self.max_ms <= 10**self.digits - 1:
            raise ValueError(f"charge delay {self.min_ms}–{self.max_ms} ms does not fit {self.digits} digits")
        return self


class VersionFields(Frozen):
    """Field widths and caps for Rapid² software from major version ``from_major`` on."""

    from_major: int = Field(ge=0)
    pulses_digits: int = Field(ge=1)
    duration_digits: int = Field(ge=1)
    wait_digits: int = Field(ge=1)
    max_pulses: int = Field(ge=1)
    max_duration_tenths: int = Field(ge=1)
    charge_delay: ChargeDelay | None

    @model_validator(mode="after")
    def _caps_fit_fields(self) -> VersionFields:
        for cap, digits in (("max_pulses", "pulses_digits"), ("max_duration_tenths", "duration_digits")):
            if getattr(self, cap) > 10 ** getattr(self, digits) - 1:
                raise ValueError(f"{cap} {getattr(self, cap)} does not fit {getattr(self, digits)} digits")
        return self


class VariantInfo(Frozen):
    display_name: str
    magpy_type: int = Field(ge=0)


class RapidTrains(Frozen):
    variants: Annotated[dict[Variant, VariantInfo], AfterValidator(_freeze)]
    single_pulse_interval_s: Positive
    enhanced_single_pulse_interval_s: Positive
    post_train_wait_min_s: Positive
    frequency_step_hz: Positive
    min_frequency_hz: Positive
    frequency_ceiling_hz: Annotated[dict[MainsVoltage, Positive], AfterValidator(_freeze)]
    energy: EnergyBudget
    energy_per_pulse_j: DecadeRows
    max_frequency_hz: Annotated[dict[MainsVoltage, dict[Variant, FrequencyTable]], AfterValidator(_freeze)]
    max_frequency_overrides: tuple[FrequencyOverride, ...]
    software_versions: tuple[VersionFields, ...]

    @model_validator(mode="after")
    def _consistent(self) -> RapidTrains:
        if set(self.variants) != set(VARIANTS):
            raise ValueError(f"variants must be exactly {VARIANTS}")
        if min(self.energy_per_pulse_j) != 0:
            raise ValueError("energy_per_pulse_j must start at 0 %")
        energies = [self.energy_j(p) for p in range(101)]
        # Energy grows with the square of the output voltage: a falling entry is a typo.
        if any(later < earlier for earlier, later in itertools.pairwise(energies)):
            raise ValueError("energy_per_pulse_j must not fall as power rises")
        for mains_v in MAINS_VOLTAGES:
            if set(self.max_frequency_hz.get(mains_v, {})) != set(VARIANTS):
                raise ValueError(f"max_frequency_hz[{mains_v}] must list every variant {VARIANTS}")
            ceiling = self.frequency_ceiling_hz[mains_v]
            for variant, table in self.max_frequency_hz[mains_v].items():
                outside = [p for p in range(101) if not 0 < table.hz_at(p) <= ceiling]
                if outside:
                    raise ValueError(f"{mains_v} V {variant}: not within (0, {ceiling}] Hz at {outside} %")
        for override in self.max_frequency_overrides:
            listed = self.max_frequency_hz[override.mains_v][override.variant].hz_at(override.power_pct)
            if listed != override.table_hz:
                raise ValueError(
                    f"override {override.mains_v} V {override.variant} {override.power_pct} %: "
                    f"table_hz {override.table_hz} but the table holds {listed}"
                )
        majors = [row.from_major for row in self.software_versions]
        if not majors or majors[0] != 0 or majors != sorted(set(majors)):
            raise ValueError(f"software_versions must start at from_major 0 and rise strictly, got {majors}")
        return self

    def energy_j(self, power_pct: int) -> float:
        return _row_value(self.energy_per_pulse_j, power_pct)

    def max_frequency(self, mains_v: MainsVoltage, variant: Variant, power_pct: int) -> float:
        for override in self.max_frequency_overrides:
            if (override.mains_v, override.variant, override.power_pct) == (mains_v, variant, power_pct):
                return override.use_hz
        return self.max_frequency_hz[mains_v][variant].hz_at(power_pct)

    def version_fields(self, version: SoftwareVersion | None) -> VersionFields:
        if version is None:
            return self.software_versions[0]
        return [row for row in self.software_versions if row.from_major <= version[0]][-1]


class SpecFile(Frozen):
    """One ``specs/*.yaml`` file."""

    schema_version: Literal[1]
    model: str
    display_name: str
    capabilities: frozenset[Capability]
    output: Output
    timing: Timing
    coil: Coil
    recharge: tuple[RechargeStep, ...] | None = None
    paired_pulse: PairedPulse | None = None
    rapid: RapidTrains | None = None
    reviewed: Review

    @model_validator(mode="after")
    def _consistent(self) -> SpecFile:
        def must(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(message)

        has_trains = self.rapid is not None
        must((Capability.INTERNAL_TRAIN in self.capabilities) == has_trains,
             "internal_train capability ⟺ a rapid section")
        must((Capability.PAIRED_PULSE in self.capabilities) == (self.paired_pulse is not None),
             "paired_pulse capability ⟺ a paired_pulse section")
        must((Capability.ENHANCED_POWER in self.capabilities) == (self.output.enhanced_max_pct is not None),
             "enhanced_power capability ⟺ output.enhanced_max_pct")
        must((self.recharge is None) == has_trains,
             "exactly one of recharge (200², BiStim) or rapid (Rapid²)")
        if self.recharge is not None:
            starts = [step.from_pct for step in self.recharge]
            must(bool(starts) and starts[0] == 0 and starts == sorted(set(starts)),
                 f"recharge steps must start at 0 % and rise strictly, got {starts}")
        missing = self._fact_paths() - set(self.reviewed.facts)
        extra = set(self.reviewed.facts) - self._fact_paths()
        must(not missing, f"values without provenance under reviewed.facts: {sorted(missing)}")
        must(not extra, f"reviewed.facts names values the file does not hold: {sorted(extra)}")
        return self

    def _fact_paths(self) -> set[str]:
        paths = {"capabilities"} | ({"recharge"} if self.recharge is not None else set())
        for name in ("output", "timing", "coil", "paired_pulse", "rapid"):
            section = getattr(self, name)
            if section is not None:
                paths |= {f"{name}.{field}" for field, value in section if value is not None}
        return paths


# --- the resolved spec -----------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_version(version: SoftwareVersion | None) -> SoftwareVersion | None:
    if version is None:
        return None
    if (
        not isinstance(version, tuple)
        or not version
        or any(isinstance(part, bool) or not isinstance(part, int) or part < 0 for part in version)
    ):
        raise InvalidArgument(
            f"a software version is a tuple of non-negative integers such as (9, 0), got {version!r}",
            hint="pass the version the driver parsed from the `N` reply, or None if unknown",
        )
    return version


class MagstimSpec(Frozen):
    """Limits of one Magstim model (and, for a Rapid², one variant, mains voltage and version).

    Implements :class:`tmsctl.drivers.base.DeviceLimits`. Build it with :func:`load_spec`.
    """

    data: SpecFile
    variant: Variant | None = None
    mains_v: MainsVoltage | None = None
    software_version: tuple[Annotated[int, Field(strict=True, ge=0)], ...] | None = None

    @model_validator(mode="after")
    def _selection_matches_model(self) -> MagstimSpec:
        has_trains = self.data.rapid is not None
        if has_trains != (self.variant is not None) or has_trains != (self.mains_v is not None):
            raise ValueError("variant and mains_v are given for a Rapid², and only for a Rapid²")
        return self

    def __hash__(self) -> int:
        # The data is fixed by the model name (shipped files); its mappings are not hashable.
        return hash((self.data.model, self.variant, self.mains_v, self.software_version))

    # -- DeviceLimits ------------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self.data.model

    @property
    def display_name(self) -> str:
        if self.data.rapid is None or self.variant is None:
            return self.data.display_name
        return f"{self.data.rapid.variants[self.variant].display_name} ({self.mains_v} V)"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.data.capabilities

    @property
    def max_intensity_pct_mso(self) -> int:
        return self.data.output.max_pct

    @property
    def max_pulses_per_train(self) -> int:
        """1 on a 200² or BiStim: they have no internal trains, every pulse is host-triggered."""
        if self.data.rapid is None:
            return 1
        return self.max_pulses(self.software_version)

    @property
    def max_train_duration_s(self) -> float:
        """0.0 on a 200² or BiStim: a one-pulse train has no duration."""
        if self.data.rapid is None:
            return 0.0
        return self.max_duration_s(self.software_version)

    @property
    def frequency_step_hz(self) -> float:
        """0.0 on a 200² or BiStim: pulses are host-timed, the device has no frequency grid."""
        return 0.0 if self.data.rapid is None else self.data.rapid.frequency_step_hz

    def max_frequency_hz(self, intensity_pct_mso: float) -> float:
        """The frequency table's value (Rapid²), or 1 / recharge time (200², BiStim)."""
        power_pct = self._train_power(intensity_pct_mso)
        rapid = self.data.rapid
        if rapid is None:
            return 1.0 / self._recharge_s(power_pct)
        assert self.mains_v is not None and self.variant is not None  # guaranteed by the validator
        return rapid.max_frequency(self.mains_v, self.variant, power_pct)

    def max_train_on_time_s(self, intensity_pct_mso: float, frequency_hz: float) -> float:
        """Energy-limited on-time, or ``inf`` when the train may run continuously.

        A train may run continuously when its energy-limited on-time exceeds 60 s (so trains
        depositing exactly the shed rate get a finite 60 s, as the bulletin's wording says).
        The 200² and BiStim have no published duty limit: ``inf`` (their trains are one pulse).
        """
        raw_s = self.energy_limited_on_time_s(intensity_pct_mso, frequency_hz)
        rapid = self.data.rapid
        if rapid is None or raw_s > rapid.energy.continuous_above_on_time_s:
            return math.inf
        return raw_s

    def min_inter_train_interval_s(
        self, intensity_pct_mso: float, frequency_hz: float, pulses_per_train: int
    ) -> float:
        """Rapid²: ``max(0.5 s, N·(f·E − 1050) / (1050·f))``; 200², BiStim: the recharge time.

        The wait counts from the end of the train, ``N / f`` after its first pulse.
        """
        power_pct = self._train_power(intensity_pct_mso)
        frequency_hz = self._frequency(frequency_hz)
        pulses = self._pulses(pulses_per_train)
        rapid = self.data.rapid
        if rapid is None:
            return self._recharge_s(power_pct)
        energy_j = rapid.energy_j(power_pct)
        shed = rapid.energy.shed_rate_j_per_s
        energy_wait_s = pulses * (frequency_hz * energy_j - shed) / (shed * frequency_hz)
        return max(rapid.post_train_wait_min_s, energy_wait_s)

    def min_single_pulse_interval_s(self, intensity_pct_mso: float) -> float:
        """Rapid²: 1 s (serial triggering), 2 s above 100 % (enhanced); 200², BiStim: recharge."""
        rapid = self.data.rapid
        output = self.data.output
        if rapid is None:
            return self._recharge_s(self._train_power(intensity_pct_mso))
        power_pct = self._power(intensity_pct_mso, upper_pct=output.enhanced_max_pct or output.max_pct)
        if power_pct > output.max_pct:
            return rapid.enhanced_single_pulse_interval_s
        return rapid.single_pulse_interval_s

    # -- energy (Rapid²) ---------------------------------------------------------------------

    def energy_per_pulse_j(self, power_pct: float) -> float:
        """Joules per pulse at this output (Rapid² table, 0–100 %)."""
        return self._rapid("an energy-per-pulse table").energy_j(self._train_power(power_pct))

    def energy_limited_on_time_s(self, power_pct: float, frequency_hz: float) -> float:
        """``63000 / (f·E)`` before the 60 s continuous rule is applied (``inf`` at 0 J)."""
        power = self._train_power(power_pct)
        frequency_hz = self._frequency(frequency_hz)
        if self.data.rapid is None:
            return math.inf
        energy_j = self.data.rapid.energy_j(power)
        return math.inf if energy_j == 0 else self.data.rapid.energy.budget_j / (frequency_hz * energy_j)

    def max_continuous_frequency_hz(self, power_pct: float) -> float:
        """``1050 / E``: the highest frequency a train may hold indefinitely (``inf`` at 0 J)."""
        rapid = self._rapid("a continuous-frequency limit")
        energy_j = rapid.energy_j(self._train_power(power_pct))
        return math.inf if energy_j == 0 else rapid.energy.shed_rate_j_per_s / energy_j

    def energy_model(self) -> EnergyModel | NoEnergyModel:
        rapid = self.data.rapid
        if rapid is None:
            return NoEnergyModel("a 200² or BiStim² fires one pulse per command; its recharge time limits the rate")
        return EnergyModel(rapid.energy.budget_j, rapid.energy.shed_rate_j_per_s, self.energy_per_pulse_j)

    @property
    def energy_budget_j(self) -> float | None:
        """Energy the unit may hold (63 kJ on a Rapid²); None for models without trains."""
        return self.data.rapid.energy.budget_j if self.data.rapid else None

    @property
    def energy_drain_w(self) -> float | None:
        """Rate at which the unit sheds energy (1050 J/s on a Rapid²)."""
        return self.data.rapid.energy.shed_rate_j_per_s if self.data.rapid else None

    # -- recharge, paired pulses, timing, coil -----------------------------------------------

    def recharge_time_s(self, power_pct: float) -> float:
        """Shortest interval between pulses of a 200² or BiStim at this output."""
        return self._recharge_s(self._train_power(power_pct))

    def isi_range_ms(self, *, high_resolution: bool) -> IsiRange:
        """BiStim inter-pulse interval range and step in the chosen timing resolution."""
        paired = self.data.paired_pulse
        if paired is None:
            raise InvalidArgument(f"{self.model} has no paired pulses: only the BiStim² has two outputs")
        return paired.high_resolution if high_resolution else paired.low_resolution

    def paired_isi_modes_ms(self) -> tuple[tuple[float, float, float], ...]:
        """``(min, max, step)`` of the BiStim's low- then high-resolution ISI timing (PairedPulseLimits)."""
        paired = self.data.paired_pulse
        if paired is None:
            return ()
        return tuple((r.min_ms, r.max_ms, r.step_ms) for r in (paired.low_resolution, paired.high_resolution))

    @property
    def timing(self) -> Timing:
        """Keep-alive deadlines and period, arm → ready, armed idle disarm, power settling."""
        return self.data.timing

    @property
    def enhanced_max_intensity_pct_mso(self) -> int | None:
        return self.data.output.enhanced_max_pct

    @property
    def post_train_wait_min_s(self) -> float:
        return self._rapid("internal trains").post_train_wait_min_s

    @property
    def coil_temperature_limit_c(self) -> float:
        return self.data.coil.temperature_limit_c

    def coil_temperature_allows_arming(self, temperature_c: float) -> bool:
        """False at or above the limit: the boundary itself refuses."""
        if not _is_number(temperature_c) or math.isnan(temperature_c):
            raise InvalidArgument(f"a coil temperature in °C is a number, got {temperature_c!r}")
        return temperature_c < self.data.coil.temperature_limit_c

    # -- software version (Rapid²) -----------------------------------------------------------

    def for_version(self, version: SoftwareVersion | None) -> MagstimSpec:
        """A copy refined for this software version (``None``: unknown, conservative)."""
        version = _check_version(version)
        return MagstimSpec(
            data=self.data, variant=self.variant, mains_v=self.mains_v, software_version=version
        )

    def version_fields(self, version: SoftwareVersion | None) -> VersionFields:
        """Field widths and caps for this version; ``None`` (unknown) gives the pre-v7 row."""
        return self._rapid("software-version field widths").version_fields(_check_version(version))

    def pulses_digits(self, version: SoftwareVersion | None) -> int:
        return self.version_fields(version).pulses_digits

    def duration_digits(self, version: SoftwareVersion | None) -> int:
        return self.version_fields(version).duration_digits

    def wait_digits(self, version: SoftwareVersion | None) -> int:
        return self.version_fields(version).wait_digits

    def max_pulses(self, version: SoftwareVersion | None) -> int:
        return self.version_fields(version).max_pulses

    def max_duration_s(self, version: SoftwareVersion | None) -> float:
        return self.version_fields(version).max_duration_tenths / 10

    def charge_delay_digits(self, version: SoftwareVersion | None) -> int | None:
        delay = self.version_fields(version).charge_delay
        return None if delay is None else delay.digits

    def charge_delay_range_ms(self, version: SoftwareVersion | None) -> tuple[int, int] | None:
        """Inclusive charge-delay range, or ``None`` before v9 (no charge-delay command)."""
        delay = self.version_fields(version).charge_delay
        return None if delay is None else (delay.min_ms, delay.max_ms)

    # -- argument checks ---------------------------------------------------------------------

    def _rapid(self, what: str) -> RapidTrains:
        if self.data.rapid is None:
            raise InvalidArgument(f"{self.model} has no {what}: only the Rapid² runs internal trains")
        return self.data.rapid

    def _power(self, value: float, *, upper_pct: int) -> int:
        if not (_is_number(value) and math.isfinite(value) and value == int(value)):
            raise InvalidArgument(
                f"{self.model}: output power must be a whole percentage of maximum output, got {value!r}",
                hint="the stimulator sets output in 1 % steps; round the intensity explicitly first",
            )
        if not 0 <= value <= upper_pct:
            raise InvalidArgument(f"{self.model}: output power must be 0–{upper_pct} % MSO, got {value}")
        return int(value)

    def _train_power(self, value: float) -> int:
        enhanced = self.data.output.enhanced_max_pct
        power_pct = self._power(value, upper_pct=enhanced or self.data.output.max_pct)
        if power_pct > self.data.output.max_pct:
            raise InvalidArgument(
                f"{self.model}: {power_pct} % is enhanced power, which is single-pulse only; "
                f"trains and the energy and frequency tables stop at {self.data.output.max_pct} %"
            )
        return power_pct

    def _frequency(self, value: float) -> float:
        if not (_is_number(value) and math.isfinite(value) and value > 0):
            raise InvalidArgument(f"{self.model}: frequency must be a positive number of Hz, got {value!r}")
        return float(value)

    def _pulses(self, value: int) -> int:
        cap = self.max_pulses_per_train
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= cap:
            version = ".".join(map(str, self.software_version or ())) or "unknown"
            raise InvalidArgument(
                f"{self.model}: pulses per train must be a whole number 1–{cap}, got {value!r} "
                f"(software version {version})",
                hint="a Rapid² reading v9 or later allows 6000; refine the spec with for_version()"
                if self.data.rapid is not None
                else "the 200² and BiStim fire one pulse per trigger",
            )
        return int(value)

    def _recharge_s(self, power_pct: int) -> float:
        steps = self.data.recharge
        if steps is None:
            raise InvalidArgument(f"{self.model} has no recharge table; use min_single_pulse_interval_s()")
        return [step.interval_s for step in steps if step.from_pct <= power_pct][-1]


# --- loading ---------------------------------------------------------------------------------


@cache
def load_spec_file(model: str) -> SpecFile:
    """Read and validate ``specs/<file>.yaml`` for a model name (cached)."""
    if model not in SPEC_FILES:
        raise InvalidArgument(f"no Magstim model {model!r}; known: {', '.join(SPEC_FILES)}")
    resource = files("tmsctl.drivers.magstim").joinpath("specs", SPEC_FILES[model])
    try:
        raw = YAML(typ="safe", pure=True).load(resource.read_text(encoding="utf-8"))
        data = SpecFile.model_validate(raw)
    except (OSError, ValidationError, ValueError) as exc:
        raise SpecFileError(f"spec file {SPEC_FILES[model]} for {model} is invalid: {exc}") from exc
    if data.model != model:
        raise SpecFileError(f"spec file {SPEC_FILES[model]} describes {data.model!r}, expected {model!r}")
    return data


def load_spec(model: str, *, variant: str = "rapid2", mains_v: int = 240) -> MagstimSpec:
    """The limits of a Magstim model, software version unknown (see :meth:`MagstimSpec.for_version`).

    ``variant`` (rapid2 | super | superplus) and ``mains_v`` (240 | 115) select the Rapid²
    frequency table; they are checked for every model but only a Rapid² depends on them.
    """
    if model not in SPEC_FILES:
        raise InvalidArgument(f"no Magstim model {model!r}; known: {', '.join(SPEC_FILES)}")
    if variant not in VARIANTS:
        raise InvalidArgument(f"Rapid² variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if isinstance(mains_v, bool) or mains_v not in MAINS_VOLTAGES:
        raise InvalidArgument(f"mains voltage must be 240 or 115 (V), got {mains_v!r}")
    return _load_spec(model, variant, mains_v)


@cache
def _load_spec(model: str, variant: str, mains_v: int) -> MagstimSpec:
    data = load_spec_file(model)
    if data.rapid is None:
        return MagstimSpec(data=data)
    return MagstimSpec.model_validate({"data": data, "variant": variant, "mains_v": mains_v})
