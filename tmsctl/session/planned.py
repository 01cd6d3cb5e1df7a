"""A session end to end: plan it, check it, confirm it, run it, record it, resume it.

This is what ``tmsctl run`` does, as a Python API labs can call too. The steps keep the safety
order: the protocol is validated and checked against the connected model's limits (and the
subject's motor threshold and today's exposure) before anything is armed; the session and its
overrides are on record before the first train; every train's intent is on disk before it fires.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tmsctl.core.clock import Clock
from tmsctl.core.errors import InvalidArgument, SafetyViolation, TmsError
from tmsctl.core.events import Listener
from tmsctl.core.registry import open_driver
from tmsctl.core.url import DeviceURL, parse
from tmsctl.drivers.base import SIMULATOR_IDENTITY_PREFIX, Capability, DeviceInfo
from tmsctl.protocols.loader import load_protocol
from tmsctl.protocols.models import Coil, Protocol
from tmsctl.protocols.rules import SitePolicy, Verdict, check
from tmsctl.protocols.schedule import Schedule, ScheduledTrain
from tmsctl.protocols.thresholds import MotorThreshold
from tmsctl.session.approval import APPROVAL_RULE_ID, ApprovalStatus, approval_status
from tmsctl.session.dose import DoseCount
from tmsctl.session.host import AuditListener, SessionHost, clock_for
from tmsctl.session.runner import DeliveryLog, Progress, RunOutcome, RunResult, SessionRunner

KIND_OF_TRAIN = {"single_pulse": "single", "paired_pulse": "paired"}


@dataclass
class SessionRequest:
    protocol_path: Path
    device_url: str
    subject_id: str
    operator: str = "operator"
    mt_pct_mso: float | None = None  # measured now; otherwise the latest on record
    overrides: Mapping[str, str] = field(default_factory=dict)
    resume_session_id: str | None = None
    virtual_time: bool = False  # only for in-process simulators
    trigger_source: str = "serial"
    log_dir: Path | None = None
    allow_unapproved_reason: str | None = None  # run a protocol nobody approved; recorded
    max_mt_age_days: float | None = None  # stricter than the rulebook's default, never looser
    stimulator_serial: str | None = None  # use only thresholds measured on this unit


def trigger_source_of(protocol: Protocol, requested: str) -> str:
    """What fires the pulses: an externally timed protocol's ``trigger`` decides (``rts``: tmsctl times
    each edge; ``external``: a box outside tmsctl); for a protocol the stimulator times, the request's
    choice (a serial command or an RTS edge per train)."""
    if protocol.timed_by == "external_trigger":
        return "rts" if protocol.trigger == "rts" else "external_ttl"
    return requested


@dataclass
class PlannedSession:
    request: SessionRequest
    protocol: Protocol
    protocol_text: str
    device: DeviceURL
    info: DeviceInfo
    verdict: Verdict
    schedule: Schedule
    thresholds: tuple[MotorThreshold, ...]
    clock: Clock
    approval: ApprovalStatus
    threshold_ids: dict[int, int] = field(default_factory=dict)  # id(MotorThreshold) -> records id
    start_index: int = 0
    pulses_already_delivered: int = 0
    pulses_already_uncertain: int = 0
    history: SubjectHistory | None = None  # what the site caps were judged against
    threshold_change: ThresholdChange | None = None  # a resume at another threshold, with its reason

    @property
    def simulated(self) -> bool:
        return self.info.simulated


RETHRESHOLD_RULE_ID = "mt.rethreshold"
RESUME_DEVICE_RULE_ID = "resume.simulated"
# How far back the last session start is looked for: the spacing rule is about minutes, a day
# boundary must not hide a session started just before midnight, and a site may tighten the spacing.
_LAST_START_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class SubjectHistory:
    """The subject's stimulation so far, as the site caps judge the next session against it."""

    pulses_today: int  # known delivered + uncertain: the count that never under-counts
    sessions_today: int
    minutes_since_last_start: float | None  # negative: a start on record after "now" (a clock moved)


