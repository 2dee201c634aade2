"""Shared fixtures. Tests run offline: the hub is never contacted (ENVIRONMENT.md)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest

from server.events import AudioFormat
from server.voice.asr.base import ASRBackend
from server.voice.listener import AudioListener, ListenerOptions
from tests.fakes import FakeVLLM, Spawner
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


@pytest.fixture(scope="module")
def dsp() -> Iterator[ThreadPoolExecutor]:
    """The app's shared DSP pool."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="audio-dsp")
    yield pool
    pool.shutdown()


@pytest.fixture
def listen(dsp) -> Iterator[Callable[..., AudioListener]]:
    """``AudioListener`` as the session makes it; after the test, none of its tasks runs."""
    spawn = Spawner()

    def make(
        fmt: AudioFormat, asr: ASRBackend, emit: Any, options: ListenerOptions | None = None, **kw
    ) -> AudioListener:
        return AudioListener(fmt, asr, emit, options, spawn=spawn, dsp=dsp, **kw)

    yield make
    assert spawn.running == []
