"""Fixtures of the explain tests: the shared exported digits run (tests/bench/exported.py)."""
from __future__ import annotations

import pytest

from tests.bench.exported import exported_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    return exported_run(tmp_path_factory)
