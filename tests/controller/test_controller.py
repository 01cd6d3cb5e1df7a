"""The controller's guards and interlocks against the simulated Rapid² and 200², on a virtual clock."""

from __future__ import annotations

from typing import ClassVar

import pytest

from tmsctl.core.errors import DeviceRefused, FaultLatched, GuardRejected, SafetyViolation, TmsError
from tmsctl.session.fsm import State
from tmsctl.session.safety import PulseCap


def test_single_pulse_cycle_and_events(make_rig) -> None:
    rig = make_rig("m200")
    c = rig.controller
    c.set_intensity(40)
    c.arm()
    assert c.state is State.ARMED
    c.fire()
    assert c.state is State.ARMED and c.pulses_delivered == 1
    c.disarm()
    assert c.state is State.IDLE
    assert rig.device.pulse_count == 1 and rig.device.interlocks == []
    kinds = [e.kind for e in rig.events.events]
    assert kinds[0] == "state_changed" and "connected" in kinds and "intensity_set" in kinds


def test_fire_refused_with_every_reason(make_rig) -> None:
    c = make_rig("m200").controller
    with pytest.raises(GuardRejected) as info:
        c.fire()
    reasons = " | ".join(info.value.reasons)
    assert "not armed" in reasons
    assert "is set to None" in reasons


def test_arm_refused_without_intensity(make_rig) -> None:
    c = make_rig("m200").controller
    with pytest.raises(GuardRejected, match="no intensity set"):
        c.arm()
    assert c.state is State.IDLE


def test_rate_limiter_stops_a_second_pulse_too_soon(make_rig) -> None:
    rig = make_rig("m200")
    c = rig.controller
    c.set_intensity(60)
    c.arm()
    c.fire()
    rig.clock.sleep(0.5)
    c.service()
    with pytest.raises(GuardRejected, match="next pulse may come"):
        c.fire()
    assert rig.device.pulse_count == 1 and rig.device.interlocks == []


def test_intensity_above_the_session_cap_is_refused(make_rig) -> None:
    c = make_rig().controller
    c.intensity_cap_pct_mso = 60
    with pytest.raises(GuardRejected, match="validated for"):
        c.set_intensity(61)


def test_pulse_cap(make_rig) -> None:
    rig = make_rig()
    c = rig.controller
    c.pulse_cap = PulseCap(40, delivered=20)
    c.set_intensity(50)
    c.configure_train(10.0, 40)
    c.arm()
    with pytest.raises(GuardRejected, match="pulse cap"):
        c.fire()


def test_energy_budget_refuses_a_train_the_unit_would_refuse(make_rig) -> None:
    rig = make_rig()
    c = rig.controller
    c.set_intensity(60)
    c.configure_train(20.0, 600)  # 30 s adding 1814 J/s against a 1050 J/s drain: 22.9 kJ of the 63 kJ
    c.arm()
    c.fire()
    c.wait_until(rig.clock.now() + 31.0)
    assert c.state is State.ARMED and c.pulses_delivered == 600
    with pytest.raises(GuardRejected) as info:  # the bulletin's inter-train wait says: not yet
        c.fire()
    assert any("next pulse may come" in r for r in info.value.reasons)
    assert c.energy is not None
    # the bucket still holds about 21 kJ: the same 54 kJ train again would overflow it now...
    assert (c.energy.why_not(rig.clock.now(), 600, 60, 20.0) or "").startswith("energy budget")
    # ...but not once the bulletin's minimum wait (22.2 s after the train) has emptied it
    assert c.energy.why_not(rig.clock.now() + 21.0, 600, 60, 20.0) is None
    # a minute of 20 Hz at 60 % is 109 kJ, beyond the 63 kJ a minute allows, however long one waits
    assert (c.energy.why_not(rig.clock.now() + 600.0, 1200, 60, 20.0) or "").startswith("energy budget")
    assert rig.device.interlocks == []


def test_energy_budget_lets_a_train_that_drains_faster_than_it_fills_run_continuously() -> None:
    from tmsctl.session.safety import EnergyBudget

    budget = EnergyBudget(63_000.0, 1050.0, lambda pct: 96.8)  # about 62 % on a Rapid²
    assert budget.why_not(0.0, 900, 62, 1.0) is None  # 1 Hz puts out 5.9 kJ a minute, under 63 kJ
    assert budget.why_not(0.0, 900, 62, None) is not None  # as a burst (no rate) it would not fit
    budget.record(0.0, 900, 62, 1.0)
    assert budget.level_at(899.0) == pytest.approx(96.8)


def test_energy_budget_matches_the_bulletins_worked_example() -> None:
    from tmsctl.session.safety import EnergyBudget

    # TDb087 §3 (reference magstim.md §10): 73 %, 25 Hz, 250 pulses, 134.2 J -> wait 21.95 s after the train
    budget = EnergyBudget(63_000.0, 1050.0, lambda pct: 134.2)
    assert budget.why_not(0.0, 250, 73, 25.0) is None  # 33.6 kJ in its 10 s
    budget.record(0.0, 250, 73, 25.0)
    end = 249 / 25.0
    assert budget.level_at(end + 21.95) == pytest.approx(0.0, abs=1050 * 0.05)
    # and the on-time limit 63000 / (f·E) = 18.8 s: 470 pulses at 25 Hz fit, 480 do not
    fresh = EnergyBudget(63_000.0, 1050.0, lambda pct: 134.2)
    assert fresh.why_not(0.0, 469, 73, 25.0) is None and fresh.why_not(0.0, 480, 73, 25.0) is not None


