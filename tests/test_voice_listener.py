"""The audio-in pipeline end to end: Opus packets → VAD → ASR → listener events."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server.codes import Code
from server.errors import Recoverable
from server.events import AudioEncoding, AudioFormat, Notice
from server.voice.asr.base import ASRError
from server.voice.echo import echo_overlap
from server.voice.listener import (
    AudioListener,
    EchoDropped,
    ListenerOptions,
    SpeechEnded,
    SpeechStarted,
    TranscriptFinal,
    TranscriptPartial,
)
from tests.audio_fixtures import (
    OPUS_16K,
    needs_espeak,
    opus_packets,
    silence,
    speech,
    timed,
    tiny_whisper,
    with_silence,
)
from tests.fakes import EmitRecorder as Recorder
from tests.fakes import FakeASR

pytestmark = [pytest.mark.slow, needs_espeak]


@pytest.fixture(scope="module")
def whisper():
    asr = tiny_whisper()
    yield asr
    asr.close()


@pytest.fixture(scope="module")
def front_packets() -> list[bytes]:
    return opus_packets(with_silence(speech("what is in front of me"), 300, 1000))


async def feed_all(listener: AudioListener, packets: list[bytes], *, pace: bool = False) -> None:
    for packet, t in timed(packets):
        await listener.feed(packet, t)
        if pace:
            await asyncio.sleep(0)  # let the ASR worker run between packets


async def test_opus_speech_to_final_transcript(listen, whisper, front_packets):
    rec = Recorder()
    listener = listen(OPUS_16K, whisper, rec)
    try:
        await feed_all(listener, front_packets)
        await rec.wait_for(TranscriptFinal)
    finally:
        await listener.close()
    kinds = [t for t in rec.types() if t is not TranscriptPartial]
    assert kinds == [SpeechStarted, SpeechEnded, TranscriptFinal]
    started, final = rec.of(SpeechStarted)[0], rec.of(TranscriptFinal)[0]
    assert "front" in final.text.lower()
    # Capture times: speech begins after 300 ms of silence; "started" after ≥ 300 ms of it.
    assert abs(started.at_ms - 300) <= 60
    assert started.detected_at_ms - started.at_ms >= 300
    assert final.start_ms == started.at_ms and final.end_ms > final.start_ms
    assert listener.stats["finals"] == 1 and listener.stats["dropped_samples"] == 0


async def test_garbage_opus_is_recoverable_and_listening_goes_on(listen, front_packets):
    rec = Recorder()
    asr = FakeASR("what is in front of me")
    listener = listen(OPUS_16K, asr, rec)
    try:
        await listener.feed(front_packets[0], 0)
        with pytest.raises(Recoverable) as info:
            await listener.feed(b"\xff\xfe not opus \x00" * 4, 20)
        assert info.value.code is Code.AUDIO_BAD_OPUS
        await feed_all(listener, front_packets[1:])
        await rec.wait_for(TranscriptFinal)
    finally:
        await listener.close()
        asr.close()
    # Partials may come in between, depending on how fast the fake ASR answers.
    assert [t for t in rec.types() if t is not TranscriptPartial][:2] == [
        SpeechStarted,
        SpeechEnded,
    ]
    assert rec.of(TranscriptFinal)[0].text == "what is in front of me"


async def test_pcm16_chunk_of_odd_length_is_recoverable(listen):
    listener = listen(AudioFormat(AudioEncoding.PCM16, 16000), FakeASR(), Recorder())
    with pytest.raises(Recoverable, match="not whole samples"):
        await listener.feed(b"\x00\x01\x02", 0)
    await listener.feed(b"\x00\x00" * 320, 20)
    await listener.close()


async def test_24khz_opus_is_resampled_for_vad_and_asr(listen):
    rec = Recorder()
    asr = FakeASR("turn left")
    fmt = AudioFormat(AudioEncoding.OPUS, 24000)
    voice = speech("turn left at the next corner", rate=24000)
    listener = listen(fmt, asr, rec)
    try:
        await feed_all(listener, opus_packets(with_silence(voice, 300, 1000, rate=24000), fmt))
        await rec.wait_for(TranscriptFinal)
    finally:
        await listener.close()
        asr.close()
    samples, partial = asr.calls[-1]
    assert not partial
    speech_16k = voice.size * 16000 // 24000
    assert speech_16k < samples < speech_16k + 16000  # the utterance plus pre-roll and tail


async def test_echo_of_murmurs_own_voice_is_dropped(listen, whisper, front_packets):
    rec = Recorder()
    now = [100.0]
    listener = listen(OPUS_16K, whisper, rec, clock=lambda: now[0])
    try:
        listener.speech_started("What is in front of me? Let me look.")
        await feed_all(listener, front_packets)
        await rec.wait_for(EchoDropped)
        assert rec.of(TranscriptFinal) == []
        # Once Murmur has been quiet for longer than the echo tail, the same words are the user's.
        listener.speech_stopped()
        now[0] += 5.0
        await feed_all(listener, front_packets)
        await rec.wait_for(TranscriptFinal)
    finally:
        await listener.close()
    assert rec.of(EchoDropped)[0].overlap >= 0.6
    started = rec.of(SpeechStarted)
    assert [s.during_playback for s in started] == [True, False]
    assert "front" in rec.of(TranscriptFinal)[0].text.lower()
    assert listener.stats["echo_dropped"] == 1


def test_echo_overlap_counts_transcript_words_found_in_speech():
    spoken = frozenset("the door is on your left".split())
    assert echo_overlap("The door is on your left.", spoken) == 1.0
    assert echo_overlap("Where is the nearest pharmacy?", spoken) == pytest.approx(2 / 5)
    assert echo_overlap("", spoken) == 0.0


async def test_short_commands_are_never_called_echo(listen, front_packets):
    rec = Recorder()
    asr = FakeASR("Stop.")
    listener = listen(OPUS_16K, asr, rec)
    try:
        listener.speech_started("Stop at the curb.")
        await feed_all(listener, front_packets)
        await rec.wait_for(TranscriptFinal)
    finally:
        await listener.close()
        asr.close()
    assert rec.of(EchoDropped) == []


async def test_partials_are_throttled_and_never_overlap(listen):
    gate = threading.Event()
    rec = Recorder()
    asr = FakeASR("turn left at the", gate=gate)
    words = "turn left at the next corner then walk straight on past the bakery to the station"
    audio = with_silence(speech(words), 300, 1000)
    listener = listen(OPUS_16K, asr, rec, ListenerOptions(partial_interval_ms=500))
    try:
        packets = opus_packets(audio)
        speech_end = len(packets) - 50  # the last second is silence
        await feed_all(listener, packets[:speech_end], pace=True)
        # The first partial is held inside ASR: later ones were skipped, not queued.
        assert asr.entered.is_set()
        assert len(asr.calls) == 1 and asr.calls[0][1] is True
        assert listener.stats["skipped_partials"] >= 2
        gate.set()
        await rec.wait_for(TranscriptPartial)
        await feed_all(listener, packets[speech_end:], pace=True)
        await rec.wait_for(TranscriptFinal)
    finally:
        await listener.close()
        asr.close()
    assert asr.max_running == 1
    assert [c[1] for c in asr.calls][-1] is False  # the final came last
    kinds = rec.types()
    assert (
        kinds.index(SpeechStarted) < kinds.index(TranscriptPartial) < kinds.index(TranscriptFinal)
    )


async def test_long_speech_keeps_the_newest_audio_and_counts_drops(listen):
    rec = Recorder()
    asr = FakeASR("blah")
    words = "one two three four five six seven eight nine ten eleven twelve"
    listener = listen(
        OPUS_16K, asr, rec, ListenerOptions(max_utterance_ms=1000, partial_interval_ms=0)
    )
    try:
        await feed_all(listener, opus_packets(with_silence(speech(words), 300, 1000)))
        await rec.wait_for(TranscriptFinal)
    finally:
        await listener.close()
        asr.close()
    assert listener.stats["dropped_samples"] > 16000
    assert asr.calls[-1][0] <= 16000 + 320


async def test_asr_failure_becomes_a_notice_and_listening_goes_on(listen, front_packets):
    class Flaky(FakeASR):
        def _transcribe(self, pcm16k, partial, language):  # type: ignore[no-untyped-def]
            self.calls.append((pcm16k.size, partial))
            if len(self.calls) == 1:
                raise ASRError("decoder exploded")
            return "what is in front of me"

    rec = Recorder()
    asr = Flaky()
    listener = listen(OPUS_16K, asr, rec, ListenerOptions(partial_interval_ms=0))
    try:
        await feed_all(listener, front_packets)
        await rec.wait_for(Notice)
        await feed_all(listener, front_packets)
        await rec.wait_for(TranscriptFinal)
    finally:
        await listener.close()
        asr.close()
    notice = rec.of(Notice)[0]
    assert notice.code is Code.ASR_FAILED and notice.retryable


async def test_close_cancels_a_running_transcription_at_once(listen, front_packets):
    gate = threading.Event()
    asr = FakeASR(gate=gate)
    listener = listen(OPUS_16K, asr, Recorder())
    await feed_all(listener, front_packets)
    await asyncio.sleep(0)
    assert await asyncio.to_thread(asr.entered.wait, 5)
    async with asyncio.timeout(1):
        await listener.close()
    await listener.feed(front_packets[0], 0)  # ignored after close
    gate.set()
    asr.close()


async def test_close_does_not_swallow_its_callers_cancellation(listen, front_packets):
    gate = threading.Event()
    asr = FakeASR(gate=gate)
    listener = listen(OPUS_16K, asr, Recorder())
    await feed_all(listener, front_packets)
    assert await asyncio.to_thread(asr.entered.wait, 5)
    closing = asyncio.create_task(listener.close())
    await asyncio.sleep(0)  # close() is now awaiting the cancelled worker
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    gate.set()
    asr.close()


async def test_silence_only_emits_nothing(listen):
    rec = Recorder()
    asr = FakeASR()
    listener = listen(OPUS_16K, asr, rec)
    await feed_all(listener, opus_packets(silence(3000)), pace=True)
    await listener.close()
    asr.close()
    assert rec.events == [] and asr.calls == []


async def test_the_sessions_task_group_owns_the_asr_worker(dsp, front_packets):
    """With ``spawn`` bound to a TaskGroup: the worker runs only while there is work."""
    rec = Recorder()
    asr = FakeASR("what is in front of me")
    try:
        async with asyncio.timeout(10), asyncio.TaskGroup() as tg:

            def spawn(coro, name):  # type: ignore[no-untyped-def]
                return tg.create_task(coro, name=name)

            listener = AudioListener(OPUS_16K, asr, rec, spawn=spawn, dsp=dsp)
            await feed_all(listener, front_packets)
            await rec.wait_for(TranscriptFinal)
            # No close() here: an idle listener holds no task, so the group can end.
    finally:
        await listener.close()
        asr.close()
    assert rec.of(TranscriptFinal)[0].user_utterance == 1
