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
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from tmsctl import __version__
from tmsctl.lab.protocol_facts import protocol_facts
from tmsctl.session.dose import DoseCount

COLOURS = {"completed": "#2e7d32", "stopped": "#ef6c00", "in_progress": "#c62828", "planned": "#cfd8dc",
           "fault": "#c62828", "line": "#1565c0", "grid": "#eceff1", "text": "#263238", "partial": "#f9a825",
           "missed": "#e57373", "future": "#ffffff", "rest": "#f5f5f5"}


# -- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainRow:
    """One attempt at one schedule position, as recorded; ``index`` is 0-based, ``number`` is what a person reads."""

    index: int
    onset_s: float
    pulses_planned: int
    pulses_delivered: int
    intensity_pct_mso: float
    state: str
    pulses_uncertain: int = 0
    evidence: str = ""
    attempt: int = 1
    resolution: str | None = None

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def dose(self) -> DoseCount:
        return DoseCount(self.pulses_planned, self.pulses_delivered, self.pulses_uncertain, self.evidence)


# A fault's cause in words a clinician can act on, by the code the records hold (the controller's own
# codes and the error types the session runner records).
FAULT_CAUSES = {
    "coil_absent": "the coil was disconnected",
    "coil_hot": "the coil was too hot",
    "device_disarmed": "the stimulator disarmed itself (often a front-panel action, the coil or an interlock)",
    "train_stopped_early": "the stimulator ended a train early without saying why",
    "train_overrun": "the stimulator kept a train running past its end",
    "keepalive_missed": "the stimulator could not be reached in time to keep it under remote control",
    "intensity_mismatch": "the stimulator's output was not the validated intensity",
    "IntensityMismatch": "the stimulator's output was not the validated intensity",
    "disarm_unconfirmed": "the stimulator never confirmed it was disarmed: check it by hand",
    "disarm_interrupted": "a disarm was interrupted",
    "internal_error": "an error inside tmsctl (a bug; please report it)",
    "DeviceStateError": "the stimulator stopped or changed state on its own",
    "TransportTimeout": "the stimulator stopped answering (cable, power or the unit itself)",
    "ConnectionFailed": "the connection to the stimulator was lost or could not be made",
    "ProtocolError": "a reply from the stimulator was garbled or unexpected (cable or interference)",
    "DeviceRefused": "the stimulator refused a command",
    "FaultLatched": "the stimulator was already in a fault state",
    "GuardRejected": "a safety guard of tmsctl refused a step",
    "DeviceUnavailable": "the stimulator was not found",
}


def fault_cause(code: str, detail: str = "") -> str:
    """The cause of a recorded fault in plain words; the record's detail keeps the specifics."""
    text = detail.lower()
    if "coil" in text and ("disconnect" in text or "unplug" in text or "absent" in text):
        return FAULT_CAUSES["coil_absent"]
    if "ended the train early" in text:
        return FAULT_CAUSES["train_stopped_early"]
    if "disarmed itself" in text:
        return FAULT_CAUSES["device_disarmed"]
    return FAULT_CAUSES.get(code, f"recorded as {code}")


@dataclass(frozen=True)
class FaultRow:
    offset_s: float | None
    code: str
    detail: str

    @property
    def cause(self) -> str:
        return fault_cause(self.code, self.detail)


@dataclass(frozen=True)
class ThresholdRow:
    """A motor threshold the session was dosed from, with where it came from."""

    reference: str
    value_pct_mso: float
    method: str | None = None  # None: entered by the operator for this session
    coil: str | None = None
    stimulator: str | None = None
    measured_at: datetime | None = None

    def describe(self) -> str:
        text = f"{self.reference} {self.value_pct_mso:g} %MSO"
        if self.method is None:
            return text + ", entered by the operator for this session"
        parts = [self.method]
        if self.coil:
            parts.append(f"coil {self.coil}")
        if self.stimulator:
            parts.append(f"on {self.stimulator}")
        if self.measured_at:
            parts.append(f"measured {self.measured_at:%Y-%m-%d %H:%M} UTC")
        return f"{text} ({', '.join(parts)})"


