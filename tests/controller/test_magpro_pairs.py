"""Paired pulses on the simulated MagPro X100 with MagOption: Twin mode where B/A is on the ratio
grid, Dual otherwise; one trigger, pulse A then pulse B one IPI later in the simulator's truth log;
mode, IPI, ratio and both amplitudes read back before the trigger."""

from __future__ import annotations

import pytest

from tmsctl.core.errors import DeviceStateError, IntensityMismatch, InvalidArgument
from tmsctl.drivers.base import PairSettings
from tmsctl.drivers.magventure import codec as mc
from tmsctl.session.fsm import State


def truth(rig):
    rig.device.advance(rig.clock.now())
    return rig.device.truth()


def armed_pair(make_rig, first=40, second=60, isi_ms=3.0, profile="magpro-x100-option"):
    rig = make_rig(profile)
    c = rig.controller
    assert c.configure_pair(first, second, isi_ms) == PairSettings(first, second, isi_ms)
    c.arm()
    return rig, c


def fire_pair(rig, c):
    c.verify_before_trigger()
    delivery = c.fire()
    c.wait_until(rig.clock.now() + 0.5)
    return delivery


@pytest.mark.parametrize(
    ("first", "second", "isi_ms", "mode"),
    [(40, 60, 3.0, mc.Mode.TWIN), (60, 60, 100.0, mc.Mode.TWIN), (37, 56, 2.5, mc.Mode.DUAL), (50, 45, 12.5, mc.Mode.TWIN)],
)
def test_one_trigger_fires_a_then_b_one_ipi_later_in_twin_or_dual_mode(make_rig, first, second, isi_ms, mode) -> None:
    rig, c = armed_pair(make_rig, first, second, isi_ms)
    assert rig.device.mode is mode
    delivery = fire_pair(rig, c)
    assert delivery.pulses == 2
    assert c.last_delivery.dose.complete and c.last_delivery.dose.delivered == 2
    pulses = truth(rig)
    assert [(p.output, p.intensity_pct) for p in pulses] == [("A", first), ("B", second)]
    assert (pulses[1].t - pulses[0].t) * 1000 == pytest.approx(isi_ms, abs=1e-6)
    assert rig.device.interlocks == []


def test_the_pair_is_read_back_from_the_unit_after_it_was_set(make_rig) -> None:
    rig, c = armed_pair(make_rig, 40, 60, 3.0)
    settings = rig.device.waveform_settings()
    assert settings.mode is mc.Mode.TWIN and settings.ipi_ms_x10() == 30 and settings.ba_ratio_x100() == 150
    assert c.driver.pair == PairSettings(40, 60, 3.0)


def test_an_ipi_changed_at_the_unit_is_caught_before_the_trigger(make_rig) -> None:
    rig, c = armed_pair(make_rig)
    rig.device.ipi_ms_x10 = 50
    with pytest.raises(DeviceStateError, match="inter-pulse interval of 5 ms where 3 ms"):
        c.verify_before_trigger()
    assert c.state is State.FAULT and not rig.device.enabled
    assert truth(rig) == ()


def test_a_twin_ratio_changed_at_the_unit_is_caught_before_the_trigger(make_rig) -> None:
    rig, c = armed_pair(make_rig)
    rig.device.ba_ratio_x100 = 200  # B would be 80 %
    with pytest.raises(IntensityMismatch):
        c.verify_before_trigger()
    assert truth(rig) == ()


def test_dual_amplitude_b_changed_at_the_unit_is_caught_before_the_trigger(make_rig) -> None:
    rig, c = armed_pair(make_rig, 37, 56, 3.0)
    rig.device.amplitude_b = 70
    with pytest.raises(IntensityMismatch):
        c.verify_before_trigger()
    assert truth(rig) == ()


def test_single_pulses_after_a_pair_leave_twin_mode(make_rig) -> None:
    rig, c = armed_pair(make_rig)
    c.disarm()
    c.configure_single_pulse()
    assert rig.device.mode is mc.Mode.STANDARD and c.pair is None
    c.arm()
    c.verify_before_trigger()
    c.fire()
    c.wait_until(rig.clock.now() + 0.5)
    assert [(p.output, p.intensity_pct) for p in truth(rig)] == [("A", 40)]


def test_a_unit_left_in_twin_mode_is_known_at_connect(make_rig) -> None:
    rig = make_rig("magpro-x100-option", connect=False)
    rig.device.mode, rig.device.ipi_ms_x10, rig.device.ba_ratio_x100 = mc.Mode.TWIN, 30, 200
    rig.controller.connect()
    assert rig.controller.pair == PairSettings(30, 60, 3.0)


def test_an_interval_off_the_twin_dual_table_is_refused_before_anything_is_sent(make_rig) -> None:
    rig = make_rig("magpro-x100-option")
    with pytest.raises(InvalidArgument, match=r"2\.55 ms is not a multiple of 0\.1"):
        rig.controller.configure_pair(40, 60, 2.55)
    assert rig.device.mode is mc.Mode.STANDARD


def test_a_magpro_without_magoption_refuses_pairs(make_rig) -> None:
    rig = make_rig("magpro-x100")
    with pytest.raises(InvalidArgument, match="paired pulse"):
        rig.controller.configure_pair(40, 60, 3.0)


def test_the_stimulus_shape_is_set_and_read_back(make_rig) -> None:
    rig = make_rig("magpro-x100-option")
    shape = rig.controller.configure_stimulus("monophasic", "reversed")
    assert (shape.waveform, shape.current_direction) == ("monophasic", "reversed")
    assert (rig.device.waveform, rig.device.direction) == (mc.Waveform.MONOPHASIC, mc.CurrentDirection.REVERSE)
