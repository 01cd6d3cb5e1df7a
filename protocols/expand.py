"""``expand()``: a validated protocol → the timed schedule of one session (pure).

Timing is exact: every interval is a fraction of the decimal the author wrote, all times are
whole ticks of one common denominator, and each onset is computed from its indices — never by
adding intervals up — so the 75th train of a 30 s cycle starts at exactly 2220 s.

Intensities: %MT prescriptions are resolved with the motor threshold measured with this
stimulator and coil; the result is rounded half-up to whole %MSO and a finding says so. A
missing or foreign threshold is a refusal finding; passing ``thresholds=None`` makes a *plan*
(intensities stay in %MT, an info finding says what could not be resolved).

The safety rulebook is applied by ``tmsctl.protocols.rules.check``; expansion only records what it
had to decide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from typing import Literal

from tmsctl.drivers.base import DeviceLimits
from tmsctl.protocols.canonical import content_hash
from tmsctl.protocols.findings import Issue, Severity
from tmsctl.protocols.models import Intensity, Plan, PlanLayer, Protocol, exact, format_number
from tmsctl.protocols.schedule import Schedule, ScheduledTrain
from tmsctl.protocols.thresholds import MotorThreshold, coil_matches, exact_pct_mso, round_half_up

MT_SOURCE = "targeting.md §6: an MT belongs to one (stimulator, coil) pair (Thielscher & Kammer 2004)"
ROUNDING_SOURCE = "targeting.md §6: stimulators take whole %MSO; round half-up, then check limits"


def expand(
    protocol: Protocol,
    device: DeviceLimits | None = None,
    thresholds: Iterable[MotorThreshold] | MotorThreshold | None = None,
) -> Schedule:
    """The session schedule for ``protocol`` on ``device`` with the subject's ``thresholds``."""
    plan = protocol.plan()
    provided = thresholds is not None
    records: tuple[MotorThreshold, ...] = (
        (thresholds,) if isinstance(thresholds, MotorThreshold) else tuple(thresholds or ())
    )
    issues: list[Issue] = []

    resolver = _IntensityResolver(protocol, device, records, provided, issues)
    onsets, ticks_per_s = _train_onset_ticks(plan)
    offsets = _pulse_offsets(plan, ticks_per_s)
    frequency_hz, peak_hz = _rates(plan)
    duration_s = float(plan.train_duration_s)

    ramp = protocol.intensity.ramp
    scaling = exact(protocol.intensity.scaling_pct)
    conditioning_mso = resolver.conditioning_pct_mso(plan.conditioning)
    trains: list[ScheduledTrain] = []
    cache: dict[Fraction, tuple[int | None, float | None]] = {}
    for index, onset_ticks in enumerate(onsets):
        prescription = (
            scaling * _ramp_factor(ramp.first_trains, ramp.start_pct_of_target, index) if ramp else scaling
        )
        if prescription not in cache:
            cache[prescription] = resolver.resolve(prescription)
        mso, pct_mt = cache[prescription]
        trains.append(
            ScheduledTrain(
                index=index,
                onset_s=onset_ticks / ticks_per_s,
                intensity_pct_mso=mso,
                n_pulses=len(offsets),
                pulse_offsets_s=offsets,
                frequency_hz=frequency_hz,
                duration_s=duration_s,
                kind=plan.kind,
                peak_frequency_hz=peak_hz,
                intensity_pct_of_reference=float(prescription),
                intensity_pct_mt=pct_mt,
                conditioning_intensity_pct_mso=conditioning_mso,
            )
        )
    target_mso, target_exact = resolver.target()
    resolver.report_rounding()

    total = plan.total_pulses
    end_s = trains[-1].end_s
    sessions, session_onsets, day_span = _day(protocol, plan, end_s)
    return Schedule(
        protocol_id=protocol.id,
        protocol_hash=content_hash(protocol),
        trains=tuple(trains),
        total_pulses=total,
        duration_s=float(plan.session_duration_s),
        end_s=end_s,
        last_pulse_onset_s=float(plan.last_pulse_onset_s),
        intensity_pct_mso=target_mso,
        intensity_exact_pct_mso=target_exact,
        intensity_reference=protocol.intensity.reference,
        mt_reference=resolver.mt_reference,
        findings=tuple(issue.finding() for issue in issues),
        thresholds_used=resolver.used(),
        thresholds_provided=provided,
        device_model=device.model if device is not None else None,
        coil_family=protocol.coil.family,
        sessions_per_day=sessions,
        session_onsets_s=session_onsets,
        pulses_per_day=total * sessions,
        day_span_s=day_span,
        plan=plan,
        protocol=protocol,
        device=device,
    )


