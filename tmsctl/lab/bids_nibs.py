"""Export a recorded session to BIDS-NIBS, pinned to one named draft of the extension.

The BIDS extension for non-invasive brain stimulation (BEP037) is a draft that still renames its
keys between versions. This module writes exactly one named draft, ``nibs-bids-6.3``: the v6.3
text of ``nigelrogasch/nibs-bids`` at commit 77de0bd, whose ``*_GB`` examples use the
``nibs_``-prefixed keys. It says so in the output (``GeneratedBy`` in ``dataset_description.json``
and in the ``*_nibs.json`` sidecar). tmsctl's own records stay free of BIDS names; a later draft
gets its own writer beside this one.

What is written, for ``sub-<sub>[_ses-<ses>]_task-<task>[_acq-<acq>][_run-<run>]`` in
``<root>/sub-<sub>/[ses-<ses>/]nibs/``:

``*_nibs.tsv``
    One row per unique parameter set: the base stimulus, the ``pattern<i>`` layers inside a train
    (bursts and pulses), and, as the draft's iTBS example writes it, an outermost layer counting
    the trains of a run (iTBS-600: ``pattern1`` 3 × 20 ms, ``pattern2`` 10 × 200 ms, ``pattern3``
    20 × 10000 ms), and its intensity. Trains at different intensities (a ramp) are different rows,
    and so are runs of different lengths (a session cut short: its complete run, then the cut train).
``*_events.tsv``
    The timeline: one row per run of trains (see :func:`_group_trains`), or per single or paired
    pulse, delivered or begun, with its actual onset (seconds from the start of the session),
    nominal duration, ``nibs_event_id`` and ``nibs_position_id``; extra columns (documented in
    ``*_events.json``) carry what tmsctl recorded: ``pulses_delivered`` (known delivered),
    ``pulses_uncertain`` (may or may not have gone out), ``delivery_state``, ``delivery_evidence``
    and ``trigger_source``.
``*_nibs.json``
    Column descriptions and units, ``StimulatorSet`` (the model tmsctl connected to, its firmware;
    serials are not reported by the Magstim protocol), ``ElementSet`` (the coil as recorded),
    ``IntensitySet`` (the motor threshold the session was dosed from, when recorded),
    ``NIBSDescription`` and ``GeneratedBy``.
``*_markers.tsv`` / ``.json``
    The target as the protocol names it (a 10-20 site, MNI coordinates, a landmark...).
The dataset-level files (:mod:`tmsctl.lab.bids_dataset`): ``dataset_description.json``,
``README.md``, ``participants.tsv``, ``sub-<sub>[_ses-<ses>]_scans.tsv``, and ``.bidsignore`` with
``**/nibs`` — the draft is not in the released specification, so the validator is told to skip it.
What the draft leaves open and what tmsctl does there: docs/bids.md.

Values nobody recorded are ``n/a``, never guessed. A simulated session is refused unless asked
for explicitly, and is then labelled ``"Simulated": true`` in the sidecar and its description.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from tmsctl.core.errors import InvalidArgument, TmsError
from tmsctl.core.registry import drivers
from tmsctl.lab.bids_dataset import add_scan, generated_by, update_dataset
from tmsctl.lab.bids_tsv import NA, read_tsv, write_tsv
from tmsctl.lab.bids_tsv import fmt as _fmt
from tmsctl.session.dose import DoseCount

SPEC_VERSION = "nibs-bids-6.3"
SPEC_SOURCE = "nigelrogasch/nibs-bids@77de0bd, nibs-bids-v6/examples/v.6.3 (the *_GB examples' key names)"
SUPPORTED_SPECS = (SPEC_VERSION,)
# The draft's files are not in the released specification: the validator is told to skip them.
NIBS_IGNORE = ("**/nibs",)
MSO_UNITS = "% Maximum Stimulator Output"

_LABEL = re.compile(r"^[A-Za-z0-9]+$")

WAVEFORM_SHAPE = {"biphasic": "Biphasic", "monophasic": "Monophasic", "half_sine": "Halfsine",
                  "biphasic_burst": "Custom"}
FIRST_INFLECTION = {"normal": "rising", "reversed": "descending"}
COIL_SHAPES = {"figure8": "figure-of-eight", "circular": "circular", "double_cone": "double-cone",
               "H1": "H-coil (H1)", "H4": "H-coil (H4)", "H7": "H-coil (H7)", "other": "other"}
THRESHOLD_TYPE = {"rMT": "resting_motor", "aMT": "active_motor"}


def stimulator_facts(model: str) -> tuple[str, str]:
    """(manufacturer, the model's only pulse shape or n/a), as the model's driver entry declares them.

    A session recorded with a driver that is no longer installed still exports: its manufacturer
    is then the model name's vendor prefix, its pulse shape n/a."""
    entry = drivers().get(model)
    if entry is None:
        return model.split("-", 1)[0], NA
    return entry.manufacturer, entry.pulse_shape or NA


class ExportRefused(InvalidArgument):
    """The session cannot be exported as asked."""

    hint = "nothing was written"


# -- the tables (pure) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterSet:
    """One row of ``*_nibs.tsv``."""

    event_id: str
    intensity_pct_mso: float | None  # None when per-pulse intensities are given (paired pulses)
    layers: tuple[tuple[int, float], ...]  # (count, interval ms), innermost first
    pulse_intensities: tuple[float, ...] = ()  # pattern1_intensity (paired pulses)
    references: tuple[str, ...] = ("absolute",)
    scalings: tuple[str, ...] = ("absolute",)
    layer_names: tuple[str, ...] = ()  # what each layer builds ("burst", "train", "run of trains")


@dataclass(frozen=True)
class TimelineEvent:
    """One row of ``*_events.tsv``."""

    onset_s: float
    duration_s: float | None
    event_id: str
    position_id: str
    pulses_delivered: int
    delivery_state: str
    trigger_source: str
    pulses_uncertain: int = 0
    evidence: str = ""


# -- from records to tables ---------------------------------------------------------------------------


def _scaling(pct_of_reference: float) -> str:
    return _fmt(round(pct_of_reference / 100.0, 6))


# A train more than this off its place on the protocol's grid starts a new event, so the timeline
# never puts a delivered train's onset further than this from where it really was.
GROUP_ONSET_TOLERANCE_S = 0.005
_PULSE_KINDS = ("single_pulse", "paired_pulse")


def _delivery_set(protocol: Any, plan: Any, delivery: Any, schedule: Any) -> tuple[tuple[Any, ...], ParameterSet]:
    """(identity, unnamed parameter set) of one delivered train, pulse or pair."""
    reference = protocol.intensity.reference
    train = schedule.trains[delivery.index] if delivery.index < len(schedule.trains) else None
    pct_of_ref = train.intensity_pct_of_reference if train is not None else protocol.intensity.scaling_pct
    if plan.kind == "paired_pulse":
        conditioning = protocol.pattern.conditioning_intensity
        intensities = (delivery.intensity_pct_mso, delivery.second_intensity_pct_mso)
        refs = tuple("absolute" if r == "MSO" else r for r in (conditioning.reference, reference))
        scalings = tuple("absolute" if r == "MSO" else _scaling(s)
                         for r, s in ((conditioning.reference, conditioning.scaling_pct), (reference, pct_of_ref)))
        return ("paired", intensities, delivery.ipi_ms), ParameterSet(
            "", None, ((2, float(delivery.ipi_ms)),), tuple(float(i) for i in intensities), refs, scalings, ("pair",))
    inner = [layer for layer in plan.inner if layer.count > 1]
    return ("train", delivery.intensity_pct_mso), ParameterSet(
        "", float(delivery.intensity_pct_mso), tuple((layer.count, float(layer.interval_s) * 1000.0) for layer in inner),
        references=("absolute" if reference == "MSO" else reference,),
        scalings=("absolute" if reference == "MSO" else _scaling(pct_of_ref),),
        layer_names=tuple(layer.builds for layer in inner),
    )


def _group_trains(plan: Any, deliveries: Sequence[Any], schedule: Any, onset_of: Mapping[int, float],
                  key_of: Mapping[int, tuple[Any, ...]]) -> list[list[Any]]:
    """Consecutive trains that repeat one parameter set on the protocol's grid, as the draft writes a protocol.

    The pinned draft writes a repeated train as one event whose parameter set counts the trains
    (iTBS: ``pattern3_count`` 20 × ``pattern3_interval`` 10000 ms). A train joins the run before it
    only when both were delivered completely (none uncertain), at the same intensity, in the same
    run segment (no pause between), by the same trigger, and its actual onset lies within
    ``GROUP_ONSET_TOLERANCE_S`` of the run's grid. Anything else — a train cut short, a pause, a
    ramp step, a late train — starts a new event, so no count or onset is blurred. Single pulses
    and pairs stay one event each: their responses (MEPs, TEPs) are read per pulse, and the draft's
    motor TMS-EMG example lists every one.
    """
    groups: list[list[Any]] = []
    for d in deliveries:
        run = groups[-1] if groups else None
        if run is not None and plan.kind not in _PULSE_KINDS and _continues(run, d, schedule, onset_of, key_of):
            run.append(d)
        else:
            groups.append([d])
    return groups


def _continues(run: Sequence[Any], d: Any, schedule: Any, onset_of: Mapping[int, float],
               key_of: Mapping[int, tuple[Any, ...]]) -> bool:
    first, last = run[0], run[-1]
    if not all(x.state.value == "completed" and x.pulses_uncertain == 0 and x.onset_offset_s is not None
               for x in (last, d)):
        return False
    if (d.index != last.index + 1 or key_of[id(d)] != key_of[id(first)] or d.segment != first.segment
            or d.trigger_source != first.trigger_source or d.index >= len(schedule.trains)):
        return False
    onsets = [schedule.trains[i].onset_s for i in (first.index, first.index + 1, d.index)]
    period = onsets[1] - onsets[0]
    nominal = onsets[2] - onsets[0]
    on_grid = math.isclose(nominal, (d.index - first.index) * period, rel_tol=0, abs_tol=1e-9)
    return on_grid and abs((onset_of[id(d)] - onset_of[id(first)]) - nominal) <= GROUP_ONSET_TOLERANCE_S


def _parameter_sets(protocol: Any, groups: Sequence[Sequence[Any]], schedule: Any,
                    key_of: Mapping[int, tuple[Any, ...]], set_of: Mapping[int, ParameterSet]) -> tuple[list[ParameterSet], list[str]]:
    """The unique parameter sets among the timeline's events, and each event's (group's) set id."""
    by_key: dict[tuple[Any, ...], ParameterSet] = {}
    keys: list[tuple[Any, ...]] = []
    for group in groups:
        first = group[0]
        base, candidate = key_of[id(first)], set_of[id(first)]
        if len(group) > 1:
            period_ms = (schedule.trains[first.index + 1].onset_s - schedule.trains[first.index].onset_s) * 1000.0
            key = (*base, len(group), round(period_ms, 6))
            candidate = replace(candidate, layers=(*candidate.layers, (len(group), period_ms)),
                                layer_names=(*candidate.layer_names, "run of trains"))
        else:
            key = (*base, 1, None)
        by_key.setdefault(key, candidate)
        keys.append(key)
    # Readable, unique ids: the protocol id, plus what tells the sets apart when there are several.
    intensities = {p.intensity_pct_mso for p in by_key.values()}
    run_lengths = {k[-2] for k in by_key if k[0] == "train"}
    named: dict[str, ParameterSet] = {}
    rename: dict[tuple[Any, ...], str] = {}
    for key, pset in by_key.items():
        name = protocol.id
        if len(by_key) > 1:
            if pset.pulse_intensities:
                name += "-" + "-".join(_fmt(i) for i in pset.pulse_intensities) + "pct"
            else:
                if len(intensities) > 1:
                    name += f"-{_fmt(pset.intensity_pct_mso)}pct"
                if len(run_lengths) > 1:
                    name += f"-{key[-2]}train" + ("s" if key[-2] != 1 else "")
        while name in named:
            name += "-b"
        named[name] = replace(pset, event_id=name)
        rename[key] = name
    return list(named.values()), [rename[k] for k in keys]


def _nibs_rows(psets: Sequence[ParameterSet], stimulator_id: str, shape: str, first_inflection: str) -> tuple[list[str], list[dict[str, Any]]]:
    depth = max((len(p.layers) for p in psets), default=0)
    paired = any(p.pulse_intensities for p in psets)
    columns = ["nibs_event_id", "nibs_type", "stimulator_id", "nibs_element_id", "stimulus_shape", "first_inflection",
               "current_direction", "stimulus_intensity", "stimulus_duration"]
    for i in range(1, depth + 1):
        columns += [f"pattern{i}_count", f"pattern{i}_interval"]
        if i == 1 and paired:
            columns.append("pattern1_intensity")
    columns += ["intensity_reference", "intensity_scaling"]
    rows = []
    for p in psets:
        row: dict[str, Any] = {
            "nibs_event_id": p.event_id, "nibs_type": "TMS", "stimulator_id": stimulator_id,
            "nibs_element_id": "coil_1", "stimulus_shape": shape, "first_inflection": first_inflection,
            "current_direction": NA, "stimulus_intensity": p.intensity_pct_mso, "stimulus_duration": NA,
            "intensity_reference": "|".join(p.references), "intensity_scaling": "|".join(p.scalings),
        }
        for i, (count, interval_ms) in enumerate(p.layers, start=1):
            row[f"pattern{i}_count"] = count
            row[f"pattern{i}_interval"] = float(interval_ms)
        if p.pulse_intensities:
            row["pattern1_intensity"] = "|".join(_fmt(i) for i in p.pulse_intensities)
        rows.append(row)
    return columns, rows


def _column_docs(columns: Sequence[str], psets: Sequence[ParameterSet], shape: str) -> dict[str, Any]:
    docs: dict[str, Any] = {
        "nibs_event_id": {"LongName": "Stimulation event type",
                          "Description": "A unique parameter set (one train, pulse or pair as prescribed). Linked to nibs_event_id in *_events.tsv."},
        "nibs_type": {"LongName": "Stimulation modality", "Description": "Non-invasive brain stimulation modality.",
                      "Levels": {"TMS": "Transcranial magnetic stimulation"}},
        "stimulator_id": {"LongName": "Stimulator identifier",
                          "Description": "Device generating the waveform. Links to StimulatorSet.StimulatorID."},
        "nibs_element_id": {"LongName": "Element identifier",
                            "Description": "Element delivering stimulation. Links to ElementSet.ElementID."},
        "stimulus_shape": {"LongName": "Stimulus shape", "Description": "Waveform shape of the base stimulus.",
                           "Levels": {shape: f"{shape} pulse as per stimulator"} if shape != NA else {}},
        "first_inflection": {"LongName": "First current inflection",
                             "Description": "Direction of the first deflection of the induced current (the stimulator's normal/reverse setting).",
                             "Levels": {"rising": "Normal current direction", "descending": "Reverse current direction"}},
        "current_direction": {"LongName": "Coil current direction",
                              "Description": "Direction of current flow in the coil winding; not recorded by tmsctl (n/a).",
                              "Levels": {"cl": "Circular coil, current clockwise", "co": "Circular coil, current counterclockwise",
                                         "cl-co": "Figure-of-eight coil, left wing clockwise, right wing counterclockwise",
                                         "co-cl": "Figure-of-eight coil, left wing counterclockwise, right wing clockwise"}},
        "stimulus_intensity": {"LongName": "Stimulus intensity",
                               "Description": "Delivered amplitude of every pulse of the parameter set, as sent to the stimulator.",
                               "Units": MSO_UNITS},
        "stimulus_duration": {"LongName": "Stimulus duration",
                              "Description": "Pulse width; not reported by the stimulator (n/a).", "Units": "microseconds"},
        "pattern1_intensity": {"LongName": "Per-pulse intensities",
                               "Description": "Conditioning then test pulse of a pair.", "Units": MSO_UNITS, "Delimiter": "|"},
        "intensity_reference": {"LongName": "Intensity reference",
                                "Description": "Anchor used to set the intensity. Links to IntensitySet.IntensityID. Closed vocabulary (rMT, aMT, 1mV, e-field, absolute).",
                                "Delimiter": "|"},
        "intensity_scaling": {"LongName": "Intensity scaling",
                              "Description": "Multiplier applied to the reference value (0.8 for 80 %), or 'absolute'.",
                              "Delimiter": "|"},
    }
    deepest = max(psets, key=lambda p: len(p.layers), default=None)
    names = deepest.layer_names if deepest is not None else ()
    for i, builds in enumerate(names, start=1):
        items = "base stimuli (pulses)" if i == 1 else f"pattern{i - 1} units ({names[i - 2]}s)"
        run = " A run is the trains delivered back to back on the protocol's grid; n/a when the event is one train." \
            if builds == "run of trains" else ""
        docs[f"pattern{i}_count"] = {"LongName": f"Pattern {i} count ({items.split(' (')[-1].rstrip(')')} per {builds})",
                                     "Description": f"Number of {items} in one pattern{i} unit (a {builds}).{run}"}
        docs[f"pattern{i}_interval"] = {"LongName": f"Pattern {i} interval",
                                        "Description": f"Onset-to-onset interval between consecutive {'base stimuli' if i == 1 else f'pattern{i - 1} units'}.",
                                        "Units": "milliseconds"}
    return {c: docs[c] for c in columns}


EVENTS_COLUMNS = ["onset", "duration", "nibs_event_id", "nibs_position_id", "pulses_delivered", "pulses_uncertain",
                  "delivery_state", "delivery_evidence", "trigger_source"]


def _events_sidecar(psets: Sequence[ParameterSet], position_id: str, position_text: str) -> dict[str, Any]:
    return {
        "onset": {"LongName": "Event onset", "Units": "s",
                  "Description": "Onset of the train or pulse (its first pulse), in seconds from the start of the tmsctl session."},
        "duration": {"LongName": "Event duration", "Units": "s",
                     "Description": "Nominal duration of the train (n/a for a single pulse); derivable from the pattern fields in *_nibs.tsv."},
        "nibs_event_id": {"LongName": "Stimulation type", "Description": "References nibs_event_id in *_nibs.tsv.",
                          "Levels": {p.event_id: _describe_pset(p) for p in psets}},
        "nibs_position_id": {"LongName": "Stimulation position", "Description": "References nibs_position_id in *_markers.tsv.",
                             "Levels": {position_id: position_text}},
        "pulses_delivered": {"LongName": "Pulses known delivered",
                             "Description": "Pulses the evidence shows went out in this train (tmsctl's dose model): a lower bound; the true count lies between pulses_delivered and pulses_delivered + pulses_uncertain."},
        "pulses_uncertain": {"LongName": "Pulses uncertain",
                             "Description": "Pulses of this train that may or may not have gone out (a train cut short by a fault or a disarm, or begun with no recorded outcome); 0 when the count is exact."},
        "delivery_evidence": {"LongName": "Delivery evidence",
                              "Description": "What the delivered and uncertain counts rest on, in words (acknowledged trigger, the device's running status, a confirmed stop, a device pulse counter)."},
        "delivery_state": {"LongName": "Delivery state", "Description": "How the train ended, as recorded by tmsctl.",
                           "Levels": {"completed": "every planned pulse delivered", "stopped": "ended early (abort or fault)",
                                      "in_progress": "begun, no result recorded (the process stopped)"}},
        "trigger_source": {"LongName": "Trigger source", "Description": "What triggered the stimulator.",
                           "Levels": {"serial": "serial command from tmsctl", "rts": "RTS line of the serial port",
                                      "external_ttl": "external TTL pulse"}},
    }


def _describe_pset(p: ParameterSet) -> str:
    if p.pulse_intensities:
        return f"paired pulse, {p.layers[0][1]:g} ms apart, " + " then ".join(f"{i:g}" for i in p.pulse_intensities) + " %MSO"
    if not p.layers:
        return f"single pulse at {p.intensity_pct_mso:g} %MSO"
    parts = " of ".join(f"{count} × {interval:g} ms" for count, interval in p.layers)
    return f"train: {parts}, at {p.intensity_pct_mso:g} %MSO"


# -- the export --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    files: tuple[Path, ...]
    nibs_tsv: Path
    events_tsv: Path
    nibs_json: Path
    spec: str


def check_label(name: str, value: str | None, *, required: bool) -> None:
    if value is None:
        if required:
            raise InvalidArgument(f"--{name} is required")
        return
    if not _LABEL.match(value):
        raise InvalidArgument(f"BIDS labels are letters and digits only; --{name} {value!r} is not",
                              hint="e.g. --sub 017 --ses 01 --task itbs")


def _generated_by() -> dict[str, Any]:
    return generated_by(f"BIDS-NIBS export pinned to the draft {SPEC_VERSION} ({SPEC_SOURCE}); the extension is a "
                        "draft and its key names may change in later versions.")


def _session_onsets(detail: Any) -> dict[int, float]:
    """Each run segment's start, in seconds after the first one (from the start/resume actions)."""
    starts = [a.at for a in detail.actions if getattr(a.kind, "value", a.kind) in ("start", "resume") and a.at is not None]
    if not starts:
        return {1: 0.0}
    first = starts[0]
    return {n: (at - first).total_seconds() for n, at in enumerate(starts, start=1)}


def _onset(delivery: Any, segment_starts: Mapping[int, float], session_started: datetime | None) -> float:
    base = segment_starts.get(delivery.segment, 0.0)
    if delivery.onset_offset_s is not None:
        return base + delivery.onset_offset_s
    if session_started is not None:  # begun, never finished: its intent time is the best record
        return max(0.0, (delivery.started_at - session_started).total_seconds())
    return base


def _target(protocol: Any) -> tuple[str, dict[str, Any], str]:
    """(position id, markers row, description) for the protocol's target."""
    t = protocol.target
    region = f" ({t.region})" if getattr(t, "region", None) else ""
    method = t.method
    row: dict[str, Any] = {"nibs_element_id": "coil_1"}
    if method in ("eeg_10_20", "beam_f3"):
        pid, label = t.site, t.site
        text = f"10-20 site {t.site}" + (" located with the Beam F3 method" if method == "beam_f3" else "") + region
    elif method == "mni":
        pid, label = "target", NA
        row.update(position_x=t.x_mm, position_y=t.y_mm, position_z=t.z_mm)
        text = f"MNI coordinates ({t.x_mm:g}, {t.y_mm:g}, {t.z_mm:g}) mm as written in the protocol" + region
    elif method == "motor_hotspot":
        pid, label = f"{t.muscle}_hotspot", f"M1_{t.muscle}"
        text = f"motor hot spot of {t.muscle}" + region
    elif method == "distance_rule":
        pid, label = "target", NA
        text = f"{t.distance_cm:g} cm {t.direction} of the {t.reference_point.replace('_', ' ')}" + region
    elif method == "neuronavigation":
        pid, label = "target", NA
        text = f"neuronavigation landmark: {t.landmark}" + region
    else:
        pid, label = "target", NA
        text = getattr(t, "description", "described target") + region
    pid = re.sub(r"[^A-Za-z0-9_]", "_", pid)
    row.update(nibs_position_id=pid, position_label=label, position_description=text)
    return pid, row, text


def export_session(
    records: Any,
    session_id: str,
    *,
    bids_root: str | Path,
    sub: str,
    ses: str | None,
    task: str,
    acq: str | None = None,
    run: int | None = None,
    spec: str = SPEC_VERSION,
    audit_log: str | Path | None = None,
    allow_simulated: bool = False,
    overwrite: bool = False,
    authors: Sequence[str] = (),
    license: str | None = None,
) -> ExportResult:
    """Write the BIDS-NIBS files of one recorded session; returns the paths written."""
    from tmsctl.protocols.expand import expand
    from tmsctl.protocols.loader import load_protocol_text

    if spec not in SUPPORTED_SPECS:
        raise InvalidArgument(f"unknown BIDS-NIBS draft {spec!r}", hint=f"supported: {', '.join(SUPPORTED_SPECS)}")
    for name, value, required in (("sub", sub, True), ("ses", ses, False), ("task", task, True), ("acq", acq, False)):
        check_label(name, value, required=required)
    if run is not None and (isinstance(run, bool) or not isinstance(run, int) or run < 1):
        raise InvalidArgument(f"--run must be a positive whole number, got {run!r}")
    detail = records.session_detail(session_id)
    session = detail.session
    if session.simulated and not allow_simulated:
        raise ExportRefused(
            f"session {session.session_id} ran on a simulator; a BIDS dataset of it could be mistaken for real data",
            hint="pass --allow-simulated to export it anyway (it is labelled Simulated in the sidecar)",
        )
    # A train that may have delivered anything is on the timeline; one known to have delivered nothing is not.
    deliveries = [d for d in detail.deliveries if d.pulses_at_most > 0 or d.state.value != "stopped"]
    if not deliveries:
        raise ExportRefused(f"session {session.session_id} delivered nothing; there is no stimulation to describe")
    protocol = load_protocol_text(session.protocol_text, path=f"<session {session.session_id}>")
    schedule = expand(protocol)
    plan = protocol.plan()
    segment_starts = _session_onsets(detail)
    ordered = sorted(deliveries, key=lambda d: (d.index, d.attempt))
    onset_of = {id(d): _onset(d, segment_starts, session.started_at) for d in ordered}
    key_of: dict[int, tuple[Any, ...]] = {}
    set_of: dict[int, ParameterSet] = {}
    for d in ordered:
        key_of[id(d)], set_of[id(d)] = _delivery_set(protocol, plan, d, schedule)
    groups = _group_trains(plan, ordered, schedule, onset_of, key_of)
    psets, group_event_ids = _parameter_sets(protocol, groups, schedule, key_of, set_of)

    model = session.device_model
    stimulator_id = model
    manufacturer, model_shape = stimulator_facts(model)
    # A protocol's own ``stimulus.waveform`` wins over the model's only shape.
    shape = WAVEFORM_SHAPE.get(protocol.stimulus.waveform) if protocol.stimulus else model_shape
    first_inflection = FIRST_INFLECTION[protocol.stimulus.current_direction] if protocol.stimulus else NA
    nibs_columns, nibs_rows = _nibs_rows(psets, stimulator_id, shape or NA, first_inflection)

    position_id, marker_row, position_text = _target(protocol)
    timeline = []
    for group, event_id in zip(groups, group_event_ids):
        first, last = group[0], group[-1]
        train = schedule.trains[last.index] if last.index < len(schedule.trains) else None
        duration = train.duration_s if train is not None and train.duration_s > 0 else None
        if duration is not None and len(group) > 1:
            duration += schedule.trains[last.index].onset_s - schedule.trains[first.index].onset_s
        evidence = "; ".join(dict.fromkeys(d.evidence for d in group if d.evidence)) or NA
        timeline.append(TimelineEvent(onset_of[id(first)], duration, event_id, position_id,
                                      sum(d.pulses_delivered for d in group), first.state.value,
                                      first.trigger_source.value, sum(d.pulses_uncertain for d in group), evidence))
    timeline.sort(key=lambda e: e.onset_s)
    events_rows = [
        {"onset": round(e.onset_s, 6), "duration": None if e.duration_s is None else round(e.duration_s, 6),
         "nibs_event_id": e.event_id, "nibs_position_id": e.position_id, "pulses_delivered": e.pulses_delivered,
         "pulses_uncertain": e.pulses_uncertain, "delivery_state": e.delivery_state,
         "delivery_evidence": e.evidence, "trigger_source": e.trigger_source}
        for e in timeline
    ]

    intensity_set = []
    for used in session.thresholds_used:
        ref = getattr(used.reference, "value", used.reference)
        entry: dict[str, Any] = {"IntensityID": ref, "Value": used.value_pct_mso, "Units": MSO_UNITS,
                                 "Type": THRESHOLD_TYPE.get(ref, NA), "Criterion": NA, "Algorithm": NA,
                                 "MeasurementMethod": NA}
        if used.threshold_id is not None:
            for t in records.motor_thresholds(session.subject_id):
                if t.threshold_id == used.threshold_id:
                    entry["Algorithm"] = t.method
                    entry["MeasurementMethod"] = f"measured {t.measured_at.date().isoformat()} with {t.stimulator_model}, coil {t.coil}"
        else:
            entry["MeasurementMethod"] = "entered by the operator for this session"
        intensity_set.append(entry)
    references_used = {r for p in psets for r in p.references if r != "absolute"}
    for ref in sorted(references_used - {e["IntensityID"] for e in intensity_set}):
        intensity_set.append({"IntensityID": ref, "Value": NA, "Units": MSO_UNITS, "Type": THRESHOLD_TYPE.get(ref, NA),
                              "Criterion": NA, "Algorithm": NA,
                              "MeasurementMethod": "not in the session record (this tmsctl version did not record the threshold used)"})

    firmware = session.device_firmware
    if firmware is None and audit_log is not None:
        firmware = _firmware_from_audit(audit_log)
    coil_family, _, coil_model = (session.coil or protocol.coil.family).partition("/")
    dose = DoseCount(session.planned_pulses, sum(d.pulses_delivered for d in deliveries),
                     sum(d.pulses_uncertain for d in deliveries))
    description = (
        f"{protocol.title} (tmsctl protocol {protocol.id}, content hash {session.protocol_hash}). "
        f"Session {session.session_id}, status {session.status.value}; "
        f"{dose.describe()} pulses delivered in "
        f"{len(deliveries)} of {session.planned_deliveries} trains or pulses. Intensity: {protocol.intensity.describe()}."
    )
    if session.simulated:
        description = "SIMULATED SESSION (no stimulator hardware): " + description
    sidecar: dict[str, Any] = {
        "NIBSDescription": description,
        "ConcurrentModalities": ["none"],
        "StimulatorSet": {
            "StimulatorID": stimulator_id, "Manufacturer": manufacturer,
            "ManufacturerModelName": model, "ManufacturerSerialNumber": session.device_serial or NA,
            "SoftwareVersion": firmware or NA,
        },
        "ElementSet": [{
            "ElementID": "coil_1", "ElementType": "coil", "ModelName": coil_model or NA, "SerialNumber": NA,
            "CoilShape": COIL_SHAPES.get(coil_family, coil_family),
        }],
        "IntensitySet": intensity_set,
        "GeneratedBy": [_generated_by()],
        "NIBSBIDSVersion": spec,
        "Simulated": session.simulated,
        **_column_docs(nibs_columns, psets, shape or NA),
    }

    root = Path(bids_root)
    stem = f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{task}" + (f"_acq-{acq}" if acq else "") \
        + (f"_run-{run}" if run else "")
    folder = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "nibs"
    outputs = {
        folder / f"{stem}_nibs.tsv": write_tsv(nibs_columns, nibs_rows),
        folder / f"{stem}_nibs.json": json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n",
        folder / f"{stem}_events.tsv": write_tsv(EVENTS_COLUMNS, events_rows),
        folder / f"{stem}_events.json": json.dumps(_events_sidecar(psets, position_id, position_text), indent=2,
                                                   ensure_ascii=False) + "\n",
        folder / f"{stem}_markers.tsv": write_tsv(_marker_columns(marker_row), [marker_row]),
        folder / f"{stem}_markers.json": json.dumps(_markers_sidecar(marker_row), indent=2) + "\n",
    }
    existing = [p for p in outputs if p.exists()]
    if existing and not overwrite:
        raise ExportRefused(f"{existing[0]} exists already", hint="choose another --run/--acq, or pass --overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    written = list(outputs)
    written += update_dataset(root, sub, generator=_generated_by(), ignore=NIBS_IGNORE, authors=authors, license=license)
    written.append(add_scan(root, sub, ses, folder / f"{stem}_nibs.tsv", session.started_at))
    return ExportResult(tuple(written), folder / f"{stem}_nibs.tsv", folder / f"{stem}_events.tsv",
                        folder / f"{stem}_nibs.json", spec)


def _marker_columns(row: Mapping[str, Any]) -> list[str]:
    order = ["nibs_position_id", "nibs_element_id", "position_label", "position_description", "position_x",
             "position_y", "position_z"]
    return [c for c in order if c in row]


def _markers_sidecar(row: Mapping[str, Any]) -> dict[str, Any]:
    docs = {
        "nibs_position_id": {"LongName": "Position identifier",
                             "Description": "Identifier of a single stimulation position; referenced from nibs_position_id in *_events.tsv."},
        "nibs_element_id": {"LongName": "Element identifier", "Description": "Coil at this position; links to nibs_element_id in *_nibs.tsv."},
        "position_label": {"LongName": "Position label", "Description": "Standardized site label (10-20 site or M1_<muscle>)."},
        "position_description": {"LongName": "Position description", "Description": "The target as the protocol describes it."},
        "position_x": {"LongName": "MNI x", "Description": "As written in the protocol.", "Units": "mm"},
        "position_y": {"LongName": "MNI y", "Description": "As written in the protocol.", "Units": "mm"},
        "position_z": {"LongName": "MNI z", "Description": "As written in the protocol.", "Units": "mm"},
    }
    return {c: docs[c] for c in _marker_columns(row)}


def _firmware_from_audit(audit_log: str | Path) -> str | None:
    from tmsctl.session.audit import iter_audit_log

    try:
        for event in iter_audit_log(audit_log):
            if event.get("event") == "connected" and event.get("version"):
                return str(event["version"])
    except TmsError:
        return None
    return None


__all__ = ["SPEC_VERSION", "ExportRefused", "ExportResult", "export_session", "read_tsv", "write_tsv"]
