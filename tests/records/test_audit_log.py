"""The per-session JSON-lines audit log and the console renderer."""

from __future__ import annotations

import io
import json
import math
import os
import stat
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from tmsctl.core.clock import VirtualClock
from tmsctl.session import audit
from tmsctl.session.audit import (
    AuditLogError,
    SessionAuditLog,
    close_session_logger,
    make_console_logger,
    make_session_logger,
    read_audit_log,
    session_log_path,
)


class Colour(Enum):
    RED = "red"


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return session_log_path(tmp_path / "logs", "K7M2-9QXD")


def test_each_event_is_one_json_line_with_the_fixed_fields(log_path: Path, clock: VirtualClock) -> None:
    clock.advance(90.5)
    with SessionAuditLog.open(log_path, session_id="K7M2-9QXD", simulated=True, clock=clock) as log:
        log.logger.info("train_finished", index=3, pulses_delivered=40, t_mono_s=90.25)
        log.logger.bind(train=4).debug("keepalive", detail="line one\nline two")
    lines = log_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first)[:6] == ["t_wall", "t_mono_s", "level", "event", "session_id", "simulated"]
    assert first == {
        "t_wall": "2026-01-01T00:01:30.500000+00:00",
        "t_mono_s": 90.25,
        "level": "info",
        "event": "train_finished",
        "session_id": "K7M2-9QXD",
        "simulated": True,
        "index": 3,
        "pulses_delivered": 40,
    }
    second = json.loads(lines[1])
    assert (second["level"], second["train"], second["detail"]) == ("debug", 4, "line one\nline two")
    assert datetime.fromisoformat(second["t_wall"]).tzinfo is not None


def test_session_and_simulated_flag_cannot_be_rebound(log_path: Path, clock: VirtualClock) -> None:
    with SessionAuditLog.open(log_path, session_id="K7M2-9QXD", simulated=True, clock=clock) as log:
        log.logger.bind(simulated=False).info("train_finished", session_id="OTHER")
    (event,) = read_audit_log(log_path)
    assert (event["session_id"], event["simulated"]) == ("K7M2-9QXD", True)
    assert (event["session_id_claimed"], event["simulated_claimed"]) == ("OTHER", False)


def test_the_monotonic_offset_can_come_from_the_clock(log_path: Path, clock: VirtualClock) -> None:
    clock.advance(100.0)
    log = make_session_logger(log_path, session_id="S", simulated=False, clock=clock, monotonic_origin_s=40.0)
    log.info("a")
    log.info("b", t_mono_s=1.0)  # the caller's value wins
    close_session_logger(log)
    assert [e["t_mono_s"] for e in read_audit_log(log_path)] == [60.0, 1.0]
    assert read_audit_log(log_path)[0]["simulated"] is False


