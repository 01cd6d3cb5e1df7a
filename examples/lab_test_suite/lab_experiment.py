"""A lab's own experiment code (the thing under test): a paired-intensity MEP block.

It alternates two intensities around the motor threshold and records, per trial, when the pulse
left. Nothing here knows about tests or simulators: it takes a ``tmsctl.lab.api.Stimulator`` and a clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Trial:
    number: int
    intensity_pct: int
    pulse_at_s: float


def run_block(stim, clock, *, mt_pct: float, trials: int = 8, iti_s: float = 4.0) -> list[Trial]:
    """Alternate 110 % and 130 % of the motor threshold, one pulse every ``iti_s`` seconds."""
    levels = [round(1.1 * mt_pct), round(1.3 * mt_pct)]
    done: list[Trial] = []
    for number in range(1, trials + 1):
        intensity = levels[(number - 1) % 2]
        stim.set_intensity(intensity)
        if number == 1:
            stim.arm()
        delivery = stim.fire()
        done.append(Trial(number, intensity, delivery.started_at))
        clock.sleep(iti_s)
    stim.disarm()
    return done
