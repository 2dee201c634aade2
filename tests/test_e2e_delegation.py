"""Delegation through a live session: real gRPC, scripted model, Piper speech,
and agents at the boundary (a local OpenAI-compatible server, a scripted agent)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from murmur.v1 import companion_pb2 as pb

from server.agents.base import AgentAnswer
from server.agents.manager import DelegationManager
from server.agents.openai_chat import OpenAIChatAgent
from server.config import Settings
from tests.agent_fixtures import chat_completion
from tests.fakes import LocalHTTP, ScriptedAgent, StreamingRuntime
from tests.fakes import LocalHTTPReply as Reply
from tests.harness import Client, running_server, scripted

QUESTION = "Is the pharmacy on this street open now?"
DELEGATE = f"</response> Let me check. </delegation> {QUESTION}"


async def _frames(c: Client, seconds: int, *, on_second=None) -> None:  # type: ignore[no-untyped-def]
    for seq in range(1, seconds + 1):
        await c.frame(seq)
        if on_second is not None:
            await on_second(seq)
        await asyncio.sleep(1.0)


async def test_delegated_question_is_answered_aloud_and_enters_the_next_tick(tts):
    runtime = scripted((3, DELEGATE))
    async with LocalHTTP("/v1/chat/completions") as llm:
        llm.replies.append(Reply(chat_completion("Yes, it is open until eight tonight.")))
        manager = DelegationManager(OpenAIChatAgent(f"{llm.base}/v1", "helper-llm"), timeout_s=5)
        async with (
            running_server(runtime, tts, Settings(), delegations=manager) as srv,
            Client(srv.address) as c,
        ):
            await c.start(want_trace=True)
            await _frames(c, 6)
            await c.wait_for("speech", count=2, within_s=10)
            assert await c.finish() == grpc.StatusCode.OK
        await manager.aclose()

    ticks = c.of("tick")
    delegate_tick = next(t for t in ticks if t.action == "delegate")
    assert delegate_tick.tick_s == 3.0
    speech = c.of("speech")
    assert [(s.text, s.kind) for s in speech] == [
        ("Let me check.", pb.SPEECH_KIND_DELEGATION_NOTE),
        ("Yes, it is open until eight tonight.", pb.SPEECH_KIND_DELEGATION_RESULT),
    ]
    # The filler came at the delegating tick, with a thinking cue first.
    events = [e.WhichOneof("event") for e in c.events]
    assert c.of("cue")[0].kind == pb.CUE_KIND_THINKING
    assert events.index("cue") < events.index("speech")
    states = [u.state for u in c.of("delegation_update")]
    assert states == [
        pb.DELEGATION_STATE_STARTED,
        pb.DELEGATION_STATE_RUNNING,
        pb.DELEGATION_STATE_DONE,
    ]
    assert c.of("delegation_update")[0].question == QUESTION
    # The agent got the question (and the recent frames as images).
    request = llm.requests[0]
    assert request["model"] == "helper-llm"
    assert QUESTION in str(request["messages"])
    assert "data:image/jpeg;base64," in str(request["messages"])
    # The very next tick's turn carried the answer.
    seen = runtime.sessions[0].ticks
    after = [t for t in seen if t.tick_s > 3.0]
    assert any("open until eight" in " ".join(t.context) for t in after[:1])
    # Ticks kept their cadence while the agent worked.
    assert max(t.slip_ms for t in ticks) < 100


async def test_hazard_cuts_a_playing_result_and_ticks_keep_their_cadence(tts):
    long_answer = (
        "The pharmacy on this street opens at nine in the morning and closes at eight in "
        "the evening, every day of the week except Sunday, when it stays closed."
    )
    agent = ScriptedAgent({QUESTION: AgentAnswer(long_answer)})
    agent.gate.clear()
    manager = DelegationManager(agent, timeout_s=10)
    runtime = scripted((1, DELEGATE), (4, "</response> Bike at 2 o'clock, stop."))

    async def release_at(second: int) -> None:
        if second == 2:
            agent.gate.set()

    async with (
        running_server(runtime, tts, Settings(), delegations=manager) as srv,
        Client(srv.address) as c,
    ):
        await c.start(mode=pb.MODE_BLIND, want_trace=True)
        await _frames(c, 6, on_second=release_at)
        await c.wait_for("speech", pred=lambda s: s.kind == pb.SPEECH_KIND_ALERT, within_s=10)
        assert await c.finish() == grpc.StatusCode.OK
    await manager.aclose()

    speech = c.of("speech")
    result = next(s for s in speech if s.kind == pb.SPEECH_KIND_DELEGATION_RESULT)
    alert = next(s for s in speech if s.kind == pb.SPEECH_KIND_ALERT)
    assert alert.text == "Bike at 2 o'clock, stop."
    stops = c.of("stop_speaking")
    assert [(list(s.utterance_ids), s.reason) for s in stops] == [
        ([result.utterance_id], "preempted")
    ]
    events = [e.WhichOneof("event") for e in c.events]
    hazard_cue = next(
        i
        for i, e in enumerate(c.events)
        if e.WhichOneof("event") == "cue" and e.cue.kind == pb.CUE_KIND_HAZARD
    )
    assert events.index("stop_speaking") < hazard_cue
    assert c.of("cue")[-1].clock_direction == 2
    # No audio of the cut result after the cut.
    stop_at = events.index("stop_speaking")
    later = [e.audio_out for e in c.events[stop_at:] if e.WhichOneof("event") == "audio_out"]
    assert all(a.utterance_id != result.utterance_id for a in later)
    assert max(t.slip_ms for t in c.of("tick")) < 100


async def test_failing_agent_gets_an_apology_and_the_session_goes_on(tts):
    runtime = scripted((1, DELEGATE), (3, "</response> Crossing ahead."))
    async with LocalHTTP("/v1/chat/completions") as llm:
        llm.replies.append(Reply("internal error", status=500))
        manager = DelegationManager(OpenAIChatAgent(f"{llm.base}/v1", "m"), timeout_s=5)
        async with (
            running_server(runtime, tts, Settings(), delegations=manager) as srv,
            Client(srv.address) as c,
        ):
            await c.start()
            await _frames(c, 4)
            await c.wait_for("speech", count=3, within_s=10)
            assert await c.finish() == grpc.StatusCode.OK
        await manager.aclose()
    updates = c.of("delegation_update")
    assert updates[-1].state == pb.DELEGATION_STATE_FAILED
    texts = [s.text for s in c.of("speech")]
    assert texts[0] == "Let me check."
    assert "sorry" in texts[1].lower()
    assert texts[2] == "Crossing ahead."


@pytest.mark.parametrize(
    "clauses", [["Let me check that for you."], ["Good question,", "let me check that for you."]]
)
async def test_streamed_delegation_note_gets_a_thinking_cue_and_the_answer(tts, clauses):
    runtime = StreamingRuntime(at=1, clauses=clauses, clause_delay_s=0.1, question=QUESTION)
    manager = DelegationManager(
        ScriptedAgent({QUESTION: AgentAnswer("It opens at nine.")}), timeout_s=5
    )
    async with (
        running_server(runtime, tts, Settings(), delegations=manager) as srv,
        Client(srv.address) as c,
    ):
        await c.start()
        await _frames(c, 3)
        await c.wait_for("speech", count=len(clauses) + 1, within_s=10)
        assert await c.finish() == grpc.StatusCode.OK
    await manager.aclose()
    speech = c.of("speech")
    assert [s.text for s in speech] == [*clauses, "It opens at nine."]
    # The note is a note, not an answer. A longer one's first clauses stream before the
    # marker is seen and are spoken as a reply; the note ends it, in order, as its own
    # utterance, with the thinking cue right before it.
    *streamed, note, result = speech
    assert [s.kind for s in streamed] == [pb.SPEECH_KIND_NARRATION] * (len(clauses) - 1)
    assert note.kind == pb.SPEECH_KIND_DELEGATION_NOTE
    assert result.kind == pb.SPEECH_KIND_DELEGATION_RESULT
    shown = [e for e in c.events if e.WhichOneof("event") in ("cue", "speech")]
    at = next(i for i, e in enumerate(shown) if e.speech.utterance_id == note.utterance_id)
    assert shown[at - 1].cue.kind == pb.CUE_KIND_THINKING
    assert c.of("delegation_update")[0].question == QUESTION
