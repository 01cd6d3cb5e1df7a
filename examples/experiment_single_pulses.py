"""A PsychoPy-free experiment loop: 10 single pulses with jittered intervals, events printed as they come.

Run it on the built-in simulator (real time, about 30 s):

    python examples/experiment_single_pulses.py

or in simulated time (instant), or on a real stimulator:

    python examples/experiment_single_pulses.py --virtual-time
    python examples/experiment_single_pulses.py --device "magstim-rapid2:///dev/ttyUSB0?unlock=env:RAPID_UNLOCK"

Add ``--lsl`` to publish every event as an LSL marker (``pip install 'tmsctl[lsl]'``).
"""

from __future__ import annotations

import argparse
import random
import sys

import tmsctl.lab.api as tms
from tmsctl.core.clock import SystemClock, VirtualClock
from tmsctl.core.events import Event


class PrintEvents:
    """A listener: prints each event. It runs on the controller thread, so it stays quick."""

    def on_event(self, event: Event) -> None:
        fields = {k: v for k, v in event.as_dict().items() if k not in ("kind", "t_wall", "t_mono")}
        print(f"  [{event.t_mono:9.3f} s] {event.kind:16} {fields}", flush=True)

    def on_error(self, exc: BaseException) -> None:
        print(f"  listener error: {exc}", file=sys.stderr)

    def stop(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="sim://rapid2", help="device URL (default: the simulated Rapid²)")
    parser.add_argument("--intensity", type=int, default=45, help="%% of maximum stimulator output")
    parser.add_argument("--pulses", type=int, default=10)
    parser.add_argument("--interval-s", type=float, default=2.5, help="mean interval between pulses")
    parser.add_argument("--jitter-s", type=float, default=0.5, help="uniform jitter around the mean")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--virtual-time", action="store_true", help="simulators only: run in simulated time")
    parser.add_argument("--lsl", action="store_true", help="publish events as LSL markers")
    args = parser.parse_args(argv)

    clock = VirtualClock() if args.virtual_time else SystemClock()
    rng = random.Random(args.seed)
    listeners: list[object] = [PrintEvents()]
    if args.lsl:
        from tmsctl.lab.lsl import open_lsl_markers

        listeners.append(open_lsl_markers(clock=clock, context={"experiment": "single_pulses"}))

    with tms.open(args.device, clock=clock, listeners=listeners) as stim:
        print(f"connected to {stim.info.display_name}" + (" (simulated)" if stim.info.simulated else ""))
        stim.set_intensity(args.intensity)
        stim.arm()
        for trial in range(1, args.pulses + 1):
            delivery = stim.fire()
            print(f"trial {trial}: pulse at {delivery.started_at:.3f} s", flush=True)
            if trial < args.pulses:
                clock.sleep(args.interval_s + rng.uniform(-args.jitter_s, args.jitter_s))
        stim.disarm()
    print("done: disarmed and released")
    return 0


if __name__ == "__main__":
    sys.exit(main())
