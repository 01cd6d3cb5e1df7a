"""Every exit code in the README's table, each through the command line (issue 19).

Scripts branch on these codes, so each one is driven here by what a technician would meet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import initialise_db
from typer.testing import CliRunner

from tmsctl.cli import common
from tmsctl.cli import main as cli
from tmsctl.cli.main import app

runner = CliRunner()

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
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def protocol(tmp_path: Path) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_TRAINS)
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return initialise_db(tmp_path / "r.db")


def _run(protocol: Path, db: Path, *extra: str, device: str = "sim://rapid2", subject: str = "S001"):
    return runner.invoke(app, [
        "run", str(protocol), "--device", device, "--subject", subject, "--mt", "50", "--virtual-time",
        "--db", str(db), "--no-live", "--allow-unapproved", "exit-code test", *extra,
    ])


def _last_session(db: Path) -> str:
    return json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout)[-1]["session"]


def test_the_readme_table_lists_every_code_the_cli_defines() -> None:
    text = README.read_text()
    codes = {v for k, v in vars(cli).items() if k.startswith("EXIT_")}
    for code in codes:
        assert f"\n| {code} | " in text, f"exit code {code} is not in the README's table"


def test_0_done(protocol: Path, db: Path) -> None:
    result = _run(protocol, db, "--yes")
    assert result.exit_code == common.EXIT_OK == 0, result.output


def test_1_internal_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("tmsctl.core.registry.open_driver", broken)
    monkeypatch.setattr("sys.argv", ["tmsctl", "info", "--device", "sim://rapid2"])
    with pytest.raises(SystemExit) as exited:
        cli.main()  # the console script's entry point, as a technician runs it
    assert exited.value.code == common.EXIT_INTERNAL == 1
    said = capsys.readouterr().err
    assert "this is a bug in tmsctl" in said and "Traceback" not in said


@pytest.mark.parametrize("subject", ["S 017", "", "S1'; DROP TABLE sessions; --", "jane.doe@example.org"])
def test_2_an_unusable_subject_id_is_a_usage_error(protocol: Path, db: Path, subject: str) -> None:
    result = _run(protocol, db, "--yes", subject=subject)
    assert result.exit_code == common.EXIT_USAGE == 2, result.output
    assert "--subject" in result.output
    assert json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout) == []


def test_2_an_unknown_option_is_a_usage_error(protocol: Path, db: Path) -> None:
    assert _run(protocol, db, "--bogus").exit_code == common.EXIT_USAGE


def test_3_refused_by_the_rules(protocol: Path, db: Path) -> None:
    too_fast = protocol.with_name("too-fast.yaml")
    too_fast.write_text(TWO_TRAINS.replace("frequency_hz: 10", "frequency_hz: 60"))
    result = _run(too_fast, db, "--yes")
    assert result.exit_code == common.EXIT_REFUSED == 3, result.output


def test_3_a_resume_of_an_ended_session_is_refused_before_connecting(protocol: Path, db: Path) -> None:
    assert _run(protocol, db, "--yes").exit_code == 0
    session_id = _last_session(db)
    result = runner.invoke(app, ["resume", session_id, "--db", str(db), "--yes", "--no-live",
                                 "--device", "magstim-rapid2:///dev/no-such-port"])
    assert result.exit_code == common.EXIT_REFUSED, result.output
    assert "completed" in result.stderr and "no-such-port" not in result.output


def test_4_refused_by_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRONG_UNLOCK", "WRNG-13572468-5AA5")  # a code for another unit
    result = runner.invoke(app, ["info", "--device", "magstim-rapid2+sim://rapid2?unlock=env:WRONG_UNLOCK"])
    assert result.exit_code == common.EXIT_DEVICE_REFUSED == 4, result.output


def test_5_device_fault(protocol: Path, db: Path) -> None:
    result = _run(protocol, db, "--yes", device="sim://rapid2?fault=stall@4.5s")
    assert result.exit_code == common.EXIT_FAULT == 5, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["info", "--device", "magstim-rapid2:///dev/no-such-port"],
        ["session", "show", "NOPE-NOPE"],
        ["resume", "NOPE-NOPE", "--yes"],
        ["run", "no-such-protocol.yaml", "--device", "sim://rapid2", "--subject", "S001", "--yes"],
    ],
    ids=["port", "session", "resume", "protocol file"],
)
def test_6_not_found(db: Path, args: list[str]) -> None:
    if args[0] != "info":
        args = [*args, "--db", str(db)]
    result = runner.invoke(app, args)
    assert result.exit_code == common.EXIT_NOT_FOUND == 6, result.output
    assert "Traceback" not in result.output


def test_7_incomplete(protocol: Path, db: Path) -> None:
    # The coil comes off mid-train: that train's outcome is not fully known and is never repeated.
    faulted = _run(protocol, db, "--yes", device="sim://rapid2?fault=coil_unplugged@4.5s")
    assert faulted.exit_code == common.EXIT_FAULT, faulted.output
    result = runner.invoke(app, ["resume", _last_session(db), "--db", str(db), "--yes", "--no-live",
                                 "--virtual-time", "--device", "sim://rapid2"])
    assert result.exit_code == common.EXIT_INCOMPLETE == 7, result.output


def test_8_the_records_database_cannot_be_used(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    result = runner.invoke(app, ["sessions", "--db", str(damaged)])
    assert result.exit_code == common.EXIT_RECORDS == 8, result.output
    assert "Traceback" not in result.output


def test_130_a_declined_confirmation(protocol: Path, db: Path) -> None:
    result = runner.invoke(app, [
        "run", str(protocol), "--device", "sim://rapid2", "--subject", "S001", "--mt", "50", "--virtual-time",
        "--db", str(db), "--no-live", "--allow-unapproved", "exit-code test",
    ], input="n\n")
    assert result.exit_code == common.EXIT_ABORTED == 130, result.output
    assert "nothing was armed" in result.stderr
    assert json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout) == []


def test_130_a_declined_set_up_check(db: Path) -> None:
    result = runner.invoke(app, ["fire", "--device", "sim://rapid2", "--power", "30", "--db", str(db)], input="\n")
    assert result.exit_code == common.EXIT_ABORTED, result.output
