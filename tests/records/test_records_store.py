"""The database file: location, privacy, pragmas, schema migrations and clear errors."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from records_helpers import deliver, running_session

from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import TmsError
from tmsctl.records import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    Records,
    RecordsError,
    apply_migrations,
    default_db_path,
)
from tmsctl.records import database as records_module


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- where the file lives -------------------------------------------------------------------------


def test_tmsctl_db_wins_over_xdg(tmp_path: Path) -> None:
    env = {"TMSCTL_DB": str(tmp_path / "x.db"), "XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": "/home/u"}
    assert default_db_path(env) == tmp_path / "x.db"


def test_tmsctl_db_expands_the_home_directory() -> None:
    assert default_db_path({"TMSCTL_DB": "~/lab/t.db"}) == Path("~/lab/t.db").expanduser()


def test_xdg_data_home_is_used_when_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/data/u")
    assert default_db_path({}) == Path("/data/u/tmsctl/tmsctl.db")


def test_relative_xdg_data_home_is_ignored_as_the_spec_requires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "rel/dir")
    monkeypatch.setenv("HOME", "/home/u")
    assert default_db_path({}) == Path("/home/u/.local/share/tmsctl/tmsctl.db")


def test_home_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    assert default_db_path({}) == Path("/home/u/.local/share/tmsctl/tmsctl.db")


def test_an_explicit_path_wins_over_the_environment(tmp_path: Path, clock: VirtualClock) -> None:
    env = {"TMSCTL_DB": str(tmp_path / "env.db")}
    with Records(tmp_path / "explicit.db", clock=clock, env=env) as store:
        assert store.path == tmp_path / "explicit.db"
    assert not (tmp_path / "env.db").exists()


def test_without_a_path_the_environment_decides(
    tmp_path: Path, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with Records(clock=clock, env={}) as store:
        assert store.path == tmp_path / "xdg" / "tmsctl" / "tmsctl.db"
    assert store.path.exists()


# -- privacy --------------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_new_database_file_and_directory_are_private(db_path: Path, clock: VirtualClock) -> None:
    old_umask = os.umask(0o022)  # a permissive umask must not leak through
    try:
        with Records(db_path, clock=clock) as store:
            running_session(store)  # write something, so the -wal and -shm files exist
            assert mode_of(db_path) == 0o600
            assert mode_of(db_path.parent) == 0o700
            for suffix in ("-wal", "-shm"):
                side = db_path.with_name(db_path.name + suffix)
                assert side.exists()
                assert mode_of(side) == 0o600, suffix
            assert mode_of(db_path.with_name(db_path.name + ".owners")) == 0o700
    finally:
        os.umask(old_umask)


def test_an_existing_directory_keeps_its_mode(tmp_path: Path, clock: VirtualClock) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with Records(shared / "t.db", clock=clock):
        pass
    assert mode_of(shared) == 0o755
    assert mode_of(shared / "t.db") == 0o600


@pytest.mark.sqlite_only
def test_a_database_readable_by_others_is_refused(db_path: Path, clock: VirtualClock) -> None:
    with Records(db_path, clock=clock):
        pass
    os.chmod(db_path, 0o644)
    with pytest.raises(RecordsError) as caught:
        Records(db_path, clock=clock)
    assert str(db_path) in str(caught.value)
    assert "0644" in str(caught.value)
    assert f"chmod 600 {db_path}" in caught.value.hint


# -- pragmas --------------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_wal_synchronous_full_and_foreign_keys_are_in_force(records: Records) -> None:
    settings = records.storage_settings()
    assert settings.journal_mode == "wal"
    assert settings.synchronous == "FULL"
    assert settings.foreign_keys is True
    assert settings.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    assert settings.application_id == APPLICATION_ID


@pytest.mark.sqlite_only
def test_wal_mode_is_stored_in_the_file(records: Records, db_path: Path) -> None:
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        raw.close()


@pytest.mark.sqlite_only
def test_foreign_keys_refuse_a_dangling_row(records: Records, db_path: Path) -> None:
    # The store's own connection enforces references (the API never produces a dangling one).
    with pytest.raises(sqlite3.IntegrityError):
        records._db.execute(  # the one place a test reaches behind the API, to prove the pragma bites
            "INSERT INTO faults (session_id, code, detail, state, at) VALUES ('NOPE', 'x', '', 'idle', 'now')"
        )


# -- migrations -----------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_an_empty_existing_file_is_refused_as_damaged_never_started_afresh(db_path: Path, clock: VirtualClock) -> None:
    # A truncated database (0 bytes) started afresh would silently lose its history, thresholds,
    # approvals and the exposure the daily caps count.
    db_path.parent.mkdir(mode=0o700)
    fd = os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    for read_only in (False, True):
        with pytest.raises(RecordsError, match=r"empty \(0 bytes\): damaged") as refused:
            Records(db_path, clock=clock, read_only=read_only)
        assert "restore it from backup" in refused.value.hint and "tmsctl db init" in refused.value.hint
    assert db_path.stat().st_size == 0  # left as found, for whoever investigates


def test_a_new_file_is_created_and_migrated(db_path: Path, clock: VirtualClock) -> None:
    with Records(db_path, clock=clock) as store:
        assert store.storage_settings().schema_version == SCHEMA_VERSION
        assert store.integrity_check() == ("ok",)
        running_session(store)


def test_reopening_keeps_data_and_version(db_path: Path, clock: VirtualClock) -> None:
    with Records(db_path, clock=clock) as store:
        store.add_subject("S001")
    with Records(db_path, clock=clock) as store:
        assert [s.subject_id for s in store.subjects()] == ["S001"]
        assert store.storage_settings().schema_version == SCHEMA_VERSION


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_migrations_run_forward_one_version_each(tmp_path: Path) -> None:
    seen: list[int] = []

    def step_two(conn: sqlite3.Connection) -> None:
        seen.append(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("CREATE TABLE notes (note TEXT)")

    n = len(MIGRATIONS)
    conn = _raw(tmp_path / "m.db")
    assert apply_migrations(conn, MIGRATIONS) == n
    assert apply_migrations(conn, (*MIGRATIONS, step_two)) == n + 1
    assert seen == [n]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == n + 1
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert apply_migrations(conn, (*MIGRATIONS, step_two)) == n + 1  # idempotent
    assert seen == [n]


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x)")
        raise RuntimeError("step failed")

    conn = _raw(tmp_path / "m.db")
    apply_migrations(conn, MIGRATIONS)
    with pytest.raises(RuntimeError):
        apply_migrations(conn, (*MIGRATIONS, broken))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0


@pytest.mark.sqlite_only
def test_a_newer_schema_is_refused(db_path: Path, clock: VirtualClock) -> None:
    with Records(db_path, clock=clock):
        pass
    conn = _raw(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RecordsError) as caught:
        Records(db_path, clock=clock)
    assert "upgrade tmsctl" in caught.value.hint
    assert str(db_path) in str(caught.value)


# -- clear errors for bad files -------------------------------------------------------------------


def test_another_programs_database_is_refused(tmp_path: Path, clock: VirtualClock) -> None:
    path = tmp_path / "foreign.db"
    conn = _raw(path)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.close()
    os.chmod(path, 0o600)
    with pytest.raises(RecordsError) as caught:
        Records(path, clock=clock)
    message = str(caught.value)
    assert "another program" in message and str(path) in message
    # Nothing was written into the foreign file.
    check = _raw(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 0
    assert check.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 1
    check.close()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, clock: VirtualClock) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 40)
    os.chmod(path, 0o600)
    with pytest.raises(RecordsError) as caught:
        Records(path, clock=clock)
    assert str(path) in str(caught.value)
    assert "not a database" in str(caught.value)
    assert ".recover" in caught.value.hint


@pytest.mark.sqlite_only
def test_a_damaged_database_is_refused_at_open(db_path: Path, clock: VirtualClock) -> None:
    with Records(db_path, clock=clock) as store:
        for number in range(3):
            store.add_subject(f"S{number:04d}")
    data = bytearray(db_path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    # Page 2 is the root of the first table created (subjects): scribble over its cells.
    data[page_size : page_size + 1500] = bytes((i * 37 + 11) % 256 for i in range(1500))
    db_path.write_bytes(bytes(data))
    with pytest.raises(RecordsError) as caught:
        Records(db_path, clock=clock)
    assert "damaged" in str(caught.value)
    assert str(db_path) in str(caught.value)


@pytest.mark.sqlite_only
def test_the_damage_check_at_open_leaves_the_stores_own_constraints_on(db_path: Path, clock: VirtualClock) -> None:
    # The check skips re-evaluating CHECKs (its own connection does), the store never does.
    with Records(db_path, clock=clock) as store:
        assert store._db.execute("PRAGMA ignore_check_constraints").fetchone()[0] == 0
        store.add_subject("S0001")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            store._db.execute(
                "INSERT INTO deliveries (session_id, delivery_index, attempt, kind, segment, planned_onset_s, "
                "pulses_planned, intensity_pct_mso, trigger_source, started_at, state, pulses_delivered) "
                "VALUES ('X', -1, 1, 'train', 0, 0, 1, 50, 'serial', '2026-01-01T00:00:00Z', 'in_progress', 0)"
            )


def test_a_directory_is_not_a_database(tmp_path: Path, clock: VirtualClock) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(RecordsError, match="not a regular file"):
        Records(tmp_path / "dir.db", clock=clock)


@pytest.mark.sqlite_only
def test_a_write_lock_held_too_long_says_locked_with_path_and_advice(
    db_path: Path, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records_module, "BUSY_TIMEOUT_S", 0.05)
    with Records(db_path, clock=clock) as store:
        blocker = _raw(db_path)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(RecordsError) as caught:
                store.add_subject("S002")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert "locked" in str(caught.value) and str(db_path) in str(caught.value)
        assert "close other" in caught.value.hint
        assert store.add_subject("S002").subject_id == "S002"  # usable again once released


def test_records_errors_are_tmsctl_errors() -> None:
    assert issubclass(RecordsError, TmsError)


def test_a_closed_store_says_so(db_path: Path, clock: VirtualClock) -> None:
    store = Records(db_path, clock=clock)
    store.close()
    store.close()  # idempotent
    with pytest.raises(RecordsError, match="closed"):
        store.subjects()


def test_integrity_check_is_ok_after_a_session(records: Records) -> None:
    session_id = running_session(records)
    for index in range(4):
        deliver(records, session_id, index)
    records.complete_session(session_id)
    assert records.integrity_check() == ("ok",)
