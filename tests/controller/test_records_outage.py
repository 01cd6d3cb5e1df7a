"""A records store that cannot be reached: no trigger without a durable intent; the runner waits
disarmed and carries on when the records answer again, or ends the session when they do not."""

from __future__ import annotations

from pathlib import Path

from tmsctl.protocols.loader import load_protocol_text
from tmsctl.protocols.rules import check
from tmsctl.records.errors import RecordsUnavailable
from tmsctl.session.dose import DoseCount
from tmsctl.session.runner import RECORDS_WAIT_LIMIT_S, DeliveryLog, RunOutcome, SessionRunner

PROTOCOL = """\
schema_version: 1
id: outage
title: Records outage
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: MSO, scaling_pct: 40}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 10, inter_train_interval_s: 10, trains: 3}
"""


class OutageLog(DeliveryLog):
    """Records that stop answering before the second train's intent, until ``back_at`` on the clock."""

    def __init__(self, clock, back_at: float) -> None:
        self.clock, self.back_at = clock, back_at
        self.begun: list[int] = []
        self.finished: list[DoseCount] = []
        self.refused = 0

    def begin(self, train, planned_at, trigger_source) -> None:
        if train.index == 1 and self.clock.now() < self.back_at:
            self.refused += 1
            raise RecordsUnavailable("the records server went away", path=Path("server"))
        self.begun.append(train.index)

    def reachable(self) -> bool:
        return self.clock.now() >= self.back_at

    def finish(self, train, dose, started_at, onset_error_s) -> None:
        self.finished.append(dose)


def _runner(rig, log) -> SessionRunner:
    verdict = check(load_protocol_text(PROTOCOL), device=rig.controller.driver.limits, require_complete=True)
    return SessionRunner(rig.controller, verdict.schedule, log=log)


def test_no_trigger_without_a_durable_intent_and_the_session_carries_on_when_the_records_return(make_rig) -> None:
    rig = make_rig()
    log = OutageLog(rig.clock, back_at=rig.clock.now() + 40.0)
    result = _runner(rig, log).run()
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert log.refused == 1 and log.begun == [0, 1, 2]
    assert rig.device.pulse_count == 30 == sum(d.delivered for d in log.finished)
    pulses = [p.t for p in rig.device.truth()]
    assert pulses[10] - pulses[9] > 40.0  # the second train waited for its intent to be on record


def test_records_that_stay_away_end_the_session_disarmed_with_nothing_unrecorded(make_rig) -> None:
    rig = make_rig()
    log = OutageLog(rig.clock, back_at=float("inf"))
    result = _runner(rig, log).run()
    assert result.outcome is RunOutcome.FAULTED and "records server went away" in result.reason
    assert rig.device.pulse_count == 10 and log.begun == [0]  # only the train whose intent was recorded
    assert rig.clock.now() > RECORDS_WAIT_LIMIT_S
    rig.sim.device.advance(rig.clock.now())
    assert not rig.device.is_energised
