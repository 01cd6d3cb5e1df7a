"""A simulated stimulator on a virtual clock with a simulated subject's EMG wired to its truth log."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tmsctl.clinic.emg import SimulatedEmgSource
from tmsctl.clinic.responder import EmgResponder
from tmsctl.core.clock import VirtualClock
from tmsctl.core.registry import open_driver
from tmsctl.session.controller import Controller
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import parse_fault_plan
from tmsctl.simulators.emg import EmgModel, SimulatedEmg
from tmsctl.simulators.subject import SimulatedSubject

_names = itertools.count()


@dataclass
class EmgBench:
    clock: VirtualClock
    sim: sims.SimulatorInstance
    url: str
    subject: SimulatedSubject
    emg: SimulatedEmg
    source: SimulatedEmgSource

    def controller(self) -> Controller:
        return Controller(open_driver(self.url, self.clock), self.clock)

    def responder(self, **kwargs) -> EmgResponder:
        return EmgResponder(self.source, **kwargs)

    def rng(self) -> random.Random:
        return random.Random(f"iti-{self.emg.seed}")


@pytest.fixture
def emg_bench() -> Iterator[Callable[..., EmgBench]]:
    made: list[str] = []

    def make(seed: int = 1, *, faults: str = "", model: EmgModel | None = None, subject=None) -> EmgBench:
        clock = VirtualClock()
        name = f"emg-{next(_names)}"
        sim = sims.create("rapid2", clock=clock, faults=parse_fault_plan(faults), name=name)
        made.append(name)
        subject = subject or SimulatedSubject.sample(seed)
        emg = SimulatedEmg(subject, sim.device.truth, seed=seed, start_s=clock.now(), model=model)
        return EmgBench(clock, sim, f"sim://{name}", subject, emg, SimulatedEmgSource(emg, clock))

    yield make
    for name in made:
        sims.remove(name)
