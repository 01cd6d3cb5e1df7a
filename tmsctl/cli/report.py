"""``tmsctl report SESSION`` and ``tmsctl report --subject ID``: summaries to read and to look at.

The terminal gets a short summary; the charts go to a self-contained HTML file (inline SVG, no
dependencies) that opens in any browser. Mounted by tmsctl.cli.main as ``report``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tmsctl.cli.common import out, reported
from tmsctl.core.errors import InvalidArgument

# A group with no subcommands whose callback takes SESSION: interspersed options so that
# `tmsctl report ID --db x` parses like a plain command once mounted with add_typer(name="report").
app = typer.Typer(add_completion=False, help="Summaries of sessions and courses, with charts (HTML).",
                  context_settings={"allow_interspersed_args": True})


@app.callback(invoke_without_command=True)
def report(
    session_id: Annotated[str | None, typer.Argument(help="Session id (see `tmsctl sessions`).")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="A subject's whole course instead.")] = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file to write (default: ./tmsctl-report-<id>.html).")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Records database: a file, or a postgresql:// URL (default: $TMSCTL_DB or the user data directory).")] = None,
    log_dir: Annotated[Path | None, typer.Option("--log-dir", help="Audit logs (default: logs/ beside the database).")] = None,
    weeks: Annotated[int, typer.Option("--weeks", help="Course plan: number of weeks.")] = 6,
    days_per_week: Annotated[int, typer.Option("--days-per-week", help="Course plan: treatment days per week.")] = 5,
    sessions_per_day: Annotated[
        int | None, typer.Option("--sessions-per-day", help="Course plan (default: the protocol's, else 1).")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="Course plan: first day, YYYY-MM-DD (default: first session).")] = None,
) -> None:
    """Summarise one session, or (--subject) a subject's course against its plan."""
    from tmsctl.cli.db import open_records

    with reported():
        if (session_id is None) == (subject is None):
            raise InvalidArgument("give a SESSION id or --subject ID (one of them)")
        records = open_records(db, read_only=True)
        try:
            if session_id is not None:
                path = _session(records, session_id, output, log_dir)
            else:
                assert subject is not None
                try:
                    first = date.fromisoformat(start) if start else None
                except ValueError:
                    raise InvalidArgument(f"--start wants YYYY-MM-DD, got {start!r}") from None
                path = _course(records, subject, output, weeks, days_per_week, sessions_per_day, first)
        finally:
            records.close()
    out.print(f"charts: [bold]{path}[/]", highlight=False)


def _session(records, session_id: str, output: Path | None, log_dir: Path | None) -> Path:
    from tmsctl.lab.report import render_session_html, session_facts, session_report
    from tmsctl.records import normalize_session_id
    from tmsctl.session.audit import session_log_path

    sid = normalize_session_id(session_id)
    audit = session_log_path(log_dir or Path(records.path).parent / "logs", sid)
    r = session_report(records, sid, audit_log=audit if audit.exists() else None)
    title = f"[bold]session {r.session_id}[/] — subject {r.subject_id}, {r.protocol_id} on {r.device_model}, {r.status}"
    out.print(title + (" [yellow](SIMULATED)[/]" if r.simulated else ""), highlight=False)
    table = Table(show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for label, value in session_facts(r):
        if not label.startswith("  "):  # the protocol's parameters are in the page
            table.add_row(label, value)
    if r.coil_temperatures:
        table.add_row("coil temperature",
                      f"{min(c for _, c in r.coil_temperatures):.1f}–{max(c for _, c in r.coil_temperatures):.1f} °C")
    table.add_row("duration", f"{r.duration_s / 60:.1f} min")
    out.print(table)
    for f in r.faults:
        at = "" if f.offset_s is None else f" at {f.offset_s / 60:.2f} min"
        out.print(f"  [red]fault[/]{at}: {f.cause} ({f.code}: {f.detail})", highlight=False)
    path = output or Path(f"tmsctl-report-{r.session_id}.html")
    path.write_text(render_session_html(r), encoding="utf-8")
    return path


def _course(records, subject: str, output: Path | None, weeks: int, days_per_week: int,
            sessions_per_day: int | None, start: date | None) -> Path:
    from tmsctl.lab.report import course_report, render_course_html

    c = course_report(records, subject, weeks=weeks, days_per_week=days_per_week,
                      sessions_per_day=sessions_per_day, start=start)
    out.print(f"[bold]course of {subject}[/]: {c.delivered_total} of {c.planned_total} planned sessions delivered "
              f"({c.sessions_per_day}/day, {c.days_per_week} day{'' if c.days_per_week == 1 else 's'}/week, {c.weeks} week{'' if c.weeks == 1 else 's'} from {c.start})", highlight=False)
    missed = c.missed_days()
    if missed:
        out.print(f"  [red]missed[/] {len(missed)} planned day(s): " + ", ".join(d.isoformat() for d in missed[:10])
                  + (" …" if len(missed) > 10 else ""), highlight=False)
    path = output or Path(f"tmsctl-report-{subject}.html")
    path.write_text(render_course_html(c), encoding="utf-8")
    return path
