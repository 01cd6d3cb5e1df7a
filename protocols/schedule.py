"""The expanded, timed schedule of one session: every train's onset, pulses and intensity.

Times are seconds from the session start (onsets) or from the train onset (pulse offsets). All
trains of one shape share one ``pulse_offsets_s`` tuple, so an 18,000-pulse day stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tmsctl.drivers.base import DeviceLimits
from tmsctl.protocols.findings import Finding
from tmsctl.protocols.models import Plan, Protocol, TrainKind
from tmsctl.protocols.thresholds import MotorThreshold

# Host-timed trigger edges (``timed_by: external_trigger`` with ``trigger: rts``): pulses closer
# than this are one burst the controller times itself, with only a short status read after each
# edge (the intensity read-back before a trigger takes ~30 ms at 9600 baud and its 50 ms lead).
RTS_BURST_GAP_S = 0.1
# The longest such burst: it is one call, so a pause or abort waits for its end and the intensity
# is read back only before it; kept well inside the 0.5 s keep-alive period.
RTS_BURST_MAX_S = 0.4


def host_bursts(offsets: tuple[float, ...], gap_s: float = RTS_BURST_GAP_S) -> tuple[tuple[float, ...], ...]:
    """``offsets`` split into bursts: runs of pulses each less than ``gap_s`` after the one before."""
    bursts: list[list[float]] = []
    for offset in offsets:
        if bursts and offset - bursts[-1][-1] < gap_s - 1e-9:
            bursts[-1].append(offset)
        else:
            bursts.append([offset])
    return tuple(tuple(burst) for burst in bursts)


@dataclass(frozen=True)
class ScheduledTrain:
    index: int
    """0-based position in the session (messages count from 1)."""
    onset_s: float
    """First pulse, seconds after the session start."""
    intensity_pct_mso: int | None
    """Whole %MSO sent to the stimulator; None while no motor threshold resolves a %MT prescription."""
    n_pulses: int
    pulse_offsets_s: tuple[float, ...]
    """Pulse onsets relative to ``onset_s``; the first is 0."""
    frequency_hz: float | None
    """Pulse rate of a regular train; None for single pulses, pairs and patterned (burst) trains."""
    duration_s: float
    """Nominal length: n/f for trains, bursts × burst interval for TBS, the pair's span, 0 for a pulse."""
    kind: TrainKind
    peak_frequency_hz: float | None
    """1 / the shortest interval between pulses of this train (inside bursts for TBS)."""
    intensity_pct_of_reference: float
    """The prescription after any ramp, in percent of the protocol's intensity reference."""
    intensity_pct_mt: float | None
    """Intensity in percent of ``Schedule.mt_reference``; None when it cannot be known."""
    conditioning_intensity_pct_mso: int | None = None
    """Paired pulse only: the first (conditioning) pulse."""

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def end_s(self) -> float:
        return self.onset_s + self.duration_s

    @property
    def mean_frequency_hz(self) -> float | None:
        """Pulses per second over the train (the figure energy and duty-cycle limits use)."""
        if self.n_pulses < 2 or self.duration_s <= 0 or self.kind in ("single_pulse", "paired_pulse"):
            return None
        return self.n_pulses / self.duration_s


@dataclass(frozen=True)
class Schedule:
    protocol_id: str
    protocol_hash: str
    trains: tuple[ScheduledTrain, ...]
    total_pulses: int
    duration_s: float
    """Nominal session length: the outermost repetition's count × interval (NeuroStar: 75 × 30 s)."""
    end_s: float
    """End of the last train (its onset + nominal duration)."""
    last_pulse_onset_s: float
    intensity_pct_mso: int | None
    """The target intensity after rounding (ramped trains carry their own)."""
    intensity_exact_pct_mso: float | None
    """The target intensity before rounding."""
    intensity_reference: Literal["rMT", "aMT", "MSO"]
    mt_reference: Literal["rMT", "aMT"] | None
    """What ``ScheduledTrain.intensity_pct_mt`` is relative to."""
    findings: tuple[Finding, ...]
    """What expansion had to decide or refuse (motor-threshold provenance, rounding)."""
    thresholds_used: tuple[MotorThreshold, ...]
    thresholds_provided: bool
    """False for a plan: no threshold records were passed, so %MT intensities stay unresolved."""
    device_model: str | None
    coil_family: str
    sessions_per_day: int
    session_onsets_s: tuple[float, ...]
    """Session starts relative to the first session of the day."""
    pulses_per_day: int
    day_span_s: float
    """First session start to the end of the last session's last train."""
    plan: Plan = field(repr=False)
    protocol: Protocol = field(repr=False, compare=False)
    device: DeviceLimits | None = field(default=None, repr=False, compare=False)

    @property
    def intensity_resolved(self) -> bool:
        return all(train.intensity_pct_mso is not None for train in self.trains)

    def gap_after_s(self, train: ScheduledTrain) -> float | None:
        """Off time from the end of ``train`` to the next train's first pulse."""
        if train.index + 1 >= len(self.trains):
            return None
        return self.trains[train.index + 1].onset_s - train.end_s

    def continuous_runs(self, min_gap_s: float) -> tuple[tuple[ScheduledTrain, ...], ...]:
        """Consecutive trains whose gaps (end of one to the next one's first pulse) are all shorter
        than ``min_gap_s``: each run of two or more trains, in order.

        Pulses that never pause for ``min_gap_s`` are one exposure however the file cuts them, so
        the exposure rules judge such a run as one continuous train.
        """
        runs: list[tuple[ScheduledTrain, ...]] = []
        current: list[ScheduledTrain] = []
        for train in self.trains:
            current.append(train)
            gap = self.gap_after_s(train)
            if gap is None or gap >= min_gap_s - abs(min_gap_s) * 1e-9 - 1e-12:  # rules.py's tolerance
                if len(current) > 1:
                    runs.append(tuple(current))
                current = []
        return tuple(runs)

    def summary(self) -> dict[str, Any]:
        return {
            "protocol_id": self.protocol_id,
            "protocol_hash": self.protocol_hash,
            "trains": len(self.trains),
            "total_pulses": self.total_pulses,
            "duration_s": self.duration_s,
            "end_s": self.end_s,
            "last_pulse_onset_s": self.last_pulse_onset_s,
            "intensity_reference": self.intensity_reference,
            "intensity_pct_of_reference": self.protocol.intensity.scaling_pct,
            "intensity_pct_mso": self.intensity_pct_mso,
            "intensity_exact_pct_mso": self.intensity_exact_pct_mso,
            "device_model": self.device_model,
            "coil_family": self.coil_family,
            "sessions_per_day": self.sessions_per_day,
            "session_onsets_s": list(self.session_onsets_s),
            "pulses_per_day": self.pulses_per_day,
            "day_span_s": self.day_span_s,
        }
