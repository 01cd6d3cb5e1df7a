"""A subject's exposure: the pulses and sessions received in a window (what the daily caps count)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from tmsctl.records.database import Database
from tmsctl.records.deliveries import UNCERTAIN_SQL
from tmsctl.records.errors import InvalidRecord
from tmsctl.records.model import Exposure, _utc, validate_subject_id
from tmsctl.records.schema import _from_db_time, _to_db_time


class Exposures:
    def __init__(self, database: Database) -> None:
        self._database = database

    def between(self, subject_id: str, start_utc: datetime, end_utc: datetime) -> Exposure:
        """Pulses and sessions a subject received in ``[start_utc, end_utc)`` (simulated excluded)."""
        validate_subject_id(subject_id)
        start, end = _utc("start_utc", start_utc), _utc("end_utc", end_utc)
        if end <= start:
            raise InvalidRecord(f"the window ends ({end}) before it starts ({start})")
        window = {"subject": subject_id, "start": _to_db_time(start), "end": _to_db_time(end)}
        pulses = self._database.read(
            "counting pulses",
            f"""SELECT coalesce(sum(d.pulses_delivered), 0) AS confirmed,
                      coalesce(sum(d.pulses_delivered + {UNCERTAIN_SQL.replace("pulses_", "d.pulses_")
                                                          .replace("state", "d.state")}), 0) AS possible
               FROM deliveries d JOIN sessions s USING (session_id)
               WHERE s.subject_id = :subject AND s.simulated = 0
                 AND d.started_at >= :start AND d.started_at < :end""",
            window,
        )[0]
        sessions = self._database.read(
            "counting sessions",
            """SELECT count(*) AS n, max(started_at) AS last FROM sessions
               WHERE subject_id = :subject AND simulated = 0
                 AND started_at >= :start AND started_at < :end""",
            window,
        )[0]
        return Exposure(
            subject_id=subject_id,
            start_utc=start,
            end_utc=end,
            confirmed_pulses=pulses["confirmed"],
            possible_pulses=pulses["possible"],
            sessions_started=sessions["n"],
            last_session_started_at=_from_db_time(sessions["last"]),
        )

    def on_day(self, subject_id: str, day: date, *, tz: tzinfo = UTC) -> Exposure:
        """``between`` over one calendar day in ``tz`` (the site's time zone for daily caps)."""
        midnight = datetime.min.time()
        start = datetime.combine(day, midnight, tzinfo=tz)
        end = datetime.combine(day + timedelta(days=1), midnight, tzinfo=tz)
        return self.between(subject_id, start, end)
