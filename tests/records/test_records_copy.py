"""``tmsctl records copy``: a site's history moved between a file and a server, verified."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from records_helpers import PROTOCOL_HASH, deliver, running_session, train_plan
from typer.testing import CliRunner

from tmsctl.cli.main import app
from tmsctl.core.clock import VirtualClock
from tmsctl.records import (
    ActionKind,
    DeliveryResult,
    Fault,
    MotorThreshold,
    OperatorAction,
    Override,
    RecordRefused,
    Records,
    ThresholdReference,
    ThresholdUsed,
)
from tmsctl.records.copy import TABLES, _columns, copy_records, table_digest
from tmsctl.records.pg_throwaway import ThrowawayServer

_names = itertools.count()


@pytest.fixture
def new_url(pg_server: ThrowawayServer) -> Iterator[str]:
    name = f"copy_{os.getpid()}_{next(_names)}"
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


def _site_history(store: Records, clock: VirtualClock) -> None:
    """Every kind of row, two subjects, ids with gaps in nothing, sessions in every state."""
    for subject in ("S017", "S002"):
        store.ensure_subject(subject)
        mt = store.record_motor_threshold(MotorThreshold(
            subject, "magstim-rapid2", "SN-1", "D70", 47.5, ThresholdReference.RMT, "pest",
            datetime(2025, 12, 30, 9, tzinfo=UTC), "tech1", trial_log=({"pct": 47.5, "mep_uv": 61.2},)))
        store.approve_protocol("itbs-600", PROTOCOL_HASH, approved_by="dr. ä")
        done = running_session(store, subject_id=subject, thresholds_used=(ThresholdUsed("rMT", 47.5, mt.threshold_id),))
        store.record_override(Override(done, "R-ITI", "inter-train interval 8 s < 10 s", "tech1", "per protocol",
                                       PROTOCOL_HASH, "2026.1"))
        for index in range(4):
            clock.advance(10.0)
            deliver(store, done, index)
        store.complete_session(done)
        cut = running_session(store, subject_id=subject)
        store.begin_delivery(train_plan(cut, 0))
        store.finish_delivery(DeliveryResult(cut, 0, 3, False, pulses_uncertain=7, evidence="cut short"))
        store.record_action(OperatorAction(cut, ActionKind.ACKNOWLEDGE, "tech1", "noted"))
        store.fault_session(Fault(cut, "coil_overtemp", "coil at 41 °C", "train 1"))


@pytest.mark.parametrize("direction", ["file to server", "server to file", "server to server"])
def test_a_copy_holds_every_row_and_verifies_it(direction: str, tmp_path: Path, new_url: str,
                                                pg_server: ThrowawayServer, clock: VirtualClock) -> None:
    source: str = str(tmp_path / "site.db") if direction.startswith("file") else new_url
    if direction == "server to server":
        target = pg_server.create_database(f"copy_target_{os.getpid()}_{next(_names)}")
    else:
        target = new_url if direction.endswith("server") else str(tmp_path / "copy.db")
    with Records(source, clock=clock) as store:
        _site_history(store, clock)
        sessions_before = store.sessions()
        exposure_before = store.exposure_between("S017", datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    report = copy_records(source, target)
    assert report.verified
    assert {t.table: t.target_rows for t in report.tables}["deliveries"] == 10
    with Records(target, clock=clock) as copied:
        assert copied.sessions() == sessions_before  # same ids, order, statuses, thresholds
        assert copied.exposure_between("S017", datetime(2025, 1, 1, tzinfo=UTC),
                                       datetime(2027, 1, 1, tzinfo=UTC)) == exposure_before
        # The copy goes on where the source stopped: new ids follow the copied ones.
        copied.ensure_subject("S003")
        next_session = running_session(copied, subject_id="S003")
        assert copied.sessions()[-1].session_id == next_session
        assert copied.integrity_check() == ("ok",)


def test_a_copy_into_a_database_with_records_is_refused(tmp_path: Path, new_url: str, clock: VirtualClock) -> None:
    with Records(tmp_path / "site.db", clock=clock) as store:
        store.ensure_subject("S017")
    with Records(new_url, clock=clock) as other:
        other.ensure_subject("S999")
    with pytest.raises(RecordRefused, match="already holds records"):
        copy_records(str(tmp_path / "site.db"), new_url)


def test_the_checksum_sees_a_changed_value(new_url: str, clock: VirtualClock) -> None:
    with Records(new_url, clock=clock) as store:
        store.ensure_subject("S017")
        before = table_digest(store, "subjects", _columns(store, "subjects"), ("subject_id",))
    with psycopg.connect(new_url, autocommit=True) as conn:  # behind the triggers' back, as damage would be
        conn.execute("ALTER TABLE subjects DISABLE TRIGGER USER")
        conn.execute("UPDATE subjects SET created_at = '2020-01-01T00:00:00.000000+00:00'")
    with Records(new_url, clock=clock) as store:
        after = table_digest(store, "subjects", _columns(store, "subjects"), ("subject_id",))
    assert before[0] == after[0] and before[1] != after[1]


def test_the_command_copies_a_file_to_a_server_and_prints_the_check(tmp_path: Path, new_url: str,
                                                                    clock: VirtualClock) -> None:
    with Records(tmp_path / "site.db", clock=clock) as store:
        _site_history(store, clock)
    result = CliRunner().invoke(app, ["records", "copy", "--from", str(tmp_path / "site.db"), "--to", new_url])
    assert result.exit_code == 0, result.output
    assert "copied and verified" in result.output
    assert all(table in result.output for table, _ in TABLES)
    # And a missing source is a typed refusal, not a traceback.
    result = CliRunner().invoke(app, ["records", "copy", "--from", str(tmp_path / "nope.db"), "--to", new_url])
    assert result.exit_code != 0 and "Traceback" not in result.output
