"""Simulated Magstim 200², BiStim² and Rapid², speaking the real bytes with the real timing.

The device side of ``tmsctl.drivers.magstim.codec`` on top of ``SimulatedDevice``. Its interlocks
are implemented here independently of the controller's and the protocol checker's, the way the
real unit protects itself: it refuses to arm or fire without a coil, above the coil temperature
limit, before it is charged, inside the post-train lock-out, or when a Rapid² train would
overload its energy budget; it disarms and drops remote control when keep-alives stop.

Behaviour the bulletins leave open (reference magstim.md §4, §7, §16) follows the choices below:
replies report the status as it was *before* the command (except ``Q``/``R``); control commands
without remote control are refused with ``S``; a missed keep-alive while armed (1 s) disarms and
drops remote control, in standby (10 s) it drops remote control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tmsctl.core.errors import ProtocolError
from tmsctl.drivers.base import SIMULATOR_IDENTITY_PREFIX
from tmsctl.drivers.magstim import codec as c
from tmsctl.drivers.magstim.codec import Model

from .device import Fault, FaultKind, SemanticFaultKind, SimulatedDevice, _Timer
from .registry import profiles_for

# The public "simulator unlock code": a real Rapid² v9+ checks a code Magstim issued for that
# unit; the simulator accepts only this one, so drivers are exercised with the 18-byte frame.
SIMULATOR_UNLOCK_CODE = b"SIMU-00000000-\x5a\xa5"

# Energy per pulse (J) by output %, Rapid² Table 1 (TDb087 §3). Duplicated here on purpose: the
# simulator's energy interlock must not share code with the controller's budget.
_ENERGY_J = (
    0.0, 0.0, 0.1, 0.2, 0.4, 0.6, 0.9, 1.2, 1.6, 2.0,
    2.5, 3.0, 3.6, 4.3, 4.9, 5.7, 6.4, 7.3, 8.2, 9.1,
    10.1, 11.1, 12.2, 13.3, 14.5, 15.7, 17.0, 18.4, 19.7, 21.2,
    22.7, 24.2, 25.8, 27.4, 29.1, 30.8, 32.6, 34.5, 36.4, 38.3,
    40.3, 42.3, 44.4, 46.6, 48.8, 51.0, 53.3, 55.6, 58.0, 60.5,
    63.0, 65.5, 68.1, 70.7, 73.4, 76.2, 79.0, 81.8, 84.7, 87.7,
    90.7, 93.7, 96.8, 100.0, 103.2, 106.4, 109.7, 113.0, 116.4, 119.9,
    123.4, 126.9, 130.5, 134.2, 137.9, 141.7, 145.5, 149.3, 153.2, 157.2,
    161.2, 165.2, 169.3, 173.5, 177.7, 181.9, 186.3, 190.6, 195.0, 199.5,
    204.0, 208.5, 213.1, 217.8, 222.5, 227.3, 232.1, 236.9, 241.9, 246.8,
    252.0,
)  # fmt: skip


# Highest repetition rate (Hz) of a Rapid² (type 0) on 240 V mains by output power (MagPy's
# rapid_system_info.yaml, magstim.md §10; C/U): 50 Hz up to 30 %, then one row per ten percent.
# Duplicated from the driver spec on purpose, like the energy table: the unit's own interlock.
_MAX_FREQUENCY_HZ_BELOW_30 = 50
_MAX_FREQUENCY_HZ_FROM_30 = (
    50, 46, 45, 44, 42, 41, 41, 39, 39, 38,
    37, 36, 34, 33, 33, 33, 33, 33, 32, 31,
    30, 30, 29, 29, 28, 28, 27, 27, 26, 26,
    25, 25, 24, 24, 23, 23, 22, 22, 21, 21,
    20, 20, 20, 20, 19, 19, 19, 19, 19, 18,
    18, 18, 18, 18, 18, 17, 17, 17, 17, 17,
    17, 17, 16, 16, 16, 16, 16, 16, 15, 15,
    15,
)  # fmt: skip
# A trigger edge that comes a hair early for the rated rate still finds the unit charged (ours, U):
# the rated maximum is a repetition rate, not a charge time measured to the microsecond.
TRIGGER_RECHARGE_TOLERANCE_S = 1e-4


def rapid2_max_frequency_hz(power_pct: int) -> int:
    """The highest rate the unit's trigger input repeats at, at this output (enhanced: the 100 % row)."""
    power = min(power_pct, 100)
    return _MAX_FREQUENCY_HZ_BELOW_30 if power < 30 else _MAX_FREQUENCY_HZ_FROM_30[power - 30]


