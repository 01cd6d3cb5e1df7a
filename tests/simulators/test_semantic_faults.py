"""Semantic faults: well-formed frames, but the unit does something else than it was told (or
claims to be something else). Each shows on the wire where the protocol can carry it, and in the
simulator's truth log; a fault a model cannot express is refused when the simulator is built."""

from __future__ import annotations

import pytest

from tmsctl.core.errors import (
    DeviceRefused,
    DeviceStateError,
    IntensityMismatch,
    InvalidArgument,
    TransportTimeout,
)
from tmsctl.drivers.magstim import codec as mc
from tmsctl.drivers.magstim.codec import Model
from tmsctl.drivers.magstim.driver import RemoteControlLost
from tmsctl.drivers.magventure import codec as vc
from tmsctl.lab.testing import attached_simulator
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import SemanticFaultKind, parse_fault_plan

MAGSTIM = {"m200": Model.M200, "bistim": Model.BISTIM, "rapid2": Model.RAPID2, "rapid2-v8": Model.RAPID2}


def ask(instance, clock, frame: bytes):
    """One raw Magstim exchange beside the driver: the reply as the codec decodes it."""
    device = instance.device
    device.feed(frame, clock.now())
    clock.sleep(0.1)
    raw = device.read(clock.now())
    return mc.decode_reply(frame[0], raw, device.version, device.model)


def power_on_the_wire(instance, clock) -> int:
    if instance.device.model is Model.RAPID2:
        return ask(instance, clock, mc.encode_query(mc.GET_RAPID_PARAMETERS)).payload.power_pct
    return ask(instance, clock, mc.encode_query(mc.GET_PARAMETERS)).payload.power_a_pct


def settle(instance, clock, seconds: float) -> None:
    clock.sleep(seconds)
    instance.device.advance(clock.now())


def ready_magstim(driver, power: int = 40) -> None:
    driver.connect()
    driver.set_intensity(power)
    driver.arm()
    driver.wait_ready()


def keep_alive_until(driver, clock, t: float):
    status = None
    while clock.now() < t:
        clock.sleep(0.25)
        status = driver.keepalive()
    return status


