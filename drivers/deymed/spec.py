"""DuoMAG model spec: device limits loaded from reviewed data (``specs/duomag.yaml``).

``load_spec("deymed-duomag")`` returns a :class:`DuoMagSpec`, which implements
:class:`tmsctl.drivers.base.DeviceLimits`.

The DuoMAG has no train command and answers no command, so it reads like the Magstim 200² in
the ``DeviceLimits`` vocabulary: every pulse is host-triggered (one pulse per "train", no
duration, no frequency grid), the highest rate is one pulse per recharge interval, and
``Capability.CONFIRMED_REPLIES`` is absent — the controller must record its actions as
unconfirmed (see ``tmsctl.drivers.deymed.codec``).
"""

from __future__ import annotations

import math
from functools import cache
from importlib.resources import files
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator
from ruamel.yaml import YAML

from tmsctl.core.errors import InvalidArgument
from tmsctl.core.errors import InvalidArgument as _InvalidArgument
from tmsctl.drivers.base import Capability, EnergyModel, NoEnergyModel
from tmsctl.drivers.checks import positive_hz, whole_percent
from tmsctl.drivers.provenance import (
    Frozen,
    Provenance,
    Review,
    SpecFileError,
    check_file_coverage,
)

from .codec import REPLIES_TO_COMMANDS
from .delays import MAX_DELAY_US, DelayCode, delay_code_for

MODEL = "deymed-duomag"
SPEC_FILE = "duomag.yaml"
_HEADER_KEYS = ("schema_version", "model", "display_name", "reviewed")

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Output(Frozen):
    max_pct: int = Field(ge=1, le=100)


class Timing(Frozen):
    min_single_pulse_interval_s: Positive


class DelayRange(Frozen):
    min: Annotated[int, Field(ge=0, strict=True)]
    max: Annotated[int, Field(ge=1, le=MAX_DELAY_US, strict=True)]

    @model_validator(mode="after")
    def _ordered(self) -> DelayRange:
        if self.min > self.max:
            raise ValueError(f"delay range {self.min}–{self.max} µs is empty")
        return self


class Delays(Frozen):
    recharge_delay_us: DelayRange
    ttl_out_delay_us: DelayRange


class SpecFile(Frozen):
    """``specs/duomag.yaml``."""

    schema_version: Literal[1]
    model: Literal["deymed-duomag"]
    display_name: str
    capabilities: frozenset[Capability]
    output: Output
    timing: Timing
    delays: Delays
    reviewed: Review

    @model_validator(mode="before")
    @classmethod
    def _every_value_reviewed(cls, raw: Any) -> Any:
        return check_file_coverage(raw, _HEADER_KEYS)

    @model_validator(mode="after")
    def _consistent(self) -> SpecFile:
        impossible = {
            Capability.CONFIRMED_REPLIES: "the unit answers no command",
            Capability.INTERNAL_TRAIN: "there is no train command",
            Capability.THETA_BURST: "there is no burst command",
        }
        claimed = sorted(f"{c.value} ({why})" for c, why in impossible.items() if c in self.capabilities)
        if claimed:
            raise ValueError(f"the DuoMAG cannot have: {', '.join(claimed)}")
        if REPLIES_TO_COMMANDS:
            raise ValueError("the codec says the unit replies; the spec says it does not")
        if Capability.SINGLE_PULSE not in self.capabilities:
            raise ValueError("the DuoMAG fires single pulses")
        return self



