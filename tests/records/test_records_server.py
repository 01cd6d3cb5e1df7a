"""The PostgreSQL backend's own behaviour: what a server does differently from a file, and what
happens when the server goes away in the middle of a session."""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from records_helpers import deliver, running_session, train_plan, wait_until_the_server_saw_it_end

from tmsctl.core.clock import VirtualClock
from tmsctl.lab.testing import check_dose_truth
from tmsctl.records import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    DatabaseNotFound,
    RecordRefused,
    Records,
    RecordsError,
    SessionOwnedElsewhere,
    SessionStatus,
)
from tmsctl.records import server as server_module
from tmsctl.records.errors import RecordsUnavailable
from tmsctl.records.pg_throwaway import ThrowawayServer
from tmsctl.records.server import redact_url, translate_placeholders
from tmsctl.session.planned import SessionRequest, plan_session, run_planned
from tmsctl.session.runner import RunOutcome
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import parse_fault_plan

_names = itertools.count()


@pytest.fixture
def url(pg_server: ThrowawayServer) -> Iterator[str]:
    name = f"server_{os.getpid()}_{next(_names)}"
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


# -- the dialect layer ----------------------------------------------------------------------------


def test_placeholders_become_psycopgs_outside_string_literals() -> None:
    assert translate_placeholders("SELECT * FROM t WHERE a = ? AND b = :name") == (
        "SELECT * FROM t WHERE a = %s AND b = %(name)s"
    )
    assert translate_placeholders("SELECT 'what? :no %' || ?, x::text") == "SELECT 'what? :no %%' || %s, x::text"
    assert translate_placeholders("SELECT 'it''s ?' , ?") == "SELECT 'it''s ?' , %s"


def test_a_url_passed_as_a_path_is_refused_not_read_as_a_file(clock: VirtualClock) -> None:
    # Path() folds "//" to "/": the host would silently become part of a file name.
    with pytest.raises(RecordsError, match="not a PostgreSQL URL") as refused:
        Records(str(Path("postgresql://u@h/db")), clock=clock)
    assert "pass it as text" in refused.value.hint


def test_the_password_never_appears_in_what_the_store_says() -> None:
    assert redact_url("postgresql://tech:s3cret@db.clinic:5432/tmsctl") == "postgresql://tech:***@db.clinic:5432/tmsctl"
    assert redact_url("postgresql://db.clinic/tmsctl") == "postgresql://db.clinic/tmsctl"


def test_an_unreachable_server_is_a_typed_error_saying_nothing_was_recorded(clock: VirtualClock) -> None:
    with pytest.raises(RecordsUnavailable) as caught:
        Records("postgresql://tech:s3cret@127.0.0.1:1/tmsctl", clock=clock)
    assert "s3cret" not in str(caught.value) and "cannot be reached" in str(caught.value)
    assert "pg_isready" in caught.value.hint


# -- the same schema, the same guarantees ---------------------------------------------------------


def test_both_backends_have_the_same_tables_and_columns(url: str, tmp_path: Path, clock: VirtualClock) -> None:
    with Records(tmp_path / "t.db", clock=clock):
        pass
    raw = sqlite3.connect(tmp_path / "t.db")
    tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    on_file = {t: [r[1] for r in raw.execute(f"PRAGMA table_info({t})")] for t in tables}
    raw.close()
    with Records(url, clock=clock), psycopg.connect(url) as conn:
        on_server = {
            t: [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                (t,))]
            for t in tables
        }
    # The server's sessions also carry SQLite's implicit rowid as a column of their own.
    on_server["sessions"].remove("rowid")
    assert on_server == on_file


def test_the_server_holds_commits_durable_and_says_so(url: str, clock: VirtualClock) -> None:
    with Records(url, clock=clock) as store:
        settings = store.storage_settings()
        assert settings.synchronous == "ON"
        assert settings.schema_version == SCHEMA_VERSION
        assert settings.application_id == APPLICATION_ID
        assert store.integrity_check() == ("ok",)


def test_records_stay_append_only_on_the_server_even_against_truncate(url: str, clock: VirtualClock) -> None:
    with Records(url, clock=clock) as store:
        session_id = running_session(store)
        deliver(store, session_id, 0)
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in ("UPDATE operator_actions SET operator = 'someone else'", "DELETE FROM deliveries",
                          "TRUNCATE faults", "UPDATE deliveries SET pulses_delivered = 3",
                          "UPDATE sessions SET simulated = 1"):
            with pytest.raises(psycopg.IntegrityError):
                conn.execute(statement)


