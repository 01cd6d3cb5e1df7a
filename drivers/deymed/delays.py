"""DuoMAG delay encoding: 7-bit step count × one of eight step sizes — pure.

A delay is sent as ``U U L L``: ``U`` = 3-bit prefix + top 5 bits of the step count, ``L`` =
3-bit prefix + 3-bit step code + low 2 bits of the step count. Recharge delay uses prefixes
``100``/``101``, TTL-out delay ``110``/``111`` (``shared/reference/deymed.md``, C: MAGIC, TMS_gui).

Durations are integer microseconds (the finest step is 50 µs).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from tmsctl.core.errors import InvalidArgument

MAX_STEPS = 127


class DelayStep(IntEnum):
    """The 3-bit step code; ``step_us`` is its size."""

    US_50 = 0b000
    US_100 = 0b001
    US_200 = 0b010
    US_500 = 0b011
    MS_1 = 0b100
    MS_2 = 0b101
    MS_5 = 0b110
    MS_10 = 0b111

    @property
    def step_us(self) -> int:
        return _STEP_US[self]


_STEP_US = {
    DelayStep.US_50: 50,
    DelayStep.US_100: 100,
    DelayStep.US_200: 200,
    DelayStep.US_500: 500,
    DelayStep.MS_1: 1000,
    DelayStep.MS_2: 2000,
    DelayStep.MS_5: 5000,
    DelayStep.MS_10: 10000,
}

MAX_DELAY_US = MAX_STEPS * DelayStep.MS_10.step_us  # 1270 ms, the encoding's ceiling


@dataclass(frozen=True, slots=True)
class DelayCode:
    """A delay as the unit holds it: ``steps`` (0–127) × ``step``."""

    steps: int
    step: DelayStep

    def __post_init__(self) -> None:
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS:
            raise InvalidArgument(f"a DuoMAG delay has 0..{MAX_STEPS} steps, got {self.steps!r}")
        if not isinstance(self.step, DelayStep):
            raise InvalidArgument(f"step must be a DelayStep, got {self.step!r}")

    @property
    def delay_us(self) -> int:
        return self.steps * self.step.step_us


def delay_code_for(delay_us: int) -> DelayCode:
    """Choose the encoding of a delay, exactly or not at all.

    A delay equal to a step size is sent as one step of that size (as MAGIC does: 10 ms →
    1 × 10 ms). Otherwise the finest step that represents it exactly in at most 127 steps is
    used — the same choice as MAGIC's "smallest step whose range covers it" whenever that one is
    exact. Where MAGIC would floor an off-grid value, tmsctl raises ``InvalidArgument`` naming
    the nearest delays it can send.
    """
    if isinstance(delay_us, bool) or not isinstance(delay_us, int):
        raise InvalidArgument(f"delay_us must be an integer number of microseconds, got {delay_us!r}")
    if not 0 <= delay_us <= MAX_DELAY_US:
        raise InvalidArgument(
            f"a DuoMAG delay must be within 0..{MAX_DELAY_US} µs (1270 ms), got {delay_us} µs"
        )
    if delay_us == 0:
        return DelayCode(0, DelayStep.US_50)
    for step in DelayStep:
        if delay_us == step.step_us:
            return DelayCode(1, step)
    for step in DelayStep:
        steps, remainder = divmod(delay_us, step.step_us)
        if not remainder and steps <= MAX_STEPS:
            return DelayCode(steps, step)
    raise InvalidArgument(
        f"the DuoMAG cannot represent a delay of {delay_us / 1000:g} ms; nearest: {_nearest_ms(delay_us)}",
        hint="a delay is 0–127 steps of 0.05, 0.1, 0.2, 0.5, 1, 2, 5 or 10 ms; tmsctl does not round",
    )


def _nearest_ms(delay_us: int) -> str:
    representable = {steps * step.step_us for step in DelayStep for steps in range(MAX_STEPS + 1)}
    below = max(v for v in representable if v <= delay_us)
    above = min((v for v in representable if v >= delay_us), default=None)
    return " or ".join(f"{v / 1000:g} ms" for v in dict.fromkeys((below, above)) if v is not None)


def upper_byte(prefix: int, code: DelayCode) -> int:
    return prefix << 5 | code.steps >> 2


def lower_byte(prefix: int, code: DelayCode) -> int:
    return prefix << 5 | int(code.step) << 2 | code.steps & 0b11


def code_from_bytes(upper: int, lower: int) -> DelayCode:
    return DelayCode(steps=(upper & 0x1F) << 2 | lower & 0b11, step=DelayStep(lower >> 2 & 0b111))
