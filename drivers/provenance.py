"""Provenance of reviewed spec data: every value in a spec file names its source and status.

A spec file carries ``reviewed.facts``: dotted paths to its values, each with a status tag
(V verified in a primary text, C what a named open-source implementation does, D derived or
decided by us, U unverified — which must say why the value was chosen) and the sources it
comes from. A path segment ``*`` matches any key, and a fact on a section covers everything
inside it; the most specific fact wins (a named key beats a wildcard, compared from the left).
The loader refuses a file where a value has no fact, or a fact names nothing in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tmsctl.core.errors import TmsError

StatusTag = Literal["V", "C", "D", "U"]


class SpecFileError(TmsError):
    """A shipped spec file is missing or fails validation: a packaging or review mistake."""

    hint = "the device limits cannot be trusted; reinstall tmsctl or review the last change to that file"


def freeze(value: Any) -> Any:
    """Mappings read-only all the way down: specs are cached, shared, and safety data."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    return value


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Provenance(Frozen):
    status: StatusTag
    from_: tuple[str, ...] = Field(alias="from", min_length=1)
    note: str | None = None

    @model_validator(mode="after")
    def _unverified_values_say_why(self) -> Provenance:
        if self.status == "U" and not (self.note and self.note.strip()):
            raise ValueError("a U (unverified) value needs a note saying why this value was chosen")
        return self


class Review(Frozen):
    reference: str
    hardware_checked: bool
    sources: Annotated[dict[str, str], AfterValidator(freeze)]
    facts: Annotated[dict[str, Provenance], AfterValidator(freeze)]

    @model_validator(mode="after")
    def _cites_known_sources(self) -> Review:
        for path, fact in self.facts.items():
            for citation in fact.from_:
                source_id = citation.split()[0]
                if source_id not in self.sources:
                    raise ValueError(
                        f"fact {path!r} cites {source_id!r}, which is not under reviewed.sources "
                        f"({', '.join(self.sources)})"
                    )
        return self

    def provenance(self, path: str) -> Provenance:
        """The most specific fact covering ``path`` (a dotted path to a value)."""
        best = _best_fact(path.split("."), self.facts)
        if best is None:
            raise KeyError(f"no reviewed fact covers {path!r}")
        return self.facts[best]


def leaf_paths(data: Mapping[Any, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Dotted paths of every value: mappings are walked, everything else (lists too) is a leaf."""
    paths: set[tuple[str, ...]] = set()
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            paths |= leaf_paths(value, path)
        else:
            paths.add(path)
    return paths


def _matches(fact: list[str], leaf: tuple[str, ...]) -> bool:
    return len(fact) <= len(leaf) and all(part in ("*", key) for part, key in zip(fact, leaf))


def _best_fact(leaf: list[str] | tuple[str, ...], facts: Mapping[str, Provenance]) -> str | None:
    candidates = [path for path in facts if _matches(path.split("."), tuple(leaf))]
    if not candidates:
        return None
    # Compared segment by segment from the left: a named key beats a wildcard, and either beats
    # a path that has already ended ("models.x.modes" over "models.*.modes" over "models").
    return max(candidates, key=lambda path: tuple(1 if part == "*" else 2 for part in path.split(".")))


def check_file_coverage(raw: Any, header_keys: tuple[str, ...]) -> Any:
    """``check_coverage`` on a spec file as read, for a model's ``mode="before"`` validator:
    everything but the header keys is a value that needs a fact. Returns ``raw`` unchanged."""
    if isinstance(raw, Mapping):
        reviewed = raw.get("reviewed")
        facts = reviewed.get("facts", {}) if isinstance(reviewed, Mapping) else {}
        values = {key: value for key, value in raw.items() if key not in header_keys}
        check_coverage(values, {path: Provenance.model_validate(fact) for path, fact in facts.items()})
    return raw


def check_coverage(values: Mapping[Any, Any], facts: Mapping[str, Provenance]) -> None:
    """Every value has a fact and every fact names a value; raises ``ValueError`` otherwise."""
    leaves = leaf_paths(values)
    uncovered = sorted(".".join(leaf) for leaf in leaves if _best_fact(leaf, facts) is None)
    if uncovered:
        raise ValueError(f"values without provenance under reviewed.facts: {uncovered}")
    idle = sorted(path for path in facts if not any(_matches(path.split("."), leaf) for leaf in leaves))
    if idle:
        raise ValueError(f"reviewed.facts names values the file does not hold: {idle}")
