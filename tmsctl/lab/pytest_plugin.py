"""pytest fixtures for testing code that drives a stimulator, without hardware.

Installed with tmsctl (entry point ``pytest11: tmsctl``), so a lab's own test suite gets these
fixtures with no conftest at all. Everything runs on a ``VirtualClock``: a 20-minute session takes
milliseconds and no test ever waits in real time.

Fixtures
--------
``tms_clock``
    A fresh ``tmsctl.core.clock.VirtualClock`` (autojump). Simulated time passes only while your code
    and the controller wait, e.g. ``tms_clock.sleep(2.5)`` between pulses.
``tms_fault_plan``
    The fault plan for this test's simulators: ``FaultPlan(text, faults)``. Empty unless the test
    is marked ``@pytest.mark.tms_faults("coil_unplugged@30s,no_reply@cmd5")``; override the
    fixture to compute one.
``tms_simulator``
    A factory: ``tms_simulator(profile="rapid2", faults=None) -> TmsSimulator`` builds a simulated
    stimulator on ``tms_clock`` (with ``tms_fault_plan`` unless ``faults`` is given, a plan string),
    registers it under a unique name and removes it at teardown. ``.url`` is what to open
    (``sim://<name>``), ``.device`` the model (its ``pulses``, ``pulse_count``, ``armed``,
    ``fault_log``), ``.clock`` its clock.
``tms_trace``
    A ``ByteTrace``: every byte between the stimulator fixture and the simulator, as
    ``(t, direction, data)`` records (``direction`` is ``"tx"`` to the device, ``"rx"`` from it);
    ``trace.tx()``/``trace.rx()`` concatenate one direction, ``trace.dump()`` prints it. Pass it as
    ``tap=`` to ``tmsctl.open`` to trace a stimulator you open yourself.
``tms_events``
    A ``tmsctl.core.events.CollectingListener`` attached to ``tms_stimulator``: ``tms_events.of("pulse_delivered")``.
``tms_stimulator``
    ``tmsctl.open(tms_simulator().url, clock=tms_clock, listeners=[tms_events], tap=tms_trace)``:
    a connected ``tmsctl.lab.api.Stimulator``, closed (disarmed) at teardown. Choose the model with
    ``@pytest.mark.tms_profile("bistim")``; faults with ``tms_faults``. ``run()`` records sessions in
    a database inside the test's temporary directory.

Example::

    import pytest

    def test_my_experiment_fires_ten_pulses(tms_stimulator, tms_simulator, tms_clock, tms_events):
        run_my_experiment(tms_stimulator, pulses=10)          # your code, unchanged
        assert len(tms_events.of("pulse_delivered")) == 10

    @pytest.mark.tms_faults("coil_unplugged@3s")
    def test_my_experiment_stops_cleanly_when_the_coil_is_unplugged(tms_stimulator):
        with pytest.raises(tmsctl.core.errors.TmsError):
            run_my_experiment(tms_stimulator, pulses=10)

Simulator profiles: ``tmsctl sim list`` (``rapid2``, ``rapid2-v8``, ``bistim``, ``m200`` …).
See ``docs/pytest-plugin.md``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tmsctl.core.clock import VirtualClock
from tmsctl.core.events import CollectingListener

_names = itertools.count(1)


@dataclass(frozen=True)
class FaultPlan:
    """A fault plan as written (``text``) and parsed (``faults``)."""

    text: str
    faults: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        from tmsctl.simulators.device import parse_fault_plan

        return cls(text, tuple(parse_fault_plan(text)))


@dataclass(frozen=True)
class TmsSimulator:
    """A registered simulator: open ``url`` on ``clock``."""

    name: str
    profile: str
    instance: Any  # tmsctl.simulators.registry.SimulatorInstance

    @property
    def url(self) -> str:
        return f"sim://{self.name}"

    @property
    def device(self) -> Any:
        return self.instance.device

    @property
    def clock(self) -> VirtualClock:
        return self.instance.clock


@dataclass(frozen=True)
class TraceRecord:
    t: float
    direction: str  # "tx" to the device, "rx" from it
    data: bytes


@dataclass
class ByteTrace:
    """A transport tap that keeps every byte with its clock time."""

    records: list[TraceRecord] = field(default_factory=list)

    def __call__(self, direction: str, data: bytes, t: float) -> None:
        self.records.append(TraceRecord(t, direction, bytes(data)))

    def tx(self) -> bytes:
        return b"".join(r.data for r in self.records if r.direction == "tx")

    def rx(self) -> bytes:
        return b"".join(r.data for r in self.records if r.direction == "rx")

    def clear(self) -> None:
        self.records.clear()

    def dump(self) -> str:
        """One line per chunk: ``t  tx|rx  hex  ascii``."""
        lines = []
        for r in self.records:
            shown = "".join(chr(b) if 32 <= b < 127 else "." for b in r.data)
            lines.append(f"{r.t:12.6f}  {r.direction}  {r.data.hex(' ')}  {shown}")
        return "\n".join(lines)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tms_profile(name): simulator profile for tms_stimulator (default rapid2)")
    config.addinivalue_line("markers", "tms_faults(plan): fault plan for tms_simulator, e.g. 'coil_unplugged@30s'")


def _marker_arg(request: pytest.FixtureRequest, name: str, default: str) -> str:
    marker = request.node.get_closest_marker(name)
    if marker is None:
        return default
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        raise pytest.UsageError(f"@pytest.mark.{name} takes one string, got {marker.args!r}")
    return marker.args[0]


@pytest.fixture
def tms_clock() -> VirtualClock:
    """A fresh virtual clock (autojump)."""
    return VirtualClock()


@pytest.fixture
def tms_fault_plan(request: pytest.FixtureRequest) -> FaultPlan:
    """The fault plan from ``@pytest.mark.tms_faults(...)``; empty otherwise."""
    return FaultPlan.parse(_marker_arg(request, "tms_faults", ""))


@pytest.fixture
def tms_simulator(tms_clock: VirtualClock, tms_fault_plan: FaultPlan) -> Iterator[Callable[..., TmsSimulator]]:
    """Factory of registered simulators on ``tms_clock``; each is removed at teardown."""
    from tmsctl.simulators import registry as sims

    made: list[str] = []

    def make(profile: str = "rapid2", faults: str | None = None) -> TmsSimulator:
        plan = tms_fault_plan if faults is None else FaultPlan.parse(faults)
        name = f"{profile}-pytest-{next(_names)}"
        instance = sims.create(profile, clock=tms_clock, faults=plan.faults, name=name)
        made.append(name)
        return TmsSimulator(name, profile, instance)

    yield make
    for name in made:
        sims.remove(name)


@pytest.fixture
def tms_trace() -> ByteTrace:
    """Every byte the ``tms_stimulator`` exchanges with its simulator."""
    return ByteTrace()


@pytest.fixture
def tms_events() -> CollectingListener:
    """The events ``tms_stimulator`` emitted."""
    return CollectingListener()


@pytest.fixture
def tms_stimulator(
    request: pytest.FixtureRequest,
    tms_clock: VirtualClock,
    tms_simulator: Callable[..., TmsSimulator],
    tms_trace: ByteTrace,
    tms_events: CollectingListener,
    tmp_path: Path,
) -> Iterator[Any]:
    """A connected ``tmsctl.lab.api.Stimulator`` on a fresh simulator; disarmed and closed at teardown."""
    from tmsctl.lab import api

    simulator = tms_simulator(_marker_arg(request, "tms_profile", "rapid2"))
    stimulator = api.open(
        simulator.url, clock=tms_clock, listeners=[tms_events], tap=tms_trace, db=tmp_path / "tmsctl-records.db"
    )
    try:
        yield stimulator
    finally:
        stimulator.close()


@pytest.fixture
def tms_dose_truth(tmp_path: Path) -> Callable[..., None]:
    """The truth invariant for a lab's own tests: ``tms_dose_truth(simulator, *session_ids, db=...)``.

    Every pulse the simulator really fired (its truth log) must lie within what the records say was
    known delivered and at most delivered, at the validated intensity unless a fault is on record.
    ``db`` defaults to the records ``tms_stimulator`` writes; with no session ids, every session in it.
    Raises ``tmsctl.lab.testing.DoseTruthViolation`` naming both sides.
    """
    from tmsctl.lab.testing import check_dose_truth
    from tmsctl.records import Records

    def check(simulator: TmsSimulator, *session_ids: str, db: Path | None = None) -> None:
        with Records(db or tmp_path / "tmsctl-records.db") as records:
            ids = session_ids or tuple(s.session_id for s in records.sessions())
            check_dose_truth(records, ids, simulator.device)

    return check


__all__ = ["ByteTrace", "FaultPlan", "TmsSimulator", "TraceRecord"]
