"""tmsctl report: a session's charts from its records and audit log, and a course against its plan."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tmsctl.cli.report import app as report_app
from tmsctl.core.clock import VirtualClock
from tmsctl.lab import api
from tmsctl.lab.report import course_report, render_course_html, render_session_html, session_report
from tmsctl.records import Records

PROTOCOL = """\
schema_version: 1
id: report-10hz
title: Ramped 10 Hz for reports
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 110, ramp: {first_trains: 2, start_pct_of_target: 80}}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 20, inter_train_interval_s: 10, trains: 8}
"""


@pytest.fixture
def protocol(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(PROTOCOL)
    return path


def run_session(records, protocol, tmp_path, faults: str = "", subject: str = "S301"):
    clock = VirtualClock(wall_start=records_clock(records).wall())
    from tmsctl.simulators import registry as sims
    from tmsctl.simulators.device import parse_fault_plan

    name = f"report-sim-{id(clock)}"
    sims.create("rapid2", clock=clock, faults=parse_fault_plan(faults), name=name)
    try:
        with api.open(f"sim://{name}", clock=clock, db=records) as stim:
            return stim.run(protocol, subject=subject, mt=50, allow_unapproved="test", log_dir=tmp_path / "logs")
    finally:
        sims.remove(name)


def records_clock(records):
    return records._clock  # the test drives the store's virtual calendar


def test_a_faulted_session_report_shows_trains_intensity_coil_and_the_fault(tmp_path, protocol) -> None:
    with Records(tmp_path / "r.db", clock=VirtualClock(wall_start=datetime(2026, 3, 2, 9, tzinfo=UTC))) as records:
        result = run_session(records, protocol, tmp_path, faults="coil_unplugged@55s")
        report = session_report(records, result.session_id, audit_log=tmp_path / "logs" / f"{result.session_id}.jsonl")
    assert report.status == "faulted" and report.simulated
    delivered = [t for t in report.trains if t.pulses_delivered]
    assert 2 <= len(delivered) < 8 and report.pulses_delivered == result.pulses_delivered
    assert [t.intensity_pct_mso for t in report.trains[:3]] == [44, 49.5, 55] or report.trains[0].intensity_pct_mso < 55
    assert report.faults and report.coil_temperatures
    page = render_session_html(report)
    assert page.count("<svg") == 4 and "SIMULATED" in page
    bars = re.findall(r"<title>train (\d+) at [\d.]+ min: (\d+)/(\d+) pulses", page)
    assert [(int(n), int(d)) for n, d, _ in bars] == [(t.index + 1, t.pulses_delivered) for t in report.trains]
    assert report.faults[0].code in page and "Coil temperature" in page


def test_a_session_without_an_audit_log_says_the_coil_was_not_recorded(tmp_path, protocol) -> None:
    with Records(tmp_path / "r.db") as records:
        result = run_session(records, protocol, tmp_path)
        report = session_report(records, result.session_id)
    page = render_session_html(report)
    assert report.coil_temperatures == () and "not in the audit log" in page
    assert "no faults recorded" in page and page.count("<svg") == 3


def test_the_course_view_counts_sessions_against_the_daily_plan(tmp_path, protocol) -> None:
    wall = VirtualClock(wall_start=datetime(2026, 3, 2, 9, tzinfo=UTC))  # a Monday
    with Records(tmp_path / "r.db", clock=wall) as records:
        for day in (0, 1, 2, 4, 7):
            wall.advance_to(day * 86400.0)
            run_session(records, protocol, tmp_path)
        wall.advance_to(8 * 86400.0)
        run_session(records, protocol, tmp_path, faults="coil_unplugged@30s")
        course = course_report(records, "S301", weeks=2, days_per_week=5, today=date(2026, 3, 12))
    states = [(d.day.isoformat(), d.planned, d.delivered, d.partial) for d in course.days]
    assert states[:5] == [("2026-03-02", 1, 1, 0), ("2026-03-03", 1, 1, 0), ("2026-03-04", 1, 1, 0),
                          ("2026-03-05", 1, 0, 0), ("2026-03-06", 1, 1, 0)]
    assert states[7:9] == [("2026-03-09", 1, 1, 0), ("2026-03-10", 1, 0, 1)]
    assert course.planned_total == 10 and course.delivered_total == 5
    assert course.missed_days() == [date(2026, 3, 5), date(2026, 3, 11)]
    assert course.incomplete_days() == [date(2026, 3, 10)]
    page = render_course_html(course)
    cells = re.findall(r'data-state="(\w+)"', page)
    assert cells[:12] == ["completed", "completed", "completed", "missed", "completed", "rest", "rest",
                          "completed", "partial", "missed", "future", "future"]


def test_the_cli_writes_the_html_and_prints_a_summary(tmp_path, protocol) -> None:
    db = tmp_path / "r.db"
    with Records(db) as records:
        result = run_session(records, protocol, tmp_path)
    runner = CliRunner()
    out = tmp_path / "session.html"
    done = runner.invoke(report_app, [result.session_id, "--db", str(db), "--log-dir", str(tmp_path / "logs"),
                                      "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "160 of 160" in done.output and out.read_text().startswith("<!DOCTYPE html>")
    course = runner.invoke(report_app, ["--subject", "S301", "--db", str(db), "--out", str(tmp_path / "c.html")])
    assert course.exit_code == 0, course.output
    assert "1 of 30 planned sessions" in course.output
    both = runner.invoke(report_app, [result.session_id, "--subject", "S301", "--db", str(db)])
    assert both.exit_code == 3 and "one of them" in both.output
