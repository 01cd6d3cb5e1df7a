"""The safety rulebook applied to an expanded schedule, and the verdict with overrides.

``check(protocol_or_schedule, ...)`` expands the protocol if needed, applies every rule that fits
it and returns a ``Verdict``:

* **refuse** — hard limits: the device's limits (maximum output, frequency at that output,
  energy/on-time, minimum wait between trains, pulses per train, single-pulse rate, capabilities),
  intensities above any stimulator's output, a motor threshold missing or taken with another coil
  or stimulator. Never overridable.
* **warn** — guideline limits: a figure-8 train beyond its Wassermann cell or outside the table,
  an inter-train interval under 5 s above 100 % MT (Chen 1997), H-coil parameters outside the
  cleared envelope, any repetitive protocol on a coil family without a table, non-standard theta
  burst, and the site caps per session and per day. A session may run only after an operator
  records a reason for overriding that rule id; ``check(..., overrides={rule_id: reason})``.
* **info** — decisions and things not yet checkable (a plan without device or threshold).

Which rules apply depends on the coil family (``protocols/rules/coil_families.yaml``): the
Wassermann table was built with figure-8 coils and cannot judge H-coil protocols.

Every rule is a function registered with ``@rule(id, severity, scope=...)``
(``tmsctl.protocols.rulebook``): the device's limits in ``device_rules``, the coil families' tables
in ``exposure_rules``, the site's caps in ``site_rules``. This module applies every registered rule
and records which applied (``Verdict.checked``).

Comparisons allow a relative 1e-9 so that float noise never turns "at the limit" into "over it".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

import tmsctl.protocols.device_rules as device_rules
import tmsctl.protocols.exposure_rules as exposure_rules
import tmsctl.protocols.site_rules as site_rules
from tmsctl.core.errors import InvalidArgument
from tmsctl.drivers.base import DeviceLimits
from tmsctl.protocols.device_rules import implied_capabilities
from tmsctl.protocols.findings import Finding, Issue, Severity, sort_findings
from tmsctl.protocols.models import Protocol
from tmsctl.protocols.rule_context import REPETITIVE, Evaluation, History, SitePolicy, TrainCase
from tmsctl.protocols.rule_context import number as _n
from tmsctl.protocols.rulebook import Rule, RulebookError, Scope, registered_rules, rulebook
from tmsctl.protocols.schedule import Schedule, ScheduledTrain
from tmsctl.protocols.thresholds import MotorThreshold

__all__ = ["SitePolicy", "Verdict", "check", "implied_capabilities"]

RULE_MODULES = (device_rules, exposure_rules, site_rules)
"""Importing these registers their rules, in this order: the order in which the checker applies them."""


# --- verdict --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    status: Literal["allowed", "needs_override", "refused"]
    findings: tuple[Finding, ...]
    """Every finding, expansion's and the rulebook's, most severe first."""
    overrides_used: Mapping[str, str]
    """rule id → the operator's reason, for every warning it lifted."""
    overrides_rejected: Mapping[str, str]
    """rule id → why the override was not accepted (hard limit, empty reason)."""
    overrides_unused: tuple[str, ...]
    checked: tuple[str, ...]
    """Rule ids that were applied to this schedule."""
    complete: bool
    """True when a device and (for %MT prescriptions) a threshold were given: nothing left unchecked."""
    rulebook_version: str
    protocol_id: str
    protocol_hash: str
    schedule: Schedule = field(repr=False, compare=False)

    @property
    def allowed(self) -> bool:
        return self.status == "allowed"

    @property
    def refusals(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.REFUSE)

    @property
    def needs_override(self) -> tuple[Finding, ...]:
        """Warnings no override has lifted."""
        return tuple(
            f for f in self.findings if f.severity is Severity.WARN and f.rule_id not in self.overrides_used
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "allowed": self.allowed,
            "complete": self.complete,
            "protocol_id": self.protocol_id,
            "protocol_hash": self.protocol_hash,
            "rulebook_version": self.rulebook_version,
            "findings": [finding.to_dict() for finding in self.findings],
            "overrides_used": dict(self.overrides_used),
            "overrides_rejected": dict(self.overrides_rejected),
            "overrides_unused": list(self.overrides_unused),
            "checked": list(self.checked),
        }


