"""The per-session audit log (JSON lines) and the console log, both through structlog.

Nothing here configures structlog globally: every logger is built with its own processor chain
by ``structlog.wrap_logger``, so importing this module changes nothing for other code, and
another part of the program (or a test's ``capture_logs``) reconfiguring structlog changes
nothing here.

Session audit log
-----------------
::

    log = make_session_logger(path, session_id="K7M2-9QXD", simulated=True, clock=clock)
    log.info("train_finished", index=3, pulses_delivered=40, t_mono_s=93.01, durable=True)
    ...
    close_session_logger(log)

or, scoped::

    with SessionAuditLog.open(path, session_id=..., simulated=..., clock=clock) as audit:
        audit.logger.warning("fault", code="coil_overtemp", detail="...", t_mono_s=...)

Each event is one line of JSON, written with a single ``os.write`` as soon as it is logged (a
killed process loses at most the line being written; readers skip a torn last line). Lines
whose level is warning or above, or that carry ``durable=True`` (the runner sets it on train
and pulse records and on session lifecycle events), are also ``fsync``'d, so they survive a
power cut too. Every line carries ``t_wall`` (UTC ISO 8601 from the injected clock),
``level``, ``event``, ``session_id`` and ``simulated``; ``t_mono_s`` is the monotonic offset the
caller supplies (or, when the logger was given ``monotonic_origin_s``, ``clock.now()`` minus
that origin).

Secrets
-------
``redact_processor`` runs before anything is rendered: values under secret-looking keys
(``unlock``, ``unlock_code``, ``password``, ``token`` ...) become ``"REDACTED"``, and inside
every string (messages, URLs, tracebacks) ``key=value`` pairs with such keys and URL passwords
(``scheme://user:password@host``) are redacted. ``redact_text`` is the same rule for callers that
store text elsewhere (``tmsctl.records`` uses it for device URLs and free-text reasons); the rules
live in ``tmsctl.core.redaction`` so the records layer need not import the logging machinery.
"""

from __future__ import annotations

import json
import math
import os
import sys
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from tmsctl.core.clock import Clock, SystemClock
from tmsctl.core.errors import TmsError
from tmsctl.core.redaction import REDACTED, SECRET_KEYS, is_secret_key, redact_text, redact_value

if TYPE_CHECKING:
    from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

# Levels fsync'd whatever the caller says: faults and errors must survive a power cut.
_DURABLE_LEVELS = frozenset({"warning", "warn", "error", "critical", "exception", "fatal"})


@cache
def _all_levels_wrapper() -> Any:
    """A bound-logger class passing every level; ``exception()`` attaches the traceback."""
    import structlog

    return structlog.make_filtering_bound_logger(0)


_FIRST_KEYS = ("t_wall", "t_mono_s", "level", "event", "session_id", "simulated")


class AuditLogError(TmsError):
    """An audit log file cannot be written or read."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, hint: str | None = None):
        self.path = None if path is None else str(path)
        super().__init__(message, hint=hint)


def redact_processor(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: never let a secret reach a renderer."""
    return {
        key: (REDACTED if is_secret_key(key) else redact_value(value)) for key, value in event_dict.items()
    }


