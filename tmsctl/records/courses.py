"""Treatment courses and outcome entries: the ``Courses`` repository over the records store.

A course is a prescription (protocol and its content hash, number of sessions, sessions per day,
days per week, spacing, threshold policy, prescriber, start date) with its plan changes (who,
when, why) and its end (completed or stopped early, with a reason).

Which sessions belong to a course is read, not written: the subject's sessions of a prescribed
protocol (by content hash, the original or one a plan change brought in) started between the
course's start and end dates (UTC dates). The session path needs no course and no hook, sessions
recorded before a course was entered attach too, and there is no link that could drift from the
session records. The same rule decides, before a session, whether it may start
(``check_session_start``): a subject whose course is closed, a protocol the course does not
prescribe, a day's sessions used up or started too soon after the last are refused by rule.

The course's dose is the sum of its sessions' reconciled counts (pulses known delivered, and
pulses that may have gone out), never the plan's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tmsctl.core.errors import InvalidArgument
from tmsctl.records import scales as outcomes
from tmsctl.records.errors import InvalidRecord, RecordRefused, UnknownRecord
from tmsctl.records.model import Session, SessionStatus, _count, _text, validate_subject_id
from tmsctl.records.schema import _from_db_time, _from_db_time_required

COURSE_STATUSES = ("active", "completed", "stopped")
OUTCOME_POINTS = ("baseline", "weekly", "end", "follow_up", "other")
# What a plan change may change; the protocol moves id, hash and text together.
CHANGEABLE = ("planned_sessions", "sessions_per_day", "days_per_week", "min_interval_min", "taper",
              "threshold_every_days", "target", "coil", "protocol")
# Sessions that ran their whole schedule count towards the course; those stopped early do not.
_COUNTED = (SessionStatus.COMPLETED.value, "incomplete")


class CourseRefused(RecordRefused, InvalidArgument):
    """A course rule refuses the request; ``rule`` names it (e.g. ``course.closed``)."""

    def __init__(self, rule: str, message: str, *, hint: str | None = None, path: Any = None) -> None:
        self.rule = rule
        super().__init__(f"{rule}: {message}", path=path, hint=hint)


@dataclass(frozen=True)
class CoursePlan:
    subject_id: str
    protocol_id: str
    protocol_hash: str
    protocol_text: str
    planned_sessions: int
    prescriber: str
    start_date: date
    sessions_per_day: int = 1
    days_per_week: int = 5
    min_interval_min: float | None = None  # between session starts on one day
    taper: str | None = None
    threshold_every_days: int | None = None  # re-measure the motor threshold every N days
    target: str | None = None
    coil: str | None = None
    template_id: str | None = None

    def validate(self) -> None:
        validate_subject_id(self.subject_id)
        _text("protocol_id", self.protocol_id, max_len=120)
        _text("prescriber", self.prescriber, max_len=80)
        _count("planned_sessions", self.planned_sessions, low=1, high=1000)
        _count("sessions_per_day", self.sessions_per_day, low=1, high=24)
        _count("days_per_week", self.days_per_week, low=1, high=7)
        if self.threshold_every_days is not None:
            _count("threshold_every_days", self.threshold_every_days, low=1, high=365)
        if self.min_interval_min is not None and not 0 < self.min_interval_min <= 24 * 60:
            raise InvalidRecord(f"min_interval_min = {self.min_interval_min} is outside (0, 1440]")
        if self.sessions_per_day > 1 and self.min_interval_min is None:
            raise InvalidRecord("a course of several sessions a day needs the minimum interval between them",
                                hint="give --min-interval MINUTES (start to start)")
        if not isinstance(self.start_date, date) or isinstance(self.start_date, datetime):
            raise InvalidRecord(f"start_date must be a date, got {self.start_date!r}")


@dataclass(frozen=True)
class Course:
    course_id: int
    plan: CoursePlan
    status: str
    created_at: datetime
    end_date: date | None = None
    end_reason: str | None = None
    ended_by: str | None = None
    ended_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class PlanChange:
    course_id: int
    field: str
    old_value: str | None
    new_value: str | None
    changed_by: str
    reason: str
    effective: date
    at: datetime
    change_id: int


@dataclass(frozen=True)
class OutcomeEntry:
    course_id: int
    scale_id: str
    score: float
    point: str
    rated_on: date
    rater: str
    items: tuple[int, ...] | None = None
    note: str | None = None
    recorded_at: datetime | None = None
    entry_id: int | None = None


@dataclass(frozen=True)
class CourseSession:
    session_id: str
    day: date
    started_at: datetime
    status: str
    simulated: bool
    pulses_planned: int
    pulses_delivered: int
    pulses_uncertain: int
    thresholds: tuple[tuple[str, float], ...]  # (reference, %MSO) the session resolved intensity from

    @property
    def counted(self) -> bool:
        return self.status in _COUNTED


@dataclass(frozen=True)
class CalendarDay:
    day: date
    planned: int  # sessions the plan put on this day
    held: tuple[CourseSession, ...]
    state: str  # delivered | partial | uncertain | missed | planned | rest | extra

    @property
    def counted(self) -> int:
        return sum(1 for s in self.held if s.counted)


@dataclass(frozen=True)
class OutcomePoint:
    entry: OutcomeEntry
    assessment: outcomes.Assessment | None  # None for the baseline itself


@dataclass(frozen=True)
class CourseSummary:
    course: Course
    today: date
    sessions: tuple[CourseSession, ...]
    other_sessions: tuple[Session, ...]  # same subject, same dates, a protocol the course does not prescribe
    calendar: tuple[CalendarDay, ...]
    changes: tuple[PlanChange, ...]
    outcomes: dict[str, tuple[OutcomePoint, ...]] = field(default_factory=dict)
    thresholds: tuple[tuple[date, str, float, str], ...] = ()  # (day, reference, %MSO, where from)

    @property
    def delivered_sessions(self) -> int:
        """Sessions that ran their whole schedule (completed, or incomplete with uncertain pulses)."""
        return sum(1 for s in self.sessions if s.counted)

    @property
    def short_sessions(self) -> int:
        """Sessions started but stopped before their schedule's end (aborted, faulted, interrupted)."""
        return sum(1 for s in self.sessions if not s.counted)

    @property
    def missed_sessions(self) -> int:
        return sum(max(0, d.planned - d.counted) for d in self.calendar if d.state in ("missed", "partial"))

    @property
    def missed_days(self) -> tuple[date, ...]:
        return tuple(d.day for d in self.calendar if d.state == "missed")

    @property
    def remaining_sessions(self) -> int:
        if not self.course.active:
            return 0
        return max(0, self.course.plan.planned_sessions - self.delivered_sessions)

    @property
    def pulses_delivered(self) -> int:
        return sum(s.pulses_delivered for s in self.sessions)

    @property
    def pulses_uncertain(self) -> int:
        return sum(s.pulses_uncertain for s in self.sessions)

    @property
    def simulated_sessions(self) -> int:
        return sum(1 for s in self.sessions if s.simulated)

    @property
    def threshold_due(self) -> bool:
        """The plan re-measures the threshold every N days and the last one is older than that."""
        every = self.course.plan.threshold_every_days
        if every is None or not self.course.active:
            return False
        measured = [day for day, _, _, source in self.thresholds if source == "measured"]
        last = max(measured, default=self.course.plan.start_date - timedelta(days=every + 1))
        return (self.today - last).days > every


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


