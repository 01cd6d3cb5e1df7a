"""What a rule reads: the schedule under check with its context, and one train shape at a time.

A rule function (``tmsctl.protocols.rulebook.rule``) gets an ``Evaluation`` (session rules) or a
``TrainCase`` (train and exposure rules) and returns its issues. The figures several rules share
(what the device answers for a train, the intensity it can deliver) are worked out once per train
shape, here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from tmsctl.core.errors import InvalidArgument
from tmsctl.drivers.base import DeviceLimits
from tmsctl.protocols.findings import Finding, Issue, Severity
from tmsctl.protocols.models import format_number
from tmsctl.protocols.rulebook import Rulebook
from tmsctl.protocols.schedule import Schedule, ScheduledTrain

REPETITIVE = ("train", "theta_burst", "patterned")
DEVICE_SOURCE = "device specification (DeviceLimits of the connected model)"
ABSOLUTE_MAX_PCT_MSO = 100


def exceeds(value: float, limit: float) -> bool:
    return value > limit + abs(limit) * 1e-9 + 1e-12


def below(value: float, limit: float) -> bool:
    return value < limit - abs(limit) * 1e-9 - 1e-12


def number(value: float | None) -> str:
    return "?" if value is None else format_number(value)


def days(value: float, text: str) -> str:
    """``text`` (the number as shown) with "day" or "days": "1 day", "0.5 days", "2 days"."""
    return f"{text} day" if text == "1" else f"{text} days"


def rate_text(train: ScheduledTrain) -> str:
    if train.kind == "train":
        return f"{number(train.frequency_hz)} Hz"
    if train.kind == "theta_burst":
        return "theta burst"
    return train.kind.replace("_", " ")


# --- policy ---------------------------------------------------------------------------------


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
class History:
    """What the records say about the day so far."""

    pulses_today: int = 0
    sessions_today: int = 0
    minutes_since_last_start: float | None = None


# --- the schedule under check ---------------------------------------------------------------


class Evaluation:
    """The schedule, the rulebook and the context a check was given; collects the issues."""

    def __init__(
        self,
        schedule: Schedule,
        book: Rulebook,
        policy: SitePolicy,
        require_complete: bool,
        history: History,
        as_of: datetime | None,
    ) -> None:
        self.schedule = schedule
        self.book = book
        self.policy = policy
        self.require_complete = require_complete
        self.history = history
        self.as_of = as_of
        self.device = schedule.device
        self.protocol = schedule.protocol
        self.family = book.family(schedule.coil_family)
        self.checked: set[str] = set()
        self._issues: dict[Issue, set[int]] = {}

    def add(self, issue: Issue, trains: Iterable[int] = ()) -> None:
        self._issues.setdefault(issue, set()).update(trains)

    def issues(self) -> frozenset[Issue]:
        return frozenset(self._issues)

    def findings(self) -> tuple[Finding, ...]:
        return tuple(issue.finding(trains) for issue, trains in self._issues.items())

    def cap(self, name: str, default: float) -> float:
        """A site cap: the policy's, where it sets one, else the rulebook's."""
        value = getattr(self.policy, name)
        return default if value is None else value

    def pct_mt(self, train: ScheduledTrain, purpose: str) -> float | None:
        """The train's intensity in %MT, or None after recording why ``purpose`` could not be applied."""
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


# --- one train shape ------------------------------------------------------------------------


class Unanswered(Exception):
    pass


def ask(query: Callable[..., float], *arguments: float) -> float:
    """A device-limit query; a spec that cannot answer makes the train refused, never passed."""
    try:
        value = float(query(*arguments))
    except Exception as error:  # any failure of the spec becomes a refusal
        raise Unanswered(f"{query.__name__}{arguments}: {error}") from error
    if math.isnan(value):
        raise Unanswered(f"{query.__name__}{arguments} gave no number")
    return value


@dataclass(frozen=True)
class TrainLimits:
    """What the device answers for a repetitive train at its output and rate."""

    max_frequency_hz: float
    max_on_time_s: float
    min_wait_s: float
    """0 where the device was not asked (no gap after the train, or more pulses than it allows)."""
    asked_wait: bool


class TrainCase:
    """One train shape (the first of the trains that share it) and the gap after it."""

    def __init__(self, evaluation: Evaluation, train: ScheduledTrain, gap: float | None) -> None:
        self.evaluation = evaluation
        self.train = train
        self.gap = gap
        self.device = evaluation.device

    @cached_property
    def deliverable_mso(self) -> int | None:
        """The train's %MSO where a device is given and can deliver every intensity of the train."""
        device, train = self.device, self.train
        if device is None or train.intensity_pct_mso is None:
            return None
        intensities = (train.intensity_pct_mso, train.conditioning_intensity_pct_mso)
        if any(value is not None and value > device.max_intensity_pct_mso for value in intensities):
            return None
        return train.intensity_pct_mso

    @cached_property
    def repetitive_limits(self) -> TrainLimits | Unanswered | None:
        """The device's answers for a repetitive train it can deliver (None for other trains)."""
        device, train, mso = self.device, self.train, self.deliverable_mso
        if device is None or mso is None or train.kind not in REPETITIVE:
            return None
        mean = train.mean_frequency_hz
        assert train.peak_frequency_hz is not None and mean is not None
        asks_wait = self.gap is not None and train.n_pulses <= device.max_pulses_per_train
        try:
            return TrainLimits(
                ask(device.max_frequency_hz, mso),
                ask(device.max_train_on_time_s, mso, mean),
                ask(device.min_inter_train_interval_s, mso, mean, train.n_pulses) if asks_wait else 0.0,
                asks_wait,
            )
        except Unanswered as error:
            return error

    @cached_property
    def single_pulse_interval(self) -> tuple[float, int, float | Unanswered] | None:
        """For a host-triggered pulse (or pair) followed by another: the interval to the next, the
        highest intensity, and the device's minimum interval at that intensity."""
        device, train, mso = self.device, self.train, self.deliverable_mso
        if device is None or mso is None or train.kind in REPETITIVE or self.gap is None:
            return None
        following = self.evaluation.schedule.trains[train.index + 1]
        interval = following.onset_s - train.onset_s
        highest = max(v for v in (mso, train.conditioning_intensity_pct_mso) if v is not None)
        try:
            minimum: float | Unanswered = ask(device.min_single_pulse_interval_s, highest)
        except Unanswered as error:
            minimum = error
        return interval, highest, minimum


def unanswered(device: DeviceLimits, error: Unanswered, mso: int) -> Issue:
    return Issue(
        "device.spec-unanswered",
        Severity.REFUSE,
        f"the {device.display_name} specification cannot tell its limits at {mso} %MSO ({error})",
        DEVICE_SOURCE,
        status="V",
        hint="the device spec does not cover these parameters; they cannot be checked, so they are refused",
    )
