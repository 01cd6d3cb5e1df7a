"""How long this machine's disk takes to make a small in-place write durable (``fdatasync``), as a
function of how long the process computed since the previous one.

A recorded session commits three times a train with ``synchronous = FULL``: each commit is one
``fdatasync`` of SQLite's write-ahead log, rewritten in place. Between commits the session computes
(simulated keep-alives: about 0.3 ms between a trigger and its record, a few ms across an
inter-train interval). On virtual machines the sync costs more the longer the disk sat idle, so
this prints the curve that decides the on-disk session figure of ``bench_session.py``.

Run: ``python benchmarks/bench_disk.py [--dir DIR] [--syncs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from tmsctl.core.clock import monotonic_ns_for_benchmarks

PAGE = 4096
COMMIT_BYTES = 5 * (PAGE + 24)  # a train's commit: about five WAL frames (page + frame header)
SPACINGS_MS = (0.0, 0.3, 1.0, 3.0, 10.0)


def compute_for(ms: float) -> None:
    """Keep the CPU busy for ``ms`` (the session computing between two commits)."""
    until = monotonic_ns_for_benchmarks() + int(ms * 1e6)
    while monotonic_ns_for_benchmarks() < until:
        pass


def sync_latencies_ms(path: str, spacing_ms: float, syncs: int) -> list[float]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        region = 100 * (PAGE + 24)  # like a WAL checkpointed every 100 pages: blocks that exist
        os.pwrite(fd, b"\0" * region, 0)
        os.fsync(fd)
        block = b"w" * COMMIT_BYTES
        out = []
        for i in range(syncs):
            compute_for(spacing_ms)
            os.pwrite(fd, block, (i * COMMIT_BYTES) % (region - COMMIT_BYTES))
            t0 = monotonic_ns_for_benchmarks()
            os.fdatasync(fd)
            out.append((monotonic_ns_for_benchmarks() - t0) / 1e6)
        return out
    finally:
        os.close(fd)
        os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to write (default: the system temp dir)")
    parser.add_argument("--syncs", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"fdatasync of a {COMMIT_BYTES // 1024} KB in-place write, {args.syncs} syncs each, in {tmp}")
        print(f"{'computing between syncs':>24} {'median ms':>10} {'p90 ms':>8}")
        for spacing in SPACINGS_MS:
            times = sorted(sync_latencies_ms(os.path.join(tmp, "wal"), spacing, args.syncs))
            p90 = times[int(0.9 * (len(times) - 1))]
            print(f"{spacing:>21.1f} ms {statistics.median(times):>10.2f} {p90:>8.2f}")
    print("a recorded 10 Hz session makes 225 such syncs (3 a train, 75 trains)")


if __name__ == "__main__":
    main()
