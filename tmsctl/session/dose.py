"""What one trigger delivered, from the evidence the device gave: pure, and never more precise than it.

A trigger commands pulses; whether each went out is *known* only from evidence:

* an acknowledged trigger: its first pulse left between the moment the command was sent and the
  moment the acknowledgement arrived;
* the device's own train-in-progress report: a status read *sent* at ``t`` that says the train is
  running means every pulse due before ``t`` went out (the unit evaluated the status at or after
  ``t``); one that says it is not running means no pulse went out after that reply arrived;
* a confirmed disarm: no pulse after its confirmation;
* the device's normal end of a train (its running flag cleared after the last pulse was due,
  having been seen running after the one before it was due): the last pulse went out. A unit
  that skips only its very last pulse and then reports a normal end cannot be told apart; no
  status it sends would show it;
* a pulse counter the device reports (the MagPro's di/dt message after every stimulus): exact.
* a trigger edge (RTS quick-fire, a TTL) has no acknowledgement: nothing on the line says the unit
  fired. A device-timed train it starts is known begun from the first status read that reports it
  running (sent after the edge). A single pulse is known out when a status read sent after its edge
  (and before the next) finds the unit recharging while it was charged at the edge: seen charged
  by a read since the trigger before, or the edge before is known fired and this one came at least
  the device's rated repetition interval later (its frequency table: the premise, as a train's
  pulse times are). Only a discharge takes a charged unit back to recharging, and the edge was the
  only trigger. A read that finds the unit charged again leaves the pulse uncertain.
* a pair the device times itself (a BiStim²: output B fires one ISI after A, read back as set
  just before the trigger): once the first pulse is acknowledged and the host sent nothing that
  could stop the unit before the second was due at the latest, the second went out. As with a
  train's last pulse, a unit that silently skips output B cannot be told apart: no reply says so.

Pulse ``k`` of a device-timed train is due at ``p0 + offset[k]``, with ``p0`` somewhere between the
trigger's send time and its acknowledgement. A pulse is *delivered* when evidence says it went
out, *not delivered* when evidence says it cannot have, and *uncertain* otherwise. An intent
without any outcome is "uncertain: 0 to the whole train".
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DoseCount:
    """What a train (or pulse) delivered: ``delivered`` known out, ``uncertain`` may have gone out."""

    commanded: int
    delivered: int
    uncertain: int
    evidence: str = ""

    def __post_init__(self) -> None:
        if not (self.delivered >= 0 and self.uncertain >= 0 and self.delivered + self.uncertain <= self.commanded):
            raise ValueError(
                f"a dose count needs 0 <= delivered ({self.delivered}) and 0 <= uncertain ({self.uncertain}) "
                f"with delivered + uncertain <= commanded ({self.commanded})"
            )

    @property
    def at_most(self) -> int:
        """The most that may have gone out: what every cap and exposure counts."""
        return self.delivered + self.uncertain

    @property
    def complete(self) -> bool:
        """Known delivered in full."""
        return self.delivered == self.commanded

    def plus(self, other: DoseCount) -> DoseCount:
        evidence = "; ".join(e for e in (self.evidence, other.evidence) if e)
        return DoseCount(
            self.commanded + other.commanded, self.delivered + other.delivered,
            self.uncertain + other.uncertain, evidence,
        )

    def describe(self) -> str:
        """``"60 of 60"``, ``"24 of 60 (+ up to 3 uncertain)"``: how a person reads it."""
        text = f"{self.delivered} of {self.commanded}"
        return text + (f" (+ up to {self.uncertain} uncertain)" if self.uncertain else "")


def unknown_outcome(commanded: int, why: str = "intent recorded, no outcome") -> DoseCount:
    return DoseCount(commanded, 0, commanded, why)


@dataclass(frozen=True)
class TriggerEvidence:
    """What the controller observed around one trigger; every time on the session's clock.

    ``running_seen_at``: the send time of the latest status read that reported the train running.
    ``stopped_by``: the arrival time of the first reply saying nothing more can fire (a confirmed
    disarm, or a status with the train no longer running); ``None`` while that is unknown.
    ``normal_end``: the device ended the train itself, after its last pulse was due.
    ``device_count``: pulses the device itself reported for this trigger, when it reports them.
    """

    pulse_offsets_s: tuple[float, ...]
    sent_at: float
    acknowledged_at: float | None = None
    running_seen_at: float | None = None
    stopped_by: float | None = None
    normal_end: bool = False
    device_count: int | None = None
    device_count_final: bool = False  # the count can no longer grow (the device confirmed it stopped)
    # The device fires every pulse after the first on its own timer (a paired pulse), and ``normal_end``
    # says the host left it alone until the last was due at the latest.
    device_timed_after_first: bool = False
    # Unacknowledged triggers (RTS): the send time of the first status read that reported the train
    # running (the train began by then), and whether the unit was seen recharging after the edges.
    first_running_seen_at: float | None = None
    edges_seen_fired: int | None = None  # single-pulse edges the status after each showed fired


def reconcile(evidence: TriggerEvidence) -> DoseCount:
    """The delivered/uncertain split that the evidence supports: exact where it is exact."""
    offsets = evidence.pulse_offsets_s
    n = len(offsets)
    if n == 0:
        raise ValueError("a trigger commands at least one pulse")
    if evidence.device_count is not None:
        counted = min(evidence.device_count, n)
        if evidence.device_count_final:
            return DoseCount(n, counted, 0, f"the device reported {evidence.device_count} pulse(s)")
        return DoseCount(n, counted, n - counted, f"the device reported {counted} pulse(s) so far")
    acked = evidence.acknowledged_at
    running = evidence.running_seen_at
    if evidence.edges_seen_fired is not None:
        return _edges(evidence, evidence.edges_seen_fired)
    if acked is None and evidence.first_running_seen_at is not None:
        # No acknowledgement, but the device reported the train running: it began by that read.
        return _unacknowledged_train(evidence, evidence.first_running_seen_at)
    if evidence.device_timed_after_first and evidence.normal_end and acked is not None:
        return DoseCount(
            n, n, 0, "acknowledged trigger; the device fires the second pulse of the pair itself, and nothing "
            "stopped it before that pulse was due",
        )
    if evidence.normal_end and acked is not None and (
        n == 1 or (running is not None and running >= acked + offsets[-2])
    ):
        return DoseCount(
            n, n, 0,
            "acknowledged trigger" if n == 1 else
            "acknowledged trigger; running after its last-but-one pulse; the device ended it after its last",
        )
    # The latest the first pulse can have gone out.
    if acked is not None:
        first_latest = acked
    elif evidence.running_seen_at is not None:
        first_latest = evidence.running_seen_at
    else:
        first_latest = math.inf
    known = 0
    if acked is not None:
        known = 1  # an acknowledged trigger fired its first pulse
    if running is not None:
        known = max(known, sum(1 for off in offsets if first_latest + off <= running))
    stopped = evidence.stopped_by
    could = n if stopped is None else sum(1 for off in offsets if evidence.sent_at + off <= stopped)
    if evidence.device_timed_after_first:
        # The second output fires on the unit's own timer once the first went: no source says a
        # disarm cancels it, so a stop after the trigger leaves it possible, never excluded.
        could = n
    could = max(could, known)
    parts = []
    parts.append("acknowledged trigger" if acked is not None else "trigger sent, not acknowledged")
    if running is not None:
        parts.append("device reported the train running")
    parts.append("device confirmed stopped" if stopped is not None else "stop not confirmed")
    return DoseCount(n, known, could - known, "; ".join(parts))


def _unacknowledged_train(evidence: TriggerEvidence, began_by: float) -> DoseCount:
    """A device-timed train fired by an edge: its pulse k went out by ``began_by + offset[k]``."""
    offsets = evidence.pulse_offsets_s
    n = len(offsets)
    running = evidence.running_seen_at
    assert running is not None
    if evidence.normal_end and (n == 1 or running >= began_by + offsets[-2]):
        return DoseCount(
            n, n, 0, "trigger edge, no acknowledgement; the device reported the train running after its "
            "last-but-one pulse and ended it after its last",
        )
    known = max(1, sum(1 for off in offsets if began_by + off <= running))
    stopped = evidence.stopped_by
    could = n if stopped is None else sum(1 for off in offsets if evidence.sent_at + off <= stopped)
    could = max(could, known)
    return DoseCount(
        n, known, could - known,
        "trigger edge, no acknowledgement; device reported the train running; "
        + ("device confirmed stopped" if stopped is not None else "stop not confirmed"),
    )


def _edges(evidence: TriggerEvidence, seen_fired: int) -> DoseCount:
    """Single-pulse trigger edges, each followed by a status read: those it showed fired are known."""
    offsets = evidence.pulse_offsets_s
    n = len(offsets)
    known = min(seen_fired, n)
    stopped = evidence.stopped_by
    could = n if stopped is None else sum(1 for off in offsets if evidence.sent_at + off <= stopped)
    could = max(could, known)
    text = f"{n} trigger edge(s), no acknowledgement; the status after {known} showed the unit recharging from it"
    return DoseCount(n, known, could - known, text)
