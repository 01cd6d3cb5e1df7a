"""Linear shortcuts, Mir-Moghtadaei 2022, fixed-distance rules and the MNI table (targeting.md §1, §2, §4)."""

from __future__ import annotations

import pytest

from tmsctl.clinic.targeting import (
    MNI_TARGETS,
    DlpfcRegion,
    HeadMeasurements,
    Side,
    beam_f3,
    beam_f3_linear,
    fixed_distance_rule,
    mir_moghtadaei_2022,
    mni_targets,
)
from tmsctl.core.errors import InvalidArgument


def head(tt: float, ni: float, hc: float) -> HeadMeasurements:
    return HeadMeasurements(nasion_inion_cm=ni, tragus_tragus_cm=tt, circumference_cm=hc)


# TT, NI, HC, linear X = 0.1154·HC, linear Y = 0.2637·(TT+NI)/2 (reference table, 3 decimals).
LINEAR_VECTORS = [
    (36, 38, 60, 6.924, 9.757),
    (35, 35, 56, 6.462, 9.229),
    (34, 36, 57, 6.578, 9.229),
    (38, 40, 60, 6.924, 10.284),
    (32, 33, 54, 6.232, 8.570),
]


@pytest.mark.parametrize(("tt", "ni", "hc", "x_cm", "y_cm"), LINEAR_VECTORS)
def test_linear_shortcut_vectors_and_closeness_to_the_exact_formula(tt, ni, hc, x_cm, y_cm):
    linear = beam_f3_linear(head(tt, ni, hc))
    exact = beam_f3(head(tt, ni, hc))
    for key, expected in (("circumference_from_midline_cm", x_cm), ("vertex_to_target_cm", y_cm)):
        assert linear.value_cm(key) == pytest.approx(expected, abs=0.001)  # table shows 3 decimals
        assert linear.value_cm(key) == pytest.approx(exact.value_cm(key), abs=0.05)


def test_linear_shortcut_app_unit_test_vector_with_the_035_adjustment():
    # The app's unit test: 36/38/60 → X 6.92, Y 9.76, Y_adj 10.11.
    plain = beam_f3_linear(head(36, 38, 60))
    adjusted = beam_f3_linear(head(36, 38, 60), mri_adjusted=True)
    assert round(plain.value_cm("circumference_from_midline_cm"), 2) == 6.92
    assert round(plain.value_cm("vertex_to_target_cm"), 2) == 9.76
    assert round(adjusted.value_cm("vertex_to_target_cm"), 2) == 10.11
    assert adjusted.method == "beam_f3_linear_adjusted"
    assert "Mir-Moghtadaei" in adjusted.source and "Mir-Moghtadaei" not in plain.source
    assert plain.status == "S/U"


# side, region, X, Y for 36/38/60 (reference table, 3 decimals).
MIR_MOGHTADAEI_2022_VECTORS = [
    ("left", "anterior", 8.154, 11.718),
    ("right", "anterior", 8.112, 10.671),
    ("left", "posterior", 11.082, 9.176),
    ("right", "posterior", 11.808, 8.569),
]


@pytest.mark.parametrize(("side", "region", "x_cm", "y_cm"), MIR_MOGHTADAEI_2022_VECTORS)
def test_mir_moghtadaei_2022_vectors(side, region, x_cm, y_cm):
    result = mir_moghtadaei_2022(head(36, 38, 60), side, region)
    assert result.value_cm("circumference_from_midline_cm") == pytest.approx(x_cm, abs=0.001)
    assert result.value_cm("vertex_to_target_cm") == pytest.approx(y_cm, abs=0.001)
    assert result.side is Side(side)
    assert f"going {side}" in result.marks[2].instruction
    assert result.method == f"mir_moghtadaei_2022_{side}_{region}"
    assert "Updated scalp heuristics" in result.source


def test_mir_moghtadaei_2022_refuses_unknown_regions_and_sides():
    with pytest.raises(InvalidArgument, match="anterior' or 'posterior"):
        mir_moghtadaei_2022(head(36, 38, 60), Side.LEFT, "medial")
    with pytest.raises(InvalidArgument, match="'left' or 'right'"):
        mir_moghtadaei_2022(head(36, 38, 60), "centre", DlpfcRegion.ANTERIOR)


@pytest.mark.parametrize(("distance_cm", "expected_y"), [(5, 5.0), (5.5, 5.5), (6, 6.0), (6.0, 6.0)])
def test_fixed_distance_rules_from_a_hot_spot_at_the_origin(distance_cm, expected_y):
    result = fixed_distance_rule(distance_cm)
    assert (result.value_cm("target_x_cm"), result.value_cm("target_y_cm")) == (0.0, expected_y)
    assert result.value_cm("anterior_from_hot_spot_cm") == expected_y
    assert result.source and result.status


def test_fixed_distance_rule_moves_with_the_hot_spot_and_names_the_hemisphere():
    result = fixed_distance_rule(5.5, "right", hot_spot_xy_cm=(4.0, -1.0))
    assert (result.value_cm("target_x_cm"), result.value_cm("target_y_cm")) == (4.0, 4.5)
    assert "right-hemisphere" in result.marks[0].instruction
    assert "left-hand" in result.marks[0].instruction
    assert "K251125" in result.source


@pytest.mark.parametrize("distance_cm", [4.9, 5.25, 7, 0, -5])
def test_fixed_distance_rule_refuses_distances_without_a_published_rule(distance_cm):
    with pytest.raises(InvalidArgument) as excinfo:
        fixed_distance_rule(distance_cm)
    assert "5, 5.5, 6" in str(excinfo.value) or "positive" in str(excinfo.value)


def test_fixed_distance_rule_refuses_non_numbers():
    with pytest.raises(InvalidArgument):
        fixed_distance_rule("5")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        fixed_distance_rule(5, hot_spot_xy_cm=(float("nan"), 0.0))


def test_mni_table_matches_the_reference():
    by_name = {t.name: t for t in MNI_TARGETS}
    expected = {
        "average 5 cm-rule site": ((-41, 16, 54), True),
        "average Beam F3 site": ((-37, 26, 49), True),
        "BA9 centre": ((-36, 39, 43), True),
        "BA46 centre": ((-44, 40, 29), True),
        "subgenual ACC seed": ((6, 16, -10), True),
        "DLPFC target of Mir-Moghtadaei 2015 and THREE-D neuronavigation": ((-38, 44, 26), True),
        "Fox 2012 connectivity-optimised BA46 peak": ((-44, 38, 34), False),
        "Weigand et al. 2018 group target": ((-42, 44, 30), False),
        "Fitzgerald 2009 MRI target": ((-46, 45, 38), False),
        "Herbsman 2009 responder site": ((-46, 23, 49), False),
    }
    assert {name: (t.mni_mm, t.verified) for name, t in by_name.items()} == expected
    assert all(t.source and t.status for t in MNI_TARGETS)
    assert all(t.status == "unverified" for t in MNI_TARGETS if not t.verified)


def test_unverified_mni_coordinates_are_only_listed_on_request():
    default = mni_targets()
    everything = mni_targets(include_unverified=True)
    assert len(default) == 6 and all(t.verified for t in default)
    assert everything == MNI_TARGETS
