"""The one place bytes meet a port: deadline reads, framing, a traffic tap, exclusive open.

Built on ``serial.serial_for_url(..., do_not_open=True)`` so real ports, ``socket://``,
``spy://``, ``loop://`` and our in-process ``sim://`` all work the same way. pyserial returns
partial data silently when a read times out; here every read has a deadline on the injected
clock and a short read raises ``TransportTimeout`` carrying the partial bytes.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import serial

from tmsctl.core.clock import Clock
from tmsctl.core.errors import ConnectionFailed, DeviceUnavailable, TransportTimeout

# A reply frame's length as its bytes arrive: how many more bytes the frame needs (0 when complete).
BytesNeeded = Callable[[bytes], int]


@runtime_checkable
class InProcessPort(Protocol):
    """A port whose device lives in this process, on our clock: the ``sim://`` handler.

    The one seam of the simulator fast path. Such a port reads a whole reply frame (and sends
    the command before it) in one call and one clock jump, with the same bytes at the same
    instants as the byte-by-byte path every other port takes (tests/transport/
    test_exchange_equivalence.py holds it to that). ``Transport`` decides once, when it is
    built, which path a port takes.
    """

    clock: Clock | None  # set before open(): the port measures its timeouts on it

    def read_frame_timed(self, bytes_needed: BytesNeeded, deadline: float) -> tuple[bytes, bool, float | None]:
        """(what arrived by ``deadline``, complete?, when its last byte arrived)."""
        ...

    def exchange_frame(
        self, frame: bytes, bytes_needed: BytesNeeded, deadline: float
    ) -> tuple[bytes, bytes, bool, float | None]:
        """Drop unread bytes, send ``frame``, read the reply: (dropped, reply, complete?, its last
        byte's arrival)."""
        ...


class Tap(Protocol):
    """Sees every byte in either direction: ``direction`` is "tx" (to device) or "rx"."""

    def __call__(self, direction: str, data: bytes, t: float) -> None: ...


# The driver's rule for masking secrets in the frames the host sends (a Rapid² unlock code): the
# bytes that go to the device are untouched, everything that shows or traces them gets the mask.
RedactTx = Callable[[bytes], bytes]


@runtime_checkable
class SpyFormatter(Protocol):
    """What pyserial's ``spy://`` port asks of its trace formatter (``port.formatter``)."""

    def tx(self, data: bytes) -> None: ...
    def rx(self, data: bytes) -> None: ...
    def control(self, name: str, value: str) -> None: ...


class _MaskedSpyFormatter:
    """Stands in for pyserial's spy formatter: the trace file gets host frames with secrets masked."""

    def __init__(self, inner: SpyFormatter, redact_tx: RedactTx) -> None:
        self._inner = inner
        self._redact_tx = redact_tx

    def tx(self, data: bytes) -> None:
        self._inner.tx(self._redact_tx(bytes(data)))

    def rx(self, data: bytes) -> None:
        self._inner.rx(data)

    def control(self, name: str, value: str) -> None:
        self._inner.control(name, value)


def _mask_spy_trace(port: serial.SerialBase, redact_tx: RedactTx) -> None:
    """Route a ``spy://`` port's trace through ``redact_tx``; refuse to trace what cannot be masked."""
    from serial.urlhandler import protocol_spy

    if not isinstance(port, protocol_spy.Serial):
        return
    # pyserial's spy writes every transmitted chunk with ``self.formatter.tx(data)`` (one host
    # frame per write here); no public hook exists, so the formatter object is wrapped.
    formatter = port.formatter  # set by protocol_spy.Serial's constructor (pyserial >= 3.5, as required)
    if not isinstance(formatter, SpyFormatter):
        raise ConnectionFailed(
            "this pyserial's spy:// trace cannot be masked, and it would record the unlock code",
            hint="drop +spy from the device URL, or use the pyserial version tmsctl is tested with",
        )
    # (not one of pyserial's formatter classes, but it has all they are asked for: tx, rx, control)
    port.formatter = _MaskedSpyFormatter(formatter, redact_tx)  # type: ignore[assignment]


def _ensure_sim_handler() -> None:
    # Importing the package registers the sim:// URL handler with pyserial (idempotent).
    import tmsctl.simulators  # noqa: F401


def wire_time_s(n_bytes: int, baudrate: int = 9600, bits_per_byte: int = 10) -> float:
    """Time the bytes take on an asynchronous serial line (start + 8 data + stop bits)."""
    return n_bytes * bits_per_byte / baudrate


class Transport:
    """Owns one open port. Not thread-safe by design: one controller thread owns it."""

    def __init__(
        self,
        port: serial.SerialBase,
        clock: Clock,
        *,
        tap: Tap | None = None,
        name: str = "",
        redact_tx: RedactTx | None = None,
    ) -> None:
        self._port = port
        self._in_process = port if isinstance(port, InProcessPort) else None
        self.clock = clock
        self._taps: list[Tap] = [tap] if tap else []
        self._redact_tx = redact_tx
        self.name = name or str(port.portstr)
        self._timeout: float | None = -1.0

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str,
        clock: Clock,
        *,
        settings: dict[str, Any] | None = None,
        exclusive: bool = True,
        tap: Tap | None = None,
        redact_tx: RedactTx | None = None,
    ) -> Transport:
        """Open ``url``. ``redact_tx`` masks secrets in sent frames for taps and ``spy://`` traces."""
        if url.startswith("sim://"):
            _ensure_sim_handler()
        elif clock.is_virtual and not url.startswith("loop://"):
            raise ConnectionFailed(
                f"a virtual clock can only drive in-process ports (sim://, loop://), not {url!r}",
                hint="use the system clock for real ports, pseudo-terminals and sockets",
            )
        try:
            port = serial.serial_for_url(url, do_not_open=True)
        except (ValueError, serial.SerialException) as exc:
            raise DeviceUnavailable(f"cannot use port {url!r}: {exc}") from exc
        if redact_tx is not None:
            _mask_spy_trace(port, redact_tx)
        # The driver entry's settings; pyserial's defaults (9600 8N1) for a bare port.
        for key, value in (settings or {}).items():
            setattr(port, key, value)
        port.timeout = 0
        port.write_timeout = 1.0
        # pyserial raises RTS at open by default; with a quick-fire cable that is a trigger edge.
        port.rts = False
        # ``exclusive`` is part of SerialBase since pyserial 3.3 (3.5 required): every real port takes
        # its lock, so a second program cannot hold it (open() fails instead)
        if exclusive and isinstance(port, serial.Serial):
            port.exclusive = True
        if isinstance(port, InProcessPort):
            port.clock = clock
        try:
            port.open()
        except FileNotFoundError as exc:
            raise DeviceUnavailable(f"no such port: {url}") from exc
        except (OSError, serial.SerialException) as exc:
            text = str(exc)
            if getattr(exc, "errno", None) == errno.ENOENT:
                raise DeviceUnavailable(
                    f"no such port: {url}", hint="check the port name; `tmsctl devices` lists the ports found"
                ) from exc
            if getattr(exc, "errno", None) == errno.EAGAIN or "exclusively lock" in text:
                raise ConnectionFailed(
                    f"port {url} is already held by another program",
                    hint="close the other controller (or `tmsctl sim serve`'s client) first",
                ) from exc
            raise ConnectionFailed(f"cannot open port {url}: {exc}") from exc
        return cls(port, clock, tap=tap, name=url, redact_tx=redact_tx)

    # -- taps ----------------------------------------------------------------------------------
    def add_tap(self, tap: Tap) -> None:
        self._taps.append(tap)

    def _emit(self, direction: str, data: bytes, t: float | None = None) -> None:
        if data and self._taps:
            t = self.clock.now() if t is None else t
            if direction == "tx" and self._redact_tx is not None:
                data = self._redact_tx(data)
            for tap in self._taps:
                tap(direction, data, t)

    # -- I/O -----------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (OSError, serial.SerialException) as exc:
            raise ConnectionFailed(f"writing to {self.name} failed: {exc}", hint="check the cable") from exc
        self._emit("tx", data)

    def _read_some(self, n: int, deadline: float) -> bytes:
        remaining = max(0.0, deadline - self.clock.now())
        if remaining != self._timeout:
            self._port.timeout = remaining
            self._timeout = remaining
        try:
            chunk = bytes(self._port.read(n))
        except (OSError, serial.SerialException) as exc:
            raise ConnectionFailed(f"reading from {self.name} failed: {exc}", hint="check the cable") from exc
        self._emit("rx", chunk)
        return chunk

    def read_exact(self, n: int, deadline: float) -> bytes:
        """Exactly ``n`` bytes by ``deadline`` (clock time), or TransportTimeout with the partial bytes."""
        got = bytearray()
        while len(got) < n:
            chunk = self._read_some(n - len(got), deadline)
            got += chunk
            if not chunk and self.clock.now() >= deadline:
                raise TransportTimeout(
                    f"{self.name}: expected {n} bytes, got {len(got)} before the deadline", partial=bytes(got)
                )
        return bytes(got)

    def exchange(self, frame: bytes, bytes_needed: BytesNeeded, deadline: float) -> bytes:
        """Drop unread bytes, send ``frame``, read the reply frame by ``deadline`` (see ``read_frame``).

        Bytes nobody asked for (a late reply to a timed-out command, line noise) are dropped before
        the command, so a reply can never be matched to the wrong command; the taps still see them.
        """
        in_process = self._in_process
        if in_process is None:
            self.reset_input()
            self.write(frame)
            return self.read_frame(bytes_needed, deadline)
        # The in-process simulator: the same bytes and timing in one call instead of three.
        sent_at = self.clock.now()
        try:
            stale, raw, complete, received_at = in_process.exchange_frame(frame, bytes_needed, deadline)
        except (OSError, serial.SerialException) as exc:
            raise ConnectionFailed(f"exchange with {self.name} failed: {exc}", hint="check the cable") from exc
        if self._taps:  # stamped as the three steps would have been: dropped and sent at the start
            self._emit("rx", stale, sent_at)
            self._emit("tx", frame, sent_at)
            self._emit("rx", raw, received_at)
        return raw if complete else self._complete(raw, bytes_needed)

    def _complete(self, raw: bytes, bytes_needed: BytesNeeded) -> bytes:
        if bytes_needed(raw) > 0:
            raise TransportTimeout(
                f"{self.name}: reply incomplete at the deadline ({len(raw)} bytes, "
                f"{bytes_needed(raw)} more expected)",
                partial=raw,
            )
        return raw

    def read_frame(self, bytes_needed: BytesNeeded, deadline: float) -> bytes:
        """Read one frame whose length ``bytes_needed(received_so_far)`` reveals as it arrives."""
        in_process = self._in_process
        if in_process is not None:  # the in-process simulator: same bytes, one clock jump
            try:
                raw, complete, received_at = in_process.read_frame_timed(bytes_needed, deadline)
            except (OSError, serial.SerialException) as exc:
                raise ConnectionFailed(f"reading from {self.name} failed: {exc}") from exc
            self._emit("rx", raw, received_at)
            return raw if complete else self._complete(raw, bytes_needed)
        got = bytearray()
        while (need := bytes_needed(bytes(got))) > 0:
            chunk = self._read_some(need, deadline)
            got += chunk
            if not chunk and self.clock.now() >= deadline:
                raise TransportTimeout(
                    f"{self.name}: reply incomplete at the deadline ({len(got)} bytes, {need} more expected)",
                    partial=bytes(got),
                )
        return bytes(got)

    def read_available(self) -> bytes:
        """Whatever has arrived, without waiting."""
        try:
            # every concrete pyserial port (the URL handlers' too) has in_waiting; the stubs'
            # SerialBase does not declare it
            waiting = self._port.in_waiting  # type: ignore[attr-defined]
            chunk = bytes(self._port.read(waiting)) if waiting else b""
        except (OSError, serial.SerialException) as exc:
            raise ConnectionFailed(f"reading from {self.name} failed: {exc}", hint="check the cable") from exc
        self._emit("rx", chunk)
        return chunk

    def reset_input(self) -> bytes:
        """Discard (and return, for the trace) anything unread."""
        return self.read_available()

    def set_rts(self, level: bool) -> None:
        try:
            self._port.rts = level
        except (OSError, serial.SerialException) as exc:
            raise ConnectionFailed(
                f"{self.name} cannot drive the RTS line: {exc}",
                hint="RTS quick-fire needs a real serial port with a trigger cable (not a pty or socket)",
            ) from exc

    @property
    def is_open(self) -> bool:
        return bool(self._port.is_open)

    def close(self) -> None:
        try:
            self._port.close()
        except (OSError, serial.SerialException):
            pass
