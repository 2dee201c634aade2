"""Session behaviour on virtual time: client events in, the sequence of server events out.

Each test runs a whole session (reader, ticker, speaker, writer, delegations) in
process, with the scripted model and a TTS that makes silence, in well under a
second of real time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import pytest

from server.agents.manager import DelegationManager
from server.engine.policy import Utterance
from server.events import (
    AudioEncoding,
    AudioFormat,
    AudioIn,
    AudioOut,
    Cue,
    CueKind,
    FrameIn,
    Mode,
    SessionStart,
    Speech,
    SpeechKind,
    StillRequest,
    StopSpeaking,
    TextIn,
    TickTrace,
    VideoEncoding,
)
from server.session.outbox import Outbox
from server.session.speaker import PlaybackResult, PlayoutObserver, Speaker, SpeechHandle
from server.voice.tts.base import VoiceOptions
from tests.fakes import InstantTTS, ScriptedListener, SleepyAgent
from tests.harness import jpeg, scripted
from tests.session_harness import run_session, run_virtual

T = TypeVar("T")
PCM_OUT = AudioFormat(AudioEncoding.PCM16, 16000)
NARRATION = "</response> A long hallway stretches ahead with paintings and a wide carpet."
ALERT = "</response> Car on your left."


def _start(mode: Mode = Mode.GENERAL) -> SessionStart:
    return SessionStart(mode=mode, audio_out=PCM_OUT)


def test_a_reply_is_a_caption_then_audio_then_the_end():
    run = run_session([], scripted((1.0, "</response> Door on your left.")), until=4)
    assert run.types() == ["SessionReady", "Speech"]
    audio = run.of(AudioOut)
    assert (
        audio
        and audio[-1].last
        and all(a.utterance_id == run.of(Speech)[0].utterance_id for a in audio)
    )
    # Paced ahead of playback, not sent in a burst: the last packet leaves near the end.
    assert run.at(AudioOut)[-1] - run.at(AudioOut)[0] > 0.5


def test_an_alert_preempts_narration_with_its_cue_first():
    runtime = scripted((1.0, NARRATION), (2.0, ALERT))
    run = run_session([], runtime, until=6, start=_start(Mode.BLIND))
    assert run.types() == ["SessionReady", "Speech", "StopSpeaking", "Cue", "Speech"]
    narration, alert = run.of(Speech)
    assert narration.kind is SpeechKind.NARRATION and alert.kind is SpeechKind.ALERT
    stop = run.of(StopSpeaking)[0]
    assert stop.utterance_ids == (narration.utterance_id,) and stop.reason == "preempted"
    assert run.of(Cue)[0].kind is CueKind.HAZARD
    # Nothing of the cut narration is sent after the cut.
    cut_at = run.at(StopSpeaking)[0]
    assert not [
        t
        for t, e in run.events
        if isinstance(e, AudioOut) and e.utterance_id == narration.utterance_id and t > cut_at
    ]


def test_barge_in_cuts_speech_and_the_echo_guard_hears_murmur():
    made: list[ScriptedListener] = []
    runtime = scripted((1.0, NARRATION))
    run = run_session(
        [(2.0, AudioIn(1, 2000, b"speech"))],
        runtime,
        until=5,
        listener_factory=ScriptedListener.factory(made),
    )
    assert run.types() == ["SessionReady", "Speech", "StopSpeaking"]
    assert run.of(StopSpeaking)[0].reason == "barge_in"
    assert 2.0 <= run.at(StopSpeaking)[0] < 2.01  # at once, not at the next tick
    listener = made[0]
    assert listener.heard_murmur == [run.of(Speech)[0].text]
    assert listener.stopped == 1 and listener.closed


class PlayoutListener(ScriptedListener):
    """A scripted listener that also hears Murmur's audio, as the real one's echo
    guard does: (virtual time handed over, seconds of audio, plays in seconds)."""

    def __init__(self, emit: Any) -> None:
        super().__init__(emit)
        self.audio: list[tuple[float, float, float]] = []

    def speech_audio(self, pcm: np.ndarray, sample_rate: int, delay_s: float) -> None:
        self.audio.append((asyncio.get_running_loop().time(), pcm.size / sample_rate, delay_s))


def test_the_echo_guard_hears_each_chunk_of_audio_with_when_it_plays():
    made: list[ScriptedListener] = []
    reply = "</response> Door on your left, stairs ahead, and a bench on the right."
    run = run_session(
        [], scripted((1.0, reply)), until=6, listener_factory=PlayoutListener.factory(made)
    )
    [listener] = made
    assert isinstance(listener, PlayoutObserver) and len(listener.audio) >= 2
    # Chunk after chunk: each plays when the one before it ends, the first at once.
    plays = [(t + delay, secs) for t, secs, delay in listener.audio]
    assert plays[0][0] == pytest.approx(run.at(AudioOut)[0], abs=0.01)
    for (at, secs), (next_at, _) in itertools.pairwise(plays):
        assert next_at == pytest.approx(at + secs, abs=1e-6)
    assert sum(secs for _, secs in plays) == pytest.approx(len(run.of(AudioOut)) * 0.02, abs=0.05)


def test_a_delegated_result_waits_for_the_alert_it_arrives_during():
    manager = DelegationManager(SleepyAgent(1.3, urgent=True))
    runtime = scripted(
        (1.0, "</response> Let me look. </delegation> What is on the shelf?"),
        (2.0, ALERT),
    )
    run = run_session([], runtime, until=8, start=_start(Mode.BLIND), delegations=manager)
    speech = run.of(Speech)
    kinds = [s.kind for s in speech]
    assert kinds == [SpeechKind.DELEGATION_NOTE, SpeechKind.ALERT, SpeechKind.DELEGATION_RESULT]
    alert, result = speech[1], speech[2]
    # The result arrived at ~2.3 s while the alert played; the alert was not cut.
    assert not [s for s in run.of(StopSpeaking) if alert.utterance_id in s.utterance_ids]
    alert_end = max(
        t for t, e in run.events if isinstance(e, AudioOut) and e.utterance_id == alert.utterance_id
    )
    assert run.at(Speech)[2] >= alert_end
    assert result.text == "It is a tin of tomatoes."
    run_virtual(manager.aclose())


def test_a_mode_change_is_announced_and_changes_the_rules():
    runtime = scripted((3.0, ALERT))
    run = run_session([(1.2, TextIn("switch to blind mode"))], runtime, until=6)
    assert run.types() == ["SessionReady", "Speech", "Cue", "Speech"]
    announce, alert = run.of(Speech)
    assert announce.text == "Blind mode." and announce.kind is SpeechKind.SYSTEM
    assert alert.kind is SpeechKind.ALERT  # blind rules: a hazard cue first
    assert run.session is not None and run.session.parts.engine.profile.mode is Mode.BLIND


def test_the_harness_runs_on_virtual_time():
    async def sleepy() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(3600)
        return loop.time()

    assert run_virtual(sleepy()) == 3600


def test_a_reading_question_in_blind_mode_asks_the_glasses_for_a_still():
    run = run_session(
        [(0.5, TextIn("Read that sign for me"))], scripted(), until=2, start=_start(Mode.BLIND)
    )
    assert run.types() == ["SessionReady", "StillRequest"]
    assert 0.5 <= run.at(StillRequest)[0] < 0.51


def test_a_deadlocked_session_fails_the_test_instead_of_hanging():
    async def stuck() -> None:
        await asyncio.Event().wait()

    with pytest.raises(RuntimeError, match="deadlock"):
        run_virtual(stuck())


def test_only_the_models_own_words_are_trimmed_when_cut():
    # A reply cut by "quiet" is trimmed in the model's memory; a cut mode announcement
    # is not something the model said, so its memory is left alone.
    runtime = scripted((1.0, NARRATION))
    run_session(
        [(1.5, TextIn("quiet")), (3.0, TextIn("switch to blind mode")), (3.02, TextIn("quiet"))],
        runtime,
        until=5,
    )
    cut = runtime.sessions[0].heard_log
    assert [text for text, _ in cut] == [NARRATION.removeprefix("</response> ")]


async def _speaking(
    scenario: Callable[[Speaker], Awaitable[T]],
) -> tuple[list[object], T, Speaker]:
    """A speaker of its own on the loop's clock: what ``scenario`` returns, then
    everything it sent once it has finished what was queued."""
    loop = asyncio.get_running_loop()
    out = Outbox(1000)
    with ThreadPoolExecutor(1) as opus:
        speaker = Speaker(InstantTTS(), VoiceOptions(), PCM_OUT, out, opus=opus, clock=loop.time)
        task = asyncio.create_task(speaker.run())
        got = await scenario(speaker)
        speaker.close()
        await task
    events = []
    while len(out):
        events.append(await out.get())
    return events, got, speaker


def test_a_handle_is_read_only_and_interrupt_cuts_just_its_utterance():
    async def scenario(speaker: Speaker) -> tuple[list[PlaybackResult], SpeechHandle]:
        now = asyncio.get_running_loop().time()
        first = speaker.say(Utterance(NARRATION[12:], SpeechKind.NARRATION, 1, now))
        second = speaker.say(Utterance("Door on your left.", SpeechKind.ANSWER, 1, now))
        await asyncio.sleep(1.0)
        assert speaker.speaking is first
        first.interrupt("client")
        first.interrupt("client")  # once: a second cut does nothing
        return [await first.result(), await second.result()], first

    events, ((cut, played), first), _ = run_virtual(_speaking(scenario))
    assert cut.interrupted and cut.reason == "client"
    assert cut.heard and cut.text.startswith(cut.heard) and cut.heard != cut.text
    assert not played.interrupted and played.heard == "Door on your left."
    assert [e.utterance_ids for e in events if isinstance(e, StopSpeaking)] == [(first.id,)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.id = "mine"  # type: ignore[misc]


def test_periodic_frames_are_each_decided_on_in_their_own_period():
    """A camera at exactly the tick rate: each tick waits for its own period's frame
    instead of taking the one that started the clock (which would leave the model a
    whole period behind the world, tick after tick)."""
    frames = [(float(n), FrameIn(n + 1, n * 1000, VideoEncoding.JPEG, jpeg())) for n in range(6)]
    start = SessionStart(audio_out=PCM_OUT, want_trace=True)
    run = run_session(frames, scripted(), until=6, start=start)
    ages = {t.tick_s: t.frame_age_ms for t in run.of(TickTrace)}
    assert set(ages) >= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert all(0 <= ages[s] < 500 for s in (1.0, 2.0, 3.0, 4.0, 5.0)), ages


@pytest.mark.parametrize(("late_s", "cut"), [(0.1, True), (1.0, False)])
def test_an_alert_cuts_the_end_of_narration_still_playing_on_the_glasses(late_s, cut):
    """Audio goes out ``lead_s`` ahead of playback: when the last packet of a narration
    has left, its end still plays. An alert then stops it too, and only then."""

    async def scenario(speaker: Speaker) -> SpeechHandle:
        loop = asyncio.get_running_loop()
        said = speaker.say(Utterance("Door on your left.", SpeechKind.NARRATION, 1, loop.time()))
        await said.result()  # sent whole: its last packet has left
        await asyncio.sleep(late_s)
        speaker.say(Utterance("Car on your left.", SpeechKind.ALERT, 3, loop.time(), preempt=True))
        return said

    events, said, speaker = run_virtual(_speaking(scenario))
    stops = [e for e in events if isinstance(e, StopSpeaking)]
    if cut:
        assert [(s.utterance_ids, s.reason) for s in stops] == [((said.id,), "preempted")]
        assert speaker.dropped["preempted/narration"] == 1
    else:  # it had played out: nothing to stop
        assert stops == [] and not speaker.dropped
