"""The transport: deadline reads with partial bytes, exclusive open, traffic tap, loop://."""

from __future__ import annotations

import os
import tty

import pytest

from tmsctl.core.clock import SystemClock, VirtualClock
from tmsctl.core.errors import ConnectionFailed, DeviceUnavailable, TransportTimeout
from tmsctl.core.transport import Transport, wire_time_s


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_a_port_held_by_another_controller_is_refused(pty_pair) -> None:
    _, path = pty_pair
    first = Transport.open(path, SystemClock())
    try:
        with pytest.raises(ConnectionFailed, match="already held"):
            Transport.open(path, SystemClock())
    finally:
        first.close()
    Transport.open(path, SystemClock()).close()  # free again once the first one closed


def test_short_read_raises_with_the_partial_bytes(pty_pair) -> None:
    master, path = pty_pair
    clock = SystemClock()
    transport = Transport.open(path, clock)
    try:
        os.write(master, b"AB")
        with pytest.raises(TransportTimeout) as info:
            transport.read_exact(4, clock.now() + 0.2)
        assert info.value.partial == b"AB"
    finally:
        transport.close()


def test_the_tap_sees_both_directions() -> None:
    seen = []
    transport = Transport.open("loop://", VirtualClock(), tap=lambda d, data, t: seen.append((d, data)))
    transport.write(b"Q@n")
    assert transport.read_exact(3, 1.0) == b"Q@n"
    assert seen == [("tx", b"Q@n"), ("rx", b"Q@n")]


def test_missing_port_and_virtual_clock_on_a_real_port_are_refused(pty_pair) -> None:
    with pytest.raises(DeviceUnavailable):
        Transport.open("/dev/does-not-exist", SystemClock())
    with pytest.raises(ConnectionFailed, match="virtual clock"):
        Transport.open(pty_pair[1], VirtualClock())


def test_rts_on_a_pty_is_a_clear_error(pty_pair) -> None:
    transport = Transport.open(pty_pair[1], SystemClock())
    try:
        with pytest.raises(ConnectionFailed, match="RTS"):
            transport.set_rts(True)
    finally:
        transport.close()


def test_wire_time() -> None:
    assert wire_time_s(6) == pytest.approx(0.00625)


# -- secrets in traces (issue 15, finding 3) ------------------------------------------------------------

UNLOCK_FRAME = b"QSIMU-00000000-\x5a\xa5\x97"


def _mask_q(frame: bytes) -> bytes:
    return frame[:1] + b"*" * (len(frame) - 1) if frame[:1] == b"Q" else frame


def test_the_spy_trace_and_the_taps_get_masked_frames_and_the_device_the_real_ones(pty_pair, tmp_path) -> None:
    master, path = pty_pair
    trace = tmp_path / "trace.txt"
    seen: list[tuple[str, bytes]] = []
    transport = Transport.open(
        f"spy://{path}?file={trace}", SystemClock(), tap=lambda d, data, t: seen.append((d, data)), redact_tx=_mask_q
    )
    try:
        transport.write(UNLOCK_FRAME)
        assert os.read(master, 64) == UNLOCK_FRAME  # the unit gets its code
        transport.write(b"J@u")
    finally:
        transport.close()
    assert seen == [("tx", b"Q" + b"*" * 17), ("tx", b"J@u")]
    text = trace.read_text()
    assert "51 2A 2A 2A 2A 2A 2A 2A  2A 2A 2A 2A 2A 2A 2A 2A" in text and "4A 40 75" in text
    assert "SIMU" not in text and "53 49 4D 55" not in text


def test_without_a_rule_the_spy_trace_is_pyserials_own(pty_pair, tmp_path) -> None:
    _, path = pty_pair
    trace = tmp_path / "trace.txt"
    transport = Transport.open(f"spy://{path}?file={trace}", SystemClock())
    try:
        transport.write(b"J@u")
    finally:
        transport.close()
    assert "4A 40 75" in trace.read_text()
