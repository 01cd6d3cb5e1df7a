"""MEP measurements (schema step 5): curves, hotspot searches and stopped hunts, append-only."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from tmsctl.records import Records
from tmsctl.records.errors import InvalidRecord
from tmsctl.records.meps import MepMeasurementRecord, MepRecords


def measurement(**changes) -> MepMeasurementRecord:
    base = dict(
        subject_id="S1", kind="io_curve", status="completed", stimulator_model="magstim-rapid2",
        stimulator_serial="SIM-rapid2", coil="figure8", muscle="FDI", pulses_delivered=2,
        trial_log=({"pulse": 1, "intensity_pct_mso": 50}, {"pulse": 2, "intensity_pct_mso": 60}),
        operator="t", measured_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), result={"s50_pct_mso": 61.5},
    )
    base.update(changes)
    return MepMeasurementRecord(**base)


def test_a_measurement_round_trips_and_rows_are_append_only(tmp_path) -> None:
    with Records(tmp_path / "r.db") as records:
        records.ensure_subject("S1")
        meps = MepRecords(records)
        stored = meps.record(measurement())
        stopped = meps.record(measurement(kind="mt_stopped", status="stopped", stop_reason="coil unplugged",
                                          result=None))
        assert stored.measurement_id and stopped.measurement_id != stored.measurement_id
        assert meps.measurements("S1", kind="io_curve") == (stored,)
        assert meps.get(stopped.measurement_id).stop_reason == "coil unplugged"
        assert records.storage_settings().schema_version == 5
    raw = sqlite3.connect(tmp_path / "r.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE mep_measurements SET muscle = 'APB'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM mep_measurements")
    raw.close()


@pytest.mark.parametrize("changes", [
    {"pulses_delivered": 3},  # a delivered pulse missing from the log
    {"status": "stopped"},  # stopped without a reason
    {"stop_reason": "why"},  # a reason on a completed one
    {"kind": "hotspot_map"},
])
def test_an_incoherent_measurement_is_refused(tmp_path, changes) -> None:
    with Records(tmp_path / "r.db") as records:
        records.ensure_subject("S1")
        with pytest.raises(InvalidRecord):
            MepRecords(records).record(measurement(**changes))
        assert MepRecords(records).measurements("S1") == ()
