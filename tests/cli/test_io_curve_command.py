"""`tmsctl io-curve` on a simulated stimulator with a simulated subject's EMG: fitted, recorded, plotted."""

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


def test_io_curve_from_a_simulated_subjects_emg_is_recorded_and_plotted(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    name = f"iocli-{next(_names)}"
    sim = sims.create("rapid2", clock=VirtualClock(), name=name)
    try:
        result = runner.invoke(app, [
            "io-curve", "--device", f"sim://{name}", "--subject", "S1", "--coil", "figure8", "--rmt", "45",
            "--emg", "sim", "--simulated-subject", "3", "--simulated-threshold", "45", "--pulses", "5",
            "--html", str(tmp_path / "curve.html"), "--yes", "--db", str(db)])
    finally:
        sims.remove(name)
    assert result.exit_code == 0, result.output
    assert "S50" in result.output and "true S50" in result.output
    with Records(db) as records:
        (stored,) = MepRecords(records).measurements("S1", kind="io_curve")
    truth = sim.device.truth()
    assert len(truth) == stored.pulses_delivered == len(stored.trial_log) >= 35
    assert [p.intensity_pct for p in truth] == [e["intensity_pct_mso"] for e in stored.trial_log]
    assert stored.result["intensities_pct_mso"] == [41, 45, 50, 54, 59, 63, 68]
    page = (tmp_path / "curve.html").read_text()
    added = stored.result["upper_range"]["intensities_added_pct_mso"]  # this subject's curve rises past 68 %MSO
    assert page.count('class="trial"') == 35 + 5 * len(added) and 'class="fit"' in page and "S50" in page
    assert ("upper range" in page) == bool(added)


def test_io_curve_without_a_plateau_extends_upwards_and_says_so(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    name = f"iocli-{next(_names)}"
    sim = sims.create("rapid2", clock=VirtualClock(), name=name)
    try:
        result = runner.invoke(app, [
            "io-curve", "--device", f"sim://{name}", "--subject", "S2", "--coil", "figure8", "--rmt", "30",
            "--emg", "sim", "--simulated-subject", "3", "--simulated-threshold", "30", "--pulses", "5",
            "--upper-cap", "180", "--yes", "--db", str(db)])
    finally:
        sims.remove(name)
    assert result.exit_code == 0, result.output
    assert "upper range: added 48 %MSO" in " ".join(result.output.split())
    with Records(db) as records:
        (stored,) = MepRecords(records).measurements("S2", kind="io_curve")
    extension = stored.result["upper_range"]
    assert extension["cap_pct_mso"] == 54 and extension["intensities_added_pct_mso"][0] == 48
    truth = sim.device.truth()
    # the truth invariant: the simulator's own count and power per pulse against the record
    assert len(truth) == stored.pulses_delivered == len(stored.trial_log)
    assert [p.intensity_pct for p in truth] == [e["intensity_pct_mso"] for e in stored.trial_log]
    assert max(p.intensity_pct for p in truth) == max(extension["intensities_added_pct_mso"]) <= 54


def test_io_curve_upper_step_0_gives_the_planned_levels_only(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = runner.invoke(app, [
        "io-curve", "--device", "sim://rapid2", "--subject", "S3", "--coil", "figure8", "--rmt", "30",
        "--emg", "sim", "--simulated-subject", "3", "--simulated-threshold", "30", "--pulses", "5",
        "--upper-step", "0", "--virtual-time", "--yes", "--db", str(db)])
    assert result.exit_code == 0, result.output
    with Records(db) as records:
        (stored,) = MepRecords(records).measurements("S3", kind="io_curve")
    assert stored.result["upper_range"] is None and stored.pulses_delivered >= 35
    assert max(e["intensity_pct_mso"] for e in stored.trial_log) == 45


@pytest.mark.parametrize(("args", "fragment"), [
    (["--rmt", "80"], "above this stimulator"),
    (["--rmt", "45", "--levels", "100,120"], "at least 4"),
    (["--rmt", "45", "--simulated-subject", "3", "--emg", "lsl:x"], "--emg sim"),
    (["--rmt", "45", "--upper-step", "-10"], "upper range's step_pct_rmt"),
])
def test_io_curve_refusals_fire_nothing(tmp_path: Path, args, fragment) -> None:
    db = initialise_db(tmp_path / "r.db")
    emg = [] if "--emg" in args else ["--emg", "sim", "--simulated-subject", "3"]
    result = runner.invoke(app, ["io-curve", "--device", "sim://rapid2", "--subject", "S1", "--coil", "figure8",
                                 *args, *emg, "--virtual-time", "--yes", "--db", str(db)])
    assert result.exit_code == EXIT_REFUSED, result.output
    assert fragment in " ".join(result.output.split())
