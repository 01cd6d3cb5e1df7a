"""Outcome scales: structure, scoring, response and remission against hand-worked examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmsctl.records import scales as oc
from tmsctl.records.scales import (
    SCALES,
    ScoreOutOfRange,
    UnknownScale,
    assess,
    check_total,
    scale,
    score_items,
)

# (scale, items, ranges): the item structure as each source prints it.
STRUCTURE = {
    "phq9": (9, 0, 27), "bdi2": (21, 0, 63), "hamd17": (17, 0, 52), "madrs": (10, 0, 60),
    "gad7": (7, 0, 21), "ybocs": (10, 0, 40), "bsl23": (23, 0, 4), "zanbpd": (9, 0, 36),
}


@pytest.mark.parametrize("scale_id", sorted(STRUCTURE))
def test_item_structure_and_range(scale_id: str) -> None:
    s = SCALES[scale_id]
    n, low, high = STRUCTURE[scale_id]
    assert (len(s.items), s.low, s.high) == (n, low, high)
    assert s.source and s.confidence in "VSRD" and s.response.source
    # the bands cover the whole range, in order, without gaps of a whole point
    assert s.bands[0].low == s.low and s.bands[-1].high == s.high


def test_hamd17_has_nine_items_to_4_and_eight_to_2() -> None:
    highs = [i.high for i in oc.HAMD17.items]
    assert highs.count(4) == 9 and highs.count(2) == 8
    assert [i.number for i in oc.HAMD17.items if i.high == 2] == [4, 5, 6, 12, 13, 14, 16, 17]


# -- hand-worked examples -----------------------------------------------------------------------

def test_phq9_worked_example() -> None:
    # 2+2+1+1+1+2+1+0+0 = 10: the bottom of the 'moderate' band (10-14), Kroenke 2001
    items = [2, 2, 1, 1, 1, 2, 1, 0, 0]
    assert score_items(oc.PHQ9, items) == 10
    assert oc.PHQ9.severity(10) == "moderate" and oc.PHQ9.severity(9) == "mild"
    assert oc.flags(oc.PHQ9, items) == ()
    assert oc.flags(oc.PHQ9, [0] * 8 + [1])  # item 9 above 0 always raises the flag
    # baseline 14 -> 7 is exactly 50 %: a response; 7 is not below 5: no remission
    a = assess(oc.PHQ9, 14, 7)
    assert (a.reduction_pct, a.response, a.remission) == (50.0, True, False)
    a = assess(oc.PHQ9, 14, 8)  # 42.9 %
    assert (a.response, a.remission) == (False, False)
    a = assess(oc.PHQ9, 20, 4)  # 80 % and in the minimal band
    assert (a.reduction_pct, a.response, a.remission) == (80.0, True, True)
    assert "50 %" in a.response_rule and "below 5" in a.remission_rule


def test_bdi2_worked_example() -> None:
    items = [1] * 21  # 21: moderate (20-28)
    assert score_items(oc.BDI2, items) == 21 and oc.BDI2.severity(21) == "moderate"
    assert oc.BDI2.severity(13) == "minimal" and oc.BDI2.severity(14) == "mild" and oc.BDI2.severity(29) == "severe"
    a = assess(oc.BDI2, 30, 12)
    assert (a.reduction_pct, a.response, a.remission) == (60.0, True, True)
    assert assess(oc.BDI2, 30, 13).remission is False


def test_hamd17_worked_example() -> None:
    items = [3, 2, 1, 2, 1, 1, 3, 1, 1, 2, 2, 1, 1, 1, 1, 0, 0]  # 23: very severe (>= 23)
    assert score_items(oc.HAMD17, items) == 23
    with pytest.raises(ScoreOutOfRange, match=r"item 4 .*0-2, got 3"):
        score_items(oc.HAMD17, [0, 0, 0, 3] + [0] * 13)  # insomnia items stop at 2
    assert assess(oc.HAMD17, 24, 7).remission is True and assess(oc.HAMD17, 24, 8).remission is False
    assert assess(oc.HAMD17, 24, 12).response is True and assess(oc.HAMD17, 24, 13).response is False


def test_madrs_worked_example_saint() -> None:
    # SAINT-like: baseline 36, week-4 16 -> 55.6 %: response; 16 > 10: no remission; 10: remission
    a = assess(oc.MADRS, 36, 16)
    assert (a.reduction_pct, a.response, a.remission) == (55.6, True, False)
    assert assess(oc.MADRS, 36, 10).remission is True and assess(oc.MADRS, 36, 11).remission is False
    assert score_items(oc.MADRS, [6] * 10) == 60


def test_gad7_worked_example() -> None:
    assert score_items(oc.GAD7, [3, 2, 2, 1, 1, 1, 0]) == 10 and oc.GAD7.severity(10) == "moderate"
    assert oc.GAD7.response.confidence == "D"  # not from the source, and it says so


def test_ybocs_uses_35_percent_not_50() -> None:
    # 28 -> 18 is 35.7 %: a response under the OCD consensus, though not under the 50 % default
    a = assess(oc.YBOCS, 28, 18)
    assert a.response is True and a.reduction_pct == 35.7
    assert assess(oc.YBOCS, 28, 19).response is False  # 32.1 %
    assert assess(oc.YBOCS, 28, 12).remission is True and assess(oc.YBOCS, 28, 13).remission is False
    assert score_items(oc.YBOCS, [4, 3, 3, 2, 2, 3, 3, 2, 2, 2]) == 26 and oc.YBOCS.severity(26) == "severe"


def test_bsl23_is_a_mean_score_with_no_remission_rule() -> None:
    items = [2] * 12 + [1] * 11  # 35 / 23 = 1.5217… -> 1.52
    assert score_items(oc.BSL23, items) == 1.52
    assert oc.BSL23.severity(1.52) == "moderate"
    check_total(oc.BSL23, 2.35)
    with pytest.raises(ScoreOutOfRange, match="score_grain"):
        check_total(oc.BSL23, 2.355)
    a = assess(oc.BSL23, 2.4, 1.2)
    assert (a.response, a.remission) == (True, None) and "not computed" in a.remission_rule


def test_zanbpd_worked_example() -> None:
    assert score_items(oc.ZANBPD, [2, 3, 2, 1, 1, 0, 2, 3, 2]) == 16
    assert assess(oc.ZANBPD, 16, 8).response is True and assess(oc.ZANBPD, 16, 9).response is False
    assert oc.flags(oc.ZANBPD, [0, 0, 0, 0, 0, 1, 0, 0, 0])


# -- refusals -----------------------------------------------------------------------------------

def test_unknown_scale_names_the_rule_and_the_known_scales() -> None:
    with pytest.raises(UnknownScale, match=r"outcome\.unknown_scale.*phq9") as caught:
        scale("phq10")
    assert caught.value.hint


@pytest.mark.parametrize("name", ["PHQ-9", "phq9", "Phq_9", "HAM-D17", "y-bocs", "BSL-23", "zan-bpd"])
def test_scale_names_are_forgiving(name: str) -> None:
    assert scale(name).id in SCALES


@pytest.mark.parametrize("scale_id,score", [("phq9", 28), ("phq9", -1), ("madrs", 61), ("bsl23", 4.01),
                                            ("hamd17", 53), ("phq9", 14.5), ("phq9", float("nan"))])
def test_scores_outside_the_range_are_refused(scale_id: str, score: float) -> None:
    with pytest.raises(ScoreOutOfRange, match=r"outcome\.score_(range|grain)"):
        check_total(SCALES[scale_id], score)


def test_wrong_item_count_is_refused() -> None:
    with pytest.raises(ScoreOutOfRange, match="item_count: phq9 has 9 items, 8"):
        score_items(oc.PHQ9, [0] * 8)


# -- properties ---------------------------------------------------------------------------------

@st.composite
def scale_and_items(draw: st.DrawFn) -> tuple[oc.Scale, list[int]]:
    s = draw(st.sampled_from(sorted(SCALES.values(), key=lambda x: x.id)))
    return s, [draw(st.integers(i.low, i.high)) for i in s.items]


@given(scale_and_items())
def test_any_valid_answer_sheet_scores_inside_the_range(case: tuple[oc.Scale, list[int]]) -> None:
    s, items = case
    score = score_items(s, items)
    assert s.low <= score <= s.high
    assert check_total(s, score) == score  # an item-scored total is always a valid total
    assert s.severity(score)


@given(scale_and_items(), st.integers(0, 30), st.integers(-3, 7))
def test_one_item_out_of_range_is_always_refused(case: tuple[oc.Scale, list[int]], position: int, excess: int) -> None:
    s, items = case
    i = position % len(items)
    item = s.items[i]
    items[i] = item.high + 1 + excess if excess >= 0 else item.low + excess
    with pytest.raises(ScoreOutOfRange, match="item_range"):
        score_items(s, items)


@given(st.sampled_from(sorted(SCALES)), st.data())
def test_response_is_monotone_in_the_score(scale_id: str, data: st.DataObject) -> None:
    s = SCALES[scale_id]
    grain = 10 ** -s.decimals
    steps = round((s.high - s.low) / grain)
    baseline = round(s.low + data.draw(st.integers(1, steps)) * grain, s.decimals)
    lower = round(s.low + data.draw(st.integers(0, steps)) * grain, s.decimals)
    higher = round(min(s.high, lower + data.draw(st.integers(0, steps)) * grain), s.decimals)
    a, b = assess(s, baseline, lower), assess(s, baseline, higher)
    assert not (b.response and not a.response)  # a lower score never loses a response a higher one has
    if s.remission is not None:
        assert not (b.remission and not a.remission)
