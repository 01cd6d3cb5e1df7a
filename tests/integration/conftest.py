"""Integration tests: the embedding API, the pytest plugin, sinks, export and reports (VirtualClock, sim://)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from clock_fix import patch_if_needed


def pytest_configure(config: pytest.Config) -> None:
    # Our own plugin, whether or not the tmsctl distribution's pytest11 entry point is installed yet.
    manager = config.pluginmanager
    if not (manager.has_plugin("tmsctl") or manager.has_plugin("tmsctl.pytest_plugin")):
        manager.import_plugin("tmsctl.pytest_plugin")
    if not manager.has_plugin("pytester"):
        manager.import_plugin("pytester")


@pytest.fixture(scope="session", autouse=True)
def _virtual_clock_with_threads() -> Iterator[None]:
    """The controller thread makes a second clock participant; see clock_fix for the spin it hits."""
    undo = patch_if_needed()
    if undo is not None:
        warnings.warn(
            "tmsctl.clock.VirtualClock spins with two waiting participants; these tests use the corrected "
            "wait from tests/integration/clock_fix.py until clock.py has it",
            stacklevel=1,
        )
    yield
    if undo is not None:
        undo()
