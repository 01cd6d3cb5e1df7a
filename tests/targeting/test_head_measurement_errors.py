"""Implausible head measurements are refused, naming the measurement, the value and the range."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmsctl.clinic.targeting import (
    PLAUSIBLE_ADULT_HEAD_CM,
    HeadMeasurements,
    beam_f3,
)
from tmsctl.core.errors import InvalidArgument

GOOD = {"nasion_inion_cm": 38.0, "tragus_tragus_cm": 36.0, "circumference_cm": 60.0}
LABELS = {r.field: r.label for r in PLAUSIBLE_ADULT_HEAD_CM}


def measurements(**changes: object) -> HeadMeasurements:
    return HeadMeasurements(**{**GOOD, **changes})  # type: ignore[arg-type]


def test_plausible_ranges_are_reviewed_data_with_a_basis():
    assert {r.field for r in PLAUSIBLE_ADULT_HEAD_CM} == set(GOOD)
    for plausible in PLAUSIBLE_ADULT_HEAD_CM:
        assert plausible.low_cm < GOOD[plausible.field] < plausible.high_cm
        assert plausible.basis and plausible.status


def test_fields_are_keyword_only_so_values_cannot_land_in_the_wrong_box():
    with pytest.raises(TypeError):
        HeadMeasurements(38.0, 36.0, 60.0)  # type: ignore[misc]


@pytest.mark.parametrize("field", sorted(GOOD))
def test_missing_measurement_is_named(field):
    with pytest.raises(InvalidArgument) as excinfo:
        measurements(**{field: None})
    assert str(excinfo.value).startswith(f"{LABELS[field]} is missing")
    assert excinfo.value.hint


@pytest.mark.parametrize("field", sorted(GOOD))
@pytest.mark.parametrize("value", [-36.0, 0.0, 0])
def test_negative_or_zero_measurement_is_refused(field, value):
    with pytest.raises(InvalidArgument, match="^" + re.escape(LABELS[field]) + " must be positive"):
        measurements(**{field: value})


@pytest.mark.parametrize("field", sorted(GOOD))
@pytest.mark.parametrize("value", [math.nan, math.inf, "38", True])
def test_non_numbers_are_refused(field, value):
    with pytest.raises(InvalidArgument, match=re.escape(LABELS[field])):
        measurements(**{field: value})


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("nasion_inion_cm", 25.0, "28–46 cm"),
        ("nasion_inion_cm", 47.5, "28–46 cm"),
        ("tragus_tragus_cm", 20.0, "26–44 cm"),
        ("circumference_cm", 45.0, "46–66 cm"),
        ("circumference_cm", 70.0, "46–66 cm"),
    ],
)
def test_out_of_range_error_names_measurement_value_and_range(field, value, accepted):
    with pytest.raises(InvalidArgument) as excinfo:
        measurements(**{field: value})
    message = excinfo.value.message
    assert LABELS[field] in message
    assert f"{value:g} cm" in message
    assert accepted in message


def test_millimetres_are_recognised_in_the_hint():
    with pytest.raises(InvalidArgument) as excinfo:
        measurements(nasion_inion_cm=380)
    assert "380 mm = 38 cm" in excinfo.value.hint


def test_circumference_swapped_with_an_arc_is_named_in_the_hint():
    with pytest.raises(InvalidArgument) as excinfo:
        measurements(nasion_inion_cm=60.0, circumference_cm=38.0)
    assert "swap" in excinfo.value.hint
    assert "head circumference" in excinfo.value.hint


def test_arc_out_of_proportion_to_the_circumference_is_refused():
    # Each value alone is plausible, together they are not (NI 0.92 × HC).
    with pytest.raises(InvalidArgument, match=r"0\.92 × the head circumference 48 cm; accepted 0\.5–0\.8"):
        measurements(nasion_inion_cm=44.0, tragus_tragus_cm=40.0, circumference_cm=48.0)


def test_arcs_far_apart_are_refused():
    with pytest.raises(InvalidArgument, match=r"tragus–tragus 31 cm is 0\.70 × nasion–inion 44 cm"):
        measurements(nasion_inion_cm=44.0, tragus_tragus_cm=31.0, circumference_cm=60.0)


def test_values_are_stored_as_floats():
    m = measurements(nasion_inion_cm=38)
    assert isinstance(m.nasion_inion_cm, float)


anything = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-1000, 1000),
    st.text(max_size=5),
    st.booleans(),
)


@given(ni=anything, tt=anything, hc=anything)
def test_any_input_gives_a_target_or_invalid_argument(ni, tt, hc):
    try:
        head = HeadMeasurements(nasion_inion_cm=ni, tragus_tragus_cm=tt, circumference_cm=hc)
    except InvalidArgument as exc:
        assert exc.message
        return
    result = beam_f3(head)
    assert all(math.isfinite(m.value_cm) and m.value_cm > 0 for m in result.marks)
