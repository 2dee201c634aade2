"""Voice styles: quiet narration well below normal, alerts clearly above it, by voice."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from server.events import SpeechKind
from server.voice.loudness import active_level, loudness_lufs
from server.voice.profile import (
    MAX_LEVEL_DB,
    MAX_STEPS,
    MIN_LEVEL_DB,
    NORMAL,
    QUIET,
    STYLES,
    VoiceProfile,
    adjust,
    configured,
    volume_offset_db,
)
from server.voice.tts.base import TTSBackend, VoiceOptions
from server.voice.tts.espeak import EspeakTTS
from server.voice.tts.styled import StyledTTS
from tests.audio_fixtures import needs_espeak
from tests.fakes import FakeTTS

SESSION = VoiceOptions(language="en", rate=0.95, volume=0.7)  # [voice] defaults
NARRATION = "The door is on your left, about two metres away. The cafe ahead is open."
ALERT = "Careful, step down right in front of you."


@pytest.fixture
def thread() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1, thread_name_prefix="tts-style")
    yield pool
    pool.shutdown(wait=True)


async def render(backend: TTSBackend, text: str, options: VoiceOptions) -> tuple[np.ndarray, int]:
    chunks = [c async for c in backend.stream(text, options)]
    return np.concatenate([c.pcm for c in chunks]), chunks[0].sample_rate


# ------------------------------------------------------------------ real voices


@pytest.mark.slow
async def test_piper_in_the_quiet_and_normal_styles(tts, thread):
    """The acceptance, on the bundled Piper voice: each rendering within 1.5 dB of its
    target, quiet narration >= 10 dB below normal narration, quiet alerts >= 6 dB above it."""
    quiet = StyledTTS(tts, QUIET, executor=thread)  # not closed: ``tts`` is the session's
    normal = StyledTTS(tts, NORMAL, executor=thread)
    levels: dict[str, float] = {}
    for name, backend, kind, text in (
        ("quiet narration", quiet, SpeechKind.NARRATION, NARRATION),
        ("quiet alert", quiet, SpeechKind.ALERT, ALERT),
        ("normal narration", normal, SpeechKind.NARRATION, NARRATION),
    ):
        pcm, rate = await render(backend, text, VoiceOptions(rate=0.95, volume=0.7, kind=kind))
        levels[name] = active_level(pcm, rate).level_db
        assert loudness_lufs(pcm, rate) == pytest.approx(levels[name], abs=1.5), name
        assert np.abs(pcm).max() < 32768 * 10 ** (-1 / 20) + 1  # the limiter's ceiling
    assert levels["quiet narration"] == pytest.approx(-32.0, abs=1.5)
    assert levels["quiet alert"] == pytest.approx(-20.0, abs=1.5)
    assert levels["normal narration"] == pytest.approx(-20.0, abs=1.5)
    assert levels["normal narration"] - levels["quiet narration"] >= 10.0
    assert levels["quiet alert"] - levels["quiet narration"] >= 6.0


@needs_espeak
async def test_espeak_whispers_when_the_style_asks(thread):
    whispering = configured(QUIET, -32.0, -20.0, whisper=True)
    espeak = EspeakTTS()
    styled = StyledTTS(espeak, whispering, executor=thread)
    try:
        asked, _, _ = styled.plan(SESSION)
        assert espeak.command(asked)[3] == "en-us+whisper"
        assert espeak.command(styled.plan(replace_kind(SpeechKind.ALERT))[0])[3] == "en-us"
        pcm, rate = await render(styled, NARRATION, SESSION)
    finally:
        styled.close()
    assert active_level(pcm, rate).level_db == pytest.approx(-32.0, abs=1.5)


@needs_espeak
async def test_espeak_keeps_its_words_apart():
    """80 ms between words (``-g 8``): what lifts its word accuracy from ~76 % to ~90 %
    (benchmarks/bench_whisper_voice.py); a plain "en" speaks in the US voice."""
    gapped, tight = EspeakTTS(), EspeakTTS(word_gap_ms=0)
    try:
        command = gapped.command(SESSION)
        assert command[3] == "en-us" and command[command.index("-g") + 1] == "8"
        assert gapped.command(VoiceOptions(language="en-GB"))[3] == "en-gb"
        text = "Stairs going down, hold the rail on your left."
        apart, _ = await render(gapped, text, SESSION)
        run_together, rate = await render(tight, text, SESSION)
    finally:
        gapped.close()
        tight.close()
    # eight gaps between nine words, each 80 ms or more (espeak-ng scales it with the pace)
    assert 8 * 0.08 <= (apart.size - run_together.size) / rate < 8 * 0.2


def replace_kind(kind: SpeechKind) -> VoiceOptions:
    return VoiceOptions(language="en", rate=0.95, volume=0.7, kind=kind)


# ------------------------------------------------------------------ the plan


def test_the_plan_for_each_kind_of_speech():
    styled = StyledTTS(FakeTTS("fake"), QUIET, reference_volume=0.7)
    asked, profile, target = styled.plan(SESSION)
    assert (target, profile.compress) == (-32.0, True)
    # The engine renders at full gain and a calm pace; the level is the renderer's.
    assert asked.volume == 1.0 and asked.rate == pytest.approx(0.95 * 0.92)
    assert not asked.whisper  # off by default (the benchmark shows why)
    _, _, alert = styled.plan(replace_kind(SpeechKind.ALERT))
    assert alert == -20.0
    # A session may name the other style; an unknown name keeps the server's.
    assert styled.plan(VoiceOptions(volume=0.7, style="normal"))[2] == -20.0
    assert styled.plan(VoiceOptions(volume=0.7, style="shout"))[2] == -32.0
    # "louder" twice, and the session's volume against [voice] volume.
    assert styled.plan(SESSION.louder(2))[2] == -26.0
    assert styled.plan(VoiceOptions(volume=0.35))[2] == pytest.approx(-32.0 - 6.02, abs=0.01)
    assert styled.plan(VoiceOptions(volume=0.0))[2] == -32.0  # 0 = the server's default
    styled.close()


async def test_a_styled_chain_renders_any_backend_at_the_target():
    fake = FakeTTS("fake")
    styled = StyledTTS(fake, NORMAL)
    unsubscribe = styled.subscribe(lambda *a: pytest.fail("a single backend never switches"))
    try:
        pcm, rate = await render(styled, "A bench on your right. A tree next to it.", SESSION)
        alert, _ = await render(styled, "Stop there.", replace_kind(SpeechKind.ALERT))
    finally:
        unsubscribe()
        styled.close()
    assert fake.calls == ["A bench on your right.", "A tree next to it.", "Stop there."]
    # The fake's 0.1 s tones are short for P.56 (the envelope's rise is not counted as
    # active, so each clause reads a little loud and is turned down): within 1 dB.
    assert active_level(pcm, rate).level_db == pytest.approx(-20.0, abs=1.0)
    assert active_level(alert, rate).level_db == pytest.approx(-16.0, abs=1.0)
    assert styled.describe() == "fake fake; normal voice (speech -20 dBFS, alerts -16 dBFS)"


# ------------------------------------------------------------------ profiles


def test_adjust_moves_in_3_db_steps_within_bounds():
    p = VoiceProfile(-32.0)
    assert adjust(p, 1).target_level_db == -29.0
    assert adjust(p, -2).target_level_db == -38.0
    assert adjust(p, -100).target_level_db == max(-32.0 - 3 * MAX_STEPS, MIN_LEVEL_DB)
    assert adjust(VoiceProfile(-16.0), 4).target_level_db == MAX_LEVEL_DB
    assert adjust(p, 0) == p


def test_louder_and_quieter_are_bounded_steps():
    o = VoiceOptions()
    assert o.louder(1).louder(1).level_steps == 2
    assert o.louder(-99).level_steps == -MAX_STEPS
    assert o.louder(99).louder(-1).level_steps == MAX_STEPS - 1  # one "quieter" is heard


def test_styles_keep_alerts_above_narration():
    assert set(STYLES) == {"quiet", "normal"}
    for style in STYLES.values():
        assert style.alert.target_level_db > style.speech.target_level_db
        assert style.for_kind(SpeechKind.ALERT) is style.alert
        for kind in set(SpeechKind) - {SpeechKind.ALERT}:
            assert style.for_kind(kind) is style.speech
    quiet, normal = QUIET.speech.target_level_db, NORMAL.speech.target_level_db
    assert normal - quiet >= 10 and QUIET.alert.target_level_db - quiet >= 6


def test_configured_levels_are_checked():
    style = configured(QUIET, -30.0, -18.0, whisper=True)
    assert (style.speech.target_level_db, style.alert.target_level_db) == (-30.0, -18.0)
    assert style.speech.whisper and not style.alert.whisper
    assert style.speech.rate == QUIET.speech.rate
    with pytest.raises(ValueError, match=r"quiet_speech_db = -60 is outside"):
        configured(QUIET, -60.0, -20.0, whisper=False)
    with pytest.raises(ValueError, match="alerts are never quieter than narration"):
        configured(NORMAL, -20.0, -26.0, whisper=False)


def test_volume_is_counted_against_the_configured_volume():
    assert volume_offset_db(0.7, 0.7) == 0.0
    assert volume_offset_db(1.0, 0.7) == pytest.approx(3.10, abs=0.01)
    assert volume_offset_db(1.0, 0.25) == 6.0  # bounded above too
    assert volume_offset_db(0.01, 0.7) == -18.0  # bounded
    assert volume_offset_db(0.0, 0.7) == 0.0
