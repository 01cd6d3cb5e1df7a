"""The safety rulebook: its data (``protocols/rules/*.yaml``) and the registry of its rules.

The data is validated and frozen at first use. The files are part of the package and reviewed like
code. There is deliberately no way to load a
different rulebook or to switch a rule off: a site policy may only make rules stricter
(``tmsctl.protocols.rules.SitePolicy``). The version recorded with every check names the declared
version and a hash of the files' bytes, so any edit to the data shows up in session logs.

Every rule is a function registered with ``@rule(id, severity, scope=...)``; ``registered_rules()``
lists them in the order the checker applies them (``tmsctl.protocols.rules``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML

from tmsctl.core.errors import TmsError
from tmsctl.protocols.findings import Issue, Severity

RULE_FILES = (
    "rulebook.yaml",
    "wassermann_1998.yaml",
    "chen_1997.yaml",
    "coil_families.yaml",
    "theta_burst.yaml",
    "site_caps.yaml",
)

Status = Literal["V", "S", "C", "R", "D", "U"]
Positive = Annotated[float, Field(gt=0)]


class RulebookError(TmsError):
    """The packaged rule data is broken: refuse to check anything rather than check less."""

    hint = "reinstall tmsctl; if you edited protocols/rules, fix the file named above"


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _Header(_Data):
    schema_version: Literal[1]
    version: str


@dataclass(frozen=True)
class WassermannCell:
    frequency_hz: float
    intensity_pct_mt: float
    limit_s: float
    open_ended: bool
    """'>N': N s was the longest tested duration, not a known limit."""

    def describe(self) -> str:
        bound = f">{self.limit_s:g}" if self.open_ended else f"{self.limit_s:g}"
        return f"{self.frequency_hz:g} Hz / {self.intensity_pct_mt:g} % = {bound} s"


class _WassermannRow(_Data):
    frequency_hz: Positive
    max_train_s: tuple[float | str, ...]

    @field_validator("max_train_s", mode="before")
    @classmethod
    def _as_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


class WassermannTable(_Data):
    schema_version: Literal[1]
    source: str
    status: Status
    intensity_columns_pct_mt: tuple[float, ...]
    rows: tuple[_WassermannRow, ...]
    strict_mode_factor: Annotated[float, Field(gt=0, le=1)]
    strict_mode_source: str

    @field_validator("intensity_columns_pct_mt", "rows", mode="before")
    @classmethod
    def _as_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    def cells(self) -> dict[tuple[float, float], WassermannCell]:
        table: dict[tuple[float, float], WassermannCell] = {}
        for row in self.rows:
            if len(row.max_train_s) != len(self.intensity_columns_pct_mt):
                raise ValueError(f"the {row.frequency_hz:g} Hz row has {len(row.max_train_s)} cells")
            for column, raw in zip(self.intensity_columns_pct_mt, row.max_train_s, strict=True):
                open_ended = isinstance(raw, str)
                limit = float(raw.removeprefix(">")) if isinstance(raw, str) else float(raw)
                if (isinstance(raw, str) and not raw.startswith(">")) or limit <= 0:
                    raise ValueError(f"cell {row.frequency_hz:g} Hz / {column:g} % is {raw!r}")
                table[(row.frequency_hz, column)] = WassermannCell(
                    row.frequency_hz, column, limit, open_ended
                )
        return table


class ChenRule(_Data):
    schema_version: Literal[1]
    source: str
    status: Status
    min_inter_train_interval_s: Positive
    applies_above_pct_mt: Positive


class FamilyRules(_Data):
    table: Literal["wassermann", "envelope", "none"]
    source: str = ""
    status: Status | Literal[""] = ""
    max_frequency_hz: Positive | None = None
    max_train_duration_s: Positive | None = None
    min_inter_train_interval_s: Positive | None = None
    max_trains: Annotated[int, Field(ge=1)] | None = None
    max_intensity_pct_mt: Positive | None = None
    max_pulses_per_session: Annotated[int, Field(ge=1)] | None = None


class CoilFamilies(_Data):
    schema_version: Literal[1]
    families: dict[str, FamilyRules]


class ThetaBurstRules(_Data):
    schema_version: Literal[1]
    source: str
    status: Status
    pulses_per_burst: Annotated[int, Field(ge=1)]
    burst_frequency_hz: Positive
    burst_rate_hz: Positive
    itbs_train_duration_s: Positive
    itbs_train_onset_interval_s: Positive
    ctbs_max_continuous_s: Positive
    max_pulses_per_session: Annotated[int, Field(ge=1)]
    max_intensity_pct_mt: dict[Literal["rMT", "aMT"], Positive]


class SiteCaps(_Data):
    schema_version: Literal[1]
    source: str
    status: Status
    max_pulses_per_day: Annotated[int, Field(ge=1)]
    max_sessions_per_day: Annotated[int, Field(ge=1)]
    min_minutes_between_session_starts: Positive
    max_pulses_per_session: Annotated[int, Field(ge=1)]
    single_pulse_repetitive_interval_s: Positive
    max_motor_threshold_age_days: Positive


@dataclass(frozen=True)
class Rulebook:
    version: str
    wassermann: WassermannTable
    wassermann_cells: dict[tuple[float, float], WassermannCell]
    chen: ChenRule
    families: CoilFamilies
    theta_burst: ThetaBurstRules
    site: SiteCaps

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every registered rule, in the order the checker applies them."""
        return registered_rules()

    def family(self, name: str) -> FamilyRules:
        return self.families.families.get(name) or FamilyRules(table="none")

    def wassermann_lookup(self, frequency_hz: float, intensity_pct_mt: float) -> WassermannCell | None:
        """The cell for these parameters, rounding up to the next row and column; None outside the table."""
        tolerance = 1e-9
        rows = sorted(row.frequency_hz for row in self.wassermann.rows)
        columns = sorted(self.wassermann.intensity_columns_pct_mt)
        row = next((r for r in rows if frequency_hz <= r + tolerance), None)
        column = next((c for c in columns if intensity_pct_mt <= c + tolerance), None)
        if row is None or column is None:
            return None
        return self.wassermann_cells[(row, column)]


