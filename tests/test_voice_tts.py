"""TTS backends and the fallback chain: real Piper and espeak-ng, edge-tts with no network."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from server.app import TTS_BACKENDS, build_tts
from server.config import Settings, VoiceSettings
from server.voice.tts.base import PcmChunk, TTSError, VoiceOptions, split_clauses
from server.voice.tts.edge import EdgeTTS, decode_mp3, edge_rate, edge_volume
from server.voice.tts.espeak import EspeakTTS
from server.voice.tts.fallback import FallbackTTS
from server.voice.tts.piper import PiperTTS
from server.voice.tts.styled import StyledTTS
from tests.audio_fixtures import needs_espeak
from tests.fakes import FakeTTS

CALM = VoiceOptions(language="en", rate=0.95, volume=0.7)


async def collect(backend, text: str, options: VoiceOptions = CALM) -> list[PcmChunk]:  # type: ignore[no-untyped-def]
    return [chunk async for chunk in backend.stream(text, options)]


# ------------------------------------------------------------------ single backends


async def test_a_blocking_backend_streams_clause_by_clause():
    """The first clause's audio is handed over before the second clause is synthesised."""
    backend = FakeTTS("local", blocking=True)
    text = "Careful, there is a step down ahead. The door is on your left, two metres away."
    seen_at_chunk: list[int] = []
    try:
        async for _chunk in backend.stream(text, CALM):
            seen_at_chunk.append(len(backend.calls))
    finally:
        backend.close()
    assert len(seen_at_chunk) >= 3
    assert seen_at_chunk == list(range(1, len(seen_at_chunk) + 1))
    assert backend.calls == split_clauses(text)


async def test_piper_speaks_each_clause(tts):
    text = "Careful, there is a step down ahead. The door is on your left, two metres away."
    chunks = await collect(tts, text)
    assert [c.text for c in chunks] == split_clauses(text)
    assert all(c.sample_rate == 22050 and c.pcm.dtype == np.int16 for c in chunks)
    assert all(np.abs(c.pcm).max() > 1000 for c in chunks)


@needs_espeak
async def test_espeak_speaks_and_follows_rate_and_volume():
    backend = EspeakTTS()
    try:
        normal = await collect(
            backend, "Turn left at the next corner.", VoiceOptions(rate=1.0, volume=1.0)
        )
        calm = await collect(
            backend, "Turn left at the next corner.", VoiceOptions(rate=0.7, volume=0.3)
        )
    finally:
        backend.close()
    assert normal[0].sample_rate == 22050
    # Slower speech is longer; lower volume is quieter.
    assert calm[0].pcm.size > normal[0].pcm.size * 1.2
    assert np.abs(calm[0].pcm).max() < np.abs(normal[0].pcm).max()
    assert backend.command(VoiceOptions(language="de"))[3] == "de"


def test_espeak_missing_binary_says_how_to_install():
    with pytest.raises(TTSError, match="apt-get install -y espeak-ng"):
        EspeakTTS("espeak-ng-not-here")


def test_edge_voice_rate_and_volume_strings():
    edge = EdgeTTS()
    try:
        assert edge.voice_for(VoiceOptions(language="en")) == "en-US-AriaNeural"
        assert edge.voice_for(VoiceOptions(language="de")) == "de-DE-KatjaNeural"
        assert edge.voice_for(VoiceOptions(language="en-GB")) == "en-GB-SoniaNeural"
        assert edge.voice_for(VoiceOptions(language="de-AT")) == "de-DE-KatjaNeural"
        # A voice meant for another backend (a Piper file) is ignored.
        assert edge.voice_for(VoiceOptions(voice="en_US-lessac-medium.onnx")) == "en-US-AriaNeural"
        assert edge.voice_for(VoiceOptions(voice="fr-FR-HenriNeural")) == "fr-FR-HenriNeural"
        with pytest.raises(TTSError, match="no default voice"):
            edge.voice_for(VoiceOptions(language="xx"))
    finally:
        edge.close()
    assert (edge_rate(0.95), edge_rate(1.0), edge_rate(1.2)) == ("-5%", "+0%", "+20%")
    assert (edge_volume(0.7), edge_volume(1.0)) == ("-30%", "+0%")


