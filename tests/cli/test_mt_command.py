"""`tmsctl mt` as a technician uses it: simulated stimulators, virtual time, typed MEP entries."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from cli_helpers import initialise_db
from typer.testing import CliRunner

from tmsctl.cli import mt as cli_mt
from tmsctl.cli.common import EXIT_ABORTED, EXIT_FAULT, EXIT_REFUSED
from tmsctl.cli.main import app
from tmsctl.clinic.threshold import NOT_SEEN, SEEN, MlPest, run_procedure
from tmsctl.core.clock import VirtualClock
from tmsctl.records import Records
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import parse_fault_plan

runner = CliRunner()


_names = itertools.count()

PROTOCOL_120_RMT = """\
schema_version: 1
id: mt-cli-120
title: MT CLI test protocol at 120 % rMT
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 120}
pattern: {kind: rtms, frequency_hz: 1, pulses_per_train: 5, inter_train_interval_s: 10, trains: 2}
"""


@pytest.fixture
def simulator() -> Iterator[Callable[..., sims.SimulatorInstance]]:
    """A named simulator on its own virtual clock, so the test can count what it delivered."""
    made: list[str] = []

    def make(profile: str = "rapid2", faults: str = "") -> sims.SimulatorInstance:
        name = f"mtcli-{profile}-{next(_names)}"
        made.append(name)
        return sims.create(profile, clock=VirtualClock(), faults=parse_fault_plan(faults), name=name)

    yield make
    for name in made:
        sims.remove(name)


def mt(*args: str, db: Path, input: str | None = None):
    return runner.invoke(app, ["mt", *args, "--db", str(db)], input=input)


def flat(text: str) -> str:
    """Rich wraps long lines at the terminal width; compare words, not line breaks."""
    return " ".join(text.split())


def thresholds(db: Path, subject: str):
    with Records(db) as records:
        return records.motor_thresholds(subject)


def stopped_hunts(db: Path, subject: str):
    from tmsctl.records.meps import MepRecords

    with Records(db) as records:
        return MepRecords(records).measurements(subject, kind="mt_stopped")


# --------------------------------------------------------------------------------------------
# The command exists where the lead mounts it
# --------------------------------------------------------------------------------------------


def test_mounting_the_module_app_gives_an_mt_command() -> None:
    parent = typer.Typer()

    @parent.command()
    def other() -> None:
        """Another command, so the parent is a group."""

    parent.add_typer(cli_mt.app)
    shown = runner.invoke(parent, ["mt", "--help"])
    assert shown.exit_code == 0, shown.output
    assert "--simulated-subject" in shown.output and "--stimulator-serial" in shown.output
    assert runner.invoke(app, ["mt", "--help"]).exit_code == 0


# --------------------------------------------------------------------------------------------
# Unattended with a simulated subject; the result drives `tmsctl run`
# --------------------------------------------------------------------------------------------


def test_a_simulated_hunt_is_recorded_and_run_resolves_percent_mt_from_it(simulator, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    hunted = simulator("rapid2")
    result = mt("--device", f"sim://{hunted.name}", "--subject", "S020", "--coil", "figure8",
                "--simulated-subject", "11", "--simulated-threshold", "47.3", "--yes", db=db)
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert text.count("%MSO — pulse delivered") == 20 and "MEP?" not in text
    assert "recorded for subject S020: magstim-rapid2 serial SIM-rapid2, coil figure8" in text
    assert "Protocols prescribing % rMT now resolve from it" in text
    (record,) = thresholds(db, "S020")
    assert len(record.trial_log) == 20 == len(hunted.device.pulses)
    assert [e["intensity_pct_mso"] for e in record.trial_log] == [p.intensity_pct for p in hunted.device.pulses]
    assert "SIMULATED device" in record.method and "simulated subject seed 11" in record.method
    assert f"rMT = {record.value_pct_mso:g} %MSO" in text

    protocol = tmp_path / "p120.yaml"
    protocol.write_text(PROTOCOL_120_RMT)
    session_device = simulator("rapid2")
    ran = runner.invoke(app, ["run", str(protocol), "--device", f"sim://{session_device.name}", "--subject", "S020",
                              "--yes", "--no-live", "--db", str(db), "--allow-unapproved", "MT CLI test"])
    assert ran.exit_code == 0, ran.output
    from tmsctl.protocols.models import exact
    from tmsctl.protocols.thresholds import round_half_up

    expected = round_half_up(exact(record.value_pct_mso) * 120 / 100)
    assert f"{expected} %MSO (120 % rMT)" in flat(ran.output)
    assert [p.intensity_pct for p in session_device.device.pulses] == [expected] * 10


def test_the_same_seed_gives_the_same_hunt(tmp_path: Path) -> None:
    args = ("--device", "sim://m200", "--subject", "S021", "--coil", "figure8/D70 Alpha", "--simulated-subject", "5",
            "--virtual-time", "--yes")
    first = mt(*args, db=initialise_db(tmp_path / "a.db"))
    second = mt(*args, db=initialise_db(tmp_path / "b.db"))
    assert first.exit_code == second.exit_code == 0, first.output
    (a,) = thresholds(tmp_path / "a.db", "S021")
    (b,) = thresholds(tmp_path / "b.db", "S021")
    assert a.trial_log == b.trial_log  # the same MEPs at the same intensities and instants
    assert a.value_pct_mso == b.value_pct_mso and a.coil == "figure8/D70 Alpha"


# --------------------------------------------------------------------------------------------
# The technician's entries
# --------------------------------------------------------------------------------------------


def technician_answers(threshold_pct_mso: float, start: int = 50) -> list[str]:
    """What a technician sees for a subject at the threshold: the pure hunt's responses as y/n."""
    pure = run_procedure(MlPest(start_pct_mso=start), lambda x: SEEN if x >= threshold_pct_mso else NOT_SEEN)
    return ["y" if t.responded else "n" for t in pure.trials]


