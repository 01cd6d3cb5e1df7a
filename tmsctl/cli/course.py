"""``tmsctl course …`` and ``tmsctl outcome …``: treatment courses and their outcome measures.

Mounted lazily by tmsctl.cli.main (``course`` and ``outcome``). Every refusal names its rule
(``course.closed``, ``outcome.future_date``, …) and says what to do next.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tmsctl.cli.common import out, reported
from tmsctl.core.errors import InvalidArgument

app = typer.Typer(add_completion=False, no_args_is_help=True)
course_app = typer.Typer(help="Treatment courses: start, show, change, end, report.", no_args_is_help=True)
outcome_app = typer.Typer(help="Outcome measures (PHQ-9, BDI-II, HAM-D17, MADRS, GAD-7, Y-BOCS, BSL-23, ZAN-BPD).",
                          no_args_is_help=True)
app.add_typer(course_app, name="course")
app.add_typer(outcome_app, name="outcome")

DbOption = Annotated[
    str | None, typer.Option("--db", help="Records database: a file, or a postgresql:// URL (default: $TMSCTL_DB or the user data directory).")
]
Operator = os.environ.get("USER", "operator")


def _records(db: str | None, *, read_only: bool = False) -> Any:
    from tmsctl.cli.db import open_records

    return open_records(db, read_only=read_only)


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"{option} wants YYYY-MM-DD, got {value!r}") from None


def protocol_spacing(protocol: Any) -> tuple[int, float | None]:
    """Sessions a day and the minimum start-to-start interval (min) an accelerated protocol itself sets."""
    if getattr(protocol, "accelerated", None) is None:
        return 1, None
    from tmsctl.protocols.expand import expand

    onsets = expand(protocol).session_onsets_s
    return len(onsets), (onsets[1] - onsets[0]) / 60 if len(onsets) > 1 else None


@course_app.command("start")
def start(
    subject: Annotated[str, typer.Argument(help="Pseudonymous subject id.")],
    prescriber: Annotated[str, typer.Option("--prescriber", help="Who prescribed the course (recorded).")],
    protocol: Annotated[Path | None, typer.Option("--protocol", help="Protocol file (default: the template's).")] = None,
    template: Annotated[str | None, typer.Option("--template", help="Course template (see `tmsctl course templates`).")] = None,
    sessions: Annotated[int | None, typer.Option("--sessions", help="Number of sessions prescribed.")] = None,
    per_day: Annotated[int | None, typer.Option("--per-day", help="Sessions a day.")] = None,
    days_per_week: Annotated[int | None, typer.Option("--days-per-week", help="Treatment days a week.")] = None,
    min_interval: Annotated[float | None, typer.Option("--min-interval", help="Minutes between session starts on one day.")] = None,
    threshold_every: Annotated[int | None, typer.Option("--threshold-every", help="Re-measure the motor threshold every N days.")] = None,
    taper: Annotated[str | None, typer.Option("--taper", help="Taper, in words (e.g. 'twice weekly for 12 weeks').")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Target (default: the protocol's).")] = None,
    coil: Annotated[str | None, typer.Option("--coil", help="Coil (default: the protocol's).")] = None,
    start_date: Annotated[str | None, typer.Option("--start", help="First day, YYYY-MM-DD (default: today, UTC).")] = None,
    db: DbOption = None,
) -> None:
    """Start a subject's treatment course: the prescription, from a template and/or the options."""
    from tmsctl.clinic.templates import template as find_template
    from tmsctl.protocols.canonical import content_hash
    from tmsctl.protocols.loader import load_protocol
    from tmsctl.records.courses import CoursePlan
    from tmsctl.session.planned import coil_key

    with reported():
        chosen = find_template(template) if template else None
        path = protocol or (chosen.protocol_path if chosen else None)
        if path is None:
            raise InvalidArgument("give --protocol FILE or --template NAME")
        loaded = load_protocol(path)
        if chosen is not None and loaded.id != load_protocol(chosen.protocol_path).id:
            raise InvalidArgument(f"course.template_protocol: template {chosen.id} is for protocol "
                                  f"{load_protocol(chosen.protocol_path).id}, not {loaded.id}")
        protocol_per_day, protocol_interval = protocol_spacing(loaded)
        per_day = per_day or (chosen.sessions_per_day if chosen else protocol_per_day)
        if per_day > 1 and protocol_interval is not None and min_interval is not None and min_interval < protocol_interval:
            raise InvalidArgument(
                f"course.min_interval: protocol {loaded.id} spaces sessions {protocol_interval:g} min apart (start to "
                f"start); {min_interval:g} would be looser"
            )
        interval = min_interval or (chosen.min_interval_min if chosen else None) or protocol_interval
        if interval is not None and protocol_interval is not None:
            interval = max(interval, protocol_interval)
        records = _records(db)
        try:
            records.ensure_subject(subject)
            today = records._now().date()
            course = records.courses.start(CoursePlan(
                subject_id=subject, protocol_id=loaded.id, protocol_hash=content_hash(loaded),
                protocol_text=Path(path).read_text(encoding="utf-8"),
                planned_sessions=sessions or (chosen.planned_sessions if chosen else 0) or _missing("--sessions"),
                prescriber=prescriber, start_date=_date(start_date, "--start") or today,
                sessions_per_day=per_day,
                days_per_week=days_per_week or (chosen.days_per_week if chosen else 5),
                min_interval_min=interval if per_day > 1 else None,
                taper=taper or (chosen.taper if chosen else None), threshold_every_days=threshold_every,
                target=target or _target(loaded), coil=coil or coil_key(loaded.coil),
                template_id=chosen.id if chosen else None,
            ))
        finally:
            records.close()
    p = course.plan
    out.print(
        f"course {course.course_id} started for {subject}: {p.planned_sessions} sessions of {p.protocol_id}, "
        f"{p.sessions_per_day}/day" + (f" ≥ {p.min_interval_min:g} min apart" if p.min_interval_min else "")
        + f", {p.days_per_week} day{'' if p.days_per_week == 1 else 's'}/week from {p.start_date}", highlight=False,
    )


