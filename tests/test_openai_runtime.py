"""The OpenAI-compatible HTTP runtime against a real local server that plays vLLM.

``FakeVLLM`` is an ``http.server`` on 127.0.0.1 port 0 serving ``/v1/models`` and
``/v1/chat/completions`` (plain and server-sent events, with log-probs) from a
queue of scripted replies, and it records every request's raw bytes. Like vLLM it
keeps frames sent with a ``uuid`` and answers ``miss_status`` to a reference it does
not hold; ``uuids="refuse"`` answers 400 to any ``uuid`` field, like a strict server
that does not know them, and ``uuids="ignore"`` takes the field but keeps nothing.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from server.errors import ModelLoadError, Recoverable
from server.runtime.base import ActionKind, Frame, TickInput
from server.runtime.openai_http import (
    OpenAIRuntime,
    OpenAIRuntimeOptions,
    marker_decision,
)
from server.runtime.prompt import QA_HISTORY, QUERY_HEADER, SYSTEM_PROMPT

MODEL = "jdopensource/JoyAI-VL-Interaction"
INSTRUCTION = "Warn me about obstacles."
_TOKEN = re.compile(r"</?\w+>|\s*[^\s<]+|\s+")


@dataclass
class Reply:
    text: str = "</silence>"
    # The first token's candidates (token -> log-prob); None: the chosen token only.
    top: dict[str, float] | None = None
    status: int = 200
    logprobs: bool = True


class FakeVLLM:
    def __init__(
        self, models: tuple[str, ...] = (MODEL,), *, uuids: str = "keep", miss_status: int = 400
    ) -> None:
        self.models = models
        self.uuids = uuids
        self.miss_status = miss_status
        self.held: set[str] = set()  # frames kept by uuid
        self.replies: deque[Reply] = deque()
        self.requests: list[bytes] = []
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
                req = json.loads(raw)
                problem = fake.frames_problem(req)
                if problem:
                    status, message = problem
                    self._send(status, json.dumps({"error": message}).encode())
                    return
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
        for part in _image_parts(req):
            if "uuid" not in part:
                continue
            if self.uuids == "refuse":
                return 400, "uuid: extra inputs are not permitted"
            if part["image_url"] is None and part["uuid"] not in self.held:
                return self.miss_status, f"media uuid {part['uuid']} is not cached"
        for part in _image_parts(req):
            if "uuid" in part and part["image_url"] is not None and self.uuids == "keep":
                self.held.add(part["uuid"])
        return None

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _image_parts(req: dict[str, Any]) -> list[dict[str, Any]]:
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


# ---------------------------------------------------------------------- shape


def test_request_shape(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, stream=False)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(3.0, size=(1024, 768)))
    body = vllm.bodies()[0]
    assert body["model"] == MODEL
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["max_tokens"] == 64 and body["stream"] is False
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"]
    assert body["messages"][0]["content"] == SYSTEM_PROMPT
    text, image = body["messages"][1]["content"]
    assert text["type"] == "text"
    assert text["text"] == f"{QUERY_HEADER}\n{INSTRUCTION}\n<3.0 seconds>"
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.format == "JPEG"
    assert decoded.width * decoded.height <= 262144
    assert decoded.width / decoded.height == pytest.approx(1024 / 768, rel=0.01)
    rt.close()


def test_later_ticks_carry_only_new_queries_and_text_only_turns(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, stream=False)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(TickInput(tick_s=2.0, frame=None, context=("Location: 52.1, 4.3",)))
    session.step(tick(3.0, query="what is that?"))
    second, third = vllm.bodies()[1:]
    assert second["messages"][-1] == {
        "role": "user",
        "content": "Location: 52.1, 4.3\n<2.0 seconds>",
    }
    assert third["messages"][-1]["content"][0]["text"] == (
        f"{QUERY_HEADER}\nwhat is that?\n<3.0 seconds>"
    )
    rt.close()


def _as_held(raw: bytes) -> bytes:
    """A request as the next one repeats it: every frame named by its uuid alone."""
    body = json.loads(raw)
    for part in _image_parts(body):
        if "uuid" in part:
            part["image_url"] = None
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("frame_refs", [True, False])
@pytest.mark.parametrize("stream", [False, True])
def test_prefix_is_byte_identical_across_ticks(
    vllm: FakeVLLM, stream: bool, frame_refs: bool
) -> None:
    vllm.replies.extend([Reply(), Reply("</response> Step ahead."), Reply(), Reply()])
    rt = runtime(vllm, stream=stream, frame_refs=frame_refs)
    session = rt.open_session(INSTRUCTION)
    for s in (1.0, 2.0, 3.0, 4.0):
        session.step(tick(s))
    raws = vllm.requests
    assert len(raws) == 4  # nothing was rejected and resent
    if frame_refs:
        raws = [_as_held(raw) for raw in raws]
    bodies = [json.loads(raw) for raw in raws]
    for n in range(len(raws) - 1):
        before, after = bodies[n]["messages"], bodies[n + 1]["messages"]
        assert after[: len(before)] == before
        assert after[len(before)]["role"] == "assistant"
        assert len(after) == len(before) + 2
        # Byte for byte: request N's body up to the end of its turns opens request N+1.
        end = raws[n].index(b'],"max_tokens"')
        assert raws[n + 1].startswith(raws[n][:end])
    assert bodies[2]["messages"][4] == {"role": "assistant", "content": "</response> Step ahead."}
    rt.close()


def test_each_frame_travels_once_then_by_uuid(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, stream=False)
    session = rt.open_session(INSTRUCTION)
    for s in (1.0, 2.0, 3.0, 4.0):
        session.step(tick(s))
    for n, body in enumerate(vllm.bodies()):
        parts = _image_parts(body)
        assert len(parts) == n + 1
        *held, new = parts
        assert new["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert all(p["image_url"] is None for p in held)
    uuids = [p["uuid"] for p in _image_parts(vllm.bodies()[-1])]
    assert len(set(uuids)) == 4
    other = rt.open_session(INSTRUCTION)  # another session never names this one's frames
    other.step(tick(1.0))
    assert _image_parts(vllm.bodies()[-1])[0]["uuid"] not in uuids
    rt.close()


def test_a_frame_the_server_dropped_is_sent_again(make_vllm: Callable[..., FakeVLLM]) -> None:
    server = make_vllm()
    rt = runtime(server, stream=False)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0))
    server.held.clear()  # evicted from its cache
    assert session.step(tick(3.0)).kind is ActionKind.SILENCE
    rejected, resent = server.bodies()[2:4]
    assert _image_parts(rejected)[0]["image_url"] is None
    assert all(p["image_url"] is not None and p["uuid"] for p in _image_parts(resent))
    session.step(tick(4.0))  # and references again afterwards
    assert len(server.requests) == 5
    assert [p["image_url"] is None for p in _image_parts(server.bodies()[4])] == [
        True,
        True,
        True,
        False,
    ]
    rt.close()


def test_a_server_without_media_uuids_gets_plain_frames(
    make_vllm: Callable[..., FakeVLLM],
) -> None:
    server = make_vllm(uuids="refuse")
    rt = runtime(server, stream=False)
    session = rt.open_session(INSTRUCTION)
    for s in (1.0, 2.0, 3.0):
        assert session.step(tick(s)).kind is ActionKind.SILENCE
    # One rejected request, then every frame as a data URL, every tick.
    assert len(server.requests) == 4
    assert "uuid" in server.requests[0].decode()
    for body in server.bodies()[1:]:
        assert all("uuid" not in p and p["image_url"]["url"] for p in _image_parts(body))
    rt.close()


# ---------------------------------------------------------------------- actions


@pytest.mark.parametrize("stream", [False, True])
def test_replies_become_actions(vllm: FakeVLLM, stream: bool) -> None:
    vllm.replies.extend(
        [
            Reply("</response> Door on your left."),
            Reply("</silence>"),
            Reply("Door on your left."),
            Reply("</response> Checking. </delegation> Which bus stops here?"),
            Reply("</response> Door on your left.", logprobs=False),
            Reply("Door on your left.", logprobs=False),
        ]
    )
    rt = runtime(vllm, stream=stream)
    session = rt.open_session(INSTRUCTION)
    actions = [session.step(tick(float(s))) for s in range(6)]
    assert actions[0].kind is ActionKind.RESPONSE and actions[0].text == "Door on your left."
    assert actions[1].silent
    assert actions[2].silent  # unmarked text is never spoken
    assert actions[3].kind is ActionKind.DELEGATE
    assert (actions[3].text, actions[3].question) == ("Checking.", "Which bus stops here?")
    assert actions[4].kind is ActionKind.RESPONSE  # no log-probs: the text decides
    assert actions[5].silent
    rt.close()


def test_streamed_reply_reaches_the_sink_clause_by_clause(vllm: FakeVLLM) -> None:
    vllm.replies.extend(
        [
            Reply("</response> Careful, a step down ahead. Hold the rail."),
            Reply("</response> One moment. </delegation> What does the sign say?"),
            Reply("</silence> a long unmarked ramble that nobody should hear"),
        ]
    )
    rt = runtime(vllm, stream=True)
    session = rt.open_session(INSTRUCTION)
    heard: list[str] = []
    action = session.step(tick(1.0), heard.append)
    assert heard == ["Careful,", "a step down ahead.", "Hold the rail."]
    assert action.text == "Careful, a step down ahead. Hold the rail."
    heard.clear()
    action = session.step(tick(2.0), heard.append)
    assert heard == ["One moment."] and action.question == "What does the sign say?"
    heard.clear()
    action = session.step(tick(3.0), heard.append)
    assert action.silent and heard == []
    assert action.raw == "</silence>"  # the stream was closed at the decision
    rt.close()


def test_margin_holds_back_a_narrow_reply(vllm: FakeVLLM) -> None:
    top = {"</response>": -0.6, "</silence>": -0.9}
    vllm.replies.append(Reply("</response> Maybe a cat.", top=top))
    rt = runtime(vllm, stream=False, speak_margin=1.0)
    action = rt.open_session(INSTRUCTION).step(tick(1.0))
    assert action.silent
    rt.close()


@pytest.mark.parametrize("stream", [False, True])
def test_negative_margin_continues_a_reply_the_server_did_not_generate(
    vllm: FakeVLLM, stream: bool
) -> None:
    top = {"</silence>": -0.4, "</response>": -1.2}
    vllm.replies.extend([Reply("</silence>", top=top), Reply(" Bench at 2 o'clock.")])
    rt = runtime(vllm, stream=stream, speak_margin=-1.0)
    session = rt.open_session(INSTRUCTION)
    clauses: list[str] = []
    action = session.step(tick(1.0), clauses.append)
    assert action.kind is ActionKind.RESPONSE and action.text == "Bench at 2 o'clock."
    assert clauses == ["Bench at 2 o'clock."]
    first, second = (json.loads(_as_held(raw)) for raw in vllm.requests)
    assert second["continue_final_message"] is True and second["add_generation_prompt"] is False
    assert second["messages"][:-1] == first["messages"]
    assert second["messages"][-1] == {"role": "assistant", "content": "</response>"}
    rt.close()


def test_marker_decision_with_markers_split_into_tokens() -> None:
    def entry(token: str, top: dict[str, float]) -> dict[str, Any]:
        return {
            "token": token,
            "logprob": top[token],
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()],
        }

    common = entry("</", {"</": -0.01, "Hello": -6.0})
    assert marker_decision([common], 0.0) is None
    split = entry("sil", {"sil": -0.3, "resp": -1.5, "res": -2.0})
    decision = marker_decision([common, split], 0.0)
    assert decision is not None and decision.speak is False and decision.generated == "silence"
    decision = marker_decision([common, split], -1.5)
    assert decision is not None and decision.speak is True
    unmarked = marker_decision([entry("Hello", {"Hello": -0.1})], 0.0)
    assert unmarked is not None and unmarked.speak is None


# ---------------------------------------------------------------------- failures


def test_a_5xx_is_retried(vllm: FakeVLLM) -> None:
    vllm.replies.extend([Reply(status=500), Reply("</response> Curb ahead.")])
    rt = runtime(vllm, retries=1)
    action = rt.open_session(INSTRUCTION).step(tick(1.0))
    assert action.text == "Curb ahead."
    assert len(vllm.requests) == 2 and vllm.requests[0] == vllm.requests[1]
    rt.close()


def test_an_unavailable_server_is_recoverable_and_the_tick_stays_silent(vllm: FakeVLLM) -> None:
    vllm.replies.extend([Reply(status=503), Reply(status=500), Reply("</response> Back.")])
    rt = runtime(vllm, retries=1)
    session = rt.open_session(INSTRUCTION)
    with pytest.raises(Recoverable) as info:
        session.step(tick(1.0))
    assert info.value.code == "model.unavailable"
    assert info.value.component == "model" and info.value.retryable
    assert session.step(tick(2.0)).text == "Back."
    messages = vllm.bodies()[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "</silence>"
    rt.close()


def test_a_server_that_went_away_is_recoverable(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, retries=1)
    session = rt.open_session(INSTRUCTION)
    vllm.close()
    with pytest.raises(Recoverable) as info:
        session.step(tick(1.0))
    assert info.value.code == "model.unavailable"
    rt.close()


def test_a_rejected_request_is_recoverable_and_not_retried(vllm: FakeVLLM) -> None:
    vllm.replies.append(Reply(status=400))
    rt = runtime(vllm, retries=3, frame_refs=False)  # else it is resent once without uuids
    session = rt.open_session(INSTRUCTION)
    with pytest.raises(Recoverable) as info:
        session.step(tick(1.0))
    assert info.value.code == "model.rejected" and len(vllm.requests) == 1
    session.step(tick(2.0))  # too long a context, say: the next tick starts a new chunk
    assert [m["role"] for m in vllm.bodies()[-1]["messages"]] == ["system", "user"]
    rt.close()


@pytest.mark.parametrize("miss_status", [400, 500])
def test_a_server_that_keeps_no_frames_gets_plain_frames(
    make_vllm: Callable[..., FakeVLLM], miss_status: int
) -> None:
    """It takes the uuid field but not a bare uuid: learnt on the first reference."""
    server = make_vllm(uuids="ignore", miss_status=miss_status)
    rt = runtime(server, stream=False)
    session = rt.open_session(INSTRUCTION)
    for s in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert session.step(tick(s)).kind is ActionKind.SILENCE
    assert rt.frame_refs is False
    failed = 2 if miss_status >= 500 else 1  # a 5xx is retried once first
    assert len(server.requests) == 5 + failed
    for body in server.bodies()[1 + failed + 1 :]:
        assert all("uuid" not in p for p in _image_parts(body))
    rt.close()


def test_a_server_that_keeps_dropping_frames_gets_plain_frames(
    make_vllm: Callable[..., FakeVLLM],
) -> None:
    server = make_vllm()
    rt = runtime(server, stream=False)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0))
    assert rt.frame_refs is True
    for s in (3.0, 4.0, 5.0):
        server.held.clear()
        session.step(tick(s))
    assert rt.frame_refs is False  # three drops in a row
    count = len(server.requests)
    session.step(tick(6.0))
    assert len(server.requests) == count + 1
    assert all("uuid" not in p for p in _image_parts(server.bodies()[-1]))
    rt.close()


def test_a_server_that_is_down_is_not_asked_again_with_the_frames(
    make_vllm: Callable[..., FakeVLLM], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_vllm()
    rt = runtime(server, stream=False, retries=0)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0))
    server.close()
    calls: list[bool] = []
    real = rt.complete
    monkeypatch.setattr(rt, "complete", lambda *a: calls.append(True) or real(*a))
    with pytest.raises(Recoverable) as info:
        session.step(tick(3.0))
    assert info.value.code == "model.unavailable" and len(calls) == 1
    assert rt.frame_refs is True  # nothing learnt about frames from a server that is down
    rt.close()


def test_a_busy_server_teaches_nothing_about_frames(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, stream=False, retries=0)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    vllm.replies.append(Reply(status=503))  # a proxy in front of a busy or restarting vLLM
    with pytest.raises(Recoverable) as info:
        session.step(tick(2.0))
    assert info.value.code == "model.unavailable" and len(vllm.requests) == 2
    assert rt.frame_refs is None
    session.step(tick(3.0))
    assert rt.frame_refs is True
    rt.close()


def test_a_continuation_naming_a_frame_the_server_never_kept_is_resent(
    make_vllm: Callable[..., FakeVLLM],
) -> None:
    server = make_vllm(uuids="ignore")
    top = {"</silence>": -0.4, "</response>": -1.2}
    server.replies.extend([Reply("</silence>", top=top), Reply(" Bench at 2 o'clock.")])
    rt = runtime(server, stream=False, speak_margin=-1.0)
    action = rt.open_session(INSTRUCTION).step(tick(1.0))
    assert action.kind is ActionKind.RESPONSE and action.text == "Bench at 2 o'clock."
    assert rt.frame_refs is False
    assert len(server.requests) == 3  # decision, continuation by uuid (refused), resent
    rt.close()


def test_a_request_rejected_with_and_without_uuids_is_rejected(vllm: FakeVLLM) -> None:
    vllm.replies.extend([Reply(status=400), Reply(status=400)])
    rt = runtime(vllm, retries=3)
    with pytest.raises(Recoverable) as info:
        rt.open_session(INSTRUCTION).step(tick(1.0))
    assert info.value.code == "model.rejected"
    first, second = vllm.bodies()
    assert "uuid" in _image_parts(first)[0] and "uuid" not in _image_parts(second)[0]
    assert rt.frame_refs is None  # nothing learnt: the next request tries uuids again
    rt.close()


def test_unreachable_endpoint_at_load() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelLoadError, match="cannot reach the model server"):
        OpenAIRuntime(OpenAIRuntimeOptions(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=1))


def test_a_server_without_the_model_names_what_it_serves() -> None:
    server = FakeVLLM(models=("Qwen/Qwen2.5-VL-7B-Instruct",))
    try:
        with pytest.raises(ModelLoadError, match=r"it serves: Qwen/Qwen2\.5-VL-7B-Instruct"):
            runtime(server)
        with pytest.raises(ModelLoadError, match="did you mean"):
            OpenAIRuntime(OpenAIRuntimeOptions(base_url=server.url.removesuffix("/v1")))
    finally:
        server.close()


def test_a_local_folder_served_under_its_path_is_found() -> None:
    server = FakeVLLM(models=("/models/JoyAI-VL-Interaction",))
    try:
        rt = runtime(server)
        rt.open_session(INSTRUCTION).step(tick(1.0))
        assert server.bodies()[0]["model"] == "/models/JoyAI-VL-Interaction"
        rt.close()
    finally:
        server.close()


# ---------------------------------------------------------------------- memory


def test_chunk_rollover_starts_over_with_history(vllm: FakeVLLM) -> None:
    vllm.replies.extend([Reply(), Reply("</response> A red door.")])
    rt = runtime(vllm, chunk_ticks=2)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0, query="what colour is the door?"))
    session.add_context("Q: which bus? A: the 12.")
    session.step(tick(3.0))  # a new chunk: the Q&A history and the note itself
    session.step(tick(4.0))
    third, fourth = vllm.bodies()[2:]
    assert [m["role"] for m in third["messages"]] == ["system", "user"]
    text = third["messages"][1]["content"][0]["text"]
    assert text == (
        f"{QA_HISTORY}\nUser: what colour is the door?\nAssistant: A red door.\n"
        f"Q: which bus? A: the 12.\n{QUERY_HEADER}\n{INSTRUCTION}\n"
        "Q: which bus? A: the 12.\n<3.0 seconds>"
    )
    assert len(fourth["messages"]) == 4  # the new chunk grows as before
    rt.close()


def test_heard_trims_only_the_last_assistant_turn(vllm: FakeVLLM) -> None:
    vllm.replies.extend(
        [Reply("</response> Hi."), Reply("</response> Door on your left, then stairs.")]
    )
    rt = runtime(vllm)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0))
    session.heard("Door on your left, then stairs.", "Door on your left,")
    session.heard("Hi.", "")  # not the last turn: rewriting it would break the prefix
    session.step(tick(3.0))
    second, third = (json.loads(_as_held(raw)) for raw in vllm.requests[1:])
    assert third["messages"][:4] == second["messages"]
    assert third["messages"][2]["content"] == "</response> Hi."
    assert third["messages"][4] == {
        "role": "assistant",
        "content": "</response> Door on your left,",
    }
    assert messages_text(third).startswith(messages_text(second))
    # What was cut in an older turn is said in the next one instead.
    assert third["messages"][5]["content"][0]["text"] == (
        '(The user heard only "" of your reply "Hi.".)\n<3.0 seconds>'
    )
    rt.close()


def test_heard_nothing_of_a_reply_records_silence(vllm: FakeVLLM) -> None:
    vllm.replies.append(Reply("</response> Bike at 2 o'clock."))
    rt = runtime(vllm)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.heard("Bike at 2 o'clock.", "")
    session.step(tick(2.0))
    assert vllm.bodies()[1]["messages"][2] == {"role": "assistant", "content": "</silence>"}
    rt.close()


def test_warm_up_caches_the_same_system_turn_sessions_send(vllm: FakeVLLM) -> None:
    rt = runtime(vllm)
    rt.warm_up()
    rt.open_session(INSTRUCTION).step(tick(1.0))
    warm, first = vllm.bodies()
    assert warm["max_tokens"] == 1 and warm["stream"] is False
    assert [m["role"] for m in warm["messages"]] == ["system", "user"]
    assert warm["messages"][0] == first["messages"][0]
    system = vllm.requests[1].split(b',{"role":"user"', 1)[0]
    assert vllm.requests[0].startswith(system)
    rt.close()


def test_context_enters_the_next_turn_once(vllm: FakeVLLM) -> None:
    rt = runtime(vllm)
    session = rt.open_session(INSTRUCTION, language="de")
    session.step(tick(1.0))
    session.add_context("Q: which bus? A: the 12.")
    session.step(tick(2.0))
    session.step(tick(3.0))
    first, second, third = vllm.bodies()
    assert "Reply in the user's language (de)." in first["messages"][1]["content"][0]["text"]
    assert second["messages"][3]["content"][0]["text"] == "Q: which bus? A: the 12.\n<2.0 seconds>"
    assert third["messages"][5]["content"][0]["text"] == "<3.0 seconds>"
    rt.close()


def test_api_key_from_the_environment(vllm: FakeVLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MURMUR_MODEL_API_KEY", "sk-test")
    rt = runtime(vllm)
    assert rt._client.headers["authorization"] == "Bearer sk-test"
    rt.close()
