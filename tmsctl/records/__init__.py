"""Durable session records: the source of truth for what was planned, delivered and decided.

One SQLite file (stdlib ``sqlite3``; WAL journal, ``synchronous=FULL`` except a train's outcome, which the
next intent's sync puts on disk; foreign keys on) holds
subjects, motor thresholds, protocol approvals, sessions, every train or pulse delivered,
operator actions, overridden findings and faults. Every public write is one transaction that
is on disk when the call returns, so a process killed at any instant loses nothing it was told
was recorded. Callers never see SQL: frozen dataclasses go in and come out.

On a server
-----------
``Records("postgresql://USER@HOST/DB")`` (or ``TMSCTL_DB`` set to such a URL) keeps the same records
on a PostgreSQL server, for clinics with several rooms: the same API and rules, durable server-side
commits, server-side owner locks; ``RecordsUnavailable`` when the server cannot be reached (see
``tmsctl.records.server``). ``tmsctl.records.copy`` moves a site's history between the two, verified.

Where the file lives
--------------------
``Records(path)``; without a path, ``$TMSCTL_DB``, else ``$XDG_DATA_HOME/tmsctl/tmsctl.db``, else
``~/.local/share/tmsctl/tmsctl.db`` (see ``default_db_path``). The file is created 0600 and a
directory we create is 0700; SQLite gives its ``-wal``/``-shm`` files the database's mode. An
existing database readable by other users is refused (it holds research subjects' records).

A session, as a runner records it
---------------------------------
::

    rec = Records(clock=clock)                      # marks sessions of dead processes interrupted
    rec.ensure_subject("S017")
    session = rec.create_session(SessionPlan(subject_id="S017", protocol_id="itbs-600", ...))
    rec.record_override(Override(session.session_id, rule_id=..., reason=..., ...))   # if any
    rec.start_session(session.session_id, operator="tech1")
    for index, train in enumerate(schedule):
        rec.begin_delivery(DeliveryPlan(session.session_id, index, DeliveryKind.TRAIN, ...))
        ...fire...                                  # intent is on disk before the first pulse
        rec.finish_delivery(DeliveryResult(session.session_id, index, pulses_delivered=n,
                                           completed=True, onset_offset_s=..., onset_utc=...))
    rec.complete_session(session.session_id)

``begin_delivery`` is written *before* the train fires and ``finish_delivery`` after (the full
train row, one transaction), so a train cut short by a crash is on record as started
(``DeliveryState.IN_PROGRESS``) instead of missing, which is what would let a resume repeat it:
its recorded ``pulses_delivered`` (raised by optional ``record_progress`` calls, one transaction
per pulse, for host-timed trains) is a lower bound and ``pulses_planned`` an upper bound. Trains
and single/paired pulses share one index space, the position in the expanded schedule (0-based).
Write ``begin_delivery`` during the wait before the train, not at its deadline: it costs an fsync.

Resuming, never repeating or skipping
-------------------------------------
``resume_point(session_id)`` gives ``next_index``, the first schedule position not recorded
complete (or explicitly skipped), and ``partial``: the attempt at that position that started
but did not complete, if any. ``begin_delivery`` accepts only ``next_index`` and refuses while a
partial is unresolved; the runner resolves it explicitly with ``skip_partial`` or
``retry_partial`` (both need an operator and a reason, and are recorded as operator actions). A
partial unique index in the database also refuses a second completion of any position.

Session status
--------------
``planned → running ⇄ paused``; ``planned/running/paused → faulted`` (``fault_session``);
``running/paused → interrupted`` (found at ``Records()`` open: the owning process is gone);
``paused/faulted/interrupted → running`` (``resume_session``); ``→ completed`` only from running
with every position delivered; ``→ aborted`` from any non-final status. ``completed`` and
``aborted`` are final. A running session is owned by one process through a lock file
(``<db>.owners/<session>.lock``, flock): the kernel releases it when the process dies, which is
how the next ``Records()`` tells a dead owner (mark ``interrupted``, record the fault "process
ended without closing the session") from a live one in another process (leave it alone).

Times: ``*_utc``/``*_at`` are aware UTC datetimes (the store's clock stamps those a caller leaves
``None``); ``*_offset_s`` are monotonic seconds since the start of the run segment (each
``start_session``/``resume_session`` in a new process starts a segment; deliveries record theirs).

API at a glance (``Records`` methods; every input is a frozen, validated dataclass or a plain
value; invalid input raises ``InvalidRecord``, contradictions ``RecordRefused``, unknown ids
``UnknownRecord``, a live owner elsewhere ``SessionOwnedElsewhere``; all are ``RecordsError``)::

    Records(path=None, *, clock=None, env=None)            context manager; close()
    add_subject(id) / ensure_subject(id) -> Subject;  subject(id) -> Subject | None;  subjects()
    record_motor_threshold(MotorThreshold) -> MotorThreshold;  motor_thresholds(subject_id)
    latest_motor_threshold(subject_id, *, stimulator_model, stimulator_serial, coil)
    approve_protocol(protocol_id, content_hash, *, approved_by, approved_at=None) -> ProtocolApproval
    protocol_approvals(protocol_id=None, content_hash=None);  is_protocol_approved(id, hash) -> bool
    create_session(SessionPlan) -> Session;  session(id);  sessions(*, subject_id=None, status=None)
    start_session(id, *, operator) / pause_session(id, *, operator, reason="")
    resume_session(id, *, operator, reason="") / complete_session(id)
    abort_session(id, *, operator, reason) / fault_session(Fault)          -> Session
    begin_delivery(DeliveryPlan) / record_progress(id, index, *, pulses_delivered, ...)
    finish_delivery(DeliveryResult)                                        -> Delivery
    resume_point(id) -> ResumePoint;  skip_partial / retry_partial(id, index, *, operator, reason)
    record_action(OperatorAction);  record_override(Override);  record_fault(Fault)
    session_detail(id) -> SessionDetail
    exposure_between(subject_id, start_utc, end_utc) / exposure_on_day(subject_id, day, *, tz)
    pulses_on_day(subject_id, day, *, tz) -> int       (cap-safe: counts unconfirmed trains)
    mark_interrupted_sessions();  integrity_check();  storage_settings()
"""

