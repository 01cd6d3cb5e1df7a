"""Shared set-up for the CLI tests."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tmsctl.cli.main import app


def initialise_db(db: Path) -> Path:
    """A database named with --db must exist first (`tmsctl db init` creates it)."""
    created = CliRunner().invoke(app, ["db", "init", str(db)])
    assert created.exit_code == 0, created.output
    return db


def rtms_protocol(protocol_id: str, title: str, *, pulses_per_train: int, inter_train_interval_s: float,
                  trains: int, frequency_hz: float = 10) -> str:
    """A small rTMS protocol at 100 % rMT on F3, as the CLI tests write them."""
    return (
        "schema_version: 1\n"
        f"id: {protocol_id}\n"
        f"title: {title}\n"
        "coil: {family: figure8}\n"
        "target: {method: eeg_10_20, site: F3}\n"
        "hemisphere: left\n"
        "intensity: {reference: rMT, scaling_pct: 100}\n"
        f"pattern: {{kind: rtms, frequency_hz: {frequency_hz:g}, pulses_per_train: {pulses_per_train}, "
        f"inter_train_interval_s: {inter_train_interval_s:g}, trains: {trains}}}\n"
    )


# Four 2 s trains of 10 Hz, 8 s apart: the CLI tests' usual session (80 pulses).
SHORT_CLI = rtms_protocol("short-cli", "Short CLI test protocol", pulses_per_train=20, inter_train_interval_s=8,
                          trains=4)
