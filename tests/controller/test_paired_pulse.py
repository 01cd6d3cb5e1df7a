"""The controller's paired pulse on the simulated BiStim²: one trigger, two pulses, both counted
from the evidence; both outputs and the interval read back before the trigger."""

from __future__ import annotations

import pytest

from tmsctl.core.errors import DeviceStateError, GuardRejected, IntensityMismatch
from tmsctl.drivers.base import PairSettings
from tmsctl.session.fsm import State


def truth(rig):
    rig.device.advance(rig.clock.now())  # the simulator lives on the clock; bring it up to now
    return rig.device.truth()


def armed_pair(make_rig, first=40, second=60, isi_ms=100.0):
    rig = make_rig("bistim")
    c = rig.controller
    assert c.configure_pair(first, second, isi_ms) == PairSettings(first, second, isi_ms)
    c.arm()
    return rig, c


def test_a_pair_is_one_trigger_two_pulses_the_second_known_once_it_was_due(make_rig) -> None:
    rig, c = armed_pair(make_rig)
    c.verify_before_trigger()
    delivery = c.fire()
    assert delivery.pulses == 2
    assert c.delivery is not None and c.state is State.STIMULATING  # output B is still due
    c.wait_until(delivery.started_at + 0.2)
    assert c.delivery is None and c.last_delivery.dose.complete and c.last_delivery.dose.delivered == 2
    assert [(p.output, p.intensity_pct) for p in truth(rig)] == [("A", 40), ("B", 60)]
    assert truth(rig)[1].t - truth(rig)[0].t == pytest.approx(0.1)


def test_a_pair_stopped_before_its_second_pulse_was_due_leaves_that_pulse_uncertain(make_rig) -> None:
    rig, c = armed_pair(make_rig)
    c.fire()
    c.disarm()  # sent at once: the unit may or may not have fired output B yet
    dose = c.last_delivery.dose
    assert (dose.delivered, dose.uncertain) == (1, 1)
    c.wait_until(rig.clock.now() + 0.5)
    assert dose.delivered <= len(truth(rig)) <= dose.at_most


def test_output_b_changed_on_the_unit_is_caught_by_the_read_back_before_the_trigger(make_rig) -> None:
    rig, c = armed_pair(make_rig)
    rig.device.power_b = 90  # someone turned the B knob
    with pytest.raises(IntensityMismatch):
        c.verify_before_trigger()
    assert c.state is State.FAULT and not rig.device.armed and not rig.device.ready
    assert truth(rig) == ()


def test_an_isi_changed_on_the_unit_is_caught_before_the_trigger(make_rig) -> None:
    rig, c = armed_pair(make_rig)
    rig.device.isi_raw = 50
    with pytest.raises(DeviceStateError, match="ISI of 50 ms where 100 ms"):
        c.verify_before_trigger()
    assert truth(rig) == ()


def test_the_session_cap_binds_both_pulses_of_a_pair(make_rig) -> None:
    rig = make_rig("bistim")
    rig.controller.intensity_cap_pct_mso = 60
    with pytest.raises(GuardRejected, match="second pulse's 70 %"):
        rig.controller.configure_pair(40, 70, 3)
    assert rig.device.power_b == 0


def test_a_pair_on_a_stimulator_without_two_outputs_is_refused(make_rig) -> None:
    rig = make_rig("m200")
    from tmsctl.core.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="paired pulse"):
        rig.controller.configure_pair(40, 60, 3)
