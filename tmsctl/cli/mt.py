"""``tmsctl mt``: hunt a motor threshold on a stimulator and record it for the protocols.

The technician places the coil on the hot spot; tmsctl chooses and sets each intensity, fires
one pulse, and asks "MEP? (y/n or amplitude like 65uV)". A garbled entry is refused with the
reason and asked again — the pulse is not lost and not repeated. With ``--simulated-subject``
(simulators only) a seeded simulated subject answers instead, so the command runs unattended.

The command module is mounted by :mod:`tmsctl.cli.main` (``app.add_typer(cli_mt.app)``); it imports
``tmsctl.cli.main`` only inside the command, because ``tmsctl.cli.main`` imports this module while it loads.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import replace
from fractions import Fraction
from typing import Annotated, Any

import typer

__all__ = ["app"]

app = typer.Typer(add_completion=False)

MEP_PROMPT = "MEP? (y/n or amplitude like 65uV)"


class _InputEnded(KeyboardInterrupt):
    """Standard input closed while an MEP entry was awaited: the operator has gone; stop safely."""


@app.command("mt")
def mt(
    device: Annotated[
        str,
        typer.Option(
            "--device", "-d", envvar="TMSCTL_DEVICE",
            help="Device URL, e.g. magstim-rapid2:///dev/ttyUSB0 or sim://rapid2",
        ),
    ],
    subject: Annotated[str, typer.Option("--subject", "-s", help="Pseudonymous subject id.")],
    coil: Annotated[
        str,
        typer.Option(
            "--coil", help="Coil FAMILY or FAMILY/MODEL, e.g. figure8 or 'figure8/D70 Alpha': the threshold "
            "belongs to this coil.",
        ),
    ],
    method: Annotated[
        str, typer.Option("--method", help="ml-pest (about 20 pulses), ml-amplitude (ML-PEST's pulses, the "
                             "threshold fitted to the measured MEP amplitudes; needs amplitudes, e.g. --emg) or "
                             "5of10 (IFCN relative frequency).")
    ] = "ml-pest",
    reference: Annotated[
        str, typer.Option("--reference", help="rMT (at rest, MEP ≥ 50 µV) or aMT (slight contraction, ≥ 200 µV).")
    ] = "rMT",
    start: Annotated[
        int, typer.Option("--start", help="First intensity, %MSO (e.g. the hot-spot search intensity).")
    ] = 50,
    operator: Annotated[str, typer.Option("--operator", help="Who measures (recorded).")] = os.environ.get(
        "USER", "operator"
    ),
    db: Annotated[
        str | None, typer.Option("--db", help="Records database: a file, or a postgresql:// URL (default: $TMSCTL_DB or the user data directory).")
    ] = None,
    stimulator_serial: Annotated[
        str | None,
        typer.Option(
            "--stimulator-serial",
            help="The stimulator's serial number from its label (Magstim units do not report it); required for "
            "real devices, SIM-<profile> for simulators.",
        ),
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", help="ML-PEST, ml-amplitude: pulses per hunt (default 20); 5of10: the cap (200).")
    ] = None,
    iti: Annotated[float, typer.Option("--iti", help="Seconds between pulses (mean).")] = 5.0,
    iti_jitter: Annotated[float, typer.Option("--iti-jitter", help="± seconds of random jitter on --iti.")] = 1.0,
    simulated_subject: Annotated[
        int | None,
        typer.Option("--simulated-subject", metavar="SEED", help="Simulators only: a seeded simulated subject answers."),
    ] = None,
    simulated_threshold: Annotated[
        float | None,
        typer.Option(
            "--simulated-threshold", metavar="PCT",
            help="The simulated subject's true threshold, %MSO (default: drawn from the seed).",
        ),
    ] = None,
    virtual_time: Annotated[
        bool, typer.Option("--virtual-time", help="Simulators only: run on a virtual clock (seconds, not minutes).")
    ] = False,
    emg: Annotated[
        str | None,
        typer.Option(
            "--emg", metavar="lsl:NAME|file:PATH|sim",
            help="Measure each MEP from EMG instead of asking: an LSL stream by name, a tmsctl-emg/1 "
            "recording (its .json sidecar) to replay, or sim (with --simulated-subject: the simulated "
            "subject's EMG, answering the simulator's true pulses).",
        ),
    ] = None,
    emg_channel: Annotated[
        str | None, typer.Option("--emg-channel", help="LSL channel label (default: the first channel).")
    ] = None,
    muscle: Annotated[str, typer.Option("--muscle", help="Target muscle (recorded with each MEP).")] = "FDI",
    mep_window: Annotated[
        str, typer.Option("--mep-window", metavar="START-END", help="MEP window after the pulse, ms.")
    ] = "15-50",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Hunt a motor threshold (ML-PEST, ml-amplitude or 5 of 10) and record it for this subject, stimulator and coil."""
    from tmsctl.cli.common import (
        EXIT_REFUSED,
        confirm_or_stop,
        err,
        exit_code_for,
        reported,
        sigterm_as_interrupt,
    )
    from tmsctl.cli.db import open_records
    from tmsctl.clinic.mt_session import (
        HuntSettings,
        HuntStopped,
        MtRequest,
        check_request,
        make_procedure,
        parse_coil,
        run_mt,
    )
    from tmsctl.core.errors import InvalidArgument

    with reported():
        if simulated_threshold is not None and simulated_subject is None:
            raise InvalidArgument(
                "--simulated-threshold needs --simulated-subject SEED", hint="e.g. --simulated-subject 7 "
                "--simulated-threshold 47.3"
            )
        request = MtRequest(
            device_url=device, subject_id=subject, coil=parse_coil(coil), method=method, reference=reference,
            start_pct_mso=start, operator=operator, stimulator_serial=stimulator_serial, virtual_time=virtual_time,
            max_trials=trials, settings=HuntSettings(inter_trial_interval_s=iti, inter_trial_jitter_s=iti_jitter),
        )
        device_url, _serial = check_request(request)
        simulated = None
        if simulated_subject is not None:
            if not device_url.is_simulator:
                raise InvalidArgument(
                    "a simulated subject answers only for a simulated stimulator (sim://…)",
                    hint="with a real stimulator the technician enters each MEP; leave --simulated-subject out",
                )
            simulated = _simulated_subject(simulated_subject, simulated_threshold, reference)
            request = replace(
                request,
                method_note=(
                    f"simulated subject seed {simulated_subject}, true threshold "
                    f"{simulated.threshold_pct_mso:.2f} %MSO"
                ),
            )
        responder = None
        sim_emg_config = None
        rig_stack = contextlib.ExitStack()
        if emg == "sim":
            if simulated is None:
                raise InvalidArgument(
                    "--emg sim measures the MEPs of a simulated subject's EMG: it needs --simulated-subject SEED",
                    hint="e.g. --simulated-subject 7 --emg sim",
                )
            sim_emg_config = muscle_config(muscle, mep_window, reference)
        elif emg is not None:
            if simulated_subject is not None:
                raise InvalidArgument(
                    "--emg lsl:/file: and --simulated-subject both answer the MEPs; give one of them",
                    hint="--simulated-subject SEED --emg sim measures the simulated subject's own EMG",
                )
            responder = _emg_responder(emg, emg_channel, muscle, mep_window, reference, virtual_time)
        request = replace(request, muscle=muscle)
        pulses_at_most = make_procedure(
            method, start_pct_mso=start, reference=reference, max_trials=trials
        ).max_trials
        records = open_records(db)
        try:
            if not yes:
                confirm_or_stop(
                    f"Take remote control of {device_url.redacted} and hunt the {reference} of subject {subject} "
                    f"with {method} (up to {pulses_at_most} single pulses)?"
                )
            if sim_emg_config is not None:
                from tmsctl.clinic.responder import EmgResponder
                from tmsctl.clinic.simulated import simulated_emg_rig

                assert simulated_subject is not None  # --emg sim needs the simulated subject (checked above)
                rig = rig_stack.enter_context(
                    simulated_emg_rig(device_url, simulated, seed=simulated_subject, virtual_time=virtual_time)
                )
                request = replace(request, device_url=rig.url,
                                  method_note=f"{request.method_note}; MEPs measured from its simulated EMG")
                responder = EmgResponder(rig.source, sim_emg_config)
            view = _HuntView(simulated)
            respond = responder if responder is not None else view.respond
            try:
                with sigterm_as_interrupt():
                    outcome = run_mt(
                        request, respond, records, rng=_jitter_rng(simulated_subject),
                        on_connected=view.connected, on_fired=view.fired,
                        on_trial=view.trial, on_bad_entry=view.bad_entry, on_notice=view.notice,
                        on_rejected=view.rejected,
                    )
            except HuntStopped as exc:
                view.show_table(exc.trials, title="Trials before the hunt stopped")
                err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
                if exc.hint:
                    err.print(f"[yellow]what to do:[/] {exc.hint}", highlight=False, soft_wrap=True)
                _say_stopped_hunt_kept(exc.recorded, exc.record_error, exc.pulses_delivered)
                raise typer.Exit(exit_code_for(exc.cause)) from None
            except _InputEnded:
                err.print("\nno MEP entry: the input ended. The stimulator was disarmed and released; no threshold "
                          "was recorded; the pulses given are kept on record as a stopped hunt.", highlight=False)
                raise
        finally:
            records.close()
            rig_stack.close()
        view.show_table(outcome.hunt.trials, title="Trials")
        if outcome.recorded is None:
            err.print(
                f"[bold red]not recorded:[/] the hunt did not converge: {outcome.hunt.result.stop_reason}",
                highlight=False, soft_wrap=True,
            )
            err.print(
                "[yellow]what to do:[/] check the coil on the hot spot and the start intensity, then hunt again",
                highlight=False,
            )
            raise typer.Exit(EXIT_REFUSED)
        _report(outcome, request, simulated)


