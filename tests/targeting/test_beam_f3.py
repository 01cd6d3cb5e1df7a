"""Beam F3 (web-calculator variant) against the vectors in shared/reference/targeting.md §2."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmsctl.clinic.targeting import (
    HeadMeasurements,
    Side,
    beam_f3,
    beam_f3_geometry,
)

# TT, NI, HC, θ (°), r, X, Y — reference table, tolerance ±0.005.
BEAM_VECTORS = [
    (36, 38, 60, -48.2704, 10.7595, 6.9549, 9.7911),
    (35, 35, 56, -48.4105, 10.1501, 6.4695, 9.2366),
    (34, 36, 57, -48.2624, 10.1790, 6.6085, 9.2629),
    (38, 40, 60, -48.2776, 11.3400, 6.9537, 10.3194),
    (32, 33, 54, -48.3308, 9.4418, 6.2504, 8.5920),
]


def head(tt: float, ni: float, hc: float) -> HeadMeasurements:
    return HeadMeasurements(nasion_inion_cm=ni, tragus_tragus_cm=tt, circumference_cm=hc)


@pytest.mark.parametrize(("tt", "ni", "hc", "theta", "r", "x_cm", "y_cm"), BEAM_VECTORS)
def test_beam_f3_reference_vectors(tt, ni, hc, theta, r, x_cm, y_cm):
    result = beam_f3(head(tt, ni, hc))
    assert result.value_cm("circumference_from_midline_cm") == pytest.approx(x_cm, abs=0.005)
    assert result.value_cm("vertex_to_target_cm") == pytest.approx(y_cm, abs=0.005)
    geometry = beam_f3_geometry(head(tt, ni, hc))
    assert geometry.theta_deg == pytest.approx(theta, abs=0.005)
    assert geometry.r_cm == pytest.approx(r, abs=0.005)


def test_beam_f3_intermediates_for_36_38_60():
    geometry = beam_f3_geometry(head(36, 38, 60))
    assert geometry.a == pytest.approx(-0.060007, abs=5e-7)
    r1 = 0.4 * 38
    b = r1 * math.sin(math.radians(298)) / geometry.d
    assert b == pytest.approx(209.594, abs=5e-4)
    assert geometry.x == pytest.approx(7.1617, abs=5e-5)
    assert geometry.y == pytest.approx(-8.0298, abs=5e-5)


def test_beam_f3_reproduces_the_published_demonstration():
    # TT 36, NI 38, HC 60: X = 6.95 cm, vertex at 38/2 = 19 cm from the nasion.
    result = beam_f3(head(36, 38, 60))
    assert round(result.value_cm("circumference_from_midline_cm"), 2) == 6.95
    assert result.value_cm("nasion_to_vertex_cm") == 19.0
    assert result.value_cm("tragus_to_vertex_cm") == 18.0


def test_beam_f3_is_finite_at_the_pole_of_the_printed_form():
    # D = R1·cos 298° − R2/2 vanishes at TT = 2·NI·cos 298° (NI 38 → TT 35.6798).
    result = beam_f3(head(35.6798, 38, 60))
    assert result.value_cm("circumference_from_midline_cm") == pytest.approx(6.9588, abs=0.005)
    assert result.value_cm("vertex_to_target_cm") == pytest.approx(9.7516, abs=0.005)
    assert abs(beam_f3_geometry(head(35.6798, 38, 60)).d) < 1e-3


def test_f4_is_the_mirror_image_of_f3():
    f3 = beam_f3(head(36, 38, 60), Side.LEFT)
    f4 = beam_f3(head(36, 38, 60), "right")
    assert f4.side is Side.RIGHT and f4.target.startswith("F4")
    assert f3.target.startswith("F3")
    assert [m.value_cm for m in f3.marks] == [m.value_cm for m in f4.marks]
    assert "going right" in f4.marks[2].instruction
    assert "going left" in f3.marks[2].instruction


def test_result_names_method_and_source_and_marks_in_marking_order():
    result = beam_f3(head(36, 38, 60))
    assert result.method == "beam_f3"
    assert "PMID 20539835" in result.source
    assert "Beam_F3.m" in result.source
    assert [m.key for m in result.marks] == [
        "nasion_to_vertex_cm",
        "tragus_to_vertex_cm",
        "circumference_from_midline_cm",
        "vertex_to_target_cm",
    ]
    assert dict(result.inputs) == {
        "nasion_inion_cm": 38.0,
        "tragus_tragus_cm": 36.0,
        "circumference_cm": 60.0,
    }
    with pytest.raises(KeyError, match="no mark"):
        result.value_cm("anterior_from_hot_spot_cm")


def _printed_step4_x(ni: float, tt: float) -> float:
    """Step 4 exactly as the calculator writes it (with the pole through b)."""
    r1, r2 = 0.4 * ni, 0.4 * tt
    a = (r2 * math.sin(math.radians(324)) + r1 / 2) / r2
    d = r1 * math.cos(math.radians(298)) - r2 / 2
    b = r1 * math.sin(math.radians(298)) / d
    return (r1 - r2 * b) / (2 * (a - b))


# Inside every plausibility bound: NI 33–41, TT 0.85–1.05 × NI, NI/HC 0.63–0.68 (HC 48.5–65.1).
plausible_heads = st.builds(
    lambda ni, ratio_tt, ratio_hc: (ni, ni * ratio_tt, ni / ratio_hc),
    st.floats(33.0, 41.0),
    st.floats(0.85, 1.05),
    st.floats(0.63, 0.68),
)


@given(plausible_heads)
def test_pole_free_form_equals_the_printed_step4_away_from_the_pole(values):
    ni, tt, hc = values
    geometry = beam_f3_geometry(head(tt, ni, hc))
    d = 0.4 * ni * math.cos(math.radians(298)) - 0.4 * tt / 2
    if abs(d) > 1e-3:
        assert geometry.x == pytest.approx(_printed_step4_x(ni, tt), rel=1e-6, abs=1e-6)


@given(plausible_heads)
def test_beam_f3_is_geometrically_sensible_for_plausible_heads(values):
    ni, tt, hc = values
    result = beam_f3(head(tt, ni, hc))
    x_cm = result.value_cm("circumference_from_midline_cm")
    y_cm = result.value_cm("vertex_to_target_cm")
    # Mark A lies between the front midline and T3 (a quarter of the circumference).
    assert 0 < x_cm < hc / 4
    # F3 lies between the vertex and mark A: closer than the vertex-to-circumference arc (0.4·NI).
    assert 0 < y_cm < 0.4 * max(ni, tt)
    assert -90 < beam_f3_geometry(head(tt, ni, hc)).theta_deg < 0
    # X scales with the circumference alone; Y does not depend on it.
    bigger = beam_f3(head(tt, ni, hc * 1.01))
    assert bigger.value_cm("circumference_from_midline_cm") == pytest.approx(x_cm * 1.01, rel=1e-9)
    assert bigger.value_cm("vertex_to_target_cm") == pytest.approx(y_cm, rel=1e-12)