def test_a_disabled_trigger_is_found_by_the_integrity_check(url: str, clock: VirtualClock) -> None:
    with Records(url, clock=clock) as store:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE faults DISABLE TRIGGER faults_append_only_delete")
        assert store.integrity_check() == ("trigger faults_append_only_delete is missing or disabled",)


def test_a_named_database_without_records_is_not_started_silently(url: str, clock: VirtualClock) -> None:
    for read_only in (False, True):
        with pytest.raises(DatabaseNotFound) as refused:
            Records(url, clock=clock, create=False, read_only=read_only)
        assert f"tmsctl db init {url}" in refused.value.hint
    with Records(url, clock=clock):  # creating it is explicit (tmsctl db init does this)
        pass
    with Records(url, clock=clock, create=False) as store:
        assert store.storage_settings().schema_version == SCHEMA_VERSION


def test_another_programs_database_is_refused_and_left_alone(url: str, clock: VirtualClock) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE photos (id integer)")
    with pytest.raises(RecordsError, match="another program"):
        Records(url, clock=clock)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('tmsctl_meta')").fetchone()[0] is None


def test_a_newer_schema_on_the_server_is_refused(url: str, clock: VirtualClock) -> None:
    with Records(url, clock=clock):
        pass
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE tmsctl_meta SET schema_version = schema_version + 1")
    with pytest.raises(RecordsError) as caught:
        Records(url, clock=clock)
    assert "upgrade tmsctl" in caught.value.hint


def test_a_writer_held_up_too_long_says_busy(url: str, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "LOCK_TIMEOUT_S", 0.1)
    with Records(url, clock=clock) as store, psycopg.connect(url) as blocker:
        blocker.execute("SELECT pg_advisory_xact_lock(%s, %s)", server_module.WRITER_LOCK)
        with pytest.raises(RecordsError, match="busy") as caught:
            store.add_subject("S002")
        blocker.rollback()
        assert "retry" in caught.value.hint
        assert store.add_subject("S002").subject_id == "S002"


def test_the_owner_lock_lives_on_the_server_and_names_its_holder(url: str, clock: VirtualClock) -> None:
    with Records(url, clock=clock) as room_one:
        session_id = running_session(room_one)
        with Records(url, clock=clock) as room_two:
            assert room_two.session(session_id).status is SessionStatus.RUNNING  # alive: left alone
            with pytest.raises(SessionOwnedElsewhere, match=f"tmsctl pid {os.getpid()}"):
                room_two.pause_session(session_id, operator="intruder")
            with pytest.raises(SessionOwnedElsewhere):
                room_two.begin_delivery(train_plan(session_id, 0))
    with Records(url, clock=clock) as later:  # the owner closed without ending it
        assert later.session(session_id).status is SessionStatus.INTERRUPTED


# -- the server goes away mid-session -------------------------------------------------------------

SHORT = """\
schema_version: 1
id: short-10hz
title: Short 10 Hz test protocol
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern:
  kind: rtms
  frequency_hz: 10
  pulses_per_train: 20
  inter_train_interval_s: 8
  trains: 6
"""


@pytest.fixture
def own_server() -> Iterator[ThrowawayServer]:
    """A server of this test's own, to stop and start without disturbing the others."""
    server = ThrowawayServer().start()
    try:
        yield server
    finally:
        server.close()


def _plan(protocol: Path, sim, records: Records, **kw):  # type: ignore[no-untyped-def]
    from tmsctl.protocols.canonical import content_hash
    from tmsctl.protocols.loader import load_protocol

    loaded = load_protocol(protocol)
    if not records.is_protocol_approved(loaded.id, content_hash(loaded)):
        records.approve_protocol(loaded.id, content_hash(loaded), approved_by="reviewer")
    return plan_session(SessionRequest(protocol, f"sim://{sim.name}", "S001", operator="tester", mt_pct_mso=55, **kw),
                        records)


