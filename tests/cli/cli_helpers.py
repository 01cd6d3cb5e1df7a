"""Shared set-up for the CLI tests."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tmsctl.cli import app


def initialise_db(db: Path) -> Path:
    """A database named with --db must exist first (`tmsctl db init` creates it)."""
    created = CliRunner().invoke(app, ["db", "init", str(db)])
    assert created.exit_code == 0, created.output
    return db
