"""Installed plugins: the ``tmsctl.drivers`` and ``tmsctl.simulators`` entry point groups.

Built-in drivers and simulators are found exactly as a third party's are: tmsctl's own
``pyproject.toml`` declares them under these groups, and this module reads the groups from the
installed distributions' metadata. An entry point names a ``DriverEntry`` (or a
``SimulatorProfile``), or a sequence of them (a vendor's family of models).

Two providers of one name are an error naming both distributions: which driver speaks to a
stimulator is never decided by the order packages happen to be found in.

Scanning every installed distribution takes tens of milliseconds, so it happens once per process
and only when a driver or simulator is first needed (never for ``tmsctl --help``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from tmsctl.core.errors import DeviceUnavailable, PluginConflict

DRIVERS_GROUP = "tmsctl.drivers"
SIMULATORS_GROUP = "tmsctl.simulators"
REINSTALL_HINT = "reinstall tmsctl (`pip install -e .` in a source checkout) so its entry points are current"

T = TypeVar("T")


@dataclass(frozen=True)
class Provided(Generic[T]):
    """One plugin item and where it came from."""

    item: T
    distribution: str  # the installed distribution that declared it, e.g. "tmsctl"
    entry_point: str  # ``name = module:attribute`` as declared

    @property
    def origin(self) -> str:
        return f"{self.distribution} ({self.entry_point})"


@cache
def installed_entry_points(group: str) -> tuple[EntryPoint, ...]:
    """The group's entry points, one per (distribution, name): scanned once per process."""
    return tuple(entry_points(group=group))


def _distribution(ep: EntryPoint) -> str:
    dist = ep.dist
    return dist.name if dist is not None else "an unknown distribution"


def load_group(
    group: str,
    kind: type[T],
    name_of: Callable[[T], str],
    points: Iterable[EntryPoint] | None = None,
) -> dict[str, Provided[T]]:
    """Load every entry point of ``group``: ``{item name: Provided}``.

    Raises PluginConflict when two entry points provide the same name, and DeviceUnavailable when
    an entry point does not load or names something that is not a ``kind``."""
    found: dict[str, Provided[T]] = {}
    for ep in installed_entry_points(group) if points is None else points:
        declared = f"{ep.name} = {ep.value}"
        distribution = _distribution(ep)
        try:
            loaded: Any = ep.load()
        except Exception as exc:  # a broken plugin must say which one it is
            raise DeviceUnavailable(
                f"the {group} entry point {declared!r} of {distribution} does not load: {exc}",
                hint=f"fix or uninstall {distribution}",
            ) from exc
        items = [loaded] if isinstance(loaded, kind) else loaded
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, kind) for i in items):
            raise DeviceUnavailable(
                f"the {group} entry point {declared!r} of {distribution} names neither a "
                f"{kind.__name__} nor a list of them",
                hint=f"fix or uninstall {distribution}",
            )
        for item in items:
            name = name_of(item)
            if name in found:
                first = found[name]
                raise PluginConflict(
                    f"two plugins provide the {group} name {name!r}: {first.origin} and "
                    f"{distribution} ({declared})",
                    hint=f"uninstall one of {first.distribution} and {distribution}, or rename one's entry",
                )
            found[name] = Provided(item, distribution, declared)
    return found
