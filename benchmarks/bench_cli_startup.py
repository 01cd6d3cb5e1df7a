"""Start-up cost a person feels: whole `tmsctl` processes, timed from spawn to exit.

Each command runs ``--repeat`` times (after a warm-up) as the console script a person types
(``tmsctl``, beside this Python), and the table prints, beside each target of issue 19:

* the median wall time: what a person waits on this machine today;
* the minimum wall time: on a shared, loaded machine the best estimate of the cost itself;
* the median CPU time of the process (user + system): the cost without the other users' load.

Targets: ``tmsctl --help`` ≤ 150 ms, ``tmsctl protocol validate protocols/library/*.yaml`` ≤ 400 ms,
``tmsctl sessions`` and ``tmsctl session show ID`` ≤ 200 ms on two years of a busy clinic (the
records-scale benchmark's database, ``bench_records_scale.build_clinic_database``). The two clinic
commands and the store's own open run at 0.05x and 1x that clinic, so a cost that grows with the
clinic's history shows as a difference between the rows.

Protocol facts: ``session show`` keeps what it shows of a session's protocol per protocol text
(``tmsctl.lab.protocol_facts``), as a person's cache folder keeps it from one show to the next. The
processes keep it in a temporary ``XDG_CACHE_HOME`` (filled by the warm-up); one more row shows a
first show of a protocol, with an empty cache every time.

Bytecode: an installed tmsctl runs from compiled bytecode (pip compiles it on install; an editable
install writes it on first use). Shells where ``PYTHONDONTWRITEBYTECODE`` is set would instead
compile every tmsctl module on every run, which no technician's machine does; so by default the
processes keep their bytecode in a temporary ``PYTHONPYCACHEPREFIX`` (never in the source tree).
``--no-bytecode-cache`` measures the other way.

Run: ``python benchmarks/bench_cli_startup.py [--repeat 15] [--clinic-dir DIR] [--no-clinic]``
(``--clinic-dir`` builds the two clinic databases there once, about a minute, and reuses them;
the timings never write to them: the commands open them read-only.)
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tmsctl.core.clock import monotonic_ns_for_benchmarks

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIBRARY = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protocols" / "library").glob("*.yaml"))
CLINIC_SCALES = (0.05, 1.0)

HELP_TARGET_MS = 150.0
VALIDATE_TARGET_MS = 400.0
RECORDS_COMMAND_TARGET_MS = 200.0


@dataclass(frozen=True)
class Sample:
    wall_ms: float
    cpu_ms: float


def tmsctl_command() -> list[str]:
    """What a person runs: the console script installed beside this Python (else ``python -m``)."""
    script = Path(sys.executable).with_name("tmsctl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tmsctl"]


def child_environment(pycache: Path | None, cache: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["COLUMNS"] = "120"
    env["XDG_CACHE_HOME"] = str(cache)  # the protocol facts `session show` keeps: this run's own
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def whole_process(command: list[str], env: dict[str, str]) -> Sample:
    """Wall and CPU time from spawning ``command`` to its exit (exit code 0 required)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = monotonic_ns_for_benchmarks()
    done = subprocess.run(command, capture_output=True, cwd=ROOT, env=env)
    wall_ms = (monotonic_ns_for_benchmarks() - start) / 1e6
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} … exited {done.returncode}: {done.stderr.decode()[-500:]}")
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall_ms, cpu_s * 1e3)


def in_process(action: Callable[[], object]) -> Sample:
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = monotonic_ns_for_benchmarks()
    action()
    wall_ms = (monotonic_ns_for_benchmarks() - start) / 1e6
    after = resource.getrusage(resource.RUSAGE_SELF)
    return Sample(wall_ms, ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1e3)


def print_header() -> None:
    print(f"{'command':<66} {'median ms':>9} {'min ms':>7} {'CPU ms':>7} {'target':>7}  verdict")


def print_row(name: str, samples: list[Sample], target_ms: float | None) -> None:
    walls = [s.wall_ms for s in samples]
    median, best = statistics.median(walls), min(walls)
    cpu = statistics.median(s.cpu_ms for s in samples)
    if target_ms is None:
        target, verdict = "", ""
    else:
        target = f"{target_ms:.0f}"
        verdict = ("meets" if median <= target_ms
                   else "only the minimum meets" if best <= target_ms else "MISSES")
    print(f"{name:<66} {median:>9.0f} {best:>7.0f} {cpu:>7.0f} {target:>7}  {verdict}", flush=True)


