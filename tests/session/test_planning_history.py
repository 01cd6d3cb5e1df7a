"""Planning a session against the subject's history (issue 15, findings 4 and 5).

Site caps judge a real session against every real session of the subject: sessions started today,
minutes since the last start, and pulses today counted cap-safe (known delivered + uncertain). A
resume keeps the session's threshold and intensity; a different threshold needs a recorded reason.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tmsctl import records as rec
from tmsctl.core.clock import VirtualClock
from tmsctl.lab.testing import serving
from tmsctl.protocols.canonical import content_hash
from tmsctl.protocols.loader import load_protocol
from tmsctl.records import Records
from tmsctl.session.planned import SessionRefused, SessionRequest, plan_session, run_planned
from tmsctl.session.runner import RunOutcome
from tmsctl.simulators import registry as sims

UNLOCK = "SIMU-00000000-5AA5"
TINY = """\
schema_version: 1
id: tiny-10hz
title: One short 10 Hz train
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 5, inter_train_interval_s: 5, trains: 1}
"""
SHORT = """\
schema_version: 1
id: short-10hz-resume
title: Short 10 Hz test protocol
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 20, inter_train_interval_s: 8, trains: 6}
"""
_names = itertools.count()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "records.db"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture
def real_port(monkeypatch):
    """A Rapid² simulator on a pseudo-terminal: to tmsctl an ordinary serial port, not a simulator."""
    monkeypatch.setenv("SIM_UNLOCK", UNLOCK)
    instance = sims.create("rapid2")
    with serving(instance.device) as path:
        yield f"magstim-rapid2://{path}?unlock=env:SIM_UNLOCK"


def _real_sessions(db: Path, protocol: Path, subject: str, starts: list[datetime], *, pulses: int = 5,
                   simulated: bool = False, finish: bool = True) -> list[str]:
    """Sessions on record as if run at ``starts`` (the records' own clock stamps them)."""
    parsed = load_protocol(protocol)
    ids = []
    for start in starts:
        with Records(db, clock=VirtualClock(wall_start=start)) as records:
            records.ensure_subject(subject)
            session = records.create_session(
                rec.SessionPlan(subject, parsed.id, content_hash(parsed), protocol.read_text(), "magstim-rapid2:///dev/x",
                                "magstim-rapid2", simulated, 1, pulses, coil="figure8",
                                thresholds_used=(rec.ThresholdUsed("rMT", 50.0, None),))
            )
            records.start_session(session.session_id, operator="t", offset_s=0.0)
            records.begin_delivery(rec.DeliveryPlan(session.session_id, 0, rec.DeliveryKind.TRAIN, 0.0, pulses, 50.0,
                                                    rec.TriggerSource.SERIAL))
            if finish:
                records.finish_delivery(rec.DeliveryResult(session.session_id, 0, pulses, True))
                records.complete_session(session.session_id)
            ids.append(session.session_id)
    return ids


def _request(protocol: Path, device: str, subject: str = "R001", **kw) -> SessionRequest:
    kw.setdefault("mt_pct_mso", 50)
    return SessionRequest(protocol, device, subject, operator="tester", allow_unapproved_reason="test", **kw)


# --- finding 4: site caps see the subject's history -----------------------------------------------------


def test_a_second_real_session_minutes_after_the_first_needs_a_recorded_reason(db, tiny, real_port) -> None:
    now = datetime.now(UTC)
    _real_sessions(db, tiny, "R001", [now - timedelta(minutes=3)])
    with Records(db) as records:
        with pytest.raises(SessionRefused) as refused:
            plan_session(_request(tiny, real_port), records)
        assert "site.session-spacing" in str(refused.value)
        assert "min ago" in str(refused.value) and "--override" in refused.value.hint
        planned = plan_session(_request(tiny, real_port, overrides={"site.session-spacing": "rescheduled by the PI"}),
                               records)
        assert planned.verdict.overrides_used == {"site.session-spacing": "rescheduled by the PI"}


def test_the_eleventh_real_session_of_the_day_is_above_the_site_cap(db, tiny, real_port) -> None:
    now = datetime.now(UTC)
    # ten sessions already today, the last an hour ago (spacing is fine; the count is not)
    starts = [now - timedelta(minutes=60 + i) for i in range(10)]
    if starts[-1].date() != now.date():
        pytest.skip("too close to midnight UTC for ten sessions today")
    _real_sessions(db, tiny, "R001", starts)
    with Records(db) as records:
        with pytest.raises(SessionRefused) as refused:
            plan_session(_request(tiny, real_port), records)
        assert "site.sessions-per-day" in str(refused.value) and "session 11 today" in str(refused.value)
        assert "site.session-spacing" not in str(refused.value)


def test_pulses_today_count_the_uncertain_ones(db, tmp_path, real_port) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(TINY.replace("pulses_per_train: 5, inter_train_interval_s: 5, trains: 1",
                                "pulses_per_train: 50, inter_train_interval_s: 10, trains: 60"))
    now = datetime.now(UTC)
    # a crash mid-train: 15,001 pulses intended, none known delivered, every one possibly delivered
    _real_sessions(db, big, "R001", [now - timedelta(minutes=120)], pulses=15_001, finish=False)
    with Records(db) as records:
        exposure = records.exposure_on_day("R001", now.date())
        assert exposure.confirmed_pulses == 0 and exposure.possible_pulses == 15_001
        with pytest.raises(SessionRefused, match=r"site.day-pulses") as refused:
            plan_session(_request(big, real_port, overrides={"site.session-pulses": "big test"}), records)
        assert "15,001 pulses already today plus 3,000" in str(refused.value)


def test_simulated_sessions_neither_count_for_nor_are_blocked_by_a_real_subject(db, tiny, real_port) -> None:
    now = datetime.now(UTC)
    _real_sessions(db, tiny, "R001", [now - timedelta(minutes=1)] * 1)
    clock = VirtualClock()
    sim = sims.create("rapid2", clock=clock, name=f"history-sim-{next(_names)}")
    try:
        with Records(db) as records:
            # a rehearsal on the simulator, minutes after a real session of the same subject
            rehearsal = plan_session(_request(tiny, f"sim://{sim.name}"), records)
            assert rehearsal.verdict.allowed
            assert not any(f.rule_id.startswith("site.") for f in rehearsal.verdict.findings)
    finally:
        sims.remove(sim.name)
    # and simulated sessions never make a real one need a reason
    _real_sessions(db, tiny, "R002", [now - timedelta(minutes=1)] * 3, simulated=True)
    with Records(db) as records:
        assert plan_session(_request(tiny, real_port, subject="R002"), records).verdict.allowed


def test_the_history_spans_midnight_and_counts_future_stamps_as_too_close(db, tiny) -> None:
    from tmsctl.session.planned import subject_history

    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    _real_sessions(db, tiny, "R001", [midnight - timedelta(minutes=10)])
    with Records(db) as records:
        after = subject_history(records, "R001", midnight + timedelta(minutes=15), simulated=False)
        assert after.sessions_today == 0 and after.pulses_today == 0  # yesterday's day
        assert after.minutes_since_last_start == pytest.approx(25)  # but only 25 min ago
        before = subject_history(records, "R001", midnight - timedelta(minutes=20), simulated=False)
        assert before.minutes_since_last_start == pytest.approx(-10)  # a start after "now": too close
        assert subject_history(records, "R001", midnight, simulated=True).sessions_today == 0


def test_resuming_a_real_session_is_not_a_new_session_and_its_pulses_count_once(db, tiny, real_port) -> None:
    from tmsctl.session.planned import subject_history

    now = datetime.now(UTC)
    [session_id] = _real_sessions(db, tiny, "R001", [now - timedelta(minutes=2)], finish=False)
    with Records(db) as records:
        resumed = records.session(session_id)
        history = subject_history(records, "R001", now, simulated=False, resuming=resumed)
        assert history.sessions_today == 0 and history.minutes_since_last_start is None
        assert history.pulses_today == 0  # its own 5 possible pulses are inside its planned total
        planned = plan_session(_request(tiny, real_port, mt_pct_mso=None, resume_session_id=session_id), records)
        assert planned.verdict.allowed, planned.verdict.findings


# --- finding 5: a resume keeps the dose -------------------------------------------------------------------


@pytest.fixture
def paused_at_40(tmp_path: Path):
    """A simulated session started at --mt 40, paused after two trains."""
    protocol = tmp_path / "short.yaml"
    protocol.write_text(SHORT)
    clock = VirtualClock()
    sim = sims.create("rapid2", clock=clock, name=f"resume-sim-{next(_names)}")
    with Records(tmp_path / "records.db") as records:
        planned = plan_session(_request(protocol, f"sim://{sim.name}", subject="S001", mt_pct_mso=40), records)
        holder = {}

        def on_progress(p) -> None:
            if p.next_index == 2:
                holder["runner"].request_pause("break")

        session_id, result = run_planned(planned, records, on_progress=on_progress,
                                         on_runner=lambda r: holder.update(runner=r))
        assert result.outcome is RunOutcome.PAUSED
        clock.sleep(120)  # the break (as in test_sessions: the unit leaves remote control in between)
        yield protocol, sim, records, session_id
    sims.remove(sim.name)


def test_a_resume_without_mt_keeps_the_sessions_threshold(paused_at_40) -> None:
    protocol, sim, records, session_id = paused_at_40
    # a newer threshold on record does not change a session half delivered
    records.record_motor_threshold(
        rec.MotorThreshold("S001", "magstim-rapid2", "SIM-x", "figure8", 60.0, "rMT", "ML-PEST",
                           sim.clock.wall(), "tester")
    )
    planned = plan_session(_request(protocol, f"sim://{sim.name}", subject="S001", mt_pct_mso=None,
                                    resume_session_id=session_id), records)
    assert planned.schedule.intensity_pct_mso == 40
    assert [t.value_pct_mso for t in planned.thresholds] == [40.0]
    assert planned.threshold_change is None
    _, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.COMPLETED
    assert {p.intensity_pct for p in sim.device.pulses} == {40}
    # the same value given again is no change
    assert plan_session(_request(protocol, f"sim://{sim.name}", subject="S001", mt_pct_mso=40,
                                 resume_session_id=session_id), records).threshold_change is None


def test_a_resume_at_another_threshold_is_refused_without_a_recorded_reason(paused_at_40) -> None:
    protocol, sim, records, session_id = paused_at_40
    with pytest.raises(SessionRefused) as refused:
        plan_session(_request(protocol, f"sim://{sim.name}", subject="S001", mt_pct_mso=80,
                              resume_session_id=session_id), records)
    assert "mt.rethreshold" in str(refused.value) and "40" in str(refused.value) and "80" in str(refused.value)
    assert "without --mt" in refused.value.hint and "--override mt.rethreshold=" in refused.value.hint
    planned = plan_session(
        _request(protocol, f"sim://{sim.name}", subject="S001", mt_pct_mso=80, resume_session_id=session_id,
                 overrides={"mt.rethreshold": "re-hunted after the break: 80"}),
        records,
    )
    assert planned.schedule.intensity_pct_mso == 80
    assert planned.threshold_change is not None and planned.threshold_change.recorded_pct_mso == 40
    assert "mt.rethreshold" not in planned.verdict.overrides_unused
    _, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.COMPLETED
    overrides = [o for o in records.session_detail(session_id).overrides if o.rule_id.startswith("mt.")]
    assert [(o.rule_id, o.reason) for o in overrides] == [("mt.rethreshold", "re-hunted after the break: 80")]
    assert "40" in overrides[0].finding and "80" in overrides[0].finding


def test_a_simulated_session_cannot_be_resumed_on_a_real_device(db, tiny, real_port) -> None:
    # its pulses would count toward no one's exposure
    [session_id] = _real_sessions(db, tiny, "R001", [datetime.now(UTC)], simulated=True, finish=False)
    with Records(db) as records, pytest.raises(SessionRefused, match=r"resume.simulated") as refused:
        plan_session(_request(tiny, real_port, mt_pct_mso=None, resume_session_id=session_id), records)
    assert "start a new session" in refused.value.hint