def _say_stopped_hunt_kept(recorded: Any | None, record_error: Any | None, pulses: int) -> None:
    from tmsctl.cli.common import err

    if recorded is not None:
        err.print(f"the {pulses} pulse{'s' if pulses != 1 else ''} given are kept on record as stopped hunt "
                  f"#{recorded.measurement_id} (`mep_measurements`, kind mt_stopped)", highlight=False, soft_wrap=True)
    elif record_error is not None:
        err.print(f"[bold red]the stopped hunt could not be recorded:[/] {record_error.message}", highlight=False,
                  soft_wrap=True)


def muscle_config(muscle: str, window: str, reference: str) -> Any:
    """The detector's settings from --muscle and --mep-window; at rest the muscle must be quiet."""
    from tmsctl.clinic.mep import MuscleConfig
    from tmsctl.core.errors import InvalidArgument

    start, _, end = window.partition("-")
    try:
        start_ms, end_ms = float(start), float(end)
    except ValueError:
        raise InvalidArgument(f"--mep-window {window!r} is not START-END in ms", hint="e.g. 15-50") from None
    # At rest the background must be quiet; during an active MT the muscle contracts on purpose.
    return MuscleConfig(muscle, start_ms, end_ms, background_limit_uv=50.0 if reference == "rMT" else None)


