"""Shared fixtures of the Clearinghouse tests: a data directory, the core, and `h` (the
constants and helpers of helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tslic.server.clearinghouse.core import Clearinghouse

from tests.clearinghouse.helpers import Helpers


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "ch"


@pytest.fixture
def ch(data_dir: Path) -> Iterator[Clearinghouse]:
    core = Clearinghouse(data_dir)
    yield core
    core.close()


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers
