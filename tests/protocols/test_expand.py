"""expand(): exact timing, every pattern kind, ramps, intensity resolution and its findings."""

from __future__ import annotations

from fractions import Fraction

import pytest
from protocols_helpers import RAPID2, document, mt, rtms, rule_ids

from tmsctl.protocols import Protocol, expand, load_library_protocol
from tmsctl.protocols.findings import describe_trains
from tmsctl.protocols.thresholds import round_half_up


def protocol(**changes) -> Protocol:
    return Protocol.model_validate(document(**changes))


def test_onsets_come_from_indices_not_from_summing_intervals() -> None:
    # 0.1 s cycles would drift if summed: 0.1 + 0.1 + 0.1 != 0.3 in binary floating point.
    schedule = expand(
        protocol(
            intensity={"reference": "MSO", "scaling_pct": 30},
            pattern={
                "kind": "rtms",
                "frequency_hz": 50,
                "pulses_per_train": 2,
                "train_onset_interval_s": 0.1,
                "trains": 1000,
            },
            limits={},
        )
    )
    assert [train.onset_s for train in schedule.trains[:4]] == [0.0, 0.1, 0.2, 0.3]
    assert schedule.trains[-1].onset_s == 99.9
    assert all(train.onset_s == index / 10 for index, train in enumerate(schedule.trains))


def test_neurostar_trains_start_every_30_s_with_pulses_every_100_ms() -> None:
    schedule = expand(load_library_protocol("neurostar-10hz-ldlpfc"))
    assert [t.onset_s for t in schedule.trains[:3]] == [0.0, 30.0, 60.0]
    first = schedule.trains[0]
    assert first.pulse_offsets_s[:3] == (0.0, 0.1, 0.2) and first.pulse_offsets_s[-1] == 3.9
    assert first.frequency_hz == 10 and first.duration_s == 4.0 and first.kind == "train"
    assert schedule.gap_after_s(first) == 26.0 and schedule.gap_after_s(schedule.trains[-1]) is None


def test_trains_share_one_offsets_tuple() -> None:
    schedule = expand(load_library_protocol("saint-accelerated-itbs"))
    assert len({id(train.pulse_offsets_s) for train in schedule.trains}) == 1


def test_itbs_train_is_ten_bursts_of_three_pulses() -> None:
    schedule = expand(load_library_protocol("itbs-600"))
    train = schedule.trains[0]
    assert train.kind == "theta_burst" and train.n_pulses == 30 and train.frequency_hz is None
    assert train.peak_frequency_hz == 50 and train.duration_s == 2.0
    assert train.pulse_offsets_s[:4] == (0.0, 0.02, 0.04, 0.2)
    assert train.mean_frequency_hz == 15


def test_layers_describe_the_same_itbs_as_the_theta_burst_kind() -> None:
    layers = protocol(
        intensity={"reference": "aMT", "scaling_pct": 80},
        pattern={
            "kind": "layers",
            "layers": [
                {"count": 3, "interval_ms": 20, "builds": "burst"},
                {"count": 10, "frequency_hz": 5, "builds": "train"},
                {"count": 20, "interval_s": 10, "builds": "session"},
            ],
        },
        limits={"max_total_pulses": 600},
    )
    from_layers = expand(layers)
    from_kind = expand(load_library_protocol("itbs-600"))
    assert from_layers.plan.kind == "theta_burst"
    assert [(t.onset_s, t.pulse_offsets_s) for t in from_layers.trains] == [
        (t.onset_s, t.pulse_offsets_s) for t in from_kind.trains
    ]
    assert from_layers.last_pulse_onset_s == pytest.approx(191.84)


def test_layers_classify_plain_and_patterned_trains() -> None:
    plain = protocol(
        pattern={"kind": "layers", "layers": [{"count": 40, "frequency_hz": 10, "builds": "train"}]}
    )
    assert expand(plain).trains[0].kind == "train" and expand(plain).trains[0].frequency_hz == 10
    patterned = protocol(
        pattern={
            "kind": "layers",
            "layers": [
                {"count": 4, "frequency_hz": 100, "builds": "burst"},
                {"count": 5, "interval_ms": 250, "builds": "train"},
                {"count": 3, "interval_s": 30, "builds": "block"},
                {"count": 2, "interval_s": 120, "builds": "session"},
            ],
        },
    )
    schedule = expand(patterned)
    assert schedule.plan.kind == "patterned" and len(schedule.trains) == 6
    assert [t.onset_s for t in schedule.trains] == [0.0, 30.0, 60.0, 120.0, 150.0, 180.0]
    assert schedule.total_pulses == 120 and schedule.duration_s == 240.0


