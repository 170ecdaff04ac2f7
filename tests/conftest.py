"""Shared fixtures: recipe files made on the fly."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture
def write_recipe(tmp_path):
    """Write a recipe (dedented YAML text) to tmp_path and return its path."""

    def _write(text: str, name: str = "r.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write
