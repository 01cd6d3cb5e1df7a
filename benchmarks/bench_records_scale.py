"""Records at clinic scale: the store's hot paths against two years of a busy clinic.

A clinic's database lives for years, yet every other benchmark starts from an empty one. This one
builds a long-lived database (at ``--scale 1``: 400 subjects, 20,000 sessions, about 1.2 million
delivery rows, with motor thresholds, operator actions, overrides and faults on a two-year
weekday timeline), then times the same operations against it and against a fresh database:
opening the store, planning a session, each per-train write, resuming, ``tmsctl sessions``,
``tmsctl session show``, and a whole recorded 10 Hz session (``bench_session.once``) on a copy of
the big database. Every statement those operations ran is then checked with ``EXPLAIN QUERY
PLAN`` against the big database: a full scan of a table that grows with the clinic is flagged.

How the big database is written: ``Records(path)`` creates the file and runs the migrations, so
the schema (tables, CHECKs, triggers, indexes) is the product's own; the rows then go in with
plain ``sqlite3`` ``executemany`` in one transaction, foreign keys on. Through the public API
every train costs three durable commits (3.5 million of them: about half an hour on this
machine's fast disk, hours where fsync is slower). The rows written here are the rows the API
writes for the same events (statuses, attempts, resolutions, run segments, the stored time
format, written by the store's own ``_to_db_time``); the build reads a sample back through
``Records`` and runs its ``integrity_check``.

Run: ``python benchmarks/bench_records_scale.py [--scale 0.1] [--repeat N] [--keep PATH]``
(``--keep`` builds the big database once at PATH and reuses it; the timings always run on a
copy, so PATH stays as built).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_session

from tmsctl.core.clock import VirtualClock, monotonic_ns_for_benchmarks
from tmsctl.protocols import MotorThreshold as ProtocolThreshold
from tmsctl.protocols import content_hash, expand, load_protocol
from tmsctl.records import (
    Fault,
    MotorThreshold,
    Records,
    SessionPlan,
    SessionStatus,
    ThresholdReference,
    ThresholdUsed,
)
from tmsctl.records.model import SESSION_ID_ALPHABET
from tmsctl.records.schema import _to_db_time  # the stored time format, exactly as the store writes it
from tmsctl.session.dose import DoseCount
from tmsctl.session.planned import RecordsDeliveryLog, SessionRequest, coil_key, plan_session
from tmsctl.simulators import registry as sims

LIBRARY = HERE.parent / "protocols" / "library"
TEN_HZ = LIBRARY / "neurostar-10hz-ldlpfc.yaml"

# The timeline ends where VirtualClock's wall time starts (2026-01-01 00:00 UTC): "today" for the
# timed operations is the day after two years of history.
TIMELINE_START = datetime(2024, 1, 1, tzinfo=UTC)
TODAY = datetime(2026, 1, 1, tzinfo=UTC)
SUBJECTS_AT_SCALE_1 = 400
SESSIONS_AT_SCALE_1 = 20_000
HISTORY_SUBJECT = "BENCH01"  # bench_session's subject: in the big database it has two years of history
OPERATORS = ("tech1", "tech2", "tech3", "tech4", "nurse1", "dr-lee")
CRASHED_SESSIONS = 2  # left 'running' by a dead process: the first open marks them interrupted
RESUMABLE_SESSIONS = 5  # faulted mid-train, for the resume timings


# -- the clinic, as data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    model: str
    serials: tuple[str, ...]
    url: str
    simulated_url: str
    firmware: str | None


DEVICES = {
    "rapid2": Device("magstim-rapid2", ("R2-40117", "R2-40533"), "magstim-rapid2:///dev/ttyUSB0", "sim://rapid2", "9.0"),
    "magpro": Device("magventure-magpro-x100", ("MP-123456",), "magventure-magpro-x100:///dev/ttyUSB1",
                     "sim://magpro", None),
}


@dataclass(frozen=True)
class CourseKind:
    """A treatment course: which library protocol, on which stimulator, how often, how long."""

    protocol_file: str
    device: str
    sessions_per_day: int
    course_sessions: int
    weight: float


COURSE_KINDS = (
    CourseKind("neurostar-10hz-ldlpfc.yaml", "rapid2", 1, 30, 0.50),
    CourseKind("saint-accelerated-itbs.yaml", "magpro", 10, 50, 0.18),
    CourseKind("h1-18hz-mdd.yaml", "magpro", 1, 20, 0.10),
    CourseKind("h7-20hz-ocd.yaml", "magpro", 1, 29, 0.08),
    CourseKind("bpd-20hz-dmpfc-bilateral.yaml", "magpro", 2, 40, 0.06),
    CourseKind("three-d-itbs-ldlpfc.yaml", "magpro", 1, 30, 0.05),
    CourseKind("1hz-rdlpfc.yaml", "rapid2", 1, 20, 0.03),
)

# How sessions end, with their share. Shares follow what a clinic log shows: nearly all complete;
# aborts for discomfort; faults (coil temperature, link) of which most are resumed later.
OUTCOMES = (
    ("completed", 0.883),
    ("paused_then_completed", 0.015),
    ("aborted_between_trains", 0.022),
    ("aborted_mid_train", 0.018),
    ("faulted", 0.018),
    ("faulted_resumed_skip", 0.014),
    ("faulted_resumed_retry", 0.006),
    ("interrupted", 0.008),
    ("connect_failed", 0.008),
    ("aborted_before_start", 0.006),
    ("planned_only", 0.002),
)
SIMULATED_SHARE = 0.01  # staff training on the simulator: excluded from exposure


@dataclass(frozen=True)
class Train:
    index: int
    onset_s: float
    pulses: int
    duration_s: float


@dataclass(frozen=True)
class ProtocolFacts:
    protocol_id: str
    text: str
    content_hash: str
    reference: str
    scaling_pct: float
    coil: str
    trains: tuple[Train, ...]

    @property
    def pulses(self) -> int:
        return sum(t.pulses for t in self.trains)


def protocol_facts(file_name: str) -> ProtocolFacts:
    path = LIBRARY / file_name
    protocol = load_protocol(path)
    reference = protocol.intensity.reference
    schedule = expand(protocol, None, ProtocolThreshold(reference, 50, None, protocol.coil, None))
    trains = tuple(Train(t.index, t.onset_s, t.n_pulses, t.duration_s) for t in schedule.trains)
    return ProtocolFacts(protocol.id, path.read_text(encoding="utf-8"), content_hash(protocol), reference,
                         float(protocol.intensity.scaling_pct), coil_key(protocol.coil), trains)


def _session_ids(rng: random.Random) -> Iterator[str]:
    seen: set[str] = set()
    while True:  # new_session_id's form, from a seeded generator so the clinic is the same every build
        chars = "".join(rng.choice(SESSION_ID_ALPHABET) for _ in range(8))
        candidate = f"{chars[:4]}-{chars[4:]}"
        if candidate not in seen:
            seen.add(candidate)
            yield candidate


def _working_days() -> list[date]:
    days, day = [], TIMELINE_START.date()
    while day < TODAY.date():
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


@dataclass
class PlannedVisit:
    subject_id: str
    course: CourseKind
    at: datetime
    threshold_id: int
    threshold_value: float


@dataclass
class Tables:
    """Rows waiting for executemany, per table, in foreign-key order."""

    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    session_thresholds: list[tuple[Any, ...]] = field(default_factory=list)
    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    actions: list[tuple[Any, ...]] = field(default_factory=list)
    overrides: list[tuple[Any, ...]] = field(default_factory=list)
    faults: list[tuple[Any, ...]] = field(default_factory=list)

    def flush(self, conn: sqlite3.Connection) -> None:
        conn.executemany(
            """INSERT INTO sessions (session_id, subject_id, protocol_id, protocol_hash, protocol_text,
                   device_url, device_model, device_serial, device_firmware, coil, simulated,
                   planned_deliveries, planned_pulses, status, created_at, started_at, ended_at,
                   run_segments, replies_confirmed)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            self.sessions,
        )
        conn.executemany(
            "INSERT INTO session_thresholds (session_id, position, reference, value_pct_mso, threshold_id) "
            "VALUES (?, ?, ?, ?, ?)",
            self.session_thresholds,
        )
        conn.executemany(
            """INSERT INTO deliveries (session_id, delivery_index, attempt, kind, segment, planned_onset_s,
                   pulses_planned, intensity_pct_mso, trigger_source, second_intensity_pct_mso, ipi_ms,
                   started_at, state, pulses_delivered, onset_offset_s, onset_utc, finished_at, resolution)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            self.deliveries,
        )
        conn.executemany(
            "INSERT INTO operator_actions (session_id, kind, operator, reason, at, offset_s) VALUES (?, ?, ?, ?, ?, ?)",
            self.actions,
        )
        conn.executemany(
            """INSERT INTO overrides (session_id, rule_id, finding, operator, reason, protocol_hash,
                   ruleset_version, at, offset_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            self.overrides,
        )
        conn.executemany(
            "INSERT INTO faults (session_id, code, detail, state, at, offset_s) VALUES (?, ?, ?, ?, ?, ?)",
            self.faults,
        )
        for rows in (self.sessions, self.session_thresholds, self.deliveries, self.actions, self.overrides,
                     self.faults):
            rows.clear()


class SessionWriter:
    """Turns one visit and its outcome into the rows the store would have written for it."""

    def __init__(self, rng: random.Random, protocols: Mapping[str, ProtocolFacts], tables: Tables) -> None:
        self.rng = rng
        self.protocols = protocols
        self.tables = tables

    def write(self, session_id: str, visit: PlannedVisit, outcome: str, simulated: bool) -> None:
        rng, facts = self.rng, self.protocols[visit.course.protocol_file]
        device = DEVICES[visit.course.device]
        operator = rng.choice(OPERATORS)
        created = visit.at
        started = created + timedelta(seconds=rng.uniform(60, 240))  # plan, check, confirm, connect
        intensity = float(min(100, round(visit.threshold_value * facts.scaling_pct / 100)))
        segment, status, ended = 1, SessionStatus.COMPLETED, None
        actions, faults = self.tables.actions, self.tables.faults

        def action(kind: str, at: datetime, reason: str = "", offset_s: float | None = None) -> None:
            actions.append((session_id, kind, operator, reason, _to_db_time(at), offset_s))

        def fault(code: str, detail: str, state: str, at: datetime, offset_s: float | None) -> None:
            faults.append((session_id, code, detail, state, _to_db_time(at), offset_s))

        if rng.random() < 0.03 and not simulated:
            # an operator-approved deviation (a second session the same day, closer than the site's spacing)
            override_at = created + timedelta(seconds=30)
            reason = "second session today by the psychiatrist's order"
            self.tables.overrides.append((
                session_id, "site.session-spacing", "sessions start less than 50 minutes apart", operator,
                reason, facts.content_hash, "1+sha256:8c1d", _to_db_time(override_at), None,
            ))
            action("override", override_at, f"site.session-spacing: {reason}")

        trains = facts.trains
        last_train = len(trains)
        stop_at = None  # (index, pulses delivered in the partial train or None)
        if outcome in ("aborted_between_trains", "aborted_mid_train", "faulted", "faulted_resumed_skip",
                       "faulted_resumed_retry", "interrupted"):
            stop_index = rng.randrange(len(trains))
            partial = None if outcome == "aborted_between_trains" else rng.randrange(trains[stop_index].pulses)
            stop_at = (stop_index, partial)
        pause_at = rng.randrange(1, len(trains)) if outcome == "paused_then_completed" and len(trains) > 1 else None

        if outcome in ("connect_failed", "aborted_before_start", "planned_only"):
            status = {"connect_failed": SessionStatus.FAULTED, "aborted_before_start": SessionStatus.ABORTED,
                      "planned_only": SessionStatus.PLANNED}[outcome]
            if outcome == "connect_failed":
                action("start", started, offset_s=0.0)
                fault("ConnectionFailed", f"no reply from {device.url.split('://')[1]} within 1 s", "connecting",
                      started + timedelta(seconds=1.2), None)
                ended = started + timedelta(seconds=1.2)
            elif outcome == "aborted_before_start":
                ended = created + timedelta(seconds=rng.uniform(30, 120))
                action("abort", ended, "subject declined today's session")
                started = None
            else:
                started = None
            segments = 1 if started is not None else 0  # start_session began the one run segment
            self._session_row(session_id, visit, facts, device, simulated, status, created, started, ended, segments)
            return

        action("start", started, offset_s=0.0)
        shift = 0.0  # seconds added to the schedule by a pause or a fault-and-resume
        index = 0
        while index < last_train:
            train = trains[index]
            if pause_at == index:
                pause_s = rng.uniform(60, 600)
                action("pause", started + timedelta(seconds=train.onset_s + shift - 5), "subject asked for a break",
                       train.onset_s + shift - 5)
                action("resume", started + timedelta(seconds=train.onset_s + shift + pause_s - 5), "",
                       train.onset_s + shift + pause_s - 5)
                shift += pause_s
            begun = started + timedelta(seconds=train.onset_s + shift + rng.uniform(0.002, 0.02))
            offset = train.onset_s + shift + 0.004
            if stop_at is not None and stop_at[0] == index:
                stop_index, partial = stop_at
                if partial is None:  # aborted after the previous train ended
                    ended = begun - timedelta(seconds=3)
                    action("abort", ended, "subject reported scalp discomfort", offset - 3)
                    status = SessionStatus.ABORTED
                    break
                stopped = begun + timedelta(seconds=train.duration_s * partial / train.pulses + 0.05)
                if outcome == "interrupted":
                    # begun, acknowledged or not, then the process died: the next opener marks it
                    recorded = rng.choice((0, train.pulses))
                    self._delivery(session_id, train, 1, segment, intensity, begun, "in_progress", recorded,
                                   offset if recorded else None, None, None)
                    last_activity = _to_db_time(begun)
                    fault("process_ended",
                          f"process ended without closing the session; last recorded activity at {last_activity}; "
                          f"delivery {index} had begun ({recorded} of {train.pulses} pulses recorded)",
                          "running", begun + timedelta(hours=rng.uniform(0.5, 20)), None)
                    status, ended = SessionStatus.INTERRUPTED, begun
                    break
                if outcome == "aborted_mid_train":
                    self._delivery(session_id, train, 1, segment, intensity, begun, "stopped", partial, offset,
                                   stopped, None)
                    action("abort", stopped, "stopped by the operator: subject moved", offset + 1)
                    status, ended = SessionStatus.ABORTED, stopped
                    break
                # a fault mid-train: the partial train is stopped at its recorded count
                fault("coil_overtemp", "coil temperature 41 C above the 40 C limit", f"train {index + 1}",
                      stopped, offset + 1)
                if outcome == "faulted":
                    self._delivery(session_id, train, 1, segment, intensity, begun, "stopped", partial, offset,
                                   stopped, None)
                    status, ended = SessionStatus.FAULTED, stopped
                    break
                # faulted, acknowledged, resumed later by a new process (a new run segment)
                wait_s = rng.uniform(300, 1800)
                resumed = stopped + timedelta(seconds=wait_s)
                action("acknowledge", stopped + timedelta(seconds=20), "coil swapped for the spare")
                retry = outcome == "faulted_resumed_retry"
                self._delivery(session_id, train, 1, segment, intensity, begun, "stopped", partial, offset, stopped,
                               "retried" if retry else "skipped")
                kind = "retry_partial" if retry else "skip_partial"
                action(kind, resumed - timedelta(seconds=5),
                       f"train/pulse {index}: interrupted at train {index + 1} with {partial} of {train.pulses} "
                       "pulses on record; " + ("delivered again" if retry else "not repeated (never over-dose)"))
                action("resume", resumed, "", 0.0)
                segment += 1
                shift += (stopped - begun).total_seconds() + wait_s
                stop_at = None
                if not retry:
                    index += 1
                    continue
                begun = started + timedelta(seconds=train.onset_s + shift + rng.uniform(0.002, 0.02))
                offset = train.onset_s + shift + 0.004
                self._delivery(session_id, train, 2, segment, intensity, begun, "completed", train.pulses, offset,
                               begun + timedelta(seconds=train.duration_s + 0.02), None)
                index += 1
                continue
            self._delivery(session_id, train, 1, segment, intensity, begun, "completed", train.pulses, offset,
                           begun + timedelta(seconds=train.duration_s + 0.02), None)
            index += 1
        else:
            ended = started + timedelta(seconds=trains[-1].onset_s + trains[-1].duration_s + shift + 0.1)
            status = SessionStatus.COMPLETED
        self._session_row(session_id, visit, facts, device, simulated, status, created, started, ended, segment)

    def _delivery(self, session_id: str, train: Train, attempt: int, segment: int, intensity: float,
                  begun: datetime, state: str, pulses: int, offset: float | None, finished: datetime | None,
                  resolution: str | None) -> None:
        self.tables.deliveries.append((
            session_id, train.index, attempt, "train", segment, train.onset_s, train.pulses, intensity, "serial",
            None, None, _to_db_time(begun), state, pulses, offset, None,
            None if finished is None else _to_db_time(finished), resolution,
        ))

    def _session_row(self, session_id: str, visit: PlannedVisit, facts: ProtocolFacts, device: Device,
                     simulated: bool, status: SessionStatus, created: datetime, started: datetime | None,
                     ended: datetime | None, segments: int) -> None:
        self.tables.sessions.append((
            session_id, visit.subject_id, facts.protocol_id, facts.content_hash, facts.text,
            device.simulated_url if simulated else device.url, device.model, None, device.firmware,
            facts.coil, int(simulated), len(facts.trains), facts.pulses, status.value, _to_db_time(created),
            None if started is None else _to_db_time(started), None if ended is None else _to_db_time(ended),
            segments, 1,
        ))
        self.tables.session_thresholds.append(
            (session_id, 0, facts.reference, visit.threshold_value, visit.threshold_id)
        )


@dataclass(frozen=True)
class ClinicFacts:
    subjects: int
    sessions: int
    deliveries: int
    thresholds: int
    actions: int
    overrides: int
    faults: int
    statuses: Mapping[str, int]
    file_mb: float
    build_s: float


def build_clinic_database(path: Path, scale: float, seed: int = 2024) -> ClinicFacts:
    """Write two years of a busy clinic into a new records database at ``path``."""
    t0 = monotonic_ns_for_benchmarks()
    rng = random.Random(seed)
    Records(path).close()  # the product's schema, migrated to the current version
    protocols = {kind.protocol_file: protocol_facts(kind.protocol_file) for kind in COURSE_KINDS}
    days = _working_days()
    n_subjects = max(4, round(SUBJECTS_AT_SCALE_1 * scale))
    n_sessions = max(40, round(SESSIONS_AT_SCALE_1 * scale))
    subject_ids = [HISTORY_SUBJECT] + [f"C{n:04d}" for n in range(1, n_subjects)]

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Build-time settings only (Records sets the product's own on every open): no waiting for
        # the disk while the fixture is written, a large cache for the index inserts, and a
        # rollback journal so the rows are written once rather than to the WAL and then again.
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN")
        visits, thresholds, subjects = _plan_visits(rng, subject_ids, days, n_sessions, protocols)
        conn.executemany("INSERT INTO subjects (subject_id, created_at) VALUES (?, ?)", subjects)
        conn.executemany(
            """INSERT INTO motor_thresholds (threshold_id, subject_id, stimulator_model, stimulator_serial, coil,
                   value_pct_mso, reference, method, measured_at, trial_log_json, operator, recorded_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            thresholds,
        )
        conn.executemany(
            "INSERT INTO protocol_approvals (protocol_id, content_hash, approved_by, approved_at) VALUES (?, ?, ?, ?)",
            [(f"site-custom-{n}", "sha256:" + f"{rng.getrandbits(256):064x}", "dr-lee",
              _to_db_time(TIMELINE_START + timedelta(days=30 * n))) for n in range(12)],
        )
        tables = Tables()
        writer = SessionWriter(rng, protocols, tables)
        ids = _session_ids(rng)
        outcomes, weights = zip(*OUTCOMES)
        for n, visit in enumerate(visits):
            crashed = n >= len(visits) - CRASHED_SESSIONS
            outcome = "interrupted" if crashed else rng.choices(outcomes, weights)[0]
            simulated = not crashed and rng.random() < SIMULATED_SHARE
            writer.write(next(ids), visit, outcome, simulated)
            if crashed:
                _leave_running(tables)
            if len(tables.deliveries) > 50_000:
                tables.flush(conn)
        tables.flush(conn)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("subjects", "sessions", "deliveries", "motor_thresholds", "operator_actions",
                          "overrides", "faults")
        }
        statuses = dict(conn.execute("SELECT status, count(*) FROM sessions GROUP BY status ORDER BY 2 DESC"))
    finally:
        conn.close()
    _check_as_the_store_reads_it(path)
    return ClinicFacts(
        subjects=counts["subjects"], sessions=counts["sessions"], deliveries=counts["deliveries"],
        thresholds=counts["motor_thresholds"], actions=counts["operator_actions"], overrides=counts["overrides"],
        faults=counts["faults"], statuses=statuses, file_mb=path.stat().st_size / 1e6,
        build_s=(monotonic_ns_for_benchmarks() - t0) / 1e9,
    )


def _leave_running(tables: Tables) -> None:
    """Turn the session just written (interrupted) back into what a dead process leaves: 'running',
    no ended_at, no process_ended fault yet (the next opener writes that)."""
    row = list(tables.sessions[-1])
    row[13], row[16] = SessionStatus.RUNNING.value, None
    tables.sessions[-1] = tuple(row)
    tables.faults.pop()


def _plan_visits(
    rng: random.Random, subject_ids: Sequence[str], days: Sequence[date], n_sessions: int,
    protocols: Mapping[str, ProtocolFacts],
) -> tuple[list[PlannedVisit], list[tuple[Any, ...]], list[tuple[str, str]]]:
    """Courses for every subject, one after another with gaps, until the clinic has ``n_sessions``;
    a motor threshold before each course and weekly during it."""
    kinds, weights = COURSE_KINDS, [k.weight for k in COURSE_KINDS]
    next_day = {s: rng.randrange(len(days) * 4 // 5) for s in subject_ids}
    rmt = {s: rng.uniform(38, 72) for s in subject_ids}
    visits: list[PlannedVisit] = []
    thresholds: list[tuple[Any, ...]] = []
    first_seen: dict[str, datetime] = {}
    while len(visits) < n_sessions:
        progressed = False
        for subject in subject_ids:
            if len(visits) >= n_sessions:
                break
            day_index = next_day[subject]
            if day_index >= len(days):
                continue
            progressed = True
            kind = kinds[0] if subject == HISTORY_SUBJECT else rng.choices(kinds, weights)[0]
            facts = protocols[kind.protocol_file]
            device = DEVICES[kind.device]
            serial = rng.choice(device.serials)
            slot_start = rng.randrange(8 * 6, 17 * 6 - kind.sessions_per_day * 5)  # 10-minute grid, 08:00 on
            done_in_course = 0
            threshold_id, value = 0, 0.0
            days_in_course = 0
            while done_in_course < kind.course_sessions and day_index < len(days):
                day = days[day_index]
                first_of_day = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=10 * slot_start)
                if days_in_course % 5 == 0:  # before the course and then weekly
                    value = round(rmt[subject] * (0.82 if facts.reference == "aMT" else 1.0) + rng.uniform(-2, 2))
                    threshold_id = len(thresholds) + 1
                    measured = first_of_day - timedelta(minutes=rng.uniform(12, 25))
                    thresholds.append(_threshold_row(rng, threshold_id, subject, device.model, serial, facts,
                                                     value, measured))
                    first_seen.setdefault(subject, measured - timedelta(days=rng.uniform(1, 14)))
                for k in range(min(kind.sessions_per_day, kind.course_sessions - done_in_course)):
                    at = first_of_day + timedelta(minutes=50 * k, seconds=rng.uniform(0, 240))
                    visits.append(PlannedVisit(subject, kind, at, threshold_id, value))
                    done_in_course += 1
                day_index += 1
                days_in_course += 1
            next_day[subject] = day_index + rng.randrange(20, 120)
        if not progressed:
            break
    visits.sort(key=lambda v: v.at)
    subjects = sorted((s, _to_db_time(at)) for s, at in first_seen.items())
    return visits, thresholds, subjects


def _threshold_row(rng: random.Random, threshold_id: int, subject: str, model: str, serial: str,
                   facts: ProtocolFacts, value: float, measured: datetime) -> tuple[Any, ...]:
    trials = [
        {"trial": n, "intensity_pct_mso": round(value + rng.uniform(-8, 8)), "entry": "MEP", "seen": True,
         "amplitude_uv": round(rng.uniform(10, 400), 1), "responded": rng.random() < 0.5,
         "estimate_pct_mso": round(value + rng.uniform(-3, 3), 1), "fired_offset_s": round(5.0 * n, 4),
         "entry_attempts": 1}
        for n in range(rng.randrange(12, 30))
    ]
    return (
        threshold_id, subject, model, serial, facts.coil, float(value), facts.reference,
        f"pest, {len(trials)} pulses, MEP ≥ 50 µV (rest)", _to_db_time(measured),
        json.dumps(trials, sort_keys=True), rng.choice(OPERATORS), _to_db_time(measured + timedelta(seconds=3)),
    )


def _check_as_the_store_reads_it(path: Path) -> None:
    """The rows written by hand read back through Records as the store's own would."""
    with Records(path, clock=VirtualClock(wall_start=TODAY)) as records:
        for session in records.sessions(subject_id=HISTORY_SUBJECT)[:3]:
            detail = records.session_detail(session.session_id)
            assert detail.resume_point.pulses_delivered == sum(d.pulses_delivered for d in detail.deliveries)
        assert records.integrity_check() == ("ok",)


# -- timing ---------------------------------------------------------------------------------------


class StatementLog:
    """Every distinct statement the store ran: the parameters of its first run and the operations
    (benchmark rows) that ran it."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Any, set[str]]] = {}
        self.operation = "setting up"

    def note(self, sql: str, params: Any) -> None:
        _, operations = self.seen.setdefault(" ".join(sql.split()), (params, set()))
        operations.add(self.operation)


class _NotingConnection:
    """Stands in for the store's sqlite3 connection and notes what it is asked to run."""

    def __init__(self, conn: sqlite3.Connection, log: StatementLog) -> None:
        self._conn, self._log = conn, log

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self._log.note(sql, params)
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        rows = list(rows)
        if rows:
            self._log.note(sql, rows[0])
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def noting_store(log: StatementLog) -> type[Records]:
    class RecordsNotingStatements(Records):
        def _connect(self) -> sqlite3.Connection:
            return _NotingConnection(super()._connect(), log)  # type: ignore[return-value]

    return RecordsNotingStatements


class Figures:
    """Samples (seconds) per operation; the statement log learns which operation is running."""

    def __init__(self, log: StatementLog) -> None:
        self.samples: dict[str, list[float]] = {}
        self.log = log

    def measure(self, name: str, action: Callable[[], Any], repeat: int = 1) -> None:
        self.log.operation = name
        try:
            for _ in range(repeat):
                t0 = monotonic_ns_for_benchmarks()
                action()
                self.samples.setdefault(name, []).append((monotonic_ns_for_benchmarks() - t0) / 1e9)
        finally:
            self.log.operation = "setting up"

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def median_ms(self, name: str) -> float | None:
        return statistics.median(self.samples[name]) * 1e3 if name in self.samples else None


@contextmanager
def simulator(name: str, clock: VirtualClock) -> Iterator[None]:
    sims.create("rapid2", clock=clock, name=name)
    try:
        yield
    finally:
        sims.remove(name)


def _threshold_for_today(subject_id: str) -> MotorThreshold:
    return MotorThreshold(
        subject_id=subject_id, stimulator_model="magstim-rapid2", stimulator_serial="R2-40117", coil="figure8",
        value_pct_mso=55.0, reference=ThresholdReference.RMT, method="pest, 20 pulses, MEP ≥ 50 µV (rest)",
        measured_at=TODAY - timedelta(hours=2), operator="tech1", trial_log=(),
    )


def _ten_hz_plan(subject_id: str, threshold: MotorThreshold, facts: ProtocolFacts) -> SessionPlan:
    return SessionPlan(
        subject_id=subject_id, protocol_id=facts.protocol_id, protocol_hash=facts.content_hash,
        protocol_text=facts.text, device_url="sim://rapid2", device_model="magstim-rapid2", simulated=True,
        planned_deliveries=len(facts.trains), planned_pulses=facts.pulses, device_firmware="9.0", coil="figure8",
        thresholds_used=(ThresholdUsed(ThresholdReference.RMT, threshold.value_pct_mso, threshold.threshold_id),),
    )


def _quick_check(path: Path, *, skip_check_constraints: bool = False) -> None:
    raw = sqlite3.connect(path)
    try:
        if skip_check_constraints:
            raw.execute("PRAGMA ignore_check_constraints = ON")  # quick_check then skips re-evaluating CHECKs
        assert raw.execute("PRAGMA quick_check(5)").fetchall() == [("ok",)]
    finally:
        raw.close()


def measure_operations(path: Path, subject_id: str, repeat: int, log: StatementLog, label: str) -> Figures:
    """The operations a session and the CLI run, against the database at ``path``.

    Rows the operations need (a fresh threshold, crashed and faulted sessions, a 75-train
    session) are written first through the public API, identically in either database.
    """
    figures = Figures(log)
    store = noting_store(log)
    facts = protocol_facts(TEN_HZ.name)
    clock = VirtualClock(wall_start=TODAY + timedelta(hours=8))
    ten_hz = load_protocol(TEN_HZ)
    schedule = expand(ten_hz, None, ProtocolThreshold("rMT", 55, None, ten_hz.coil, None))
    opens = max(3, repeat // 8)

    # -- rows for the operations, through the API --------------------------------------------------
    with store(path, clock=clock) as records:
        records.ensure_subject(subject_id)
        records.ensure_subject("NEW001")  # no history at all, in either database
        threshold = records.record_motor_threshold(_threshold_for_today(subject_id))
        resumable = []
        for n in range(RESUMABLE_SESSIONS + CRASHED_SESSIONS):
            session = records.create_session(_ten_hz_plan(subject_id, threshold, facts))
            records.start_session(session.session_id, operator="tech1", offset_s=0.0)
            fixture_log = RecordsDeliveryLog(records, session.session_id, clock, clock.now(), "tech1")
            for train in schedule.trains[:5]:
                _deliver(fixture_log, train, clock)
            fixture_log.begin(schedule.trains[5], 0.0, "serial")
            if n < RESUMABLE_SESSIONS:
                records.fault_session(Fault(session.session_id, "coil_overtemp", "coil at 41 C", "train 6"))
                resumable.append(session.session_id)
        # the last CRASHED_SESSIONS stay 'running': closing without ending them is a crash to the next opener

    # -- opening --------------------------------------------------------------------------------------
    figures.measure(f"open Records(path), first after a crash ({CRASHED_SESSIONS} marked)",
                    lambda: store(path, clock=clock).close())
    figures.measure("open Records(path)", lambda: store(path, clock=clock).close(), opens)
    figures.measure("  the damage check, run at open only after an unclean shutdown, a change from "
                    "outside, or weekly (quick_check, CHECKs not re-evaluated)",
                    lambda: _quick_check(path, skip_check_constraints=True), opens)
    figures.measure("  (not run) quick_check re-evaluating every CHECK", lambda: _quick_check(path), opens)

    with store(path, clock=clock) as records:
        # -- planning: what plan_session asks the records -----------------------------------------
        busy_day = _last_day_with_a_real_session(records, subject_id)
        figures.measure("plan: motor_thresholds(subject)", lambda: records.motor_thresholds(subject_id), repeat)
        figures.measure("plan: pulses_on_day(subject, a day with a session)",
                        lambda: records.pulses_on_day(subject_id, busy_day), repeat)
        figures.measure("plan: pulses_on_day(subject, today)",
                        lambda: records.pulses_on_day(subject_id, TODAY.date()), repeat)
        figures.measure("plan: pulses_on_day(subject without history)",
                        lambda: records.pulses_on_day("NEW001", TODAY.date()), repeat)
        sim_clock = VirtualClock(wall_start=TODAY + timedelta(hours=9))
        with simulator(f"scale-plan-{label}", sim_clock):
            request = SessionRequest(TEN_HZ, f"sim://scale-plan-{label}", subject_id)
            figures.measure("plan_session (whole: protocol, device probe, records)",
                            lambda: plan_session(request, records), opens)

        # -- per-train writes of a running 10 Hz session ------------------------------------------
        session = records.create_session(_ten_hz_plan(subject_id, threshold, facts))
        records.start_session(session.session_id, operator="tech1", offset_s=0.0)
        shown_session = session.session_id
        delivery_log = RecordsDeliveryLog(records, session.session_id, clock, clock.now(), "tech1")
        for train in schedule.trains:
            log.operation = "train: begin/progress/finish"
            for name, seconds in zip(("begin_delivery", "record_progress", "finish_delivery"),
                                     _deliver(delivery_log, train, clock), strict=True):
                figures.add(f"train: {name}", seconds)
        figures.measure("complete_session", lambda: records.complete_session(session.session_id))

        # -- resuming a faulted session (what run_planned does, in a new process) --------------------
        for session_id in resumable:
            figures.measure("resume: session, resume_point, skip_partial, resume_session",
                            lambda sid=session_id: _resume(records, sid))
        for session_id in resumable:  # end them, so later opens find what they found before
            records.abort_session(session_id, operator="tech1", reason="benchmark fixture ends here")

        # -- listing and showing ------------------------------------------------------------------
        figures.measure(LIST_ALL, records.sessions, opens)
        figures.measure("sessions(newest=50) + count (`tmsctl sessions`)",
                        lambda: (records.sessions(newest=50), records.count_sessions()), repeat)
        figures.measure("sessions(subject_id=...) (`tmsctl sessions --subject`)",
                        lambda: records.sessions(subject_id=subject_id), repeat)
        figures.measure("session_detail + resume_point (`session show`)",
                        lambda: (records.session_detail(shown_session), records.resume_point(shown_session)), repeat)

    # The stamp of the last full check carries the benchmark's virtual date; to the system clock of
    # the commands below it is months old. One open on the system clock checks and stamps again,
    # as the first command of a clinic's day after a week would.
    Records(path).close()
    figures.measure("process `tmsctl sessions` (whole, as a person runs it)",
                    lambda: _process(["sessions", "--db", str(path)]), 5)
    figures.measure("process `tmsctl session show ID` (whole, as a person runs it)",
                    lambda: _process(["session", "show", shown_session, "--db", str(path)]), 5)
    figures.measure("CLI `tmsctl sessions` (open, list the newest 50, render)", lambda: _cli(["sessions", "--db", str(path)]))
    figures.measure("CLI `tmsctl sessions --subject S`",
                    lambda: _cli(["sessions", "--db", str(path), "--subject", subject_id]), 2)
    figures.measure("CLI `tmsctl session show ID`",
                    lambda: _cli(["session", "show", shown_session, "--db", str(path)]), 2)
    return figures


LIST_ALL = "sessions() (all of them: `tmsctl sessions --limit 0`)"


def _deliver(delivery_log: RecordsDeliveryLog, train: Any, clock: VirtualClock) -> tuple[float, float, float]:
    """One train's three writes, as the runner makes them (intent, trigger acknowledged, end)."""
    clock.advance_to(delivery_log.origin_s + train.onset_s)
    t0 = monotonic_ns_for_benchmarks()
    delivery_log.begin(train, clock.now(), "serial")
    t1 = monotonic_ns_for_benchmarks()
    delivery_log.fired(train, 1)  # the acknowledged trigger: its first pulse is known out
    t2 = monotonic_ns_for_benchmarks()
    started = clock.now()
    clock.advance(train.duration_s)
    dose = DoseCount(train.n_pulses, train.n_pulses, 0, "acknowledged trigger; the device ended it after its last")
    delivery_log.finish(train, dose, started, 0.0)
    t3 = monotonic_ns_for_benchmarks()
    return (t1 - t0) / 1e9, (t2 - t1) / 1e9, (t3 - t2) / 1e9


def _resume(records: Records, session_id: str) -> None:
    records.session(session_id)
    point = records.resume_point(session_id)
    assert point.partial is not None
    records.skip_partial(session_id, point.partial.index, operator="tech1", reason="not repeated (benchmark)")
    records.resume_point(session_id)
    records.resume_session(session_id, operator="tech1", offset_s=0.0)


def _last_day_with_a_real_session(records: Records, subject_id: str) -> date:
    started = [s.started_at for s in records.sessions(subject_id=subject_id) if s.started_at and not s.simulated]
    return (started[-1] if started else TODAY).date()


def _process(args: list[str]) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "tmsctl", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "160"}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _cli(args: list[str]) -> None:
    from typer.testing import CliRunner

    from tmsctl.cli.main import app

    result = CliRunner().invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output


# -- the query plans ------------------------------------------------------------------------------

GROWING_TABLES = ("sessions", "deliveries", "operator_actions", "faults", "overrides", "motor_thresholds",
                  "session_thresholds", "subjects")


@dataclass(frozen=True)
class PlanFinding:
    sql: str
    operations: tuple[str, ...]
    plan: tuple[str, ...]

    @property
    def by_request(self) -> bool:
        """Run only to list every session: reading the whole table is what was asked for."""
        return self.operations == (LIST_ALL,)


def audit_query_plans(path: Path, log: StatementLog) -> tuple[int, list[PlanFinding]]:
    """(statements checked, those whose plan scans a whole table that grows with the clinic)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    checked, flagged = 0, []
    try:
        for sql, (params, operations) in sorted(log.seen.items()):
            if sql.split(" ", 1)[0].upper() not in {"SELECT", "WITH", "INSERT", "UPDATE", "DELETE"}:
                continue  # transactions, pragmas and the migrations' DDL
            if "sqlite_schema" in sql or ("sqlite_master" in sql and not sql.upper().startswith(("SELECT", "WITH"))):
                continue  # a migration's schema edit (writable_schema): not a query of the clinic's rows
            checked += 1
            plan = tuple(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            if any(_scans_a_growing_table(line, sql) for line in plan):
                flagged.append(PlanFinding(sql, tuple(sorted(operations)), plan))
    finally:
        conn.close()
    return checked, flagged


def _scans_a_growing_table(plan_line: str, sql: str) -> bool:
    words = plan_line.split()
    if len(words) < 2 or words[0] != "SCAN":
        return False
    aliases = {alias for table in GROWING_TABLES for alias in _aliases(sql, table)}
    return words[1] in GROWING_TABLES or words[1] in aliases


def _aliases(sql: str, table: str) -> set[str]:
    words = sql.replace(",", " ").split()
    return {words[i + 1] for i, word in enumerate(words[:-1]) if word == table and words[i + 1].isidentifier()}


# -- the whole 10 Hz session ----------------------------------------------------------------------


def _copy_to_disk(source: Path, target: Path) -> None:
    """Copy a database and wait until the copy is on disk: otherwise the first fsync of the timed
    session would also write out the hundreds of megabytes the copy left in the page cache."""
    shutil.copy(source, target)  # copies the 0600 mode too
    with open(target, "rb+") as copy:
        os.fsync(copy.fileno())


def whole_session_on(big_db: Path | None, repeat: int, first_index: int) -> list[float]:
    """bench_session's recorded 10 Hz session, on an empty database or on a copy of ``big_db``."""
    if big_db is None:
        return [bench_session.once(TEN_HZ, True, first_index + i)[0] for i in range(repeat)]

    class RecordsOnACopyOfTheClinic(Records):
        def __init__(self, path: Path, **kwargs: Any) -> None:
            _copy_to_disk(big_db, path)  # before bench_session starts its stopwatch
            super().__init__(path, **kwargs)

    return [bench_session.once(TEN_HZ, True, first_index + i, str(big_db.parent), store=RecordsOnACopyOfTheClinic)[0]
            for i in range(repeat)]


# -- the report -----------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def print_table(rows: Sequence[tuple[str, float | None, float | None]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'operation (median ms)':{width}}  {'empty DB':>10}  {'big DB':>10}  {'big/empty':>9}")
    for name, empty, big in rows:
        ratio = f"{big / empty:8.1f}x" if empty and big else ""
        print(f"{name:{width}}  {_fmt(empty):>10}  {_fmt(big):>10}  {ratio:>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 20,000 sessions (~1.2 M delivery rows)")
    parser.add_argument("--repeat", type=int, default=20, help="samples of each fast read (opens: an eighth, at least 3)")
    parser.add_argument("--session-repeat", type=int, default=2, help="whole 10 Hz sessions on each database")
    parser.add_argument("--keep", type=Path, help="build the big database here once and reuse it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tmsctl-scale-") as tmp:
        work = Path(tmp)
        pristine = args.keep or work / "clinic.db"
        if args.keep is None or not args.keep.exists():
            pristine.parent.mkdir(parents=True, exist_ok=True)
            facts = build_clinic_database(pristine, args.scale)
            print(f"built {pristine.name} in {facts.build_s:.1f} s (plain sqlite3 executemany, one transaction):")
            print(f"  {facts.subjects:,} subjects, {facts.sessions:,} sessions, {facts.deliveries:,} deliveries, "
                  f"{facts.thresholds:,} motor thresholds, {facts.actions:,} actions, {facts.overrides:,} overrides, "
                  f"{facts.faults:,} faults; {facts.file_mb:,.0f} MB")
            print("  statuses: " + ", ".join(f"{k} {v:,}" for k, v in facts.statuses.items()))
        else:
            print(f"reusing {pristine} ({pristine.stat().st_size / 1e6:,.0f} MB)")
        big = work / "big" / "clinic.db"
        big.parent.mkdir(mode=0o700)
        _copy_to_disk(pristine, big)
        empty = work / "empty" / "tmsctl.db"

        log = StatementLog()
        print("timing the operations on an empty database ...", flush=True)
        on_empty = measure_operations(empty, HISTORY_SUBJECT, args.repeat, log, "empty")
        print("timing the operations on the big database ...", flush=True)
        on_big = measure_operations(big, HISTORY_SUBJECT, args.repeat, log, "big")
        print("whole recorded 10 Hz sessions (bench_session.once) ...", flush=True)
        session_empty = whole_session_on(None, args.session_repeat, 700)
        session_big = whole_session_on(pristine, args.session_repeat, 800)

        rows: list[tuple[str, float | None, float | None]] = [
            (name, on_empty.median_ms(name), on_big.median_ms(name)) for name in on_empty.samples
        ]
        rows.append(("whole 10 Hz session, 225 commits (bench_session.once wall)",
                     statistics.median(session_empty) * 1e3, statistics.median(session_big) * 1e3))
        print()
        print_table(rows)
        print("(train: one sample per train of a 75-train session, each one commit with synchronous=FULL; "
              "the CLI rows run in-process through typer's CliRunner)")

        print()
        checked, flagged = audit_query_plans(big, log)
        unexpected = [f for f in flagged if not f.by_request]
        print(f"query plans (EXPLAIN QUERY PLAN on the big database): {checked} statements checked, "
              f"{len(unexpected)} scan a table that grows with the clinic")
        for finding in flagged:
            why = "  (lists every session: a full read is what was asked)" if finding.by_request else ""
            print(f"  {finding.sql[:140]}{'…' if len(finding.sql) > 140 else ''}{why}")
            print(f"      run by: {', '.join(finding.operations)}")
            for line in finding.plan:
                print(f"      {line}")


if __name__ == "__main__":
    main()
