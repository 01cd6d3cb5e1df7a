"""Records on SQLite beside records on a local PostgreSQL server, in the same run.

Two figures per backend:
- per-train commit latency: ``begin_delivery`` (the intent, committed before the trigger) and
  ``finish_delivery`` (the outcome), each one durable transaction; median and 99th percentile;
- the recorded 10 Hz left-DLPFC library session (3000 pulses, 75 trains) on sim://rapid2 and a
  virtual clock: wall seconds for the whole session, records included.

The server is a throwaway one started here from the machine's own binaries, fsync on, on
loopback; a clinic's server across a network adds its round trip to every commit.
Then ``--rooms`` workstations (8 by default) run a whole session each against one server at once,
each in its own process on its own virtual clock, and every row is counted afterwards.
Run: ``python benchmarks/bench_records_backends.py [--trains N] [--rooms N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tmsctl.core.clock import VirtualClock, monotonic_ns_for_benchmarks  # noqa: E402
from tmsctl.records import (  # noqa: E402
    DeliveryKind,
    DeliveryPlan,
    DeliveryResult,
    Records,
    SessionPlan,
    TriggerSource,
)
from tmsctl.records.pg_throwaway import ThrowawayServer  # noqa: E402
from tmsctl.session.planned import SessionRequest, plan_session, run_planned  # noqa: E402
from tmsctl.simulators import registry as sims  # noqa: E402

LIBRARY = HERE.parent / "protocols" / "library"


def commit_latency(location: str, trains: int) -> tuple[list[float], list[float]]:
    """Milliseconds per begin_delivery and per finish_delivery over ``trains`` trains."""
    clock = VirtualClock(autojump=False, wall_start=datetime(2026, 1, 1, tzinfo=UTC))
    begins, finishes = [], []
    with Records(location, clock=clock) as records:
        records.ensure_subject("BENCH01")
        session = records.create_session(SessionPlan(
            subject_id="BENCH01", protocol_id="bench", protocol_hash="sha256:" + "ab" * 32, protocol_text="id: bench\n",
            device_url="sim://rapid2", device_model="magstim-rapid2", simulated=True,
            planned_deliveries=trains, planned_pulses=trains * 40))
        records.start_session(session.session_id, operator="bench")
        for index in range(trains):
            clock.advance(10.0)
            t0 = monotonic_ns_for_benchmarks()
            records.begin_delivery(DeliveryPlan(session.session_id, index, DeliveryKind.TRAIN, 10.0 * index, 40, 55.0,
                                                TriggerSource.SERIAL))
            t1 = monotonic_ns_for_benchmarks()
            records.finish_delivery(DeliveryResult(session.session_id, index, 40, True, onset_offset_s=10.0 * index))
            t2 = monotonic_ns_for_benchmarks()
            begins.append((t1 - t0) / 1e6)
            finishes.append((t2 - t1) / 1e6)
        records.complete_session(session.session_id)
    return begins, finishes


def recorded_session(location: str, index: int) -> float:
    clock = VirtualClock()
    name = f"bench-backends-{index}"
    sim = sims.create("rapid2", clock=clock, name=name)
    try:
        with Records(location) as records:
            request = SessionRequest(LIBRARY / "neurostar-10hz-ldlpfc.yaml", f"sim://{name}", "BENCH01", mt_pct_mso=55)
            planned = plan_session(request, records)
            t0 = monotonic_ns_for_benchmarks()
            _, result = run_planned(planned, records)
            wall = (monotonic_ns_for_benchmarks() - t0) / 1e9
        assert result.pulses_delivered == 3000 == sim.device.pulse_count
        return wall
    finally:
        sims.remove(name)


def _room(location: str, room: int) -> tuple[str, float, int]:
    """One treatment room's whole 10 Hz session (its own simulator and virtual clock), in a process of its own."""
    clock = VirtualClock()
    name = f"bench-room-{room}"
    sim = sims.create("rapid2", clock=clock, name=name)
    try:
        with Records(location, clock=clock) as records:
            request = SessionRequest(LIBRARY / "neurostar-10hz-ldlpfc.yaml", f"sim://{name}", f"ROOM{room:02d}",
                                     mt_pct_mso=55)
            planned = plan_session(request, records)
            t0 = monotonic_ns_for_benchmarks()
            session_id, _result = run_planned(planned, records)
            wall = (monotonic_ns_for_benchmarks() - t0) / 1e9
        return session_id, wall, sim.device.pulse_count
    finally:
        sims.remove(name)


def rooms_at_once(location: str, rooms: int) -> None:
    """``rooms`` workstations run a whole session each against one server at the same time; then
    every row is counted: none lost, none twice, every session's record equal to its unit's count."""
    from concurrent.futures import ProcessPoolExecutor

    Records(location).close()  # the clinic's `tmsctl db init`, once, before the rooms open it
    t0 = monotonic_ns_for_benchmarks()
    with ProcessPoolExecutor(max_workers=rooms) as pool:
        done = list(pool.map(_room, [location] * rooms, range(rooms)))
    total = (monotonic_ns_for_benchmarks() - t0) / 1e9
    with Records(location) as records:
        for session_id, _, fired in done:
            detail = records.session_detail(session_id)
            indexes = [d.index for d in detail.deliveries]
            assert len(indexes) == len(set(indexes)) == 75, f"{session_id}: {len(indexes)} delivery rows"
            assert detail.resume_point.pulses_delivered == fired == 3000, session_id
            assert detail.session.status.value == "completed"
    walls = [wall for _, wall, _ in done]
    print(f"{rooms} rooms at once on one server: {total:.1f} s in all; per session median {statistics.median(walls):.2f} s, "
          f"max {max(walls):.2f} s; {rooms * 75} trains recorded, none lost or twice, every record equal to its unit")


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trains", type=int, default=300)
    parser.add_argument("--rooms", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ThrowawayServer() as server:
        backends = {"sqlite": [str(Path(tmp) / "a.db"), str(Path(tmp) / "b.db")],
                    "postgresql": [server.create_database("latency"), server.create_database("session")]}
        print(f"{'backend':<11} {'intent p50':>11} {'intent p99':>11} {'outcome p50':>12} {'outcome p99':>12} "
              f"{'10 Hz session':>14}")
        for number, (name, (latency_db, session_db)) in enumerate(backends.items()):
            begins, finishes = commit_latency(latency_db, args.trains)
            session_s = recorded_session(session_db, number)
            print(f"{name:<11} {statistics.median(begins):>9.2f}ms {p99(begins):>9.2f}ms "
                  f"{statistics.median(finishes):>10.2f}ms {p99(finishes):>10.2f}ms {session_s:>12.2f} s")
        if args.rooms:
            rooms_at_once(server.create_database("rooms"), args.rooms)


if __name__ == "__main__":
    main()
