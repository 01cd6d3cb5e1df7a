"""Readable summaries of recorded sessions and of a subject's course, as self-contained HTML.

``session_report`` gathers one session from the records (and its audit log, when there is one)
into plain data; ``render_session_html`` draws it: pulses per train over time, intensity, coil
temperature (if the audit log holds readings) and faults, each an inline SVG chart, so the file
opens in any browser with nothing installed. ``course_report``/``render_course_html`` lay a
subject's sessions on a calendar against the plan of daily sessions over weeks.

No plotting library: the charts are a few dozen SVG elements each, generated here, which keeps
reports dependency-free and byte-for-byte reproducible (the tests compare what is drawn).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from tmsctl import __version__

COLOURS = {"completed": "#2e7d32", "stopped": "#ef6c00", "in_progress": "#c62828", "planned": "#cfd8dc",
           "fault": "#c62828", "line": "#1565c0", "grid": "#eceff1", "text": "#263238", "partial": "#f9a825",
           "missed": "#e57373", "future": "#ffffff", "rest": "#f5f5f5"}


# -- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainRow:
    index: int
    onset_s: float
    pulses_planned: int
    pulses_delivered: int
    intensity_pct_mso: float
    state: str


@dataclass(frozen=True)
class FaultRow:
    offset_s: float | None
    code: str
    detail: str


@dataclass(frozen=True)
class SessionReport:
    session_id: str
    subject_id: str
    protocol_id: str
    device_model: str
    simulated: bool
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    planned_deliveries: int
    planned_pulses: int
    trains: tuple[TrainRow, ...]
    faults: tuple[FaultRow, ...]
    coil_temperatures: tuple[tuple[float, float], ...]  # (seconds from start, °C)
    actions: tuple[tuple[str, str, str], ...]  # (kind, operator, reason)

    @property
    def pulses_delivered(self) -> int:
        return sum(t.pulses_delivered for t in self.trains)

    @property
    def duration_s(self) -> float:
        """From the start to the last recorded train or fault (the record's own times may be coarser)."""
        last = max([t.onset_s for t in self.trains] + [f.offset_s for f in self.faults if f.offset_s is not None],
                   default=0.0)
        if self.started_at and self.ended_at:
            return max(last, (self.ended_at - self.started_at).total_seconds())
        return last


def session_report(records: Any, session_id: str, *, audit_log: str | Path | None = None) -> SessionReport:
    detail = records.session_detail(session_id)
    s = detail.session
    starts = [a.at for a in detail.actions if getattr(a.kind, "value", a.kind) in ("start", "resume") and a.at]
    segment_start = {n: (at - starts[0]).total_seconds() for n, at in enumerate(starts, start=1)} if starts else {}
    trains = []
    for d in sorted(detail.deliveries, key=lambda d: (d.index, d.attempt)):
        base = segment_start.get(d.segment, 0.0)
        onset = base + d.onset_offset_s if d.onset_offset_s is not None else (
            (d.started_at - starts[0]).total_seconds() if starts else d.planned_onset_s)
        trains.append(TrainRow(d.index, onset, d.pulses_planned, d.pulses_delivered, d.intensity_pct_mso,
                               d.state.value))
    faults = tuple(FaultRow(f.offset_s, f.code, f.detail) for f in detail.faults)
    temperatures: list[tuple[float, float]] = []
    if audit_log is not None and Path(audit_log).exists():
        from tmsctl.audit import iter_audit_log

        for event in iter_audit_log(audit_log):
            if event.get("event") == "coil_temperature" and "temperature_c" in event:
                temperatures.append((float(event.get("t_mono_s", 0.0)), float(event["temperature_c"])))
    actions = tuple((getattr(a.kind, "value", a.kind), a.operator, a.reason) for a in detail.actions)
    return SessionReport(
        s.session_id, s.subject_id, s.protocol_id, s.device_model, s.simulated, s.status.value, s.started_at,
        s.ended_at, s.planned_deliveries, s.planned_pulses, tuple(trains), faults, tuple(temperatures), actions,
    )


@dataclass(frozen=True)
class CourseDay:
    day: date
    planned: int
    delivered: int  # sessions completed that day
    partial: int  # sessions started but not completed
    sessions: tuple[str, ...]


@dataclass(frozen=True)
class CourseReport:
    subject_id: str
    start: date
    weeks: int
    days_per_week: int
    sessions_per_day: int
    days: tuple[CourseDay, ...]
    today: date
    simulated_sessions: int

    @property
    def planned_total(self) -> int:
        return sum(d.planned for d in self.days)

    @property
    def delivered_total(self) -> int:
        return sum(min(d.delivered, d.planned) if d.planned else d.delivered for d in self.days)

    def missed_days(self) -> list[date]:
        """Planned days gone by without any session."""
        return [d.day for d in self.days if d.planned and d.day < self.today and not (d.delivered or d.partial)]

    def incomplete_days(self) -> list[date]:
        """Days with a session that started but did not complete (faulted, aborted, interrupted)."""
        return [d.day for d in self.days if d.partial and d.delivered < max(d.planned, 1)]


def course_report(
    records: Any,
    subject_id: str,
    *,
    weeks: int = 6,
    days_per_week: int = 5,
    sessions_per_day: int | None = None,
    start: date | None = None,
    today: date | None = None,
    clock: Any = None,
) -> CourseReport:
    """A subject's sessions against a plan: ``sessions_per_day`` on the first ``days_per_week`` days of each week.

    Weeks start on ``start`` (default: the day of the subject's first session); ``sessions_per_day``
    defaults to the first protocol's accelerated schedule, else 1. ``today`` (default: the clock's
    date) separates missed days from days to come.
    """
    from tmsctl.clock import SystemClock

    today = today or (clock or SystemClock()).wall().date()
    if not 1 <= days_per_week <= 7 or weeks < 1:
        from tmsctl.errors import InvalidArgument

        raise InvalidArgument(f"a plan needs 1-7 days per week and at least one week, got {days_per_week}/{weeks}")
    sessions = sorted((s for s in records.sessions(subject_id=subject_id) if s.started_at is not None),
                      key=lambda s: s.started_at)
    first = sessions[0].started_at.date() if sessions else today
    start = start or first
    if sessions_per_day is None:
        sessions_per_day = 1
        if sessions:
            from tmsctl.protocols.loader import load_protocol_text

            protocol = load_protocol_text(sessions[0].protocol_text)
            if protocol.accelerated is not None:
                sessions_per_day = protocol.accelerated.sessions_per_day
    by_day: dict[date, list[Any]] = {}
    for s in sessions:
        by_day.setdefault(s.started_at.date(), []).append(s)
    days = []
    for offset in range(weeks * 7):
        day = start + timedelta(days=offset)
        held = by_day.get(day, [])
        days.append(CourseDay(
            day, sessions_per_day if offset % 7 < days_per_week else 0,
            sum(1 for s in held if s.status.value == "completed"),
            sum(1 for s in held if s.status.value != "completed"),
            tuple(s.session_id for s in held),
        ))
    return CourseReport(subject_id, start, weeks, days_per_week, sessions_per_day, tuple(days), today,
                        sum(1 for s in sessions if s.simulated))


# -- SVG charts (pure) -------------------------------------------------------------------------------------


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks


@dataclass
class Chart:
    """One x–y panel: points, bars and markers over a shared time axis."""

    title: str
    y_label: str
    x_max: float
    y_min: float
    y_max: float
    width: int = 860
    height: int = 200
    x_label: str = "minutes from session start"
    elements: list[str] = field(default_factory=list)

    left, right, top, bottom = 64, 16, 30, 36

    def x(self, value: float) -> float:
        return self.left + (self.width - self.left - self.right) * (value / self.x_max if self.x_max else 0.0)

    def y(self, value: float) -> float:
        span = self.y_max - self.y_min or 1.0
        return self.height - self.bottom - (self.height - self.top - self.bottom) * (value - self.y_min) / span

    def bar(self, x0: float, x1: float, value: float, colour: str, title: str, *, outline: bool = False) -> None:
        x_a, x_b = self.x(x0), max(self.x(x1), self.x(x0) + 2.0)
        y_top, y_base = self.y(value), self.y(self.y_min)
        style = f'fill="none" stroke="{colour}" stroke-width="1"' if outline else f'fill="{colour}"'
        self.elements.append(
            f'<rect x="{x_a:.1f}" y="{y_top:.1f}" width="{x_b - x_a:.1f}" height="{max(0.0, y_base - y_top):.1f}" '
            f'{style}><title>{html.escape(title)}</title></rect>'
        )

    def line(self, points: Sequence[tuple[float, float]], colour: str, *, step: bool = False) -> None:
        if not points:
            return
        coords: list[tuple[float, float]] = []
        for i, (px, py) in enumerate(points):
            if step and i:
                coords.append((px, points[i - 1][1]))
            coords.append((px, py))
        path = " ".join(f"{self.x(px):.1f},{self.y(py):.1f}" for px, py in coords)
        self.elements.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for px, py in points:
            self.elements.append(f'<circle cx="{self.x(px):.1f}" cy="{self.y(py):.1f}" r="2.5" fill="{colour}">'
                                 f'<title>{py:g} at {px:.2f} min</title></circle>')

    def hline(self, value: float, colour: str, label: str) -> None:
        y = self.y(value)
        self.elements.append(f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{y:.1f}" y2="{y:.1f}" '
                             f'stroke="{colour}" stroke-dasharray="5,4"/>')
        self.elements.append(f'<text x="{self.width - self.right - 4}" y="{y - 4:.1f}" text-anchor="end" '
                             f'font-size="11" fill="{colour}">{html.escape(label)}</text>')

    def marker(self, at: float, colour: str, label: str) -> None:
        x = self.x(at)
        self.elements.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.top}" y2="{self.height - self.bottom}" '
                             f'stroke="{colour}" stroke-width="2"><title>{html.escape(label)}</title></line>')
        right_half = x > self.width / 2
        self.elements.append(f'<text x="{x - 4 if right_half else x + 4:.1f}" y="{self.top + 12}" font-size="11" '
                             f'text-anchor="{"end" if right_half else "start"}" fill="{colour}">'
                             f'{html.escape(label[:60])}</text>')

    def svg(self) -> str:
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                 f'viewBox="0 0 {self.width} {self.height}" font-family="DejaVu Sans, sans-serif" role="img" '
                 f'aria-label="{html.escape(self.title)}">',
                 f'<text x="{self.left}" y="18" font-size="14" font-weight="bold" fill="{COLOURS["text"]}">'
                 f'{html.escape(self.title)}</text>']
        for tick in _nice_ticks(self.y_min, self.y_max, 4) if self.y_label else ():
            y = self.y(tick)
            parts.append(f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{COLOURS["grid"]}"/>')
            parts.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                         f'fill="{COLOURS["text"]}">{tick:g}</text>')
        for tick in _nice_ticks(0.0, self.x_max, 8):
            x = self.x(tick)
            parts.append(f'<text x="{x:.1f}" y="{self.height - self.bottom + 16}" text-anchor="middle" '
                         f'font-size="11" fill="{COLOURS["text"]}">{tick:g}</text>')
        parts.append(f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{self.y(self.y_min):.1f}" '
                     f'y2="{self.y(self.y_min):.1f}" stroke="{COLOURS["text"]}"/>')
        parts.append(f'<text x="{(self.left + self.width) / 2:.0f}" y="{self.height - 4}" text-anchor="middle" '
                     f'font-size="11" fill="{COLOURS["text"]}">{html.escape(self.x_label)}</text>')
        parts.append(f'<text x="14" y="{(self.top + self.height - self.bottom) / 2:.0f}" font-size="11" '
                     f'fill="{COLOURS["text"]}" transform="rotate(-90 14 {(self.top + self.height - self.bottom) / 2:.0f})" '
                     f'text-anchor="middle">{html.escape(self.y_label)}</text>')
        parts.extend(self.elements)
        parts.append("</svg>")
        return "\n".join(parts)


