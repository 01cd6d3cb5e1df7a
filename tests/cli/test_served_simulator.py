"""Issue 19: a served simulator says how to reach it, and names itself a simulator on the wire.

`tmsctl sim serve rapid2 --pty` prints the port alone on its first line (scripts read it), then
the shell lines that reach it: the public simulator unlock code's variable and the device URL.
Pasted as printed, `tmsctl info` works; a session run through it is recorded as simulated and so
counts for no real subject's caps. Nothing the user types decides that: the unit says it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cli_helpers import initialise_db, rtms_protocol

from tmsctl.core.clock import SystemClock
from tmsctl.records import Records

TINY = rtms_protocol("tiny-served", "One short 10 Hz train", pulses_per_train=10, inter_train_interval_s=5, trains=1)


def _exports(lines: list[str]) -> dict[str, str]:
    """What `export NAME=VALUE` lines set, read as a shell would."""
    env = {}
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, _, value = words[1].partition("=")
        env[name] = value
    return env


@pytest.fixture
def serve() -> Iterator[callable]:
    servers: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[str, dict[str, str]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tmsctl", "sim", "serve", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        servers.append(proc)
        first = proc.stdout.readline().strip()
        assert first and " " not in first, proc.stderr.read()  # the address alone, as scripts read it
        lines = [proc.stdout.readline().strip() for _ in range(2 if "rapid2" in args else 1)]
        return first, _exports(lines)

    yield start
    for proc in servers:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _tmsctl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SIM_UNLOCK", "TMSCTL_DEVICE")}
    return subprocess.run(
        [sys.executable, "-m", "tmsctl", *args], capture_output=True, text=True, timeout=60,
        env={**clean, **env, "COLUMNS": "200"},
    )


def test_the_printed_url_and_variable_reach_a_pty_rapid2(serve) -> None:
    path, env = serve("rapid2", "--pty")
    assert path.startswith("/dev/")
    assert env["TMSCTL_DEVICE"] == f"magstim-rapid2://{path}?unlock=env:SIM_UNLOCK"
    assert env["SIM_UNLOCK"] == "SIMU-00000000-5AA5"  # the simulator's public code
    info = _tmsctl("info", env=env)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "Magstim Rapid²" in info.stdout and "SIMULATED" in info.stdout and "software: 9.0" in info.stdout
    # the same URL given with --device works as well
    again = _tmsctl("info", "--device", env["TMSCTL_DEVICE"], env={"SIM_UNLOCK": env["SIM_UNLOCK"]})
    assert again.returncode == 0 and "SIMULATED" in again.stdout, again.stdout + again.stderr


def test_the_printed_url_reaches_a_tcp_simulator(serve) -> None:
    address, env = serve("rapid2", "--tcp", "127.0.0.1:0")
    assert env["TMSCTL_DEVICE"] == f"magstim-rapid2+socket://{address}?unlock=env:SIM_UNLOCK"
    info = _tmsctl("info", env=env)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "SIMULATED" in info.stdout


def test_a_model_without_an_unlock_code_gets_no_variable(serve) -> None:
    path, env = serve("m200", "--pty")
    assert env == {"TMSCTL_DEVICE": f"magstim-200://{path}"}
    info = _tmsctl("info", env=env)
    assert info.returncode == 0, info.stdout + info.stderr


@pytest.mark.slow
def test_a_session_through_a_served_rapid2_is_recorded_simulated_and_counts_for_no_caps(
    serve, tmp_path: Path
) -> None:
    _, env = serve("rapid2", "--pty")
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY)
    db = initialise_db(tmp_path / "r.db")
    run = _tmsctl(
        "run", str(protocol), "--subject", "R001", "--mt", "50", "--yes", "--no-live", "--db", str(db),
        "--log-dir", str(tmp_path / "logs"), "--allow-unapproved", "served simulator test", env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "completed, 10 of 10 pulses" in run.stdout
    now = SystemClock().wall()
    with Records(db) as records:
        [session] = records.sessions(subject_id="R001")
        assert session.simulated
        exposure = records.exposure_between("R001", now - timedelta(days=1), now + timedelta(days=1))
    assert (exposure.possible_pulses, exposure.sessions_started) == (0, 0)


def test_an_unmarked_simulator_is_taken_for_a_real_unit(serve) -> None:
    """The safe direction only: a simulator may hide what it is (then its sessions count), but
    nothing the user writes makes a real unit count as a simulator."""
    _, env = serve("rapid2", "--pty", "--unmarked")
    info = _tmsctl("info", env=env)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "SIMULATED" not in info.stdout
