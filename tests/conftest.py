"""Shared fixtures. Tests run offline: the hub is never contacted (ENVIRONMENT.md)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest

from tests.harness import piper_tts


@pytest.fixture(scope="session")
def tts():
    backend = piper_tts()
    yield backend
    backend.close()