def check(
    subject: Protocol | Schedule,
    *,
    device: DeviceLimits | None = None,
    thresholds: Iterable[MotorThreshold] | MotorThreshold | None = None,
    overrides: Mapping[str, str] | None = None,
    pulses_already_today: int = 0,
    sessions_already_today: int = 0,
    minutes_since_last_session_start: float | None = None,
    policy: SitePolicy | None = None,
    require_complete: bool = False,
    as_of: datetime | None = None,
) -> Verdict:
    """Apply the rulebook to a protocol (expanded here) or to an already expanded schedule.

    ``overrides`` maps a warning's rule id to the operator's recorded reason; refusals cannot be
    overridden. ``require_complete=True`` (for a real session) refuses when no device is given or
    a %MT prescription has no threshold.
    """
    from tmsctl.protocols.expand import expand  # expand does not depend on the rules

    if isinstance(subject, Schedule):
        if device is not None or thresholds is not None:
            raise InvalidArgument(
                "this schedule was already expanded; pass device and thresholds to expand(), not to check()",
            )
        schedule = subject
    elif isinstance(subject, Protocol):
        schedule = expand(subject, device, thresholds)
    else:
        raise InvalidArgument(f"check() needs a Protocol or a Schedule, not {type(subject).__name__}")
    if pulses_already_today < 0 or sessions_already_today < 0:
        raise InvalidArgument("pulses_already_today and sessions_already_today cannot be negative")
    book = rulebook()
    policy = policy or SitePolicy()
    policy.validate(book)

    history = History(pulses_already_today, sessions_already_today, minutes_since_last_session_start)
    evaluation = Evaluation(schedule, book, policy, require_complete, history, as_of)
    _apply_rules(evaluation)
    complete = schedule.device is not None and schedule.intensity_resolved
    findings = sort_findings(schedule.findings + evaluation.findings())
    return _decide(schedule, findings, dict(overrides or {}), evaluation.checked, complete, book.version)


def _decide(
    schedule: Schedule,
    findings: tuple[Finding, ...],
    overrides: dict[str, str],
    checked: Iterable[str],
    complete: bool,
    version: str,
) -> Verdict:
    severities: dict[str, set[Severity]] = {}
    for finding in findings:
        severities.setdefault(finding.rule_id, set()).add(finding.severity)
    used: dict[str, str] = {}
    rejected: dict[str, str] = {}
    unused: list[str] = []
    for rule_id, reason in overrides.items():
        kinds = severities.get(rule_id)
        if not isinstance(reason, str) or not reason.strip():
            rejected[rule_id] = "an override needs a non-empty reason"
        elif kinds is None:
            unused.append(rule_id)
        elif Severity.REFUSE in kinds:
            rejected[rule_id] = "a hard limit cannot be overridden"
        elif Severity.WARN in kinds:
            used[rule_id] = reason.strip()
        else:
            unused.append(rule_id)
    if any(f.severity is Severity.REFUSE for f in findings):
        status: Literal["allowed", "needs_override", "refused"] = "refused"
    elif any(f.severity is Severity.WARN and f.rule_id not in used for f in findings):
        status = "needs_override"
    else:
        status = "allowed"
    return Verdict(
        status=status,
        findings=findings,
        overrides_used=MappingProxyType(used),
        overrides_rejected=MappingProxyType(rejected),
        overrides_unused=tuple(unused),
        checked=tuple(sorted(set(checked))),
        complete=complete,
        rulebook_version=version,
        protocol_id=schedule.protocol_id,
        protocol_hash=schedule.protocol_hash,
        schedule=schedule,
    )


# --- applying the rules ---------------------------------------------------------------------


