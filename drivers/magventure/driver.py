"""Driver for the MagVenture MagPro (R30, X100, with or without MagOption).

The MagPro link is a message stream (``shared/reference/magventure.md`` §4): the unit answers
read requests, sends nothing in reply to writes, and sends unprompted messages at any time —
amplitude changes (ID 1), a di/dt report after each stimulus (ID 2), coil temperature or coil
changes (ID 3), page and sequence start/stop (ID 8). So this driver never discards input: every
frame that arrives, before, during or after an exchange, is parsed, checked and kept
(``messages``), and the unit's state is what it last said. Answers are matched to requests by
message ID with a deadline.

Because writes are never answered, every write is confirmed by a read-back: amplitude through
the short status, enable through the long status, waveform through ID 9, delays and the Timing
page through IDs 10/11 (newer firmware). A read-back that still shows the old value means the
unit ignored the write (it has no refusal message): ``DeviceRefused(code="not_applied")``; one
that shows anything else is ``DeviceStateError``. A pulse is confirmed by its di/dt message.

Firmware generations (reference §3, U): at connect the driver asks for the Timing page (0x0B 00).
A unit that answers speaks the newer forms and may run device-timed trains and theta bursts; one
that stays silent is taken for the older generation, whose train and delay writes (0x06/0x08)
cannot be read back — the driver then negotiates those capabilities away rather than set what it
cannot confirm.

Which model is connected is learned from the status byte: ``connect()`` refines ``limits`` to the
identified model's spec (a MagPro X100 gains ``THETA_BURST``) and refuses the MST and unknown
codes. The MagPro needs no keep-alive (reference §1); ``keepalive()`` is a status read the
controller uses as its watchdog, and it also reports changes made at the unit's front panel.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from tmsctl.core.errors import (
    ChecksumError,
    DeviceRefused,
    DeviceStateError,
    IntensityMismatch,
    InvalidArgument,
    ProtocolError,
    SafetyViolation,
    TransportTimeout,
)
from tmsctl.core.transport import Transport, wire_time_s
from tmsctl.drivers.base import (
    Capability,
    DeviceInfo,
    DeviceLimits,
    DeviceStatus,
    PairSettings,
    StimulusShape,
)

from . import codec as c
from .framing import OVERHEAD, START
from .spec import PROTOCOL_DIRECTIONS, PROTOCOL_WAVEFORMS, MagProSpec, load_spec, spec_for_model_code

BITS_PER_BYTE = 10  # 8N1
REPLY_TIMEOUT_S = 1.0  # beyond the wire time; MPC waits up to 1 s (replies typically 20–80 ms)
READY_POLL_PERIOD_S = 0.05
SINGLE_TRAIN_ITI_S_X10 = 10  # one train per trigger: the ITI is never used, 1.0 s is on every grid
MESSAGE_LOG_LENGTH = 2000
_DEFAULT_IPI_MS_X10 = 200  # 20.0 ms: in both IPI tables, sent when the unit's own value is unknown
_DEFAULT_BA_RATIO_X100 = 100

NEWER = "newer"  # answers 0x0A/0x0B/0x0C reads
OLDER = "older"  # only 0x06/0x08 writes, no read-back of train settings or delays
_NEEDS_READ_BACK = frozenset({Capability.INTERNAL_TRAIN, Capability.THETA_BURST})
_PAIR_MODES = (c.Mode.TWIN, c.Mode.DUAL)  # one trigger fires A, the unit fires B one IPI later


class NegotiatedLimits:
    """A model's spec, with the capabilities this particular unit turned out to support."""

    def __init__(self, spec: MagProSpec, capabilities: frozenset[Capability]) -> None:
        self.spec = spec
        self.capabilities = capabilities

    def __getattr__(self, name: str) -> Any:
        return getattr(self.spec, name)


@dataclass(frozen=True)
class TrainPlan:
    """What one trigger (StartTrain) delivers: ``stimuli`` at ``rate_hz``, each of ``pulses_per_stimulus``."""

    rate_hz: float
    stimuli: int
    pulses_per_stimulus: int = 1
    burst_frequency_hz: float | None = None

    @property
    def pulses(self) -> int:
        return self.stimuli * self.pulses_per_stimulus

    @property
    def duration_s(self) -> float:
        """Nominal length: one stimulus period per stimulus (how protocols and specs count it)."""
        return self.stimuli / self.rate_hz


