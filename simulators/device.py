"""The generic simulated stimulator: byte timing on the wire, timers, a coil, and faults — sans-I/O.

A device model never reads a clock. Its owner (the ``sim://`` handler, the pty or TCP server)
tells it what time it is:

* ``feed(data, now)`` — host bytes start arriving at ``now`` (each takes one byte-time on the line);
* ``read(now)`` — reply bytes whose last bit has left the device by ``now``;
* ``next_event_time()`` — when something will next happen, so the owner knows how long to wait.

Everything happens in time order inside ``advance(now)``: host bytes are processed at their
arrival instant and internal timers (arming, recharge, train pulses, keep-alive expiry) fire at
their own instants, so replies carry the real latency and wire time and a 37-minute session on a
virtual clock is exactly as timed as one in real time.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from tmsctl.core.errors import InvalidArgument


class FaultKind(StrEnum):
    """Wire and device faults: the unit fails, and says so (or goes quiet)."""

    NO_REPLY = "no_reply"  # the reply to the next command is never sent
    GARBLED_BYTE = "garbled_byte"  # one byte of the next reply is corrupted
    BAD_CHECKSUM = "bad_checksum"  # the next reply's checksum is wrong
    COIL_UNPLUGGED = "coil_unplugged"  # the coil disconnects (stays disconnected)
    OVER_TEMPERATURE = "over_temperature"  # the coil jumps above its temperature limit
    DEVICE_ERROR = "device_error"  # the device raises an internal error and disarms
    STALL = "stall"  # the device stops answering (for a while, or for good)


class SemanticFaultKind(StrEnum):
    """Semantic faults: every frame is well formed, but the unit does something else than it was
    told, or is something else than it claims. Only the truth log (``truth()``) and a host that
    reads back see them. Kept apart from ``FaultKind``: the fault matrix holds the controller to
    every ``FaultKind``; these are what its read-back and identity checks must catch.
    docs/faults.md lists which device can express which, and why not where it cannot."""

    POWER_DRIFT = "power_drift"  # the unit sets its own output power (=PERCENT; default 10 points up)
    IGNORE_DISARM = "ignore_disarm"  # disarm commands are acknowledged and ignored (for +SECONDSs, or for good)
    TRAIN_STOPS_EARLY = "train_stops_early"  # a device-timed train ends silently after =N pulses (default half)
    EXTRA_PULSES = "extra_pulses"  # =N unreported pulses (default 1) follow the next stimulus
    REBOOT = "reboot"  # a power cycle: disarmed, remote control and settings lost (+SECONDSs to boot)
    WRONG_MODEL = "wrong_model"  # the identity query names another model/version (=WHAT; default: another)


AnyFaultKind = FaultKind | SemanticFaultKind
_KINDS: dict[str, AnyFaultKind] = {k.value: k for k in (*FaultKind, *SemanticFaultKind)}
# The kinds a "+SECONDSs" applies to, and the kinds that take "=VALUE" (whole numbers unless text).
_TAKES_DURATION = {FaultKind.STALL, SemanticFaultKind.IGNORE_DISARM, SemanticFaultKind.REBOOT}
_TAKES_NUMBER = {SemanticFaultKind.POWER_DRIFT, SemanticFaultKind.TRAIN_STOPS_EARLY, SemanticFaultKind.EXTRA_PULSES}
_TAKES_TEXT = {SemanticFaultKind.WRONG_MODEL}


@dataclass(frozen=True)
class Fault:
    """One planned fault. Triggered at a time (``at_s`` after start) or at the n-th host command."""

    kind: AnyFaultKind
    at_s: float | None = None
    at_command: int | None = None
    duration_s: float | None = None  # STALL, IGNORE_DISARM, REBOOT (boot time); None = for good / instant
    value: str | None = None  # POWER_DRIFT, TRAIN_STOPS_EARLY, EXTRA_PULSES, WRONG_MODEL; None = the default

    def describe(self) -> str:
        when = f"@{self.at_s:g}s" if self.at_s is not None else f"@cmd{self.at_command}"
        dur = f"+{self.duration_s:g}s" if self.duration_s is not None else ""
        value = f"={self.value}" if self.value is not None else ""
        return f"{self.kind.value}{when}{dur}{value}"

    @property
    def number(self) -> int | None:
        """The value of a kind that takes a whole number (the parser checked it)."""
        return None if self.value is None else int(self.value)


_FAULT = re.compile(
    r"^(?P<kind>[a-z_]+)@(?:(?P<s>\d+(?:\.\d+)?)s|cmd(?P<n>\d+))"
    r"(?:\+(?P<d>\d+(?:\.\d+)?)s)?(?:=(?P<v>[A-Za-z0-9._-]+))?$"
)
_SYNTAX_HINT = (
    "write KIND@SECONDSs or KIND@cmdN, then +SECONDSs (stall, ignore_disarm, reboot) or =VALUE "
    "(power_drift, train_stops_early, extra_pulses: a whole number; wrong_model: a name); see docs/faults.md"
)


def parse_fault_plan(text: str) -> tuple[Fault, ...]:
    """``"coil_unplugged@30s,no_reply@cmd5,stall@10s+5s,power_drift@60s=80"`` → faults.

    Errors name the bad item and what is wrong with it."""
    faults = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        m = _FAULT.match(item)
        kind = _KINDS.get(m.group("kind")) if m else None
        if kind is None:
            kinds = ", ".join(_KINDS)
            raise InvalidArgument(f"cannot read fault {item!r}", hint=f"{_SYNTAX_HINT}; kinds: {kinds}")
        assert m is not None
        duration, value = m.group("d"), m.group("v")
        if duration is not None and kind not in _TAKES_DURATION:
            raise InvalidArgument(
                f"fault {item!r}: {kind.value} takes no +SECONDSs duration",
                hint="only stall, ignore_disarm and reboot last for a while; " + _SYNTAX_HINT,
            )
        if value is not None and kind not in _TAKES_NUMBER | _TAKES_TEXT:
            raise InvalidArgument(f"fault {item!r}: {kind.value} takes no =VALUE", hint=_SYNTAX_HINT)
        if value is not None and kind in _TAKES_NUMBER and not value.isdigit():
            raise InvalidArgument(
                f"fault {item!r}: {kind.value} wants a whole number after '=', not {value!r}", hint=_SYNTAX_HINT
            )
        faults.append(
            Fault(
                kind,
                at_s=float(m.group("s")) if m.group("s") else None,
                at_command=int(m.group("n")) if m.group("n") else None,
                duration_s=float(duration) if duration else None,
                value=value,
            )
        )
    return tuple(faults)


@dataclass
class CoilModel:
    """A lumped thermal model: each pulse adds heat, the coil cools exponentially to ambient."""

    ambient_c: float = 24.0
    heating_c_per_joule: float = 1.1e-4
    cooling_time_constant_s: float = 600.0
    temperature_c: float = 24.0
    updated_at: float = 0.0
    present: bool = True

    def at(self, now: float) -> float:
        dt = max(0.0, now - self.updated_at)
        excess = self.temperature_c - self.ambient_c
        return self.ambient_c + excess * math.exp(-dt / self.cooling_time_constant_s)

    def settle(self, now: float) -> None:
        self.temperature_c = self.at(now)
        self.updated_at = max(self.updated_at, now)

    def pulse(self, now: float, energy_j: float) -> None:
        self.settle(now)
        self.temperature_c += energy_j * self.heating_c_per_joule

    def force(self, now: float, temperature_c: float) -> None:
        self.settle(now)
        self.temperature_c = temperature_c


@dataclass(frozen=True, slots=True)
class PulseRecord:
    """One discharge the unit really made: the truth log's entry, whatever the wire said."""

    t: float  # the instant it fired (the device's clock)
    intensity_pct: int  # the power it fired at, % of maximum output, after any drift
    source: str  # "serial", "rts", "train", "ttl", or "extra" (a pulse nobody commanded)
    output: str = "A"  # which output fired: "A" or "B" on a BiStim², "A" on single-output units

    @property
    def power_pct(self) -> int:
        return self.intensity_pct


