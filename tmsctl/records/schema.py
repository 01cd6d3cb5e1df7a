"""The stored format: tables, migrations, the schema version and how times are written."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from tmsctl.records.errors import RecordsError

SCHEMA_VERSION = 5
APPLICATION_ID = 0x544D5343  # "TMSC" in the SQLite header: tells our files from anyone else's


# -- schema ---------------------------------------------------------------------------------------

_ISO = "%Y-%m-%dT%H:%M:%S.%f+00:00"

_SCHEMA_V1 = """
CREATE TABLE subjects (
    subject_id  TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
);

CREATE TABLE motor_thresholds (
    threshold_id      INTEGER PRIMARY KEY,
    subject_id        TEXT NOT NULL REFERENCES subjects(subject_id),
    stimulator_model  TEXT NOT NULL,
    stimulator_serial TEXT NOT NULL,
    coil              TEXT NOT NULL,
    value_pct_mso     REAL NOT NULL CHECK (value_pct_mso > 0 AND value_pct_mso <= 100),
    reference         TEXT NOT NULL CHECK (reference IN ('rMT', 'aMT')),
    method            TEXT NOT NULL,
    measured_at       TEXT NOT NULL,
    trial_log_json    TEXT NOT NULL,
    operator          TEXT NOT NULL,
    recorded_at       TEXT NOT NULL
);
CREATE INDEX motor_thresholds_lookup
    ON motor_thresholds (subject_id, stimulator_model, stimulator_serial, coil, measured_at);

CREATE TABLE protocol_approvals (
    approval_id   INTEGER PRIMARY KEY,
    protocol_id   TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    approved_by   TEXT NOT NULL,
    approved_at   TEXT NOT NULL
);
CREATE INDEX protocol_approvals_lookup ON protocol_approvals (protocol_id, content_hash);

