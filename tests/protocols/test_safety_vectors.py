"""Every test vector of safety.md §8 gives its expected verdict.

safety.md states durations in seconds; protocols deliver whole pulses, so a duration that is not a
whole number of pulses is replaced by the nearest pulse count on the same side of the limit
(noted per case). The look-up itself is also tested with the exact off-grid values.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from protocols_helpers import BURST, RAPID2, document, mt, rtms, rule_ids

from tmsctl.protocols import Protocol, SitePolicy, check, load_library_protocol, rulebook

# --- 8.1 Wassermann look-ups, figure-8 ----------------------------------------------------------

LOOKUPS = [
    # id, f, %MT, expected cell (row, column, limit, open-ended) or None outside the table
    ("W1", 10, 120, (10, 120, 4.2, False)),
    ("W3", 10, 110, (10, 110, 5, True)),
    ("W5", 20, 110, (20, 110, 1.6, False)),
    ("W8", 18, 120, (20, 120, 1.0, False)),
    ("W9", 15, 115, (20, 120, 1.0, False)),
    ("W10", 1, 120, (1, 120, 360, False)),
    ("W11", 1, 100, (1, 100, 1800, True)),
    ("W12", 25, 180, (25, 180, 0.08, False)),
    ("W13", 10, 150, (10, 150, 0.8, False)),
    ("W14", 10, 160, (10, 160, 0.9, False)),
    ("W15", 5, 140, (5, 140, 7.6, False)),
    ("W16", 20, 100, (20, 100, 2.05, False)),
    ("W17", 10, 90, (10, 100, 5, True)),
    ("W18", 30, 100, None),
    ("W19", 10, 230, None),
    ("W20", 10.1, 120.1, (20, 130, 0.55, False)),
    ("below 1 Hz", 0.5, 100, (1, 100, 1800, True)),
]


@pytest.mark.parametrize(("vector", "frequency", "pct", "expected"), LOOKUPS, ids=[v[0] for v in LOOKUPS])
def test_wassermann_lookup_rounds_up_to_the_next_row_and_column(vector, frequency, pct, expected) -> None:
    cell = rulebook().wassermann_lookup(frequency, pct)
    if expected is None:
        assert cell is None
    else:
        assert cell is not None
        assert (cell.frequency_hz, cell.intensity_pct_mt, cell.limit_s, cell.open_ended) == expected


ALLOW, OVERRIDE = "allowed", "needs_override"

# id, f, %MT, pulses per train (duration = pulses / f), ITI s, expected, rule that must fire
TRAINS = [
    ("W1", 10, 120, 40, 26, ALLOW, None),
    ("W3", 10, 110, 50, 26, ALLOW, None),
    ("W4", 10, 110, 60, 26, OVERRIDE, "wassermann.train-duration"),
    ("W5", 20, 110, 32, 5, ALLOW, None),
    ("W6", 20, 110, 32, 1, OVERRIDE, "chen.inter-train-interval"),
    ("W7", 20, 110, 34, 5, OVERRIDE, "wassermann.train-duration"),
    ("W8", 18, 120, 36, 20, OVERRIDE, "wassermann.train-duration"),
    ("W9", 15, 115, 15, 10, ALLOW, None),
    ("W9 longer (17 pulses = 1.13 s for 1.1 s)", 15, 115, 17, 10, OVERRIDE, "wassermann.train-duration"),
    ("W10", 1, 120, 1800, None, OVERRIDE, "wassermann.train-duration"),
    ("W11", 1, 100, 1800, None, ALLOW, None),
    ("W12", 25, 180, 2, 10, ALLOW, None),
    ("W12 longer (3 pulses = 0.12 s)", 25, 180, 3, 10, OVERRIDE, "wassermann.train-duration"),
    ("W13 (9 pulses = 0.9 s for 0.85 s)", 10, 150, 9, 10, OVERRIDE, "wassermann.train-duration"),
    ("W14 (9 pulses = 0.9 s for 0.85 s)", 10, 160, 9, 10, ALLOW, None),
    ("W15", 5, 140, 38, 10, ALLOW, None),
    ("W15 longer (8.0 s)", 5, 140, 40, 10, OVERRIDE, "wassermann.train-duration"),
    ("W16", 20, 100, 41, 10, ALLOW, None),
    ("W17", 10, 90, 50, 10, ALLOW, None),
    ("W17 longer (6.0 s)", 10, 90, 60, 10, OVERRIDE, "wassermann.train-duration"),
    ("W18", 30, 100, 30, 10, OVERRIDE, "wassermann.outside-table"),
    ("W19", 10, 230, 2, 10, OVERRIDE, "wassermann.outside-table"),
    ("W20 (5 pulses = 0.495 s for 0.5 s)", 10.1, 120.1, 5, 10, ALLOW, None),
    ("W20 longer (6 pulses = 0.59 s)", 10.1, 120.1, 6, 10, OVERRIDE, "wassermann.train-duration"),
]


@pytest.mark.parametrize(
    ("vector", "frequency", "pct", "pulses", "iti", "expected", "rule"), TRAINS, ids=[t[0] for t in TRAINS]
)
def test_wassermann_and_chen_vectors(vector, frequency, pct, pulses, iti, expected, rule) -> None:
    trains = 1 if iti is None else 2
    verdict = check(rtms(frequency, pulses, pct=pct, iti_s=iti, trains=trains))
    assert verdict.status == expected, [f.message for f in verdict.findings]
    if rule is not None:
        assert rule in rule_ids(verdict.needs_override)
        finding = next(f for f in verdict.findings if f.rule_id == rule)
        assert finding.source and finding.value is not None and finding.limit is not None and finding.unit


def test_w2_strict_mode_flips_neurostar_to_override() -> None:
    protocol = rtms(10, 40, pct=120, iti_s=26)
    assert check(protocol).status == ALLOW
    verdict = check(protocol, policy=SitePolicy(strict_wassermann=True))
    assert verdict.status == OVERRIDE
    finding = verdict.needs_override[0]
    assert finding.rule_id == "wassermann.train-duration"
    assert finding.limit == pytest.approx(3.15)
    assert "strict" in finding.message


def test_w4_says_beyond_the_longest_tested_duration_and_w13_says_exceeds() -> None:
    w4 = check(rtms(10, 60, pct=110)).needs_override[0]
    w13 = check(rtms(10, 9, pct=150, iti_s=10)).needs_override[0]
    assert "beyond the longest duration tested" in w4.message and "6 s" in w4.message
    assert "exceeds the maximum safe single-train duration" in w13.message
    assert w4.trains == (1, 2)


def test_w18_and_w19_say_outside_the_table() -> None:
    for protocol in (rtms(30, 30, pct=100, iti_s=10), rtms(10, 2, pct=230, iti_s=10)):
        (finding,) = check(protocol).needs_override
        assert "outside the Wassermann table" in finding.message


def test_chen_interval_rule_does_not_apply_at_or_below_100_pct() -> None:
    # two 0.5 s trains 1 s apart: one 2 s run, inside the 20 Hz / 100 % cell of 2.05 s
    assert check(rtms(20, 10, pct=100, iti_s=1)).status == ALLOW
    # two 1.6 s trains 1 s apart are one 4.2 s run: the Wassermann cell stops them, not Chen's rule
    at_100 = check(rtms(20, 32, pct=100, iti_s=1))
    assert rule_ids(at_100.needs_override) == {"wassermann.train-duration"}
    assert check(rtms(20, 32, pct=101, iti_s=4.9)).status == OVERRIDE


# --- 8.2 coil families and MT provenance ----------------------------------------------------


def h1(iti_s: float = 20, family: str = "H1") -> Protocol:
    return rtms(18, 36, pct=120, iti_s=iti_s, trains=55, family=family)


def test_f1_h1_protocol_with_an_h1_threshold_is_allowed() -> None:
    verdict = check(h1(), thresholds=[mt(50, family="H1")])
    assert verdict.status == ALLOW, [f.message for f in verdict.findings]
    assert "envelope.H1" in verdict.checked


def test_f2_threshold_from_a_figure8_coil_is_refused() -> None:
    verdict = check(h1(), thresholds=[mt(50, family="figure8")])
    assert verdict.status == "refused"
    assert rule_ids(verdict.refusals) == {"mt.other-coil"}


def test_f3_the_same_parameters_on_a_figure8_coil_need_an_override() -> None:
    verdict = check(h1(family="figure8"))
    assert verdict.status == OVERRIDE
    assert rule_ids(verdict.needs_override) == {"wassermann.train-duration"}


def test_f4_h1_with_a_10_s_interval_is_outside_its_envelope() -> None:
    verdict = check(h1(iti_s=10), thresholds=[mt(50, family="H1")])
    assert verdict.status == OVERRIDE
    assert rule_ids(verdict.needs_override) == {"envelope.H1"}


@pytest.mark.parametrize("family", ["double_cone", "circular", "other"])
def test_f5_any_rtms_on_a_family_without_a_table_needs_an_override(family: str) -> None:
    verdict = check(rtms(1, 10, pct=90, iti_s=60, family=family))
    assert verdict.status == OVERRIDE
    assert rule_ids(verdict.needs_override) == {"coil.no-table"}


def test_f6_itbs_600_at_80_pct_amt_is_allowed_by_tbs_rules() -> None:
    verdict = check(load_library_protocol("itbs-600"), thresholds=[mt(40, reference="aMT")])
    assert verdict.status == ALLOW
    assert "tbs.structure" in verdict.checked and "wassermann.train-duration" not in verdict.checked


def test_f7_saint_ten_sessions_fifty_minutes_apart_is_within_the_site_caps() -> None:
    verdict = check(load_library_protocol("saint-accelerated-itbs"), thresholds=[mt(60)])
    assert verdict.status == ALLOW, [f.message for f in verdict.findings]
    assert verdict.schedule.pulses_per_day == 18000


def test_f8_an_eleventh_session_or_19800_pulses_a_day_need_an_override() -> None:
    saint = load_library_protocol("saint-accelerated-itbs")
    eleventh = check(saint, sessions_already_today=10)
    assert rule_ids(eleventh.needs_override) == {"site.sessions-per-day"}
    too_many = check(saint, pulses_already_today=18000)
    assert rule_ids(too_many.needs_override) == {"site.day-pulses"}
    assert too_many.needs_override[0].value == 19800
    data = saint.model_dump(mode="json")
    data["accelerated"]["sessions_per_day"] = 11
    data["limits"] = {}
    planned = check(Protocol.model_validate(data))
    assert rule_ids(planned.needs_override) == {"site.sessions-per-day", "site.day-pulses"}
    too_soon = check(saint, minutes_since_last_session_start=30)
    assert rule_ids(too_soon.needs_override) == {"site.session-spacing"}


def test_mt_from_another_stimulator_is_refused() -> None:
    verdict = check(rtms(10, 40), device=RAPID2, thresholds=[mt(55, stimulator="magventure-magpro")])
    assert rule_ids(verdict.refusals) == {"mt.other-stimulator"}


def test_missing_mt_is_refused_when_thresholds_are_given_but_none_fits() -> None:
    verdict = check(rtms(10, 40), device=RAPID2, thresholds=[mt(45, reference="aMT")])
    assert rule_ids(verdict.refusals) == {"mt.missing"}


# --- 8.3 device hard limits (TestRapid2: type 0, 240 V) ---------------------------------------


def mso_rtms(
    power: int, frequency: float, pulses: int, *, iti_s: float | None = None, trains: int = 1
) -> Protocol:
    return rtms(frequency, pulses, pct=power, reference="MSO", iti_s=iti_s, trains=trains)


def device_refusals(verdict) -> set[str]:
    return {rule for rule in rule_ids(verdict.refusals) if rule.startswith("device.")}


def test_d1_20_hz_at_80_pct_is_refused() -> None:
    verdict = check(mso_rtms(80, 20, 20), device=RAPID2)
    assert device_refusals(verdict) == {"device.frequency"}
    finding = verdict.refusals[0]
    assert finding.value == 20 and finding.limit == 18


def test_d2_d3_minimum_wait_after_an_18_hz_train_at_80_pct() -> None:
    short = check(mso_rtms(80, 18, 36, iti_s=3.0, trains=2), device=RAPID2)
    assert device_refusals(short) == {"device.inter-train-wait"}
    assert short.refusals[0].limit == pytest.approx(3.527, abs=5e-4)
    enough = check(mso_rtms(80, 18, 36, iti_s=4.0, trains=2), device=RAPID2)
    assert device_refusals(enough) == set()


def test_d4_30_s_at_100_pct_and_10_hz_exceeds_the_on_time() -> None:
    verdict = check(mso_rtms(100, 10, 300), device=RAPID2)
    assert device_refusals(verdict) == {"device.on-time"}
    assert verdict.refusals[0].limit == pytest.approx(25.0)


def test_d5_70_s_at_60_pct_and_10_hz_runs_continuously() -> None:
    verdict = check(mso_rtms(60, 10, 700), device=RAPID2)
    assert device_refusals(verdict) == set()


def test_d6_6001_pulses_in_one_train_is_refused() -> None:
    verdict = check(mso_rtms(30, 10, 6001), device=RAPID2)
    assert device_refusals(verdict) == {"device.pulses-per-train"}
    assert device_refusals(check(mso_rtms(30, 10, 6000), device=RAPID2)) == set()


def test_d7_d8_resolved_intensity_is_refused_above_the_device_maximum_never_clamped() -> None:
    ok = check(rtms(10, 40), device=RAPID2, thresholds=[mt(55)])
    assert ok.schedule.intensity_pct_mso == 66
    assert ok.status == ALLOW, [f.message for f in ok.findings]
    refused = check(rtms(10, 40), device=RAPID2, thresholds=[mt(85)])
    assert refused.schedule.intensity_pct_mso == 102
    assert device_refusals(refused) == {"device.intensity"}
    without_device = check(rtms(10, 40), thresholds=[mt(85)])
    assert rule_ids(without_device.refusals) == {"intensity.max-output"}


def test_d10_host_triggered_single_pulses_at_2_hz_are_refused() -> None:
    protocol = Protocol.model_validate(
        document(
            intensity={"reference": "MSO", "scaling_pct": 50},
            pattern={"kind": "single_pulse", "pulses": 20, "interval_s": 0.5},
        )
    )
    verdict = check(protocol, device=RAPID2)
    assert device_refusals(verdict) == {"device.single-pulse-rate"}
    slow = Protocol.model_validate(
        document(
            intensity={"reference": "MSO", "scaling_pct": 50},
            pattern={"kind": "single_pulse", "pulses": 20, "interval_s": 5},
        )
    )
    assert check(slow, device=RAPID2).status == ALLOW


def test_theta_burst_on_a_rapid2_is_refused_for_want_of_the_capability() -> None:
    verdict = check(load_library_protocol("itbs-600"), device=RAPID2, thresholds=[mt(30, reference="aMT")])
    refusals = {f.rule_id: f for f in verdict.refusals}
    assert "device.capability" in refusals
    assert "cannot time theta bursts" in refusals["device.capability"].message
    allowed = check(
        load_library_protocol("itbs-600"),
        device=BURST,
        thresholds=[mt(30, reference="aMT", stimulator="test-burst")],
    )
    assert allowed.status == ALLOW, [f.message for f in allowed.findings]


def test_thresholds_pick_the_latest_matching_record() -> None:
    older = mt(70)
    newer = mt(50)
    records = [
        type(older)(older.reference, 70, older.stimulator_model, older.coil, datetime(2024, 1, 1)),
        type(newer)(newer.reference, 50, newer.stimulator_model, newer.coil, datetime(2024, 6, 1)),
    ]
    verdict = check(rtms(10, 40), device=RAPID2, thresholds=records)
    assert verdict.schedule.intensity_pct_mso == 60
    undated = check(rtms(10, 40), device=RAPID2, thresholds=[mt(70), mt(50)])
    assert rule_ids(undated.refusals) == {"mt.ambiguous"}
