"""Hotspot search over a grid on a simulated subject with a spatial MEP map (Gaussian fall-off)."""

from __future__ import annotations

import random

import pytest

from tmsctl.clinic.emg import SimulatedEmgSource
from tmsctl.clinic.hotspot import HotspotProcedure, HotspotSearch, grid_sites
from tmsctl.clinic.responder import EmgResponder
from tmsctl.core.errors import InvalidArgument
from tmsctl.session.fsm import State
from tmsctl.simulators.emg import SimulatedEmg
from tmsctl.simulators.hotspot import CoilPlacement, HotspotMap
from tmsctl.simulators.subject import RecruitmentCurve, SimulatedSubject


def test_the_grid_is_labelled_centred_and_serpentine() -> None:
    sites = grid_sites(2, 3, 10.0, centre_mm=(40.0, 0.0))
    assert [s.label for s in sites] == ["A1", "A2", "A3", "B3", "B2", "B1"]
    assert [s.position for s in sites[:3]] == [(30.0, 5.0), (40.0, 5.0), (50.0, 5.0)]
    with pytest.raises(InvalidArgument):
        grid_sites(3, 3, 0.1)


def test_the_search_finds_the_hotspot_and_every_pulse_is_on_record_with_its_site(emg_bench) -> None:
    bench = emg_bench(seed=8, subject=SimulatedSubject(RecruitmentCurve(threshold_pct_mso=45.0), seed=8))
    coil = CoilPlacement(bench.clock)
    emg = SimulatedEmg(bench.subject, bench.sim.device.truth, seed=8, start_s=bench.clock.now(),
                       placement=coil, hotspot=HotspotMap(centre_mm=(5.0, -5.0), width_mm=10.0))
    sites = grid_sites(3, 3, 10.0)
    moves, armed_at_move = [], []

    def move(site):  # the operator (or a neuronavigation system) places the coil and reports where it is
        armed_at_move.append(bench.sim.device.armed)
        coil.move_to(site.position)
        moves.append(site.label)
        return site.position

    controller = bench.controller()
    search = HotspotSearch(controller, HotspotProcedure(sites, intensity_pct_mso=60, pulses_per_site=5,
                                                        max_pct_mso=100),
                           EmgResponder(SimulatedEmgSource(emg, bench.clock)), move=move, rng=random.Random(1))
    outcome = search.run()
    result = outcome.result
    # the largest mean is at the grid point nearest the hotspot (5, −5): one of its four neighbours
    assert abs(result.chosen.x_mm - 5.0) <= 5.0 and abs(result.chosen.y_mm + 5.0) <= 5.0
    far = max(result.means_uv, key=lambda k: -result.means_uv[k])
    assert result.means_uv[result.chosen.label] > 3 * result.means_uv[far]
    assert moves == [s.label for s in sites] and not any(armed_at_move)
    truth = bench.sim.device.truth()
    log = search.log_so_far()
    # the truth invariant: the simulator's own count and power per pulse against the record
    assert len(truth) == outcome.pulses_delivered == len(log)
    assert [p.intensity_pct for p in truth] == [e["intensity_pct_mso"] for e in log] == [60] * len(log)
    # every pulse at the site where the coil really was when the stimulator fired
    assert [e["site"] for e in log] == [
        next(s.label for s in sites if s.position == coil.position_at(p.t)) for p in truth]
    assert controller.state is State.DISCONNECTED and not bench.sim.device.armed