def energy_j(power_pct: int) -> float:
    # Enhanced power (101–110 %) is single-pulse only; count it as the 100 % energy plus 10 %.
    return _ENERGY_J[power_pct] if power_pct <= 100 else _ENERGY_J[100] * power_pct / 100


@dataclass(frozen=True)
class MagstimProfile:
    name: str
    model: Model
    driver: str
    display_name: str
    version_text: str | None = None  # Rapid² only
    arm_to_ready_s: float = 0.8
    keepalive_standby_s: float = 10.0
    keepalive_armed_s: float = 1.0
    armed_idle_disarm_s: float = 60.0
    coil_limit_c: float = 40.0
    post_train_lockout_s: float = 0.5
    energy_budget_j: float = 63_000.0
    energy_drain_w: float = 1050.0
    max_frequency_dhz: int = 1000
    driver_options: dict[str, bytes] = field(default_factory=dict)
    recharge_override_s: float | None = None  # benchmarks only: fire as fast as the link allows

    @property
    def version(self) -> c.Version | None:
        return c.parse_version(self.version_text) if self.version_text else None

    def recharge_s(self, power_pct: int, source: str = "serial") -> float:
        """Time from a single pulse until the unit is ready again.

        A Rapid² fired through its trigger input (RTS quick-fire, a TTL) recharges at its rated
        repetition rate for the output (the frequency table); the 1 Hz of TDb087 §5.5 binds serially
        triggered pulses. Enhanced power (above 100 %) stays at 0.5 Hz whatever fired it."""
        if self.recharge_override_s is not None:
            return self.recharge_override_s
        if self.model is Model.RAPID2:
            if power_pct > 100:
                return 2.0
            if source in ("rts", "ttl"):
                return 1.0 / rapid2_max_frequency_hz(power_pct) - TRIGGER_RECHARGE_TOLERANCE_S
            return 1.0  # 1 Hz serial rate (TDb087 §5.5)
        return 2.0 if power_pct < 50 else 3.0 if power_pct < 80 else 4.0  # U: MagPy's virtual unit


PROFILES: dict[str, MagstimProfile] = {
    "m200": MagstimProfile("m200", Model.M200, "magstim-200", "Magstim 200² (simulated)"),
    "bistim": MagstimProfile("bistim", Model.BISTIM, "magstim-bistim", "Magstim BiStim² (simulated)"),
    "rapid2": MagstimProfile(
        "rapid2", Model.RAPID2, "magstim-rapid2", "Magstim Rapid² (simulated, software V9.0)",
        version_text="V9.0", driver_options={"unlock": SIMULATOR_UNLOCK_CODE},
    ),
    "rapid2-v8": MagstimProfile(
        "rapid2-v8", Model.RAPID2, "magstim-rapid2", "Magstim Rapid² (simulated, software V8.1)", version_text="V8.1"
    ),
    "rapid2-v10": MagstimProfile(
        "rapid2-v10", Model.RAPID2, "magstim-rapid2", "Magstim Rapid² (simulated, software V10.2.1)",
        version_text="V10.2.1", driver_options={"unlock": SIMULATOR_UNLOCK_CODE},
    ),
}
PROFILES["200"] = PROFILES["m200"]

# Commands obeyed only under remote control (TDb086/TDb087: "needs remote control enabled first").
_NEEDS_REMOTE = {
    c.SET_POWER_A, c.SET_POWER_B, c.SET_ISI, c.SET_MODE, c.HIGH_RES_ON, c.HIGH_RES_OFF, c.SET_FREQUENCY,
    c.SET_PULSES, c.SET_DURATION, c.ENHANCED_ON, c.ENHANCED_OFF, c.IGNORE_COIL_INTERLOCK, c.SET_CHARGE_DELAY,
}  # fmt: skip
_V9_ONLY = {c.GET_SYSTEM_STATUS, c.SET_CHARGE_DELAY, c.GET_CHARGE_DELAY}
_HANDLER_NAMES = {cmd: f"_cmd_{cmd:02x}" for cmd in range(256)}
# Every possible status byte, built once: one is needed for every command the unit answers.
_INSTRUMENT_STATUS = tuple(c.InstrumentStatus(raw) for raw in range(256))
_RAPID_STATUS = tuple(c.RapidStatus(raw) for raw in range(256))
# The extended status this model can report: without and with a charge delay set (bit 2).
_EXTENDED_STATUS = (c.ExtendedStatus(0), c.ExtendedStatus(0x0004))
_EXTENDED_STATUS_BYTES = tuple(c.encode_extended_status(e) for e in _EXTENDED_STATUS)
# extra_pulses after a single pulse: the unit discharges again this long after it (ours, U: a
# spurious re-trigger has no published timing; 50 ms keeps it apart from the commanded pulse).
EXTRA_PULSE_GAP_S = 0.05
# wrong_model with no value: a Rapid² claims another software generation (other frame widths),
# a BiStim² claims to be a single stimulator (system mode '0', magstim.md §6.5).
_OTHER_GENERATION = {8: "V9.0", 9: "V8.1", 10: "V9.0"}
_SYSTEM_MODES = "01234QRST"


