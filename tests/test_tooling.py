"""The house tooling passes: ruff (with the async rules) and mypy (STYLE.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    r = _run("ruff", "check", "server", "mobile_bridge", "tests", "benchmarks")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_mypy_is_clean():
    r = _run("mypy", "server", "mobile_bridge")
    assert r.returncode == 0, r.stdout + r.stderr
