"""Issue 15 findings 4 and 5 as a technician meets them at the command line.

Site caps on a real port: a Rapid² simulator served on a pseudo-terminal with --unmarked is, to
tmsctl, an ordinary serial port, so its sessions are real sessions of the subject. A resume keeps the session's dose.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import rtms_protocol
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_FAULT, EXIT_REFUSED
from tmsctl.cli.main import app
from tmsctl.records import Records

runner = CliRunner()
UNLOCK = "SIMU-00000000-5AA5"
TINY = rtms_protocol("tiny-cli", "One short 10 Hz train", pulses_per_train=10, inter_train_interval_s=5, trains=1)
SHORT = rtms_protocol("short-cli-resume", "Short CLI test protocol", pulses_per_train=20, inter_train_interval_s=8, trains=4)


def initialised(db: Path) -> Path:
    created = runner.invoke(app, ["db", "init", str(db)])
    assert created.exit_code == 0, created.output
    return db


@pytest.fixture
def pty_port(monkeypatch):
    """`tmsctl sim serve rapid2 --pty --unmarked` in its own process: a real unit as far as tmsctl can tell."""
    monkeypatch.setenv("SIM_UNLOCK", UNLOCK)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tmsctl", "sim", "serve", "rapid2", "--pty", "--unmarked"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    path = proc.stdout.readline().strip()
    assert path.startswith("/dev/"), proc.stderr.read()
    yield f"magstim-rapid2://{path}?unlock=env:SIM_UNLOCK"
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def _run(*args: str, db: Path):
    if args[0] == "resume":  # a resume runs with the session's own approval, as recorded
        return runner.invoke(app, [*args, "--db", str(db), "--no-live"])
    return runner.invoke(app, ["run", *args, "--db", str(db), "--no-live", "--allow-unapproved", "CLI test"])


def _tmsctl(*args: str, db: Path) -> subprocess.CompletedProcess:
    """`tmsctl run` in its own process, as the technician runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tmsctl", "run", *args, "--db", str(db), "--no-live", "--allow-unapproved", "CLI test"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.slow
def test_back_to_back_real_sessions_need_a_recorded_reason(tmp_path: Path, pty_port: str) -> None:
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY)
    db = initialised(tmp_path / "r.db")
    base = [str(protocol), "--device", pty_port, "--subject", "R001", "--mt", "50", "--yes"]
    first = _tmsctl(*base, db=db)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "completed, 10 of 10 pulses" in first.stdout

    second = _tmsctl(*base, db=db)
    assert second.returncode == EXIT_REFUSED, second.stdout + second.stderr
    assert "site.session-spacing" in second.stderr and "min ago" in second.stderr
    hint = next(line for line in second.stderr.splitlines() if line.startswith("what to do:"))
    assert "--override RULE='reason'" in hint

    third = _tmsctl(*base, "--override", "site.session-spacing=second session agreed with the PI", db=db)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "site.session-spacing" in third.stdout  # shown on the plan
    with Records(db) as records:
        sessions = records.sessions(subject_id="R001")
        assert len(sessions) == 2 and not any(s.simulated for s in sessions)
        overrides = records.session_detail(sessions[-1].session_id).overrides
    assert [(o.rule_id, o.reason) for o in overrides if o.rule_id.startswith("site.")] == [
        ("site.session-spacing", "second session agreed with the PI")
    ]


def test_a_resume_keeps_the_threshold_and_a_new_one_needs_a_reason(tmp_path: Path) -> None:
    protocol = tmp_path / "short.yaml"
    protocol.write_text(SHORT)
    db = initialised(tmp_path / "r.db")
    device = "sim://rapid2?fault=stall@20s"
    started = _run(str(protocol), "--device", device, "--subject", "S001", "--mt", "40", "--yes", "--virtual-time",
                   db=db)
    assert started.exit_code == EXIT_FAULT, started.output
    hint = next(line for line in started.stderr.splitlines() if "resume with: " in line)
    words = shlex.split(hint.split("resume with: ", 1)[1])
    assert "--mt" not in words  # the printed command must work as it is
    assert words[:2] == ["tmsctl", "resume"]
    session_id = words[2]
    resume = [*words[1:], "--yes"]  # the command as printed (it keeps --virtual-time)

    kept = _run(*resume, "--dry-run", db=db)
    assert kept.exit_code == 0, kept.output
    assert "40 %MSO (100 % rMT)" in kept.stdout
    assert f"rMT 40 %MSO, as recorded with session {session_id}" in kept.stdout

    changed = _run(*resume, "--mt", "80", db=db)
    assert changed.exit_code == EXIT_REFUSED, changed.output
    assert "mt.rethreshold" in changed.stderr
    hint = next(line for line in changed.stderr.splitlines() if line.startswith("what to do:"))
    assert "without --mt" in hint and "--override mt.rethreshold=" in hint

    overridden = _run(*resume, "--mt", "80", "--override", "mt.rethreshold=re-hunted after the fault", db=db)
    assert overridden.exit_code == 0, overridden.output
    assert "80 %MSO (100 % rMT)" in overridden.stdout
    assert "mt.rethreshold" in overridden.stdout and "re-hunted after the fault" in overridden.stdout
    with Records(db) as records:
        detail = records.session_detail(session_id)
    assert [(o.rule_id, o.reason) for o in detail.overrides if o.rule_id.startswith("mt.")] == [
        ("mt.rethreshold", "re-hunted after the fault")
    ]
    assert {d.intensity_pct_mso for d in detail.deliveries} == {40.0, 80.0}
    listed = json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout)
    assert [s["session"] for s in listed] == [session_id]