def test_keepalive_holds_across_a_long_armed_wait(make_rig) -> None:
    rig = make_rig()
    c = rig.controller
    c.set_intensity(50)
    c.arm()
    c.wait_until(rig.clock.now() + 50.0)
    assert c.state is State.ARMED
    c.fire()
    assert rig.device.pulse_count == 1 and rig.device.fault_log == []


def test_a_stalled_owner_is_caught_and_the_device_disarmed(make_rig) -> None:
    rig = make_rig()
    c = rig.controller
    c.set_intensity(50)
    c.arm()
    rig.clock.sleep(1.5)  # the owner thread froze: no keep-alive for 1.5 s
    with pytest.raises(TmsError):
        c.service()
    assert c.state is State.FAULT
    rig.device.advance(rig.clock.now())
    assert not (rig.device.armed or rig.device.ready)
    assert any(e.kind == "fault" for e in rig.events.events)


@pytest.mark.parametrize("fault", ["coil_unplugged", "over_temperature", "device_error"])
def test_device_faults_while_armed_latch_fault(make_rig, fault: str) -> None:
    rig = make_rig(faults=f"{fault}@20s")
    c = rig.controller
    c.set_intensity(50)
    c.arm()
    with pytest.raises(TmsError):
        c.wait_until(30.0)
    assert c.state is State.FAULT
    assert not (rig.device.armed or rig.device.ready)
    with pytest.raises(FaultLatched):
        c.arm()
    c.acknowledge("coil checked")
    assert c.state is State.DISCONNECTED


@pytest.mark.parametrize("fault", ["no_reply@cmd12", "stall@cmd12", "bad_checksum@cmd12", "garbled_byte@cmd12"])
def test_wire_faults_latch_fault_and_disarm(make_rig, fault: str) -> None:
    rig = make_rig(faults=fault)
    c = rig.controller
    c.set_intensity(50)
    with pytest.raises(TmsError):
        c.arm()
        c.wait_until(10.0)
    assert c.state is State.FAULT
    rig.clock.sleep(2.0)
    rig.device.advance(rig.clock.now())
    assert not (rig.device.armed or rig.device.ready)
    assert rig.device.pulse_count == 0


def test_estop_disarms_and_is_terminal(make_rig) -> None:
    rig = make_rig()
    c = rig.controller
    c.set_intensity(50)
    c.arm()
    c.estop()
    assert c.state is State.ESTOP
    assert not (rig.device.armed or rig.device.ready)
    with pytest.raises(FaultLatched):
        c.arm()


def test_hot_coil_blocks_arming(make_rig) -> None:
    rig = make_rig()
    rig.device.coil.force(rig.clock.now(), 39.2)
    c = rig.controller
    c.set_intensity(50)
    c.wait_until(rig.clock.now() + 6.0)  # the controller reads the coil every 5 s
    with pytest.raises(GuardRejected, match="coil at 39"):
        c.arm()
    assert rig.device.interlocks == []


def test_device_refusal_reaches_the_caller_as_a_typed_error(make_rig) -> None:
    rig = make_rig()
    rig.device.error = __import__("tmsctl.drivers.magstim.codec", fromlist=["ErrorCode"]).ErrorCode("E", 7)
    c = rig.controller
    c.set_intensity(50)
    c.service()
    c.status = c.driver.status()
    with pytest.raises((GuardRejected, DeviceRefused, SafetyViolation)):
        c.arm()


def test_a_bug_in_the_run_still_ends_disarmed_and_is_recorded(make_rig) -> None:
    from tmsctl.protocols.expand import expand
    from tmsctl.protocols.loader import load_protocol_text
    from tmsctl.session.runner import DeliveryLog, SessionRunner

    protocol = load_protocol_text(
        "schema_version: 1\nid: bug\ntitle: bug\ncoil: {family: figure8}\n"
        "target: {method: eeg_10_20, site: F3}\nhemisphere: left\n"
        "intensity: {reference: MSO, scaling_pct: 40}\n"
        "pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 10, inter_train_interval_s: 3, trains: 3}\n"
    )
    rig = make_rig()

    class BrokenLog(DeliveryLog):
        faults: ClassVar[list[tuple[str, str]]] = []

        def fired(self, train, pulses):
            raise RuntimeError("a bug in the log")

        def fault(self, code, detail, index):
            self.faults.append((code, detail))

    log = BrokenLog()
    with pytest.raises(RuntimeError, match="a bug in the log"):
        SessionRunner(rig.controller, expand(protocol, rig.controller.driver.limits), log=log).run()
    rig.device.advance(rig.clock.now())  # at once, not after the unit's own keep-alive timeout
    assert not rig.device.is_energised
    assert rig.device.pulse_count < 10  # the disarm cut the train short
    assert log.faults == [("internal_error", "RuntimeError: a bug in the log")]
