"""Helpers the tests import (`from tests.helpers import ...`): the repo's paths, the real CLI in a process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run the real `edgecls` command in a fresh process; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "edgecls", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
