"""Shared test configuration: hypothesis profiles (HYPOTHESIS_PROFILE=ci|dev|nightly); the run's own cache folder;
the real parts some tests need (liblsl, a browser), skipped where missing and a failure in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "nightly", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _private_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The commands' cache (tmsctl.lab.protocol_facts) in a folder of this test run, not the user's."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


def require_real_part(problem: str | None, hint: str) -> None:
    """A test that needs a real part (liblsl, a browser): skipped where the part is missing, a failure in
    CI (``CI`` set), which installs every part: a missing part there must never pass as a skip."""
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem} ({hint}); CI must run this test")
    pytest.skip(f"{problem}; {hint}")


@pytest.fixture(scope="session")
def real_lsl() -> None:
    """liblsl loads (probed in a child process: a broken liblsl can abort the interpreter)."""
    probe = subprocess.run([sys.executable, "-c", "import pylsl; pylsl.library_version()"],
                           capture_output=True, text=True, timeout=60)
    problem = None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]
    require_real_part(problem and f"pylsl cannot load liblsl here ({problem})",
                      "install tmsctl[lsl] on glibc >= 2.35")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (or another Chromium) for the tests that lay a report out in a real browser."""
    found = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    require_real_part(None if found else "Chromium is not installed", "Debian: apt-get install -y chromium")
    assert found is not None
    return found