CREATE TABLE sessions (
    session_id          TEXT PRIMARY KEY,
    subject_id          TEXT NOT NULL REFERENCES subjects(subject_id),
    protocol_id         TEXT NOT NULL,
    protocol_hash       TEXT NOT NULL,
    protocol_text       TEXT NOT NULL,
    device_url          TEXT NOT NULL,
    device_model        TEXT NOT NULL,
    device_serial       TEXT,
    device_firmware     TEXT,
    coil                TEXT,
    simulated           INTEGER NOT NULL CHECK (simulated IN (0, 1)),
    planned_deliveries  INTEGER NOT NULL CHECK (planned_deliveries >= 0),
    planned_pulses      INTEGER NOT NULL CHECK (planned_pulses >= planned_deliveries),
    status              TEXT NOT NULL CHECK (status IN
                          ('planned', 'running', 'paused', 'completed', 'aborted', 'faulted', 'interrupted')),
    created_at          TEXT NOT NULL,
    started_at          TEXT,
    ended_at            TEXT,
    run_segments        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_subject ON sessions (subject_id, started_at);
CREATE INDEX sessions_by_status ON sessions (status);

-- Whether a session is simulated is fixed at creation: nothing may relabel it.
CREATE TRIGGER sessions_simulated_fixed BEFORE UPDATE OF simulated, subject_id ON sessions
BEGIN SELECT RAISE(ABORT, 'a session''s subject and simulated flag never change'); END;
CREATE TRIGGER sessions_kept BEFORE DELETE ON sessions
BEGIN SELECT RAISE(ABORT, 'sessions are never deleted'); END;

CREATE TABLE session_thresholds (
    session_id     TEXT NOT NULL REFERENCES sessions(session_id),
    position       INTEGER NOT NULL,
    reference      TEXT NOT NULL CHECK (reference IN ('rMT', 'aMT')),
    value_pct_mso  REAL NOT NULL,
    threshold_id   INTEGER REFERENCES motor_thresholds(threshold_id),
    PRIMARY KEY (session_id, position)
);

CREATE TABLE deliveries (
    session_id                TEXT NOT NULL REFERENCES sessions(session_id),
    delivery_index            INTEGER NOT NULL CHECK (delivery_index >= 0),
    attempt                   INTEGER NOT NULL CHECK (attempt >= 1),
    kind                      TEXT NOT NULL CHECK (kind IN ('train', 'single', 'paired')),
    segment                   INTEGER NOT NULL,
    planned_onset_s           REAL NOT NULL,
    pulses_planned            INTEGER NOT NULL CHECK (pulses_planned >= 1),
    intensity_pct_mso         REAL NOT NULL,
    trigger_source            TEXT NOT NULL CHECK (trigger_source IN ('serial', 'rts', 'external_ttl')),
    second_intensity_pct_mso  REAL,
    ipi_ms                    REAL,
    started_at                TEXT NOT NULL,
    state                     TEXT NOT NULL CHECK (state IN ('in_progress', 'completed', 'stopped')),
    pulses_delivered          INTEGER NOT NULL
                                CHECK (pulses_delivered >= 0 AND pulses_delivered <= pulses_planned),
    onset_offset_s            REAL,
    onset_utc                 TEXT,
    finished_at               TEXT,
    resolution                TEXT CHECK (resolution IS NULL OR resolution IN ('skipped', 'retried')),
    PRIMARY KEY (session_id, delivery_index, attempt),
    CHECK (state != 'completed' OR pulses_delivered = pulses_planned),
    CHECK (state != 'completed' OR resolution IS NULL)
);
-- Defence in depth for "never repeat": at most one live attempt, and one completion, per position.
CREATE UNIQUE INDEX deliveries_one_live_attempt
    ON deliveries (session_id, delivery_index) WHERE resolution IS NULL;
CREATE UNIQUE INDEX deliveries_one_completion
    ON deliveries (session_id, delivery_index) WHERE state = 'completed';
CREATE INDEX deliveries_by_start ON deliveries (started_at);
CREATE TRIGGER deliveries_kept BEFORE DELETE ON deliveries
BEGIN SELECT RAISE(ABORT, 'delivery records are never deleted'); END;
CREATE TRIGGER deliveries_final BEFORE UPDATE ON deliveries
WHEN (OLD.state != 'in_progress' AND (NEW.state != OLD.state OR NEW.pulses_delivered != OLD.pulses_delivered))
  OR (OLD.resolution IS NOT NULL AND NEW.resolution IS NOT OLD.resolution)
BEGIN SELECT RAISE(ABORT, 'a finished delivery keeps its outcome'); END;

CREATE TABLE operator_actions (
    action_id   INTEGER PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(session_id),
    kind        TEXT NOT NULL CHECK (kind IN ('start', 'pause', 'resume', 'abort', 'override',
                    'acknowledge', 'confirm', 'skip_partial', 'retry_partial')),
    operator    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          TEXT NOT NULL,
    offset_s    REAL
);
CREATE INDEX operator_actions_by_session ON operator_actions (session_id, action_id);

CREATE TABLE overrides (
    override_id      INTEGER PRIMARY KEY,
    session_id       TEXT NOT NULL REFERENCES sessions(session_id),
    rule_id          TEXT NOT NULL,
    finding          TEXT NOT NULL,
    operator         TEXT NOT NULL,
    reason           TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    protocol_hash    TEXT NOT NULL,
    ruleset_version  TEXT NOT NULL,
    at               TEXT NOT NULL,
    offset_s         REAL
);
CREATE INDEX overrides_by_session ON overrides (session_id, override_id);

CREATE TABLE faults (
    fault_id    INTEGER PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(session_id),
    code        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    state       TEXT NOT NULL,
    at          TEXT NOT NULL,
    offset_s    REAL
);
CREATE INDEX faults_by_session ON faults (session_id, fault_id);
""" + "".join(
    f"""
CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END;
CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END;
"""
    for table in (
        "subjects",
        "motor_thresholds",
        "protocol_approvals",
        "session_thresholds",
        "operator_actions",
        "overrides",
        "faults",
    )
)

# MIGRATIONS[n] takes a database at schema version n to n + 1. Append; never edit a shipped step.
Migration = Callable[[sqlite3.Connection], None]


def _create_schema_v1(conn: sqlite3.Connection) -> None:
    for statement in _split_sql(_SCHEMA_V1):
        conn.execute(statement)


def _split_sql(script: str) -> list[str]:
    # executescript() would COMMIT our transaction first; split on statement ends instead
    # (a trigger body's inner ';' is followed by ' END', never by a newline).
    statements, current = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";") and sqlite3.complete_statement("\n".join(current)):
            statements.append("\n".join(current).strip())
            current = []
    if "".join(current).strip():
        statements.append("\n".join(current).strip())
    return [s for s in statements if s]


def _add_replies_confirmed_v2(conn: sqlite3.Connection) -> None:
    # A device that never answers (Deymed DuoMAG) cannot confirm what it was told or that a pulse
    # left: its sessions are marked so, and every delivery in them counts as unconfirmed.
    conn.execute("ALTER TABLE sessions ADD COLUMN replies_confirmed INTEGER NOT NULL DEFAULT 1")


_DELIVERY_OUTCOME_FINAL_V3 = """
CREATE TRIGGER deliveries_final BEFORE UPDATE ON deliveries
WHEN (OLD.state != 'in_progress' AND (NEW.state != OLD.state OR NEW.pulses_delivered != OLD.pulses_delivered
                                      OR NEW.pulses_uncertain != OLD.pulses_uncertain))
  OR (OLD.resolution IS NOT NULL AND NEW.resolution IS NOT OLD.resolution)
BEGIN SELECT RAISE(ABORT, 'a finished delivery keeps its outcome'); END
"""

_DELIVERY_DOSE_BOUNDS_V3 = [
    f"""
CREATE TRIGGER deliveries_dose_bounded_{when} BEFORE {event} ON deliveries
WHEN NEW.pulses_delivered + NEW.pulses_uncertain > NEW.pulses_planned
  OR (NEW.state = 'completed' AND NEW.pulses_uncertain != 0)
BEGIN SELECT RAISE(ABORT, 'delivered + uncertain pulses exceed the plan, or a completed delivery has uncertain pulses'); END
"""
    for when, event in (("insert", "INSERT"), ("update", "UPDATE"))
]
_SESSION_STATUSES_V1 = "'faulted', 'interrupted')"
_SESSION_STATUSES_V3 = "'faulted', 'interrupted', 'incomplete')"


def _add_dose_evidence_v3(conn: sqlite3.Connection) -> None:
    # What a delivery put out is two numbers: pulses known delivered, and pulses that may or may not
    # have gone out (a train cut short, a trigger never acknowledged), with the evidence in words.
    # A session whose schedule ran to its end without every position known delivered in full ends
    # 'incomplete', never 'completed'.
    conn.execute(
        "ALTER TABLE deliveries ADD COLUMN pulses_uncertain INTEGER NOT NULL DEFAULT 0 CHECK (pulses_uncertain >= 0)"
    )
    conn.execute("ALTER TABLE deliveries ADD COLUMN evidence TEXT")
    conn.execute("DROP TRIGGER deliveries_final")
    conn.execute(_DELIVERY_OUTCOME_FINAL_V3.strip())
    for statement in _DELIVERY_DOSE_BOUNDS_V3:
        conn.execute(statement.strip())
    # SQLite cannot ALTER a CHECK; widening an IN list leaves every stored row valid and the file
    # format unchanged, the case SQLite's documentation allows a direct schema edit for.
    (schema_version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    try:
        changed = conn.execute(
            "UPDATE sqlite_schema SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'sessions' "
            "AND instr(sql, ?) > 0",
            (_SESSION_STATUSES_V1, _SESSION_STATUSES_V3, _SESSION_STATUSES_V1),
        ).rowcount
        conn.execute(f"PRAGMA schema_version = {schema_version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    if changed != 1:
        raise RecordsError("the sessions table is not the one this migration knows; the database was not changed")


_COURSES_V4 = """
CREATE TABLE courses (
    course_id               INTEGER PRIMARY KEY,
    subject_id              TEXT NOT NULL REFERENCES subjects(subject_id),
    template_id             TEXT,
    protocol_id             TEXT NOT NULL,
    protocol_hash           TEXT NOT NULL,
    protocol_text           TEXT NOT NULL,
    target                  TEXT,
    coil                    TEXT,
    planned_sessions        INTEGER NOT NULL CHECK (planned_sessions >= 1),
    sessions_per_day        INTEGER NOT NULL CHECK (sessions_per_day >= 1),
    days_per_week           INTEGER NOT NULL CHECK (days_per_week BETWEEN 1 AND 7),
    min_interval_min        REAL CHECK (min_interval_min IS NULL OR min_interval_min > 0),
    taper                   TEXT,
    threshold_every_days    INTEGER CHECK (threshold_every_days IS NULL OR threshold_every_days >= 1),
    prescriber              TEXT NOT NULL,
    start_date              TEXT NOT NULL,
    created_at              TEXT NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN ('active', 'completed', 'stopped')),
    end_date                TEXT,
    end_reason              TEXT,
    ended_by                TEXT,
    ended_at                TEXT,
    CHECK ((status = 'active') = (end_date IS NULL)),
    CHECK (end_date IS NULL OR end_date >= start_date)
);
-- One active course per subject, whatever the caller forgot to check.
CREATE UNIQUE INDEX courses_one_active ON courses (subject_id) WHERE status = 'active';
CREATE INDEX courses_by_subject ON courses (subject_id, start_date);
CREATE TRIGGER courses_kept BEFORE DELETE ON courses
BEGIN SELECT RAISE(ABORT, 'courses are never deleted'); END;
CREATE TRIGGER courses_closed_final BEFORE UPDATE ON courses
WHEN OLD.status != 'active'
BEGIN SELECT RAISE(ABORT, 'a closed course is final'); END;
CREATE TRIGGER courses_identity_fixed BEFORE UPDATE OF subject_id, start_date, created_at ON courses
BEGIN SELECT RAISE(ABORT, 'a course''s subject and start never change'); END;

