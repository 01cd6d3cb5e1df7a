"""Motor-threshold records and the %MT → %MSO arithmetic.

A motor threshold belongs to one (stimulator, coil) pair: the same person has a different MT in
%MSO on another stimulator or coil (targeting.md §6), so a record is only used with the pair it
was measured on. Stimulators take whole percent, so resolved intensities are rounded half-up —
explicitly, and the schedule says so in a finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Literal

from tmsctl.core.errors import InvalidArgument
from tmsctl.protocols.models import Coil, exact


@dataclass(frozen=True)
class MotorThreshold:
    """One measured motor threshold."""

    reference: Literal["rMT", "aMT"]
    value_pct_mso: float
    stimulator_model: str
    coil: Coil
    measured_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.reference not in ("rMT", "aMT"):
            raise InvalidArgument(
                f"motor threshold reference {self.reference!r} is neither 'rMT' nor 'aMT'",
                hint="rMT: resting motor threshold; aMT: active motor threshold",
            )
        if not (isinstance(self.value_pct_mso, (int, float)) and 1 <= self.value_pct_mso <= 100):
            raise InvalidArgument(
                f"motor threshold {self.value_pct_mso!r} %MSO is outside 1–100 %MSO",
                hint="enter the threshold in percent of maximum stimulator output, e.g. 55",
            )

    def describe(self) -> str:
        coil = self.coil.model or self.coil.family
        return f"{self.reference} {self.value_pct_mso:g} %MSO ({self.stimulator_model}, {coil})"


def coil_matches(measured_with: Coil, protocol_coil: Coil) -> bool:
    """A threshold fits when the families agree and, if the protocol names a coil model, the models do."""
    if measured_with.family != protocol_coil.family:
        return False
    return protocol_coil.model is None or measured_with.model == protocol_coil.model


def exact_pct_mso(threshold_pct_mso: float, scaling_pct: Fraction) -> Fraction:
    """Intensity in %MSO before rounding: MT × prescription / 100, computed exactly."""
    return exact(threshold_pct_mso) * scaling_pct / 100


def round_half_up(value: Fraction) -> int:
    """Whole percent, halves away from zero (49.5 → 50), as targeting.md §6 prescribes."""
    if value < 0:
        raise InvalidArgument(f"cannot round a negative intensity ({float(value):g})")
    return math.floor(value + Fraction(1, 2))
