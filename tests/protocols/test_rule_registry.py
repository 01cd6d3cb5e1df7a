"""The rules are registered functions: the checker applies every one, each can report, each is documented.

``@rule(id, severity, scope=...)`` registers a rule; ``registered_rules()`` lists them. A rule id
in the registry that no case below makes report, a documented rule without a registered function,
or a registered rule the README's rule table does not list fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from protocols_helpers import RAPID2, TestRapid2, document, mt, rtms

from tmsctl.drivers.magstim.spec import load_spec
from tmsctl.drivers.magventure.spec import load_spec as load_magpro_spec
from tmsctl.protocols import Protocol, Verdict, check, rulebook
from tmsctl.protocols.findings import Issue, Severity
from tmsctl.protocols.rulebook import _REGISTRY, FAMILY, RulebookError, Scope, registered_rules, rule
from tmsctl.protocols.thresholds import MotorThreshold

README = Path(__file__).resolve().parents[2] / "protocols" / "README.md"
BISTIM = load_spec("magstim-bistim")
MAGPRO = load_magpro_spec("magventure-magpro-x100-option")
NOW = datetime(2025, 3, 1, 9, 0)


@dataclass(frozen=True)
class SpecWithoutAnswers(TestRapid2):
    """A spec that cannot say how fast it may fire (its table stops short)."""

    __test__ = False

    def max_frequency_hz(self, intensity_pct_mso: float) -> float:
        raise ValueError("no row for this output")


def _pattern(**pattern: Any) -> Protocol:
    return Protocol.model_validate(document(pattern=pattern))


def _theta_burst(*, burst_frequency_hz: float = 50, trains: int = 20, pct: float = 80) -> Protocol:
    pattern = {
        "kind": "theta_burst",
        "burst_frequency_hz": burst_frequency_hz,
        "burst_rate_hz": 5,
        "bursts_per_train": 10,
        "train_onset_interval_s": 10,
        "trains": trains,
    }
    return Protocol.model_validate(document(intensity={"reference": "rMT", "scaling_pct": pct}, pattern=pattern))


def _paired(isi_ms: float) -> Protocol:
    pattern = {
        "kind": "paired_pulse",
        "conditioning_intensity": {"reference": "rMT", "scaling_pct": 80},
        "inter_stimulus_interval_ms": isi_ms,
        "pairs": 4,
        "pair_interval_s": 5,
    }
    return Protocol.model_validate(document(pattern=pattern))


def _with_stimulus(protocol: Protocol, waveform: str) -> Protocol:
    data = protocol.model_dump(mode="json", exclude_none=True)
    data["stimulus"] = {"waveform": waveform, "current_direction": "normal"}
    return Protocol.model_validate(data)


def _bursts_of_four() -> Protocol:
    """Bursts that are not theta burst: 4 pulses at 50 Hz, 5 bursts a second."""
    return _pattern(
        kind="layers",
        layers=[
            {"count": 4, "interval_ms": 20, "builds": "burst"},
            {"count": 10, "interval_ms": 200, "builds": "train"},
            {"count": 5, "interval_s": 10, "builds": "session"},
        ],
    )


def _old_threshold() -> MotorThreshold:
    return MotorThreshold("rMT", 55, RAPID2.model, mt().coil, measured_at=NOW - timedelta(days=30))


# Every finding id the registry declares → a check that makes it report.
CASES: dict[str, Callable[[], Verdict]] = {
    "intensity.max-output": lambda: check(rtms(10, 40, pct=105, reference="MSO")),
    "device.intensity": lambda: check(rtms(10, 40), device=RAPID2, thresholds=[mt(85)]),
    "device.spec-unanswered": lambda: check(
        rtms(10, 40), device=SpecWithoutAnswers(), thresholds=[mt(55, stimulator=RAPID2.model)]
    ),
    "device.frequency": lambda: check(rtms(20, 40, pct=80, reference="MSO"), device=RAPID2),
    "device.frequency-step": lambda: check(rtms(10.05, 40, pct=40, reference="MSO"), device=RAPID2),
    "device.pulses-per-train": lambda: check(rtms(10, 6001, pct=30, reference="MSO"), device=RAPID2),
    "device.train-duration": lambda: check(rtms(1, 1000, pct=30, reference="MSO"), device=RAPID2),
    "device.on-time": lambda: check(rtms(10, 300, pct=100, reference="MSO"), device=RAPID2),
    "device.inter-train-wait": lambda: check(rtms(18, 36, pct=80, reference="MSO", iti_s=1), device=RAPID2),
    "device.single-pulse-rate": lambda: check(
        _pattern(kind="single_pulse", pulses=20, interval_s=0.5), device=RAPID2, thresholds=[mt()]
    ),
    "device.paired-isi": lambda: check(_paired(2.55), device=BISTIM, thresholds=[mt(50, stimulator=BISTIM.model)]),
    "device.stimulus": lambda: check(
        _with_stimulus(_paired(3), "biphasic_burst"), device=MAGPRO, thresholds=[mt(50, stimulator=MAGPRO.model)]
    ),
    "device.stimulus-unset": lambda: check(
        _with_stimulus(_paired(3), "monophasic"), device=BISTIM, thresholds=[mt(50, stimulator=BISTIM.model)]
    ),
    "timing.external-trigger": lambda: check(
        rtms(1, 40, timed_by="external_trigger", trigger="external"), device=RAPID2, thresholds=[mt()]
    ),
    "timing.rts-burst": lambda: check(rtms(20, 40, timed_by="external_trigger", trigger="rts"), device=RAPID2),
    "device.model": lambda: check(
        rtms(10, 40, requires={"models": ["magventure-magpro"]}), device=RAPID2, thresholds=[mt()]
    ),
    "device.capability": lambda: check(_theta_burst(), device=RAPID2, thresholds=[mt()]),
    "wassermann.train-duration": lambda: check(rtms(10, 60, pct=110)),
    "wassermann.outside-table": lambda: check(rtms(30, 10, pct=100)),
    "wassermann.amt-as-rmt": lambda: check(rtms(10, 40, reference="aMT")),
    "wassermann.lookup": lambda: check(rtms(10, 40)),
    "rules.need-mt": lambda: check(rtms(10, 40, pct=60, reference="MSO")),
    "chen.inter-train-interval": lambda: check(rtms(20, 32, pct=110, iti_s=1)),
    "tbs.intensity": lambda: check(_theta_burst(pct=130)),
    "tbs.structure": lambda: check(_theta_burst(burst_frequency_hz=30)),
    "tbs.session-pulses": lambda: check(_theta_burst(trains=61)),
    "patterned.no-table": lambda: check(_bursts_of_four()),
    "envelope.H1": lambda: check(rtms(18, 36, iti_s=10, family="H1")),
    "envelope.H4": lambda: check(rtms(10, 30, iti_s=10, family="H4")),
    "envelope.H7": lambda: check(rtms(20, 40, iti_s=10, family="H7")),
    "coil.no-table": lambda: check(rtms(10, 40, family="circular")),
    "single-pulse.repetitive": lambda: check(_pattern(kind="single_pulse", pulses=20, interval_s=0.5)),
    "site.session-pulses": lambda: check(rtms(10, 40, trains=80)),
    "site.day-pulses": lambda: check(rtms(10, 40, trains=75), pulses_already_today=16000),
    "site.sessions-per-day": lambda: check(rtms(10, 40), sessions_already_today=10),
    "site.session-spacing": lambda: check(rtms(10, 40), minutes_since_last_session_start=10),
    "mt.stale": lambda: check(rtms(10, 40), device=RAPID2, thresholds=[_old_threshold()], as_of=NOW),
    "context.device": lambda: check(rtms(10, 40)),
    "context.intensity": lambda: check(rtms(10, 40), device=RAPID2),
}


def _envelope_families() -> list[str]:
    return sorted(name for name, family in rulebook().families.families.items() if family.table == "envelope")


def _declared() -> dict[str, tuple[Severity, bool]]:
    """Every finding id the registry declares → (its severity, whether its rule is listed as checked)."""
    declared: dict[str, tuple[Severity, bool]] = {}
    for entry in registered_rules():
        for rule_id, severity in entry.reports.items():
            listed = entry.listed and rule_id == entry.id
            for concrete in [rule_id.replace(FAMILY, name) for name in _envelope_families()] if FAMILY in rule_id else [
                rule_id
            ]:
                declared[concrete] = (severity, listed or declared.get(concrete, (severity, False))[1])
    return declared


def test_the_cases_cover_every_registered_rule() -> None:
    assert sorted(CASES) == sorted(_declared())


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_every_registered_rule_reports_and_is_recorded_as_checked(rule_id: str) -> None:
    verdict = CASES[rule_id]()
    severity, listed = _declared()[rule_id]
    reported = [finding for finding in verdict.findings if finding.rule_id == rule_id]
    assert reported, [(finding.rule_id, finding.message) for finding in verdict.findings]
    assert (rule_id in verdict.checked) is listed
    if rule_id not in ("rules.need-mt", "context.device", "context.intensity"):  # their severity depends on the call
        assert {finding.severity for finding in reported} == {severity}


def test_rules_are_applied_in_registration_order_within_a_scope() -> None:
    scopes = [entry.scope for entry in registered_rules()]
    assert set(scopes) == set(Scope)
    assert registered_rules(Scope.SESSION)[-1].id == "context.intensity"


# --- the registry's contract ----------------------------------------------------------------


@pytest.fixture
def extra_rule() -> Iterator[list[str]]:
    """Registers a session rule for one test; it reports whatever ids the test puts in the list."""
    reports: list[str] = []

    @rule("test.extra", Severity.WARN, scope=Scope.SESSION, also={"test.extra-note": Severity.INFO})
    def extra(evaluation: Any) -> list[Issue] | None:
        if evaluation.schedule.total_pulses != 80:
            return None
        return [Issue(rule_id, Severity.WARN, f"{rule_id} said so", "this test") for rule_id in reports]

    try:
        yield reports
    finally:
        del _REGISTRY[("test.extra", Scope.SESSION)]


def test_a_registered_rule_is_applied_and_recorded(extra_rule: list[str]) -> None:
    extra_rule.append("test.extra")
    applies, passes = check(rtms(10, 40)), check(rtms(10, 40, trains=3))
    assert "test.extra" in applies.checked and [f.rule_id for f in applies.needs_override] == ["test.extra"]
    assert "test.extra" not in passes.checked  # returned None: the rule does not apply to 120 pulses


def test_a_rule_that_reports_an_undeclared_id_stops_the_check(extra_rule: list[str]) -> None:
    extra_rule.extend(["test.extra-note", "site.day-pulses"])
    with pytest.raises(RulebookError, match=r"test\.extra reported site\.day-pulses, which it does not declare"):
        check(rtms(10, 40))


def test_a_rule_id_is_registered_once_per_scope() -> None:
    with pytest.raises(RulebookError, match="registered twice"):
        rule("device.intensity", Severity.REFUSE, scope=Scope.TRAIN)(lambda case: None)


# --- the documentation ----------------------------------------------------------------------

# Findings of the expansion (tmsctl.protocols.expand), not of a rule: a threshold that does not fit.
EXPANSION_ROWS = {"mt.*"}


def _documented() -> dict[str, str]:
    """rule id → severity, from the rule table of protocols/README.md."""
    section = README.read_text(encoding="utf-8").split("## The rulebook", 1)[1]
    table = section.split("| rule id |", 1)[1].split("\n\n", 1)[0]
    documented: dict[str, str] = {}
    for line in table.splitlines()[2:]:  # after the header's end and its |---| line
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for rule_id in re.findall(r"`([^`]+)`", cells[0]):
            documented[rule_id] = cells[1].split()[0]
    return documented


def test_every_documented_rule_has_a_registered_function_and_every_rule_is_documented() -> None:
    documented = {rule_id: severity for rule_id, severity in _documented().items() if rule_id not in EXPANSION_ROWS}
    declared = _declared()
    assert sorted(documented) == sorted(declared)
    assert {rule_id: str(severity) for rule_id, (severity, _) in declared.items()} == documented


def test_every_envelope_family_of_the_rulebook_data_has_its_rule() -> None:
    families = _envelope_families()
    assert families == ["H1", "H4", "H7"]
    assert {f"envelope.{name}" for name in families} <= set(_declared())
