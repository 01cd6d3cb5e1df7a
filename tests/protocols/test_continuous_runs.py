"""Trains that follow each other closer than Chen's minimum interval count as one train.

Issue 15, finding 6a: 300 s of continuous 10 Hz at 100 % rMT needs an override when written as one
train, but was allowed when written as 75 trains of 4 s with no pause between them. The exposure
rules (train duration at a frequency and intensity) must see through that form.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from hypothesis import example, given, note
from hypothesis import strategies as st
from protocols_helpers import document, mt, rtms, rule_ids
from typer.testing import CliRunner

from tmsctl.cli.protocol import EXIT_REFUSED, app
from tmsctl.protocols import Protocol, check, expand, rulebook

CHEN_MIN_GAP_S = rulebook().chen.min_inter_train_interval_s

SPLIT_10HZ = """\
schema_version: 1
id: split-10hz
title: 300 s of 10 Hz written as 75 back-to-back trains
coil: {family: figure8}
target: {method: beam_f3, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern:
  kind: rtms
  frequency_hz: 10
  pulses_per_train: 40
  inter_train_interval_s: 0
  trains: 75
"""


def test_the_reported_split_needs_the_same_override_as_one_train(tmp_path: Path) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT_10HZ, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == EXIT_REFUSED, result.output
    assert "needs a recorded override" in result.output
    assert "wassermann.train-duration" in result.output
    assert "trains 1–75" in result.output and "300 s" in result.output


def test_a_run_counts_as_one_train_and_the_same_override_lifts_it() -> None:
    one = check(rtms(10, 3000, pct=100, trains=1), thresholds=[mt()])
    split = check(rtms(10, 40, pct=100, trains=75, iti_s=0), thresholds=[mt()])
    assert one.status == split.status == "needs_override"
    (finding,) = [f for f in split.findings if f.rule_id == "wassermann.train-duration"]
    assert finding.value == 300 and finding.trains == tuple(range(1, 76))
    assert "one continuous train" in finding.message and finding.hint
    lifted = check(
        rtms(10, 40, pct=100, trains=75, iti_s=0),
        thresholds=[mt()],
        overrides={"wassermann.train-duration": "approved study protocol"},
    )
    assert lifted.status == "allowed"


def test_gaps_of_the_chen_minimum_or_more_keep_trains_apart() -> None:
    apart = check(rtms(10, 40, pct=100, trains=75, iti_s=CHEN_MIN_GAP_S), thresholds=[mt()])
    assert apart.status == "allowed", [f.message for f in apart.findings]
    close = check(rtms(10, 40, pct=100, trains=75, iti_s=CHEN_MIN_GAP_S - 0.5), thresholds=[mt()])
    assert "wassermann.train-duration" in rule_ids(close.findings, "warn")


def test_runs_are_found_on_the_expanded_schedule() -> None:
    pattern = {
        "kind": "layers",
        "layers": [
            {"count": 20, "frequency_hz": 10, "builds": "train"},
            {"count": 3, "interval_s": 3, "builds": "block"},  # 1 s gaps inside a block
            {"count": 2, "interval_s": 30, "builds": "session"},  # 23 s between blocks
        ],
    }
    schedule = expand(Protocol.model_validate(document(pattern=pattern)))
    runs = schedule.continuous_runs(CHEN_MIN_GAP_S)
    assert [[train.number for train in run] for run in runs] == [[1, 2, 3], [4, 5, 6]]


def test_an_h_coil_run_is_held_to_the_envelope_train_duration() -> None:
    verdict = check(rtms(18, 36, pct=100, trains=10, iti_s=0, family="H1"), thresholds=[mt(family="H1")])
    messages = [f.message for f in verdict.findings if f.rule_id == "envelope.H1"]
    assert any("20 s train" in message for message in messages), messages


# --- the property: splitting never turns a stopped protocol into an allowed one ----------------

# Rates whose pulse interval is a short decimal, so the split layers' intervals are exact.
RATES = (1, 2, 2.5, 4, 5, 8, 10, 12.5, 16, 20, 25, 40, 50)


def _decimal(value: Fraction) -> float:
    return float(value)  # every value here is a short decimal, which a float's repr keeps exactly


def _whole(frequency: float, pulses: int, trains: int, iti: float, pct: float, family: str) -> dict[str, Any]:
    pattern: dict[str, Any] = {
        "kind": "rtms", "frequency_hz": frequency, "pulses_per_train": pulses, "trains": trains,
    }
    if trains > 1:
        pattern["inter_train_interval_s"] = iti
    return document(
        coil={"family": family}, intensity={"reference": "rMT", "scaling_pct": pct}, pattern=pattern
    )


def _split(
    frequency: float, pieces: int, piece_pulses: int, gap: float, trains: int, iti: float, pct: float, family: str
) -> dict[str, Any]:
    """The same trains, each cut into ``pieces`` back-to-back pieces ``gap`` seconds apart."""
    piece_s = Fraction(piece_pulses) / Fraction(str(frequency))
    piece_cycle = piece_s + Fraction(str(gap))
    layers: list[dict[str, Any]] = [
        {"count": piece_pulses, "frequency_hz": frequency, "builds": "train"},
        {"count": pieces, "interval_s": _decimal(piece_cycle), "builds": "block"},
    ]
    if trains > 1:
        # next block starts iti after the end of the last piece, as the whole train's next one does
        block_cycle = (pieces - 1) * piece_cycle + piece_s + Fraction(str(iti))
        layers.append({"count": trains, "interval_s": _decimal(block_cycle), "builds": "session"})
    return document(
        coil={"family": family},
        intensity={"reference": "rMT", "scaling_pct": pct},
        pattern={"kind": "layers", "layers": layers},
    )


@given(
    frequency=st.sampled_from(RATES),
    pieces=st.integers(2, 40),
    piece_pulses=st.integers(2, 60),
    gap=st.sampled_from([0, 0.1, 0.5, 1, 2.5, 4.9]),
    trains=st.integers(1, 4),
    iti=st.sampled_from([5, 8, 10, 20, 26]),
    pct=st.integers(16, 46).map(lambda fives: fives * 5),
    family=st.sampled_from(["figure8", "H1", "H4", "H7", "circular"]),
)
@example(frequency=10, pieces=75, piece_pulses=40, gap=0, trains=1, iti=5, pct=100, family="figure8")
@example(frequency=20, pieces=10, piece_pulses=4, gap=1, trains=1, iti=5, pct=100, family="H1")
def test_splitting_a_train_never_turns_a_stop_into_allowed(
    frequency, pieces, piece_pulses, gap, trains, iti, pct, family
) -> None:
    thresholds = [mt(40, family=family)]
    whole = Protocol.model_validate(_whole(frequency, pieces * piece_pulses, trains, iti, pct, family))
    split = Protocol.model_validate(_split(frequency, pieces, piece_pulses, gap, trains, iti, pct, family))
    assert expand(split).total_pulses == expand(whole).total_pulses
    whole_verdict = check(whole, thresholds=thresholds)
    split_verdict = check(split, thresholds=thresholds)
    note(f"whole {whole_verdict.status}: {sorted(rule_ids(whole_verdict.findings, 'warn'))}")
    note(f"split {split_verdict.status}: {sorted(rule_ids(split_verdict.findings, 'warn'))}")
    if whole_verdict.status != "allowed":
        assert split_verdict.status != "allowed"
