"""A city on a fleet (issue 15): N frontends sharing one Redis, before one model server.

The first test is the acceptance: two real `murmur serve` processes (``--model`` at the
fake OpenAI-compatible server, `[fleet] store` at a real redis-server) behind a TCP
relay standing in for the balancer. A phone pairs through the relay (the code comes
from `murmur pair`, which reaches the registry in Redis), asks on frontend A and hears
the answer; A is stopped (SIGTERM: it drains); the bridge resumes on B under the same
session, and the first request B sends the model holds the earlier query and answer.
The others pin down the parts: the Redis device registry behind the pairing service,
the hand-over store, a conversation's export and restore, the bridge's device header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.connection import DEVICE_HEADER, Backoff, LinkOptions, call_metadata, pair
from mobile_bridge.link import BridgeLink
from mobile_bridge.tls import ServerPin
from server.config import Settings
from server.errors import ResumeRefusedError
from server.events import SessionStart
from server.pairing.service import PairingService
from server.pairing.tls import CERT_NAME, KEY_NAME, ensure_self_signed
from server.pairing.uri import parse_pairing_uri
from server.runtime.base import Action, ActionKind
from server.runtime.conversation import Conversation
from server.runtime.scripted import ScriptLine
from server.session.handover import Handover, reopen, token_key
from server.storage.redis_store import PREFIX, RedisDeviceStore, RedisHandoverStore, safe_url
from tests.fake_vllm import tick
from tests.fakes import FakeVLLM, InstantTTS, RecordingClock, Reply, TcpProxy
from tests.harness import (
    Client,
    jpeg,
    running_server,
    scripted,
    serving_address,
    session_start,
    stop_process,
)
from tests.redis_fixtures import redis_url

__all__ = ["redis_url"]  # the fixture, imported to be used here

ROOT = Path(__file__).resolve().parents[1]
FAST = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
QUESTION = "Is anyone ahead of me?"
ANSWER = "Two people, walking away from you."
START = pb.SessionStart(mode=pb.MODE_GENERAL, language="en", client_name="fleet", want_trace=True)


async def _until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout_s:g} s")


def _text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part["type"] == "text")


def _last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body["messages"] if m["role"] == "user"]
    return _text(users[-1]) if users else ""


def _answers(body: dict[str, Any]) -> Reply | None:
    """The model server's part: the tick that carries the question gets the answer."""
    text = _last_user_text(body)
    if QUESTION in text and "[Q&A History]" not in text:
        return Reply(f"</response> {ANSWER}")
    return None


