"""Technician MEP entries: seen / not seen or an amplitude with its unit; garbage gets a hint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmsctl.clinic.threshold import (
    CRITERIA,
    MAX_PLAUSIBLE_MEP_UV,
    NOT_SEEN,
    SEEN,
    MepResponse,
    MuscleState,
    parse_mep_entry,
)
from tmsctl.core.errors import InvalidArgument


@pytest.mark.parametrize("text", ["y", "Y", "yes", " seen ", "SEEN", "+", "mep"])
def test_seen(text):
    assert parse_mep_entry(text) == SEEN


@pytest.mark.parametrize("text", ["n", "N", "no", "not seen", "Not  Seen", "not-seen", "-", "none", "no mep"])
def test_not_seen(text):
    assert parse_mep_entry(text) == NOT_SEEN


@pytest.mark.parametrize(
    ("text", "amplitude_uv"),
    [
        ("65uV", 65.0),
        ("65 uv", 65.0),
        ("65 µV", 65.0),  # micro sign
        ("65 μV", 65.0),  # Greek mu
        ("0.12 mV", 120.0),
        ("0.05mV", 50.0),
        (".5 mV", 500.0),
        ("1200 microvolts", 1200.0),
        ("2 millivolts", 2000.0),
        ("+40uV", 40.0),
        ("0 uV", 0.0),
    ],
)
def test_amplitudes(text, amplitude_uv):
    assert parse_mep_entry(text) == MepResponse(amplitude_uv=amplitude_uv)


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("", "empty", "65uV"),
        ("   ", "empty", "65uV"),
        ("maybe", "not understood", "y / n"),
        ("65", "has no unit", "65uV or 65 mV"),
        ("0,12 mV", "comma", "decimal point"),
        ("-5uV", "negative", "peak-to-peak"),
        ("−5 uV", "negative", "peak-to-peak"),
        ("65 V", "is not µV or mV", "65uV"),
        ("65 mV", "exceeds the plausible maximum", "1 mV = 1000 µV"),
        ("1e3uV", "is not µV or mV", "65uV"),
        ("nan uV", "not understood", "y / n"),
        ("y65", "not understood", "y / n"),
    ],
)
def test_garbled_entries_raise_with_a_hint(text, message, hint):
    with pytest.raises(InvalidArgument) as excinfo:
        parse_mep_entry(text)
    assert message in excinfo.value.message
    assert hint in excinfo.value.hint


def test_response_classification_against_criteria():
    rest = CRITERIA[MuscleState.REST].amplitude_uv
    active = CRITERIA[MuscleState.ACTIVE].amplitude_uv
    assert (rest, active) == (50.0, 200.0)
    assert MepResponse(amplitude_uv=50.0).meets(rest)  # IFCN: "≥ 50 µV"
    assert not MepResponse(amplitude_uv=49.9).meets(rest)
    assert not MepResponse(amplitude_uv=150.0).meets(active)
    assert SEEN.meets(rest) and SEEN.meets(active)
    assert not NOT_SEEN.meets(rest)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"seen": True, "amplitude_uv": 5.0}, {"seen": 1}, {"amplitude_uv": -1.0},
     {"amplitude_uv": float("nan")}, {"amplitude_uv": MAX_PLAUSIBLE_MEP_UV * 2}, {"amplitude_uv": "65"}],
)
def test_invalid_responses_are_refused(kwargs):
    with pytest.raises(InvalidArgument):
        MepResponse(**kwargs)


@given(st.text(max_size=20))
def test_any_text_parses_or_raises_invalid_argument(text):
    try:
        response = parse_mep_entry(text)
    except InvalidArgument as exc:
        assert exc.hint
        return
    assert isinstance(response, MepResponse)


@given(st.decimals(min_value=0, max_value=50_000, places=3, allow_nan=False, allow_infinity=False))
def test_amplitude_round_trip(amplitude):
    assert parse_mep_entry(format(amplitude, "f") + " uV").amplitude_uv == float(amplitude)
    in_millivolts = parse_mep_entry(format(amplitude / 1000, "f") + " mV")
    assert in_millivolts.amplitude_uv == pytest.approx(float(amplitude), rel=1e-12, abs=1e-9)