from tmsctl.records.errors import (
    DatabaseNotFound,
    InvalidRecord,
    RecordRefused,
    RecordsError,
    RecordsUnavailable,
    SessionOwnedElsewhere,
    UnknownRecord,
)
from tmsctl.records.model import (
    ALLOWED_STATUS_CHANGES,
    ActionKind,
    Delivery,
    DeliveryKind,
    DeliveryPlan,
    DeliveryResult,
    DeliveryState,
    Exposure,
    Fault,
    MotorThreshold,
    OperatorAction,
    Override,
    ProtocolApproval,
    Resolution,
    ResumePoint,
    Session,
    SessionDetail,
    SessionPlan,
    SessionStatus,
    StorageSettings,
    Subject,
    ThresholdReference,
    ThresholdUsed,
    TriggerSource,
    new_session_id,
    normalize_session_id,
    validate_subject_id,
)
from tmsctl.records.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, apply_migrations
from tmsctl.records.store import Records, default_db_path

__all__ = [
    "ALLOWED_STATUS_CHANGES",
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ActionKind",
    "DatabaseNotFound",
    "Delivery",
    "DeliveryKind",
    "DeliveryPlan",
    "DeliveryResult",
    "DeliveryState",
    "Exposure",
    "Fault",
    "InvalidRecord",
    "MotorThreshold",
    "OperatorAction",
    "Override",
    "ProtocolApproval",
    "RecordRefused",
    "Records",
    "RecordsError",
    "RecordsUnavailable",
    "Resolution",
    "ResumePoint",
    "Session",
    "SessionDetail",
    "SessionOwnedElsewhere",
    "SessionPlan",
    "SessionStatus",
    "StorageSettings",
    "Subject",
    "ThresholdReference",
    "ThresholdUsed",
    "TriggerSource",
    "UnknownRecord",
    "apply_migrations",
    "default_db_path",
    "new_session_id",
    "normalize_session_id",
    "validate_subject_id",
]
