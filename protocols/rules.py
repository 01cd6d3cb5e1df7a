"""The safety rulebook applied to an expanded schedule, and the verdict with overrides.

``check(protocol_or_schedule, ...)`` expands the protocol if needed, applies every rule that fits
it and returns a ``Verdict``:

* **refuse** — hard limits: the device's limits (maximum output, frequency at that output,
  energy/on-time, minimum wait between trains, pulses per train, single-pulse rate, capabilities),
  intensities above any stimulator's output, a motor threshold missing or taken with another coil
  or stimulator. Never overridable.
* **warn** — guideline limits: a figure-8 train beyond its Wassermann cell or outside the table,
  an inter-train interval under 5 s above 100 % MT (Chen 1997), H-coil parameters outside the
  cleared envelope, any repetitive protocol on a coil family without a table, non-standard theta
  burst, and the site caps per session and per day. A session may run only after an operator
  records a reason for overriding that rule id; ``check(..., overrides={rule_id: reason})``.
* **info** — decisions and things not yet checkable (a plan without device or threshold).

Which rules apply depends on the coil family (``protocols/rules/coil_families.yaml``): the
Wassermann table was built with figure-8 coils and cannot judge H-coil protocols.

Comparisons allow a relative 1e-9 so that float noise never turns "at the limit" into "over it".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from tmsctl.drivers.base import Capability, DeviceLimits, PairedPulseLimits, paired_isi_mode
from tmsctl.errors import InvalidArgument
from tmsctl.protocols.findings import Finding, Issue, Severity, sort_findings
from tmsctl.protocols.models import Protocol, format_number, is_standard_theta_burst
from tmsctl.protocols.rulebook import Rulebook, rulebook
from tmsctl.protocols.schedule import RTS_BURST_GAP_S, RTS_BURST_MAX_S, Schedule, ScheduledTrain, host_bursts
from tmsctl.protocols.thresholds import MotorThreshold

REPETITIVE = ("train", "theta_burst", "patterned")
DEVICE_SOURCE = "device specification (DeviceLimits of the connected model)"
ABSOLUTE_MAX_PCT_MSO = 100


def _exceeds(value: float, limit: float) -> bool:
    return value > limit + abs(limit) * 1e-9 + 1e-12


def _below(value: float, limit: float) -> bool:
    return value < limit - abs(limit) * 1e-9 - 1e-12


def _n(value: float | None) -> str:
    return "?" if value is None else format_number(value)


def _days(value: float, text: str) -> str:
    """``text`` (the number as shown) with "day" or "days": "1 day", "0.5 days", "2 days"."""
    return f"{text} day" if text == "1" else f"{text} days"


def _rate_text(train: ScheduledTrain) -> str:
    if train.kind == "train":
        return f"{_n(train.frequency_hz)} Hz"
    if train.kind == "theta_burst":
        return "theta burst"
    return train.kind.replace("_", " ")


# --- policy and verdict ---------------------------------------------------------------------


@dataclass(frozen=True)
class SitePolicy:
    """A site's stricter choices. Values can only tighten the rulebook; looser ones are refused."""

    strict_wassermann: bool = False
    """Apply Chen 1997's 25 % reduction to every Wassermann cell (flips NeuroStar to override)."""
    max_pulses_per_day: int | None = None
    max_sessions_per_day: int | None = None
    min_minutes_between_session_starts: float | None = None
    max_motor_threshold_age_days: float | None = None

    def validate(self, book: Rulebook) -> None:
        site = book.site
        for name in (
            "max_pulses_per_day", "max_sessions_per_day", "min_minutes_between_session_starts",
            "max_motor_threshold_age_days",
        ):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InvalidArgument(f"site policy {name} must be positive, got {value!r}")
        looser = []
        if (
            self.max_motor_threshold_age_days is not None
            and self.max_motor_threshold_age_days > site.max_motor_threshold_age_days
        ):
            looser.append(
                f"max_motor_threshold_age_days {self.max_motor_threshold_age_days:g} > "
                f"{site.max_motor_threshold_age_days:g}"
            )
        if self.max_pulses_per_day is not None and self.max_pulses_per_day > site.max_pulses_per_day:
            looser.append(f"max_pulses_per_day {self.max_pulses_per_day} > {site.max_pulses_per_day}")
        if self.max_sessions_per_day is not None and self.max_sessions_per_day > site.max_sessions_per_day:
            looser.append(f"max_sessions_per_day {self.max_sessions_per_day} > {site.max_sessions_per_day}")
        if (
            self.min_minutes_between_session_starts is not None
            and self.min_minutes_between_session_starts < site.min_minutes_between_session_starts
        ):
            looser.append(
                f"min_minutes_between_session_starts {self.min_minutes_between_session_starts:g} < "
                f"{site.min_minutes_between_session_starts:g}"
            )
        if looser:
            raise InvalidArgument(
                "a site policy may only tighten the rulebook: " + "; ".join(looser),
                hint="to exceed a cap for one session, record an override with its reason",
            )


@dataclass(frozen=True)
class Verdict:
    status: Literal["allowed", "needs_override", "refused"]
    findings: tuple[Finding, ...]
    """Every finding, expansion's and the rulebook's, most severe first."""
    overrides_used: Mapping[str, str]
    """rule id → the operator's reason, for every warning it lifted."""
    overrides_rejected: Mapping[str, str]
    """rule id → why the override was not accepted (hard limit, empty reason)."""
    overrides_unused: tuple[str, ...]
    checked: tuple[str, ...]
    """Rule ids that were applied to this schedule."""
    complete: bool
    """True when a device and (for %MT prescriptions) a threshold were given: nothing left unchecked."""
    rulebook_version: str
    protocol_id: str
    protocol_hash: str
    schedule: Schedule = field(repr=False, compare=False)

    @property
    def allowed(self) -> bool:
        return self.status == "allowed"

    @property
    def refusals(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.REFUSE)

    @property
    def needs_override(self) -> tuple[Finding, ...]:
        """Warnings no override has lifted."""
        return tuple(
            f for f in self.findings if f.severity is Severity.WARN and f.rule_id not in self.overrides_used
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "allowed": self.allowed,
            "complete": self.complete,
            "protocol_id": self.protocol_id,
            "protocol_hash": self.protocol_hash,
            "rulebook_version": self.rulebook_version,
            "findings": [finding.to_dict() for finding in self.findings],
            "overrides_used": dict(self.overrides_used),
            "overrides_rejected": dict(self.overrides_rejected),
            "overrides_unused": list(self.overrides_unused),
            "checked": list(self.checked),
        }


