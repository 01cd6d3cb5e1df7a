"""Drivers and simulators are plugins (issue 18, finding 2): the built-ins come in through the same
``tmsctl.drivers`` / ``tmsctl.simulators`` entry points a vendor package uses, a name two plugins
provide is refused naming both, and each driver entry carries its own vendor facts."""

from __future__ import annotations

import ast
import math
import tomllib
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

import pytest

from tmsctl.core import plugins
from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import InvalidArgument, PluginConflict
from tmsctl.core.registry import DriverEntry, driver_origin, drivers, open_driver
from tmsctl.core.url import parse
from tmsctl.lab.bids_nibs import stimulator_facts
from tmsctl.simulators import registry as sims

ROOT = Path(__file__).resolve().parents[2]
GENERIC_MODULES = ("tmsctl/core/registry.py", "tmsctl/core/url.py", "tmsctl/core/transport.py", "tmsctl/lab/bids_nibs.py",
                   "simulators/registry.py")


def _declared(group: str) -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][group]


@pytest.mark.parametrize("group", [plugins.DRIVERS_GROUP, plugins.SIMULATORS_GROUP])
def test_the_installed_entry_points_are_the_ones_pyproject_declares(group: str) -> None:
    installed = {ep.name: ep.value for ep in plugins.installed_entry_points(group) if ep.dist.name == "tmsctl"}
    assert installed == _declared(group), f"stale install: {plugins.REINSTALL_HINT}"


def test_every_builtin_driver_and_simulator_comes_from_tmsctls_own_entry_points() -> None:
    assert {driver_origin(name).distribution for name in drivers()} == {"tmsctl"}
    assert {"magstim-rapid2", "magventure-magpro", "deymed-duomag"} <= set(drivers())
    assert {"rapid2", "m200", "magpro", "duomag"} <= set(sims.profiles())


def test_no_generic_module_names_a_driver_vendor_or_simulator() -> None:
    """No name branch, table key or fallback for a vendor in the generic code (docs may give examples)."""
    vendor_words = {entry.manufacturer for entry in drivers().values()}
    names = {n.lower() for n in (*drivers(), *sims.profiles(), *vendor_words, *(n.split("-")[0] for n in drivers()))}
    for path in GENERIC_MODULES:
        tree = ast.parse((ROOT / path).read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node) is not None
        }
        literals = {
            node.value.lower()
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        }
        assert not literals & names, f"{path} hard-codes {sorted(literals & names)}"


# -- a name two plugins provide -------------------------------------------------------------------------


def _vendor_dist(tmp_path: Path, dist: str, module: str, body: str, entry_points: str) -> list[EntryPoint]:
    """A distribution's metadata and module in ``tmp_path`` (importable once it is on sys.path)."""
    (tmp_path / f"{module}.py").write_text(body)
    info = tmp_path / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    (found,) = [d for d in distributions(path=[str(tmp_path)]) if d.name == dist]
    return list(found.entry_points)


ENTRY_MODULE = '''
from tmsctl.core.registry import DriverEntry
from tmsctl.drivers.magstim.registration import DRIVER_ENTRIES
RAPID2 = [e for e in DRIVER_ENTRIES if e.name == "magstim-rapid2"]
'''


def test_a_third_party_reusing_a_builtin_driver_name_is_refused_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    theirs = _vendor_dist(tmp_path, "acme-tms", "acme_entries", ENTRY_MODULE,
                          "[tmsctl.drivers]\nacme = acme_entries:RAPID2\n")
    ours = list(plugins.installed_entry_points(plugins.DRIVERS_GROUP))
    with pytest.raises(PluginConflict) as caught:
        plugins.load_group(plugins.DRIVERS_GROUP, DriverEntry, lambda e: e.name, [*ours, *theirs])
    assert "'magstim-rapid2'" in str(caught.value)
    assert "tmsctl (magstim = " in str(caught.value) and "acme-tms (acme = acme_entries:RAPID2)" in str(caught.value)


def test_two_entry_points_of_one_name_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    points = _vendor_dist(tmp_path, "acme-tms", "acme_entries", ENTRY_MODULE,
                          "[tmsctl.drivers]\none = acme_entries:RAPID2\ntwo = acme_entries:DRIVER_ENTRIES\n")
    with pytest.raises(PluginConflict, match=r"acme-tms \(one = .*acme-tms \(two = "):
        plugins.load_group(plugins.DRIVERS_GROUP, DriverEntry, lambda e: e.name, points)