def _apply_rules(evaluation: Evaluation) -> None:
    """Every registered rule, once: train rules per distinct train shape, exposure rules per shape
    and per continuous run, session rules per schedule."""
    schedule = evaluation.schedule
    shape_rules = registered_rules(Scope.TRAIN) + registered_rules(Scope.EXPOSURE)
    groups: dict[tuple[Any, ...], list[ScheduledTrain]] = {}
    for train in schedule.trains:
        gap = schedule.gap_after_s(train)
        key = (
            train.kind,
            train.n_pulses,
            train.frequency_hz,
            train.duration_s,
            train.intensity_pct_mso,
            train.intensity_pct_mt,
            train.conditioning_intensity_pct_mso,
            None if gap is None else round(gap, 9),
            id(train.pulse_offsets_s),
        )
        groups.setdefault(key, []).append(train)
    for members in groups.values():
        case = TrainCase(evaluation, members[0], schedule.gap_after_s(members[0]))
        numbers = [train.number for train in members]
        for entry in shape_rules:
            for issue in _applied(evaluation, entry, case):
                evaluation.add(issue, numbers)
    _continuous_runs(evaluation)
    for entry in registered_rules(Scope.SESSION):
        for issue in _applied(evaluation, entry, evaluation):
            evaluation.add(issue)


def _applied(evaluation: Evaluation, entry: Rule, subject: TrainCase | Evaluation) -> Iterable[Issue]:
    """The rule's issues; a rule that applies is recorded as checked."""
    issues = entry.check(subject)
    if issues is None:
        return ()
    family = evaluation.schedule.coil_family
    if entry.listed:
        evaluation.checked.add(entry.id_for(family))
    issues = tuple(issues)
    declared = entry.reports_for(family)
    stray = sorted({issue.rule_id for issue in issues} - declared)
    if stray:  # a programming error: refuse to check rather than report under an undeclared id
        raise RulebookError(f"rule {entry.id} reported {', '.join(stray)}, which it does not declare")
    return issues


def _continuous_runs(evaluation: Evaluation) -> None:
    """Trains closer than Chen's minimum interval are one exposure: judge each run as one train.

    Only the coil family's exposure rules (train duration at a frequency and intensity) see the
    run; the device rules stay per physical train, whose recovery the device's own minimum wait
    (``device.inter-train-wait``) already bounds.
    """
    schedule = evaluation.schedule
    exposure = registered_rules(Scope.EXPOSURE)
    min_gap_s = evaluation.book.chen.min_inter_train_interval_s
    for run in schedule.continuous_runs(min_gap_s):
        first, last = run[0], run[-1]
        if first.kind not in REPETITIVE:
            continue
        span_s = last.end_s - first.onset_s
        pulses = sum(train.n_pulses for train in run)
        offsets = tuple(train.onset_s - first.onset_s + offset for train in run for offset in train.pulse_offsets_s)
        largest_gap = max(schedule.gap_after_s(train) or 0.0 for train in run[:-1])
        gap_after = schedule.gap_after_s(last)
        numbers = [train.number for train in run]
        piece_issues = evaluation.issues()
        intensities: dict[tuple[int | None, float | None, int | None], ScheduledTrain] = {}
        for train in run:  # a ramp gives a run several intensities: each is judged at the run's length
            key = (train.intensity_pct_mso, train.intensity_pct_mt, train.conditioning_intensity_pct_mso)
            intensities.setdefault(key, train)
        for train in intensities.values():
            merged = replace(
                train, index=first.index, onset_s=first.onset_s, n_pulses=pulses, pulse_offsets_s=offsets,
                duration_s=span_s,
            )
            case = TrainCase(evaluation, merged, gap_after)
            for entry in exposure:
                for issue in _applied(evaluation, entry, case):
                    if issue in piece_issues:
                        continue  # the same finding about each train (frequency, intensity): said once
                    evaluation.add(
                        replace(
                            issue,
                            text=(
                                f"gaps under {_n(min_gap_s)} s (at most {_n(largest_gap)} s) make these one "
                                f"continuous train: {issue.text}"
                            ),
                            hint=(
                                f"make the gaps between trains at least {_n(min_gap_s)} s (Chen 1997), shorten "
                                "the run, or record the reason to exceed the limit"
                                if issue.severity is not Severity.INFO
                                else issue.hint
                            ),
                        ),
                        numbers,
                    )
