"""The Rapid² unlock code never leaves the process in readable form (issue 15, finding 3).

Every way taking remote control can fail — no reply, a garbled reply, a bad checksum, a stall,
a refused (wrong) code, a mistyped code — is driven through ``tmsctl info``, ``tmsctl fire`` and
``tmsctl run``; then every output channel (stdout, stderr, the records database file, every audit
log file and, over a pseudo-terminal, pyserial's ``+spy`` trace) is searched for the code in each
form a frame is shown in: as text, as a hex dump and as plain hex.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import SHORT_CLI, initialise_db
from typer.testing import CliRunner

from tmsctl.cli.main import app
from tmsctl.core.clock import VirtualClock
from tmsctl.core.registry import open_driver
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import parse_fault_plan

runner = CliRunner()

SIM_CODE = "SIMU-00000000-5AA5"  # the simulator's published code, as an operator stores it
WRONG_CODE = "WRNG-13572468-5AA5"  # a code for another unit: the simulator refuses it
MISTYPED_CODE = "SIMU-0000000-5AA5"  # one digit short: refused before anything is sent

PROTOCOL = SHORT_CLI

# name -> (environment variable holding the code, fault plan with {q} for the Q command's number)
FAILURES = {
    "no reply": ("SIM_UNLOCK", "no_reply@cmd{q}"),
    "garbled reply": ("SIM_UNLOCK", "garbled_byte@cmd{q}"),
    "bad checksum": ("SIM_UNLOCK", "bad_checksum@cmd{q}"),
    "stall (for good)": ("SIM_UNLOCK", "stall@cmd{q}"),
    "stall (brief, a timeout)": ("SIM_UNLOCK", "stall@cmd{q}+0.2s"),
    "wrong code (refused)": ("WRONG_UNLOCK", ""),
    "mistyped code": ("MISTYPED_UNLOCK", ""),
}


def _leak_markers(code_text: str) -> list[bytes]:
    """The first block of ``code_text`` (4 characters and the hyphen) in every rendering we use."""
    head = code_text[:5].encode("ascii")
    return [
        head,  # text: show(), repr(), the spy dump's ASCII column
        head.hex(" ").upper().encode(),  # hex dump (pyserial's spy, MagPro style)
        head.hex().encode(),  # plain hex (JSON lines render bytes so)
        head.hex().upper().encode(),
        code_text[5:13].encode("ascii") if code_text[5:13] != "00000000" else head,  # the middle block
    ]


ALL_MARKERS = [m for code in (SIM_CODE, WRONG_CODE, MISTYPED_CODE) for m in _leak_markers(code)]


def _assert_nowhere(channels: dict[str, bytes]) -> None:
    leaks = [(name, marker) for name, data in channels.items() for marker in ALL_MARKERS if marker in data]
    assert not leaks, f"the unlock code leaked: {leaks}\n" + "\n".join(
        f"--- {name}:\n{data.decode('utf-8', 'replace')[:3000]}" for name, data in channels.items()
    )


def _files(*roots: Path) -> dict[str, bytes]:
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for path in paths:
            found[str(path)] = path.read_bytes()
    return found


@pytest.fixture
def codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_UNLOCK", SIM_CODE)
    monkeypatch.setenv("WRONG_UNLOCK", WRONG_CODE)
    monkeypatch.setenv("MISTYPED_UNLOCK", MISTYPED_CODE)


def _url(variable: str, fault: str, q: int, *, base: str = "magstim-rapid2+sim://rapid2") -> str:
    # '+' in a query string reads as a space: the stall's duration is written %2B
    query = f"unlock=env:{variable}" + (f"&fault={fault.format(q=q).replace('+', '%2B')}" if fault else "")
    return f"{base}?{query}"


def _commands_before_run_connects(profile: str = "rapid2") -> int:
    """How many commands ``run``'s planning step sends (connect, then release) before it connects again."""
    clock = VirtualClock()
    probe = sims.create(profile, clock=clock, name="secrecy-probe")
    try:
        driver = open_driver("sim://secrecy-probe", clock)
        driver.connect()
        driver.close()
        return probe.device.commands_seen
    finally:
        sims.remove("secrecy-probe")


# -- in process: console, records database, audit log --------------------------------------------------


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("command", ["info", "fire"])
def test_info_and_fire_never_show_the_code(command: str, failure: str, codes: None, tmp_path: Path) -> None:
    variable, fault = FAILURES[failure]
    url = _url(variable, fault, q=2)  # a Rapid² v9 connects with ND, then Q + code
    args = [command, "--device", url]
    if command == "fire":
        args += ["--power", "30", "--yes", "--db", str(initialise_db(tmp_path / "r.db")), "--log-dir", str(tmp_path / "logs")]
    result = runner.invoke(app, args)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    _assert_nowhere({"stdout": result.stdout.encode(), "stderr": result.stderr.encode(), **_files(tmp_path)})


