"""mypy and ruff, run as part of the one test command (README, .ci/run).

Their configuration is in pyproject.toml ([tool.mypy], [tool.ruff]). Run just these checks with
`python -m pytest tests/meta/test_static_checks.py`, or `python tests/meta/test_static_checks.py`
to see the tools' own output.

mypy must see the package as it is installed: pyproject's package-dir maps drivers/, protocols/ and
simulators/ to tmsctl.drivers, tmsctl.protocols and tmsctl.simulators, and an editable install
reaches them through an import hook that mypy cannot follow. So the check lays out that installed
shape as a tree of symlinks in a temporary folder, runs `mypy -p tmsctl` there and maps the paths in
its report back to the source folders.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Kept between runs (mypy's cache makes a re-run take seconds), one per checkout.
WORK = Path(tempfile.gettempdir()) / f"tmsctl-static-checks-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]}"


def _package_dirs() -> dict[str, Path]:
    """The installed package name of each source folder, read from pyproject's package-dir."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {package: ROOT / folder for package, folder in config["package-dir"].items()}


def installed_layout(tree: Path) -> dict[Path, Path]:
    """Lay the sources out under `tree` as they are installed; returns {place in tree: source folder}."""
    if tree.exists():
        shutil.rmtree(tree)
    placed: dict[Path, Path] = {}
    # Shorter package names first, so tmsctl/ exists before tmsctl/drivers is linked into it.
    for package, folder in sorted(_package_dirs().items(), key=lambda item: item[0].count(".")):
        where = tree.joinpath(*package.split("."))
        if package.count(".") == 0:
            where.mkdir(parents=True)
            for entry in folder.iterdir():
                if entry.name != "__pycache__":
                    (where / entry.name).symlink_to(entry)
        else:
            where.symlink_to(folder, target_is_directory=True)
        placed[where] = folder
    return placed


def _to_source_paths(report: str, tree: Path, placed: dict[Path, Path]) -> str:
    """mypy names files by where it found them in the tree; name them by where they are edited."""
    # Longest first: tmsctl/drivers/ before tmsctl/.
    for where, folder in sorted(placed.items(), key=lambda item: -len(str(item[0]))):
        report = report.replace(f"{where.relative_to(tree)}/", f"{folder.relative_to(ROOT)}/")
    return report


def run_mypy() -> subprocess.CompletedProcess[str]:
    tree = WORK / "tree"
    placed = installed_layout(tree)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(WORK / "mypy-cache"), "--no-color-output", "-p", "tmsctl"],
        cwd=tree, capture_output=True, text=True,
    )
    result.stdout = _to_source_paths(result.stdout, tree, placed)
    return result


def run_ruff() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT, capture_output=True, text=True,
    )


def test_mypy_finds_no_error() -> None:
    result = run_mypy()
    assert result.returncode == 0, f"mypy (configured in pyproject.toml):\n{result.stdout}{result.stderr}"


def test_ruff_finds_no_error() -> None:
    result = run_ruff()
    assert result.returncode == 0, f"ruff check . (configured in pyproject.toml):\n{result.stdout}{result.stderr}"


# Every way the project forbids reading or waiting on time outside tmsctl/core/clock.py (the injected
# clock), as ruff's banned-api rule (TID251) must catch it.
_CLOCK_BYPASSES = """\
import datetime as dt
import threading
import time
from datetime import date, datetime
from threading import Timer
from time import monotonic

time.sleep(1)
time.monotonic()
time.monotonic_ns()
time.time()
time.time_ns()
time.perf_counter()
time.perf_counter_ns()
time.localtime()
time.gmtime()
threading.Timer(1, print)
datetime.now()
datetime.utcnow()
datetime.today()
date.today()
dt.datetime.now(dt.UTC)
"""


def test_the_clock_ban_catches_every_way_around_the_injected_clock(tmp_path: Path) -> None:
    sample = tmp_path / "tmsctl_sample.py"
    sample.write_text(_CLOCK_BYPASSES)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
         "--select", "TID251", "--output-format", "concise", str(sample)],
        capture_output=True, text=True,
    )
    flagged = {int(line.split(":")[1]) for line in result.stdout.splitlines() if "TID251" in line}
    uses = {n for n, line in enumerate(_CLOCK_BYPASSES.splitlines(), 1) if "(" in line}
    # the two imports that name a banned API are flagged too
    assert uses <= flagged, f"not caught: {sorted(uses - flagged)}\n{result.stdout}"


if __name__ == "__main__":
    for check in (run_mypy, run_ruff):
        outcome = check()
        print(outcome.stdout + outcome.stderr, end="")
