"""Option values taken without pydantic (issue 19: start-up) are exactly what typer's pydantic
conversion makes of them; everything else still goes through typer's converter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import initialise_db
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter
from typer.testing import CliRunner

from tmsctl.cli.main import app
from tmsctl.cli.plain_values import _NOT_PLAIN, plain_value

ANNOTATIONS = [str, int, bool, str | None, int | None, bool | None]


def _agrees_with_pydantic(annotation: object, value: object) -> None:
    taken = plain_value(annotation, value)
    if taken is _NOT_PLAIN:
        return
    converted = TypeAdapter(annotation).validate_python(value)
    assert (taken, type(taken)) == (converted, type(converted)), f"{value!r} as {annotation}"


@pytest.mark.parametrize("annotation", ANNOTATIONS, ids=str)
@pytest.mark.parametrize("value", ["S017", "", " 5", "5", "-5", "0", "-0", "007", "+5", "1_000", "5.0", "1e3",
                                   "12345678901234567890", "٣", 5, -3, 0, True, False, 5.0, None, b"5"],
                         ids=repr)
def test_a_value_taken_plainly_is_what_pydantic_makes_of_it(annotation: object, value: object) -> None:
    _agrees_with_pydantic(annotation, value)


@given(st.one_of(st.text(max_size=25), st.integers().map(str), st.integers(), st.booleans()))
def test_any_value_taken_plainly_is_what_pydantic_makes_of_it(value: object) -> None:
    for annotation in ANNOTATIONS:
        _agrees_with_pydantic(annotation, value)


def test_what_it_cannot_be_sure_of_is_left_to_typer() -> None:
    for annotation, value in [(int, "007"), (int, "+5"), (int, " 5"), (int, "5.0"), (float, "0.5"),
                              (Path, "/tmp"), (int, True), (str, 5), (int | str, "5")]:
        assert plain_value(annotation, value) is _NOT_PLAIN, (annotation, value)


def test_a_bad_whole_number_gets_typers_own_message(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "records.db")
    result = CliRunner().invoke(app, ["sessions", "--db", str(db), "--limit", "x"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "Invalid value for '--limit'" in result.output and "valid integer" in result.output
    fine = CliRunner().invoke(app, ["sessions", "--db", str(db), "--limit", "007"])
    assert fine.exit_code == 0, fine.output


def test_tmsctl_sessions_runs_without_importing_pydantic(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "records.db")
    code = ("import sys; sys.argv = ['tmsctl', 'sessions', '--db', sys.argv[1], '--limit', '5']\n"
            "from tmsctl.__main__ import main\n"
            "try:\n    main()\nfinally:\n    print('pydantic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"
