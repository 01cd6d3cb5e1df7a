"""Library sessions from the CLI on the simulated MagPro (virtual time): the 10 Hz NeuroStar
session and iTBS run to the end; theta burst is refused where the device cannot time it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from cli_helpers import initialise_db
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_REFUSED
from tmsctl.cli.main import app
from tmsctl.core.clock import VirtualClock
from tmsctl.simulators import registry as sims

runner = CliRunner()


LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
_names = itertools.count()


def _run(protocol: str, device: str, db: Path):
    return runner.invoke(
        app,
        [
            "run",
            str(LIBRARY / protocol),
            "--device",
            device,
            "--subject",
            "S001",
            "--mt",
            "50",
            "--yes",
            "--virtual-time",
            "--db",
            str(db),
            "--no-live",
        ],
    )


@pytest.fixture
def magpro():
    """A simulated X100 registered for the CLI to open, so the test can read the unit's own account."""
    name = f"cli-magpro-{next(_names)}"
    instance = sims.create("magpro-x100", clock=VirtualClock(), name=name)
    yield name, instance
    sims.remove(name)


def _session(db: Path) -> dict:
    listed = json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout)
    assert len(listed) == 1
    return listed[0]


def test_the_10hz_library_session_runs_to_the_end_on_a_magpro(magpro, tmp_path: Path) -> None:
    name, instance = magpro
    db = initialise_db(tmp_path / "r.db")
    result = _run("neurostar-10hz-ldlpfc.yaml", f"sim://{name}", db)
    assert result.exit_code == 0, result.output
    assert "MagVenture MagPro X100" in result.stdout
    assert "completed, 3000 of 3000 pulses" in result.stdout
    session = _session(db)
    assert session["device"] == "magventure-magpro-x100" and session["simulated"]
    shown = json.loads(
        runner.invoke(app, ["session", "show", session["session"], "--db", str(db), "--json"]).stdout
    )
    assert shown["pulses_delivered"] == 3000 and shown["faults"] == []
    device = instance.device
    assert device.pulse_count == 3000 and device.interlocks == [] and not device.is_energised
    assert {p.intensity_pct for p in device.pulses} == {60}  # 120 % of 50 %MSO
    # 75 device-timed trains: one serial trigger each, 40 pulses at 10 Hz, 30 s onset to onset
    starts = [p.t for p in device.pulses if p.source == "serial"]
    assert len(starts) == 75
    assert all(abs((b - a) - 30.0) < 0.01 for a, b in itertools.pairwise(starts))


def test_an_itbs_session_runs_natively_on_a_magpro(magpro, tmp_path: Path) -> None:
    name, instance = magpro
    db = initialise_db(tmp_path / "r.db")
    result = _run("itbs-600.yaml", f"sim://{name}", db)
    assert result.exit_code == 0, result.output
    assert "completed, 600 of 600 pulses" in result.stdout
    device = instance.device
    assert device.pulse_count == 600 and device.interlocks == []
    first_train = [p.t - device.pulses[0].t for p in device.pulses[:30]]
    expected = [burst * 0.2 + pulse * 0.02 for burst in range(10) for pulse in range(3)]
    assert all(abs(got - want) < 1e-9 for got, want in zip(first_train, expected))
    assert _session(db)["status"] == "completed"


def test_itbs_from_the_cli_on_a_fresh_simulator_by_profile(tmp_path: Path) -> None:
    result = _run("itbs-600.yaml", "sim://magpro-x100", initialise_db(tmp_path / "r.db"))
    assert result.exit_code == 0, result.output
    assert "completed, 600 of 600 pulses" in result.stdout


@pytest.mark.parametrize(
    ("device", "reason"),
    [
        ("sim://rapid2", "cannot time theta bursts"),
        ("sim://magpro-r30", "MagPro R30 cannot time theta bursts"),
    ],
)
def test_theta_burst_is_refused_with_the_reason_where_the_device_cannot_time_it(
    device: str, reason: str, tmp_path: Path
) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = _run("itbs-600.yaml", device, db)
    assert result.exit_code == EXIT_REFUSED
    assert reason in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert json.loads(runner.invoke(app, ["sessions", "--db", str(db), "--json"]).stdout) == []


def test_info_shows_what_each_new_device_can_confirm() -> None:
    magpro = runner.invoke(app, ["info", "--device", "sim://magpro"])
    assert magpro.exit_code == 0, magpro.output
    assert "MagVenture MagPro X100" in magpro.stdout and "theta_burst" in magpro.stdout
    assert "confirmed_replies" in magpro.stdout
    duomag = runner.invoke(app, ["info", "--device", "sim://duomag"])
    assert duomag.exit_code == 0, duomag.output
    assert "Deymed DuoMAG" in duomag.stdout and "confirmed_replies" not in duomag.stdout


@pytest.mark.parametrize("protocol", ["neurostar-10hz-ldlpfc.yaml", "itbs-600.yaml"])
def test_device_timed_trains_start_on_their_scheduled_onsets(protocol: str, tmp_path: Path) -> None:
    """The runner leads each trigger by the MagPro's frame time (5 bytes at 38400 baud), not a Magstim's."""
    from tmsctl.records import Records
    from tmsctl.session.planned import SessionRequest, plan_session, run_planned

    name = f"onset-magpro-{next(_names)}"
    instance = sims.create("magpro-x100", clock=VirtualClock(), name=name)
    runners = []
    try:
        with Records(tmp_path / "r.db") as records:
            request = SessionRequest(LIBRARY / protocol, f"sim://{name}", "S001", mt_pct_mso=50)
            planned = plan_session(request, records)
            _, result = run_planned(planned, records, on_runner=runners.append)
    finally:
        sims.remove(name)
    assert result.outcome.value == "completed"
    start = runners[0].progress.session_start
    triggers = [p.t for p in instance.device.pulses if p.source == "serial"]
    onsets = [start + train.onset_s for train in planned.schedule.trains]
    assert len(triggers) == len(onsets)
    assert max(abs(t - onset) for t, onset in zip(triggers, onsets)) < 1e-6