# -- processors -----------------------------------------------------------------------------------


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def wall_time_processor(clock: Clock, key: str = "t_wall") -> Processor:
    """Stamp each event with the clock's UTC wall time (virtual time under a VirtualClock)."""

    def add_wall_time(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        event_dict[key] = _iso_utc(clock.wall())
        return event_dict

    return add_wall_time


def monotonic_offset_processor(clock: Clock, origin_s: float) -> Processor:
    """Fill ``t_mono_s`` (seconds since ``origin_s`` on the clock) when the caller did not."""

    def add_offset(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("t_mono_s", clock.now() - origin_s)
        return event_dict

    return add_offset


def _pin_session(session_id: str, simulated: bool) -> Processor:
    """Every line names its session and says whether it was simulated; nothing bound can change it."""

    def pin(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        for key, fixed in (("session_id", session_id), ("simulated", simulated)):
            if key in event_dict and event_dict[key] != fixed:
                event_dict[f"{key}_claimed"] = event_dict[key]
            event_dict[key] = fixed
        return event_dict

    return pin


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso_utc(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


def _finite_or_text(value: Any) -> Any:
    # JSON has no NaN/Infinity; write them as text rather than emit an unparseable line.
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite_or_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_text(v) for v in value]
    return value


def render_json_line(event_dict: Mapping[str, Any]) -> str:
    """One event as one line of JSON (no newline inside; fixed keys first)."""
    ordered: dict[str, Any] = {key: event_dict[key] for key in _FIRST_KEYS if key in event_dict}
    ordered.update((key, value) for key, value in event_dict.items() if key not in ordered)
    return json.dumps(_finite_or_text(ordered), default=_json_default, ensure_ascii=False, allow_nan=False)


def _jsonl_renderer(_logger: WrappedLogger, name: str, event_dict: EventDict) -> dict[str, Any]:
    durable = bool(event_dict.pop("durable", False)) or event_dict.get("level", name) in _DURABLE_LEVELS
    # structlog passes a dict returned by the last processor as keyword arguments to the logger.
    return {"line": render_json_line(event_dict), "durable": durable}


# -- the file -------------------------------------------------------------------------------------


def _make_private_dir(directory: Path) -> None:
    if directory.exists():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask


class AuditFile:
    """An append-only JSON-lines file private to the user (0600), usable as a structlog logger.

    Every line is written with one ``os.write`` (no user-space buffer to lose); ``durable`` lines
    are ``fsync``'d before the call returns.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            _make_private_dir(self.path.parent)
            self._fd: int | None = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600
            )
        except OSError as exc:
            raise AuditLogError(
                f"cannot open the audit log {self.path}: {exc.strerror or exc}",
                path=self.path,
                hint="check that the log directory exists, is writable and the disk is not full",
            ) from exc
        self._finalizer = weakref.finalize(self, os.close, self._fd)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write_line(self, line: str, *, durable: bool = False) -> None:
        if self._fd is None:
            raise AuditLogError(f"the audit log {self.path} is closed", path=self.path)
        data = (line + "\n").encode("utf-8")
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            if durable:
                os.fsync(self._fd)
        except OSError as exc:
            raise AuditLogError(
                f"cannot write the audit log {self.path}: {exc.strerror or exc}",
                path=self.path,
                hint="check free disk space; stimulation must not continue without its audit log",
            ) from exc

    def fsync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        finally:
            self._finalizer()
            self._fd = None

    # structlog's bound loggers call the wrapped logger's method named after the level.
    def msg(self, line: str, durable: bool = False) -> None:
        self.write_line(line, durable=durable)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def session_log_path(directory: str | os.PathLike[str], session_id: str) -> Path:
    """Where a session's audit log lives inside a log directory."""
    return Path(directory) / f"{session_id}.jsonl"


def make_session_logger(
    path: str | os.PathLike[str],
    *,
    session_id: str,
    simulated: bool,
    clock: Clock | None = None,
    monotonic_origin_s: float | None = None,
) -> FilteringBoundLogger:
    """A structlog BoundLogger writing the session's JSON-lines audit log at ``path``.

    Close it with ``close_session_logger`` (or use ``SessionAuditLog``). ``clock`` gives the
    ``t_wall`` stamps (default: the system clock); pass the session's clock so virtual sessions
    carry virtual times.
    """
    return _wrap(AuditFile(path), session_id=session_id, simulated=simulated, clock=clock,
                 monotonic_origin_s=monotonic_origin_s)


def _wrap(
    audit_file: AuditFile,
    *,
    session_id: str,
    simulated: bool,
    clock: Clock | None,
    monotonic_origin_s: float | None,
) -> FilteringBoundLogger:
    import structlog

    clock = clock or SystemClock()
    processors: list[Processor] = [*audit_processors(clock)]
    if monotonic_origin_s is not None:
        processors.append(monotonic_offset_processor(clock, monotonic_origin_s))
    processors += [_pin_session(session_id, bool(simulated)), _jsonl_renderer]
    return structlog.wrap_logger(
        audit_file,
        processors=processors,
        wrapper_class=_all_levels_wrapper(),
        context_class=dict,
        cache_logger_on_first_use=False,
        session_id=session_id,
        simulated=bool(simulated),
    )


def close_session_logger(logger: Any) -> None:
    """fsync and close the file behind a logger made by ``make_session_logger``."""
    audit_file = getattr(logger, "_logger", None)
    if not isinstance(audit_file, AuditFile):
        raise TypeError("close_session_logger takes a logger made by make_session_logger")
    audit_file.close()


@dataclass
class SessionAuditLog:
    """A session's audit file and its logger, as a context manager that closes (and fsyncs)."""

    file: AuditFile
    logger: FilteringBoundLogger

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        session_id: str,
        simulated: bool,
        clock: Clock | None = None,
        monotonic_origin_s: float | None = None,
    ) -> SessionAuditLog:
        audit_file = AuditFile(path)
        logger = _wrap(audit_file, session_id=session_id, simulated=simulated, clock=clock,
                       monotonic_origin_s=monotonic_origin_s)
        return cls(audit_file, logger)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> SessionAuditLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- reading back ---------------------------------------------------------------------------------


def iter_audit_log(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The events of an audit log, in order.

    A last line without its newline is the write a killed process did not finish: it is
    skipped. Any other unreadable line raises ``AuditLogError`` naming the line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditLogError(f"cannot read the audit log {path}: {exc.strerror or exc}", path=path) from exc
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    for number, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AuditLogError(
                f"{path}:{number}: not a JSON event ({exc})",
                path=path,
                hint="the file was edited or damaged; keep it as evidence and rely on the records database",
            ) from exc
        if not isinstance(event, dict):
            raise AuditLogError(
                f"{path}:{number}: expected a JSON object, found {type(event).__name__}", path=path
            )
        yield event
    del tail  # a torn final write, by construction never a complete event


def read_audit_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return list(iter_audit_log(path))


# -- console --------------------------------------------------------------------------------------


def _console_time_processor(clock: Clock) -> Processor:
    def add_time(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        event_dict["timestamp"] = clock.wall().astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"
        return event_dict

    return add_time


def make_console_logger(
    stream: TextIO | None = None,
    *,
    colors: bool = False,
    clock: Clock | None = None,
    **initial_values: Any,
) -> Any:
    """A readable logger for humans (``HH:MM:SS.mmmZ [level] event key=value``), secrets redacted.

    Tracebacks are rendered as plain text before redaction (never with local variables, which
    could hold secrets).
    """
    import structlog

    clock = clock or SystemClock()
    processors: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        redact_processor,
        _console_time_processor(clock),
        structlog.dev.ConsoleRenderer(colors=colors, sort_keys=False),
    ]
    return structlog.wrap_logger(
        structlog.PrintLogger(stream if stream is not None else sys.stderr),
        processors=processors,
        wrapper_class=_all_levels_wrapper(),
        context_class=dict,
        cache_logger_on_first_use=False,
        **initial_values,
    )


def audit_processors(clock: Clock) -> list[Processor]:
    """The chain used before rendering, for sinks that render elsewhere (tests, LSL, live panel)."""
    import structlog

    return [
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        redact_processor,
        wall_time_processor(clock),
    ]


__all__ = [
    "REDACTED",
    "SECRET_KEYS",
    "AuditFile",
    "AuditLogError",
    "SessionAuditLog",
    "audit_processors",
    "close_session_logger",
    "is_secret_key",
    "iter_audit_log",
    "make_console_logger",
    "make_session_logger",
    "read_audit_log",
    "redact_processor",
    "redact_text",
    "redact_value",
    "render_json_line",
    "session_log_path",
    "wall_time_processor",
]