def _read(name: str) -> tuple[bytes, Any]:
    data = resources.files("tmsctl.protocols").joinpath("rules", name).read_bytes()
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    return data, yaml.load(data)


@cache
def rulebook() -> Rulebook:
    """The packaged rulebook (validated once per process)."""
    digest = hashlib.sha256()
    loaded: dict[str, Any] = {}
    for name in RULE_FILES:
        try:
            raw, data = _read(name)
        except Exception as error:  # any failure here means there is no rulebook
            raise RulebookError(f"rule file {name} cannot be read: {error}") from error
        digest.update(name.encode() + b"\0" + raw + b"\0")
        loaded[name] = data
    try:
        header = _Header.model_validate(loaded["rulebook.yaml"])
        wassermann = WassermannTable.model_validate(loaded["wassermann_1998.yaml"])
        book = Rulebook(
            version=f"{header.version}+{digest.hexdigest()[:12]}",
            wassermann=wassermann,
            wassermann_cells=wassermann.cells(),
            chen=ChenRule.model_validate(loaded["chen_1997.yaml"]),
            families=CoilFamilies.model_validate(loaded["coil_families.yaml"]),
            theta_burst=ThetaBurstRules.model_validate(loaded["theta_burst.yaml"]),
            site=SiteCaps.model_validate(loaded["site_caps.yaml"]),
        )
    except (ValidationError, ValueError) as error:
        raise RulebookError(f"rule data is invalid: {error}") from error
    for name, family in book.families.families.items():
        if family.table == "envelope" and None in (
            family.max_frequency_hz,
            family.max_train_duration_s,
            family.min_inter_train_interval_s,
            family.max_trains,
            family.max_intensity_pct_mt,
            family.max_pulses_per_session,
        ):
            raise RulebookError(f"coil family {name}: an envelope needs every limit")
    return book


# --- the rules: registered functions --------------------------------------------------------


class Scope(StrEnum):
    """What a rule is applied to, which is also when the checker applies it."""

    TRAIN = "train"
    """Each distinct train shape, given the gap after it: the device's limits on a physical train."""
    EXPOSURE = "exposure"
    """Each distinct train shape, then each continuous run of trains judged as one train (Chen's
    minimum interval): the coil family's tables, which bound an exposure, not one train timer."""
    SESSION = "session"
    """The schedule as a whole, with the day's history."""


RuleCheck = Callable[[Any], Iterable[Issue] | None]
"""A rule's function: its issues (none when the subject passes), or None when it does not apply."""

_Check = TypeVar("_Check", bound=RuleCheck)

FAMILY = "{family}"
"""In a rule id, the coil family of the schedule: ``envelope.{family}`` reports ``envelope.H1``."""


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    """The severity of the rule's own finding (a finding it also reports may have another)."""
    scope: Scope
    check: RuleCheck
    also: tuple[tuple[str, Severity], ...] = ()
    """Other findings the function reports, by id, with their severity: a table look-up, why the
    rule could not be applied."""
    listed: bool = True
    """Whether ``Verdict.checked`` names the rule when it applies. False for findings about what the
    check itself could not see (no device, no threshold), which bound nothing."""

    @property
    def reports(self) -> dict[str, Severity]:
        """Every finding id the function reports, with its severity."""
        return {self.id: self.severity, **dict(self.also)}

    def id_for(self, coil_family: str) -> str:
        return self.id.replace(FAMILY, coil_family)

    def reports_for(self, coil_family: str) -> frozenset[str]:
        return frozenset(rule_id.replace(FAMILY, coil_family) for rule_id in self.reports)


_REGISTRY: dict[tuple[str, Scope], Rule] = {}


def rule(
    id: str,
    severity: Severity,
    *,
    scope: Scope,
    also: Mapping[str, Severity] | None = None,
    listed: bool = True,
) -> Callable[[_Check], _Check]:
    """Register the decorated function as the rule ``id``; the checker applies rules in the order
    they are registered. A rule id may be registered once per scope (an envelope bounds each train
    and the session's totals)."""

    def register(check: _Check) -> _Check:
        key = (id, scope)
        if key in _REGISTRY:
            raise RulebookError(f"rule {id} is registered twice for the {scope} scope")
        _REGISTRY[key] = Rule(id, severity, scope, check, tuple((also or {}).items()), listed)
        return check

    return register


def registered_rules(scope: Scope | None = None) -> tuple[Rule, ...]:
    """The registered rules (of one scope), in the order the checker applies them."""
    import tmsctl.protocols.rules  # noqa: F401 — importing the checker registers every rule

    return tuple(entry for entry in _REGISTRY.values() if scope is None or entry.scope is scope)
