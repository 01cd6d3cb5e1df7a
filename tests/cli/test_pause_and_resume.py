"""Ctrl-C during `tmsctl run` pauses, as a technician expects; `tmsctl resume ID` continues (issue 19).

The first Ctrl-C disarms and leaves the session paused and resumable, with the command that
resumes it printed; that command, pasted into a shell as it is, continues where the session
stopped. A second Ctrl-C, or SIGTERM, ends the session as an operator abort.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import initialise_db
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_ABORTED, EXIT_FAULT, EXIT_NOT_FOUND, EXIT_REFUSED
from tmsctl.cli.main import app

pexpect = pytest.importorskip("pexpect")
runner = CliRunner()

# Two 2-s trains 8 s apart, in real time on the simulator: the first ends about 5.5 s in.
TWO_TRAINS = """\
schema_version: 1
id: two-trains
title: Two trains
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 20, inter_train_interval_s: 8, trains: 2}
"""
BIN = str(Path(sys.executable).parent)
ENV = {**os.environ, "COLUMNS": "200", "TERM": "xterm-256color", "PATH": BIN + os.pathsep + os.environ["PATH"]}


def _spawn_run(tmp_path: Path, db: Path, protocol_text: str = TWO_TRAINS) -> tuple[pexpect.spawn, io.StringIO]:
    protocol = tmp_path / "two.yaml"
    protocol.write_text(protocol_text)
    screen = io.StringIO()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tmsctl", "run", str(protocol), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50",
         "--yes", "--db", str(db), "--allow-unapproved", "pty test"],
        env=ENV, encoding="utf-8", timeout=60, dimensions=(40, 200), cwd=str(tmp_path),
    )
    child.logfile_read = screen
    return child, screen


def _sessions(db: Path) -> list[dict]:
    return json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout)


def _pause(child: pexpect.spawn) -> str:
    """Ctrl-C once the first train is delivered; returns the resume command printed."""
    child.expect("20 of 40")
    child.sendintr()
    child.expect(r"resume with: (tmsctl resume [^\r\n]+)")
    command = child.match.group(1).strip()
    child.expect("leave it paused")
    return command


@pytest.mark.slow
def test_ctrl_c_pauses_and_the_printed_command_resumes_when_pasted(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    child, screen = _spawn_run(tmp_path, db)
    command = _pause(child)
    child.sendline("")  # leave it paused
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == EXIT_ABORTED, screen.getvalue()
    assert "paused, 20 of 40 pulses delivered" in screen.getvalue()
    assert "disarmed" in screen.getvalue()
    [paused] = _sessions(db)
    assert paused["status"] == "paused"

    # Pasted into a shell in another folder, as it was printed: nothing else to know.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run(
        ["bash", "-c", command + " --yes --no-live"], cwd=elsewhere, env=ENV, capture_output=True, text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"session {paused['session']}: completed, 40 of 40 pulses delivered" in resumed.stdout
    assert "rMT 50 %MSO, as recorded with session" in resumed.stdout  # the threshold is the record's
    [done] = _sessions(db)
    assert done["session"] == paused["session"] and done["status"] == "completed"


@pytest.mark.slow
def test_after_a_pause_r_resumes_at_once(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    child, screen = _spawn_run(tmp_path, db)
    _pause(child)
    child.sendline("r")
    child.expect("completed, 40 of 40 pulses delivered", timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, screen.getvalue()
    assert [s["status"] for s in _sessions(db)] == ["completed"]


@pytest.mark.slow
@pytest.mark.parametrize("second", ["ctrl-c", "sigterm", "e"])
def test_a_second_ctrl_c_or_sigterm_ends_the_session_as_an_operator_abort(tmp_path: Path, second: str) -> None:
    db = initialise_db(tmp_path / "r.db")
    child, screen = _spawn_run(tmp_path, db)
    _pause(child)
    if second == "ctrl-c":
        child.sendintr()
    elif second == "sigterm":
        child.kill(signal.SIGTERM)
    else:
        child.sendline("e")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == EXIT_ABORTED, screen.getvalue()
    assert "aborted; the operator abort is recorded" in screen.getvalue()
    assert [s["status"] for s in _sessions(db)] == ["aborted"]


@pytest.mark.slow
def test_sigterm_while_running_aborts(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    child, screen = _spawn_run(tmp_path, db)
    child.expect("20 of 40")
    child.kill(signal.SIGTERM)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == EXIT_ABORTED, screen.getvalue()
    assert "aborted, 20 of 40 pulses delivered" in screen.getvalue()
    assert "resume with" not in screen.getvalue()
    assert [s["status"] for s in _sessions(db)] == ["aborted"]


def _faulted_session(tmp_path: Path, db: Path, device: str = "sim://rapid2?fault=stall@20s") -> str:
    protocol = tmp_path / "four.yaml"
    protocol.write_text(TWO_TRAINS.replace("trains: 2", "trains: 4"))
    result = runner.invoke(app, [
        "run", str(protocol), "--device", device, "--subject", "S001", "--mt", "40", "--yes", "--virtual-time",
        "--db", str(db), "--no-live", "--allow-unapproved", "CLI test",
    ])
    assert result.exit_code == EXIT_FAULT, result.output
    return _sessions(db)[0]["session"]


def test_resume_needs_only_the_session_id(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    session_id = _faulted_session(tmp_path, db, device="sim://rapid2?fault=coil_unplugged@12s")
    (tmp_path / "four.yaml").unlink()  # the record holds the protocol
    result = runner.invoke(app, ["resume", session_id, "--db", str(db), "--yes", "--virtual-time", "--no-live",
                                 "--device", "sim://rapid2"])
    assert result.exit_code == 0, result.output
    assert f"session {session_id}: completed" in result.stdout
    assert "rMT 40 %MSO, as recorded with session" in result.stdout


def test_a_resume_of_an_ended_session_is_refused_before_connecting(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    session_id = _faulted_session(tmp_path, db)
    with_device = ["--device", "sim://rapid2"]
    assert runner.invoke(app, ["resume", session_id, "--db", str(db), "--yes", "--virtual-time", "--no-live",
                               *with_device]).exit_code == 0
    # Completed now. The device named cannot even be opened: a refusal after connecting would say so.
    for args in (
        ["resume", session_id, "--device", "magstim-rapid2:///dev/nonexistent-port"],
        ["run", str(tmp_path / "four.yaml"), "--device", "magstim-rapid2:///dev/nonexistent-port",
         "--subject", "S001", "--resume", session_id],
    ):
        refused = runner.invoke(app, [*args, "--db", str(db), "--yes", "--no-live"])
        assert refused.exit_code == EXIT_REFUSED, refused.output
        assert f"session {session_id} is completed" in refused.stderr
        assert "connecting" not in refused.output and "nonexistent" not in refused.stderr


def test_resume_of_an_unknown_session_is_not_found(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = runner.invoke(app, ["resume", "NOPE-NOPE", "--db", str(db), "--yes"])
    assert result.exit_code == EXIT_NOT_FOUND, result.output


@pytest.mark.slow
def test_the_panel_counts_a_train_while_it_runs(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    child, screen = _spawn_run(
        tmp_path, db, TWO_TRAINS.replace("frequency_hz: 10", "frequency_hz: 5").replace("trains: 2", "trains: 1")
    )
    child.expect(r"this train [1-3] so far \(provisional\)")  # counted from the start of the 4 s train...
    child.expect(r"this train 1[0-9] so far \(provisional\)")  # ...and on while it runs, not at its end
    child.expect(pexpect.EOF)
    assert "completed, 20 of 20 pulses delivered" in screen.getvalue()