def _missing(option: str) -> int:
    raise InvalidArgument(f"give {option} (or a --template that sets it)")


def _target(protocol: Any) -> str | None:
    target = getattr(protocol, "target", None)
    if target is None:
        return None
    return getattr(target, "region", None) or getattr(target, "site", None)


@course_app.command("templates")
def templates() -> None:
    """The course templates, with their sources."""
    from tmsctl.clinic.templates import TEMPLATES

    table = Table(title="Course templates")
    for col in ("template", "protocol", "sessions", "per day", "days/week", "source [confidence]"):
        table.add_column(col)
    for t in TEMPLATES.values():
        table.add_row(t.id, t.protocol_file, str(t.planned_sessions), str(t.sessions_per_day), str(t.days_per_week),
                      f"{t.source} [{t.confidence}]")
    out.print(table)


@course_app.command("show")
def show(
    subject: Annotated[str, typer.Argument(help="Pseudonymous subject id.")],
    course_id: Annotated[int | None, typer.Option("--course", help="A course by id (default: active, else latest).")] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A course: sessions delivered, missed and remaining, dose to date, outcomes, plan changes."""
    from tmsctl.clinic.course_report import summary_dict

    with reported():
        records = _records(db, read_only=True)
        try:
            course = records.courses.course(course_id) if course_id else records.courses.current(subject)
            if course.plan.subject_id != subject:
                raise InvalidArgument(f"course {course.course_id} is subject {course.plan.subject_id}'s, not {subject}'s")
            summary = records.courses.summary(course.course_id)
        finally:
            records.close()
    data = summary_dict(summary)
    if as_json:
        out.print_json(json.dumps(data, default=str))
        return
    c = data["course"]
    out.print(f"[bold]course {c['id']}[/] — {subject}, {c['protocol']}, {c['status']}"
              + (f" ({c['end_date']}: {c['end_reason']})" if c["end_date"] else ""), highlight=False)
    s = data["sessions"]
    out.print(f"sessions: {s['delivered']} delivered of {s['planned']}, {s['missed']} missed, {s['short']} stopped "
              f"early, {s['remaining']} remaining" + (f" ({s['simulated']} SIMULATED)" if s["simulated"] else ""),
              highlight=False)
    out.print(f"dose: {data['dose']['pulses_delivered']:,} pulses delivered"
              + (f", {data['dose']['pulses_uncertain']:,} uncertain" if data["dose"]["pulses_uncertain"] else ""),
              highlight=False)
    for scale_id, points in data["outcomes"].items():
        line = " → ".join(f"{p['score']:g}" for p in points)
        last = points[-1]
        verdict = ""
        if last.get("response") is not None:
            verdict = f"; response {'yes' if last['response'] else 'no'}"
            if last.get("remission") is not None:
                verdict += f", remission {'yes' if last['remission'] else 'no'}"
        out.print(f"{scale_id}: {line}{verdict}", highlight=False)
    for change in data["changes"]:
        out.print(f"  plan change {change['effective']} by {change['by']}: {change['field']} {change['old']} → "
                  f"{change['new']} ({change['reason']})", highlight=False)
    if data["threshold_due"]:
        out.print("[yellow]motor threshold re-measurement is due (plan: every "
                  f"{c['threshold_every_days']} day{'' if c['threshold_every_days'] == 1 else 's'})[/]", highlight=False)


@course_app.command("change")
def change(
    subject: Annotated[str, typer.Argument(help="Pseudonymous subject id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the plan changes (recorded).")],
    by: Annotated[str, typer.Option("--by", help="Who changes it (recorded).")] = Operator,
    sessions: Annotated[int | None, typer.Option("--sessions", help="New number of sessions prescribed.")] = None,
    per_day: Annotated[int | None, typer.Option("--per-day", help="New number of sessions a day.")] = None,
    days_per_week: Annotated[int | None, typer.Option("--days-per-week", help="New number of treatment days a week.")] = None,
    min_interval: Annotated[
        float | None, typer.Option("--min-interval", help="New minimum of minutes between session starts on one day.")
    ] = None,
    threshold_every: Annotated[
        int | None, typer.Option("--threshold-every", help="Re-measure the motor threshold every this many days.")
    ] = None,
    protocol: Annotated[Path | None, typer.Option("--protocol", help="A new protocol file.")] = None,
    db: DbOption = None,
) -> None:
    """Change the active course's plan; who, when and why are recorded with the old and new values."""
    changes: dict[str, Any] = {k: v for k, v in {
        "planned_sessions": sessions, "sessions_per_day": per_day, "days_per_week": days_per_week,
        "min_interval_min": min_interval, "threshold_every_days": threshold_every,
    }.items() if v is not None}
    with reported():
        if protocol is not None:
            from tmsctl.protocols.canonical import content_hash
            from tmsctl.protocols.loader import load_protocol

            loaded = load_protocol(protocol)
            changes["protocol"] = (loaded.id, content_hash(loaded), protocol.read_text(encoding="utf-8"))
        if not changes:
            raise InvalidArgument("name at least one change (--sessions, --per-day, --protocol, …)")
        records = _records(db)
        try:
            course = _active(records, subject)
            made = records.courses.change_plan(course.course_id, changes, changed_by=by, reason=reason)
        finally:
            records.close()
    for c in made:
        out.print(f"course {c.course_id}: {c.field} {c.old_value} → {c.new_value}", highlight=False)


def _active(records: Any, subject: str) -> Any:
    from tmsctl.records.courses import CourseRefused

    course = records.courses.active(subject)
    if course is None:
        raise CourseRefused("course.none_active", f"subject {subject} has no active course",
                            hint=f"`tmsctl course show {subject}` shows the latest; start one with `tmsctl course start`")
    return course


@course_app.command("end")
def end(
    subject: Annotated[str, typer.Argument(help="Pseudonymous subject id.")],
    status: Annotated[str, typer.Option("--status", help="completed | stopped (stopped early).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it ends (recorded).")],
    by: Annotated[str, typer.Option("--by", help="Who ends it (recorded).")] = Operator,
    end_date: Annotated[str | None, typer.Option("--date", help="Last day, YYYY-MM-DD (default: today, UTC).")] = None,
    db: DbOption = None,
) -> None:
    """End the active course (completed, or stopped early with a reason). A closed course is final."""
    with reported():
        records = _records(db)
        try:
            course = _active(records, subject)
            ended = records.courses.end(course.course_id, status=status, reason=reason, ended_by=by,
                                        end_date=_date(end_date, "--date"))
        finally:
            records.close()
    out.print(f"course {ended.course_id} of {subject} {ended.status} on {ended.end_date}: {ended.end_reason}",
              highlight=False)


@course_app.command("report")
def report(
    subject: Annotated[str, typer.Argument(help="Pseudonymous subject id.")],
    course_id: Annotated[int | None, typer.Option("--course", help="A course by id (default: active, else latest).")] = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file (default: ./tmsctl-course-<subject>-<id>.html).")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write the sessions and outcomes as CSV here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Also write everything as JSON here.")] = None,
    db: DbOption = None,
) -> None:
    """The course report: calendar, dose, threshold, outcome trajectory, plan changes; HTML, CSV, JSON."""
    from tmsctl.clinic.course_report import render_course_html, summary_csv, summary_dict

    with reported():
        records = _records(db, read_only=True)
        try:
            course = records.courses.course(course_id) if course_id else records.courses.current(subject)
            summary = records.courses.summary(course.course_id)
        finally:
            records.close()
        path = output or Path(f"tmsctl-course-{subject}-{course.course_id}.html")
        path.write_text(render_course_html(summary), encoding="utf-8")
        if csv_out is not None:
            csv_out.write_text(summary_csv(summary), encoding="utf-8")
        if json_out is not None:
            json_out.write_text(json.dumps(summary_dict(summary), indent=2, default=str), encoding="utf-8")
    out.print(f"course report: [bold]{path}[/]", highlight=False, soft_wrap=True)


