"""Serve a simulated stimulator to other programs: on a pseudo-terminal or a loopback TCP port.

The same sans-I/O device model as ``sim://``, run on the system clock: bytes read from the
port are fed to the model, its replies are written back when they would have finished crossing
a 9600-baud line. Any program that speaks the stimulator's published protocol can open the pty
path (or connect to the TCP address) as if it were the device.
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import threading
import tty
from collections.abc import Callable
from pathlib import Path

from tmsctl.clock import Clock, SystemClock

from .device import SimulatedDevice

_POLL_S = 0.2  # longest sleep between checks of the stop flag


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


class _Server:
    def __init__(
        self,
        device: SimulatedDevice,
        clock: Clock,
        stop: threading.Event,
        log: Callable[[str], None],
        status: StatusFile | None = None,
    ):
        self.device = device
        self.clock = clock
        self.stop = stop
        self.log = log
        self.status = status
        self._logged_faults = 0

    def _timeout(self) -> float:
        nxt = self.device.next_event_time()
        if nxt is None:
            return _POLL_S
        return min(_POLL_S, max(0.0, nxt - self.clock.now()))

    def _report(self) -> None:
        log = self.device.fault_log
        while self._logged_faults < len(log):
            t, what = log[self._logged_faults]
            self.log(f"[{t - self.device.started_at:9.3f} s] {what}")
            self._logged_faults += 1

    def pump(self, read_fd: int | None, write: Callable[[bytes], None], recv: Callable[[], bytes]) -> bool:
        """One turn: wait for input or the next device event, feed, send due replies.

        Returns False when the peer has gone away.
        """
        readable = select.select([read_fd], [], [], self._timeout())[0] if read_fd is not None else []
        alive = True
        if readable:
            data = recv()
            if data:
                self.device.feed(data, self.clock.now())
            else:
                alive = False
        out = self.device.read(self.clock.now())
        if out and alive:
            write(out)
        self._report()
        if self.status is not None:
            self.status.update(self.device)
        return alive


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
) -> None:
    master, slave, path = open_pty(link)
    server = _Server(device, clock or SystemClock(), stop, log, status)
    ready(path)

    def recv() -> bytes:
        try:
            return os.read(master, 4096)
        except OSError as exc:  # EIO when no client holds the slave (we hold one, but be safe)
            if exc.errno == errno.EIO:
                return b""
            raise

    try:
        while not stop.is_set():
            server.pump(master, lambda out: os.write(master, out), recv)
    finally:
        os.close(master)
        os.close(slave)
        if link is not None and link.is_symlink():
            link.unlink()


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
) -> None:
    """One client at a time; the device keeps its state across connections like a real unit."""
    server = _Server(device, clock or SystemClock(), stop, log, status)
    with socket.create_server((host, port)) as listener:
        listener.settimeout(_POLL_S)
        bound_host, bound_port = listener.getsockname()[:2]
        ready(f"{bound_host}:{bound_port}")
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                server.pump(None, lambda out: None, lambda: b"")
                continue
            log(f"client connected from {peer[0]}:{peer[1]}")
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

                def recv() -> bytes:
                    try:
                        return conn.recv(4096)
                    except ConnectionError:
                        return b""

                def send(out: bytes) -> None:
                    try:
                        conn.sendall(out)
                    except ConnectionError:
                        pass

                while not stop.is_set() and server.pump(conn.fileno(), send, recv):
                    pass
            log("client disconnected")
