"""Round trip of one serial fire command (``EH`` → 3-byte reply), three ways.

* in-process ``sim://`` on a virtual clock: the simulated time of the exchange (wire time +
  the simulator's 2 ms processing latency) and the real CPU time it costs;
* in-process ``sim://`` on the system clock (the simulator paces bytes at 9600 baud);
* the pseudo-terminal simulator in another process (real termios, real select()).

Beside them: the floor set by the wire, 6 bytes x 10 bits at 9600 baud = 6.25 ms.
Run: ``python benchmarks/bench_fire_roundtrip.py [--samples N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import statistics
import sys

from tmsctl.core.clock import Clock, SystemClock, VirtualClock, monotonic_ns_for_benchmarks
from tmsctl.core.transport import Transport, wire_time_s
from tmsctl.drivers.magstim.driver import M200Driver
from tmsctl.drivers.magstim.spec import load_spec
from tmsctl.simulators import magstim as sim_magstim
from tmsctl.simulators import registry as sims

BENCH_PROFILE = dataclasses.replace(sim_magstim.PROFILES["m200"], name="m200-bench", recharge_override_s=0.02)
sims.register_profile(
    sims.SimulatorProfile(
        "m200-bench", "magstim-200", "bench",
        lambda start, faults: sim_magstim.MagstimSimulator(BENCH_PROFILE, start=start, faults=faults), {},
    )
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(url: str, clock: Clock, samples: int) -> tuple[list[float], list[float]]:
    """(clock-time round trips, wall-time round trips) in ms for ``samples`` fires."""
    transport = Transport.open(url, clock)
    driver = M200Driver(transport, load_spec("magstim-200"), simulated=True)
    driver.connect()
    driver.set_intensity(30)
    driver.arm()
    on_clock, on_wall = [], []
    try:
        for _ in range(samples):
            driver.wait_ready()
            t0, w0 = clock.now(), monotonic_ns_for_benchmarks()
            driver.fire()
            on_wall.append((monotonic_ns_for_benchmarks() - w0) / 1e6)
            on_clock.append((clock.now() - t0) * 1e3)
    finally:
        driver.close()
    return on_clock, on_wall


def _serve(conn) -> None:  # runs in the child process
    import threading

    from tmsctl.simulators.serve import serve_pty

    instance = sims.create("m200-bench")
    stop = threading.Event()
    threading.Thread(target=lambda: (conn.recv(), stop.set()), daemon=True).start()
    serve_pty(instance.device, stop=stop, ready=conn.send)


def measure_pty(samples: int) -> list[float]:
    """Round trips (ms) to the pty simulator running in another process."""
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    path = parent.recv()
    try:
        pty_ms, _ = measure(path, SystemClock(), samples)
    finally:
        parent.send("stop")
        server.join(5)
    return pty_ms


def row(label: str, values: list[float]) -> str:
    return f"{label:<44} {statistics.mean(values):8.3f} {_percentile(values, 0.99):8.3f} {max(values):8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    floor_ms = wire_time_s(6) * 1e3

    virtual = VirtualClock()
    sim_clock_ms, sim_cpu_ms = measure("sim://m200-bench", virtual, args.samples)
    real_ms, _ = measure("sim://m200-bench", SystemClock(), args.samples)

    pty_ms = measure_pty(args.samples)

    print(f"fire round trip (EH -> reply), {args.samples} samples, ms")
    print(f"{'':<44} {'mean':>8} {'p99':>8} {'max':>8}")
    print(row("in-process sim://, virtual clock (sim time)", sim_clock_ms))
    print(row("in-process sim://, virtual clock (CPU time)", sim_cpu_ms))
    print(row("in-process sim://, system clock", real_ms))
    print(row("pty simulator (separate process)", pty_ms))
    print(f"{'wire-time floor at 9600 baud (6 bytes)':<44} {floor_ms:8.3f}")
    print(f"{'  + simulated device latency (2 ms)':<44} {floor_ms + 2:8.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
