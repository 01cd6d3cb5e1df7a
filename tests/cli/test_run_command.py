"""`tmsctl run`, `sessions` and `session show` as a technician uses them (simulator, virtual time)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import SHORT_CLI, initialise_db
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_FAULT, EXIT_NOT_FOUND, EXIT_REFUSED
from tmsctl.cli.main import app

runner = CliRunner()


LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
SHORT = SHORT_CLI


@pytest.fixture
def short(tmp_path: Path) -> Path:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT)
    return path


def _run(*args: str, db: Path):
    return runner.invoke(app, ["run", *args, "--db", str(db), "--no-live", "--allow-unapproved", "CLI test"])


def test_a_session_runs_and_is_listed(short: Path, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = _run(str(short), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50", "--yes", "--virtual-time", db=db)
    assert result.exit_code == 0, result.output
    assert "completed, 80 of 80 pulses" in result.stdout
    listed = json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout)
    assert len(listed) == 1 and listed[0]["simulated"] and listed[0]["status"] == "completed"
    shown = runner.invoke(app, ["session", "show", listed[0]["session"], "--db", str(db), "--json"])
    assert json.loads(shown.stdout)["pulses_delivered"] == 80


def test_dry_run_touches_nothing(short: Path, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = _run(str(short), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50", "--dry-run", db=db)
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout
    assert json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout) == []


def test_declining_the_confirmation_arms_nothing(short: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["run", str(short), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50",
              "--db", str(initialise_db(tmp_path / "r.db")), "--no-live", "--virtual-time", "--allow-unapproved", "test"], input="n\n",
    )
    assert result.exit_code != 0
    assert "completed" not in result.stdout


def test_theta_burst_on_a_rapid2_is_refused_with_the_reason(tmp_path: Path) -> None:
    result = _run(str(LIBRARY / "itbs-600.yaml"), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50",
                  "--yes", "--virtual-time", db=initialise_db(tmp_path / "r.db"))
    assert result.exit_code == EXIT_REFUSED
    assert "theta" in result.output.lower()
    assert "Traceback" not in result.output


def test_a_guideline_warning_needs_a_recorded_override(tmp_path: Path) -> None:
    risky = tmp_path / "risky.yaml"
    risky.write_text(SHORT.replace("pulses_per_train: 20", "pulses_per_train: 60").replace("trains: 4", "trains: 2"))
    db = initialise_db(tmp_path / "r.db")
    refused = _run(str(risky), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50", "--yes", "--virtual-time", db=db)
    assert refused.exit_code == EXIT_REFUSED, refused.output
    rule = next(word for word in refused.output.split() if word.startswith("wassermann"))
    rule = rule.rstrip(":")
    allowed = _run(str(risky), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50", "--yes", "--virtual-time",
                   "--override", f"{rule}=approved research protocol 2026-17", db=db)
    assert allowed.exit_code == 0, allowed.output
    from tmsctl.records import Records

    with Records(db) as records:
        session = records.sessions()[0]
        overrides = records.session_detail(session.session_id).overrides
    assert sorted((o.rule_id.split(".")[0], o.reason) for o in overrides) == [
        ("approval", "CLI test"), ("wassermann", "approved research protocol 2026-17")
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("pattern: [unclosed", "short.yaml:"), ("schema_version: 1\nid: x\nbogus_key: 1\n", "bogus_key")],
)
def test_bad_protocol_files_give_one_line_with_file_and_field(tmp_path: Path, text: str, fragment: str) -> None:
    bad = tmp_path / "short.yaml"
    bad.write_text(text)
    result = _run(str(bad), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50", "--yes", db=initialise_db(tmp_path / "r.db"))
    assert result.exit_code == EXIT_REFUSED
    assert fragment in result.output and "Traceback" not in result.output


def test_the_live_panel_under_a_pseudo_terminal(short: Path, tmp_path: Path) -> None:
    import io

    pexpect = pytest.importorskip("pexpect")
    screen = io.StringIO()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tmsctl", "run", str(short), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50", "--yes",
         "--virtual-time", "--db", str(initialise_db(tmp_path / "r.db")), "--allow-unapproved", "pty test"],
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"}, encoding="utf-8", timeout=60,
        dimensions=(40, 100),
    )
    child.logfile_read = screen
    child.expect_exact("Ctrl-C pauses (disarmed)")
    child.expect("completed, 80 of 80 pulses")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    text = screen.getvalue()
    for label in ("state", "train", "pulses", "elapsed", "coil", "SIMULATED"):
        assert label in text, label
    assert "80 of 80" in text  # the panel says the count as every other place does (tmsctl.session.dose)


def test_approve_then_run_without_allowing_unapproved(short: Path, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    args = ["run", str(short), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50", "--yes",
            "--virtual-time", "--no-live", "--db", str(db)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == EXIT_REFUSED and "never approved" in refused.output
    approved = runner.invoke(app, ["protocol", "approve", str(short), "--by", "Dr Review", "--db", str(db)])
    assert approved.exit_code == 0, approved.output
    assert runner.invoke(app, args).exit_code == 0
    short.write_text(SHORT.replace("scaling_pct: 100", "scaling_pct: 105"))  # modified after approval
    again = runner.invoke(app, args)
    assert again.exit_code == EXIT_REFUSED and "never approved" in again.output


def test_with_the_panel_into_a_file_the_summary_is_a_line_of_its_own(short: Path, tmp_path: Path) -> None:
    # Output captured, as in a log file or CI: the live panel's last render is followed by the summary.
    result = runner.invoke(app, [
        "run", str(short), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50", "--yes",
        "--virtual-time", "--db", str(initialise_db(tmp_path / "r.db")), "--allow-unapproved", "CLI test",
    ])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    summary = next(line for line in lines if "completed, 80 of 80 pulses" in line)
    assert summary.startswith("session "), summary
    assert any("Ctrl-C pauses (disarmed)" in line for line in lines)  # the panel was there


def test_a_faulted_run_says_how_to_resume_in_a_command_the_shell_takes_as_it_is(short: Path, tmp_path: Path) -> None:
    import shlex

    db = initialise_db(tmp_path / "r.db")
    device = "sim://rapid2?fault=stall@20s"  # '?' is a glob character to a shell
    result = _run(str(short), "--device", device, "--subject", "S001", "--mt", "50", "--yes", "--virtual-time", db=db)
    assert result.exit_code == EXIT_FAULT, result.output
    hint = next(line for line in result.stderr.splitlines() if "resume with: " in line)
    words = shlex.split(hint.split("resume with: ", 1)[1])  # one line: pasted as it is, it runs whole
    assert words[:2] == ["tmsctl", "resume"] and words[words.index("--db") + 1] == str(db.resolve())
    session_id = words[2]
    listed = json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout)
    assert [s["session"] for s in listed] == [session_id] and listed[0]["status"] == "faulted"


def test_without_a_threshold_the_refusal_says_how_to_give_one(short: Path, tmp_path: Path) -> None:
    result = _run(str(short), "--device", "sim://rapid2", "--subject", "S404", "--yes", "--virtual-time",
                  db=initialise_db(tmp_path / "r.db"))
    assert result.exit_code == EXIT_REFUSED, result.output
    hint = next(line for line in result.stderr.splitlines() if line.startswith("what to do:"))
    assert "--mt" in hint and "tmsctl mt" in hint
    assert "protocol or the device must change" not in hint  # the protocol is fine; the threshold is missing


def test_an_unknown_session_id_is_not_found_not_a_fault(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = runner.invoke(app, ["session", "show", "NOPE-NOPE", "--db", str(db)])
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "no session NOPE-NOPE" in result.stderr


def test_a_protocol_that_is_both_unapproved_and_refused_is_refused_first(tmp_path: Path) -> None:
    # Sending it for approval would be wasted review: it cannot run on this device at all.
    path = tmp_path / "too-fast.yaml"
    path.write_text(SHORT.replace("id: short-cli", "id: too-fast").replace("frequency_hz: 10", "frequency_hz: 25"))
    result = runner.invoke(app, [
        "run", str(path), "--device", "sim://rapid2", "--subject", "S001", "--mt", "70", "--yes", "--virtual-time",
        "--db", str(initialise_db(tmp_path / "r.db")), "--no-live",
    ])
    assert result.exit_code == EXIT_REFUSED, result.output
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "is refused" in error and "approved" not in error


def test_sessions_lists_the_newest_and_says_how_many_more_there_are(tmp_path: Path) -> None:
    from tmsctl.records import Records, SessionPlan

    db = initialise_db(tmp_path / "r.db")
    with Records(db) as records:
        records.ensure_subject("S001")
        created = [
            records.create_session(SessionPlan(
                subject_id="S001", protocol_id="short-cli", protocol_hash="sha256:" + "3f" * 32,
                protocol_text=SHORT, device_url="sim://rapid2", device_model="magstim-rapid2", simulated=True,
                planned_deliveries=4, planned_pulses=80,
            )).session_id
            for _ in range(4)
        ]
    listed = runner.invoke(app, ["sessions", "--db", str(db), "--limit", "3"])
    assert listed.exit_code == 0, listed.output
    assert [sid for sid in created if sid in listed.stdout] == created[1:]  # the newest three
    assert "the newest 3 of 4 sessions" in listed.stdout
    everything = json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout)
    assert [s["session"] for s in everything] == created  # --json: all of them, oldest first
    assert json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json", "--limit", "1"]).stdout)[0][
        "session"] == created[-1]
    refused = runner.invoke(app, ["sessions", "--db", str(db), "--limit", "-1"])
    assert refused.exit_code == EXIT_REFUSED and "--limit" in refused.stderr


def test_a_disarm_the_unit_ignores_is_never_reported_as_done(short: Path, tmp_path: Path) -> None:
    from tmsctl.records import Records

    db = initialise_db(tmp_path / "r.db")
    result = _run(str(short), "--device", "sim://rapid2?fault=ignore_disarm@5s", "--subject", "S001", "--mt", "50",
                  "--yes", "--virtual-time", db=db)
    assert result.exit_code == EXIT_FAULT, result.output
    words = " ".join(result.stderr.split())
    assert "may still be armed" in words and "Use its own disarm or stop control" in words
    assert "the device is disarmed" not in words
    with Records(db) as records:
        (session,) = records.sessions()
        codes = [f.code for f in records.session_detail(session.session_id).faults]
    assert "disarm_unconfirmed" in codes
