"""BIDS-NIBS export: structure checked against the pinned draft's (nibs-bids-6.3) worked examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tmsctl.cli.export import app as export_app
from tmsctl.core.errors import InvalidArgument
from tmsctl.lab.bids_dataset import validate
from tmsctl.lab.bids_nibs import SPEC_VERSION, ExportRefused, export_session, read_tsv
from tmsctl.protocols.canonical import content_hash
from tmsctl.protocols.loader import load_protocol_text
from tmsctl.records import (
    DeliveryKind,
    DeliveryPlan,
    DeliveryResult,
    Records,
    SessionPlan,
    ThresholdUsed,
    TriggerSource,
)

EXAMPLES = Path(__file__).parent / "data" / "nibs-bids-6.3"
LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
VOCABULARY = {
    "nibs_type": {"TMS", "tES", "TUS", "PNS"},
    "stimulus_shape": {"Monophasic", "Biphasic", "Halfsine", "Rectangle", "Sinusoid", "Noise", "Custom", "n/a"},
    "first_inflection": {"rising", "descending", "n/a"},
    "current_direction": {"cl", "co", "cl-co", "co-cl", "other", "n/a"},
}
REFERENCES = {"rMT", "aMT", "1mV", "e-field", "absolute"}

SINGLE = """\
schema_version: 1
id: sp-hotspot
title: Single pulses at the hot spot
coil: {family: figure8, model: D70}
target: {method: motor_hotspot, muscle: FDI}
hemisphere: left
stimulus: {waveform: monophasic, current_direction: normal}
intensity: {reference: rMT, scaling_pct: 120}
pattern: {kind: single_pulse, pulses: 5, interval_s: 5}
"""
PAIRED = """\
schema_version: 1
id: sici-3ms
title: SICI 3 ms
coil: {family: figure8}
target: {method: motor_hotspot, muscle: FDI}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 120}
pattern:
  kind: paired_pulse
  conditioning_intensity: {reference: rMT, scaling_pct: 80}
  inter_stimulus_interval_ms: 3
  pairs: 3
  pair_interval_s: 5
