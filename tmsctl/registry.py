"""Drivers by name: the built-ins plus any registered under the ``tmsctl.drivers`` entry point.

``open_driver(url)`` is the one way from a device URL to a connected-ready driver: parse the URL,
resolve the driver (for a bare ``sim://NAME`` the simulator profile names it), load the model's
limits, open the transport, and build the driver with its options. It never writes to a port;
``connect()`` is the caller's explicit next step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from tmsctl.clock import Clock, SystemClock
from tmsctl.drivers.base import DeviceLimits, StimulatorDriver
from tmsctl.errors import DeviceUnavailable, InvalidArgument
from tmsctl.transport import MAGSTIM_SERIAL_SETTINGS, RedactTx, Tap, Transport
from tmsctl.url import DeviceURL, parse


@dataclass(frozen=True)
class DriverEntry:
    """How to build one driver: ``factory(transport, limits, options, simulated) -> driver``.

    ``redact_tx`` masks the secrets in frames the driver sends (e.g. a Rapid² unlock code) for
    every trace of the port; None when its protocol carries none.
    """

    name: str
    display_name: str
    load_limits: Callable[[dict[str, str]], DeviceLimits]
    factory: Callable[[Transport, DeviceLimits, dict[str, Any], bool], StimulatorDriver]
    serial_settings: dict[str, Any]
    redact_tx: RedactTx | None = None


def _magstim_entry(name: str, display_name: str) -> DriverEntry:
    def load_limits(options: dict[str, str]) -> DeviceLimits:
        from tmsctl.drivers.magstim.spec import load_spec

        if name == "magstim-rapid2":
            try:
                mains_v = int(options.get("mains_v", "240"))
            except ValueError:
                raise InvalidArgument(f"mains_v must be 240 or 115, got {options['mains_v']!r}") from None
            return load_spec(name, variant=options.get("variant", "rapid2"), mains_v=mains_v)
        return load_spec(name)

    def factory(transport: Transport, limits: DeviceLimits, options: dict[str, Any], simulated: bool) -> Any:
        from tmsctl.drivers.magstim.driver import DRIVERS

        cls = DRIVERS[name]
        if name == "magstim-rapid2":
            return cls(transport, limits, unlock_code=options.get("unlock"), simulated=simulated)  # type: ignore[call-arg]
        return cls(transport, limits, simulated=simulated)

    def redact_tx(frame: bytes) -> bytes:
        from tmsctl.drivers.magstim.codec import redact_host_frame

        return redact_host_frame(frame)

    return DriverEntry(name, display_name, load_limits, factory, MAGSTIM_SERIAL_SETTINGS, redact_tx)


_BUILTIN: dict[str, DriverEntry] = {
    e.name: e
    for e in (
        _magstim_entry("magstim-200", "Magstim 200²"),
        _magstim_entry("magstim-bistim", "Magstim BiStim²"),
        _magstim_entry("magstim-rapid2", "Magstim Rapid²"),
    )
}
_EXTRA_MODULES = ("tmsctl.drivers.magventure.registration", "tmsctl.drivers.deymed.registration")


def register(entry: DriverEntry) -> None:
    _BUILTIN[entry.name] = entry


@lru_cache(maxsize=1)
def _installed_entry_points() -> tuple[Any, ...]:
    # Scanning installed distributions is slow and their entry points do not change while we run.
    return tuple(entry_points(group="tmsctl.drivers"))


def _load_plugins() -> dict[str, DriverEntry]:
    found = dict(_BUILTIN)
    for module in _EXTRA_MODULES:
        try:
            mod = import_module(module)
        except ModuleNotFoundError:
            continue
        for entry in getattr(mod, "DRIVER_ENTRIES", ()):
            found.setdefault(entry.name, entry)
    for ep in _installed_entry_points():
        if ep.name not in found:
            found[ep.name] = ep.load()
    return found


def drivers() -> dict[str, DriverEntry]:
    return _load_plugins()


def driver_entry(name: str) -> DriverEntry:
    known = _load_plugins()
    try:
        return known[name]
    except KeyError:
        raise DeviceUnavailable(
            f"no driver called {name!r}", hint=f"known drivers: {', '.join(sorted(known))}"
        ) from None


def open_driver(
    url: str | DeviceURL,
    clock: Clock | None = None,
    *,
    tap: Tap | None = None,
    driver_options: dict[str, Any] | None = None,
) -> StimulatorDriver:
    """Open the transport named by ``url`` and build its driver (not yet connected).

    ``driver_options`` are given programmatically (e.g. a simulator's published unlock code when
    it is served on a pty); the URL's own options win.
    """
    device = parse(url) if isinstance(url, str) else url
    clock = clock or SystemClock()
    options: dict[str, Any] = {**(driver_options or {}), **device.options}
    driver_name = device.driver
    if device.is_simulator:
        from tmsctl.simulators import registry as sims

        sim_name = device.simulator_profile or ""
        instance = sims.lookup(sim_name)  # a pre-registered simulator, e.g. a test's
        profile = instance.profile if instance is not None else sims.profile(sim_name)
        driver_name = driver_name or profile.driver
        if driver_name != profile.driver:
            raise DeviceUnavailable(
                f"simulator {profile.name!r} speaks to driver {profile.driver!r}, not {driver_name!r}"
            )
        for key, value in profile.driver_options.items():
            options.setdefault(key, value)
    assert driver_name is not None
    entry = driver_entry(driver_name)
    if "unlock" in device.options:
        options["unlock"] = _unlock_code(device)
    limits = entry.load_limits({k: v for k, v in options.items() if isinstance(v, str)})
    settings = dict(entry.serial_settings)
    if "baud" in options:
        try:
            settings["baudrate"] = int(options["baud"])
        except ValueError:
            raise InvalidArgument(f"baud must be a number, got {options['baud']!r}") from None
    transport = Transport.open(device.transport, clock, settings=settings, tap=tap, redact_tx=entry.redact_tx)
    try:
        return entry.factory(transport, limits, options, device.is_simulator)
    except Exception:
        transport.close()
        raise


def _unlock_code(device: DeviceURL) -> bytes:
    """The Rapid² unlock code: 16 raw bytes, or the 14 text characters followed by 4 hex digits."""
    raw = device.secret("unlock")
    assert raw is not None
    if len(raw) == 18:
        try:
            return raw[:14] + bytes.fromhex(raw[14:].decode("ascii"))
        except ValueError:
            pass
    return raw
