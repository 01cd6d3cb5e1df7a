"""Start-up cost a person feels: whole `tmsctl` processes, timed from spawn to exit.

Prints the median and the minimum of ``--repeat`` runs beside each target (issue 19):
``tmsctl --help`` ≤ 150 ms and ``tmsctl protocol validate protocols/library/*.yaml`` ≤ 400 ms.
On a shared, loaded machine the minimum is the better estimate of the cost itself; the median
is what a person waits today.

Run: ``python benchmarks/bench_cli_startup.py [--repeat 9]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = sorted(str(p) for p in (ROOT / "protocols" / "library").glob("*.yaml"))

# name -> (arguments after `tmsctl`, target in ms)
COMMANDS: dict[str, tuple[list[str], float]] = {
    "tmsctl --help": (["--help"], 150.0),
    f"tmsctl protocol validate protocols/library/*.yaml ({len(LIBRARY)} files)": (["protocol", "validate", *LIBRARY], 400.0),
}


def whole_process_s(args: list[str]) -> float:
    """Seconds from spawning `python -m tmsctl ARGS` to its exit (exit code 0 required)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tmsctl", *args], capture_output=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"tmsctl {' '.join(args[:3])} … exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="runs of each command (after one warm-up)")
    options = parser.parse_args()
    baseline = [whole_process_s(["--version"]) for _ in range(2)]  # warm the file cache
    python_alone = []
    for _ in range(options.repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python_alone.append(time.perf_counter() - start)
    print(f"{'command':<62} {'median ms':>10} {'min ms':>8} {'target':>8}  verdict (by the median)")
    print(f"{'(python -c pass: the interpreter alone)':<62} {statistics.median(python_alone) * 1e3:>10.0f} "
          f"{min(python_alone) * 1e3:>8.0f}")
    del baseline
    for name, (args, target_ms) in COMMANDS.items():
        whole_process_s(args)  # warm-up
        samples = [whole_process_s(args) * 1e3 for _ in range(options.repeat)]
        median, best = statistics.median(samples), min(samples)
        verdict = "meets" if median <= target_ms else ("only the minimum meets" if best <= target_ms else "MISSES")
        print(f"{name:<62} {median:>10.0f} {best:>8.0f} {target_ms:>8.0f}  {verdict}")


if __name__ == "__main__":
    main()
