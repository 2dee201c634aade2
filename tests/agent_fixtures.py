"""Helpers for the delegation tests: test images, process and file checks through
/proc, and the body an OpenAI-compatible chat server answers with.

The fakes these tests use (``LocalHTTP``, the chat server or webhook on loopback, with
its ``LocalHTTPReply``; ``ScriptedAgent``; ``DelegationRecorder``) are in tests/fakes.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from PIL import Image


def jpeg(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for a reaper counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def _read(path: Path) -> str:
    return path.read_text()


async def read_when_written(path: Path, within_s: float = 5.0) -> str:
    """The text of a file a subprocess writes (atomically, by rename) once it starts."""
    for _ in range(int(within_s / 0.02)):
        if exists(path):
            return _read(path)
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} was never written")


async def gone(pid: int, within_s: float = 2.0) -> bool:
    """Whether ``pid`` is gone, allowing init a moment to reap an orphan."""
    for _ in range(int(within_s / 0.02)):
        if not alive(pid):
            return True
        await asyncio.sleep(0.02)
    return not alive(pid)


def chat_completion(content: str) -> dict[str, Any]:
    """An OpenAI-compatible chat server's answer: one assistant message, ``content``."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
