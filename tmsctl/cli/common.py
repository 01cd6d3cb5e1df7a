"""What every command module shares: the exit codes (the README's table), the consoles, how an error
becomes one readable line and an exit code, the confirmation before anything is armed, the device
option, and SIGTERM as Ctrl-C. The command modules import this, never ``tmsctl.cli.main``, which
imports them: no cycle.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from tmsctl.core.errors import (
    ConnectionFailed,
    DeviceRefused,
    DeviceStateError,
    DeviceUnavailable,
    FaultLatched,
    InvalidArgument,
    ProtocolError,
    ProtocolFileError,
    SafetyViolation,
    TmsError,
    TransportTimeout,
)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_DEVICE_REFUSED = 4
EXIT_FAULT = 5
EXIT_NOT_FOUND = 6
EXIT_INCOMPLETE = 7  # the schedule ran to its end, but not every train is known delivered in full
EXIT_RECORDS = 8  # the records database cannot be used: damaged, locked, unwritable
EXIT_ABORTED = 130  # stopped by the operator: Ctrl-C, SIGTERM, or a confirmation answered no

out = Console()
err = Console(stderr=True)



def exit_code_for(exc: BaseException) -> int:
    from tmsctl.records.errors import RecordRefused, RecordsError

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_ABORTED
    if isinstance(exc, TmsError) and isinstance(exc, LookupError):
        return EXIT_NOT_FOUND  # a file, session, subject or threshold id that is not there
    if isinstance(exc, ProtocolFileError | SafetyViolation | InvalidArgument | RecordRefused):
        return EXIT_REFUSED
    if isinstance(exc, RecordsError):
        # An invalid value (a subject id) is refused by the records' rules; anything else is the file itself.
        return EXIT_REFUSED if isinstance(exc, ValueError) else EXIT_RECORDS
    if isinstance(exc, DeviceRefused):
        return EXIT_DEVICE_REFUSED
    if isinstance(exc, DeviceUnavailable):
        return EXIT_NOT_FOUND
    if isinstance(exc, ConnectionFailed | TransportTimeout | ProtocolError | DeviceStateError | FaultLatched):
        return EXIT_FAULT
    if isinstance(exc, TmsError):
        return EXIT_FAULT
    return EXIT_INTERNAL


def fail(exc: BaseException) -> NoReturn:
    """Print one readable line (plus the hint) and exit with the code for this kind of error."""
    code = exit_code_for(exc)
    if isinstance(exc, TmsError):
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[yellow]what to do:[/] {exc.hint}", highlight=False, soft_wrap=True)
    elif isinstance(exc, KeyboardInterrupt):
        err.print("[yellow]aborted by the operator[/]")
    else:
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
        err.print("this is a bug in tmsctl; the device was left disarmed where possible. Please report it.")
    raise typer.Exit(code)


def confirm_or_stop(question: str) -> None:
    """Ask before anything is armed; "no" stops the command as the operator's decision (exit 130)."""
    if not typer.confirm(question, default=False):
        err.print("[yellow]not confirmed[/]: nothing was armed or recorded", highlight=False)
        raise typer.Exit(EXIT_ABORTED)


@contextmanager
def reported() -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except (TmsError, KeyboardInterrupt) as exc:
        fail(exc)


DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        "-d",
        help="Device URL, e.g. magstim-rapid2:///dev/ttyUSB0, magstim-bistim+socket://127.0.0.1:7777 or sim://rapid2",
        envvar="TMSCTL_DEVICE",
    ),
]



@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so the same disarm path runs for both."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
