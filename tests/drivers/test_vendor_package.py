"""A new vendor is its own package and two entry points, with zero edits in tmsctl (issue 18).

``vendor_package/`` is a third party's package: a made-up stimulator with an ASCII line protocol,
its driver, its simulator and a pyproject.toml declaring both under ``tmsctl.drivers`` and
``tmsctl.simulators``. The test copies it to a temporary directory, pip-installs it there
(``--target``: the environment running the tests is never touched), and in a fresh interpreter
that has it on its path runs tmsctl's conformance suite (every exchange check and the stateful
safety machine) against it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import tmsctl

ROOT = Path(__file__).resolve().parents[2]
VENDOR = Path(__file__).with_name("vendor_package")

CONFORMANCE = """
from tmsctl.lab.conformance import EXCHANGE_CHECKS, ConformanceTarget, run_stateful
from tmsctl.core.registry import driver_origin
from tmsctl.simulators import registry as sims

origin = driver_origin("acme-linestim")
assert origin.distribution == "acme-linestim", origin
assert origin.item.manufacturer == "Acme" and origin.item.serial_settings["baudrate"] == 19200
assert sims.profile("acme-linestim").driver == "acme-linestim"
target = ConformanceTarget("acme-linestim")
for name, check in EXCHANGE_CHECKS.items():
    check(target)
    print("passed", name)
run_stateful(target, max_examples=50)
print("passed stateful")
"""


def _tmsctl_files() -> dict[Path, int]:
    """Every file of tmsctl's source and metadata, with its modification time."""
    found = {}
    for base in (ROOT / "tmsctl", ROOT / "drivers", ROOT / "simulators", ROOT / "protocols", Path(tmsctl.__file__).parent):
        for path in base.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                found[path] = path.stat().st_mtime_ns
    found[ROOT / "pyproject.toml"] = (ROOT / "pyproject.toml").stat().st_mtime_ns
    return found


def test_a_vendor_package_passes_the_conformance_suite_with_no_edit_in_tmsctl(tmp_path: Path) -> None:
    before = _tmsctl_files()
    source, site = tmp_path / "acme-linestim", tmp_path / "site"
    shutil.copytree(VENDOR, source)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(site), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    assert (site / "acme_linestim-1.0.0.dist-info" / "entry_points.txt").is_file()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", CONFORMANCE], cwd=tmp_path, env=env, check=False,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "passed stateful" in run.stdout and "passed fault_stall" in run.stdout

    assert _tmsctl_files() == before, "installing or running the vendor package changed a file of tmsctl"
    assert "acme-linestim" not in {d.name for d in distributions()}, "the test environment was changed"
