"""Every library protocol validates and expands to the figures documented in protocols.md (§1, §4)."""

from __future__ import annotations

import pytest
from protocols_helpers import BURST, RAPID2, mt, rule_ids

from tmsctl.core.errors import ProtocolFileError
from tmsctl.protocols import check, content_hash, expand, library_path, list_library, load_library_protocol

# id: (pulses per session, nominal duration s, end of last train s, last pulse onset s)
# Figures from protocols.md §4 (n/f train length, gap ITI; onset-to-onset for TBS and 1 Hz).
EXPECTED = {
    "neurostar-10hz-ldlpfc": (3000, 2250.0, 2224.0, 2223.9),  # 37.5 min nominal; 37 min 4 s
    "itbs-600": (600, 200.0, 192.0, 191.84),
    "three-d-itbs-ldlpfc": (600, 200.0, 192.0, 191.84),
    "ctbs-600": (600, 40.0, 40.0, 39.84),
    "ctbs-300": (300, 20.0, 20.0, 19.84),
    "1hz-rdlpfc": (1800, 1800.0, 1800.0, 1799.0),
    "h1-18hz-mdd": (1980, 1210.0, 1190.0, 54 * 22 + 35 / 18),  # 1,190 s = 19 min 50 s
    "h7-20hz-ocd": (2000, 1100.0, 1080.0, 49 * 22 + 39 / 20),  # 1,080 s = 18 min
    "h4-10hz-smoking": (1800, 1080.0, 1065.0, 59 * 18 + 2.9),  # 1,065 s = 17 min 45 s
    "saint-accelerated-itbs": (1800, 600.0, 592.0, 591.84),
    "bpd-5hz-ldlpfc": (1500, 900.0, 880.0, 879.8),
    "bpd-1hz-rdlpfc": (900, 900.0, 900.0, 899.0),
    "bpd-5hz-dmpfc": (1500, 900.0, 880.0, 879.8),
    "bpd-20hz-dmpfc-bilateral": (1200, 360.0, 350.0, 349.95),
    # Paired pulses: a pair every 5 s (6 s for LICI); each pair lasts its inter-stimulus interval.
    "sici-3ms": (40, 100.0, 95.003, 95.003),
    "icf-10ms": (40, 100.0, 95.01, 95.01),
    "lici-100ms": (40, 120.0, 114.1, 114.1),
}
PAIRED = ("sici-3ms", "icf-10ms", "lici-100ms")

# id: (sessions per day, pulses per day)
DAYS = {"saint-accelerated-itbs": (10, 18000), "bpd-20hz-dmpfc-bilateral": (2, 2400)}


def test_the_library_holds_exactly_the_documented_protocols() -> None:
    assert {entry.id for entry in list_library()} == set(EXPECTED)
    assert all(entry.path.parent == library_path() for entry in list_library())


@pytest.mark.parametrize("protocol_id", sorted(EXPECTED))
def test_library_protocol_expands_to_its_documented_totals(protocol_id: str) -> None:
    protocol = load_library_protocol(protocol_id)
    assert protocol.id == protocol_id
    schedule = expand(protocol)
    pulses, nominal_s, end_s, last_pulse_s = EXPECTED[protocol_id]
    assert schedule.total_pulses == pulses
    assert sum(train.n_pulses for train in schedule.trains) == pulses
    assert schedule.duration_s == pytest.approx(nominal_s, abs=1e-9)
    assert schedule.end_s == pytest.approx(end_s, abs=1e-9)
    assert schedule.last_pulse_onset_s == pytest.approx(last_pulse_s, abs=1e-9)
    last = schedule.trains[-1]
    assert last.onset_s + last.pulse_offsets_s[-1] == pytest.approx(last_pulse_s, abs=1e-9)
    sessions, per_day = DAYS.get(protocol_id, (1, pulses))
    assert (schedule.sessions_per_day, schedule.pulses_per_day) == (sessions, per_day)
    if protocol.limits.max_total_pulses is not None:
        assert pulses <= protocol.limits.max_total_pulses


@pytest.mark.parametrize("protocol_id", sorted(EXPECTED))
def test_library_protocol_is_allowed_by_the_rulebook_and_cites_its_sources(protocol_id: str) -> None:
    protocol = load_library_protocol(protocol_id)
    verdict = check(protocol)
    assert verdict.status == "allowed", [f.message for f in verdict.findings]
    assert protocol.sources, "library protocols cite their sources"
    assert protocol.limits.max_total_pulses is not None
    assert verdict.protocol_hash == content_hash(protocol)


def test_saint_day_spans_nine_intervals_plus_one_session() -> None:
    schedule = expand(load_library_protocol("saint-accelerated-itbs"))
    assert schedule.session_onsets_s == tuple(k * 3000.0 for k in range(10))
    assert schedule.day_span_s == pytest.approx(9 * 3000 + 592)  # ≈ 459.9 min (protocols.md §4)


def test_feffer_sessions_are_an_hour_apart_end_to_start() -> None:
    schedule = expand(load_library_protocol("bpd-20hz-dmpfc-bilateral"))
    assert schedule.session_onsets_s == (0.0, 350.0 + 3600.0)


def test_unknown_library_id_names_the_known_ones() -> None:
    with pytest.raises(ProtocolFileError) as caught:
        load_library_protocol("no-such-protocol")
    assert "neurostar-10hz-ldlpfc" in str(caught.value)


# --- on devices --------------------------------------------------------------------------------

