"""The in-process shortcuts (``Transport.exchange`` → the sim port's ``exchange_frame`` for a Magstim,
``read_frame`` → ``read_frame_timed`` for a MagPro) against the path every other port takes (drop
stale bytes, write, read byte by byte with a deadline): the same bytes on the wire at the same
instants, the same replies and errors, the same pulses at the unit."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import TmsError
from tmsctl.core.registry import open_driver
from tmsctl.core.transport import InProcessPort, Transport
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import parse_fault_plan

_names = itertools.count()


class ByteByBytePort:
    """The simulator's port as the transport sees any other pyserial port: no whole-frame calls."""

    _HIDDEN = ("exchange_frame", "read_frame_timed")

    def __init__(self, port: Any) -> None:
        object.__setattr__(self, "_port", port)

    def __getattr__(self, name: str) -> Any:
        if name in self._HIDDEN:
            raise AttributeError(name)
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._port, name, value)


@contextmanager
def _another_participant(clock: VirtualClock) -> Iterator[None]:
    """A second thread on the clock, idle until the end: the port can no longer step the clock
    inside an exchange and must sleep around each wait."""
    joined, done = threading.Event(), clock.event()

    def idle() -> None:
        with clock.participant():
            joined.set()
            clock.wait(done, None)

    thread = threading.Thread(target=idle, daemon=True)
    thread.start()
    joined.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join(10)


def _run(
    profile: str, script: list[tuple[str, Any]], faults: str, *, shortcut: bool, shared_clock: bool = False
) -> tuple[list, list, list, float]:
    clock = VirtualClock()
    name = f"equivalence-{next(_names)}"
    sim = sims.create(profile, clock=clock, faults=parse_fault_plan(faults), name=name)
    trace: list[tuple[str, bytes, float]] = []
    try:
        if shared_clock:
            with _another_participant(clock):
                return _drive(sim, clock, name, trace, script, shortcut)
        return _drive(sim, clock, name, trace, script, shortcut)
    finally:
        sims.remove(name)


def _drive(
    sim: Any, clock: VirtualClock, name: str, trace: list, script: list[tuple[str, Any]], shortcut: bool
) -> tuple[list, list, list, float]:
    def tap(d, data, t):
        return trace.append((d, bytes(data), t))
    driver = open_driver(f"sim://{name}", clock, tap=tap)
    assert isinstance(driver.transport._port, InProcessPort)
    if not shortcut:  # the same open port, behind a transport that sees an ordinary port
        plain = ByteByBytePort(driver.transport._port)
        assert not isinstance(plain, InProcessPort)
        old = driver.transport
        driver.transport = Transport(plain, clock, tap=tap, name=old.name, redact_tx=old._redact_tx)
    outcomes: list[str] = []
    for op, arg in [("connect", None), *script]:
        try:
            if op == "sleep":
                clock.sleep(arg)
                result: object = None
            elif op == "set_intensity":
                result = driver.set_intensity(arg)
            elif op == "set_train":
                result = driver.set_train(10.0, arg)
            else:
                result = getattr(driver, op)()
            outcomes.append(f"{op}: {result!r}")
        except TmsError as exc:
            outcomes.append(f"{op}: {type(exc).__name__}: {exc}")
    pulses = [(p.t, p.intensity_pct, p.source) for p in sim.device.pulses]
    return outcomes, _merged(trace), pulses + sim.device.fault_log, clock.now()


def _merged(trace: list[tuple[str, bytes, float]]) -> list[tuple[str, bytes, float]]:
    """Consecutive chunks in one direction as one (a byte-by-byte reader sees a reply in pieces),
    stamped with the last piece's instant: when the whole of it had arrived."""
    merged: list[tuple[str, bytes, float]] = []
    for direction, data, t in trace:
        if merged and merged[-1][0] == direction:
            merged[-1] = (direction, merged[-1][1] + data, t)
        else:
            merged.append((direction, data, t))
    return merged


operations = st.one_of(
    st.tuples(st.sampled_from(["keepalive", "status", "arm", "fire", "disarm", "wait_ready", "set_single_pulse_mode"]),
              st.none()),
    st.tuples(st.just("set_intensity"), st.integers(20, 90)),
    st.tuples(st.just("set_train"), st.integers(2, 20)),
    st.tuples(st.just("sleep"), st.sampled_from([0.001, 0.05, 0.4, 0.9, 1.5, 12.0])),
)
fault_plans = st.sampled_from(
    ["", "no_reply@cmd4", "garbled_byte@cmd5", "bad_checksum@cmd3", "stall@cmd6+0.5s", "stall@2s",
     "coil_unplugged@3s", "over_temperature@1s", "device_error@cmd7"]
)


@settings(deadline=None)
@given(
    profile=st.sampled_from(["rapid2", "magpro-x100"]), script=st.lists(operations, max_size=14), faults=fault_plans,
    shared_clock=st.booleans(),
)
# The rest of a garbled reply (its status byte read as a refusal marker, so the reader stopped
# three bytes in) is still on the wire when the next command goes out, and completes a frame
# before that command has arrived: a reader takes it then, not when the command is through.
@example(profile="rapid2", script=[("sleep", 12.0), ("keepalive", None), ("set_intensity", 20)],
         faults="garbled_byte@cmd5", shared_clock=False)
@example(profile="rapid2", script=[("sleep", 12.0), ("keepalive", None), ("set_intensity", 20)],
         faults="garbled_byte@cmd5", shared_clock=True)
def test_the_shortcut_sends_reads_and_times_exactly_what_the_byte_path_does(profile, script, faults, shared_clock) -> None:
    # Alone on the clock the port serves an exchange in one pass; sharing it, it sleeps around
    # each wait. Both must be indistinguishable from the byte-by-byte path.
    fast = _run(profile, script, faults, shortcut=True, shared_clock=shared_clock)
    slow = _run(profile, script, faults, shortcut=False)
    assert fast[0] == slow[0]  # every result and every error, word for word
    assert [(d, data) for d, data, _ in fast[1]] == [(d, data) for d, data, _ in slow[1]]
    for (direction, _, t_fast), (_, _, t_slow) in zip(fast[1], slow[1], strict=True):
        if direction == "tx":
            assert abs(t_fast - t_slow) < 1e-9  # sent at the same instants
        else:
            # Received bytes are stamped when their last byte arrived. A blocking reader stamps
            # them when its read returned: the same instant for a whole frame, but the deadline
            # for a frame cut short, which is never earlier.
            assert t_fast <= t_slow + 1e-9
    assert fast[2] == slow[2]  # the unit fired the same pulses and logged the same faults
    assert abs(fast[3] - slow[3]) < 1e-9
