"""``copy_records``: move a site's whole history between backends (file → server, server → file,
server → server), verified.

The target must be a new or empty records database; every table is copied row for row with its
keys (so ids, the sessions' insertion order and every reference stay as they were), in one
transaction on the target, and then checked: each table's row count and a SHA-256 over its rows
(read back from both sides in key order, values in the file schema's column order) must match, or
the copy is reported failed. The append-only triggers stay on throughout: inserts are all a copy does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tmsctl.records.errors import RecordRefused, RecordsError
from tmsctl.records.store import Records

# Parents before children; each with the key that orders its rows.
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("subjects", ("subject_id",)),
    ("motor_thresholds", ("threshold_id",)),
    ("protocol_approvals", ("approval_id",)),
    ("sessions", ("session_id",)),
    ("session_thresholds", ("session_id", "position")),
    ("deliveries", ("session_id", "delivery_index", "attempt")),
    ("operator_actions", ("action_id",)),
    ("overrides", ("override_id",)),
    ("faults", ("fault_id",)),
)
_ASSIGNED_IDS = {"motor_thresholds": "threshold_id", "protocol_approvals": "approval_id",
                 "operator_actions": "action_id", "overrides": "override_id", "faults": "fault_id"}


@dataclass(frozen=True)
class TableCopy:
    table: str
    source_rows: int
    target_rows: int
    source_sha256: str
    target_sha256: str

    @property
    def matches(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sha256 == self.target_sha256


@dataclass(frozen=True)
class CopyReport:
    source: str
    target: str
    tables: tuple[TableCopy, ...]

    @property
    def verified(self) -> bool:
        return all(t.matches for t in self.tables)


def _columns(records: Records, table: str) -> list[str]:
    """The table's columns as the file schema has them (a server's sessions add ``rowid``)."""
    if records._server is not None:
        rows = records._db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? ORDER BY ordinal_position", (table,)
        ).fetchall()
        return [r[0] for r in rows if r[0] != "rowid"]
    return [r[1] for r in records._db.execute(f"PRAGMA table_info({table})").fetchall()]


def _rows(records: Records, table: str, columns: list[str], key: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """Every row in key order, byte-wise for text keys on both backends (a server's collation may differ)."""
    collate = ' COLLATE "C"' if records._server is not None else " COLLATE BINARY"
    order = ", ".join(f"{k}{collate}" if k in ("subject_id", "session_id") else k for k in key)
    select = ", ".join(columns)
    if records._server is not None:
        raw = records._server.raw
        with raw.transaction(), raw.cursor(name=f"copy_{table}") as cursor:
            cursor.itersize = 2000
            cursor.execute(f"SELECT {select} FROM {table} ORDER BY {order}")
            yield from (tuple(row) for row in cursor)
    else:
        yield from (tuple(row) for row in records._db.execute(f"SELECT {select} FROM {table} ORDER BY {order}"))


def table_digest(records: Records, table: str, columns: list[str], key: tuple[str, ...]) -> tuple[int, str]:
    """(row count, SHA-256 over the rows) of one table, comparable across backends."""
    digest = hashlib.sha256()
    count = 0
    for row in _rows(records, table, columns, key):
        digest.update(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode())
        digest.update(b"\n")
        count += 1
    return count, digest.hexdigest()


def copy_records(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> CopyReport:
    """Copy every record from ``source`` (must exist) to ``target`` (new or empty), then verify."""
    with Records(source, create=False, read_only=True) as src, Records(target) as dst:
        if src.location == dst.location:
            raise RecordRefused(f"{src.location} is both the source and the target", path=dst.location)
        (held,) = dst._db.execute(
            "SELECT (SELECT count(*) FROM subjects) + (SELECT count(*) FROM sessions) "
            "+ (SELECT count(*) FROM protocol_approvals)"
        ).fetchone()
        if held:
            raise RecordRefused(
                f"the target {dst.location} already holds records; a copy goes only into an empty database",
                path=dst.location,
                hint="create a new, empty database for the copy (`tmsctl db init URL_OR_PATH`)",
            )
        plan = [(table, key, _columns(src, table)) for table, key in TABLES]
        with dst._transaction("copying the records") as conn:
            for table, key, columns in plan:
                names = list(columns)
                if table == "sessions":
                    names.append("rowid")  # the insertion order the listings sort by
                    select_cols = [*columns, "rowid"]
                else:
                    select_cols = columns
                insert = (f"INSERT INTO {table} ({', '.join(names)}) "
                          f"VALUES ({', '.join('?' for _ in names)})")
                for row in _rows(src, table, select_cols, key):
                    conn.execute(insert, row)
            if dst._server is not None:  # the next id the server assigns follows the copied ones
                for table, column in _ASSIGNED_IDS.items():
                    conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                                 f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)")
                conn.execute("SELECT setval(pg_get_serial_sequence('sessions', 'rowid'), "
                             "coalesce((SELECT max(rowid) FROM sessions), 0) + 1, false)")
        checked = []
        for table, key, columns in plan:
            source_rows, source_sha = table_digest(src, table, columns, key)
            target_rows, target_sha = table_digest(dst, table, columns, key)
            checked.append(TableCopy(table, source_rows, target_rows, source_sha, target_sha))
        report = CopyReport(src.location, dst.location, tuple(checked))
    if not report.verified:
        bad = ", ".join(t.table for t in report.tables if not t.matches)
        raise RecordsError(
            f"the copy to {report.target} does not match its source in: {bad}",
            path=report.target,
            hint="do not use the copy; keep the source as it is and report this",
        )
    return report
