"""Simulator profiles and the process-wide table of named simulator instances.

``sim://NAME`` opens the instance registered under NAME if a test (or ``tmsctl.open``) put one
there — so a test can build a simulator on its own ``VirtualClock`` with a fault plan and then
hand the URL to the code under test — otherwise a fresh simulator from profile NAME.

Profiles come from the ``tmsctl.simulators`` entry point group (tmsctl's own included, declared
in its pyproject.toml); ``register_profile`` adds one for this process only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tmsctl.core.clock import Clock, SystemClock
from tmsctl.core.errors import DeviceUnavailable, PluginConflict
from tmsctl.core.plugins import REINSTALL_HINT, SIMULATORS_GROUP, Provided, load_group

from .device import Fault, SimulatedDevice


@dataclass(frozen=True)
class SimulatorProfile:
    name: str
    driver: str  # the driver that speaks to it
    display_name: str
    create: Callable[[float, tuple[Fault, ...]], SimulatedDevice]
    driver_options: dict[str, Any]


@dataclass
class SimulatorInstance:
    """A device model, the clock it lives on, and the lock that serialises access to it."""

    name: str
    profile: SimulatorProfile
    device: SimulatedDevice
    clock: Clock
    lock: threading.RLock


def _creator(
    model: Callable[..., SimulatedDevice], profile: Any
) -> Callable[[float, tuple[Fault, ...]], SimulatedDevice]:
    def create(start: float, faults: tuple[Fault, ...]) -> SimulatedDevice:
        return model(profile, start=start, faults=faults)

    return create


def profiles_for(
    profiles: Mapping[str, Any], model: Callable[..., SimulatedDevice]
) -> list[SimulatorProfile]:
    """``SimulatorProfile``s for a vendor's own profile table: ``{name: p}`` where ``p`` has
    ``driver``, ``display_name`` and ``driver_options``, and ``model(p, start=, faults=)`` builds
    the device. What a simulator module names in its ``tmsctl.simulators`` entry point."""
    return [
        SimulatorProfile(
            name, p.driver, p.display_name,
            _creator(model, p),
            dict(p.driver_options),
        )
        for name, p in profiles.items()
    ]


_REGISTERED: dict[str, SimulatorProfile] = {}  # in-process additions (benchmarks, tests)
_INSTANCES: dict[str, SimulatorInstance] = {}
_TABLE_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _installed() -> dict[str, Provided[SimulatorProfile]]:
    return load_group(SIMULATORS_GROUP, SimulatorProfile, lambda profile: profile.name)


def register_profile(profile: SimulatorProfile) -> None:
    """Add a profile for this process only (a benchmark's tuned unit, a test's). Its name must be
    new: a profile that hid an installed one would silently change what ``sim://NAME`` means."""
    installed = _installed().get(profile.name)
    with _TABLE_LOCK:
        taken = _REGISTERED.get(profile.name)
        if installed is not None or (taken is not None and taken != profile):
            where = installed.origin if installed is not None else "an earlier register_profile call"
            raise PluginConflict(
                f"a simulator called {profile.name!r} already exists (from {where})",
                hint="give the profile a name of its own",
            )
        _REGISTERED[profile.name] = profile


def profiles() -> dict[str, SimulatorProfile]:
    found = {name: provided.item for name, provided in _installed().items()}
    with _TABLE_LOCK:
        found.update(_REGISTERED)
    return found


def profile(name: str) -> SimulatorProfile:
    known = profiles()
    try:
        return known[name]
    except KeyError:
        hint = f"known simulators: {', '.join(sorted(known))}" if known else REINSTALL_HINT
        raise DeviceUnavailable(f"no simulator called {name!r}", hint=hint) from None


def create(
    profile_name: str, *, clock: Clock | None = None, faults: tuple[Fault, ...] = (), name: str | None = None
) -> SimulatorInstance:
    """Build a simulator; with ``name`` it is also registered so ``sim://name`` opens it."""
    prof = profile(profile_name)
    clock = clock or SystemClock()
    instance = SimulatorInstance(name or profile_name, prof, prof.create(clock.now(), faults), clock, threading.RLock())
    if name is not None:
        with _TABLE_LOCK:
            _INSTANCES[name] = instance
    return instance


def lookup(name: str) -> SimulatorInstance | None:
    with _TABLE_LOCK:
        return _INSTANCES.get(name)


def remove(name: str) -> None:
    with _TABLE_LOCK:
        _INSTANCES.pop(name, None)
