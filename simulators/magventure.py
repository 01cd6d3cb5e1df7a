"""Simulated MagVenture MagPro, speaking the real frames at 38400 baud with the unit's habits.

The device side of ``tmsctl.drivers.magventure.codec`` on top of ``SimulatedDevice``: host frames
are found by the codec's host parser, read requests are answered, writes are never answered, and
the unit talks on its own the way the reference describes (``shared/reference/magventure.md`` §4):

* ID 1 after every amplitude change, ID 3 when the coil's whole-degree temperature or the coil
  changes, ID 8 on page changes and when a sequence starts or stops, ID 2 (di/dt) after every
  stimulus — one per single trigger and one per burst in Biphasic Burst (U: the reference leaves
  open whether a burst reports once or per pulse);
* three messages (IDs 1, 3, 8) right after enabling, as an X100 is said to send (U: which three);
* Twin and Dual modes (MagOption): each trigger fires pulse A, then pulse B one IPI later (the
  Twin/Dual IPI table), both in the truth log (outputs "A" and "B"), and one di/dt message after
  B carrying both di/dt values (U: the reference says one or two may arrive per trigger). B is
  amplitude A × the B/A ratio in Twin, rounded half up (U: the unit's rounding is unpublished),
  and amplitude B itself in Dual.

Trains and theta bursts are timed by the device: the Timing page sets rate, stimuli per train,
number of trains and the gap between trains; ``StartTrain`` runs them on the device's own clock.

The interlocks are this module's own, written from the reference and not shared with the driver
or the spec: a disabled unit ignores triggers; a unit without a coil, with a hot coil or with an
internal error will not enable and disables itself; triggers faster than the model's rate, a
train outside the Timing page, settings the model lacks, a waveform write with the wrong model
byte, and changes while a sequence runs are all ignored. The real unit has no refusal message, so
each refusal is silent on the wire and written to ``interlocks``.

Behaviour the sources leave open follows the choices above and these: no keep-alive (none is
needed, reference §1); the older firmware generation (``generation="older"``) ignores the
0x0A/0x0B/0x0C requests; disabling stops a running sequence; coil heating uses a guessed energy
per pulse (U).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tmsctl.drivers.magventure import codec as c

from .device import Fault, FaultKind, SemanticFaultKind, SimulatedDevice
from .registry import profiles_for

# Per-model offers and rate ceilings (Hz), from the reference's code and range tables (C: PYTMS,
# MPC), kept apart from the driver's spec on purpose: the two layers must not share a mistake.
_OFFERS: dict[c.MagProModel, tuple[set[c.Mode], set[c.CurrentDirection], set[c.Waveform]]] = {
    c.MagProModel.R30: ({c.Mode.STANDARD}, {c.CurrentDirection.NORMAL}, {c.Waveform.BIPHASIC}),
    c.MagProModel.X100: (
        {c.Mode.STANDARD},
        {c.CurrentDirection.NORMAL, c.CurrentDirection.REVERSE},
        {c.Waveform.MONOPHASIC, c.Waveform.BIPHASIC, c.Waveform.BIPHASIC_BURST},
    ),
    c.MagProModel.R30_OPTION: (
        {c.Mode.STANDARD, c.Mode.TWIN, c.Mode.DUAL},
        {c.CurrentDirection.NORMAL},
        {c.Waveform.MONOPHASIC, c.Waveform.BIPHASIC},
    ),
    c.MagProModel.X100_OPTION: (
        {c.Mode.STANDARD, c.Mode.POWER, c.Mode.TWIN, c.Mode.DUAL},
        {c.CurrentDirection.NORMAL, c.CurrentDirection.REVERSE},
        {c.Waveform.MONOPHASIC, c.Waveform.BIPHASIC, c.Waveform.HALFSINE, c.Waveform.BIPHASIC_BURST},
    ),
}
_MAX_RATE_HZ = {
    c.MagProModel.R30: 30,
    c.MagProModel.X100: 100,
    c.MagProModel.R30_OPTION: 30,
    c.MagProModel.X100_OPTION: 100,
}
_BURST_RATE_HZ = 20  # bursts per second (PYTMS)
_TWIN_DUAL_RATE_HZ = {c.MagProModel.R30_OPTION: 5, c.MagProModel.X100_OPTION: 20}
_MAX_PULSES = 1000
_MAX_TRAINS = 500
_MAX_ITI_S_X10 = 3000
_TEMPERATURE_CHECK_S = 1.0  # how often the unit looks at its coil sensor
# extra_pulses after a single trigger: the unit discharges again this long after the stimulus
# (ours, U: a spurious re-trigger has no published timing).
EXTRA_PULSE_GAP_S = 0.05
# wrong_model with no value: the status byte and waveform replies name this model instead.
_OTHER_MODEL = {
    c.MagProModel.R30: c.MagProModel.X100,
    c.MagProModel.X100: c.MagProModel.R30,
    c.MagProModel.R30_OPTION: c.MagProModel.X100_OPTION,
    c.MagProModel.X100_OPTION: c.MagProModel.R30_OPTION,
}


@dataclass(frozen=True)
class MagProProfile:
    name: str
    model: c.MagProModel
    display_name: str
    driver: str = "magventure-magpro"
    generation: str = "newer"  # "older": no 0x0A/0x0B/0x0C
    serial_number: int = 123456
    coil_type: int = 60  # Cool-B65
    coil_limit_c: float = 40.0  # the unit disables itself at or above this (U: no published figure)
    reply_latency_s: float = 0.02  # reference §1: typically 20–80 ms
    energy_j_per_pct: float = 0.6  # coil heating only (U: no published energy per pulse)
    driver_options: dict[str, str] = field(default_factory=dict)

    def max_rate_hz(self, mode: c.Mode, waveform: c.Waveform) -> int:
        if waveform is c.Waveform.BIPHASIC_BURST:
            return _BURST_RATE_HZ
        if mode in (c.Mode.TWIN, c.Mode.DUAL):
            return _TWIN_DUAL_RATE_HZ[self.model] if waveform is not c.Waveform.MONOPHASIC else 5
        if mode is c.Mode.POWER:
            return 20
        return _MAX_RATE_HZ[self.model]


PROFILES: dict[str, MagProProfile] = {
    "magpro-x100": MagProProfile("magpro-x100", c.MagProModel.X100, "MagVenture MagPro X100 (simulated)"),
    "magpro-r30": MagProProfile("magpro-r30", c.MagProModel.R30, "MagVenture MagPro R30 (simulated)"),
    "magpro-x100-option": MagProProfile(
        "magpro-x100-option", c.MagProModel.X100_OPTION, "MagVenture MagPro X100 with MagOption (simulated)"
    ),
    "magpro-r30-option": MagProProfile(
        "magpro-r30-option", c.MagProModel.R30_OPTION, "MagVenture MagPro R30 with MagOption (simulated)"
    ),
    "magpro-r30-older": MagProProfile(
        "magpro-r30-older",
        c.MagProModel.R30,
        "MagVenture MagPro R30, older firmware (simulated)",
        generation="older",
    ),
}
PROFILES["magpro"] = PROFILES["magpro-x100"]


def _in_rate_grid(rate_hz_x10: int) -> bool:
    # 0.1–1.0 Hz in tenths, whole hertz above (reference §4 "Value ranges").
    return 1 <= rate_hz_x10 <= 10 or (rate_hz_x10 > 10 and rate_hz_x10 % 10 == 0)


# The unit answers every keep-alive with a status and reports every stimulus, from a handful of
# states: each message is built (and so validated) and framed once per distinct state. The key
# is every field the message carries; ``typed`` keeps an int that equals an enum member (which
# the message would refuse) from hitting a cached frame built from the member.
@lru_cache(maxsize=64, typed=True)
def _status_byte(mode: c.Mode, waveform: c.Waveform, enabled: bool, model: c.MagProModel) -> c.StatusByte:
    return c.StatusByte(mode, waveform, enabled, model)


@lru_cache(maxsize=4096, typed=True)
def _message_frame(message_type: type[c.DeviceMessage], *fields: Any) -> bytes:
    return c.encode_device_message(message_type(*fields))


class MagProSimulator(SimulatedDevice):
    baudrate = c.BAUD_RATE
    bits_per_byte = 10

    def __init__(self, profile: MagProProfile, *, start: float = 0.0, faults: tuple[Fault, ...] = ()) -> None:
        self.reply_latency_s = profile.reply_latency_s
        super().__init__(start=start, faults=faults)
        self.profile = profile
        self.model = profile.model
        self.identity_model = profile.model  # what the status byte and ID 9 name (wrong_model changes it)
        self.parser = c.MagProHostFrameParser()
        self.rejected_frames: list[tuple[float, str]] = []
        self.interlocks: list[tuple[float, str]] = []
        self.enabled = False
        self.error = False
        self._ignore_disarm_until = -math.inf
        self._extra_pulses_due = 0
        self._sequence_cut: int | None = None  # stimuli the next sequence delivers; -1: half of them
        self._sequence_times: list[float] = []  # the running sequence's stimulus instants
        self.sequence_running = False
        self.stimulus_count = 0
        self.next_trigger_at = -math.inf
        self._trigger_level = False  # the rear trigger input's level
        self._sequence_timers: list[Any] = []  # handles from _schedule, for _cancel
        self._stimulus_timers: list[tuple[float, Any]] = []  # (due, handle): a burst's later pulses
        self._power_on_settings()
        self._reported_temperature = self._temperature_byte(start)
        self._reported_coil_type = profile.coil_type
        self._schedule(start + _TEMPERATURE_CHECK_S, self._check_temperature)
        self.check_fault_plan(faults)

    def _power_on_settings(self) -> None:
        """The settings of a unit just switched on (U: the reference gives none; ours)."""
        self.amplitude_a = 30
        self.amplitude_b = 0
        self.mode = c.Mode.STANDARD
        self.waveform = c.Waveform.BIPHASIC
        self.direction = c.CurrentDirection.NORMAL
        self.burst_pulses = 3
        self.ipi_ms_x10 = 200
        self.ba_ratio_x100 = 100
        self.page = int(c.Page.MAIN)
        self.timing_control = c.TimingControl.SEQUENCE
        self.rate_hz_x10 = 10
        self.pulses_per_train = 10
        self.train_count = 1
        self.iti_s_x10 = 10
        self.warning_sound = False
        self.input_delay_ms_x10 = 0
        self.output_delay_ms_x10 = 0
        self.charge_delay_ms = 0

    @property
    def is_energised(self) -> bool:
        return self.enabled or self.sequence_running

    # -- what the unit reports ----------------------------------------------------------------------
    def status_byte(self) -> c.StatusByte:
        return _status_byte(self.mode, self.waveform, self.enabled, self.identity_model)

    def coil_type(self) -> int:
        return self.profile.coil_type if self.coil.present else 0

    def _temperature_byte(self, now: float) -> int:
        return max(0, min(255, round(self.coil.at(now))))

    def _status_fields(self, now: float) -> tuple[c.StatusByte, int, int, int, int, int]:
        """What the short status says; the long status starts with the same fields."""
        return (
            self.status_byte(),
            self.profile.serial_number,
            self._temperature_byte(now),
            self.coil_type(),
            self.amplitude_a,
            self.amplitude_b,
        )

    def short_status(self, now: float) -> c.ShortStatus:
        return c.ShortStatus(*self._status_fields(now))

    def _long_status_fields(self, now: float) -> tuple[Any, ...]:
        """``LongStatus``'s fields in order: the short status's, then originals, factors, page, running."""
        return (
            *self._status_fields(now),
            self.amplitude_a,  # original amplitudes: the simulator applies no amplitude factor
            self.amplitude_b,
            100,  # amplitude factors A and B, %
            100,
            self.page,
            self.sequence_running,
        )

    def long_status(self, now: float) -> c.LongStatus:
        return c.LongStatus(*self._long_status_fields(now))

    def waveform_settings(self) -> c.WaveformSettings:
        # ID 9 answers carry an index into the table that applies (reference §4, note the asymmetry).
        if self.mode not in (c.Mode.TWIN, c.Mode.DUAL) and self.ipi_ms_x10 in c.BURST_IPI_MS_X10:
            ipi_index = c.burst_ipi_index(self.ipi_ms_x10)
        else:
            ipi_index = c.twin_dual_ipi_index(self.ipi_ms_x10)
        ba_index = 100 - self.amplitude_b if self.mode is c.Mode.DUAL else c.twin_ba_index(self.ba_ratio_x100)
        return c.WaveformSettings(
            0, self.identity_model, self.mode, self.direction, self.waveform, self.burst_pulses, ipi_index, ba_index
        )

    def timing_settings(self) -> c.TimingSettings:
        return c.TimingSettings(
            0,
            self.timing_control,
            False,
            self.rate_hz_x10,
            self.pulses_per_train,
            self.train_count,
            self.iti_s_x10,
            self.warning_sound,
            100,
            0,
        )

    # -- sending ------------------------------------------------------------------------------------------
    def _answer(self, message: c.DeviceMessage, now: float) -> None:
        self._reply(c.encode_device_message(message), now)

    def _unprompted(self, message: c.DeviceMessage, now: float) -> None:
        """A message the unit sends on its own. Planned reply faults hit answers to commands only."""
        self._unprompted_frame(c.encode_device_message(message), now)

    def _unprompted_frame(self, frame: bytes, now: float) -> None:
        pending, self._pending_reply_faults = self._pending_reply_faults, []
        try:
            self._reply(frame, now)
        finally:
            self._pending_reply_faults = pending

    def _interlock(self, now: float, why: str) -> None:
        self.interlocks.append((now, why))

    def _on_hang_up(self, now: float) -> None:
        self.parser = c.MagProHostFrameParser()  # the half frame in progress goes with the host that sent it

    # -- input ----------------------------------------------------------------------------------------------
    def _on_bytes(self, now: float) -> int | None:
        commands = self.parser.feed(bytes(self._inbuf))
        self._inbuf.clear()
        for reject in self.parser.drain_rejects():
            self.rejected_frames.append((now, reject.message))
        for command in commands:
            self._count_command(now)
            if self.stalled:
                continue
            self._handle(command, now)
        # How many more bytes the frame in progress needs, so we are not called for each byte.
        pending = self.parser.pending
        if not pending:
            return 5  # the shortest frame: FE, length 1, ID, CRC, FF
        if len(pending) >= 2 and pending[0] == c.START:
            return pending[1] + 4 - len(pending)
        return None

    def _handle(self, command: c.HostCommand, now: float) -> None:
        generation_newer = self.profile.generation == "newer"
        if isinstance(command, c.RequestShortStatus):
            self._reply(_message_frame(c.ShortStatus, *self._status_fields(now)), now)
        elif isinstance(command, c.RequestLongStatus):
            self._reply(_message_frame(c.LongStatus, *self._long_status_fields(now)), now)
        elif isinstance(command, c.SetAmplitude):
            self._set_amplitude(command, now)
        elif isinstance(command, c.SetEnabled):
            if command.enabled:
                self._enable(now)
            elif now < self._ignore_disarm_until:
                self.fault_log.append((now, "ignore_disarm: disable ignored, still enabled"))
            else:
                self._disable(now, "")
        elif isinstance(command, c.Trigger):
            self._trigger(now)
        elif isinstance(command, c.StartTrain):
            self._start_sequence(now)
        elif isinstance(command, c.SetPage):
            self._set_page(int(command.page), now)
        elif isinstance(command, c.SetTrainLegacy):
            self._set_timing(
                now,
                self.timing_control,
                command.rate_hz_x10,
                command.pulses_per_train,
                command.train_count,
                command.iti_s_x10,
                self.warning_sound,
            )
        elif isinstance(command, c.SetDelaysLegacy):
            self._set_delays(
                now, command.input_delay_ms_x10, command.output_delay_ms_x10, command.charge_delay_ms
            )
        elif isinstance(command, c.RequestWaveform):
            self._answer(self.waveform_settings(), now)
        elif isinstance(command, c.SetWaveform):
            self._set_waveform(command, now)
        elif not generation_newer:
            return  # the older firmware does not know 0x0A/0x0B/0x0C: silence
        elif isinstance(command, c.RequestTiming):
            self._answer(self.timing_settings(), now)
        elif isinstance(command, c.SetTiming):
            self._set_timing(
                now,
                command.timing_control,
                command.rate_hz_x10,
                command.pulses_per_train,
                command.train_count,
                command.iti_s_x10,
                command.warning_sound,
            )
        elif isinstance(command, c.RequestDelays):
            self._answer(
                c.DelaySettings(0, self.input_delay_ms_x10, self.output_delay_ms_x10, self.charge_delay_ms),
                now,
            )
        elif isinstance(command, c.SetDelays):
            self._set_delays(
                now, command.input_delay_ms_x10, command.output_delay_ms_x10, command.charge_delay_ms
            )
        elif isinstance(command, c.RequestPageAndCount):
            self._answer(
                c.PageAndCount.build(stimulus_count=self.stimulus_count & 0xFFFF, page=self.page), now
            )
        # unknown commands: ignored, like any write the unit does not take

    # -- settings ---------------------------------------------------------------------------------------
    def _set_amplitude(self, command: c.SetAmplitude, now: float) -> None:
        if self.sequence_running:
            self._interlock(now, "amplitude change while a sequence runs: ignored")
            return
        self.amplitude_a = command.amplitude_a_pct
        if command.amplitude_b_pct is not None:
            self.amplitude_b = command.amplitude_b_pct
        self._unprompted(c.AmplitudeChanged(self.amplitude_a, self.amplitude_b, self.status_byte()), now)

    def front_panel_amplitude(self, amplitude_a_pct: int, now: float) -> None:
        """Someone turns the amplitude knob (tests): the unit reports it unprompted."""
        self.advance(now)
        self.amplitude_a = amplitude_a_pct
        self._unprompted(c.AmplitudeChanged(self.amplitude_a, self.amplitude_b, self.status_byte()), now)

    def _set_page(self, page: int, now: float) -> None:
        if self.sequence_running:
            self._interlock(now, "page change while a sequence runs: ignored")
            return
        self.page = page
        self._unprompted(c.PageChanged(self.page, False, self.status_byte()), now)

    def _set_timing(
        self,
        now: float,
        control: c.TimingControl,
        rate: int,
        pulses: int,
        trains: int,
        iti: int,
        warning: bool,
    ) -> None:
        why = None
        if self.sequence_running:
            why = "Timing page change while a sequence runs"
        elif self.page != c.Page.TIMING:
            why = "train settings outside the Timing page"
        elif not _in_rate_grid(rate) or rate > 10 * self.profile.max_rate_hz(self.mode, self.waveform):
            why = f"rate {rate / 10:g} Hz not offered in {self.mode.name} / {self.waveform.name}"
        elif (
            not 1 <= pulses <= _MAX_PULSES or not 1 <= trains <= _MAX_TRAINS or not 1 <= iti <= _MAX_ITI_S_X10
        ):
            why = f"train {pulses} pulses × {trains} trains, ITI {iti / 10:g} s out of range"
        if why:
            self._interlock(now, why + ": ignored")
            return
        self.timing_control, self.rate_hz_x10, self.pulses_per_train = control, rate, pulses
        self.train_count, self.iti_s_x10, self.warning_sound = trains, iti, warning

    def _set_delays(self, now: float, input_x10: int, output_x10: int, charge_ms: int) -> None:
        if self.sequence_running:
            self._interlock(now, "delay change while a sequence runs: ignored")
            return
        if output_x10 < 0 and self.timing_control is not c.TimingControl.SEQUENCE:
            self._interlock(now, "negative trigger-out delay without Sequence timing: ignored")
            return
        self.input_delay_ms_x10, self.output_delay_ms_x10, self.charge_delay_ms = (
            input_x10,
            output_x10,
            charge_ms,
        )

    def _set_waveform(self, command: c.SetWaveform, now: float) -> None:
        modes, directions, waveforms = _OFFERS[self.model]
        why = None
        if self.sequence_running:
            why = "waveform change while a sequence runs"
        elif command.model is not self.model:
            why = f"waveform write names model {command.model.name}, this unit is {self.model.name}"
        elif (
            command.mode not in modes
            or command.current_direction not in directions
            or command.waveform not in waveforms
        ):
            offer = f"{command.mode.name} / {command.current_direction.name} / {command.waveform.name}"
            why = f"{offer} not offered"
        if why:
            self._interlock(now, why + ": ignored")
            return
        self.mode, self.direction, self.waveform = command.mode, command.current_direction, command.waveform
        self.burst_pulses, self.ipi_ms_x10, self.ba_ratio_x100 = (
            command.burst_pulses,
            command.ipi_ms_x10,
            command.ba_ratio_x100,
        )

    # -- enable / disable ---------------------------------------------------------------------------------
    def _may_enable(self, now: float) -> str | None:
        if not self.coil.present:
            return "no coil connected"
        if self.coil.at(now) >= self.profile.coil_limit_c:
            return f"coil at {self.coil.at(now):.1f} °C, limit {self.profile.coil_limit_c:.1f} °C"
        if self.error:
            return "internal error on the display"
        return None

    def _enable(self, now: float) -> None:
        why = self._may_enable(now)
        if why:
            self._interlock(now, f"enable refused: {why}")
            return
        if self.enabled:
            return
        self.enabled = True
        status = self.status_byte()
        self._unprompted(c.AmplitudeChanged(self.amplitude_a, self.amplitude_b, status), now)
        self._unprompted(c.CoilChanged(self._temperature_byte(now), self.coil_type(), status), now)
        self._unprompted(c.PageChanged(self.page, self.sequence_running, status), now)

    def _disable(self, now: float, why: str) -> None:
        if why:
            self.fault_log.append((now, why))
        was_running = self.sequence_running
        self.enabled = False
        self._stop_sequence()
        if was_running:
            self._unprompted(c.PageChanged(self.page, False, self.status_byte()), now)

    def _stop_sequence(self) -> None:
        for timer in (*self._sequence_timers, *(handle for _, handle in self._stimulus_timers)):
            self._cancel(timer)
        self._sequence_timers = []
        self._stimulus_timers = []
        self._sequence_times = []
        self.sequence_running = False

    # -- stimuli ------------------------------------------------------------------------------------------
    def _may_stimulate(self, now: float) -> str | None:
        if not self.enabled:
            return "not enabled"
        return self._may_enable(now)

    @property
    def pairs(self) -> bool:
        """Twin or Dual: every stimulus is pulse A, then pulse B one IPI later."""
        return self.mode in (c.Mode.TWIN, c.Mode.DUAL)

    def amplitude_b_fired(self) -> int:
        """Pulse B's amplitude: A × B/A in Twin (rounded half up, at most 100 %), B itself in Dual."""
        if self.mode is c.Mode.TWIN:
            return min(100, (self.amplitude_a * self.ba_ratio_x100 + 50) // 100)
        return self.amplitude_b

    def _stimulus(self, now: float, source: str) -> None:
        """One stimulus: a pulse, a burst of pulses in Biphasic Burst, or a pair in Twin/Dual; then
        its di/dt report."""
        pulses = self.burst_pulses if self.waveform is c.Waveform.BIPHASIC_BURST else 1
        interval = self.ipi_ms_x10 / 10_000
        self._stimulus_timers = [(due, handle) for due, handle in self._stimulus_timers if due > now]
        self._pulse(now, source)
        for k in range(1, pulses):
            due = now + k * interval
            self._stimulus_timers.append((due, self._schedule(due, lambda t: self._pulse(t, "train"))))
        report_at = now + (pulses - 1) * interval
        if self.pairs:
            # the unit's own timer fires B; the amplitude is the one set when the trigger came
            b_pct = self.amplitude_b_fired()
            report_at = now + interval
            self._stimulus_timers.append(
                (report_at, self._schedule(report_at, lambda t: self._pulse(t, "pair", b_pct, "B")))
            )
        self.stimulus_count += 1
        self._stimulus_timers.append((report_at, self._schedule(report_at, self._report_didt)))

    def _pulse(self, now: float, source: str, amplitude_pct: int | None = None, output: str = "A") -> None:
        pct = self.amplitude_a if amplitude_pct is None else amplitude_pct
        self._record_pulse(now, pct, self.profile.energy_j_per_pct * pct, source, output)
        if self.coil.at(now) >= self.profile.coil_limit_c:
            self._disable(now, "coil over temperature: disabled")

    def _burst_tail_s(self) -> float:
        if self.pairs:
            return self.ipi_ms_x10 / 10_000
        return (self.burst_pulses - 1) * self.ipi_ms_x10 / 10_000 if self.waveform is c.Waveform.BIPHASIC_BURST else 0.0

    def _extra_pulses(self, after: float, gap_s: float) -> None:
        """The pulses extra_pulses planned, ``gap_s`` apart after ``after``: no di/dt message, no
        count, nothing on the wire tells of them; only the truth log."""
        count, self._extra_pulses_due = self._extra_pulses_due, 0
        for k in range(1, count + 1):
            self._schedule(
                after + k * gap_s,
                lambda t: self._record_pulse(
                    t, self.amplitude_a, self.profile.energy_j_per_pct * self.amplitude_a, "extra"
                ),
            )

    def _report_didt(self, now: float) -> None:
        didt = min(255, round(self.amplitude_a * 1.6))  # 80 A/µs at 50 % (the reference's example frame)
        didt_b = min(255, round(self.amplitude_b_fired() * 1.6)) if self.pairs else 0
        self._unprompted_frame(_message_frame(c.PulseDidt, didt, didt_b, self.status_byte()), now)

    def _trigger(self, now: float) -> None:
        why = self._may_stimulate(now)
        if why is None and self.sequence_running:
            why = "a sequence is running"
        if why is None and now < self.next_trigger_at:
            why = f"triggered {self.next_trigger_at - now:.3f} s before the unit had recharged"
        if why:
            self._interlock(now, f"trigger ignored: {why}")
            return
        rate_hz = self.profile.max_rate_hz(self.mode, self.waveform)
        self.next_trigger_at = now + max(1.0 / rate_hz, self._burst_tail_s())  # a pair ends with its B
        self._stimulus(now, "serial")
        if self._extra_pulses_due:
            self._extra_pulses(now + self._burst_tail_s(), EXTRA_PULSE_GAP_S)

    def _on_trigger_input(self, level: bool, now: float, source: str) -> None:
        """The rear trigger input (a TTL from a lab's box): a rising edge fires one stimulus, with the
        same interlocks as a serial trigger (enabled, coil, no sequence running, recharged)."""
        rising = level and not self._trigger_level
        self._trigger_level = level
        if not rising:
            return
        why = self._may_stimulate(now)
        if why is None and self.sequence_running:
            why = "a sequence is running"
        if why is None and now < self.next_trigger_at:
            why = f"triggered {self.next_trigger_at - now:.3f} s before the unit had recharged"
        if why:
            self._interlock(now, f"trigger input ignored: {why}")
            return
        self.next_trigger_at = now + 1.0 / self.profile.max_rate_hz(self.mode, self.waveform)
        self._stimulus(now, source)

    def _start_sequence(self, now: float) -> None:
        why = self._may_stimulate(now)
        if why is None and self.sequence_running:
            why = "a sequence is already running"
        if why is None and self.page != c.Page.TIMING:
            why = "not on the Timing page"
        if why is None and self.timing_control is not c.TimingControl.SEQUENCE:
            why = f"timing control is {self.timing_control.name}, waiting for external triggers"
        if why is None and now < self.next_trigger_at:
            why = "started before the unit had recharged"
        if why:
            self._interlock(now, f"train start ignored: {why}")
            return
        period = 10.0 / self.rate_hz_x10
        train_length = (self.pulses_per_train - 1) * period
        times: list[float] = []
        for train in range(self.train_count):
            first = now + train * (train_length + self.iti_s_x10 / 10)
            times.extend(first + k * period for k in range(self.pulses_per_train))
        self.sequence_running = True
        self._unprompted(c.PageChanged(self.page, True, self.status_byte()), now)
        self._stimulus(now, "serial")
        self._sequence_timers = [self._schedule(t, lambda t: self._stimulus(t, "train")) for t in times[1:]]
        end = times[-1] + self._burst_tail_s()
        self._sequence_timers.append(self._schedule(end + 1e-6, self._sequence_finished))
        self._sequence_times = times
        if self._sequence_cut is not None:
            deliver, self._sequence_cut = self._sequence_cut, None
            self._cut_sequence(now, deliver)

    def _cut_sequence(self, now: float, deliver: int) -> None:
        """End the running sequence silently after ``deliver`` stimuli (-1: half of them), with
        the ordinary end-of-sequence message once the last delivered one is out."""
        times = self._sequence_times
        deliver = len(times) // 2 if deliver < 0 else deliver
        already = sum(1 for t in times if t <= now)
        deliver = max(deliver, already, 1)
        if deliver >= len(times):
            return
        # _sequence_timers holds stimulus 2..n, then the end: keep the stimuli up to ``deliver``.
        kept, dropped = self._sequence_timers[: deliver - 1], self._sequence_timers[deliver - 1 :]
        for timer in dropped:
            self._cancel(timer)
        end = times[deliver - 1] + self._burst_tail_s()
        self._sequence_timers = [*kept, self._schedule(max(now, end + 1e-6), self._sequence_finished)]

    def _sequence_finished(self, now: float) -> None:
        self._sequence_timers = []
        self._sequence_times = []
        self.sequence_running = False
        self.next_trigger_at = now + 1.0 / self.profile.max_rate_hz(self.mode, self.waveform)
        self._unprompted(c.PageChanged(self.page, False, self.status_byte()), now)
        if self._extra_pulses_due:
            self._extra_pulses(now, 10.0 / self.rate_hz_x10)  # as if the sequence ran on

    # -- the coil -----------------------------------------------------------------------------------------
    def _check_temperature(self, now: float) -> None:
        self._schedule(now + _TEMPERATURE_CHECK_S, self._check_temperature)
        temperature, coil_type = self._temperature_byte(now), self.coil_type()
        if (temperature, coil_type) != (self._reported_temperature, self._reported_coil_type):
            self._reported_temperature, self._reported_coil_type = temperature, coil_type
            self._unprompted(c.CoilChanged(temperature, coil_type, self.status_byte()), now)
        if self.enabled and self.coil.at(now) >= self.profile.coil_limit_c:
            self._disable(now, "coil over temperature: disabled")

    def _on_fault(self, fault: Fault, now: float) -> None:
        if fault.kind is FaultKind.OVER_TEMPERATURE:
            self.coil.force(now, self.profile.coil_limit_c + 2.0)
        if fault.kind is FaultKind.DEVICE_ERROR:
            self.error = True
        if fault.kind in (FaultKind.OVER_TEMPERATURE, FaultKind.COIL_UNPLUGGED):
            self._reported_temperature, self._reported_coil_type = (
                self._temperature_byte(now),
                self.coil_type(),
            )
            self._unprompted(
                c.CoilChanged(self._reported_temperature, self._reported_coil_type, self.status_byte()), now
            )
        stops_the_unit = fault.kind in (FaultKind.OVER_TEMPERATURE, FaultKind.COIL_UNPLUGGED, FaultKind.DEVICE_ERROR)
        if stops_the_unit and self.enabled:
            self._disable(now, f"{fault.kind.value}: disabled")

    def _semantic_fault_problem(self, fault: Fault) -> str | None:
        if fault.kind is SemanticFaultKind.POWER_DRIFT and fault.number is not None and fault.number > 100:
            return "amplitudes go up to 100 %"
        if fault.kind is SemanticFaultKind.WRONG_MODEL and fault.value is not None:
            names = [m.name for m in c.MagProModel]
            if fault.value.upper() not in names:
                return f"name a MagPro model the status byte can carry: {', '.join(names)}"
        return None

    def _on_semantic_fault(self, fault: Fault, now: float) -> None:
        kind = fault.kind
        if kind is SemanticFaultKind.POWER_DRIFT:
            # Silent: no ID 1 message (the unit's own amplitude reports are for the knob); status
            # replies carry the drifted amplitude, so a host that asks sees it.
            self.amplitude_a = fault.number if fault.number is not None else min(100, self.amplitude_a + 10)
        elif kind is SemanticFaultKind.IGNORE_DISARM:
            self._ignore_disarm_until = math.inf if fault.duration_s is None else now + fault.duration_s
        elif kind is SemanticFaultKind.TRAIN_STOPS_EARLY:
            deliver = -1 if fault.number is None else fault.number
            if self.sequence_running:
                self._cut_sequence(now, deliver)
            else:
                self._sequence_cut = deliver
        elif kind is SemanticFaultKind.EXTRA_PULSES:
            self._extra_pulses_due += 1 if fault.number is None else fault.number
        elif kind is SemanticFaultKind.REBOOT:
            self._power_cycle(now, fault.duration_s)
        elif kind is SemanticFaultKind.WRONG_MODEL:
            value = fault.value
            self.identity_model = c.MagProModel[value.upper()] if value else _OTHER_MODEL[self.model]

    def _power_cycle(self, now: float, boot_s: float | None) -> None:
        """A power cycle: disabled, any sequence gone, every setting back to power-on; silent."""
        self.enabled = False
        self._stop_sequence()
        self.error = False
        self._power_on_settings()
        self.stimulus_count = 0
        self.next_trigger_at = -math.inf
        self.parser = c.MagProHostFrameParser()
        self._boot(now, boot_s)


# What tmsctl's pyproject.toml names in the ``tmsctl.simulators`` entry point ``magventure``.
SIMULATOR_PROFILES = profiles_for(PROFILES, MagProSimulator)
