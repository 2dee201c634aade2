"""A streamed reply is judged a sentence at a time (engine/handoff.py), on the session
harness: a hazard named in the second clause of its sentence is still an alert, and
an urgent sentence after a calm one is an alert of its own — its cue first, cutting
the calm start — instead of streaming on as narration."""

from __future__ import annotations

from server.events import (
    AudioEncoding,
    AudioFormat,
    Cue,
    CueKind,
    Mode,
    SessionStart,
    Speech,
    SpeechKind,
    StopSpeaking,
)
from tests.fakes import StreamingRuntime
from tests.session_harness import SessionRun, run_session


def _utterances(run: SessionRun) -> list[tuple[str, SpeechKind, str]]:
    """(id, kind, whole text) per utterance: a streamed one sends a caption per part."""
    out: dict[str, tuple[SpeechKind, list[str]]] = {}
    for s in run.of(Speech):
        out.setdefault(s.utterance_id, (s.kind, []))[1].append(s.text)
    return [(u, kind, " ".join(parts)) for u, (kind, parts) in out.items()]


def _run(clauses: list[str], mode: Mode, delay: float = 0.05) -> SessionRun:
    start = SessionStart(mode=mode, audio_out=AudioFormat(AudioEncoding.PCM16, 16000))
    return run_session([], StreamingRuntime(1.0, clauses, clause_delay_s=delay), until=8,
                       start=start)  # fmt: skip


def test_a_hazard_in_the_second_clause_of_the_first_sentence_is_an_alert():
    for mode in (Mode.GENERAL, Mode.BLIND):
        run = _run(["On your right,", "a cyclist is coming straight at you."], mode)
        [(_, kind, text)] = _utterances(run)
        assert kind is SpeechKind.ALERT, mode
        assert text == "On your right, a cyclist is coming straight at you."
        [cue] = run.of(Cue)
        assert cue.kind is CueKind.HAZARD and run.at(Cue)[0] <= run.at(Speech)[0]


def test_an_urgent_later_sentence_is_an_alert_of_its_own_that_cuts_the_calm_start():
    clauses = ["The street is quiet", "and the shops are open.", "A car is coming",
               "from your left, fast."]  # fmt: skip
    run = _run(clauses, Mode.GENERAL, delay=0.4)
    (calm, calm_kind, calm_text), (alert, alert_kind, alert_text) = _utterances(run)
    assert calm_kind is SpeechKind.NARRATION and alert_kind is SpeechKind.ALERT
    assert calm_text == "The street is quiet and the shops are open."
    assert alert_text == "A car is coming from your left, fast."
    assert [c.kind for c in run.of(Cue)] == [CueKind.HAZARD]
    # The hazard cue before the alert's caption; the narration, still playing, is cut.
    alert_at = next(t for t, e in run.events if isinstance(e, Speech) and e.utterance_id == alert)
    assert run.at(Cue)[0] <= alert_at
    assert any(calm in e.utterance_ids for e in run.of(StopSpeaking))


def test_a_calm_reply_streams_as_one_utterance():
    run = _run(["The street is quiet,", "the shops are open.", "It is warm today."], Mode.BLIND)
    [(_, kind, text)] = _utterances(run)
    assert kind is SpeechKind.NARRATION and not run.of(Cue)
    assert text == "The street is quiet, the shops are open. It is warm today."
