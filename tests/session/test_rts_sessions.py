"""iTBS on a Rapid² through RTS triggering: tmsctl times every pulse on the serial RTS line (the
Magstim quick-fire cable), and the record holds what the device's status showed, pulse by pulse."""

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
from tmsctl.session.runner import RunOutcome
from tmsctl.simulators import registry as sims

LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
ITBS_RTS = (LIBRARY / "itbs-600.yaml").read_text().replace("id: itbs-600", "id: itbs-600-rts") + (
    "timed_by: external_trigger\ntrigger: rts\n"
)
_names = itertools.count()


@pytest.fixture
def records(tmp_path: Path):
    with Records(tmp_path / "records.db") as rec:
        yield rec


def _run(records, tmp_path: Path, *, mt: float = 25):
    path = tmp_path / "itbs-rts.yaml"
    path.write_text(ITBS_RTS)
    protocol = load_protocol(path)
    records.approve_protocol(protocol.id, content_hash(protocol), approved_by="reviewer")
    clock = VirtualClock()
    sim = sims.create("rapid2", clock=clock, name=f"rapid2-rts-{next(_names)}")
    planned = plan_session(SessionRequest(path, f"sim://{sim.name}", "S001", operator="tester", mt_pct_mso=mt), records)
    session_id, result = run_planned(planned, records)
    return planned, sim, session_id, result


def test_itbs_600_through_rts_is_delivered_true_recorded_and_on_time(records, tmp_path) -> None:
    planned, sim, session_id, result = _run(records, tmp_path)  # 80 % of aMT 25 %MSO: 20 %MSO, 50 Hz allowed
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    truth = sim.device.truth()
    assert len(truth) == 600 and {p.source for p in truth} == {"rts"} and {p.intensity_pct for p in truth} == {20}
    assert sim.device.interlocks == [] and sim.device.fault_log == []
    assert result.pulses_delivered == 600 and result.pulses_uncertain == 0
    detail = records.session_detail(session_id)
    assert records.session(session_id).status is SessionStatus.COMPLETED
    assert sum(d.pulses_delivered for d in detail.deliveries) == 600
    assert {d.trigger_source.value for d in detail.deliveries} == {"rts"}
    check_dose_truth(records, session_id, sim.device)
    # Every pulse on the simulator's clock against the schedule: p99 within 0.5 ms.
    schedule = planned.schedule
    origin = truth[0].t - schedule.trains[0].onset_s
    due = [origin + train.onset_s + offset for train in schedule.trains for offset in train.pulse_offsets_s]
    errors = sorted(abs(p.t - t) for p, t in zip(truth, due, strict=True))
    assert errors[int(0.99 * (len(errors) - 1))] <= 0.0005
    # and the bursts keep their shape: 20 ms inside, 200 ms burst to burst
    inside = [b.t - a.t for a, b in itertools.pairwise(truth[:3])]
    assert inside == pytest.approx([0.02, 0.02], abs=1e-6)
    assert truth[3].t - truth[0].t == pytest.approx(0.2, abs=1e-6)
