"""Typed errors. Every error says what went wrong and, in ``hint``, what to do next.

The hierarchy separates *where* a problem arose, so callers can react without parsing text:

    TmsError
    ├── DeviceUnavailable      the named driver/port/simulator does not exist
    │   └── PluginConflict     two installed plugins provide the same driver or simulator name
    ├── ConnectionFailed       it exists but could not be opened or would not talk
    ├── ProtocolError          bytes on the wire that do not follow the device's protocol
    │   ├── ChecksumError
    │   └── EchoMismatch
    ├── DeviceRefused          the device understood and said no (bad data, conflicts with state)
    ├── TransportTimeout       no complete reply by the deadline (also a TimeoutError)
    ├── InvalidArgument        a value a driver will not send (off-grid, out of range)
    ├── SafetyViolation        a safety rule or limit refuses the request
    │   ├── GuardRejected      controller guards refused a state change; lists every reason
    │   └── UnitMismatch       another unit answered than the one a session was planned for
    ├── FaultLatched           the controller is in FAULT/ESTOP until acknowledged
    ├── DeviceStateError       the device reports a state other than the one we required
    └── ProtocolFileError      a stimulation protocol file is malformed or invalid
"""

from __future__ import annotations

from collections.abc import Sequence


class TmsError(Exception):
    """Base of every tmsctl error. ``hint`` tells a technician what to do next."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class DeviceUnavailable(TmsError):
    hint = "check the device URL; `tmsctl devices` lists ports and simulators"


class PluginConflict(DeviceUnavailable):
    """Two installed distributions provide one driver or simulator name: neither is chosen."""

    hint = "uninstall one of the two distributions the message names"


class ConnectionFailed(TmsError):
    hint = "check the cable, the port name and that no other program holds the port"


class ProtocolError(TmsError):
    """The bytes received do not follow the device's wire protocol."""

    hint = "check the cable and the baud rate; if it repeats, power-cycle the stimulator"

    def __init__(self, message: str, *, raw: bytes = b"", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.raw = bytes(raw)


class ChecksumError(ProtocolError):
    pass


class EchoMismatch(ProtocolError):
    pass


class DeviceRefused(TmsError):
    """The device received the command and refused it.

    ``code`` is a short machine-readable reason: ``unknown_command``, ``bad_data``,
    ``state_conflict``, or a vendor error code.
    """

    def __init__(
        self, message: str, *, code: str, command: bytes = b"", raw: bytes = b"", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.command = bytes(command)
        self.raw = bytes(raw)


class TransportTimeout(TmsError, TimeoutError):
    """No complete reply arrived by the deadline. ``partial`` holds what did arrive."""

    hint = "the device stopped answering: check power and cable"

    def __init__(self, message: str, *, partial: bytes = b"", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.partial = bytes(partial)


class InvalidArgument(TmsError, ValueError):
    """A value the driver refuses to send: out of the device's range or off its grid."""


class SafetyViolation(TmsError):
    """A safety rule or limit refuses the request."""


class GuardRejected(SafetyViolation):
    """Controller guards refused a state change. ``reasons`` lists every failing guard."""

    def __init__(self, trigger: str, reasons: Sequence[str], *, hint: str | None = None) -> None:
        self.trigger = trigger
        self.reasons = list(reasons)
        super().__init__(f"{trigger} refused: " + "; ".join(self.reasons), hint=hint)


class UnitMismatch(SafetyViolation):
    """Another unit answered than the one a session was planned for (model, firmware or serial):
    its limits and thresholds were never checked against this one.

    ``planned`` and ``connected`` are the two units' identities (``tmsctl.session.host.UnitIdentity``).
    """

    hint = "reconnect the unit the session was planned for, or plan the session again on this one"

    def __init__(self, message: str, *, planned: object, connected: object, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.planned = planned
        self.connected = connected


class FaultLatched(TmsError):
    hint = "acknowledge the fault (after checking its cause) and reconnect"


class DeviceStateError(TmsError):
    """The device reports a state other than the one required (read-back mismatch)."""

    hint = "check the stimulator's front panel before trying again"


class IntensityMismatch(DeviceStateError):
    """The unit reports an output setting other than the one validated and set for this session."""

    def __init__(self, device: str, reported_pct: int, expected_pct: int) -> None:
        super().__init__(
            f"{device} reports {reported_pct} %MSO where {expected_pct} %MSO was set and validated",
            hint="check its front panel and who changed it before resuming",
        )
        self.reported_pct = reported_pct
        self.expected_pct = expected_pct


class ProtocolFileError(TmsError):
    """A stimulation protocol file is malformed or fails validation.

    ``path``, ``line`` and ``field`` locate the problem where known.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = path or "<protocol>"
        if line is not None:
            where += f":{line}"
        if field:
            where += f" [{field}]"
        super().__init__(f"{where}: {message}", hint=hint)


class ProtocolFileNotFound(ProtocolFileError, LookupError):
    """No protocol file at the path given (a "not found", not a protocol that fails its rules)."""
