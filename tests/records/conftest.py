"""Fixtures for the records and audit tests: a virtual clock and a file database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tmsctl.clock import VirtualClock
from tmsctl.records import Records


# The tests below spell out the times they expect, so their clock's wall time starts at a fixed
# moment (a VirtualClock otherwise starts at the real time when it is made).
WALL_START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(autojump=False, wall_start=WALL_START)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tmsctl.db"


@pytest.fixture
def records(db_path: Path, clock: VirtualClock) -> Iterator[Records]:
    with Records(db_path, clock=clock) as store:
        yield store
