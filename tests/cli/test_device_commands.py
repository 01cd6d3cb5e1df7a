"""CLI: devices, info, fire, sim serve — as a technician or a script would use them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import serial
from cli_helpers import initialise_db
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_NOT_FOUND, EXIT_REFUSED
from tmsctl.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_records(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `tmsctl fire` records its set-up check; never in the user's own database
    monkeypatch.setenv("TMSCTL_DB", str(initialise_db(tmp_path / "tmsctl.db")))


def test_devices_lists_simulators_without_opening_ports() -> None:
    result = runner.invoke(app, ["devices", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    urls = {s["url"] for s in data["simulators"]}
    assert {"sim://rapid2", "sim://bistim", "sim://m200"} <= urls
    assert "magstim-rapid2" in data["drivers"]


def test_fire_one_pulse_on_the_simulator() -> None:
    result = runner.invoke(app, ["fire", "--device", "sim://bistim", "--power", "35", "--yes"])
    assert result.exit_code == 0, result.output
    assert "fired 1 pulse at 35 %MSO, device acknowledged" in result.stdout


def test_fire_asks_first_and_does_nothing_when_declined() -> None:
    result = runner.invoke(app, ["fire", "--device", "sim://m200", "--power", "35"], input="n\n")
    assert result.exit_code != 0
    assert "take remote control" not in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["fire", "--device", "sim://nosuch", "--power", "30", "--yes"], EXIT_NOT_FOUND, "known simulators"),
        (["fire", "--device", "nonsense", "--power", "30", "--yes"], EXIT_NOT_FOUND, "not a device URL"),
        (["fire", "--device", "acme-9000:///dev/ttyS0", "--power", "30", "--yes"], EXIT_NOT_FOUND, "known drivers"),
        (["fire", "--device", "magstim-rapid2+sim://rapid2-v8?unlock=secret", "--power", "30", "--yes"], EXIT_REFUSED, "reference a secret"),
        (["fire", "--device", "magstim-200:///dev/does-not-exist", "--power", "30", "--yes"], EXIT_NOT_FOUND, "no such port"),
    ],
)
def test_errors_are_one_readable_line_with_a_hint(args, code, text) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert text in result.output
    assert "Traceback" not in result.output


def test_info_reports_the_simulated_unit() -> None:
    result = runner.invoke(app, ["info", "--device", "sim://rapid2"])
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.stdout and "software: 9.0" in result.stdout


@pytest.mark.slow
def test_sim_serve_prints_the_path_first_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tmsctl", "sim", "serve", "m200", "--pty"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/")
        with serial.Serial(path, 9600, timeout=2) as port:
            port.write(b"Q@n")
            assert port.read(3) == bytes.fromhex("51 89 25")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
