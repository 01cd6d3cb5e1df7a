"""Simulated Deymed DuoMAG: doubled raw-byte commands in, a 0xFF-separated status stream out.

The device side of ``tmsctl.drivers.deymed.codec`` on top of ``SimulatedDevice``. Like the unit
(``shared/reference/deymed.md``), it answers nothing: host bytes go through the codec's command
parser, and the only output is a status record every ``record_period_s``, each followed by the
0xFF sync byte. Planned reply faults therefore hit the status stream: ``no_reply`` drops one
record, ``garbled_byte`` corrupts one, ``bad_checksum`` corrupts the sync byte after one.

The unit's own protection, written here independently of the driver and spec: a fire byte that
arrives while the unit is not charged, without a coil, with an overheated coil or with a voltage
error is not fired but counted as an omitted pulse (status byte 6) and written to ``interlocks``.

Behaviour the sources leave open (all U): the unit powers up at 0 %; charging to a new
intensity takes ``charge_time_s(intensity)``; after a pulse it waits its recharge delay, then
recharges; coil temperature appears as a raw ADC count of 4 per °C; it streams 50 records a
second, newer models' 15-byte records with the coil type. The host bytes a serial read has not
taken are capped like an OS buffer, so an idle host cannot make the model grow without bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tmsctl.drivers.deymed import codec as c
from tmsctl.drivers.deymed.status import MAX_RAW_BYTE

from .device import Fault, FaultKind, SemanticFaultKind, SimulatedDevice
from .registry import profiles_for

_UNREAD_BYTES_CAP = 4096  # a driver that stops reading loses the oldest records, as with a full OS buffer
_ADC_COUNTS_PER_C = 4
# extra_pulses: the unit discharges again this long after the fire byte's pulse (ours, U).
EXTRA_PULSE_GAP_S = 0.05
# The semantic faults a unit that never answers cannot express, and why.
_NOT_EXPRESSIBLE = {
    SemanticFaultKind.TRAIN_STOPS_EARLY: "the DuoMAG times no trains: the host sends one fire byte per pulse",
    SemanticFaultKind.WRONG_MODEL: "the DuoMAG has no identity query: it answers nothing, it only streams status",
}


@dataclass(frozen=True)
class DuoMagProfile:
    name: str
    display_name: str
    driver: str = "deymed-duomag"
    record_period_s: float = 0.02
    coil_type: int | None = 1  # 70BF; None → the older 13-byte record
    coil_overheat_c: float = 40.0
    initial_recharge_delay: c.DelayCode = c.DelayCode(100, c.DelayStep.MS_1)
    initial_ttl_out_delay: c.DelayCode = c.DelayCode(1, c.DelayStep.MS_10)
    driver_options: dict[str, str] = field(default_factory=dict)

    def charge_time_s(self, intensity_pct: int) -> float:
        return 0.1 + 0.3 * intensity_pct / 100


PROFILES: dict[str, DuoMagProfile] = {
    "duomag": DuoMagProfile("duomag", "Deymed DuoMAG (simulated)"),
    "duomag-13": DuoMagProfile(
        "duomag-13", "Deymed DuoMAG, 13-byte status records (simulated)", coil_type=None
    ),
}


class DuoMagSimulator(SimulatedDevice):
    baudrate = c.BAUD_RATE
    bits_per_byte = 1 + 8 + c.STOP_BITS
    reply_latency_s = 0.0  # the stream has no request to be late for

    def __init__(self, profile: DuoMagProfile, *, start: float = 0.0, faults: tuple[Fault, ...] = ()) -> None:
        super().__init__(start=start, faults=faults)
        self.profile = profile
        self.parser = c.DuoMagCommandParser()
        self.rejected_bytes: list[tuple[float, str]] = []
        self.interlocks: list[tuple[float, str]] = []
        self.intensity_pct = 0
        self.intensity_change_pct = 0
        self.charged_at = start
        self.omitted_pulses = 0
        self.recharge_delay = profile.initial_recharge_delay
        self.ttl_out_delay = profile.initial_ttl_out_delay
        self.voltage_error = False
        self._ignore_disarm_until = -math.inf
        self._extra_pulses_due = 0
        self._record_cache: tuple[tuple[object, ...], bytes] | None = None
        self._reply(bytes((c.SYNC,)), start)
        self._schedule(start + profile.record_period_s, self._stream)
        self.check_fault_plan(faults)

    @property
    def is_energised(self) -> bool:
        """Charged, or charging, to a non-zero output: a fire byte would (soon) deliver a pulse."""
        return self.intensity_pct > 0

    def charged(self, now: float) -> bool:
        return now >= self.charged_at

    def coil_overheated(self, now: float) -> bool:
        return self.coil.at(now) >= self.profile.coil_overheat_c

    # -- the stream -----------------------------------------------------------------------------------
    def status(self, now: float) -> c.DuoMagStatus:
        raw_c = min(MAX_RAW_BYTE, round(self.coil.at(now) * _ADC_COUNTS_PER_C))
        return c.DuoMagStatus(
            ttl_trigger_demand=False,
            intensity_change_pct=self.intensity_change_pct,
            intensity_pct_mso=self.intensity_pct,
            coil_temperature_raw=raw_c,
            resistor_temperature_raw=100,
            discharge_temperature_raw=100,
            omitted_pulses=self.omitted_pulses,
            power_overheat=False,
            coil_disconnected=not self.coil.present,
            voltage_hold_error=self.voltage_error,
            voltage_recharge_error=False,
            power_fan_seized=False,
            coil_overheat=self.coil_overheated(now),
            resistor_overheat=False,
            discharge_overheat=False,
            coil_data_ok=self.coil.present,
            receiving_usb=True,
            idle_time=False,
            charged=self.charged(now),
            ttl_out_delay=self.ttl_out_delay,
            recharge_delay=self.recharge_delay,
            coil_type=self.profile.coil_type,
        )

    def _record_bytes(self, now: float) -> bytes:
        # The record rarely changes between periods; encode it only when it does.
        key = (
            self.intensity_pct,
            self.intensity_change_pct,
            round(self.coil.at(now) * _ADC_COUNTS_PER_C),
            self.omitted_pulses,
            self.coil.present,
            self.voltage_error,
            self.coil_overheated(now),
            self.charged(now),
            self.recharge_delay,
            self.ttl_out_delay,
        )
        if self._record_cache is None or self._record_cache[0] != key:
            self._record_cache = (key, c.encode_status_record(self.status(now)) + bytes((c.SYNC,)))
        return self._record_cache[1]

    def _stream(self, now: float) -> None:
        self._schedule(now + self.profile.record_period_s, self._stream)
        if self.unread_reply_bytes > _UNREAD_BYTES_CAP:
            return
        self._reply(self._record_bytes(now), now)

    def _on_hang_up(self, now: float) -> None:
        self.parser = c.DuoMagCommandParser()  # the half frame in progress goes with the host that sent it

    # -- input ----------------------------------------------------------------------------------------
    def _on_bytes(self, now: float) -> int | None:
        commands = self.parser.feed(bytes(self._inbuf))
        self._inbuf.clear()
        for reject in self.parser.drain_rejects():
            self.rejected_bytes.append((now, reject.message))
        for command in commands:
            self._count_command(now)
            if self.stalled:
                continue
            self._handle(command, now)
        return None

    def _handle(self, command: c.HostCommand, now: float) -> None:
        if isinstance(command, c.SetIntensity):
            if command.intensity_pct_mso == 0 and self.intensity_pct and now < self._ignore_disarm_until:
                # 0 % is the DuoMAG's disarm (it has no command for it); the stream keeps showing the charge.
                self.fault_log.append((now, "ignore_disarm: 0 % ignored, still charged"))
                return
            self._set_intensity(command.intensity_pct_mso, now)
        elif isinstance(command, c.Fire):
            self._fire(now)
        elif isinstance(command, c.SetRechargeDelay):
            self.recharge_delay = command.delay
        elif isinstance(command, c.SetTtlOutDelay):
            self.ttl_out_delay = command.delay

    def _set_intensity(self, intensity_pct: int, now: float) -> None:
        change = intensity_pct - self.intensity_pct
        self.intensity_change_pct = max(-16, min(15, change))
        self.intensity_pct = intensity_pct
        if change > 0:  # charging up takes time; lowering discharges at once
            self.charged_at = max(self.charged_at, now + self.profile.charge_time_s(intensity_pct))

    def _refusal(self, now: float) -> str | None:
        if not self.coil.present:
            return "coil disconnected"
        if self.coil_overheated(now):
            return "coil overheated"
        if self.voltage_error:
            return "voltage hold error"
        if not self.charged(now):
            return f"not charged for another {self.charged_at - now:.3f} s"
        return None

    def _fire(self, now: float) -> None:
        why = self._refusal(now)
        if why:
            self.omitted_pulses = (self.omitted_pulses + 1) % (MAX_RAW_BYTE + 1)
            self.interlocks.append((now, f"fire omitted: {why}"))
            return
        if self.intensity_pct == 0:
            return  # nothing to discharge
        self._record_pulse(now, self.intensity_pct, self._energy_j(), "serial")
        self.charged_at = (
            now + self.recharge_delay.delay_us / 1e6 + self.profile.charge_time_s(self.intensity_pct)
        )
        if self._extra_pulses_due:
            count, self._extra_pulses_due = self._extra_pulses_due, 0
            for k in range(1, count + 1):
                # Nothing in the stream tells of these: no omitted-pulse count, the charge flag as it was.
                self._schedule(now + k * EXTRA_PULSE_GAP_S, self._extra_pulse)

    def _energy_j(self) -> float:
        return 2.0 * self.intensity_pct  # U: coil heating only

    def _extra_pulse(self, now: float) -> None:
        if self.intensity_pct:
            self._record_pulse(now, self.intensity_pct, self._energy_j(), "extra")

    def _on_fault(self, fault: Fault, now: float) -> None:
        if fault.kind is FaultKind.OVER_TEMPERATURE:
            self.coil.force(now, self.profile.coil_overheat_c + 2.0)
        if fault.kind is FaultKind.DEVICE_ERROR:
            self.voltage_error = True

    def _semantic_fault_problem(self, fault: Fault) -> str | None:
        if fault.kind in _NOT_EXPRESSIBLE:
            return _NOT_EXPRESSIBLE[fault.kind]  # type: ignore[index]
        if fault.kind is SemanticFaultKind.POWER_DRIFT and fault.number is not None and fault.number > 100:
            return "the intensity goes up to 100 %"
        return None

    def _on_semantic_fault(self, fault: Fault, now: float) -> None:
        kind = fault.kind
        if kind is SemanticFaultKind.POWER_DRIFT:
            # The stream's intensity field reports it (with its intensity-change field), as for a host change.
            self._set_intensity(fault.number if fault.number is not None else min(100, self.intensity_pct + 10), now)
        elif kind is SemanticFaultKind.IGNORE_DISARM:
            self._ignore_disarm_until = math.inf if fault.duration_s is None else now + fault.duration_s
        elif kind is SemanticFaultKind.EXTRA_PULSES:
            self._extra_pulses_due += 1 if fault.number is None else fault.number
        elif kind is SemanticFaultKind.REBOOT:
            # A power cycle: back to 0 % and the power-on delays; the stream pauses while it boots.
            self.intensity_pct = self.intensity_change_pct = 0
            self.charged_at = now
            self.omitted_pulses = 0
            self.voltage_error = False
            self.recharge_delay = self.profile.initial_recharge_delay
            self.ttl_out_delay = self.profile.initial_ttl_out_delay
            self.parser = c.DuoMagCommandParser()
            self._boot(now, fault.duration_s)


# What tmsctl's pyproject.toml names in the ``tmsctl.simulators`` entry point ``deymed``.
SIMULATOR_PROFILES = profiles_for(PROFILES, DuoMagSimulator)
