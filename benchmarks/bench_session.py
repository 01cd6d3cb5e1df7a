"""Simulated-session speed: the 10 Hz left-DLPFC session (3000 pulses, 75 trains, 37.5 min)
through the real bytes on ``sim://rapid2`` and a virtual clock, with and without records.

Target: at least 5,000x real time on the 2-core CI machine.
Run: ``python benchmarks/bench_session.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import tracemalloc
from pathlib import Path

from tmsctl.core.clock import VirtualClock, monotonic_ns_for_benchmarks
from tmsctl.core.registry import open_driver
from tmsctl.records import Records
from tmsctl.records.database import Database
from tmsctl.session.controller import Controller
from tmsctl.session.planned import SessionRequest, plan_session, run_planned
from tmsctl.session.runner import SessionRunner
from tmsctl.simulators import registry as sims

LIBRARY = Path(__file__).resolve().parents[1] / "protocols" / "library"
TARGET_SPEEDUP = 5000


def once(
    protocol: Path, with_records: bool, index: int, db_dir: str | None = None, *, store: type[Records] = Records
) -> tuple[float, float, int]:
    """(wall seconds, simulated seconds, pulses) for one full session."""
    clock = VirtualClock()
    name = f"bench-{index}-{with_records}"
    sim = sims.create("rapid2", clock=clock, name=name)
    try:
        with tempfile.TemporaryDirectory(dir=db_dir) as tmp:
            records = store(Path(tmp) / "bench.db") if with_records else None
            request = SessionRequest(protocol, f"sim://{name}", "BENCH01", mt_pct_mso=55)
            planned = plan_session(request, records)
            start_virtual = clock.now()
            t0 = monotonic_ns_for_benchmarks()
            if records is not None:
                _, result = run_planned(planned, records)
                records.close()
            else:
                controller = Controller(open_driver(f"sim://{name}", clock), clock)
                controller.connect()
                result = SessionRunner(controller, planned.schedule).run()
                controller.close()
            wall = (monotonic_ns_for_benchmarks() - t0) / 1e9
            assert result.pulses_delivered == planned.schedule.total_pulses == sim.device.pulse_count
            return wall, clock.now() - start_virtual, result.pulses_delivered
    finally:
        sims.remove(name)


class DatabaseWithoutDiskWaits(Database):
    """The same database with ``synchronous = OFF``: for this benchmark only, to show how much of a
    recorded session's time is spent waiting for the disk (the product never turns this off)."""

    _DURABLE_MODE = _RELAXED_MODE = "OFF"

    def _configure(self) -> None:
        super()._configure()
        self.connection.execute("PRAGMA synchronous = OFF")


class RecordsWithoutDiskWaits(Records):
    _database_type = DatabaseWithoutDiskWaits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--protocol", type=Path, default=LIBRARY / "neurostar-10hz-ldlpfc.yaml")
    args = parser.parse_args()
    print(f"session: {args.protocol.name}, {args.repeat} runs each (median)")
    print(f"{'':32} {'wall s':>8} {'simulated s':>12} {'speed-up':>10} {'target':>8}")
    variants = [("controller + simulator", False, None), ("  + records, database on disk", True, None)]
    if Path("/dev/shm").is_dir():
        variants.append(("  + records, database on tmpfs", True, "/dev/shm"))
    for label, with_records, db_dir in variants:
        runs = [once(args.protocol, with_records, i, db_dir) for i in range(args.repeat)]
        wall = statistics.median(r[0] for r in runs)
        simulated = runs[0][1]
        print(f"{label:32} {wall:8.3f} {simulated:12.1f} {simulated / wall:9.0f}x {TARGET_SPEEDUP:7d}x")
    unsynced = statistics.median(
        once(args.protocol, True, 50 + i, None, store=RecordsWithoutDiskWaits)[0] for i in range(args.repeat)
    )
    print(f"{'  same on disk, not waiting for it':32} {unsynced:8.3f}   (the difference is waiting for the disk)")
    print("(every train costs three commits, each on disk before the session goes on: intent, trigger "
          "acknowledged, end)")
    tracemalloc.start()
    once(args.protocol, True, 99)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak Python memory of a full recorded session: {peak / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