# With an rMT of 50 %MSO (aMT 40 %MSO) on the test Rapid² (type 0, 240 V, software ≥ 9):
ON_RAPID2 = {
    "neurostar-10hz-ldlpfc": ("allowed", set()),
    "1hz-rdlpfc": ("refused", {"device.train-duration"}),  # one 1,800 s train > 999.9 s timer
    "bpd-1hz-rdlpfc": ("allowed", set()),
    "bpd-5hz-ldlpfc": ("allowed", set()),
    "bpd-5hz-dmpfc": ("allowed", set()),
    "bpd-20hz-dmpfc-bilateral": ("allowed", set()),
    "h1-18hz-mdd": ("allowed", set()),
    "h4-10hz-smoking": ("allowed", set()),
    "h7-20hz-ocd": ("allowed", set()),
    # A type-0 Rapid² neither times bursts nor reaches 50 Hz above 30 %MSO (32-60 % here).
    "itbs-600": ("refused", {"device.capability", "device.frequency"}),
    "three-d-itbs-ldlpfc": ("refused", {"device.capability", "device.frequency"}),
    "ctbs-600": ("refused", {"device.capability", "device.frequency"}),
    "ctbs-300": ("refused", {"device.capability", "device.frequency"}),
    "saint-accelerated-itbs": ("refused", {"device.capability", "device.frequency"}),
    # One output: no paired pulses.
    **{protocol_id: ("refused", {"device.capability"}) for protocol_id in PAIRED},
}


def thresholds_for(protocol_id: str, stimulator: str):
    protocol = load_library_protocol(protocol_id)
    family = protocol.coil.family
    return [
        mt(50, family=family, stimulator=stimulator),
        mt(40, reference="aMT", family=family, stimulator=stimulator),
    ]


@pytest.mark.parametrize("protocol_id", sorted(ON_RAPID2))
def test_library_on_the_test_rapid2(protocol_id: str) -> None:
    status, refusals = ON_RAPID2[protocol_id]
    verdict = check(
        load_library_protocol(protocol_id),
        device=RAPID2,
        thresholds=thresholds_for(protocol_id, RAPID2.model),
    )
    assert verdict.status == status, [f.message for f in verdict.findings]
    assert rule_ids(verdict.refusals) == refusals
    assert verdict.complete


@pytest.mark.parametrize("protocol_id", sorted(EXPECTED))
def test_theta_burst_protocols_run_on_a_burst_capable_stimulator(protocol_id: str) -> None:
    protocol = load_library_protocol(protocol_id)
    verdict = check(protocol, device=BURST, thresholds=thresholds_for(protocol_id, BURST.model))
    if protocol.pattern.kind == "theta_burst":
        assert verdict.status == "allowed", [f.message for f in verdict.findings]


# --- on the Magstim specs (tmsctl.drivers.magstim.spec) --------------------------------------

from tmsctl.drivers.magstim import spec  # noqa: E402  (the section on the specs)


def on_spec(protocol_id: str, device):
    return check(
        load_library_protocol(protocol_id),
        device=device,
        thresholds=thresholds_for(protocol_id, device.model),
    )


def test_library_on_a_rapid2_spec_with_software_9() -> None:
    rapid2 = spec.load_spec("magstim-rapid2").for_version((9, 0))
    for protocol_id, (status, refusals) in ON_RAPID2.items():
        verdict = on_spec(protocol_id, rapid2)
        assert verdict.status == status, (protocol_id, [f.message for f in verdict.findings])
        assert rule_ids(verdict.refusals) == refusals, protocol_id


def test_a_rapid2_of_unknown_software_version_refuses_trains_beyond_99_9_s() -> None:
    rapid2 = spec.load_spec("magstim-rapid2")
    verdict = on_spec("bpd-1hz-rdlpfc", rapid2)
    assert rule_ids(verdict.refusals) == {"device.train-duration"}
    assert on_spec("neurostar-10hz-ldlpfc", rapid2).status == "allowed"


@pytest.mark.parametrize("model", ["magstim-200", "magstim-bistim"])
def test_single_pulse_units_refuse_every_library_train(model: str) -> None:
    device = spec.load_spec(model)
    for entry in list_library():
        if entry.id in PAIRED:
            continue
        verdict = on_spec(entry.id, device)
        assert verdict.status == "refused", entry.id
        assert "device.capability" in rule_ids(verdict.refusals), entry.id


def test_rapid2_spec_agrees_with_the_test_device_on_the_device_vectors() -> None:
    rapid2 = spec.load_spec("magstim-rapid2").for_version((9, 0))
    assert rapid2.max_frequency_hz(80) == RAPID2.max_frequency_hz(80) == 18
    assert rapid2.min_inter_train_interval_s(80, 18, 36) == pytest.approx(
        RAPID2.min_inter_train_interval_s(80, 18, 36)
    )
    assert rapid2.max_train_on_time_s(100, 10) == pytest.approx(RAPID2.max_train_on_time_s(100, 10))


@pytest.mark.parametrize("protocol_id", PAIRED)
def test_paired_library_protocols_run_on_a_bistim_and_only_where_both_pulses_can_be_given(protocol_id: str) -> None:
    verdict = on_spec(protocol_id, spec.load_spec("magstim-bistim"))
    assert verdict.status == "allowed", [f.message for f in verdict.findings]
    assert {"device.paired-isi", "device.single-pulse-rate", "device.intensity"} <= set(verdict.checked)
    assert rule_ids(on_spec(protocol_id, spec.load_spec("magstim-200")).refusals) == {"device.capability"}
    # A MagPro with MagOption times the pair in Twin/Dual mode, its interval from the spec's table;
    # one without has no second pulse.
    from tmsctl.drivers.magventure.spec import load_spec as magpro_spec

    magpro = on_spec(protocol_id, magpro_spec("magventure-magpro-x100-option"))
    assert magpro.status == "allowed", [f.message for f in magpro.findings]
    assert "device.paired-isi" in magpro.checked
    assert rule_ids(on_spec(protocol_id, magpro_spec("magventure-magpro-x100")).refusals) == {"device.capability"}
