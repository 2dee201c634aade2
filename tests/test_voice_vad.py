"""VAD hysteresis: exact frame counts with an injected classifier, then real speech."""

from __future__ import annotations

import numpy as np

from server.voice.vad import (
    SpeechConfirmed,
    SpeechEnd,
    SpeechStart,
    VADOptions,
    VoiceActivityDetector,
)
from tests.audio_fixtures import needs_espeak, silence, speech, with_silence

FRAME = 320  # 20 ms at 16 kHz
LOUD = np.full(FRAME, 3000, dtype=np.int16)
QUIET = np.zeros(FRAME, dtype=np.int16)


def scripted(pattern: str, options: VADOptions | None = None):  # type: ignore[no-untyped-def]
    """Feed one frame per character: '#' voiced, '.' unvoiced; return (frame index, event)."""
    vad = VoiceActivityDetector(options or VADOptions(), classifier=lambda f: bool(f[0]))
    out = []
    for i, ch in enumerate(pattern):
        event = vad.process(LOUD if ch == "#" else QUIET)
        if event is not None:
            out.append((i, event))
    return vad, out


def test_start_needs_min_speech_and_end_needs_hangover():
    # 300 ms = 15 frames to start, 600 ms = 30 frames of silence to end.
    vad, events = scripted("." * 5 + "#" * 40 + "." * 40)
    assert [type(e) for _, e in events] == [SpeechStart, SpeechEnd]
    (i_start, start), (i_end, end) = events
    assert i_start == 5 + 15 - 1
    assert start.onset_sample == 5 * FRAME
    assert start.detected_sample == (5 + 15) * FRAME
    assert i_end == 45 + 30 - 1
    assert end.end_sample == 45 * FRAME
    assert not vad.speaking


def test_voiced_says_whether_the_last_frame_was_voice():
    # The listener re-judges speech held during playback only while the user talks.
    vad, _ = scripted("#" * 20)
    assert vad.speaking and vad.voiced
    vad.process(QUIET)
    assert vad.speaking and not vad.voiced  # a pause inside the speech


def test_confirm_comes_once_after_confirm_ms_of_voiced_audio():
    # 600 ms = 30 voiced frames, counted from the onset; pauses while speaking do not count.
    _, events = scripted("#" * 20 + "." * 10 + "#" * 20 + "." * 40, VADOptions(confirm_ms=600))
    assert [type(e) for _, e in events] == [SpeechStart, SpeechConfirmed, SpeechEnd]
    (_, start), (i_confirm, confirm), _ = events
    assert i_confirm == 20 + 10 + 10 - 1
    assert confirm.onset_sample == start.onset_sample == 0
    assert confirm.detected_sample == (i_confirm + 1) * FRAME
    # Short speech is never confirmed, and without confirm_ms nothing is.
    assert [type(e) for _, e in scripted("#" * 25 + "." * 40, VADOptions(confirm_ms=600))[1]] == [
        SpeechStart,
        SpeechEnd,
    ]
    assert [type(e) for _, e in scripted("#" * 50 + "." * 40)[1]] == [SpeechStart, SpeechEnd]


def test_a_cough_does_not_start_speech():
    _, events = scripted("#" * 7 + "." * 40 + "#" * 7 + "." * 40)  # two 140 ms blips
    assert events == []


def test_short_gaps_inside_the_onset_and_between_words_are_bridged():
    # Onset with an 80 ms gap still counts; a 400 ms pause between words does not end.
    _, events = scripted("#" * 8 + "...." + "#" * 8 + "#" * 20 + "." * 20 + "#" * 20 + "." * 31)
    assert [type(e) for _, e in events] == [SpeechStart, SpeechEnd]
    assert events[0][1].onset_sample == 0


def test_a_long_gap_restarts_the_onset_count():
    _, events = scripted("#" * 10 + "." * 10 + "#" * 10 + "." * 40)  # 200 ms gap > 160 ms
    assert events == []


def test_the_level_gate_keeps_hiss_out():
    vad = VoiceActivityDetector(VADOptions(), classifier=lambda f: True)  # says "speech" to all
    # About -64 dBFS of noise.
    hiss = (np.random.default_rng(0).standard_normal(FRAME * 50) * 20).astype(np.int16)
    assert vad.feed(hiss) == []


def test_feed_splits_any_chunk_size_into_frames():
    vad = VoiceActivityDetector(VADOptions(), classifier=lambda f: bool(f[0]))
    audio = np.concatenate([np.full(FRAME * 20, 3000, np.int16), np.zeros(FRAME * 40, np.int16)])
    events = []
    for i in range(0, audio.size, 777):
        events += vad.feed(audio[i : i + 777])
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd]
    assert vad.samples == audio.size // FRAME * FRAME


@needs_espeak
def test_real_speech_starts_and_ends():
    audio = with_silence(speech("turn left at the next corner"), before_ms=500, after_ms=1000)
    vad = VoiceActivityDetector()
    events = vad.feed(audio)
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd]
    start, end = events
    assert isinstance(start, SpeechStart) and isinstance(end, SpeechEnd)
    # The onset is found near where the speech begins; "started" waits for min_speech.
    assert abs(start.onset_sample - 8000) < 0.1 * 16000
    assert start.detected_sample - start.onset_sample >= 0.3 * 16000
    speech_end = audio.size - 16000
    assert abs(end.end_sample - speech_end) < 0.25 * 16000
    assert end.detected_sample - end.end_sample >= 0.6 * 16000


@needs_espeak
def test_a_150_ms_blip_of_real_speech_does_not_start():
    words = speech("what is in front of me")
    blip = words[words.size // 2 : words.size // 2 + 2400]  # 150 ms from the middle
    audio = np.concatenate([silence(500), blip, silence(1000), blip, silence(1000)])
    assert VoiceActivityDetector().feed(audio) == []
