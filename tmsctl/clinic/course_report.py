"""The course report: calendar, dose, threshold, outcome trajectory and plan changes (pure rendering).

``summary_dict`` is the JSON export and the numbers every other view shows; ``summary_csv`` one row
per session and per rating; ``render_course_html`` a self-contained page (inline SVG, as the session
report) that opens with a one-page treatment summary a clinic can hand to a payer.
"""

from __future__ import annotations

import csv
import html
import io
from typing import Any

from tmsctl.lab.report import COLOURS, Chart, _page
from tmsctl.records import scales as outcomes
from tmsctl.records.courses import CourseSummary

DAY_COLOURS = {**COLOURS, "delivered": COLOURS["completed"], "uncertain": "#7cb342", "extra": "#90caf9",
               "planned": "#ffffff"}
SCALE_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#4e342e", "#283593", "#558b2f", "#f57f17")


def summary_dict(summary: CourseSummary) -> dict[str, Any]:
    course, plan = summary.course, summary.course.plan
    return {
        "course": {
            "id": course.course_id, "subject": plan.subject_id, "status": course.status, "protocol": plan.protocol_id,
            "protocol_hash": plan.protocol_hash, "template": plan.template_id, "target": plan.target, "coil": plan.coil,
            "prescriber": plan.prescriber, "start_date": plan.start_date.isoformat(),
            "end_date": course.end_date.isoformat() if course.end_date else None, "end_reason": course.end_reason,
            "ended_by": course.ended_by, "planned_sessions": plan.planned_sessions,
            "sessions_per_day": plan.sessions_per_day, "days_per_week": plan.days_per_week,
            "min_interval_min": plan.min_interval_min, "taper": plan.taper,
            "threshold_every_days": plan.threshold_every_days,
        },
        "as_of": summary.today.isoformat(),
        "sessions": {
            "planned": plan.planned_sessions, "delivered": summary.delivered_sessions,
            "short": summary.short_sessions, "missed": summary.missed_sessions,
            "missed_days": [d.isoformat() for d in summary.missed_days],
            "remaining": summary.remaining_sessions, "simulated": summary.simulated_sessions,
            "first": summary.sessions[0].day.isoformat() if summary.sessions else None,
            "last": summary.sessions[-1].day.isoformat() if summary.sessions else None,
            "other_protocol_sessions": [s.session_id for s in summary.other_sessions],
            "list": [
                {"session": s.session_id, "day": s.day.isoformat(), "started_at": s.started_at.isoformat(),
                 "status": s.status, "simulated": s.simulated, "pulses_planned": s.pulses_planned,
                 "pulses_delivered": s.pulses_delivered, "pulses_uncertain": s.pulses_uncertain}
                for s in summary.sessions
            ],
        },
        "dose": {"pulses_delivered": summary.pulses_delivered, "pulses_uncertain": summary.pulses_uncertain,
                 "rule": "sum of the course's sessions' recorded deliveries (known delivered; may have gone out), "
                         "never the plan"},
        "calendar": [{"day": d.day.isoformat(), "planned": d.planned, "held": len(d.held), "state": d.state}
                     for d in summary.calendar],
        "thresholds": [{"day": day.isoformat(), "reference": ref, "pct_mso": value, "from": source}
                       for day, ref, value, source in summary.thresholds],
        "threshold_due": summary.threshold_due,
        "outcomes": {
            scale_id: [
                {"date": p.entry.rated_on.isoformat(), "point": p.entry.point, "score": p.entry.score,
                 "items": list(p.entry.items) if p.entry.items else None, "rater": p.entry.rater,
                 "severity": outcomes.scale(scale_id).severity(p.entry.score),
                 **({"reduction_pct": p.assessment.reduction_pct, "response": p.assessment.response,
                     "remission": p.assessment.remission} if p.assessment else {})}
                for p in points
            ]
            for scale_id, points in summary.outcomes.items()
        },
        "rules": {scale_id: {"response": outcomes.assess(outcomes.scale(scale_id), points[0].entry.score,
                                                         points[0].entry.score).response_rule,
                             "remission": outcomes.assess(outcomes.scale(scale_id), points[0].entry.score,
                                                          points[0].entry.score).remission_rule}
                  for scale_id, points in summary.outcomes.items()},
        "changes": [{"effective": c.effective.isoformat(), "at": c.at.isoformat(), "by": c.changed_by,
                     "field": c.field, "old": c.old_value, "new": c.new_value, "reason": c.reason}
                    for c in summary.changes],
    }


