"""Opening the records safely: never create what was not asked for, read without writing.

Read-only media are simulated for real: tests run as root (whom chmod does not stop), so one
test drops to the ``nobody`` user in a subprocess, where a folder without write permission
behaves as read-only media do for SQLite (it cannot create the ``-shm`` file a WAL reader needs).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from records_helpers import running_session

from tmsctl.core.clock import VirtualClock
from tmsctl.records import DatabaseNotFound, Records, RecordsError


def test_an_explicit_path_that_does_not_exist_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    for missing in (tmp_path / "typo.db", tmp_path / "no" / "such" / "dir" / "x.db"):
        for read_only in (False, True):
            with pytest.raises(DatabaseNotFound, match="there is no records database") as refused:
                Records(missing, create=False, read_only=read_only)
            assert f"`tmsctl db init {missing}`" in refused.value.hint
        assert not missing.exists() and not (tmp_path / "no").exists()


def test_a_read_only_store_reads_and_every_write_fails_with_sqlite_readonly(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with Records(path, clock=VirtualClock()) as store:
        session = running_session(store)
    with Records(path, read_only=True) as reader:
        assert [s.session_id for s in reader.sessions()] == [session]
        with pytest.raises(RecordsError, match="readonly") as refused:
            reader.add_subject("S999")
        cause = refused.value.__cause__
        assert isinstance(cause, sqlite3.OperationalError) and cause.sqlite_errorcode == sqlite3.SQLITE_READONLY
        # nothing marked either: the running session's owner is gone, but a reader does not write
        assert reader.session(session).status.value == "running"


def test_a_read_only_opener_does_not_migrate_an_older_database(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    Records(path).close()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA user_version = 1")
    raw.close()
    with pytest.raises(RecordsError, match="schema version 1") as refused:
        Records(path, read_only=True)
    assert f"tmsctl db init {path}" in refused.value.hint
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1


# -- read-only media, as the nobody user ---------------------------------------------------------

_AS_NOBODY = r"""
import json, os, sys
from pathlib import Path
# everything the checks use is loaded first, by running them once on a scratch database: after
# setuid the interpreter's own files (under /root) cannot be read any more
from typer.testing import CliRunner
import tmsctl.cli.main
from tmsctl.records import Records, RecordsError

db, with_pending_wal, scratch = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
Records(scratch).close()
assert CliRunner().invoke(tmsctl.cli.main.app, ["sessions", "--db", str(scratch), "--json"]).exit_code == 0  # loads it all
os.setgid(65534)
os.setuid(65534)
found = {"folder_writable": os.access(db.parent, os.W_OK)}
try:
    Records(db).close()
    found["writable_open"] = "opened"
except RecordsError as exc:
    found["writable_open"] = exc.message
listed = CliRunner().invoke(tmsctl.cli.main.app, ["sessions", "--db", str(db), "--json"])
found["sessions_exit"] = listed.exit_code
found["sessions"] = json.loads(listed.stdout) if listed.exit_code == 0 else listed.output + repr(listed.exception)
with Records(db, read_only=True) as reader:
    try:
        reader.add_subject("S999")
        found["write"] = "written"
    except RecordsError as exc:
        found["write"] = exc.message
try:
    Records(with_pending_wal, read_only=True).close()
    found["pending_wal"] = "opened"
except RecordsError as exc:
    found["pending_wal"] = exc.message
found["left_behind"] = sorted(p.name for p in db.parent.iterdir())
print(json.dumps(found))
"""

_WRITER_THAT_DIES = r"""
import os, sys
from tmsctl.records import Records
store = Records(sys.argv[1])
store.add_subject("S777")  # committed into the write-ahead log, not yet into the file
os._exit(0)  # as if the power went: no checkpoint, the -wal file keeps the change
"""


@pytest.fixture
def read_only_folder() -> Iterator[Path]:
    """A folder the nobody user owns but cannot write: read-only media, as SQLite sees them."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the nobody user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no nobody user")
    folder = Path(tempfile.mkdtemp(prefix="tmsctl-ro-", dir="/tmp"))  # pytest's tmp_path is root-only
    try:
        yield folder
    finally:
        os.chmod(folder, 0o700)
        shutil.rmtree(folder)
    assert nobody.pw_uid == 65534


@pytest.mark.timeout(60)
def test_records_on_read_only_media_can_be_listed(read_only_folder: Path, tmp_path: Path) -> None:
    db = read_only_folder / "tmsctl.db"
    with Records(db, clock=VirtualClock()) as store:
        session = running_session(store)
    pending = read_only_folder / "pending.db"
    subprocess.run([sys.executable, "-c", _WRITER_THAT_DIES, str(pending)], check=True, timeout=30)
    Path(f"{pending}-shm").unlink()  # as copied off a crashed machine: the log, not its index
    assert Path(f"{pending}-wal").stat().st_size > 0
    for path in read_only_folder.iterdir():
        os.chown(path, 65534, 65534)
    os.chown(read_only_folder, 65534, 65534)
    os.chmod(read_only_folder, 0o500)

    ran = subprocess.run(
        [sys.executable, "-c", _AS_NOBODY, str(db), str(pending), str(tmp_path / "scratch.db")], capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout.splitlines()[-1])
    # the setting is really read-only for this user: a writing open fails ...
    assert found["folder_writable"] is False and found["writable_open"] != "opened"
    # ... and yet the records are listed, through a connection that refuses writes
    assert found["sessions_exit"] == 0, found["sessions"]
    assert [s["session"] for s in found["sessions"]] == [session]
    assert "readonly" in found["write"]
    # changes still in a write-ahead log would be skipped by an immutable read: refused instead
    assert "has changes in pending.db-wal" in found["pending_wal"]
    assert not [name for name in found["left_behind"] if name.startswith("tmsctl.db-")]  # no -wal, no -shm