def _config(tmp: Path, name: str, model_url: str, store: str, advertise: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
tick_hz = 5.0
frame_wait_ms = 20
grace_s = 2.0
tls_cert = "{tmp / "tls" / CERT_NAME}"
tls_key = "{tmp / "tls" / KEY_NAME}"
[pairing]
state_dir = "{tmp / f"state-{name}"}"
[model]
model = "{model_url}"
timeout_s = 2.0
[voice]
asr = "none"
tts = ["piper"]
[metrics]
port = 0
[fleet]
store = "{store}"
advertise = "{advertise}"
"""
    )
    return path


async def _frontend(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--config", str(config),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _log(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None and proc.stderr is not None
    return (await proc.stderr.read()).decode() + (await proc.stdout.read()).decode()


@pytest.mark.slow
async def test_a_session_on_a_draining_frontend_resumes_on_another_with_its_memory(
    tmp_path, redis_url
):
    ensure_self_signed(tmp_path / "tls")  # one certificate, every frontend presents it
    vllm = FakeVLLM(answer=_answers)
    frontends: list[asyncio.subprocess.Process] = []
    try:
        async with TcpProxy("127.0.0.1:9") as balancer:
            configs = [
                _config(tmp_path, name, vllm.url, redis_url, balancer.address)
                for name in ("a", "b")
            ]
            frontends += [await _frontend(c) for c in configs]
            a, b = frontends
            address_a, address_b = await asyncio.gather(serving_address(a), serving_address(b))
            balancer.upstream = address_a  # this device's calls land on A (affinity)

            # `murmur pair` on any frontend: the code is in the registry all of them share.
            shown = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "server.cli", "pair", "--config", str(configs[1])],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert shown.returncode == 0, shown.stderr
            uri = re.search(r"murmur-bridge pair '(murmur://[^']+)'", shown.stdout)
            assert uri, shown.stdout
            code, fp, addresses = parse_pairing_uri(uri.group(1))
            assert addresses == [balancer.address]  # [fleet] advertise: the balancer
            grant = await pair(LinkOptions(balancer.address, pin=ServerPin(fp)), code, "phone")
            options = LinkOptions(
                target=balancer.address,
                token=grant.token,
                pin=ServerPin(fp, grant.certificate_pem),
                backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.3, jitter=0.0),
                max_reconnects=100,
            )
            status: list[str] = []
            events: list[pb.ServerEvent] = []
            link = BridgeLink(options, START, on_status=status.append, clock=RecordingClock(1.0))

            async def receive() -> None:
                async for ev in link.events():
                    events.append(ev)

            async def camera() -> None:
                for seq in range(1, 10_000):
                    frame = pb.VideoFrame(
                        seq=seq, encoding=pb.VIDEO_ENCODING_JPEG, data=jpeg(shade=seq % 90)
                    )
                    await link.send(pb.ClientEvent(video_frame=frame))
                    await asyncio.sleep(0.1)

            def spoken() -> list[str]:
                return [e.speech.text for e in events if e.HasField("speech")]

            def readies() -> list[pb.SessionReady]:
                return [e.session_ready for e in events if e.HasField("session_ready")]

            reader = asyncio.create_task(receive())
            frames = asyncio.create_task(camera())
            await _until(lambda: len(readies()) == 1)
            await link.send(pb.ClientEvent(text_input=pb.TextInput(text=QUESTION)))
            await _until(lambda: ANSWER in " ".join(spoken()))  # said clause by clause

            # A drains: the balancer sees it NOT_SERVING and sends new calls to B.
            balancer.upstream = address_b
            await stop_process(a)
            sent_by_a = len(vllm.requests)
            await _until(lambda: len(readies()) == 2)
            await _until(lambda: len(vllm.requests) > sent_by_a + 2)
            frames.cancel()
            await link.close()
            await asyncio.wait_for(reader, 20)
            await stop_process(b)
    finally:
        for proc in frontends:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        vllm.close()

    log_a, log_b = await _log(a), await _log(b)
    assert a.returncode == 0 and b.returncode == 0, (log_a, log_b)
    assert "handed 1 session(s) over to the fleet store" in log_a, log_a
    assert "handed over from another frontend" in log_b, log_b
    assert "Traceback" not in log_a + log_b, (log_a, log_b)
    # The same session, resumed (no "unknown token, a new session" Notice), on B.
    first, second = readies()
    assert first.session_id == second.session_id
    assert "session.resume_unknown" not in [e.notice.code for e in events if e.HasField("notice")]
    assert any("lost the stream" in s for s in status), status
    # The first turn B sends the model holds the earlier query and answer.
    after = [json.loads(raw) for raw in vllm.requests[sent_by_a:]]
    first_turn = _last_user_text(after[0])
    assert "[Q&A History]" in first_turn, first_turn
    assert f"User: {QUESTION}" in first_turn and f"Assistant: {ANSWER}" in first_turn
    # And every later request of the chunk repeats that turn (vLLM's prefix cache).
    assert all(_text(r["messages"][1]) == _text(after[0]["messages"][1]) for r in after[1:])
    # Nothing secret in a log: not the device token, not the resume token.
    assert grant.token.split(".", 1)[1] not in log_a + log_b
    assert first.resume_token not in log_a + log_b and second.resume_token not in log_a + log_b


# ---------------------------------------------------------------------------------------
# The parts
# ---------------------------------------------------------------------------------------


async def test_in_process_a_drain_ends_calls_unavailable_and_the_next_frontend_resumes(redis_url):
    """The same hand-over inside one process (two servers, one Redis), on the scripted
    model: the call ends UNAVAILABLE with what to do, the draining server takes no new
    call, and the other resumes the session with its Q&A memory and without a Notice."""
    fleet = FAST.with_overrides("fleet", store=redis_url)
    first = scripted()
    first.script = [ScriptLine(0, f"</response> {ANSWER}", query="anyone")]
    second = scripted()
    async with (
        running_server(first, InstantTTS(), fleet) as a,
        running_server(second, InstantTTS(), fleet) as b,
    ):
        async with Client(a.address) as c:
            ready = await c.start(want_trace=True)
            await c.send(pb.ClientEvent(text_input=pb.TextInput(text=QUESTION)))
            await c.wait_for("speech")
            assert await a.server.servicer.hand_over() == 1  # what stop() does first
            code = await asyncio.wait_for(c.call.code(), 10)
            details = await c.call.details()
        assert code == grpc.StatusCode.UNAVAILABLE and "draining" in details
        assert "resume token" in details and ready.resume_token not in details
        async with Client(a.address) as late:  # a call the balancer sent before it knew
            await late.send(session_start(resume_token=ready.resume_token))
            assert await asyncio.wait_for(late.call.code(), 10) == grpc.StatusCode.UNAVAILABLE
        await a.server.stop(0.3)
        async with Client(b.address) as c:
            back = await c.start(want_trace=True, resume_token=ready.resume_token)
            await c.wait_for("tick", count=2)
            assert await c.finish() == grpc.StatusCode.OK
        assert back.session_id == ready.session_id and not c.of("notice")
        qa = second.sessions[0].debug_state().qa_history
        assert f"User: {QUESTION}" in qa and f"Assistant: {ANSWER}" in qa
        # Taken once: the same token again is a new session, and says so.
        async with Client(b.address) as c:
            again = await c.start(resume_token=ready.resume_token)
            notice = await c.wait_for("notice")
            await c.finish()
        assert again.session_id != ready.session_id
        assert notice.code == "session.resume_unknown"


async def test_the_redis_registry_pairs_verifies_and_revokes_for_every_frontend(redis_url):
    one = PairingService(RedisDeviceStore(redis_url))  # frontend A (and `murmur pair`)
    two = PairingService(RedisDeviceStore(redis_url))  # frontend B
    try:
        issued = await asyncio.to_thread(one.issue_code, 60.0, "glasses")
        grant = await one.pair(issued.code, "phone", "10.0.0.5")
        assert await two.verify(grant.token, "10.0.0.6") == grant.device_id
        with pytest.raises(Exception, match="not valid"):
            await two.pair("ZZZZ-ZZZZ", "guess", "10.0.0.7")
        with pytest.raises(Exception, match="already used"):
            await two.pair(issued.code, "thief", "10.0.0.7")
        assert await two.verify(grant.device_id + ".wrong", "10.0.0.6") is None
        [device] = await asyncio.to_thread(two.list_devices)
        assert device.name == "glasses" and device.last_address in ("10.0.0.5", "10.0.0.6")
        assert await asyncio.to_thread(two.rename, grant.device_id, "Frame")
        assert not await asyncio.to_thread(two.rename, "nosuch", "x")
        assert await asyncio.to_thread(one.revoke, grant.device_id)
        assert not await asyncio.to_thread(one.revoke, grant.device_id)  # already
        assert await two.revoked_ids() == frozenset({grant.device_id})
        assert await two.verify(grant.token, "10.0.0.6") is None
        await asyncio.to_thread(one.note_endpoint, "fleet.example:443")
        assert await asyncio.to_thread(two.endpoint) == "fleet.example:443"
        # Only hashes are stored: neither the code nor the token's secret is in Redis.
        dump = _dump(redis_url)
        assert issued.code.replace("-", "") not in dump and grant.token.split(".")[1] not in dump
    finally:
        await asyncio.to_thread(one.close)
        await asyncio.to_thread(two.close)


async def test_an_expired_code_is_refused_and_its_key_has_a_ttl(redis_url):
    now = [time.time()]  # Redis keeps the key a day past this: a real clock
    service = PairingService(RedisDeviceStore(redis_url), clock=lambda: now[0])
    try:
        issued = await asyncio.to_thread(service.issue_code, 60.0)
        now[0] += 61.0
        with pytest.raises(Exception, match="expired"):
            await service.pair(issued.code, "phone", "10.0.0.5")
        import redis

        keys = redis.Redis.from_url(redis_url).keys(f"{PREFIX}code:*")
        assert keys and all(redis.Redis.from_url(redis_url).ttl(k) > 0 for k in keys)
    finally:
        await asyncio.to_thread(service.close)


def test_a_hand_over_is_taken_once_under_the_token_hash_and_expires(redis_url):
    store = RedisHandoverStore(redis_url)
    try:
        record = Handover("s1", "dev1", "blind", {"chunk": 1, "memory": {"qa": ["User: hi"]}})
        store.put(token_key("resume-secret"), record.dumps(), ttl_s=30)
        assert "resume-secret" not in _dump(redis_url)
        taken = store.take(token_key("resume-secret"))
        assert taken is not None and Handover.loads(taken) == record
        assert store.take(token_key("resume-secret")) is None  # one frontend resumes it
        store.put("k", "v", ttl_s=0.05)
        time.sleep(0.2)
        assert store.take("k") is None
    finally:
        store.close()
    assert Handover.loads('{"v": 99}') is None and Handover.loads("not json") is None


async def test_a_hand_over_resumes_only_for_the_device_that_opened_it(redis_url):
    store = RedisHandoverStore(redis_url)
    services = SimpleNamespace(handover=store, executors=SimpleNamespace(registry=None))
    try:
        record = Handover("s1", "dev1", "general", {"chunk": 1, "memory": {}})
        store.put(token_key("resume-secret"), record.dumps(), ttl_s=30)
        start = SessionStart(resume_token="resume-secret")
        with pytest.raises(ResumeRefusedError, match="another device"):
            await reopen(services, start, "dev2")  # type: ignore[arg-type]
        assert await reopen(services, SessionStart(), "dev1") is None  # no token: none
    finally:
        store.close()


def test_a_restored_conversation_opens_its_next_turn_with_the_history():
    old = Conversation("Warn me about obstacles.")
    turn = old.next_turn(tick(1.0, query=QUESTION))
    old.record(turn, Action(ActionKind.RESPONSE, ANSWER))
    old.add_context("The shop opens at nine.")  # still in the inbox: applied on export
    data = json.loads(json.dumps(old.export()))  # it travels as JSON
    new = Conversation("Warn me about obstacles.")
    new.restore(data)
    first = new.next_turn(tick(2.0))
    assert first.first and first.chunk == 2
    assert "[Q&A History]" in first.text and f"User: {QUESTION}" in first.text
    assert f"Assistant: {ANSWER}" in first.text and "The shop opens at nine." in first.text
    assert "Warn me about obstacles." in first.text  # the standing instruction, restated


def test_the_bridge_names_its_device_for_the_balancer_and_old_tokens_still_work():
    md = dict(call_metadata(LinkOptions(token="ab12cd34.secret")))
    assert md[DEVICE_HEADER] == "ab12cd34" and md["authorization"] == "Bearer ab12cd34.secret"
    assert DEVICE_HEADER not in dict(call_metadata(LinkOptions(token="opaque")))
    assert call_metadata(LinkOptions()) == ()


def test_store_urls_are_shown_without_their_password():
    assert safe_url("redis://:hunter2@redis:6379/0") == "redis://:***@redis:6379/0"
    assert safe_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_an_unreachable_store_stops_the_start_saying_where(tmp_path):
    from server.errors import StorageError

    with pytest.raises(StorageError, match=r"cannot reach the fleet store redis://:\*\*\*@"):
        RedisHandoverStore("redis://:pw@127.0.0.1:9/0")


def _dump(url: str) -> str:
    import redis

    r = redis.Redis.from_url(url, decode_responses=True)
    out = []
    for key in r.keys("*"):
        kind = r.type(key)
        value: Any = {
            "hash": r.hgetall, "string": r.get, "set": r.smembers,
            "zset": lambda k: r.zrange(k, 0, -1),
        }[kind](key)  # fmt: skip
        out.append(f"{key}={value}")
    with contextlib.suppress(Exception):
        r.close()
    return "\n".join(out)
