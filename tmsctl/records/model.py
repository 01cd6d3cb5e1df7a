"""What goes in and comes out of the records: enumerations, validation, frozen dataclasses."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from tmsctl.records.errors import InvalidRecord

SESSION_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


# -- enumerations ---------------------------------------------------------------------------------


class SessionStatus(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAULTED = "faulted"
    INTERRUPTED = "interrupted"
    INCOMPLETE = "incomplete"  # the schedule ran to its end, but not every position is known delivered in full


# The status table, as data. Final statuses have no way out.
ALLOWED_STATUS_CHANGES: Mapping[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.PLANNED: frozenset({SessionStatus.RUNNING, SessionStatus.FAULTED, SessionStatus.ABORTED}),
    SessionStatus.RUNNING: frozenset(
        {
            SessionStatus.PAUSED,
            SessionStatus.COMPLETED,
            SessionStatus.INCOMPLETE,
            SessionStatus.ABORTED,
            SessionStatus.FAULTED,
            SessionStatus.INTERRUPTED,
        }
    ),
    SessionStatus.PAUSED: frozenset(
        {SessionStatus.RUNNING, SessionStatus.ABORTED, SessionStatus.FAULTED, SessionStatus.INTERRUPTED}
    ),
    SessionStatus.FAULTED: frozenset({SessionStatus.RUNNING, SessionStatus.ABORTED}),
    SessionStatus.INTERRUPTED: frozenset({SessionStatus.RUNNING, SessionStatus.ABORTED}),
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.INCOMPLETE: frozenset(),
    SessionStatus.ABORTED: frozenset(),
}
_RESUMABLE_STATUSES = frozenset({SessionStatus.PAUSED, SessionStatus.FAULTED, SessionStatus.INTERRUPTED})
# Statuses in which a live process must hold the session's owner lock.
_OWNED_STATUSES = frozenset({SessionStatus.RUNNING, SessionStatus.PAUSED})


class TriggerSource(StrEnum):
    SERIAL = "serial"
    RTS = "rts"
    EXTERNAL_TTL = "external_ttl"


class DeliveryKind(StrEnum):
    TRAIN = "train"
    SINGLE = "single"
    PAIRED = "paired"


class DeliveryState(StrEnum):
    IN_PROGRESS = "in_progress"  # begun; no result recorded (yet, or ever: crash)
    COMPLETED = "completed"  # every planned pulse delivered
    STOPPED = "stopped"  # ended early (abort, fault) with the delivered count known


class Resolution(StrEnum):
    SKIPPED = "skipped"
    RETRIED = "retried"


class ThresholdReference(StrEnum):
    RMT = "rMT"
    AMT = "aMT"


class ActionKind(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    OVERRIDE = "override"
    ACKNOWLEDGE = "acknowledge"
    CONFIRM = "confirm"
    SKIP_PARTIAL = "skip_partial"
    RETRY_PARTIAL = "retry_partial"


# -- validation helpers ---------------------------------------------------------------------------

_SUBJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_DATE_LIKE = re.compile(r"(19|20)\d\d[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])")
_SESSION_ID = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,39}")
_CONTENT_HASH = re.compile(r"(?:[a-z0-9]+:)?[0-9a-f]{32,128}")


def validate_subject_id(subject_id: str) -> str:
    """Return ``subject_id`` if it is a safe pseudonymous code; say why not otherwise.

    Allowed: 1-32 letters, digits, ``_`` or ``-``, starting with a letter or digit, with at least
    one digit (codes such as ``S017`` or ``pilot-03``), and no date inside (a birth date is
    identifying). This catches names, e-mail addresses and birth dates typed by mistake; it
    cannot prove an id is pseudonymous.
    """
    if not isinstance(subject_id, str):
        raise InvalidRecord(f"a subject id must be text, got {type(subject_id).__name__}")
    if "@" in subject_id:
        raise InvalidRecord(
            f"subject id {subject_id!r} looks like an e-mail address",
            hint="use the study's pseudonymous code (for example S017), never a name or e-mail",
        )
    if any(ch.isspace() for ch in subject_id) or "." in subject_id or "," in subject_id:
        raise InvalidRecord(
            f"subject id {subject_id!r} contains spaces or punctuation, like a name",
            hint="use the study's pseudonymous code (letters, digits, _ and -), never a name",
        )
    if not _SUBJECT_ID.fullmatch(subject_id):
        raise InvalidRecord(
            f"subject id {subject_id!r} is not 1-32 letters, digits, '_' or '-' "
            "starting with a letter or digit",
            hint="use the study's pseudonymous code, for example S017",
        )
    if not any(ch.isdigit() for ch in subject_id):
        raise InvalidRecord(
            f"subject id {subject_id!r} has no digit, so it may be a name",
            hint="pseudonymous codes carry a number, for example S017 or pilot-03",
        )
    if _DATE_LIKE.search(subject_id):
        raise InvalidRecord(
            f"subject id {subject_id!r} contains a date (a birth date identifies a person)",
            hint="use the study's pseudonymous code, for example S017",
        )
    return subject_id


def normalize_session_id(text: str) -> str:
    """Session ids are case-insensitive (typed by humans); stored upper-case."""
    if not isinstance(text, str):
        raise InvalidRecord(f"a session id must be text, got {type(text).__name__}")
    candidate = text.strip().upper()
    if not _SESSION_ID.fullmatch(candidate):
        raise InvalidRecord(
            f"session id {text!r} is not 1-40 letters, digits, '_' or '-'",
            hint="session ids look like K7M2-9QXD; `tmsctl sessions` lists them",
        )
    return candidate


def new_session_id() -> str:
    """A short random id a human can read out and type: ``XXXX-XXXX`` in Crockford base32."""
    import secrets  # only a new session needs it: listing and showing them do not load it

    chars = "".join(secrets.choice(SESSION_ID_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def _text(name: str, value: Any, *, max_len: int = 200, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRecord(f"{name} must be text, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidRecord(f"{name} must not be empty")
    if len(value) > max_len:
        raise InvalidRecord(f"{name} is {len(value)} characters long; at most {max_len} are recorded")
    if "\x00" in value:
        raise InvalidRecord(f"{name} contains a NUL character")
    return value


def _optional_text(name: str, value: Any, *, max_len: int = 200) -> str | None:
    return None if value is None else _text(name, value, max_len=max_len)


def _number(name: str, value: Any, *, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidRecord(f"{name} must be finite, got {value}")
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bracket = "(" if low_open else "["
        raise InvalidRecord(f"{name} = {value} is outside {bracket}{low}, {high}]")
    return float(value)


def _count(name: str, value: Any, *, low: int = 0, high: int = 10_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord(f"{name} must be a whole number, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidRecord(f"{name} = {value} is outside [{low}, {high}]")
    return value


def _utc(name: str, value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidRecord(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecord(f"{name} must carry a time zone (naive datetimes are ambiguous): {value}")
    return value.astimezone(UTC)


def _optional_utc(name: str, value: Any) -> datetime | None:
    return None if value is None else _utc(name, value)


def _enum(enum: type[StrEnum], name: str, value: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidRecord(f"{name} must be one of {allowed}; got {value!r}") from None


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising a field of a frozen dataclass


# -- records in and out ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    subject_id: str
    created_at: datetime


@dataclass(frozen=True)
class MotorThreshold:
    """A motor-threshold measurement for one subject on one stimulator (model + serial) and coil."""

    subject_id: str
    stimulator_model: str
    stimulator_serial: str
    coil: str
    value_pct_mso: float
    reference: ThresholdReference
    method: str  # e.g. "Rossini-Rothwell 5/10", "PEST"
    measured_at: datetime
    operator: str
    trial_log: tuple[Mapping[str, Any], ...] = ()
    threshold_id: int | None = None  # set by the store

    def __post_init__(self) -> None:
        validate_subject_id(self.subject_id)
        _text("stimulator_model", self.stimulator_model, max_len=80)
        _text("stimulator_serial", self.stimulator_serial, max_len=80)
        _text("coil", self.coil, max_len=80)
        _set(self, "value_pct_mso", _threshold_pct(self.value_pct_mso))
        _set(self, "reference", _enum(ThresholdReference, "reference", self.reference))
        _text("method", self.method, max_len=200)
        _set(self, "measured_at", _utc("measured_at", self.measured_at))
        _text("operator", self.operator, max_len=80)
        if not isinstance(self.trial_log, Sequence) or isinstance(self.trial_log, str):
            raise InvalidRecord("trial_log must be a sequence of trials (mappings)")
        trials = tuple(self.trial_log)
        for number, trial in enumerate(trials):
            if not isinstance(trial, Mapping):
                raise InvalidRecord(f"trial_log[{number}] must be a mapping, got {type(trial).__name__}")
        try:
            json.dumps(list(trials), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(f"trial_log must be plain JSON data: {exc}") from exc
        _set(self, "trial_log", trials)


@dataclass(frozen=True)
class ProtocolApproval:
    protocol_id: str
    content_hash: str
    approved_by: str
    approved_at: datetime
    approval_id: int


@dataclass(frozen=True)
class ThresholdUsed:
    """A motor threshold a session's intensities were resolved from.

    ``threshold_id`` names the stored measurement; ``None`` means the operator entered the value
    for this session (``--mt PCT``).
    """

    reference: ThresholdReference
    value_pct_mso: float
    threshold_id: int | None = None

    def __post_init__(self) -> None:
        _set(self, "reference", _enum(ThresholdReference, "reference", self.reference))
        _set(self, "value_pct_mso", _threshold_pct(self.value_pct_mso))
        if self.threshold_id is not None:
            _count("threshold_id", self.threshold_id, low=1, high=2**62)


@dataclass(frozen=True)
class SessionPlan:
    """What a session is about to run, recorded before anything fires."""

    subject_id: str
    protocol_id: str
    protocol_hash: str
    protocol_text: str  # the protocol file as run
    device_url: str  # secrets are redacted before storing
    device_model: str
    simulated: bool
    planned_deliveries: int  # positions in the expanded schedule (trains + single/paired pulses)
    planned_pulses: int
    device_serial: str | None = None
    device_firmware: str | None = None
    coil: str | None = None
    thresholds_used: tuple[ThresholdUsed, ...] = ()
    session_id: str | None = None  # None: the store makes a short random one
    replies_confirmed: bool = True  # False for a device that never answers (DuoMAG): nothing it did is confirmed

    def __post_init__(self) -> None:
        validate_subject_id(self.subject_id)
        _text("protocol_id", self.protocol_id, max_len=120)
        _content_hash(self.protocol_hash)
        _text("protocol_text", self.protocol_text, max_len=2_000_000)
        _text("device_url", self.device_url, max_len=1000)
        _text("device_model", self.device_model, max_len=80)
        if not isinstance(self.simulated, bool):
            raise InvalidRecord(f"simulated must be True or False, got {self.simulated!r}")
        _count("planned_deliveries", self.planned_deliveries)
        _count("planned_pulses", self.planned_pulses)
        if self.planned_pulses < self.planned_deliveries:
            raise InvalidRecord(
                f"planned_pulses ({self.planned_pulses}) is smaller than planned_deliveries "
                f"({self.planned_deliveries}); every train or pulse delivers at least one pulse"
            )
        _optional_text("device_serial", self.device_serial, max_len=80)
        _optional_text("device_firmware", self.device_firmware, max_len=80)
        _optional_text("coil", self.coil, max_len=80)
        used = tuple(self.thresholds_used)
        for item in used:
            if not isinstance(item, ThresholdUsed):
                raise InvalidRecord(f"thresholds_used holds ThresholdUsed values, got {type(item).__name__}")
        _set(self, "thresholds_used", used)
        if self.session_id is not None:
            _set(self, "session_id", normalize_session_id(self.session_id))


def _threshold_pct(value: Any) -> float:
    return _number("value_pct_mso", value, low=0, high=100, low_open=True)


def _intensity_pct(name: str, value: Any) -> float:
    # Up to 110 %MSO: the Rapid²'s enhanced-power single pulses.
    return _number(name, value, low=0, high=110, low_open=True)


def _content_hash(value: Any) -> str:
    _text("content hash", value, max_len=200)
    if not _CONTENT_HASH.fullmatch(value):
        raise InvalidRecord(
            f"content hash {value!r} is not lower-case hex (32-128 digits), optionally prefixed 'algo:'",
            hint="pass the hash tmsctl computed for the protocol file, e.g. sha256:…",
        )
    return value


@dataclass(frozen=True)
class Session:
    session_id: str
    subject_id: str
    protocol_id: str
    protocol_hash: str
    protocol_text: str
    device_url: str  # as stored: secrets redacted
    device_model: str
    device_serial: str | None
    device_firmware: str | None
    coil: str | None
    simulated: bool
    planned_deliveries: int
    planned_pulses: int
    thresholds_used: tuple[ThresholdUsed, ...]
    status: SessionStatus
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None  # for interrupted sessions: the last recorded activity
    run_segments: int
    replies_confirmed: bool = True


@dataclass(frozen=True)
class DeliveryPlan:
    """A train or single/paired pulse about to be delivered (written before it fires)."""

    session_id: str
    index: int  # position in the expanded schedule, 0-based
    kind: DeliveryKind
    planned_onset_s: float  # from the schedule's start
    pulses_planned: int
    intensity_pct_mso: float
    trigger_source: TriggerSource
    second_intensity_pct_mso: float | None = None  # paired pulses: the second stimulus
    ipi_ms: float | None = None  # paired pulses: inter-pulse interval

    def __post_init__(self) -> None:
        _set(self, "session_id", normalize_session_id(self.session_id))
        _count("index", self.index)
        _set(self, "kind", _enum(DeliveryKind, "kind", self.kind))
        _set(self, "planned_onset_s", _number("planned_onset_s", self.planned_onset_s, low=0, high=1e7))
        _count("pulses_planned", self.pulses_planned, low=1, high=1_000_000)
        _set(
            self,
            "intensity_pct_mso",
            _intensity_pct("intensity_pct_mso", self.intensity_pct_mso),
        )
        _set(self, "trigger_source", _enum(TriggerSource, "trigger_source", self.trigger_source))
        paired_fields = (self.second_intensity_pct_mso, self.ipi_ms)
        if self.kind is DeliveryKind.PAIRED:
            if None in paired_fields:
                raise InvalidRecord("a paired pulse needs second_intensity_pct_mso and ipi_ms")
            if self.pulses_planned != 2:
                raise InvalidRecord(f"a paired pulse is 2 pulses, not {self.pulses_planned}")
            _set(
                self,
                "second_intensity_pct_mso",
                _intensity_pct("second_intensity_pct_mso", self.second_intensity_pct_mso),
            )
            _set(self, "ipi_ms", _number("ipi_ms", self.ipi_ms, low=0, high=1e6, low_open=True))
        else:
            if paired_fields != (None, None):
                raise InvalidRecord(
                    f"second_intensity_pct_mso and ipi_ms belong to paired pulses, not {self.kind}"
                )
            if self.kind is DeliveryKind.SINGLE and self.pulses_planned != 1:
                raise InvalidRecord(f"a single pulse is 1 pulse, not {self.pulses_planned}")


@dataclass(frozen=True)
class DeliveryResult:
    """How a begun delivery ended. ``completed`` requires every planned pulse delivered."""

    session_id: str
    index: int
    pulses_delivered: int  # known delivered
    completed: bool
    onset_offset_s: float | None = None  # actual onset, monotonic, from the run segment's start
    onset_utc: datetime | None = None
    pulses_uncertain: int = 0  # may or may not have gone out
    evidence: str = ""  # what the counts rest on, in words

    def __post_init__(self) -> None:
        _set(self, "session_id", normalize_session_id(self.session_id))
        _count("index", self.index)
        _count("pulses_delivered", self.pulses_delivered, high=1_000_000)
        _count("pulses_uncertain", self.pulses_uncertain, high=1_000_000)
        _text("evidence", self.evidence, max_len=2000, allow_empty=True)
        if not isinstance(self.completed, bool):
            raise InvalidRecord(f"completed must be True or False, got {self.completed!r}")
        if self.completed and self.pulses_uncertain:
            raise InvalidRecord("a completed delivery has no uncertain pulses")
        if self.onset_offset_s is not None:
            _set(self, "onset_offset_s", _number("onset_offset_s", self.onset_offset_s, low=0, high=1e7))
        _set(self, "onset_utc", _optional_utc("onset_utc", self.onset_utc))


@dataclass(frozen=True)
class Delivery:
    """One attempt at one schedule position, as recorded."""

    session_id: str
    index: int
    attempt: int  # 1, then 2... after retry_partial
    kind: DeliveryKind
    segment: int
    planned_onset_s: float
    pulses_planned: int
    intensity_pct_mso: float
    trigger_source: TriggerSource
    second_intensity_pct_mso: float | None
    ipi_ms: float | None
    started_at: datetime
    state: DeliveryState
    pulses_delivered: int  # known delivered (a lower bound while IN_PROGRESS)
    onset_offset_s: float | None
    onset_utc: datetime | None
    finished_at: datetime | None
    resolution: Resolution | None
    # May or may not have gone out. While IN_PROGRESS (an intent with no outcome, e.g. after a crash)
    # that is every pulse not known delivered.
    pulses_uncertain: int = 0
    evidence: str | None = None

    @property
    def completed(self) -> bool:
        return self.state is DeliveryState.COMPLETED

    @property
    def pulses_at_most(self) -> int:
        """The most that may have gone out: what exposure and caps count."""
        return self.pulses_delivered + self.pulses_uncertain


@dataclass(frozen=True)
class ResumePoint:
    """Where a session stands: the next schedule position and any partial one before it."""

    session_id: str
    next_index: int  # first position neither completed nor explicitly skipped
    planned_deliveries: int
    completed_deliveries: int
    skipped_deliveries: int
    pulses_delivered: int  # known delivered over every attempt (partials included)
    partial: Delivery | None  # the unresolved attempt at next_index that did not complete
    pulses_uncertain: int = 0  # may or may not have gone out, over every attempt

    @property
    def finished(self) -> bool:
        return self.partial is None and self.next_index >= self.planned_deliveries


@dataclass(frozen=True)
class OperatorAction:
    session_id: str
    kind: ActionKind
    operator: str
    reason: str = ""
    at: datetime | None = None  # None: now, on the store's clock
    offset_s: float | None = None
    action_id: int | None = None

    def __post_init__(self) -> None:
        _set(self, "session_id", normalize_session_id(self.session_id))
        _set(self, "kind", _enum(ActionKind, "kind", self.kind))
        _text("operator", self.operator, max_len=80)
        _text("reason", self.reason, max_len=2000, allow_empty=True)
        _set(self, "at", _optional_utc("at", self.at))
        if self.offset_s is not None:
            _set(self, "offset_s", _number("offset_s", self.offset_s, low=0, high=1e7))


@dataclass(frozen=True)
class Override:
    """A rulebook finding an operator overrode, bound to this session and protocol hash."""

    session_id: str
    rule_id: str
    finding: str  # the finding's message: measured value, limit, unit, source
    operator: str
    reason: str
    protocol_hash: str
    ruleset_version: str
    at: datetime | None = None
    offset_s: float | None = None
    override_id: int | None = None

    def __post_init__(self) -> None:
        _set(self, "session_id", normalize_session_id(self.session_id))
        _text("rule_id", self.rule_id, max_len=80)
        _text("finding", self.finding, max_len=2000)
        _text("operator", self.operator, max_len=80)
        _text("reason", self.reason, max_len=2000)
        _content_hash(self.protocol_hash)
        _text("ruleset_version", self.ruleset_version, max_len=80)
        _set(self, "at", _optional_utc("at", self.at))
        if self.offset_s is not None:
            _set(self, "offset_s", _number("offset_s", self.offset_s, low=0, high=1e7))


@dataclass(frozen=True)
class Fault:
    session_id: str
    code: str  # short machine-readable reason, e.g. "keepalive_missed", "coil_overtemp"
    detail: str
    state: str  # the controller (or session) state when it happened
    at: datetime | None = None
    offset_s: float | None = None
    fault_id: int | None = None

    def __post_init__(self) -> None:
        _set(self, "session_id", normalize_session_id(self.session_id))
        _text("code", self.code, max_len=80)
        _text("detail", self.detail, max_len=4000, allow_empty=True)
        _text("state", self.state, max_len=80)
        _set(self, "at", _optional_utc("at", self.at))
        if self.offset_s is not None:
            _set(self, "offset_s", _number("offset_s", self.offset_s, low=0, high=1e7))


@dataclass(frozen=True)
class SessionDetail:
    session: Session
    deliveries: tuple[Delivery, ...]
    actions: tuple[OperatorAction, ...]
    overrides: tuple[Override, ...]
    faults: tuple[Fault, ...]
    resume_point: ResumePoint


@dataclass(frozen=True)
class Exposure:
    """Stimulation a subject received in a time window (simulated sessions excluded).

    ``possible_pulses`` counts the planned pulses of trains that began without a recorded result
    (a crash mid-train): use it for caps, it never under-counts.
    """

    subject_id: str
    start_utc: datetime
    end_utc: datetime
    confirmed_pulses: int
    possible_pulses: int
    sessions_started: int
    last_session_started_at: datetime | None


@dataclass(frozen=True)
class StorageSettings:
    path: Path
    journal_mode: str
    synchronous: str
    foreign_keys: bool
    schema_version: int
    application_id: int
