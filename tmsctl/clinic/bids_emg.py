"""Export the EMG of an MEP measurement, and its MEP table, to BIDS-EMG.

Which conventions: the ``emg`` datatype of the released BIDS specification (1.11; the EMG
extension BEP042 was merged into it, and ``bids-validator-deno`` 3.x validates it), for the
recording; and, for how stimulation and its evoked responses meet, the pinned NIBS draft
(``nibs-bids-6.3``, see :mod:`tmsctl.lab.bids_nibs`): "the evoked response (an EMG MEP)
belongs to the concurrent recording modality", so each MEP is a row of the EMG recording's
``*_events.tsv``. Nothing written here needs ``.bidsignore``: every file is in the released
specification.

What is written, for ``sub-<sub>[_ses-<ses>]_task-<task>[_acq-<acq>][_run-<run>]`` in
``<root>/sub-<sub>/[ses-<ses>/]emg/``:

``*_emg.edf``
    The samples tmsctl kept: one epoch around each pulse (``RecordingType`` ``epoched``), one EDF
    data record per epoch, in µV, one channel (the muscle). tmsctl keeps only these windows
    (:class:`tmsctl.clinic.emg.EmgRecorder`), never a continuous recording.
``*_emg.json`` / ``*_channels.tsv``
    The required EMG metadata: what tmsctl knows (rate, channel, muscle, epoch length); what it does
    not (electrode placement and reference, amplifier, filters, mains frequency) is ``n/a``.
``*_events.tsv`` / ``.json``
    One row per pulse with an epoch in the file: its onset in the file, intensity, and the MEP as
    tmsctl measured it (peak-to-peak amplitude, latency, background, the rejection and its reason).

The recording must be the one the measurement was made from (a ``tmsctl-emg/1`` file): its pulses
are matched to the measurement's trial log (count, order, intensity, spacing), else nothing is
written. ``edfio`` (the ``[bids]`` extra) writes the EDF.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tmsctl.core.errors import InvalidArgument
from tmsctl.lab.bids_dataset import add_scan, generated_by, subject_folder, update_dataset
from tmsctl.lab.bids_nibs import ExportRefused, check_label
from tmsctl.lab.bids_tsv import NA, write_tsv

__all__ = ["EMG_CONVENTION", "EmgExportResult", "MepSource", "export_mep_emg", "mep_source"]

EMG_CONVENTION = "BIDS 1.11 emg datatype (BEP042, released); MEPs as EMG events per the NIBS draft nibs-bids-6.3"
# The recording's pulse times and the trial log's are on one clock; the log rounds to 0.1 ms.
PULSE_MATCH_TOLERANCE_S = 0.002


@dataclass(frozen=True)
class MepSource:
    """What the exporter reads of a recorded MEP measurement (a threshold hunt or an MEP measurement)."""

    label: str  # "threshold #3", "MEP measurement #2"
    kind: str  # "motor threshold", "io_curve", "hotspot", "mt_stopped"
    subject_id: str
    stimulator: str
    coil: str
    muscle: str | None
    measured_at: datetime
    trial_log: tuple[Mapping[str, Any], ...]
    summary: str
    simulated: bool


def mep_source(records: Any, *, threshold_id: int | None = None, measurement_id: int | None = None) -> MepSource:
    """The recorded threshold or MEP measurement to export (exactly one of the two ids)."""
    if (threshold_id is None) == (measurement_id is None):
        raise InvalidArgument("name one measurement: a threshold id or an MEP measurement id")
    if measurement_id is not None:
        from tmsctl.records.meps import MepRecords

        m = MepRecords(records).get(measurement_id)
        if m is None:
            raise InvalidArgument(f"there is no MEP measurement #{measurement_id}", hint="see `tmsctl records`")
        status = "completed" if m.status == "completed" else f"stopped: {m.stop_reason}"
        return MepSource(f"MEP measurement #{measurement_id}", m.kind, m.subject_id,
                         f"{m.stimulator_model} serial {m.stimulator_serial}", m.coil, m.muscle, m.measured_at,
                         m.trial_log, f"{m.kind}, {status}, {m.pulses_delivered} pulses; result "
                         f"{json.dumps(m.result, sort_keys=True) if m.result is not None else 'n/a'}",
                         m.stimulator_serial.startswith("SIM-"))
    for subject in records.subjects():
        for t in records.motor_thresholds(subject.subject_id):
            if t.threshold_id == threshold_id:
                ref = getattr(t.reference, "value", t.reference)
                muscles = {e["mep"].get("muscle") for e in t.trial_log if isinstance(e.get("mep"), Mapping)} - {None}
                return MepSource(f"threshold #{threshold_id}", "motor threshold", t.subject_id,
                                 f"{t.stimulator_model} serial {t.stimulator_serial}", t.coil,
                                 muscles.pop() if len(muscles) == 1 else None, t.measured_at, t.trial_log,
                                 f"{ref} {t.value_pct_mso:g} %MSO by {t.method}",
                                 t.stimulator_serial.startswith("SIM-") or "SIMULATED" in t.method)
    raise InvalidArgument(f"there is no motor threshold #{threshold_id}", hint="see `tmsctl records`")


@dataclass(frozen=True)
class EmgExportResult:
    files: tuple[Path, ...]
    edf: Path
    events_tsv: Path
    epochs: int
    pulses_without_emg: int


def _epochs(recording: Any, onsets: Sequence[float]) -> tuple[float, float, list[int | None]]:
    """(before s, after s, first-sample index per pulse or None): the common epoch the recording covers.

    Each pulse's epoch is the run of contiguous samples around it; the exported epoch is the
    median coverage (whole samples), and a pulse covered less is left out of the EDF."""
    import numpy as np

    times = np.asarray(recording.times_s)
    step = 1.0 / recording.sample_rate_hz
    breaks = np.flatnonzero(np.diff(times) > 1.5 * step)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(times) - 1]))
    cover: list[tuple[int, int] | None] = []
    for onset in onsets:
        run = int(np.searchsorted(times[starts], onset, side="right")) - 1
        if run < 0 or times[ends[run]] < onset:
            cover.append(None)
            continue
        cover.append((int(starts[run]), int(ends[run])))
    known = [(onset - times[c[0]], times[c[1]] - onset) for onset, c in zip(onsets, cover) if c is not None]
    if not known:
        return 0.0, 0.0, [None] * len(onsets)
    before = float(np.floor(np.median([b for b, _ in known]) / step + 1e-6) * step)
    after = float(np.floor(np.median([a for _, a in known]) / step + 1e-6) * step)
    n = round((before + after) / step)
    firsts: list[int | None] = []
    for onset, c in zip(onsets, cover):
        if c is None:
            firsts.append(None)
            continue
        first = int(np.searchsorted(times, onset - before - step / 2))
        firsts.append(first if first >= c[0] and first + n - 1 <= c[1] else None)
    return before, after, firsts


def _match(source: MepSource, recording: Any) -> list[Mapping[str, Any]]:
    """The trial-log entries measured from EMG, one per recorded pulse, after checking they belong together."""
    measured = [e for e in source.trial_log if isinstance(e.get("mep"), Mapping)]
    pulses = recording.pulses
    refuse = f"the EMG recording does not belong to {source.label}"
    if len(measured) != len(pulses):
        raise ExportRefused(f"{refuse}: it holds {len(pulses)} pulses, the measurement measured {len(measured)} MEPs",
                            hint="give the recording written during this measurement")
    for n, (entry, (onset, intensity)) in enumerate(zip(measured, pulses), start=1):
        if round(float(entry["intensity_pct_mso"])) != intensity:
            raise ExportRefused(f"{refuse}: pulse {n} is {intensity} %MSO in the recording, "
                                f"{entry['intensity_pct_mso']} in the measurement")
        spacing = (onset - pulses[0][0]) - (float(entry["fired_offset_s"]) - float(measured[0]["fired_offset_s"]))
        if abs(spacing) > PULSE_MATCH_TOLERANCE_S:
            raise ExportRefused(f"{refuse}: pulse {n} lies {spacing * 1e3:+.1f} ms off the measurement's timing")
    return measured


def _edf(path: Path, recording: Any, firsts: Sequence[int | None], n: int, started: datetime, channel: str) -> int:
    try:
        import numpy as np
        from edfio import Edf, EdfSignal, Recording
    except ImportError:
        raise InvalidArgument("writing EDF needs the edfio package", hint="pip install 'tmsctl[bids]'") from None
    values = np.asarray(recording.values_uv, dtype=np.float64)
    data = np.concatenate([values[f:f + n] for f in firsts if f is not None])
    low, high = float(data.min()), float(data.max())
    if high - low < 1e-3:  # a flat epoch set: EDF needs a non-empty physical range
        low, high = low - 1.0, high + 1.0
    signal = EdfSignal(data, recording.sample_rate_hz, label=f"EMG {channel}"[:16], physical_dimension="uV",
                       physical_range=(low, high), transducer_type="EMG electrodes")
    edf = Edf([signal], data_record_duration=n / recording.sample_rate_hz,
              recording=Recording(startdate=started.date()), starttime=started.time().replace(microsecond=0))
    edf.write(path)
    return sum(f is not None for f in firsts)


EVENTS_SIDECAR: dict[str, Any] = {
    "onset": {"LongName": "Pulse onset", "Units": "s",
              "Description": "The TMS pulse, in seconds from the start of the EMG file (epochs laid end to end)."},
    "duration": {"LongName": "Event duration", "Units": "s", "Description": "n/a: a pulse is instantaneous."},
    "trial_type": {"LongName": "Event type", "Levels": {"tms_pulse": "A TMS pulse whose MEP was measured"},
                   "Description": "What happened at onset."},
    "pulse": {"LongName": "Pulse number", "Description": "1-based number of the pulse in the measurement (every "
              "delivered pulse counts, rejected ones too)."},
    "pulse_time": {"LongName": "Pulse time", "Units": "s",
                   "Description": "When the pulse was fired, in seconds from the start of the measurement."},
    "intensity": {"LongName": "Stimulus intensity", "Units": "% Maximum Stimulator Output",
                  "Description": "The intensity the pulse was delivered at."},
    "mep_amplitude": {"LongName": "MEP amplitude", "Units": "uV",
                      "Description": "Peak-to-peak EMG in the MEP window, as tmsctl measured it; n/a when rejected."},
    "mep_latency": {"LongName": "MEP latency", "Units": "ms",
                    "Description": "Time of the first extreme in the MEP window after the pulse (a rough onset marker)."},
    "background_amplitude": {"LongName": "Pre-stimulus background", "Units": "uV",
                             "Description": "Peak-to-peak EMG in the pre-stimulus window."},
    "mep_rejection": {"LongName": "Rejection", "Description": "Why no MEP was measured for this pulse (n/a: accepted).",
                      "Levels": {"incomplete": "EMG did not cover the windows", "gap": "samples missing",
                                 "not-finite": "a sample was NaN or infinite", "clipped": "the amplifier clipped",
                                 "background": "pre-stimulus activity above the limit (pre-activation or noise)",
                                 "after-activity": "activity after the MEP window above the limit"}},
    "mep_detail": {"LongName": "Measurement detail", "Description": "The detector's sentence for the operator."},
    "trial": {"LongName": "Procedure trial", "Description": "The threshold procedure's trial number; n/a for a "
              "rejected pulse (given again) or a measurement without trials."},
    "responded": {"LongName": "Counted as a response", "Description": "Whether the procedure counted the MEP as a "
                  "response (amplitude at or above its criterion).", "Levels": {"true": "response", "false": "no response"}},
}
EVENTS_COLUMNS = list(EVENTS_SIDECAR)


def _event_row(entry: Mapping[str, Any], onset: float) -> dict[str, Any]:
    mep = entry["mep"]
    responded = entry.get("responded")
    return {
        "onset": round(onset, 6), "duration": None, "trial_type": "tms_pulse", "pulse": entry.get("pulse"),
        "pulse_time": float(entry["fired_offset_s"]), "intensity": entry["intensity_pct_mso"],
        "mep_amplitude": mep.get("amplitude_uv"), "mep_latency": mep.get("latency_ms"),
        "background_amplitude": mep.get("background_uv"), "mep_rejection": mep.get("rejection"),
        "mep_detail": mep.get("detail") or None, "trial": entry.get("trial"),
        "responded": None if responded is None else str(bool(responded)).lower(),
    }


def export_mep_emg(
    records: Any,
    source: MepSource,
    recording_path: str | Path,
    *,
    bids_root: str | Path,
    sub: str,
    ses: str | None,
    task: str,
    acq: str | None = None,
    run: int | None = None,
    allow_simulated: bool = False,
    overwrite: bool = False,
    authors: Sequence[str] = (),
    license: str | None = None,
) -> EmgExportResult:
    """Write the BIDS-EMG files of one MEP measurement from the recording it was made from."""
    from tmsctl.clinic.emg import read_recording

    for name, value, required in (("sub", sub, True), ("ses", ses, False), ("task", task, True), ("acq", acq, False)):
        check_label(name, value, required=required)
    if run is not None and (isinstance(run, bool) or not isinstance(run, int) or run < 1):
        raise InvalidArgument(f"--run must be a positive whole number, got {run!r}")
    if source.simulated and not allow_simulated:
        raise ExportRefused(f"{source.label} was measured on a simulator; a BIDS dataset of it could be mistaken "
                            "for real data", hint="pass --allow-simulated to export it anyway (it is labelled)")
    recording = read_recording(recording_path)
    measured = _match(source, recording)
    onsets = [onset for onset, _ in recording.pulses]
    before, after, firsts = _epochs(recording, onsets)
    if not any(f is not None for f in firsts):
        raise ExportRefused(f"the recording holds no complete epoch around any pulse of {source.label}")
    step = 1.0 / recording.sample_rate_hz
    n = round((before + after) / step)
    epoch_s = n * step

    root = Path(bids_root)
    stem = f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{task}" + (f"_acq-{acq}" if acq else "") \
        + (f"_run-{run}" if run else "")
    folder = subject_folder(root, sub, ses) / "emg"
    edf_path = folder / f"{stem}_emg.edf"
    rows: list[dict[str, Any]] = []
    times = recording.times_s
    for entry, onset, first in zip(measured, onsets, firsts):
        if first is not None:  # the pulse's place in its epoch, the epochs laid end to end
            rows.append(_event_row(entry, len(rows) * epoch_s + (onset - times[first])))
    epochs = len(rows)
    left_out = len(source.trial_log) - epochs
    muscle = source.muscle or recording.channel
    description = (
        f"EMG of {source.label} ({source.kind}) for subject {source.subject_id}: {source.summary}. Stimulator "
        f"{source.stimulator}, coil {source.coil}. {epochs} epochs of {epoch_s * 1e3:g} ms ({before * 1e3:g} ms before "
        f"to {after * 1e3:g} ms after each pulse); {left_out} of the {len(source.trial_log)} delivered pulses have no "
        "EMG epoch here (entered by hand, awaiting their MEP when the measurement stopped, or not fully recorded)."
    )
    if source.simulated:
        description = "SIMULATED (simulated stimulator and subject): " + description
    sidecar = {
        "TaskName": task,
        "TaskDescription": description,
        "EMGPlacementScheme": "Other",
        "EMGPlacementSchemeDescription": f"Not recorded by tmsctl: electrodes over {muscle}, as the measurement names it.",
        "EMGReference": NA,
        "EMGChannelCount": 1,
        "SamplingFrequency": recording.sample_rate_hz,
        "PowerLineFrequency": NA,
        "SoftwareFilters": NA,
        "HardwareFilters": NA,
        "RecordingType": "epoched",
        "EpochLength": round(epoch_s, 9),
        "RecordingDuration": round(epochs * epoch_s, 9),
        "Simulated": source.simulated,
    }
    channels = [{"name": recording.channel, "type": "EMG", "units": "uV", "target_muscle": muscle,
                 "signal_electrode": NA, "reference": NA, "group": NA, "placement_scheme": NA,
                 "placement_description": NA, "interelectrode_distance": NA,
                 "sampling_frequency": recording.sample_rate_hz}]
    channel_columns = list(channels[0])
    texts = {
        folder / f"{stem}_emg.json": json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n",
        folder / f"{stem}_channels.tsv": write_tsv(channel_columns, channels),
        folder / f"{stem}_events.tsv": write_tsv(EVENTS_COLUMNS, rows),
        folder / f"{stem}_events.json": json.dumps(EVENTS_SIDECAR, indent=2, ensure_ascii=False) + "\n",
    }
    existing = [p for p in (edf_path, *texts) if p.exists()]
    if existing and not overwrite:
        raise ExportRefused(f"{existing[0]} exists already", hint="choose another --run/--acq, or pass --overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    _edf(edf_path, recording, firsts, n, source.measured_at, recording.channel)
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
    written = [edf_path, *texts]
    written += update_dataset(root, sub, generator=generated_by(f"BIDS-EMG export of MEP measurements ({EMG_CONVENTION})"),
                              authors=authors, license=license)
    written.append(add_scan(root, sub, ses, edf_path, source.measured_at))
    return EmgExportResult(tuple(written), edf_path, folder / f"{stem}_events.tsv", epochs, left_out)
