"""Alerts are never lost (issue 11, deliverable 1), on the session harness.

An alert cuts lower-priority speech in every mode (a delegated answer only where the
mode says so: blind), waits behind another alert for as long as that takes, and is
dropped only when a newer alert about the same thing takes its place. Its hazard cue
always comes before its first caption and audio. Whatever does not play out is
counted by why and what, in the trace and in the session's stats.
"""

from __future__ import annotations

import itertools

import pytest

from mobile_bridge.sinks.console import ConsoleLog
from server.agents.manager import DelegationManager
from server.engine.policy import PRIORITY, GuidancePolicy, Utterance
from server.events import (
    AudioEncoding,
    AudioFormat,
    AudioOut,
    Cue,
    CueKind,
    Mode,
    SessionStart,
    Speech,
    SpeechKind,
    StopSpeaking,
    TextIn,
    TickTrace,
)
from server.modes import profile
from server.session.speech_queue import SpeechQueue
from server.transport.convert import to_server
from tests.fakes import InstantTTS, SleepyAgent, StreamingRuntime
from tests.harness import scripted
from tests.session_harness import SessionRun, run_session, run_virtual

MODES = list(Mode)
NARRATION = "</response> A long hallway stretches ahead with paintings and a wide carpet."
CAR = "Stop! Car coming at you from your left."
CYCLIST = "Watch out, a cyclist is coming fast toward you on your left."  # 3 s
STEPS = "Stop, steps down right in front of you."
CAR_FAR = "Careful, a car is coming from your right, five metres away."
CAR_NEAR = "Careful, a car is coming from your right, one metre away."
ANSWER = (
    "The shelf holds tins of tomatoes, beans and chickpeas, the tomatoes on the left "
    "at ninety cents each."
)  # 17 words: ~4 s of speech


class _SlowTTS(InstantTTS):
    SECONDS_PER_WORD = 0.5


def _start(mode: Mode) -> SessionStart:
    return SessionStart(
        mode=mode, audio_out=AudioFormat(AudioEncoding.PCM16, 16000), want_trace=True
    )


def _said(text: str) -> str:
    return f"</response> {text}"


def _alerts(run: SessionRun) -> list[Speech]:
    return [s for s in run.of(Speech) if s.kind is SpeechKind.ALERT]


def assert_cues_first(run: SessionRun) -> None:
    """Every alert: nothing of it (caption or audio) before its hazard cue, and no
    other utterance's caption between that cue and its first caption."""
    events = [e for _, e in run.events]
    for alert in {s.utterance_id for s in _alerts(run)}:
        first = next(
            i
            for i, e in enumerate(events)
            if isinstance(e, Speech | AudioOut) and e.utterance_id == alert
        )
        assert isinstance(events[first], Speech), "audio before the alert's caption"
        cue = max(i for i, e in enumerate(events[:first]) if isinstance(e, Cue))
        assert events[cue].kind is CueKind.HAZARD
        assert not [e for e in events[cue:first] if isinstance(e, Speech)]


def assert_none_repeated(run: SessionRun) -> None:
    texts = [(s.utterance_id, s.text) for s in _alerts(run)]
    assert len(texts) == len(set(texts)), texts


def _first_caption(run: SessionRun, utterance_id: str) -> float:
    return min(t for t, e in run.events if isinstance(e, Speech) and e.utterance_id == utterance_id)


def _last_audio(run: SessionRun, utterance_id: str) -> float:
    return max(
        t for t, e in run.events if isinstance(e, AudioOut) and e.utterance_id == utterance_id
    )


def _dropped(run: SessionRun) -> dict[str, int]:
    """The newest trace's counts of speech that did not play out."""
    traces = run.of(TickTrace)
    return dict(traces[-1].dropped) if traces else {}


# --------------------------------------------------------------- narration, every mode


