"""Shared fixtures. Tests run offline: the hub is never contacted (ENVIRONMENT.md)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest

from tests.fakes import FakeVLLM
from tests.harness import piper_tts


@pytest.fixture(scope="session")
def tts():
    backend = piper_tts()
    yield backend
    backend.close()


@pytest.fixture
def vllm() -> Iterator[FakeVLLM]:
    server = FakeVLLM()
    yield server
    server.close()


@pytest.fixture
def make_vllm() -> Iterator[Callable[..., FakeVLLM]]:
    """FakeVLLM with other settings, closed after the test."""
    servers: list[FakeVLLM] = []

    def make(**settings: Any) -> FakeVLLM:
        servers.append(FakeVLLM(**settings))
        return servers[-1]

    yield make
    for server in servers:
        server.close()