@dataclass(frozen=True)
class ThresholdChange:
    """A resumed session run at another threshold than the one it started with."""

    reference: str
    recorded_pct_mso: float
    new_pct_mso: float
    reason: str

    def describe(self, session_id: str) -> str:
        return (
            f"session {session_id} started at {self.reference} {self.recorded_pct_mso:g} %MSO; "
            f"resumed at {self.reference} {self.new_pct_mso:g} %MSO"
        )


class SessionRefused(SafetyViolation):
    """The protocol may not run as requested; ``verdict`` holds every finding."""

    def __init__(self, message: str, verdict: Verdict | None = None, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.verdict = verdict


_THRESHOLD_RULES = ("mt.", "context.intensity")


def _refusal_hint(verdict: Verdict) -> str:
    """What to do about a refused protocol: each refusal's own advice, once, then the rule that
    refusals are not overridden (so the technician is not sent to change a protocol that is fine)."""
    advice: list[str] = []
    for finding in verdict.refusals:
        if finding.rule_id.startswith(_THRESHOLD_RULES):
            hint = "give the threshold measured today with --mt PCT, or hunt and record one with `tmsctl mt`"
        else:
            hint = finding.hint
        if hint and hint not in advice:
            advice.append(hint)
    if not advice:
        advice.append("the protocol or the device must change")
    return "; ".join(advice) + " (refusals cannot be overridden)"


def plan_session(request: SessionRequest, records: Any) -> PlannedSession:
    """Load and check everything; connect once to learn the model, then release the device.

    Nothing is armed and nothing is recorded. Raises ProtocolFileError, SessionRefused,
    DeviceUnavailable/ConnectionFailed with what to do next.
    """
    protocol = load_protocol(request.protocol_path)
    text = Path(request.protocol_path).read_text(encoding="utf-8")
    device = parse(request.device_url)
    clock = clock_for(device, virtual_time=request.virtual_time)
    driver = open_driver(device, clock)
    try:
        info = driver.connect()
        limits = driver.limits
    finally:
        driver.close()
    resumed = None
    if request.resume_session_id and records is not None:
        resumed = records.session(request.resume_session_id)
    kept = _resumed_thresholds(request, protocol, info, resumed) if resumed is not None else None
    if kept is not None:
        thresholds, threshold_ids, change = kept
    else:
        (thresholds, threshold_ids), change = _thresholds(request, protocol, info, records), None
    overrides = dict(request.overrides)
    if change is not None and change.reason:
        overrides.pop(RETHRESHOLD_RULE_ID)  # lifted here, not by the rulebook: not an unused override
    now = clock.wall()
    history = subject_history(records, request.subject_id, now, simulated=info.simulated, resuming=resumed)
    verdict = check(
        protocol, device=limits, thresholds=thresholds, overrides=overrides,
        pulses_already_today=history.pulses_today, sessions_already_today=history.sessions_today,
        minutes_since_last_session_start=history.minutes_since_last_start, require_complete=True, as_of=now,
        policy=SitePolicy(max_motor_threshold_age_days=request.max_mt_age_days),
    )
    approval = approval_status(protocol.id, verdict.protocol_hash, records)
    planned = PlannedSession(
        request, protocol, text, device, info, verdict, verdict.schedule, thresholds, clock, approval, threshold_ids,
        history=history, threshold_change=change,
    )
    # A refusal is absolute, so it is said first: approving a protocol that cannot run is wasted review.
    if verdict.status == "refused":
        raise SessionRefused(
            f"protocol {protocol.id} is refused: " + "; ".join(f.message for f in verdict.refusals), verdict,
            hint=_refusal_hint(verdict),
        )
    if not approval.approved and not (request.allow_unapproved_reason or "").strip():
        raise SessionRefused(
            f"{approval.detail}; an unapproved or modified protocol does not run", verdict,
            hint=(
                f"have it reviewed and approved (tmsctl protocol approve {request.protocol_path} --by NAME), "
                "or run it once with --allow-unapproved 'REASON' (recorded)"
            ),
        )
    if verdict.status == "needs_override":
        rules = ", ".join(sorted({f.rule_id for f in verdict.needs_override}))
        raise SessionRefused(
            f"protocol {protocol.id} exceeds guideline limits ({rules}): "
            + "; ".join(f.message for f in verdict.needs_override),
            verdict,
            hint="if this is intended, run again with --override RULE='reason' for each rule (recorded)",
        )
    if request.resume_session_id and records is not None:
        _attach_resume(planned, records)
    return planned


def _resumed_thresholds(
    request: SessionRequest, protocol: Protocol, info: DeviceInfo, resumed: Any
) -> tuple[tuple[MotorThreshold, ...], dict[int, int], ThresholdChange | None] | None:
    """A resumed session keeps the threshold it started with: its dose must not change half-way.

    ``--mt`` at another value is a change (returned) that needs a recorded reason (``mt.rethreshold``).
    ``None``: the session has no threshold of the protocol's reference on record to keep.
    """
    reference = protocol.intensity.reference
    if reference == "MSO":
        return None
    kept = next((u for u in resumed.thresholds_used if getattr(u.reference, "value", u.reference) == reference), None)
    if kept is None:
        return None
    if request.mt_pct_mso is None or math.isclose(request.mt_pct_mso, kept.value_pct_mso):
        # Its age was judged when the session started: no measurement date, no new staleness verdict.
        mt = MotorThreshold(reference, kept.value_pct_mso, info.model, protocol.coil, None)
        return (mt,), ({id(mt): kept.threshold_id} if kept.threshold_id is not None else {}), None
    change = ThresholdChange(
        reference, kept.value_pct_mso, request.mt_pct_mso, (request.overrides.get(RETHRESHOLD_RULE_ID) or "").strip()
    )
    return (MotorThreshold(reference, request.mt_pct_mso, info.model, protocol.coil, None),), {}, change


def _thresholds(
    request: SessionRequest, protocol: Protocol, info: DeviceInfo, records: Any
) -> tuple[tuple[MotorThreshold, ...], dict[int, int]]:
    """The motor thresholds the protocol may resolve %MT from, and their record ids.

    From the records: only the protocol's reference (rMT/aMT); never one measured on a simulator
    for a real device; only the given stimulator serial when one is given; and of several for the
    same stimulator model and coil only the latest (ties: the one recorded last).
    """
    reference = protocol.intensity.reference
    if reference == "MSO":
        return (), {}
    if request.mt_pct_mso is not None:  # measured for this session, now
        return (MotorThreshold(reference, request.mt_pct_mso, info.model, protocol.coil, None),), {}
    if records is None:
        return (), {}
    latest: dict[tuple[str, str], Any] = {}
    for t in records.motor_thresholds(request.subject_id):
        if getattr(t.reference, "value", t.reference) != reference:
            continue
        if not info.simulated and t.stimulator_serial.startswith(SIMULATOR_IDENTITY_PREFIX):
            continue  # a simulated hunt never sets a real session's intensity
        if request.stimulator_serial and t.stimulator_serial != request.stimulator_serial:
            continue
        key = (t.stimulator_model, t.coil)
        best = latest.get(key)
        if best is None or (t.measured_at, t.threshold_id or 0) > (best.measured_at, best.threshold_id or 0):
            latest[key] = t
    chosen, ids = [], {}
    for t in latest.values():
        mt = MotorThreshold(reference, t.value_pct_mso, t.stimulator_model, coil_from_key(t.coil), t.measured_at)
        chosen.append(mt)
        if t.threshold_id is not None:
            ids[id(mt)] = t.threshold_id
    return tuple(chosen), ids


def subject_history(
    records: Any, subject_id: str, now: datetime, *, simulated: bool, resuming: Any = None
) -> SubjectHistory:
    """The history the site caps judge a session against (``now`` from the session's clock).

    Caps protect a person: a real session counts every real session of the subject (simulated
    ones delivered nothing and never count). A simulated session delivers nothing either, so it is
    judged on its protocol alone (its own day plan still is) and is never blocked by a real
    subject's history: a rehearsal of tomorrow's session needs no override reason on record.

    A resume starts no session: its start was judged when it began, and every session begun
    since was judged against it. Its pulses today are left out of the day's count because the
    check adds the session's whole planned total (of which they are part).
    """
    if records is None or simulated:
        return SubjectHistory(0, 0, None)
    now = now.astimezone(UTC)
    today = records.exposure_on_day(subject_id, now.date())
    if resuming is not None:
        own_today = 0
        if not resuming.simulated:
            day_start, day_end = today.start_utc, today.end_utc
            own_today = sum(
                d.pulses_delivered + d.pulses_uncertain
                for d in records.session_detail(resuming.session_id).deliveries
                if day_start <= d.started_at < day_end
            )
        return SubjectHistory(max(0, today.possible_pulses - own_today), 0, None)
    # A window reaching into the future too: a start stamped after "now" (a clock set back) counts
    # as too close, never as long ago.
    recent = records.exposure_between(subject_id, now - _LAST_START_LOOKBACK, now + _LAST_START_LOOKBACK)
    last = recent.last_session_started_at
    minutes = None if last is None else (now - last).total_seconds() / 60
    return SubjectHistory(today.possible_pulses, today.sessions_started, minutes)


def coil_key(coil: Coil) -> str:
    """How a coil is written in the records: ``family`` or ``family/model``."""
    return f"{coil.family}/{coil.model}" if coil.model else str(coil.family)


def coil_from_key(key: str) -> Coil:
    family, _, model = key.partition("/")
    try:
        return Coil.model_validate({"family": family, "model": model or None})  # text: validated
    except Exception as exc:  # pydantic's error, for a coil written by hand or an older version
        raise InvalidArgument(f"the records name an unknown coil {key!r}: {exc}") from None


def _attach_resume(planned: PlannedSession, records: Any) -> None:
    session = records.session(planned.request.resume_session_id)
    if session.protocol_hash != planned.verdict.protocol_hash:
        raise SessionRefused(
            f"session {session.session_id} ran protocol {session.protocol_id} with content hash "
            f"{session.protocol_hash[:12]}…, this file hashes to {planned.verdict.protocol_hash[:12]}…",
            hint="resume with the protocol file exactly as it was run",
        )
    if session.subject_id != planned.request.subject_id:
        raise SessionRefused(f"session {session.session_id} belongs to subject {session.subject_id}")
    if session.simulated != planned.simulated:
        # A simulated session's pulses count toward no one's exposure: real pulses must never land in one.
        ran_on, now_on = ("a simulator", "a real device") if session.simulated else ("a real device", "a simulator")
        raise SessionRefused(
            f"{RESUME_DEVICE_RULE_ID}: session {session.session_id} ran on {ran_on}; it cannot be resumed on {now_on}",
            hint=f"resume it on {ran_on} as it was run, or start a new session",
        )
    change = planned.threshold_change
    if change is not None and not change.reason:
        raise SessionRefused(
            f"{RETHRESHOLD_RULE_ID}: {change.describe(session.session_id)}: resuming at another threshold "
            "changes the dose half-way",
            hint=(
                f"resume without --mt to keep {change.reference} {change.recorded_pct_mso:g} %MSO; if the subject "
                f"was re-thresholded, give --override {RETHRESHOLD_RULE_ID}='REASON' (recorded with the session)"
            ),
        )
    point = records.resume_point(session.session_id)
    planned.start_index = point.next_index
    planned.pulses_already_delivered = point.pulses_delivered
    planned.pulses_already_uncertain = point.pulses_uncertain


def _record_threshold_change(planned: PlannedSession, records: Any, session_id: str) -> None:
    """A resume at another threshold goes on record as an override of ``mt.rethreshold``."""
    from tmsctl import records as rec

    change = planned.threshold_change
    if change is None:
        return
    records.record_override(
        rec.Override(session_id, RETHRESHOLD_RULE_ID, change.describe(session_id), planned.request.operator,
                     change.reason, planned.verdict.protocol_hash, planned.verdict.rulebook_version)
    )


class RecordsDeliveryLog(DeliveryLog):
    """The runner's log: the records database (one transaction per event) and, when given, the
    session's audit log (one durable line per train start and end)."""

    def __init__(
        self, records: Any, session_id: str, clock: Clock, origin_s: float, operator: str, audit: Any = None
    ) -> None:
        from tmsctl import records as rec

        self._rec = rec
        self.records = records
        self.session_id = session_id
        self.clock = clock
        self.origin_s = origin_s
        self.operator = operator
        self.audit = audit

    def _audit(self, event: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.info(event, durable=True, t_mono=self.clock.now(), **fields)

    def _offset(self) -> float:
        return max(0.0, self.clock.now() - self.origin_s)

    def begin(self, train: ScheduledTrain, planned_at: float, trigger_source: str) -> None:
        rec = self._rec
        kind = {"single_pulse": rec.DeliveryKind.SINGLE, "paired_pulse": rec.DeliveryKind.PAIRED}.get(
            train.kind, rec.DeliveryKind.TRAIN
        )
        paired = kind is rec.DeliveryKind.PAIRED
        self.records.begin_delivery(
            rec.DeliveryPlan(
                self.session_id, train.index, kind, train.onset_s,
                2 if paired else train.n_pulses, float(train.conditioning_intensity_pct_mso or train.intensity_pct_mso or 0)
                if paired else float(train.intensity_pct_mso or 0),
                rec.TriggerSource(trigger_source),
                second_intensity_pct_mso=float(train.intensity_pct_mso or 0) if paired else None,
                ipi_ms=1000 * train.pulse_offsets_s[-1] if paired else None,
            )
        )

    def reachable(self) -> bool:
        try:
            self.records.resume_point(self.session_id)
        except self._rec.RecordsUnavailable:
            return False
        return True

    def fired(self, train: ScheduledTrain, pulses_known: int) -> None:
        self.records.record_progress(
            self.session_id, train.index, pulses_delivered=pulses_known, onset_offset_s=self._offset()
        )
        self._audit(
            "train_started", index=train.index, n_pulses=train.n_pulses,
            intensity_pct_mso=train.intensity_pct_mso, planned_onset_s=train.onset_s,
        )

    def finish(self, train: ScheduledTrain, dose: DoseCount, started_at: float, onset_error_s: float) -> None:
        self._audit(
            "train_finished", index=train.index, pulses_delivered=dose.delivered, pulses_uncertain=dose.uncertain,
            evidence=dose.evidence, onset_error_ms=round(onset_error_s * 1e3, 3),
        )
        rec = self._rec
        self.records.finish_delivery(
            rec.DeliveryResult(
                self.session_id, train.index, dose.delivered, dose.complete,
                onset_offset_s=max(0.0, started_at - self.origin_s),
                pulses_uncertain=dose.uncertain, evidence=dose.evidence,
            )
        )

    def fault(self, code: str, detail: str, index: int) -> None:
        rec = self._rec
        fault = rec.Fault(self.session_id, code, detail, f"train {index + 1}", offset_s=self._offset())
        if self.records.session(self.session_id).status is rec.SessionStatus.FAULTED:
            self.records.record_fault(fault)  # a second fault of the same stop (e.g. the disarm that followed)
        else:
            self.records.fault_session(fault)

    def paused(self, index: int, reason: str) -> None:
        self.records.pause_session(self.session_id, operator=self.operator, reason=reason, offset_s=self._offset())

    def aborted(self, index: int, reason: str) -> None:
        self.records.abort_session(self.session_id, operator=self.operator, reason=reason, offset_s=self._offset())

    def completed(self) -> bool:
        session = self.records.complete_session(self.session_id)
        return session.status is self._rec.SessionStatus.COMPLETED


def run_planned(
    planned: PlannedSession,
    records: Any,
    *,
    listeners: list[Listener] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_runner: Callable[[SessionRunner], None] | None = None,
) -> tuple[str, RunResult]:
    """Create (or reopen) the session record, connect, run, close. Returns (session id, result)."""
    from tmsctl import records as rec

    req = planned.request
    schedule = planned.schedule
    if req.resume_session_id:
        session_id = req.resume_session_id
        point = records.resume_point(session_id)
        if point.partial is not None:
            # A train whose intent is on record but not its end. A device-timed train that fired
            # was acknowledged (its pulses are on record) and runs to its end on the unit; one that
            # never got its acknowledgement may or may not have fired. Either way we never repeat
            # it: an under-dose by one train is recoverable, an over-dose is not.
            partial = point.partial
            records.skip_partial(
                session_id, partial.index, operator=req.operator,
                reason=(
                    f"train {partial.index + 1}: {partial.pulses_delivered} of {partial.pulses_planned} pulses known "
                    f"delivered, possibly delivered up to {partial.pulses_at_most}; not repeated (never over-dose)"
                ),
            )
            point = records.resume_point(session_id)
            planned.start_index = point.next_index
            planned.pulses_already_delivered = point.pulses_delivered
            planned.pulses_already_uncertain = point.pulses_uncertain
        _record_threshold_change(planned, records, session_id)
    else:
        records.ensure_subject(req.subject_id)
        session = records.create_session(
            rec.SessionPlan(
                subject_id=req.subject_id, protocol_id=planned.protocol.id,
                protocol_hash=planned.verdict.protocol_hash, protocol_text=planned.protocol_text,
                device_url=planned.device.redacted, device_model=planned.info.model,
                simulated=planned.simulated, planned_deliveries=len(schedule.trains),
                planned_pulses=schedule.total_pulses,
                device_firmware=".".join(map(str, planned.info.version)) if planned.info.version else None,
                coil=coil_key(planned.protocol.coil),
                replies_confirmed=Capability.CONFIRMED_REPLIES in planned.info.capabilities,
                thresholds_used=tuple(
                    rec.ThresholdUsed(
                        rec.ThresholdReference(t.reference), t.value_pct_mso, planned.threshold_ids.get(id(t))
                    )
                    for t in schedule.thresholds_used
                ),
            )
        )
        session_id = session.session_id
        if not planned.approval.approved:
            records.record_override(
                rec.Override(session_id, APPROVAL_RULE_ID, planned.approval.detail, req.operator,
                             (req.allow_unapproved_reason or "").strip(), planned.verdict.protocol_hash,
                             planned.verdict.rulebook_version)
            )
        for rule_id, reason in planned.verdict.overrides_used.items():
            finding = next(f for f in planned.verdict.findings if f.rule_id == rule_id)
            records.record_override(
                rec.Override(session_id, rule_id, finding.message, req.operator, reason,
                             planned.verdict.protocol_hash, planned.verdict.rulebook_version)
            )
    clock = planned.clock
    origin = clock.now()
    with SessionHost(planned.device, clock, records=records, listeners=list(listeners or [])) as host:
        if req.log_dir is not None:
            host.open_audit(req.log_dir, session_id, simulated=planned.simulated, origin_s=origin)
        host.open()
        if req.resume_session_id:
            records.resume_session(session_id, operator=req.operator, offset_s=0.0)
        else:
            records.start_session(session_id, operator=req.operator, offset_s=0.0)
        try:
            # The plan was checked against the unit that answered then: this must be the same one.
            host.connect(expect=planned.info)
        except TmsError as exc:
            records.fault_session(rec.Fault(session_id, type(exc).__name__, exc.message, "connecting"))
            raise
        if not req.resume_session_id:
            host.record_unit(session_id)
        controller = host.controller
        assert controller is not None
        runner = SessionRunner(
            controller, schedule,
            log=RecordsDeliveryLog(records, session_id, clock, origin, req.operator, audit=host.audit),
            start_index=planned.start_index, pulses_already_delivered=planned.pulses_already_delivered,
            pulses_already_uncertain=planned.pulses_already_uncertain,
            trigger_source=trigger_source_of(planned.protocol, req.trigger_source), on_progress=on_progress,
            externally_timed=planned.protocol.timed_by == "external_trigger",
        )
        if on_runner:
            on_runner(runner)
        result = runner.run()
        # What the session delivered is what the records say, over every run segment: one number.
        point = records.resume_point(session_id)
        result = replace(result, pulses_delivered=point.pulses_delivered, pulses_uncertain=point.pulses_uncertain)
    return session_id, result


__all__ = [
    "AuditListener", "PlannedSession", "RecordsDeliveryLog", "RunOutcome", "SessionRefused", "SessionRequest",
    "SubjectHistory", "ThresholdChange", "plan_session", "run_planned", "subject_history",
]
