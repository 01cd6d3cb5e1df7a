"""Courses: one active per subject, sessions attached by rule, the dose from the records, outcomes."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta

import pytest
from records_helpers import OTHER_HASH, PROTOCOL_HASH, deliver, running_session, train_plan

from tmsctl.core.clock import VirtualClock
from tmsctl.records import DeliveryResult, InvalidRecord, Records
from tmsctl.records.courses import CoursePlan, CourseRefused
from tmsctl.records.scales import ScoreOutOfRange, UnknownScale

DAY = timedelta(days=1)
START = date(2026, 1, 1)  # the records fixture's clock starts there, 00:00 UTC


def plan(**changes) -> CoursePlan:
    fields = dict(subject_id="S017", protocol_id="itbs-600", protocol_hash=PROTOCOL_HASH,
                  protocol_text="schema_version: 1\nid: itbs-600\n", planned_sessions=5, prescriber="Dr Ruiz",
                  start_date=START, days_per_week=5)
    return CoursePlan(**{**fields, **changes})


def full_session(records: Records, *, trains: int = 4, **changes) -> str:
    sid = running_session(records, **changes)
    for index in range(trains):
        deliver(records, sid, index)
    records.complete_session(sid)
    return sid


def next_day(clock: VirtualClock, hour: int = 9) -> None:
    now = clock.wall()
    target = now.replace(hour=hour, minute=0, second=0, microsecond=0) + DAY
    clock.advance((target - now).total_seconds())


@pytest.fixture
def course(records: Records):
    records.ensure_subject("S017")
    return records.courses.start(plan())


@pytest.mark.sqlite_only  # reaches the file with sqlite3; the server's triggers: test_records_server
def test_one_active_course_per_subject(records: Records, course, db_path) -> None:
    with pytest.raises(CourseRefused, match=r"course\.one_active.*already has an active course") as caught:
        records.courses.start(plan())
    assert caught.value.rule == "course.one_active" and caught.value.hint
    # the database refuses it too, whatever a caller forgot to check
    raw = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        raw.execute("INSERT INTO courses (subject_id, protocol_id, protocol_hash, protocol_text, planned_sessions, "
                    "sessions_per_day, days_per_week, prescriber, start_date, created_at, status) "
                    "VALUES ('S017', 'p', 'h', 't', 1, 1, 5, 'x', '2026-01-01', 'now', 'active')")


@pytest.mark.sqlite_only  # reaches the file with sqlite3; the server's triggers: test_records_server
def test_a_closed_course_is_final(records: Records, course, db_path) -> None:
    records.courses.end(course.course_id, status="stopped", reason="side effects", ended_by="Dr Ruiz")
    with pytest.raises(CourseRefused, match=r"course\.closed"):
        records.courses.change_plan(course.course_id, {"planned_sessions": 9}, changed_by="x", reason="more")
    with pytest.raises(CourseRefused, match=r"course\.closed"):
        records.courses.end(course.course_id, status="completed", reason="again", ended_by="x")
    raw = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError, match="closed course is final"):
        raw.execute("UPDATE courses SET planned_sessions = 9")


def test_sessions_attach_by_subject_dates_and_protocol(records: Records, clock: VirtualClock, course) -> None:
    clock.advance(9 * 3600)
    first = full_session(records)
    next_day(clock)
    other = full_session(records, protocol_id="ctbs-300", protocol_hash=OTHER_HASH)
    next_day(clock)
    # a session cut short: 2 trains delivered, the third stopped with 6 known and 4 uncertain pulses
    short = running_session(records)
    deliver(records, short, 0)
    deliver(records, short, 1)
    records.begin_delivery(train_plan(short, 2))
    records.finish_delivery(DeliveryResult(short, 2, 6, False, pulses_uncertain=4, evidence="cut short"))
    records.abort_session(short, operator="tech1", reason="headache")
    summary = records.courses.summary(course.course_id)
    assert [s.session_id for s in summary.sessions] == [first, short]
    assert [s.session_id for s in summary.other_sessions] == [other]
    # the dose is what the deliveries say, never the plan's 40 pulses per session
    assert (summary.pulses_delivered, summary.pulses_uncertain) == (40 + 26, 4)
    assert (summary.delivered_sessions, summary.short_sessions, summary.remaining_sessions) == (1, 1, 4)


def test_calendar_counts_missed_days_and_moves_the_rest_on(records: Records, clock: VirtualClock, course) -> None:
    clock.advance(9 * 3600)
    full_session(records)              # day 1
    next_day(clock)
    next_day(clock)                    # day 2 missed
    full_session(records)              # day 3
    summary = records.courses.summary(course.course_id)
    states = [(d.day - START).days for d in summary.calendar if d.state == "missed"]
    assert states == [1] and summary.missed_days == (START + DAY,)
    assert summary.remaining_sessions == 3
    # five treatment days a week from the start: 3 more are planned on days 3, 4 and 7 (5 and 6 are rest)
    planned = [(d.day - START).days for d in summary.calendar if d.state == "planned"]
    assert planned == [3, 4, 7]


def test_session_start_rules(records: Records, clock: VirtualClock) -> None:
    records.ensure_subject("S017")
    assert records.courses.check_session_start("S017", PROTOCOL_HASH, clock.wall()) is None  # no course: research use
    course = records.courses.start(plan(sessions_per_day=2, min_interval_min=50, planned_sessions=3,
                                        start_date=START + DAY))
    with pytest.raises(CourseRefused, match=r"course\.not_started"):
        records.courses.check_session_start("S017", PROTOCOL_HASH, clock.wall())
    next_day(clock)
    with pytest.raises(CourseRefused, match=r"course\.protocol"):
        records.courses.check_session_start("S017", OTHER_HASH, clock.wall())
    assert records.courses.check_session_start("S017", PROTOCOL_HASH, clock.wall()).course_id == course.course_id
    full_session(records)
    clock.advance(49 * 60)
    with pytest.raises(CourseRefused, match=r"course\.min_interval.*50 min") as caught:
        records.courses.check_session_start("S017", PROTOCOL_HASH, clock.wall())
    assert "wait" in caught.value.hint
    clock.advance(60)
    full_session(records)
    clock.advance(3 * 3600)
    with pytest.raises(CourseRefused, match=r"course\.sessions_per_day.*2 session"):
        records.courses.check_session_start("S017", PROTOCOL_HASH, clock.wall())
    next_day(clock)
    full_session(records)
    next_day(clock)
    with pytest.raises(CourseRefused, match=r"course\.sessions_done"):
        records.courses.check_session_start("S017", PROTOCOL_HASH, clock.wall())
    records.courses.end(course.course_id, status="completed", reason="course delivered", ended_by="Dr Ruiz")
    with pytest.raises(CourseRefused, match=r"course\.closed.*completed: course delivered"):
        records.courses.check_session_start("S017", PROTOCOL_HASH, clock.wall())


def test_plan_changes_are_kept_with_who_and_why(records: Records, course) -> None:
    records.courses.change_plan(course.course_id, {"planned_sessions": 10, "threshold_every_days": 7},
                                changed_by="Dr Ruiz", reason="partial response at week 1")
    changed = records.courses.course(course.course_id).plan
    assert (changed.planned_sessions, changed.threshold_every_days) == (10, 7)
    changes = records.courses.changes(course.course_id)
    assert [(c.field, c.old_value, c.new_value, c.changed_by) for c in changes] == [
        ("planned_sessions", "5", "10", "Dr Ruiz"), ("threshold_every_days", None, "7", "Dr Ruiz")]
    with pytest.raises(InvalidRecord, match="days_per_week = 8"):
        records.courses.change_plan(course.course_id, {"days_per_week": 8}, changed_by="x", reason="typo")
    assert records.courses.course(course.course_id).plan.days_per_week == 5  # nothing half-applied


def test_outcomes_with_response_and_remission(records: Records, clock: VirtualClock, course) -> None:
    add = records.courses.add_outcome
    clock.advance(9 * 3600)
    entry, flags = add("S017", "phq9", score=20, rated_on=START, rater="Dr Ruiz")
    assert entry.point == "baseline" and flags == ()
    clock.advance(14 * 86400)
    add("S017", "PHQ-9", items=[1, 1, 1, 1, 1, 1, 1, 2, 1], rated_on=START + 7 * DAY, rater="Dr Ruiz")
    _, flags = add("S017", "phq9", score=4, rated_on=START + 14 * DAY, rater="Dr Ruiz", point="end")
    points = records.courses.summary(course.course_id).outcomes["phq9"]
    assert [p.entry.score for p in points] == [20, 10, 4]
    assert points[0].assessment is None
    assert (points[1].assessment.response, points[1].assessment.remission) == (True, False)  # exactly 50 %
    assert (points[2].assessment.reduction_pct, points[2].assessment.remission) == (80.0, True)


def test_outcome_refusals_name_the_rule(records: Records, clock: VirtualClock, course) -> None:
    add = records.courses.add_outcome
    clock.advance(2 * 86400)
    with pytest.raises(UnknownScale, match=r"outcome\.unknown_scale"):
        add("S017", "phq10", score=3, rated_on=START, rater="r")
    with pytest.raises(ScoreOutOfRange, match=r"outcome\.score_range.*0 to 27, got 28"):
        add("S017", "phq9", score=28, rated_on=START, rater="r")
    with pytest.raises(CourseRefused, match=r"outcome\.future_date"):
        add("S017", "phq9", score=3, rated_on=START + 5 * DAY, rater="r")
    with pytest.raises(CourseRefused, match=r"outcome\.before_course"):
        add("S017", "phq9", score=3, rated_on=START - DAY, rater="r")
    with pytest.raises(CourseRefused, match=r"outcome\.no_baseline"):
        add("S017", "phq9", score=3, rated_on=START, rater="r", point="weekly")
    with pytest.raises(ScoreOutOfRange, match=r"total_mismatch"):
        add("S017", "phq9", score=3, items=[1] * 9, rated_on=START, rater="r")
    add("S017", "phq9", score=14, rated_on=START, rater="r")
    with pytest.raises(CourseRefused, match=r"outcome\.second_baseline"):
        add("S017", "phq9", score=3, rated_on=START + DAY, rater="r", point="baseline")
    records.courses.end(course.course_id, status="completed", reason="done", ended_by="r", end_date=START + DAY)
    with pytest.raises(CourseRefused, match=r"outcome\.no_course"):
        add("S017", "phq9", score=3, rated_on=START + DAY, rater="r")
    with pytest.raises(CourseRefused, match=r"outcome\.after_course"):
        add("S017", "phq9", score=3, rated_on=START + 2 * DAY, rater="r", course_id=course.course_id)
    add("S017", "phq9", score=3, rated_on=START + DAY, rater="r", course_id=course.course_id, point="end")