@pytest.mark.parametrize("stop_when", ["before the intent of train 3", "after the intent of train 3"])
def test_a_server_gone_mid_session_fires_nothing_unrecorded_and_the_session_resumes(
    own_server: ThrowawayServer, tmp_path: Path, stop_when: str
) -> None:
    url = own_server.create_database("clinic")
    protocol = tmp_path / "short.yaml"
    protocol.write_text(SHORT)
    clock = VirtualClock()
    sim = sims.create("rapid2", clock=clock, faults=parse_fault_plan(""), name=f"server-gone-{next(_names)}")
    records = Records(url, clock=clock)
    planned = _plan(protocol, sim, records)

    def stop_the_server_at_train_3(runner) -> None:  # type: ignore[no-untyped-def]
        begin = runner.log.begin

        def begin_then_maybe_stop(train, planned_at, trigger_source):  # type: ignore[no-untyped-def]
            if train.index == 2 and stop_when.startswith("before"):
                own_server.stop("immediate")  # the server crashes: no goodbye to its clients
            begin(train, planned_at, trigger_source)
            if train.index == 2 and stop_when.startswith("after"):
                own_server.stop("immediate")

        runner.log.begin = begin_then_maybe_stop

    with pytest.raises(RecordsUnavailable) as gone:
        run_planned(planned, records, on_runner=stop_the_server_at_train_3)
    assert "nothing was recorded" in gone.value.hint
    clock.sleep(2.0)
    sim.device.advance(clock.now())
    assert not (sim.device.armed or sim.device.ready)  # the device ends disarmed
    fired_before = sim.device.pulse_count
    # Before the intent: train 3 never fired. After it: train 3's trigger went out with its intent
    # durable, and its outcome could not be recorded, so the record keeps it uncertain.
    assert fired_before == (40 if stop_when.startswith("before") else 41)
    records.close()  # this workstation's tmsctl ends; the server comes back

    own_server.start()
    with Records(url, clock=clock) as back:
        session_id = back.sessions()[0].session_id
        assert back.session(session_id).status is SessionStatus.INTERRUPTED
        check_dose_truth(back, session_id, sim.device)  # no pulse without a durable intent
        _, result = run_planned(_plan(protocol, sim, back, resume_session_id=session_id), back)
        expected = RunOutcome.COMPLETED if stop_when.startswith("before") else RunOutcome.INCOMPLETE
        assert result.outcome is expected, result.reason
        check_dose_truth(back, session_id, sim.device)
        point = back.resume_point(session_id)
        completions = [d.index for d in back.session_detail(session_id).deliveries if d.completed]
        assert len(completions) == len(set(completions))  # nothing repeated
        if stop_when.startswith("before"):
            assert point.pulses_delivered == 120 == sim.device.pulse_count and point.pulses_uncertain == 0
        else:  # the uncertain train is skipped, never repeated (an over-dose is not recoverable)
            assert sim.device.pulse_count == 101  # the one pulse out before the server went
            assert point.pulses_delivered == 100 and point.pulses_uncertain == 20  # train 3: 0 to 20
            assert back.session(session_id).status is SessionStatus.INCOMPLETE


def test_a_server_back_within_the_wait_lets_the_session_carry_on_disarmed_meanwhile(
    own_server: ThrowawayServer, tmp_path: Path
) -> None:
    url = own_server.create_database("clinic")
    protocol = tmp_path / "short.yaml"
    protocol.write_text(SHORT)
    clock = VirtualClock()
    sim = sims.create("rapid2", clock=clock, faults=parse_fault_plan(""), name=f"server-back-{next(_names)}")
    records = Records(url, clock=clock)
    planned = _plan(protocol, sim, records)
    seen: dict[str, object] = {}

    def outage_before_train_3(runner) -> None:  # type: ignore[no-untyped-def]
        begin, reachable = runner.log.begin, runner.log.reachable

        def begin_after_a_crash(train, planned_at, trigger_source):  # type: ignore[no-untyped-def]
            if train.index == 2 and "stopped" not in seen:
                seen["stopped"] = True
                own_server.stop("immediate")
            begin(train, planned_at, trigger_source)

        def reachable_once_restarted() -> bool:
            seen["asked"] = int(seen.get("asked", 0)) + 1  # type: ignore[call-overload]
            seen["armed while waiting"] = sim.device.armed or seen.get("armed while waiting", False)
            if seen["asked"] == 3:
                own_server.start()
            return reachable()

        runner.log.begin, runner.log.reachable = begin_after_a_crash, reachable_once_restarted

    _, result = run_planned(planned, records, on_runner=outage_before_train_3)
    try:
        assert result.outcome is RunOutcome.COMPLETED, result.reason
        assert seen["asked"] >= 3 and not seen["armed while waiting"]
        session_id = records.sessions()[0].session_id
        check_dose_truth(records, session_id, sim.device)
        assert records.resume_point(session_id).pulses_delivered == 120 == sim.device.pulse_count
    finally:
        records.close()


