"""Argument checks every vendor's limits share: strict, never rounding or clamping."""

from __future__ import annotations

import math
import numbers
from typing import TypeGuard

from tmsctl.core.errors import InvalidArgument


def is_number(value: object) -> TypeGuard[float]:
    """A real number that is no bool (an int, a float, a numpy scalar, a Fraction): usable as a float."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def whole_percent(value: object, *, who: str, ceiling: int, step_hint: str) -> int:
    """``value`` as a whole % of maximum output within 0..ceiling, or InvalidArgument."""
    if not (is_number(value) and math.isfinite(value) and value == int(value)):
        raise InvalidArgument(
            f"{who}: output must be a whole percentage of maximum output, got {value!r}", hint=step_hint
        )
    if not 0 <= value <= ceiling:
        raise InvalidArgument(f"{who}: output must be 0–{ceiling} % MSO, got {value}")
    return int(value)


def positive_hz(value: object, *, who: str) -> float:
    if not (is_number(value) and math.isfinite(value) and value > 0):
        raise InvalidArgument(f"{who}: frequency must be a positive number of Hz, got {value!r}")
    return float(value)
