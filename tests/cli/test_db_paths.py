"""--db and TMSCTL_DB: a named database must exist; only the default location creates itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import tmsctl.records
from tmsctl.cli.common import EXIT_NOT_FOUND, EXIT_RECORDS, EXIT_REFUSED
from tmsctl.cli.main import app

runner = CliRunner()

PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "library" / "1hz-rdlpfc.yaml"


def expected_exit(command: list[str], code: int) -> int:
    """`protocol approve` reports every error as a refusal (its own, older convention)."""
    return EXIT_REFUSED if command[0] == "protocol" else code


@pytest.fixture
def no_db_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TMSCTL_DB; the default location inside tmp_path. Returns the default database path."""
    monkeypatch.delenv("TMSCTL_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "tmsctl" / "tmsctl.db"


@pytest.mark.parametrize(
    "command",
    [
        ["sessions", "--json"],
        ["session", "show", "K7M2-9QXD"],
        ["report", "K7M2-9QXD"],
        ["export", "bids", "K7M2-9QXD", "--bids-root", "bids", "--sub", "01", "--task", "x"],
        ["run", str(PROTOCOL), "--device", "sim://m200", "--subject", "S1", "--mt", "50", "--dry-run"],
        ["mt", "--device", "sim://m200", "--subject", "S1", "--coil", "figure8", "--yes"],
        ["protocol", "approve", str(PROTOCOL), "--by", "Dr Review"],
    ],
)
def test_a_named_database_that_does_not_exist_is_refused_and_not_created(
    command: list[str], tmp_path: Path, no_db_environment: Path
) -> None:
    for missing in (tmp_path / "typo.db", tmp_path / "nonexistent" / "dir" / "x.db"):
        result = runner.invoke(app, [*command, "--db", str(missing)])
        assert result.exit_code == expected_exit(command, EXIT_NOT_FOUND), result.output
        text = " ".join(result.output.split())
        assert f"there is no records database at {missing}" in text
        assert f"`tmsctl db init {missing}`" in text and "Traceback" not in result.output
        assert not missing.exists() and not (tmp_path / "nonexistent").exists()
    assert not no_db_environment.exists()


def test_tmsctl_db_naming_a_missing_file_is_refused_too(tmp_path: Path, no_db_environment: Path) -> None:
    missing = tmp_path / "typo.db"
    result = runner.invoke(app, ["sessions"], env={"TMSCTL_DB": str(missing)})
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "tmsctl db init" in result.output and not missing.exists()


def test_the_default_location_still_creates_itself(no_db_environment: Path) -> None:
    result = runner.invoke(app, ["sessions", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [] and no_db_environment.stat().st_size > 0


def test_db_init_creates_a_named_database_with_its_folders_once(tmp_path: Path, no_db_environment: Path) -> None:
    path = tmp_path / "site" / "records.db"
    created = runner.invoke(app, ["db", "init", str(path)])
    assert created.exit_code == 0, created.output
    assert f"created the records database {path}" in " ".join(created.stdout.split())
    again = runner.invoke(app, ["db", "init", str(path)])
    assert again.exit_code == 0 and "is a tmsctl records database" in again.stdout
    listed = runner.invoke(app, ["sessions", "--db", str(path), "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


def test_a_zero_byte_database_is_refused_as_damaged_by_every_command(tmp_path: Path, no_db_environment: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch(mode=0o600)
    for command in (["sessions"], ["db", "init", str(empty)], ["protocol", "approve", str(PROTOCOL), "--by", "Dr R"]):
        result = runner.invoke(app, [*command, "--db", str(empty)] if command[0] != "db" else command)
        assert result.exit_code == expected_exit(command, EXIT_RECORDS), result.output
        assert "is empty (0 bytes): damaged" in " ".join(result.output.split())
    assert empty.stat().st_size == 0


def test_commands_that_only_read_open_the_database_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_db_environment: Path
) -> None:
    path = tmp_path / "r.db"
    assert runner.invoke(app, ["db", "init", str(path)]).exit_code == 0
    opened: list[tuple[str, bool]] = []
    real = tmsctl.records.Records

    def spy(*args: Any, **kwargs: Any) -> Any:
        opened.append((command[0], kwargs.get("read_only", False)))
        return real(*args, **kwargs)

    monkeypatch.setattr(tmsctl.records, "Records", spy)
    reading = [
        ["sessions"], ["session", "show", "K7M2-9QXD"], ["report", "K7M2-9QXD"],
        ["export", "bids", "K7M2-9QXD", "--bids-root", str(tmp_path / "b"), "--sub", "01", "--task", "x"],
    ]
    writing = [
        ["run", str(PROTOCOL), "--device", "sim://m200", "--subject", "S1", "--mt", "50", "--dry-run"],
        ["protocol", "approve", str(PROTOCOL), "--by", "Dr Review"],
    ]
    for command in reading + writing:
        runner.invoke(app, [*command, "--db", str(path)])
    assert opened == [(c[0], c in reading) for c in reading + writing]