"""
RAMPED = """\
schema_version: 1
id: ramped-10hz
title: Ramped 10 Hz
coil: {family: figure8}
target: {method: mni, x_mm: -38, y_mm: 44, z_mm: 26}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 120, ramp: {first_trains: 2, start_pct_of_target: 80}}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 20, inter_train_interval_s: 10, trains: 4}
"""


def example_tsv(name: str) -> tuple[list[str], list[dict[str, str]]]:
    return read_tsv((EXAMPLES / name).read_text())


def record(records: Records, text: str, *, model: str, intensities, threshold=None, simulated=False,
           kind=DeliveryKind.TRAIN, finish=True, paired=None, subject="S201", onsets=None, cut_short=None):
    """A session as the runner records it; ``onsets`` are the actual onsets (default 3.5 + 10 s × index),
    ``cut_short`` = (delivered, uncertain) of the last train, ended by a fault."""
    protocol = load_protocol_text(text)
    schedule_pulses = protocol.plan().pulses_per_train or 1
    records.ensure_subject(subject)
    session = records.create_session(SessionPlan(
        subject_id=subject, protocol_id=protocol.id, protocol_hash=content_hash(protocol), protocol_text=text,
        device_url="sim://x" if simulated else "magventure-magpro:///dev/ttyUSB0", device_model=model,
        simulated=simulated, planned_deliveries=len(intensities), planned_pulses=len(intensities) * schedule_pulses,
        device_firmware="7.1", coil=protocol.coil.family, thresholds_used=(threshold,) if threshold else (),
    ))
    sid = session.session_id
    records.start_session(sid, operator="tester", offset_s=0.0)
    for index, intensity in enumerate(intensities):
        extra = {}
        if paired:
            extra = {"second_intensity_pct_mso": paired[1], "ipi_ms": 3.0}
            intensity = paired[0]
        records.begin_delivery(DeliveryPlan(sid, index, kind, 10.0 * index, schedule_pulses if not paired else 2,
                                            intensity, TriggerSource.SERIAL, **extra))
        onset = onsets[index] if onsets is not None else 3.5 + 10.0 * index
        if cut_short is not None and index == len(intensities) - 1:
            records.finish_delivery(DeliveryResult(sid, index, cut_short[0], False, onset_offset_s=onset,
                                                   pulses_uncertain=cut_short[1], evidence="fault mid-train"))
        elif finish or index < len(intensities) - 1:
            records.finish_delivery(DeliveryResult(sid, index, schedule_pulses if not paired else 2, True,
                                                   onset_offset_s=onset))
    if finish and cut_short is None:
        records.complete_session(sid)
    return sid


@pytest.fixture
def records(tmp_path):
    with Records(tmp_path / "records.db") as rec:
        yield rec


def exported(result) -> dict[str, object]:
    nibs_header, nibs_rows = read_tsv(result.nibs_tsv.read_text())
    events_header, events_rows = read_tsv(result.events_tsv.read_text())
    return {
        "nibs_header": nibs_header, "nibs_rows": nibs_rows, "events_header": events_header, "events_rows": events_rows,
        "sidecar": json.loads(result.nibs_json.read_text()),
        "events_sidecar": json.loads(result.events_tsv.with_name(result.events_tsv.name.replace(".tsv", ".json")).read_text()),
        "markers": read_tsv(result.nibs_tsv.with_name(result.nibs_tsv.name.replace("_nibs.tsv", "_markers.tsv")).read_text()),
    }


def check_structure(out: dict) -> None:
    """What every export must satisfy: vocabularies, links between files, described columns."""
    sidecar = out["sidecar"]
    ids = {row["nibs_event_id"] for row in out["nibs_rows"]}
    assert len(ids) == len(out["nibs_rows"])  # nibs_event_id is unique
    for row in out["nibs_rows"]:
        for column, allowed in VOCABULARY.items():
            assert row[column] in allowed, (column, row[column])
        assert row["stimulator_id"] == sidecar["StimulatorSet"]["StimulatorID"]
        assert row["nibs_element_id"] in {e["ElementID"] for e in sidecar["ElementSet"]}
        for ref in row["intensity_reference"].split("|"):
            assert ref in REFERENCES
            assert ref == "absolute" or ref in {i["IntensityID"] for i in sidecar["IntensitySet"]}
    for column in out["nibs_header"]:
        assert {"LongName", "Description"} <= set(sidecar[column]), column
    positions = {row["nibs_position_id"] for row in out["markers"][1]}
    for row in out["events_rows"]:
        assert row["nibs_event_id"] in ids and row["nibs_position_id"] in positions
        assert float(row["onset"]) >= 0
    for column in out["events_header"]:
        assert "Description" in out["events_sidecar"][column], column
    (generated,) = [g for g in sidecar["GeneratedBy"] if g["Name"] == "tmsctl"]
    assert SPEC_VERSION in generated["Description"] and sidecar["NIBSBIDSVersion"] == SPEC_VERSION


def test_an_itbs_session_matches_the_pinned_itbs_example(records, tmp_path) -> None:
    text = (LIBRARY / "itbs-600.yaml").read_text()
    sid = record(records, text, model="magventure-magpro", intensities=[32] * 20, threshold=ThresholdUsed("aMT", 40.0))
    result = export_session(records, sid, bids_root=tmp_path / "bids", sub="001", ses=None, task="rest", acq="itbs")
    assert result.nibs_tsv.name == "sub-001_task-rest_acq-itbs_nibs.tsv"  # the example's own file name
    out = exported(result)
    check_structure(out)

    example_header, (example_row,) = example_tsv("sub-001_task-rest_acq-itbs_nibs.tsv")
    # One row for the whole protocol: the repetition of trains is the row's pattern3, as in the example.
    assert out["nibs_header"] == example_header
    (row,) = out["nibs_rows"]
    for column in ("nibs_type", "pattern1_count", "pattern1_interval", "pattern2_count", "pattern2_interval",
                   "pattern3_count", "pattern3_interval", "intensity_reference", "intensity_scaling",
                   "stimulus_intensity"):
        assert float(row[column]) == float(example_row[column]) if column.startswith(("pattern", "stimulus_int", "intensity_s")) \
            else row[column] == example_row[column], column

    events_header, (example_event,) = example_tsv("sub-001_task-rest_acq-itbs_events.tsv")
    assert out["events_header"][: len(events_header)] == events_header
    (event,) = out["events_rows"]  # one event, as the example writes it, not one per train
    assert float(event["onset"]) == pytest.approx(3.5)
    assert float(event["duration"]) == pytest.approx(float(example_event["duration"]))  # 192 s
    assert (event["nibs_event_id"], event["pulses_delivered"], event["pulses_uncertain"], event["delivery_state"]) == (
        row["nibs_event_id"], "600", "0", "completed")

    example = json.loads((EXAMPLES / "sub-001_task-rest_acq-itbs_nibs.json").read_text())
    sidecar = out["sidecar"]
    assert set(example["StimulatorSet"]) <= set(sidecar["StimulatorSet"])
    assert {"ElementID", "ElementType", "ModelName", "SerialNumber", "CoilShape"} <= set(sidecar["ElementSet"][0])
    assert [set(i) for i in sidecar["IntensitySet"]] == [set(i) for i in example["IntensitySet"]]
    assert (sidecar["IntensitySet"][0]["IntensityID"], sidecar["IntensitySet"][0]["Value"],
            sidecar["IntensitySet"][0]["Type"]) == ("aMT", 40.0, "active_motor")
    for column in out["nibs_header"]:
        assert sidecar[column].get("Units") == example[column].get("Units"), column
    example_events = json.loads((EXAMPLES / "sub-001_task-rest_acq-itbs_events.json").read_text())
    for column in events_header:
        assert set(example_events[column]) <= set(out["events_sidecar"][column]) | {"Levels"}
        # the example writes "second"; BIDS (and bids-validator) want the SI symbol
        assert out["events_sidecar"][column].get("Units") == ("s" if example_events[column].get("Units") else None)


def test_an_itbs_session_cut_short_by_a_fault_keeps_the_run_and_the_cut_train_apart(records, tmp_path) -> None:
    text = (LIBRARY / "itbs-600.yaml").read_text()
    sid = record(records, text, model="magventure-magpro", intensities=[32] * 7, threshold=ThresholdUsed("aMT", 40.0),
                 cut_short=(12, 3))
    out = exported(export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="itbs"))
    check_structure(out)
    sets = {r["nibs_event_id"]: r for r in out["nibs_rows"]}
    assert (sets["itbs-600-6trains"]["pattern3_count"], sets["itbs-600-6trains"]["pattern3_interval"]) == ("6", "10000")
    assert (sets["itbs-600-1train"]["pattern3_count"], sets["itbs-600-1train"]["pattern3_interval"]) == ("n/a", "n/a")
    assert [(r["nibs_event_id"], r["onset"], r["duration"], r["pulses_delivered"], r["pulses_uncertain"],
             r["delivery_state"]) for r in out["events_rows"]] == [
        ("itbs-600-6trains", "3.5", "52", "180", "0", "completed"),
        ("itbs-600-1train", "63.5", "2", "12", "3", "stopped"),
    ]


def test_a_train_off_the_protocols_grid_starts_a_new_event(records, tmp_path) -> None:
    text = (LIBRARY / "itbs-600.yaml").read_text()
    onsets = [3.5 + 10 * i for i in range(6)]
    onsets[3] += 0.004  # within the tolerance: the run goes on
    onsets[4] += 0.020  # 20 ms late: the timeline would misplace it, so a new run begins
    onsets[5] += 0.020
    sid = record(records, text, model="magventure-magpro", intensities=[32] * 6, onsets=onsets,
                 threshold=ThresholdUsed("aMT", 40.0))
    out = exported(export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="itbs"))
    check_structure(out)
    assert [(r["nibs_event_id"], r["onset"]) for r in out["events_rows"]] == [
        ("itbs-600-4trains", "3.5"), ("itbs-600-2trains", "43.52")]


def test_a_single_pulse_session_has_the_examples_single_pulse_columns(records, tmp_path) -> None:
    sid = record(records, SINGLE, model="magstim-200", intensities=[60] * 5, kind=DeliveryKind.SINGLE,
                 threshold=ThresholdUsed("rMT", 50.0))
    out = exported(export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses="01", task="sp"))
    check_structure(out)
    example_header, _ = example_tsv("sub-001_task-rest_acq-pre_nibs.tsv")
    assert out["nibs_header"] == example_header
    (row,) = out["nibs_rows"]
    assert (row["stimulus_shape"], row["first_inflection"], row["intensity_reference"], row["intensity_scaling"]) == (
        "Monophasic", "rising", "rMT", "1.2")
    assert [r["duration"] for r in out["events_rows"]] == ["n/a"] * 5
    assert out["markers"][1][0]["position_label"] == "M1_FDI"


def test_paired_pulses_give_per_pulse_intensities_with_a_declared_delimiter(records, tmp_path) -> None:
    sid = record(records, PAIRED, model="magstim-bistim", intensities=[0] * 3, kind=DeliveryKind.PAIRED,
                 paired=(40, 60), threshold=ThresholdUsed("rMT", 50.0))
    out = exported(export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="sici"))
    check_structure(out)
    (row,) = out["nibs_rows"]
    assert (row["stimulus_intensity"], row["pattern1_count"], row["pattern1_interval"], row["pattern1_intensity"]) == (
        "n/a", "2", "3", "40|60")
    assert (row["intensity_reference"], row["intensity_scaling"]) == ("rMT|rMT", "0.8|1.2")
    assert out["sidecar"]["pattern1_intensity"]["Delimiter"] == "|"


def test_a_ramp_makes_one_parameter_set_per_intensity(records, tmp_path) -> None:
    sid = record(records, RAMPED, model="magstim-rapid2", intensities=[48, 54, 60, 60],
                 threshold=ThresholdUsed("rMT", 50.0), onsets=[12.0 * i for i in range(4)])
    out = exported(export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="rtms"))
    check_structure(out)
    scalings = {row["stimulus_intensity"]: row["intensity_scaling"] for row in out["nibs_rows"]}
    assert scalings == {"48": "0.96", "54": "1.08", "60": "1.2"}
    assert [(r["nibs_event_id"], r["duration"]) for r in out["events_rows"]] == [
        ("ramped-10hz-48pct-1train", "2"), ("ramped-10hz-54pct-1train", "2"), ("ramped-10hz-60pct-2trains", "14")]
    assert {r["nibs_event_id"]: r["pattern2_count"] for r in out["nibs_rows"]}["ramped-10hz-60pct-2trains"] == "2"
    marker = out["markers"][1][0]
    assert (marker["position_x"], marker["position_y"], marker["position_z"]) == ("-38", "44", "26")


def test_an_interrupted_train_is_exported_as_recorded_not_as_planned(records, tmp_path) -> None:
    sid = record(records, RAMPED, model="magstim-rapid2", intensities=[48, 54], finish=False,
                 threshold=ThresholdUsed("rMT", 50.0))
    records.record_progress(sid, 1, pulses_delivered=7, onset_offset_s=13.5)
    out = exported(export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="rtms"))
    assert [(r["pulses_delivered"], r["delivery_state"]) for r in out["events_rows"]] == [
        ("20", "completed"), ("7", "in_progress")]


def test_a_threshold_the_session_did_not_record_is_not_invented(records, tmp_path) -> None:
    sid = record(records, RAMPED, model="magstim-rapid2", intensities=[48, 54, 60, 60])
    out = exported(export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="rtms"))
    (entry,) = out["sidecar"]["IntensitySet"]
    assert entry["IntensityID"] == "rMT" and entry["Value"] == "n/a"


def test_simulated_sessions_need_consent_and_say_what_they_are(records, tmp_path) -> None:
    sid = record(records, SINGLE, model="magstim-200", intensities=[60] * 5, kind=DeliveryKind.SINGLE, simulated=True)
    with pytest.raises(ExportRefused, match="simulator"):
        export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="sp")
    assert not (tmp_path / "b").exists()
    out = exported(export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="sp",
                                  allow_simulated=True))
    assert out["sidecar"]["Simulated"] is True and out["sidecar"]["NIBSDescription"].startswith("SIMULATED")


def test_labels_files_and_drafts_are_checked(records, tmp_path) -> None:
    sid = record(records, SINGLE, model="magstim-200", intensities=[60] * 5, kind=DeliveryKind.SINGLE)
    with pytest.raises(InvalidArgument, match="letters and digits"):
        export_session(records, sid, bids_root=tmp_path / "b", sub="S-01", ses=None, task="sp")
    with pytest.raises(InvalidArgument, match=r"nibs-bids-6.3"):
        export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="sp", spec="nibs-bids-6.2")
    export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="sp")
    with pytest.raises(ExportRefused, match="exists"):
        export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="sp")
    result = export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="sp", overwrite=True)
    scans = read_tsv((tmp_path / "b" / "sub-01" / "sub-01_scans.tsv").read_text())[1]
    assert [r["filename"] for r in scans] == ["nibs/sub-01_task-sp_nibs.tsv"]
    description = json.loads((tmp_path / "b" / "dataset_description.json").read_text())
    assert len(description["GeneratedBy"]) == 1 and description["BIDSVersion"] == "1.11.0"
    assert result.spec == SPEC_VERSION


def test_the_cli_exports_a_session_run_through_the_api(tms_simulator, tms_clock, tmp_path) -> None:
    from tmsctl.lab import api

    protocol = tmp_path / "single.yaml"
    protocol.write_text(SINGLE.replace("magstim", "x"))
    db = tmp_path / "records.db"
    with api.open(tms_simulator("m200").url, clock=tms_clock, db=db) as stim:
        result = stim.run(protocol, subject="S202", mt=50, allow_unapproved="pilot", log_dir=tmp_path / "logs")
    assert result.outcome.value == "completed", result.reason
    runner = CliRunner()
    args = ["bids", result.session_id, "--bids-root", str(tmp_path / "bids"), "--sub", "202", "--ses", "01",
            "--task", "hotspot", "--db", str(db), "--log-dir", str(tmp_path / "logs")]
    refused = runner.invoke(export_app, args)
    assert refused.exit_code == 3 and "simulator" in refused.output, refused.output
    done = runner.invoke(export_app, [*args, "--allow-simulated"])
    assert done.exit_code == 0, done.output
    nibs = tmp_path / "bids" / "sub-202" / "ses-01" / "nibs"
    _header, rows = read_tsv((nibs / "sub-202_ses-01_task-hotspot_events.tsv").read_text())
    assert len(rows) == 5 and {r["pulses_delivered"] for r in rows} == {"1"}
    sidecar = json.loads((nibs / "sub-202_ses-01_task-hotspot_nibs.json").read_text())
    assert sidecar["StimulatorSet"]["ManufacturerModelName"] == "magstim-200"


# -- the real validator ------------------------------------------------------------------------------------

RTMS = """\
schema_version: 1
id: validator-10hz
title: Short 10 Hz for the validator
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 20, inter_train_interval_s: 6, trains: 6}
"""
# Codes the validator may still raise on a tmsctl export: recommendations only the lab can meet
# (HED tags, source datasets, the software that presented stimuli).
ACCEPTED_WARNINGS = {"JSON_KEY_RECOMMENDED", "SIDECAR_KEY_RECOMMENDED"}


def bids_validator(root: Path) -> list[dict]:
    return validate(root)


def errors_of(issues: list[dict]) -> list[tuple[str, str | None]]:
    return [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]


def run_session(tmp_path: Path, sim, clock, text: str, subject: str):
    from tmsctl.lab import api

    path = tmp_path / f"{subject}.yaml"
    path.write_text(text)
    with api.open(sim.url, clock=clock, db=tmp_path / "tmsctl-records.db") as stim:
        return stim.run(path, subject=subject, mt=50, allow_unapproved="validator test", log_dir=tmp_path / "logs")


def test_exports_of_recorded_sessions_pass_the_bids_validator(tmp_path, tms_simulator, tms_clock, tms_dose_truth) -> None:
    completed_sim = tms_simulator("rapid2")
    completed = run_session(tmp_path, completed_sim, tms_clock, RTMS, "S301")
    assert completed.outcome.value == "completed", completed.reason
    tms_dose_truth(completed_sim, completed.session_id)
    faulted_sim = tms_simulator("rapid2", faults="coil_unplugged@20s")  # the coil comes off in train 3
    faulted = run_session(tmp_path, faulted_sim, tms_clock, RTMS, "S302")
    assert faulted.outcome.value == "faulted", faulted.reason
    tms_dose_truth(faulted_sim, faulted.session_id)
    bids = tmp_path / "bids"
    with Records(tmp_path / "tmsctl-records.db") as records:
        one = export_session(records, completed.session_id, bids_root=bids, sub="301", ses="01", task="rtms",
                             allow_simulated=True, authors=("A. Tester", "B. Operator"), license="CC0")
        two = export_session(records, faulted.session_id, bids_root=bids, sub="302", ses="01", task="rtms",
                             allow_simulated=True)

    issues = bids_validator(bids)
    assert errors_of(issues) == [], json.dumps(issues, indent=1)[:4000]
    warnings = {i["code"] for i in issues if i["severity"] == "warning"}
    assert warnings <= ACCEPTED_WARNINGS, warnings

    # the completed session is one event (6 trains); the faulted one keeps its run and its cut train apart
    (event,) = read_tsv(one.events_tsv.read_text())[1]
    assert (event["pulses_delivered"], event["delivery_state"]) == ("120", "completed")
    cut = read_tsv(two.events_tsv.read_text())[1]
    assert [r["delivery_state"] for r in cut] == ["completed", "stopped"]
    assert int(cut[1]["pulses_uncertain"]) > 0
    assert (bids / ".bidsignore").read_text().splitlines()[-1] == "**/nibs"
    assert read_tsv((bids / "participants.tsv").read_text())[1] == [{"participant_id": "sub-301"},
                                                                    {"participant_id": "sub-302"}]
    description = json.loads((bids / "dataset_description.json").read_text())
    assert (description["Authors"], description["License"]) == (["A. Tester", "B. Operator"], "CC0")


def test_the_validator_sees_what_the_export_would_get_wrong(records, tmp_path) -> None:
    """The validator check can fail: without the .bidsignore the draft's files are errors."""
    sid = record(records, SINGLE, model="magstim-200", intensities=[60] * 5, kind=DeliveryKind.SINGLE)
    export_session(records, sid, bids_root=tmp_path / "b", sub="01", ses=None, task="sp")
    assert errors_of(bids_validator(tmp_path / "b")) == []
    (tmp_path / "b" / ".bidsignore").unlink()
    assert ("NOT_INCLUDED", "/sub-01/nibs/") in errors_of(bids_validator(tmp_path / "b"))