class MagstimSimulator(SimulatedDevice):
    def __init__(self, profile: MagstimProfile, *, start: float = 0.0, faults: tuple[Fault, ...] = ()) -> None:
        super().__init__(start=start, faults=faults)
        self.profile = profile
        self.model = profile.model
        self.version = profile.version
        self.remote = False
        self.armed = False
        self.ready = False
        self.error: c.ErrorCode | None = None
        self.train_running = False
        self._power_on_settings()
        self.energy_level_j = 0.0
        self._energy_at = start
        self.interlocks: list[tuple[float, str]] = []  # every refusal the unit made to protect itself
        self._last_valid_command_at = start
        self._disarm_after_train = False
        self._ready_timer: _Timer | None = None
        self._idle_timer: _Timer | None = None
        self._train_timers: list[_Timer] = []
        self._train: tuple[float, float, int] | None = None  # (first pulse, period, pulses) of the running train
        self._trigger_level = False  # the trigger input (RTS through a quick-fire cable, or a TTL)
        # Semantic faults waiting for their moment (see _on_semantic_fault).
        self._ignore_disarm_until = -math.inf
        self._extra_pulses_due = 0
        self._train_cut: int | None = None  # pulses the next train delivers; -1: half of them
        self.identity_version_text = profile.version_text  # what N answers (wrong_model changes it)
        self.identity_system_mode: str | None = None  # what X answers, if not the true mode
        self.names_itself_simulator = False  # N answers SIM-V9.0 (served: see identify_as_simulator)
        # Host frame lengths that the first byte alone decides (all but Q's unlock-code form).
        self._frame_lengths = {
            cmd: length
            for cmd in c.COMMANDS_BY_MODEL[self.model]
            if cmd != c.REMOTE_ON and (length := c.host_frame_length(cmd, self.model, self.version)) is not None
        }
        # The commands whose reply carries the Rapid² status byte; none on the other models. Decided
        # here, not per command: Model.RAPID2 is an enum class-attribute load the interpreter cannot
        # specialise (~70 ns), and _handle runs for every command.
        self._rapid_status_replies = c._RAPID_STATUS_REPLIES if self.model is Model.RAPID2 else frozenset()
        self.check_fault_plan(faults)

    def _power_on_settings(self) -> None:
        """The settings of a unit just switched on (U: the bulletins give none; B at 0 % so a
        BiStim² fires its second output only when a host sets it)."""
        self.power_a = 30
        self.power_b = 0
        self.isi_raw = 10
        self.high_res = False
        self.enhanced = False
        self.frequency_dhz = 10
        self.train_pulses = 1
        self.duration_ds = 0  # 0 = single-pulse mode
        self.charge_delay_ms = 0
        self.lockout_until = -math.inf

    @property
    def is_energised(self) -> bool:
        return self.armed or self.ready or self.train_running

    # -- status bytes ---------------------------------------------------------------------------
    def instrument_status(self) -> c.InstrumentStatus:
        # The bits of InstrumentStatus.build, spelled out: this runs for every command.
        armed, ready = self.armed, self.ready
        return _INSTRUMENT_STATUS[
            (not (armed or ready)) | (armed and not ready) << 1 | ready << 2 | self.coil.present << 3
            | (self.error is not None) << 5 | self.remote << 7
        ]

    def rapid_status(self) -> c.RapidStatus:
        # The bits of RapidStatus.build (HV PSU always connected), spelled out like the above.
        return _RAPID_STATUS[
            self.enhanced | self.train_running << 1 | (self.now < self.lockout_until) << 2
            | (self.duration_ds == 0) << 3 | 0x10 | (self.coil.present and self.ready) << 5
        ]

    # -- input ----------------------------------------------------------------------------------
    def _on_bytes(self, now: float) -> int | None:
        inbuf = self._inbuf
        while inbuf:
            length = self._frame_lengths.get(inbuf[0])
            if length is None:
                second = inbuf[1] if len(inbuf) >= 2 else None
                if second is None and inbuf[0] == c.REMOTE_ON:
                    return None  # Q's length depends on its first data byte (pad or unlock code)
                length = c.host_frame_length(inbuf[0], self.model, self.version, second)
            if length is not None and len(inbuf) < length:
                return length - len(inbuf)  # wait for the rest before parsing
            frame, consumed = c.parse_host_frame(bytes(inbuf), self.model, self.version)
            del inbuf[:consumed]
            if frame is None:
                self._reply(c.UNKNOWN_COMMAND, now)  # not a command this unit knows
                continue
            self._count_command(now)
            if self.stalled:
                continue
            self._handle(frame, now)
        return None

    def _handle(self, frame: c.HostFrame, now: float) -> None:
        cmd = frame.command
        if not frame.checksum_ok:
            self._reply(c.encode_refusal(cmd, "bad_data"), now)
            return
        if cmd in _V9_ONLY and (self.version is None or self.version[0] < 9):
            self._reply(c.UNKNOWN_COMMAND, now)
            return
        if cmd == c.GET_VERSION:
            text = self.identity_version_text or "V1.0"
            mark = SIMULATOR_IDENTITY_PREFIX if self.names_itself_simulator else ""
            self._reply(c.encode_version_reply(mark + text), now)
            return
        if cmd in _NEEDS_REMOTE and not self.remote and not (cmd == c.SET_MODE and frame.data == b"A"):
            self._refuse(cmd, now, "control command without remote control")
            return
        before = self.instrument_status()
        handler = getattr(self, _HANDLER_NAMES[cmd])
        result = handler(frame.data, now)
        if result is None:
            return  # the handler replied (a refusal)
        data, status = result
        status = status or before
        if self.remote and cmd != c.REMOTE_OFF:
            self._feed_keepalive(now)
        rapid = self.rapid_status() if cmd in self._rapid_status_replies else None
        if cmd == c.SET_CHARGE_DELAY:
            rapid = self.rapid_status()
            if self.version and self.version[0] >= 10:
                data = c.encode_extended_status(self._extended())
        self._reply(c.encode_reply(cmd, status, data, rapid), now)

    def _refuse(self, cmd: int, now: float, why: str, code: str = "state_conflict") -> None:
        self.interlocks.append((now, f"{chr(cmd)}: {why}"))
        self._reply(c.encode_refusal(cmd, code), now)

    def _extended(self) -> c.ExtendedStatus:
        return _EXTENDED_STATUS[bool(self.charge_delay_ms)]

    # -- keep-alive and timers -------------------------------------------------------------------
    def _keepalive_limit_s(self) -> float:
        # The limit depends on the state (1 s armed, 10 s standby), counted from the last command.
        return self.profile.keepalive_armed_s if (self.armed or self.ready) else self.profile.keepalive_standby_s

    def _feed_keepalive(self, now: float) -> None:
        self._last_valid_command_at = now
        self._rearm_keepalive()

    def _rearm_keepalive(self) -> None:
        # The device's watchdog slot, not a heap timer: it moves with every command.
        self._watchdog_at = self._last_valid_command_at + self._keepalive_limit_s()

    def _on_watchdog(self, now: float) -> None:  # the keep-alive deadline passed
        self.remote = False
        if self.train_running:
            # U: a Rapid² times each train itself (one train per trigger, TDb087 §5.6(e)); we
            # assume a host going silent mid-train does not cut the train short.
            self.fault_log.append((now, "keep-alive missed during a train: disarming when it ends"))
            self._disarm_after_train = True
            return
        self.fault_log.append((now, "keep-alive missed: disarmed, remote control dropped"))
        self._disarm(now)

    def _disarm(self, now: float) -> None:
        self.armed = self.ready = False
        for timer in (self._ready_timer, self._idle_timer, *self._train_timers):
            self._cancel(timer)
        self._train_timers = []
        self._train = None
        if self.train_running:
            self.train_running = False
            self.lockout_until = now + self.profile.post_train_lockout_s
        if self.remote:
            self._rearm_keepalive()

    def _become_ready(self, now: float) -> None:
        if self.armed and self._may_arm(now) is None:
            self.ready = True
            self.armed = False  # a charged unit reports "ready" with the armed bit clear (CBOUL)

    def _restart_idle(self, now: float) -> None:
        self._cancel(self._idle_timer)
        self._idle_timer = self._schedule(now + self.profile.armed_idle_disarm_s, self._idle_disarm)

    def _idle_disarm(self, now: float) -> None:
        self.fault_log.append((now, "armed for too long without firing: disarmed"))
        self._disarm(now)

    def _may_arm(self, now: float) -> str | None:
        if not self.coil.present:
            return "no coil connected"
        if self.coil.at(now) >= self.profile.coil_limit_c:
            return f"coil at {self.coil.at(now):.1f} °C, limit {self.profile.coil_limit_c:.1f} °C"
        if self.error is not None:
            return f"error {self.error.source}{self.error.code:02d} present"
        return None

    # -- faults -----------------------------------------------------------------------------------
    def _on_fault(self, fault: Fault, now: float) -> None:
        if fault.kind is FaultKind.OVER_TEMPERATURE:
            self.coil.force(now, self.profile.coil_limit_c + 2.0)
        if fault.kind is FaultKind.DEVICE_ERROR:
            self.error = c.ErrorCode("E", 42)
        stops_the_unit = fault.kind in (FaultKind.OVER_TEMPERATURE, FaultKind.COIL_UNPLUGGED, FaultKind.DEVICE_ERROR)
        if stops_the_unit and (self.armed or self.ready):
            self._disarm(now)

    def _semantic_fault_problem(self, fault: Fault) -> str | None:
        kind, model = fault.kind, self.model
        if kind is SemanticFaultKind.TRAIN_STOPS_EARLY and model is not Model.RAPID2:
            return "only a Rapid² times trains itself; a 200² or BiStim² fires one pulse per command"
        if kind is SemanticFaultKind.WRONG_MODEL:
            if model is Model.M200:
                return "the 200² has no identity query (no N, no X): there is nothing to lie in"
            if fault.value is None:
                return None
            if model is Model.BISTIM and (len(fault.value) != 1 or fault.value not in _SYSTEM_MODES):
                return f"a BiStim² names itself by one system-mode character of {_SYSTEM_MODES!r}"
            if model is Model.RAPID2:
                try:
                    c.parse_version(fault.value)
                except ProtocolError:
                    return f"a Rapid² names itself by a software version like V9.0, not {fault.value!r}"
        if kind is SemanticFaultKind.POWER_DRIFT and fault.number is not None and fault.number > 100:
            return "the unit's own output power goes up to 100 % (enhanced power needs a host command)"
        return None

    def _on_semantic_fault(self, fault: Fault, now: float) -> None:
        kind = fault.kind
        if kind is SemanticFaultKind.POWER_DRIFT:
            # Output A (the only one of a 200² and a Rapid²; the master of a BiStim²). J and \
            # report it: a host that reads back sees the drift.
            self.power_a = fault.number if fault.number is not None else min(100, self.power_a + 10)
        elif kind is SemanticFaultKind.IGNORE_DISARM:
            self._ignore_disarm_until = math.inf if fault.duration_s is None else now + fault.duration_s
        elif kind is SemanticFaultKind.TRAIN_STOPS_EARLY:
            deliver = -1 if fault.number is None else fault.number
            if self._train is not None:
                self._cut_train(now, deliver)
            else:
                self._train_cut = deliver
        elif kind is SemanticFaultKind.EXTRA_PULSES:
            self._extra_pulses_due += 1 if fault.number is None else fault.number
        elif kind is SemanticFaultKind.REBOOT:
            self._power_cycle(now, fault.duration_s)
        elif kind is SemanticFaultKind.WRONG_MODEL:
            if self.model is Model.RAPID2:
                true_major = self.version[0] if self.version else 9
                self.identity_version_text = fault.value or _OTHER_GENERATION.get(true_major, "V9.0")
            else:
                self.identity_system_mode = fault.value or "0"

    def identify_as_simulator(self) -> bool:
        # Only a Rapid² names itself (N, its software version); a 200² and a BiStim² answer nothing
        # that could carry a name.
        self.names_itself_simulator = self.model is Model.RAPID2
        return self.names_itself_simulator

    def _power_cycle(self, now: float, boot_s: float | None) -> None:
        """A power cycle: whatever ran stops, remote control and every setting are lost (the
        coil stays as hot as it was)."""
        self.remote = False
        self._watchdog_at = math.inf
        self._disarm(now)
        self._disarm_after_train = False
        self.error = None
        self._power_on_settings()
        self._boot(now, boot_s)

    def _cut_train(self, now: float, deliver: int) -> None:
        """End the running train silently after ``deliver`` of its pulses (-1: half of them): no
        error, and the train-running bit clears when the last delivered pulse went out."""
        assert self._train is not None
        first, period, n = self._train
        deliver = n // 2 if deliver < 0 else min(deliver, n)
        already = 1 + sum(1 for timer in self._train_timers[:-1] if timer.t <= now)
        deliver = max(deliver, min(already, n))
        if deliver >= n:
            return
        # _train_timers holds pulse 2..n, then the end: keep the pulses up to ``deliver``.
        kept, dropped = self._train_timers[: deliver - 1], self._train_timers[deliver - 1 :]
        for timer in dropped:
            self._cancel(timer)
        last = first + (deliver - 1) * period
        self._train_timers = [*kept, self._schedule(max(now, last + 1e-9), self._train_finished)]

    # -- pulses -----------------------------------------------------------------------------------
    def _drain(self, now: float) -> None:
        self.energy_level_j = max(0.0, self.energy_level_j - (now - self._energy_at) * self.profile.energy_drain_w)
        self._energy_at = now

    def _pulse(self, now: float, source: str) -> None:
        self._discharge(now, self.power_a, source, "A")
        if self.power_b > 0 and self.model is Model.BISTIM:  # output B is 0 % on the other models
            # U: in BiStim timing the master (A) fires first and the slave (B) one ISI later.
            isi_s = self.isi_raw * (1e-4 if self.high_res else 1e-3)
            power_b = self.power_b
            if isi_s:
                self._schedule(now + isi_s, lambda t: self._discharge(t, power_b, source, "B"))
            else:
                self._discharge(now, power_b, source, "B")

    def _discharge(self, now: float, power: int, source: str, output: str) -> None:
        self._drain(now)
        energy = energy_j(power)
        self.energy_level_j += energy
        self._record_pulse(now, power, energy, source, output)
        if self.coil.at(now) >= self.profile.coil_limit_c and self.is_energised:
            self.fault_log.append((now, "coil over temperature: disarmed"))
            self._disarm(now)

    def _extra_pulses(self, after: float, gap_s: float) -> None:
        """The pulses extra_pulses planned, ``gap_s`` apart after ``after``: nothing on the wire
        tells of them (no reply, no status bit), only the truth log."""
        count, self._extra_pulses_due = self._extra_pulses_due, 0
        for k in range(1, count + 1):
            self._schedule(after + k * gap_s, lambda t: self._discharge(t, self.power_a, "extra", "A"))

    def _fire(self, now: float, source: str) -> str | None:
        """Fire (serial EH or a trigger edge). Returns the refusal reason, or None."""
        if not self.ready:
            return "not ready (not armed, or still charging)"
        if now < self.lockout_until:
            return "inside the post-train lock-out"
        why = self._may_arm(now)
        if why:
            return why
        train = self.model is Model.RAPID2 and self.duration_ds > 0
        if train:
            self._drain(now)
            n = self.train_pulses
            # At most 63 kJ in any one minute (TDb087 §3): a train adding less than the shed rate runs
            # continuously, and what is left from earlier trains counts against the first minute.
            per_pulse = energy_j(self.power_a)
            rise = per_pulse * min(n, math.floor(60.0 * self.frequency_dhz / 10.0 + 1e-9) + 1)
            if self.energy_level_j + rise > self.profile.energy_budget_j:
                return (
                    f"train of {n} pulses at {self.power_a} % would exceed the "
                    f"{self.profile.energy_budget_j / 1000:.0f} kJ energy budget"
                )
            period = 10.0 / self.frequency_dhz
            self.train_running = True
            self._train = (now, period, n)
            # Every pulse of a train is activity for the one-minute armed-idle rule: the idle timer
            # stops while the train runs and restarts from its last pulse (_train_finished). Source:
            # magstim.md §10, V: TDb087 §3, a train whose maximum on-time exceeds 60 s "may run
            # continuously, up to 6000 pulses", so a device-timed train longer than a minute is a
            # sanctioned mode; the one-minute rule itself (magstim.md §7) is C/U (MagPy's arm
            # docstring, HZN) and says "not fired", which a unit firing a train is not. A 1 Hz
            # 900-pulse protocol (bpd-1hz-rdlpfc) must run.
            self._cancel(self._idle_timer)
            self._idle_timer = None
            self._pulse(now, source)
            self._train_timers = [
                self._schedule(now + k * period, lambda t: self._pulse(t, "train")) for k in range(1, n)
            ]
            end = now + (n - 1) * period
            self._train_timers.append(self._schedule(end + 1e-9, self._train_finished))
            self.ready = False
            self.armed = True
            if self._train_cut is not None:
                deliver, self._train_cut = self._train_cut, None
                self._cut_train(now, deliver)
        else:
            if self.model is Model.RAPID2:
                # The trigger input can repeat far faster than the serial 1 Hz: the unit's energy
                # budget protects it from a trigger source that would overheat it.
                self._drain(now)
                if self.energy_level_j + energy_j(self.power_a) > self.profile.energy_budget_j:
                    return f"a pulse at {self.power_a} % would exceed the {self.profile.energy_budget_j / 1000:.0f} kJ energy budget"
            self._pulse(now, source)
            if self.armed or self.ready:  # still armed unless the pulse tripped an interlock
                self.ready = False
                self.armed = True
                recharge = self.profile.recharge_s(self.power_a, source)
                self._ready_timer = self._schedule(now + recharge, self._become_ready)
            self._restart_idle(now)
            if self._extra_pulses_due:
                self._extra_pulses(now, EXTRA_PULSE_GAP_S)
        return None

    def _train_finished(self, now: float) -> None:
        assert self._train is not None
        period = self._train[1]
        self.train_running = False
        self._train_timers = []
        self._train = None
        self.lockout_until = now + self.profile.post_train_lockout_s
        if self._extra_pulses_due:
            self._extra_pulses(now, period)  # as if the train ran on
        if self._disarm_after_train:
            self._disarm_after_train = False
            self._disarm(now)
            return
        if self.armed:
            self._ready_timer = self._schedule(self.lockout_until, self._become_ready)
            self._restart_idle(now)

    def _on_modem_lines(self, rts: bool, dtr: bool, now: float) -> None:
        # A quick-fire cable wires RTS to the trigger input: the host's own edges.
        self._on_trigger_input(rts, now, "rts")

    def _on_trigger_input(self, level: bool, now: float, source: str) -> None:
        rising = level and not self._trigger_level
        self._trigger_level = level
        if rising:
            why = self._fire(now, source)
            if why:
                self.interlocks.append((now, f"{'RTS' if source == 'rts' else 'TTL'} trigger: {why}"))

    # -- command handlers: return (data, status override) or None after replying ----------------------
    def _cmd_51(self, data: bytes, now: float):  # Q: remote control on
        needs_code = self.model is Model.RAPID2 and c.uses_unlock_code(self.version)
        if needs_code and data != SIMULATOR_UNLOCK_CODE:
            self._refuse(c.REMOTE_ON, now, "wrong unlock code", code="bad_data")
            return None
        self.remote = True
        return b"", self.instrument_status()

    def _cmd_52(self, data: bytes, now: float):  # R: remote control off
        self._disarm(now)
        self.remote = False
        self._watchdog_at = math.inf  # no keep-alive is due without remote control
        return b"", self.instrument_status()

    def _cmd_40(self, data: bytes, now: float):  # @: power A
        return self._set_power(data, now, "A")

    def _cmd_41(self, data: bytes, now: float):  # A: power B
        return self._set_power(data, now, "B")

    def _set_power(self, data: bytes, now: float, output: str):
        if not data.isdigit():
            self._refuse(ord("@" if output == "A" else "A"), now, "non-numeric power", code="bad_data")
            return None
        value = int(data)
        ceiling = 110 if (self.model is Model.RAPID2 and self.enhanced) else 100
        if value > ceiling:
            self._refuse(ord("@" if output == "A" else "A"), now, f"power {value} > {ceiling}", code="bad_data")
            return None
        if output == "A":
            self.power_a = value
        else:
            self.power_b = value
        return b"", None

    def _cmd_43(self, data: bytes, now: float):  # C: ISI
        if not data.isdigit():
            self._refuse(c.SET_ISI, now, "non-numeric ISI", code="bad_data")
            return None
        self.isi_raw = int(data)
        return b"", None

    def _cmd_59(self, data: bytes, now: float):  # Y: high-res on
        return self._set_high_res(True, now)

    def _cmd_5a(self, data: bytes, now: float):  # Z: high-res off
        return self._set_high_res(False, now)

    def _set_high_res(self, on: bool, now: float):
        if self.armed or self.ready:
            self._refuse(c.HIGH_RES_ON if on else c.HIGH_RES_OFF, now, "resolution change while armed")
            return None
        self.high_res = on
        self.isi_raw = 10  # 1.0 ms in high-res tenths, 10 ms in low-res ms (U: MagPy docstring)
        return b"", None

    def _cmd_45(self, data: bytes, now: float):  # E: mode
        if data == b"A":
            if now < self._ignore_disarm_until:
                self.fault_log.append((now, "ignore_disarm: disarm acknowledged, still armed"))
                return b"", None
            self._disarm(now)
            return b"", None
        if data == b"B":
            if self.armed or self.ready:
                self._refuse(c.SET_MODE, now, "arm while armed")
                return None
            why = self._may_arm(now)
            if why:
                self._refuse(c.SET_MODE, now, f"arm refused: {why}")
                return None
            if self.model is Model.RAPID2 and self.power_a > 100 and self.duration_ds > 0:
                self._refuse(c.SET_MODE, now, "enhanced power in train mode")
                return None
            self.armed = True
            self._ready_timer = self._schedule(now + self.profile.arm_to_ready_s, self._become_ready)
            self._restart_idle(now)
            self._feed_keepalive(now)
            return b"", None
        if data == b"H":
            why = self._fire(now, "serial")
            if why:
                self._refuse(c.SET_MODE, now, f"fire refused: {why}")
                return None
            return b"", None
        self._refuse(c.SET_MODE, now, f"unknown mode byte {data!r}", code="bad_data")
        return None

    def _cmd_4a(self, data: bytes, now: float):  # J: parameters
        if self.model is Model.M200:
            params = c.Parameters(self.power_a, 0, 0)
        else:
            params = c.Parameters(self.power_a, self.power_b, self.isi_raw)
        return c.encode_parameters(params), None

    def _cmd_46(self, data: bytes, now: float):  # F: coil temperature
        t = round(self.coil.at(now) * 10) if self.coil.present else 0
        return c.encode_coil_temperature(c.CoilTemperature(min(t, 999), min(t, 999))), None

    def _cmd_58(self, data: bytes, now: float):  # X: BiStim system mode
        if self.identity_system_mode is not None:
            return self.identity_system_mode.encode(), None
        return (b"4" if self.high_res else b"2"), None

    def _cmd_4e(self, data: bytes, now: float):  # N: handled before dispatch
        raise AssertionError("unreachable")

    def _cmd_42(self, data: bytes, now: float):  # B: frequency
        if not data.isdigit() or not 0 < int(data) <= self.profile.max_frequency_dhz:
            self._refuse(c.SET_FREQUENCY, now, f"frequency {data!r} out of range", code="bad_data")
            return None
        self.frequency_dhz = int(data)
        self._couple_duration()
        return b"", None

    def _cmd_44(self, data: bytes, now: float):  # D: pulses
        if not data.isdigit() or not 1 <= int(data) <= 6000:
            self._refuse(c.SET_PULSES, now, f"pulses {data!r} out of range", code="bad_data")
            return None
        if now < self.lockout_until or self.train_running:
            self._refuse(c.SET_PULSES, now, "train parameters locked during a train and its lock-out")
            return None
        self.train_pulses = int(data)
        self._couple_duration()
        return b"", None

    def _couple_duration(self) -> None:
        # The unit keeps frequency, pulses and duration consistent (MAGIC: d = round(n/f, 1)).
        if self.duration_ds > 0 and self.frequency_dhz > 0:
            self.duration_ds = max(1, round(self.train_pulses * 100 / self.frequency_dhz))

    def _cmd_5b(self, data: bytes, now: float):  # [: duration
        if not data.isdigit():
            self._refuse(c.SET_DURATION, now, "non-numeric duration", code="bad_data")
            return None
        if now < self.lockout_until or self.train_running:
            self._refuse(c.SET_DURATION, now, "train parameters locked during a train and its lock-out")
            return None
        self.duration_ds = int(data)
        if self.duration_ds > 0:
            self.train_pulses = max(1, math.floor(self.duration_ds * self.frequency_dhz / 100 + 1e-9))
        return b"", None

    def _cmd_5e(self, data: bytes, now: float):  # ^: enhanced on
        if self.duration_ds > 0:
            self._refuse(c.ENHANCED_ON, now, "enhanced power is single-pulse only")
            return None
        self.enhanced = True
        return b"", None

    def _cmd_5f(self, data: bytes, now: float):  # _: enhanced off
        self.enhanced = False
        self.power_a = min(self.power_a, 100)
        return b"", None

    def _cmd_62(self, data: bytes, now: float):  # b: ignore coil interlock switch
        return b"", None

    def _cmd_5c(self, data: bytes, now: float):  # \: Rapid parameters
        wait_ds = round(max(0.0, self.lockout_until - now) * 10) or 5
        params = c.RapidParameters(
            self.power_a, self.frequency_dhz, self.train_pulses, self.duration_ds,
            min(wait_ds, 10 ** c.wait_digits(self.version) - 1),
        )
        return c.encode_rapid_parameters(params, self.version), None

    def _cmd_49(self, data: bytes, now: float):  # I: error code
        return c.encode_error_code(self.error or c.ErrorCode("E", 0)), None

    def _cmd_78(self, data: bytes, now: float):  # x: system status
        return _EXTENDED_STATUS_BYTES[bool(self.charge_delay_ms)], None

    def _cmd_6e(self, data: bytes, now: float):  # n: charge delay
        limit = 10000 if self.version and self.version[0] >= 10 else 2000
        if not data.isdigit() or int(data) > limit:
            self._refuse(c.SET_CHARGE_DELAY, now, "charge delay out of range", code="bad_data")
            return None
        self.charge_delay_ms = int(data)
        return b"", None

    def _cmd_6f(self, data: bytes, now: float):  # o: get charge delay
        return c.encode_charge_delay_value(self.charge_delay_ms, self.version), None


# What tmsctl's pyproject.toml names in the ``tmsctl.simulators`` entry point ``magstim``.
SIMULATOR_PROFILES = profiles_for(PROFILES, MagstimSimulator)
