"""Guideline limits of the coil family's tables (warn: a session runs only with a recorded reason).

Which rules apply depends on the coil family (``protocols/rules/coil_families.yaml``): the
Wassermann table was built with figure-8 coils and cannot judge H-coil protocols. The exposure rules
judge each train shape and again each continuous run of trains (``Scope.EXPOSURE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tmsctl.protocols.findings import Issue, Severity
from tmsctl.protocols.models import is_standard_theta_burst
from tmsctl.protocols.rule_context import REPETITIVE, Evaluation, TrainCase, below, exceeds, rate_text
from tmsctl.protocols.rule_context import number as _n
from tmsctl.protocols.rulebook import FAMILY, Scope, rule

NEED_MT: Mapping[str, Severity] = MappingProxyType({"rules.need-mt": Severity.WARN})
"""Reported (info in a plan) by a rule in % MT where the intensity is known only in %MSO."""


def _repetitive_on(case: TrainCase, table: str, kind: str | None = None) -> bool:
    """The train is repetitive, the coil family uses ``table`` and (if given) the train is ``kind``."""
    train = case.train
    return (
        train.kind in REPETITIVE
        and case.evaluation.family.table == table
        and (kind is None or train.kind == kind)
    )


# --- figure-8 coils: Wassermann 1998, Chen 1997, theta burst --------------------------------


@rule(
    "wassermann.train-duration",
    Severity.WARN,
    scope=Scope.EXPOSURE,
    also={
        "wassermann.outside-table": Severity.WARN,
        "wassermann.amt-as-rmt": Severity.INFO,
        "wassermann.lookup": Severity.INFO,
        **NEED_MT,
    },
)
def wassermann(case: TrainCase) -> list[Issue] | None:
    if not _repetitive_on(case, "wassermann", "train"):
        return None
    evaluation, train = case.evaluation, case.train
    book, table, policy = evaluation.book, evaluation.book.wassermann, evaluation.policy
    pct = evaluation.pct_mt(train, "the Wassermann look-up")
    if pct is None:
        return None
    assert train.frequency_hz is not None
    reference = evaluation.schedule.mt_reference or "rMT"
    frequency = train.frequency_hz
    where = f"{_n(frequency)} Hz at {_n(pct)} % {reference}"
    cell = book.wassermann_lookup(frequency, pct)
    if cell is None:
        return [
            Issue(
                "wassermann.outside-table",
                Severity.WARN,
                f"{where} is outside the Wassermann table (1–25 Hz, 100–220 % MT): no tested safe train duration",
                table.source,
                value=frequency if exceeds(frequency, 25) else pct,
                limit=25 if exceeds(frequency, 25) else 220,
                unit="Hz" if exceeds(frequency, 25) else "% MT",
                status=table.status,
                hint="record the reason (e.g. the approved study protocol) to run it",
            )
        ]
    issues: list[Issue] = []
    limit = cell.limit_s * (table.strict_mode_factor if policy.strict_wassermann else 1.0)
    strict = f" × {table.strict_mode_factor:g} (site strict mode)" if policy.strict_wassermann else ""
    if reference == "aMT":
        issues.append(
            Issue(
                "wassermann.amt-as-rmt",
                Severity.INFO,
                f"the Wassermann table is in % rMT; {_n(pct)} % aMT was looked up as % rMT, which is stricter",
                table.source,
                status="D",
            )
        )
    if exceeds(train.duration_s, limit):
        beyond = (
            "is beyond the longest duration tested without adverse effects"
            if cell.open_ended and not policy.strict_wassermann
            else "exceeds the maximum safe single-train duration"
        )
        issues.append(
            Issue(
                "wassermann.train-duration",
                Severity.WARN,
                f"{_n(train.duration_s)} s of {where} {beyond}: {_n(limit)} s (Wassermann cell "
                f"{cell.describe()}{strict})",
                table.source if not strict else f"{table.source}; {table.strict_mode_source}",
                value=train.duration_s,
                limit=limit,
                unit="s",
                status=table.status,
                hint="shorten the trains or lower the intensity, or record the reason for exceeding it",
            )
        )
    else:
        issues.append(
            Issue(
                "wassermann.lookup",
                Severity.INFO,
                f"{_n(train.duration_s)} s of {where} is within the Wassermann cell {cell.describe()}{strict}",
                table.source,
                value=train.duration_s,
                limit=limit,
                unit="s",
                status=table.status,
            )
        )
    return issues


@rule("chen.inter-train-interval", Severity.WARN, scope=Scope.EXPOSURE, also=NEED_MT)
def chen(case: TrainCase) -> list[Issue] | None:
    if not _repetitive_on(case, "wassermann", "train") or case.gap is None:
        return None
    evaluation, train, gap = case.evaluation, case.train, case.gap
    rules = evaluation.book.chen
    if not below(gap, rules.min_inter_train_interval_s):
        return []
    pct = evaluation.pct_mt(train, "the inter-train interval rule")
    if pct is None or not exceeds(pct, rules.applies_above_pct_mt):
        return []
    reference = evaluation.schedule.mt_reference or "MT"
    return [
        Issue(
            "chen.inter-train-interval",
            Severity.WARN,
            f"{_n(gap)} s between trains at {_n(pct)} % {reference} is shorter than the "
            f"{_n(rules.min_inter_train_interval_s)} s needed above {_n(rules.applies_above_pct_mt)} % MT",
            rules.source,
            value=gap,
            limit=rules.min_inter_train_interval_s,
            unit="s",
            status=rules.status,
            hint="lengthen the inter-train interval, or record the reason",
        )
    ]


@rule("tbs.intensity", Severity.WARN, scope=Scope.EXPOSURE, also=NEED_MT)
def theta_burst_intensity(case: TrainCase) -> list[Issue] | None:
    if not _repetitive_on(case, "wassermann", "theta_burst"):
        return None
    evaluation, tbs = case.evaluation, case.evaluation.book.theta_burst
    pct = evaluation.pct_mt(case.train, "the theta-burst intensity limit")
    if pct is None:
        return []
    reference = evaluation.schedule.mt_reference or "rMT"
    limit = tbs.max_intensity_pct_mt[reference]
    if not exceeds(pct, limit):
        return []
    return [
        Issue(
            "tbs.intensity",
            Severity.WARN,
            f"theta burst at {_n(pct)} % {reference} is above the {_n(limit)} % {reference} of standard protocols",
            tbs.source,
            value=pct,
            limit=limit,
            unit=f"% {reference}",
            status=tbs.status,
            hint="record the reason to run it",
        )
    ]


@rule("patterned.no-table", Severity.WARN, scope=Scope.EXPOSURE)
def patterned_no_table(case: TrainCase) -> list[Issue] | None:
    if not _repetitive_on(case, "wassermann") or case.train.kind in ("train", "theta_burst"):
        return None
    return [
        Issue(
            "patterned.no-table",
            Severity.WARN,
            "patterned bursts other than standard theta burst have no safety table",
            "safety.md §7: parameters outside the tables need a recorded override",
            status="D",
            hint="record the reason (e.g. the study protocol) to run it",
        )
    ]


@rule("tbs.structure", Severity.WARN, scope=Scope.SESSION)
def theta_burst_structure(evaluation: Evaluation) -> list[Issue] | None:
    if not _theta_burst_session(evaluation):
        return None
    tbs, plan = evaluation.book.theta_burst, evaluation.schedule.plan
    problems: list[str] = []
    if not is_standard_theta_burst(plan.inner):
        problems.append(
            f"bursts are not {tbs.pulses_per_burst} pulses at {tbs.burst_frequency_hz:g} Hz repeated at "
            f"{tbs.burst_rate_hz:g} Hz"
        )
    repeating_outer = [layer for layer in plan.outer if layer.count > 1]
    train_s = float(plan.train_duration_s)
    if not repeating_outer:
        if exceeds(train_s, tbs.ctbs_max_continuous_s):
            problems.append(
                f"continuous theta burst for {_n(train_s)} s (cTBS: at most {tbs.ctbs_max_continuous_s:g} s)"
            )
    elif len(repeating_outer) > 1:
        problems.append("trains are grouped in blocks, unlike iTBS")
    else:
        interval = float(repeating_outer[0].interval_s)
        if (
            abs(train_s - tbs.itbs_train_duration_s) > 1e-9
            or abs(interval - tbs.itbs_train_onset_interval_s) > 1e-9
        ):
            problems.append(
                f"trains of {_n(train_s)} s every {_n(interval)} s (iTBS: {tbs.itbs_train_duration_s:g} s every "
                f"{tbs.itbs_train_onset_interval_s:g} s)"
            )
    return [
        Issue(
            "tbs.structure",
            Severity.WARN,
            f"non-standard theta burst: {problem}",
            tbs.source,
            status=tbs.status,
            hint="record the reason to run a non-standard theta-burst protocol",
        )
        for problem in problems
    ]


@rule("tbs.session-pulses", Severity.WARN, scope=Scope.SESSION)
def theta_burst_session_pulses(evaluation: Evaluation) -> list[Issue] | None:
    if not _theta_burst_session(evaluation):
        return None
    tbs, schedule = evaluation.book.theta_burst, evaluation.schedule
    if schedule.total_pulses <= tbs.max_pulses_per_session:
        return []
    return [
        Issue(
            "tbs.session-pulses",
            Severity.WARN,
            f"{schedule.total_pulses:,} theta-burst pulses per session is above {tbs.max_pulses_per_session:,}",
            tbs.source,
            value=schedule.total_pulses,
            limit=tbs.max_pulses_per_session,
            unit="pulses",
            status=tbs.status,
            hint="record the reason to run it",
        )
    ]


def _theta_burst_session(evaluation: Evaluation) -> bool:
    return evaluation.family.table == "wassermann" and any(
        train.kind == "theta_burst" for train in evaluation.schedule.trains
    )


# --- deep-TMS coils: the envelope of the cleared protocol -----------------------------------


@rule(f"envelope.{FAMILY}", Severity.WARN, scope=Scope.EXPOSURE, also=NEED_MT)
def envelope_train(case: TrainCase) -> list[Issue] | None:
    if not _repetitive_on(case, "envelope"):
        return None
    evaluation, train, gap = case.evaluation, case.train, case.gap
    family = evaluation.family
    name = evaluation.schedule.coil_family
    rule_id = f"envelope.{name}"

    def outside(what: str, value: float, limit: float, unit: str) -> Issue:
        return Issue(
            rule_id,
            Severity.WARN,
            f"{what} is outside the cleared {name} protocol ({_n(limit)} {unit})",
            family.source,
            value=value,
            limit=limit,
            unit=unit,
            status=family.status,
            hint=f"{name} limits are the envelope of its cleared protocol; record the reason to exceed it",
        )

    if train.kind != "train":
        return [
            Issue(
                rule_id,
                Severity.WARN,
                f"{rate_text(train)} is not part of the cleared {name} protocol (conventional trains only)",
                family.source,
                status=family.status,
                hint="record the reason (e.g. the approved study protocol) to run it",
            )
        ]
    assert train.frequency_hz is not None and family.max_frequency_hz is not None
    assert family.max_train_duration_s is not None and family.min_inter_train_interval_s is not None
    issues: list[Issue] = []
    if exceeds(train.frequency_hz, family.max_frequency_hz):
        issues.append(outside(f"{_n(train.frequency_hz)} Hz", train.frequency_hz, family.max_frequency_hz, "Hz"))
    if exceeds(train.duration_s, family.max_train_duration_s):
        issues.append(
            outside(f"a {_n(train.duration_s)} s train", train.duration_s, family.max_train_duration_s, "s max")
        )
    if gap is not None and below(gap, family.min_inter_train_interval_s):
        issues.append(outside(f"{_n(gap)} s between trains", gap, family.min_inter_train_interval_s, "s min"))
    pct = evaluation.pct_mt(train, f"the {name} intensity limit")
    if pct is not None and family.max_intensity_pct_mt is not None and exceeds(pct, family.max_intensity_pct_mt):
        issues.append(outside(f"{_n(pct)} % MT", pct, family.max_intensity_pct_mt, "% MT max"))
    return issues


@rule(f"envelope.{FAMILY}", Severity.WARN, scope=Scope.SESSION)
def envelope_session(evaluation: Evaluation) -> list[Issue] | None:
    schedule, family = evaluation.schedule, evaluation.family
    if family.table != "envelope" or not any(train.kind == "train" for train in schedule.trains):
        return None
    assert family.max_trains is not None and family.max_pulses_per_session is not None
    rule_id = f"envelope.{schedule.coil_family}"

    def total(what: str, value: float, limit: float, unit: str) -> Issue:
        return Issue(
            rule_id,
            Severity.WARN,
            f"{what} per session is outside the cleared {schedule.coil_family} protocol ({_n(limit)} {unit} max)",
            family.source,
            value=value,
            limit=limit,
            unit=unit,
            status=family.status,
            hint="record the reason to exceed the cleared protocol",
        )

    issues: list[Issue] = []
    if len(schedule.trains) > family.max_trains:
        issues.append(total(f"{len(schedule.trains)} trains", len(schedule.trains), family.max_trains, "trains"))
    if schedule.total_pulses > family.max_pulses_per_session:
        issues.append(
            total(
                f"{schedule.total_pulses:,} pulses", schedule.total_pulses, family.max_pulses_per_session, "pulses"
            )
        )
    return issues


# --- coils without a table, and pulses fast enough to be repetitive -------------------------


@rule("coil.no-table", Severity.WARN, scope=Scope.EXPOSURE)
def coil_without_table(case: TrainCase) -> list[Issue] | None:
    if not _repetitive_on(case, "none"):
        return None
    return [
        Issue(
            "coil.no-table",
            Severity.WARN,
            f"no safety table exists for repetitive stimulation with a {case.evaluation.schedule.coil_family} coil",
            "safety.md §4: families without a table need an override for every rTMS protocol",
            status="D",
            hint="record the reason (e.g. the approved study protocol) to run it",
        )
    ]


@rule("single-pulse.repetitive", Severity.WARN, scope=Scope.SESSION)
def single_pulse_series(evaluation: Evaluation) -> list[Issue] | None:
    trains = evaluation.schedule.trains
    if len(trains) < 2 or trains[0].kind not in ("single_pulse", "paired_pulse"):
        return None
    what = "pairs" if trains[0].kind == "paired_pulse" else "single pulses"
    site = evaluation.book.site
    interval = trains[1].onset_s - trains[0].onset_s
    if exceeds(interval, site.single_pulse_repetitive_interval_s):
        return []
    return [
        Issue(
            "single-pulse.repetitive",
            Severity.WARN,
            f"{what} every {_n(interval)} s ({_n(1 / interval)} Hz) are repetitive stimulation, "
            f"which the {trains[0].kind.replace('_', '-')} pattern does not check against the safety tables",
            site.source,
            value=interval,
            limit=site.single_pulse_repetitive_interval_s,
            unit="s",
            status=site.status,
            hint="write it as kind: rtms so the tables apply",
        )
    ]
