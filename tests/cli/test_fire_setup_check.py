"""`tmsctl fire` runs through the controller and leaves a one-pulse set-up-check record (issue 15, finding 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import initialise_db
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_FAULT, EXIT_USAGE
from tmsctl.cli.main import app
from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import InvalidArgument
from tmsctl.records import DeliveryState, Records, SessionStatus
from tmsctl.session.setup_check import SETUP_CHECK_PROTOCOL_ID, SETUP_SUBJECT_ID, run_setup_check
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import parse_fault_plan

runner = CliRunner()


@pytest.fixture
def simulator():
    """A Rapid² (v8: no unlock code) on a virtual clock, registered so `sim://NAME` opens it."""
    made: list[str] = []

    def make(fault: str = "", profile: str = "rapid2-v8") -> tuple[str, object]:
        name = f"setup-check-{len(made)}"
        made.append(name)
        instance = sims.create(profile, clock=VirtualClock(), faults=parse_fault_plan(fault), name=name)
        return f"sim://{name}", instance

    yield make
    for name in made:
        sims.remove(name)


def _fire(*args: str, db: Path):
    if not db.exists():
        initialise_db(db)
    return runner.invoke(app, ["fire", *args, "--yes", "--db", str(db), "--log-dir", str(db.parent / "logs")])


def test_one_pulse_is_fired_by_the_controller_and_recorded_as_a_setup_check(simulator, tmp_path: Path) -> None:
    url, sim = simulator()
    db = tmp_path / "r.db"
    result = _fire("--device", url, "--power", "40", db=db)
    assert result.exit_code == 0, result.output
    assert "fired 1 pulse at 40 %MSO, device acknowledged" in result.stdout
    assert sim.device.pulse_count == 1
    with Records(db) as records:
        (session,) = records.sessions()
        detail = records.session_detail(session.session_id)
    assert session.protocol_id == SETUP_CHECK_PROTOCOL_ID and session.subject_id == SETUP_SUBJECT_ID
    assert session.status is SessionStatus.COMPLETED and session.simulated
    assert session.planned_pulses == 1 and session.planned_deliveries == 1
    (delivery,) = detail.deliveries
    assert delivery.state is DeliveryState.COMPLETED and delivery.pulses_delivered == 1
    assert delivery.intensity_pct_mso == 40
    assert session.session_id in result.stdout
    # the controller's events: its state machine went through arming and firing
    events = [json.loads(line) for line in (tmp_path / "logs" / f"{session.session_id}.jsonl").read_text().splitlines()]
    transitions = [(e["source"], e["dest"]) for e in events if e["event"] == "state_changed"]
    assert ("armed", "stimulating") in transitions and ("stimulating", "armed") in transitions
    assert transitions[-1][1] == "disconnected"
    assert any(e["event"] == "intensity_set" and e["intensity_pct_mso"] == 40 for e in events)


def test_a_subject_under_the_coil_is_named(simulator, tmp_path: Path) -> None:
    url, _ = simulator()
    db = tmp_path / "r.db"
    result = _fire("--device", url, "--power", "35", "--subject", "S017", db=db)
    assert result.exit_code == 0, result.output
    with Records(db) as records:
        (session,) = records.sessions(subject_id="S017")
    assert session.protocol_id == SETUP_CHECK_PROTOCOL_ID


@pytest.mark.parametrize("power", ["0", "-5"])
def test_power_below_one_percent_is_a_usage_error_and_touches_nothing(power: str, simulator, tmp_path: Path) -> None:
    url, sim = simulator()
    db = initialise_db(tmp_path / "r.db")
    result = _fire("--device", url, "--power", power, db=db)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "at least 1 %" in result.output
    assert sim.device.commands_seen == 0 and sim.device.pulse_count == 0
    with Records(db) as records:
        assert records.sessions() == ()


def test_the_set_up_check_itself_refuses_zero_power(simulator, tmp_path: Path) -> None:
    url, sim = simulator()
    with Records(tmp_path / "r.db") as records, pytest.raises(InvalidArgument, match="1 %MSO or more"):
        run_setup_check(url, 0, records)
    assert sim.device.commands_seen == 0


def test_help_names_the_reserved_subject() -> None:
    result = runner.invoke(app, ["fire", "--help"])
    assert SETUP_SUBJECT_ID in result.output and "at least 1" in result.output


def test_a_fault_while_firing_is_recorded_and_nothing_more_is_claimed(simulator, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    # a rehearsal finds which command is the fire (EH), so the fault hits exactly that one
    probe_url, probe = simulator()
    commands: list[bytes] = []
    handle = probe.device._handle
    probe.device._handle = lambda frame, now: (commands.append(frame.raw), handle(frame, now))
    assert _fire("--device", probe_url, "--power", "40", db=tmp_path / "probe.db").exit_code == 0
    fire_index = next(i for i, raw in enumerate(commands, start=1) if raw.startswith(b"EH"))
    url, _sim = simulator(f"no_reply@cmd{fire_index}")
    result = _fire("--device", url, "--power", "40", db=db)
    assert result.exit_code == EXIT_FAULT, result.output
    assert "fired 1 pulse" not in result.output and "acknowledged" not in result.output
    with Records(db) as records:
        (session,) = records.sessions()
        detail = records.session_detail(session.session_id)
    assert session.status is SessionStatus.FAULTED
    assert detail.faults[0].state == "firing"
    # the intent is on record; whether the pulse left is unknown, so it is never counted as done
    (delivery,) = detail.deliveries
    assert delivery.state is DeliveryState.IN_PROGRESS
