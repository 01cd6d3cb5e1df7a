"""Test helpers shipped with tmsctl, for our tests and for labs testing their own code.

``expected_exchange`` scripts the bytes a driver must send and what the device answers
(PyMeasure's idea): every write must match the next expected request exactly, every reply is
handed out in order, and leaving the block with anything unconsumed fails the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tmsctl.core.clock import Clock, VirtualClock
from tmsctl.core.transport import Transport


class ExchangeMismatch(AssertionError):
    pass


class ScriptedPort:
    """A stand-in for a pyserial port that follows a script of (sent, answered) byte pairs."""

    portstr = "scripted://"

    def __init__(self, pairs: Sequence[tuple[bytes, bytes]], clock: Clock) -> None:
        self._pairs = [(bytes(tx), bytes(rx)) for tx, rx in pairs]
        self._index = 0
        self._tx_pending = bytearray()
        self._rx = bytearray()
        self._clock = clock
        self.timeout: float | None = 0.0
        self.is_open = True
        self.rts = False

    def write(self, data: bytes) -> int:
        self._tx_pending += data
        while self._index < len(self._pairs):
            expected, answer = self._pairs[self._index]
            if not expected:
                break
            if len(self._tx_pending) < len(expected):
                if not expected.startswith(bytes(self._tx_pending)):
                    self._mismatch(expected)
                return len(data)
            if bytes(self._tx_pending[: len(expected)]) != expected:
                self._mismatch(expected)
            del self._tx_pending[: len(expected)]
            self._rx += answer
            self._index += 1
            if not self._tx_pending:
                break
        if self._tx_pending:
            raise ExchangeMismatch(f"unexpected bytes written after the script ended: {bytes(self._tx_pending)!r}")
        return len(data)

    def _mismatch(self, expected: bytes) -> None:
        raise ExchangeMismatch(
            f"exchange {self._index}: expected the driver to send {expected!r}, it sent {bytes(self._tx_pending)!r}"
        )

    def flush(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        out = bytes(self._rx[:size])
        del self._rx[:size]
        if len(out) < size and self.timeout:
            self._clock.sleep(self.timeout)  # a real port would wait out its timeout
        return out

    def close(self) -> None:
        self.is_open = False

    def unconsumed(self) -> list[tuple[bytes, bytes]]:
        return self._pairs[self._index :]


@contextmanager
def expected_exchange(
    pairs: Sequence[tuple[bytes, bytes]], clock: Clock | None = None
) -> Iterator[Transport]:
    """A transport that asserts the driver sends exactly ``pairs``' requests, in order, and all of them.

    A pair with an empty request queues its answer as unsolicited bytes arriving before the next
    request.
    """
    clock = clock or VirtualClock()
    port = ScriptedPort(pairs, clock)
    # leading unsolicited replies
    while port._index < len(port._pairs) and not port._pairs[port._index][0]:
        port._rx += port._pairs[port._index][1]
        port._index += 1
    transport = Transport(port, clock, name="scripted")  # type: ignore[arg-type]
    yield transport
    left = port.unconsumed()
    if left:
        raise ExchangeMismatch(f"{len(left)} scripted exchange(s) never happened; next: {left[0]!r}")
    if port._rx:
        raise ExchangeMismatch(f"the driver left {bytes(port._rx)!r} unread")


@contextmanager
def attached_simulator(
    profile: str, attachment: str = "sim", faults: str = "", driver: str | None = None
) -> Iterator[tuple[Any, Any, Clock]]:
    """A driver (not yet connected) on a fresh simulator, over one attachment.

    ``attachment``: ``"sim"`` (in-process, on a ``VirtualClock``), ``"pty"`` or ``"tcp"`` (a
    server thread on the system clock, as ``tmsctl sim serve`` runs it). Yields ``(driver,
    simulator instance, clock)``; the driver is closed and the simulator removed afterwards.
    ``driver`` names another driver than the profile's (to test that it refuses the unit).
    """
    from tmsctl.core.clock import SystemClock
    from tmsctl.core.registry import open_driver
    from tmsctl.simulators import registry as sims
    from tmsctl.simulators.device import parse_fault_plan

    plan = parse_fault_plan(faults)
    if attachment == "sim":
        clock: Clock = VirtualClock()
        name = f"{profile}-attached-{next(_attached_names)}"
        instance = sims.create(profile, clock=clock, faults=plan, name=name)
        try:
            opened = open_driver(f"{driver}+sim://{name}" if driver else f"sim://{name}", clock)
            yield opened, instance, clock
            opened.close()
        finally:
            sims.remove(name)
        return
    if attachment not in ("pty", "tcp"):
        raise ValueError(f"attachment must be sim, pty or tcp, not {attachment!r}")
    clock = SystemClock()
    instance = sims.create(profile, clock=clock, faults=plan)
    with serving(instance.device, attachment, clock) as address:
        driver_name = driver or instance.profile.driver
        url = f"{driver_name}://{address}" if attachment == "pty" else f"{driver_name}+socket://{address}"
        opened = open_driver(url, clock, driver_options=dict(instance.profile.driver_options))
        yield opened, instance, clock
        opened.close()


@contextmanager
def serving(
    device: Any, attachment: str = "pty", clock: Clock | None = None,
    trigger_port: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """Serve a simulated ``device`` on a pseudo-terminal (or TCP on loopback) in a thread; yields its
    address (a /dev/pts path, or HOST:PORT) and stops the server on leaving. ``trigger_port``: open
    the trigger input's side channel and pass its HOST:PORT (docs/simulators.md)."""
    import threading

    from tmsctl.core.clock import SystemClock
    from tmsctl.simulators.serve import serve_pty, serve_tcp

    clock = clock or SystemClock()
    stop = threading.Event()
    address: list[str] = []
    ready = threading.Event()

    def on_ready(where: str) -> None:
        address.append(where)
        ready.set()

    if attachment == "pty":
        serve = lambda: serve_pty(device, stop=stop, ready=on_ready, clock=clock, trigger_ready=trigger_port)  # noqa: E731
    else:
        serve = lambda: serve_tcp(  # noqa: E731
            device, host="127.0.0.1", port=0, stop=stop, ready=on_ready, clock=clock, trigger_ready=trigger_port
        )
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        if not ready.wait(5):
            raise RuntimeError(f"the {attachment} simulator did not start")
        yield address[0]
    finally:
        stop.set()
        thread.join(5)


