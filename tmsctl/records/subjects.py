"""Subjects: the pseudonymous ids every other record hangs from."""

from __future__ import annotations

import sqlite3

from tmsctl.records.database import Database
from tmsctl.records.errors import RecordRefused, UnknownRecord
from tmsctl.records.model import Subject, validate_subject_id
from tmsctl.records.schema import _from_db_time_required


class Subjects:
    def __init__(self, database: Database) -> None:
        self._database = database

    def add(self, subject_id: str) -> Subject:
        validate_subject_id(subject_id)
        with self._database.transaction("adding a subject") as conn:
            if conn.execute("SELECT 1 FROM subjects WHERE subject_id = ?", (subject_id,)).fetchone():
                raise RecordRefused(f"subject {subject_id!r} is already recorded", path=self._database.where,
                                    hint="use ensure_subject to accept an existing subject")
            created = self._database.stamp(None)
            conn.execute("INSERT INTO subjects (subject_id, created_at) VALUES (?, ?)", (subject_id, created))
        return Subject(subject_id, _from_db_time_required(created))

    def ensure(self, subject_id: str) -> Subject:
        existing = self.get(subject_id)
        return existing if existing is not None else self.add(subject_id)

    def get(self, subject_id: str) -> Subject | None:
        validate_subject_id(subject_id)
        rows = self._database.read(
            "reading a subject", "SELECT * FROM subjects WHERE subject_id = ?", (subject_id,)
        )
        return _subject_from_row(rows[0]) if rows else None

    def all(self) -> tuple[Subject, ...]:
        rows = self._database.read("listing subjects", "SELECT * FROM subjects ORDER BY subject_id")
        return tuple(_subject_from_row(r) for r in rows)

    def require(self, conn: sqlite3.Connection, subject_id: str) -> None:
        """Inside a write: refuse a subject that is not recorded."""
        if not conn.execute("SELECT 1 FROM subjects WHERE subject_id = ?", (subject_id,)).fetchone():
            raise UnknownRecord(f"subject {subject_id!r} is not recorded", path=self._database.where,
                                hint="add the subject first (ensure_subject)")


def _subject_from_row(r: sqlite3.Row) -> Subject:
    return Subject(r["subject_id"], _from_db_time_required(r["created_at"]))
