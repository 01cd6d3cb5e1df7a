"""RTS quick-fire through the controller: edges the host times, and a dose that counts only what the
device's status shows (nothing on the line acknowledges an edge)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tmsctl.core.errors import DeviceStateError, GuardRejected, InvalidArgument
from tmsctl.session.fsm import State
from tmsctl.simulators.device import FaultKind

THETA_BURST = (0.0, 0.02, 0.04)  # 3 pulses at 50 Hz


def _armed(rig, intensity: int = 20):
    c = rig.controller
    c.configure_single_pulse()
    c.set_intensity(intensity)
    c.arm()
    return c


def test_a_burst_of_edges_fires_on_the_clock_and_each_pulse_is_known_from_the_status_after_it(make_rig) -> None:
    rig = make_rig("rapid2")
    c = _armed(rig)
    start = rig.clock.now()
    delivery = c.fire(trigger_source="rts", burst_offsets_s=THETA_BURST)
    assert delivery.pulses == 3 and not delivery.confirmed and delivery.trigger_source == "rts"
    truth = rig.device.truth()
    assert [p.source for p in truth] == ["rts"] * 3 and {p.intensity_pct for p in truth} == {20}
    assert [p.t - start for p in truth] == pytest.approx(THETA_BURST, abs=1e-9)
    dose = c.last_delivery.dose
    assert (dose.delivered, dose.uncertain) == (3, 0), dose.evidence
    assert "no acknowledgement" in dose.evidence
    assert c.state is State.ARMED and rig.device.interlocks == []


def test_an_edge_the_unit_ignores_is_never_counted(make_rig) -> None:
    # The coil comes off between the second and the third edge: the unit disarms and ignores the third.
    rig = make_rig("rapid2")
    c = _armed(rig)
    start = rig.clock.now()
    rig.device.inject(FaultKind.COIL_UNPLUGGED, start + 0.035)
    with pytest.raises(DeviceStateError):
        c.fire(trigger_source="rts", burst_offsets_s=THETA_BURST)
    assert rig.device.pulse_count == 2
    dose = c.last_delivery.dose
    assert dose.delivered == 2 and dose.at_most >= 2  # the third stays at most uncertain, never delivered
    assert c.state is State.FAULT


def test_a_unit_found_charged_again_after_the_edge_leaves_the_pulse_uncertain(make_rig) -> None:
    # A unit that recharges before the status read reaches it looks the same whether it fired or
    # ignored the edge: the pulse is not claimed.
    rig = make_rig("rapid2")
    rig.device.profile = replace(rig.device.profile, recharge_override_s=0.001)
    c = _armed(rig)
    c.fire(trigger_source="rts")
    dose = c.last_delivery.dose
    assert rig.device.pulse_count == 1
    assert (dose.delivered, dose.uncertain) == (0, 1), dose.evidence


def test_edges_closer_than_the_rated_rate_at_that_output_are_refused_before_any_goes_out(make_rig) -> None:
    rig = make_rig("rapid2")
    c = _armed(rig, intensity=40)  # a Rapid² repeats at most at 37 Hz at 40 %
    with pytest.raises(GuardRejected, match=r"repeats at most every 27\.0 ms"):
        c.fire(trigger_source="rts", burst_offsets_s=THETA_BURST)
    assert rig.device.pulse_count == 0 and c.state is State.ARMED


def test_a_burst_needs_the_rts_line_and_single_pulse_mode(make_rig) -> None:
    c = _armed(make_rig("rapid2"))
    with pytest.raises(InvalidArgument, match="RTS line"):
        c.fire(trigger_source="serial", burst_offsets_s=THETA_BURST)
    with pytest.raises(InvalidArgument, match="start at 0"):
        c.fire(trigger_source="rts", burst_offsets_s=(0.01, 0.03))


def test_a_device_timed_train_fired_by_an_edge_is_known_from_its_running_status(make_rig) -> None:
    rig = make_rig("rapid2")
    c = rig.controller
    c.set_intensity(40)
    c.configure_train(10.0, 20)
    c.arm()
    c.fire(trigger_source="rts")
    while c.delivery is not None:
        c.wait_until(rig.clock.now() + 0.05)
    dose = c.last_delivery.dose
    assert rig.device.pulse_count == 20
    assert (dose.delivered, dose.uncertain) == (20, 0), dose.evidence
    assert "no acknowledgement" in dose.evidence


def test_a_burst_whose_status_reads_cannot_keep_up_stops_instead_of_going_off_schedule(make_rig) -> None:
    # A Rapid² before V9 answers the keep-alive with its 22-byte parameter reply: ~27 ms at 9600 baud,
    # longer than 20 ms between theta-burst pulses. The second edge would be late: not fired.
    rig = make_rig("rapid2-v8")
    c = _armed(rig)
    with pytest.raises(DeviceStateError, match="too long for the next edge"):
        c.fire(trigger_source="rts", burst_offsets_s=THETA_BURST)
    assert rig.device.pulse_count == 1 and c.state is State.FAULT
    dose = c.last_delivery.dose
    assert dose.delivered == 1 and dose.at_most <= 3
    assert c.last_fault.startswith("rts_edge_late")
