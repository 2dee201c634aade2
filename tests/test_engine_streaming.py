"""A streamed reply that turns out to be a delegation, on the session harness.

The runtime streams a reply clause by clause before it knows what the reply is; the
clause before a ``</delegation>`` marker (the note's last) it holds back. What
streamed was spoken as a reply; from the marker on, the note is a delegation note
(its kind, its thinking cue), ends the same reply in order, is cut with it, and the
answer never comes before it.
"""

from __future__ import annotations

from server.agents.manager import DelegationManager
from server.codes import Code
from server.events import (
    AudioEncoding,
    AudioFormat,
    AudioOut,
    Cue,
    CueKind,
    Mode,
    Notice,
    SessionStart,
    Speech,
    SpeechKind,
    StopSpeaking,
    TextIn,
    TickTrace,
)
from tests.fakes import SleepyAgent, StreamingRuntime
from tests.harness import scripted
from tests.session_harness import SessionRun, run_session, run_virtual

QUESTION = "Is the pharmacy open now?"
NOTE = ["Good question,", "let me check that for you."]


def _start(mode: Mode = Mode.GENERAL) -> SessionStart:
    return SessionStart(mode=mode, audio_out=AudioFormat(AudioEncoding.PCM16, 16000))


def _speech_and_cues(run: SessionRun) -> list[str]:
    return [type(e).__name__ for _, e in run.events if isinstance(e, Speech | Cue | StopSpeaking)]


def _last_audio(run: SessionRun, utterance_id: str) -> float:
    return max(
        t for t, e in run.events if isinstance(e, AudioOut) and e.utterance_id == utterance_id
    )


def test_a_streamed_note_is_a_delegation_note_from_the_marker_on():
    manager = DelegationManager(SleepyAgent(3.0, "It opens at nine."))
    runtime = StreamingRuntime(1.0, NOTE, question=QUESTION)
    run = run_session(
        [(0.5, TextIn("is the pharmacy open"))], runtime, until=8, delegations=manager
    )
    run_virtual(manager.aclose())
    head, note, result = run.of(Speech)
    assert [(s.text, s.kind) for s in (head, note, result)] == [
        ("Good question,", SpeechKind.ANSWER),  # spoken before the marker was seen
        ("let me check that for you.", SpeechKind.DELEGATION_NOTE),
        ("It opens at nine.", SpeechKind.DELEGATION_RESULT),
    ]
    # The note's thinking cue comes with the note itself, right before its caption,
    # and the note plays after the start of its reply, not over it.
    assert _speech_and_cues(run) == ["Speech", "Cue", "Speech", "Cue", "Speech"]
    assert [c.kind for c in run.of(Cue)] == [CueKind.THINKING, CueKind.DONE]
    assert note.utterance_id != head.utterance_id
    assert run.at(Speech)[1] >= _last_audio(run, head.utterance_id)


def test_an_answer_faster_than_the_note_still_comes_after_it():
    # The agent answers while the reply's start is still playing: the answer outranks
    # a note, but it does not get to say "nine" before "let me check".
    manager = DelegationManager(SleepyAgent(0.1, "It opens at nine."))
    run = run_session(
        [], StreamingRuntime(1.0, NOTE, question=QUESTION), until=8, delegations=manager
    )
    run_virtual(manager.aclose())
    speech = run.of(Speech)
    assert [s.kind for s in speech] == [
        SpeechKind.NARRATION,
        SpeechKind.DELEGATION_NOTE,
        SpeechKind.DELEGATION_RESULT,
    ]
    assert run.at(Speech)[2] >= _last_audio(run, speech[1].utterance_id)


def test_an_alert_cuts_a_streamed_note_whole():
    manager = DelegationManager(SleepyAgent(5.0))
    start = ["A long hallway stretches ahead with paintings and a wide carpet,"]
    runtime = StreamingRuntime(1.0, [*start, "let me look that up."], question=QUESTION).then(
        2.0, ["Car on your left."]
    )
    run = run_session([], runtime, until=10, start=_start(Mode.BLIND), delegations=manager)
    run_virtual(manager.aclose())
    kinds = [s.kind for s in run.of(Speech)]
    assert kinds == [SpeechKind.NARRATION, SpeechKind.ALERT, SpeechKind.DELEGATION_RESULT]
    head = run.of(Speech)[0]
    assert [(s.utterance_ids, s.reason) for s in run.of(StopSpeaking)] == [
        ((head.utterance_id,), "preempted")
    ]
    # The model's memory is trimmed once, at the cut: the note's rest was never heard.
    [(said, heard)] = runtime.sessions[0].heard_log
    assert said == start[0] and start[0].startswith(heard) and heard != said


def test_with_no_agent_a_streamed_note_ends_in_an_apology_not_a_promise():
    run = run_session([], StreamingRuntime(1.0, NOTE, question=QUESTION), until=6)
    head, apology = run.of(Speech)
    assert (head.text, head.kind) == ("Good question,", SpeechKind.NARRATION)
    assert apology.kind is SpeechKind.SYSTEM and "sorry" in apology.text.lower()
    assert [n.code for n in run.of(Notice)] == [Code.AGENT_UNCONFIGURED]


def test_the_trace_names_the_runtimes_split_as_parts_of_model():
    runtime = scripted((1.0, "</response> Door on your left."))
    start = SessionStart(audio_out=AudioFormat(AudioEncoding.PCM16, 16000), want_trace=True)
    run = run_session([], runtime, until=3, start=start)
    stages = [[s.stage for s in t.timings] for t in run.of(TickTrace)]
    assert stages and all("model" in names and "model.decide" in names for names in stages)
    # Nothing of the runtime's own names is left bare to be added to "model" again.
    assert not {n for names in stages for n in names} & {"decide", "reply"}
