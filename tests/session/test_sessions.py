"""Whole sessions through the real bytes on a virtual clock, with records in a file database."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tmsctl.core.clock import VirtualClock
from tmsctl.lab.testing import check_dose_truth
from tmsctl.records import Records, SessionStatus
from tmsctl.session.planned import SessionRefused, SessionRequest, plan_session, run_planned
from tmsctl.session.runner import RunOutcome
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import parse_fault_plan

LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
SHORT = """\
schema_version: 1
id: short-10hz
title: Short 10 Hz test protocol
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern:
  kind: rtms
  frequency_hz: 10
  pulses_per_train: 20
  inter_train_interval_s: 8
  trains: 6
"""
_names = itertools.count()


@pytest.fixture
def records(tmp_path: Path):
    with Records(tmp_path / "records.db") as rec:
        yield rec


@pytest.fixture
def short_protocol(tmp_path: Path) -> Path:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT)
    return path


def _simulator(profile: str = "rapid2", faults: str = ""):
    clock = VirtualClock()
    name = f"{profile}-session-{next(_names)}"
    return clock, sims.create(profile, clock=clock, faults=parse_fault_plan(faults), name=name)


def approve(records, path: Path) -> None:
    from tmsctl.protocols.canonical import content_hash
    from tmsctl.protocols.loader import load_protocol

    protocol = load_protocol(path)
    if not records.is_protocol_approved(protocol.id, content_hash(protocol)):
        records.approve_protocol(protocol.id, content_hash(protocol), approved_by="reviewer")


def _plan(protocol: Path, sim, clock, records, *, approved: bool = True, **kw):
    if approved and protocol.parent != LIBRARY:
        approve(records, protocol)
    request = SessionRequest(protocol, f"sim://{sim.name}", "S001", operator="tester", mt_pct_mso=kw.pop("mt", 55), **kw)
    planned = plan_session(request, records)
    assert planned.clock is clock  # a pre-registered simulator brings its own clock
    return planned


def test_the_10hz_library_session_runs_completely_and_is_recorded(records) -> None:
    clock, sim = _simulator()
    planned = _plan(LIBRARY / "neurostar-10hz-ldlpfc.yaml", sim, clock, records)
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert result.pulses_delivered == 3000 == sim.device.pulse_count
    assert sim.device.interlocks == [] and sim.device.fault_log == []
    assert 2200 < clock.now() < 2300  # 75 trains 30 s apart, on the virtual clock
    session = records.session(session_id)
    assert session.status is SessionStatus.COMPLETED and session.simulated
    point = records.resume_point(session_id)
    assert point.pulses_delivered == 3000 and point.finished
    intensities = {p.intensity_pct for p in sim.device.pulses}
    assert intensities == {66}  # 120 % of 55 %MSO, rounded half up


def test_train_onsets_follow_the_schedule_exactly(records, short_protocol) -> None:
    clock, sim = _simulator()
    planned = _plan(short_protocol, sim, clock, records)
    _, _result = run_planned(planned, records)
    firsts = [p.t for p in sim.device.pulses[::20]]
    gaps = [b - a for a, b in itertools.pairwise(firsts)]
    assert gaps == pytest.approx([10.0] * 5, abs=1e-6)  # 2 s train + 8 s off, no drift


@pytest.mark.parametrize(
    "fault", ["coil_unplugged@25s", "over_temperature@25s", "device_error@25s", "no_reply@cmd60",
              "stall@cmd60", "bad_checksum@cmd60", "garbled_byte@cmd60"],
)
def test_each_fault_mid_session_ends_disarmed_and_recorded(records, short_protocol, fault) -> None:
    clock, sim = _simulator(faults=fault)
    planned = _plan(short_protocol, sim, clock, records)
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.FAULTED
    clock.sleep(2.0)
    sim.device.advance(clock.now())
    assert not (sim.device.armed or sim.device.ready)
    detail = records.session_detail(session_id)
    assert detail.session.status is SessionStatus.FAULTED
    assert detail.faults and detail.faults[-1].detail
    check_dose_truth(records, session_id, sim.device)


def test_pause_then_resume_delivers_exactly_the_remainder(records, short_protocol) -> None:
    clock, sim = _simulator()
    planned = _plan(short_protocol, sim, clock, records)
    holder = {}

    def on_progress(p):
        if p.next_index == 2:
            holder["runner"].request_pause("subject asked for a break")

    session_id, result = run_planned(planned, records, on_progress=on_progress, on_runner=lambda r: holder.update(runner=r))
    assert result.outcome is RunOutcome.PAUSED and result.next_index == 2
    assert records.session(session_id).status is SessionStatus.PAUSED
    assert sim.device.pulse_count == 40 and not sim.device.armed
    clock.sleep(120)
    resumed = _plan(short_protocol, sim, clock, records, resume_session_id=session_id)
    assert resumed.start_index == 2
    _, result = run_planned(resumed, records)
    assert result.outcome is RunOutcome.COMPLETED
    assert sim.device.pulse_count == 120 == records.resume_point(session_id).pulses_delivered


def test_operator_interrupt_disarms_and_records_an_abort(records, short_protocol) -> None:
    clock, sim = _simulator()
    planned = _plan(short_protocol, sim, clock, records)

    pressed = []

    def on_progress(p):
        if p.next_index == 3 and clock.now() > 35 and not pressed:
            pressed.append(clock.now())
            raise KeyboardInterrupt  # Ctrl-C, once

    session_id, result = run_planned(planned, records, on_progress=on_progress)
    assert result.outcome is RunOutcome.ABORTED
    assert not (sim.device.armed or sim.device.ready)
    assert records.session(session_id).status is SessionStatus.ABORTED


def test_resume_with_a_changed_protocol_is_refused(records, short_protocol, tmp_path) -> None:
    clock, sim = _simulator()
    planned = _plan(short_protocol, sim, clock, records)
    holder = {}
    session_id, _ = run_planned(
        planned, records, on_progress=lambda p: p.next_index == 1 and holder["r"].request_pause(),
        on_runner=lambda r: holder.update(r=r),
    )
    changed = tmp_path / "changed.yaml"
    changed.write_text(SHORT.replace("trains: 6", "trains: 7"))
    with pytest.raises(SessionRefused, match="content hash"):
        _plan(changed, sim, clock, records, resume_session_id=session_id)


def test_theta_burst_is_refused_on_a_rapid2_with_the_reason(records) -> None:
    clock, sim = _simulator()
    with pytest.raises(SessionRefused) as info:
        _plan(LIBRARY / "itbs-600.yaml", sim, clock, records, mt=50)
    assert "theta" in str(info.value).lower()


def test_virtual_time_is_refused_for_a_real_port(records, short_protocol) -> None:
    request = SessionRequest(short_protocol, "magstim-rapid2:///dev/ttyUSB0", "S001", mt_pct_mso=50, virtual_time=True)
    with pytest.raises(Exception, match="virtual-time"):
        plan_session(request, records)


def test_an_unapproved_or_modified_protocol_is_refused_unless_allowed_with_a_reason(records, short_protocol, tmp_path) -> None:
    clock, sim = _simulator()
    with pytest.raises(SessionRefused, match="never approved"):
        _plan(short_protocol, sim, clock, records, approved=False)
    modified = tmp_path / "neurostar-10hz-ldlpfc.yaml"
    modified.write_text((LIBRARY / "neurostar-10hz-ldlpfc.yaml").read_text().replace("scaling_pct: 120", "scaling_pct: 110"))
    with pytest.raises(SessionRefused, match="differs from the vetted library protocol"):
        _plan(modified, sim, clock, records, approved=False)
    planned = _plan(short_protocol, sim, clock, records, approved=False, allow_unapproved_reason="pilot, IRB 2026-17")
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.COMPLETED
    overrides = records.session_detail(session_id).overrides
    assert [(o.rule_id, o.reason) for o in overrides] == [("approval.unapproved-protocol", "pilot, IRB 2026-17")]


def test_a_stale_motor_threshold_needs_a_recorded_reason(records, short_protocol) -> None:
    from datetime import timedelta

    from tmsctl import records as rec

    clock, sim = _simulator()
    measured = clock.wall() - timedelta(days=10)
    records.ensure_subject("S001")
    records.record_motor_threshold(
        rec.MotorThreshold("S001", "magstim-rapid2", "SIM-1", "figure8", 52.0, "rMT", "ML-PEST", measured, "tester")
    )
    with pytest.raises(SessionRefused, match="10 days ago") as info:
        _plan(short_protocol, sim, clock, records, mt=None)
    assert "mt.stale" in str(info.value)
    planned = _plan(short_protocol, sim, clock, records, mt=None, overrides={"mt.stale": "re-checked 2 pulses, unchanged"})
    assert planned.schedule.intensity_pct_mso == 52
    with pytest.raises(Exception, match="only tighten"):
        _plan(short_protocol, sim, clock, records, mt=None, max_mt_age_days=30)


def test_a_site_may_demand_fresher_thresholds(records, short_protocol) -> None:
    from datetime import timedelta

    from tmsctl import records as rec

    clock, sim = _simulator()
    records.ensure_subject("S001")
    records.record_motor_threshold(
        rec.MotorThreshold("S001", "magstim-rapid2", "SIM-1", "figure8", 52.0, "rMT", "ML-PEST",
                           clock.wall() - timedelta(days=3), "tester")
    )
    assert _plan(short_protocol, sim, clock, records, mt=None).verdict.allowed
    with pytest.raises(SessionRefused, match=r"mt.stale"):
        _plan(short_protocol, sim, clock, records, mt=None, max_mt_age_days=2)


def test_thresholds_from_a_simulator_never_set_a_real_session_and_serials_are_respected(records) -> None:
    from datetime import timedelta

    from tmsctl import records as rec
    from tmsctl.drivers.base import DeviceInfo
    from tmsctl.protocols.loader import load_protocol_text
    from tmsctl.session.planned import _thresholds

    now = VirtualClock().wall()
    records.ensure_subject("S001")
    for serial, value, age in (("SIM-rapid2", 40.0, 0), ("RAPID-17", 55.0, 2), ("RAPID-17", 56.0, 1), ("RAPID-99", 61.0, 0)):
        records.record_motor_threshold(
            rec.MotorThreshold("S001", "magstim-rapid2", serial, "figure8", value, "rMT", "ML-PEST",
                               now - timedelta(days=age), "tester")
        )
    protocol = load_protocol_text(SHORT)
    real = DeviceInfo("magstim-rapid2", "Magstim Rapid²", (9, 0), frozenset(), simulated=False)
    request = SessionRequest(Path("x.yaml"), "magstim-rapid2:///dev/ttyUSB0", "S001")
    chosen, ids = _thresholds(request, protocol, real, records)
    assert [t.value_pct_mso for t in chosen] == [61.0]  # the latest real one, never the simulator's
    request.stimulator_serial = "RAPID-17"
    chosen, ids = _thresholds(request, protocol, real, records)
    assert [t.value_pct_mso for t in chosen] == [56.0] and len(ids) == 1


def test_the_threshold_used_is_recorded_with_the_session(records, short_protocol) -> None:
    from tmsctl import records as rec

    clock, sim = _simulator()
    records.ensure_subject("S001")
    stored = records.record_motor_threshold(
        rec.MotorThreshold("S001", "magstim-rapid2", "SIM-x", "figure8", 52.0, "rMT", "ML-PEST", clock.wall(), "tester")
    )
    planned = _plan(short_protocol, sim, clock, records, mt=None)
    session_id, _ = run_planned(planned, records)
    used = records.session(session_id).thresholds_used
    assert [(u.value_pct_mso, u.threshold_id) for u in used] == [(52.0, stored.threshold_id)]


def test_a_device_that_never_answers_is_recorded_as_unconfirmed(records, tmp_path) -> None:
    singles = tmp_path / "singles.yaml"
    singles.write_text(
        SHORT.replace("pattern:\n  kind: rtms\n  frequency_hz: 10\n  pulses_per_train: 20\n"
                      "  inter_train_interval_s: 8\n  trains: 6\n", "pattern: {kind: single_pulse, interval_s: 5, pulses: 3}\n")
        .replace("target: {method: eeg_10_20, site: F3}", "target: {method: motor_hotspot, muscle: FDI}")
    )
    clock, sim = _simulator("duomag")
    planned = _plan(singles, sim, clock, records)
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert records.session(session_id).replies_confirmed is False
    clock2, rapid = _simulator()
    planned = _plan(singles, rapid, clock2, records)
    session_id, _ = run_planned(planned, records)
    assert records.session(session_id).replies_confirmed is True


def test_a_version_1_database_is_upgraded_with_its_history_kept(tmp_path) -> None:
    import sqlite3

    from tmsctl import records as rec
    from tmsctl.records.schema import APPLICATION_ID, MIGRATIONS

    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](raw)  # exactly what version 1 wrote
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.execute("PRAGMA user_version = 1")
    raw.execute("INSERT INTO subjects VALUES ('OLD1', '2025-01-01T00:00:00.000000+00:00')")
    raw.execute(
        "INSERT INTO sessions (session_id, subject_id, protocol_id, protocol_hash, protocol_text, device_url, "
        "device_model, simulated, planned_deliveries, planned_pulses, status, created_at) VALUES "
        "('AAAA-BBBB', 'OLD1', 'p', ?, 't', 'sim://rapid2', 'magstim-rapid2', 1, 1, 10, 'interrupted', "
        "'2025-01-01T00:00:00.000000+00:00')", ("0" * 64,),
    )
    raw.execute(
        "INSERT INTO deliveries (session_id, delivery_index, attempt, kind, segment, planned_onset_s, pulses_planned, "
        "intensity_pct_mso, trigger_source, started_at, state, pulses_delivered) VALUES "
        "('AAAA-BBBB', 0, 1, 'train', 1, 0, 10, 50, 'serial', '2025-01-01T00:00:01.000000+00:00', 'in_progress', 1)"
    )
    raw.close()
    path.chmod(0o600)
    with Records(path) as upgraded:
        assert upgraded.storage_settings().schema_version == rec.SCHEMA_VERSION
        point = upgraded.resume_point("AAAA-BBBB")
        # an intent with no outcome, from before uncertainty was recorded, reads as uncertain
        assert (point.pulses_delivered, point.pulses_uncertain) == (1, 9)


def test_the_audit_log_holds_every_train(records, short_protocol, tmp_path) -> None:
    from tmsctl.session.audit import read_audit_log

    clock, sim = _simulator()
    planned = _plan(short_protocol, sim, clock, records, log_dir=tmp_path / "logs")
    session_id, _result = run_planned(planned, records)
    rows = read_audit_log(tmp_path / "logs" / f"{session_id}.jsonl")
    finished = [r for r in rows if r["event"] == "train_finished"]
    assert [r["index"] for r in finished] == list(range(6))
    assert sum(r["pulses_delivered"] for r in finished) == sim.device.pulse_count == 120
    assert all(r["session_id"] == session_id and r["simulated"] for r in rows)


@pytest.mark.parametrize("mt", [50, 62])
def test_the_1hz_900_pulse_library_train_runs_to_its_end_and_is_true(records, mt) -> None:
    # One 15-minute train: the unit's one-minute armed-idle timer must count every pulse as activity,
    # and the controller must watch the whole train on the device's own status
    clock, sim = _simulator()
    planned = _plan(LIBRARY / "bpd-1hz-rdlpfc.yaml", sim, clock, records, mt=mt)
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert result.pulses_delivered == 900 == sim.device.pulse_count and result.pulses_uncertain == 0
    assert records.session(session_id).status is SessionStatus.COMPLETED
    check_dose_truth(records, session_id, sim.device)


def test_a_rapid2_left_in_train_mode_fires_single_pulses_as_single_pulses(records, tmp_path) -> None:
    from tmsctl.core.registry import open_driver

    clock, sim = _simulator()
    left = open_driver(f"sim://{sim.name}", clock)  # someone else's session left the unit in train mode
    left.connect()
    left.set_intensity(50)
    left.set_train(10.0, 20)
    left.close()
    protocol = tmp_path / "singles.yaml"
    protocol.write_text(
        "schema_version: 1\nid: rapid-singles\ntitle: Single pulses on a Rapid2\ncoil: {family: figure8}\n"
        "target: {method: motor_hotspot, muscle: FDI}\nhemisphere: left\nintensity: {reference: rMT, scaling_pct: 100}\n"
        "pattern: {kind: single_pulse, interval_s: 5, pulses: 3}\n"
    )
    planned = _plan(protocol, sim, clock, records, mt=50)
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert sim.device.pulse_count == 3
    check_dose_truth(records, session_id, sim.device)
