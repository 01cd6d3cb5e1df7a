"""``tmsctl run``, ``tmsctl sessions`` and ``tmsctl session show``: running and reviewing sessions."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import shlex
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from tmsctl.cli.common import (
    EXIT_ABORTED,
    EXIT_FAULT,
    EXIT_INCOMPLETE,
    DeviceOption,
    confirm_or_stop,
    err,
    fail,
    out,
    reported,
    sigterm_as_interrupt,
)
from tmsctl.cli.db import open_records
from tmsctl.core.errors import InvalidArgument, ProtocolFileNotFound, TmsError
from tmsctl.session.dose import DoseCount

if TYPE_CHECKING:  # the runner pulls in the protocol models; `tmsctl --help` should not wait for them
    from rich.panel import Panel

    from tmsctl.session.runner import Progress, SessionRunner

# The commands of this module, mounted on the top-level `tmsctl` app by tmsctl.cli.main.
app = typer.Typer()

DbOption = Annotated[
    str | None, typer.Option("--db", help="Records database: a file, or a postgresql:// URL (default: $TMSCTL_DB or the user data directory).")
]


SESSIONS_SHOWN = 50  # a table of a clinic's years of sessions would scroll for minutes


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class LivePanel:
    """The live view of a running session; rich re-renders it a few times a second."""

    def __init__(self, planned: Any) -> None:
        self.planned = planned
        self.progress: Progress | None = None
        self.runner: SessionRunner | None = None

    def __rich__(self) -> Panel:
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar

        p = self.progress
        schedule = self.planned.schedule
        clock = self.planned.clock
        title = f"{self.planned.protocol.id} on {self.planned.info.display_name}"
        if self.planned.simulated:
            title += " [yellow](SIMULATED)[/]"
        if p is None:
            return Panel("connecting…", title=title)
        now = clock.now()
        elapsed = now - p.session_start if p.session_start is not None else 0.0
        total = schedule.end_s
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        state_style = {"armed": "bold red", "stimulating": "bold red", "fault": "bold white on red"}.get(p.state, "green")
        table.add_row("state", Text(p.state.upper(), style=state_style))
        table.add_row("train", f"{min(p.next_index + 1, p.trains_total)} / {p.trains_total}")
        # The dose model's numbers, said as everywhere else: "41 of 160 (+ up to 4 uncertain)".
        dose = DoseCount(p.pulses_total, p.pulses_delivered, p.pulses_uncertain).describe()
        controller = self.runner.controller if self.runner else None
        running = controller.provisional_pulses() if controller is not None else None
        if running is not None:  # counted from the clock while the train runs; its outcome settles it
            dose += f"  · this train {running} so far (provisional)"
        table.add_row("pulses", dose)
        table.add_row("elapsed", f"{_fmt_duration(elapsed)}   remaining {_fmt_duration(max(0.0, total - elapsed))}")
        if p.next_onset is not None and p.next_onset > now:
            table.add_row("next train in", f"{p.next_onset - now:5.1f} s")
        if controller is not None and controller.coil_temperature_c is not None:
            table.add_row("coil", f"{controller.coil_temperature_c:.1f} °C")
        table.add_row("intensity", f"{schedule.intensity_pct_mso} %MSO")
        if p.last_fault:
            table.add_row("last fault", Text(p.last_fault, style="red"))
        bar = ProgressBar(total=max(1, p.pulses_total), completed=p.pulses_delivered + (running or 0), width=50)
        return Panel(Group(table, bar), title=title, subtitle="Ctrl-C pauses (disarmed) · twice ends the session")


def _first_train_to_run(planned: Any, point: Any) -> int:
    """0-based: a resume skips a train cut short (never repeated: never over-dose)."""
    return planned.start_index + (1 if point is not None and point.partial is not None else 0)


def _pulses_to_deliver(planned: Any, point: Any) -> int:
    return sum(t.n_pulses for t in planned.schedule.trains[_first_train_to_run(planned, point):])


def _show_plan(planned: Any, point: Any = None) -> None:
    s = planned.schedule
    table = Table(title=f"Plan: {planned.protocol.title}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("subject", planned.request.subject_id)
    table.add_row("device", f"{planned.info.display_name} ({planned.device.redacted})" + ("  SIMULATED" if planned.simulated else ""))
    table.add_row("intensity", f"{s.intensity_pct_mso} %MSO ({planned.protocol.intensity.scaling_pct:g} % {s.intensity_reference})")
    resume_id = planned.request.resume_session_id
    change = getattr(planned, "threshold_change", None)
    for t in s.thresholds_used:
        text = f"{t.reference} {t.value_pct_mso:g} %MSO"
        if change is not None:
            text += f" — CHANGED on resume from {change.recorded_pct_mso:g} %MSO (mt.rethreshold: {change.reason})"
        elif resume_id:
            text += f", as recorded with session {resume_id}"
        table.add_row("threshold", text)
    history = getattr(planned, "history", None)
    if planned.simulated:
        table.add_row("subject today", "not counted: a simulated session (real sessions ignore it too)")
    elif history is not None and not resume_id:
        last = history.minutes_since_last_start
        table.add_row(
            "subject today",
            f"{history.sessions_today} session(s), up to {history.pulses_today:,} pulses"
            + (f"; last session started {last:.0f} min ago" if last is not None else ""),
        )
    partial = None if point is None else point.partial
    start = _first_train_to_run(planned, point)
    remaining = len(s.trains) - start
    table.add_row("trains", f"{len(s.trains)}" + (f" ({remaining} remaining, from train {start + 1})" if start else ""))
    if partial is not None:
        table.add_row(
            f"train {partial.index + 1}",
            f"possibly delivered (up to {partial.pulses_at_most} pulses; {partial.pulses_delivered} of "
            f"{partial.pulses_planned} known): not repeated",
        )
    if start:
        done = DoseCount(s.total_pulses, planned.pulses_already_delivered, planned.pulses_already_uncertain)
        table.add_row("pulses", f"{s.total_pulses} planned; {done.describe()} delivered so far")
    else:
        table.add_row("pulses", f"{s.total_pulses}")
    table.add_row("duration", _fmt_duration(s.duration_s))
    table.add_row("protocol hash", planned.verdict.protocol_hash[:16] + "…")
    table.add_row("approval", planned.approval.detail if planned.approval.approved else f"NOT APPROVED — {planned.request.allow_unapproved_reason}")
    out.print(table)
    for f in planned.verdict.findings:
        colour = {"refuse": "red", "warn": "yellow"}.get(getattr(f.severity, "value", str(f.severity)), "dim")
        out.print(f"  [{colour}]{getattr(f.severity, 'value', f.severity)}[/] {f.rule_id}: {f.message}", highlight=False)


class _OperatorStop:
    """Ctrl-C and SIGTERM while a session runs, as a technician expects them.

    The first Ctrl-C asks the runner to pause: it disarms within one keep-alive and the session
    stays on record as paused, resumable. A second Ctrl-C, or SIGTERM at any time, asks it to end
    as an operator abort. Before the runner exists (planning, connecting) both interrupt at once,
    as before: nothing has been armed yet.

    The runner's requests take locks, which a signal handler must not wait on (it may have
    interrupted their holder), so the handler only puts the request on a re-entrant queue and a
    helper thread hands it to the runner.
    """

    def __init__(self) -> None:
        self.runner: SessionRunner | None = None
        self.pause_requested = False
        self.abort_requested = False
        self._requests: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._previous: dict[int, Any] = {}
        self._helper: threading.Thread | None = None

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.runner is None:
            raise KeyboardInterrupt
        if signum == signal.SIGINT and not self.pause_requested:
            self.pause_requested = True
            self._requests.put("pause")
        else:
            self.abort_requested = True
            self._requests.put("abort")

    def _hand_over(self) -> None:
        while (request := self._requests.get()) is not None:
            runner = self.runner
            if runner is None:
                continue
            if request == "pause":
                runner.request_pause("operator pause (Ctrl-C)")
            else:
                runner.request_abort("operator abort (second Ctrl-C or SIGTERM)")

    def __enter__(self) -> _OperatorStop:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._on_signal)
            self._helper = threading.Thread(target=self._hand_over, name="tmsctl-operator-stop", daemon=True)
            self._helper.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        if self._helper is not None:
            self._requests.put(None)
            self._helper.join(timeout=5)


def _parse_overrides(override: list[str] | None) -> dict[str, str]:
    overrides = {}
    for item in override or []:
        rule, sep, reason = item.partition("=")
        if not sep or not reason.strip():
            fail(InvalidArgument(f"--override wants RULE=REASON, got {item!r}"))
        overrides[rule.strip()] = reason.strip()
    return overrides


def _subject_option(value: str) -> str:
    """An unusable subject id is a usage error, refused before anything is opened or connected."""
    from tmsctl.records import validate_subject_id

    try:
        return validate_subject_id(value)
    except TmsError as exc:
        raise typer.BadParameter(f"{exc.message} ({exc.hint})" if exc.hint else exc.message) from None


def _refuse_closed_session(records: Any, session_id: str) -> Any:
    """A session that has ended (completed, incomplete, aborted) never runs again: said before connecting."""
    from tmsctl.records.model import ALLOWED_STATUS_CHANGES, SessionStatus
    from tmsctl.session.planned import SessionRefused

    session = records.session(session_id)
    status = SessionStatus(session.status)
    if SessionStatus.RUNNING not in ALLOWED_STATUS_CHANGES[status]:
        raise SessionRefused(
            f"session {session_id} is {status.value}: it has ended and cannot be resumed",
            hint="only a paused, faulted or interrupted session resumes; start a new session with `tmsctl run`",
        )
    return session


def _resume_command(session_id: str, db: str | Path | None, virtual_time: bool) -> str:
    """The command that resumes ``session_id``, to paste as it is (from any folder)."""
    from urllib.parse import urlsplit

    words = ["tmsctl", "resume", session_id]
    if db is not None and "://" in str(db):
        if urlsplit(str(db)).password is None:  # a server URL with a password is never printed (TMSCTL_DB)
            words += ["--db", str(db)]
    elif db is not None:
        words += ["--db", str(Path(db).expanduser().resolve())]
    if virtual_time:
        words.append("--virtual-time")
    return shlex.join(words)


def _run_session(
    *,
    protocol: Path,
    device: str,
    subject: str,
    mt: float | None,
    operator: str,
    overrides: dict[str, str],
    resume: str | None,
    allow_unapproved: str | None,
    dry_run: bool,
    yes: bool,
    virtual_time: bool,
    trigger: str,
    stimulator_serial: str | None,
    max_mt_age_days: float | None,
    db: str | Path | None,
    log_dir: Path | None,
    live: bool,
    records: Any = None,
    lsl: bool = False,
) -> None:
    """`tmsctl run` and `tmsctl resume`: plan, show, confirm, run with the live panel, say how it ended."""
    from tmsctl.session.controller import UNCONFIRMED_DISARM_WORDS
    from tmsctl.session.planned import SessionRefused, SessionRequest, plan_session, run_planned
    from tmsctl.session.runner import RunOutcome

    if trigger not in ("serial", "rts"):
        fail(InvalidArgument(f"--trigger must be serial or rts, got {trigger!r}"))
    with reported():
        if records is None:
            records = open_records(db)
        try:
            if resume:
                _refuse_closed_session(records, resume)
            request = SessionRequest(
                protocol, device, subject, operator=operator, mt_pct_mso=mt, overrides=overrides,
                resume_session_id=resume, virtual_time=virtual_time, trigger_source=trigger,
                allow_unapproved_reason=allow_unapproved, max_mt_age_days=max_mt_age_days,
                stimulator_serial=stimulator_serial,
                log_dir=log_dir or (Path(records.path).parent / "logs"),
            )
            try:
                planned = plan_session(request, records)
            except SessionRefused as exc:
                if exc.verdict is not None:
                    for f in exc.verdict.findings:
                        err.print(f"  {getattr(f.severity, 'value', f.severity)} {f.rule_id}: {f.message}", highlight=False)
                raise
            if not resume:
                # A subject under a course runs only what the course prescribes, when it allows.
                records.courses.check_session_start(subject, planned.verdict.protocol_hash, planned.clock.wall())
            if planned.clock.is_virtual and planned.simulated:
                # A rehearsal on virtual time is recorded at its virtual times (a 37-minute session
                # lasts 37 minutes on record, a simulated course spans its days), not at the moments
                # the host happened to compute it.
                records.close()
                records = open_records(db, clock=planned.clock)
            point = records.resume_point(resume) if resume else None
            _show_plan(planned, point)
            if dry_run:
                out.print("[bold]dry run[/]: nothing was armed or recorded")
                return
            if not yes:
                confirm_or_stop(
                    f"Arm {planned.info.display_name} and stimulate subject {subject} "
                    f"({_pulses_to_deliver(planned, point)} pulses)?"
                )
            panel = LivePanel(planned)

            def on_progress(p: Progress) -> None:
                panel.progress = p

            listeners = [_open_lsl_markers(planned)] if lsl else []
            with _OperatorStop() as stop:

                def on_runner(r: SessionRunner) -> None:
                    panel.runner = r
                    stop.runner = r
                    if lsl:
                        from tmsctl.lab.api import attach_session_events

                        attach_session_events(r)  # train and pulse markers, coil readings included
                    else:
                        _log_coil_temperatures(r.controller)

                if live:
                    from rich.live import Live  # only a run draws it: `sessions` need not load it

                    with Live(panel, console=out, refresh_per_second=8, transient=False):
                        session_id, result = run_planned(
                            planned, records, listeners=listeners, on_progress=on_progress, on_runner=on_runner)
                    if not out.is_terminal:
                        # rich ends a live display with a newline only on a terminal (rich #4192):
                        # in a log file the summary would run on from the panel's last line.
                        out.line()
                else:
                    session_id, result = run_planned(
                        planned, records, listeners=listeners, on_progress=on_progress, on_runner=on_runner)
            if result.outcome is RunOutcome.PAUSED and stop.abort_requested:
                # The second Ctrl-C (or SIGTERM) came while the pause was being taken: it ends the session.
                records.abort_session(session_id, operator=operator, reason="operator abort (second Ctrl-C or SIGTERM)")
                result = dataclasses.replace(result, outcome=RunOutcome.ABORTED, reason="operator abort (second Ctrl-C or SIGTERM)")
        finally:
            records.close()
    dose = DoseCount(planned.schedule.total_pulses, result.pulses_delivered, result.pulses_uncertain)
    summary = f"session {session_id}: {result.outcome.value}, {dose.describe()} pulses delivered"
    if result.outcome is RunOutcome.COMPLETED:
        out.print(f"[bold green]{summary}[/]", highlight=False)
        return
    if result.outcome is RunOutcome.INCOMPLETE:
        err.print(
            f"[bold yellow]{summary}[/]: the schedule ran to its end, but not every train is known delivered "
            f"in full (`tmsctl session show {session_id}` says which)",
            highlight=False,
        )
        raise typer.Exit(EXIT_INCOMPLETE)
    colour = "bold yellow" if result.outcome is RunOutcome.PAUSED else "bold red"
    err.print(f"[{colour}]{summary}[/]" + (f": {result.reason}" if result.reason else ""), highlight=False)
    resume_with = _resume_command(session_id, db, virtual_time)
    # "disarmed" only when the device said so
    disarmed = "the device is disarmed" if not result.disarm_unconfirmed else (
        f"[bold red]WARNING: {UNCONFIRMED_DISARM_WORDS}[/]"
    )
    if result.outcome is RunOutcome.ABORTED:
        err.print(f"{disarmed}; the operator abort is recorded and ends this session", highlight=False)
    elif result.outcome is RunOutcome.PAUSED:
        err.print(
            f"{disarmed} and the session is paused; to continue it, resume with: " + resume_with,
            highlight=False,
            soft_wrap=True,  # a command to copy: hard line breaks inside it would run half of it
        )
        choice = _after_pause(session_id, db, operator)
        if choice == "resume":
            _run_session(
                protocol=protocol, device=device, subject=subject, mt=mt, operator=operator, overrides=overrides,
                resume=session_id, allow_unapproved=allow_unapproved, dry_run=False, yes=True,
                virtual_time=virtual_time, trigger=trigger, stimulator_serial=stimulator_serial,
                max_mt_age_days=max_mt_age_days, db=db, log_dir=log_dir, live=live, lsl=lsl,
            )
            return
    else:
        err.print(
            f"{disarmed}; after checking the cause, resume with: " + resume_with,
            highlight=False,
            soft_wrap=True,
        )
    raise typer.Exit(EXIT_ABORTED if result.outcome in (RunOutcome.ABORTED, RunOutcome.PAUSED) else EXIT_FAULT)


def _open_lsl_markers(planned: Any) -> Any:
    """The LSL marker stream (docs/lsl-markers.md), open before the first trigger so recorders find it."""
    from tmsctl.lab.lsl import open_lsl_markers

    serial = planned.info.details.get("serial_number") or planned.info.details.get("serial")
    source = f"tmsctl:{planned.info.model}" + (f":{serial}" if serial else "")
    markers = open_lsl_markers(source_id=source, clock=planned.clock,
                               metadata={"device_model": planned.info.model, "protocol": planned.protocol.id})
    out.print(f"LSL markers: stream tmsctl_markers, source_id {source}", highlight=False)
    return markers


def _log_coil_temperatures(controller: Any) -> None:
    """After each trigger, a changed coil reading goes to the listeners (the session's audit log, which
    the report plots), as the embedding API does."""
    from tmsctl.lab.api import CoilTemperature

    earlier = controller.on_delivered
    last: list[float | None] = [None]

    def on_delivered(delivery: Any) -> None:
        if earlier is not None:
            earlier(delivery)
        reading = controller.coil_temperature_c
        if reading is not None and reading != last[0]:
            last[0] = reading
            controller.dispatcher.emit(
                CoilTemperature(t_mono=controller.clock.now(), t_wall=controller.clock.wall(), temperature_c=reading)
            )

    controller.on_delivered = on_delivered


def _after_pause(session_id: str, db: str | Path | None, operator: str) -> str:
    """At a terminal, ask what a paused session does next: resume now, end it, or stay paused.

    Returns "resume", "end" (recorded as an operator abort) or "leave". Without a terminal (a
    script, a log) the session stays paused and the command exits.
    """
    import sys

    if not (sys.stdin.isatty() and out.is_terminal):
        return "leave"
    question = "[bold]r[/] resume now · [bold]e[/] end the session (Ctrl-C too) · [bold]Enter[/] leave it paused: "
    try:
        with sigterm_as_interrupt():
            out.print(question, end="")
            answer = _read_line_interruptibly().strip().lower()
    except EOFError:
        answer = ""
    except KeyboardInterrupt:  # the second Ctrl-C
        out.line()
        answer = "e"
    if answer.startswith("r"):
        return "resume"
    if not answer.startswith("e"):
        return "leave"
    with reported():
        records = open_records(db)
        try:
            records.abort_session(session_id, operator=operator, reason="operator abort (after a pause)")
        finally:
            records.close()
    err.print(f"session {session_id}: aborted; the operator abort is recorded and ends this session", highlight=False)
    return "end"


def _read_line_interruptibly() -> str:
    """A line from the terminal, waiting in short slices.

    A signal may be delivered to another thread (one the driver or the simulator left), and then
    a blocking read in the main thread would not see Ctrl-C or SIGTERM until Enter; between
    slices Python runs the handlers.
    """
    import select
    import sys

    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        if ready:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line


SubjectOption = Annotated[
    str, typer.Option("--subject", "-s", callback=_subject_option, help="Pseudonymous subject id, e.g. S017.")
]
MtOption = Annotated[
    float | None, typer.Option("--mt", help="Motor threshold in %MSO measured today (else the latest on record).")
]
OperatorOption = Annotated[str, typer.Option("--operator", help="Who runs the session (recorded).")]
OverrideOption = Annotated[
    list[str] | None, typer.Option("--override", help="RULE=REASON: lift a guideline warning (recorded).")
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Check and show the plan; touch nothing.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (scripts).")]
VirtualTimeOption = Annotated[
    bool, typer.Option("--virtual-time", help="Simulators only: run the session on a virtual clock (seconds, not minutes).")
]
TriggerOption = Annotated[
    str, typer.Option("--trigger", help="How each train is triggered: serial (a command) or rts (the RTS line).")
]
LogDirOption = Annotated[
    Path | None, typer.Option("--log-dir", help="Where the JSON-lines audit log goes (default: beside the database).")
]
LiveOption = Annotated[
    bool, typer.Option("--live/--no-live", help="Show the live panel (--no-live: only the plan and the summary).")
]


@app.command()
def run(
    protocol: Annotated[Path, typer.Argument(help="Protocol file (YAML).", exists=False)],
    device: DeviceOption,
    subject: SubjectOption,
    mt: MtOption = None,
    operator: OperatorOption = os.environ.get("USER", "operator"),  # noqa: B008 - read as the command starts
    override: OverrideOption = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="Continue an interrupted session with this id (`tmsctl resume ID` needs less)."),
    ] = None,
    allow_unapproved: Annotated[
        str | None,
        typer.Option("--allow-unapproved", help="REASON: run a protocol nobody approved (the reason is recorded)."),
    ] = None,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    virtual_time: VirtualTimeOption = False,
    trigger: TriggerOption = "serial",
    stimulator_serial: Annotated[
        str | None, typer.Option("--stimulator-serial", help="Use only motor thresholds measured on this unit.")
    ] = None,
    max_mt_age_days: Annotated[
        float | None, typer.Option("--max-mt-age-days", help="Stricter limit on the age of a recorded motor threshold.")
    ] = None,
    db: DbOption = None,
    log_dir: LogDirOption = None,
    live: LiveOption = True,
    lsl: Annotated[
        bool, typer.Option("--lsl", help="Publish LSL markers (train start and end, pulses; docs/lsl-markers.md).")
    ] = False,
) -> None:
    """Run a protocol session: check, show the plan, confirm, then stimulate with a live panel.

    Ctrl-C pauses (the device is disarmed, the session stays resumable and the command to resume
    it is printed); a second Ctrl-C, or SIGTERM, ends it as an operator abort.
    """
    if not protocol.is_file():
        fail(ProtocolFileNotFound(
            "no such file" if not protocol.exists() else "this is a folder, not a protocol file",
            path=str(protocol), hint="check the path; `ls protocols/library` lists the library's protocols",
        ))
    _run_session(
        protocol=protocol, device=device, subject=subject, mt=mt, operator=operator,
        overrides=_parse_overrides(override), resume=resume, allow_unapproved=allow_unapproved, dry_run=dry_run,
        yes=yes, virtual_time=virtual_time, trigger=trigger, stimulator_serial=stimulator_serial,
        max_mt_age_days=max_mt_age_days, db=db, log_dir=log_dir, live=live, lsl=lsl,
    )


@app.command()
def resume(
    session_id: Annotated[str, typer.Argument(help="The session to continue (see `tmsctl sessions`).")],
    device: Annotated[
        str | None,
        typer.Option(
            "--device", "-d",
            help="Device URL, when it changed since (e.g. the port after re-plugging); default: as recorded.",
        ),
    ] = None,
    mt: Annotated[
        float | None,
        typer.Option("--mt", help="A new motor threshold in %MSO (needs --override mt.rethreshold=REASON)."),
    ] = None,
    operator: OperatorOption = os.environ.get("USER", "operator"),  # noqa: B008 - read as the command starts
    override: OverrideOption = None,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    virtual_time: VirtualTimeOption = False,
    trigger: TriggerOption = "serial",
    db: DbOption = None,
    log_dir: LogDirOption = None,
    live: LiveOption = True,
) -> None:
    """Continue a paused, faulted or interrupted session where it stopped.

    The protocol, the subject, the device and the threshold are the session's own, as recorded;
    so are the reasons recorded for its overrides and for running it unapproved. No train that
    started is repeated.
    """
    from tmsctl.session.approval import APPROVAL_RULE_ID
    from tmsctl.session.planned import RETHRESHOLD_RULE_ID

    overrides = _parse_overrides(override)
    with reported():
        records = open_records(db)
        try:
            session = _refuse_closed_session(records, session_id)
            recorded = records.session_detail(session_id).overrides
            url = device or session.device_url
            if device is None and _REDACTED_SECRET.search(url):
                raise InvalidArgument(
                    f"session {session_id} was recorded with its device's unlock code left out ({url})",
                    hint="give the device URL again with --device, its unlock code as unlock=env:VARIABLE",
                )
            protocol_dir = Path(tempfile.mkdtemp(prefix="tmsctl-resume-"))
        except BaseException:
            records.close()
            raise
    try:
        protocol = protocol_dir / f"{session.protocol_id}.yaml"
        protocol.write_text(session.protocol_text, encoding="utf-8")
        allow_unapproved = next((o.reason for o in recorded if o.rule_id == APPROVAL_RULE_ID), None)
        kept = {o.rule_id: o.reason for o in recorded if o.rule_id not in (APPROVAL_RULE_ID, RETHRESHOLD_RULE_ID)}
        _run_session(
            protocol=protocol, device=url, subject=session.subject_id, mt=mt, operator=operator,
            overrides={**kept, **overrides}, resume=session_id, allow_unapproved=allow_unapproved, dry_run=dry_run,
            yes=yes, virtual_time=virtual_time, trigger=trigger, stimulator_serial=None, max_mt_age_days=None,
            db=db, log_dir=log_dir, live=live, records=records,
        )
    finally:
        shutil.rmtree(protocol_dir, ignore_errors=True)


# An unlock code left out of a recorded URL by an older version (today an env:NAME reference is kept).
_REDACTED_SECRET = re.compile(r"(?i)[?&]unlock=(?:\*\*\*|REDACTED)")


@app.command()
def sessions(
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject.")] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (every session unless --limit).")] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help=f"Only the newest N (0: all). Default: {SESSIONS_SHOWN} in the table, all with --json."),
    ] = None,
) -> None:
    """List recorded sessions, oldest first, with their pulses: known delivered (+ uncertain) / planned."""
    if limit is not None and limit < 0:
        fail(InvalidArgument(f"--limit must be 0 (all) or a positive number, got {limit}"))
    if limit is None:  # noqa: SIM108 - one line per case, each with its reason
        newest = None if as_json else SESSIONS_SHOWN  # a script asking for JSON gets everything
    else:
        newest = limit or None  # 0: all
    with reported():
        records = open_records(db, read_only=True)
        try:
            found = records.sessions(subject_id=subject, newest=newest)
            maybe_more = newest is not None and len(found) == newest
            total = records.count_sessions(subject_id=subject) if maybe_more else len(found)
            # The same aggregate `session show` and a resume read: one number per session.
            points = {s.session_id: records.resume_point(s.session_id) for s in found}
        finally:
            records.close()
    rows: list[dict[str, Any]] = [
        {
            "session": s.session_id, "subject": s.subject_id, "protocol": s.protocol_id,
            "status": getattr(s.status, "value", s.status), "simulated": s.simulated,
            "started": s.started_at.isoformat() if s.started_at else None,
            "device": s.device_model,
            "pulses_planned": s.planned_pulses,
            "pulses_delivered": points[s.session_id].pulses_delivered,
            "pulses_uncertain": points[s.session_id].pulses_uncertain,
        }
        for s in found
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    from rich import box

    table = Table(title="Sessions", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("session", "subject", "protocol", "status", "pulses", "device", "started"):
        table.add_column(col, no_wrap=col in ("session", "status", "pulses"))
    for s, r in zip(found, rows):
        uncertain = f" (+{r['pulses_uncertain']})" if r["pulses_uncertain"] else ""
        table.add_row(
            r["session"], r["subject"], r["protocol"], r["status"],
            f"{r['pulses_delivered']}{uncertain} / {r['pulses_planned']}",
            r["device"] + (" (SIMULATED)" if r["simulated"] else ""),
            f"{s.started_at:%Y-%m-%d %H:%M}" if s.started_at else "",
        )
    out.print(table)
    if total > len(rows):
        out.print(f"the newest {len(rows)} of {total:,} sessions; --limit 0 lists them all", highlight=False)


session_app = typer.Typer(help="One recorded session.", no_args_is_help=True)
app.add_typer(session_app, name="session")


@session_app.command("show")
def session_show(
    session_id: Annotated[str, typer.Argument(help="Session id (see `tmsctl sessions`).")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Everything recorded about one session: what a clinician documents."""
    from tmsctl.lab.report import session_facts, session_report, train_lines

    with reported():
        records = open_records(db, read_only=True)
        try:
            r = session_report(records, session_id)
        finally:
            records.close()
    if as_json:
        out.print_json(json.dumps(_session_json(r), default=str))
        return
    out.print(
        f"[bold]session {r.session_id}[/] — subject {r.subject_id}, protocol {r.protocol_id}, {r.status}"
        + (" [yellow](SIMULATED)[/]" if r.simulated else ""),
        highlight=False,
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    for label, value in session_facts(r):
        facts.add_row(Text(label, style="dim" if label.startswith("  ") else "bold"), Text(value))
    out.print(facts)
    trains = Table(title="per train", title_justify="left", box=None, padding=(0, 2))
    for col in ("train", "pulses", "ended", "evidence"):
        trains.add_column(col)
    for row in train_lines(r):
        trains.add_row(*row)
    if r.trains:
        out.print(trains)
    for f in r.faults:
        at = "" if f.offset_s is None else f" at {f.offset_s / 60:.2f} min"
        out.print(f"  [red]fault[/]{at}: {f.cause} ({f.code}: {f.detail})", highlight=False)
    for o in r.overrides:
        out.print(f"  override {o.rule_id} by {o.operator}: {o.reason} (finding: {o.finding})", highlight=False)
    for kind, operator, reason in r.actions:
        out.print(f"  action {kind} by {operator}" + (f": {reason}" if reason else ""), highlight=False)


def _session_json(r: Any) -> dict[str, Any]:
    """`session show --json`: train numbers 1-based (``train``); ``next_index`` stays the 0-based position."""
    return {
        "session": r.session_id, "subject": r.subject_id, "protocol": r.protocol_id, "status": r.status,
        "simulated": r.simulated,
        "pulses_planned": r.planned_pulses, "pulses_delivered": r.pulses_delivered,
        "pulses_uncertain": r.pulses_uncertain, "pulses": r.dose.describe(),
        "next_index": r.next_index, "next_train": None if r.finished else (
            r.partial.number + 1 if r.partial is not None else r.next_index + 1),
        "deliveries": len(r.trains), "trains_planned": r.planned_deliveries,
        "trains": [
            {"train": t.number, "attempt": t.attempt, "state": t.state, "pulses_planned": t.pulses_planned,
             "pulses_delivered": t.pulses_delivered, "pulses_uncertain": t.pulses_uncertain, "evidence": t.evidence,
             "intensity_pct_mso": t.intensity_pct_mso, "intensity_pct_threshold": r.pct_of_threshold(t.intensity_pct_mso),
             "resolution": t.resolution}
            for t in r.trains
        ],
        "protocol_title": r.protocol_title, "parameters": dict(r.parameters),
        "prescribed_intensity": r.prescribed_intensity,
        "thresholds": [
            {"reference": t.reference, "value_pct_mso": t.value_pct_mso, "method": t.method, "coil": t.coil,
             "stimulator": t.stimulator, "measured_at": t.measured_at, "entered_for_session": t.method is None}
            for t in r.thresholds
        ],
        "coil": r.coil, "target": r.target, "operators": list(r.operators),
        "device": r.device_model, "device_url": r.device_url, "device_serial": r.device_serial,
        "device_firmware": r.device_firmware, "started_at": r.started_at, "ended_at": r.ended_at,
        "faults": [f"{f.code}: {f.detail}" for f in r.faults],
        "fault_causes": [{"offset_s": f.offset_s, "code": f.code, "detail": f.detail, "cause": f.cause} for f in r.faults],
        "overrides": [{"rule": o.rule_id, "finding": o.finding, "operator": o.operator, "reason": o.reason}
                      for o in r.overrides],
    }