def test_durable_events_and_faults_are_fsynced(
    log_path: Path, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = make_session_logger(log_path, session_id="S", simulated=True, clock=clock)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(audit.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log.info("keepalive")
    assert synced == []
    log.info("train_finished", index=0, durable=True)
    assert len(synced) == 1
    log.warning("coil_hot", celsius=39.5)
    log.error("fault", code="keepalive_missed")
    assert len(synced) == 3
    close_session_logger(log)
    assert "durable" not in read_audit_log(log_path)[1]


def test_every_line_is_on_disk_as_soon_as_it_is_logged(log_path: Path, clock: VirtualClock) -> None:
    log = make_session_logger(log_path, session_id="S", simulated=True, clock=clock)
    log.info("one")
    assert [e["event"] for e in read_audit_log(log_path)] == ["one"]  # no user-space buffer
    close_session_logger(log)


def test_the_log_is_private_and_appended_to(log_path: Path, clock: VirtualClock) -> None:
    for event in ("first run", "after resume"):
        with SessionAuditLog.open(log_path, session_id="S", simulated=True, clock=clock) as log:
            log.logger.info(event)
    assert stat.S_IMODE(os.stat(log_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(log_path.parent).st_mode) == 0o700
    assert [e["event"] for e in read_audit_log(log_path)] == ["first run", "after resume"]


def test_values_json_cannot_hold_are_written_readably(log_path: Path, clock: VirtualClock) -> None:
    with SessionAuditLog.open(log_path, session_id="S", simulated=True, clock=clock) as log:
        log.logger.info(
            "odd",
            when=datetime(2026, 1, 1, 12, tzinfo=UTC),
            colour=Colour.RED,
            raw=b"\x01\xfe",
            path=Path("/dev/ttyUSB0"),
            ratio=math.nan,
            model="Rapid²",
        )
    (event,) = read_audit_log(log_path)
    assert event["when"] == "2026-01-01T12:00:00.000000+00:00"
    assert (event["colour"], event["raw"], event["path"], event["ratio"], event["model"]) == (
        "red", "01fe", "/dev/ttyUSB0", "nan", "Rapid²",
    )


def test_exceptions_are_logged_with_their_traceback(log_path: Path, clock: VirtualClock) -> None:
    with SessionAuditLog.open(log_path, session_id="S", simulated=True, clock=clock) as log:
        try:
            raise RuntimeError("device stopped answering")
        except RuntimeError:
            log.logger.exception("fault")
    (event,) = read_audit_log(log_path)
    assert event["level"] == "error"
    assert "RuntimeError: device stopped answering" in event["exception"]


def test_a_torn_last_line_is_skipped_but_damage_elsewhere_is_reported(
    log_path: Path, clock: VirtualClock
) -> None:
    with SessionAuditLog.open(log_path, session_id="S", simulated=True, clock=clock) as log:
        log.logger.info("one")
        log.logger.info("two")
    with open(log_path, "ab") as handle:
        handle.write(b'{"event": "thr')  # what a killed process leaves behind
    assert [e["event"] for e in read_audit_log(log_path)] == ["one", "two"]
    text = log_path.read_text(encoding="utf-8").splitlines()
    log_path.write_text(text[0] + "\nnot json\n" + text[1] + "\n", encoding="utf-8")
    with pytest.raises(AuditLogError, match=r":2: not a JSON event"):
        read_audit_log(log_path)


def test_writing_after_close_is_an_error_not_a_silent_loss(log_path: Path, clock: VirtualClock) -> None:
    log = make_session_logger(log_path, session_id="S", simulated=True, clock=clock)
    close_session_logger(log)
    close_session_logger(log)  # idempotent
    with pytest.raises(AuditLogError, match="closed"):
        log.info("late")


def test_an_unwritable_location_is_a_clear_error(tmp_path: Path, clock: VirtualClock) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(AuditLogError, match="cannot open the audit log"):
        make_session_logger(tmp_path / "file" / "s.jsonl", session_id="S", simulated=True, clock=clock)


def test_close_session_logger_takes_only_session_loggers(clock: VirtualClock) -> None:
    with pytest.raises(TypeError):
        close_session_logger(make_console_logger(io.StringIO(), clock=clock))


def test_console_renderer_is_readable_and_plain(clock: VirtualClock) -> None:
    stream = io.StringIO()
    clock.advance(3723.25)
    log = make_console_logger(stream, clock=clock, session_id="K7M2-9QXD")
    log.info("train_started", index=3, intensity_pct_mso=55)
    line = stream.getvalue().strip()
    assert line.startswith("01:02:03.250Z [info")
    assert "train_started" in line
    assert "index=3" in line and "intensity_pct_mso=55" in line and "session_id=K7M2-9QXD" in line
    assert "\x1b[" not in line  # no colour codes unless asked


def test_nothing_is_configured_globally(log_path: Path, clock: VirtualClock) -> None:
    before = structlog.get_config()
    log = make_session_logger(log_path, session_id="S", simulated=True, clock=clock)
    make_console_logger(io.StringIO(), clock=clock)
    assert structlog.get_config() == before
    # A test capturing the global structlog output neither steals nor changes our audit lines...
    with capture_logs() as captured:
        structlog.get_logger().info("someone else's event")
        log.info("ours")
    assert [e["event"] for e in captured] == ["someone else's event"]
    close_session_logger(log)
    assert [e["event"] for e in read_audit_log(log_path)] == ["ours"]
