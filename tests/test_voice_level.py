"""The level by voice ("louder", "quieter") and a voice per mode, in a real session.

Speech is rendered by the real styled chain (``StyledTTS``: compressor, make-up gain,
limiter) over a test tone, and measured on the PCM16 the glasses get (P.56).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from server.events import (
    AudioEncoding,
    AudioFormat,
    AudioOut,
    Mode,
    SessionStart,
    SetMode,
    Speech,
    SpeechKind,
    TextIn,
)
from server.modes import profile
from server.modes.loader import load
from server.modes.schema import ModeDataError
from server.session.registry import SessionRegistry
from server.session.voice import SessionVoice
from server.voice.loudness import active_level
from server.voice.profile import MAX_LEVEL_DB, MIN_LEVEL_DB, NORMAL, QUIET, STEP_DB, STYLES
from server.voice.tts.base import VoiceOptions
from server.voice.tts.styled import StyledTTS
from tests.fakes import FakeTTS, ScriptedLink
from tests.harness import scripted
from tests.session_harness import SessionRun, make_services, run_session, run_virtual

PCM = AudioFormat(AudioEncoding.PCM16, 16000)
GENERAL = SessionStart(mode=Mode.GENERAL, audio_out=PCM)
BLIND = SessionStart(mode=Mode.BLIND, audio_out=PCM)
ALERT = "</response> Car on your left, close."
TOLERANCE_DB = 1.0  # a 0.1 s tone reads a little off on P.56 (test_voice_profile.py)


def styled(style=QUIET) -> StyledTTS:  # type: ignore[no-untyped-def]
    return StyledTTS(FakeTTS("tone"), style, styles=STYLES)


def levels(run: SessionRun) -> list[tuple[str, SpeechKind, float]]:
    """(text, kind, P.56 level in dBFS) of each utterance, in the order it was said."""
    audio: dict[str, list[bytes]] = defaultdict(list)
    for packet in run.of(AudioOut):
        audio[packet.utterance_id].append(packet.data)
    out = []
    for speech in run.of(Speech):
        pcm = np.frombuffer(b"".join(audio[speech.utterance_id]), dtype="<i2")
        out.append((speech.text, speech.kind, active_level(pcm, PCM.sample_rate_hz).level_db))
    return out


# ------------------------------------------------------------------ by voice, in a session


def test_louder_is_said_one_step_louder_and_kept():
    run = run_session(
        [(0.5, TextIn("Louder.")), (2.0, TextIn("What's around me?"))],
        scripted(),
        until=5,
        start=GENERAL,
        tts=styled(),
    )
    said = levels(run)
    assert [(t, k) for t, k, _ in said] == [
        ("Louder.", SpeechKind.SYSTEM),
        ("Nothing stands out around you right now.", SpeechKind.ANSWER),
    ]
    quiet_speech = QUIET.speech.target_level_db
    for _, _, level in said:  # the acknowledgement already at the new level, and it stays
        assert level == pytest.approx(quiet_speech + STEP_DB, abs=TOLERANCE_DB)


def test_quieter_moves_narration_and_alerts_together():
    run = run_session(
        [(0.5, TextIn("quieter")), (1.0, TextIn("softer please"))],
        scripted((2.0, ALERT)),
        until=5,
        start=BLIND,
        tts=styled(NORMAL),  # blind mode speaks quiet, whatever the server's style
    )
    (first, _, l1), (second, _, l2), (_, kind, la) = levels(run)
    assert (first, second, kind) == ("Quieter.", "Quieter.", SpeechKind.ALERT)
    assert l1 == pytest.approx(QUIET.speech.target_level_db - STEP_DB, abs=TOLERANCE_DB)
    assert l2 == pytest.approx(QUIET.speech.target_level_db - 2 * STEP_DB, abs=TOLERANCE_DB)
    gap = QUIET.alert.target_level_db - QUIET.speech.target_level_db
    assert la - l2 == pytest.approx(gap, abs=TOLERANCE_DB)  # the alerts' gap is kept


def test_at_the_bound_the_level_stays_and_says_so():
    # Quiet alerts sit at -20 dBFS: two steps up reach -14, a third would pass -12.
    script = [(0.5 + i, TextIn("louder")) for i in range(3)]
    run = run_session(script, scripted(), until=6, start=GENERAL, tts=styled())
    said = levels(run)
    assert [t for t, _, _ in said] == ["Louder.", "Louder.", "This is as loud as I go."]
    assert said[2][2] == pytest.approx(said[1][2], abs=0.5)
    assert run.session is not None and run.session.parts.speaker.voice.level_steps == 2


def test_leiser_in_a_session_is_one_step_down():
    start = replace(GENERAL, language="de")
    run = run_session([(0.5, TextIn("Leiser."))], scripted(), until=3, start=start, tts=styled())
    assert [(t, k) for t, k, _ in levels(run)] == [("Leiser.", SpeechKind.SYSTEM)]
    # Quiet speech at -32 dBFS goes down to -44 in 3 dB steps: the first is taken.
    assert run.session is not None and run.session.parts.speaker.voice.level_steps == -1


def test_a_mode_change_brings_its_voice_and_keeps_the_steps():
    run = run_session(
        [(0.5, TextIn("louder")), (1.5, SetMode(Mode.BLIND))],
        scripted(),
        until=4,
        start=GENERAL,
        tts=styled(NORMAL),  # the server speaks normally; blind mode speaks quiet
    )
    (louder, _, l1), (announce, _, l2) = levels(run)
    assert (louder, announce) == ("Louder.", "Blind mode.")
    assert l1 == pytest.approx(NORMAL.speech.target_level_db + STEP_DB, abs=TOLERANCE_DB)
    assert l2 == pytest.approx(QUIET.speech.target_level_db + STEP_DB, abs=TOLERANCE_DB)


def test_the_level_survives_a_resume():
    async def main() -> None:
        services = make_services(scripted(), tts=styled())
        registry = SessionRegistry(services)
        first = ScriptedLink([(0.5, TextIn("louder"))], end_at=2.0, drop=True)
        await registry.connect(first, GENERAL, "device-1")
        (session,) = registry.sessions
        await asyncio.sleep(1.0)
        again = replace(GENERAL, resume_token=session.resume_token)
        second = ScriptedLink([(3.5, TextIn("What's around me?"))], end_at=6.0)  # absolute
        await registry.connect(second, again, "device-1")
        await registry.aclose()
        services.executors.shutdown()
        assert session.parts.speaker.voice.level_steps == 1
        answer = [e for _, e in second.sent if isinstance(e, Speech)]
        audio = b"".join(e.data for _, e in second.sent if isinstance(e, AudioOut))
        level = active_level(np.frombuffer(audio, dtype="<i2"), PCM.sample_rate_hz).level_db
        assert [s.kind for s in answer] == [SpeechKind.ANSWER]
        assert level == pytest.approx(QUIET.speech.target_level_db + STEP_DB, abs=TOLERANCE_DB)

    run_virtual(main())


# ------------------------------------------------------------------ the parts


def test_a_style_moves_as_far_as_both_levels_stay_in_bounds():
    assert QUIET.step_range() == (-4, 2)  # -32/-20: down to -44, up until alerts pass -12
    assert NORMAL.step_range() == (-4, 1)
    up = QUIET.moved(5)  # bounded to +2
    assert (up.speech.target_level_db, up.alert.target_level_db) == (-26.0, -14.0)
    down = QUIET.moved(-9)
    assert down.speech.target_level_db == MIN_LEVEL_DB
    assert down.alert.target_level_db - down.speech.target_level_db == 12.0
    assert QUIET.moved(0) is QUIET
    assert (
        NORMAL.moved(9).alert.target_level_db
        == NORMAL.alert.target_level_db + STEP_DB
        <= MAX_LEVEL_DB
    )


def test_session_voice_keeps_session_mode_and_steps_apart():
    voice = SessionVoice(styled(NORMAL), VoiceOptions(rate=0.95, volume=0.7))
    assert voice.change_level(1) == 1 and voice.change_level(1) == 0  # normal: one step up
    voice.use_mode("quiet", 0.9)
    asked = voice.for_kind(SpeechKind.ALERT)
    assert (asked.style, asked.rate, asked.kind) == (
        "quiet",
        pytest.approx(0.855),
        SpeechKind.ALERT,
    )
    assert voice.change_level(1) == 1  # quiet has two steps of room
    voice.use_mode("normal")  # back to a style with one: the second step is dropped
    assert voice.level_steps == 1
    voice.set_volume(3.0)
    assert voice.options.volume == 1.0


def test_a_bare_backend_sets_no_level():
    voice = SessionVoice(FakeTTS("bare"), VoiceOptions())
    assert voice.change_level(1) == 0 and voice.change_level(-1) == 0


def test_the_blind_mode_speaks_quiet():
    blind = profile(Mode.BLIND)
    assert (blind.voice_style, blind.voice_rate) == ("quiet", 1.0)
    assert profile(Mode.GENERAL).voice_style == ""  # the server's [voice] style


def test_a_modes_voice_is_checked(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[modes.general]\nvoice = { style = "normal", rate = 0.9 }\n')
    general = load(good).modes["general"]
    assert (general.voice_style, general.voice_rate) == ("normal", 0.9)
    for bad, says in (
        ('voice = { style = "loud" }', '"quiet" or "normal"'),
        ("voice = { rate = 3.0 }", "between 0.5 and 2.0"),
        ('voice = { pitch = "high" }', "unknown key 'pitch'"),
        ('voice = "quiet"', "expected a table"),
    ):
        path = tmp_path / "bad.toml"
        path.write_text(f"[modes.general]\n{bad}\n")
        with pytest.raises(ModeDataError, match="voice") as e:
            load(path)
        assert says in str(e.value)


def test_level_lines_are_checked(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[commands.en]\nlevel_said = { louder = "Up." }\n')
    with pytest.raises(ModeDataError, match="level_said"):
        load(path)