@pytest.mark.parametrize("mode", MODES)
def test_an_alert_cuts_narration_in_every_mode_with_its_cue_first(mode):
    run = run_session(
        [], scripted((1.0, NARRATION), (2.0, _said(CAR))), until=6, start=_start(mode)
    )
    narration, alert = run.of(Speech)
    assert (narration.kind, alert.kind, alert.text) == (
        SpeechKind.NARRATION,
        SpeechKind.ALERT,
        CAR,
    )
    [stop] = run.of(StopSpeaking)
    assert stop.utterance_ids == (narration.utterance_id,) and stop.reason == "preempted"
    # At once: the cut and the alert's cue leave together, at the tick that decided it.
    assert 2.0 <= run.at(StopSpeaking)[0] == run.at(Cue)[0] < 2.5
    assert run.types(without=("AudioOut", "TickTrace")) == [
        "SessionReady",
        "Speech",
        "StopSpeaking",
        "Cue",
        "Speech",
    ]
    assert_cues_first(run)
    assert _dropped(run) == {"preempted/narration": 1}


@pytest.mark.parametrize("mode", [Mode.GENERAL, Mode.BLIND])
def test_a_streamed_alert_that_cuts_narration_has_its_cue_before_its_first_clause(mode):
    runtime = StreamingRuntime(1.0, ["A long hallway stretches ahead,", "with paintings."]).then(
        2.0, ["Stop! Car coming at you from your left,", "very fast."]
    )
    run = run_session([], runtime, until=8, start=_start(mode))
    alert = _alerts(run)
    # Judged on its whole first sentence (engine/streamed.py), then spoken as one alert.
    assert [s.text for s in alert] == ["Stop! Car coming at you from your left, very fast."]
    assert [s.reason for s in run.of(StopSpeaking)] == ["preempted"]
    assert_cues_first(run)


# --------------------------------------------------------------- alerts behind alerts


@pytest.mark.parametrize("mode", MODES)
def test_alerts_queued_behind_a_long_alert_all_play(mode):
    # Slowly spoken, the cyclist warning plays 6 s; the car waits behind it, the steps
    # behind both. They used to be dropped as stale after 2 s, without a word.
    runtime = scripted((1.0, _said(CYCLIST)), (2.0, _said(CAR)), (3.0, _said(STEPS)))
    run = run_session([], runtime, until=16, start=_start(mode), tts=_SlowTTS())
    alerts = _alerts(run)
    assert [s.text for s in alerts] == [CYCLIST, CAR, STEPS]
    assert not run.of(StopSpeaking)  # an alert never cuts another
    for before, after in itertools.pairwise(alerts):
        assert _first_caption(run, after.utterance_id) >= _last_audio(run, before.utterance_id)
    assert _first_caption(run, alerts[2].utterance_id) - 3.0 > 5.0
    assert_cues_first(run)
    assert_none_repeated(run)
    assert _dropped(run) == {}


@pytest.mark.parametrize("mode", MODES)
def test_a_newer_alert_about_the_same_thing_supersedes_the_waiting_one(mode):
    runtime = scripted((1.0, _said(CYCLIST)), (2.0, _said(CAR_FAR)), (3.0, _said(CAR_NEAR)))
    run = run_session([], runtime, until=9, start=_start(mode))
    # The far car never played: the near one took its place in the queue.
    assert [s.text for s in _alerts(run)] == [CYCLIST, CAR_NEAR]
    assert not run.of(StopSpeaking)
    assert_cues_first(run)
    assert_none_repeated(run)
    assert _dropped(run) == {"superseded/alert": 1}
    # The trace of the tick that superseded it already says so.
    [at_tick_3] = [t for t in run.of(TickTrace) if t.tick_s == 3.0]
    assert at_tick_3.dropped == (("superseded/alert", 1),)
    assert run.session is not None
    assert run.session.stats["dropped_speech:superseded/alert"] == 1


# --------------------------------------------------------------- delegated answers


