"""Externally timed protocols (``trigger: rts``: tmsctl times each pulse on the RTS line; ``trigger:
external``: a box outside tmsctl) are checked against the device's limits exactly as device-timed
ones; what the device cannot do is refused at validation, before any session starts."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from protocols_helpers import mt, rule_ids

from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import TmsError
from tmsctl.drivers.magstim.spec import load_spec
from tmsctl.drivers.magventure.spec import load_spec as load_magpro_spec
from tmsctl.protocols import check, load_library_protocol
from tmsctl.protocols.canonical import content_hash
from tmsctl.protocols.loader import load_protocol
from tmsctl.records import Records
from tmsctl.session.planned import SessionRefused, SessionRequest, plan_session
from tmsctl.simulators import registry as sims

LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
ITBS = (LIBRARY / "itbs-600.yaml").read_text()


def _external(tmp_path: Path, trigger: str | None, base: str = ITBS):
    text = base.replace("id: itbs-600", f"id: itbs-600-{trigger or 'none'}") + "timed_by: external_trigger\n"
    if trigger:
        text += f"trigger: {trigger}\n"
    path = tmp_path / f"itbs-{trigger}.yaml"
    path.write_text(text)
    return path


def _rapid2(variant: str = "rapid2"):
    return load_spec("magstim-rapid2", variant=variant, mains_v=240).for_version((9, 0))


def test_an_externally_timed_protocol_says_what_drives_the_trigger(tmp_path) -> None:
    with pytest.raises(TmsError, match="trigger: rts or trigger: external"):
        load_protocol(_external(tmp_path, None))
    stimulator_timed = tmp_path / "stimulator.yaml"
    stimulator_timed.write_text(ITBS + "trigger: rts\n")
    with pytest.raises(TmsError, match="timed_by: stimulator does not use"):
        load_protocol(stimulator_timed)


def test_itbs_through_rts_is_allowed_on_a_rapid2_where_its_rate_at_that_output_allows(tmp_path) -> None:
    protocol = load_protocol(_external(tmp_path, "rts"))
    rapid2 = _rapid2()
    low = check(protocol, device=rapid2, thresholds=[mt(25, reference="aMT", stimulator=rapid2.model)])
    assert low.status == "allowed", [f.message for f in low.refusals]  # 20 %MSO: 50 Hz allowed
    assert {"timing.external-trigger", "timing.rts-burst", "device.frequency", "device.on-time"} <= set(low.checked)
    # 32 %MSO: a Rapid² repeats at most at 45 Hz there, the bursts need 50 Hz
    high = check(protocol, device=rapid2, thresholds=[mt(40, reference="aMT", stimulator=rapid2.model)])
    assert rule_ids(high.refusals) == {"device.frequency"}
    super_rapid = _rapid2("super")
    assert check(protocol, device=super_rapid,
                 thresholds=[mt(40, reference="aMT", stimulator=super_rapid.model)]).status == "allowed"


def test_the_energy_limits_bind_externally_timed_trains_too(tmp_path) -> None:
    # 50 Hz trains of 2 s at 20 %MSO, 0.6 s apart: the Rapid² needs longer to shed their energy.
    fast = ITBS.replace("burst_rate_hz: 5", "burst_rate_hz: 16.5").replace(
        "train_onset_interval_s: 10", "train_onset_interval_s: 0.7"
    ).replace("bursts_per_train: 10            # a 2 s train", "bursts_per_train: 8")
    protocol = load_protocol(_external(tmp_path, "rts", fast))
    rapid2 = _rapid2()
    verdict = check(protocol, device=rapid2, thresholds=[mt(25, reference="aMT", stimulator=rapid2.model)])
    assert "device.inter-train-wait" in rule_ids(verdict.refusals)


def test_rts_needs_the_capability_the_200_and_bistim_lack(tmp_path) -> None:
    protocol = load_protocol(_external(tmp_path, "rts"))
    for model in ("magstim-200", "magstim-bistim"):
        spec = load_spec(model)
        verdict = check(protocol, device=spec, thresholds=[mt(25, reference="aMT", stimulator=spec.model)])
        assert "device.capability" in rule_ids(verdict.refusals)
        assert any("RTS" in f.message for f in verdict.refusals)


def test_a_long_fast_rts_burst_is_refused(tmp_path) -> None:
    # 40 pulses at 20 Hz: one 2 s burst, with no intensity read-back and no pause inside it.
    text = """\
schema_version: 1
id: fast-rts-train
title: 20 Hz through RTS
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: MSO, scaling_pct: 20}
pattern: {kind: rtms, frequency_hz: 20, pulses_per_train: 40, inter_train_interval_s: 20, trains: 2}
timed_by: external_trigger
trigger: rts
"""
    path = tmp_path / "fast.yaml"
    path.write_text(text)
    verdict = check(load_protocol(path), device=_rapid2())
    assert rule_ids(verdict.refusals) == {"timing.rts-burst"}


def test_an_outside_trigger_box_needs_a_device_that_reports_its_pulses(tmp_path) -> None:
    # tmsctl counts what the box fires from the device's own pulse reports, and stops at the protocol's
    # pulses: a Rapid² reports none, a MagPro reports every one.
    protocol = load_protocol(_external(tmp_path, "external"))
    rapid2 = _rapid2()
    verdict = check(protocol, device=rapid2, thresholds=[mt(25, reference="aMT", stimulator=rapid2.model)])
    assert rule_ids(verdict.refusals) == {"timing.external-trigger"}
    assert "does not report the pulses it fires" in verdict.refusals[0].message
    magpro = load_magpro_spec("magventure-magpro-x100")
    allowed = check(protocol, device=magpro, thresholds=[mt(40, reference="aMT", stimulator=magpro.model)])
    assert allowed.status == "allowed", [f.message for f in allowed.refusals]


def test_the_rapid2_refusal_of_device_timed_itbs_does_not_point_at_external_triggering() -> None:
    rapid2 = _rapid2()
    verdict = check(load_library_protocol("itbs-600"), device=rapid2,
                    thresholds=[mt(25, reference="aMT", stimulator=rapid2.model)])
    hints = " ".join(f.hint or "" for f in verdict.refusals)
    assert "device.capability" in rule_ids(verdict.refusals)
    assert "external_trigger" not in hints


@pytest.mark.parametrize(("trigger", "mt_pct", "rule"), [("external", 35, "timing.external-trigger"),
                                                         ("rts", 50, "device.frequency")])
def test_a_session_the_device_cannot_deliver_is_refused_before_it_starts(tmp_path, trigger, mt_pct, rule) -> None:
    path = _external(tmp_path, trigger)
    clock = VirtualClock()
    sim = sims.create("rapid2", clock=clock, name=f"rapid2-external-{next(_names)}")
    try:
        with Records(tmp_path / "records.db") as records:
            protocol = load_protocol(path)
            records.approve_protocol(protocol.id, content_hash(protocol), approved_by="reviewer")
            with pytest.raises(SessionRefused) as refused:
                plan_session(SessionRequest(path, f"sim://{sim.name}", "S001", operator="tester", mt_pct_mso=mt_pct),
                             records)
            assert rule in rule_ids(refused.value.verdict.refusals)
        assert sim.device.truth() == ()
    finally:
        sims.remove(sim.name)


_names = itertools.count()
