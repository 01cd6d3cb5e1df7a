"""``tmsctl protocol``: validate, show and publish the schema of stimulation protocol files.

    tmsctl protocol validate FILE... [--json] [--device-model NAME] [--mt PCT] [--mt-reference rMT|aMT]
    tmsctl protocol show FILE [--json] [--all-trains] [same options]
    tmsctl protocol schema

Without ``--device-model`` and ``--mt`` a file is checked as a *plan*: its structure, timing and the
guideline tables that work in %MT; device limits need a stimulator model and, for %MT
prescriptions, a motor threshold (assumed measured on that stimulator with the protocol's coil).

Exit codes (the same as the top-level ``tmsctl``):
  0 every file is allowed · 2 usage error (bad option, unknown device model) ·
  3 a file is invalid, refused, or needs a recorded override (``--json`` says which).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tmsctl.core.errors import ProtocolFileError, TmsError
from tmsctl.drivers.base import DeviceLimits
from tmsctl.protocols.findings import Finding, Severity
from tmsctl.protocols.loader import load_protocol
from tmsctl.protocols.models import Protocol
from tmsctl.protocols.rules import Verdict, check
from tmsctl.protocols.schedule import Schedule, ScheduledTrain
from tmsctl.protocols.schema_file import render_schema
from tmsctl.protocols.thresholds import MotorThreshold

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

app = typer.Typer(
    help="Validate, show, approve protocols; print their schema.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DeviceModelOption = Annotated[
    str | None,
    typer.Option(
        "--device-model", help="Check device limits for this stimulator model, e.g. magstim-rapid2."
    ),
]
DeviceVersionOption = Annotated[
    str | None,
    typer.Option(
        "--device-version", help="The stimulator's software version, e.g. 9.0 (Rapid² limits depend on it)."
    ),
]
DeviceOptionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--device-option", help="A device-model option KEY=VALUE, e.g. variant=super or mains_v=115."
    ),
]
MtOption = Annotated[
    float | None,
    typer.Option(
        "--mt", help="Motor threshold in %MSO, measured on that stimulator with the protocol's coil."
    ),
]
MtReferenceOption = Annotated[
    str, typer.Option("--mt-reference", help="Which threshold --mt is: rMT or aMT.", case_sensitive=True)
]
OverrideOption = Annotated[
    list[str] | None,
    typer.Option(
        "--override", help="RULE_ID=REASON: lift a warning with a recorded reason (never a refusal)."
    ),
]


class _Usage(Exception):
    """A command-line mistake: exit code 2."""


# --- commands -------------------------------------------------------------------------------


@app.command()
def approve(
    file: Annotated[Path, typer.Argument(help="The protocol file, exactly as it will be run.", show_default=False)],
    by: Annotated[str, typer.Option("--by", help="Who reviewed and approves it (recorded).", show_default=False)],
    db: Annotated[
        str | None, typer.Option("--db", help="Records database: a file, or a postgresql:// URL (default: $TMSCTL_DB or the user data directory).")
    ] = None,
) -> None:
    """Approve a protocol's exact content for this site: sessions of it may then run.

    The approval is bound to the content hash: any change to what the file delivers makes it a
    different, unapproved protocol.
    """
    from tmsctl.cli.db import open_records
    from tmsctl.protocols.canonical import content_hash
    from tmsctl.session.approval import approval_status

    try:
        protocol = load_protocol(file)
        digest = content_hash(protocol)
        verdict = check(protocol)
        if verdict.status == "refused":
            err.print(f"[red]refused[/]: {escape(str(file))} cannot be approved: it breaks a hard limit")
            for finding in verdict.refusals:
                err.print(f"  {escape(_finding_text(finding))}")
            raise typer.Exit(EXIT_REFUSED)
        with open_records(db) as records:
            before = approval_status(protocol.id, digest, records)
            approval = records.approve_protocol(protocol.id, digest, approved_by=by)
    except ProtocolFileError as error:
        _print_file_error(error)
        raise typer.Exit(EXIT_REFUSED) from None
    except TmsError as error:
        err.print(f"[red]error[/]: {escape(error.message)}")
        if error.hint:
            err.print(f"what to do: {escape(error.hint)}")
        raise typer.Exit(EXIT_REFUSED) from None
    note = f" (already {before.detail})" if before.approved else ""
    out.print(
        f"approved {protocol.id} ({digest[:19]}…) by {escape(approval.approved_by)} on "
        f"{approval.approved_at:%Y-%m-%d %H:%M} UTC{escape(note)}"
    )


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Protocol files to check.", show_default=False)],
    as_json: JsonOption = False,
    device_model: DeviceModelOption = None,
    device_version: DeviceVersionOption = None,
    device_option: DeviceOptionOption = None,
    mt: MtOption = None,
    mt_reference: MtReferenceOption = "rMT",
    override: OverrideOption = None,
) -> None:
    """Check protocol files against the file format and the safety rulebook."""
    try:
        context = _Context.build(device_model, device_version, device_option, mt, mt_reference, override)
    except _Usage as problem:
        _usage(problem)
    reports = [_validate_one(path, context) for path in files]
    if as_json:
        out.print_json(json.dumps({"ok": all(r["status"] == "allowed" for r in reports), "files": reports}))
    else:
        for report in reports:
            _print_report(report)
    raise typer.Exit(EXIT_OK if all(r["status"] == "allowed" for r in reports) else EXIT_REFUSED)


@app.command()
def show(
    file: Annotated[Path, typer.Argument(help="The protocol file.", show_default=False)],
    as_json: JsonOption = False,
    all_trains: Annotated[
        bool, typer.Option("--all-trains", help="List every train instead of runs of alike trains.")
    ] = False,
    device_model: DeviceModelOption = None,
    device_version: DeviceVersionOption = None,
    device_option: DeviceOptionOption = None,
    mt: MtOption = None,
    mt_reference: MtReferenceOption = "rMT",
    override: OverrideOption = None,
) -> None:
    """Show the expanded schedule: totals, durations, trains and every finding."""
    try:
        context = _Context.build(device_model, device_version, device_option, mt, mt_reference, override)
    except _Usage as problem:
        _usage(problem)
    try:
        protocol = load_protocol(file)
    except ProtocolFileError as error:
        if as_json:
            out.print_json(json.dumps({"file": str(file), "status": "invalid", "errors": _errors(error)}))
        else:
            _print_file_error(error)
        raise typer.Exit(EXIT_REFUSED) from None
    verdict = context.check(protocol)
    if as_json:
        out.print_json(json.dumps({**_show_json(file, verdict), **_provisional_fields(protocol, file)}))
    else:
        _print_schedule(file, protocol, verdict, all_trains=all_trains)
    raise typer.Exit(EXIT_OK if verdict.allowed else EXIT_REFUSED)


@app.command()
def schema() -> None:
    """Print the JSON Schema of protocol files (for editors and CI)."""
    typer.echo(render_schema(), nl=False)


# --- context from the options ----------------------------------------------------------------


class _Context:
    def __init__(
        self, device: DeviceLimits | None, mt_pct: float | None, mt_reference: str, overrides: dict[str, str]
    ) -> None:
        self.device = device
        self.mt_pct = mt_pct
        self.mt_reference = mt_reference
        self.overrides = overrides

    @classmethod
    def build(
        cls,
        device_model: str | None,
        device_version: str | None,
        device_options: list[str] | None,
        mt: float | None,
        mt_reference: str,
        overrides: list[str] | None,
    ) -> _Context:
        if mt_reference not in ("rMT", "aMT"):
            raise _Usage(f"--mt-reference must be rMT or aMT, not {mt_reference!r}")
        if mt is not None and not 1 <= mt <= 100:
            raise _Usage(f"--mt {mt:g} is outside 1–100 %MSO")
        device = None
        if device_model is not None:
            device = _device_limits(
                device_model, device_version, _pairs(device_options or [], "--device-option")
            )
        elif device_version is not None or device_options:
            raise _Usage("--device-version and --device-option need --device-model")
        return cls(device, mt, mt_reference, _pairs(overrides or [], "--override"))

    def thresholds(self, protocol: Protocol) -> list[MotorThreshold] | None:
        if self.mt_pct is None:
            return None
        stimulator = self.device.model if self.device is not None else "unspecified"
        reference: Literal["rMT", "aMT"] = "aMT" if self.mt_reference == "aMT" else "rMT"
        return [MotorThreshold(reference, self.mt_pct, stimulator, protocol.coil)]

    def check(self, protocol: Protocol) -> Verdict:
        return check(
            protocol, device=self.device, thresholds=self.thresholds(protocol), overrides=self.overrides
        )


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _Usage(f"{option} wants KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _device_limits(name: str, version: str | None, options: dict[str, str]) -> DeviceLimits:
    from tmsctl.core.registry import driver_entry  # imported here: plain validation needs no drivers

    try:
        limits = driver_entry(name).load_limits(options)
    except TmsError as error:
        raise _Usage(f"{error.message}" + (f" ({error.hint})" if error.hint else "")) from None
    if version is not None:
        try:
            parts = tuple(int(part) for part in version.split("."))
        except ValueError:
            raise _Usage(f"--device-version wants numbers such as 9.0, got {version!r}") from None
        try:
            limits = limits.for_version(parts)
        except TmsError as error:
            raise _Usage(error.message) from None
    return limits


def _usage(problem: _Usage) -> None:
    err.print(f"[bold red]error:[/] {escape(str(problem))}")
    raise typer.Exit(EXIT_USAGE)


# --- validate -------------------------------------------------------------------------------


def _validate_one(path: Path, context: _Context) -> dict[str, Any]:
    try:
        protocol = load_protocol(path)
    except ProtocolFileError as error:
        return {"file": str(path), "status": "invalid", "errors": _errors(error)}
    verdict = context.check(protocol)
    schedule = verdict.schedule
    return {
        "file": str(path),
        "status": verdict.status,
        "protocol_id": protocol.id,
        "title": protocol.title,
        "protocol_hash": verdict.protocol_hash,
        "rulebook_version": verdict.rulebook_version,
        "complete": verdict.complete,
        "total_pulses": schedule.total_pulses,
        "trains": len(schedule.trains),
        "duration_s": schedule.duration_s,
        "intensity_pct_mso": schedule.intensity_pct_mso,
        "findings": [finding.to_dict() for finding in verdict.findings],
        "overrides_used": dict(verdict.overrides_used),
        "overrides_rejected": dict(verdict.overrides_rejected),
        **_provisional_fields(protocol, path),
    }


def _provisional_fields(protocol: Protocol, path: Path) -> dict[str, Any]:
    """Whether the file marks itself provisional, and what that means for running it."""
    if protocol.status != "provisional":
        return {"provisional": False}
    from tmsctl.session.approval import provisional_text

    return {
        "provisional": True,
        "approval": (
            f"{provisional_text(protocol.id)}: review it, then tmsctl protocol approve {path} --by NAME"
        ),
    }


def _errors(error: ProtocolFileError) -> list[dict[str, Any]]:
    problems = getattr(error, "problems", None) or (error,)
    return [
        {"path": p.path, "line": p.line, "field": p.field, "message": p.message, "hint": p.hint}
        for p in problems
    ]


def _print_file_error(error: ProtocolFileError) -> None:
    problems = getattr(error, "problems", None) or (error,)
    for problem in problems:
        err.print(f"[bold red]✗[/] {escape(problem.message)}")
        if problem.hint:
            err.print(f"  [yellow]what to do:[/] {escape(problem.hint)}")


_MARKS = {"allowed": "[green]✓[/]", "needs_override": "[yellow]![/]", "refused": "[bold red]✗[/]"}
_WORDS = {"allowed": "allowed", "needs_override": "needs a recorded override", "refused": "refused"}


def _print_report(report: dict[str, Any]) -> None:
    status = report["status"]
    if status == "invalid":
        for problem in report["errors"]:
            out.print(f"[bold red]✗[/] {escape(problem['message'])}")
            if problem["hint"]:
                out.print(f"  [yellow]what to do:[/] {escape(problem['hint'])}")
        return
    totals = f"{report['total_pulses']:,} pulses in {report['trains']} train(s), {duration_text(report['duration_s'])}"
    out.print(
        f"{_MARKS[status]} {escape(report['file'])}: {report['protocol_id']} — {_WORDS[status]} ({totals})"
    )
    infos = 0
    for finding in report["findings"]:
        if finding["severity"] == "info":
            infos += 1
            continue
        lifted = finding["rule_id"] in report["overrides_used"]
        label = "overridden" if lifted else finding["severity"]
        out.print(f"  {_severity_markup(label)} [bold]{finding['rule_id']}[/]: {escape(finding['message'])}")
        out.print(f"      [dim]source: {escape(finding['source'])} ({finding['status']})[/]")
    for rule_id, why in report["overrides_rejected"].items():
        out.print(f"  [bold red]override {escape(rule_id)} not accepted:[/] {why}")
    if report["provisional"]:
        out.print(f"  [yellow]provisional:[/] {escape(report['approval'])}")
    if infos:
        out.print(f"  [dim]{infos} note(s); `tmsctl protocol show {escape(report['file'])}` lists them[/]")


def _severity_markup(label: str) -> str:
    return {"refuse": "[bold red]refuse[/]", "warn": "[yellow]warn[/]", "info": "[cyan]info[/]"}.get(
        label, "[green]overridden[/]"
    )


# --- show -----------------------------------------------------------------------------------


def duration_text(seconds: float) -> str:
    """37 min 30 s, 3 min 11.84 s, 40 s, 2 h 5 min."""
    if seconds < 60:
        return f"{seconds:.6g} s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{int(hours)} h")
    if minutes or hours:
        parts.append(f"{int(minutes)} min")
    if abs(secs) > 1e-9:
        parts.append(f"{round(secs, 3):g} s")
    return " ".join(parts)


def train_runs(schedule: Schedule) -> list[tuple[ScheduledTrain, ScheduledTrain, float | None]]:
    """Consecutive alike trains with a constant onset interval: (first, last, interval)."""
    runs: list[tuple[ScheduledTrain, ScheduledTrain, float | None]] = []

    def alike(a: ScheduledTrain, b: ScheduledTrain) -> bool:
        return (
            a.kind,
            a.n_pulses,
            a.frequency_hz,
            a.duration_s,
            a.intensity_pct_mso,
            a.intensity_pct_of_reference,
        ) == (
            b.kind,
            b.n_pulses,
            b.frequency_hz,
            b.duration_s,
            b.intensity_pct_mso,
            b.intensity_pct_of_reference,
        )

    for train in schedule.trains:
        if runs:
            first, last, interval = runs[-1]
            step = train.onset_s - last.onset_s
            if alike(first, train) and (interval is None or abs(step - interval) < 1e-6):
                runs[-1] = (first, train, step)
                continue
        runs.append((train, train, None))
    return runs


def _print_schedule(path: Path, protocol: Protocol, verdict: Verdict, *, all_trains: bool) -> None:
    schedule = verdict.schedule
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    intensity = protocol.intensity.describe()
    if schedule.intensity_pct_mso is not None and protocol.intensity.reference != "MSO":
        intensity += f" → {schedule.intensity_pct_mso} %MSO"
    rows = [
        ("protocol", f"{protocol.id} — {protocol.title}"),
        ("file", str(path)),
        ("hash", schedule.protocol_hash),
        (
            "verdict",
            f"{_MARKS[verdict.status]} {_WORDS[verdict.status]}"
            + ("" if verdict.complete else " (plan: not every limit checked)"),
        ),
        ("coil", protocol.coil.family + (f" ({protocol.coil.model})" if protocol.coil.model else "")),
        ("target", _target_text(protocol)),
        ("intensity", intensity),
        ("pulses", f"{schedule.total_pulses:,} in {len(schedule.trains):,} train(s)"),
        (
            "duration",
            (
                f"{duration_text(schedule.duration_s)} nominal; last train ends at {duration_text(schedule.end_s)}; "
                f"last pulse at {duration_text(schedule.last_pulse_onset_s)}"
            ),
        ),
    ]
    if schedule.sessions_per_day > 1:
        rows.append(
            (
                "day",
                (
                    f"{schedule.sessions_per_day} sessions, {schedule.pulses_per_day:,} pulses, "
                    f"spanning {duration_text(schedule.day_span_s)}"
                ),
            )
        )
    if schedule.device is not None:
        rows.append(("device", f"{schedule.device.display_name} ({schedule.device.model})"))
    rows.append(("rulebook", verdict.rulebook_version))
    provisional = _provisional_fields(protocol, path)
    if provisional["provisional"]:
        rows.insert(4, ("status", provisional["approval"]))
    for key, value in rows:
        summary.add_row(key, value if key == "verdict" else escape(value))
    out.print(summary)

    trains = Table(title="Trains", title_justify="left")
    for column in ("trains", "onset", "every", "kind", "pulses", "rate", "length", "intensity"):
        trains.add_column(column, justify="right" if column not in ("kind", "trains") else "left")
    runs = [(t, t, None) for t in schedule.trains] if all_trains else train_runs(schedule)
    for first, last, interval in runs:
        rate = (
            f"{first.frequency_hz:g} Hz"
            if first.frequency_hz
            else (f"{first.peak_frequency_hz:g} Hz peak" if first.peak_frequency_hz else "—")
        )
        level = (
            f"{first.intensity_pct_mso} %MSO"
            if first.intensity_pct_mso is not None
            else (f"{first.intensity_pct_of_reference:g} % {protocol.intensity.reference}")
        )
        trains.add_row(
            str(first.number) if first is last else f"{first.number}–{last.number}",
            duration_text(first.onset_s),
            duration_text(interval) if interval is not None else "",
            first.kind.replace("_", " "),
            f"{first.n_pulses:,}",
            rate,
            duration_text(first.duration_s),
            level,
        )
    out.print(trains)

    if verdict.findings:
        findings = Table(title="Findings", title_justify="left")
        for column in ("severity", "rule", "finding", "source"):
            findings.add_column(column)
        for finding in verdict.findings:
            label = "overridden" if finding.rule_id in verdict.overrides_used else str(finding.severity)
            findings.add_row(
                _severity_markup(label),
                escape(finding.rule_id),
                _finding_text(finding),
                escape(f"{finding.source} ({finding.status})"),
            )
        out.print(findings)
    for rule_id, why in verdict.overrides_rejected.items():
        out.print(f"[bold red]override {escape(rule_id)} not accepted:[/] {why}")


def _finding_text(finding: Finding) -> str:
    return escape(finding.message) + (
        f"\n[dim]→ {escape(finding.hint)}[/]" if finding.hint and finding.severity != Severity.INFO else ""
    )


def _target_text(protocol: Protocol) -> str:
    from tmsctl.lab.report import (
        target_text,  # one wording for the target: here, `session show` and the report
    )

    return target_text(protocol)


def _show_json(path: Path, verdict: Verdict) -> dict[str, Any]:
    schedule = verdict.schedule
    return {
        "file": str(path),
        **verdict.to_dict(),
        "schedule": {
            **schedule.summary(),
            "trains_detail": [
                {
                    "number": train.number,
                    "onset_s": train.onset_s,
                    "kind": train.kind,
                    "n_pulses": train.n_pulses,
                    "frequency_hz": train.frequency_hz,
                    "peak_frequency_hz": train.peak_frequency_hz,
                    "duration_s": train.duration_s,
                    "intensity_pct_mso": train.intensity_pct_mso,
                    "intensity_pct_of_reference": train.intensity_pct_of_reference,
                    "conditioning_intensity_pct_mso": train.conditioning_intensity_pct_mso,
                    "pulse_offsets_s": list(train.pulse_offsets_s),
                }
                for train in schedule.trains
            ],
        },
    }
