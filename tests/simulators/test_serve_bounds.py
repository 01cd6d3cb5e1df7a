"""The pty and TCP simulator servers stay bounded against a hostile or careless host.

Real sockets on 127.0.0.1 only; every wait has a timeout, so a server that hangs a client fails
the test instead of hanging it.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_REFUSED
from tmsctl.cli.main import app
from tmsctl.core.clock import SystemClock
from tmsctl.core.errors import SafetyViolation
from tmsctl.simulators import registry as sims
from tmsctl.simulators.serve import INPUT_BACKLOG_BYTES, listen_address, serve_pty, serve_tcp

STATUS_QUERY = b"Q@n"  # a Magstim 200 status request; the unit answers with three bytes
STATUS_REPLY = bytes.fromhex("51 89 25")
FLOOD_BYTES = 10 * 1024 * 1024


class Served:
    def __init__(self, device: Any) -> None:
        self.device = device
        self.address: tuple[str, int] | None = None
        self.path = ""
        self.logs: list[str] = []
        self.fed = 0
        self.peak_backlog = 0
        feed = device.feed

        def counting_feed(data: bytes, now: float) -> float:
            arrival = feed(data, now)
            self.fed += len(data)
            self.peak_backlog = max(self.peak_backlog, device.host_bytes_in_flight)
            return arrival

        device.feed = counting_feed

    def logged(self, pattern: str, timeout_s: float = 3.0) -> list[re.Match[str]]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = [m for m in (re.search(pattern, line) for line in list(self.logs)) if m]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def dropped_input(self) -> int:
        return sum(int(m.group(1).replace(",", "")) for m in self.logged(r"input overrun.*dropped ([\d,]+) byte", 0))


@contextmanager
def served(kind: str = "tcp", **options: Any) -> Iterator[Served]:
    clock = SystemClock()
    instance = sims.create("m200", clock=clock)
    result = Served(instance.device)
    stop, ready = threading.Event(), threading.Event()

    def on_ready(where: str) -> None:
        if kind == "tcp":
            host, _, port = where.rpartition(":")
            result.address = (host, int(port))
        else:
            result.path = where
        ready.set()

    common: dict[str, Any] = dict(stop=stop, ready=on_ready, clock=clock, log=result.logs.append, **options)
    if kind == "tcp":
        target = lambda: serve_tcp(instance.device, host="127.0.0.1", port=0, **common)  # noqa: E731
    else:
        target = lambda: serve_pty(instance.device, **common)  # noqa: E731
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        assert ready.wait(5), "the simulator did not start"
        yield result
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive(), "the server did not stop"


def connect(server: Served) -> socket.socket:
    assert server.address is not None
    return socket.create_connection(server.address, timeout=3)


def ask(sock: socket.socket) -> bytes:
    """Send a status query; return the reply, or b"" when the server closed the connection."""
    sock.sendall(STATUS_QUERY)
    reply = b""
    while len(reply) < len(STATUS_REPLY):
        chunk = sock.recv(len(STATUS_REPLY) - len(reply))  # raises TimeoutError if the server hangs us
        if not chunk:
            return reply
        reply += chunk
    return reply


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed this connection (FIN or reset); times out if it hangs us."""
    try:
        return sock.recv(64) == b""
    except ConnectionResetError:
        return True


# -- where it listens ----------------------------------------------------------------------------


def test_a_non_loopback_address_is_refused_without_allow_remote() -> None:
    result = CliRunner().invoke(app, ["sim", "serve", "m200", "--tcp", "0.0.0.0:0"])
    assert result.exit_code == EXIT_REFUSED, result.output
    assert "refusing to listen on 0.0.0.0:0" in result.output and "loopback" in result.output
    assert "--allow-remote" in result.output and "Traceback" not in result.output
    with pytest.raises(SafetyViolation, match="loopback"):
        serve_tcp(sims.create("m200").device, host="0.0.0.0", port=0, stop=threading.Event(), ready=lambda _: None)


def test_allow_remote_serves_any_address_with_a_warning_and_loopback_names_need_no_flag() -> None:
    # resolved, never bound: the tests listen on loopback only
    _, address, warning = listen_address("0.0.0.0", 7777, allow_remote=True)
    assert address[0] == "0.0.0.0" and warning is not None and "WARNING" in warning
    assert "other computers" in warning and "authentication" in warning
    for host in ("127.0.0.1", "localhost", "127.0.0.2"):
        assert listen_address(host, 7777)[2] is None


