"""`tmsctl hotspot` on a simulated stimulator with a simulated subject whose MEPs fall off around a hotspot."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from cli_helpers import initialise_db
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_REFUSED
from tmsctl.cli.main import app
from tmsctl.core.clock import VirtualClock
from tmsctl.records import Records
from tmsctl.records.meps import MepRecords
from tmsctl.simulators import registry as sims

runner = CliRunner()
_names = itertools.count()


def test_hotspot_search_chooses_the_site_nearest_the_hotspot_and_records_every_pulse(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    name = f"hotcli-{next(_names)}"
    sim = sims.create("rapid2", clock=VirtualClock(), name=name)
    try:
        result = runner.invoke(app, [
            "hotspot", "--device", f"sim://{name}", "--subject", "S1", "--coil", "figure8", "--intensity", "60",
            "--emg", "sim", "--simulated-subject", "4", "--simulated-threshold", "45",
            "--simulated-hotspot", "10,-10", "--grid", "3x3", "--spacing", "10", "--pulses", "3", "--yes",
            "--db", str(db)])
        truth = sim.device.truth()
        assert not sim.device.armed and not sim.device.remote  # disarmed and released at the end
    finally:
        sims.remove(name)
    assert result.exit_code == 0, result.output
    assert "coil moved to site A1" in result.output
    assert "hotspot: site C3 (+10, -10 mm)" in result.output
    with Records(db) as records:
        (stored,) = MepRecords(records).measurements("S1", kind="hotspot")
    assert stored.status == "completed" and stored.muscle == "FDI"
    assert stored.result["chosen"]["site"] == "C3" and stored.result["pulses_per_site"] == 3
    assert [s["site"] for s in stored.result["sites"]] == ["A1", "A2", "A3", "B3", "B2", "B1", "C1", "C2", "C3"]
    # the truth invariant: the simulator's own count and power per pulse, against the record
    assert len(truth) == stored.pulses_delivered == len(stored.trial_log) >= 27
    assert [p.intensity_pct for p in truth] == [e["intensity_pct_mso"] for e in stored.trial_log] == [60] * len(truth)
    accepted = [e for e in stored.trial_log if e["trial"] is not None]
    assert [e["site"] for e in accepted] == [s for s in ("A1", "A2", "A3", "B3", "B2", "B1", "C1", "C2", "C3")
                                             for _ in range(3)]
    means = stored.result["mean_mep_uv"]
    assert means["C3"] == max(means.values()) and means["C3"] > 3 * means["A1"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--grid", "3by3"], "ROWSxCOLS"),
    (["--grid", "30x3"], "1–26 rows"),
    (["--intensity", "130"], "search intensity"),
    (["--centre", "1"], "X,Y in mm"),
    (["--emg", "lsl:x"], "--emg sim"),
])
def test_hotspot_refusals_fire_nothing(tmp_path: Path, args, fragment) -> None:
    db = initialise_db(tmp_path / "r.db")
    name = f"hotcli-{next(_names)}"
    sim = sims.create("rapid2", clock=VirtualClock(), name=name)
    emg = [] if "--emg" in args else ["--emg", "sim"]
    try:
        result = runner.invoke(app, ["hotspot", "--device", f"sim://{name}", "--subject", "S1", "--coil", "figure8",
                                     "--intensity", "60", "--simulated-subject", "3", *emg, *args, "--yes",
                                     "--db", str(db)])
        assert sim.device.truth() == ()
    finally:
        sims.remove(name)
    assert result.exit_code == EXIT_REFUSED, result.output
    assert fragment in " ".join(result.output.split())
