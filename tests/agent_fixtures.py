"""Helpers for the delegation tests: a real OpenAI-compatible chat server and a
webhook on 127.0.0.1 (aiohttp, port 0), a scripted agent implementing the real
``Agent`` ABC, an update recorder, and process checks through /proc.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from server.events import DelegationState, DelegationUpdate


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


@dataclass
class Recorder:
    """An ``emit`` that keeps every DelegationUpdate."""

    updates: list[DelegationUpdate] = field(default_factory=list)

    async def emit(self, update: DelegationUpdate) -> None:
        self.updates.append(update)

    def states(self, task_id: str) -> list[DelegationState]:
        return [u.state for u in self.updates if u.task_id == task_id]

    def last(self, task_id: str) -> DelegationUpdate:
        return [u for u in self.updates if u.task_id == task_id][-1]


# ------------------------------------------------------------------ HTTP servers


@dataclass
class Reply:
    body: Any = None  # dict → JSON; str → raw text
    status: int = 200
    hang: bool = False


def chat_completion(content: str) -> dict[str, Any]:
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


class LocalHTTP:
    """aiohttp on 127.0.0.1, port 0; POSTs to ``path`` get the scripted replies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> LocalHTTP:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        reply = self.replies.popleft() if self.replies else Reply({})
        if reply.hang:
            await asyncio.sleep(3600)
        if isinstance(reply.body, str):
            return web.Response(status=reply.status, text=reply.body)
        return web.Response(
            status=reply.status, text=json.dumps(reply.body), content_type="application/json"
        )
