"""pyserial handler for ``sim://NAME[?fault=...]``: an in-process simulated stimulator.

Writes are fed to the device model, reads return its replies as they finish crossing the
(simulated) wire, and read timeouts are measured on the simulator's clock — a ``VirtualClock``
in tests, so waiting costs no real time. RTS/DTR changes reach the model (RTS quick-fire).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import serial
from serial.serialutil import PortNotOpenError, SerialBase

from tmsctl.core.clock import Clock, SystemClock
from tmsctl.core.transport import InProcessPort

from .. import registry
from ..device import SimulatedDevice, parse_fault_plan

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12 on


class Serial(SerialBase, InProcessPort):
    """Declares ``InProcessPort``: ``Transport`` reads whole frames from it in one call."""

    clock: Clock | None = None  # set by tmsctl's transport before open()
    _jump_if_alone = None  # the clock's ``jump_if_alone`` once open, if it has one

    def open(self) -> None:
        if self.port is None:
            raise serial.SerialException("port must be configured before it can be used")
        if self.is_open:
            raise serial.SerialException("port already open")
        parts = urlsplit(self.port)
        if parts.scheme != "sim":
            raise serial.SerialException(f'expected a URL like "sim://rapid2", got {self.port!r}')
        name = (parts.netloc + parts.path).strip("/")
        # A literal '+' (a fault's +SECONDSs) is not a form-encoded space here.
        options = dict(parse_qsl(parts.query.replace("+", "%2B")))
        unknown = set(options) - {"fault"}
        if unknown:
            raise serial.SerialException(f"unknown sim:// option(s) {sorted(unknown)}; known: fault")
        instance = registry.lookup(name)
        if instance is None:
            try:
                faults = parse_fault_plan(options.get("fault", ""))
                instance = registry.create(name, clock=self.clock or SystemClock(), faults=faults)
            except Exception as exc:  # our typed errors, reported the way pyserial reports
                raise serial.SerialException(str(exc)) from exc
        elif options.get("fault"):
            raise serial.SerialException(
                f"simulator {name!r} is pre-registered: give its fault plan when creating it, not in the URL"
            )
        if self.clock is not None and self.clock is not instance.clock:
            raise serial.SerialException(f"simulator {name!r} runs on a different clock than this port")
        self.instance = instance
        self.clock = instance.clock
        # A virtual clock lets one thread step it without blocking; a real one never does.
        self._jump_if_alone = getattr(instance.clock, "jump_if_alone", None)
        self.is_open = True
        self._update_rts_state()
        self._update_dtr_state()

    def close(self) -> None:
        self.is_open = False

    def _reconfigure_port(self) -> None:
        """Baud rate and framing are not simulated on the in-process link."""

    # -- data ----------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    @property
    def in_waiting(self) -> int:
        self._check_open()
        inst = self.instance
        with inst.lock:
            return inst.device.readable_count(inst.clock.now())

    def write(self, data: Buffer) -> int:
        self._check_open()
        inst = self.instance
        payload = bytes(data)
        with inst.lock:
            inst.device.feed(payload, inst.clock.now())
        return len(payload)

    def read(self, size: int = 1) -> bytes:
        self._check_open()
        inst = self.instance
        clock = inst.clock
        timeout = self.timeout
        deadline = None if timeout is None else clock.now() + timeout
        out = bytearray()
        while len(out) < size:
            with inst.lock:
                out += inst.device.read(clock.now(), size - len(out))
                # Jump straight to the byte that completes this read when it is already on its
                # way; otherwise to the device's next event (it may be about to answer).
                upcoming = inst.device.time_when_readable(size - len(out))
            if len(out) >= size:
                break
            if deadline is not None and clock.now() >= deadline:
                break
            if upcoming is None or (deadline is not None and upcoming > deadline):
                if deadline is None:
                    if clock.is_virtual:
                        raise serial.SerialException("blocking read with no timeout: the simulator will never answer")
                    upcoming = clock.now() + 0.05
                else:
                    upcoming = deadline
            clock.sleep_until(upcoming)
        return bytes(out)

    def read_frame_timed(self, bytes_needed, deadline: float) -> tuple[bytes, bool, float | None]:
        """Read one frame whose length ``bytes_needed(received)`` reveals as bytes arrive:
        (what arrived by the deadline, complete?, when its last byte arrived).

        Equivalent to reading byte by byte with a deadline, but the frame's bytes already on
        their way are inspected (not consumed) so the clock jumps once, to the byte that
        completes the frame.
        """
        self._check_open()
        return self._read_frame(bytes_needed, deadline)[1:]

    def exchange_frame(self, frame: bytes, bytes_needed, deadline: float) -> tuple[bytes, bytes, bool, float | None]:
        """Drop unread reply bytes, send ``frame``, read the reply:
        (dropped, reply, complete?, when the reply's last byte arrived).

        The same bytes and timing as ``reset_input_buffer``, ``write`` and ``read_frame_timed``
        in turn, in one call: the path every command of a simulated session takes.
        """
        self._check_open()
        return self._read_frame(bytes_needed, deadline, send=frame)

    def _read_frame(
        self, bytes_needed, deadline: float, *, send: bytes = b""
    ) -> tuple[bytes, bytes, bool, float | None]:
        """(unread bytes dropped as ``send`` went out, the frame, complete?, its last byte's arrival)."""
        inst = self.instance
        clock, lock, step_alone = inst.clock, inst.lock, self._jump_if_alone
        stale = b""
        awaited: tuple[SimulatedDevice, int, float] | None = None  # a complete frame still arriving
        while True:
            with lock:
                if send:
                    now = clock.now()
                    inst.device.feed(send, now)  # advances the device to now first
                    stale = inst.device.take_arrived(now)
                    send = b""
                while True:
                    device = inst.device
                    now = clock.now()
                    device.advance(now)  # the device is never left behind the clock: others look at it
                    if awaited is not None and awaited[0] is device and now >= awaited[2]:
                        # Reply bytes are only ever appended and nobody else reads them: the frame
                        # we saw on its way is the one now in.
                        return stale, device.take_arrived(now, awaited[1]), True, awaited[2]
                    # The frame may be the rest of an earlier reply still on the wire, complete
                    # before a command just sent has even arrived: a reader takes it once it is in.
                    taken, last_t, complete = device.peek_frame(bytes_needed)
                    # (a complete frame has at least one byte, so its last_t is never None)
                    if complete and last_t is not None and last_t <= now:
                        return stale, device.take_arrived(now, taken), True, last_t
                    awaited = (device, taken, last_t) if complete and last_t is not None else None
                    # Complete: wake when its last byte is in. Not yet: only the device can change
                    # that, when the command has arrived or at its next timer.
                    target = last_t if complete else device.next_change_time()
                    # Alone on a virtual clock the step cannot block: take it here, under the lock,
                    # and look again; otherwise sleep with the lock released.
                    if target is None or target > deadline or step_alone is None or not step_alone(target):
                        break
            if target is None or target > deadline:
                clock.sleep_until(deadline)
                with lock:
                    device = inst.device
                    now = clock.now()
                    device.advance(now)
                    arrived = min(taken, device.readable_count(now))
                    received_at = device.time_when_readable(arrived) if arrived else None
                    raw = device.take_arrived(now, arrived)
                return stale, raw, len(raw) == taken and complete, received_at
            clock.sleep_until(target)

    def reset_input_buffer(self) -> None:
        self._check_open()
        inst = self.instance
        with inst.lock:
            inst.device.read(inst.clock.now())

    def reset_output_buffer(self) -> None:
        self._check_open()

    # -- modem lines -----------------------------------------------------------------------------------
    def _update_rts_state(self) -> None:
        if self.is_open:
            with self.instance.lock:
                self.instance.device.set_modem_lines(self.rts, self.dtr, self.instance.clock.now())

    def _update_dtr_state(self) -> None:
        self._update_rts_state()

    @property
    def cts(self) -> bool:
        return False

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
