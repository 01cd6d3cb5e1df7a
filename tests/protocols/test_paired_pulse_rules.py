"""The paired-pulse rules: the interval the device can time, both intensities, the pair rate."""

from __future__ import annotations

from typing import Any

import pytest
from protocols_helpers import document, mt, rule_ids

from tmsctl.drivers.magstim.spec import load_spec
from tmsctl.drivers.magventure.spec import load_spec as load_magpro_spec
from tmsctl.protocols import Protocol, check

BISTIM = load_spec("magstim-bistim")


def paired(isi_ms: float, *, conditioning_pct: float = 80, test_pct: float = 120, pair_interval_s: float = 5,
           pairs: int = 4) -> Protocol:
    pattern: dict[str, Any] = {
        "kind": "paired_pulse",
        "conditioning_intensity": {"reference": "rMT", "scaling_pct": conditioning_pct},
        "inter_stimulus_interval_ms": isi_ms,
        "pairs": pairs,
        "pair_interval_s": pair_interval_s,
    }
    return Protocol.model_validate(
        document(intensity={"reference": "rMT", "scaling_pct": test_pct}, pattern=pattern)
    )


def on_bistim(protocol: Protocol, rmt: float = 50):
    return check(protocol, device=BISTIM, thresholds=[mt(rmt, stimulator=BISTIM.model)])


@pytest.mark.parametrize("isi_ms", [1, 2, 2.5, 3, 0.1, 99.9, 100, 150, 999])
def test_intervals_the_bistim_sets_exactly_are_allowed(isi_ms: float) -> None:
    verdict = on_bistim(paired(isi_ms, pair_interval_s=5))
    assert verdict.status == "allowed", [f.message for f in verdict.findings]
    assert "device.paired-isi" in verdict.checked


@pytest.mark.parametrize("isi_ms", [2.55, 150.5, 1000])
def test_an_interval_off_every_bistim_grid_is_refused_never_rounded(isi_ms: float) -> None:
    verdict = on_bistim(paired(isi_ms, pair_interval_s=5))
    assert rule_ids(verdict.refusals) == {"device.paired-isi"}
    (finding,) = verdict.refusals
    assert "inter-stimulus interval" in finding.message and "0.1 ms steps" in finding.message


def test_both_intensities_are_checked_against_the_device_maximum() -> None:
    # 80 % rMT conditioning is fine; a 210 % rMT conditioning pulse is 105 %MSO at rMT 50.
    verdict = on_bistim(paired(3, conditioning_pct=210, test_pct=100))
    assert rule_ids(verdict.refusals) == {"device.intensity"}
    assert "105 %MSO" in verdict.refusals[0].message


def test_pairs_faster_than_the_recharge_of_the_stronger_pulse_are_refused() -> None:
    verdict = on_bistim(paired(3, pair_interval_s=3))
    assert rule_ids(verdict.refusals) == {"device.single-pulse-rate"}
    assert "pairs every 3 s" in verdict.refusals[0].message


def test_pairs_at_1_hz_or_faster_are_repetitive_stimulation_and_need_a_reason() -> None:
    verdict = check(paired(3, pair_interval_s=1, pairs=10))  # no device: the guideline rule alone
    assert "single-pulse.repetitive" in rule_ids(verdict.needs_override)
    finding = next(f for f in verdict.needs_override if f.rule_id == "single-pulse.repetitive")
    assert finding.message.startswith("pairs every 1 s")


MAGPRO_OPTION = load_magpro_spec("magventure-magpro-x100-option")


def on_magpro(protocol: Protocol, rmt: float = 50):
    return check(protocol, device=MAGPRO_OPTION, thresholds=[mt(rmt, stimulator=MAGPRO_OPTION.model)])


def with_stimulus(protocol: Protocol, waveform: str, direction: str = "normal") -> Protocol:
    data = protocol.model_dump(mode="json", exclude_none=True)
    data["stimulus"] = {"waveform": waveform, "current_direction": direction}
    return Protocol.model_validate(data)


@pytest.mark.parametrize("isi_ms", [1, 2.5, 3, 9.9, 12.5, 99, 150, 1000])
def test_intervals_in_the_magpro_twin_dual_table_are_allowed(isi_ms: float) -> None:
    verdict = on_magpro(paired(isi_ms, pair_interval_s=5))
    assert verdict.status == "allowed", [f.message for f in verdict.findings]
    assert "device.paired-isi" in verdict.checked


@pytest.mark.parametrize("isi_ms", [0.5, 10.2, 101, 995])
def test_an_interval_off_the_magpro_twin_dual_table_is_refused(isi_ms: float) -> None:
    verdict = on_magpro(paired(isi_ms, pair_interval_s=5))
    assert rule_ids(verdict.refusals) == {"device.paired-isi"}


def test_both_magpro_pair_intensities_are_checked_against_its_maximum() -> None:
    verdict = on_magpro(paired(3, conditioning_pct=210, test_pct=100))
    assert rule_ids(verdict.refusals) == {"device.intensity"}


def test_a_magpro_without_magoption_has_no_pairs() -> None:
    x100 = load_magpro_spec("magventure-magpro-x100")
    verdict = check(paired(3), device=x100, thresholds=[mt(50, stimulator=x100.model)])
    assert "device.capability" in rule_ids(verdict.refusals)


def test_the_stimulus_shape_is_checked_against_the_magpro_model() -> None:
    assert on_magpro(with_stimulus(paired(3), "biphasic", "reversed")).status == "allowed"
    monophasic_close = on_magpro(with_stimulus(paired(1.5), "monophasic"))
    assert rule_ids(monophasic_close.refusals) == {"device.stimulus"}
    assert "at least 2 ms apart" in monophasic_close.refusals[0].message
    assert rule_ids(on_magpro(with_stimulus(paired(3), "biphasic_burst")).refusals) == {"device.stimulus"}
    r30 = load_magpro_spec("magventure-magpro-r30-option")
    verdict = check(with_stimulus(paired(3), "half_sine"), device=r30, thresholds=[mt(50, stimulator=r30.model)])
    assert rule_ids(verdict.refusals) == {"device.stimulus"} and "Halfsine" in verdict.refusals[0].message


def test_a_stimulus_on_a_unit_whose_waveform_is_no_setting_is_only_noted() -> None:
    verdict = on_bistim(with_stimulus(paired(3), "monophasic"))
    assert verdict.status == "allowed"
    assert any(f.rule_id == "device.stimulus-unset" and f.severity.value == "info" for f in verdict.findings)