class Courses:
    """Courses, plan changes and outcome entries in one records database (``Records.courses``)."""

    def __init__(self, records: Any) -> None:
        self._records = records

    # -- helpers over the store --------------------------------------------------------------

    def _read(self, doing: str, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return self._records._read(doing, sql, params)

    def _today(self) -> date:
        return self._records._now().date()

    def _refused(self, rule: str, message: str, hint: str | None = None) -> CourseRefused:
        return CourseRefused(rule, message, hint=hint, path=self._records.path)

    # -- courses -----------------------------------------------------------------------------

    def start(self, plan: CoursePlan) -> Course:
        """Record a new active course; refused while the subject has one, or for a future start."""
        plan.validate()
        today = self._today()
        if plan.start_date > today + timedelta(days=366):
            raise self._refused("course.start_date", f"a start on {plan.start_date} is more than a year away")
        with self._records._transaction("starting a course") as conn:
            self._records._require_subject(conn, plan.subject_id)
            row = conn.execute(
                "SELECT course_id, start_date FROM courses WHERE subject_id = ? AND status = 'active'",
                (plan.subject_id,),
            ).fetchone()
            if row is not None:
                raise self._refused(
                    "course.one_active",
                    f"subject {plan.subject_id} already has an active course ({row[0]}, from {row[1]})",
                    hint=f"end it first: `tmsctl course end {plan.subject_id} --status completed|stopped --reason ...`",
                )
            last_end = conn.execute(
                "SELECT max(end_date) FROM courses WHERE subject_id = ?", (plan.subject_id,)
            ).fetchone()[0]
            if last_end is not None and plan.start_date <= date.fromisoformat(last_end):
                raise self._refused(
                    "course.overlap", f"the previous course of {plan.subject_id} ended on {last_end}; a new one "
                    "starts after that day, so each session belongs to one course",
                )
            cursor = conn.execute(
                """INSERT INTO courses (subject_id, template_id, protocol_id, protocol_hash, protocol_text, target,
                       coil, planned_sessions, sessions_per_day, days_per_week, min_interval_min, taper,
                       threshold_every_days, prescriber, start_date, created_at, status)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active')""",
                (plan.subject_id, plan.template_id, plan.protocol_id, plan.protocol_hash, plan.protocol_text,
                 plan.target, plan.coil, plan.planned_sessions, plan.sessions_per_day, plan.days_per_week,
                 plan.min_interval_min, plan.taper, plan.threshold_every_days, plan.prescriber,
                 plan.start_date.isoformat(), self._records._stamp(None)),
            )
            course_id = cursor.lastrowid
        assert course_id is not None
        return self.course(course_id)

    def course(self, course_id: int) -> Course:
        rows = self._read("reading a course", "SELECT * FROM courses WHERE course_id = ?", (course_id,))
        if not rows:
            raise UnknownRecord(f"no course {course_id} in {self._records.path}", path=self._records.path,
                                hint="`tmsctl course show SUBJECT` shows a subject's courses")
        return _course_from_row(rows[0])

    def of_subject(self, subject_id: str) -> tuple[Course, ...]:
        validate_subject_id(subject_id)
        rows = self._read("listing courses", "SELECT * FROM courses WHERE subject_id = ? ORDER BY start_date, course_id",
                          (subject_id,))
        return tuple(_course_from_row(r) for r in rows)

    def active(self, subject_id: str) -> Course | None:
        found = [c for c in self.of_subject(subject_id) if c.active]
        return found[0] if found else None

    def current(self, subject_id: str) -> Course:
        """The active course, else the latest; refused when the subject has none."""
        courses = self.of_subject(subject_id)
        if not courses:
            raise UnknownRecord(f"subject {subject_id} has no course on record", path=self._records.path,
                                hint=f"start one: `tmsctl course start {subject_id} --protocol FILE ...`")
        return next((c for c in courses if c.active), courses[-1])

    def end(self, course_id: int, *, status: str, reason: str, ended_by: str, end_date: date | None = None) -> Course:
        """Close the course: ``completed`` or ``stopped`` (early), with a reason; final."""
        if status not in ("completed", "stopped"):
            raise InvalidRecord(f"a course ends 'completed' or 'stopped', not {status!r}")
        _text("reason", reason, max_len=2000)
        _text("ended_by", ended_by, max_len=80)
        end_date = end_date or self._today()
        with self._records._transaction("ending a course") as conn:
            course = self._locked_active(conn, course_id, "end")
            if end_date < course.plan.start_date:
                raise self._refused("course.end_date", f"course {course_id} starts on {course.plan.start_date}; "
                                    f"it cannot end on {end_date}")
            if end_date > self._today():
                raise self._refused("course.future_date", f"{end_date} is in the future")
            conn.execute(
                "UPDATE courses SET status = ?, end_date = ?, end_reason = ?, ended_by = ?, ended_at = ? "
                "WHERE course_id = ?",
                (status, end_date.isoformat(), reason, ended_by, self._records._stamp(None), course_id),
            )
        return self.course(course_id)

    def _locked_active(self, conn: sqlite3.Connection, course_id: int, doing: str) -> Course:
        row = conn.execute("SELECT * FROM courses WHERE course_id = ?", (course_id,)).fetchone()
        if row is None:
            raise UnknownRecord(f"no course {course_id} in {self._records.path}", path=self._records.path)
        names = [d[0] for d in conn.execute("SELECT * FROM courses LIMIT 0").description]
        course = _course_from_row(dict(zip(names, row, strict=True)))
        if not course.active:
            raise self._refused(
                "course.closed", f"course {course_id} of {course.plan.subject_id} ended on {course.end_date} "
                f"({course.status}: {course.end_reason}); a closed course does not change",
                hint=f"start a new course: `tmsctl course start {course.plan.subject_id} ...`",
            )
        return course

    def change_plan(self, course_id: int, changes: dict[str, Any], *, changed_by: str, reason: str,
                    effective: date | None = None) -> tuple[PlanChange, ...]:
        """Change the active course's plan; each field's old and new value is kept with who and why."""
        _text("reason", reason, max_len=2000)
        _text("changed_by", changed_by, max_len=80)
        unknown = sorted(set(changes) - set(CHANGEABLE))
        if unknown or not changes:
            raise InvalidRecord(f"a plan change names fields among {', '.join(CHANGEABLE)}; got {unknown or 'none'}")
        effective = effective or self._today()
        with self._records._transaction("changing a course plan") as conn:
            course = self._locked_active(conn, course_id, "change")
            columns: dict[str, Any] = {}
            logged: list[tuple[str, Any, Any]] = []
            for name, value in changes.items():
                if name == "protocol":
                    protocol_id, protocol_hash, protocol_text = value
                    columns.update(protocol_id=protocol_id, protocol_hash=protocol_hash, protocol_text=protocol_text)
                    logged.append(("protocol", f"{course.plan.protocol_id} {course.plan.protocol_hash}",
                                   f"{protocol_id} {protocol_hash}"))
                else:
                    columns[name] = value
                    logged.append((name, getattr(course.plan, name), value))
            fields = {**{k: getattr(course.plan, k) for k in CoursePlan.__dataclass_fields__}, **columns}
            CoursePlan(**fields).validate()
            conn.execute(f"UPDATE courses SET {', '.join(f'{k} = ?' for k in columns)} WHERE course_id = ?",
                         (*columns.values(), course_id))
            at = self._records._stamp(None)
            for name, old, new in logged:
                conn.execute(
                    "INSERT INTO course_plan_changes (course_id, field, old_value, new_value, changed_by, reason, "
                    "effective, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (course_id, name, None if old is None else str(old), None if new is None else str(new),
                     changed_by, reason, effective.isoformat(), at),
                )
        return self.changes(course_id)[-len(logged):]

    def changes(self, course_id: int) -> tuple[PlanChange, ...]:
        rows = self._read("reading plan changes",
                          "SELECT * FROM course_plan_changes WHERE course_id = ? ORDER BY change_id", (course_id,))
        return tuple(
            PlanChange(r["course_id"], r["field"], r["old_value"], r["new_value"], r["changed_by"], r["reason"],
                       date.fromisoformat(r["effective"]), _from_db_time_required(r["at"]), r["change_id"])
            for r in rows
        )

    def _protocol_hashes(self, course: Course) -> set[str]:
        hashes = {course.plan.protocol_hash}
        for change in self.changes(course.course_id):
            if change.field == "protocol":
                for value in (change.old_value, change.new_value):
                    if value:
                        hashes.add(value.rsplit(" ", 1)[-1])
        return hashes

    # -- sessions of a course (read from the session records) -------------------------------

    def sessions(self, course: Course) -> tuple[tuple[CourseSession, ...], tuple[Session, ...]]:
        """The course's sessions (oldest first) and the subject's other sessions in the course's dates."""
        start = datetime.combine(course.plan.start_date, datetime.min.time(), tzinfo=UTC)
        last_day = course.end_date
        hashes = self._protocol_hashes(course)
        ours: list[Session] = []
        others: list[Session] = []
        for s in self._records.sessions(subject_id=course.plan.subject_id):
            if s.started_at is None or s.started_at < start:
                continue
            if last_day is not None and s.started_at.astimezone(UTC).date() > last_day:
                continue
            (ours if s.protocol_hash in hashes else others).append(s)
        ours.sort(key=lambda s: s.started_at or start)
        doses = self._doses([s.session_id for s in ours])
        return tuple(
            CourseSession(
                s.session_id, (s.started_at or start).astimezone(UTC).date(), s.started_at or start,
                s.status.value, s.simulated, s.planned_pulses, *doses.get(s.session_id, (0, 0)),
                tuple((t.reference.value, t.value_pct_mso) for t in s.thresholds_used),
            )
            for s in ours
        ), tuple(others)

    def _doses(self, session_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        if not session_ids:
            return {}
        # A delivery begun with no outcome on record may have put out every pulse not known delivered.
        rows = self._read(
            "adding up a course's dose",
            """SELECT session_id, sum(pulses_delivered) AS delivered,
                      sum(CASE WHEN state = 'in_progress' THEN pulses_planned - pulses_delivered
                               ELSE pulses_uncertain END) AS uncertain
               FROM deliveries WHERE session_id IN (SELECT value FROM json_each(?)) GROUP BY session_id""",
            (json.dumps(list(session_ids)),),
        )
        return {r["session_id"]: (int(r["delivered"] or 0), int(r["uncertain"] or 0)) for r in rows}

    def check_session_start(self, subject_id: str, protocol_hash: str, at: datetime) -> Course | None:
        """May a session of this protocol start now for this subject? Its course, None without one.

        A subject with no course runs sessions as before (research use). With courses on record:
        refused when none is active (``course.closed``), before the active one starts
        (``course.not_started``), for a protocol it does not prescribe (``course.protocol``), when
        its sessions are all delivered (``course.sessions_done``), when today's are
        (``course.sessions_per_day``), and sooner than its minimum interval after the last
        session's start (``course.min_interval``).
        """
        courses = self.of_subject(subject_id)
        if not courses:
            return None
        course = next((c for c in courses if c.active), None)
        if course is None:
            last = courses[-1]
            raise self._refused(
                "course.closed",
                f"subject {subject_id}'s course {last.course_id} ended on {last.end_date} ({last.status}: "
                f"{last.end_reason}); sessions attach to an active course",
                hint=f"start a new course for this treatment: `tmsctl course start {subject_id} --protocol FILE ...`",
            )
        plan = course.plan
        day = at.astimezone(UTC).date()
        if day < plan.start_date:
            raise self._refused("course.not_started", f"course {course.course_id} starts on {plan.start_date}, "
                                f"not before (today is {day})")
        if protocol_hash != plan.protocol_hash:
            raise self._refused(
                "course.protocol",
                f"course {course.course_id} prescribes {plan.protocol_id} ({plan.protocol_hash[:19]}…); this protocol "
                f"hashes to {protocol_hash[:19]}…",
                hint="run the prescribed protocol file, or record the change first: `tmsctl course change "
                f"{subject_id} --protocol FILE --reason ...`",
            )
        held, _ = self.sessions(course)
        counted = sum(1 for s in held if s.counted)
        if counted >= plan.planned_sessions:
            raise self._refused(
                "course.sessions_done", f"all {plan.planned_sessions} prescribed sessions of course "
                f"{course.course_id} are delivered",
                hint="end the course (`tmsctl course end`), or add sessions with `tmsctl course change --sessions N`",
            )
        today = [s for s in held if s.day == day]
        if len(today) >= plan.sessions_per_day:
            raise self._refused(
                "course.sessions_per_day", f"course {course.course_id} allows {plan.sessions_per_day} session(s) "
                f"a day; {len(today)} started on {day}",
                hint="the next session is due on the next treatment day",
            )
        if today and plan.min_interval_min is not None:
            last_start = max(s.started_at for s in today)
            wait = last_start + timedelta(minutes=plan.min_interval_min) - at
            if wait > timedelta(0):
                raise self._refused(
                    "course.min_interval",
                    f"course {course.course_id} spaces sessions at least {plan.min_interval_min:g} min apart "
                    f"(start to start); the last started at {last_start:%H:%M} UTC",
                    hint=f"wait {wait.total_seconds() / 60:.0f} min more",
                )
        return course

    # -- outcomes ----------------------------------------------------------------------------

    def add_outcome(
        self, subject_id: str, scale_name: str, *, rated_on: date, rater: str, score: float | None = None,
        items: Sequence[int] | None = None, point: str | None = None, course_id: int | None = None,
        note: str | None = None,
    ) -> tuple[OutcomeEntry, tuple[str, ...]]:
        """Record one rating, total or item by item; returns it and any item flags (e.g. PHQ-9 item 9).

        Refused: an unknown scale, a score or item outside its range, a total that disagrees with the
        items, a date in the future, before the course or after its end, no course, a second baseline.
        """
        scale = outcomes.scale(scale_name)
        _text("rater", rater, max_len=80)
        if items is not None:
            computed = outcomes.score_items(scale, list(items))
            if score is not None and outcomes.check_total(scale, score) != computed:
                raise outcomes.ScoreOutOfRange(
                    f"outcome.total_mismatch: the {scale.id} items add up to {computed:g}, the total given is {score:g}"
                )
            score = computed
        elif score is not None:
            score = outcomes.check_total(scale, score)
        else:
            raise InvalidRecord("an outcome needs a score or the item answers")
        if point is not None and point not in OUTCOME_POINTS:
            raise InvalidRecord(f"outcome point must be one of {', '.join(OUTCOME_POINTS)}, got {point!r}")
        today = self._today()
        if rated_on > today:
            raise self._refused("outcome.future_date", f"{rated_on} is after today ({today})",
                                hint="give the date the scale was rated on")
        course = self.course(course_id) if course_id is not None else self.active(subject_id)
        if course is None:
            raise self._refused("outcome.no_course", f"subject {subject_id} has no active course",
                                hint=f"start one (`tmsctl course start {subject_id} ...`) or name a past one with --course")
        if course.plan.subject_id != subject_id:
            raise self._refused("outcome.subject", f"course {course.course_id} is subject {course.plan.subject_id}'s")
        if rated_on < course.plan.start_date:
            raise self._refused("outcome.before_course", f"{rated_on} is before course {course.course_id} started "
                                f"({course.plan.start_date})", hint="rate the baseline on the course's first day")
        if course.end_date is not None and rated_on > course.end_date:
            raise self._refused("outcome.after_course", f"course {course.course_id} ended on {course.end_date}; "
                                f"{rated_on} is after it")
        with self._records._transaction("recording an outcome") as conn:
            baseline = conn.execute(
                "SELECT rated_on FROM outcome_entries WHERE course_id = ? AND scale_id = ? AND point = 'baseline'",
                (course.course_id, scale.id),
            ).fetchone()
            point = point or ("weekly" if baseline else "baseline")
            if point == "baseline" and baseline is not None:
                raise self._refused("outcome.second_baseline", f"course {course.course_id} has a {scale.id} baseline "
                                    f"(rated {baseline[0]})", hint="record this one as --point weekly, end or other")
            if point != "baseline" and baseline is None:
                raise self._refused("outcome.no_baseline", f"course {course.course_id} has no {scale.id} baseline yet",
                                    hint="record the baseline first (--point baseline)")
            if point != "baseline" and rated_on < date.fromisoformat(baseline[0]):
                raise self._refused("outcome.before_baseline", f"{rated_on} is before the {scale.id} baseline "
                                    f"({baseline[0]})")
            cursor = conn.execute(
                "INSERT INTO outcome_entries (course_id, scale_id, score, items_json, point, rated_on, rater, note, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (course.course_id, scale.id, score, None if items is None else json.dumps(list(items)), point,
                 rated_on.isoformat(), rater, note, self._records._stamp(None)),
            )
            entry_id = cursor.lastrowid
        entry = next(e for e in self.outcomes(course.course_id) if e.entry_id == entry_id)
        return entry, outcomes.flags(scale, items)

    def outcomes(self, course_id: int) -> tuple[OutcomeEntry, ...]:
        rows = self._read("reading outcomes", "SELECT * FROM outcome_entries WHERE course_id = ? "
                          "ORDER BY scale_id, rated_on, entry_id", (course_id,))
        return tuple(
            OutcomeEntry(
                r["course_id"], r["scale_id"], r["score"], r["point"], date.fromisoformat(r["rated_on"]), r["rater"],
                None if r["items_json"] is None else tuple(json.loads(r["items_json"])), r["note"],
                _from_db_time(r["recorded_at"]), r["entry_id"],
            )
            for r in rows
        )

    # -- the whole picture -------------------------------------------------------------------

    def summary(self, course_id: int, *, today: date | None = None) -> CourseSummary:
        course = self.course(course_id)
        today = today or self._today()
        held, others = self.sessions(course)
        trajectories: dict[str, list[OutcomePoint]] = {}
        baselines: dict[str, float] = {}
        for entry in self.outcomes(course_id):
            if entry.point == "baseline":
                baselines[entry.scale_id] = entry.score
        for entry in sorted(self.outcomes(course_id), key=lambda e: (e.rated_on, e.entry_id or 0)):
            scale = outcomes.scale(entry.scale_id)
            base = baselines.get(entry.scale_id)
            assessment = None if entry.point == "baseline" or base is None else outcomes.assess(scale, base, entry.score)
            trajectories.setdefault(entry.scale_id, []).append(OutcomePoint(entry, assessment))
        thresholds: list[tuple[date, str, float, str]] = []
        start = course.plan.start_date - timedelta(days=course.plan.threshold_every_days or 0)
        for t in self._records.motor_thresholds(course.plan.subject_id):
            day = t.measured_at.astimezone(UTC).date()
            if day >= start and (course.end_date is None or day <= course.end_date):
                thresholds.append((day, t.reference.value, t.value_pct_mso, "measured"))
        for s in held:
            for reference, value in s.thresholds[:1]:
                thresholds.append((s.day, reference, value, "session"))
        return CourseSummary(
            course, today, held, others, _calendar(course, held, today), self.changes(course_id),
            {k: tuple(v) for k, v in trajectories.items()}, tuple(sorted(thresholds)),
        )


