"""Issue 19: opening the records costs the same on the first day and after two years.

The damage check that reads every page runs at open only after an unclean shutdown (a ``-wal``
file left behind), after the file changed outside a clean close, and once its last run is older
than FULL_CHECK_EVERY_DAYS; `tmsctl records check` runs it on demand. Every other open checks the
header, schema version and journal mode only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tmsctl.cli.common import EXIT_RECORDS
from tmsctl.cli.main import app
from tmsctl.core.clock import VirtualClock
from tmsctl.records import Records, RecordsError
from tmsctl.records import database as records_module

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every full check run, by the file it read."""
    ran: list[Path] = []
    original = records_module.Database.check_not_damaged

    def counting(self: records_module.Database) -> None:
        ran.append(self.path)
        original(self)

    monkeypatch.setattr(records_module.Database, "check_not_damaged", counting)
    return ran


def _scribble_page_2(db_path: Path) -> None:
    data = bytearray(db_path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    data[page_size : page_size + 1500] = bytes((i * 37 + 11) % 256 for i in range(1500))
    db_path.write_bytes(bytes(data))


def test_a_clean_close_lets_the_next_open_skip_the_full_check(
    db_path: Path, clock: VirtualClock, full_checks: list[Path]
) -> None:
    with Records(db_path, clock=clock) as store:
        store.add_subject("S0001")
    assert len(full_checks) == 1  # a new file: checked once
    for _ in range(3):
        with Records(db_path, clock=clock) as store:
            store.add_subject(f"S{len(store.subjects()) + 1:04d}")  # writes too: still closed cleanly
    with Records(db_path, clock=clock, read_only=True) as store:
        assert len(store.subjects()) == 4
    assert len(full_checks) == 1


def test_a_process_that_died_with_the_file_open_makes_the_next_open_check_in_full(
    db_path: Path, clock: VirtualClock, full_checks: list[Path]
) -> None:
    Records(db_path, clock=clock).close()
    died = subprocess.run(
        [sys.executable, "-c", "import os, sys\nfrom tmsctl.records import Records\n"
         "store = Records(sys.argv[1]); store.add_subject('S0009'); os._exit(0)", str(db_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert died.returncode == 0, died.stderr
    assert Path(f"{db_path}-wal").exists()  # what SQLite leaves when the last user never closed
    with Records(db_path, clock=clock) as store:
        assert [s.subject_id for s in store.subjects()] == ["S0009"]
    assert len(full_checks) == 2
    Records(db_path, clock=clock).close()
    assert len(full_checks) == 2  # that open closed cleanly


def test_damage_after_a_clean_close_is_found_even_with_the_modification_time_put_back(
    db_path: Path, clock: VirtualClock
) -> None:
    with Records(db_path, clock=clock) as store:
        for number in range(3):
            store.add_subject(f"S{number:04d}")
    before = db_path.stat()
    _scribble_page_2(db_path)
    os.utime(db_path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or rsync -t would
    with pytest.raises(RecordsError, match="damaged"):
        Records(db_path, clock=clock)


def test_the_full_check_runs_again_once_the_last_one_is_a_week_old(
    db_path: Path, clock: VirtualClock, full_checks: list[Path]
) -> None:
    Records(db_path, clock=clock).close()
    clock.advance((records_module.FULL_CHECK_EVERY_DAYS - 1) * 86400.0)
    Records(db_path, clock=clock).close()
    assert len(full_checks) == 1
    clock.advance(2 * 86400.0)
    Records(db_path, clock=clock).close()
    assert len(full_checks) == 2
    Records(db_path, clock=clock).close()
    assert len(full_checks) == 2  # the week starts again


def test_a_missing_or_unreadable_stamp_means_a_full_check(
    db_path: Path, clock: VirtualClock, full_checks: list[Path]
) -> None:
    Records(db_path, clock=clock).close()
    stamp = Path(f"{db_path}{records_module.CLEAN_CLOSE_SUFFIX}")
    stamp.write_text("{not json")
    Records(db_path, clock=clock).close()
    stamp.unlink()
    Records(db_path, clock=clock).close()
    assert len(full_checks) == 3


def test_records_check_reads_every_page_on_demand(tmp_path: Path, full_checks: list[Path]) -> None:
    db = tmp_path / "r.db"
    runner = CliRunner()
    assert runner.invoke(app, ["db", "init", str(db)]).exit_code == 0
    Records(db).close()
    checked = len(full_checks)
    result = runner.invoke(app, ["records", "check", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "no damage found" in result.stdout
    assert len(full_checks) == checked + 1
    _scribble_page_2(db)
    damaged = runner.invoke(app, ["records", "check", "--db", str(db)])
    assert damaged.exit_code == EXIT_RECORDS, damaged.output
    assert "damaged" in damaged.output


def test_read_only_openers_leave_an_empty_log_that_needs_no_full_check(
    db_path: Path, clock: VirtualClock, full_checks: list[Path]
) -> None:
    """`tmsctl sessions` opens read-only: its connection may not delete the -wal, but writes none."""
    Records(db_path, clock=clock).close()
    Path(f"{db_path}{records_module.CLEAN_CLOSE_SUFFIX}").unlink()  # as on a file never closed by us
    for _ in range(3):
        with Records(db_path, clock=clock, read_only=True) as store:
            store.subjects()
    assert Path(f"{db_path}-wal").stat().st_size == 0
    assert len(full_checks) == 2  # the open that found no stamp, then none