def test_garbled_entries_are_refused_asked_again_and_the_hunt_continues(simulator, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    sim = simulator("rapid2")
    answers = technician_answers(47.3)
    garbage = ["sixty", "65", "0,12 mV", "-30 uV", "70 V", "mep??"]
    lines = []
    for index, answer in enumerate(answers):
        if index % 4 == 1:
            lines.append(garbage[(index // 4) % len(garbage)])
        lines.append(answer if index != 7 else ("0.2 mV" if answer == "y" else "12 uV"))
    result = mt("--device", f"sim://{sim.name}", "--subject", "S022", "--coil", "figure8", "--operator", "tech2",
                "--yes", db=db, input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert text.count("MEP? (y/n or amplitude like 65uV)") == len(lines)
    assert text.count("not accepted:") == 5
    assert "was not understood" in text and "has no unit" in text and "contains a comma" in text
    assert "enter its MEP again" in text and "Traceback" not in text
    (record,) = thresholds(db, "S022")
    pure = run_procedure(MlPest(start_pct_mso=50), lambda x: SEEN if x >= 47.3 else NOT_SEEN)
    assert [e["intensity_pct_mso"] for e in record.trial_log] == [t.intensity_pct_mso for t in pure.trials]
    assert record.value_pct_mso == pure.value_pct_mso and record.operator == "tech2"
    assert [e["entry_attempts"] for e in record.trial_log] == [2 if i % 4 == 1 else 1 for i in range(20)]
    assert record.trial_log[7]["amplitude_uv"] in (200.0, 12.0)
    # Every pulse is one trial at the recorded intensity: no pulse repeated for a bad entry.
    assert [p.intensity_pct for p in sim.device.pulses] == [e["intensity_pct_mso"] for e in record.trial_log]
    assert not sim.device.is_energised and not sim.device.remote


def test_input_that_ends_mid_hunt_disarms_records_no_threshold_but_keeps_its_pulses(simulator, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    sim = simulator("rapid2")
    result = mt("--device", f"sim://{sim.name}", "--subject", "S023", "--coil", "figure8", "--yes", db=db,
                input="y\nn\n")
    assert result.exit_code == EXIT_ABORTED
    assert "the input ended" in flat(result.output) and "no threshold was recorded" in flat(result.output)
    assert len(sim.device.pulses) == 3  # the third pulse's MEP never came
    assert not sim.device.is_energised and not sim.device.remote
    assert thresholds(db, "S023") == ()
    (stopped,) = stopped_hunts(db, "S023")
    assert stopped.stop_reason == "interrupted by the operator" and stopped.pulses_delivered == 3
    assert [e["intensity_pct_mso"] for e in stopped.trial_log] == [p.intensity_pct for p in sim.device.pulses]
    assert [e["entry"] for e in stopped.trial_log[:2]] == ["seen", "not seen"]
    assert stopped.trial_log[2]["unanswered"] is True


def test_the_5_of_10_method(simulator, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    sim = simulator("rapid2")
    result = mt("--device", f"sim://{sim.name}", "--subject", "S024", "--coil", "figure8", "--method", "5of10",
                "--start", "40", "--simulated-subject", "2", "--simulated-threshold", "44", "--yes", db=db)
    assert result.exit_code == 0, result.output
    (record,) = thresholds(db, "S024")
    assert record.method.startswith("relative-frequency-5-of-10")
    assert record.value_pct_mso == float(int(record.value_pct_mso))  # whole %MSO levels
    assert len(record.trial_log) == len(sim.device.pulses) > 20


# --------------------------------------------------------------------------------------------
# Faults and refusals
# --------------------------------------------------------------------------------------------


def test_coil_unplugged_mid_hunt_stops_disarmed_with_one_clear_error(simulator, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    sim = simulator("rapid2", faults="coil_unplugged@20s")
    result = mt("--device", f"sim://{sim.name}", "--subject", "S025", "--coil", "figure8",
                "--simulated-subject", "3", "--yes", db=db)
    assert result.exit_code == EXIT_FAULT, result.output
    text = flat(result.output)
    assert "error: the threshold hunt stopped after" in text and "no threshold was recorded" in text
    assert "coil" in text.split("error:", 1)[1] and "what to do:" in text
    assert "Trials before the hunt stopped" in text and "Traceback" not in text
    assert not sim.device.is_energised
    assert all(p.t < 20.0 for p in sim.device.pulses)
    assert thresholds(db, "S025") == ()
    (stopped,) = stopped_hunts(db, "S025")  # the pulses given before the stop stay on record
    assert "kept on record as stopped hunt" in text
    assert stopped.status == "stopped" and "coil" in stopped.stop_reason.lower()
    assert stopped.pulses_delivered == len(sim.device.pulses) == len(stopped.trial_log)
    assert [e["intensity_pct_mso"] for e in stopped.trial_log] == [p.intensity_pct for p in sim.device.pulses]


def test_the_fault_plan_in_the_url_with_virtual_time(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = mt("--device", "sim://rapid2?fault=coil_unplugged@20s", "--subject", "S026", "--coil", "figure8",
                "--simulated-subject", "3", "--virtual-time", "--yes", db=db)
    assert result.exit_code == EXIT_FAULT, result.output
    assert "no threshold was recorded" in flat(result.output)
    assert thresholds(db, "S026") == ()


def test_a_threshold_out_of_range_is_not_recorded(simulator, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    sim = simulator("rapid2")
    result = mt("--device", f"sim://{sim.name}", "--subject", "S027", "--coil", "figure8",
                "--simulated-subject", "1", "--simulated-threshold", "120", "--yes", db=db)
    assert result.exit_code == EXIT_REFUSED, result.output
    assert "not recorded: the hunt did not converge" in flat(result.output)
    assert thresholds(db, "S027") == ()


def test_declining_the_confirmation_fires_nothing(simulator, tmp_path: Path) -> None:
    sim = simulator("rapid2")
    result = mt("--device", f"sim://{sim.name}", "--subject", "S028", "--coil", "figure8", db=initialise_db(tmp_path / "r.db"),
                input="n\n")
    assert result.exit_code != 0
    assert "Take remote control of" in result.output
    assert sim.device.pulses == [] and not sim.device.remote


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--device", "magstim-rapid2:///dev/ttyUSB0", "--simulated-subject", "3", "--stimulator-serial", "77"),
         "a simulated subject answers only for a simulated stimulator"),
        (("--device", "magstim-rapid2:///dev/ttyUSB0"), "--stimulator-serial"),
        (("--device", "magstim-rapid2:///dev/ttyUSB0", "--stimulator-serial", "77", "--virtual-time"),
         "virtual time runs only in-process simulators"),
        (("--device", "sim://rapid2", "--coil", "figure-8"), "coil family 'figure-8' is not known"),
        (("--device", "sim://rapid2", "--method", "staircase"), "choose one of: ml-pest, 5of10, ml-amplitude"),
        (("--device", "sim://rapid2", "--reference", "MSO"), "rMT or aMT"),
        (("--device", "sim://rapid2", "--start", "130"), "start intensity 130 %MSO"),
        (("--device", "sim://rapid2", "--simulated-threshold", "40"), "needs --simulated-subject"),
        (("--device", "sim://rapid2", "--subject", "Jane Doe"), "subject"),
        (("--device", "sim://rapid2", "--iti", "0.5"), "can reach zero"),
        (("--device", "sim://nonesuch"), "no simulator called"),
    ],
)
def test_refusals_are_one_line_with_a_hint_before_any_pulse(tmp_path: Path, args, fragment) -> None:
    # Later options win, so each case overrides the valid defaults given first.
    argv = ["--subject", "S029", "--coil", "figure8", *args, "--yes"]
    result = mt(*argv, db=initialise_db(tmp_path / "r.db"))
    assert result.exit_code in (EXIT_REFUSED, 6), result.output
    text = flat(result.output)
    assert fragment in text and "Traceback" not in text
    assert "what to do:" in text or "hint" in text or "known simulators" in text
    assert thresholds(initialise_db(tmp_path / "r.db"), "S029") == ()


# --------------------------------------------------------------------------------------------
# MEPs from EMG (issue 17)
# --------------------------------------------------------------------------------------------


def _recorded_hunt(tmp_path: Path, seed: int = 21) -> tuple[Path, float]:
    """A hunt on a simulated subject's EMG, recorded as a tmsctl-emg/1 file; returns (file, MT)."""
    import random

    from tmsctl.clinic.emg import EmgRecorder, SimulatedEmgSource
    from tmsctl.clinic.mt_session import MtHunt, make_procedure
    from tmsctl.clinic.responder import EmgResponder
    from tmsctl.core.registry import open_driver
    from tmsctl.session.controller import Controller
    from tmsctl.simulators.emg import SimulatedEmg
    from tmsctl.simulators.subject import SimulatedSubject

    clock = VirtualClock()
    name = f"mtcli-rec-{next(_names)}"
    sim = sims.create("rapid2", clock=clock, name=name)
    try:
        emg = SimulatedEmg(SimulatedSubject.sample(seed), sim.device.truth, seed=seed, start_s=clock.now())
        recorder = EmgRecorder(SimulatedEmgSource(emg, clock))
        outcome = MtHunt(Controller(open_driver(f"sim://{name}", clock), clock),
                         make_procedure("ml-pest", start_pct_mso=50), EmgResponder(recorder),
                         rng=random.Random(seed)).run()
    finally:
        sims.remove(name)
    return recorder.write(tmp_path / "sub-01_emg.json"), outcome.result.value_pct_mso


def test_mt_from_a_replayed_emg_recording_measures_and_records_every_mep(simulator, tmp_path: Path) -> None:
    recording, expected = _recorded_hunt(tmp_path)
    db = initialise_db(tmp_path / "r.db")
    hunted = simulator("rapid2")
    result = mt("--device", f"sim://{hunted.name}", "--subject", "S040", "--coil", "figure8",
                "--emg", f"file:{recording}", "--yes", db=db)
    assert result.exit_code == 0, result.output
    assert "MEP?" not in result.output
    (record,) = thresholds(db, "S040")
    assert record.value_pct_mso == expected
    assert len(record.trial_log) == len(hunted.device.pulses)
    assert all("mep" in e and e["mep"]["detail"] for e in record.trial_log)


def test_mt_with_an_emg_input_that_does_not_match_stops_disarmed_and_records_nothing(simulator, tmp_path: Path) -> None:
    recording, _ = _recorded_hunt(tmp_path)
    db = initialise_db(tmp_path / "r.db")
    hunted = simulator("rapid2")
    result = mt("--device", f"sim://{hunted.name}", "--subject", "S041", "--coil", "figure8", "--start", "60",
                "--emg", f"file:{recording}", "--yes", db=db)
    assert result.exit_code == EXIT_FAULT, result.output
    assert "recording has it at" in flat(result.output)
    assert not hunted.device.armed and len(hunted.device.pulses) == 1
    assert thresholds(db, "S041") == ()


def test_mt_refuses_an_unknown_emg_input(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = mt("--device", "sim://rapid2", "--subject", "S042", "--coil", "figure8", "--emg", "udp:1234",
                "--yes", db=db)
    assert result.exit_code == EXIT_REFUSED and "lsl:STREAM_NAME" in flat(result.output)


def test_a_simulated_subject_measured_from_its_own_emg(simulator, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    sim = simulator("rapid2")
    result = mt("--device", f"sim://{sim.name}", "--subject", "S043", "--coil", "figure8",
                "--simulated-subject", "11", "--emg", "sim", "--yes", db=db)
    assert result.exit_code == 0, result.output
    assert "MEP?" not in result.output
    (record,) = thresholds(db, "S043")
    assert "MEPs measured from its simulated EMG" in record.method
    # the truth invariant: the simulator's own count and power per pulse against the record
    assert len(record.trial_log) == len(sim.device.pulses)
    assert [e["intensity_pct_mso"] for e in record.trial_log] == [p.intensity_pct for p in sim.device.pulses]
    assert all(e["mep"]["detail"] for e in record.trial_log)


def test_the_amplitude_method_from_a_simulated_subjects_emg_is_recorded_with_its_name(simulator, tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    sim = simulator("rapid2")
    result = mt("--device", f"sim://{sim.name}", "--subject", "S046", "--coil", "figure8", "--method", "ml-amplitude",
                "--trials", "25", "--simulated-subject", "11", "--emg", "sim", "--yes", db=db)
    assert result.exit_code == 0, result.output
    (record,) = thresholds(db, "S046")
    assert record.method.startswith("ml-amplitude")
    assert "amplitude fit" in flat(result.output)
    # the truth invariant: the simulator's own count and power per pulse against the record
    assert len(record.trial_log) == len(sim.device.pulses) >= 25
    assert [e["intensity_pct_mso"] for e in record.trial_log] == [p.intensity_pct for p in sim.device.pulses]
    assert all(e["mep"]["amplitude_uv"] is not None or e["mep"]["rejection"] for e in record.trial_log)


def test_emg_sim_with_a_bare_simulator_url_and_virtual_time(tmp_path: Path) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = mt("--device", "sim://rapid2", "--subject", "S044", "--coil", "figure8", "--simulated-subject", "5",
                "--emg", "sim", "--virtual-time", "--yes", db=db)
    assert result.exit_code == 0, result.output
    (record,) = thresholds(db, "S044")
    assert record.stimulator_serial == "SIM-rapid2" and all("mep" in e for e in record.trial_log)
    assert not [n for n in ("emg-rapid2-0", "emg-rapid2-1") if sims.lookup(n)]  # the rig's simulator is gone


@pytest.mark.parametrize(("args", "fragment"), [
    (["--emg", "sim"], "needs --simulated-subject"),
    (["--emg", "file:x.json", "--simulated-subject", "3"], "give one of them"),
])
def test_emg_sim_refusals(tmp_path: Path, args, fragment) -> None:
    db = initialise_db(tmp_path / "r.db")
    result = mt("--device", "sim://rapid2", "--subject", "S045", "--coil", "figure8", *args, "--yes", db=db)
    assert result.exit_code == EXIT_REFUSED and fragment in flat(result.output)
