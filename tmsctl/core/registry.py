"""Drivers by name: every ``DriverEntry`` installed under the ``tmsctl.drivers`` entry point group.

tmsctl's own drivers are declared there by its ``pyproject.toml``, exactly as a vendor package
declares its own (docs/writing-a-driver.md); two providers of one name are refused.

``open_driver(url)`` is the one way from a device URL to a connected-ready driver: parse the URL,
resolve the driver (for a bare ``sim://NAME`` the simulator profile names it), load the model's
limits, open the transport, and build the driver with its options. It never writes to a port;
``connect()`` is the caller's explicit next step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tmsctl.core.clock import Clock, SystemClock
from tmsctl.core.errors import DeviceUnavailable, InvalidArgument
from tmsctl.core.plugins import DRIVERS_GROUP, REINSTALL_HINT, Provided, load_group
from tmsctl.core.transport import RedactTx, Tap, Transport
from tmsctl.core.url import GENERIC_URL_OPTIONS, DeviceURL, parse
from tmsctl.drivers.base import (
    DeviceLimits,
    DriverContractError,
    StimulatorDriver,
    check_capabilities,
)


@dataclass(frozen=True)
class DriverEntry:
    """How to build one driver, and the vendor facts tmsctl's generic code must not hard-code.

    ``factory(transport, limits, options, simulated) -> driver``; ``load_limits(options)`` gives
    the model's limits from the URL's (text) options.

    * ``serial_settings``: the port settings the unit speaks (pyserial attribute names); a URL's
      ``baud=`` option overrides the baud rate only.
    * ``url_options``: the device-URL query options the driver takes (``?unlock=…&variant=…``);
      every other option stays on the transport URL (``spy://…?file=``, ``sim://…?fault=``).
    * ``secret_options``: those of them that carry a secret. Their values must reference it
      (``env:NAME``), are masked in every log and record, and reach the factory as bytes.
    * ``manufacturer``: the vendor's name as a data export writes it (BIDS ``Manufacturer``).
    * ``pulse_shape``: the BIDS stimulus shape when the model has only one ("Monophasic",
      "Biphasic"), None when it depends on settings the protocol names.
    * ``redact_tx``: masks the secrets in frames the driver sends (e.g. a Rapid² unlock code) for
      every trace of the port; None when its protocol carries none.

    The driver it builds declares ``trigger_lead_s``: from sending the trigger command to the
    pulse (the trigger frame's wire time at the port's baud rate), which a host-timed train
    subtracts so each pulse lands on its planned instant.
    """

    name: str
    display_name: str
    load_limits: Callable[[dict[str, str]], DeviceLimits]
    factory: Callable[[Transport, DeviceLimits, dict[str, Any], bool], StimulatorDriver]
    serial_settings: dict[str, Any]
    manufacturer: str
    pulse_shape: str | None = None
    url_options: frozenset[str] = frozenset()
    secret_options: frozenset[str] = frozenset()
    redact_tx: RedactTx | None = None

    def __post_init__(self) -> None:
        if not self.secret_options <= self.url_options:
            raise InvalidArgument(
                f"driver {self.name!r}: secret options {sorted(self.secret_options - self.url_options)} "
                "are not among its URL options",
                hint="list every secret option in url_options too",
            )


@lru_cache(maxsize=1)
def _installed() -> dict[str, Provided[DriverEntry]]:
    # Entry points do not change while we run; every built-in comes through them as well.
    return load_group(DRIVERS_GROUP, DriverEntry, lambda entry: entry.name)


def drivers() -> dict[str, DriverEntry]:
    return {name: provided.item for name, provided in _installed().items()}


def driver_origin(name: str) -> Provided[DriverEntry]:
    """The entry and the distribution that provides it."""
    known = _installed()
    try:
        return known[name]
    except KeyError:
        hint = f"known drivers: {', '.join(sorted(known))}" if known else REINSTALL_HINT
        raise DeviceUnavailable(f"no driver called {name!r}", hint=hint) from None


def driver_entry(name: str) -> DriverEntry:
    return driver_origin(name).item


def url_options(driver: str | None, simulator: str | None = None) -> tuple[frozenset[str], frozenset[str]]:
    """(the URL options a device URL's driver takes, the secret ones among them).

    ``driver`` None is a bare ``sim://NAME``: the simulator names its driver. A driver nobody
    provides is refused when it is opened; until then every option any driver takes counts, so
    no secret can stay on a transport URL or reach a log unmasked.
    """
    known = drivers()
    if driver is None and simulator is not None:
        driver = _simulator_driver(simulator)
    entry = known.get(driver) if driver is not None else None
    if entry is not None:
        return GENERIC_URL_OPTIONS | entry.url_options, entry.secret_options
    every = frozenset().union(*(e.url_options for e in known.values()))
    secret = frozenset().union(*(e.secret_options for e in known.values()))
    return GENERIC_URL_OPTIONS | every, secret


def _simulator_driver(name: str) -> str | None:
    from tmsctl.simulators import registry as sims

    instance = sims.lookup(name)
    if instance is not None:
        return instance.profile.driver
    found = sims.profiles().get(name)
    return found.driver if found is not None else None


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
    for name in entry.secret_options & device.options.keys():
        options[name] = device.secret(name)
    limits = entry.load_limits({k: v for k, v in options.items() if isinstance(v, str)})
    check_limits(entry.name, limits)
    settings = dict(entry.serial_settings)
    if "baud" in options:
        try:
            settings["baudrate"] = int(options["baud"])
        except ValueError:
            raise InvalidArgument(f"baud must be a number, got {options['baud']!r}") from None
    transport = Transport.open(device.transport, clock, settings=settings, tap=tap, redact_tx=entry.redact_tx)
    try:
        driver = entry.factory(transport, limits, options, device.is_simulator)
        check_driver(entry.name, driver, limits)
        return driver
    except Exception:
        transport.close()
        raise


def _missing_members(obj: object, contract: type) -> list[str]:
    """The members a Protocol names (its methods and annotated attributes) that ``obj`` lacks."""
    names = {n for n in vars(contract) if not n.startswith("_")} | set(vars(contract).get("__annotations__", {}))
    present = set(dir(obj))
    return sorted(n for n in names if n not in present)


def check_limits(name: str, limits: object) -> None:
    """A driver's limits must answer everything the protocol checker and the controller ask."""
    if not isinstance(limits, DeviceLimits):
        raise DriverContractError(
            f"driver {name!r}: its limits lack {', '.join(_missing_members(limits, DeviceLimits))} (DeviceLimits)",
            hint="implement them (docs/writing-a-driver.md); an energy model may be NoEnergyModel with its reason",
        )


def check_driver(name: str, driver: object, limits: DeviceLimits) -> None:
    """The driver implements the common surface and every capability it declares."""
    if not isinstance(driver, StimulatorDriver):
        raise DriverContractError(
            f"driver {name!r} lacks {', '.join(_missing_members(driver, StimulatorDriver))} (StimulatorDriver)",
            hint="implement them (docs/writing-a-driver.md)",
        )
    check_capabilities(driver, limits.capabilities)
