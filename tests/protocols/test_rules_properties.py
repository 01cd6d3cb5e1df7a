"""Property tests: a schedule the rulebook allows obeys every rule it was checked against.

The limits are re-derived here independently (the Wassermann cells copied from safety.md §1, the
Rapid² numbers from the test device), then compared with what ``check`` decided.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise
from typing import Any

from hypothesis import assume, given, note
from hypothesis import strategies as st
from protocols_helpers import BURST, RAPID2, document, mt
from pydantic import ValidationError

from tmsctl.protocols import Protocol, check, expand
from tmsctl.protocols.thresholds import round_half_up

ROWS = (1, 5, 10, 20, 25)
COLUMNS = (100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200, 210, 220)
CELLS = {  # safety.md §1; ">N" entries written as N (the tested bound)
    1: (1800, 1800, 360, 50, 50, 50, 50, 27, 11, 11, 8, 7, 6),
    5: (10, 10, 10, 10, 7.6, 5.2, 3.6, 2.6, 2.4, 1.6, 1.4, 1.6, 1.2),
    10: (5, 5, 4.2, 2.9, 1.3, 0.8, 0.9, 0.8, 0.5, 0.6, 0.4, 0.3, 0.3),
    20: (2.05, 1.6, 1.0, 0.55, 0.35, 0.25, 0.25, 0.15, 0.2, 0.25, 0.2, 0.1, 0.1),
    25: (1.28, 0.84, 0.4, 0.24, 0.2, 0.24, 0.2, 0.12, 0.08, 0.12, 0.12, 0.08, 0.08),
}
EPS = 1e-9


def wassermann_limit(frequency_hz: float, pct: float) -> float | None:
    row = next((r for r in ROWS if frequency_hz <= r + EPS), None)
    column = next((i for i, c in enumerate(COLUMNS) if pct <= c + EPS), None)
    return None if row is None or column is None else CELLS[row][column]


def independent_violations(
    frequency: float, pulses: int, trains: int, iti: float, pct: float, threshold: int
) -> list[str]:
    """Every rule of the figure-8 + Rapid² rulebook, recomputed from the parameters alone."""
    problems = []
    duration = pulses / frequency
    mso = round_half_up(Fraction(threshold) * Fraction(str(pct)) / 100)
    limit = wassermann_limit(frequency, pct)
    if limit is None or duration > limit + EPS:
        problems.append("wassermann")
    if trains > 1 and pct > 100 and iti < 5 - EPS:
        problems.append("chen")
    run_s = trains * duration + (trains - 1) * iti  # trains under 5 s apart are one continuous train
    if trains > 1 and iti < 5 - EPS and (limit is None or run_s > limit + EPS):
        problems.append("wassermann (one run)")
    if pulses * trains > 3000:
        problems.append("site cap")
    if mso > 100:
        problems.append("intensity")
        return problems
    if duration > RAPID2.max_train_duration_s + EPS or pulses > RAPID2.max_pulses_per_train:
        problems.append("train timer")
    if frequency > RAPID2.max_frequency_hz(mso) + EPS:
        problems.append("frequency")
    if duration > RAPID2.max_train_on_time_s(mso, frequency) + EPS:
        problems.append("on-time")
    if trains > 1 and iti < RAPID2.min_inter_train_interval_s(mso, frequency, pulses) - EPS:
        problems.append("wait")
    return problems


def rtms_protocol(
    frequency: float, pulses: int, trains: int, iti: float, pct: float, family: str = "figure8"
) -> Protocol:
    pattern: dict[str, Any] = {
        "kind": "rtms",
        "frequency_hz": frequency,
        "pulses_per_train": pulses,
        "trains": trains,
    }
    if trains > 1:
        pattern["inter_train_interval_s"] = iti
    return Protocol.model_validate(
        document(coil={"family": family}, intensity={"reference": "rMT", "scaling_pct": pct}, pattern=pattern)
    )


def assert_schedule_shape(schedule) -> None:
    onsets = [train.onset_s for train in schedule.trains]
    assert all(a < b for a, b in pairwise(onsets)), "onsets strictly increase"
    for train in schedule.trains:
        offsets = train.pulse_offsets_s
        assert offsets[0] == 0 and all(a < b for a, b in pairwise(offsets))
        assert len(offsets) == train.n_pulses
        gap = schedule.gap_after_s(train)
        assert gap is None or gap >= -EPS, "trains never overlap"
    assert sum(train.n_pulses for train in schedule.trains) == schedule.total_pulses


FREQUENCIES = st.one_of(st.integers(1, 30).map(float), st.integers(1, 300).map(lambda tenths: tenths / 10))


@given(
    frequency=FREQUENCIES,
    pulses=st.integers(2, 400),
    trains=st.integers(1, 40),
    iti=st.integers(0, 80).map(lambda halves: halves / 2),
    pct=st.integers(16, 46).map(lambda fives: fives * 5),
    threshold=st.integers(25, 85),
)
def test_an_allowed_rtms_schedule_obeys_every_rule_and_only_violations_are_stopped(
    frequency, pulses, trains, iti, pct, threshold
) -> None:
    try:
        protocol = rtms_protocol(frequency, pulses, trains, iti, pct)
    except ValidationError:
        assume(False)
        return
    verdict = check(protocol, device=RAPID2, thresholds=[mt(threshold)])
    problems = independent_violations(frequency, pulses, trains, iti, pct, threshold)
    note(
        f"{verdict.status}: {[f.message for f in verdict.findings if f.severity != 'info']}; expected {problems}"
    )
    assert_schedule_shape(verdict.schedule)
    assert verdict.complete
    if verdict.allowed:
        assert problems == []
        for train in verdict.schedule.trains:
            assert train.duration_s <= wassermann_limit(frequency, pct) + EPS
            assert train.intensity_pct_mso <= RAPID2.max_intensity_pct_mso
    else:
        assert problems, "the rulebook stopped a protocol no rule forbids"


@given(
    frequency=st.integers(1, 25).map(float),
    pulses=st.integers(2, 60),
    trains=st.integers(2, 70),
    iti=st.integers(0, 60).map(float),
    pct=st.integers(18, 26).map(lambda fives: fives * 5),
)
def test_an_allowed_h1_schedule_stays_inside_the_cleared_envelope(
    frequency, pulses, trains, iti, pct
) -> None:
    try:
        protocol = rtms_protocol(frequency, pulses, trains, iti, pct, family="H1")
    except ValidationError:
        assume(False)
        return
    verdict = check(protocol, thresholds=[mt(40, family="H1")])
    inside = frequency <= 18 and pulses / frequency <= 2 + EPS and iti >= 20 and trains <= 55 and pct <= 120
    inside = inside and pulses * trains <= 1980
    assert verdict.allowed == inside, [f.message for f in verdict.findings]


@given(
    pulses_per_burst=st.integers(2, 5),
    burst_frequency=st.sampled_from([30.0, 50.0, 100.0]),
    burst_rate=st.sampled_from([4.0, 5.0, 6.0]),
    bursts=st.integers(1, 250),
    trains=st.integers(1, 70),
    onset_interval=st.sampled_from([8.0, 10.0, 12.0]),
    pct=st.integers(14, 26).map(lambda fives: fives * 5),
)
def test_an_allowed_theta_burst_schedule_is_standard_tbs(
    pulses_per_burst, burst_frequency, burst_rate, bursts, trains, onset_interval, pct
) -> None:
    pattern: dict[str, Any] = {
        "kind": "theta_burst",
        "pulses_per_burst": pulses_per_burst,
        "burst_frequency_hz": burst_frequency,
        "burst_rate_hz": burst_rate,
        "bursts_per_train": bursts,
        "trains": trains,
    }
    if trains > 1:
        pattern["train_onset_interval_s"] = onset_interval
    try:
        protocol = Protocol.model_validate(
            document(intensity={"reference": "rMT", "scaling_pct": pct}, pattern=pattern)
        )
    except ValidationError:
        assume(False)
        return
    verdict = check(protocol, device=BURST, thresholds=[mt(40, stimulator=BURST.model)])
    assert_schedule_shape(verdict.schedule)
    standard_bursts = pulses_per_burst == 3 and burst_frequency == 50 and burst_rate == 5 and bursts > 1
    train_s = bursts / burst_rate
    shape_ok = (trains == 1 and train_s <= 40) or (trains > 1 and bursts == 10 and onset_interval == 10)
    expected = standard_bursts and shape_ok and pulses_per_burst * bursts * trains <= 1800 and pct <= 120
    assert verdict.allowed == expected, [f.message for f in verdict.findings]


LAYER = st.fixed_dictionaries(
    {"count": st.integers(1, 12), "interval_ms": st.integers(1, 40_000)},
)


@given(layers=st.lists(LAYER, min_size=1, max_size=4), train_at=st.integers(0, 3))
def test_any_valid_layered_protocol_expands_to_a_well_formed_schedule(layers, train_at) -> None:
    builds = ["burst"] * len(layers)
    train_at = min(train_at, len(layers) - 1)
    builds[train_at] = "train"
    for index in range(train_at + 1, len(layers)):
        builds[index] = "block"
    pattern = {
        "kind": "layers",
        "layers": [{**layer, "builds": b} for layer, b in zip(layers, builds, strict=True)],
    }
    try:
        protocol = Protocol.model_validate(
            document(intensity={"reference": "MSO", "scaling_pct": 30}, pattern=pattern)
        )
    except ValidationError:
        assume(False)
        return
    schedule = expand(protocol)
    assert_schedule_shape(schedule)
    expected_total = 1
    for layer in layers:
        expected_total *= layer["count"]
    assert schedule.total_pulses == expected_total
    last = schedule.trains[-1]
    assert abs(last.onset_s + last.pulse_offsets_s[-1] - schedule.last_pulse_onset_s) < 1e-6
    verdict = check(protocol, device=BURST)
    assert verdict.status in ("allowed", "needs_override", "refused")