def _delegated_answer_then_alert(mode: Mode, *, urgent: bool) -> tuple[SessionRun, Speech]:
    # The answer comes at ~2 s, after the note; it plays ~4 s; the alert comes at 3 s.
    manager = DelegationManager(SleepyAgent(1.0, ANSWER, urgent=urgent))
    runtime = scripted(
        (1.0, "</response> Let me check. </delegation> What is on the shelf?"),
        (3.0, _said(CAR)),
    )
    run = run_session([], runtime, until=12, start=_start(mode), delegations=manager)
    run_virtual(manager.aclose())
    [result] = [s for s in run.of(Speech) if s.kind is SpeechKind.DELEGATION_RESULT]
    return run, result


@pytest.mark.parametrize("urgent", [False, True])
@pytest.mark.parametrize("mode", [Mode.GENERAL, Mode.NAVIGATION, Mode.SHOPPING])
def test_outside_blind_mode_a_delegated_answer_is_not_cut_and_the_alert_follows_it(mode, urgent):
    run, result = _delegated_answer_then_alert(mode, urgent=urgent)
    [alert] = _alerts(run)
    assert not run.of(StopSpeaking)
    answer_ends = _last_audio(run, result.utterance_id)
    assert result.text == ANSWER and _first_caption(run, result.utterance_id) < 3.0 < answer_ends
    # Right after the answer, however long the wait: never dropped for it.
    assert answer_ends <= _first_caption(run, alert.utterance_id) < answer_ends + 0.1
    assert_cues_first(run)
    assert _dropped(run) == {}


@pytest.mark.parametrize("urgent", [False, True])
def test_in_blind_mode_an_alert_cuts_a_delegated_answer(urgent):
    run, result = _delegated_answer_then_alert(Mode.BLIND, urgent=urgent)
    [alert] = _alerts(run)
    [stop] = run.of(StopSpeaking)
    assert stop.utterance_ids == (result.utterance_id,) and stop.reason == "preempted"
    assert 3.0 <= run.at(StopSpeaking)[0] == run.at(Cue)[-1] < 3.5
    assert alert.text == CAR
    assert_cues_first(run)
    assert _dropped(run) == {"preempted/delegation_result": 1}


# --------------------------------------------------------------- "quiet"


def test_quiet_while_an_alert_plays_lets_it_finish_and_drops_the_narration_behind_it():
    # Slowly spoken, the cyclist warning plays 1-7 s; narration queues behind it at 2 s.
    runtime = scripted((1.0, _said(CYCLIST)), (2.0, NARRATION))
    run = run_session(
        [(3.0, TextIn("Quiet."))], runtime, until=10, start=_start(Mode.GENERAL), tts=_SlowTTS()
    )
    [alert] = run.of(Speech)  # the narration never started
    assert alert.text == CYCLIST and not run.of(StopSpeaking)
    last = [e for e in run.of(AudioOut) if e.utterance_id == alert.utterance_id][-1]
    assert last.last and _last_audio(run, alert.utterance_id) > 6.0  # played to its end
    assert _dropped(run) == {"client/narration": 1}


def test_quiet_while_narration_plays_stops_it():
    runtime = scripted((1.0, NARRATION))
    run = run_session(
        [(1.5, TextIn("Quiet."))], runtime, until=5, start=_start(Mode.GENERAL), tts=_SlowTTS()
    )
    [narration] = run.of(Speech)
    [stop] = run.of(StopSpeaking)
    assert stop.utterance_ids == (narration.utterance_id,) and stop.reason == "client"
    assert 1.5 <= run.at(StopSpeaking)[0] < 1.6
    assert _dropped(run) == {"client/narration": 1}


# --------------------------------------------------------------- the pieces


def _utt(kind: SpeechKind, *, topic: str = "", at: float = 0.0, cuts_results: bool = False):
    alert = kind is SpeechKind.ALERT
    return Utterance(
        kind.value,
        kind,
        PRIORITY[kind],
        at,
        preempt=alert,
        topic=topic,
        cuts_results=cuts_results,
    )


class _Item:
    def __init__(self, utterance: Utterance) -> None:
        self.utterance = utterance


