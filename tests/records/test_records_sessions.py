"""Sessions, deliveries, resume points, refusals and queries, as a runner uses them."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from records_helpers import OTHER_HASH, PROTOCOL_HASH, deliver, running_session, session_plan, train_plan

from tmsctl.core.clock import VirtualClock
from tmsctl.records import (
    ALLOWED_STATUS_CHANGES,
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
    RecordRefused,
    Records,
    Resolution,
    SessionStatus,
    ThresholdReference,
    ThresholdUsed,
    TriggerSource,
    UnknownRecord,
    new_session_id,
    normalize_session_id,
    validate_subject_id,
)

# -- identifiers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("subject_id", ["S017", "pilot-03", "01", "sub_7", "P1234567"])
def test_pseudonymous_subject_ids_are_accepted(subject_id: str) -> None:
    assert validate_subject_id(subject_id) == subject_id


@pytest.mark.parametrize(
    ("subject_id", "why"),
    [
        ("jane.doe@example.org", "e-mail"),
        ("John Smith", "like a name"),
        ("Smith, J", "like a name"),
        ("johnsmith", "may be a name"),
        ("S19850312", "date"),
        ("1985-03-12", "date"),
        ("", "1-32"),
        ("-x1", "1-32"),
        ("x" * 32 + "1", "1-32"),
        ("S017;DROP", "1-32"),
    ],
)
def test_identifying_or_unsafe_subject_ids_are_refused_with_the_reason(subject_id: str, why: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        validate_subject_id(subject_id)
    assert why in str(caught.value)


def test_session_ids_are_short_typable_and_case_insensitive() -> None:
    for _ in range(50):
        session_id = new_session_id()
        assert len(session_id) == 9 and session_id[4] == "-"
        assert not set(session_id) & set("ILOU")
        assert normalize_session_id(session_id.lower()) == session_id
    with pytest.raises(InvalidRecord):
        normalize_session_id("has space")


def test_a_requested_session_id_is_used_and_must_be_unique(records: Records) -> None:
    records.ensure_subject("S017")
    session = records.create_session(session_plan(session_id="pilot-1"))
    assert session.session_id == "PILOT-1"
    with pytest.raises(RecordRefused, match="already exists"):
        records.create_session(session_plan(session_id="PILOT-1"))


def test_a_session_needs_a_recorded_subject(records: Records) -> None:
    with pytest.raises(UnknownRecord, match="S017"):
        records.create_session(session_plan())


def test_unknown_session_is_a_lookup_error(records: Records) -> None:
    with pytest.raises(UnknownRecord):
        records.session("ABCD-EFGH")
    with pytest.raises(LookupError):
        records.resume_point("ABCD-EFGH")


# -- strict values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"intensity_pct_mso": 0.0},
        {"intensity_pct_mso": 110.5},
        {"intensity_pct_mso": float("nan")},
        {"pulses_planned": 0},
        {"planned_onset_s": -1.0},
        {"kind": DeliveryKind.SINGLE, "pulses_planned": 2},
        {"kind": DeliveryKind.PAIRED, "pulses_planned": 2},  # no second intensity / ipi
        {"second_intensity_pct_mso": 50.0, "ipi_ms": 3.0},  # paired fields on a train
        {"trigger_source": "bluetooth"},
        {"index": -1},
        {"pulses_planned": True},
    ],
)
def test_delivery_plans_are_validated_strictly(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidRecord):
        train_plan("ABCD-EFGH", **changes)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(InvalidRecord, match="time zone"):
        DeliveryResult("ABCD-EFGH", 0, 1, True, onset_utc=datetime(2026, 1, 1, 12, 0))


def test_times_are_stored_in_utc() -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    result = DeliveryResult("ABCD-EFGH", 0, 1, True, onset_utc=local)
    assert result.onset_utc == local and result.onset_utc.tzinfo is UTC


@pytest.mark.parametrize(
    "changes",
    [
        {"protocol_hash": "not-a-hash"},
        {"planned_pulses": 3},  # fewer pulses than deliveries
        {"simulated": 1},
        {"device_url": ""},
        {"subject_id": "Jane Doe"},
    ],
)
def test_session_plans_are_validated_strictly(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidRecord):
        session_plan(**changes)


def test_motor_threshold_range_is_checked() -> None:
    measured = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidRecord):
        MotorThreshold("S017", "m", "1", "D70", 101.0, ThresholdReference.RMT, "PEST", measured, "op")
    with pytest.raises(InvalidRecord):
        MotorThreshold("S017", "m", "1", "D70", 50.0, "MEP", "PEST", measured, "op")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord, match="JSON"):
        not_json = ({"x": object()},)
        MotorThreshold("S017", "m", "1", "D70", 50.0, "rMT", "PEST", measured, "op", not_json)  # type: ignore[arg-type]


# -- a whole session ------------------------------------------------------------------------------


def test_a_complete_session_is_recorded_in_full(records: Records, clock: VirtualClock) -> None:
    session_id = running_session(records)
    records.record_action(OperatorAction(session_id, ActionKind.CONFIRM, "tech1", "plan shown and confirmed"))
    for index in range(4):
        clock.advance(10)
        deliver(records, session_id, index)
    session = records.complete_session(session_id)
    assert session.status is SessionStatus.COMPLETED
    assert session.started_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert session.ended_at == datetime(2026, 1, 1, 0, 0, 40, tzinfo=UTC)
    detail = records.session_detail(session_id)
    assert [d.index for d in detail.deliveries] == [0, 1, 2, 3]
    assert all(d.completed and d.pulses_delivered == 10 for d in detail.deliveries)
    assert [a.kind for a in detail.actions] == [ActionKind.START, ActionKind.CONFIRM]
    assert detail.resume_point.finished and detail.resume_point.pulses_delivered == 40
    assert not (records.path.parent / "tmsctl.db.owners" / f"{session_id}.lock").exists()


def test_a_session_cannot_complete_with_trains_missing(records: Records) -> None:
    session_id = running_session(records)
    deliver(records, session_id, 0)
    with pytest.raises(RecordRefused, match="3 of 4"):
        records.complete_session(session_id)
    assert records.session(session_id).status is SessionStatus.RUNNING


def test_lifecycle_actions_are_recorded_with_reasons(records: Records) -> None:
    session_id = running_session(records)
    records.pause_session(session_id, operator="tech1", reason="subject asked", offset_s=12.5)
    records.resume_session(session_id, operator="tech1")
    records.abort_session(session_id, operator="tech2", reason="headache")
    actions = records.session_detail(session_id).actions
    assert [(a.kind, a.operator, a.reason) for a in actions] == [
        (ActionKind.START, "tech1", ""),
        (ActionKind.PAUSE, "tech1", "subject asked"),
        (ActionKind.RESUME, "tech1", ""),
        (ActionKind.ABORT, "tech2", "headache"),
    ]
    assert actions[1].offset_s == 12.5
    assert records.session(session_id).run_segments == 1  # same process: one run segment


def test_an_abort_needs_a_reason(records: Records) -> None:
    session_id = running_session(records)
    with pytest.raises(InvalidRecord, match="reason"):
        records.abort_session(session_id, operator="tech1", reason=" ")


def test_record_action_takes_only_kinds_without_a_lifecycle_method(records: Records) -> None:
    session_id = running_session(records)
    with pytest.raises(InvalidRecord, match="abort_session"):
        records.record_action(OperatorAction(session_id, ActionKind.ABORT, "tech1", "x"))
    stored = records.record_action(OperatorAction(session_id, ActionKind.ACKNOWLEDGE, "tech1", "coil cooled"))
    assert stored.action_id is not None


def test_fault_session_records_the_fault_and_status_together(records: Records) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    records.record_progress(session_id, 0, pulses_delivered=4, onset_offset_s=0.01)
    fault = Fault(session_id, "keepalive_missed", "no reply for 1.2 s", "stimulating")
    session = records.fault_session(fault)
    assert session.status is SessionStatus.FAULTED
    records.finish_delivery(DeliveryResult(session_id, 0, 6, False))  # the runner learns the final count
    (fault,) = records.session_detail(session_id).faults
    assert (fault.code, fault.state) == ("keepalive_missed", "stimulating")
    point = records.resume_point(session_id)
    assert point.partial is not None and point.partial.state is DeliveryState.STOPPED
    assert point.partial.pulses_delivered == 6 and point.pulses_delivered == 6


STATUS_OPERATIONS = {
    "start": SessionStatus.RUNNING,
    "pause": SessionStatus.PAUSED,
    "resume": SessionStatus.RUNNING,
    "complete": SessionStatus.COMPLETED,
    "abort": SessionStatus.ABORTED,
    "fault": SessionStatus.FAULTED,
}
ONLY_FROM = {"start": {SessionStatus.PLANNED}, "resume": {SessionStatus.PAUSED, SessionStatus.FAULTED,
                                                         SessionStatus.INTERRUPTED}}


def _session_in(status: SessionStatus, db_path: Path, clock: VirtualClock) -> tuple[Records, str]:
    store = Records(db_path, clock=clock)
    store.ensure_subject("S017")
    cut_short = status is SessionStatus.INCOMPLETE
    session_id = store.create_session(
        session_plan(planned_deliveries=int(cut_short), planned_pulses=10 * int(cut_short))
    ).session_id
    if status is not SessionStatus.PLANNED:
        store.start_session(session_id, operator="t")
    if cut_short:  # its one train cut short, then left as it is: the schedule's end, not all of it known
        store.begin_delivery(train_plan(session_id, 0))
        store.finish_delivery(DeliveryResult(session_id, 0, 4, False, pulses_uncertain=2, evidence="cut"))
        store.skip_partial(session_id, 0, operator="t", reason="not repeated")
        store.complete_session(session_id)
    if status is SessionStatus.PAUSED:
        store.pause_session(session_id, operator="t")
    elif status is SessionStatus.COMPLETED:
        store.complete_session(session_id)
    elif status is SessionStatus.ABORTED:
        store.abort_session(session_id, operator="t", reason="r")
    elif status is SessionStatus.FAULTED:
        store.fault_session(Fault(session_id, "x", "", "idle"))
    elif status is SessionStatus.INTERRUPTED:
        store.close()  # the process "ends" with the session running; the next open interrupts it
        store = Records(db_path, clock=clock)
    return store, session_id


@pytest.mark.parametrize("status", list(SessionStatus))
@pytest.mark.parametrize("operation", list(STATUS_OPERATIONS))
def test_every_status_change_is_either_in_the_table_or_refused(
    status: SessionStatus, operation: str, tmp_path: Path, clock: VirtualClock
) -> None:
    store, session_id = _session_in(status, tmp_path / "t.db", clock)
    with store:
        before = store.session(session_id).status
        assert before is status
        target = STATUS_OPERATIONS[operation]
        allowed = target in ALLOWED_STATUS_CHANGES[before] and before in ONLY_FROM.get(operation, {before})
        calls = {
            "start": lambda: store.start_session(session_id, operator="t"),
            "pause": lambda: store.pause_session(session_id, operator="t"),
            "resume": lambda: store.resume_session(session_id, operator="t"),
            "complete": lambda: store.complete_session(session_id),
            "abort": lambda: store.abort_session(session_id, operator="t", reason="r"),
            "fault": lambda: store.fault_session(Fault(session_id, "x", "", "idle")),
        }
        if allowed:
            assert calls[operation]().status is target
        else:
            with pytest.raises(RecordRefused):
                calls[operation]()
            assert store.session(session_id).status is before


# -- deliveries: never repeat, never skip ---------------------------------------------------------


def test_repeating_a_delivered_train_is_refused(records: Records) -> None:
    session_id = running_session(records)
    deliver(records, session_id, 0)
    with pytest.raises(RecordRefused, match="repeating it is refused"):
        records.begin_delivery(train_plan(session_id, 0))


def test_skipping_a_train_is_refused(records: Records) -> None:
    session_id = running_session(records)
    deliver(records, session_id, 0)
    with pytest.raises(RecordRefused, match=r"would skip 1..2"):
        records.begin_delivery(train_plan(session_id, 3))


def test_an_index_outside_the_plan_is_refused(records: Records) -> None:
    session_id = running_session(records, planned_deliveries=1, planned_pulses=10)
    deliver(records, session_id, 0)
    with pytest.raises(RecordRefused, match="outside the plan"):
        records.begin_delivery(train_plan(session_id, 1))


def test_nothing_is_delivered_unless_running(records: Records) -> None:
    session_id = running_session(records)
    records.pause_session(session_id, operator="tech1")
    with pytest.raises(RecordRefused, match="paused, not running"):
        records.begin_delivery(train_plan(session_id, 0))


def test_a_partial_train_blocks_the_next_until_resolved(records: Records) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    with pytest.raises(RecordRefused, match="began but did not complete"):
        records.begin_delivery(train_plan(session_id, 1))
    with pytest.raises(RecordRefused, match="began but did not complete"):
        records.begin_delivery(train_plan(session_id, 0))


def test_completion_requires_every_planned_pulse(records: Records) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    with pytest.raises(RecordRefused, match="not complete"):
        records.finish_delivery(DeliveryResult(session_id, 0, 9, True))
    with pytest.raises(RecordRefused, match="planned 10"):
        records.finish_delivery(DeliveryResult(session_id, 0, 11, False))


def test_progress_only_goes_up_and_a_finished_delivery_is_final(records: Records) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    records.record_progress(session_id, 0, pulses_delivered=3)
    with pytest.raises(RecordRefused, match="cannot go down"):
        records.record_progress(session_id, 0, pulses_delivered=2)
    with pytest.raises(RecordRefused, match="cannot finish with 1"):
        records.finish_delivery(DeliveryResult(session_id, 0, 1, False))
    records.finish_delivery(DeliveryResult(session_id, 0, 10, True))
    with pytest.raises(RecordRefused, match="already recorded completed"):
        records.finish_delivery(DeliveryResult(session_id, 0, 10, True))
    with pytest.raises(RecordRefused, match="already recorded completed"):
        records.record_progress(session_id, 0, pulses_delivered=10)


def test_progress_keeps_the_first_onset(records: Records) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    first = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    records.record_progress(session_id, 0, pulses_delivered=1, onset_offset_s=1.0, onset_utc=first)
    later = records.record_progress(session_id, 0, pulses_delivered=2, onset_offset_s=1.1,
                                    onset_utc=first + timedelta(seconds=0.1))
    assert (later.onset_offset_s, later.onset_utc, later.pulses_delivered) == (1.0, first, 2)


def test_skip_partial_moves_on_and_keeps_the_pulses(records: Records) -> None:
    session_id = running_session(records)
    deliver(records, session_id, 0)
    records.begin_delivery(train_plan(session_id, 1))
    records.record_progress(session_id, 1, pulses_delivered=4)
    with pytest.raises(RecordRefused, match="not the partial one"):
        records.skip_partial(session_id, 0, operator="tech1", reason="x")
    with pytest.raises(InvalidRecord, match="reason"):
        records.skip_partial(session_id, 1, operator="tech1", reason="")
    point = records.skip_partial(session_id, 1, operator="tech1", reason="subject discomfort")
    assert (point.next_index, point.partial, point.pulses_delivered) == (2, None, 14)
    assert (point.completed_deliveries, point.skipped_deliveries) == (1, 1)
    skipped = records.session_detail(session_id).deliveries[1]
    assert (skipped.state, skipped.resolution, skipped.pulses_delivered) == (DeliveryState.STOPPED,
                                                                            Resolution.SKIPPED, 4)
    action = records.session_detail(session_id).actions[-1]
    assert action.kind is ActionKind.SKIP_PARTIAL and "subject discomfort" in action.reason
    deliver(records, session_id, 2)


def test_retry_partial_makes_a_second_attempt(records: Records) -> None:
    session_id = running_session(records)
    records.begin_delivery(train_plan(session_id, 0))
    records.finish_delivery(DeliveryResult(session_id, 0, 3, False))
    point = records.retry_partial(session_id, 0, operator="tech1", reason="coil repositioned")
    assert (point.next_index, point.partial, point.pulses_delivered) == (0, None, 3)
    records.begin_delivery(train_plan(session_id, 0, pulses_planned=7))  # the remainder
    second = records.finish_delivery(DeliveryResult(session_id, 0, 7, True))
    assert second.attempt == 2
    point = records.resume_point(session_id)
    assert (point.next_index, point.completed_deliveries, point.pulses_delivered) == (1, 1, 10)


def test_the_database_itself_refuses_a_second_completion(records: Records) -> None:
    session_id = running_session(records)
    deliver(records, session_id, 0)
    with pytest.raises(Exception, match=r"UNIQUE|append-only|constraint"):
        records._db.execute(  # behind the API on purpose: the schema is the last line of defence
            """INSERT INTO deliveries (session_id, delivery_index, attempt, kind, segment, planned_onset_s,
                   pulses_planned, intensity_pct_mso, trigger_source, started_at, state, pulses_delivered)
               VALUES (?, 0, 2, 'train', 1, 0, 10, 50, 'serial', 'x', 'completed', 10)""",
            (session_id,),
        )


def test_paired_and_single_pulses_share_the_schedule(records: Records) -> None:
    session_id = running_session(records, planned_deliveries=3, planned_pulses=12)
    records.begin_delivery(DeliveryPlan(session_id, 0, DeliveryKind.SINGLE, 0.0, 1, 60.0, TriggerSource.RTS))
    records.finish_delivery(DeliveryResult(session_id, 0, 1, True))
    records.begin_delivery(DeliveryPlan(session_id, 1, DeliveryKind.PAIRED, 5.0, 2, 40.0,
                                        TriggerSource.EXTERNAL_TTL, 60.0, 3.0))
    records.finish_delivery(DeliveryResult(session_id, 1, 2, True))
    deliver(records, session_id, 2, pulses=9)
    deliveries = records.session_detail(session_id).deliveries
    assert [d.kind for d in deliveries] == [DeliveryKind.SINGLE, DeliveryKind.PAIRED, DeliveryKind.TRAIN]
    assert deliveries[1].ipi_ms == 3.0 and deliveries[1].second_intensity_pct_mso == 60.0
    assert records.complete_session(session_id).status is SessionStatus.COMPLETED


# -- thresholds, approvals, overrides -------------------------------------------------------------


def _mt(value: float, coil: str, measured_at: datetime, serial: str = "SN-1") -> MotorThreshold:
    return MotorThreshold("S017", "magstim-rapid2", serial, coil, value, ThresholdReference.RMT, "PEST",
                          measured_at, "tech1", ({"pct": value, "mep_uv": 60},))


def test_latest_motor_threshold_is_for_that_exact_stimulator_and_coil(records: Records) -> None:
    records.ensure_subject("S017")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    records.record_motor_threshold(_mt(40.0, "D70", base))
    newest = records.record_motor_threshold(_mt(42.0, "D70", base + timedelta(days=7)))
    # entered later, measured earlier:
    records.record_motor_threshold(_mt(41.0, "D70", base + timedelta(days=3)))
    records.record_motor_threshold(_mt(55.0, "H1", base + timedelta(days=9)))
    records.record_motor_threshold(_mt(38.0, "D70", base + timedelta(days=9), serial="SN-2"))
    found = records.latest_motor_threshold(
        "S017", stimulator_model="magstim-rapid2", stimulator_serial="SN-1", coil="D70"
    )
    assert found == newest
    assert records.latest_motor_threshold("S017", stimulator_model="magstim-rapid2", stimulator_serial="SN-1",
                                          coil="figure8") is None
    assert len(records.motor_thresholds("S017")) == 5


def test_thresholds_used_must_match_the_stored_measurement(records: Records) -> None:
    records.ensure_subject("S017")
    records.ensure_subject("S018")
    stored = records.record_motor_threshold(_mt(40.0, "D70", datetime(2026, 1, 1, tzinfo=UTC)))
    matching = (ThresholdUsed("rMT", 40.0, stored.threshold_id),)
    good = records.create_session(session_plan(thresholds_used=matching))
    assert good.thresholds_used[0].threshold_id == stored.threshold_id
    with pytest.raises(RecordRefused, match=r"40.0 %MSO rMT"):
        other_value = (ThresholdUsed("rMT", 45.0, stored.threshold_id),)
        records.create_session(session_plan(thresholds_used=other_value))
    with pytest.raises(RecordRefused, match="belongs to subject"):
        records.create_session(session_plan(subject_id="S018", thresholds_used=matching))
    with pytest.raises(UnknownRecord):
        records.create_session(session_plan(thresholds_used=(ThresholdUsed("rMT", 40.0, 999),)))


def test_approval_is_for_the_exact_content_hash(records: Records) -> None:
    records.approve_protocol("itbs-600", PROTOCOL_HASH, approved_by="Dr. Reviewer")
    assert records.is_protocol_approved("itbs-600", PROTOCOL_HASH)
    assert not records.is_protocol_approved("itbs-600", OTHER_HASH)
    assert not records.is_protocol_approved("itbs-1800", PROTOCOL_HASH)


def test_an_override_binds_to_the_sessions_protocol_hash(records: Records) -> None:
    records.ensure_subject("S017")
    session_id = records.create_session(session_plan()).session_id
    override = Override(session_id, "W4", "train 6.0 s > 5 s at 110 %MT", "tech1", "approved by PI",
                        OTHER_HASH, "rulebook-1")
    with pytest.raises(RecordRefused, match="overrides bind"):
        records.record_override(override)
    stored = records.record_override(replace(override, protocol_hash=PROTOCOL_HASH))
    assert records.session_detail(session_id).overrides == (stored,)


def test_an_override_needs_a_reason() -> None:
    with pytest.raises(InvalidRecord, match="reason"):
        Override("ABCD-EFGH", "W4", "f", "tech1", "  ", PROTOCOL_HASH, "rulebook-1")


def test_recorded_history_cannot_be_rewritten(records: Records) -> None:
    session_id = running_session(records)
    records.record_fault(Fault(session_id, "coil_overtemp", "41 C", "armed"))
    for statement in ("UPDATE faults SET detail = 'nothing'", "DELETE FROM faults",
                      "DELETE FROM operator_actions", "DELETE FROM sessions",
                      "UPDATE sessions SET simulated = 1"):
        with pytest.raises(Exception, match=r"append-only|never"):
            records._db.execute(statement)  # behind the API on purpose


# -- queries --------------------------------------------------------------------------------------


def test_sessions_filter_by_subject_and_status(records: Records) -> None:
    first = running_session(records)
    second = running_session(records, subject_id="S018")
    records.abort_session(second, operator="t", reason="r")
    records.ensure_subject("S017")
    third = records.create_session(session_plan()).session_id
    assert [s.session_id for s in records.sessions()] == [first, second, third]
    assert [s.session_id for s in records.sessions(subject_id="S017")] == [first, third]
    assert [s.session_id for s in records.sessions(status="aborted")] == [second]
    planned = records.sessions(subject_id="S017", status=SessionStatus.PLANNED)
    assert [s.session_id for s in planned] == [third]
    with pytest.raises(InvalidRecord):
        records.sessions(status="sleeping")


def test_daily_exposure_counts_device_sessions_only_and_never_under_counts(
    records: Records, clock: VirtualClock
) -> None:
    clock.advance_to(3600 * 9)  # 09:00 UTC on 2026-01-01
    real = running_session(records)
    deliver(records, real, 0)
    deliver(records, real, 1)
    records.begin_delivery(train_plan(real, 2))
    records.record_progress(real, 2, pulses_delivered=4)  # crash-like: in progress
    simulated = running_session(records, simulated=True)
    deliver(records, simulated, 0)
    day = records.exposure_on_day("S017", date(2026, 1, 1))
    assert (day.confirmed_pulses, day.possible_pulses) == (24, 30)
    assert day.sessions_started == 1
    assert day.last_session_started_at == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert records.pulses_on_day("S017", date(2026, 1, 1)) == 30
    assert records.pulses_on_day("S017", date(2026, 1, 2)) == 0
    # A site at UTC+10 sees 09:00 UTC as 19:00 on 1 January.
    assert records.pulses_on_day("S017", date(2026, 1, 1), tz=timezone(timedelta(hours=10))) == 30
    # ...and a site at UTC-10 as 23:00 on 31 December.
    assert records.pulses_on_day("S017", date(2025, 12, 31), tz=timezone(-timedelta(hours=10))) == 30


def test_exposure_window_must_be_ordered(records: Records) -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidRecord):
        records.exposure_between("S017", moment, moment)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(done=st.dictionaries(st.integers(0, 11), st.sampled_from(["completed", "skipped"]), max_size=12))
def test_the_next_position_is_the_first_neither_completed_nor_skipped_even_with_gaps(
    tmp_path: Path, done: dict[int, str]
) -> None:
    # The runner keeps done positions a prefix, but a database written by another tool (or
    # repaired by hand) may have gaps: the resume point must still be the first hole.
    db = tmp_path / f"gaps-{len(list(tmp_path.iterdir()))}.db"
    with Records(db, clock=VirtualClock(autojump=False)) as store:
        sid = running_session(store, planned_deliveries=12, planned_pulses=120)
    with sqlite3.connect(db) as raw:
        for index, how in done.items():
            raw.execute(
                """INSERT INTO deliveries (session_id, delivery_index, attempt, kind, segment, planned_onset_s,
                       pulses_planned, intensity_pct_mso, trigger_source, started_at, state, pulses_delivered,
                       resolution)
                   VALUES (?, ?, 1, 'train', 1, 0, 10, 55, 'serial', '2026-01-01T00:00:00.000000+00:00', ?, ?, ?)""",
                (sid, index, "completed" if how == "completed" else "stopped",
                 10 if how == "completed" else 3, None if how == "completed" else "skipped"),
            )
    with Records(db, clock=VirtualClock(autojump=False)) as store:
        point = store.resume_point(sid)
    assert point.next_index == min(set(range(13)) - set(done))
    assert point.completed_deliveries == sum(how == "completed" for how in done.values())
    assert point.partial is None