def test_the_same_store_reconnects_when_the_server_is_back(own_server: ThrowawayServer) -> None:
    url = own_server.create_database("clinic")
    clock = VirtualClock()
    with Records(url, clock=clock) as store:
        session_id = running_session(store)
        deliver(store, session_id, 0)
        own_server.stop("fast")
        with pytest.raises(RecordsUnavailable):
            store.begin_delivery(train_plan(session_id, 1))
        with pytest.raises(RecordsUnavailable):
            store.resume_point(session_id)
        own_server.start()
        # Its owner lock is taken again on the new connection: the session goes on from here.
        deliver(store, session_id, 1)
        assert store.resume_point(session_id).next_index == 2
        with Records(url, clock=clock) as other, pytest.raises(RecordRefused):
            other.pause_session(session_id, operator="intruder")


def test_a_lock_taken_by_another_room_while_disconnected_is_given_up(own_server: ThrowawayServer) -> None:
    url = own_server.create_database("clinic")
    clock = VirtualClock()
    with Records(url, clock=clock) as store:
        session_id = running_session(store)
        own_server.stop("fast")
        own_server.start()
        # Another room opens first: the owner's connection is gone, so it marks the session interrupted.
        with Records(url, clock=clock) as other:
            assert other.session(session_id).status is SessionStatus.INTERRUPTED
            other.resume_session(session_id, operator="room 2")
            # Room 2 runs it now; the first store may not deliver in it any more.
            with pytest.raises(SessionOwnedElsewhere):
                store.begin_delivery(train_plan(session_id, 0))


# -- several rooms, one server --------------------------------------------------------------------

ROOM = Path(__file__).with_name("room_child.py")


def _room(*args: str) -> dict[str, list[str]]:
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOM.parent), os.environ.get("PYTHONPATH", "")])}
    with subprocess.Popen([sys.executable, str(ROOM), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env) as room:
        stdout, stderr = room.communicate(timeout=60)
    assert room.returncode == 0, stderr
    wait_until_the_server_saw_it_end(args[0], room.pid)
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines()}


def test_two_rooms_treating_one_subject_on_one_day_share_its_caps_and_a_third_resumes(url: str) -> None:
    morning = _room(url, "treat", "S017", "9", "4", "complete")  # room 2, 09:00
    assert morning["before"] == ["0", "0"]
    assert morning["after"] == ["40"]
    afternoon = _room(url, "treat", "S017", "14", "2", "leave")  # room 4, 14:00: sees the morning
    assert afternoon["before"] == ["40", "1"]
    assert afternoon["after"] == ["60"]
    interrupted = afternoon["session"][0]
    # A third workstation finds room 4's session interrupted and resumes it where it stopped.
    resumed = _room(url, "resume", interrupted, "15")
    assert resumed["resumed"] == ["2"]
    assert resumed["after"] == ["80"]
    with Records(url, clock=VirtualClock()) as clinic:
        detail = clinic.session_detail(interrupted)
        assert [d.index for d in detail.deliveries] == [0, 1, 2, 3]  # nothing repeated, nothing skipped
        assert [f.code for f in detail.faults] == ["process_ended"]
        assert detail.session.run_segments == 2
        assert clinic.exposure_on_day("S017", date(2026, 3, 2)).sessions_started == 2


def test_the_commands_take_a_server_url_in_db_and_tmsctl_db(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from tmsctl.cli.main import app

    runner = CliRunner()
    refused = runner.invoke(app, ["sessions", "--db", url])  # named, but holds no records yet
    assert refused.exit_code != 0 and "tmsctl db init" in refused.output
    created = runner.invoke(app, ["db", "init", url])
    assert created.exit_code == 0 and "schema version" in created.output, created.output
    with Records(url, clock=VirtualClock()) as store:
        session_id = running_session(store)
    listed = runner.invoke(app, ["sessions", "--db", url])
    assert listed.exit_code == 0 and session_id in listed.output, listed.output
    monkeypatch.setenv("TMSCTL_DB", url)
    assert session_id in runner.invoke(app, ["sessions"]).output