@pytest.fixture
def faulty_rapid2() -> Iterator[callable]:
    names: list[str] = []

    def make(fault: str) -> str:
        name = f"secrecy-{len(names)}"
        names.append(name)
        sims.create("rapid2", clock=VirtualClock(), faults=parse_fault_plan(fault), name=name)
        return name

    yield make
    for name in names:
        sims.remove(name)


@pytest.mark.parametrize("failure", FAILURES)
def test_run_records_the_failure_without_the_code(failure: str, codes: None, tmp_path: Path, faulty_rapid2) -> None:
    variable, fault = FAILURES[failure]
    # the fault hits the second connect (the session's own), after planning took and released control
    q = _commands_before_run_connects() + 2
    name = faulty_rapid2(fault.format(q=q))
    protocol = tmp_path / "short.yaml"
    protocol.write_text(PROTOCOL)
    db, logs = initialise_db(tmp_path / "r.db"), tmp_path / "logs"
    result = runner.invoke(app, [
        "run", str(protocol), "--device", _url(variable, "", q, base=f"magstim-rapid2+sim://{name}"),
        "--subject", "S001", "--mt", "50", "--yes", "--no-live", "--db", str(db), "--log-dir", str(logs),
        "--allow-unapproved", "secrecy test",
    ])
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    channels = {"stdout": result.stdout.encode(), "stderr": result.stderr.encode()}
    if fault:  # the session was created, so the failure is on record: show it too
        from tmsctl.records import Records

        with Records(db) as records:
            (session,) = records.sessions()
            faults = records.session_detail(session.session_id).faults
        assert faults and faults[0].state == "connecting", faults
        assert any(p.suffix == ".jsonl" for p in logs.iterdir())
        shown = runner.invoke(app, ["session", "show", session.session_id, "--db", str(db)])
        shown_json = runner.invoke(app, ["session", "show", session.session_id, "--db", str(db), "--json"])
        channels.update({"session show": shown.output.encode(), "session show --json": shown_json.output.encode()})
    _assert_nowhere({**channels, **_files(tmp_path)})


# -- over a pseudo-terminal, with pyserial's spy trace --------------------------------------------------


@pytest.fixture
def pty_rapid2(tmp_path: Path) -> Iterator[callable]:
    servers: list[subprocess.Popen[str]] = []

    def serve(fault: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tmsctl", "sim", "serve", "rapid2", "--pty", "--fault", fault],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        servers.append(proc)
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), proc.stderr.read()
        return path

    yield serve
    for proc in servers:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("command", ["info", "fire", "run"])
def test_the_spy_trace_masks_the_code(command: str, failure: str, tmp_path: Path, pty_rapid2) -> None:
    variable, fault = FAILURES[failure]
    q = _commands_before_run_connects() + 2 if command == "run" else 2
    pty_path = pty_rapid2(fault.format(q=q) if fault else "")
    trace = tmp_path / "trace.txt"
    url = f"magstim-rapid2+spy://{pty_path}?file={trace}&unlock=env:{variable}"
    db, logs = initialise_db(tmp_path / "r.db"), tmp_path / "logs"
    args = {
        "info": ["info", "--device", url],
        "fire": ["fire", "--device", url, "--power", "30", "--yes", "--db", str(db), "--log-dir", str(logs)],
        "run": ["run", str(tmp_path / "short.yaml"), "--device", url, "--subject", "S001", "--mt", "50", "--yes",
                "--no-live", "--db", str(db), "--log-dir", str(logs), "--allow-unapproved", "secrecy test"],
    }[command]
    (tmp_path / "short.yaml").write_text(PROTOCOL)
    env = {"SIM_UNLOCK": SIM_CODE, "WRONG_UNLOCK": WRONG_CODE, "MISTYPED_UNLOCK": MISTYPED_CODE}
    done = subprocess.run([sys.executable, "-m", "tmsctl", *args], env={**os.environ, **env},
                          capture_output=True, timeout=60)
    assert done.returncode != 0, done.stdout + done.stderr
    assert trace.exists() and trace.stat().st_size > 0  # the spy did trace the exchange
    if variable != "MISTYPED_UNLOCK":
        assert b"TX   0000  51 2A 2A 2A" in trace.read_bytes()  # the Q frame is there, its code masked
    _assert_nowhere({"stdout": done.stdout, "stderr": done.stderr, **_files(tmp_path)})