@outcome_app.command("add")
def outcome_add(
    subject: Annotated[str, typer.Argument(help="Pseudonymous subject id.")],
    scale: Annotated[str, typer.Option("--scale", help="phq9, bdi2, hamd17, madrs, gad7, ybocs, bsl23, zanbpd.")],
    rated_on: Annotated[str, typer.Option("--date", help="Day the scale was rated, YYYY-MM-DD.")],
    score: Annotated[float | None, typer.Option("--score", help="The total (BSL-23: the mean item score).")] = None,
    items: Annotated[str | None, typer.Option("--items", help="Every item's answer, comma-separated (e.g. 2,1,3,…).")] = None,
    point: Annotated[str | None, typer.Option("--point", help="baseline | weekly | end | follow_up | other (default: baseline first, then weekly).")] = None,
    rater: Annotated[str, typer.Option("--rater", help="Who rated or entered it (recorded).")] = Operator,
    course_id: Annotated[int | None, typer.Option("--course", help="A past course by id (default: the active one).")] = None,
    note: Annotated[str | None, typer.Option("--note", help="A free-text note with the rating (recorded).")] = None,
    db: DbOption = None,
) -> None:
    """Record an outcome rating for the subject's course, as a total or item by item."""
    with reported():
        answers = None
        if items is not None:
            try:
                answers = [int(x) for x in items.replace(" ", "").split(",") if x != ""]
            except ValueError:
                raise InvalidArgument(f"--items wants whole numbers separated by commas, got {items!r}") from None
        day = _date(rated_on, "--date")
        assert day is not None
        records = _records(db)
        try:
            entry, flags = records.courses.add_outcome(
                subject, scale, rated_on=day, rater=rater, score=score, items=answers, point=point,
                course_id=course_id, note=note,
            )
            summary = records.courses.summary(entry.course_id)
        finally:
            records.close()
    line = f"{entry.scale_id} {entry.score:g} on {entry.rated_on} ({entry.point}) recorded for course {entry.course_id}"
    for p in summary.outcomes.get(entry.scale_id, ()):
        if p.entry.entry_id == entry.entry_id and p.assessment is not None:
            a = p.assessment
            line += f"; {a.reduction_pct:g} % from baseline" if a.reduction_pct is not None else ""
            line += f", response {'yes' if a.response else 'no'}"
            if a.remission is not None:
                line += f", remission {'yes' if a.remission else 'no'}"
    out.print(line, highlight=False)
    for flag in flags:
        out.print(f"[bold red]attention:[/] {flag}", highlight=False)


@outcome_app.command("scales")
def outcome_scales() -> None:
    """The outcome scales tmsctl knows, with ranges and rules."""
    from tmsctl.records.scales import SCALES

    table = Table(title="Outcome scales")
    for col in ("scale", "name", "items", "range", "response", "remission", "source"):
        table.add_column(col)
    for s in SCALES.values():
        table.add_row(s.id, s.name, str(len(s.items)), f"{s.low:g}-{s.high:g}",
                      f"≥ {s.response.min_reduction_pct:g} % [{s.response.confidence}]",
                      f"≤ {s.remission.max_score:g} [{s.remission.confidence}]" if s.remission else "—", s.source)
    out.print(table)