_attached_names = itertools.count()


class DoseTruthViolation(AssertionError):
    """The record and the simulator disagree about what was delivered."""


def check_dose_truth(records: Any, session_id: str | Sequence[str], device: Any) -> None:
    """The truth invariant, for the sessions run against an in-process simulator ``device``.

    The simulator's own count of pulses lies between the pulses the records know delivered and
    those plus the uncertain ones, and every pulse the simulator fired went out at an intensity
    the record holds for one of the session's deliveries, unless a fault is on record. Raises
    ``DoseTruthViolation`` naming both sides.
    """
    ids = (session_id,) if isinstance(session_id, str) else tuple(session_id)
    details = [records.session_detail(sid) for sid in ids]
    deliveries = [d for detail in details for d in detail.deliveries]
    known = sum(d.pulses_delivered for d in deliveries)
    at_most = sum(d.pulses_at_most for d in deliveries)
    true_pulses = tuple(device.pulses)
    named = ", ".join(ids)
    if not known <= len(true_pulses) <= at_most:
        raise DoseTruthViolation(
            f"session {named}: the simulator fired {len(true_pulses)} pulses; the record says "
            f"{known} known delivered and at most {at_most}"
        )
    if any(detail.faults for detail in details):
        return
    validated = {round(d.intensity_pct_mso) for d in deliveries} | {
        round(d.second_intensity_pct_mso) for d in deliveries if d.second_intensity_pct_mso is not None
    }  # a pair's second pulse (BiStim² output B)
    session_id = named
    stray = [p for p in true_pulses if p.intensity_pct not in validated]
    if stray:
        raise DoseTruthViolation(
            f"session {session_id}: {len(stray)} pulse(s) went out at an intensity the record does not hold "
            f"(first at {stray[0].intensity_pct} %, validated {sorted(validated)}) and no fault is on record"
        )
    _check_pairs(session_id, deliveries, true_pulses)


PAIR_TIMING_TOLERANCE_S = 1e-5  # the simulators time a pair's second pulse on their own clock


def _check_pairs(session_id: str, deliveries: Sequence[Any], true_pulses: Sequence[Any]) -> None:
    """Every second pulse of a pair (output "B" in the truth log) went out as a recorded pair says:
    one ISI after a first pulse (output "A") at that pair's conditioning intensity, at its test
    intensity; and there are as many such pairs as the record knows delivered."""
    recorded = {
        (round(d.intensity_pct_mso), round(d.second_intensity_pct_mso), d.ipi_ms / 1000)
        for d in deliveries if d.second_intensity_pct_mso is not None and d.ipi_ms is not None
    }
    firsts = [p for p in true_pulses if getattr(p, "output", "A") == "A"]
    seconds = [p for p in true_pulses if getattr(p, "output", "A") == "B"]
    for second in seconds:
        matched = any(
            second.intensity_pct == test and first.intensity_pct == conditioning
            and abs(second.t - first.t - isi_s) <= PAIR_TIMING_TOLERANCE_S
            for first in firsts for conditioning, test, isi_s in recorded
        )
        if not matched:
            raise DoseTruthViolation(
                f"session {session_id}: a second pulse at {second.intensity_pct} % (t={second.t:.6f}) follows no "
                f"first pulse as a recorded pair says (recorded: conditioning %, test %, ISI s: {sorted(recorded)})"
            )
    known_pairs = sum(d.pulses_delivered // 2 for d in deliveries if d.second_intensity_pct_mso is not None)
    if len(seconds) < known_pairs:
        raise DoseTruthViolation(
            f"session {session_id}: the record knows {known_pairs} pair(s) delivered; the simulator fired "
            f"{len(seconds)} second pulse(s)"
        )


def __getattr__(name: str):
    # The conformance suite (tmsctl.lab.conformance) needs hypothesis, a test dependency: reachable
    # from here, imported only when asked for.
    if name in ("ConformanceTarget", "BUILTIN_TARGETS", "EXCHANGE_CHECKS", "run_exchange_checks",
                "stateful_machine", "run_stateful"):
        from tmsctl.lab import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module 'tmsctl.lab.testing' has no attribute {name!r}")