@dataclass(frozen=True)
class OverrideRow:
    rule_id: str
    finding: str
    operator: str
    reason: str


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
    protocol_title: str = ""
    parameters: tuple[tuple[str, str], ...] = ()  # the protocol as prescribed, (label, value)
    prescribed_intensity: str = ""  # e.g. "110 % rMT"
    thresholds: tuple[ThresholdRow, ...] = ()
    coil: str | None = None
    target: str = ""
    operators: tuple[str, ...] = ()
    device_url: str = ""
    device_serial: str | None = None
    device_firmware: str | None = None
    overrides: tuple[OverrideRow, ...] = ()
    replies_confirmed: bool = True
    train_duration_s: float = 0.0  # nominal, from the protocol (0: a single pulse, or unknown)
    next_index: int = 0  # the first schedule position neither delivered nor skipped (0-based)
    partial: TrainRow | None = None  # an unresolved attempt at next_index that did not complete

    @property
    def dose(self) -> DoseCount:
        """The session's one number: known delivered and uncertain over every train and attempt."""
        return DoseCount(
            max(self.planned_pulses, sum(t.pulses_planned for t in self.trains)),
            sum(t.pulses_delivered for t in self.trains), sum(t.pulses_uncertain for t in self.trains),
        )

    @property
    def pulses_delivered(self) -> int:
        return self.dose.delivered

    @property
    def pulses_uncertain(self) -> int:
        return self.dose.uncertain

    @property
    def finished(self) -> bool:
        return self.partial is None and self.next_index >= self.planned_deliveries

    @property
    def threshold(self) -> ThresholdRow | None:
        return self.thresholds[0] if self.thresholds else None

    def pct_of_threshold(self, intensity_pct_mso: float) -> float | None:
        threshold = self.threshold
        return None if threshold is None else 100.0 * intensity_pct_mso / threshold.value_pct_mso

    def intensity_text(self) -> str:
        """The intensities the trains ran at, in %MSO and in % of the threshold."""
        levels = sorted({t.intensity_pct_mso for t in self.trains})
        if not levels:
            return self.prescribed_intensity or "no train delivered"
        text = " → ".join(f"{v:g}" for v in levels) + " %MSO"
        threshold = self.threshold
        if threshold is not None:
            text += " (" + " → ".join(f"{self.pct_of_threshold(v):.0f}" for v in levels) + f" % {threshold.reference})"
        return text

    def resume_text(self) -> str:
        """Where the session stands, train numbers 1-based."""
        if self.finished:
            return "nothing left to deliver"
        if self.partial is not None:
            p = self.partial
            return (f"train {p.number} was cut short ({p.pulses_delivered} of {p.pulses_planned} known delivered, "
                    f"possibly delivered up to {p.pulses_delivered + p.pulses_uncertain}); a resume does not repeat "
                    f"it and continues with train {p.number + 1}" if p.number < self.planned_deliveries else
                    f"train {p.number} was cut short; it was the last, a resume has nothing left to deliver")
        return f"a resume continues with train {self.next_index + 1} of {self.planned_deliveries}"

    @property
    def duration_s(self) -> float:
        """From the start to the last recorded train or fault (the record's own times may be coarser)."""
        last = max([t.onset_s for t in self.trains] + [f.offset_s for f in self.faults if f.offset_s is not None],
                   default=0.0)
        if self.started_at and self.ended_at:
            return max(last, (self.ended_at - self.started_at).total_seconds())
        return last


def train_runs(trains: Sequence[TrainRow]) -> list[tuple[int, int, TrainRow]]:
    """Consecutive trains that ended alike, as (first number, last number, one of them): a 75-train
    session that went well reads as one line, a cut-short train stands alone."""
    runs: list[tuple[int, int, TrainRow]] = []
    for t in trains:
        key = (t.state, t.pulses_planned, t.pulses_delivered, t.pulses_uncertain, t.evidence, t.resolution, t.attempt)
        if runs:
            first, last, sample = runs[-1]
            same = (sample.state, sample.pulses_planned, sample.pulses_delivered, sample.pulses_uncertain,
                    sample.evidence, sample.resolution, sample.attempt)
            if same == key and t.number == last + 1:
                runs[-1] = (first, t.number, sample)
                continue
        runs.append((t.number, t.number, t))
    return runs


