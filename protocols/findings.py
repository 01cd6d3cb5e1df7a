"""What the checker found: one ``Finding`` per rule that has something to say.

``refuse`` is a hard limit (never overridable), ``warn`` stops a session until an operator records
a reason for overriding that rule, ``info`` records a decision (a rounding, a table look-up) or
something that could not be checked yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    REFUSE = "refuse"
    WARN = "warn"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    message: str
    """A sentence a technician understands: what, the value, the limit."""
    source: str
    """Where the rule comes from (paper, bulletin, device spec, our design)."""
    value: float | None = None
    limit: float | None = None
    unit: str = ""
    status: str = ""
    """Evidence tag of the rule's source: V, S, C, R, D or U."""
    trains: tuple[int, ...] = ()
    """1-based numbers of the trains concerned; empty when the finding is about the whole protocol."""
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "severity": str(self.severity),
            "message": self.message,
            "source": self.source,
            "status": self.status,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "trains": list(self.trains),
            "hint": self.hint,
        }


@dataclass(frozen=True)
class Issue:
    """A finding before it is tied to trains (rules evaluate one train shape at a time)."""

    rule_id: str
    severity: Severity
    text: str
    source: str
    value: float | None = None
    limit: float | None = None
    unit: str = ""
    status: str = ""
    hint: str = ""

    def finding(self, trains: Iterable[int] = ()) -> Finding:
        numbers = tuple(sorted(set(trains)))
        label = describe_trains(numbers)
        message = f"{label}: {self.text}" if label else self.text
        return Finding(
            rule_id=self.rule_id,
            severity=self.severity,
            message=message,
            source=self.source,
            value=self.value,
            limit=self.limit,
            unit=self.unit,
            status=self.status,
            trains=numbers,
            hint=self.hint,
        )


def describe_trains(numbers: tuple[int, ...]) -> str:
    """'train 3', 'trains 1–74', 'trains 1–5, 9' from 1-based train numbers."""
    if not numbers:
        return ""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    parts = [str(a) if a == b else f"{a}–{b}" for a, b in runs]
    if len(parts) > 4:
        parts = [*parts[:3], f"… ({len(numbers)} in all)"]
    noun = "train" if len(numbers) == 1 else "trains"
    return f"{noun} {', '.join(parts)}"


SEVERITY_ORDER = {Severity.REFUSE: 0, Severity.WARN: 1, Severity.INFO: 2}


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.trains[:1], f.rule_id)))