# --- timing ---------------------------------------------------------------------------------


def _ticks_per_s(layers: Iterable[PlanLayer]) -> int:
    denominators = [layer.interval_s.denominator for layer in layers]
    return math.lcm(*denominators) if denominators else 1


def _positions(layers: tuple[PlanLayer, ...], ticks_per_s: int) -> list[int]:
    """Onsets of every item the layers make, in ticks, innermost index varying fastest."""
    positions = [0]
    for layer in layers:
        step = int(layer.interval_s * ticks_per_s)
        positions = [base + repeat * step for repeat in range(layer.count) for base in positions]
    return positions


def _train_onset_ticks(plan: Plan) -> tuple[list[int], int]:
    ticks_per_s = _ticks_per_s(plan.inner + plan.outer)
    return _positions(plan.outer, ticks_per_s), ticks_per_s


def _pulse_offsets(plan: Plan, ticks_per_s: int) -> tuple[float, ...]:
    return tuple(position / ticks_per_s for position in _positions(plan.inner, ticks_per_s))


def _rates(plan: Plan) -> tuple[float | None, float | None]:
    """(regular train frequency, peak pulse rate)."""
    repeating = [layer for layer in plan.inner if layer.count > 1]
    if plan.kind in ("single_pulse", "paired_pulse") or not repeating:
        return None, None
    peak = float(1 / repeating[0].interval_s)
    return (peak if plan.kind == "train" else None), peak


def _ramp_factor(first_trains: int, start_pct: float, index: int) -> Fraction:
    """Linear from ``start_pct`` % of the target at train 0 to 100 % at train ``first_trains``."""
    if index >= first_trains:
        return Fraction(1)
    start = exact(start_pct) / 100
    return start + (1 - start) * Fraction(index, first_trains)


def _day(protocol: Protocol, plan: Plan, session_end_s: float) -> tuple[int, tuple[float, ...], float]:
    accelerated = protocol.accelerated
    if accelerated is None:
        return 1, (0.0,), session_end_s
    interval = exact(accelerated.inter_session_interval_min) * 60
    step = interval if accelerated.interval_measured == "start_to_start" else interval + exact(session_end_s)
    onsets = tuple(float(k * step) for k in range(accelerated.sessions_per_day))
    return accelerated.sessions_per_day, onsets, onsets[-1] + session_end_s


# --- intensity ------------------------------------------------------------------------------


