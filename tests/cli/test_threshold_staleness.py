"""Thresholds and sessions are stamped from the wall clock, even on a virtual clock.

Issue 15, finding 10: ``tmsctl mt --virtual-time`` stamped thresholds with the virtual clock's
fixed epoch (2026-01-01), so a real run called a minute-old threshold hundreds of days stale, and
a virtual run never saw staleness at all. Both modes now judge a threshold's age on the wall clock.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cli_helpers import initialise_db
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_REFUSED
from tmsctl.cli.main import app
from tmsctl.core.clock import SystemClock
from tmsctl.protocols.rulebook import rulebook
from tmsctl.records import Records
from tmsctl.records import model as rec

runner = CliRunner()
BRIEF = """\
schema_version: 1
id: brief-cli
title: Two pulses at 100 % rMT
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 2, trains: 1}
"""
MAX_AGE_DAYS = rulebook().site.max_motor_threshold_age_days


@pytest.fixture
def brief(tmp_path: Path) -> Path:
    path = tmp_path / "brief.yaml"
    path.write_text(BRIEF)
    return path


def _run(protocol: Path, subject: str, db: Path, *, virtual: bool):
    return runner.invoke(
        app,
        ["run", str(protocol), "--device", "sim://rapid2", "--subject", subject, "--yes", "--no-live",
         "--allow-unapproved", "staleness test", "--db", str(db), *(["--virtual-time"] if virtual else [])],
    )


def test_a_threshold_hunted_on_virtual_time_is_stamped_now_and_is_fresh_for_a_real_run(
    brief: Path, tmp_path: Path
) -> None:
    db = initialise_db(tmp_path / "r.db")
    before = SystemClock().wall()
    hunted = runner.invoke(app, ["mt", "--device", "sim://rapid2", "--subject", "S1", "--coil", "figure8",
                                 "--simulated-subject", "11", "--simulated-threshold", "47.3", "--virtual-time",
                                 "--yes", "--db", str(db)])
    assert hunted.exit_code == 0, hunted.output
    with Records(db) as records:
        (threshold,) = records.motor_thresholds("S1")
    # the hunt's virtual minutes pass in no time: the stamp is the real time plus them
    assert before <= threshold.measured_at <= SystemClock().wall() + timedelta(hours=1)
    for virtual in (False, True):
        result = _run(brief, "S1", db, virtual=virtual)
        assert result.exit_code == 0, result.output
        assert "mt.stale" not in result.output
    with Records(db) as records:
        started = [session.started_at for session in records.sessions(subject_id="S1")]
    assert len(started) == 2 and all(before <= moment <= SystemClock().wall() + timedelta(hours=1) for moment in started)


@pytest.mark.parametrize("virtual", [False, True], ids=["real time", "virtual time"])
def test_a_threshold_older_than_the_limit_is_refused_in_both_modes(brief: Path, tmp_path: Path, virtual: bool) -> None:
    db = tmp_path / "r.db"
    measured = SystemClock().wall() - timedelta(days=MAX_AGE_DAYS + 1)
    with Records(db) as records:
        records.ensure_subject("S2")
        records.record_motor_threshold(
            rec.MotorThreshold("S2", "magstim-rapid2", "SIM-rapid2", "figure8", 50.0, "rMT", "ML-PEST", measured,
                               "tester")
        )
    result = _run(brief, "S2", db, virtual=virtual)
    assert result.exit_code == EXIT_REFUSED, result.output
    text = " ".join(result.output.split())
    assert "mt.stale" in text and f"{MAX_AGE_DAYS + 1:g} days ago" in text