def summary_csv(summary: CourseSummary) -> str:
    """One row per session and per rating, on one timeline."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["kind", "date", "id", "status_or_point", "pulses_planned", "pulses_delivered",
                     "pulses_uncertain", "scale", "score", "reduction_pct", "response", "remission", "simulated"])
    rows: list[tuple[str, list[Any]]] = []
    for s in summary.sessions:
        rows.append((s.started_at.isoformat(), ["session", s.day.isoformat(), s.session_id, s.status, s.pulses_planned,
                                                s.pulses_delivered, s.pulses_uncertain, "", "", "", "", "",
                                                int(s.simulated)]))
    for scale_id, points in summary.outcomes.items():
        for p in points:
            a = p.assessment
            rows.append((p.entry.rated_on.isoformat(), [
                "outcome", p.entry.rated_on.isoformat(), p.entry.entry_id, p.entry.point, "", "", "", scale_id,
                f"{p.entry.score:g}", "" if a is None or a.reduction_pct is None else a.reduction_pct,
                "" if a is None or a.response is None else int(a.response),
                "" if a is None or a.remission is None else int(a.remission), ""]))
    for _, row in sorted(rows, key=lambda r: r[0]):
        writer.writerow(row)
    return buffer.getvalue()


# -- charts -----------------------------------------------------------------------------------------


def calendar_svg(summary: CourseSummary) -> str:
    cell, gap, left, top = 30, 4, 70, 40
    start = summary.course.plan.start_date
    weeks = max(1, (len(summary.calendar) + 6) // 7)
    width, height = left + 7 * (cell + gap) + 240, top + weeks * (cell + gap) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'font-family="DejaVu Sans, sans-serif" role="img" aria-label="Course calendar">',
             f'<text x="{left}" y="18" font-size="14" font-weight="bold" fill="{COLOURS["text"]}">Sessions, day by day</text>']
    for col in range(7):
        parts.append(f'<text x="{left + col * (cell + gap) + cell / 2}" y="{top - 6}" text-anchor="middle" '
                     f'font-size="11" fill="{COLOURS["text"]}">{start.fromordinal(start.toordinal() + col):%a}</text>')
    for i, d in enumerate(summary.calendar):
        week, col = divmod(i, 7)
        x, y = left + col * (cell + gap), top + week * (cell + gap)
        if col == 0:
            parts.append(f'<text x="{left - 8}" y="{y + cell / 2 + 4}" text-anchor="end" font-size="11" '
                         f'fill="{COLOURS["text"]}">week {week + 1}</text>')
        label = f"{d.day.isoformat()}: {d.state}, {d.counted} of {d.planned} planned" + (
            f" ({', '.join(s.session_id for s in d.held)})" if d.held else "")
        parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="4" fill="{DAY_COLOURS[d.state]}" '
                     f'stroke="#b0bec5" data-state="{d.state}" data-day="{d.day.isoformat()}">'
                     f'<title>{html.escape(label)}</title></rect>')
        text = str(len(d.held)) if d.held else ("·" if d.planned else "")
        dark = d.state in ("delivered", "missed", "partial", "uncertain")
        parts.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" font-size="11" '
                     f'fill="{"#ffffff" if dark else COLOURS["text"]}">{text}</text>')
    legend_x = left + 7 * (cell + gap) + 20
    for k, (state, name) in enumerate((("delivered", "delivered"), ("uncertain", "delivered, pulses uncertain"),
                                       ("partial", "stopped early / fewer"), ("missed", "missed"),
                                       ("planned", "planned"), ("rest", "no session planned"),
                                       ("extra", "unplanned session"))):
        y = top + k * 18
        parts.append(f'<rect x="{legend_x}" y="{y}" width="12" height="12" fill="{DAY_COLOURS[state]}" stroke="#b0bec5"/>')
        parts.append(f'<text x="{legend_x + 18}" y="{y + 10}" font-size="11" fill="{COLOURS["text"]}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _days_since_start(summary: CourseSummary, day: Any) -> float:
    return float((day - summary.course.plan.start_date).days)


def outcome_svgs(summary: CourseSummary) -> dict[str, str]:
    """One chart per scale: the scores over course days, with the response and remission lines."""
    charts = {}
    span = max(7.0, float(len(summary.calendar)))
    for k, (scale_id, points) in enumerate(summary.outcomes.items()):
        scale = outcomes.scale(scale_id)
        chart = Chart(f"{scale.name} ({scale_id})", "score", span, scale.low, scale.high, height=220,
                      x_label="days from the course start")
        colour = SCALE_COLOURS[k % len(SCALE_COLOURS)]
        chart.line([(_days_since_start(summary, p.entry.rated_on), p.entry.score) for p in points], colour)
        baseline = next((p.entry.score for p in points if p.entry.point == "baseline"), None)
        if baseline is not None:
            cut = baseline * (1 - scale.response.min_reduction_pct / 100)
            chart.hline(cut, "#2e7d32", f"response ≤ {cut:g} (−{scale.response.min_reduction_pct:g} %)")
        if scale.remission is not None:
            chart.hline(scale.remission.max_score, "#00695c", f"remission ≤ {scale.remission.max_score:g}")
        charts[scale_id] = chart.svg()
    return charts


def threshold_svg(summary: CourseSummary) -> str | None:
    if not summary.thresholds:
        return None
    values = [v for _, _, v, _ in summary.thresholds]
    chart = Chart("Motor threshold", "%MSO", max(7.0, float(len(summary.calendar))), max(0.0, min(values) - 10),
                  min(100.0, max(values) + 10), height=180, x_label="days from the course start")
    chart.line([(_days_since_start(summary, day), value) for day, _, value, _ in summary.thresholds],
               COLOURS["line"], step=True)
    return chart.svg()


def dose_svg(summary: CourseSummary) -> str | None:
    if not summary.sessions:
        return None
    span = max(7.0, float(len(summary.calendar)))
    chart = Chart("Cumulative dose", "pulses", span, 0.0,
                  float(summary.pulses_delivered + summary.pulses_uncertain) or 1.0, height=200,
                  x_label="days from the course start")
    total, points = 0, []
    for s in summary.sessions:
        total += s.pulses_delivered
        points.append((_days_since_start(summary, s.day) + 1, float(total)))
    chart.line(points, COLOURS["completed"], step=True)
    return chart.svg()


# -- HTML -------------------------------------------------------------------------------------------


def render_course_html(summary: CourseSummary) -> str:
    e = html.escape
    data = summary_dict(summary)
    c, s = data["course"], data["sessions"]
    body = [f"<h1>Treatment summary — subject {e(c['subject'])}, course {c['id']}</h1>",
            f'<p class="sub">{e(c["protocol"])} · prescribed by {e(c["prescriber"])} · {e(c["status"])}'
            f' · report as of {data["as_of"]}</p>']
    if s["simulated"]:
        body.append(f'<p class="sim">{s["simulated"]} SIMULATED session(s): no stimulator hardware was involved</p>')
    summary_rows = [
        ("Dates", f"{c['start_date']} – {c['end_date'] or 'ongoing'}" + (f" ({c['end_reason']})" if c["end_reason"] else "")),
        ("Sessions", f"{s['delivered']} delivered of {s['planned']} prescribed; {s['missed']} missed, "
                     f"{s['short']} stopped early, {s['remaining']} remaining"),
        ("Schedule", f"{c['sessions_per_day']} a day" + (f", ≥ {c['min_interval_min']:g} min apart" if c["min_interval_min"] else "")
                     + f", {c['days_per_week']} days a week" + (f"; taper: {c['taper']}" if c["taper"] else "")),
        ("Protocol", f"{c['protocol']} ({c['protocol_hash'][:19]}…)"),
        ("Target / coil", f"{c['target'] or '—'} / {c['coil'] or '—'}"),
        ("Dose", f"{data['dose']['pulses_delivered']:,} pulses delivered"
                 + (f", {data['dose']['pulses_uncertain']:,} uncertain" if data["dose"]["pulses_uncertain"] else "")),
    ]
    for scale_id, points in data["outcomes"].items():
        first, last = points[0], points[-1]
        verdict = ""
        if "response" in last:
            verdict = (f" — {last['reduction_pct']:g} % reduction; response {'yes' if last['response'] else 'no'}"
                       + ("" if last["remission"] is None else f", remission {'yes' if last['remission'] else 'no'}"))
        summary_rows.append((f"{scale_id.upper()}", f"{first['score']:g} ({first['date']}) → {last['score']:g} "
                                                   f"({last['date']}){verdict}"))
    body.append('<table class="summary">' + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary_rows)
                + "</table>")
    body.append(f'<div class="chart">{calendar_svg(summary)}</div>')
    for chart in (dose_svg(summary), threshold_svg(summary)):
        if chart:
            body.append(f'<div class="chart">{chart}</div>')
    for scale_id, svg in outcome_svgs(summary).items():
        body.append(f'<div class="chart" data-scale="{e(scale_id)}">{svg}</div>')
        rules = data["rules"][scale_id]
        body.append(f'<p class="rule">{e(rules["response"])}<br>{e(rules["remission"])}</p>')
    if data["changes"]:
        body.append("<h2>Plan changes</h2><table><tr><th>effective</th><th>by</th><th>change</th><th>why</th></tr>" + "".join(
            f"<tr><td>{e(ch['effective'])}</td><td>{e(ch['by'])}</td><td>{e(ch['field'])}: {e(str(ch['old']))} → "
            f"{e(str(ch['new']))}</td><td>{e(ch['reason'])}</td></tr>" for ch in data["changes"]) + "</table>")
    body.append("<h2>Sessions</h2><table><tr><th>day</th><th>session</th><th>status</th><th>pulses delivered</th>"
                "<th>uncertain</th></tr>" + "".join(
                    f"<tr><td>{x['day']}</td><td>{e(x['session'])}</td><td>{e(x['status'])}</td>"
                    f"<td>{x['pulses_delivered']:,} / {x['pulses_planned']:,}</td><td>{x['pulses_uncertain']}</td></tr>"
                    for x in s["list"]) + "</table>")
    if s["missed_days"]:
        body.append("<h2>Missed days</h2><p>" + ", ".join(s["missed_days"]) + "</p>")
    return _page(f"tmsctl course {c['subject']} {c['id']}", "\n".join(body))


__all__ = ["calendar_svg", "dose_svg", "outcome_svgs", "render_course_html", "summary_csv", "summary_dict",
           "threshold_svg"]
