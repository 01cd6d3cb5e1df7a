"""The dataset-level files every tmsctl BIDS export keeps valid, whichever datatype it writes.

``bids-validator`` (the ``bids-validator-deno`` package) checks these on every export:

``dataset_description.json``
    Created when absent (``Name``, ``BIDSVersion``, ``DatasetType``); each writer appends its own
    ``GeneratedBy`` entry once. ``Authors`` and ``License`` are the lab's to give: they are set
    only when the caller passes them, never invented.
``README.md``
    Created when absent (a lab's own README is never replaced): what wrote the dataset, which
    drafts it follows and why ``.bidsignore`` lists what it lists.
``.bidsignore``
    The patterns for what the released specification does not cover (the NIBS draft's ``nibs/``
    folders), appended once each, so the validator skips them instead of reporting them unknown.
``participants.tsv`` / ``.json``
    One row per exported subject (``participant_id`` only: tmsctl records no demographics);
    rows and columns a lab added are kept.
``sub-<sub>[_ses-<ses>]_scans.tsv``
    One row per data file with its acquisition time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tmsctl import __version__
from tmsctl.core.errors import InvalidArgument
from tmsctl.lab.bids_tsv import NA, read_tsv, write_tsv

BIDS_VERSION = "1.11.0"  # the version the NIBS v6.3 examples declare; it has the emg datatype (BEP042)

README = """\
# {name}