def session_charts(report: SessionReport) -> dict[str, str]:
    """The session's SVG charts by name: pulses, intensity, coil, faults."""
    minutes = [t.onset_s / 60 for t in report.trains]
    end_min = max([report.duration_s / 60, *minutes, *(f.offset_s / 60 for f in report.faults if f.offset_s)], default=1.0)
    x_max = max(end_min * 1.02, 0.1)
    width_min = max(x_max / max(len(report.trains), 1) * 0.6, x_max / 400)
    charts: dict[str, str] = {}

    top = max((t.pulses_planned for t in report.trains), default=1)
    pulses = Chart("Pulses per train", "pulses", x_max, 0, top * 1.15)
    for t, m in zip(report.trains, minutes):
        pulses.bar(m, m + width_min, t.pulses_planned, COLOURS["planned"], f"train {t.index + 1}: planned {t.pulses_planned}",
                   outline=True)
        pulses.bar(m, m + width_min, t.pulses_delivered, COLOURS.get(t.state, COLOURS["line"]),
                   f"train {t.index + 1} at {m:.2f} min: {t.pulses_delivered}/{t.pulses_planned} pulses ({t.state})")
    charts["pulses"] = pulses.svg()

    levels = [t.intensity_pct_mso for t in report.trains] or [0.0]
    intensity = Chart("Intensity", "% MSO", x_max, 0, max(100.0, max(levels) * 1.1))
    intensity.line([(m, t.intensity_pct_mso) for t, m in zip(report.trains, minutes)], COLOURS["line"], step=True)
    charts["intensity"] = intensity.svg()

    if report.coil_temperatures:
        temps = [c for _, c in report.coil_temperatures]
        coil = Chart("Coil temperature", "°C", x_max, math.floor(min(temps) - 2), max(42.0, max(temps) + 2))
        coil.line([(t / 60, c) for t, c in report.coil_temperatures], "#6a1b9a")
        coil.hline(40.0, COLOURS["fault"], "40 °C")
        charts["coil"] = coil.svg()

    faults = Chart("Faults", "", x_max, 0, 1, height=90)
    for f in report.faults:
        faults.marker((f.offset_s or 0.0) / 60, COLOURS["fault"], f"{f.code}: {f.detail}")
    if not report.faults:
        faults.elements.append(f'<text x="{faults.left + 8}" y="{faults.top + 24}" font-size="12" '
                               f'fill="{COLOURS["completed"]}">no faults recorded</text>')
    charts["faults"] = faults.svg()
    return charts


