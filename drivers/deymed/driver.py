"""Driver for the Deymed DuoMAG: a unit that never answers, and a driver that says so.

The DuoMAG takes doubled raw bytes and replies to none of them (``shared/reference/deymed.md``);
all it sends is a continuous stream of status records. So this driver confirms what the stream
can show and marks what it cannot:

* intensity and delays are read back from the stream after every change (a record that shows
  the new value, within a deadline) — confirmed;
* a pulse cannot be confirmed: the stream has no pulse counter. ``fire()`` returns
  ``DeviceStatus(confirmed=False)`` and counts ``unconfirmed_pulses``; it only learns of a
  refusal, when the unit counts the fire as an omitted pulse (``DeviceRefused``);
* the driver sets ``confirmed_replies = False`` and its capabilities lack ``CONFIRMED_REPLIES``,
  so the controller records the unit as unconfirmed.

Arming. The DuoMAG has no arm, disarm or keep-alive command (no source has one); it charges to
whatever intensity it holds. The driver therefore keeps the unit at 0 % while disarmed — its only
confirmable safe state — and applies the operator's intensity when arming: ``set_intensity``
while disarmed stores the value without touching the unit, ``arm()`` sends it and waits for the
stream to show it, ``disarm()`` sends 0 % and waits for the stream to show that. Every record
that arrives is checked: an intensity tmsctl did not set (front panel, a corrupted byte) or a
fault bit raises at the next call. ``keepalive()`` reads a fresh record: it proves the stream is
alive, which is the only contact this unit offers.
"""

from __future__ import annotations

from typing import Any

from tmsctl.core.errors import (
    DeviceRefused,
    DeviceStateError,
    InvalidArgument,
    ProtocolError,
    TransportTimeout,
)
from tmsctl.core.transport import Transport, wire_time_s
from tmsctl.drivers.base import DeviceInfo, DeviceLimits, DeviceStatus

from . import codec as c
from .status import COIL_TYPE_RECORD_LENGTH, MIN_RECORD_LENGTH

STREAM_TIMEOUT_S = 0.5  # a new record within this, or the stream has stopped (U: the unit's rate)
CONFIRM_TIMEOUT_S = 0.5  # a set value must show in the stream within this
READY_TIMEOUT_S = 1.5  # charging to a new intensity (U: no published charge time)
FIRE_EVIDENCE_RECORDS = 3  # records read after a fire, looking for the discharge or an omitted pulse
BITS_PER_BYTE = 1 + 8 + c.STOP_BITS


