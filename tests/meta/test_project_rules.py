"""Rules of the codebase that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("tmsctl", "drivers", "protocols", "simulators")
BANNED = {
    ("time", "sleep"), ("time", "monotonic"), ("time", "time"), ("time", "perf_counter"), ("threading", "Timer"),
    ("time", "monotonic_ns"), ("time", "time_ns"), ("time", "perf_counter_ns"), ("time", "localtime"),
    ("time", "gmtime"), ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
}
CLOCK_MODULE = ROOT / "tmsctl" / "clock.py"


def _python_files():
    for folder in SOURCE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _banned_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            # datetime.now and datetime.datetime.now alike: the name right before the attribute
            owner = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", None)
            if (owner, node.attr) in BANNED:
                found.append(f"{_where(path)}:{node.lineno} {owner}.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module in {"time", "threading"}:
            for alias in node.names:
                if (node.module, alias.name) in BANNED:
                    found.append(f"{_where(path)}:{node.lineno} from {node.module} import {alias.name}")
    return found


def test_only_the_clock_module_reads_or_waits_on_time() -> None:
    offenders = [use for path in _python_files() if path != CLOCK_MODULE for use in _banned_uses(path)]
    assert offenders == [], "use the injected clock (tmsctl.clock) instead:\n" + "\n".join(offenders)


def test_the_ban_detects_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import time\nfrom threading import Timer\ntime.sleep(1)\n")
    assert len(_banned_uses(sample)) == 2
    sample.write_text("import datetime as dt\nfrom datetime import date, datetime\n"
                      "datetime.now()\ndt.datetime.now(dt.UTC)\ndate.today()\n")
    assert len(_banned_uses(sample)) == 3


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    on_disk = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            name = ".".join((package, *rel.parts)) if rel.parts else package
            if not any(part.startswith((".", "_")) for part in rel.parts):
                on_disk.add(name)
    missing = sorted(on_disk - listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert not sorted(listed - on_disk), "pyproject lists packages that do not exist"


def test_the_wheel_holds_every_module_and_data_file(tmp_path: Path) -> None:
    """Built the way users install it: tmsctl/drivers/..., tmsctl/protocols/..., data included."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("tmsctl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    expected = set()
    for package, folder in config["package-dir"].items():
        base = ROOT / folder
        for path in base.rglob("*"):
            if path.suffix in {".py", ".yaml", ".json"} and "__pycache__" not in path.parts:
                expected.add("/".join((*package.split("."), *path.relative_to(base).parts)))
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing[:10]}"
