"""One session host: the driver, the controller, the records and the session's audit log.

Every path that drives a stimulator holds it through a ``SessionHost``: ``tmsctl run``
(``session.run_planned``), ``tmsctl fire`` (``setup_check``), ``tmsctl mt`` (``mt_session.run_mt``)
and the embedding API (``api._Core``). The host opens what it owns in one order — the audit log
(its listener joins the controller's), the driver, the controller with its listeners — and
closes it in the reverse order with the controller first: ``Controller.close`` disarms before it
releases the port, so no path can leave a unit armed by forgetting a step, and the audit log is
closed only after the disarm it must hold.

The records handle is the session's: the host carries it for the session's writes; whoever opened
it closes it (a command opens its records on the session's clock before the host exists, and may
use them after the host is closed: a resume point, an abort).

A session planned on one connection runs on another: ``connect(expect=planned_info)`` checks that
the unit that answers is the one the plan was checked against — model, firmware and, where the
driver reports one, serial number — and refuses any other before anything is armed
(``UnitMismatch``). What the connected unit reported is ``host.info``; the session record stores
that, not the plan's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tmsctl.core.clock import Clock, SystemClock, VirtualClock
from tmsctl.core.errors import InvalidArgument, UnitMismatch
from tmsctl.core.events import Event, Listener
from tmsctl.core.registry import open_driver
from tmsctl.core.transport import Tap
from tmsctl.core.url import DeviceURL, parse
from tmsctl.drivers.base import DeviceInfo
from tmsctl.session.controller import Controller

# The driver's DeviceInfo.details key for a serial number the unit reports over the link.
SERIAL_NUMBER_DETAIL = "serial_number"


def clock_for(device: DeviceURL, *, virtual_time: bool = False) -> Clock:
    """The clock a session on ``device`` lives on.

    A pre-registered simulator (a test's) brings its own clock; otherwise real time, or a fresh
    virtual clock when asked for one, which only an in-process simulator can follow.
    """
    if device.is_simulator:
        from tmsctl.simulators import registry as sims

        instance = sims.lookup(device.simulator_profile or "")
        if instance is not None:
            return instance.clock
    if not virtual_time:
        return SystemClock()
    if not device.is_simulator:
        raise InvalidArgument(
            "virtual time runs only in-process simulators (sim://…): a real device lives in real time",
            hint="leave --virtual-time out for a real stimulator",
        )
    return VirtualClock()


@dataclass(frozen=True)
class UnitIdentity:
    """Which unit answered: its model, firmware and (where the driver reports it) serial number."""

    model: str
    firmware: str | None
    serial: str | None

    @classmethod
    def of(cls, info: DeviceInfo) -> UnitIdentity:
        firmware = ".".join(map(str, info.version)) if info.version else None
        return cls(info.model, firmware, info.details.get(SERIAL_NUMBER_DETAIL) or None)

    def describe(self) -> str:
        return (
            f"{self.model}, firmware {self.firmware or 'not reported'}, "
            f"serial {self.serial or 'not reported'}"
        )


def verify_same_unit(planned: DeviceInfo, connected: DeviceInfo) -> None:
    """Refuse a unit other than the one the plan was checked against (its limits, its thresholds)."""
    expected, found = UnitIdentity.of(planned), UnitIdentity.of(connected)
    if expected != found:
        raise UnitMismatch(
            f"the session was planned for {expected.describe()}; the unit that answered is "
            f"{found.describe()}; nothing was armed",
            planned=expected, connected=found,
        )


class AuditListener:
    """Writes every controller event to the session's JSON-lines audit log."""

    DURABLE = frozenset({"fault", "train_finished", "operator_action", "state_changed"})

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def on_event(self, event: Event) -> None:
        data = event.as_dict()
        kind = data.pop("kind")
        data.pop("t_wall", None)  # the audit log stamps its own wall time from the same clock
        self.logger.info(kind, durable=kind in self.DURABLE, **data)

    def on_error(self, exc: BaseException) -> None:
        pass

    def stop(self) -> None:
        pass


class SessionHost:
    """Owns one session's driver, controller (with its listeners), records handle and audit log.

    ``open()`` builds the driver and the controller (not connected; again after ``release()``),
    ``connect(expect=...)`` takes remote control and checks the unit, ``release()`` disarms and
    closes the port, ``close()`` does that and then closes the audit log. Also a context manager:
    leaving it closes, never raising for a dead device.
    """

    def __init__(
        self,
        device: DeviceURL | str,
        clock: Clock,
        *,
        records: Any = None,
        listeners: list[Listener] | tuple[Listener, ...] = (),
        tap: Tap | None = None,
    ) -> None:
        self.device = parse(device) if isinstance(device, str) else device
        self.clock = clock
        self.records = records
        self._listeners = list(listeners)
        self.tap = tap
        self.audit: Any = None
        self.controller: Controller | None = None
        self.info: DeviceInfo | None = None  # what the connected unit reported

    # -- opening -----------------------------------------------------------------------------------
    def open_audit(self, log_dir: Path, session_id: str, *, simulated: bool, origin_s: float) -> Any:
        """The session's audit log; every controller event from now on is written to it."""
        from tmsctl.session.audit import make_session_logger, session_log_path

        if self.audit is not None:
            raise InvalidArgument("this session's audit log is open already")
        self.audit = make_session_logger(
            session_log_path(log_dir, session_id), session_id=session_id, simulated=simulated,
            clock=self.clock, monotonic_origin_s=origin_s,
        )
        listener = AuditListener(self.audit)
        self._listeners.append(listener)
        if self.controller is not None:
            self.controller.dispatcher.add(listener)
        return self.audit

    def open(self) -> Controller:
        """Open the port and build the controller on it (not yet connected)."""
        if self.controller is not None:
            raise InvalidArgument("this session host holds an open controller already; release() it first")
        driver = open_driver(self.device, self.clock, tap=self.tap)
        self.info = None
        self.controller = Controller(driver, self.clock, listeners=list(self._listeners))
        return self.controller

    def connect(self, *, expect: DeviceInfo | None = None) -> DeviceInfo:
        """Take remote control; with ``expect``, refuse a unit other than the planned one."""
        controller = self.controller if self.controller is not None else self.open()
        info = controller.connect()
        self.info = info
        if expect is not None:
            verify_same_unit(expect, info)
        return info

    @property
    def unit(self) -> UnitIdentity | None:
        """The connected unit as it reported itself (None before a connect)."""
        return UnitIdentity.of(self.info) if self.info is not None else None

    def record_unit(self, session_id: str) -> None:
        """Store on the session's record the unit that answered this connect, as it reported itself."""
        unit = self.unit
        if unit is None:
            raise InvalidArgument("no unit has answered yet: connect() before recording it")
        self.records.record_session_device(session_id, model=unit.model, firmware=unit.firmware, serial=unit.serial)

    # -- closing ------------------------------------------------------------------------------------
    def release(self, reason: str = "released") -> None:
        """Disarm and close the port (never raises for a dead device); the audit log stays open."""
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.close(reason)

    def close(self) -> None:
        """Disarm and release the device, then close the audit log (which holds the disarm)."""
        try:
            self.release("closed")
        finally:
            audit, self.audit = self.audit, None
            if audit is not None:
                from tmsctl.session.audit import close_session_logger

                close_session_logger(audit)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = [
    "SERIAL_NUMBER_DETAIL", "AuditListener", "SessionHost", "UnitIdentity", "clock_for", "verify_same_unit",
]