def test_the_policy_says_what_an_alert_is_about_and_whether_it_cuts_answers():
    blind = GuidancePolicy(profile(Mode.BLIND)).reply(CAR, 0.0)
    general = GuidancePolicy(profile(Mode.GENERAL)).reply(CAR, 0.0)
    assert blind is not None and general is not None
    assert blind.topic == general.topic == "car@left"  # the car, on the side it is on
    assert blind.cuts_results and not general.cuts_results
    narration = GuidancePolicy(profile(Mode.GENERAL)).reply(NARRATION[12:], 0.0)
    assert narration is not None and narration.topic == "" and not narration.cuts_results
    assert [m for m in Mode if profile(m).alerts_cut_results] == [Mode.BLIND]


def test_what_an_arriving_utterance_cuts():
    alert = _utt(SpeechKind.ALERT)
    blind_alert = _utt(SpeechKind.ALERT, cuts_results=True)
    urgent = Utterance(
        "soon", SpeechKind.DELEGATION_RESULT, PRIORITY[SpeechKind.ALERT], 0, preempt=True
    )
    for kind in (
        SpeechKind.NARRATION,
        SpeechKind.ANSWER,
        SpeechKind.DELEGATION_NOTE,
        SpeechKind.SYSTEM,
    ):
        assert alert.cuts(_utt(kind)) and blind_alert.cuts(_utt(kind))
    assert not alert.cuts(_utt(SpeechKind.DELEGATION_RESULT)) and not alert.cuts(urgent)
    assert blind_alert.cuts(_utt(SpeechKind.DELEGATION_RESULT)) and blind_alert.cuts(urgent)
    assert not blind_alert.cuts(_utt(SpeechKind.ALERT)) and not urgent.cuts(alert)
    assert urgent.cuts(_utt(SpeechKind.NARRATION))
    assert not _utt(SpeechKind.ANSWER).cuts(_utt(SpeechKind.NARRATION))  # only what preempts


def test_the_queue_orders_supersedes_and_never_lets_an_alert_go_stale():
    q: SpeechQueue[_Item] = SpeechQueue()
    narration = _Item(_utt(SpeechKind.NARRATION))
    urgent = _Item(
        Utterance("soon", SpeechKind.DELEGATION_RESULT, PRIORITY[SpeechKind.ALERT], 0, preempt=True)
    )
    car = _Item(_utt(SpeechKind.ALERT, topic="car"))
    steps = _Item(_utt(SpeechKind.ALERT, topic="step"))
    bare = _Item(_utt(SpeechKind.ALERT))  # no topic: it supersedes nothing
    for item in (narration, urgent, car, steps, bare):
        assert q.push(item) == []
    newer_car = _Item(_utt(SpeechKind.ALERT, topic="car", at=1.0))
    assert q.push(newer_car) == [car]
    assert q.push(_Item(_utt(SpeechKind.ALERT))) == []
    # At equal priority an alert goes first; alerts in order; then the rest.
    assert [i.utterance.topic or i.utterance.kind.value for i in q][:3] == ["step", "alert", "car"]
    assert list(q)[4] is urgent
    # An hour later every alert is still there; the narration went stale.
    popped, stale = [], []
    while True:
        item, gone = q.pop(3600.0)
        stale += gone
        if item is None:
            break
        popped.append(item)
    assert [i.utterance.kind for i in popped].count(SpeechKind.ALERT) == 4
    assert stale == [urgent, narration]  # an urgent answer still goes stale (60 s)


def test_the_trace_carries_the_counts_to_the_wire_and_the_bridge_prints_them():
    trace = TickTrace(tick_s=3.0, action="silence", dropped=(("superseded/alert", 1),))
    wire = to_server(trace)
    assert dict(wire.tick.dropped) == {"superseded/alert": 1}
    lines: list[str] = []
    console = ConsoleLog(lines.append, lambda: 3.0, trace=True)
    console.received(wire, 0)
    console.received(wire, 0)  # no change: a silent tick is not printed again
    assert lines == ["[   3.0s] tick 3: silence dropped: superseded/alert=1"]