def test_edge_mp3_decodes_to_pcm():
    import av

    t = np.arange(24000) / 24000
    tone = (np.sin(2 * np.pi * 330 * t) * 8000).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=24000, layout="mono")
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 24000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    pcm = decode_mp3(buf.getvalue())
    assert pcm.dtype == np.int16
    assert abs(pcm.size - 24000) < 3000  # encoder padding
    assert np.abs(pcm).max() > 4000
    with pytest.raises(TTSError):
        decode_mp3(b"\x00not an mp3 at all" * 10)


async def test_edge_without_network_raises_tts_error_quickly():
    edge = EdgeTTS(connect_timeout_s=2)
    started = time.perf_counter()
    try:
        chunks = await collect(edge, "Hello there.")
    except TTSError as e:
        assert "edge-tts" in str(e)
        assert time.perf_counter() - started < 5
    else:  # pragma: no cover - only where the service is reachable
        assert chunks and chunks[0].sample_rate == 24000
    finally:
        edge.close()


@needs_espeak
def test_registry_names_the_three_backends():
    assert set(TTS_BACKENDS) == {"edge", "piper", "espeak"}
    backend = TTS_BACKENDS["espeak"](VoiceSettings(), None)  # None: its own thread
    assert backend.name == "espeak"
    backend.close()


@needs_espeak
def test_the_chain_is_rendered_in_the_configured_voice_style():
    quiet = build_tts(Settings().with_overrides("voice", tts=("espeak",)))
    assert isinstance(quiet, StyledTTS) and quiet.inner.name == "espeak"
    assert quiet.describe().endswith("quiet voice (speech -32 dBFS, alerts -20 dBFS)")
    quiet.close()
    normal = build_tts(
        Settings().with_overrides(
            "voice", tts=("espeak",), style="normal", normal_speech_db=-22.0, volume=0.5
        )
    )
    assert isinstance(normal, StyledTTS)
    assert normal.describe().endswith("normal voice (speech -22 dBFS, alerts -16 dBFS)")
    assert normal.reference_volume == 0.5
    assert normal.styles["quiet"].speech.target_level_db == -32.0  # a session may ask for it
    normal.close()
    with pytest.raises(ValueError, match=r"unknown \[voice\] style 'loud'"):
        build_tts(Settings().with_overrides("voice", tts=("espeak",), style="loud"))
    with pytest.raises(ValueError, match="quiet_alert_db = -6 is outside"):
        build_tts(Settings().with_overrides("voice", tts=("espeak",), quiet_alert_db=-6.0))


def test_a_missing_piper_voice_names_the_voice_section(tmp_path):
    with pytest.raises(TTSError, match=r"set \[voice\] piper_voice"):
        TTS_BACKENDS["piper"](VoiceSettings(piper_voice=str(tmp_path / "none.onnx")), None)


@needs_espeak
async def test_every_backend_says_which_clause_each_chunk_speaks(tts):
    text = "Careful, there is a step down ahead. The door is on your left."
    espeak = EspeakTTS()
    try:
        for backend in (tts, espeak, FakeTTS("fake")):
            chunks = await collect(backend, text)
            assert [c.text for c in chunks] == split_clauses(text), backend.name
    finally:
        espeak.close()


async def test_a_single_backend_has_nothing_to_announce():
    backend = FakeTTS("only")
    unsubscribe = backend.subscribe(lambda *a: pytest.fail("a single backend never switches"))
    assert len(await collect(backend, "Hello there.")) == 1
    unsubscribe()
    backend.close()


# ------------------------------------------------------------------ fallback chain


async def test_edge_offline_falls_back_to_piper_once():
    switches: list[tuple[str, str, str]] = []
    chain = FallbackTTS(
        [EdgeTTS(connect_timeout_s=2), PiperTTS()], on_switch=lambda *a: switches.append(a)
    )
    try:
        first = await collect(chain, "Turn left at the next corner.")
        if chain.active == "edge":  # pragma: no cover - only where the service is reachable
            pytest.skip("edge-tts is reachable here; the offline path cannot be shown")
        second = await collect(chain, "The crossing is clear.")
        assert chain.probing  # edge is retried in the background
    finally:
        chain.close()
    assert first and second
    assert {c.sample_rate for c in first + second} == {22050}  # Piper's voice
    assert len(switches) == 1
    assert switches[0][:2] == ("edge", "piper")
    assert chain.active == "piper"
    assert not chain.probing


