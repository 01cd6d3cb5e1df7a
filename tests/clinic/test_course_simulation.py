"""A six-week course from the CLI on one virtual clock carried across days: 30 sessions of the 10 Hz
protocol on sim://rapid2, five days a week, two missed days, weekly PHQ-9 and BSL-23."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tmsctl.cli.main import app
from tmsctl.core.clock import VirtualClock
from tmsctl.simulators import registry as sims

runner = CliRunner()
LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
NEUROSTAR = LIBRARY / "neurostar-10hz-ldlpfc.yaml"
SAINT = LIBRARY / "saint-accelerated-itbs.yaml"


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def past_monday(weeks_ago: int) -> date:
    # The course lies in the past: outcome dates are checked against the real today.
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(weeks=weeks_ago)


@pytest.fixture
def simulated_unit():
    def make(start: date, profile: str = "rapid2") -> VirtualClock:
        clock = VirtualClock(wall_start=datetime.combine(start, time(9, 0), tzinfo=UTC))
        sims.create(profile, clock=clock, name="course-unit")
        return clock

    yield make
    sims.remove("course-unit")


def advance_to(clock: VirtualClock, moment: datetime) -> None:
    clock.advance((moment - clock.wall()).total_seconds())


def run_session(db: Path, protocol: Path, subject: str, *extra: str):
    return runner.invoke(app, ["run", str(protocol), "--device", "sim://course-unit", "--subject", subject,
                               "--mt", "55", "--yes", "--virtual-time", "--no-live", "--db", str(db),
                               "--allow-unapproved", "course simulation", *extra])


@pytest.mark.slow
def test_six_week_course_with_two_missed_days(tmp_path: Path, simulated_unit) -> None:
    db = tmp_path / "clinic.db"
    ok("db", "init", str(db))
    start = past_monday(9)
    clock = simulated_unit(start)
    ok("course", "start", "S042", "--template", "daily-6wk-10hz", "--prescriber", "Dr Ruiz",
       "--start", start.isoformat(), "--db", str(db))
    missed = {start + timedelta(days=9), start + timedelta(days=25)}  # week 2 Wed, week 4 Fri
    phq9 = iter([21, 18, 15, 12, 10, 8, 6, 5])
    bsl23 = iter([2.4, 2.2, 1.9, 1.6, 1.4, 1.2, 1.1, 1.0])
    day, held, week_marks = start, [], 0
    while len(held) < 30:
        if day.weekday() < 5 and day not in missed:
            advance_to(clock, datetime.combine(day, time(9, 0), tzinfo=UTC))
            if (day - start).days >= 7 * week_marks:  # baseline on day 1, then the first session of each week
                for scale, scores in (("phq9", phq9), ("bsl23", bsl23)):
                    ok("outcome", "add", "S042", "--scale", scale, "--score", str(next(scores)),
                       "--date", day.isoformat(), "--rater", "Dr Ruiz", "--db", str(db))
                week_marks += 1
            result = run_session(db, NEUROSTAR, "S042")
            assert result.exit_code == 0, result.output
            held.append(day)
        day += timedelta(days=1)
    last = held[-1]
    for scale, scores in (("phq9", phq9), ("bsl23", bsl23)):
        ok("outcome", "add", "S042", "--scale", scale, "--score", str(next(scores)), "--point", "end",
           "--date", last.isoformat(), "--db", str(db))
    ok("course", "end", "S042", "--status", "completed", "--reason", "30 sessions delivered",
       "--date", last.isoformat(), "--db", str(db))

    report = tmp_path / "course.html"
    ok("course", "report", "S042", "--out", str(report), "--json-out", str(tmp_path / "c.json"),
       "--csv", str(tmp_path / "c.csv"), "--db", str(db))
    data = json.loads((tmp_path / "c.json").read_text())
    sessions = data["sessions"]
    assert (sessions["delivered"], sessions["missed"], sessions["short"], sessions["remaining"]) == (30, 2, 0, 0)
    assert sessions["missed_days"] == sorted(d.isoformat() for d in missed)
    assert sessions["simulated"] == 30 and sessions["last"] == last.isoformat()
    assert last == start + timedelta(weeks=6, days=1)  # the two missed days were made up in week 7
    # the dose is the recorded deliveries: 30 x 3,000 pulses
    assert (data["dose"]["pulses_delivered"], data["dose"]["pulses_uncertain"]) == (90_000, 0)
    assert len({s["day"] for s in sessions["list"]}) == 30  # one session a day, on 30 different days
    states = {d["state"] for d in data["calendar"]}
    assert states <= {"delivered", "missed", "rest"}
    assert sum(d["state"] == "missed" for d in data["calendar"]) == 2
    phq = data["outcomes"]["phq9"]
    assert [p["score"] for p in phq] == [21, 18, 15, 12, 10, 8, 6, 5]
    assert phq[0]["point"] == "baseline" and phq[-1]["point"] == "end"
    assert (phq[-1]["reduction_pct"], phq[-1]["response"], phq[-1]["remission"]) == (76.2, True, False)
    assert phq[3]["response"] is False and phq[4]["response"] is True  # 12 is 42.9 %, 10 is 52.4 %
    bsl = data["outcomes"]["bsl23"]
    assert bsl[-1]["score"] == 1.0 and bsl[-1]["response"] is True and bsl[-1]["remission"] is None
    rows = list(csv.DictReader(io.StringIO((tmp_path / "c.csv").read_text())))
    assert sum(r["kind"] == "session" for r in rows) == 30 and sum(r["kind"] == "outcome" for r in rows) == 16
    page = report.read_text()
    assert "30 delivered of 30 prescribed; 2 missed" in page and "90,000 pulses delivered" in page
    assert page.count('data-state="missed"') == 2 and page.count('data-state="delivered"') == 30
    assert 'data-scale="phq9"' in page and "response ≤ 10.5" in page and "remission ≤ 4" in page

    # the course is closed: another session for this subject is refused by rule
    advance_to(clock, datetime.combine(last + timedelta(days=1), time(9, 0), tzinfo=UTC))
    refused = run_session(db, NEUROSTAR, "S042")
    assert refused.exit_code == 3 and "course.closed" in refused.output


@pytest.mark.slow
def test_saint_course_applies_sessions_per_day_and_spacing(tmp_path: Path, simulated_unit) -> None:
    db = tmp_path / "clinic.db"
    ok("db", "init", str(db))
    start = past_monday(3)
    clock = simulated_unit(start, "magpro-x100")  # a Rapid² cannot time theta bursts itself
    ok("course", "start", "S050", "--template", "saint-5day", "--prescriber", "Dr Cole", "--start", start.isoformat(),
       "--db", str(db))
    shown = json.loads(ok("course", "show", "S050", "--json", "--db", str(db)))
    assert (shown["course"]["sessions_per_day"], shown["course"]["min_interval_min"]) == (10, 50)
    first = datetime.combine(start, time(9, 0), tzinfo=UTC)
    for day in range(5):
        for k in range(10):
            advance_to(clock, first + timedelta(days=day, minutes=50 * k))
            result = run_session(db, SAINT, "S050")
            assert result.exit_code == 0, result.output
            if day == 0 and k == 0:
                advance_to(clock, first + timedelta(minutes=49))
                early = run_session(db, SAINT, "S050")
                assert early.exit_code == 3 and "course.min_interval" in early.output
        if day == 0:
            advance_to(clock, first + timedelta(hours=10))
            eleventh = run_session(db, SAINT, "S050")
            assert eleventh.exit_code == 3 and "course.sessions_per_day" in eleventh.output
    data = json.loads(ok("course", "show", "S050", "--json", "--db", str(db)))
    assert (data["sessions"]["delivered"], data["sessions"]["missed"], data["sessions"]["remaining"]) == (50, 0, 0)
    assert data["dose"]["pulses_delivered"] == 90_000
    assert [d["held"] for d in data["calendar"][:5]] == [10] * 5