def _emg_responder(spec: str, channel: str | None, muscle: str, window: str, reference: str,
                   virtual_time: bool) -> Any:
    from tmsctl.clinic.emg import open_emg_source
    from tmsctl.clinic.responder import EmgResponder
    from tmsctl.core.clock import SystemClock
    from tmsctl.core.errors import InvalidArgument

    config = muscle_config(muscle, window, reference)
    if spec.startswith("lsl:") and virtual_time:
        raise InvalidArgument("an LSL EMG stream runs in real time", hint="leave --virtual-time out")
    return EmgResponder(open_emg_source(spec, SystemClock(), channel=channel), config)


def _jitter_rng(simulated_seed: int | None) -> random.Random:
    """A simulation is reproducible end to end (its pulse times too); a real hunt's jitter is not."""
    return random.Random(f"mt-iti-{simulated_seed}") if simulated_seed is not None else random.Random()


def _simulated_subject(seed: int, threshold_pct_mso: float | None, reference: str) -> Any:
    from tmsctl.clinic.mt_session import muscle_state_for
    from tmsctl.clinic.threshold import CRITERIA
    from tmsctl.simulators.subject import RecruitmentCurve, SimulatedSubject

    criterion = CRITERIA[muscle_state_for(reference)].amplitude_uv
    if threshold_pct_mso is None:
        return SimulatedSubject.sample(seed, criterion_uv=criterion)
    return SimulatedSubject(RecruitmentCurve(threshold_pct_mso=threshold_pct_mso, criterion_uv=criterion), seed=seed)