def test_single_and_paired_pulses() -> None:
    single = expand(
        protocol(
            intensity={"reference": "MSO", "scaling_pct": 60},
            pattern={"kind": "single_pulse", "pulses": 3, "interval_s": 5},
        )
    )
    assert [(t.onset_s, t.n_pulses, t.duration_s, t.kind) for t in single.trains] == [
        (0.0, 1, 0.0, "single_pulse"),
        (5.0, 1, 0.0, "single_pulse"),
        (10.0, 1, 0.0, "single_pulse"),
    ]
    paired = expand(
        protocol(
            intensity={"reference": "rMT", "scaling_pct": 120},
            pattern={
                "kind": "paired_pulse",
                "conditioning_intensity": {"reference": "aMT", "scaling_pct": 80},
                "inter_stimulus_interval_ms": 3,
                "pairs": 4,
                "pair_interval_s": 6,
            },
        ),
        thresholds=[mt(50), mt(40, reference="aMT")],
    )
    first = paired.trains[0]
    assert first.kind == "paired_pulse" and first.pulse_offsets_s == (0.0, 0.003)
    assert (first.conditioning_intensity_pct_mso, first.intensity_pct_mso) == (32, 60)
    assert paired.total_pulses == 8 and paired.duration_s == 24.0


def test_a_ramp_rises_linearly_then_holds_and_each_train_is_rounded() -> None:
    ramped = protocol(
        intensity={
            "reference": "rMT",
            "scaling_pct": 120,
            "ramp": {"first_trains": 4, "start_pct_of_target": 80},
        },
    )
    schedule = expand(ramped, thresholds=[mt(55)])
    prescriptions = [t.intensity_pct_of_reference for t in schedule.trains[:6]]
    assert prescriptions == [96.0, 102.0, 108.0, 114.0, 120.0, 120.0]
    assert [t.intensity_pct_mso for t in schedule.trains[:6]] == [
        53,
        56,
        59,
        63,
        66,
        66,
    ]  # 52.8 56.1 59.4 62.7
    assert schedule.intensity_pct_mso == 66
    assert "intensity.rounded" in rule_ids(schedule.findings)


def test_rounding_is_half_up_and_said_in_a_finding() -> None:
    assert [round_half_up(Fraction(x)) for x in ("49.5", "50.5", "49.49", "0.5")] == [50, 51, 49, 1]
    schedule = expand(rtms(10, 40, pct=90), thresholds=[mt(55)])
    assert schedule.intensity_pct_mso == 50 and schedule.intensity_exact_pct_mso == 49.5
    (finding,) = [f for f in schedule.findings if f.rule_id == "intensity.rounded"]
    assert finding.severity == "info" and "49.5 → 50" in finding.message
    exact = expand(rtms(10, 40, pct=120), thresholds=[mt(55)])
    assert "intensity.rounded" not in rule_ids(exact.findings)


def test_a_plan_without_thresholds_keeps_intensities_in_percent_mt() -> None:
    schedule = expand(rtms(10, 40))
    assert schedule.intensity_pct_mso is None and not schedule.intensity_resolved
    assert schedule.trains[0].intensity_pct_mt == 120
    assert rule_ids(schedule.findings) == {"mt.not-provided"}


def test_mso_protocols_use_an_rmt_only_to_express_percent_mt() -> None:
    schedule = expand(rtms(10, 40, pct=60, reference="MSO"), device=RAPID2, thresholds=[mt(50)])
    train = schedule.trains[0]
    assert train.intensity_pct_mso == 60 and train.intensity_pct_mt == 120
    assert schedule.mt_reference == "rMT"
    foreign = expand(rtms(10, 40, pct=60, reference="MSO"), device=RAPID2, thresholds=[mt(50, family="H1")])
    assert foreign.trains[0].intensity_pct_mt is None and not foreign.findings


def test_a_threshold_for_a_named_coil_model_must_name_it() -> None:
    named = rtms(10, 40, coil={"family": "figure8", "model": "D70"})
    assert expand(named, thresholds=[mt(55, coil_model="D70")]).intensity_pct_mso == 66
    other = expand(named, thresholds=[mt(55, coil_model="AirFilm")])
    assert rule_ids(other.findings, "refuse") == {"mt.other-coil"}
    unnamed = expand(named, thresholds=[mt(55)])
    assert rule_ids(unnamed.findings, "refuse") == {"mt.other-coil"}


def test_an_accelerated_day_of_18000_pulses_expands_and_stays_small() -> None:
    schedule = expand(load_library_protocol("saint-accelerated-itbs"))
    assert schedule.pulses_per_day == 18000 and len(schedule.session_onsets_s) == 10
    big = protocol(
        intensity={"reference": "MSO", "scaling_pct": 40},
        pattern={"kind": "single_pulse", "pulses": 18000, "interval_s": 2},
    )
    trains = expand(big).trains
    assert len(trains) == 18000 and trains[-1].onset_s == 35998.0
    assert len({id(t.pulse_offsets_s) for t in trains}) == 1


def test_expansion_is_pure() -> None:
    protocol_ = load_library_protocol("h1-18hz-mdd")
    thresholds = [mt(50, family="H1")]
    assert expand(protocol_, RAPID2, thresholds) == expand(protocol_, RAPID2, thresholds)


@pytest.mark.parametrize(
    ("numbers", "text"),
    [
        ((), ""),
        ((3,), "train 3"),
        ((1, 2, 3), "trains 1–3"),
        ((1, 2, 5), "trains 1–2, 5"),
        (tuple(range(1, 20, 2)), "trains 1, 3, 5, … (10 in all)"),
    ],
)
def test_train_numbers_read_naturally(numbers, text) -> None:
    assert describe_trains(numbers) == text