def target_text(protocol: Any) -> str:
    """Where the protocol puts the coil, as a person reads it."""
    target = protocol.target
    details = {
        "eeg_10_20": lambda: f"10-20 site {getattr(target, 'site', '')}",
        "beam_f3": lambda: f"Beam {getattr(target, 'site', '')}",
        "distance_rule": lambda: (
            f"{getattr(target, 'distance_cm', 0):g} cm {getattr(target, 'direction', '')} of the "
            f"{str(getattr(target, 'reference_point', '')).replace('_', ' ')}"
        ),
        "mni": lambda: (
            f"MNI ({getattr(target, 'x_mm', 0):g}, {getattr(target, 'y_mm', 0):g}, {getattr(target, 'z_mm', 0):g})"
        ),
        "neuronavigation": lambda: f"neuronavigation: {getattr(target, 'landmark', '')}",
        "motor_hotspot": lambda: f"motor hot spot of {getattr(target, 'muscle', '')}",
        "described": lambda: str(getattr(target, "description", "")),
    }[target.method]()
    region = f"{target.region}: " if target.region else ""
    return f"{region}{details} ({protocol.hemisphere})"


def _interval_text(seconds: float) -> str:
    return f"{seconds * 1000:g} ms" if seconds < 1 else f"{seconds:g} s"


def protocol_parameters(protocol: Any) -> tuple[tuple[str, str], ...]:
    """The prescription in rows a clinician copies: each repetition layer, intensity, totals."""
    plan = protocol.pattern.plan()
    rows: list[tuple[str, str]] = [("pattern", str(protocol.pattern.kind).replace("_", " "))]
    item = "pulses"
    for layer in (*plan.inner, *plan.outer):
        interval = float(layer.interval_s)
        if layer.count > 1:
            rate = f" ({1 / interval:g} Hz)" if interval < 1 else ""
            rows.append((layer.builds, f"{layer.count} {item}, onsets {_interval_text(interval)} apart{rate}"))
        else:
            rows.append((layer.builds, f"1 {item.rstrip('s')}"))
        item = layer.builds + "s"
    intensity = protocol.intensity.describe()
    ramp = getattr(protocol.intensity, "ramp", None)
    if ramp is not None:
        intensity += f", ramped from {ramp.start_pct_of_target:g} % of it over the first {ramp.first_trains} train(s)"
    rows.append(("prescribed intensity", intensity))
    rows.append(("planned pulses", f"{plan.total_pulses:,} in {plan.trains:,} train(s)"))
    rows.append(("nominal duration", f"{float(plan.session_duration_s) / 60:.1f} min"))
    return tuple(rows)


def session_report(records: Any, session_id: str, *, audit_log: str | Path | None = None) -> SessionReport:
    """Everything a clinician documents about one session, from its record (and audit log, if any)."""
    detail = records.session_detail(session_id)
    s = detail.session
    starts = [a.at for a in detail.actions if getattr(a.kind, "value", a.kind) in ("start", "resume") and a.at]
    run_of = _runs(detail.deliveries)
    segment_start = _run_starts(starts, detail.deliveries, detail.faults, run_of)

    def row(d: Any) -> TrainRow:
        base = segment_start.get(run_of[(d.index, d.attempt)], 0.0)
        onset = base + d.onset_offset_s if d.onset_offset_s is not None else (
            (d.started_at - starts[0]).total_seconds() if starts else d.planned_onset_s)
        return TrainRow(d.index, onset, d.pulses_planned, d.pulses_delivered, d.intensity_pct_mso, d.state.value,
                        d.pulses_uncertain, d.evidence or "", d.attempt,
                        None if d.resolution is None else getattr(d.resolution, "value", str(d.resolution)))

    trains = [row(d) for d in sorted(detail.deliveries, key=lambda d: (d.index, d.attempt))]
    def fault_offset(f: Any) -> float | None:
        # A fault's offset counts from the start of its own run (a resume starts a new one).
        if not starts:
            return f.offset_s
        if f.offset_s is None:
            return None if f.at is None else max(0.0, (f.at - starts[0]).total_seconds())
        return segment_start.get(_fault_run(f, starts, detail.deliveries, run_of), 0.0) + f.offset_s

    faults = tuple(FaultRow(fault_offset(f), f.code, f.detail) for f in detail.faults)
    temperatures: list[tuple[float, float]] = []
    if audit_log is not None and Path(audit_log).exists():
        from tmsctl.session.audit import iter_audit_log

        # Each run's log lines count from that run's start: a clock that goes back is the next run.
        segment, previous = 1, -math.inf
        for event in iter_audit_log(audit_log):
            t = float(event.get("t_mono_s", 0.0))
            if t < previous:
                segment += 1
            previous = t
            if event.get("event") == "coil_temperature" and "temperature_c" in event:
                temperatures.append((segment_start.get(segment, 0.0) + t, float(event["temperature_c"])))
    actions = tuple((getattr(a.kind, "value", a.kind), a.operator, a.reason) for a in detail.actions)
    operators = tuple(dict.fromkeys(a.operator for a in detail.actions
                                    if getattr(a.kind, "value", a.kind) in ("start", "resume")))
    title, prescribed, target, train_s = "", "", "", 0.0
    parameters: tuple[tuple[str, str], ...] = ()
    # None for an old or hand-edited record: the report still says what was delivered. Read from the
    # cache of facts derived from validated protocols where this text's are there (start-up, issue 19).
    facts = protocol_facts(s.protocol_text, label=f"<session {s.session_id}>")
    if facts is not None:
        title, parameters, prescribed = facts.title, facts.parameters, facts.prescribed_intensity
        target, train_s = facts.target, facts.train_duration_s
    point = detail.resume_point
    return SessionReport(
        s.session_id, s.subject_id, s.protocol_id, s.device_model, s.simulated, s.status.value, s.started_at,
        s.ended_at, s.planned_deliveries, s.planned_pulses, tuple(trains), faults, tuple(temperatures), actions,
        protocol_title=title, parameters=parameters, prescribed_intensity=prescribed,
        thresholds=_thresholds_used(records, s), coil=s.coil, target=target, operators=operators,
        device_url=s.device_url, device_serial=s.device_serial, device_firmware=s.device_firmware,
        overrides=tuple(OverrideRow(o.rule_id, o.finding, o.operator, o.reason) for o in detail.overrides),
        replies_confirmed=s.replies_confirmed, train_duration_s=train_s, next_index=point.next_index,
        partial=None if point.partial is None else row(point.partial),
    )


