"""Train onset error in real time over the pseudo-terminal simulator.

A shortened protocol (20 trains of 10 pulses at 10 Hz, 1.5 s apart) runs through the real
controller, runner and records on the system clock; the simulator runs in another process on a
pty and timestamps each pulse on the same monotonic clock. Error = first pulse of each train −
its scheduled onset. Target: p99 under 2 ms, no drift.
Run: ``python benchmarks/bench_onset_timing.py [--trains N]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading

from tmsctl.core.clock import SystemClock
from tmsctl.core.registry import open_driver
from tmsctl.protocols.expand import expand
from tmsctl.protocols.loader import load_protocol_text
from tmsctl.session.controller import Controller
from tmsctl.session.runner import SessionRunner, onset_error_summary

PROTOCOL = """\
schema_version: 1
id: onset-bench
title: Onset timing benchmark
coil: {{family: figure8}}
target: {{method: eeg_10_20, site: F3}}
hemisphere: left
intensity: {{reference: MSO, scaling_pct: 40}}
pattern: {{kind: rtms, frequency_hz: 10, pulses_per_train: 10, inter_train_interval_s: 0.6, trains: {trains}}}
"""


def _serve(conn) -> None:
    from tmsctl.simulators import registry as sims
    from tmsctl.simulators.serve import serve_pty

    instance = sims.create("rapid2")
    stop = threading.Event()

    def wait_for_stop() -> None:
        conn.recv()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    serve_pty(instance.device, stop=stop, ready=conn.send)
    conn.send([p.t for p in instance.device.pulses])


def measure(trains: int) -> tuple[dict[str, float], dict[str, float]]:
    """(error at the simulator, error of the trigger leaving the host), summaries in ms."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    path = parent.recv()
    clock = SystemClock()
    protocol = load_protocol_text(PROTOCOL.format(trains=trains))
    from tmsctl.simulators.magstim import SIMULATOR_UNLOCK_CODE

    driver = open_driver(f"magstim-rapid2://{path}", clock)
    driver._unlock_code = SIMULATOR_UNLOCK_CODE  # the simulator's published code
    schedule = expand(protocol, driver.limits)
    controller = Controller(driver, clock)
    controller.connect()
    with tempfile.TemporaryDirectory():
        runner = SessionRunner(controller, schedule)
        result = runner.run()
    controller.close()
    parent.send("stop")
    pulses = parent.recv()
    server.join(5)
    start = runner.progress.session_start
    firsts = pulses[:: schedule.trains[0].n_pulses]
    errors = [t - (start + train.onset_s) for t, train in zip(firsts, schedule.trains)]
    assert result.outcome.value == "completed", result.reason
    return onset_error_summary(errors), onset_error_summary(result.onset_errors_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trains", type=int, default=20)
    args = parser.parse_args()
    stats, host = measure(args.trains)
    print(f"train onset error over the pty simulator, {args.trains} trains")
    print(f"  measured at the simulator: mean {stats['mean_ms']:+.3f} ms, p99 |e| {stats['p99_ms']:.3f} ms, "
          f"max |e| {stats['max_ms']:.3f} ms, drift {stats['drift_ms']:+.3f} ms   (target p99 < 2 ms, no drift)")
    print(f"  trigger leaving the host:  mean {host['mean_ms']:+.3f} ms, p99 |e| {host['p99_ms']:.3f} ms, "
          f"max |e| {host['max_ms']:.3f} ms")


if __name__ == "__main__":
    main()