def _calendar(course: Course, held: Sequence[CourseSession], today: date) -> tuple[CalendarDay, ...]:
    """Every day from the start until the plan's sessions are placed (missed ones are made up later).

    Treatment days are the first ``days_per_week`` days of each 7-day block from the start date.
    """
    plan = course.plan
    by_day: dict[date, list[CourseSession]] = {}
    for s in held:
        by_day.setdefault(s.day, []).append(s)
    last_held = max(by_day, default=plan.start_date)
    stop = course.end_date
    days: list[CalendarDay] = []
    placed = 0  # sessions delivered, or still to come on a planned day
    day = plan.start_date
    while True:
        treatment_day = (day - plan.start_date).days % 7 < plan.days_per_week
        sessions = tuple(by_day.get(day, ()))
        counted = sum(1 for s in sessions if s.counted)
        if stop is not None:
            if day > stop:
                break
            planned = min(plan.sessions_per_day, max(0, plan.planned_sessions - placed)) if treatment_day else 0
        else:
            if placed >= plan.planned_sessions and day > max(last_held, today):
                break
            planned = min(plan.sessions_per_day, max(0, plan.planned_sessions - placed)) if treatment_day else 0
        if planned == 0:
            state = "extra" if sessions else "rest"
        elif counted >= planned:
            state = "uncertain" if any(s.status == "incomplete" for s in sessions) else "delivered"
        elif day < today or (stop is not None):
            state = "partial" if sessions else "missed"
        elif day == today and sessions:
            state = "partial"
        else:
            state = "planned"
        # a missed planned slot is made up later: only delivered sessions and future slots are placed
        placed += counted if state in ("delivered", "uncertain", "partial", "missed", "extra") else planned
        days.append(CalendarDay(day, planned, sessions, state))
        day += timedelta(days=1)
        if len(days) > 3 * 366:  # a plan that can never be placed (guard, not a rule)
            break
    return tuple(days)


def _course_from_row(r: Any) -> Course:
    plan = CoursePlan(
        subject_id=r["subject_id"], protocol_id=r["protocol_id"], protocol_hash=r["protocol_hash"],
        protocol_text=r["protocol_text"], planned_sessions=r["planned_sessions"], prescriber=r["prescriber"],
        start_date=date.fromisoformat(r["start_date"]), sessions_per_day=r["sessions_per_day"],
        days_per_week=r["days_per_week"], min_interval_min=r["min_interval_min"], taper=r["taper"],
        threshold_every_days=r["threshold_every_days"], target=r["target"], coil=r["coil"],
        template_id=r["template_id"],
    )
    return Course(r["course_id"], plan, r["status"], _from_db_time_required(r["created_at"]), _day(r["end_date"]),
                  r["end_reason"], r["ended_by"], _from_db_time(r["ended_at"]))


__all__ = [
    "CHANGEABLE", "COURSE_STATUSES", "OUTCOME_POINTS", "CalendarDay", "Course", "CoursePlan", "CourseRefused",
    "CourseSession", "CourseSummary", "Courses", "OutcomeEntry", "OutcomePoint", "PlanChange",
]
