"""Fixtures for the records and audit tests: a virtual clock and a file database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tmsctl.clock import VirtualClock
from tmsctl.records import Records


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(autojump=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tmsctl.db"


@pytest.fixture
def records(db_path: Path, clock: VirtualClock) -> Iterator[Records]:
    with Records(db_path, clock=clock) as store:
        yield store
