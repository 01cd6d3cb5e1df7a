"""Bad input at the command line: each a refusal (exit 3) that names its rule, and nothing recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tmsctl.cli.main import app

runner = CliRunner()
NEUROSTAR = Path(__file__).resolve().parents[2] / "protocols" / "library" / "neurostar-10hz-ldlpfc.yaml"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.db"
    assert runner.invoke(app, ["db", "init", str(path)]).exit_code == 0
    today = datetime.now(UTC).date()
    started = runner.invoke(app, ["course", "start", "S001", "--protocol", str(NEUROSTAR), "--sessions", "30",
                                  "--prescriber", "Dr A", "--start", (today - timedelta(days=3)).isoformat(),
                                  "--db", str(path)])
    assert started.exit_code == 0, started.output
    return path


def refused(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 3, result.output
    return result.output


def test_refusals_name_the_rule(db: Path) -> None:
    today = datetime.now(UTC).date()
    d = str(db)
    assert "course.one_active" in refused("course", "start", "S001", "--protocol", str(NEUROSTAR), "--sessions", "5",
                                          "--prescriber", "Dr A", "--db", d)
    assert "outcome.unknown_scale" in refused("outcome", "add", "S001", "--scale", "phq10", "--score", "3",
                                              "--date", today.isoformat(), "--db", d)
    assert "outcome.score_range" in refused("outcome", "add", "S001", "--scale", "phq9", "--score", "28",
                                            "--date", today.isoformat(), "--db", d)
    assert "outcome.item_range" in refused("outcome", "add", "S001", "--scale", "phq9", "--items", "0,0,0,0,0,0,0,0,4",
                                           "--date", today.isoformat(), "--db", d)
    assert "outcome.future_date" in refused("outcome", "add", "S001", "--scale", "phq9", "--score", "3",
                                            "--date", (today + timedelta(days=1)).isoformat(), "--db", d)
    assert "outcome.before_course" in refused("outcome", "add", "S001", "--scale", "phq9", "--score", "3",
                                              "--date", (today - timedelta(days=4)).isoformat(), "--db", d)
    shown = runner.invoke(app, ["course", "show", "S001", "--json", "--db", d])
    assert '"outcomes": {}' in shown.output  # nothing was recorded
    flagged = runner.invoke(app, ["outcome", "add", "S001", "--scale", "phq9", "--items", "2,2,2,2,1,1,1,1,1",
                                  "--date", today.isoformat(), "--db", d])
    assert flagged.exit_code == 0 and "phq9 13" in flagged.output and "self-harm" in flagged.output
    ended = runner.invoke(app, ["course", "end", "S001", "--status", "stopped", "--reason", "moved away", "--db", d])
    assert ended.exit_code == 0, ended.output
    assert "course.none_active" in refused("course", "end", "S001", "--status", "stopped", "--reason", "x", "--db", d)
    run = refused("run", str(NEUROSTAR), "--device", "sim://rapid2", "--subject", "S001", "--mt", "55", "--yes",
                  "--virtual-time", "--no-live", "--allow-unapproved", "test", "--db", d)
    assert "course.closed" in run and "moved away" in run
