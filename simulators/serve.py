"""Serve a simulated stimulator to other programs: on a pseudo-terminal or a loopback TCP port.

The same sans-I/O device model as ``sim://``, run on the system clock: bytes read from the
port are fed to the model, its replies are written back when they would have finished crossing
a 9600-baud line. Any program that speaks the stimulator's published protocol can open the pty
path (or connect to the TCP address) as if it were the device.

Both servers are bounded like the hardware they stand in for. The TCP server listens on loopback
only unless told otherwise; it serves one host at a time, refuses others at once and lets a
silent host go after an idle timeout. Neither lets a host that sends faster than the line
carries grow its memory: like a real UART's receive buffer, the input backlog has a fixed size
and what overflows it is dropped (and counted in the log).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import select
import socket
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tmsctl.core.clock import Clock, SystemClock
from tmsctl.core.errors import InvalidArgument, SafetyViolation

from .device import SimulatedDevice

_POLL_S = 0.2  # longest sleep between checks of the stop flag

# Host bytes the simulated device may have on its way in (fed, not yet arrived at 9600 baud).
# 4 KiB is what Linux's own tty line discipline buffers (N_TTY_BUF_SIZE) before it drops input;
# it is 4.3 s of a 9600-baud line, and every host frame of the simulated protocols is well under
# 100 bytes with one command in flight at a time, so only a host that floods the line loses bytes.
INPUT_BACKLOG_BYTES = 4096

# A connected TCP host that sends nothing for this long is let go so another can connect. Every
# driver sends a keep-alive at least every 0.5 s while it holds a unit (the strictest unit drops
# remote control after 10 s without one), so a live controller never comes near it; a forgotten
# terminal frees the simulator within a minute.
IDLE_TIMEOUT_S = 60.0


class StatusFile:
    """The simulator's own account (pulses, state, and the truth log: every discharge with its
    instant, output and power), rewritten atomically whenever it changes, so another process — a
    test, a lab's monitor — can compare it with what the controller recorded.

    ``truth`` rows: ``{"t": seconds since the simulator started, "output": "A"/"B",
    "power_pct": power it fired at, "source": "serial"/"rts"/"train"/"ttl"/"extra"}``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: tuple[object, ...] | None = None
        self._truth_rows: list[str] = []  # each pulse encoded once: the log only grows

    def update(self, device: SimulatedDevice) -> None:
        interlocks = getattr(device, "interlocks", [])
        state = {
            "pulses": device.pulse_count,
            "armed": bool(getattr(device, "armed", False) or getattr(device, "ready", False)),
            "remote": bool(getattr(device, "remote", False)),
            "faults": [what for _, what in device.fault_log],
            "interlocks": [what for _, what in interlocks],
        }
        key = (state["pulses"], state["armed"], state["remote"], len(device.fault_log), len(interlocks))
        if key == self._last:
            return
        self._last = key
        rows, pulses = self._truth_rows, device.pulses
        for pulse in pulses[len(rows) :]:
            rows.append(json.dumps(
                {"t": pulse.t - device.started_at, "output": pulse.output, "power_pct": pulse.intensity_pct,
                 "source": pulse.source}
            ))
        text = json.dumps(state)[:-1] + ', "truth": [' + ", ".join(rows) + "]}"
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)


class _Overrun:
    """Bytes dropped in a row; the count is logged once when the overrun ends (a server turn
    without a drop), not once per chunk."""

    def __init__(self, what: str, log: Callable[[str], None]) -> None:
        self.what = what
        self.log = log
        self.total = 0
        self._running = 0
        self._this_turn = False

    def dropped(self, count: int) -> None:
        self._running += count
        self.total += count
        self._this_turn = True

    def turn_over(self) -> None:
        if not self._this_turn:
            self.end()
        self._this_turn = False

    def end(self) -> None:
        if self._running:
            self.log(f"{self.what}: dropped {self._running:,} byte(s)")
            self._running = 0


TRIGGER_HIGH = b"1"  # the trigger input's side channel: one byte per level change
TRIGGER_LOW = b"0"