class _Timer:
    __slots__ = ("action", "cancelled", "seq", "t")

    def __init__(self, t: float, seq: int, action: Callable[[float], None]) -> None:
        self.t = t
        self.seq = seq
        self.action = action
        self.cancelled = False


class SimulatedDevice:
    """Wire timing, timers and faults shared by every simulated model.

    Subclasses implement ``_on_bytes(now)`` (consume ``self._inbuf`` and answer through
    ``self._reply``) and use ``self._schedule(t, action)`` for anything that happens later.
    """

    baudrate = 9600
    bits_per_byte = 10
    # Host frame lengths that the first byte alone decides, for models whose frames have them:
    # ``_on_bytes`` is then called once per frame, when it is complete.
    _frame_lengths: Mapping[int, int] = MappingProxyType({})
    reply_latency_s = 0.002  # processing time before the first reply byte

    def __init__(self, *, start: float = 0.0, faults: tuple[Fault, ...] = ()) -> None:
        self.started_at = start
        self.now = start
        self.byte_time_s = self.bits_per_byte / self.baudrate
        self._rx: deque[tuple[float, int]] = deque()
        # Reply bytes on their way: byte i (from _tx_head) is fully out at _tx_times[i]. Two flat
        # arrays instead of a deque of (time, byte) pairs so a whole frame is peeked and taken by
        # slicing: this is the path every simulated command takes.
        self._tx_data = bytearray()
        self._tx_times: list[float] = []
        self._tx_head = 0
        self._byte_offsets = [(i + 1) * self.byte_time_s for i in range(32)]
        self._rx_line_free = start
        self._tx_line_free = start
        self._inbuf = bytearray()
        self._bytes_awaited = 0
        self._timers: list[tuple[float, int, _Timer]] = []  # a heap ordered by (time, sequence)
        # One deadline kept out of the heap because every command moves it: a keep-alive
        # watchdog. ``_on_watchdog`` runs when it passes (after heap timers due at the same instant).
        self._watchdog_at = math.inf
        self._seq = 0
        self.commands_seen = 0
        self.coil = CoilModel(updated_at=start)
        self.pulses: list[PulseRecord] = []
        self.fault_log: list[tuple[float, str]] = []
        self._pending_reply_faults: list[FaultKind] = []
        self._stalled_until: float | None = None
        self._command_faults = [f for f in faults if f.at_command is not None]
        for fault in faults:
            if fault.at_s is not None:
                self._schedule(start + fault.at_s, functools.partial(self._trigger_fault, fault))

    # -- the owner's interface ---------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> float:
        """Returns when the last of ``data`` will have arrived."""
        self.advance(now)
        arrival, byte_time, rx = max(now, self._rx_line_free), self.byte_time_s, self._rx
        for byte in data:
            arrival += byte_time
            rx.append((arrival, byte))
        self._rx_line_free = arrival
        return arrival

    def read(self, now: float, limit: int | None = None) -> bytes:
        self.advance(now)
        return self.take_arrived(now, limit)

    def take_arrived(self, now: float, limit: int | None = None) -> bytes:
        """``read`` for a caller that has just advanced the device to ``now``."""
        times, head = self._tx_times, self._tx_head
        end = len(times) if limit is None else min(len(times), head + limit)
        if end > head and times[end - 1] > now:
            end = bisect.bisect_right(times, now, head, end)
        if end == head:
            return b""
        out = bytes(self._tx_data[head:end])
        if end == len(times):
            self._tx_data.clear()
            times.clear()
            self._tx_head = 0
        elif end > 4096:  # a reader that never catches up: do not let the taken bytes pile up
            del self._tx_data[:end]
            del times[:end]
            self._tx_head = 0
        else:
            self._tx_head = end
        return out

    @property
    def unread_reply_bytes(self) -> int:
        return len(self._tx_times) - self._tx_head

    @property
    def host_bytes_in_flight(self) -> int:
        """Host bytes fed but not yet arrived: the input backlog a server must keep bounded."""
        return len(self._rx)

    def hang_up(self, now: float) -> None:
        """The host at the other end went away: what it sent that has not yet arrived and the
        replies it did not read are lost with it, and the line is free for the next host.

        The device keeps its state (a new host on the same cable meets the unit as the last one
        left it) but not a half-received frame: a real unit times one out long before another
        host could be plugged in, and the next host's first command must not be read as its end.
        """
        self.advance(now)
        self._inbuf.clear()
        self._bytes_awaited = 0
        self._on_hang_up(now)
        self._rx.clear()
        self._rx_line_free = min(self._rx_line_free, now)
        self._tx_data.clear()
        self._tx_times.clear()
        self._tx_head = 0
        self._tx_line_free = min(self._tx_line_free, now)

    def next_event_time(self) -> float | None:
        candidates = []
        if self._tx_head < len(self._tx_times):
            candidates.append(self._tx_times[self._tx_head])
        if self._rx:
            candidates.append(self._rx[0][0])
        timer = self._next_timer()
        if timer is not None:
            candidates.append(timer)
        return min(candidates) if candidates else None

    def peek_frame(self, bytes_needed: Callable[[bytes], int]) -> tuple[int, float | None, bool]:
        """Look (without consuming) at the reply bytes already on their way, as a reader that
        learns the frame's length from ``bytes_needed`` would take them.

        Returns (how many of them complete or extend the frame, arrival of the last one, complete?).
        """
        head, data = self._tx_head, self._tx_data
        available = len(data) - head
        if not available:
            return 0, None, False  # a frame has at least one byte
        waiting = bytes(data[head:])  # sliced below; the whole of it costs no copy
        taken, more = 0, bytes_needed(b"")
        while more > 0 and taken < available:
            taken += more
            if taken > available:
                taken = available
            more = bytes_needed(waiting[:taken])
        return taken, self._tx_times[head + taken - 1] if taken else None, more <= 0

    def readable_count(self, now: float) -> int:
        """How many reply bytes a reader could take at ``now``."""
        self.advance(now)
        return bisect.bisect_right(self._tx_times, now, self._tx_head) - self._tx_head

    def next_change_time(self) -> float | None:
        """When the device could next add reply bytes: the end of the host bytes still in flight
        (a reply never starts before its command has fully arrived) or its next timer."""
        timer = self._next_timer()
        if self._rx:
            last_host_byte = self._rx[-1][0]
            return last_host_byte if timer is None else min(last_host_byte, timer)
        return timer

    def time_when_readable(self, n: int) -> float | None:
        """The earliest instant worth waking a reader that wants ``n`` more reply bytes.

        When they are already on their way, the arrival of the n-th; otherwise the next thing that
        could produce a reply: the end of the host bytes still in flight (a reply never starts
        before its command has fully arrived) or a timer.
        """
        if 0 < n <= self.unread_reply_bytes:
            return self._tx_times[self._tx_head + n - 1]
        change = self.next_change_time()
        if self.unread_reply_bytes:
            last_reply_byte = self._tx_times[-1]
            return last_reply_byte if change is None else min(change, last_reply_byte)
        return change

    def advance(self, now: float) -> None:
        """Process, in time order, every host byte arrival and timer due by ``now``."""
        rx, timers = self._rx, self._timers
        if (not rx or rx[0][0] > now) and (not timers or timers[0][0] > now) and self._watchdog_at > now:
            if now > self.now:  # nothing due: the common case, kept cheap
                self.now = now
            return
        inf = math.inf
        while True:
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            t_timer = timers[0][0] if timers else inf
            t_rx = rx[0][0] if rx else inf
            t_watchdog = self._watchdog_at
            if t_watchdog < t_timer and t_watchdog <= t_rx:
                if t_watchdog > now:
                    break
                self.now = t_watchdog
                self._watchdog_at = inf
                self._on_watchdog(t_watchdog)
                continue
            if t_timer <= t_rx:
                if t_timer > now:
                    break
                self.now = t_timer
                _, _, timer = heapq.heappop(timers)
                timer.action(t_timer)
                continue
            if t_rx > now:
                break
            self.now = t_rx
            _, byte = rx.popleft()
            if self._stalled_until is not None and t_rx < self._stalled_until:
                self._bytes_awaited = 0
                continue  # a stalled device drops what it hears
            inbuf = self._inbuf
            inbuf.append(byte)
            if self._bytes_awaited > 1:
                self._bytes_awaited -= 1  # the frame cannot be complete yet
                continue
            if len(inbuf) == 1:
                length = self._frame_lengths.get(byte, 0)
                if length > 1:  # the first byte alone tells the frame's length
                    self._bytes_awaited = length - 1
                    continue
            self._bytes_awaited = self._on_bytes(t_rx) or 0
        if now > self.now:
            self.now = now

    def set_modem_lines(self, rts: bool, dtr: bool, now: float) -> None:
        """RTS/DTR changed (only in-process attachments can model this)."""
        self.advance(now)
        self._on_modem_lines(rts, dtr, now)

    def schedule_trigger_edges(self, times: Iterable[float], width_s: float = 0.001) -> None:
        """A trigger box outside the host, in process (tests): the input goes high at each clock time
        in ``times`` and low ``width_s`` later, on the device's own clock."""
        for t in times:
            self._schedule(t, lambda now: self._on_trigger_input(True, now, "ttl"))
            self._schedule(t + width_s, lambda now: self._on_trigger_input(False, now, "ttl"))

    def set_trigger_input(self, level: bool, now: float) -> None:
        """The trigger input's level, driven by a box outside the host (a TTL): a served
        simulator's side channel (``simulators.serve.TriggerPort``)."""
        self.advance(now)
        self._on_trigger_input(level, now, "ttl")

    def inject(
        self, kind: AnyFaultKind, at: float, *, duration_s: float | None = None, value: str | int | None = None
    ) -> None:
        """Plan one more fault while running (tests): it happens at clock time ``at``."""
        fault = Fault(kind, at_s=at - self.started_at, duration_s=duration_s,
                      value=None if value is None else str(value))
        self.check_fault_plan((fault,))
        self._schedule(at, lambda t: self._trigger_fault(fault, t))

    def check_fault_plan(self, faults: tuple[Fault, ...]) -> None:
        """Refuse a semantic fault this model cannot express (or a value it cannot take): a
        planned fault that silently does nothing would make a test pass for the wrong reason."""
        for fault in faults:
            if isinstance(fault.kind, SemanticFaultKind):
                why = self._semantic_fault_problem(fault)
                if why:
                    raise InvalidArgument(
                        f"fault {fault.describe()!r} does not apply to {self.model_name}: {why}",
                        hint="docs/faults.md lists which fault each simulated model can express",
                    )

    # -- the truth log ---------------------------------------------------------------------------------
    def truth(self) -> tuple[PulseRecord, ...]:
        """Every discharge the unit really made, in order: instant, output, power, source.

        What the unit did, not what it reported: semantic faults (extra pulses, drifted power, a
        train cut short) show here and nowhere on the wire."""
        return tuple(self.pulses)

    @property
    def pulse_count(self) -> int:
        return len(self.pulses)

    @property
    def model_name(self) -> str:
        profile = getattr(self, "profile", None)
        return getattr(profile, "display_name", type(self).__name__)

    @property
    def is_energised(self) -> bool:
        """True while the unit could deliver a pulse (armed or charged). Models override this."""
        raise NotImplementedError

    def identify_as_simulator(self) -> bool:
        """Name itself a simulator in what the real protocol carries, for a host that reaches it
        like a real port (``tmsctl sim serve``). False where the protocol carries no identity."""
        return False

    # -- for subclasses ------------------------------------------------------------------------------
    def _on_bytes(self, now: float) -> int | None:
        """Consume complete frames from ``self._inbuf``; return how many more bytes the next
        frame needs at least (so we need not call again before), or None if unknown."""
        raise NotImplementedError

    def _on_modem_lines(self, rts: bool, dtr: bool, now: float) -> None:
        """Models without a trigger wired to RTS ignore modem lines."""

    def _on_trigger_input(self, level: bool, now: float, source: str) -> None:
        """Models without a trigger input ignore it (the served side channel logs nothing more)."""

    def _on_hang_up(self, now: float) -> None:
        """Models that keep a half-received frame outside ``self._inbuf`` drop it here."""

    def _on_watchdog(self, now: float) -> None:
        """The watchdog deadline passed (models that set ``_watchdog_at`` override this)."""

    def _on_fault(self, fault: Fault, now: float) -> None:
        """Model-specific consequences of coil/temperature/device faults."""

    def _semantic_fault_problem(self, fault: Fault) -> str | None:
        """Why this model cannot express ``fault`` (a semantic fault), or None if it can."""
        return "this simulator models no semantic faults"

    def _on_semantic_fault(self, fault: Fault, now: float) -> None:
        """Model-specific semantic faults (only those ``_semantic_fault_problem`` accepts arrive)."""

    def _schedule(self, t: float, action: Callable[[float], None]) -> _Timer:
        self._seq += 1
        timer = _Timer(t, self._seq, action)
        heapq.heappush(self._timers, (t, self._seq, timer))
        return timer

    @staticmethod
    def _cancel(timer: _Timer | None) -> None:
        if timer is not None:
            timer.cancelled = True

    def _next_timer(self) -> float | None:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        earliest = min(timers[0][0] if timers else math.inf, self._watchdog_at)
        return None if earliest == math.inf else earliest

    def _count_command(self, now: float) -> None:
        self.commands_seen += 1
        if not self._command_faults:
            return
        for fault in list(self._command_faults):
            if fault.at_command == self.commands_seen:
                self._command_faults.remove(fault)
                self._trigger_fault(fault, now)

    def _trigger_fault(self, fault: Fault, now: float) -> None:
        self.fault_log.append((now, fault.describe()))
        if isinstance(fault.kind, SemanticFaultKind):
            self._on_semantic_fault(fault, now)
            return
        if fault.kind in (FaultKind.NO_REPLY, FaultKind.GARBLED_BYTE, FaultKind.BAD_CHECKSUM):
            self._pending_reply_faults.append(fault.kind)
        elif fault.kind is FaultKind.STALL:
            self._stalled_until = math.inf if fault.duration_s is None else now + fault.duration_s
        elif fault.kind is FaultKind.COIL_UNPLUGGED:
            self.coil.present = False
        self._on_fault(fault, now)

    @property
    def stalled(self) -> bool:
        return self._stalled_until is not None and self.now < self._stalled_until

    def _reply(self, data: bytes, now: float) -> None:
        if self.stalled:
            return
        if self._pending_reply_faults:
            kind = self._pending_reply_faults.pop(0)
            if kind is FaultKind.NO_REPLY:
                return
            if kind is FaultKind.GARBLED_BYTE and data:
                index = min(1, len(data) - 1)
                data = data[:index] + bytes([data[index] ^ 0x5A]) + data[index + 1 :]
            elif kind is FaultKind.BAD_CHECKSUM and data:
                data = data[:-1] + bytes([(data[-1] + 1) & 0xFF])
        start = now + self.reply_latency_s
        if self._tx_line_free > start:
            start = self._tx_line_free
        n = len(data)
        if not n:
            return
        offsets = self._byte_offsets
        if n > len(offsets):
            offsets = self._byte_offsets = [(i + 1) * self.byte_time_s for i in range(2 * n)]
        self._tx_data += data
        times = [start + offset for offset in offsets[:n]]  # byte i is out at start + (i+1) byte-times
        self._tx_times += times
        self._tx_line_free = start + n * self.byte_time_s

    def _record_pulse(self, now: float, intensity_pct: int, energy_j: float, source: str, output: str = "A") -> None:
        self.pulses.append(PulseRecord(now, intensity_pct, source, output))
        self.coil.pulse(now, energy_j)

    def _boot(self, now: float, boot_s: float | None) -> None:
        """After a power cycle: deaf and mute for ``boot_s`` (host bytes and any partial frame lost)."""
        self._inbuf.clear()
        self._bytes_awaited = 0
        if boot_s:
            until = now + boot_s
            if self._stalled_until is None or self._stalled_until < until:
                self._stalled_until = until
