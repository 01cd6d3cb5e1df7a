from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tmsctl.core.clock import VirtualClock
from tmsctl.core.events import CollectingListener
from tmsctl.core.registry import open_driver
from tmsctl.session.controller import Controller
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import parse_fault_plan

_names = itertools.count()


@dataclass
class Rig:
    clock: VirtualClock
    sim: sims.SimulatorInstance
    controller: Controller
    events: CollectingListener

    @property
    def device(self):
        return self.sim.device


@pytest.fixture
def make_rig() -> Iterator:
    created: list[Rig] = []

    def make(profile: str = "rapid2", faults: str = "", connect: bool = True) -> Rig:
        clock = VirtualClock()
        name = f"{profile}-rig-{next(_names)}"
        sim = sims.create(profile, clock=clock, faults=parse_fault_plan(faults), name=name)
        events = CollectingListener()
        controller = Controller(open_driver(f"sim://{name}", clock), clock, listeners=[events])
        if connect:
            controller.connect()
        rig = Rig(clock, sim, controller, events)
        created.append(rig)
        return rig

    yield make
    for rig in created:
        rig.controller.close()
        sims.remove(rig.sim.name)