class TriggerPort:
    """The served unit's trigger input, as a side channel: a loopback TCP port where each byte sets
    the line's level, ``1`` high and ``0`` low (a rising edge fires an armed, charged unit, as a TTL
    on its trigger input does). A pty carries no modem lines and a socket carries none at all, so a
    lab's trigger box (or a test standing in for it) drives the input here (docs/simulators.md).
    One connection at a time; other bytes are ignored and logged."""

    def __init__(self, device: SimulatedDevice, clock: Clock, log: Callable[[str], None]) -> None:
        self.device = device
        self.clock = clock
        self.log = log
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=4)
        self.listener.setblocking(False)
        self.conn: socket.socket | None = None

    @property
    def address(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"{host}:{port}"

    def fds(self) -> list[Any]:
        return [self.listener] if self.conn is None else [self.listener, self.conn]

    def serve(self, readable: list[Any]) -> None:
        if self.listener in readable:
            try:
                conn, peer = self.listener.accept()
            except (BlockingIOError, ConnectionAbortedError):
                conn = None
            if conn is not None and self.conn is None:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.conn = conn
                self.log(f"trigger input connected from {_peer_name(peer)}")
            elif conn is not None:
                conn.close()
        if self.conn is not None and self.conn in readable:
            try:
                data = self.conn.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.conn.close()
                self.conn = None
                self.log("trigger input disconnected")
                return
            for byte in data:
                level = bytes([byte])
                if level in (TRIGGER_HIGH, TRIGGER_LOW):
                    self.device.set_trigger_input(level == TRIGGER_HIGH, self.clock.now())
                else:
                    self.log(f"trigger input: ignored byte 0x{byte:02X} (send '1' or '0')")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


class _Server:
    def __init__(
        self,
        device: SimulatedDevice,
        clock: Clock,
        log: Callable[[str], None],
        status: StatusFile | None = None,
        input_backlog_bytes: int = INPUT_BACKLOG_BYTES,
    ):
        if input_backlog_bytes < 1:
            raise InvalidArgument(f"the input backlog must hold at least one byte, not {input_backlog_bytes}")
        self.device = device
        self.clock = clock
        self.log = log
        self.status = status
        self.input_backlog_bytes = input_backlog_bytes
        self.input_overrun = _Overrun(
            f"input overrun (the host sent faster than the line carries; the backlog holds "
            f"{input_backlog_bytes:,} bytes)",
            log,
        )
        self.output_overrun = _Overrun("output overrun (the host is not reading the replies)", log)
        self._logged_faults = 0
        self.trigger: TriggerPort | None = None

    def open_trigger_port(self, ready: Callable[[str], None] | None) -> None:
        if ready is not None:
            self.trigger = TriggerPort(self.device, self.clock, self.log)
            ready(self.trigger.address)

    def wait(self, fds: list[Any], deadline: float | None = None) -> list[Any]:
        """Wait for input, the next device event or ``deadline``, whichever comes first; serves the
        trigger input's side channel (if open) on the way."""
        now = self.clock.now()
        nxt = self.device.next_event_time()
        timeout = _POLL_S if nxt is None else min(_POLL_S, max(0.0, nxt - now))
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - now))
        trigger = self.trigger
        readable = select.select(fds + (trigger.fds() if trigger else []), [], [], timeout)[0]
        if trigger is not None:
            trigger.serve(readable)
        return readable

    def close_trigger_port(self) -> None:
        if self.trigger is not None:
            self.trigger.close()

    def take_input(self, data: bytes) -> None:
        """Feed what fits in the input backlog; drop (and count) the rest, as a full UART does."""
        now = self.clock.now()
        self.device.advance(now)
        room = max(0, self.input_backlog_bytes - self.device.host_bytes_in_flight)
        if len(data) > room:
            self.input_overrun.dropped(len(data) - room)
            data = data[:room]
        if data:
            self.device.feed(data, now)

    def deliver(self, write: Callable[[bytes], int] | None) -> None:
        """Send the replies due by now (``write`` returns how many bytes it took; None: no host)."""
        out = self.device.read(self.clock.now())
        if out and write is not None:
            sent = write(out)
            if sent < len(out):
                self.output_overrun.dropped(len(out) - sent)
        self.input_overrun.turn_over()
        self.output_overrun.turn_over()
        self._report()
        if self.status is not None:
            self.status.update(self.device)

    def hang_up(self) -> int:
        """The host left: its bytes still on the way and its unread replies go; returns how many."""
        lost = self.device.host_bytes_in_flight + self.device.unread_reply_bytes
        self.device.hang_up(self.clock.now())
        self.input_overrun.end()
        self.output_overrun.end()
        return lost

    def _report(self) -> None:
        log = self.device.fault_log
        while self._logged_faults < len(log):
            t, what = log[self._logged_faults]
            self.log(f"[{t - self.device.started_at:9.3f} s] {what}")
            self._logged_faults += 1


