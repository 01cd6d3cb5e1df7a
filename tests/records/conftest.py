"""Fixtures for the records and audit tests: a virtual clock, and a database on each backend.

``db_path`` is where a test's records live: a file (``sqlite``) or a fresh database on a throwaway
PostgreSQL server (``postgresql``) started once for the whole test run. Tests that use it run on
both backends; a test about the file itself (its mode, its header, SQLite's own checks) is marked
``sqlite_only``. Without PostgreSQL's server binaries the ``postgresql`` cases are skipped, saying
so, except in CI (``CI`` set), where that is a failure: CI must test both.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tmsctl.core.clock import VirtualClock
from tmsctl.records import Records
from tmsctl.records.pg_throwaway import ThrowawayServer, find_server_binaries

# The tests below spell out the times they expect, so their clock's wall time starts at a fixed
# moment (a VirtualClock otherwise starts at the real time when it is made).
WALL_START = datetime(2026, 1, 1, tzinfo=UTC)
BACKENDS = ("sqlite", "postgresql")
_database_numbers = itertools.count(1)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", ["sqlite"] if only_sqlite else list(BACKENDS), scope="function")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ThrowawayServer]:
    """One throwaway PostgreSQL server for the test run (as ``nobody`` when the tests run as root)."""
    if find_server_binaries() is None:
        reason = ("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under "
                  "/usr/lib/postgresql/*/bin or on PATH: install the 'postgresql' package")
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the records tests on both backends)")
        pytest.skip(reason)
    server = ThrowawayServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(autojump=False, wall_start=WALL_START)


@pytest.fixture
def db_path(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Iterator[Path | str]:
    if backend == "postgresql":
        server: ThrowawayServer = request.getfixturevalue("pg_server")
        name = f"records_{os.getpid()}_{next(_database_numbers)}"
        yield server.create_database(name)
        server.drop_database(name)
    else:
        yield tmp_path / "data" / "tmsctl.db"


@pytest.fixture
def records(db_path: Path | str, clock: VirtualClock) -> Iterator[Records]:
    with Records(db_path, clock=clock) as store:
        yield store
