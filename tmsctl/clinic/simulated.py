"""A simulated subject's EMG wired to a simulated stimulator: what ``--emg sim`` runs.

The stimulator simulator is created here (or, when a test pre-registered it, taken as it is) so
its truth log is at hand: the subject's EMG answers the pulses the simulator really delivered —
their instant and power — never what the host believes it sent. The rest of the path is the real
one: driver, controller, EMG source, MEP detector.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tmsctl.core.clock import Clock, SystemClock, VirtualClock
from tmsctl.core.errors import InvalidArgument
from tmsctl.core.url import DeviceURL

from .emg import SimulatedEmgSource

__all__ = ["SimulatedEmgRig", "simulated_emg_rig"]

_names = itertools.count()


@dataclass(frozen=True)
class SimulatedEmgRig:
    url: str  # sim://NAME of the registered simulator the hunt must open
    clock: Clock
    instance: Any  # tmsctl.simulators.registry.SimulatorInstance
    emg: Any  # tmsctl.simulators.emg.SimulatedEmg
    source: SimulatedEmgSource


@contextmanager
def simulated_emg_rig(
    device: DeviceURL, subject: Any, *, seed: int, virtual_time: bool, model: Any | None = None,
    placement: Any | None = None, hotspot: Any | None = None,
) -> Iterator[SimulatedEmgRig]:
    """A simulator for ``device`` (sim://PROFILE[?fault=…]) with ``subject``'s EMG on its truth log.

    With a ``hotspot`` map and no ``placement``, the simulated coil is made here on the simulator's
    clock (``rig.emg.placement``): whoever moves the coil moves that one."""
    from tmsctl.simulators import registry as sims
    from tmsctl.simulators.device import parse_fault_plan
    from tmsctl.simulators.emg import SimulatedEmg

    if not device.is_simulator:
        raise InvalidArgument(
            "a simulated subject's EMG answers only a simulated stimulator (sim://…)",
            hint="for a real stimulator give --emg lsl:STREAM_NAME",
        )
    name = device.simulator_profile or ""
    instance = sims.lookup(name)
    created = None
    if instance is None:
        clock: Clock = VirtualClock() if virtual_time else SystemClock()
        created = f"emg-{name}-{next(_names)}"
        instance = sims.create(name, clock=clock, faults=parse_fault_plan(device.options.get("fault", "")),
                               name=created)
    if hotspot is not None and placement is None:
        from tmsctl.simulators.hotspot import CoilPlacement

        placement = CoilPlacement(instance.clock)
    try:
        emg = SimulatedEmg(subject, instance.device.truth, seed=seed, start_s=instance.clock.now(), model=model,
                           placement=placement, hotspot=hotspot)
        yield SimulatedEmgRig(f"sim://{instance.name}", instance.clock, instance, emg,
                              SimulatedEmgSource(emg, instance.clock))
    finally:
        if created is not None:
            sims.remove(created)
