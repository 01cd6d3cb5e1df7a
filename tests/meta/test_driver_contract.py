"""The driver contract holds by construction: the core never probes a driver for a member, a driver
that declares what it does not implement is refused, and tmsctl's modules import without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tmsctl.core.clock import VirtualClock
from tmsctl.core.registry import check_driver, check_limits, open_driver
from tmsctl.drivers.base import Capability, DriverContractError, check_capabilities
from tmsctl.simulators import registry as sims

ROOT = Path(__file__).resolve().parents[2]
CORE = sorted((ROOT / "tmsctl").rglob("*.py"))
PROBES = {"getattr", "hasattr"}


def _probes_of_a_driver(path: Path, root: Path = ROOT) -> list[str]:
    """``getattr(x.driver, …)``, ``hasattr(driver, …)``: any probe whose object mentions a driver."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PROBES and node.args:
            target = ast.unparse(node.args[0])
            if any(word in target.lower() for word in ("driver", "port", "transport")):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_of_the_core_probes_a_driver_or_a_port_for_a_member() -> None:
    probes = [p for path in CORE for p in _probes_of_a_driver(path)]
    assert probes == [], "declare a capability (drivers/base.py) instead of probing:\n" + "\n".join(probes)


def test_the_probe_finder_finds_a_probe(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("x = getattr(self.driver, 'set_train', None)\n")
    assert len(_probes_of_a_driver(sample, root=tmp_path)) == 1


class _NoTrainTimer:
    display_name = "a driver that declares train timing without it"


def test_a_declared_capability_without_its_members_is_refused() -> None:
    with pytest.raises(DriverContractError, match="internal_train needs DeviceTimedTrain"):
        check_capabilities(_NoTrainTimer(), frozenset({Capability.INTERNAL_TRAIN}))


def test_registration_checks_the_limits_and_the_driver_surface() -> None:
    with pytest.raises(DriverContractError, match="energy_model"):
        check_limits("half-done", object())
    clock = VirtualClock()
    sims.create("rapid2", clock=clock, name="contract-rapid2")
    try:
        driver = open_driver("sim://contract-rapid2", clock)
        check_driver("magstim-rapid2", driver, driver.limits)  # the built-in passes
        with pytest.raises(DriverContractError, match=r"lacks .*verify_intensity"):
            check_driver("bare", _NoTrainTimer(), driver.limits)
        driver.close()
    finally:
        sims.remove("contract-rapid2")


def _imports(path: Path, package_root: Path, package: str) -> set[str]:
    """The tmsctl modules ``path`` imports at module level (not inside functions: those are lazy by design)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            parts = path.relative_to(package_root).with_suffix("").parts[: -node.level]
            names.add(".".join((package, *parts, *(node.module.split(".") if node.module else ()))))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("tmsctl")}


def _module_graph() -> dict[str, set[str]]:
    roots = {"tmsctl": ROOT / "tmsctl", "tmsctl.drivers": ROOT / "drivers", "tmsctl.protocols": ROOT / "protocols",
             "tmsctl.simulators": ROOT / "simulators"}
    modules: dict[str, Path] = {}
    for package, folder in roots.items():
        for path in folder.rglob("*.py"):
            if "tests" in path.parts or "build" in path.parts:
                continue
            rel = path.relative_to(folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            name = ".".join((package, *rel))
            if package == "tmsctl" and rel and rel[0] in ("drivers", "protocols", "simulators"):
                continue
            modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        base = path.parent
        deps = set()
        for imported in _imports(path, base, package):
            target = imported
            while target and target not in modules:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_at_module_level() -> None:
    graph = _module_graph()
    assert len(graph) > 50
    assert {"tmsctl.session.dose", "tmsctl.drivers.base", "tmsctl.session.fsm"} <= graph["tmsctl.session.controller"]  # the graph is real
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_a_spy_trace_that_cannot_be_masked_is_refused_not_written_raw() -> None:
    import serial

    from tmsctl.core.errors import ConnectionFailed
    from tmsctl.core.transport import _mask_spy_trace

    port = serial.serial_for_url("spy://loop://", do_not_open=True)
    port.formatter = object()  # a pyserial whose formatter no longer offers tx/rx/control
    with pytest.raises(ConnectionFailed, match="cannot be masked"):
        _mask_spy_trace(port, lambda frame: frame)
