"""The folders of ``tmsctl/`` are layers: each imports only from the floors below it.

From the ground up: ``core`` (clock, errors, events, URLs, the port, plugin discovery); beside it
``drivers``, ``protocols`` and ``simulators`` (the device contract and its implementations, the
protocol language and the rules); then ``records``, ``session``, ``lab``, ``clinic`` and ``cli``.
Every import counts, the lazy ones inside functions too: a lazy import upwards is the same tangle,
only later. The package's root modules (``tmsctl``, ``tmsctl.api``, ``tmsctl.errors``,
``tmsctl.clock``) are the published names and may re-export from any floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"tmsctl": ROOT / "tmsctl", "tmsctl.drivers": ROOT / "drivers",
           "tmsctl.protocols": ROOT / "protocols", "tmsctl.simulators": ROOT / "simulators"}

FLOORS = {"core": 0, "drivers": 1, "protocols": 1, "simulators": 1,
          "records": 2, "session": 3, "lab": 4, "clinic": 5, "cli": 6}

# The ground discovers plugins: it loads what the simulator registry lists and builds drivers by the
# contract in drivers.base. Nothing else of a higher floor may be reached from the ground.
GROUND_MAY_REACH = {"tmsctl.drivers.base", "tmsctl.simulators.registry", "tmsctl.simulators"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _floor(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "tmsctl":
        return None
    return FLOORS.get(parts[1])


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tmsctl":
                out.extend((node.lineno, f"tmsctl.{alias.name}") for alias in node.names)
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, name) for line, name in out if name.startswith("tmsctl.")]


def _violations() -> list[str]:
    found = []
    for module, path in sorted(_modules().items()):
        own = _floor(module)
        if own is None:
            continue  # a published root name: re-exports from any floor
        for line, target in _imports(path):
            theirs = _floor(target)
            if theirs is None or theirs <= own:
                continue
            if own == 0 and target in GROUND_MAY_REACH:
                continue
            found.append(f"{path.relative_to(ROOT)}:{line}: {module} (floor {own}) imports {target} (floor {theirs})")
    return found


def test_every_module_lives_on_a_floor() -> None:
    flat = [m for m in _modules() if _floor(m) is None and m not in
            {"tmsctl", "tmsctl.__main__", "tmsctl.api", "tmsctl.errors", "tmsctl.clock"}]
    assert flat == [], "modules outside the layer folders: " + ", ".join(flat)


def test_no_module_imports_from_a_higher_floor() -> None:
    assert len(_modules()) > 80  # the walk is real
    violations = _violations()
    assert violations == [], "\n".join(violations)


def test_the_published_names_stay_importable() -> None:
    import tmsctl
    import tmsctl.api
    import tmsctl.clock
    import tmsctl.errors
    from tmsctl.core.clock import VirtualClock
    from tmsctl.core.errors import TmsError
    from tmsctl.lab.api import Stimulator

    assert tmsctl.open is tmsctl.api.open
    assert tmsctl.Stimulator is Stimulator is tmsctl.api.Stimulator
    assert tmsctl.errors.TmsError is TmsError
    assert tmsctl.clock.VirtualClock is VirtualClock


def test_a_higher_floor_import_is_found(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from tmsctl.cli.main import app\n")
    assert _imports(bad) == [(2, "tmsctl.cli.main")]
    assert _floor("tmsctl.cli.main") == 6 > _floor("tmsctl.records.store") == 2  # type: ignore[operator]