# -- the grammar ----------------------------------------------------------------------------------------
def test_values_and_durations_parse_and_describe_themselves() -> None:
    plan = parse_fault_plan("power_drift@30s=100, ignore_disarm@cmd4+2.5s,train_stops_early@1s,wrong_model@0s=V8.1")
    assert [f.kind for f in plan] == [
        SemanticFaultKind.POWER_DRIFT, SemanticFaultKind.IGNORE_DISARM,
        SemanticFaultKind.TRAIN_STOPS_EARLY, SemanticFaultKind.WRONG_MODEL,
    ]
    assert plan[0].number == 100 and plan[1].duration_s == 2.5 and plan[2].value is None
    assert [f.describe() for f in plan] == [
        "power_drift@30s=100", "ignore_disarm@cmd4+2.5s", "train_stops_early@1s", "wrong_model@0s=V8.1"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("power_drift@3s=lots", "power_drift@3s=lots"),
        ("no_reply@3s=2", "no_reply takes no =VALUE"),
        ("extra_pulses@3s+2s", r"extra_pulses takes no \+SECONDSs"),
        ("power_drift@3s,lie_a_lot@1s", "lie_a_lot@1s"),
    ],
)
def test_a_bad_item_is_named(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_fault_plan(text)


@pytest.mark.parametrize(
    ("profile", "fault", "why"),
    [
        ("m200", "train_stops_early@1s", "only a Rapid² times trains"),
        ("bistim", "train_stops_early@1s", "only a Rapid² times trains"),
        ("duomag", "train_stops_early@1s", "times no trains"),
        ("m200", "wrong_model@1s", "no identity query"),
        ("duomag", "wrong_model@1s", "no identity query"),
        ("rapid2", "wrong_model@1s=banana", "software version"),
        ("bistim", "wrong_model@1s=Z", "system-mode character"),
        ("magpro", "wrong_model@1s=X9000", "MagPro model"),
        ("rapid2", "power_drift@1s=105", "up to 100 %"),
    ],
)
def test_a_fault_the_model_cannot_express_is_refused_when_it_is_built(profile: str, fault: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        sims.create(profile, faults=parse_fault_plan(fault))


def test_a_sim_url_carries_durations_and_values() -> None:
    """A '+' in the URL's query is the fault's own, not a form-encoded space."""
    import serial

    from tmsctl.core.clock import VirtualClock

    port = serial.serial_for_url("sim://m200?fault=ignore_disarm@1s+2s,power_drift@1s=70", do_not_open=True)
    port.clock = VirtualClock()
    port.open()
    try:
        device = port.instance.device
        device.advance(1.5)
        assert [what for _, what in device.fault_log] == ["ignore_disarm@1s+2s", "power_drift@1s=70"]
        assert device.power_a == 70
    finally:
        port.close()


# -- power_drift -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", sorted(MAGSTIM))
def test_magstim_power_drift_is_read_back_and_fires_at_the_drifted_power(profile: str) -> None:
    with attached_simulator(profile, faults="power_drift@3s=65") as (driver, instance, clock):
        ready_magstim(driver, 40)
        assert power_on_the_wire(instance, clock) == 40
        with pytest.raises(IntensityMismatch, match="reports 65 %MSO where 40 %MSO was set"):
            # J@ and \@ keep-alives carry the power; the V9 keep-alive (x@) does not, so the
            # read-back before every trigger catches it there
            keep_alive_until(driver, clock, 3.2)
            driver.verify_intensity()
        assert power_on_the_wire(instance, clock) == 65  # the unit reports what it will do
        driver.fire()
        assert [(p.output, p.power_pct) for p in instance.device.truth()] == [("A", 65)]


def test_rapid2_power_drift_mid_train_changes_the_remaining_pulses() -> None:
    with attached_simulator("rapid2", faults="power_drift@4.05s=55") as (driver, instance, clock):
        ready_magstim(driver, 50)
        driver.set_train(10.0, 40)
        driver.wait_ready()
        keep_alive_until(driver, clock, 3.5)
        driver.fire()
        while driver.keepalive().train_running:
            clock.sleep(0.25)
        powers = [p.power_pct for p in instance.device.truth()]
    assert len(powers) == 40 and powers[0] == 50 and powers[-1] == 55 and set(powers) == {50, 55}


def test_magpro_power_drift_shows_in_the_status_and_the_driver_catches_it() -> None:
    with attached_simulator("magpro-x100", faults="power_drift@2s=65") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.arm()
        driver.wait_ready()
        clock.sleep(max(0.0, 2.1 - clock.now()))
        with pytest.raises(DeviceStateError, match="amplitude A changed to 65 %"):
            driver.keepalive()  # the long status carries the drifted amplitude
        assert driver.amplitude_a_pct == 65
        instance.device._trigger(clock.now())  # the unit fires at what it now holds
        assert [p.power_pct for p in instance.device.truth()] == [65]


def test_duomag_power_drift_shows_in_the_stream_and_the_driver_catches_it() -> None:
    with attached_simulator("duomag", faults="power_drift@2s=65") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.arm()
        driver.wait_ready()
        clock.sleep(max(0.0, 2.1 - clock.now()))
        with pytest.raises(DeviceStateError, match="65"):
            driver.keepalive()
        assert driver.last.intensity_pct_mso == 65
        settle(instance, clock, 1.0)  # charged to 65 %
        instance.device._fire(clock.now())
        assert [p.power_pct for p in instance.device.truth()] == [65]


# -- ignore_disarm -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", sorted(MAGSTIM))
def test_magstim_ignore_disarm_acknowledges_stays_armed_and_still_fires(profile: str) -> None:
    with attached_simulator(profile, faults="ignore_disarm@0s") as (driver, instance, clock):
        ready_magstim(driver, 40)
        reply = ask(instance, clock, mc.encode_mode(mc.Mode.DISARM))  # a refusal would raise
        assert reply.command == mc.SET_MODE and (reply.status.armed or reply.status.ready)
        with pytest.raises(DeviceStateError, match="still reports armed after disarm"):
            driver.disarm()
        assert driver.status().ready
        driver.fire()
        assert [p.source for p in instance.device.truth()] == ["serial"]


def test_magstim_ignore_disarm_ends_after_its_duration() -> None:
    with attached_simulator("m200", faults="ignore_disarm@0s+2s") as (driver, _instance, clock):
        ready_magstim(driver, 40)
        with pytest.raises(DeviceStateError):
            driver.disarm()
        keep_alive_until(driver, clock, 2.1)
        assert not driver.disarm().armed


def test_magpro_ignore_disarm_keeps_the_unit_enabled() -> None:
    with attached_simulator("magpro-x100", faults="ignore_disarm@0s") as (driver, instance, _clock):
        driver.connect()
        driver.set_intensity(40)
        driver.arm()
        driver.wait_ready()
        with pytest.raises(DeviceStateError, match="still reports enabled after disable"):
            driver.disarm()
        assert instance.device.enabled
        driver.fire()
        assert len(instance.device.truth()) == 1


def test_duomag_ignore_disarm_keeps_its_charge_and_the_stream_shows_it() -> None:
    with attached_simulator("duomag", faults="ignore_disarm@0s") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.arm()
        driver.wait_ready()
        with pytest.raises(DeviceRefused):
            driver.disarm()  # the stream never shows 0 %
        assert instance.device.intensity_pct == 40 and driver.last.intensity_pct_mso == 40
        instance.device._fire(clock.now())
        assert [p.power_pct for p in instance.device.truth()] == [40]


# -- train_stops_early --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "delivered"), [("train_stops_early@1s", 20), ("train_stops_early@1s=7", 7)])
def test_rapid2_train_stops_early_silently(fault: str, delivered: int) -> None:
    with attached_simulator("rapid2", faults=fault) as (driver, instance, clock):
        ready_magstim(driver, 60)
        driver.set_train(10.0, 40)
        driver.wait_ready()
        driver.fire()
        ends = []
        while True:
            status = driver.keepalive()
            if not status.train_running:
                break
            ends.append(clock.now())
            clock.sleep(0.05)
        truth = instance.device.truth()
        assert len(truth) == delivered
        # the running bit cleared within one poll of the last delivered pulse, as at a normal end
        assert truth[-1].t <= clock.now() <= truth[-1].t + 0.2
        assert not status.error and instance.device.error is None
        assert driver.error_code().code == 0
        settle(instance, clock, 5.0)
        assert len(instance.device.truth()) == delivered  # the rest never fire


def test_rapid2_train_stops_early_cuts_the_running_train() -> None:
    with attached_simulator("rapid2") as (driver, instance, clock):
        ready_magstim(driver, 60)
        driver.set_train(10.0, 40)
        driver.wait_ready()
        driver.fire()
        instance.device.inject(SemanticFaultKind.TRAIN_STOPS_EARLY, clock.now() + 1.0, value=25)
        while driver.keepalive().train_running:
            clock.sleep(0.1)
        assert len(instance.device.truth()) == 25


def test_magpro_sequence_stops_early_with_an_ordinary_end_message() -> None:
    with attached_simulator("magpro-x100", faults="train_stops_early@0s=5") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(50)
        driver.set_train(20.0, 12)
        driver.arm()
        assert driver.fire().train_running
        while driver.keepalive().train_running:
            clock.sleep(0.05)
        truth = instance.device.truth()
        ended = [t for t, m in driver.messages if isinstance(m, vc.PageChanged) and not m.sequence_running]
        assert len(truth) == 5 and driver.pulses_reported == 5
        assert ended and ended[-1] - truth[-1].t < 0.1
        settle(instance, clock, 2.0)
        assert len(instance.device.truth()) == 5 and instance.device.interlocks == []


# -- extra_pulses -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", sorted(MAGSTIM))
def test_magstim_extra_pulse_after_a_single_pulse_is_reported_nowhere(profile: str) -> None:
    with attached_simulator(profile, faults="extra_pulses@0s") as (driver, instance, clock):
        ready_magstim(driver, 40)
        driver.fire()
        settle(instance, clock, 0.2)
        status = driver.status()
        truth = instance.device.truth()
    assert [p.source for p in truth] == ["serial", "extra"] and truth[1].power_pct == 40
    assert truth[1].t - truth[0].t == pytest.approx(0.05)
    assert status.armed and not status.error  # the same state a single pulse leaves


def test_rapid2_extra_pulses_at_the_end_of_a_train() -> None:
    with attached_simulator("rapid2", faults="extra_pulses@0s=2") as (driver, instance, clock):
        ready_magstim(driver, 60)
        driver.set_train(10.0, 10)
        driver.wait_ready()
        driver.fire()
        while driver.keepalive().train_running:
            clock.sleep(0.1)
        settle(instance, clock, 0.5)
        truth = instance.device.truth()
    assert len(truth) == 12 and [p.source for p in truth[-2:]] == ["extra", "extra"]
    assert [round(b.t - a.t, 6) for a, b in zip(truth[-3:], truth[-2:])] == [0.1, 0.1]


def test_magpro_extra_pulse_has_no_didt_report_and_no_count() -> None:
    with attached_simulator("magpro-x100", faults="extra_pulses@0s") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(45)
        driver.arm()
        driver.wait_ready()
        driver.fire()
        settle(instance, clock, 0.5)
        driver.status()
        truth = instance.device.truth()
    assert [p.source for p in truth] == ["serial", "extra"]
    assert driver.stimuli_reported == 1 and instance.device.stimulus_count == 1


def test_magpro_extra_pulse_at_the_end_of_a_sequence() -> None:
    with attached_simulator("magpro-x100", faults="extra_pulses@0s") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(50)
        driver.set_train(20.0, 8)
        driver.arm()
        driver.fire()
        while driver.keepalive().train_running:
            clock.sleep(0.05)
        settle(instance, clock, 0.5)
        truth = instance.device.truth()
    assert len(truth) == 9 and truth[-1].source == "extra" and driver.pulses_reported == 8


def test_duomag_extra_pulse_leaves_the_stream_unchanged() -> None:
    with attached_simulator("duomag", faults="extra_pulses@0s") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.arm()
        driver.wait_ready()
        driver.fire()
        settle(instance, clock, 0.2)
        record = driver.status()
        truth = instance.device.truth()
    assert [p.source for p in truth] == ["serial", "extra"]
    assert instance.device.omitted_pulses == 0 and record.armed


# -- reboot -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", sorted(MAGSTIM))
def test_magstim_reboot_drops_remote_control_and_every_setting(profile: str) -> None:
    with attached_simulator(profile, faults="reboot@3s") as (driver, instance, clock):
        ready_magstim(driver, 70)
        with pytest.raises(RemoteControlLost):
            keep_alive_until(driver, clock, 3.5)
        device = instance.device
        assert not (device.armed or device.ready or device.remote)
        assert power_on_the_wire(instance, clock) == 30  # the power-on default, not 70
        if device.model is Model.RAPID2:
            params = ask(instance, clock, mc.encode_query(mc.GET_RAPID_PARAMETERS)).payload
            assert params.duration_ds == 0  # single-pulse mode again
        assert device.truth() == ()


def test_rapid2_reboot_mid_train_stops_it_and_the_boot_is_silent() -> None:
    with attached_simulator("rapid2", faults="reboot@4s+3s") as (driver, instance, clock):
        ready_magstim(driver, 60)
        driver.set_train(10.0, 40)
        driver.wait_ready()
        keep_alive_until(driver, clock, 3.5)
        driver.fire()
        with pytest.raises(TransportTimeout):
            keep_alive_until(driver, clock, 5.0)  # no answer while it boots
        assert 4 <= len(instance.device.truth()) <= 6
        clock.sleep(max(0.0, 7.5 - clock.now()))
        settle(instance, clock, 0.0)
        assert ask(instance, clock, mc.encode_query(mc.GET_RAPID_PARAMETERS)).payload.power_pct == 30


def test_magpro_reboot_disables_and_forgets() -> None:
    with attached_simulator("magpro-x100", faults="reboot@2s") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(70)
        driver.arm()
        driver.wait_ready()
        clock.sleep(max(0.0, 2.1 - clock.now()))
        with pytest.raises(DeviceStateError, match="amplitude A changed to 30 %"):
            driver.keepalive()
        assert driver.status_byte is not None and not driver.status_byte.enabled
        assert not instance.device.enabled and instance.device.amplitude_a == 30


def test_duomag_reboot_comes_back_at_zero() -> None:
    with attached_simulator("duomag", faults="reboot@2s+0.5s") as (driver, instance, clock):
        driver.connect()
        driver.set_intensity(40)
        driver.arm()
        driver.wait_ready()
        clock.sleep(max(0.0, 2.6 - clock.now()))
        with pytest.raises(DeviceStateError):
            driver.keepalive()  # a record at 0 % that nobody set
        assert driver.last.intensity_pct_mso == 0 and not instance.device.is_energised


# -- wrong_model ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("profile", "fault", "claims"), [
    ("rapid2", "wrong_model@0s", "V8.1"), ("rapid2-v8", "wrong_model@0s", "V9.0"),
    ("rapid2", "wrong_model@0s=V7.2", "V7.2"),
])
def test_rapid2_wrong_model_names_another_software_version(profile: str, fault: str, claims: str) -> None:
    clock_instance = attached_simulator(profile, faults=fault)
    with clock_instance as (_driver, instance, clock):
        reply = ask(instance, clock, mc.encode_query(mc.GET_VERSION))
        assert reply.payload.text == claims
        assert instance.device.profile.version_text != claims


def test_bistim_wrong_model_claims_to_be_a_single_stimulator() -> None:
    with attached_simulator("bistim", faults="wrong_model@0s") as (driver, instance, clock):
        driver.connect()
        assert ask(instance, clock, mc.encode_query(mc.GET_SYSTEM_MODE)).payload.mode == "0"


@pytest.mark.parametrize(("fault", "claims"), [("wrong_model@0s", "r30"), ("wrong_model@0s=x100_option", "x100")])
def test_magpro_wrong_model_is_what_the_driver_identifies(fault: str, claims: str) -> None:
    with attached_simulator("magpro-x100", faults=fault) as (driver, instance, _clock):
        info = driver.connect()
        assert info.model.startswith(f"magventure-magpro-{claims}") and info.model != "magventure-magpro-x100"
        assert instance.device.model is vc.MagProModel.X100  # what it really is
