"""The lab's tests: its experiment code against a simulated stimulator, via the tmsctl pytest plugin.

No conftest is needed: installing tmsctl provides the fixtures (tms_stimulator, tms_clock, ...).
"""

from __future__ import annotations

import itertools

import pytest
from lab_experiment import run_block

from tmsctl.core.errors import TmsError


def test_the_block_alternates_intensities_and_keeps_the_iti(tms_stimulator, tms_clock, tms_events):
    trials = run_block(tms_stimulator, tms_clock, mt_pct=40, trials=6, iti_s=4.0)
    assert [t.intensity_pct for t in trials] == [44, 52, 44, 52, 44, 52]
    gaps = [b.pulse_at_s - a.pulse_at_s for a, b in itertools.pairwise(trials)]
    assert all(4.0 <= gap < 4.2 for gap in gaps)  # virtual time: exact and instant
    pulses = tms_events.of("pulse_delivered")
    assert [p.intensity_pct_mso for p in pulses] == [44, 52, 44, 52, 44, 52]


def test_the_device_saw_exactly_those_pulses(tms_stimulator, tms_simulator, tms_clock, tms_trace):
    run_block(tms_stimulator, tms_clock, mt_pct=40, trials=4)
    assert tms_trace.tx() and tms_trace.rx()  # every byte on the wire is in the trace
    assert len(tms_trace.records) > 10


@pytest.mark.tms_profile("bistim")
def test_it_also_runs_on_a_bistim(tms_stimulator, tms_clock, tms_events):
    run_block(tms_stimulator, tms_clock, mt_pct=40, trials=2)
    assert len(tms_events.of("pulse_delivered")) == 2


@pytest.mark.tms_faults("coil_unplugged@9s")
def test_an_unplugged_coil_stops_the_block_with_an_error(tms_stimulator, tms_clock):
    with pytest.raises(TmsError):
        run_block(tms_stimulator, tms_clock, mt_pct=40, trials=8)
    assert tms_stimulator.status().state.value == "fault"