def test_an_entry_point_that_names_something_else_is_refused_naming_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    points = _vendor_dist(tmp_path, "acme-tms", "acme_other", "NOT_AN_ENTRY = 'magstim-rapid2'\n",
                          "[tmsctl.drivers]\nacme = acme_other:NOT_AN_ENTRY\n")
    with pytest.raises(Exception, match="acme-tms names neither a DriverEntry nor a list of them"):
        plugins.load_group(plugins.DRIVERS_GROUP, DriverEntry, lambda e: e.name, points)


def test_a_profile_registered_in_process_cannot_hide_an_installed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sims, "_REGISTERED", {})
    rapid2 = sims.profile("rapid2")
    with pytest.raises(PluginConflict, match="'rapid2' already exists \\(from tmsctl "):
        sims.register_profile(rapid2)
    mine = sims.SimulatorProfile("rapid2-mine", rapid2.driver, "mine", rapid2.create, {})
    sims.register_profile(mine)
    assert sims.profile("rapid2-mine") is mine
    with pytest.raises(PluginConflict, match="earlier register_profile"):
        sims.register_profile(sims.SimulatorProfile("rapid2-mine", rapid2.driver, "other", rapid2.create, {}))


# -- vendor facts on the entry ----------------------------------------------------------------------------


def test_url_options_are_the_drivers_own() -> None:
    rapid2 = parse("magstim-rapid2:///dev/ttyUSB0?unlock=env:CODE&variant=rapid2_plus1&baud=9600")
    assert rapid2.options == {"unlock": "env:CODE", "variant": "rapid2_plus1", "baud": "9600"}
    assert rapid2.transport == "/dev/ttyUSB0"
    # an env:NAME reference names where the code is, not the code: kept, so a recorded URL reopens the unit
    assert "unlock=env:CODE" in rapid2.redacted
    with pytest.raises(InvalidArgument, match="'magventure-magpro' takes no option unlock"):
        parse("magventure-magpro:///dev/ttyUSB0?unlock=env:CODE")
    # A bare sim://NAME takes its driver's options through the simulator profile.
    bare = parse("sim://rapid2?unlock=env:CODE&fault=stall@3s")
    assert bare.options == {"unlock": "env:CODE"} and bare.transport == "sim://rapid2?fault=stall@3s"
    assert "unlock=env:CODE" in bare.redacted
    # The MagPro takes none of the Rapid²'s: they stay on the transport URL (where sim:// refuses them).
    assert parse("sim://magpro?variant=x").transport == "sim://magpro?variant=x"


def test_a_secret_option_must_be_among_the_url_options() -> None:
    entry = drivers()["magstim-rapid2"]
    with pytest.raises(InvalidArgument, match="secret options \\['pin'\\]"):
        DriverEntry("x", "x", entry.load_limits, entry.factory, {}, manufacturer="x", secret_options=frozenset({"pin"}))


@pytest.mark.parametrize(
    ("url", "baudrate", "stopbits"),
    [("magstim-200+loop://", 9600, 1), ("magventure-magpro+loop://", 38400, 1), ("deymed-duomag+loop://", 1_000_000, 2)],
)
def test_each_port_gets_its_drivers_serial_settings(url: str, baudrate: int, stopbits: int) -> None:
    driver = open_driver(url, VirtualClock())
    try:
        port = driver.transport._port
        assert (port.baudrate, port.stopbits) == (baudrate, stopbits)
    finally:
        driver.transport.close()


@pytest.mark.parametrize("name", sorted(drivers()))
def test_every_driver_declares_its_trigger_lead(name: str) -> None:
    driver = open_driver(f"{name}+loop://", VirtualClock())
    try:
        lead = driver.trigger_lead_s
    finally:
        driver.transport.close()
    baudrate = driver.transport._port.baudrate
    # At least the start, 8 data and stop bits of the one byte that fires; at most a 16-byte frame.
    assert 10 / baudrate <= lead <= 16 * 11 / baudrate and math.isfinite(lead)


def test_magstim_trigger_lead_is_its_three_byte_fire_command_at_9600_baud() -> None:
    driver = open_driver("magstim-rapid2+loop://", VirtualClock())
    driver.transport.close()
    assert driver.trigger_lead_s == pytest.approx(3 * 10 / 9600)


def test_manufacturer_and_pulse_shape_come_from_the_entry() -> None:
    assert stimulator_facts("magstim-rapid2") == ("Magstim", "Biphasic")
    assert stimulator_facts("magstim-bistim") == ("Magstim", "Monophasic")
    assert stimulator_facts("magventure-magpro-x100") == ("MagVenture", "n/a")  # the protocol names it
    assert stimulator_facts("deymed-duomag") == ("Deymed", "n/a")
    assert stimulator_facts("acme-one") == ("acme", "n/a")  # a driver no longer installed