def timed(command: list[str], env: dict[str, str], repeat: int) -> list[Sample]:
    whole_process(command, env)  # warm-up: file cache, and the bytecode written once
    return [whole_process(command, env) for _ in range(repeat)]


def timed_with_an_empty_cache(command: list[str], env: dict[str, str], repeat: int, work: Path) -> list[Sample]:
    """Each run as the first after an install or upgrade: the protocol's facts are derived again."""
    samples = []
    for run in range(repeat + 1):
        cache = work / f"empty-cache-{run}"
        samples.append(whole_process(command, {**env, "XDG_CACHE_HOME": str(cache)}))
        shutil.rmtree(cache, ignore_errors=True)
    return samples[1:]  # the first was the warm-up


def clinic_database(directory: Path, scale: float) -> Path:
    """The records-scale benchmark's clinic at ``scale``, built in ``directory`` unless it is there."""
    path = directory / f"clinic-{scale:g}x.db"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from bench_records_scale import build_clinic_database

        print(f"building the clinic database at {scale:g}x in {directory} …", flush=True)
        facts = build_clinic_database(path, scale)
        print(f"  {facts.sessions:,} sessions, {facts.deliveries:,} deliveries, {facts.file_mb:,.0f} MB, "
              f"built in {facts.build_s:.0f} s", flush=True)
    return path


def a_session_to_show(path: Path) -> str:
    """The newest completed session with the most trains: what a clinician looks up after a visit."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT session_id FROM sessions WHERE status = 'completed' "
            "ORDER BY planned_deliveries DESC, started_at DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return str(row[0])


def open_the_store(path: Path) -> None:
    from tmsctl.records import Records

    Records(path, create=False, read_only=True).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs of each command (after one warm-up)")
    parser.add_argument("--clinic-dir", type=Path, help="build the clinic databases here once and reuse them")
    parser.add_argument("--no-clinic", action="store_true", help="skip the records commands (no database build)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="compile every module on every run (as with PYTHONDONTWRITEBYTECODE=1)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tmsctl-startup-") as tmp:
        work = Path(tmp)
        pycache = None if options.no_bytecode_cache else work / "pycache"
        env = child_environment(pycache, work / "cache")
        tmsctl = tmsctl_command()
        print(f"{' '.join(tmsctl)}; {options.repeat} runs each after a warm-up; bytecode "
              + ("compiled on every run" if pycache is None else "cached (as installed)")
              + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print_header()
        print_row("(python -c pass: the interpreter alone)", timed([sys.executable, "-c", "pass"], env, options.repeat),
                  None)
        print_row("tmsctl --help", timed([*tmsctl, "--help"], env, options.repeat), HELP_TARGET_MS)
        print_row(f"tmsctl protocol validate protocols/library/*.yaml ({len(LIBRARY)} files)",
                  timed([*tmsctl, "protocol", "validate", *LIBRARY], env, options.repeat), VALIDATE_TARGET_MS)
        if options.no_clinic:
            return
        clinic_dir = options.clinic_dir or work / "clinic"
        clinic_dir.mkdir(parents=True, exist_ok=True)
        for scale in CLINIC_SCALES:
            pristine = clinic_database(clinic_dir, scale)
            # The commands open it read-only, but a copy keeps a kept database exactly as built.
            db = work / f"timed-{scale:g}x" / "clinic.db"
            db.parent.mkdir(mode=0o700)
            shutil.copyfile(pristine, db)
            db.chmod(0o600)  # the store refuses records other users could read
            session_id = a_session_to_show(db)
            size = f"{scale:g}x clinic, {db.stat().st_size / 1e6:,.0f} MB"
            open_the_store(db)  # warm-up
            print_row(f"  open the store in-process (Records, read-only), {size}",
                      [in_process(lambda db=db: open_the_store(db)) for _ in range(options.repeat)], None)
            print_row(f"tmsctl sessions --db DB ({size})",
                      timed([*tmsctl, "sessions", "--db", str(db)], env, options.repeat), RECORDS_COMMAND_TARGET_MS)
            print_row(f"tmsctl session show {session_id} --db DB ({size})",
                      timed([*tmsctl, "session", "show", session_id, "--db", str(db)], env, options.repeat),
                      RECORDS_COMMAND_TARGET_MS)
            print_row("  the same, the first show of its protocol (facts derived, then kept)",
                      timed_with_an_empty_cache([*tmsctl, "session", "show", session_id, "--db", str(db)], env,
                                                options.repeat, work), None)


if __name__ == "__main__":
    main()
