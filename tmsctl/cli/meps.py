"""``tmsctl io-curve``: an input–output (recruitment) curve measured from EMG, fitted, recorded and plotted.
``tmsctl hotspot``: N pulses at each site of a grid (the operator moves the coil when prompted), the
site with the largest mean MEP chosen and recorded.

Mounted by :mod:`tmsctl.cli.main` (``LAZY_COMMANDS``); imports ``tmsctl.cli.main`` only inside the command.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(add_completion=False)


def _levels(text: str) -> tuple[float, ...]:
    from tmsctl.core.errors import InvalidArgument

    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidArgument(f"--levels {text!r} is not a list of % rMT", hint="e.g. 90,100,110,120,130,140,150") from None


@app.command("io-curve")
def io_curve(
    device: Annotated[str, typer.Option("--device", "-d", envvar="TMSCTL_DEVICE", help="Device URL.")],
    subject: Annotated[str, typer.Option("--subject", "-s", help="Pseudonymous subject id.")],
    coil: Annotated[str, typer.Option("--coil", help="Coil FAMILY or FAMILY/MODEL.")],
    rmt: Annotated[float, typer.Option("--rmt", metavar="PCT", help="The subject's resting motor threshold, %MSO.")],
    emg: Annotated[
        str, typer.Option("--emg", metavar="lsl:NAME|file:PATH|sim",
                          help="Where the MEPs come from: an LSL stream, a tmsctl-emg/1 recording, or sim "
                               "(with --simulated-subject).")
    ],
    levels: Annotated[str, typer.Option("--levels", help="Intensities, % rMT, comma separated.")] =
        "90,100,110,120,130,140,150",
    pulses: Annotated[int, typer.Option("--pulses", help="Pulses per intensity.")] = 10,
    upper_step: Annotated[float, typer.Option(
        "--upper-step", metavar="PCT_RMT",
        help="When the curve shows no plateau at its top intensity, add a level this many % rMT above it, and "
             "again, until it does or --upper-cap is reached (0: the planned levels only).")] = 10.0,
    upper_cap: Annotated[float, typer.Option(
        "--upper-cap", metavar="PCT_RMT",
        help="The highest added level, % rMT; never above the stimulator's maximum or 100 %MSO.")] = 200.0,
    muscle: Annotated[str, typer.Option("--muscle", help="Target muscle (recorded).")] = "FDI",
    mep_window: Annotated[str, typer.Option("--mep-window", metavar="START-END", help="MEP window, ms.")] = "15-50",
    emg_channel: Annotated[str | None, typer.Option("--emg-channel", help="LSL channel label.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the plotted curve to this HTML file.")] = None,
    iti: Annotated[float, typer.Option("--iti", help="Seconds between pulses (mean).")] = 5.0,
    iti_jitter: Annotated[float, typer.Option("--iti-jitter", help="± seconds of jitter on --iti.")] = 1.0,
    operator: Annotated[str, typer.Option("--operator", help="Who measures (recorded).")] = os.environ.get(
        "USER", "operator"),
    db: Annotated[Path | None, typer.Option("--db", help="Records database.")] = None,
    stimulator_serial: Annotated[str | None, typer.Option("--stimulator-serial", help="Real devices: the unit's serial.")] = None,
    simulated_subject: Annotated[int | None, typer.Option("--simulated-subject", metavar="SEED",
                                                          help="Simulators only: a seeded simulated subject.")] = None,
    simulated_threshold: Annotated[float | None, typer.Option("--simulated-threshold", metavar="PCT",
                                                              help="The simulated subject's true threshold.")] = None,
    virtual_time: Annotated[bool, typer.Option("--virtual-time", help="Simulators only: a virtual clock.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Measure an input–output curve (MEPs at 90–150 % rMT, higher while no plateau shows), fit a Boltzmann
    sigmoid and record it."""
    from tmsctl.cli.common import EXIT_REFUSED, err, exit_code_for, out, reported, sigterm_as_interrupt
    from tmsctl.cli.db import open_records
    from tmsctl.cli.mt import _emg_responder, _simulated_subject, muscle_config
    from tmsctl.clinic.iocurve import (
        IoCurvePlan,
        IoCurveRequest,
        IoCurveStopped,
        UpperRange,
        render_io_curve_html,
        run_io_curve,
    )
    from tmsctl.clinic.mt_session import HuntSettings, parse_coil
    from tmsctl.core.errors import InvalidArgument
    from tmsctl.core.url import parse

    with reported():
        plan = IoCurvePlan(rmt, _levels(levels), pulses, max_pct_mso=130)
        upper = None if upper_step == 0 else UpperRange(step_pct_rmt=upper_step, cap_pct_rmt=upper_cap)
        request = IoCurveRequest(
            device_url=device, subject_id=subject, coil=parse_coil(coil), rmt_pct_mso=rmt,
            levels_pct_rmt=plan.levels_pct_rmt, pulses_per_level=pulses, muscle=muscle, operator=operator,
            stimulator_serial=stimulator_serial, virtual_time=virtual_time,
            settings=HuntSettings(inter_trial_interval_s=iti, inter_trial_jitter_s=iti_jitter), upper_range=upper,
        )
        url = parse(device)
        config = muscle_config(muscle, mep_window, "rMT")
        simulated = None
        if simulated_subject is not None:
            if emg != "sim" or not url.is_simulator:
                raise InvalidArgument("--simulated-subject answers only with --emg sim on a simulator (sim://…)",
                                      hint="e.g. --device sim://rapid2 --simulated-subject 7 --emg sim")
            simulated = _simulated_subject(simulated_subject, simulated_threshold, "rMT")
            request = replace(request, note=f"simulated subject seed {simulated_subject}, true threshold "
                                            f"{simulated.threshold_pct_mso:.2f} %MSO")
        elif emg == "sim":
            raise InvalidArgument("--emg sim needs --simulated-subject SEED", hint="e.g. --simulated-subject 7")
        if not yes:
            more = "" if upper is None else (
                f" (and {pulses} more at each {upper.step_pct_rmt:g} % rMT step above, up to {upper.cap_pct_rmt:g} % "
                f"rMT or the stimulator's maximum, while the curve shows no plateau)")
            typer.confirm(f"Take remote control of {url.redacted} and give {plan.total_pulses} single pulses at "
                          f"{min(plan.intensities_pct_mso)}–{max(plan.intensities_pct_mso)} %MSO{more} to subject "
                          f"{subject}?", abort=True)
        records = open_records(db)
        with contextlib.ExitStack() as stack:
            stack.callback(records.close)
            if simulated is not None:
                from tmsctl.clinic.responder import EmgResponder
                from tmsctl.clinic.simulated import simulated_emg_rig

                assert simulated_subject is not None  # simulated is built from it

                rig = stack.enter_context(simulated_emg_rig(url, simulated, seed=simulated_subject,
                                                            virtual_time=virtual_time))
                request = replace(request, device_url=rig.url)
                responder = EmgResponder(rig.source, config)
            else:
                responder = _emg_responder(emg, emg_channel, muscle, mep_window, "rMT", virtual_time)
            rng = random.Random(f"io-{simulated_subject}") if simulated_subject is not None else random.Random()

            def fired(pending) -> None:
                out.print(f"pulse at {pending.intensity_pct_mso:>3} %MSO", highlight=False)

            def rejected(entry) -> None:
                err.print(f"  [yellow]trial rejected[/]: {entry.measurement.detail}; given again", highlight=False,
                          soft_wrap=True)

            try:
                with sigterm_as_interrupt():
                    outcome = run_io_curve(request, responder, records, rng=rng, on_fired=fired, on_rejected=rejected)
            except IoCurveStopped as exc:
                err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
                if exc.hint:
                    err.print(f"[yellow]what to do:[/] {exc.hint}", highlight=False, soft_wrap=True)
                if exc.recorded is not None:
                    err.print(f"the {exc.pulses_delivered} pulses given are kept on record (measurement "
                              f"#{exc.recorded.measurement_id}, stopped)", highlight=False)
                raise typer.Exit(exit_code_for(exc.cause)) from None
        fit = outcome.fit
        if outcome.upper_range is not None:
            added = outcome.upper_range["intensities_added_pct_mso"]
            out.print(f"upper range: {'added ' + ', '.join(f'{i} %MSO' for i in added) if added else 'nothing added'}"
                      f" ({outcome.upper_range['outcome']})", highlight=False, soft_wrap=True)
        if html is not None:
            html.write_text(render_io_curve_html(outcome, subject_id=subject, muscle=muscle, note=request.note))
            out.print(f"curve plotted in {html}", highlight=False)
        if fit is None:
            err.print(f"[bold red]no fit:[/] {outcome.fit_error}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_REFUSED)
        for label, est, unit in (("MEPmax", fit.mep_max_uv, "µV"), ("S50", fit.s50_pct_mso, "%MSO"),
                                 ("slope", fit.slope_per_pct_mso, "/%MSO")):
            out.print(f"{label:7} {est.value:9.4g} {unit:6} (95 % CI {est.low:.4g} – {est.high:.4g})", highlight=False)
        for note in fit.notes:
            err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
        if simulated is not None:
            curve = simulated.curve
            out.print(f"simulated subject: true S50 "
                      f"{curve.threshold_pct_mso + curve._half_criterion_offset_pct_mso:.2f} %MSO, true slope "
                      f"{curve.slope_per_pct_mso:.3f} /%MSO", highlight=False)
        if outcome.recorded is not None:  # run_io_curve was given the records: it always stores the curve
            out.print(f"recorded as measurement #{outcome.recorded.measurement_id} ({outcome.pulses_delivered} pulses)",
                      highlight=False)


def _grid(text: str) -> tuple[int, int]:
    from tmsctl.core.errors import InvalidArgument

    rows, sep, cols = text.lower().partition("x")
    if not sep or not rows.strip().isdigit() or not cols.strip().isdigit():
        raise InvalidArgument(f"--grid {text!r} is not ROWSxCOLS", hint="e.g. --grid 3x3")
    return int(rows), int(cols)


def _position(option: str, text: str) -> tuple[float, float]:
    from tmsctl.core.errors import InvalidArgument

    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise InvalidArgument(f"{option} {text!r} is not X,Y in mm", hint=f"e.g. {option} 0,0") from None


@app.command("hotspot")
def hotspot(
    device: Annotated[str, typer.Option("--device", "-d", envvar="TMSCTL_DEVICE", help="Device URL.")],
    subject: Annotated[str, typer.Option("--subject", "-s", help="Pseudonymous subject id.")],
    coil: Annotated[str, typer.Option("--coil", help="Coil FAMILY or FAMILY/MODEL.")],
    intensity: Annotated[int, typer.Option("--intensity", metavar="PCT", help="Search intensity, %MSO.")],
    emg: Annotated[
        str, typer.Option("--emg", metavar="lsl:NAME|file:PATH|sim",
                          help="Where the MEPs come from: an LSL stream, a tmsctl-emg/1 recording, or sim "
                               "(with --simulated-subject).")
    ],
    grid: Annotated[str, typer.Option("--grid", metavar="ROWSxCOLS", help="Grid of sites.")] = "3x3",
    spacing: Annotated[float, typer.Option("--spacing", metavar="MM", help="Distance between sites, mm.")] = 10.0,
    centre: Annotated[str, typer.Option("--centre", metavar="X,Y", help="Grid centre on the scalp, mm.")] = "0,0",
    pulses: Annotated[int, typer.Option("--pulses", help="Pulses per site.")] = 5,
    muscle: Annotated[str, typer.Option("--muscle", help="Target muscle (recorded).")] = "FDI",
    mep_window: Annotated[str, typer.Option("--mep-window", metavar="START-END", help="MEP window, ms.")] = "15-50",
    emg_channel: Annotated[str | None, typer.Option("--emg-channel", help="LSL channel label.")] = None,
    iti: Annotated[float, typer.Option("--iti", help="Seconds between pulses (mean).")] = 5.0,
    iti_jitter: Annotated[float, typer.Option("--iti-jitter", help="± seconds of jitter on --iti.")] = 1.0,
    operator: Annotated[str, typer.Option("--operator", help="Who measures (recorded).")] = os.environ.get(
        "USER", "operator"),
    db: Annotated[Path | None, typer.Option("--db", help="Records database.")] = None,
    stimulator_serial: Annotated[str | None, typer.Option("--stimulator-serial", help="Real devices: the unit's serial.")] = None,
    simulated_subject: Annotated[int | None, typer.Option("--simulated-subject", metavar="SEED",
                                                          help="Simulators only: a seeded simulated subject.")] = None,
    simulated_threshold: Annotated[float | None, typer.Option("--simulated-threshold", metavar="PCT",
                                                              help="The simulated subject's threshold at its hotspot.")] = None,
    simulated_hotspot: Annotated[str, typer.Option("--simulated-hotspot", metavar="X,Y",
                                                   help="Where the simulated subject's hotspot is, mm.")] = "0,0",
    virtual_time: Annotated[bool, typer.Option("--virtual-time", help="Simulators only: a virtual clock.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Give N pulses at each grid site (the coil moved when prompted, disarmed meanwhile) and record the
    site with the largest mean MEP. Enter at the prompt confirms the coil is there; X,Y (mm) also
    records where it really is (e.g. as a neuronavigation system shows it)."""
    from tmsctl.cli.common import err, exit_code_for, out, reported, sigterm_as_interrupt
    from tmsctl.cli.db import open_records
    from tmsctl.cli.mt import _emg_responder, _simulated_subject, muscle_config
    from tmsctl.clinic.hotspot import HotspotRequest, HotspotStopped, Site, grid_sites, run_hotspot
    from tmsctl.clinic.mt_session import HuntSettings, parse_coil
    from tmsctl.core.errors import InvalidArgument
    from tmsctl.core.url import parse

    with reported():
        rows, cols = _grid(grid)
        sites = grid_sites(rows, cols, spacing, _position("--centre", centre))
        request = HotspotRequest(
            device_url=device, subject_id=subject, coil=parse_coil(coil), sites=sites, intensity_pct_mso=intensity,
            pulses_per_site=pulses, muscle=muscle, operator=operator, stimulator_serial=stimulator_serial,
            virtual_time=virtual_time,
            settings=HuntSettings(inter_trial_interval_s=iti, inter_trial_jitter_s=iti_jitter),
        )
        url = parse(device)
        config = muscle_config(muscle, mep_window, "rMT")
        simulated = None
        if simulated_subject is not None:
            if emg != "sim" or not url.is_simulator:
                raise InvalidArgument("--simulated-subject answers only with --emg sim on a simulator (sim://…)",
                                      hint="e.g. --device sim://rapid2 --simulated-subject 7 --emg sim")
            simulated = _simulated_subject(simulated_subject, simulated_threshold, "rMT")
            spot = _position("--simulated-hotspot", simulated_hotspot)
            request = replace(request, note=f"simulated subject seed {simulated_subject}, hotspot at "
                                            f"{spot[0]:g},{spot[1]:g} mm")
        elif emg == "sim":
            raise InvalidArgument("--emg sim needs --simulated-subject SEED", hint="e.g. --simulated-subject 7")
        if not yes:
            typer.confirm(f"Take remote control of {url.redacted} and give {pulses} single pulses at {intensity} %MSO "
                          f"at each of {len(sites)} sites ({len(sites) * pulses} pulses) to subject {subject}?",
                          abort=True)
        records = open_records(db)
        with contextlib.ExitStack() as stack:
            stack.callback(records.close)
            placement = None
            if simulated is not None:
                from tmsctl.clinic.responder import EmgResponder
                from tmsctl.clinic.simulated import simulated_emg_rig
                from tmsctl.simulators.hotspot import HotspotMap

                assert simulated_subject is not None  # simulated is built from it
                rig = stack.enter_context(simulated_emg_rig(url, simulated, seed=simulated_subject,
                                                            virtual_time=virtual_time,
                                                            hotspot=HotspotMap(centre_mm=spot)))
                placement = rig.emg.placement
                request = replace(request, device_url=rig.url)
                responder = EmgResponder(rig.source, config)
            else:
                responder = _emg_responder(emg, emg_channel, muscle, mep_window, "rMT", virtual_time)
            rng = random.Random(f"hotspot-{simulated_subject}") if simulated_subject is not None else random.Random()

            def move(site: Site) -> tuple[float, float] | None:
                where = f"site {site.label} ({site.x_mm:+g}, {site.y_mm:+g} mm)"
                if placement is not None:  # the simulated operator places the simulated coil
                    placement.move_to(site.position)
                    out.print(f"coil moved to {where} (simulated)", highlight=False)
                    return site.position
                answer = typer.prompt(f"Place the coil at {where}; Enter when it is there (or X,Y mm where it is)",
                                      default="", show_default=False)
                return _position("X,Y", answer) if answer.strip() else None

            def fired(pending) -> None:
                out.print(f"pulse at {pending.intensity_pct_mso:>3} %MSO", highlight=False)

            def rejected(entry) -> None:
                err.print(f"  [yellow]trial rejected[/]: {entry.measurement.detail}; given again", highlight=False,
                          soft_wrap=True)

            try:
                with sigterm_as_interrupt():
                    outcome = run_hotspot(request, responder, records, move=move, rng=rng, on_fired=fired,
                                          on_rejected=rejected)
            except HotspotStopped as exc:
                err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
                if exc.hint:
                    err.print(f"[yellow]what to do:[/] {exc.hint}", highlight=False, soft_wrap=True)
                if exc.recorded is not None:
                    err.print(f"the {exc.pulses_delivered} pulses given are kept on record (measurement "
                              f"#{exc.recorded.measurement_id}, stopped)", highlight=False)
                raise typer.Exit(exit_code_for(exc.cause)) from None
        result = outcome.result
        for site in sites:
            mean = result.means_uv.get(site.label)
            mark = "  ← chosen" if result.chosen is not None and result.chosen.label == site.label else ""
            shown = "all trials rejected" if mean is None else f"{mean:8.1f} µV"
            out.print(f"{site.label:>4} ({site.x_mm:+6g}, {site.y_mm:+6g} mm)  mean MEP {shown}{mark}", highlight=False)
        if result.chosen is not None:
            out.print(f"hotspot: site {result.chosen.label} ({result.chosen.x_mm:+g}, {result.chosen.y_mm:+g} mm)",
                      highlight=False)
        if outcome.recorded is not None:
            out.print(f"recorded as measurement #{outcome.recorded.measurement_id} ({outcome.pulses_delivered} pulses)",
                      highlight=False)