def open_pty(link: Path | None = None) -> tuple[int, int, str]:
    """A raw pty pair; we keep the slave open so the master survives clients coming and going."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    if link is not None:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path)
    return master, slave, path


def serve_pty(
    device: SimulatedDevice,
    *,
    stop: threading.Event,
    ready: Callable[[str], None],
    clock: Clock | None = None,
    link: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
    status: StatusFile | None = None,
    input_backlog_bytes: int = INPUT_BACKLOG_BYTES,
    trigger_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve on a pseudo-terminal until ``stop`` is set. A pty has one client by nature.

    The master is non-blocking: a client that stops reading loses replies (counted in the log)
    instead of stalling the simulator, as a real unit's transmitter never waits for the host.
    ``trigger_ready``: open the trigger input's side channel (``TriggerPort``) and pass its address.
    """
    master, slave, path = open_pty(link)
    os.set_blocking(master, False)
    server = _Server(device, clock or SystemClock(), log, status, input_backlog_bytes)
    server.open_trigger_port(trigger_ready)
    ready(path)

    def recv() -> bytes:
        try:
            return os.read(master, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:  # EIO when no client holds the slave (we hold one, but be safe)
            if exc.errno == errno.EIO:
                return b""
            raise

    def write(out: bytes) -> int:
        try:
            return os.write(master, out)
        except BlockingIOError:
            return 0

    try:
        while not stop.is_set():
            if server.wait([master]):
                data = recv()
                if data:
                    server.take_input(data)
            server.deliver(write)
    finally:
        server.input_overrun.end()
        server.output_overrun.end()
        server.close_trigger_port()
        os.close(master)
        os.close(slave)
        if link is not None and link.is_symlink():
            link.unlink()


def listen_address(
    host: str, port: int, *, allow_remote: bool = False
) -> tuple[socket.AddressFamily, tuple[Any, ...], str | None]:
    """Where to listen: (address family, socket address, warning or None).

    Loopback only, unless ``allow_remote``: a simulated stimulator has no authentication, so any
    host that reaches the port could drive it. With ``allow_remote`` a non-loopback address is
    served and the warning says so; without it, it is refused.
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidArgument(
            f"cannot listen on {host}:{port}: the host name does not resolve ({exc})",
            hint="give an address such as 127.0.0.1",
        ) from None
    ip = ipaddress.ip_address(str(address[0]).split("%")[0])
    shown = f"{host or ip}:{port}"
    if ip.is_loopback:
        return family, address, None
    if not allow_remote:
        raise SafetyViolation(
            f"refusing to listen on {shown} ({ip}): the simulator serves this computer only "
            "(loopback addresses), since anyone who can reach its port can drive it",
            hint="listen on 127.0.0.1 (the default when HOST is left out); to let other computers "
            "connect on purpose, add --allow-remote",
        )
    return family, address, (
        f"WARNING: listening on {shown} ({ip}), reachable from other computers (--allow-remote): "
        "anyone who can reach this port can drive the simulator, without any authentication"
    )


class _Client:
    """The one connected host: a non-blocking socket and when it last sent anything."""

    def __init__(self, conn: socket.socket, peer: Any, now: float) -> None:
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = conn
        self.name = _peer_name(peer)
        self.heard_at = now

    def recv(self) -> bytes | None:
        """What arrived; b"" when the host has gone, None when there was nothing after all."""
        try:
            return self.conn.recv(4096)
        except BlockingIOError:
            return None
        except OSError:  # reset by the peer, or the like: it has gone
            return b""

    def send(self, out: bytes) -> int:
        try:
            return self.conn.send(out)
        except BlockingIOError:
            return 0
        except OSError:
            return len(out)  # the host has gone: its next read (by us) says so and ends it


def _peer_name(peer: Any) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)


def serve_tcp(
    device: SimulatedDevice,
    *,
    host: str,
    port: int,
    stop: threading.Event,
    ready: Callable[[str], None],
    clock: Clock | None = None,
    log: Callable[[str], None] = lambda _: None,
    status: StatusFile | None = None,
    allow_remote: bool = False,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    input_backlog_bytes: int = INPUT_BACKLOG_BYTES,
    trigger_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve on TCP until ``stop`` is set: one host at a time, like the device's one serial cable.

    ``trigger_ready``: open the trigger input's side channel (``TriggerPort``) and pass its address.

    * Loopback addresses only, unless ``allow_remote`` (then a warning is logged); see
      ``listen_address``.
    * A host that connects while another is served is accepted and closed at once, without a
      byte (a device speaks only its protocol), and logged; it is never left waiting.
    * A host that sends nothing for ``idle_timeout_s`` is disconnected so the next can connect.
    * When a host leaves (or is let go), the bytes it sent that the device has not yet read and the
      replies it has not read are discarded: the next host never gets answers to another's commands.
    * The device keeps its state across connections, as a real unit does when a new host is
      plugged into the same cable: a unit left armed is still armed (and its own keep-alive rules
      disarm it, as they would on the real line).
    """
    if not idle_timeout_s > 0:
        raise InvalidArgument(f"the idle timeout must be positive, not {idle_timeout_s!r} s")
    clock = clock or SystemClock()
    server = _Server(device, clock, log, status, input_backlog_bytes)
    family, address, warning = listen_address(host, port, allow_remote=allow_remote)
    client: _Client | None = None

    def let_go(reason: str) -> None:
        nonlocal client
        assert client is not None
        lost = server.hang_up()
        client.conn.close()
        log(f"client {client.name} {reason}" + (f"; discarded {lost:,} byte(s) of its exchange" if lost else ""))
        client = None

    with socket.create_server(address, family=family, backlog=64) as listener:
        listener.setblocking(False)
        bound_host, bound_port = listener.getsockname()[:2]
        if warning:
            log(warning)
        server.open_trigger_port(trigger_ready)
        ready(f"{bound_host}:{bound_port}")
        try:
            while not stop.is_set():
                if client is None:
                    readable = server.wait([listener])
                else:
                    readable = server.wait([client.conn, listener], client.heard_at + idle_timeout_s)
                if client is not None and client.conn in readable:
                    data = client.recv()
                    if data:
                        client.heard_at = clock.now()
                        server.take_input(data)
                    elif data is not None:
                        let_go("disconnected")
                if listener in readable:
                    try:
                        conn, peer = listener.accept()
                    except (BlockingIOError, ConnectionAbortedError):
                        conn = None  # it gave up before we took it
                    if conn is not None and client is None:
                        client = _Client(conn, peer, clock.now())
                        log(f"client connected from {client.name}")
                    elif conn is not None and client is not None:
                        conn.close()
                        log(f"refused {_peer_name(peer)}: one client at a time and {client.name} is connected")
                if client is not None and clock.now() - client.heard_at >= idle_timeout_s:
                    let_go(f"sent nothing for {idle_timeout_s:g} s: disconnected so another host can connect")
                server.deliver(client.send if client is not None else None)
        finally:
            server.close_trigger_port()
            if client is not None:
                let_go("disconnected: the simulator is stopping")
