"""The emergency path through a live session: a real gRPC server on loopback, the
scripted model, and a real local webhook receiving the alert (aiohttp on port 0)."""

from __future__ import annotations

import asyncio
import base64
import logging
import math

import grpc
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import motion_event
from server.config import Settings
from server.engine.emergency_phrases import Line, lexicon
from tests.fakes import InstantTTS, LocalHTTP
from tests.fakes import LocalHTTPReply as Reply
from tests.harness import Client, jpeg, running_server, scripted
from tests.test_fall import fall

EN = lexicon("en")
ASK, CANCELLED = EN.lines[Line.ASK], EN.lines[Line.CANCELLED]
CALLED, RETRYING = EN.lines[Line.CALLED], EN.lines[Line.RETRYING]
UNREACHABLE = EN.lines[Line.UNREACHABLE]
LAT, LON = 52.520008, 13.404954


def _settings(hook: LocalHTTP, **emergency: object) -> Settings:
    return (
        Settings()
        .with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
        .with_overrides("emergency", webhooks=(f"{hook.base}/alert",), **emergency)
    )


def _text(text: str) -> pb.ClientEvent:
    return pb.ClientEvent(text_input=pb.TextInput(text=text))


def _location() -> pb.ClientEvent:
    return pb.ClientEvent(location=pb.Location(lat=LAT, lon=LON, accuracy_m=8.0))


def _said(c: Client) -> list[str]:
    return [s.text for s in c.of("speech")]


def _in_order(said: list[str], *lines: str) -> bool:
    it = iter(said)
    return all(line in it for line in lines)


async def test_help_with_no_answer_reaches_the_webhook_with_the_location(caplog):
    caplog.set_level(logging.DEBUG)
    runtime = scripted()
    async with LocalHTTP("/alert") as hook:
        settings = _settings(hook, ask_timeout_s=0.8)
        async with (
            running_server(runtime, InstantTTS(), settings) as srv,
            Client(srv.address) as c,
        ):
            ready = await c.start(want_trace=True)
            await c.send(_location())
            await c.frame(1)
            await c.send(_text("Help, I fell down."))
            question = await c.wait_for("speech", pred=lambda s: s.text == ASK)
            await c.wait_for("speech", pred=lambda s: s.text == CALLED, within_s=10)
            assert await c.finish() == grpc.StatusCode.OK

    assert question.kind == pb.SPEECH_KIND_ALERT
    assert len(hook.requests) == 1
    alert = hook.requests[0]
    assert alert["event"] == "murmur.emergency" and alert["session_id"] == ready.session_id
    assert alert["trigger"] == "user" and alert["confirmed"] is False
    loc = alert["location"]
    assert (loc["lat"], loc["lon"], loc["accuracy_m"]) == (LAT, LON, 8.0)
    assert 0 <= loc["age_s"] < 5
    assert "52.52001, 13.40495" in alert["message"] and "asked for help" in alert["message"]
    assert "frame" not in alert  # not opted in
    # The call for help was the emergency path's, not a question for the model.
    assert not [t for t in runtime.sessions[0].ticks if t.user_query]
    traces = [t.text for t in c.of("tick") if t.action == "emergency"]
    assert traces == [
        "emergency: idle → asking (the user called for help)",
        "emergency: asking → notifying (no answer in time)",
        "emergency: notifying → notified (a contact got the alert)",
    ]
    # What was said and where stays out of the logs.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "emergency: asking → notifying" in logged
    for secret in ("fell down", "52.52", "13.40", alert["message"]):
        assert secret not in logged, secret


async def test_im_fine_within_the_window_sends_nothing():
    runtime = scripted()
    async with LocalHTTP("/alert") as hook:
        settings = _settings(hook, ask_timeout_s=1.0)
        async with (
            running_server(runtime, InstantTTS(), settings) as srv,
            Client(srv.address) as c,
        ):
            await c.start()
            await c.send(_location())
            await c.send(_text("help"))
            await c.wait_for("speech", pred=lambda s: s.text == ASK)
            await c.send(_text("I'm fine."))
            await c.wait_for("speech", pred=lambda s: s.text == CANCELLED)
            await c.send(_text("can you help me find the door"))  # an ordinary question
            await asyncio.sleep(1.5)  # well past the deadline
            assert await c.finish() == grpc.StatusCode.OK
        assert hook.requests == []
    assert CALLED not in _said(c)
    queries = [t.user_query for t in runtime.sessions[0].ticks if t.user_query]
    assert queries == ["can you help me find the door"]


