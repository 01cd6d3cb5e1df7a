"""Integration tests: the embedding API, the pytest plugin, sinks, export and reports (VirtualClock, sim://)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Our own plugin, whether or not the installed tmsctl registers its pytest11 entry point yet.
    manager = config.pluginmanager
    if not (manager.has_plugin("tmsctl") or manager.has_plugin("tmsctl.lab.pytest_plugin")):
        manager.import_plugin("tmsctl.lab.pytest_plugin")
    if not manager.has_plugin("pytester"):
        manager.import_plugin("pytester")