def _runs(deliveries: Sequence[Any]) -> dict[tuple[int, int], int]:
    """Which run (1-based: the start, then each resume) every attempt belongs to.

    Onset offsets count from the start of their own run, and a resume continues at a later position,
    so in schedule order an offset that does not grow begins the next run. (The records' ``segment``
    counts processes, not runs: a resume in the same process keeps it.)"""
    run, previous, result = 1, -math.inf, {}
    for d in sorted(deliveries, key=lambda d: (d.index, d.attempt)):
        if d.onset_offset_s is not None:
            if d.onset_offset_s <= previous:
                run += 1
            previous = d.onset_offset_s
        result[(d.index, d.attempt)] = run
    return result


def _fault_run(fault: Any, starts: Sequence[datetime], deliveries: Sequence[Any],
               run_of: dict[tuple[int, int], int]) -> int:
    """The run a fault happened in: that of the train it names ("train N"), else by its time."""
    named = re.fullmatch(r"train (\d+)", fault.state or "")
    if named:
        attempts = [run_of[(d.index, d.attempt)] for d in deliveries if d.index == int(named[1]) - 1]
        if attempts:
            return max(attempts)
    if fault.at is None:
        return 1
    return max((n for n, at in enumerate(starts, start=1) if at <= fault.at), default=1)


def _run_starts(starts: Sequence[datetime], deliveries: Sequence[Any], faults: Sequence[Any],
                run_of: dict[tuple[int, int], int]) -> dict[int, float]:
    """Seconds from the session's start to each run's start (1-based runs).

    From the start and resume actions' times; never before the previous run's last recorded moment
    (a rehearsal on virtual time starts each run's clock afresh, so its runs may overlap on record)."""
    if not starts:
        return {}
    result: dict[int, float] = {}
    latest = 0.0
    for n, at in enumerate(starts, start=1):
        result[n] = max((at - starts[0]).total_seconds(), latest)
        ends = [d.onset_offset_s for d in deliveries
                if run_of[(d.index, d.attempt)] == n and d.onset_offset_s is not None]
        ends += [f.offset_s for f in faults if f.offset_s is not None and _fault_run(f, starts, deliveries, run_of) == n]
        latest = result[n] + max(ends, default=0.0) + 1.0
    return result