class _IntensityResolver:
    """Turns prescriptions into whole %MSO with the right threshold, recording what it decided."""

    def __init__(
        self,
        protocol: Protocol,
        device: DeviceLimits | None,
        records: tuple[MotorThreshold, ...],
        provided: bool,
        issues: list[Issue],
    ) -> None:
        self._protocol = protocol
        self._device = device
        self._records = records
        self._provided = provided
        self._issues = issues
        self._used: dict[str, MotorThreshold] = {}
        self._rounded: list[tuple[Fraction, int]] = []
        self._target: tuple[int | None, float | None] = (None, None)
        reference = protocol.intensity.reference
        self._threshold = None if reference == "MSO" else self._select(reference, required=True)
        if reference == "MSO":
            # Absolute prescriptions need no threshold; one is only used to express them in %MT.
            self._mt_for_rules = self._select("rMT", required=False) or self._select("aMT", required=False)
        else:
            self._mt_for_rules = None
        self.mt_reference: Literal["rMT", "aMT"] | None = (
            reference
            if reference != "MSO"
            else (self._mt_for_rules.reference if self._mt_for_rules else None)
        )

    def used(self) -> tuple[MotorThreshold, ...]:
        return tuple(self._used.values())

    def target(self) -> tuple[int | None, float | None]:
        return self.resolve_exact(exact(self._protocol.intensity.scaling_pct))

    def resolve(self, prescription: Fraction) -> tuple[int | None, float | None]:
        """(whole %MSO or None, intensity in % of ``mt_reference`` or None)."""
        mso, _ = self.resolve_exact(prescription)
        if self._protocol.intensity.reference != "MSO":
            return mso, float(prescription)
        if mso is None or self._mt_for_rules is None:
            return mso, None
        return mso, float(Fraction(mso) * 100 / exact(self._mt_for_rules.value_pct_mso))

    def resolve_exact(self, prescription: Fraction) -> tuple[int | None, float | None]:
        exact_value = self._exact(self._protocol.intensity.reference, self._threshold, prescription)
        if exact_value is None:
            return None, None
        whole = round_half_up(exact_value)
        if whole != exact_value:
            self._rounded.append((exact_value, whole))
        return whole, float(exact_value)

    def conditioning_pct_mso(self, conditioning: Intensity | None) -> int | None:
        if conditioning is None:
            return None
        threshold = None
        if conditioning.reference != "MSO":
            if conditioning.reference == self._protocol.intensity.reference:
                threshold = self._threshold
            else:
                threshold = self._select(conditioning.reference, required=True)
        exact_value = self._exact(conditioning.reference, threshold, exact(conditioning.scaling_pct))
        if exact_value is None:
            return None
        whole = round_half_up(exact_value)
        if whole != exact_value:
            self._rounded.append((exact_value, whole))
        return whole

    def _exact(
        self, reference: str, threshold: MotorThreshold | None, prescription: Fraction
    ) -> Fraction | None:
        if reference == "MSO":
            return prescription
        if threshold is None:
            return None
        return exact_pct_mso(threshold.value_pct_mso, prescription)

    def report_rounding(self) -> None:
        if not self._rounded:
            return
        examples = sorted(set(self._rounded))
        shown = ", ".join(f"{float(value):.4g} → {whole}" for value, whole in examples[:4])
        more = f" and {len(examples) - 4} more" if len(examples) > 4 else ""
        self._issues.append(
            Issue(
                "intensity.rounded",
                Severity.INFO,
                f"stimulators take whole percent: intensities rounded half-up to whole %MSO ({shown}{more} %MSO); "
                "safety tables are looked up with the prescribed % MT",
                ROUNDING_SOURCE,
                status="D",
            )
        )

    def _select(self, reference: Literal["rMT", "aMT"], *, required: bool) -> MotorThreshold | None:
        protocol, device = self._protocol, self._device
        if not self._provided:
            if required:
                self._issues.append(
                    Issue(
                        "mt.not-provided",
                        Severity.INFO,
                        f"intensity stays in % {reference}: no motor threshold was given, so %MSO and the "
                        "device limits at that output are not checked yet",
                        MT_SOURCE,
                        status="V",
                        hint=f"give the {reference} measured with this stimulator and coil (e.g. --mt 55)",
                    )
                )
            return None
        candidates = [record for record in self._records if record.reference == reference]
        same_coil = [record for record in candidates if coil_matches(record.coil, protocol.coil)]
        usable = [record for record in same_coil if device is None or record.stimulator_model == device.model]
        chosen = _latest(usable)
        if chosen is not None:
            self._used[reference] = chosen
            if device is None and required:
                self._issues.append(
                    Issue(
                        "mt.stimulator-unchecked",
                        Severity.INFO,
                        f"the {chosen.describe()} was not compared with a stimulator (none given)",
                        MT_SOURCE,
                        status="V",
                    )
                )
            return chosen
        if not required:
            return None
        if len(usable) > 1:
            self._refuse(
                "mt.ambiguous",
                f"{len(usable)} {reference} records fit this stimulator and coil and none is the latest",
                "pass the one threshold measured for this session",
            )
        elif not candidates:
            self._refuse(
                "mt.missing",
                f"this protocol prescribes {format_number(protocol.intensity.scaling_pct)} % {reference} but no "
                f"{reference} record was given",
                f"measure the {reference} with this stimulator and coil first",
            )
        elif not same_coil:
            coil = protocol.coil.model or protocol.coil.family
            seen = ", ".join(sorted({record.coil.model or record.coil.family for record in candidates}))
            self._refuse(
                "mt.other-coil",
                f"the {reference} was measured with another coil ({seen}); this protocol runs on {coil} and a "
                "threshold is only valid for the coil it was measured with",
                f"measure the {reference} with the {coil} coil",
            )
        else:
            seen = ", ".join(sorted({record.stimulator_model for record in same_coil}))
            assert device is not None
            self._refuse(
                "mt.other-stimulator",
                f"the {reference} was measured on another stimulator ({seen}), not on the {device.display_name}",
                f"measure the {reference} on the {device.display_name}",
            )
        return None

    def _refuse(self, rule_id: str, text: str, hint: str) -> None:
        self._issues.append(Issue(rule_id, Severity.REFUSE, text, MT_SOURCE, status="V", hint=hint))


def _latest(records: list[MotorThreshold]) -> MotorThreshold | None:
    if len(records) == 1:
        return records[0]
    if not records or any(record.measured_at is None for record in records):
        return None
    ordered = sorted(records, key=lambda record: record.measured_at)  # type: ignore[arg-type, return-value]
    if ordered[-1].measured_at == ordered[-2].measured_at:
        return None
    return ordered[-1]
