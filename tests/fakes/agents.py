"""Agents: the background workers a delegation goes to, and the HTTP server at the far
end of an agent's (or the emergency notifier's) request."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server.agents.base import Agent, AgentAnswer, AgentCapabilities, DelegationRequest

__all__ = ["LocalHTTP", "LocalHTTPReply", "ScriptedAgent", "SleepyAgent"]


class ScriptedAgent(Agent):
    """An agent that answers from a script; each question waits until ``gate`` is set.

    A scripted exception is raised as it is (the base turns it into an ``AgentError``);
    a question not in the script gets "Answer to QUESTION.".
    """

    def __init__(self, answers: dict[str, AgentAnswer | Exception] | None = None) -> None:
        super().__init__(AgentCapabilities(name="scripted"))
        self.answers = answers or {}
        self.gate = asyncio.Event()
        self.gate.set()
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        self.started.append(request.question)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(request.question)
            raise
        answer = self.answers.get(request.question, AgentAnswer(f"Answer to {request.question}."))
        if isinstance(answer, Exception):
            raise answer
        return answer


class SleepyAgent(Agent):
    """An agent that answers after ``delay_s`` of (virtual, under the session harness) time."""

    def __init__(
        self, delay_s: float, answer: str = "It is a tin of tomatoes.", *, urgent: bool = False
    ) -> None:
        super().__init__(AgentCapabilities(name="sleepy"))
        self.delay_s = delay_s
        self.reply = answer
        self.urgent = urgent

    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        await asyncio.sleep(self.delay_s)
        return AgentAnswer(self.reply, urgent=self.urgent)


@dataclass
class LocalHTTPReply:
    """One scripted answer of ``LocalHTTP``: a body, a status, or no answer at all."""

    body: Any = None  # dict → JSON; str → raw text
    status: int = 200
    hang: bool = False


class LocalHTTP:
    """An agent's chat server or a webhook: aiohttp on 127.0.0.1, port 0; POSTs to
    ``path`` get the scripted replies, and every request's JSON and headers are kept."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.replies: deque[LocalHTTPReply] = deque()
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
        reply = self.replies.popleft() if self.replies else LocalHTTPReply({})
        if reply.hang:
            await asyncio.sleep(3600)
        if isinstance(reply.body, str):
            return web.Response(status=reply.status, text=reply.body)
        return web.Response(
            status=reply.status, text=json.dumps(reply.body), content_type="application/json"
        )
