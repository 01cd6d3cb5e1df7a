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

from tmsctl.clock import VirtualClock, monotonic_ns_for_benchmarks
from tmsctl.controller import Controller
from tmsctl.records import Records
from tmsctl.registry import open_driver
from tmsctl.runner import SessionRunner
from tmsctl.session import SessionRequest, plan_session, run_planned
from tmsctl.simulators import registry as sims

LIBRARY = Path(__file__).resolve().parents[1] / "protocols" / "library"
TARGET_SPEEDUP = 5000


def once(protocol: Path, with_records: bool, index: int, db_dir: str | None = None) -> tuple[float, float, int]:
    """(wall seconds, simulated seconds, pulses) for one full session."""
    clock = VirtualClock()
    name = f"bench-{index}-{with_records}"
    sim = sims.create("rapid2", clock=clock, name=name)
    try:
        with tempfile.TemporaryDirectory(dir=db_dir) as tmp:
            records = Records(Path(tmp) / "bench.db") if with_records else None
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


def commit_floor_s(commits: int, db_dir: str | None) -> float:
    """What ``commits`` durable commits cost on this disk alone: a bare SQLite file with the
    records' settings (WAL, synchronous=FULL), one small row per commit."""
    import sqlite3

    from tmsctl.records import WAL_CHECKPOINT_PAGES

    with tempfile.TemporaryDirectory(dir=db_dir) as tmp:
        db = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        db.execute("CREATE TABLE t (i INTEGER, note TEXT)")
        t0 = monotonic_ns_for_benchmarks()
        for i in range(commits):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 200))
            db.execute("COMMIT")
        elapsed = (monotonic_ns_for_benchmarks() - t0) / 1e9
        db.close()
    return elapsed


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
    commits = 3 * 75  # every train: intent, trigger acknowledged, end; each on disk before going on
    floors = {label: statistics.median(commit_floor_s(commits, d) for _ in range(args.repeat))
              for label, d in (("disk", None), ("tmpfs", "/dev/shm")) if d is None or Path(d).is_dir()}
    print(f"(with records every train costs three durable commits; {commits} bare commits alone take "
          + ", ".join(f"{v:.3f} s on {k}" for k, v in floors.items()) + ")")
    tracemalloc.start()
    once(args.protocol, True, 99)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak Python memory of a full recorded session: {peak / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
