"""The ``tmsctl`` command line (typer + rich).

Exit codes (stable, for scripts; the README's table says the same):
  0 done · 1 internal error (a bug: please report) · 2 usage error (a bad option, argument or
  subject id) · 3 refused by validation, safety or records rules · 4 refused by the device ·
  5 device fault, timeout or lost connection · 6 not found (device, port, file, session, subject) ·
  7 incomplete (ran to its end, not every train known delivered in full) · 8 the records database
  cannot be used (damaged, locked, unwritable) · 130 stopped by the operator (Ctrl-C, SIGTERM, or a
  confirmation answered no)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tmsctl.simulators.registry import SimulatorProfile

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
import typer.main
from typer import _click as click  # typer vendors its own click; its classes are these
from typer.core import TyperCommand, TyperGroup, TyperOption

from tmsctl import __version__
from tmsctl.cli import plain_values as cli_plain_values
from tmsctl.cli import run as run_commands
from tmsctl.cli.common import (  # re-exported: the exit codes are published here too (README)
    EXIT_ABORTED,
    DeviceOption,
    confirm_or_stop,
    err,
    fail,
    out,
    reported,
    sigterm_as_interrupt,
)
from tmsctl.core.errors import ConnectionFailed, InvalidArgument, TmsError

# Command groups that live in their own modules, imported only when used: `tmsctl --help` and
# `tmsctl fire` should not wait for the protocol models or the report renderer to load.
# name -> (module, the command inside the module's app to use (None: the app itself), help)
LAZY_COMMANDS: dict[str, tuple[str, str | None, str]] = {
    "protocol": ("tmsctl.cli.protocol", None, "Validate, show, approve protocols; print their schema."),
    "target": ("tmsctl.cli.target", "target", "DLPFC scalp targets from head measurements."),
    "mt": ("tmsctl.cli.mt", "mt", "Hunt a motor threshold on a stimulator and record it."),
    "io-curve": ("tmsctl.cli.meps", "io-curve", "Measure an input-output curve from EMG, fit and record it."),
    "hotspot": ("tmsctl.cli.meps", "hotspot", "Search a grid for the site with the largest MEP and record it."),
    "export": ("tmsctl.cli.export", None, "Export recorded sessions (BIDS-NIBS)."),
    "report": ("tmsctl.cli.report", None, "Readable reports of sessions and courses."),
    "db": ("tmsctl.cli.db", None, "The records database: create one where you name it."),
    "records": ("tmsctl.cli.records", None, "A site's records as a whole: check them, copy them to another database."),
    "course": ("tmsctl.cli.course", "course", "Treatment courses: start, show, change, end, report."),
    "outcome": ("tmsctl.cli.course", "outcome", "Outcome measures of a subject's course (PHQ-9, BSL-23, …)."),
}


def _available(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def _load_lazy(name: str) -> click.core.Command:
    from importlib import import_module

    module, inner, _ = LAZY_COMMANDS[name]
    command = typer.main.get_command(import_module(module).app)
    subcommands = getattr(command, "commands", {})
    if inner is not None and inner in subcommands:
        command = subcommands[inner]
    command.name = name
    return command


class LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.core.Context) -> list[str]:
        names = list(super().list_commands(ctx))
        return names + [n for n, (module, _, _) in LAZY_COMMANDS.items() if n not in names and _available(module)]

    def get_command(self, ctx: click.core.Context, name: str) -> click.core.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in LAZY_COMMANDS and _available(LAZY_COMMANDS[name][0]):
            # for listing in --help: a stand-in with the help line, no import
            help_text = LAZY_COMMANDS[name][2]
            return TyperCommand(name, help=help_text, short_help=help_text)
        return command

    def resolve_command(
        self, ctx: click.core.Context, args: list[str]
    ) -> tuple[str | None, click.core.Command | None, list[str]]:
        name = args[0] if args else ""
        if name in LAZY_COMMANDS and name not in self.commands and _available(LAZY_COMMANDS[name][0]):
            self.commands[name] = _load_lazy(name)
        return super().resolve_command(ctx, args)


def _no_placeholder_on_flags() -> None:
    """A flag takes no value, so its help shows none (typer would print ``<bool>`` beside it)."""
    original = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: click.core.Context) -> str | None:
        return None if self.is_flag else original(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_no_placeholder_on_flags()
cli_plain_values.install()  # names, flags and whole numbers need no pydantic (issue 19: start-up)

app = typer.Typer(
    name="tmsctl",
    cls=LazyGroup,
    help="Safe, testable control of TMS stimulators (research use; not a medical device).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sim_app = typer.Typer(help="Simulated stimulators for tests and rehearsals.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")

@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"tmsctl {__version__}")
        raise typer.Exit()


@app.command()
def devices(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List serial ports and simulators. Never opens or writes to a port."""
    from serial.tools import list_ports

    from tmsctl.core.registry import drivers
    from tmsctl.simulators import registry as sims

    ports = [
        {
            "device": p.device,
            "description": p.description,
            "vid_pid": f"{p.vid:04X}:{p.pid:04X}" if p.vid is not None and p.pid is not None else None,
            "serial_number": p.serial_number,
        }
        for p in sorted(list_ports.comports(), key=lambda p: p.device)
    ]
    simulators = [
        {"url": f"sim://{name}", "driver": prof.driver, "description": prof.display_name}
        for name, prof in sorted(sims.profiles().items())
    ]
    if as_json:
        out.print_json(json.dumps({"ports": ports, "simulators": simulators, "drivers": sorted(drivers())}))
        return
    from rich.table import Table

    table = Table(title="Serial ports (not opened)")
    for col in ("port", "description", "VID:PID", "serial"):
        table.add_column(col)
    for p in ports:
        table.add_row(p["device"], p["description"], p["vid_pid"] or "", p["serial_number"] or "")
    if not ports:
        table.add_row("(none found)", "", "", "")
    out.print(table)
    sims_table = Table(title="Simulators")
    for col in ("URL", "driver", "description"):
        sims_table.add_column(col)
    for s in simulators:
        sims_table.add_row(s["url"], s["driver"], s["description"])
    out.print(sims_table)
    out.print(f"drivers: {', '.join(sorted(drivers()))}")
    out.print("Name the port in a device URL, e.g. [bold]magstim-rapid2:///dev/ttyUSB0[/]", highlight=False)