def course_calendar_svg(course: CourseReport) -> str:
    cell, gap, left, top = 34, 4, 70, 40
    width = max(left + 7 * (cell + gap) + 10, left + 5 * 90 + 60)
    height = top + course.weeks * (cell + gap) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'font-family="DejaVu Sans, sans-serif" role="img" aria-label="Course calendar">',
             f'<text x="{left}" y="18" font-size="14" font-weight="bold" fill="{COLOURS["text"]}">Sessions against the plan</text>']
    for col in range(7):
        weekday = (course.start + timedelta(days=col)).strftime("%a")
        parts.append(f'<text x="{left + col * (cell + gap) + cell / 2}" y="{top - 6}" text-anchor="middle" font-size="11" '
                     f'fill="{COLOURS["text"]}">{weekday}</text>')
    for i, d in enumerate(course.days):
        week, col = divmod(i, 7)
        x, y = left + col * (cell + gap), top + week * (cell + gap)
        if col == 0:
            parts.append(f'<text x="{left - 8}" y="{y + cell / 2 + 4}" text-anchor="end" font-size="11" '
                         f'fill="{COLOURS["text"]}">week {week + 1}</text>')
        state = _day_state(d, course.today)
        label = f"{d.day.isoformat()}: {d.delivered}/{d.planned} planned sessions" + (
            f", {d.partial} not completed" if d.partial else "") + (f" ({', '.join(d.sessions)})" if d.sessions else "")
        parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="4" fill="{COLOURS[state]}" '
                     f'stroke="#b0bec5" data-state="{state}"><title>{html.escape(label)}</title></rect>')
        held = d.delivered + d.partial
        text = f"{d.delivered}/{d.planned}" if d.planned else (str(held) if held else "")
        parts.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" font-size="11" '
                     f'fill="{"#ffffff" if state in ("completed", "missed", "partial") else COLOURS["text"]}">{text}</text>')
    legend_y = top + course.weeks * (cell + gap) + 18
    for k, (state, name) in enumerate((("completed", "done"), ("partial", "part"), ("missed", "missed"),
                                       ("future", "to come"), ("rest", "no session planned"))):
        x = left + k * 90
        parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{COLOURS[state]}" stroke="#b0bec5"/>')
        parts.append(f'<text x="{x + 16}" y="{legend_y}" font-size="11" fill="{COLOURS["text"]}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _day_state(d: CourseDay, today: date) -> str:
    if d.planned == 0:
        return "completed" if d.delivered else ("partial" if d.partial else "rest")
    if d.delivered >= d.planned:
        return "completed"
    if d.day >= today:
        return "future" if not d.delivered else "partial"
    return "partial" if d.delivered or d.partial else "missed"


# -- HTML ---------------------------------------------------------------------------------------------------

_STYLE = """
body{font-family:"DejaVu Sans",sans-serif;color:#263238;margin:24px;max-width:900px}
h1{font-size:22px;margin-bottom:4px} .sub{color:#607d8b;margin-top:0}
.sim{background:#fff3e0;border:1px solid #ef6c00;padding:6px 10px;display:inline-block;color:#e65100;font-weight:bold}
table{border-collapse:collapse;margin:8px 0 16px} td,th{padding:3px 10px;border-bottom:1px solid #eceff1;text-align:left}
.kpi{display:inline-block;margin:0 24px 12px 0} .kpi b{display:block;font-size:20px}
.fault{color:#c62828} footer{color:#90a4ae;font-size:11px;margin-top:24px}
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n<footer>tmsctl {__version__} — research use only, "
            f"not a medical device</footer></body></html>\n")


def render_session_html(report: SessionReport) -> str:
    e = html.escape
    charts = session_charts(report)
    completed = sum(1 for t in report.trains if t.state == "completed")
    body = [f"<h1>Session {e(report.session_id)}</h1>",
            f"<p class=\"sub\">subject {e(report.subject_id)} · protocol {e(report.protocol_id)} · {e(report.device_model)}"
            f" · {e(report.status)}" + (f" · started {report.started_at:%Y-%m-%d %H:%M} UTC" if report.started_at else "") + "</p>"]
    if report.simulated:
        body.append('<p class="sim">SIMULATED session: no stimulator hardware was involved</p>')
    body.append("<div>" + "".join(
        f'<span class="kpi"><b>{value}</b>{e(label)}</span>' for value, label in (
            (f"{report.pulses_delivered} / {report.planned_pulses}", "pulses delivered / planned"),
            (f"{completed} / {report.planned_deliveries}", "trains completed / planned"),
            (f"{report.duration_s / 60:.1f} min", "duration"),
            (str(len(report.faults)), "faults"),
        )) + "</div>")
    for name in ("pulses", "intensity", "coil", "faults"):
        if name in charts:
            body.append(f'<div class="chart">{charts[name]}</div>')
        else:
            body.append("<p>Coil temperature: not in the audit log for this session.</p>")
    if report.faults:
        body.append("<h2>Faults</h2><table><tr><th>at</th><th>code</th><th>detail</th></tr>" + "".join(
            f'<tr class="fault"><td>{(f.offset_s or 0) / 60:.2f} min</td><td>{e(f.code)}</td><td>{e(f.detail)}</td></tr>'
            for f in report.faults) + "</table>")
    if report.actions:
        body.append("<h2>Operator actions</h2><table><tr><th>action</th><th>by</th><th>reason</th></tr>" + "".join(
            f"<tr><td>{e(k)}</td><td>{e(o)}</td><td>{e(r)}</td></tr>" for k, o, r in report.actions) + "</table>")
    return _page(f"tmsctl session {report.session_id}", "\n".join(body))


def render_course_html(course: CourseReport) -> str:
    e = html.escape
    missed = course.missed_days()
    body = [f"<h1>Course of subject {e(course.subject_id)}</h1>",
            f"<p class=\"sub\">plan: {course.sessions_per_day} session(s) a day, {course.days_per_week} days a week, "
            f"{course.weeks} weeks from {course.start.isoformat()}</p>",
            "<div>" + "".join(f'<span class="kpi"><b>{v}</b>{e(label)}</span>' for v, label in (
                (f"{course.delivered_total} / {course.planned_total}", "sessions delivered / planned"),
                (str(len(missed)), "planned days missed so far"),
            )) + "</div>"]
    if course.simulated_sessions:
        body.append(f'<p class="sim">{course.simulated_sessions} SIMULATED session(s) included</p>')
    body.append(f'<div class="chart">{course_calendar_svg(course)}</div>')
    if missed:
        body.append("<h2>Missed days</h2><p>" + ", ".join(d.isoformat() for d in missed) + "</p>")
    incomplete = course.incomplete_days()
    if incomplete:
        body.append("<h2>Sessions not completed</h2><p>" + ", ".join(d.isoformat() for d in incomplete) + "</p>")
    return _page(f"tmsctl course {course.subject_id}", "\n".join(body))


__all__ = [
    "Chart", "CourseDay", "CourseReport", "FaultRow", "SessionReport", "TrainRow", "course_report",
    "course_calendar_svg", "render_course_html", "render_session_html", "session_charts", "session_report",
]
