"""Where the simulated coil sits on the simulated head, and how much of the pulse reaches the muscle's cortex.

Model (ours, status D): positions are millimetres on a flat patch of scalp (x lateral, y
anterior). The muscle's cortical representation has a hotspot; a pulse given with the coil centre
d mm away stimulates it as a pulse of ``gain(d) = exp(−d² / (2·w²))`` times the intensity at the
hotspot (a Gaussian fall-off of the effective field, w = ``width_mm``). MEP maps of hand muscles
are roughly this shape, a few cm across.

:class:`CoilPlacement` is the simulated coil: whoever "moves" it (a test's operator, a simulated
neuronavigation system) calls :meth:`CoilPlacement.move_to` on the clock, and the EMG asks
:meth:`CoilPlacement.position_at` the instant of each true pulse — the position at the moment the
stimulator fired, not where the host thinks the coil was.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from tmsctl.core.clock import Clock
from tmsctl.core.errors import InvalidArgument

__all__ = ["CoilPlacement", "HotspotMap"]


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class HotspotMap:
    centre_mm: tuple[float, float] = (0.0, 0.0)
    width_mm: float = 12.0

    def __post_init__(self) -> None:
        for k, v in enumerate(self.centre_mm):
            _finite(f"centre_mm[{k}]", v)
        if _finite("width_mm", self.width_mm) <= 0:
            raise InvalidArgument(f"width_mm must be > 0, got {self.width_mm!r}")

    def gain(self, position_mm: tuple[float, float]) -> float:
        dx = position_mm[0] - self.centre_mm[0]
        dy = position_mm[1] - self.centre_mm[1]
        return math.exp(-(dx * dx + dy * dy) / (2.0 * self.width_mm ** 2))


class CoilPlacement:
    """The simulated coil's position over time (starts at ``start_mm``)."""

    def __init__(self, clock: Clock, start_mm: tuple[float, float] = (0.0, 0.0)) -> None:
        self.clock = clock
        self._times: list[float] = [-math.inf]
        self._positions: list[tuple[float, float]] = [(_finite("x", start_mm[0]), _finite("y", start_mm[1]))]

    def move_to(self, position_mm: tuple[float, float]) -> None:
        x, y = _finite("x", position_mm[0]), _finite("y", position_mm[1])
        self._times.append(self.clock.now())
        self._positions.append((x, y))

    @property
    def current(self) -> tuple[float, float]:
        return self._positions[-1]

    def position_at(self, t: float) -> tuple[float, float]:
        return self._positions[bisect.bisect_right(self._times, t) - 1]
