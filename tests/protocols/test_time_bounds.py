"""Every time and frequency field has one hard physical bound, whatever unit the author chose.

Issue 15, finding 6b: a 1 MHz pulse rate written as ``interval_ms: 0.001`` loaded and became an
overridable "outside the Wassermann table" warning, while ``frequency_hz: 1000000`` was a load
error; ``interval_s: 1e-300`` likewise. A value beyond the bound is now a load error in every
spelling, naming the field, the file and line, and the bound.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from protocols_helpers import document
from ruamel.yaml import YAML

from tmsctl.core.errors import ProtocolFileError
from tmsctl.protocols import load_protocol_text
from tmsctl.protocols.models import MAX_FREQUENCY_HZ, MAX_SESSION_DURATION_S

FASTEST_INTERVAL_S = 1 / MAX_FREQUENCY_HZ


@dataclass(frozen=True)
class Spelling:
    path: tuple[str | int, ...]
    unit: str
    low: float
    high: float
    low_inclusive: bool
    bound_words: tuple[str, str]
    """How the message names the low and the high bound."""
    pattern: dict[str, Any]
    top: dict[str, Any] | None = None

    @property
    def field(self) -> str:
        return ".".join(str(part) for part in self.path)


RTMS = {"kind": "rtms", "frequency_hz": 10, "pulses_per_train": 40, "inter_train_interval_s": 26, "trains": 3}
RTMS_ONSET = {"kind": "rtms", "frequency_hz": 10, "pulses_per_train": 40, "train_onset_interval_s": 30, "trains": 3}
RTMS_DURATION = {"kind": "rtms", "frequency_hz": 10, "train_duration_s": 4, "inter_train_interval_s": 26, "trains": 3}
TBS = {"kind": "theta_burst", "burst_frequency_hz": 50, "burst_rate_hz": 5, "bursts_per_train": 10, "train_onset_interval_s": 10, "trains": 20}
SINGLE = {"kind": "single_pulse", "pulses": 10, "interval_s": 5}
PAIRED = {
    "kind": "paired_pulse",
    "conditioning_intensity": {"reference": "rMT", "scaling_pct": 80},
    "inter_stimulus_interval_ms": 3,
    "pairs": 10,
    "pair_interval_s": 5,
}


def layers(inner: dict[str, Any], outer: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "layers",
        "layers": [
            {"count": 40, **inner, "builds": "train"},
            {"count": 3, **(outer or {"interval_s": 30}), "builds": "session"},
        ],
    }


S, MS = (FASTEST_INTERVAL_S, MAX_SESSION_DURATION_S), (FASTEST_INTERVAL_S * 1000, MAX_SESSION_DURATION_S * 1000)
HZ = (1 / MAX_SESSION_DURATION_S, MAX_FREQUENCY_HZ)
SPELLINGS = [
    Spelling(("pattern", "frequency_hz"), "Hz", *HZ, True, ("", "250 Hz"), RTMS),
    Spelling(("pattern", "burst_frequency_hz"), "Hz", *HZ, True, ("", "250 Hz"), TBS),
    Spelling(("pattern", "burst_rate_hz"), "Hz", *HZ, True, ("", "250 Hz"), TBS),
    Spelling(("pattern", "layers", 0, "frequency_hz"), "Hz", *HZ, True, ("", "250 Hz"), layers({"frequency_hz": 10})),
    Spelling(("pattern", "layers", 0, "interval_ms"), "ms", *MS, True, ("4 ms", "43,200,000 ms"),
             layers({"interval_ms": 100})),
    Spelling(("pattern", "layers", 0, "interval_s"), "s", *S, True, ("0.004 s", "43,200 s"),
             layers({"interval_s": 0.1})),
    Spelling(("pattern", "layers", 1, "interval_ms"), "ms", *MS, True, ("4 ms", "43,200,000 ms"),
             layers({"frequency_hz": 10}, {"interval_ms": 30_000})),
    Spelling(("pattern", "layers", 1, "interval_s"), "s", *S, True, ("0.004 s", "43,200 s"),
             layers({"frequency_hz": 10}, {"interval_s": 30})),
    Spelling(("pattern", "layers", 1, "frequency_hz"), "Hz", *HZ, True, ("", "250 Hz"),
             layers({"frequency_hz": 10}, {"frequency_hz": 0.05})),
    Spelling(("pattern", "interval_s"), "s", *S, True, ("0.004 s", "43,200 s"), SINGLE),
    Spelling(("pattern", "pair_interval_s"), "s", *S, True, ("0.004 s", "43,200 s"), PAIRED),
    Spelling(("pattern", "inter_stimulus_interval_ms"), "ms", 0.1, 1000, True, ("0.1 ms", "1,000 ms"), PAIRED),
    Spelling(("pattern", "train_duration_s"), "s", *S, True, ("0.004 s", "43,200 s"), RTMS_DURATION),
    Spelling(("pattern", "inter_train_interval_s"), "s", 0, MAX_SESSION_DURATION_S, True, ("0 s", "43,200 s"), RTMS),
    Spelling(("pattern", "train_onset_interval_s"), "s", *S, True, ("0.004 s", "43,200 s"), RTMS_ONSET),
    Spelling(("limits", "max_session_duration_s"), "s", *S, True, ("0.004 s", "43,200 s"), RTMS,
             {"limits": {"max_session_duration_s": 3600}}),
]


def _set(data: Any, path: tuple[str | int, ...], value: float) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _text(spelling: Spelling, value: float) -> str:
    data = document(pattern=spelling.pattern, **(spelling.top or {}))
    _set(data, spelling.path, value)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


@pytest.mark.parametrize("spelling", SPELLINGS, ids=lambda s: s.field)
def test_every_spelling_loads_inside_its_bounds(spelling: Spelling) -> None:
    load_protocol_text(_text(spelling, _get(spelling)))


def _get(spelling: Spelling) -> float:
    data: Any = document(pattern=spelling.pattern, **(spelling.top or {}))
    for part in spelling.path:
        data = data[part]
    return data


BEYOND = st.one_of(
    st.tuples(st.just("low"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("high"), st.floats(1, 1e300, exclude_min=True)),
    st.tuples(st.just("negative"), st.floats(-1e300, 0, exclude_max=True)),
)


@given(spelling=st.sampled_from(SPELLINGS), beyond=BEYOND)
def test_a_value_beyond_the_bound_is_a_located_load_error_in_every_spelling(spelling, beyond) -> None:
    side, factor = beyond
    if side == "high":
        value = spelling.high * factor
    elif side == "low":
        value = spelling.low * factor
    else:
        value = factor
    if spelling.low <= value <= spelling.high:  # 0 × an inclusive 0 bound, or float rounding
        return
    text = _text(spelling, value)
    with pytest.raises(ProtocolFileError) as caught:
        load_protocol_text(text, path="bounds.yaml")
    problems = getattr(caught.value, "problems", None) or (caught.value,)
    ours = [p for p in problems if p.field == spelling.field]
    assert ours, [(p.field, p.message) for p in problems]
    problem = ours[0]
    key = str(spelling.path[-1])
    lines_with_key = [
        n for n, line in enumerate(text.splitlines(), 1) if line.strip().removeprefix("- ").startswith(key + ":")
    ]
    earlier_layers = spelling.path[2] if spelling.path[1] == "layers" else 0
    same_key_before = sum(key in layer for layer in spelling.pattern.get("layers", [])[:earlier_layers])
    expected_line = lines_with_key[same_key_before]
    assert problem.path == "bounds.yaml" and problem.line == expected_line
    words = spelling.bound_words[1 if value > spelling.high else 0]
    if words:
        assert words in problem.message, problem.message
    assert "cannot be overridden" in problem.hint, problem.hint


def test_the_reported_megahertz_interval_is_a_load_error() -> None:
    text = _text(SPELLINGS[4], 0.001)  # layers.0.interval_ms: 0.001 → 1 MHz
    with pytest.raises(ProtocolFileError) as caught:
        load_protocol_text(text, path="mhz.yaml")
    message = str(caught.value)
    assert "pattern.layers.0.interval_ms" in message and "mhz.yaml" in message
    assert "4 ms" in caught.value.message and "1,000,000 Hz" in caught.value.message