class DuoMagSpec(Frozen):
    """The DuoMAG's limits. Implements :class:`tmsctl.drivers.base.DeviceLimits`."""

    data: SpecFile

    def __hash__(self) -> int:
        return hash(self.data.model)

    # -- DeviceLimits ---------------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self.data.model

    @property
    def display_name(self) -> str:
        return self.data.display_name

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.data.capabilities

    @property
    def max_intensity_pct_mso(self) -> int:
        return self.data.output.max_pct

    @property
    def max_pulses_per_train(self) -> int:
        """1: there is no train command; every pulse is host-triggered."""
        return 1

    @property
    def max_train_duration_s(self) -> float:
        """0.0: a one-pulse train has no duration."""
        return 0.0

    @property
    def frequency_step_hz(self) -> float:
        """0.0: pulses are host-timed, the device has no frequency grid."""
        return 0.0

    def max_frequency_hz(self, intensity_pct_mso: float) -> float:
        """One pulse per recharge interval."""
        return 1.0 / self.min_single_pulse_interval_s(intensity_pct_mso)

    def max_train_on_time_s(self, intensity_pct_mso: float, frequency_hz: float) -> float:
        """``inf``: no duty rule is published (and trains are one pulse)."""
        self._intensity(intensity_pct_mso)
        self._frequency(frequency_hz)
        return math.inf

    def min_inter_train_interval_s(
        self, intensity_pct_mso: float, frequency_hz: float, pulses_per_train: int
    ) -> float:
        """The recharge interval: a "train" is one host-triggered pulse."""
        self._frequency(frequency_hz)
        if isinstance(pulses_per_train, bool) or pulses_per_train != 1:
            raise InvalidArgument(
                f"{self.model}: trains are one host-triggered pulse, got {pulses_per_train!r}"
            )
        return self.min_single_pulse_interval_s(intensity_pct_mso)

    def min_single_pulse_interval_s(self, intensity_pct_mso: float) -> float:
        self._intensity(intensity_pct_mso)
        return self.data.timing.min_single_pulse_interval_s

    def energy_model(self) -> EnergyModel | NoEnergyModel:
        return NoEnergyModel("Deymed publishes no energy budget for the DuoMAG; the host fires every pulse and its recharge time limits the rate")

    def for_version(self, version: tuple[int, ...] | None) -> DuoMagSpec:
        raise _InvalidArgument(f"{self.display_name} limits do not depend on a software version")

    # -- delays ---------------------------------------------------------------------------------

    def check_recharge_delay_us(self, delay_us: object) -> DelayCode:
        """The encoding of a recharge delay within the accepted range, exactly or not at all."""
        return self._delay("recharge delay", self.data.delays.recharge_delay_us, delay_us)

    def check_ttl_out_delay_us(self, delay_us: object) -> DelayCode:
        """The encoding of a TTL-out delay within the accepted range, exactly or not at all."""
        return self._delay("TTL-out delay", self.data.delays.ttl_out_delay_us, delay_us)

    def provenance(self, path: str) -> Provenance:
        return self.data.reviewed.provenance(path)

    # -- argument checks ------------------------------------------------------------------------

    def _delay(self, name: str, allowed: DelayRange, delay_us: object) -> DelayCode:
        if isinstance(delay_us, bool) or not isinstance(delay_us, int):
            raise InvalidArgument(f"{name} must be an integer number of µs, got {delay_us!r}")
        if not allowed.min <= delay_us <= allowed.max:
            raise InvalidArgument(
                f"{name} must be {allowed.min / 1000:g}–{allowed.max / 1000:g} ms, got {delay_us / 1000:g} ms"
            )
        return delay_code_for(delay_us)

    def _intensity(self, value: object) -> int:
        return whole_percent(
            value, who=self.model, ceiling=self.data.output.max_pct,
            step_hint="the DuoMAG sets intensity in 1 % steps; round the intensity explicitly first",
        )

    def _frequency(self, value: object) -> float:
        return positive_hz(value, who=self.model)


@cache
def load_spec_file() -> SpecFile:
    """Read and validate ``specs/duomag.yaml`` (cached)."""
    resource = files("tmsctl.drivers.deymed").joinpath("specs", SPEC_FILE)
    try:
        raw = YAML(typ="safe", pure=True).load(resource.read_text(encoding="utf-8"))
        return SpecFile.model_validate(raw)
    except (OSError, ValidationError, ValueError) as exc:
        raise SpecFileError(f"spec file {SPEC_FILE} is invalid: {exc}") from exc


@cache
def load_spec(model: str = MODEL) -> DuoMagSpec:
    """The DuoMAG's limits (``"deymed-duomag"``, the one model the sources distinguish)."""
    if model != MODEL:
        raise InvalidArgument(f"no Deymed model {model!r}; known: {MODEL}")
    return DuoMagSpec(data=load_spec_file())
