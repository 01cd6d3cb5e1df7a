"""``tmsctl export``: recorded sessions in community formats (mounted by tmsctl.cli.main as ``export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tmsctl.cli.common import out, reported

app = typer.Typer(add_completion=False, help="Export recorded sessions (BIDS-NIBS) and MEP measurements (BIDS-EMG).", no_args_is_help=True)


@app.callback()
def _export() -> None:
    """Export recorded sessions (BIDS-NIBS) and MEP measurements (BIDS-EMG)."""


@app.command("bids")
def bids(
    session_id: Annotated[str, typer.Argument(help="Session id (see `tmsctl sessions`).")],
    bids_root: Annotated[Path, typer.Option("--bids-root", help="The BIDS dataset's root folder (created if missing).")],
    sub: Annotated[str, typer.Option("--sub", help="BIDS subject label (letters and digits).")],
    task: Annotated[str, typer.Option("--task", help="BIDS task label, e.g. itbs.")],
    ses: Annotated[str | None, typer.Option("--ses", help="BIDS session label.")] = None,
    acq: Annotated[str | None, typer.Option("--acq", help="BIDS acquisition label.")] = None,
    run: Annotated[int | None, typer.Option("--run", help="BIDS run index.")] = None,
    spec: Annotated[str, typer.Option("--spec", help="The BIDS-NIBS draft to write.")] = "nibs-bids-6.3",
    db: Annotated[str | None, typer.Option("--db", help="Records database: a file, or a postgresql:// URL (default: $TMSCTL_DB or the user data directory).")] = None,
    log_dir: Annotated[
        Path | None, typer.Option("--log-dir", help="Where the session's audit log is (default: logs/ beside the database).")
    ] = None,
    allow_simulated: Annotated[
        bool, typer.Option("--allow-simulated", help="Export a simulator session (labelled Simulated).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files of the same name.")] = False,
    author: Annotated[
        list[str] | None, typer.Option("--author", help="A dataset author for dataset_description.json (repeatable).")
    ] = None,
    license: Annotated[
        str | None, typer.Option("--license", help="The dataset's licence for dataset_description.json, e.g. CC0.")
    ] = None,
) -> None:
    """Write BIDS-NIBS files (events, parameter sets, sidecars) for one recorded session."""
    from tmsctl.cli.db import open_records
    from tmsctl.lab.bids_nibs import export_session
    from tmsctl.records import normalize_session_id
    from tmsctl.session.audit import session_log_path

    with reported():
        records = open_records(db, read_only=True)
        try:
            audit = session_log_path(log_dir or Path(records.path).parent / "logs", normalize_session_id(session_id))
            result = export_session(
                records, session_id, bids_root=bids_root, sub=sub, ses=ses, task=task, acq=acq, run=run, spec=spec,
                audit_log=audit if audit.exists() else None, allow_simulated=allow_simulated, overwrite=overwrite,
                authors=tuple(author or ()), license=license,
            )
        finally:
            records.close()
    out.print(f"[bold]BIDS-NIBS ({result.spec})[/] written:", highlight=False)
    for path in result.files:
        out.print(f"  {path}", highlight=False)


@app.command("emg")
def emg(
    recording: Annotated[Path, typer.Argument(help="The tmsctl-emg/1 recording (its .json) the measurement was made from.")],
    bids_root: Annotated[Path, typer.Option("--bids-root", help="The BIDS dataset's root folder (created if missing).")],
    sub: Annotated[str, typer.Option("--sub", help="BIDS subject label (letters and digits).")],
    task: Annotated[str, typer.Option("--task", help="BIDS task label, e.g. mt or iocurve.")],
    threshold: Annotated[int | None, typer.Option("--threshold", help="The motor threshold's id (a hunt from EMG).")] = None,
    measurement: Annotated[
        int | None, typer.Option("--measurement", help="The MEP measurement's id (I/O curve, hotspot, stopped hunt).")
    ] = None,
    ses: Annotated[str | None, typer.Option("--ses", help="BIDS session label.")] = None,
    acq: Annotated[str | None, typer.Option("--acq", help="BIDS acquisition label.")] = None,
    run: Annotated[int | None, typer.Option("--run", help="BIDS run index.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Records database: a file, or a postgresql:// URL (default: $TMSCTL_DB or the user data directory).")] = None,
    allow_simulated: Annotated[
        bool, typer.Option("--allow-simulated", help="Export a simulator measurement (labelled Simulated).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files of the same name.")] = False,
    author: Annotated[
        list[str] | None, typer.Option("--author", help="A dataset author for dataset_description.json (repeatable).")
    ] = None,
    license: Annotated[
        str | None, typer.Option("--license", help="The dataset's licence for dataset_description.json, e.g. CC0.")
    ] = None,
) -> None:
    """Write BIDS-EMG files (EDF epochs, channels, MEP events) for one MEP measurement and its recording."""
    from tmsctl.cli.db import open_records
    from tmsctl.clinic.bids_emg import EMG_CONVENTION, export_mep_emg, mep_source

    with reported():
        records = open_records(db, read_only=True)
        try:
            source = mep_source(records, threshold_id=threshold, measurement_id=measurement)
            result = export_mep_emg(
                records, source, recording, bids_root=bids_root, sub=sub, ses=ses, task=task, acq=acq, run=run,
                allow_simulated=allow_simulated, overwrite=overwrite, authors=tuple(author or ()), license=license,
            )
        finally:
            records.close()
    out.print(f"[bold]BIDS-EMG ({EMG_CONVENTION})[/]: {result.epochs} epochs, {result.pulses_without_emg} pulses "
              "without EMG; written:", highlight=False)
    for path in result.files:
        out.print(f"  {path}", highlight=False)
