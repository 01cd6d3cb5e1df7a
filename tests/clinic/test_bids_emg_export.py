"""BIDS-EMG export of an MEP measurement: the recorded EMG epochs and the MEP table, validator-clean."""

from __future__ import annotations

import json

import pytest

from tmsctl.clinic.bids_emg import export_mep_emg, mep_source
from tmsctl.clinic.emg import EmgRecorder
from tmsctl.clinic.mt_session import MtHunt, make_procedure, parse_coil, threshold_record
from tmsctl.clinic.responder import EmgResponder
from tmsctl.lab.bids_dataset import validate
from tmsctl.lab.bids_nibs import ExportRefused
from tmsctl.lab.bids_tsv import read_tsv
from tmsctl.records import Records


@pytest.fixture
def measured(emg_bench, tmp_path):
    """A threshold hunt from a simulated subject's EMG, recorded, with the EMG it was measured from."""
    bench = emg_bench(seed=21)
    recorder = EmgRecorder(bench.source)
    controller = bench.controller()
    outcome = MtHunt(controller, make_procedure("ml-pest", start_pct_mso=50), EmgResponder(recorder),
                     rng=bench.rng()).run()
    recording = recorder.write(tmp_path / "hunt_emg.json")
    records = Records(tmp_path / "r.db")
    records.ensure_subject("S1")
    stored = records.record_motor_threshold(threshold_record(
        outcome, subject_id="S1", coil=parse_coil("figure8"), reference="rMT", operator="t",
        stimulator_serial="SIM-rapid2"))
    yield bench, outcome, records, stored, recording
    records.close()


def test_a_threshold_hunts_emg_and_meps_export_validator_clean(measured, tmp_path) -> None:
    bench, _outcome, records, stored, recording = measured
    truth = bench.sim.device.truth()  # the simulator's own pulses against the record
    assert [p.intensity_pct for p in truth] == [e["intensity_pct_mso"] for e in stored.trial_log]
    source = mep_source(records, threshold_id=stored.threshold_id)
    with pytest.raises(ExportRefused, match="simulator"):
        export_mep_emg(records, source, recording, bids_root=tmp_path / "bids", sub="01", ses=None, task="mt")
    result = export_mep_emg(records, source, recording, bids_root=tmp_path / "bids", sub="01", ses=None, task="mt",
                            allow_simulated=True, authors=("A. Tester", "B. Operator"), license="CC0")

    issues = validate(tmp_path / "bids")
    assert [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"] == [], issues
    assert not (tmp_path / "bids" / ".bidsignore").exists()  # all of it is in the released specification

    # every delivered pulse measured from EMG is one event, in order, with the MEP the hunt measured
    _, rows = read_tsv(result.events_tsv.read_text())
    log = list(stored.trial_log)
    assert result.epochs == len(rows) == len(log) == len(truth) and result.pulses_without_emg == 0
    assert [int(r["pulse"]) for r in rows] == [e["pulse"] for e in log]
    assert [float(r["intensity"]) for r in rows] == [p.intensity_pct for p in truth]
    for row, entry in zip(rows, log):
        amplitude = entry["mep"]["amplitude_uv"]
        assert (row["mep_amplitude"] == "n/a") if amplitude is None else float(row["mep_amplitude"]) == pytest.approx(amplitude)
        assert row["mep_rejection"] == (entry["mep"]["rejection"] or "n/a")

    # the EDF holds the epochs, and each event's onset falls on its pulse: the MEP is where the detector saw it
    from edfio import read_edf

    edf = read_edf(result.edf)
    (signal,) = edf.signals
    sidecar = json.loads(result.edf.with_suffix(".json").read_text())
    rate, epoch = sidecar["SamplingFrequency"], sidecar["EpochLength"]
    assert signal.sampling_frequency == rate and len(signal.data) == round(len(rows) * epoch * rate)
    for row in rows:
        if row["mep_amplitude"] == "n/a":
            continue
        start = round((float(row["onset"]) + 0.015) * rate)
        window = signal.data[start:round((float(row["onset"]) + 0.050) * rate)]
        assert float(window.max() - window.min()) == pytest.approx(float(row["mep_amplitude"]), rel=0.02, abs=2.0)
    assert sidecar["RecordingType"] == "epoched" and sidecar["Simulated"] is True
    channels = read_tsv(result.edf.with_name(result.edf.name.replace("_emg.edf", "_channels.tsv")).read_text())[1]
    assert (channels[0]["type"], channels[0]["units"]) == ("EMG", "uV")


def test_a_recording_from_another_measurement_is_refused(measured, emg_bench, tmp_path) -> None:
    _bench, _outcome, records, stored, _ = measured
    other = emg_bench(seed=5)
    recorder = EmgRecorder(other.source)
    MtHunt(other.controller(), make_procedure("ml-pest", start_pct_mso=50), EmgResponder(recorder), rng=other.rng()).run()
    wrong = recorder.write(tmp_path / "other_emg.json")
    with pytest.raises(ExportRefused, match="does not belong"):
        export_mep_emg(records, mep_source(records, threshold_id=stored.threshold_id), wrong,
                       bids_root=tmp_path / "b", sub="01", ses=None, task="mt", allow_simulated=True)
    assert not (tmp_path / "b").exists()


def test_the_cli_exports_a_measurement_with_its_recording(measured, tmp_path) -> None:
    from typer.testing import CliRunner

    from tmsctl.cli.export import app

    _, _, _records, stored, recording = measured
    args = ["emg", str(recording), "--threshold", str(stored.threshold_id), "--bids-root", str(tmp_path / "bids"),
            "--sub", "01", "--task", "mt", "--db", str(tmp_path / "r.db")]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 3 and "simulator" in refused.output, refused.output
    done = CliRunner().invoke(app, [*args, "--allow-simulated"])
    assert done.exit_code == 0, done.output
    assert f"{len(stored.trial_log)} epochs, 0 pulses without EMG" in done.output
    assert (tmp_path / "bids" / "sub-01" / "emg" / "sub-01_task-mt_emg.edf").exists()