# -- what a host can do to it --------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_ten_megabytes_of_input_keep_the_backlog_bounded_and_are_counted_as_dropped() -> None:
    with served() as server:
        with connect(server) as flooder:
            flooder.settimeout(30)
            flooder.sendall(STATUS_QUERY * (FLOOD_BYTES // len(STATUS_QUERY)) + b"Q@n"[: FLOOD_BYTES % 3])
            flooder.shutdown(socket.SHUT_WR)
            assert server.logged(r"disconnected", timeout_s=20), server.logs[-5:]
        # the server never held more than its bound of the 10 MB, and logged the rest as dropped
        assert server.peak_backlog <= INPUT_BACKLOG_BYTES
        assert server.fed + server.dropped_input() == FLOOD_BYTES
        assert server.dropped_input() > FLOOD_BYTES - 2 * INPUT_BACKLOG_BYTES
        assert server.device.host_bytes_in_flight == 0  # the flooder's backlog went with it
        # the next host gets the answer to its own query, not to the flooder's queued ones
        with connect(server) as next_host:
            assert ask(next_host) == STATUS_REPLY
            next_host.settimeout(0.3)
            with pytest.raises(TimeoutError):
                next_host.recv(64)


@pytest.mark.timeout(30)
def test_a_second_client_is_refused_at_once_while_the_first_is_served() -> None:
    with served() as server, connect(server) as first:
        assert ask(first) == STATUS_REPLY
        with connect(server) as second:
            assert closed_by_server(second)
        assert server.logged(r"refused 127\.0\.0\.1:\d+: one client at a time")
        assert ask(first) == STATUS_REPLY  # the first is still served


@pytest.mark.timeout(30)
def test_an_idle_client_is_dropped_after_the_timeout_and_the_next_one_is_served() -> None:
    with served(idle_timeout_s=0.5) as server:
        with connect(server) as idle:
            started = time.monotonic()
            assert closed_by_server(idle)
            assert 0.4 < time.monotonic() - started < 2.5
        assert server.logged(r"sent nothing for 0\.5 s: disconnected")
        with connect(server) as next_host:
            assert ask(next_host) == STATUS_REPLY


@pytest.mark.timeout(60)
def test_fifty_sequential_connections_each_get_an_answer_or_a_clean_refusal() -> None:
    answered = refused = 0
    with served() as server:
        for _ in range(50):
            with connect(server) as host:
                reply = ask(host)  # a hang raises TimeoutError after 3 s and fails the test
                if reply == STATUS_REPLY:
                    answered += 1
                else:
                    assert reply == b"", reply
                    refused += 1
    assert answered + refused == 50
    assert answered >= 45, f"{refused} of 50 sequential connections were refused"


@pytest.mark.timeout(30)
def test_fifty_simultaneous_connections_one_is_served_and_none_hangs() -> None:
    with served() as server:
        hosts = [connect(server) for _ in range(50)]
        try:
            for host in hosts:
                host.setblocking(False)
                host.send(STATUS_QUERY)
            replies = {host: b"" for host in hosts}
            ended: set[socket.socket] = set()
            deadline = time.monotonic() + 10
            def settled() -> bool:
                return len(ended) == len(hosts) - 1 and STATUS_REPLY in replies.values()

            while not settled() and time.monotonic() < deadline:
                waiting = [h for h in hosts if h not in ended]
                for host in select.select(waiting, [], [], 0.2)[0]:
                    try:
                        chunk = host.recv(64)
                    except ConnectionResetError:
                        chunk = b""
                    if not chunk:
                        ended.add(host)
                    replies[host] += chunk
            served_hosts = [h for h in hosts if replies[h] == STATUS_REPLY]
            assert len(served_hosts) == 1 and len(ended) == 49, (len(served_hosts), len(ended))
        finally:
            for host in hosts:
                host.close()


@pytest.mark.timeout(60)
def test_the_pty_server_keeps_its_input_backlog_bounded() -> None:
    with served("pty") as server:
        fd = os.open(server.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(fd)
            chunk, sent, deadline = STATUS_QUERY * 1000, 0, time.monotonic() + 20
            while sent < 1024 * 1024 and time.monotonic() < deadline:
                if select.select([], [fd], [], 0.2)[1]:
                    sent += os.write(fd, chunk)
                while select.select([fd], [], [], 0)[0]:
                    os.read(fd, 65536)  # keep the replies flowing
            assert sent >= 1024 * 1024
            assert server.logged(r"input overrun.*dropped", timeout_s=5)
        finally:
            os.close(fd)
        assert server.peak_backlog <= INPUT_BACKLOG_BYTES