def check(
    subject: Protocol | Schedule,
    *,
    device: DeviceLimits | None = None,
    thresholds: Iterable[MotorThreshold] | MotorThreshold | None = None,
    overrides: Mapping[str, str] | None = None,
    pulses_already_today: int = 0,
    sessions_already_today: int = 0,
    minutes_since_last_session_start: float | None = None,
    policy: SitePolicy | None = None,
    require_complete: bool = False,
    as_of: datetime | None = None,
) -> Verdict:
    """Apply the rulebook to a protocol (expanded here) or to an already expanded schedule.

    ``overrides`` maps a warning's rule id to the operator's recorded reason; refusals cannot be
    overridden. ``require_complete=True`` (for a real session) refuses when no device is given or
    a %MT prescription has no threshold.
    """
    from tmsctl.protocols.expand import expand  # expand does not depend on the rules

    if isinstance(subject, Schedule):
        if device is not None or thresholds is not None:
            raise InvalidArgument(
                "this schedule was already expanded; pass device and thresholds to expand(), not to check()",
            )
        schedule = subject
    elif isinstance(subject, Protocol):
        schedule = expand(subject, device, thresholds)
    else:
        raise InvalidArgument(f"check() needs a Protocol or a Schedule, not {type(subject).__name__}")
    if pulses_already_today < 0 or sessions_already_today < 0:
        raise InvalidArgument("pulses_already_today and sessions_already_today cannot be negative")
    book = rulebook()
    policy = policy or SitePolicy()
    policy.validate(book)

    evaluation = _Evaluation(schedule, book, policy, require_complete)
    evaluation.run()
    evaluation.history(pulses_already_today, sessions_already_today, minutes_since_last_session_start)
    if as_of is not None:
        evaluation.threshold_age(as_of)
    complete = evaluation.completeness()
    findings = sort_findings(schedule.findings + evaluation.findings())
    return _decide(schedule, findings, dict(overrides or {}), evaluation.checked, complete, book.version)


def _decide(
    schedule: Schedule,
    findings: tuple[Finding, ...],
    overrides: dict[str, str],
    checked: Iterable[str],
    complete: bool,
    version: str,
) -> Verdict:
    severities: dict[str, set[Severity]] = {}
    for finding in findings:
        severities.setdefault(finding.rule_id, set()).add(finding.severity)
    used: dict[str, str] = {}
    rejected: dict[str, str] = {}
    unused: list[str] = []
    for rule_id, reason in overrides.items():
        kinds = severities.get(rule_id)
        if not isinstance(reason, str) or not reason.strip():
            rejected[rule_id] = "an override needs a non-empty reason"
        elif kinds is None:
            unused.append(rule_id)
        elif Severity.REFUSE in kinds:
            rejected[rule_id] = "a hard limit cannot be overridden"
        elif Severity.WARN in kinds:
            used[rule_id] = reason.strip()
        else:
            unused.append(rule_id)
    if any(f.severity is Severity.REFUSE for f in findings):
        status: Literal["allowed", "needs_override", "refused"] = "refused"
    elif any(f.severity is Severity.WARN and f.rule_id not in used for f in findings):
        status = "needs_override"
    else:
        status = "allowed"
    return Verdict(
        status=status,
        findings=findings,
        overrides_used=MappingProxyType(used),
        overrides_rejected=MappingProxyType(rejected),
        overrides_unused=tuple(unused),
        checked=tuple(sorted(set(checked))),
        complete=complete,
        rulebook_version=version,
        protocol_id=schedule.protocol_id,
        protocol_hash=schedule.protocol_hash,
        schedule=schedule,
    )


# --- evaluation -----------------------------------------------------------------------------