class _HuntView:
    """What the technician sees during a hunt; answers the MEP question (or lets the simulation)."""

    def __init__(self, simulated: Any | None) -> None:
        from tmsctl.cli.common import out

        self.out = out
        self.simulated = simulated
        self.display_name = ""

    def connected(self, info: Any) -> None:
        label = f"{info.display_name} ({info.model})" + (" [yellow]SIMULATED[/]" if info.simulated else "")
        self.display_name = info.display_name
        self.out.print(f"connected to {label}; remote control taken", highlight=False)
        if self.simulated is not None:
            self.out.print("[yellow]simulated subject[/]: MEPs are answered by the simulation", highlight=False)

    def fired(self, pending: Any) -> None:
        self.out.print(f"trial {pending.index:>3}: {pending.intensity_pct_mso:>3} %MSO — pulse delivered", highlight=False)

    def respond(self, pending: Any) -> Any:
        """Runs in the hunt's helper thread; the controller is serviced meanwhile."""
        from tmsctl.clinic.threshold import MepResponse, parse_mep_entry

        if self.simulated is not None:
            return MepResponse.of_amplitude(self.simulated.mep_uv(pending.intensity_pct_mso))
        try:
            text = typer.prompt(f"  {MEP_PROMPT}", prompt_suffix=" ")
        except (typer.Abort, EOFError):  # stdin closed (Ctrl-D, a script's input ran out)
            raise _InputEnded() from None
        return parse_mep_entry(text)

    def trial(self, trial: Any) -> None:
        mark = "[green]response[/]" if trial.responded else "[dim]no response[/]"
        estimate = "" if trial.estimate_pct_mso is None else f", estimate {trial.estimate_pct_mso:.1f} %MSO"
        self.out.print(f"           MEP {trial.response.describe()}: {mark}{estimate}", highlight=False)

    def bad_entry(self, pending: Any, exc: Any) -> None:
        from tmsctl.cli.common import err

        line = f"  [red]not accepted:[/] {exc.message}"
        if exc.hint:
            line += f" — {exc.hint}"
        err.print(line, highlight=False, soft_wrap=True)
        err.print(f"  (pulse {pending.index} at {pending.intensity_pct_mso} %MSO: enter its MEP again)", highlight=False)

    def rejected(self, entry: Any) -> None:
        from tmsctl.cli.common import err

        err.print(f"           [yellow]trial rejected[/]: {entry.measurement.detail}; the pulse is given again",
                  highlight=False, soft_wrap=True)

    def notice(self, text: str) -> None:
        from tmsctl.cli.common import err

        err.print(f"[yellow]{text}[/]", highlight=False, soft_wrap=True)

    def show_table(self, trials: Any, *, title: str) -> None:
        from rich.table import Table

        if not trials:
            return
        table = Table(title=title)
        for column, justify in (("#", "right"), ("%MSO", "right"), ("MEP", "left"), ("response", "left"),
                                ("estimate %MSO", "right"), ("t (s)", "right"), ("entries", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for t in trials:
            table.add_row(
                str(t.index), str(t.intensity_pct_mso), t.response.describe(), "yes" if t.responded else "no",
                "" if t.estimate_pct_mso is None else f"{t.estimate_pct_mso:.1f}", f"{t.fired_offset_s:.1f}",
                str(t.entry_attempts),
            )
        self.out.print(table)


def _report(outcome: Any, request: Any, simulated: Any | None) -> None:
    from tmsctl.cli.common import out
    from tmsctl.protocols.thresholds import exact_pct_mso, round_half_up
    from tmsctl.session.planned import coil_key

    hunt = outcome.hunt
    result = hunt.result
    recorded = outcome.recorded
    value = recorded.value_pct_mso
    ref = request.reference
    out.print(
        f"[bold green]{ref} = {value:g} %MSO[/] ({result.method}, {len(result.trials)} pulses; {result.stop_reason})",
        highlight=False,
    )
    if simulated is not None:
        error = value - simulated.threshold_pct_mso
        out.print(
            f"simulated subject's true threshold {simulated.threshold_pct_mso:.2f} %MSO (error {error:+.2f} %MSO)",
            highlight=False,
        )
    coil = coil_key(request.coil)
    out.print(
        f"recorded for subject {recorded.subject_id}: {recorded.stimulator_model} serial {recorded.stimulator_serial}, "
        f"coil {coil}, {recorded.measured_at:%Y-%m-%d %H:%M} UTC, operator {recorded.operator} "
        f"(threshold #{recorded.threshold_id})",
        highlight=False,
    )
    example = round_half_up(exact_pct_mso(value, Fraction(120)))
    out.print(
        f"Protocols prescribing % {ref} now resolve from it for subject {recorded.subject_id} on the "
        f"{hunt.device.display_name} with the {coil} coil (e.g. 120 % {ref} → {example} %MSO): run "
        f"`tmsctl run PROTOCOL --device … --subject {recorded.subject_id}` without --mt. It is never used for "
        "another coil or stimulator; measure again for those.",
        highlight=False, soft_wrap=True,
    )
