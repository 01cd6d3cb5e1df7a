"""Simulated accelerated-iTBS day: the SAINT protocol's 10 sessions of 1,800 pulses, 50 min apart
(start to start), on a theta-burst MagPro simulator through the real bytes, with every session
planned, checked against the day's pulse cap and recorded in a file database.

Prints the day's wall time, its speed-up over the day as lived (first start to last end) and over
the stimulation itself (the sessions' own durations).
Run: ``python benchmarks/bench_itbs_day.py [--sessions N]``.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tmsctl.core.clock import VirtualClock, monotonic_ns_for_benchmarks
from tmsctl.records import Records
from tmsctl.session.planned import SessionRequest, plan_session, run_planned
from tmsctl.session.runner import RunOutcome
from tmsctl.simulators import registry as sims

PROTOCOL = Path(__file__).resolve().parents[1] / "protocols" / "library" / "saint-accelerated-itbs.yaml"
SIMULATOR = "magpro-x100-option"  # a MagPro with the theta-burst option: the device times each burst train


@dataclass(frozen=True)
class Day:
    sessions: int
    pulses: int
    wall_s: float
    day_s: float  # simulated: first session's start to the last one's end
    stimulating_s: float  # simulated: the sessions' own durations, summed


def run_day(sessions: int = 10, *, interval_s: float = 50 * 60, db_dir: str | None = None) -> Day:
    clock = VirtualClock()
    name = f"itbs-day-{id(clock)}"
    sim = sims.create(SIMULATOR, clock=clock, name=name)
    try:
        with tempfile.TemporaryDirectory(dir=db_dir) as tmp, Records(Path(tmp) / "day.db", clock=clock) as records:
            first = clock.now()
            stimulating = 0.0
            t0 = monotonic_ns_for_benchmarks()
            for k in range(sessions):
                clock.advance_to(first + k * interval_s)
                planned = plan_session(SessionRequest(PROTOCOL, f"sim://{name}", "BENCH01", mt_pct_mso=55), records)
                started = clock.now()
                _, result = run_planned(planned, records)
                stimulating += clock.now() - started
                assert result.outcome is RunOutcome.COMPLETED, result.reason
            wall = (monotonic_ns_for_benchmarks() - t0) / 1e9
            day = clock.now() - first
            assert sim.device.pulse_count == 1800 * sessions
            return Day(sessions, sim.device.pulse_count, wall, day, stimulating)
    finally:
        sims.remove(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    day = run_day(args.sessions)
    print(f"{day.sessions} iTBS sessions, {day.pulses} pulses on sim://{SIMULATOR}, records on disk")
    print(f"wall {day.wall_s:.2f} s for a simulated day of {day.day_s / 3600:.1f} h "
          f"({day.day_s / day.wall_s:,.0f}x real time); stimulating {day.stimulating_s / 60:.0f} min of it "
          f"({day.stimulating_s / day.wall_s:,.0f}x)")


if __name__ == "__main__":
    main()