def _thresholds_used(records: Any, session: Any) -> tuple[ThresholdRow, ...]:
    measured = {}
    if any(u.threshold_id is not None for u in session.thresholds_used):
        measured = {t.threshold_id: t for t in records.motor_thresholds(session.subject_id)}
    rows = []
    for used in session.thresholds_used:
        reference = getattr(used.reference, "value", used.reference)
        t = measured.get(used.threshold_id) if used.threshold_id is not None else None
        if t is None:
            rows.append(ThresholdRow(reference, used.value_pct_mso))
        else:
            stimulator = t.stimulator_model + (f" #{t.stimulator_serial}" if t.stimulator_serial else "")
            rows.append(ThresholdRow(reference, used.value_pct_mso, t.method, t.coil, stimulator, t.measured_at))
    return tuple(rows)


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
    from tmsctl.core.clock import SystemClock

    today = today or (clock or SystemClock()).wall().date()
    if not 1 <= days_per_week <= 7 or weeks < 1:
        from tmsctl.core.errors import InvalidArgument

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

    def bar(self, x0: float, x1: float, value: float, colour: str, title: str, *, outline: bool = False,
            base: float | None = None) -> None:
        x_a, x_b = self.x(x0), max(self.x(x1), self.x(x0) + 2.0)
        y_top, y_base = self.y(value), self.y(self.y_min if base is None else base)
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

    def legend(self, entries: Sequence[tuple[str, str]]) -> None:
        """Colour keys in the title row, right-aligned."""
        x = self.width - self.right
        for colour, name in reversed(entries):
            x -= 8 + 7 * len(name)
            self.elements.append(f'<rect x="{x:.0f}" y="8" width="10" height="10" fill="{colour}"/>'
                                 f'<text x="{x + 14:.0f}" y="17" font-size="11" fill="{COLOURS["text"]}">'
                                 f'{html.escape(name)}</text>')
            x -= 18

    def hline(self, value: float, colour: str, label: str) -> None:
        y = self.y(value)
        self.elements.append(f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{y:.1f}" y2="{y:.1f}" '
                             f'stroke="{colour}" stroke-dasharray="5,4"/>')
        self.elements.append(f'<text x="{self.width - self.right - 4}" y="{y - 4:.1f}" text-anchor="end" '
                             f'font-size="11" fill="{colour}">{html.escape(label)}</text>')

    def marker(self, at: float, colour: str, label: str, *, row: int = 0) -> None:
        x = self.x(at)
        self.elements.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.top}" y2="{self.height - self.bottom}" '
                             f'stroke="{colour}" stroke-width="2"><title>{html.escape(label)}</title></line>')
        right_half = x > self.width / 2
        room = (x - self.left if right_half else self.width - self.right - x) - 8
        fits = max(8, int(room / 6.5))  # ~6.5 px a character at 11 px: a label never runs off the panel
        text = label if len(label) <= fits else label[: fits - 1] + "…"
        self.elements.append(f'<text x="{x - 4 if right_half else x + 4:.1f}" y="{self.top + 12 + 13 * row}" font-size="11" '
                             f'text-anchor="{"end" if right_half else "start"}" fill="{colour}">'
                             f'{html.escape(text)}</text>')

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
        if self.y_label:  # an empty label would still be laid out (off the panel, rotated)
            parts.append(f'<text x="14" y="{(self.top + self.height - self.bottom) / 2:.0f}" font-size="11" '
                         f'fill="{COLOURS["text"]}" transform="rotate(-90 14 {(self.top + self.height - self.bottom) / 2:.0f})" '
                         f'text-anchor="middle">{html.escape(self.y_label)}</text>')
        parts.extend(self.elements)
        parts.append("</svg>")
        return "\n".join(parts)


