"""Every record type goes in and comes back out equal (hypothesis over the field values)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from records_helpers import PROTOCOL_HASH, running_session, session_plan

from tmsctl.core.clock import VirtualClock
from tmsctl.records import (
    ActionKind,
    DeliveryKind,
    DeliveryPlan,
    DeliveryResult,
    DeliveryState,
    Fault,
    InvalidRecord,
    MotorThreshold,
    OperatorAction,
    Override,
    Records,
    SessionPlan,
    ThresholdReference,
    ThresholdUsed,
    TriggerSource,
    validate_subject_id,
)
from tmsctl.session.audit import redact_text


def _valid_subject(text: str) -> bool:
    try:
        validate_subject_id(text)
    except InvalidRecord:
        return False
    return True


subject_ids = st.builds(
    "{}{}".format, st.sampled_from(["S", "P", "pilot-", "sub_", "x9-", "7"]), st.integers(0, 99_999)
).filter(_valid_subject)
zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))])
moments = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=zones)
texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
).filter(lambda s: s.strip() != "")
labels = st.text(alphabet="ABCXYZabcxyz0189 ._-²", min_size=1, max_size=30).filter(lambda s: s.strip() != "")
pct = st.floats(min_value=0, max_value=100, exclude_min=True, allow_nan=False)
offsets = st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
trials = st.lists(st.dictionaries(st.text(max_size=8), json_scalars, max_size=4), max_size=5).map(tuple)
hashes = st.builds(
    "{}{}".format, st.sampled_from(["sha256:", ""]), st.binary(min_size=32, max_size=32).map(bytes.hex)
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Records]:
    clock = VirtualClock(autojump=False)
    with Records(Path(tmp_path_factory.mktemp("roundtrip")) / "t.db", clock=clock) as records:
        yield records


@given(subject_id=subject_ids)
def test_subjects_round_trip(store: Records, subject_id: str) -> None:
    created = store.ensure_subject(subject_id)
    assert store.subject(subject_id) == created
    assert created in store.subjects()


@given(
    subject_id=subject_ids,
    model=labels,
    serial=labels,
    coil=labels,
    value=pct,
    reference=st.sampled_from(ThresholdReference),
    method=labels,
    measured_at=moments,
    operator=labels,
    trial_log=trials,
)
def test_motor_thresholds_round_trip(
    store: Records,
    subject_id: str,
    model: str,
    serial: str,
    coil: str,
    value: float,
    reference: ThresholdReference,
    method: str,
    measured_at: datetime,
    operator: str,
    trial_log: tuple[dict[str, object], ...],
) -> None:
    store.ensure_subject(subject_id)
    threshold = MotorThreshold(
        subject_id, model, serial, coil, value, reference, method, measured_at, operator, trial_log
    )
    stored = store.record_motor_threshold(threshold)
    assert stored.threshold_id is not None
    assert stored == MotorThreshold(subject_id, model, serial, coil, value, reference, method, measured_at,
                                    operator, trial_log, stored.threshold_id)
    assert stored in store.motor_thresholds(subject_id)
    assert stored.measured_at.tzinfo is UTC


@given(protocol_id=labels, content_hash=hashes, approved_by=labels, approved_at=moments)
def test_protocol_approvals_round_trip(
    store: Records, protocol_id: str, content_hash: str, approved_by: str, approved_at: datetime
) -> None:
    approval = store.approve_protocol(
        protocol_id, content_hash, approved_by=approved_by, approved_at=approved_at
    )
    assert (approval.protocol_id, approval.content_hash, approval.approved_by, approval.approved_at) == (
        protocol_id,
        content_hash,
        approved_by,
        approved_at,
    )
    assert approval in store.protocol_approvals(protocol_id, content_hash)
    assert store.is_protocol_approved(protocol_id, content_hash)


@given(
    subject_id=subject_ids,
    protocol_id=labels,
    protocol_hash=hashes,
    protocol_text=st.text(max_size=300).filter(lambda s: s.strip() != "" and "\x00" not in s),
    device_url=texts,
    device_model=labels,
    simulated=st.booleans(),
    planned_deliveries=st.integers(0, 5000),
    extra_pulses=st.integers(0, 100_000),
    device_serial=st.none() | labels,
    device_firmware=st.none() | labels,
    coil=st.none() | labels,
    thresholds=st.lists(st.tuples(st.sampled_from(ThresholdReference), pct), max_size=3),
)
def test_sessions_round_trip(
    store: Records,
    subject_id: str,
    protocol_id: str,
    protocol_hash: str,
    protocol_text: str,
    device_url: str,
    device_model: str,
    simulated: bool,
    planned_deliveries: int,
    extra_pulses: int,
    device_serial: str | None,
    device_firmware: str | None,
    coil: str | None,
    thresholds: list[tuple[ThresholdReference, float]],
) -> None:
    store.ensure_subject(subject_id)
    plan = SessionPlan(
        subject_id=subject_id,
        protocol_id=protocol_id,
        protocol_hash=protocol_hash,
        protocol_text=protocol_text,
        device_url=device_url,
        device_model=device_model,
        simulated=simulated,
        planned_deliveries=planned_deliveries,
        planned_pulses=planned_deliveries + extra_pulses,
        device_serial=device_serial,
        device_firmware=device_firmware,
        coil=coil,
        thresholds_used=tuple(ThresholdUsed(ref, value) for ref, value in thresholds),
    )
    session = store.create_session(plan)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", session.session_id)
    for name in (
        "subject_id", "protocol_id", "protocol_hash", "protocol_text", "device_model", "simulated",
        "planned_deliveries", "planned_pulses", "device_serial", "device_firmware", "coil", "thresholds_used",
    ):
        assert getattr(session, name) == getattr(plan, name), name
    assert session.device_url == redact_text(device_url)
    assert store.session(session.session_id) == session
    assert store.session(session.session_id.lower()) == session  # ids are typed by humans
    assert session in store.sessions(subject_id=subject_id)


@given(
    kind=st.sampled_from(DeliveryKind),
    planned_onset_s=st.floats(0, 1e6),
    pulses=st.integers(1, 5000),
    intensity=st.floats(min_value=0, max_value=110, exclude_min=True),
    second=st.floats(min_value=0, max_value=110, exclude_min=True),
    ipi_ms=st.floats(min_value=0, max_value=1000, exclude_min=True),
    trigger=st.sampled_from(TriggerSource),
    delivered_fraction=st.floats(0, 1),
    completed=st.booleans(),
    onset_offset_s=offsets,
    onset_utc=st.none() | moments,
    progress=st.none() | st.tuples(st.floats(0, 1), offsets, st.none() | moments),
)
def test_deliveries_round_trip(
    store: Records,
    kind: DeliveryKind,
    planned_onset_s: float,
    pulses: int,
    intensity: float,
    second: float,
    ipi_ms: float,
    trigger: TriggerSource,
    delivered_fraction: float,
    completed: bool,
    onset_offset_s: float | None,
    onset_utc: datetime | None,
    progress: tuple[float, float | None, datetime | None] | None,
) -> None:
    pulses = {DeliveryKind.SINGLE: 1, DeliveryKind.PAIRED: 2}.get(kind, pulses)
    paired = kind is DeliveryKind.PAIRED
    session_id = running_session(store, planned_deliveries=1, planned_pulses=pulses)
    plan = DeliveryPlan(session_id, 0, kind, planned_onset_s, pulses, intensity, trigger,
                        second if paired else None, ipi_ms if paired else None)
    begun = store.begin_delivery(plan)
    assert begun == store.resume_point(session_id).partial  # what the call returns is what was stored
    assert (begun.state, begun.pulses_delivered) == (DeliveryState.IN_PROGRESS, 0)
    assert (begun.attempt, begun.segment) == (1, 1)
    delivered = pulses if completed else int(pulses * delivered_fraction)
    first_offset, first_utc = None, None
    if progress is not None:
        fraction, first_offset, first_utc = progress
        so_far = min(delivered, int(pulses * fraction))
        raised = store.record_progress(session_id, 0, pulses_delivered=so_far, onset_offset_s=first_offset,
                                       onset_utc=first_utc)
        (recorded,) = store.session_detail(session_id).deliveries
        assert recorded == raised  # what the call returns is what was stored
    result = DeliveryResult(session_id, 0, delivered, completed, onset_offset_s, onset_utc)
    finished = store.finish_delivery(result)
    (recorded,) = store.session_detail(session_id).deliveries
    assert recorded == finished
    for name in ("session_id", "index", "kind", "planned_onset_s", "pulses_planned", "intensity_pct_mso",
                 "trigger_source", "second_intensity_pct_mso", "ipi_ms"):
        assert getattr(recorded, name) == getattr(plan, name), name
    assert (recorded.pulses_delivered, recorded.completed) == (delivered, completed)
    assert recorded.state is (DeliveryState.COMPLETED if completed else DeliveryState.STOPPED)
    # The end's onset wins; an onset given only while in progress is kept.
    assert recorded.onset_offset_s == (onset_offset_s if onset_offset_s is not None else first_offset)
    assert recorded.onset_utc == (onset_utc if onset_utc is not None else first_utc)


@given(
    kind=st.sampled_from([ActionKind.ACKNOWLEDGE, ActionKind.CONFIRM]),
    operator=labels,
    reason=st.just("") | texts,
    at=st.none() | moments,
    offset_s=offsets,
)
def test_operator_actions_round_trip(
    store: Records, kind: ActionKind, operator: str, reason: str, at: datetime | None, offset_s: float | None
) -> None:
    session_id = running_session(store)
    stored = store.record_action(OperatorAction(session_id, kind, operator, reason, at, offset_s))
    assert stored.reason == redact_text(reason)
    assert stored.at == (at if at is not None else store._clock.wall())
    assert stored.action_id is not None
    assert store.session_detail(session_id).actions[-1] == stored


@given(rule_id=labels, finding=texts, operator=labels, reason=texts, ruleset=labels, at=st.none() | moments,
       offset_s=offsets)
def test_overrides_round_trip(
    store: Records, rule_id: str, finding: str, operator: str, reason: str, ruleset: str, at: datetime | None,
    offset_s: float | None,
) -> None:
    store.ensure_subject("S017")
    session_id = store.create_session(session_plan()).session_id
    override = Override(session_id, rule_id, finding, operator, reason, PROTOCOL_HASH, ruleset, at, offset_s)
    stored = store.record_override(override)
    detail = store.session_detail(session_id)
    assert detail.overrides == (stored,)
    assert (stored.rule_id, stored.finding, stored.reason, stored.ruleset_version) == (
        rule_id, redact_text(finding), redact_text(reason), ruleset,
    )
    assert detail.actions[-1].kind is ActionKind.OVERRIDE
    assert detail.actions[-1].operator == operator


@given(code=labels, detail=st.just("") | texts, state=labels, at=st.none() | moments, offset_s=offsets)
def test_faults_round_trip(
    store: Records, code: str, detail: str, state: str, at: datetime | None, offset_s: float | None
) -> None:
    session_id = running_session(store)
    stored = store.record_fault(Fault(session_id, code, detail, state, at, offset_s))
    assert (stored.code, stored.detail) == (code, redact_text(detail))
    assert (stored.state, stored.offset_s) == (state, offset_s)
    assert store.session_detail(session_id).faults == (stored,)
    assert store.session(session_id).status.value == "running"  # record_fault alone changes nothing
