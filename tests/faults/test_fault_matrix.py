"""Every fault kind × every device family × every session phase ends disarmed with a complete record.

The session timeline on the virtual clock (first train at ~3.5 s):
  idle 0.5 s (connected, disarmed) · arming 1.3 s (arm at 1.0 s, charged at 1.8 s) ·
  armed 2.6 s (charged, waiting for the first train) · mid-train 4.2 s · between trains 7.0 s
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tmsctl.clock import VirtualClock
from tmsctl.records import Records, SessionStatus
from tmsctl.runner import RunOutcome
from tmsctl.session import SessionRequest, plan_session, run_planned
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import FaultKind, parse_fault_plan

TRAINS = """\
schema_version: 1
id: fault-matrix-trains
title: Fault matrix, trains
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 20, inter_train_interval_s: 5, trains: 3}
"""
SINGLES = """\
schema_version: 1
id: fault-matrix-singles
title: Fault matrix, single pulses
coil: {family: figure8}
target: {method: motor_hotspot, muscle: FDI}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern: {kind: single_pulse, interval_s: 5, pulses: 3}
"""
FAMILIES = {"rapid2": TRAINS, "m200": SINGLES, "bistim": SINGLES}
PHASES = {"idle": 0.5, "arming": 1.3, "armed": 2.6, "mid-train": 4.2, "between-trains": 7.0}
_names = itertools.count()


@pytest.mark.parametrize("phase", sorted(PHASES))
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("fault", sorted(k.value for k in FaultKind))
def test_fault_ends_disarmed_and_recorded(tmp_path: Path, fault: str, family: str, phase: str) -> None:
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(FAMILIES[family])
    clock = VirtualClock()
    name = f"{family}-matrix-{next(_names)}"
    sim = sims.create(family, clock=clock, faults=parse_fault_plan(f"{fault}@{PHASES[phase]}s"), name=name)
    try:
        with Records(tmp_path / "records.db") as records:
            request = SessionRequest(protocol, f"sim://{name}", "F001", mt_pct_mso=50,
                                     allow_unapproved_reason="fault matrix")
            planned = plan_session(request, records)
            session_id, result = run_planned(planned, records)
            clock.sleep(3.0)
            sim.device.advance(clock.now())
            assert not sim.device.is_energised, "the simulated unit must end disarmed"
            assert sim.device.interlocks == [], "the controller must never provoke the unit's own interlock"
            detail = records.session_detail(session_id)
            recorded = detail.resume_point.pulses_delivered
            if result.outcome is RunOutcome.COMPLETED:
                # a fault the session never met (e.g. the unit answered every command after it)
                assert detail.session.status is SessionStatus.COMPLETED
                assert recorded == sim.device.pulse_count
            else:
                assert result.outcome is RunOutcome.FAULTED, result
                assert detail.session.status is SessionStatus.FAULTED
                assert detail.faults and all(f.detail for f in detail.faults)
                # never under-counted; a train cut short may be counted whole (never over-dose)
                assert 0 <= recorded - sim.device.pulse_count <= 20
    finally:
        sims.remove(name)
