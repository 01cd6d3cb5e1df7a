"""The controller's runtime interlocks, as pure objects over data and time.

These are the second safety layer (after the protocol check, before the driver's argument checks
and the device's own interlocks). Each guard answers "why not?" with a sentence, or None; the
controller evaluates all of them and refuses with every reason at once.

The limits live in ``RUNTIME_LIMITS`` (reviewed data). They are deliberately a little stricter
than the device's own, so a correct controller never provokes the device's interlock: the
simulator's interlock log is asserted empty in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tmsctl.core.errors import InvalidArgument


@dataclass(frozen=True)
class RuntimeLimits:
    coil_arm_limit_c: float  # refuse to arm at or above (device: 40.0 °C)
    coil_stop_limit_c: float  # stop stimulating at or above
    keepalive_period_s: float  # how often the controller refreshes the device
    keepalive_stale_s: float  # armed and no confirmed contact for this long → fault
    fire_lead_guard_s: float  # no keep-alive may start this close before a scheduled fire


RUNTIME_LIMITS = RuntimeLimits(
    coil_arm_limit_c=39.0,  # 1 °C margin under the Magstim 40 °C limit (magstim.md §11)
    coil_stop_limit_c=39.5,
    keepalive_period_s=0.5,  # the bulletins' recommendation (TDb086 §3(b), TDb087 §5.4)
    keepalive_stale_s=0.9,  # under the 1 s armed limit
    fire_lead_guard_s=0.03,  # a keep-alive exchange takes ~8 ms; keep it clear of the trigger
)


class RateLimiter:
    """No two triggers closer than the device's minimum interval for the intensity in use."""

    def __init__(self) -> None:
        self.last_trigger_at: float | None = None
        self.earliest_next: float = float("-inf")

    def why_not(self, now: float) -> str | None:
        if now < self.earliest_next - 1e-9:
            return (
                f"the next pulse may come {self.earliest_next - now:.3f} s from now at the earliest "
                "(minimum interval for this device and intensity)"
            )
        return None

    def record(self, now: float, busy_until: float, min_interval_s: float) -> None:
        self.last_trigger_at = now
        self.earliest_next = max(busy_until, now + min_interval_s)


class EnergyBudget:
    """A leaky bucket of stimulator energy: pulses fill it, it drains at a constant power.

    With the Rapid² figures (drain 1050 J/s, capacity 63 kJ) a train is allowed when what is left
    in the bucket plus what the train puts out in any one minute fits: the bulletin's "≤ 63 kJ per
    minute" (TDb087 §3, reference magstim.md §10), whose on-time limit is 63000 / (f·E) and whose
    trains that add less than the drain (1 Hz at any power) run continuously. After the train the
    bucket holds what the train added less what drained while it ran, so the bulletin's minimum
    inter-train wait, N·(f·E − 1050) / (1050·f), is exactly the time it takes to empty.
    """

    def __init__(self, capacity_j: float, drain_w: float, energy_j: Callable[[int], float]) -> None:
        if capacity_j <= 0 or drain_w <= 0:
            raise InvalidArgument("an energy budget needs a positive capacity and drain")
        self.capacity_j = capacity_j
        self.drain_w = drain_w
        self._energy_j = energy_j
        self.level_j = 0.0
        self._at: float | None = None

    def _drain_to(self, now: float) -> None:
        if self._at is not None:
            self.level_j = max(0.0, self.level_j - (now - self._at) * self.drain_w)
        self._at = now

    def level_at(self, now: float) -> float:
        if self._at is None or now <= self._at:
            return self.level_j
        return max(0.0, self.level_j - (now - self._at) * self.drain_w)

    def _rise_j(self, pulses: int, intensity_pct: int, frequency_hz: float | None) -> tuple[float, float]:
        """(the most the train puts out in any one minute, what it leaves in the bucket at its end)."""
        energy = self._energy_j(intensity_pct)
        if pulses <= 1 or not frequency_hz:
            return pulses * energy, pulses * energy
        in_a_minute = min(pulses, math.floor(60.0 * frequency_hz + 1e-9) + 1)
        end = pulses * energy - self.drain_w * (pulses - 1) / frequency_hz
        return in_a_minute * energy, max(energy, end)

    def why_not(self, now: float, pulses: int, intensity_pct: int, frequency_hz: float | None = None) -> str | None:
        peak, _ = self._rise_j(pulses, intensity_pct, frequency_hz)
        level = self.level_at(now)
        if level + peak > self.capacity_j + 1e-6:
            wait = (level + peak - self.capacity_j) / self.drain_w
            return (
                f"energy budget: {pulses} pulses at {intensity_pct} % add up to {peak / 1000:.1f} kJ, "
                f"{(self.capacity_j - level) / 1000:.1f} kJ available; wait {wait:.1f} s"
            )
        return None

    def record(self, now: float, pulses: int, intensity_pct: int, frequency_hz: float | None = None) -> None:
        self._drain_to(now)
        _, end = self._rise_j(pulses, intensity_pct, frequency_hz)
        self.level_j += end
        if pulses > 1 and frequency_hz:
            self._at = now + (pulses - 1) / frequency_hz  # the level as it stands at the train's last pulse


class PulseCap:
    """A hard ceiling on pulses (the validated protocol's total for a session)."""

    def __init__(self, limit: int, delivered: int = 0) -> None:
        self.limit = limit
        self.delivered = delivered

    def why_not(self, pulses: int) -> str | None:
        if self.delivered + pulses > self.limit:
            return (
                f"pulse cap: {self.delivered} delivered + {pulses} would exceed the {self.limit} "
                "allowed for this session"
            )
        return None

    def record(self, pulses: int) -> None:
        self.delivered += pulses
