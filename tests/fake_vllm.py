"""A real local HTTP server that plays vLLM, for the OpenAI-compatible runtime's tests.

``FakeVLLM`` is an ``http.server`` on 127.0.0.1 port 0 serving ``/v1/models`` and
``/v1/chat/completions`` (plain and server-sent events, with log-probs) from a
queue of scripted replies, and it records every request's raw bytes. Like vLLM it
keeps frames sent with a ``uuid`` and answers ``miss_status`` to a reference it does
not hold; ``uuids="refuse"`` answers 400 to any ``uuid`` field, like a strict server
that does not know them, and ``uuids="ignore"`` takes the field but keeps nothing.

Import ``FakeVLLM`` and ``Reply`` from tests/fakes.py, where every fake is found; the
helpers that build a runtime and a tick and read recorded requests are imported from
here. The fixtures ``vllm`` and ``make_vllm`` live in conftest.py.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from server.runtime.base import Frame, TickInput
from server.runtime.openai import OpenAIRuntime, OpenAIRuntimeOptions

MODEL = "jdopensource/JoyAI-VL-Interaction"
INSTRUCTION = "Warn me about obstacles."
_TOKEN = re.compile(r"</?\w+>|\s*[^\s<]+|\s+")


@dataclass
class Reply:
    """One scripted answer of ``FakeVLLM``: its text, or an HTTP failure."""

    text: str = "</silence>"
    # The first token's candidates (token -> log-prob); None: the chosen token only.
    top: dict[str, float] | None = None
    status: int = 200
    logprobs: bool = True


class FakeVLLM:
    """The model server over HTTP: an OpenAI-compatible vLLM on loopback, from a script."""

    def __init__(
        self,
        models: tuple[str, ...] = (MODEL,),
        *,
        uuids: str = "keep",
        miss_status: int = 400,
        answer: Callable[[dict[str, Any]], Reply | None] | None = None,
    ) -> None:
        """``answer``: the reply to a request by what it holds (None: the next scripted
        one), for servers whose ticks come at no fixed count (a real session's)."""
        self.models = models
        self.answer = answer
        self.uuids = uuids
        self.miss_status = miss_status
        self.held: set[str] = set()  # frames kept by uuid
        self.replies: deque[Reply] = deque()
        self.requests: list[bytes] = []
        self.headers: list[dict[str, str]] = []  # each request's headers, lower-case names
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    self._send(404, b'{"error":"not found"}')
                    return
                data = [{"id": m, "object": "model", "root": m} for m in fake.models]
                self._send(200, json.dumps({"object": "list", "data": data}).encode())

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["content-length"]))
                fake.requests.append(raw)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                req = json.loads(raw)
                problem = fake.frames_problem(req)
                if problem:
                    status, message = problem
                    self._send(status, json.dumps({"error": message}).encode())
                    return
                reply = fake.answer(req) if fake.answer is not None else None
                if reply is None:
                    reply = fake.replies.popleft() if fake.replies else Reply()
                if reply.status != 200:
                    self._send(reply.status, b'{"error":"scripted failure"}')
                    return
                want_logprobs = reply.logprobs and req.get("logprobs")
                entries = _entries(reply) if want_logprobs else None
                try:
                    if req.get("stream"):
                        self._stream(reply, entries)
                    else:
                        self._send(200, json.dumps(_completion(reply, entries)).encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: a silent decision

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, reply: Reply, entries: list[dict[str, Any]] | None) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                self._event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
                for i, token in enumerate(_TOKEN.findall(reply.text)):
                    choice: dict[str, Any] = {"index": 0, "delta": {"content": token}}
                    if entries is not None:
                        choice["logprobs"] = {"content": [entries[i]]}
                    self._event({"choices": [choice]})
                self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, obj: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def frames_problem(self, req: dict[str, Any]) -> tuple[int, str] | None:
        for part in image_parts(req):
            if "uuid" not in part:
                continue
            if self.uuids == "refuse":
                return 400, "uuid: extra inputs are not permitted"
            if part["image_url"] is None and part["uuid"] not in self.held:
                return self.miss_status, f"media uuid {part['uuid']} is not cached"
        for part in image_parts(req):
            if "uuid" in part and part["image_url"] is not None and self.uuids == "keep":
                self.held.add(part["uuid"])
        return None

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def image_parts(req: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        part
        for m in req["messages"]
        if isinstance(m["content"], list)
        for part in m["content"]
        if part["type"] == "image_url"
    ]


def _entries(reply: Reply) -> list[dict[str, Any]]:
    tokens = _TOKEN.findall(reply.text)
    out = [
        {"token": t, "logprob": -0.01, "top_logprobs": [{"token": t, "logprob": -0.01}]}
        for t in tokens
    ]
    if reply.top is not None and out:
        out[0]["logprob"] = reply.top.get(tokens[0], -0.01)
        out[0]["top_logprobs"] = [{"token": t, "logprob": lp} for t, lp in reply.top.items()]
    return out


def _completion(reply: Reply, entries: list[dict[str, Any]] | None) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": reply.text},
        "finish_reason": "stop",
    }
    if entries is not None:
        choice["logprobs"] = {"content": entries}
    return {"id": "cmpl-1", "object": "chat.completion", "model": MODEL, "choices": [choice]}


def runtime(server: FakeVLLM, **options: Any) -> OpenAIRuntime:
    options.setdefault("backoff_s", 0.0)
    options.setdefault("timeout_s", 2.0)
    return OpenAIRuntime(OpenAIRuntimeOptions(base_url=server.url, **options))


def tick(s: float, *, query: str | None = None, size: tuple[int, int] = (64, 48)) -> TickInput:
    image = Image.new("RGB", size, (int(s * 20) % 256, 80, 120))
    frame = Frame(image=image, seq=int(s), capture_time_ms=int(s * 1000), received_at=0.0)
    return TickInput(tick_s=s, frame=frame, user_query=query)


def messages_text(body: dict[str, Any]) -> str:
    """The raw ``messages`` array of a recorded request, without its closing bracket."""
    raw = json.dumps(body["messages"], ensure_ascii=False, separators=(",", ":"))
    return raw[:-1]


def as_held(raw: bytes) -> bytes:
    """A request as the next one repeats it: every frame named by its uuid alone."""
    body = json.loads(raw)
    for part in image_parts(body):
        if "uuid" in part:
            part["image_url"] = None
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