A BIDS dataset written by tmsctl {version} from its session records (the stimulator control
software's own, append-only records of what was delivered).

## What is where

- `sub-*/[ses-*/]nibs/`: the stimulation as delivered (parameter sets, timeline, target), written
  to the draft BIDS extension for non-invasive brain stimulation (BEP037, NIBS-BIDS) in the version
  named in each `*_nibs.json` (`NIBSBIDSVersion`). The draft is not part of the released BIDS
  specification, so `.bidsignore` lists `**/nibs`: a BIDS validator skips these folders instead of
  reporting their files as unknown. Key names may change in later versions of the draft.
- `sub-*/[ses-*/]emg/`: EMG recorded around motor-evoked potential (MEP) measurements, with one
  event per pulse carrying the MEP measured by tmsctl, as the released BIDS EMG datatype describes
  EMG recordings. Only the samples tmsctl kept (a window around each pulse) are there.
- `participants.tsv`: the subjects exported; tmsctl records no demographics.

Values nobody recorded are `n/a`. A session run on a simulator is labelled `Simulated` in its
sidecars and is exported only on request.
"""


def subject_folder(root: Path, sub: str, ses: str | None) -> Path:
    return root / f"sub-{sub}" / (f"ses-{ses}" if ses else "")


def generated_by(description: str) -> dict[str, Any]:
    return {"Name": "tmsctl", "Version": __version__, "Description": description}


def update_dataset(
    root: Path, sub: str, *, generator: Mapping[str, Any], ignore: Sequence[str] = (),
    authors: Sequence[str] = (), license: str | None = None,
) -> list[Path]:
    """Create or update the dataset-level files for one exported subject; returns their paths."""
    root.mkdir(parents=True, exist_ok=True)
    written = [_dataset_description(root, generator, authors, license), _readme(root), *_participants(root, sub)]
    if ignore:
        written.append(_bidsignore(root, ignore))
    return written


def _dataset_description(root: Path, generator: Mapping[str, Any], authors: Sequence[str],
                         license: str | None) -> Path:
    path = root / "dataset_description.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
    else:
        data = {"Name": "tmsctl sessions", "BIDSVersion": BIDS_VERSION, "DatasetType": "raw"}
    # One entry per writer and draft: exporting again replaces it rather than piling up copies.
    generated = [g for g in data.get("GeneratedBy", [])
                 if not (g.get("Name") == generator["Name"] and g.get("Description") == generator["Description"])]
    generated.append(dict(generator))
    data["GeneratedBy"] = generated
    if authors:
        data["Authors"] = list(dict.fromkeys([*data.get("Authors", []), *authors]))
    if license is not None:
        data["License"] = license
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _readme(root: Path) -> Path:
    existing = [p for p in root.iterdir() if p.name in ("README", "README.md", "README.rst", "README.txt")]
    if existing:
        return existing[0]
    path = root / "README.md"
    name = json.loads((root / "dataset_description.json").read_text(encoding="utf-8")).get("Name", "tmsctl sessions")
    path.write_text(README.format(name=name, version=__version__), encoding="utf-8")
    return path


def _bidsignore(root: Path, patterns: Sequence[str]) -> Path:
    path = root / ".bidsignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    missing = [p for p in patterns if p not in lines]
    if missing:
        lines += ["# written by tmsctl: draft BIDS extensions the released specification does not cover yet", *missing]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


PARTICIPANTS_SIDECAR = {
    "participant_id": {
        "LongName": "Participant identifier",
        "Description": "The BIDS subject label given at export; the mapping to tmsctl's subject id stays with the lab.",
    },
}


def _participants(root: Path, sub: str) -> list[Path]:
    path = root / "participants.tsv"
    columns: list[str] = ["participant_id"]
    rows: list[dict[str, str]] = []
    if path.exists():
        columns, rows = read_tsv(path.read_text(encoding="utf-8"))
    if all(r.get("participant_id") != f"sub-{sub}" for r in rows):
        rows.append({"participant_id": f"sub-{sub}", **{c: NA for c in columns if c != "participant_id"}})
    rows.sort(key=lambda r: r["participant_id"])
    path.write_text(write_tsv(columns, rows), encoding="utf-8")
    sidecar = root / "participants.json"
    if not sidecar.exists():
        sidecar.write_text(json.dumps(PARTICIPANTS_SIDECAR, indent=2) + "\n", encoding="utf-8")
    return [path, sidecar]


def add_scan(root: Path, sub: str, ses: str | None, data_file: Path, started: datetime | None) -> Path:
    """List ``data_file`` in the subject's (session's) ``scans.tsv`` with its acquisition time."""
    folder = subject_folder(root, sub, ses)
    path = folder / (f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + "_scans.tsv")
    rel = data_file.relative_to(folder).as_posix()
    rows: list[dict[str, str]] = []
    if path.exists():
        _, rows = read_tsv(path.read_text(encoding="utf-8"))
    rows = [r for r in rows if r.get("filename") != rel]
    rows.append({"filename": rel, "acq_time": started.strftime("%Y-%m-%dT%H:%M:%S") if started else NA})
    rows.sort(key=lambda r: r["filename"])
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(write_tsv(["filename", "acq_time"], rows), encoding="utf-8")
    return path


class ValidatorMissing(InvalidArgument):
    """``bids-validator-deno`` is not installed."""

    hint = "pip install bids-validator-deno (it is in tmsctl's [test] extra)"


def validate(root: Path, *, timeout_s: float = 300.0) -> list[dict[str, Any]]:
    """The issues the BIDS validator (``bids-validator-deno``) reports for the dataset at ``root``.

    Each issue is the validator's own JSON (``severity``, ``code``, ``location``, ...). The validator
    runs offline: its wheel bundles the schema and the Deno runtime."""
    exe = shutil.which("bids-validator-deno", path=str(Path(sys.executable).parent)) or shutil.which("bids-validator-deno")
    if exe is None:
        raise ValidatorMissing("the BIDS validator (bids-validator-deno) is not installed")
    # cwd: the validator asks git for its own version; run it where no unrelated repository is.
    done = subprocess.run([exe, str(Path(root).resolve()), "--format", "json"], capture_output=True, text=True,
                          timeout=timeout_s, cwd=root)
    try:
        issues: list[dict[str, Any]] = json.loads(done.stdout)["issues"]["issues"]
    except (json.JSONDecodeError, KeyError):
        raise InvalidArgument(f"the BIDS validator gave no report (exit {done.returncode}): {done.stderr[-500:]}",
                              hint="run bids-validator-deno on the folder by hand to see why") from None
    return issues
