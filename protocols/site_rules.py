"""The site's caps per session and per day, the threshold's age, and what a check could not see.

The caps are the rulebook's (``protocols/rules/site_caps.yaml``) or a site policy's stricter ones;
the day's figures count the planned sessions and what the records say was delivered already.
"""

from __future__ import annotations

from tmsctl.protocols.findings import Issue, Severity
from tmsctl.protocols.rule_context import Evaluation, below, days
from tmsctl.protocols.rule_context import number as _n
from tmsctl.protocols.rulebook import Scope, rule


def _site_issue(
    evaluation: Evaluation, rule_id: str, text: str, value: float, limit: float, unit: str,
    hint: str = "record the reason to exceed the site cap",
) -> Issue:
    site = evaluation.book.site
    return Issue(
        rule_id, Severity.WARN, text, site.source, value=value, limit=limit, unit=unit, status=site.status,
        hint=hint,
    )


@rule("site.session-pulses", Severity.WARN, scope=Scope.SESSION)
def site_session_pulses(evaluation: Evaluation) -> list[Issue] | None:
    schedule, site = evaluation.schedule, evaluation.book.site
    if not any(train.kind in ("train", "patterned") for train in schedule.trains):
        return None
    if schedule.total_pulses <= site.max_pulses_per_session:
        return []
    return [
        Issue(
            "site.session-pulses",
            Severity.WARN,
            f"{schedule.total_pulses:,} pulses in one session is above the site cap of "
            f"{site.max_pulses_per_session:,}",
            site.source,
            value=schedule.total_pulses,
            limit=site.max_pulses_per_session,
            unit="pulses",
            status=site.status,
            hint="record the reason to run a larger session",
        )
    ]


@rule("site.sessions-per-day", Severity.WARN, scope=Scope.SESSION)
def site_sessions_per_day(evaluation: Evaluation) -> list[Issue]:
    schedule, today = evaluation.schedule, evaluation.history.sessions_today
    cap = evaluation.cap("max_sessions_per_day", evaluation.book.site.max_sessions_per_day)
    issues = []
    if schedule.sessions_per_day > cap:
        issues.append(
            _site_issue(
                evaluation,
                "site.sessions-per-day",
                f"{schedule.sessions_per_day} sessions a day is above the site cap of {cap:g}",
                schedule.sessions_per_day,
                cap,
                "sessions",
            )
        )
    if today and today + 1 > cap:
        issues.append(
            _site_issue(
                evaluation,
                "site.sessions-per-day",
                f"this would be session {today + 1} today, above the site cap of {cap:g}",
                today + 1,
                cap,
                "sessions",
            )
        )
    return issues


@rule("site.day-pulses", Severity.WARN, scope=Scope.SESSION)
def site_day_pulses(evaluation: Evaluation) -> list[Issue]:
    schedule, today = evaluation.schedule, evaluation.history.pulses_today
    cap = evaluation.cap("max_pulses_per_day", evaluation.book.site.max_pulses_per_day)
    issues = []
    if schedule.pulses_per_day > cap:
        issues.append(
            _site_issue(
                evaluation,
                "site.day-pulses",
                f"{schedule.sessions_per_day} sessions of {schedule.total_pulses:,} pulses make "
                f"{schedule.pulses_per_day:,} a day, above the site cap of {cap:,.0f}",
                schedule.pulses_per_day,
                cap,
                "pulses",
            )
        )
    if today and today + schedule.total_pulses > cap:
        issues.append(
            _site_issue(
                evaluation,
                "site.day-pulses",
                f"{today:,} pulses already today plus {schedule.total_pulses:,} make "
                f"{today + schedule.total_pulses:,}, above the site cap of {cap:,.0f}",
                today + schedule.total_pulses,
                cap,
                "pulses",
            )
        )
    return issues


@rule("site.session-spacing", Severity.WARN, scope=Scope.SESSION)
def site_session_spacing(evaluation: Evaluation) -> list[Issue]:
    onsets_s, since_last = evaluation.schedule.session_onsets_s, evaluation.history.minutes_since_last_start
    minimum = evaluation.cap(
        "min_minutes_between_session_starts", evaluation.book.site.min_minutes_between_session_starts
    )
    issues = []
    if len(onsets_s) > 1:
        spacing_min = (onsets_s[1] - onsets_s[0]) / 60
        if below(spacing_min, minimum):
            issues.append(
                _site_issue(
                    evaluation,
                    "site.session-spacing",
                    f"sessions start {_n(spacing_min)} min apart, closer than the site minimum of {minimum:g} min",
                    spacing_min,
                    minimum,
                    "min",
                )
            )
    if since_last is not None and below(since_last, minimum):
        issues.append(
            _site_issue(
                evaluation,
                "site.session-spacing",
                f"the last session started {_n(since_last)} min ago; the site minimum is {minimum:g} min",
                since_last,
                minimum,
                "min",
            )
        )
    return issues


@rule("mt.stale", Severity.WARN, scope=Scope.SESSION)
def threshold_age(evaluation: Evaluation) -> list[Issue] | None:
    """A motor threshold older than the site's limit needs a recorded reason (judged only when the
    check is told the date)."""
    as_of = evaluation.as_of
    if as_of is None:
        return None
    limit_days = evaluation.cap("max_motor_threshold_age_days", evaluation.book.site.max_motor_threshold_age_days)
    issues = []
    for threshold in evaluation.schedule.thresholds_used:
        if threshold.measured_at is None:
            continue
        age_days = (as_of - threshold.measured_at).total_seconds() / 86400
        if age_days > limit_days:
            issues.append(
                _site_issue(
                    evaluation,
                    "mt.stale",
                    f"the {threshold.describe()} was measured {days(age_days, _n(age_days))} ago, longer ago "
                    f"than the site limit of {days(limit_days, f'{limit_days:g}')}",
                    age_days,
                    limit_days,
                    "days",
                    hint="measure the threshold again (tmsctl mt), or record why the old one still holds",
                )
            )
    return issues


# --- what the check could not see -----------------------------------------------------------


def _unseen(evaluation: Evaluation) -> Severity:
    """A plan may leave things unchecked (info); a session that must be complete is refused."""
    return Severity.REFUSE if evaluation.require_complete else Severity.INFO


@rule("context.device", Severity.INFO, scope=Scope.SESSION, listed=False)
def context_device(evaluation: Evaluation) -> list[Issue]:
    if evaluation.device is not None:
        return []
    return [
        Issue(
            "context.device",
            _unseen(evaluation),
            "no stimulator given: device limits (output, frequency, energy, waits, capabilities) not checked",
            "safety.md §7: device limits are hard limits",
            status="D",
            hint="name the stimulator model (e.g. --device-model magstim-rapid2)",
        )
    ]


@rule("context.intensity", Severity.INFO, scope=Scope.SESSION, listed=False)
def context_intensity(evaluation: Evaluation) -> list[Issue]:
    if evaluation.schedule.intensity_resolved or (evaluation.device is None and not evaluation.require_complete):
        return []
    return [
        Issue(
            "context.intensity",
            _unseen(evaluation),
            "intensity not resolved to %MSO: limits at the output are not checked",
            "safety.md §7: %MT prescriptions need an MT from this stimulator and coil",
            status="D",
            hint="give the motor threshold measured with this stimulator and coil",
        )
    ]
