"""Paired-pulse sessions on the simulated BiStim²: every pair, per the simulator's truth log, is
output A at the conditioning intensity then output B at the test intensity one ISI later, and the
record says the same (both intensities, the ISI, both pulses known delivered)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tmsctl.core.clock import VirtualClock
from tmsctl.lab.testing import check_dose_truth
from tmsctl.records import DeliveryKind, Records, SessionStatus
from tmsctl.session.planned import SessionRequest, plan_session, run_planned
from tmsctl.session.runner import RunOutcome
from tmsctl.simulators import registry as sims

LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
_names = itertools.count()


@pytest.fixture
def records(tmp_path: Path):
    with Records(tmp_path / "records.db") as rec:
        yield rec


def bistim():
    clock = VirtualClock()
    return clock, sims.create("bistim", clock=clock, name=f"bistim-paired-{next(_names)}")


def run(records, protocol: Path, sim, *, mt: int = 50, approve: bool = False):
    if approve:
        from tmsctl.protocols.canonical import content_hash
        from tmsctl.protocols.loader import load_protocol

        loaded = load_protocol(protocol)
        records.approve_protocol(loaded.id, content_hash(loaded), approved_by="reviewer")
    planned = plan_session(SessionRequest(protocol, f"sim://{sim.name}", "S001", operator="tester", mt_pct_mso=mt),
                           records)
    return run_planned(planned, records)


def pairs_in_truth(device) -> list[tuple]:
    pulses = device.truth()
    assert len(pulses) % 2 == 0
    return [(a, b) for a, b in zip(pulses[::2], pulses[1::2])]


@pytest.mark.parametrize(
    ("protocol_id", "conditioning", "test", "isi_ms"),
    [("sici-3ms", 40, 60, 3.0), ("icf-10ms", 40, 60, 10.0), ("lici-100ms", 60, 60, 100.0)],
)
def test_library_paired_protocols_deliver_and_record_every_pair(records, protocol_id, conditioning, test, isi_ms) -> None:
    _clock, sim = bistim()
    session_id, result = run(records, LIBRARY / f"{protocol_id}.yaml", sim)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert result.pulses_delivered == 40 and result.pulses_uncertain == 0
    pairs = pairs_in_truth(sim.device)
    assert len(pairs) == 20
    for first, second in pairs:
        assert (first.output, first.intensity_pct) == ("A", conditioning)
        assert (second.output, second.intensity_pct) == ("B", test)
        assert (second.t - first.t) * 1000 == pytest.approx(isi_ms, abs=1e-6)
    onsets = [first.t for first, _ in pairs]
    spacing = 6.0 if protocol_id == "lici-100ms" else 5.0
    assert [b - a for a, b in itertools.pairwise(onsets)] == pytest.approx([spacing] * 19, abs=1e-6)
    detail = records.session_detail(session_id)
    assert detail.session.status is SessionStatus.COMPLETED
    assert len(detail.deliveries) == 20
    for delivery in detail.deliveries:
        assert delivery.kind is DeliveryKind.PAIRED
        assert (delivery.intensity_pct_mso, delivery.second_intensity_pct_mso, delivery.ipi_ms) == (
            conditioning, test, pytest.approx(isi_ms))
        assert (delivery.pulses_planned, delivery.pulses_delivered, delivery.pulses_uncertain) == (2, 2, 0)
    check_dose_truth(records, session_id, sim.device)
    assert sim.device.interlocks == [] and sim.device.fault_log == []


def test_an_interval_that_needs_high_resolution_timing_gets_it(records, tmp_path) -> None:
    path = tmp_path / "sici-2-5.yaml"
    path.write_text((LIBRARY / "sici-3ms.yaml").read_text()
                    .replace("id: sici-3ms", "id: sici-2-5ms")
                    .replace("inter_stimulus_interval_ms: 3", "inter_stimulus_interval_ms: 2.5")
                    .replace("pairs: 20", "pairs: 3"))
    _clock, sim = bistim()
    session_id, result = run(records, path, sim, approve=True)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert sim.device.high_res
    for first, second in pairs_in_truth(sim.device):
        assert (second.t - first.t) * 1000 == pytest.approx(2.5, abs=1e-6)
    assert {d.ipi_ms for d in records.session_detail(session_id).deliveries} == {2.5}
    check_dose_truth(records, session_id, sim.device)


def test_single_pulses_on_a_bistim_whose_second_output_was_left_on_fire_output_a_alone(records, tmp_path) -> None:
    path = tmp_path / "singles.yaml"
    path.write_text(
        "schema_version: 1\nid: singles\ntitle: Single pulses\ncoil: {family: figure8}\n"
        "target: {method: motor_hotspot, muscle: FDI}\nhemisphere: left\n"
        "intensity: {reference: rMT, scaling_pct: 110}\n"
        "pattern: {kind: single_pulse, pulses: 3, interval_s: 5}\n"
    )
    _clock, sim = bistim()
    sim.device.power_b = 70  # set on the unit's panel before tmsctl connected
    session_id, result = run(records, path, sim, approve=True)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert [(p.output, p.intensity_pct) for p in sim.device.truth()] == [("A", 55)] * 3
    assert sim.device.power_b == 0
    check_dose_truth(records, session_id, sim.device)


def magpro_option():
    clock = VirtualClock()
    return clock, sims.create("magpro-x100-option", clock=clock, name=f"magpro-paired-{next(_names)}")


@pytest.mark.parametrize(("protocol_id", "isi_ms"), [("sici-3ms", 3.0), ("icf-10ms", 10.0)])
def test_sici_and_icf_on_a_magpro_in_twin_mode_deliver_and_record_every_pair(records, protocol_id, isi_ms) -> None:
    from tmsctl.drivers.magventure import codec as mc

    _clock, sim = magpro_option()
    session_id, result = run(records, LIBRARY / f"{protocol_id}.yaml", sim)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert result.pulses_delivered == 40 and result.pulses_uncertain == 0
    assert sim.device.mode is mc.Mode.TWIN and sim.device.ba_ratio_x100 == 150  # 60 % / 40 %
    pairs = pairs_in_truth(sim.device)
    assert len(pairs) == 20
    for first, second in pairs:
        assert (first.output, first.intensity_pct) == ("A", 40)
        assert (second.output, second.intensity_pct) == ("B", 60)
        assert (second.t - first.t) * 1000 == pytest.approx(isi_ms, abs=1e-6)
    detail = records.session_detail(session_id)
    assert detail.session.status is SessionStatus.COMPLETED and len(detail.deliveries) == 20
    for delivery in detail.deliveries:
        assert delivery.kind is DeliveryKind.PAIRED
        assert (delivery.intensity_pct_mso, delivery.second_intensity_pct_mso, delivery.ipi_ms) == (
            40, 60, pytest.approx(isi_ms))
        assert (delivery.pulses_planned, delivery.pulses_delivered, delivery.pulses_uncertain) == (2, 2, 0)
    check_dose_truth(records, session_id, sim.device)
    assert sim.device.interlocks == [] and sim.device.fault_log == []


def test_a_pair_whose_ratio_is_off_the_twin_grid_runs_in_dual_mode(records) -> None:
    from tmsctl.drivers.magventure import codec as mc

    _clock, sim = magpro_option()
    session_id, result = run(records, LIBRARY / "sici-3ms.yaml", sim, mt=47)  # 38 % then 56 %: B/A 1.47…
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    assert sim.device.mode is mc.Mode.DUAL
    assert {(a.intensity_pct, b.intensity_pct) for a, b in pairs_in_truth(sim.device)} == {(38, 56)}
    check_dose_truth(records, session_id, sim.device)


def test_the_truth_check_holds_each_pair_to_its_recorded_intensities_and_interval(records) -> None:
    import dataclasses

    from tmsctl.lab.testing import DoseTruthViolation

    _clock, sim = magpro_option()
    session_id, result = run(records, LIBRARY / "sici-3ms.yaml", sim)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    check_dose_truth(records, session_id, sim.device)
    pulses = sim.device.pulses
    second = pulses[1]
    assert second.output == "B"
    pulses[1] = dataclasses.replace(second, t=second.t + 0.002)  # the unit fired B 5 ms after A, not 3
    with pytest.raises(DoseTruthViolation, match="follows no first pulse"):
        check_dose_truth(records, session_id, sim.device)
    pulses[1] = dataclasses.replace(second, intensity_pct=40)  # B at the conditioning intensity
    with pytest.raises(DoseTruthViolation, match="second pulse at 40 %"):
        check_dose_truth(records, session_id, sim.device)
    pulses[1] = dataclasses.replace(second, output="A")  # B never fired; a stray A instead
    with pytest.raises(DoseTruthViolation, match="20 pair"):
        check_dose_truth(records, session_id, sim.device)


def test_the_protocols_stimulus_shape_is_set_on_the_magpro_before_the_first_pair(records, tmp_path) -> None:
    from tmsctl.drivers.magventure import codec as mc

    path = tmp_path / "sici-mono.yaml"
    path.write_text((LIBRARY / "sici-3ms.yaml").read_text()
                    .replace("id: sici-3ms", "id: sici-3ms-monophasic-reversed")
                    .replace("hemisphere: left", "hemisphere: left\nstimulus: {waveform: monophasic, current_direction: reversed}")
                    .replace("pairs: 20", "pairs: 3"))
    _clock, sim = magpro_option()
    session_id, result = run(records, path, sim, approve=True)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    device = sim.device
    assert (device.waveform, device.direction, device.mode) == (
        mc.Waveform.MONOPHASIC, mc.CurrentDirection.REVERSE, mc.Mode.TWIN)
    assert len(pairs_in_truth(device)) == 3
    check_dose_truth(records, session_id, device)