def session_charts(report: SessionReport) -> dict[str, str]:
    """The session's SVG charts by name: pulses, intensity, coil, faults."""
    minutes = [t.onset_s / 60 for t in report.trains]
    fault_minutes = [f.offset_s / 60 for f in report.faults if f.offset_s is not None]
    coil_minutes = [t / 60 for t, _ in report.coil_temperatures]
    end_min = max([report.duration_s / 60, *minutes, *fault_minutes, *coil_minutes], default=0.0)
    # A bar spans its train (at least a few pixels); the axis reaches past the last bar's end.
    width_min = max(report.train_duration_s / 60, end_min / 250, 0.001)
    x_max = max((max(minutes, default=0.0) + width_min, end_min)) * 1.02 or 0.1
    charts: dict[str, str] = {}

    top = max((t.pulses_planned for t in report.trains), default=1)
    pulses = Chart("Pulses per train", "pulses", x_max, 0, top * 1.15)
    for t, m in zip(report.trains, minutes):
        pulses.bar(m, m + width_min, t.pulses_planned, COLOURS["planned"], f"train {t.number}: planned {t.pulses_planned}",
                   outline=True)
        described = f"train {t.number} at {m:.2f} min: {t.pulses_delivered}/{t.pulses_planned} pulses" + (
            f" (+ up to {t.pulses_uncertain} uncertain)" if t.pulses_uncertain else "") + f" ({t.state})"
        pulses.bar(m, m + width_min, t.pulses_delivered, COLOURS.get(t.state, COLOURS["line"]), described)
        if t.pulses_uncertain:
            pulses.bar(m, m + width_min, t.pulses_delivered + t.pulses_uncertain, COLOURS["partial"],
                       f"train {t.number}: up to {t.pulses_uncertain} more may have gone out ({t.evidence})",
                       base=t.pulses_delivered)
    pulses.legend([(COLOURS["completed"], "delivered"), (COLOURS["stopped"], "cut short"),
                   (COLOURS["partial"], "uncertain"), (COLOURS["planned"], "planned")])
    charts["pulses"] = pulses.svg()

    levels = [t.intensity_pct_mso for t in report.trains] or [0.0]
    intensity = Chart("Intensity", "% MSO", x_max, 0, max(100.0, max(levels) * 1.1))
    intensity.line([(m, t.intensity_pct_mso) for t, m in zip(report.trains, minutes)], COLOURS["line"], step=True)
    if report.threshold is not None:
        intensity.hline(report.threshold.value_pct_mso, COLOURS["text"],
                        f"{report.threshold.reference} {report.threshold.value_pct_mso:g} %MSO")
    charts["intensity"] = intensity.svg()

    if report.coil_temperatures:
        temps = [c for _, c in report.coil_temperatures]
        coil = Chart("Coil temperature", "°C", x_max, math.floor(min(temps) - 2), max(42.0, max(temps) + 2))
        coil.line([(t / 60, c) for t, c in report.coil_temperatures], "#6a1b9a")
        coil.hline(40.0, COLOURS["fault"], "40 °C")
        charts["coil"] = coil.svg()

    faults = Chart("Faults", "", x_max, 0, 1, height=90)
    placed = [f for f in report.faults if f.offset_s is not None]
    for n, f in enumerate(placed):
        assert f.offset_s is not None
        faults.marker(f.offset_s / 60, COLOURS["fault"], f"{f.offset_s / 60:.2f} min: {f.cause}", row=n % 2)
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
.fault{color:#c62828} .facts th{width:150px;vertical-align:top} .param th{font-weight:normal;padding-left:24px}
h2{font-size:17px;margin:20px 0 6px} .dose{font-size:15px} .chart svg{max-width:100%;height:auto} footer{color:#90a4ae;font-size:11px;margin-top:24px}
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n<footer>tmsctl {__version__} — research use only, "
            f"not a medical device</footer></body></html>\n")


def session_facts(report: SessionReport) -> list[tuple[str, str]]:
    """What a clinician documents, as (label, value) rows: the same rows in `session show` and the report."""
    r = report
    when = lambda moment: f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "not recorded"  # noqa: E731
    device = r.device_model + (f", serial {r.device_serial}" if r.device_serial else "") + (
        f", firmware {r.device_firmware}" if r.device_firmware else "") + (" (SIMULATED)" if r.simulated else "")
    rows = [
        ("subject", r.subject_id),
        ("protocol", f"{r.protocol_id}" + (f" — {r.protocol_title}" if r.protocol_title else "")),
        *((f"  {label}", value) for label, value in r.parameters),
        ("threshold", "; ".join(t.describe() for t in r.thresholds) or "none (intensity in %MSO)"),
        ("intensity", r.intensity_text()),
        ("coil", r.coil or "not recorded"),
        ("target", r.target or "not recorded"),
        ("operator", ", ".join(r.operators) or "not recorded"),
        ("device", f"{device} — {r.device_url}" if r.device_url else device),
        ("started", when(r.started_at)),
        ("ended", when(r.ended_at)),
        ("status", r.status),
        ("pulses", f"{r.dose.describe()} delivered"),
        ("trains", _trains_text(r)),
        ("resume", r.resume_text()),
    ]
    if not r.replies_confirmed:
        rows.append(("note", "this device never confirms commands or pulses: the counts are what was sent, unconfirmed"))
    return rows


def _trains_text(r: SessionReport) -> str:
    completed = sum(1 for t in r.trains if t.state == "completed")
    cut = sum(1 for t in r.trains if t.state != "completed")
    return f"{completed} of {r.planned_deliveries} delivered in full" + (f", {cut} cut short or unfinished" if cut else "")


def train_lines(report: SessionReport) -> list[tuple[str, str, str, str]]:
    """(trains, pulses, how it ended, evidence) per run of alike trains, train numbers 1-based."""
    lines = []
    for first, last, t in train_runs(report.trains):
        numbers = f"{first}" if first == last else f"{first}–{last}"
        each = " each" if first != last else ""
        ended = t.state.replace("_", " ") + (f", attempt {t.attempt}" if t.attempt > 1 else "") + (
            f", {t.resolution} on resume" if t.resolution else "")
        lines.append((numbers, t.dose.describe() + each, ended, t.evidence or "not recorded"))
    return lines


def render_session_html(report: SessionReport) -> str:
    e = html.escape
    charts = session_charts(report)
    completed = sum(1 for t in report.trains if t.state == "completed")
    dose = report.dose
    body = [f"<h1>Session {e(report.session_id)}</h1>",
            f"<p class=\"sub\">subject {e(report.subject_id)} · protocol {e(report.protocol_id)} · {e(report.device_model)}"
            f" · {e(report.status)}" + (f" · started {report.started_at:%Y-%m-%d %H:%M} UTC" if report.started_at else "") + "</p>"]
    if report.simulated:
        body.append('<p class="sim">SIMULATED session: no stimulator hardware was involved</p>')
    body.append("<div>" + "".join(
        f'<span class="kpi"><b>{e(value)}</b>{e(label)}</span>' for value, label in (
            (f"{dose.delivered} / {report.planned_pulses}", "pulses delivered / planned"),
            (f"+ up to {dose.uncertain}", "pulses uncertain"),
            (f"{completed} / {report.planned_deliveries}", "trains delivered in full / planned"),
            (f"{report.duration_s / 60:.1f} min", "duration"),
            (str(len(report.faults)), "faults"),
        ) if label != "pulses uncertain" or dose.uncertain) + "</div>")
    body.append(f'<p class="dose">Pulses: <b>{e(dose.describe())}</b> delivered.</p>')
    body.append('<h2>Session</h2><table class="facts">' + "".join(
        f"<tr><th>{e(label.strip())}</th><td>{e(value)}</td></tr>" if not label.startswith("  ") else
        f'<tr class="param"><th>{e(label.strip())}</th><td>{e(value)}</td></tr>'
        for label, value in session_facts(report)) + "</table>")
    for name in ("pulses", "intensity", "coil", "faults"):
        if name in charts:
            body.append(f'<div class="chart">{charts[name]}</div>')
        else:
            body.append("<p>Coil temperature: not in the audit log for this session.</p>")
    body.append("<h2>Trains</h2><table><tr><th>train</th><th>pulses</th><th>ended</th><th>evidence</th></tr>" + "".join(
        f"<tr><td>{e(n)}</td><td>{e(p)}</td><td>{e(s)}</td><td>{e(ev)}</td></tr>" for n, p, s, ev in train_lines(report))
        + "</table>")
    if report.faults:
        body.append("<h2>Faults</h2><table><tr><th>at</th><th>cause</th><th>as recorded</th></tr>" + "".join(
            f'<tr class="fault"><td>{"" if f.offset_s is None else f"{f.offset_s / 60:.2f} min"}</td>'
            f"<td>{e(f.cause)}</td><td>{e(f.code)}: {e(f.detail)}</td></tr>"
            for f in report.faults) + "</table>")
    if report.overrides:
        body.append("<h2>Overrides</h2><table><tr><th>rule</th><th>finding</th><th>by</th><th>reason</th></tr>" + "".join(
            f"<tr><td>{e(o.rule_id)}</td><td>{e(o.finding)}</td><td>{e(o.operator)}</td><td>{e(o.reason)}</td></tr>"
            for o in report.overrides) + "</table>")
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
    "Chart",
    "CourseDay",
    "CourseReport",
    "FaultRow",
    "OverrideRow",
    "SessionReport",
    "ThresholdRow",
    "TrainRow",
    "course_calendar_svg",
    "course_report",
    "fault_cause",
    "protocol_parameters",
    "render_course_html",
    "render_session_html",
    "session_charts",
    "session_facts",
    "session_report",
    "target_text",
    "train_lines",
    "train_runs",
]