@app.command()
def info(device: DeviceOption) -> None:
    """Connect, show what the device reports, and release it."""
    from tmsctl.core.registry import open_driver

    with reported():
        driver = open_driver(device)
        try:
            details = driver.connect()
            status = driver.status()
        finally:
            driver.close()
        out.print(f"[bold]{details.display_name}[/] ({details.model})" + (" [yellow]SIMULATED[/]" if details.simulated else ""))
        if details.version:
            out.print(f"software: {'.'.join(map(str, details.version))}")
        out.print(f"capabilities: {', '.join(sorted(c.value for c in details.capabilities))}")
        out.print(f"status: {status.raw}")


def _setup_check_power(value: int) -> int:
    # Refused here, before anything is opened: a usage error (exit 2), not a device's refusal.
    if value < 1:
        raise typer.BadParameter(
            f"{value} % fires nothing: a set-up check needs at least 1 % of maximum output (e.g. --power 40)"
        )
    return value


def _setup_check_subject(value: str) -> str:
    from tmsctl.records import validate_subject_id

    try:
        return validate_subject_id(value)
    except TmsError as exc:
        raise typer.BadParameter(f"{exc.message} ({exc.hint})" if exc.hint else exc.message) from None


@app.command()
def fire(
    device: DeviceOption,
    power: Annotated[
        int,
        typer.Option(
            "--power", "-p", max=110, callback=_setup_check_power,
            help="Output in % of maximum stimulator output, at least 1.",
        ),
    ],
    subject: Annotated[
        str,
        typer.Option(
            "--subject", "-s", callback=_setup_check_subject,
            help="Pseudonymous id of the person under the coil. Default SETUP-0: the reserved id for a check "
            "on a phantom or with nobody under the coil.",
        ),
    ] = "SETUP-0",
    operator: Annotated[str, typer.Option("--operator", help="Who runs the check (recorded).")] = os.environ.get(
        "USER", "operator"
    ),
    db: Annotated[
        str | None, typer.Option("--db", help="Records database: a file, or a postgresql:// URL (default: $TMSCTL_DB or the user data directory).")
    ] = None,
    log_dir: Annotated[
        Path | None, typer.Option("--log-dir", help="Where the JSON-lines audit log goes (default: beside the database).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Fire one single pulse — for a technician checking a set-up.

    Runs through the controller like any session (guards, fault latching, events): takes remote
    control, sets the power and reads it back, arms, waits until charged, fires, disarms and hands
    control back to the unit. It is recorded as a one-pulse session with protocol id
    `setup-check` (see `tmsctl sessions --subject SETUP-0`).
    """
    from tmsctl.records import Records
    from tmsctl.session.setup_check import run_setup_check

    with reported():
        if not yes:
            confirm_or_stop(f"Fire ONE pulse at {power} % of maximum output on {device}?")
        records = Records(db) if db is not None else Records()
        try:
            with sigterm_as_interrupt():
                result = run_setup_check(
                    device, power, records, subject_id=subject, operator=operator,
                    log_dir=log_dir or (Path(records.path).parent / "logs"),
                    on_step=lambda label: out.print(f"  [green]✓[/] {label}", highlight=False),
                )
        finally:
            records.close()
        pulses = f"{result.pulses} pulse" + ("s" if result.pulses != 1 else "")
        if result.acknowledged:
            out.print(
                f"[bold green]fired {pulses} at {result.intensity_pct_mso} %MSO, device acknowledged[/]; "
                "the unit is disarmed and released",
                highlight=False,
            )
        else:
            out.print(
                f"[bold yellow]trigger sent for {pulses} at {result.intensity_pct_mso} %MSO; "
                f"{result.device.display_name} does not confirm pulses, so it is recorded unconfirmed[/]",
                highlight=False,
            )
        out.print(f"recorded as session {result.session_id} (protocol setup-check, subject {subject})", highlight=False)


@sim_app.command("list")
def sim_list() -> None:
    """The simulator profiles you can serve or open as sim://NAME."""
    from tmsctl.simulators import registry as sims

    for name, prof in sorted(sims.profiles().items()):
        out.print(f"{name:12} {prof.driver:16} {prof.display_name}")


@sim_app.command("serve")
def sim_serve(
    model: Annotated[str, typer.Argument(help="Simulator profile, e.g. rapid2, bistim, m200 (see `tmsctl sim list`).")],
    pty: Annotated[bool, typer.Option("--pty", help="Serve on a pseudo-terminal; prints its path.")] = False,
    tcp: Annotated[
        str | None, typer.Option("--tcp", help="Serve on HOST:PORT (default host 127.0.0.1; port 0 picks one).")
    ] = None,
    link: Annotated[Path | None, typer.Option("--link", help="Keep a symlink to the pty at this path.")] = None,
    fault: Annotated[
        str, typer.Option("--fault", help="Fault plan, e.g. 'coil_unplugged@30s,no_reply@cmd5,stall@10s+5s,power_drift@60s=80' (docs/faults.md).")
    ] = "",
    status_file: Annotated[
        Path | None, typer.Option("--status-file", help="Keep the simulator's own pulse count, state and truth log (every pulse: t, output, power) in this JSON file.")
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Let --tcp listen on an address other computers can reach (no authentication!)."),
    ] = False,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout", min=0.1, help="Disconnect a TCP client that sends nothing for this many seconds [default: 60]."
        ),
    ] = None,
    unmarked: Annotated[
        bool,
        typer.Option(
            "--unmarked",
            help="Answer exactly as a real unit, without naming itself a simulator: sessions through it are then "
            "recorded as real and count for the subject's caps (for testing the rules of real devices).",
        ),
    ] = False,
) -> None:
    """Run a simulated stimulator that any program can open like the real device.

    The first line on stdout is the device path (pty) or HOST:PORT (tcp), alone; then the lines to
    paste into a shell: the unlock code's variable where the model needs one, and the device URL
    as TMSCTL_DEVICE (so `tmsctl info` and `tmsctl run` find it). The simulator then serves until
    SIGINT or SIGTERM. Diagnostics go to stderr. TCP serves this computer only (loopback) unless
    --allow-remote, one client at a time; the unit keeps its state between clients.

    A served Rapid² names itself a simulator in its software version (SIM-V9.0), so sessions run
    through it are recorded as simulated; the 200², BiStim², MagPro and DuoMAG protocols carry no
    identity, so sessions through those are recorded as real (counted, the safe side).
    """
    from tmsctl.core.clock import SystemClock
    from tmsctl.simulators import registry as sims
    from tmsctl.simulators.device import parse_fault_plan
    from tmsctl.simulators.serve import IDLE_TIMEOUT_S, StatusFile, listen_address, serve_pty, serve_tcp

    with reported():
        if pty == (tcp is not None):
            raise InvalidArgument("choose exactly one of --pty or --tcp HOST:PORT")
        if tcp is not None:
            host, _, port_text = tcp.rpartition(":")
            host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
            try:
                port = int(port_text)
            except ValueError:
                raise InvalidArgument(f"--tcp wants HOST:PORT, got {tcp!r}") from None
            listen_address(host, port, allow_remote=allow_remote)  # refuse before anything starts
        clock = SystemClock()
        instance = sims.create(model, clock=clock, faults=parse_fault_plan(fault))
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

        names_itself = not unmarked and instance.device.identify_as_simulator()

        def ready(address: str) -> None:
            lines = [address, *served_device_lines(instance.profile, address, tcp=tcp is not None)]
            sys.stdout.write("".join(line + "\n" for line in lines))
            sys.stdout.flush()
            err.print(f"{instance.profile.display_name} serving on {address}; Ctrl-C stops", highlight=False)
            if names_itself:
                err.print("it names itself a simulator: sessions through it are recorded as simulated", highlight=False)
            else:
                err.print(
                    "[yellow]note:[/] sessions through it are recorded as real and count for the subject's caps "
                    + ("(--unmarked)" if unmarked else "(its protocol carries no identity; use sim://"
                       f"{model} to rehearse without a port)"),
                    highlight=False,
                )

        def log(line: str) -> None:
            err.print(line, highlight=False)

        status = StatusFile(status_file) if status_file else None

        def trigger_ready(address: str) -> None:
            err.print(f"trigger input: {address} (send '1' to raise it, '0' to lower it; docs/simulators.md)",
                      highlight=False)

        if pty:
            serve_pty(instance.device, stop=stop, ready=ready, clock=clock, link=link, log=log, status=status,
                      trigger_ready=trigger_ready)
        else:
            try:
                serve_tcp(
                    instance.device, host=host, port=port, stop=stop, ready=ready, clock=clock, log=log,
                    status=status, allow_remote=allow_remote,
                    idle_timeout_s=IDLE_TIMEOUT_S if idle_timeout is None else idle_timeout,
                    trigger_ready=trigger_ready,
                )
            except OSError as exc:
                raise ConnectionFailed(f"cannot listen on {host}:{port}: {exc}") from exc
        err.print(f"stopped; {instance.device.pulse_count} pulse(s) delivered", highlight=False)


SIM_UNLOCK_VARIABLE = "SIM_UNLOCK"


def served_device_lines(profile: SimulatorProfile, address: str, *, tcp: bool) -> list[str]:
    """Shell lines that reach a served simulator: its unlock code's variable (a simulator's code
    is public) where the model needs one, then the device URL as TMSCTL_DEVICE."""
    import shlex

    driver = profile.driver
    options: dict[str, object] = dict(profile.driver_options)
    lines = []
    if tcp:
        host, _, port = address.rpartition(":")
        url = f"{driver}+socket://{f'[{host}]' if ':' in host else host}:{port}"
    else:
        url = f"{driver}://{address}"
    code = options.get("unlock")
    if isinstance(code, bytes):
        # the form an operator stores a code in: 14 characters, then the 2 check bytes in hex
        lines.append(f"export {SIM_UNLOCK_VARIABLE}={shlex.quote(code[:14].decode('ascii') + code[14:].hex().upper())}")
        url += f"?unlock=env:{SIM_UNLOCK_VARIABLE}"
    lines.append(f"export TMSCTL_DEVICE={shlex.quote(url)}")
    return lines


# `run`, `resume`, `sessions` and `session` live in their own module, listed after the commands above
app.registered_commands.extend(run_commands.app.registered_commands)
app.registered_groups.extend(run_commands.app.registered_groups)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("[yellow]aborted by the operator[/]")
        sys.exit(EXIT_ABORTED)
    except Exception as exc:  # a bug of ours: one readable line and the code for it, never a traceback
        try:
            fail(exc)
        except typer.Exit as exit_:
            sys.exit(exit_.exit_code)
