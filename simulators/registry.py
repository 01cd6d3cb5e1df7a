"""Simulator profiles and the process-wide table of named simulator instances.

``sim://NAME`` opens the instance registered under NAME if a test (or ``tmsctl.open``) put one
there — so a test can build a simulator on its own ``VirtualClock`` with a fault plan and then
hand the URL to the code under test — otherwise a fresh simulator from profile NAME.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tmsctl.clock import Clock, SystemClock
from tmsctl.errors import DeviceUnavailable

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


_PROFILES: dict[str, SimulatorProfile] = {}
_INSTANCES: dict[str, SimulatorInstance] = {}
_TABLE_LOCK = threading.Lock()


def register_profile(profile: SimulatorProfile) -> None:
    _PROFILES[profile.name] = profile


_builtins_loaded = False


def _load_builtin_profiles() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True  # before registering: a profile registered by a user must not hide ours
    from . import deymed, magstim, magventure

    families = (
        (magstim.PROFILES, magstim.MagstimSimulator),
        (magventure.PROFILES, magventure.MagProSimulator),
        (deymed.PROFILES, deymed.DuoMagSimulator),
    )
    for profiles, model in families:
        for name, p in profiles.items():
            register_profile(
                SimulatorProfile(
                    name, p.driver, p.display_name,
                    lambda start, faults, p=p, model=model: model(p, start=start, faults=faults),
                    dict(p.driver_options),
                )
            )


def profiles() -> dict[str, SimulatorProfile]:
    _load_builtin_profiles()
    return dict(_PROFILES)


def profile(name: str) -> SimulatorProfile:
    _load_builtin_profiles()
    try:
        return _PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(_PROFILES))
        raise DeviceUnavailable(f"no simulator called {name!r}", hint=f"known simulators: {known}") from None


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