class _Evaluation:
    """Applies every rule once per distinct train shape and merges the findings."""

    def __init__(
        self, schedule: Schedule, book: Rulebook, policy: SitePolicy, require_complete: bool
    ) -> None:
        self.schedule = schedule
        self.book = book
        self.policy = policy
        self.require_complete = require_complete
        self.device = schedule.device
        self.protocol = schedule.protocol
        self.family = book.family(schedule.coil_family)
        self.checked: set[str] = set()
        self._issues: dict[Issue, set[int]] = {}

    # bookkeeping

    def add(self, issue: Issue, trains: Iterable[int] = ()) -> None:
        self._issues.setdefault(issue, set()).update(trains)

    def findings(self) -> tuple[Finding, ...]:
        return tuple(issue.finding(trains) for issue, trains in self._issues.items())

    def run(self) -> None:
        groups: dict[tuple[Any, ...], list[ScheduledTrain]] = {}
        for train in self.schedule.trains:
            gap = self.schedule.gap_after_s(train)
            key = (
                train.kind,
                train.n_pulses,
                train.frequency_hz,
                train.duration_s,
                train.intensity_pct_mso,
                train.intensity_pct_mt,
                train.conditioning_intensity_pct_mso,
                None if gap is None else round(gap, 9),
                id(train.pulse_offsets_s),
            )
            groups.setdefault(key, []).append(train)
        rules: list[Callable[[ScheduledTrain, float | None], Iterable[Issue]]] = [
            self._intensity_rules,
            self._device_train_rules,
            self._family_train_rules,
        ]
        for members in groups.values():
            first = members[0]
            gap = self.schedule.gap_after_s(first)
            numbers = [train.number for train in members]
            for rule in rules:
                for issue in rule(first, gap):
                    self.add(issue, numbers)
        self._continuous_runs()
        self._external_timing()
        self._capabilities()
        self._single_pulse_series()
        self._family_session_rules()
        self._site_session_rules()
        self._day_plan()

    def _continuous_runs(self) -> None:
        """Trains closer than Chen's minimum interval are one exposure: judge each run as one train.

        Only the coil family's exposure rules (train duration at a frequency and intensity) see the
        run; the device rules stay per physical train, whose recovery the device's own minimum wait
        (``device.inter-train-wait``) already bounds.
        """
        min_gap_s = self.book.chen.min_inter_train_interval_s
        for run in self.schedule.continuous_runs(min_gap_s):
            first, last = run[0], run[-1]
            if first.kind not in REPETITIVE:
                continue
            span_s = last.end_s - first.onset_s
            pulses = sum(train.n_pulses for train in run)
            offsets = tuple(train.onset_s - first.onset_s + offset for train in run for offset in train.pulse_offsets_s)
            largest_gap = max(self.schedule.gap_after_s(train) or 0.0 for train in run[:-1])
            gap_after = self.schedule.gap_after_s(last)
            numbers = [train.number for train in run]
            piece_issues = set(self._issues)
            intensities: dict[tuple[int | None, float | None, int | None], ScheduledTrain] = {}
            for train in run:  # a ramp gives a run several intensities: each is judged at the run's length
                key = (train.intensity_pct_mso, train.intensity_pct_mt, train.conditioning_intensity_pct_mso)
                intensities.setdefault(key, train)
            for train in intensities.values():
                merged = replace(
                    train, index=first.index, onset_s=first.onset_s, n_pulses=pulses, pulse_offsets_s=offsets,
                    duration_s=span_s,
                )
                for issue in self._family_train_rules(merged, gap_after):
                    if issue in piece_issues:
                        continue  # the same finding about each train (frequency, intensity): said once
                    self.add(
                        replace(
                            issue,
                            text=(
                                f"gaps under {_n(min_gap_s)} s (at most {_n(largest_gap)} s) make these one "
                                f"continuous train: {issue.text}"
                            ),
                            hint=(
                                f"make the gaps between trains at least {_n(min_gap_s)} s (Chen 1997), shorten "
                                "the run, or record the reason to exceed the limit"
                                if issue.severity is not Severity.INFO
                                else issue.hint
                            ),
                        ),
                        numbers,
                    )

    # intensity and device -------------------------------------------------------------------

    def _intensity_rules(self, train: ScheduledTrain, gap: float | None) -> Iterable[Issue]:
        if self.device is not None:
            return
        self.checked.add("intensity.max-output")
        for value in (train.intensity_pct_mso, train.conditioning_intensity_pct_mso):
            if value is not None and value > ABSOLUTE_MAX_PCT_MSO:
                yield Issue(
                    "intensity.max-output",
                    Severity.REFUSE,
                    f"{value} %MSO is above the {ABSOLUTE_MAX_PCT_MSO} %MSO any stimulator delivers for this "
                    "(never clamped)",
                    "safety.md §7: intensity above the device maximum is refused, never clamped",
                    value=value,
                    limit=ABSOLUTE_MAX_PCT_MSO,
                    unit="%MSO",
                    status="D",
                    hint="check the motor threshold and the prescription",
                )

    def _device_train_rules(self, train: ScheduledTrain, gap: float | None) -> Iterable[Issue]:
        device = self.device
        if device is None or train.intensity_pct_mso is None:
            return
        name = device.display_name
        self.checked.add("device.intensity")
        over = [
            value
            for value in (train.intensity_pct_mso, train.conditioning_intensity_pct_mso)
            if value is not None and value > device.max_intensity_pct_mso
        ]
        if over:
            yield Issue(
                "device.intensity",
                Severity.REFUSE,
                f"{max(over)} %MSO is above the {name}'s maximum of {device.max_intensity_pct_mso} %MSO "
                "(refused, never clamped)",
                DEVICE_SOURCE,
                value=max(over),
                limit=device.max_intensity_pct_mso,
                unit="%MSO",
                status="V",
                hint="the prescription cannot be delivered with this threshold on this stimulator",
            )
            return
        mso = train.intensity_pct_mso
        if train.kind in REPETITIVE:
            yield from self._device_repetitive(device, train, gap, mso)
        elif gap is not None:
            yield from self._device_single(device, train, mso)
        if train.kind == "paired_pulse" and Capability.PAIRED_PULSE in device.capabilities:
            yield from self._device_pair(device, train)

    def _device_pair(self, device: DeviceLimits, train: ScheduledTrain) -> Iterable[Issue]:
        """The device must time the pair's interval exactly, in one of its ISI modes (never rounded)."""
        self.checked.add("device.paired-isi")
        isi_ms = round(1000 * (train.pulse_offsets_s[-1] - train.pulse_offsets_s[0]), 6)
        modes = tuple(device.paired_isi_modes_ms()) if isinstance(device, PairedPulseLimits) else ()
        if modes and paired_isi_mode(modes, isi_ms) is not None:
            return
        settable = "; ".join(f"{_n(lo)}–{_n(hi)} ms in {step:g} ms steps" for lo, hi, step in modes)
        yield Issue(
            "device.paired-isi",
            Severity.REFUSE,
            f"the {device.display_name} cannot time a {_n(isi_ms)} ms inter-stimulus interval"
            + (f" (it sets {settable})" if settable else ": tmsctl cannot set its paired-pulse interval"),
            DEVICE_SOURCE,
            value=isi_ms,
            unit="ms",
            status="V",
            hint="choose an interval the stimulator sets exactly (tmsctl never rounds it), or another stimulator",
        )

    def _device_repetitive(
        self, device: DeviceLimits, train: ScheduledTrain, gap: float | None, mso: int
    ) -> Iterable[Issue]:
        name = device.display_name
        ids = (
            "device.frequency",
            "device.pulses-per-train",
            "device.train-duration",
            "device.on-time",
            "device.inter-train-wait",
        )
        self.checked.update(ids)
        peak = train.peak_frequency_hz
        mean = train.mean_frequency_hz
        assert peak is not None and mean is not None
        asks_wait = gap is not None and train.n_pulses <= device.max_pulses_per_train
        try:
            max_hz = _ask(device.max_frequency_hz, mso)
            on_time = _ask(device.max_train_on_time_s, mso, mean)
            wait = _ask(device.min_inter_train_interval_s, mso, mean, train.n_pulses) if asks_wait else 0.0
        except _Unanswered as error:
            yield _unanswered(device, error, mso)
            return
        if _exceeds(peak, max_hz):
            inside = " inside bursts" if train.kind != "train" else ""
            yield Issue(
                "device.frequency",
                Severity.REFUSE,
                f"{_n(peak)} Hz{inside} at {mso} %MSO is above the {name}'s maximum of {_n(max_hz)} Hz at that output",
                DEVICE_SOURCE,
                value=peak,
                limit=max_hz,
                unit="Hz",
                status="V",
                hint="lower the frequency or the intensity, or use a stimulator that can deliver it",
            )
        step = device.frequency_step_hz
        if train.kind == "train" and self.protocol.timed_by == "stimulator" and step > 0:
            # A step of 0 means the device has no train timer (its capability refusal says so).
            self.checked.add("device.frequency-step")
            assert train.frequency_hz is not None
            steps = train.frequency_hz / step
            if abs(steps - round(steps)) > 1e-6:
                yield Issue(
                    "device.frequency-step",
                    Severity.REFUSE,
                    f"{_n(train.frequency_hz)} Hz is not on the {name}'s {step:g} Hz frequency grid",
                    DEVICE_SOURCE,
                    value=train.frequency_hz,
                    limit=step,
                    unit="Hz",
                    status="V",
                    hint="choose a frequency the stimulator can set exactly; tmsctl never rounds it",
                )
        # The train timer's own limits bind only when the stimulator times the train.
        timer = self.protocol.timed_by == "stimulator"
        if timer and train.n_pulses > device.max_pulses_per_train:
            yield Issue(
                "device.pulses-per-train",
                Severity.REFUSE,
                f"{train.n_pulses:,} pulses in one train; the {name} allows at most {device.max_pulses_per_train:,}",
                DEVICE_SOURCE,
                value=train.n_pulses,
                limit=device.max_pulses_per_train,
                unit="pulses",
                status="V",
                hint="split the train",
            )
        if timer and _exceeds(train.duration_s, device.max_train_duration_s):
            yield Issue(
                "device.train-duration",
                Severity.REFUSE,
                f"a {_n(train.duration_s)} s train is longer than the {name}'s maximum of "
                f"{_n(device.max_train_duration_s)} s",
                DEVICE_SOURCE,
                value=train.duration_s,
                limit=device.max_train_duration_s,
                unit="s",
                status="V",
                hint="split the train",
            )
        if _exceeds(train.duration_s, on_time):
            yield Issue(
                "device.on-time",
                Severity.REFUSE,
                f"{_n(train.duration_s)} s of {_rate_text(train)} at {mso} %MSO exceeds the {name}'s energy limit: "
                f"at most {_n(on_time)} s at this output and rate",
                DEVICE_SOURCE,
                value=train.duration_s,
                limit=on_time,
                unit="s",
                status="V",
                hint="shorten the trains or lower the intensity or frequency",
            )
        if gap is not None and not asks_wait:
            yield Issue(
                "device.inter-train-wait",
                Severity.REFUSE,
                f"the {name} cannot tell the recovery time after a {train.n_pulses:,}-pulse train",
                DEVICE_SOURCE,
                value=train.n_pulses,
                limit=device.max_pulses_per_train,
                unit="pulses",
                status="V",
                hint="split the trains",
            )
        elif gap is not None and _below(gap, wait):
            yield Issue(
                "device.inter-train-wait",
                Severity.REFUSE,
                f"only {_n(gap)} s from the end of a train to the next; the {name} needs at least "
                f"{_n(round(wait, 3))} s after {train.n_pulses} pulses at {mso} %MSO to recover",
                DEVICE_SOURCE,
                value=gap,
                limit=wait,
                unit="s",
                status="V",
                hint="lengthen the inter-train interval",
            )

    def _device_single(self, device: DeviceLimits, train: ScheduledTrain, mso: int) -> Iterable[Issue]:
        self.checked.add("device.single-pulse-rate")
        following = self.schedule.trains[train.index + 1]
        interval = following.onset_s - train.onset_s
        highest = max(v for v in (mso, train.conditioning_intensity_pct_mso) if v is not None)
        try:
            minimum = _ask(device.min_single_pulse_interval_s, highest)
        except _Unanswered as error:
            yield _unanswered(device, error, highest)
            return
        if _below(interval, minimum):
            what = "pairs" if train.kind == "paired_pulse" else "single pulses"
            yield Issue(
                "device.single-pulse-rate",
                Severity.REFUSE,
                f"{what} every {_n(interval)} s at {highest} %MSO; the {device.display_name} needs at least "
                f"{_n(minimum)} s between host-triggered pulses to recharge",
                DEVICE_SOURCE,
                value=interval,
                limit=minimum,
                unit="s",
                status="V",
                hint="lengthen the interval between pulses",
            )

    def _external_timing(self) -> None:
        """An externally timed protocol is checked against the device's limits like any other (the
        device rules above do not ask who times the pulses). What is left is who drives the trigger:
        tmsctl's own RTS line, in bursts it can time without a device exchange; an outside trigger
        box is not supported yet, so it is refused here rather than faulting mid-session."""
        self.checked.add("timing.external-trigger")
        protocol = self.protocol
        if protocol.timed_by != "external_trigger":
            return
        if protocol.trigger == "external":
            device = self.device
            if device is not None and Capability.PULSE_REPORTS not in device.capabilities:
                self.add(
                    Issue(
                        "timing.external-trigger",
                        Severity.REFUSE,
                        f"trigger: external: the {device.display_name} does not report the pulses it fires, so "
                        "tmsctl could neither count what a trigger box fires nor stop it at the protocol's pulses",
                        "tmsctl runner (issue 16)",
                        status="D",
                        hint="use a stimulator that reports every pulse (a MagPro), or write trigger: rts to have "
                        "tmsctl time the pulses on the RTS line (Magstim quick-fire cable)",
                    )
                )
            return
        self.checked.add("timing.rts-burst")
        seen: set[int] = set()
        for train in self.schedule.trains:
            if id(train.pulse_offsets_s) in seen:
                continue
            seen.add(id(train.pulse_offsets_s))
            longest = max(burst[-1] - burst[0] for burst in host_bursts(train.pulse_offsets_s))
            if _exceeds(longest, RTS_BURST_MAX_S):
                numbers = [t.number for t in self.schedule.trains if t.pulse_offsets_s is train.pulse_offsets_s]
                self.add(
                    Issue(
                        "timing.rts-burst",
                        Severity.REFUSE,
                        f"pulses less than {_n(RTS_BURST_GAP_S)} s apart for {_n(round(longest, 6))} s: tmsctl times "
                        f"RTS pulses that close as one burst, with no intensity read-back and no pause inside it, "
                        f"for at most {_n(RTS_BURST_MAX_S)} s",
                        "tmsctl runner: RTS triggering",
                        value=longest,
                        limit=RTS_BURST_MAX_S,
                        unit="s",
                        status="D",
                        hint="space the pulses at least 0.1 s apart, or shorten the bursts; a long fast train is for "
                        "a stimulator that times it itself (timed_by: stimulator)",
                    ),
                    numbers,
                )

    def _capabilities(self) -> None:
        protocol, device = self.protocol, self.device
        needed = set(protocol.requires.capabilities) | implied_capabilities(protocol)
        if device is None:
            return
        self.checked.update(("device.capability", "device.model"))
        allowed_models = protocol.requires.models
        if allowed_models and device.model not in allowed_models:
            self.add(
                Issue(
                    "device.model",
                    Severity.REFUSE,
                    f"this protocol may run only on {', '.join(allowed_models)}, not on the {device.display_name} "
                    f"({device.model})",
                    "the protocol's requires.models",
                    status="D",
                    hint="use one of the listed stimulators",
                )
            )
        missing = sorted(needed - set(device.capabilities))
        for capability in missing:
            self.add(
                Issue(
                    "device.capability",
                    Severity.REFUSE,
                    _capability_text(device, Capability(capability), protocol),
                    DEVICE_SOURCE,
                    status="V",
                    hint=_capability_hint(Capability(capability)),
                )
            )

    # coil-family rules ----------------------------------------------------------------------

    def _family_train_rules(self, train: ScheduledTrain, gap: float | None) -> Iterable[Issue]:
        if train.kind not in REPETITIVE:
            return
        table = self.family.table
        if table == "wassermann":
            if train.kind == "train":
                yield from self._wassermann(train)
                yield from self._chen(train, gap)
            elif train.kind == "theta_burst":
                yield from self._theta_burst_intensity(train)
            else:
                self.checked.add("patterned.no-table")
                yield Issue(
                    "patterned.no-table",
                    Severity.WARN,
                    "patterned bursts other than standard theta burst have no safety table",
                    "safety.md §7: parameters outside the tables need a recorded override",
                    status="D",
                    hint="record the reason (e.g. the study protocol) to run it",
                )
        elif table == "envelope":
            yield from self._envelope_train(train, gap)
        else:
            self.checked.add("coil.no-table")
            yield Issue(
                "coil.no-table",
                Severity.WARN,
                f"no safety table exists for repetitive stimulation with a {self.schedule.coil_family} coil",
                "safety.md §4: families without a table need an override for every rTMS protocol",
                status="D",
                hint="record the reason (e.g. the approved study protocol) to run it",
            )

    def _pct_mt(self, train: ScheduledTrain, rule_id: str, purpose: str) -> float | None:
        """The train's intensity in %MT, or None after recording why a rule could not be applied."""
        if train.intensity_pct_mt is not None:
            return train.intensity_pct_mt
        provided = self.schedule.thresholds_provided
        self.add(
            Issue(
                "rules.need-mt",
                Severity.WARN if provided or self.require_complete else Severity.INFO,
                f"{purpose} needs the intensity in % MT; the protocol gives %MSO and no motor threshold "
                f"measured with this coil was {'found' if provided else 'given'}",
                "safety.md §1: the tables are in % of the motor threshold measured with the coil",
                status="D",
                hint="give the rMT measured with this stimulator and coil",
            )
        )
        return None

    def _wassermann(self, train: ScheduledTrain) -> Iterable[Issue]:
        book, table = self.book, self.book.wassermann
        pct = self._pct_mt(train, "wassermann.train-duration", "the Wassermann look-up")
        if pct is None:
            return
        self.checked.add("wassermann.train-duration")
        assert train.frequency_hz is not None
        reference = self.schedule.mt_reference or "rMT"
        frequency = train.frequency_hz
        where = f"{_n(frequency)} Hz at {_n(pct)} % {reference}"
        cell = book.wassermann_lookup(frequency, pct)
        if cell is None:
            yield Issue(
                "wassermann.outside-table",
                Severity.WARN,
                f"{where} is outside the Wassermann table (1–25 Hz, 100–220 % MT): no tested safe train duration",
                table.source,
                value=frequency if _exceeds(frequency, 25) else pct,
                limit=25 if _exceeds(frequency, 25) else 220,
                unit="Hz" if _exceeds(frequency, 25) else "% MT",
                status=table.status,
                hint="record the reason (e.g. the approved study protocol) to run it",
            )
            return
        limit = cell.limit_s * (table.strict_mode_factor if self.policy.strict_wassermann else 1.0)
        strict = (
            f" × {table.strict_mode_factor:g} (site strict mode)" if self.policy.strict_wassermann else ""
        )
        if reference == "aMT":
            yield Issue(
                "wassermann.amt-as-rmt",
                Severity.INFO,
                f"the Wassermann table is in % rMT; {_n(pct)} % aMT was looked up as % rMT, which is stricter",
                table.source,
                status="D",
            )
        if _exceeds(train.duration_s, limit):
            beyond = (
                "is beyond the longest duration tested without adverse effects"
                if cell.open_ended and not self.policy.strict_wassermann
                else "exceeds the maximum safe single-train duration"
            )
            yield Issue(
                "wassermann.train-duration",
                Severity.WARN,
                f"{_n(train.duration_s)} s of {where} {beyond}: {_n(limit)} s (Wassermann cell {cell.describe()}{strict})",
                table.source if not strict else f"{table.source}; {table.strict_mode_source}",
                value=train.duration_s,
                limit=limit,
                unit="s",
                status=table.status,
                hint="shorten the trains or lower the intensity, or record the reason for exceeding it",
            )
        else:
            yield Issue(
                "wassermann.lookup",
                Severity.INFO,
                f"{_n(train.duration_s)} s of {where} is within the Wassermann cell {cell.describe()}{strict}",
                table.source,
                value=train.duration_s,
                limit=limit,
                unit="s",
                status=table.status,
            )

    def _chen(self, train: ScheduledTrain, gap: float | None) -> Iterable[Issue]:
        chen = self.book.chen
        if gap is None:
            return
        self.checked.add("chen.inter-train-interval")
        if not _below(gap, chen.min_inter_train_interval_s):
            return
        pct = self._pct_mt(train, "chen.inter-train-interval", "the inter-train interval rule")
        if pct is None or not _exceeds(pct, chen.applies_above_pct_mt):
            return
        reference = self.schedule.mt_reference or "MT"
        yield Issue(
            "chen.inter-train-interval",
            Severity.WARN,
            f"{_n(gap)} s between trains at {_n(pct)} % {reference} is shorter than the "
            f"{_n(chen.min_inter_train_interval_s)} s needed above {_n(chen.applies_above_pct_mt)} % MT",
            chen.source,
            value=gap,
            limit=chen.min_inter_train_interval_s,
            unit="s",
            status=chen.status,
            hint="lengthen the inter-train interval, or record the reason",
        )

    def _envelope_train(self, train: ScheduledTrain, gap: float | None) -> Iterable[Issue]:
        family = self.family
        name = self.schedule.coil_family
        rule_id = f"envelope.{name}"
        self.checked.add(rule_id)

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
            yield Issue(
                rule_id,
                Severity.WARN,
                f"{_rate_text(train)} is not part of the cleared {name} protocol (conventional trains only)",
                family.source,
                status=family.status,
                hint="record the reason (e.g. the approved study protocol) to run it",
            )
            return
        assert train.frequency_hz is not None and family.max_frequency_hz is not None
        assert family.max_train_duration_s is not None and family.min_inter_train_interval_s is not None
        if _exceeds(train.frequency_hz, family.max_frequency_hz):
            yield outside(f"{_n(train.frequency_hz)} Hz", train.frequency_hz, family.max_frequency_hz, "Hz")
        if _exceeds(train.duration_s, family.max_train_duration_s):
            yield outside(
                f"a {_n(train.duration_s)} s train", train.duration_s, family.max_train_duration_s, "s max"
            )
        if gap is not None and _below(gap, family.min_inter_train_interval_s):
            yield outside(f"{_n(gap)} s between trains", gap, family.min_inter_train_interval_s, "s min")
        pct = self._pct_mt(train, rule_id, f"the {name} intensity limit")
        if (
            pct is not None
            and family.max_intensity_pct_mt is not None
            and _exceeds(pct, family.max_intensity_pct_mt)
        ):
            yield outside(f"{_n(pct)} % MT", pct, family.max_intensity_pct_mt, "% MT max")

    def _theta_burst_intensity(self, train: ScheduledTrain) -> Iterable[Issue]:
        tbs = self.book.theta_burst
        self.checked.add("tbs.intensity")
        pct = self._pct_mt(train, "tbs.intensity", "the theta-burst intensity limit")
        if pct is None:
            return
        reference = self.schedule.mt_reference or "rMT"
        limit = tbs.max_intensity_pct_mt[reference]
        if _exceeds(pct, limit):
            yield Issue(
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

    def _family_session_rules(self) -> None:
        schedule, family = self.schedule, self.family
        kinds = {train.kind for train in schedule.trains}
        if family.table == "envelope" and "train" in kinds:
            assert family.max_trains is not None and family.max_pulses_per_session is not None
            rule_id = f"envelope.{schedule.coil_family}"
            if len(schedule.trains) > family.max_trains:
                self._envelope_total(
                    rule_id,
                    f"{len(schedule.trains)} trains",
                    len(schedule.trains),
                    family.max_trains,
                    "trains",
                )
            if schedule.total_pulses > family.max_pulses_per_session:
                self._envelope_total(
                    rule_id,
                    f"{schedule.total_pulses:,} pulses",
                    schedule.total_pulses,
                    family.max_pulses_per_session,
                    "pulses",
                )
        if family.table == "wassermann" and "theta_burst" in kinds:
            self._theta_burst_session()

    def _envelope_total(self, rule_id: str, what: str, value: float, limit: float, unit: str) -> None:
        family = self.family
        self.add(
            Issue(
                rule_id,
                Severity.WARN,
                f"{what} per session is outside the cleared {self.schedule.coil_family} protocol "
                f"({_n(limit)} {unit} max)",
                family.source,
                value=value,
                limit=limit,
                unit=unit,
                status=family.status,
                hint="record the reason to exceed the cleared protocol",
            )
        )

    def _theta_burst_session(self) -> None:
        tbs, plan, schedule = self.book.theta_burst, self.schedule.plan, self.schedule
        self.checked.update(("tbs.structure", "tbs.session-pulses"))
        problems: list[str] = []
        if not is_standard_theta_burst(plan.inner):
            problems.append(
                f"bursts are not {tbs.pulses_per_burst} pulses at {tbs.burst_frequency_hz:g} Hz repeated at "
                f"{tbs.burst_rate_hz:g} Hz"
            )
        repeating_outer = [layer for layer in plan.outer if layer.count > 1]
        train_s = float(plan.train_duration_s)
        if not repeating_outer:
            if _exceeds(train_s, tbs.ctbs_max_continuous_s):
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
        for problem in problems:
            self.add(
                Issue(
                    "tbs.structure",
                    Severity.WARN,
                    f"non-standard theta burst: {problem}",
                    tbs.source,
                    status=tbs.status,
                    hint="record the reason to run a non-standard theta-burst protocol",
                )
            )
        if schedule.total_pulses > tbs.max_pulses_per_session:
            self.add(
                Issue(
                    "tbs.session-pulses",
                    Severity.WARN,
                    f"{schedule.total_pulses:,} theta-burst pulses per session is above "
                    f"{tbs.max_pulses_per_session:,}",
                    tbs.source,
                    value=schedule.total_pulses,
                    limit=tbs.max_pulses_per_session,
                    unit="pulses",
                    status=tbs.status,
                    hint="record the reason to run it",
                )
            )

    def _single_pulse_series(self) -> None:
        trains = self.schedule.trains
        if len(trains) < 2 or trains[0].kind not in ("single_pulse", "paired_pulse"):
            return
        what = "pairs" if trains[0].kind == "paired_pulse" else "single pulses"
        site = self.book.site
        self.checked.add("single-pulse.repetitive")
        interval = trains[1].onset_s - trains[0].onset_s
        if not _exceeds(interval, site.single_pulse_repetitive_interval_s):
            self.add(
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
            )

    # site caps ------------------------------------------------------------------------------

    def _cap(self, name: str, default: float) -> float:
        value = getattr(self.policy, name)
        return default if value is None else value

    def _site_session_rules(self) -> None:
        schedule, site = self.schedule, self.book.site
        if not any(train.kind in ("train", "patterned") for train in schedule.trains):
            return
        self.checked.add("site.session-pulses")
        if schedule.total_pulses > site.max_pulses_per_session:
            self.add(
                Issue(
                    "site.session-pulses",
                    Severity.WARN,
                    f"{schedule.total_pulses:,} pulses in one session is above the site cap of "
                    f"{site.max_pulses_per_session:,}",
                    site.source,
                    value=schedule.total_pulses,
                    limit=site.max_pulses_per_session,
                    unit="pulses",
                    status=site.status,
                    hint="record the reason to run a larger session",
                )
            )

    def _day_plan(self) -> None:
        schedule, site = self.schedule, self.book.site
        max_sessions = self._cap("max_sessions_per_day", site.max_sessions_per_day)
        max_pulses = self._cap("max_pulses_per_day", site.max_pulses_per_day)
        min_minutes = self._cap("min_minutes_between_session_starts", site.min_minutes_between_session_starts)
        self.checked.update(("site.sessions-per-day", "site.day-pulses", "site.session-spacing"))
        if schedule.sessions_per_day > max_sessions:
            self._site_issue(
                "site.sessions-per-day",
                f"{schedule.sessions_per_day} sessions a day is above the site cap of {max_sessions:g}",
                schedule.sessions_per_day,
                max_sessions,
                "sessions",
            )
        if schedule.pulses_per_day > max_pulses:
            self._site_issue(
                "site.day-pulses",
                f"{schedule.sessions_per_day} sessions of {schedule.total_pulses:,} pulses make "
                f"{schedule.pulses_per_day:,} a day, above the site cap of {max_pulses:,.0f}",
                schedule.pulses_per_day,
                max_pulses,
                "pulses",
            )
        if len(schedule.session_onsets_s) > 1:
            spacing_min = (schedule.session_onsets_s[1] - schedule.session_onsets_s[0]) / 60
            if _below(spacing_min, min_minutes):
                self._site_issue(
                    "site.session-spacing",
                    f"sessions start {_n(spacing_min)} min apart, closer than the site minimum of {min_minutes:g} min",
                    spacing_min,
                    min_minutes,
                    "min",
                )

    def threshold_age(self, as_of: datetime) -> None:
        """A motor threshold older than the site's limit needs a recorded reason (``mt.stale``)."""
        limit_days = self._cap("max_motor_threshold_age_days", self.book.site.max_motor_threshold_age_days)
        self.checked.add("mt.stale")
        for threshold in self.schedule.thresholds_used:
            if threshold.measured_at is None:
                continue
            age_days = (as_of - threshold.measured_at).total_seconds() / 86400
            if age_days > limit_days:
                self._site_issue(
                    "mt.stale",
                    f"the {threshold.describe()} was measured {_days(age_days, _n(age_days))} ago, longer ago "
                    f"than the site limit of {_days(limit_days, f'{limit_days:g}')}",
                    age_days,
                    limit_days,
                    "days",
                    hint="measure the threshold again (tmsctl mt), or record why the old one still holds",
                )

    def history(self, pulses_today: int, sessions_today: int, minutes_since_last: float | None) -> None:
        schedule, site = self.schedule, self.book.site
        max_sessions = self._cap("max_sessions_per_day", site.max_sessions_per_day)
        max_pulses = self._cap("max_pulses_per_day", site.max_pulses_per_day)
        min_minutes = self._cap("min_minutes_between_session_starts", site.min_minutes_between_session_starts)
        if pulses_today and pulses_today + schedule.total_pulses > max_pulses:
            self._site_issue(
                "site.day-pulses",
                f"{pulses_today:,} pulses already today plus {schedule.total_pulses:,} make "
                f"{pulses_today + schedule.total_pulses:,}, above the site cap of {max_pulses:,.0f}",
                pulses_today + schedule.total_pulses,
                max_pulses,
                "pulses",
            )
        if sessions_today and sessions_today + 1 > max_sessions:
            self._site_issue(
                "site.sessions-per-day",
                f"this would be session {sessions_today + 1} today, above the site cap of {max_sessions:g}",
                sessions_today + 1,
                max_sessions,
                "sessions",
            )
        if minutes_since_last is not None and _below(minutes_since_last, min_minutes):
            self._site_issue(
                "site.session-spacing",
                f"the last session started {_n(minutes_since_last)} min ago; the site minimum is {min_minutes:g} min",
                minutes_since_last,
                min_minutes,
                "min",
            )

    def _site_issue(
        self, rule_id: str, text: str, value: float, limit: float, unit: str,
        hint: str = "record the reason to exceed the site cap",
    ) -> None:
        site = self.book.site
        self.add(
            Issue(
                rule_id,
                Severity.WARN,
                text,
                site.source,
                value=value,
                limit=limit,
                unit=unit,
                status=site.status,
                hint=hint,
            )
        )

    # completeness ---------------------------------------------------------------------------

    def completeness(self) -> bool:
        schedule = self.schedule
        required = self.require_complete
        severity = Severity.REFUSE if required else Severity.INFO
        complete = True
        if self.device is None:
            complete = False
            self.add(
                Issue(
                    "context.device",
                    severity,
                    "no stimulator given: device limits (output, frequency, energy, waits, capabilities) not checked",
                    "safety.md §7: device limits are hard limits",
                    status="D",
                    hint="name the stimulator model (e.g. --device-model magstim-rapid2)",
                )
            )
        if not schedule.intensity_resolved:
            complete = False
            if self.device is not None or required:
                self.add(
                    Issue(
                        "context.intensity",
                        severity,
                        "intensity not resolved to %MSO: limits at the output are not checked",
                        "safety.md §7: %MT prescriptions need an MT from this stimulator and coil",
                        status="D",
                        hint="give the motor threshold measured with this stimulator and coil",
                    )
                )
        return complete


class _Unanswered(Exception):
    pass


def _ask(query: Callable[..., float], *arguments: float) -> float:
    """A device-limit query; a spec that cannot answer makes the train refused, never passed."""
    try:
        value = float(query(*arguments))
    except Exception as error:  # any failure of the spec becomes a refusal
        raise _Unanswered(f"{query.__name__}{arguments}: {error}") from error
    if math.isnan(value):
        raise _Unanswered(f"{query.__name__}{arguments} gave no number")
    return value


def _unanswered(device: DeviceLimits, error: _Unanswered, mso: int) -> Issue:
    return Issue(
        "device.spec-unanswered",
        Severity.REFUSE,
        f"the {device.display_name} specification cannot tell its limits at {mso} %MSO ({error})",
        DEVICE_SOURCE,
        status="V",
        hint="the device spec does not cover these parameters; they cannot be checked, so they are refused",
    )


def implied_capabilities(protocol: Protocol) -> set[Capability]:
    """What the pattern needs the device to do, given who times the pulses."""
    kind = protocol.plan().kind
    external = protocol.timed_by == "external_trigger"
    needed: set[Capability] = set()
    if kind == "paired_pulse":
        needed.add(Capability.PAIRED_PULSE)
    elif kind == "single_pulse":
        needed.add(Capability.SINGLE_PULSE)
    elif external:
        pass
    elif kind == "train":
        needed.add(Capability.INTERNAL_TRAIN)
    else:
        needed.add(Capability.THETA_BURST)
    if external:
        needed.add(Capability.EXTERNAL_TRIGGER)
    if external and protocol.trigger == "rts":
        needed.add(Capability.RTS_TRIGGER)
    return needed


def _capability_text(device: DeviceLimits, capability: Capability, protocol: Protocol) -> str:
    name = device.display_name
    if capability is Capability.THETA_BURST:
        return f"the {name} cannot time theta bursts itself (no {capability.value} capability)"
    if capability is Capability.INTERNAL_TRAIN:
        return f"the {name} cannot time trains itself (no {capability.value} capability)"
    if capability is Capability.PAIRED_PULSE:
        return f"the {name} cannot deliver paired pulses (no {capability.value} capability)"
    if capability is Capability.EXTERNAL_TRIGGER:
        return f"the {name} has no external trigger input, which timed_by: external_trigger needs"
    if capability is Capability.RTS_TRIGGER:
        return f"the {name} has no trigger input tmsctl drives through the serial RTS line, which trigger: rts needs"
    return f"the {name} lacks the {capability.value} capability this protocol requires"


def _capability_hint(capability: Capability) -> str:
    if capability is Capability.THETA_BURST:
        return "use a stimulator that times theta bursts itself (e.g. a MagPro X100)"
    if capability is Capability.INTERNAL_TRAIN:
        return "use a stimulator that times trains itself (e.g. a Magstim Rapid² or a MagPro)"
    return "use a stimulator with this capability"