class DuoMagDriver:
    """One DuoMAG over one transport. No timers, no threads; reads are bounded by deadlines."""

    name = "deymed-duomag"
    display_name = "Deymed DuoMAG"
    confirmed_replies = False  # the unit answers nothing: pulses stay unconfirmed

    def __init__(self, transport: Transport, limits: DeviceLimits, *, simulated: bool = False) -> None:
        self.transport = transport
        self.clock = transport.clock
        self.limits: Any = limits
        self.simulated = simulated
        self.parser = c.DuoMagStatusParser()
        self.last: c.DuoMagStatus | None = None
        self.records_seen = 0
        self.armed = False
        self.target_pct: int | None = None  # the operator's intensity, applied when armed
        self.unconfirmed_pulses = 0
        self._expected_pct = 0  # what every record must show
        self._accepted: set[int] | None = {
            0
        }  # intensities a record may show now (None: any, while disarming)
        self._coil_type_in_records: bool | None = None  # fixed at connect: the record length must not change
        self._joined = False  # the first sync byte has been seen (bytes before it are half a record)
        self._problem: str | None = None

    @property
    def trigger_lead_s(self) -> float:
        """From sending the fire bytes to the pulse: their wire time (the second byte fires)."""
        return wire_time_s(len(c.encode_command(c.Fire())), c.BAUD_RATE, BITS_PER_BYTE)

    # -- the stream ---------------------------------------------------------------------------------
    def _check(self, record: c.DuoMagStatus) -> None:
        self.records_seen += 1
        self.last = record
        if (
            self._coil_type_in_records is not None
            and (record.coil_type is not None) != self._coil_type_in_records
        ):
            raise ProtocolError(
                f"{self.display_name} status records changed length (coil-type byte "
                f"{'appeared' if record.coil_type is not None else 'vanished'}): "
                "a sync byte was lost or corrupted",
                raw=c.encode_status_record(record),
            )
        if self._accepted is not None and record.intensity_pct_mso not in self._accepted:
            self._problem = (
                f"the unit reports {record.intensity_pct_mso} %MSO; tmsctl holds it at {self._expected_pct} %"
            )

    def _take(self, data: bytes) -> list[c.DuoMagStatus]:
        records = self.parser.feed(data) if data else []
        rejects = self.parser.drain_rejects()
        if rejects and self._joined:
            raise ProtocolError(
                f"{self.display_name} status stream corrupted: {rejects[0].message}", raw=rejects[0].raw
            )
        self._joined = self._joined or self.parser.synced
        for record in records:
            self._check(record)
        return records

    def _bytes_needed(self) -> int:
        if not self.parser.synced:
            return 1
        length = COIL_TYPE_RECORD_LENGTH if self._coil_type_in_records else MIN_RECORD_LENGTH
        return max(1, length + 1 - len(self.parser.pending))  # a longer record just takes more reads

    def _next_records(self, deadline: float, what: str) -> list[c.DuoMagStatus]:
        """Records completed from now on (at least one), or TransportTimeout: the stream stopped."""
        while True:
            try:
                chunk = self.transport.read_exact(self._bytes_needed(), deadline)
            except TransportTimeout as exc:
                self._take(exc.partial)
                raise TransportTimeout(
                    f"{self.display_name} sent no status record for {what} by the deadline: the status "
                    f"stream stopped ({len(self.parser.pending)} byte(s) of a record pending)",
                    partial=self.parser.pending,
                    hint="check power, the USB cable and the vendor's USB driver; the session was stopped",
                ) from exc
            records = self._take(chunk)
            if records:
                return records

    def _fresh(self, what: str, timeout_s: float = STREAM_TIMEOUT_S) -> c.DuoMagStatus:
        """A record that ended after this call began: the unit's state now, not from the backlog."""
        self._take(self.transport.read_available())  # checked, then superseded
        return self._next_records(self.clock.now() + timeout_s, what)[-1]

    def _send(self, command: c.HostCommand) -> None:
        self._take(self.transport.read_available())
        self.transport.write(c.encode_command(command))

    def _raise_problem(self) -> None:
        if self._problem is not None:
            problem, self._problem = self._problem, None
            raise DeviceStateError(
                f"{self.display_name}: {problem}",
                hint="someone changed the stimulator at its front panel, or the status stream is corrupted; "
                "check it",
            )

    def _await(self, wanted: str, matches: Any, before: object, now_value: Any) -> c.DuoMagStatus:
        """Read records until one shows ``wanted``; refusal/state errors name what the unit shows."""
        deadline = self.clock.now() + wire_time_s(4, c.BAUD_RATE, BITS_PER_BYTE) + CONFIRM_TIMEOUT_S
        seen: c.DuoMagStatus | None = None
        while self.clock.now() < deadline:
            try:
                records = self._next_records(deadline, f"confirm {wanted}")
            except TransportTimeout:
                if seen is None:
                    raise
                break
            for record in records:
                seen = record
                if matches(record):
                    return record
        assert seen is not None
        shown = now_value(seen)
        if shown == before:
            raise DeviceRefused(
                f"{self.display_name} still shows {shown} {CONFIRM_TIMEOUT_S:g} s after being sent {wanted}",
                code="not_applied",
                hint="the DuoMAG answers nothing; its status stream never showed the new value",
            )
        raise DeviceStateError(f"{self.display_name} shows {shown} after being sent {wanted}")

    def _apply_intensity(self, pct: int, *, any_before: bool = False) -> c.DuoMagStatus:
        before = self._expected_pct
        self._accepted = None if any_before else {before, pct}
        try:
            self._send(c.SetIntensity(pct))
            record = self._await(
                f"{pct} %MSO",
                lambda r: r.intensity_pct_mso == pct,
                f"{before} %MSO",
                lambda r: f"{r.intensity_pct_mso} %MSO",
            )
        except BaseException:
            if any_before:
                self._accepted = None  # still unknown: keep accepting whatever the unit shows
            raise
        self._expected_pct = pct
        self._accepted = {pct}
        return record

    def _neutral(self, record: c.DuoMagStatus, *, confirmed: bool = True, note: str = "") -> DeviceStatus:
        faults = record.faults
        raw = (
            f"{record.intensity_pct_mso} %MSO, {'charged' if record.charged else 'charging'}, "
            f"coil {'disconnected' if record.coil_disconnected else record.coil_name or 'connected'}, "
            f"{record.omitted_pulses} omitted"
            + (f", faults: {', '.join(faults)}" if faults else "")
            + (f"; {note}" if note else "")
        )
        return DeviceStatus(
            remote_control=True,  # there is no remote-control mode to lose
            armed=self.armed,
            ready=self.armed and record.charged and record.intensity_pct_mso == self._expected_pct,
            coil_present=not record.coil_disconnected,
            error=bool(faults),
            fatal_error=bool(faults),
            confirmed=confirmed,
            raw=raw,
        )

    # -- connection -------------------------------------------------------------------------------
    def connect(self) -> DeviceInfo:
        """Join the status stream, fix the record layout, and bring the unit to 0 % (disarmed)."""
        self.parser = c.DuoMagStatusParser()
        self._joined = False
        self._problem = None
        self._coil_type_in_records = None
        self._accepted = None
        record = self._fresh("join the status stream", timeout_s=2 * STREAM_TIMEOUT_S)
        self._coil_type_in_records = record.coil_type is not None
        self._expected_pct = record.intensity_pct_mso
        self.armed = False
        if record.intensity_pct_mso != 0:
            record = self._apply_intensity(0)
        self._accepted = {0}
        self._expected_pct = 0
        return DeviceInfo(
            model=self.limits.model,
            display_name=self.limits.display_name,
            version=None,
            capabilities=frozenset(self.limits.capabilities),
            simulated=self.simulated,
            details={
                "replies": "none: settings are confirmed from the status stream, pulses cannot be confirmed",
                "coil": record.coil_name or "not reported",
                "status_record": "15+ bytes (with coil type)" if self._coil_type_in_records else "13 bytes",
            },
        )

    def status(self) -> DeviceStatus:
        return self._neutral(self._fresh("status read"))

    def keepalive(self) -> DeviceStatus:
        """A fresh record: the stream is alive. Raises on an intensity nobody set here, and on fault
        bits while armed (disarmed, they show in the status and the controller refuses to arm)."""
        record = self._fresh("keep-alive")
        self._raise_problem()
        if record.faults and self.armed:
            raise DeviceStateError(f"{self.display_name} reports {', '.join(record.faults)}")
        return self._neutral(record)

    def verify_intensity(self) -> DeviceStatus:
        """Every stream record carries the intensity, and each is checked as it arrives: a fresh one is the read-back."""
        return self.keepalive()

    def close(self) -> None:
        """Best effort: bring the unit to 0 %, close the port. Never raises."""
        try:
            self.disarm()
        except Exception:  # closing must not fail
            pass
        finally:
            self.transport.close()

    # -- intensity ----------------------------------------------------------------------------------
    def set_intensity(self, intensity_pct_mso: int) -> None:
        """Armed: send it and confirm it from the stream, then wait for the recharge.

        Disarmed: remember it for ``arm()``; the unit stays at 0 %.
        """
        value = intensity_pct_mso
        ceiling = self.limits.max_intensity_pct_mso
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ceiling:
            raise InvalidArgument(
                f"DuoMAG intensity must be a whole percentage 0..{ceiling} %MSO, got {value!r}",
                hint="the DuoMAG sets intensity in 1 % steps; tmsctl never rounds",
            )
        if self.armed:
            self._raise_problem()
            self._apply_intensity(value)
            self.target_pct = value
            self.wait_ready()  # the unit recharges to the new intensity; a fire before that would be omitted
        self.target_pct = value

    # -- arm / fire / disarm ---------------------------------------------------------------------------
    def arm(self) -> DeviceStatus:
        """Apply the intensity (the unit starts charging to it) and confirm it from the stream."""
        if self.target_pct is None:
            raise InvalidArgument("set the intensity before arming: the DuoMAG is held at 0 % until then")
        self._raise_problem()
        record = self._apply_intensity(self.target_pct)
        self.armed = True
        return self._neutral(record)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> DeviceStatus:
        """Until a record shows the unit charged at the armed intensity."""
        deadline = self.clock.now() + timeout_s
        record = self._fresh("wait until charged")
        while not (record.charged and record.intensity_pct_mso == self._expected_pct):
            if record.faults or record.coil_disconnected:
                break
            if self.clock.now() >= deadline:
                break
            record = self._next_records(self.clock.now() + STREAM_TIMEOUT_S, "wait until charged")[-1]
        status = self._neutral(record)
        if not status.ready:
            self.disarm()
            raise DeviceStateError(
                f"{self.display_name} was not ready {timeout_s:.1f} s after arming ({status.raw})"
            )
        return status

    def fire(self) -> DeviceStatus:
        """Send the fire byte. Unconfirmed: only an omitted-pulse count can tell us it did not fire."""
        if not self.armed:
            raise DeviceStateError(f"{self.display_name} is not armed (held at 0 %)")
        self._raise_problem()
        before = self.last.omitted_pulses if self.last is not None else 0
        self._send(c.Fire())
        deadline = self.clock.now() + STREAM_TIMEOUT_S
        for _ in range(FIRE_EVIDENCE_RECORDS):
            record = self._next_records(deadline, "look for the discharge after firing")[-1]
            if record.omitted_pulses != before:
                raise DeviceRefused(
                    f"{self.display_name} counted the fire as an omitted pulse "
                    f"({record.omitted_pulses} omitted)",
                    code="omitted_pulse",
                    hint="the unit was not charged, or reports a fault; wait for it to recharge",
                )
            if not record.charged:
                break
        self.unconfirmed_pulses += 1
        return self._neutral(record, confirmed=False, note="fire sent; the DuoMAG cannot confirm a pulse")

    def disarm(self) -> DeviceStatus:
        """Bring the unit to 0 % and confirm it from the stream (the DuoMAG has no disarm command)."""
        self.armed = False
        record = self._apply_intensity(0, any_before=True)
        self._problem = None
        return self._neutral(record)

    # -- delays -----------------------------------------------------------------------------------------
    def set_recharge_delay_us(self, delay_us: int) -> c.DelayCode:
        code = self.limits.check_recharge_delay_us(delay_us)
        return self._set_delay(c.SetRechargeDelay(code), "recharge delay", lambda r: r.recharge_delay)

    def set_ttl_out_delay_us(self, delay_us: int) -> c.DelayCode:
        code = self.limits.check_ttl_out_delay_us(delay_us)
        return self._set_delay(c.SetTtlOutDelay(code), "TTL-out delay", lambda r: r.ttl_out_delay)

    def _set_delay(
        self, command: c.SetRechargeDelay | c.SetTtlOutDelay, what: str, field: Any
    ) -> c.DelayCode:
        self._raise_problem()

        def show(record: c.DuoMagStatus) -> str:
            code = field(record)
            return f"{what} {code.steps} × {code.step.step_us} µs"

        before = show(self.last) if self.last is not None else None
        self._send(command)
        self._await(
            f"{what} {command.delay.delay_us / 1000:g} ms", lambda r: field(r) == command.delay, before, show
        )
        return command.delay
