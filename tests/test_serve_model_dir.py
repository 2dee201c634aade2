"""`murmur serve --model DIR` with a tiny random Qwen3-VL: the 8B's loading path, for real.

The server runs as a subprocess exactly as a user starts it; a client streams
frames and reads the tick trace.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import grpc
import pytest

from tests.harness import Client, jpeg, serving_address
from tests.tiny_qwen import build_tiny_qwen

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("serve-tiny-qwen"))


async def test_murmur_serve_loads_a_checkpoint_folder_and_ticks(tiny_model_dir):
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MURMUR_MODEL_MAX_NEW_TOKENS="6"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--model", str(tiny_model_dir),
        "--port", "0", "--device", "cpu", "--no-asr", "--tts", "piper", "--tick-hz", "4", "--no-auth",
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        address = await serving_address(proc, within_s=120)
        async with Client(address) as c:
            ready = await c.start(want_trace=True)
            assert ready.model.endswith(str(tiny_model_dir))
            for seq in range(1, 9):
                await c.frame(seq, jpeg(160 + seq * 8, 120))
                await asyncio.sleep(0.25)
            await c.wait_for("tick", count=4, within_s=60)
            assert await c.finish() == grpc.StatusCode.OK
        ticks = c.of("tick")
        assert all(t.action in ("silence", "response", "delegate") for t in ticks)
        assert all(any(s.stage == "model" and s.ms > 0 for s in t.timings) for t in ticks)
        assert not [n for n in c.of("notice") if n.component == "model"]
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
