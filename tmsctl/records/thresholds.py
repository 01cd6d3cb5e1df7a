"""Motor thresholds: one measurement per subject, stimulator (model + serial) and coil."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from tmsctl.records.database import Database
from tmsctl.records.errors import InvalidRecord
from tmsctl.records.model import MotorThreshold, ThresholdReference, validate_subject_id
from tmsctl.records.schema import _from_db_time_required, _to_db_time
from tmsctl.records.subjects import Subjects


class MotorThresholds:
    def __init__(self, database: Database, subjects: Subjects) -> None:
        self._database = database
        self._subjects = subjects

    def record(self, threshold: MotorThreshold) -> MotorThreshold:
        if threshold.threshold_id is not None:
            raise InvalidRecord("a new motor threshold has no threshold_id yet (the store assigns it)")
        with self._database.transaction("recording a motor threshold") as conn:
            self._subjects.require(conn, threshold.subject_id)
            cursor = conn.execute(
                """INSERT INTO motor_thresholds (subject_id, stimulator_model, stimulator_serial, coil,
                       value_pct_mso, reference, method, measured_at, trial_log_json, operator, recorded_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    threshold.subject_id,
                    threshold.stimulator_model,
                    threshold.stimulator_serial,
                    threshold.coil,
                    threshold.value_pct_mso,
                    threshold.reference.value,
                    threshold.method,
                    _to_db_time(threshold.measured_at),
                    json.dumps(list(threshold.trial_log), sort_keys=True),
                    threshold.operator,
                    self._database.stamp(None),
                ),
            )
            new_id = cursor.lastrowid
        return replace(threshold, threshold_id=new_id)

    def of_subject(self, subject_id: str) -> tuple[MotorThreshold, ...]:
        validate_subject_id(subject_id)
        rows = self._database.read(
            "listing motor thresholds",
            "SELECT * FROM motor_thresholds WHERE subject_id = ? ORDER BY measured_at, threshold_id",
            (subject_id,),
        )
        return tuple(_threshold_from_row(r) for r in rows)

    def latest(
        self, subject_id: str, *, stimulator_model: str, stimulator_serial: str, coil: str
    ) -> MotorThreshold | None:
        """The most recent measurement for exactly this subject, stimulator (model + serial) and coil."""
        validate_subject_id(subject_id)
        rows = self._database.read(
            "looking up a motor threshold",
            """SELECT * FROM motor_thresholds
               WHERE subject_id = ? AND stimulator_model = ? AND stimulator_serial = ? AND coil = ?
               ORDER BY measured_at DESC, threshold_id DESC LIMIT 1""",
            (subject_id, stimulator_model, stimulator_serial, coil),
        )
        return _threshold_from_row(rows[0]) if rows else None


def _threshold_from_row(r: sqlite3.Row) -> MotorThreshold:
    return MotorThreshold(
        subject_id=r["subject_id"],
        stimulator_model=r["stimulator_model"],
        stimulator_serial=r["stimulator_serial"],
        coil=r["coil"],
        value_pct_mso=r["value_pct_mso"],
        reference=ThresholdReference(r["reference"]),
        method=r["method"],
        measured_at=_from_db_time_required(r["measured_at"]),
        operator=r["operator"],
        trial_log=tuple(json.loads(r["trial_log_json"])),
        threshold_id=r["threshold_id"],
    )