CREATE TABLE course_plan_changes (
    change_id   INTEGER PRIMARY KEY,
    course_id   INTEGER NOT NULL REFERENCES courses(course_id),
    field       TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT,
    changed_by  TEXT NOT NULL,
    reason      TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    effective   TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX course_plan_changes_by_course ON course_plan_changes (course_id, change_id);

CREATE TABLE outcome_entries (
    entry_id     INTEGER PRIMARY KEY,
    course_id    INTEGER NOT NULL REFERENCES courses(course_id),
    scale_id     TEXT NOT NULL,
    score        REAL NOT NULL,
    items_json   TEXT,
    point        TEXT NOT NULL CHECK (point IN ('baseline', 'weekly', 'end', 'follow_up', 'other')),
    rated_on     TEXT NOT NULL,
    rater        TEXT NOT NULL,
    note         TEXT,
    recorded_at  TEXT NOT NULL
);
CREATE INDEX outcome_entries_by_course ON outcome_entries (course_id, scale_id, rated_on);
""" + "".join(
    f"""
CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END;
CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END;
"""
    for table in ("course_plan_changes", "outcome_entries")
)


def _add_courses_v4(conn: sqlite3.Connection) -> None:
    # A course is a prescription over many sessions. Its sessions are not linked by a column: they
    # are the subject's sessions of a prescribed protocol started within the course's dates, read
    # from the session records themselves (tmsctl.records.courses), so the session path needs no
    # course at all and nothing can drift out of step.
    for statement in _split_sql(_COURSES_V4):
        conn.execute(statement)


_MEP_MEASUREMENTS_V5 = """
CREATE TABLE mep_measurements (
    measurement_id     INTEGER PRIMARY KEY,
    subject_id         TEXT NOT NULL REFERENCES subjects(subject_id),
    kind               TEXT NOT NULL CHECK (kind IN ('io_curve', 'hotspot', 'mt_stopped')),
    status             TEXT NOT NULL CHECK (status IN ('completed', 'stopped')),
    stimulator_model   TEXT NOT NULL,
    stimulator_serial  TEXT NOT NULL,
    coil               TEXT NOT NULL,
    muscle             TEXT NOT NULL,
    pulses_delivered   INTEGER NOT NULL CHECK (pulses_delivered >= 0),
    result_json        TEXT,
    trial_log_json     TEXT NOT NULL,
    stop_reason        TEXT,
    operator           TEXT NOT NULL,
    measured_at        TEXT NOT NULL,
    recorded_at        TEXT NOT NULL,
    CHECK ((status = 'stopped') = (stop_reason IS NOT NULL))
);
CREATE INDEX mep_measurements_lookup ON mep_measurements (subject_id, kind, measured_at);
CREATE TRIGGER mep_measurements_append_only_update BEFORE UPDATE ON mep_measurements
BEGIN SELECT RAISE(ABORT, 'mep_measurements are append-only'); END;
CREATE TRIGGER mep_measurements_append_only_delete BEFORE DELETE ON mep_measurements
BEGIN SELECT RAISE(ABORT, 'mep_measurements are append-only'); END;
"""


def _add_mep_measurements_v5(conn: sqlite3.Connection) -> None:
    # Measurements made from MEPs other than a recorded threshold: input–output curves, hotspot
    # searches, and threshold hunts that stopped before a threshold (their pulses were given and
    # are kept). Every delivered pulse is one entry of the trial log (tmsctl.records.meps).
    for statement in _split_sql(_MEP_MEASUREMENTS_V5):
        conn.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (
    _create_schema_v1, _add_replies_confirmed_v2, _add_dose_evidence_v3, _add_courses_v4, _add_mep_measurements_v5,
)


def apply_migrations(conn: sqlite3.Connection, migrations: Sequence[Migration], *, path: str = "") -> int:
    """Bring the database to ``len(migrations)``, each step in its own transaction.

    A failing step rolls back and leaves the database at the previous version. Returns the
    version reached. ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    target = len(migrations)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > target:
                raise RecordsError(
                    f"the records database {path} has schema version {version}; this tmsctl knows "
                    f"versions up to {target}",
                    path=path,
                    hint="upgrade tmsctl; an older version must not write to a newer database",
                )
            if version == target:
                conn.execute("COMMIT")
                return version
            migrations[version](conn)
            if version == 0:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


# -- conversions ----------------------------------------------------------------------------------


def _to_db_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_ISO)


def _from_db_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)  # we write only _ISO; this is the fast parser


def _from_db_time_required(text: str) -> datetime:
    moment = _from_db_time(text)
    assert moment is not None
    return moment