def _scaled(value: object, scale: int, what: str, unit: str) -> int:
    """``value × scale`` as an integer, or ``InvalidArgument``: the unit's grid, never rounded."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{what} must be a number of {unit}, got {value!r}")
    scaled = value * scale
    nearest = round(scaled)
    if abs(scaled - nearest) > 1e-6:
        raise InvalidArgument(
            f"{what} {value:g} {unit} is not a multiple of {1 / scale:g} {unit}",
            hint="the MagPro works on fixed grids; tmsctl never rounds settings",
        )
    return int(nearest)


def _whole(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be a whole number, got {value!r}")
    return value


def _title(member: Enum) -> str:
    return member.name.replace("_", " ").title()


# Every keep-alive reports the same few states: each is put into words once. ``typed`` keeps
# values that compare equal but print differently (True and 1) apart.
@lru_cache(maxsize=1024, typed=True)
def _neutral_status(
    status: c.StatusByte, running: bool, coil_type: int | None, coil_temperature: int | None, page: int | None
) -> DeviceStatus:
    coil = coil_type is not None and coil_type != 0
    coil_name = c.coil_type_name(coil_type or 0) or f"type {coil_type}"
    raw = (
        f"{_title(status.model)} {_title(status.mode)} {_title(status.waveform)}, "
        f"{'enabled' if status.enabled else 'disabled'}, coil {coil_name if coil else 'none'}"
        f"{f' {coil_temperature} °C' if coil_temperature is not None else ''}, "
        f"page {c.page_name(page) if page is not None else '?'}"
        f"{', sequence running' if running else ''}"
    )
    return DeviceStatus(
        remote_control=True,  # the MagPro has no remote-control mode to lose
        armed=status.enabled,
        ready=status.enabled and coil,
        coil_present=coil,
        train_running=running,
        raw=raw,
    )


class MagProDriver:
    """One MagPro over one transport. No timers, no threads: every call is an exchange."""

    name = "magventure-magpro"
    display_name = "MagVenture MagPro"
    confirmed_replies = True  # every setting is read back, every pulse reported (di/dt)
    reply_timeout_s = REPLY_TIMEOUT_S
    baudrate = c.BAUD_RATE

    def __init__(
        self,
        transport: Transport,
        limits: DeviceLimits,
        *,
        simulated: bool = False,
        expected_model: str | None = None,
    ) -> None:
        self.transport = transport
        self.clock = transport.clock
        self.limits: Any = limits
        self.simulated = simulated
        self.expected_model = expected_model
        self.parser = c.MagProFrameParser()
        self.generation: str | None = None
        # What the unit last said about itself.
        self.status_byte: c.StatusByte | None = None
        self.serial_number: int | None = None
        self.coil_temperature: int | None = None
        self.coil_type: int | None = None
        self.amplitude_a_pct: int | None = None
        self.amplitude_b_pct: int | None = None
        self.page: int | None = None
        self.sequence_running = False
        self.waveform: c.WaveformSettings | None = None
        # Every frame received, in order, with its arrival time; counts by message ID.
        self.messages: deque[tuple[float, c.DeviceMessage]] = deque(maxlen=MESSAGE_LOG_LENGTH)
        self.message_counts: Counter[int] = Counter()
        self.stimuli_reported = 0  # di/dt messages (one per trigger, or per burst)
        self.pulses_reported = 0  # pulses those stimuli stand for
        self.last_didt_a_per_us: tuple[int, int] | None = None
        self.train: TrainPlan | None = None
        self._amplitude_set: int | None = None  # what we set and confirmed
        self._pair_set: PairSettings | None = None  # the pair we set and confirmed (Twin or Dual)
        self._setting = False  # our own write is in flight: reported changes are expected
        self._front_panel_change: str | None = None
        self._fresh: list[c.DeviceMessage] = []
        self._resyncing = False

    @property
    def trigger_lead_s(self) -> float:
        """From sending a trigger (03 or 04 frame, 5 bytes) to the pulse: the frame's wire time."""
        return wire_time_s(len(c.encode_host_command(c.Trigger())), self.baudrate, BITS_PER_BYTE)

    @property
    def spec(self) -> MagProSpec:
        limits = self.limits
        return limits.spec if isinstance(limits, NegotiatedLimits) else limits

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(self.limits.capabilities)

    # -- the stream -------------------------------------------------------------------------------
    def _note(self, message: c.DeviceMessage) -> None:
        """Keep the unit's word: update what we know and watch for changes nobody asked for."""
        self.messages.append((self.clock.now(), message))
        self.message_counts[message.MESSAGE_ID] += 1
        status = getattr(message, "status", None)
        if isinstance(status, c.StatusByte):
            self._note_status_byte(status)
        if isinstance(message, c.ShortStatus | c.LongStatus):
            self.serial_number = message.serial_number
            self.coil_temperature = message.coil_temperature_c
            self.coil_type = message.coil_type
            self._note_amplitude(message.amplitude_a_pct, message.amplitude_b_pct)
            if isinstance(message, c.LongStatus):
                self._note_page(message.page, message.sequence_running)
        elif isinstance(message, c.AmplitudeChanged):
            self._note_amplitude(message.amplitude_a_pct, message.amplitude_b_pct)
        elif isinstance(message, c.CoilChanged):
            self.coil_temperature = message.coil_temperature_c
            self.coil_type = message.coil_type
        elif isinstance(message, c.PageChanged):
            self._note_page(message.page, message.sequence_running)
        elif isinstance(message, c.PulseDidt):
            self.stimuli_reported += 1
            burst = message.status.waveform is c.Waveform.BIPHASIC_BURST and self.waveform is not None
            if burst and self.waveform:
                self.pulses_reported += self.waveform.burst_pulses
            else:
                # Twin/Dual: one report after the pair, di/dt A and B in one message (U: the
                # reference says one or two may arrive per trigger; the simulator sends one).
                self.pulses_reported += 2 if message.status.mode in _PAIR_MODES else 1
            self.last_didt_a_per_us = (message.didt_a_a_per_us, message.didt_b_a_per_us)
        elif isinstance(message, c.WaveformSettings):
            self.waveform = message

    def _note_status_byte(self, status: c.StatusByte) -> None:
        self.status_byte = status
        known = self.waveform
        if (
            known is not None
            and not self._setting
            and (status.mode, status.waveform) != (known.mode, known.waveform)
        ):
            self._front_panel_change = (
                f"the unit now reports {_title(status.mode)} mode with the "
                f"{_title(status.waveform)} waveform; "
                f"tmsctl set {_title(known.mode)} / {_title(known.waveform)}"
            )

    def _note_amplitude(self, a_pct: int, b_pct: int) -> None:
        self.amplitude_a_pct, self.amplitude_b_pct = a_pct, b_pct
        if self._amplitude_set is not None and not self._setting and a_pct != self._amplitude_set:
            self._front_panel_change = (
                f"amplitude A changed to {a_pct} % at the unit; tmsctl had set {self._amplitude_set} %"
            )
        pair = self._pair_set
        dual = self.waveform is not None and self.waveform.mode is c.Mode.DUAL
        if pair is not None and dual and not self._setting and b_pct != pair.second_pct_mso:
            self._front_panel_change = (
                f"amplitude B changed to {b_pct} % at the unit; tmsctl had set {pair.second_pct_mso} % for the pair"
            )

    def _note_page(self, page: int, running: bool) -> None:
        self.page, self.sequence_running = page, running
        if self.train is not None and not self._setting and page != c.Page.TIMING:
            self._front_panel_change = (
                f"the unit left the Timing page (now {c.page_name(page) or page}); "
                "the configured train cannot start"
            )

    def _take(self, data: bytes, what: str) -> list[c.DeviceMessage]:
        messages = self.parser.feed(data) if data else []
        for message in messages:
            self._note(message)
        rejects = self.parser.drain_rejects()
        if self._resyncing:
            # the rest of a corruption already reported: skipped until a valid frame arrives
            self._resyncing = not messages
            rejects = []
        if rejects:
            self._resyncing = not messages
            first = rejects[0]
            kind = ChecksumError if isinstance(first, ChecksumError) else ProtocolError
            raise kind(
                f"{self.display_name}, {what}: the line carried bytes that are not a valid MagPro frame: "
                f"{first.message}",
                raw=first.raw,
            )
        return messages

    def _frame_bytes_needed(self, got: bytes) -> int:
        """Bytes that complete the frame in progress (the parser's pending bytes, then ``got``),
        never more: the next frame may never come. For ``Transport.read_frame``, so a whole frame
        is read in one go; a byte that cannot start a frame goes to the parser alone."""
        pending = self.parser.pending + got
        if not pending:
            return OVERHEAD + 1
        if pending[0] != START:
            return 0 if got else 1
        if len(pending) < 2:
            return 1
        return max(0, pending[1] + OVERHEAD - len(pending))

    def _send(self, command: c.HostCommand, what: str) -> bytes:
        self._take(self.transport.read_available(), f"before {what}")  # keep what came unprompted
        frame = c.encode_host_command(command)
        self._fresh = []
        self.transport.write(frame)
        return frame

    def _wait_for(
        self,
        matches: Callable[[c.DeviceMessage], bool],
        *,
        what: str,
        frame: bytes,
        waiting_for: str,
        expected_length: int = 19,
        timeout_s: float | None = None,
    ) -> c.DeviceMessage:
        timeout = self.reply_timeout_s if timeout_s is None else timeout_s
        deadline = self.clock.now() + wire_time_s(len(frame) + expected_length, self.baudrate) + timeout
        while True:
            for index, message in enumerate(self._fresh):
                if matches(message):
                    del self._fresh[: index + 1]
                    return message
            self._fresh.clear()
            try:
                chunk = self.transport.read_frame(self._frame_bytes_needed, deadline)
            except TransportTimeout as exc:
                self._fresh.extend(self._take(exc.partial, what))
                if any(matches(m) for m in self._fresh):
                    continue
                pending = self.parser.pending
                raise TransportTimeout(
                    f"{self.display_name} sent no {waiting_for} for {what} ({c.hexdump(frame)}) within "
                    f"{timeout * 1000:.0f} ms; incomplete bytes: {c.hexdump(pending)}",
                    partial=pending,
                ) from exc
            self._fresh.extend(self._take(chunk, what))

    def _request(
        self, command: c.HostCommand, what: str, *, timeout_s: float | None = None
    ) -> c.DeviceMessage:
        answer = c.answer_id(command)
        assert answer is not None, f"{command!r} has no documented answer"
        frame = self._send(command, what)
        return self._wait_for(
            lambda m: answer == m.MESSAGE_ID,
            what=what,
            frame=frame,
            waiting_for=f"answer (ID {answer})",
            timeout_s=timeout_s,
        )

    def _short_status(self, what: str) -> c.ShortStatus:
        message = self._request(c.RequestShortStatus(), what)
        assert isinstance(message, c.ShortStatus)
        return message

    def _long_status(self, what: str) -> c.LongStatus:
        message = self._request(c.RequestLongStatus(), what)
        assert isinstance(message, c.LongStatus)
        return message

    def _neutral(self, status: c.StatusByte, *, running: bool) -> DeviceStatus:
        return _neutral_status(status, running, self.coil_type, self.coil_temperature, self.page)

    # -- connection -------------------------------------------------------------------------------
    def connect(self) -> DeviceInfo:
        """Identify the unit, disable it if it was left enabled, negotiate what it can confirm."""
        self.transport.read_available()  # bytes from before we were listening: possibly half a frame
        self.parser = c.MagProFrameParser()
        self._front_panel_change = None
        self._resyncing = False
        # Nothing carries over from an earlier connection: the unit may have been changed since.
        self.waveform = None
        self.train = None
        self._amplitude_set = None
        self._pair_set = None
        short = self._short_status("identify the unit")
        spec = spec_for_model_code(short.status.model)  # refuses the MST and unknown codes
        if self.expected_model is not None and spec.model != self.expected_model:
            raise SafetyViolation(
                f"the device URL names {load_spec(self.expected_model).display_name}, but the unit reports "
                f"{spec.display_name}",
                hint=f"use magventure-magpro (any model) or {spec.model} in the device URL",
            )
        long = self._long_status("read the long status")
        if long.status.enabled:
            self.disarm()
        self.generation = self._probe_generation()
        self._read_waveform("read waveform settings")
        capabilities = spec.capabilities if self.generation == NEWER else spec.capabilities - _NEEDS_READ_BACK
        self.limits = NegotiatedLimits(spec, capabilities) if capabilities != spec.capabilities else spec
        self.display_name = spec.display_name
        self.train = None
        return DeviceInfo(
            model=spec.model,
            display_name=spec.display_name,
            version=None,  # the unit reports no firmware version
            capabilities=capabilities,
            simulated=self.simulated,
            details={
                "serial_number": str(short.serial_number),
                "coil": c.coil_type_name(short.coil_type) or f"type {short.coil_type}",
                "firmware_generation": (
                    "newer (reads 0x0A-0x0C)"
                    if self.generation == NEWER
                    else "older (0x06/0x08 only; trains and delays cannot be read back)"
                ),
            },
        )

    def _probe_generation(self) -> str:
        try:
            self._request(c.RequestTiming(), "probe the firmware generation (read Timing page)")
        except TransportTimeout:
            return OLDER  # silence: the unit does not know 0x0B (reference §3, U)
        return NEWER

    def keepalive(self) -> DeviceStatus:
        """A status read (the MagPro needs no keep-alive); raises if the unit was changed behind our back."""
        status = self.status()
        self._raise_if_changed()
        return status

    def verify_intensity(self) -> DeviceStatus:
        """The long status carries amplitudes A and B: a status read is the read-back. With a pair
        set, the waveform settings (mode, IPI, B/A) are read too, in the same round trip."""
        pair = self._pair_set
        if pair is None:
            status = self.status()
        else:
            waveform, long = self._read_waveform_and_status("read back the pair")
            status = self._neutral(long.status, running=long.sequence_running)
        if self._amplitude_set is not None and self.amplitude_a_pct != self._amplitude_set:
            assert self.amplitude_a_pct is not None
            raise IntensityMismatch(self.display_name, self.amplitude_a_pct, self._amplitude_set)
        if pair is not None:
            held = self._pair_from(waveform, self.amplitude_a_pct)
            if held is None or held.second_pct_mso != pair.second_pct_mso:
                got = 0 if held is None else held.second_pct_mso
                raise IntensityMismatch(f"{self.display_name} pulse B", got, pair.second_pct_mso)
            if held.isi_ms != pair.isi_ms:
                raise DeviceStateError(
                    f"{self.display_name} reports an inter-pulse interval of {held.isi_ms:g} ms where "
                    f"{pair.isi_ms:g} ms was set and validated",
                    hint="the unit was disabled; check its front panel and who changed it before resuming",
                )
        self._raise_if_changed()
        return status

    def _read_waveform_and_status(self, what: str) -> tuple[c.WaveformSettings, c.LongStatus]:
        """Both requests on the wire at once, both answers awaited: one round trip, not two."""
        self._send(c.RequestWaveform(), what)
        frame = c.encode_host_command(c.RequestLongStatus())
        self.transport.write(frame)
        wanted = {c.WaveformSettings.MESSAGE_ID, c.LongStatus.MESSAGE_ID}
        got: dict[int, c.DeviceMessage] = {}
        while len(got) < len(wanted):
            message = self._wait_for(
                lambda m: m.MESSAGE_ID in wanted and m.MESSAGE_ID not in got,
                what=what, frame=frame, waiting_for="waveform settings (ID 9) and long status (ID 5)",
            )
            got[message.MESSAGE_ID] = message
        waveform, long = got[c.WaveformSettings.MESSAGE_ID], got[c.LongStatus.MESSAGE_ID]
        assert isinstance(waveform, c.WaveformSettings) and isinstance(long, c.LongStatus)
        return waveform, long

    def status(self) -> DeviceStatus:
        long = self._long_status("status read")
        return self._neutral(long.status, running=long.sequence_running)

    def _raise_if_changed(self) -> None:
        if self._front_panel_change is not None:
            raise DeviceStateError(
                f"{self.display_name}: {self._front_panel_change}",
                hint="someone changed the stimulator at its front panel or coil; check it, then reconnect",
            )

    def close(self) -> None:
        """Best effort: disable the unit, close the port. Never raises."""
        try:
            self.disarm()
        except Exception:  # closing must not fail; the caller already knows why we are closing
            pass
        finally:
            self.transport.close()

    # -- amplitude --------------------------------------------------------------------------------
    def set_intensity(self, intensity_pct_mso: int) -> None:
        """Amplitude A (B unchanged), confirmed by the short status that follows."""
        pct = self.spec.check_amplitude_pct(intensity_pct_mso)
        if self.sequence_running:
            raise InvalidArgument("the amplitude cannot change while a sequence runs")
        before = self.amplitude_a_pct
        self._setting = True
        try:
            self._send(c.SetAmplitude(pct, self.amplitude_b_pct or 0), f"set amplitude {pct} %")
            got = self._short_status(f"read back amplitude {pct} %").amplitude_a_pct
        finally:
            self._setting = False
        self._confirm(got, pct, before, f"amplitude A {pct} %", lambda v: f"{v} %")
        self._amplitude_set = pct

    def _confirm(
        self, got: object, wanted: object, before: object, what: str, show: Callable[[Any], str]
    ) -> None:
        if got == wanted:
            return
        if got == before:
            raise DeviceRefused(
                f"{self.display_name} ignored {what}: it still reports {show(got)}",
                code="not_applied",
                hint="the MagPro sends no refusal; check its page, its enable state and the value's grid",
            )
        raise DeviceStateError(f"{self.display_name} reports {show(got)} after {what}")

    # -- enable / trigger / disable ------------------------------------------------------------------
    def arm(self) -> DeviceStatus:
        """Enable the unit (the front-panel "enable") and confirm it from the long status."""
        self._raise_if_changed()
        if self.coil_temperature is not None and not self.spec.coil_temperature_allows_arming(
            self.coil_temperature
        ):
            raise SafetyViolation(
                f"the coil is at {self.coil_temperature} °C; enabling needs "
                f"< {self.spec.coil_temperature_limit_c:g} °C"
            )
        self._send(c.SetEnabled(True), "enable")
        long = self._long_status("confirm enable")
        status = self._neutral(long.status, running=long.sequence_running)
        if not status.armed:
            raise DeviceRefused(
                f"{self.display_name} did not enable (status {status.raw})",
                code="not_applied",
                hint="a MagPro refuses to enable without a coil, with a hot coil or with an error on its "
                "display",
            )
        return status

    def wait_ready(self, timeout_s: float = 1.0) -> DeviceStatus:
        """The MagPro reports no charge state: ready means enabled with a coil, polled to a deadline."""
        deadline = self.clock.now() + timeout_s
        while True:
            status = self.status()
            if status.ready:
                return status
            if not status.armed:
                raise DeviceStateError(f"{self.display_name} is not enabled (status {status.raw})")
            if self.clock.now() >= deadline:
                self.disarm()
                raise DeviceStateError(
                    f"{self.display_name} was not ready {timeout_s:.1f} s after enabling ({status.raw})"
                )
            self.clock.sleep(READY_POLL_PERIOD_S)

    def fire(self) -> DeviceStatus:
        """One trigger: a single pulse (03), or the configured train/theta burst (04 on the Timing page).

        Confirmed by the di/dt message (ID 2) of the first stimulus.
        """
        self._raise_if_changed()
        plan = self.train
        if plan is None:
            if self.waveform is not None and self.waveform.waveform is c.Waveform.BIPHASIC_BURST:
                raise InvalidArgument(
                    "the unit is in Biphasic Burst: one trigger would fire a whole burst",
                    hint="configure a theta burst (set_theta_burst) or leave single-pulse mode properly",
                )
            command: c.HostCommand = c.Trigger()
            what = "trigger"
            pair = self.pair
            # the di/dt report follows a pair's second pulse, up to 3 s later
            report_after_s = 0.0 if pair is None else pair.isi_ms / 1000
        else:
            if self.page != c.Page.TIMING:
                raise DeviceStateError(
                    f"{self.display_name} is on page {c.page_name(self.page or 0) or self.page}, not Timing: "
                    "the train cannot start"
                )
            command, what = c.StartTrain(), "start train"
            report_after_s = 0.0
        before = self.stimuli_reported
        frame = self._send(command, what)
        didt = self._wait_for(
            lambda m: isinstance(m, c.PulseDidt),
            what=what,
            frame=frame,
            waiting_for="di/dt message (the unit did not fire: disabled, recharging or interlocked?)",
            expected_length=8,
            timeout_s=self.reply_timeout_s + report_after_s,
        )
        assert isinstance(didt, c.PulseDidt) and self.stimuli_reported > before
        return self._neutral(didt.status, running=plan is not None and plan.stimuli > 1)

    def disarm(self) -> DeviceStatus:
        """Disable the unit (this also stops a running sequence) and confirm it."""
        self._send(c.SetEnabled(False), "disable")
        long = self._long_status("confirm disable")
        status = self._neutral(long.status, running=long.sequence_running)
        if status.armed:
            raise DeviceStateError(f"{self.display_name} still reports enabled after disable ({status.raw})")
        return status

    # -- coil -----------------------------------------------------------------------------------------
    def coil_temperature_c(self) -> tuple[float]:
        short = self._short_status("read coil temperature")
        return (float(short.coil_temperature_c),)

    # -- pages ------------------------------------------------------------------------------------------
    def set_page(self, page: c.Page) -> None:
        if not isinstance(page, c.Page):
            raise InvalidArgument(f"page must be a Page, got {page!r}")
        before = self.page
        self._setting = True
        try:
            self._send(c.SetPage(page), f"switch to the {_title(page)} page")
            got = self._long_status(f"confirm the {_title(page)} page").page
        finally:
            self._setting = False
        self._confirm(got, int(page), before, f"switching to the {_title(page)} page", lambda v: f"page {v}")

    # -- waveform and mode ----------------------------------------------------------------------------
    def _read_waveform(self, what: str) -> c.WaveformSettings:
        message = self._request(c.RequestWaveform(), what)
        assert isinstance(message, c.WaveformSettings)
        return message

    def set_waveform(
        self,
        waveform: c.Waveform,
        *,
        mode: c.Mode | None = None,
        current_direction: c.CurrentDirection | None = None,
        burst_pulses: int | None = None,
        ipi_ms: float | None = None,
        ba_ratio: float | None = None,
    ) -> c.WaveformSettings:
        """Write the waveform settings (0x09 01) and confirm them (ID 9).

        Unnamed fields keep the unit's values.
        """
        if self.sequence_running:
            raise InvalidArgument("the waveform cannot change while a sequence runs")
        current = self._read_waveform("read waveform settings")
        mode = current.mode if mode is None else mode
        direction = current.current_direction if current_direction is None else current_direction
        pulses = current.burst_pulses if burst_pulses is None else _whole(burst_pulses, "pulses per burst")
        if ipi_ms is None:
            ipi_x10 = current.ipi_ms_x10() or _DEFAULT_IPI_MS_X10
        else:
            ipi_x10 = _scaled(ipi_ms, 10, "inter-pulse interval", "ms")
        if ba_ratio is None:
            ba_x100 = current.ba_ratio_x100() or _DEFAULT_BA_RATIO_X100
        else:
            ba_x100 = _scaled(ba_ratio, 100, "B/A ratio", "")
        self.spec.check_waveform(mode, direction, waveform, burst_pulses=pulses, ba_ratio_x100=ba_x100)
        model = self.spec.model_code
        assert model is not None, "connect() first: the waveform write must echo the unit's model"
        command = c.SetWaveform(
            model, mode, direction, waveform, pulses, ipi_x10, ba_x100
        )  # checks IPI tables
        self._setting = True
        try:
            self._send(command, "write waveform settings")
            got = self._read_waveform("read back waveform settings")
        finally:
            self._setting = False
        wanted = (mode, direction, waveform, pulses)
        timed = waveform is c.Waveform.BIPHASIC_BURST or mode in _PAIR_MODES  # the IPI is in use
        if (got.mode, got.current_direction, got.waveform, got.burst_pulses) != wanted or (
            timed and got.ipi_ms_x10() != ipi_x10
        ) or (mode is c.Mode.TWIN and got.ba_ratio_x100() != ba_x100):
            seen = (got.mode, got.current_direction, got.waveform, got.burst_pulses)
            was = (current.mode, current.current_direction, current.waveform, current.burst_pulses)
            self._confirm(seen, wanted, was, "the waveform write", lambda v: "/".join(str(x) for x in v))
            raise DeviceStateError(
                f"{self.display_name} reports an interval of {got.ipi_ms_x10()} ×0.1 ms and a B/A ratio of "
                f"{got.ba_ratio_x100()} ×0.01 after setting {ipi_x10} and {ba_x100}"
            )
        return got

    def set_mode(self, mode: c.Mode) -> c.WaveformSettings:
        """Standard, Power, Twin or Dual (as this model offers), keeping the current waveform."""
        current = self.waveform or self._read_waveform("read waveform settings")
        return self.set_waveform(current.waveform, mode=mode)

    def _leave_burst(self) -> None:
        if self.waveform is not None and self.waveform.waveform is c.Waveform.BIPHASIC_BURST:
            self.set_waveform(c.Waveform.BIPHASIC)  # documented: leaving theta burst restores Biphasic

    # -- paired pulses: Twin and Dual modes (PairedPulseDriver) ----------------------------------------
    # One trigger fires pulse A; the unit fires pulse B one IPI later. Twin sets B as a ratio of
    # A (B/A, 0.20–5.00 in 0.05 steps); Dual sets amplitude B itself. tmsctl uses Twin when the
    # pair's B/A is exactly on the ratio grid and Dual otherwise: never a rounded ratio.

    @staticmethod
    def _pair_from(waveform: c.WaveformSettings, a_pct: int | None) -> PairSettings | None:
        """The pair a unit in these settings fires per trigger; None outside Twin/Dual."""
        ipi_x10 = waveform.ipi_ms_x10()
        if waveform.mode not in _PAIR_MODES or a_pct is None or ipi_x10 is None:
            return None
        if waveform.mode is c.Mode.DUAL:
            second = waveform.b_amplitude_pct()
        else:
            ratio = waveform.ba_ratio_x100()
            # U: the unit's rounding of A × B/A is unpublished; tmsctl only sets exact products
            second = None if ratio is None else (a_pct * ratio + 50) // 100
        return None if second is None else PairSettings(a_pct, second, ipi_x10 / 10)

    @property
    def pair(self) -> PairSettings | None:
        """The pair a trigger fires, as last read back (the unit may have been left in Twin/Dual)."""
        if self.waveform is None:
            return None
        return self._pair_from(self.waveform, self.amplitude_a_pct)

    def set_pair(self, first_pct_mso: int, second_pct_mso: int, isi_ms: float) -> PairSettings:
        """Amplitude A (first), B (second) and the IPI, in Twin mode where B/A is on its grid, else
        Dual; every field read back (ID 9 and the short status)."""
        if Capability.PAIRED_PULSE not in self.capabilities:
            raise InvalidArgument(
                f"the {self.spec.display_name} has no Twin or Dual mode: it cannot fire paired pulses",
                hint="paired pulses need a MagPro with MagOption",
            )
        first = self.spec.check_amplitude_pct(first_pct_mso)
        second = self.spec.check_amplitude_pct(second_pct_mso)
        if second == 0 or first == 0:
            raise InvalidArgument("both pulses of a pair need an amplitude above 0 %", hint="use clear_pair() for single pulses")
        ipi_x10 = _scaled(isi_ms, 10, "inter-pulse interval", "ms")
        c.twin_dual_ipi_index(ipi_x10)  # in the Twin/Dual table, or InvalidArgument naming the nearest
        ratio_grid = self.spec.grids.ba_ratio_x100
        ratio_x100 = second * 100 // first if second * 100 % first == 0 else None
        twin = ratio_x100 is not None and ratio_x100 in ratio_grid and c.Mode.TWIN in self.spec.modes
        mode = c.Mode.TWIN if twin else c.Mode.DUAL
        if self.sequence_running:
            raise InvalidArgument("a pair cannot be set while a sequence runs")
        self.train = None  # a trigger now fires the pair (0x03), never a Timing-page train
        shape = self.waveform.waveform if self.waveform else c.Waveform.BIPHASIC
        if shape is c.Waveform.BIPHASIC_BURST:
            shape = c.Waveform.BIPHASIC  # Twin/Dual cannot be combined with Biphasic Burst
        ratio = ratio_x100 / 100 if twin and ratio_x100 is not None else None
        self.set_waveform(shape, mode=mode, ipi_ms=ipi_x10 / 10, ba_ratio=ratio)
        before = (self.amplitude_a_pct, self.amplitude_b_pct)
        self._setting = True
        try:
            # Dual takes B as set; Twin derives it from A and keeps B's own setting unused.
            b_sent = second if mode is c.Mode.DUAL else (self.amplitude_b_pct or 0)
            self._send(c.SetAmplitude(first, b_sent), f"set amplitudes A {first} %, B {b_sent} %")
            short = self._short_status("read back amplitudes A and B")
            waveform = self._read_waveform("read back the pair")
        finally:
            self._setting = False
        got = self._pair_from(waveform, short.amplitude_a_pct)
        wanted = PairSettings(first, second, ipi_x10 / 10)
        if got != wanted:
            was = f"A {before[0]} %, B {before[1]} %"
            raise DeviceStateError(
                f"{self.display_name} reads back {got or 'no pair'} after setting {wanted} ({_title(mode)} mode; "
                f"before: {was})",
                hint="check the unit's front panel (mode, amplitudes, IPI) and its MagOption",
            )
        self._amplitude_set = first
        self._pair_set = wanted
        return wanted

    def clear_pair(self) -> None:
        """Back to Standard mode, read back: a trigger then fires pulse A alone."""
        current = self.waveform or self._read_waveform("read waveform settings")
        if current.mode in _PAIR_MODES:
            self.set_waveform(current.waveform, mode=c.Mode.STANDARD)
        self._pair_set = None

    # -- the stimulus shape (StimulusShaping) -----------------------------------------------------------

    @staticmethod
    def _shape_of(waveform: c.WaveformSettings) -> StimulusShape:
        names = {v: k for k, v in PROTOCOL_WAVEFORMS.items()}
        directions = {v: k for k, v in PROTOCOL_DIRECTIONS.items()}
        return StimulusShape(names[waveform.waveform], directions[waveform.current_direction])

    @property
    def stimulus(self) -> StimulusShape | None:
        return None if self.waveform is None else self._shape_of(self.waveform)

    def set_stimulus(self, waveform: str, current_direction: str) -> StimulusShape:
        """A protocol's waveform and current direction (its words), written and read back (ID 9).
        Biphasic Burst is set by ``set_theta_burst``, which knows the burst's pulses and interval."""
        shape = PROTOCOL_WAVEFORMS.get(waveform)
        direction = PROTOCOL_DIRECTIONS.get(current_direction)
        if shape is None or direction is None:
            raise InvalidArgument(
                f"no MagPro stimulus {waveform!r} with {current_direction!r} current",
                hint=f"waveforms: {', '.join(PROTOCOL_WAVEFORMS)}; directions: {', '.join(PROTOCOL_DIRECTIONS)}",
            )
        if shape is c.Waveform.BIPHASIC_BURST:
            raise InvalidArgument(
                "the Biphasic Burst waveform is set with the theta burst it fires (set_theta_burst)",
                hint="give the pulse's own shape (biphasic) for the other trains",
            )
        return self._shape_of(self.set_waveform(shape, current_direction=direction))

    # -- Timing page ------------------------------------------------------------------------------------
    def _require_read_back(self, what: str) -> None:
        if self.generation != NEWER:
            raise InvalidArgument(
                f"{self.display_name} runs the older firmware generation: {what} cannot be read back, "
                "so tmsctl will not set it",
                hint="this unit can still fire host-timed single pulses",
            )

    def _read_timing(self, what: str) -> c.TimingSettings:
        message = self._request(c.RequestTiming(), what)
        assert isinstance(message, c.TimingSettings)
        return message

    def _write_timing(self, rate_hz_x10: int, stimuli: int, waveform: c.Waveform) -> None:
        mode = self.waveform.mode if self.waveform else c.Mode.STANDARD
        self.spec.check_train(rate_hz_x10, stimuli, 1, SINGLE_TRAIN_ITI_S_X10, mode=mode, waveform=waveform)
        if self.page != c.Page.TIMING:
            self.set_page(c.Page.TIMING)  # the unit only starts trains from its Timing page
        before = self._read_timing("read the Timing page")
        command = c.SetTiming(
            c.TimingControl.SEQUENCE, rate_hz_x10, stimuli, 1, SINGLE_TRAIN_ITI_S_X10, False
        )
        self._send(command, "write the Timing page")
        got = self._read_timing("read back the Timing page")

        def fields(t: c.TimingSettings) -> tuple[object, ...]:
            return (
                t.timing_control,
                t.rate_hz_x10,
                t.pulses_per_train,
                t.train_count,
                t.iti_s_x10,
                t.warning_sound,
            )

        wanted = (c.TimingControl.SEQUENCE, rate_hz_x10, stimuli, 1, SINGLE_TRAIN_ITI_S_X10, False)
        self._confirm(fields(got), wanted, fields(before), "the Timing-page write", lambda v: repr(v))
        if got.ramp_up_trains:
            raise DeviceStateError(
                f"{self.display_name} has a ramp-up set ({got.ramp_up_pct} % over "
                f"{got.ramp_up_trains} trains), "
                "which tmsctl cannot write; clear it at the unit"
            )

    def set_train(self, frequency_hz: float, pulses: int) -> TrainPlan:
        """One device-timed train per trigger: ``pulses`` at ``frequency_hz`` (Timing page, read back)."""
        self._require_read_back("the Timing page")
        pulses = _whole(pulses, "pulses per train")
        rate = _scaled(frequency_hz, 10, "frequency", "Hz")
        plan = TrainPlan(rate / 10, pulses)
        if plan.duration_s > self.spec.max_train_duration_s:
            raise InvalidArgument(
                f"a {plan.duration_s:g} s train exceeds the {self.spec.max_train_duration_s:g} s limit"
            )
        self.train = None
        self._leave_burst()
        waveform = self.waveform.waveform if self.waveform else c.Waveform.BIPHASIC
        self._write_timing(rate, pulses, waveform)
        self.train = plan
        return plan

    def set_theta_burst(
        self, *, pulses_per_burst: int, burst_frequency_hz: float, burst_rate_hz: float, bursts: int
    ) -> TrainPlan:
        """Device-timed theta burst: Biphasic Burst waveform (pulses and interval) plus the Timing page."""
        if c.Waveform.BIPHASIC_BURST not in self.spec.waveforms:
            raise InvalidArgument(
                f"the {self.spec.display_name} has no Biphasic Burst waveform: it cannot time theta bursts",
                hint="theta burst needs a MagPro X100 (with or without MagOption)",
            )
        self._require_read_back("the Timing page")
        per_burst = _whole(pulses_per_burst, "pulses per burst")
        bursts = _whole(bursts, "bursts per train")
        rate = _scaled(burst_rate_hz, 10, "burst rate", "Hz")
        if not (isinstance(burst_frequency_hz, int | float) and burst_frequency_hz > 0):
            raise InvalidArgument(
                f"burst frequency must be a positive number of Hz, got {burst_frequency_hz!r}"
            )
        ipi_x10 = _scaled(
            1000 / burst_frequency_hz, 10, f"inter-pulse interval (1/{burst_frequency_hz:g} Hz)", "ms"
        )
        c.burst_ipi_index(ipi_x10)  # in the Biphasic Burst interval table, or InvalidArgument
        if (per_burst - 1) * ipi_x10 / 10 >= 10000 / rate:
            raise InvalidArgument(
                f"{per_burst} pulses {ipi_x10 / 10:g} ms apart do not fit in a "
                f"{1 / (rate / 10) * 1000:g} ms burst period"
            )
        plan = TrainPlan(rate / 10, bursts, per_burst, 10000 / ipi_x10)
        if plan.duration_s > self.spec.max_train_duration_s:
            raise InvalidArgument(
                f"a {plan.duration_s:g} s train exceeds the {self.spec.max_train_duration_s:g} s limit"
            )
        self.train = None
        mode = self.waveform.mode if self.waveform else c.Mode.STANDARD
        self.spec.check_rate(rate, mode=mode, waveform=c.Waveform.BIPHASIC_BURST)
        self.set_waveform(c.Waveform.BIPHASIC_BURST, burst_pulses=per_burst, ipi_ms=ipi_x10 / 10)
        self._write_timing(rate, bursts, c.Waveform.BIPHASIC_BURST)
        self.train = plan
        return plan

    def set_single_pulse_mode(self) -> None:
        """Each trigger fires one pulse (Biphasic restored if the unit was in Biphasic Burst)."""
        self.train = None
        self._leave_burst()

    # -- delays -----------------------------------------------------------------------------------------
    def set_delays(
        self, *, input_delay_ms: float, output_delay_ms: float, charge_delay_ms: int
    ) -> c.DelaySettings:
        """Trigger-in, trigger-out (may be negative with Sequence timing) and charge delays, read back."""
        self._require_read_back("the delays")
        in_x10 = _scaled(input_delay_ms, 10, "trigger-in delay", "ms")
        out_x10 = _scaled(output_delay_ms, 10, "trigger-out delay", "ms")
        charge = _whole(charge_delay_ms, "charge delay (ms)")
        timing = self._read_timing("read the timing control")
        self.spec.check_delays(in_x10, out_x10, charge, timing_control=timing.timing_control)
        before = self._request(c.RequestDelays(), "read delays")
        self._send(c.SetDelays(in_x10, out_x10, charge), "write delays")
        got = self._request(c.RequestDelays(), "read back delays")
        assert isinstance(got, c.DelaySettings) and isinstance(before, c.DelaySettings)

        def fields(d: c.DelaySettings) -> tuple[int, int, int]:
            return (d.input_delay_ms_x10, d.output_delay_ms_x10, d.charge_delay_ms)

        self._confirm(fields(got), (in_x10, out_x10, charge), fields(before), "the delay write", repr)
        return got
