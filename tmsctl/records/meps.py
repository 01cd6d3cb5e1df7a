"""MEP measurements other than a threshold: input–output curves, hotspot searches, stopped hunts.

``MepRecords(records)`` writes and reads the ``mep_measurements`` table (schema step 5) of a
:class:`~tmsctl.records.Records` store. A row holds what was measured (``kind``), whether it ran
to its end (``completed``) or stopped early (``stopped``, with the reason), the stimulator and coil,
the muscle, the result (a fit, the chosen site; JSON) and the trial log: one entry per delivered
pulse, accepted or rejected, in delivery order. Rows are append-only, like the thresholds.

A threshold hunt that converged is a :class:`~tmsctl.records.MotorThreshold`; one that stopped
(a device fault, EMG that could not be measured, Ctrl-C) is kept here as ``mt_stopped`` — its
pulses were given, so they are on record even though no threshold came of them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tmsctl.records.errors import InvalidRecord
from tmsctl.records.model import _count, _text, _utc, validate_subject_id
from tmsctl.records.schema import _from_db_time_required, _to_db_time

__all__ = ["KINDS", "STATUSES", "MepMeasurementRecord", "MepRecords"]

KINDS = ("io_curve", "hotspot", "mt_stopped")
STATUSES = ("completed", "stopped")


@dataclass(frozen=True)
class MepMeasurementRecord:
    subject_id: str
    kind: str
    status: str
    stimulator_model: str
    stimulator_serial: str
    coil: str
    muscle: str
    pulses_delivered: int
    trial_log: tuple[Mapping[str, Any], ...]
    operator: str
    measured_at: datetime
    result: Mapping[str, Any] | None = None
    stop_reason: str | None = None
    measurement_id: int | None = None
    recorded_at: datetime | None = None

    def validate(self) -> None:
        validate_subject_id(self.subject_id)
        if self.kind not in KINDS:
            raise InvalidRecord(f"an MEP measurement's kind is one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.status not in STATUSES:
            raise InvalidRecord(f"an MEP measurement's status is completed or stopped, not {self.status!r}")
        if (self.status == "stopped") != bool(self.stop_reason and self.stop_reason.strip()):
            raise InvalidRecord("a stopped measurement needs its stop reason, and only a stopped one has one")
        for name in ("stimulator_model", "stimulator_serial", "coil", "muscle", "operator"):
            _text(name, getattr(self, name), max_len=120)
        _count("pulses_delivered", self.pulses_delivered)
        if len(self.trial_log) != self.pulses_delivered:
            raise InvalidRecord(
                f"the trial log holds {len(self.trial_log)} entries for {self.pulses_delivered} delivered pulses",
                hint="every delivered pulse, accepted or rejected, is one entry",
            )
        _utc("measured_at", self.measured_at)


class MepRecords:
    """The ``mep_measurements`` of one records store."""

    def __init__(self, records: Any) -> None:
        self._records = records

    def record(self, measurement: MepMeasurementRecord) -> MepMeasurementRecord:
        if measurement.measurement_id is not None:
            raise InvalidRecord("a new MEP measurement has no measurement_id yet (the store assigns it)")
        measurement.validate()
        store = self._records
        recorded_at = store._stamp(None)
        with store._transaction(f"recording an MEP measurement ({measurement.kind})") as conn:
            store._require_subject(conn, measurement.subject_id)
            cursor = conn.execute(
                """INSERT INTO mep_measurements (subject_id, kind, status, stimulator_model, stimulator_serial,
                       coil, muscle, pulses_delivered, result_json, trial_log_json, stop_reason, operator,
                       measured_at, recorded_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    measurement.subject_id, measurement.kind, measurement.status, measurement.stimulator_model,
                    measurement.stimulator_serial, measurement.coil, measurement.muscle,
                    measurement.pulses_delivered,
                    None if measurement.result is None else json.dumps(measurement.result, sort_keys=True),
                    json.dumps([dict(e) for e in measurement.trial_log], sort_keys=True),
                    measurement.stop_reason, measurement.operator, _to_db_time(measurement.measured_at),
                    recorded_at,
                ),
            )
            new_id = cursor.lastrowid
        return replace(measurement, measurement_id=new_id, recorded_at=_from_db_time_required(recorded_at))

    def measurements(self, subject_id: str, *, kind: str | None = None) -> tuple[MepMeasurementRecord, ...]:
        validate_subject_id(subject_id)
        sql = "SELECT * FROM mep_measurements WHERE subject_id = ?"
        params: list[Any] = [subject_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        rows = self._records._read("listing MEP measurements", sql + " ORDER BY measured_at, measurement_id", params)
        return tuple(_from_row(r) for r in rows)

    def get(self, measurement_id: int) -> MepMeasurementRecord | None:
        rows = self._records._read(
            "reading an MEP measurement", "SELECT * FROM mep_measurements WHERE measurement_id = ?", (measurement_id,)
        )
        return _from_row(rows[0]) if rows else None


def _from_row(row: sqlite3.Row) -> MepMeasurementRecord:
    log: Sequence[Mapping[str, Any]] = json.loads(row["trial_log_json"])
    return MepMeasurementRecord(
        subject_id=row["subject_id"], kind=row["kind"], status=row["status"],
        stimulator_model=row["stimulator_model"], stimulator_serial=row["stimulator_serial"], coil=row["coil"],
        muscle=row["muscle"], pulses_delivered=row["pulses_delivered"], trial_log=tuple(log),
        operator=row["operator"], measured_at=_from_db_time_required(row["measured_at"]),
        result=None if row["result_json"] is None else json.loads(row["result_json"]),
        stop_reason=row["stop_reason"], measurement_id=row["measurement_id"],
        recorded_at=_from_db_time_required(row["recorded_at"]),
    )