async def test_no_switch_after_first_audio():
    """A backend that breaks mid-utterance ends that utterance; the voice never changes in it."""
    flaky = FakeTTS("flaky", fail_at_clause=1)
    spare = FakeTTS("spare")
    switches: list[tuple[str, str, str]] = []
    chain = FallbackTTS([flaky, spare], on_switch=lambda *a: switches.append(a))
    got: list[PcmChunk] = []
    with pytest.raises(TTSError, match="mid-utterance"):
        async for chunk in chain.stream("The first clause is here. The second one fails.", CALM):
            got.append(chunk)
    assert len(got) == 1
    assert spare.calls == []  # the rest of the utterance was not spoken in another voice
    # The next utterance starts with the spare backend.
    assert [s[:2] for s in switches] == [("flaky", "spare")]
    assert len(await collect(chain, "Next utterance.")) == 1
    assert spare.calls == ["Next utterance."]
    chain.close()


async def test_failure_before_audio_hands_the_same_utterance_over():
    broken = FakeTTS("a", broken=True)
    also_broken = FakeTTS("b", broken=True)
    works = FakeTTS("c")
    switches: list[tuple[str, str, str]] = []
    chain = FallbackTTS([broken, also_broken, works], on_switch=lambda *a: switches.append(a))
    chunks = await collect(chain, "Door ahead.")
    assert len(chunks) == 1 and works.calls == ["Door ahead."]
    assert chunks[0].text == "Door ahead."  # the chain passes each clause's text on
    assert [s[:2] for s in switches] == [("a", "b"), ("b", "c")]
    # All fail → one TTSError naming each.
    works.broken = True
    with pytest.raises(TTSError, match="every TTS backend failed"):
        await collect(chain, "Door ahead.")
    chain.close()


async def test_a_hung_backend_is_skipped_after_the_first_audio_deadline():
    chain = FallbackTTS([FakeTTS("stuck", hang=True), FakeTTS("ok")], first_audio_timeout_s=0.05)
    chunks = await collect(chain, "Step down.")
    assert chunks and chain.active == "ok"
    chain.close()


async def test_probe_switches_back_when_the_preferred_backend_recovers():
    preferred = FakeTTS("preferred", broken=True)
    spare = FakeTTS("spare")
    switches: list[tuple[str, str, str]] = []
    unsubscribe_calls: list[tuple[str, str, str]] = []
    chain = FallbackTTS(
        [preferred, spare], on_switch=lambda *a: switches.append(a), probe_interval_s=3600
    )
    unsubscribe = chain.subscribe(lambda *a: unsubscribe_calls.append(a))
    await collect(chain, "Hello.")
    assert chain.active == "spare"
    assert chain.probing  # the background probe waits
    assert await chain.probe_once() is False
    preferred.broken = False
    unsubscribe()
    assert await chain.probe_once() is True
    assert chain.active == "preferred"
    assert [s[:2] for s in switches] == [("preferred", "spare"), ("spare", "preferred")]
    assert switches[1][2] == "recovered"
    assert len(unsubscribe_calls) == 1
    chain.close()


async def test_aclose_stops_the_recovery_probe():
    chain = FallbackTTS(
        [FakeTTS("preferred", broken=True), FakeTTS("spare")], probe_interval_s=3600
    )
    await collect(chain, "Hello.")
    assert chain.probing
    await chain.aclose()
    assert not chain.probing
    assert chain.active == "spare"


async def test_close_cancels_the_probe_and_a_later_failure_starts_a_new_one():
    preferred = FakeTTS("preferred", broken=True)
    chain = FallbackTTS([preferred, FakeTTS("spare")], probe_interval_s=3600)
    await collect(chain, "Hello.")
    chain.close()
    assert not chain.probing
    await chain.probe_once()  # still broken
    assert chain.active == "spare" and not chain.probing
    await chain.aclose()


async def test_a_steady_piper_renders_the_same_words_the_same_each_time():
    steady = PiperTTS(steady=True)
    try:
        runs = [
            np.concatenate(
                [c.pcm async for c in steady.stream("Door on your left.", VoiceOptions())]
            )
            for _ in range(2)
        ]
    finally:
        steady.close()
    assert runs[0].size > 0 and np.array_equal(runs[0], runs[1])