async def test_a_webhook_failing_twice_is_retried_and_the_user_hears_both():
    async with LocalHTTP("/alert") as hook:
        hook.replies.extend([Reply(status=500), Reply(status=502), Reply({})])
        settings = _settings(hook, ask_timeout_s=0.5, retries=3, retry_backoff_s=0.3)
        async with (
            running_server(scripted(), InstantTTS(), settings) as srv,
            Client(srv.address) as c,
        ):
            await c.start()
            await c.send(_text("Call for help!"))
            await c.wait_for("speech", pred=lambda s: s.text == CALLED, within_s=10)
            assert await c.finish() == grpc.StatusCode.OK
    assert len(hook.requests) == 3
    assert _in_order(_said(c), ASK, RETRYING, CALLED)
    notices = [n for n in c.of("notice") if n.code == "agent.failed"]
    assert len(notices) == 2 and "trying again" in notices[0].message
    assert f"webhook 127.0.0.1:{hook.port}" in notices[0].message


async def test_a_webhook_that_always_fails_is_said_aloud():
    async with LocalHTTP("/alert") as hook:
        hook.replies.extend([Reply(status=500)] * 3)
        settings = _settings(hook, ask_timeout_s=0.5, retries=2, retry_backoff_s=0.2)
        async with (
            running_server(scripted(), InstantTTS(), settings) as srv,
            Client(srv.address) as c,
        ):
            await c.start()
            await c.send(_text("help"))
            await c.wait_for("speech", pred=lambda s: s.text == UNREACHABLE, within_s=10)
            assert await c.finish() == grpc.StatusCode.OK
    assert len(hook.requests) == 3
    assert _in_order(_said(c), ASK, RETRYING, UNREACHABLE) and CALLED not in _said(c)
    notices = [n for n in c.of("notice") if n.code == "agent.failed"]
    assert len(notices) == 3 and "no more tries" in notices[-1].message


async def test_confirmed_help_goes_at_once_with_the_frame_when_opted_in():
    frame = jpeg(shade=40)
    async with LocalHTTP("/alert") as hook:
        settings = _settings(hook, ask_timeout_s=30.0, send_frame=True)
        async with (
            running_server(scripted(), InstantTTS(), settings) as srv,
            Client(srv.address) as c,
        ):
            await c.start()
            await c.frame(1, frame)
            await c.send(_text("help"))
            await c.wait_for("speech", pred=lambda s: s.text == ASK)
            await c.send(_text("Yes, help!"))
            # Long before the 30 s deadline:
            await c.wait_for("speech", pred=lambda s: s.text == CALLED, within_s=5)
            assert await c.finish() == grpc.StatusCode.OK
    alert = hook.requests[0]
    assert alert["confirmed"] is True and alert["location"] is None
    assert base64.b64decode(alert["frame"]) == frame


async def test_a_fall_in_device_motion_asks_over_the_wire_and_im_fine_sends_nothing():
    """The bridge's ``DeviceMotion`` batches (one garbage one first) through a real stream."""
    samples = fall(rate=60.0).samples()
    async with LocalHTTP("/alert") as hook:
        settings = _settings(hook, ask_timeout_s=30.0)
        async with (
            running_server(scripted(), InstantTTS(), settings) as srv,
            Client(srv.address) as c,
        ):
            await c.start(want_trace=True)
            await c.send(motion_event(1_000, 60.0, [(math.nan, 0.0, 9.8)] * 6))
            for i in range(0, len(samples), 15):  # a batch every 250 ms, as a phone would
                chunk = [tuple(s) for s in samples[i : i + 15]]
                await c.send(motion_event(2_000 + round(i * 1000 / 60), 60.0, chunk))
            question = await c.wait_for("speech", pred=lambda s: s.text == ASK)
            await c.send(_text("I'm fine"))
            await c.wait_for("speech", pred=lambda s: s.text == CANCELLED)
            assert await c.finish() == grpc.StatusCode.OK
        assert hook.requests == []
    assert question.kind == pb.SPEECH_KIND_ALERT
    bad = [n for n in c.of("notice") if n.code == "protocol.bad_message"]
    assert len(bad) == 1 and "DeviceMotion" in bad[0].message
    traces = [t.text for t in c.of("tick") if t.action == "emergency"]
    assert traces[0] == "emergency: device motion arrives; falls are detected from it"
    assert traces[1].startswith("emergency: idle → asking (a fall was detected (device motion:")
    assert traces[-1] == "emergency: asking → idle (the user is fine)"
