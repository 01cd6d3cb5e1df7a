"""iTBS from a trigger box outside tmsctl (``trigger: external``) on a MagPro: tmsctl arms, waits,
counts each train's pulses from the device's own reports, and stops at the protocol's last pulse or
when the box falls silent. The box is simulated on the unit's rear trigger input, on the virtual clock."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tmsctl.core.clock import VirtualClock
from tmsctl.lab.testing import check_dose_truth
from tmsctl.protocols.canonical import content_hash
from tmsctl.protocols.loader import load_protocol
from tmsctl.records import Records, SessionStatus
from tmsctl.session.planned import SessionRequest, plan_session, run_planned
from tmsctl.session.runner import EXTERNAL_START_TIMEOUT_S, RunOutcome
from tmsctl.simulators import registry as sims

LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
ITBS_BOX = (LIBRARY / "itbs-600.yaml").read_text().replace("id: itbs-600", "id: itbs-600-box") + (
    "timed_by: external_trigger\ntrigger: external\n"
)
BOX_STARTS_AT = 20.0  # the box's first pulse, on the simulator's clock (tmsctl arms a few seconds in)
_names = itertools.count()


@pytest.fixture
def records(tmp_path: Path):
    with Records(tmp_path / "records.db") as rec:
        yield rec


def _planned(records, tmp_path: Path):
    path = tmp_path / "itbs-box.yaml"
    path.write_text(ITBS_BOX)
    protocol = load_protocol(path)
    records.approve_protocol(protocol.id, content_hash(protocol), approved_by="reviewer")
    clock = VirtualClock()
    sim = sims.create("magpro-x100", clock=clock, name=f"magpro-box-{next(_names)}")
    planned = plan_session(SessionRequest(path, f"sim://{sim.name}", "S001", operator="tester", mt_pct_mso=40), records)
    due = [BOX_STARTS_AT + t.onset_s + offset for t in planned.schedule.trains for offset in t.pulse_offsets_s]
    return planned, sim, clock, due


def test_itbs_600_from_a_trigger_box_is_counted_from_the_device_and_recorded(records, tmp_path) -> None:
    planned, sim, _clock, due = _planned(records, tmp_path)
    sim.device.schedule_trigger_edges(due)
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    truth = sim.device.truth()
    assert len(truth) == 600 and {p.source for p in truth} == {"ttl"} and {p.intensity_pct for p in truth} == {32}
    assert [p.t for p in truth] == pytest.approx(due, abs=1e-9)  # the box's timing, not tmsctl's
    assert result.pulses_delivered == 600 and result.pulses_uncertain == 0
    detail = records.session_detail(session_id)
    assert records.session(session_id).status is SessionStatus.COMPLETED
    assert [d.pulses_delivered for d in detail.deliveries] == [30] * 20
    assert {d.trigger_source.value for d in detail.deliveries} == {"external_ttl"}
    assert not sim.device.is_energised  # disarmed at the end
    check_dose_truth(records, session_id, sim.device)


def test_a_box_that_falls_silent_is_stopped_disarmed_with_what_it_fired_on_record(records, tmp_path) -> None:
    planned, sim, _clock, due = _planned(records, tmp_path)
    sim.device.schedule_trigger_edges(due[:445])  # 14 trains and 25 pulses of the 15th
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.FAULTED and "fired 25 of its 30 pulses" in result.reason
    assert sim.device.pulse_count == 445 and not sim.device.is_energised
    assert result.pulses_delivered == 445 and result.pulses_uncertain == 0
    check_dose_truth(records, session_id, sim.device)


def test_a_box_that_never_starts_is_given_up_on_disarmed(records, tmp_path) -> None:
    planned, sim, clock, _due = _planned(records, tmp_path)
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.FAULTED and "0 of its 30 pulses" in result.reason
    assert EXTERNAL_START_TIMEOUT_S <= clock.now() < EXTERNAL_START_TIMEOUT_S + 30
    assert sim.device.pulse_count == 0 and not sim.device.is_energised
    check_dose_truth(records, session_id, sim.device)
