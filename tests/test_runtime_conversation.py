"""The conversation layer every backend shares (server/runtime/conversation.py), and
the step template on it (server/runtime/base.py), without a model."""

from __future__ import annotations

import threading

import pytest
from PIL import Image

from server.codes import Code
from server.errors import Recoverable
from server.runtime.base import (
    SILENCE,
    Action,
    ActionKind,
    Frame,
    ModelSession,
    TextSink,
    TickInput,
)
from server.runtime.conversation import Conversation, Turn
from server.runtime.prompt import NO_FRAME, QA_HISTORY, QUERY_HEADER
from server.runtime.scripted import ScriptedRuntime, ScriptLine


def _tick(s: float, *, query: str | None = None, frame: bool = True) -> TickInput:
    image = Frame(Image.new("RGB", (8, 8)), int(s), int(s * 1000), 0.0) if frame else None
    return TickInput(tick_s=s, frame=image, user_query=query)


def _run(c: Conversation, s: float, action: Action = SILENCE, **kw: object) -> Turn:
    turn = c.next_turn(_tick(s, **kw))  # type: ignore[arg-type]
    c.record(turn, action)
    return turn


REPLY = Action(ActionKind.RESPONSE, text="Door on your left, then stairs.")


def test_the_first_turn_restates_the_instruction_in_the_language() -> None:
    c = Conversation("Guide me.", language="de")
    first = _run(c, 1.0, query="where am I?")
    assert first.first and first.chunk == 1
    assert first.text == (
        f"{QUERY_HEADER}\nGuide me.\nReply in the user's language (de).\nwhere am I?\n<1.0 seconds>"
    )
    assert _run(c, 2.0).text == "<2.0 seconds>"
    assert Conversation("Guide me.", language="en-GB").instruction == "Guide me."


def test_a_tick_without_a_new_frame_says_so() -> None:
    c = Conversation("Guide me.")
    _run(c, 1.0)
    turn = _run(c, 2.0, frame=False)
    assert turn.text == f"<2.0 seconds> {NO_FRAME}"
    assert turn.image is None and [p["type"] for p in turn.message["content"]] == ["text"]
    assert [p["type"] for p in _run(c, 3.0).message["content"]] == ["text", "image"]


def test_context_enters_the_next_turn_once_and_the_history() -> None:
    c = Conversation("Guide me.")
    _run(c, 1.0)
    c.add_context("  Bus 42   arrives in 3 minutes. ")
    c.add_context("   ")  # nothing to say
    assert _run(c, 2.0).text == "Bus 42 arrives in 3 minutes.\n<2.0 seconds>"
    assert _run(c, 3.0).text == "<3.0 seconds>"
    assert c.state().qa_history == "Bus 42 arrives in 3 minutes."


def test_heard_rewrites_the_last_reply_when_nothing_followed() -> None:
    c = Conversation("Guide me.")
    _run(c, 1.0, REPLY)
    c.heard("Door on your left, then stairs.", "Door on your left,")
    turn = _run(c, 2.0)
    assert turn.revised == Action(ActionKind.RESPONSE, text="Door on your left,")
    assert "heard only" not in turn.text
    assert c.state().qa_history == "Assistant: Door on your left,"


def test_heard_nothing_of_a_reply_is_silence_but_a_delegation_keeps_its_question() -> None:
    c = Conversation("Guide me.")
    _run(c, 1.0, REPLY)
    c.heard(REPLY.text, "")
    assert _run(c, 2.0).revised is SILENCE
    assert c.state().qa_history == ""  # nothing of it was heard
    ask = Action(ActionKind.DELEGATE, text="Let me check.", question="Which bus?")
    _run(c, 3.0, ask)
    c.heard("Let me check.", "")
    revised = _run(c, 4.0).revised
    assert revised is not None and (revised.kind, revised.text) == (ActionKind.DELEGATE, "")
    assert revised.question == "Which bus?"


def test_heard_after_later_turns_becomes_a_line() -> None:
    c = Conversation("Guide me.")
    _run(c, 1.0, REPLY)
    _run(c, 2.0)
    c.heard(REPLY.text, "Door on your left,")
    turn = _run(c, 3.0)
    assert turn.revised is None
    assert turn.text == (
        '(The user heard only "Door on your left," of your reply '
        '"Door on your left, then stairs.".)\n<3.0 seconds>'
    )


def test_rollover_carries_the_history_and_the_instruction() -> None:
    c = Conversation("Guide me.", chunk_ticks=2)
    _run(c, 1.0)
    _run(c, 2.0, Action(ActionKind.RESPONSE, text="A red door."), query="what colour?")
    c.heard("A red door.", "A red")  # the chunk closes first: said in the next one
    turn = _run(c, 3.0)
    assert turn.first and turn.chunk == 2 and turn.revised is None
    assert turn.text == (
        f"{QA_HISTORY}\nUser: what colour?\nAssistant: A red\n{QUERY_HEADER}\nGuide me.\n"
        '(The user heard only "A red" of your reply "A red door.".)\n<3.0 seconds>'
    )
    assert c.state().chunk_ticks == 1


def test_a_backend_ends_a_chunk_early_and_reopens_one() -> None:
    c = Conversation("Guide me.", chunk_ticks=100)
    _run(c, 1.0)
    turn = c.next_turn(_tick(2.0))
    assert not c.is_last_of_chunk()
    c.roll_over_next()  # e.g. the KV cache is nearly full
    assert c.is_last_of_chunk()
    c.record(turn, SILENCE)
    assert c.state().rollover_due
    opener = c.next_turn(_tick(3.0))
    assert opener.first and opener.chunk == 2
    c.record(opener, SILENCE)
    c.add_context("Bus 42.")
    turn = c.next_turn(_tick(4.0))
    assert not turn.first
    again = c.reopen(turn)  # the turn did not fit: the same tick opens a fresh chunk
    assert again.first and again.chunk == turn.chunk + 1
    assert "Bus 42." in again.text and QUERY_HEADER in again.text


def test_the_inbox_takes_entries_from_two_threads_in_order() -> None:
    c = Conversation("Guide me.")
    _run(c, 1.0)
    start = threading.Barrier(2)

    def put(name: str) -> None:
        start.wait()
        for i in range(500):
            c.add_context(f"{name} {i}")

    threads = [threading.Thread(target=put, args=(n,)) for n in ("loop", "agent")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = list(_run(c, 2.0).tick.context)
    assert len(lines) == 1000
    for name in ("loop", "agent"):  # each thread's entries keep their order
        assert [x for x in lines if x.startswith(name)] == [f"{name} {i}" for i in range(500)]
    assert _run(c, 3.0).tick.context == ()


def test_heard_and_context_while_a_step_runs_land_in_the_next_turn() -> None:
    """The event loop calls heard/add_context directly while the model thread steps."""
    entered, release = threading.Event(), threading.Event()

    class Slow(ModelSession):
        def __init__(self) -> None:
            super().__init__(Conversation("Guide me."))
            self.turns: list[Turn] = []

        def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
            self.turns.append(turn)
            if len(self.turns) == 1:
                entered.set()
                assert release.wait(5)
                return REPLY
            return SILENCE

    session = Slow()
    worker = threading.Thread(target=session.step, args=(_tick(1.0),))
    worker.start()
    assert entered.wait(5)
    session.add_context("Bus 42.")  # returns at once, while the step still runs
    session.heard(REPLY.text, "Door on your left,")
    release.set()
    worker.join()
    session.step(_tick(2.0))
    second = session.turns[1]
    assert second.tick.context == ("Bus 42.",)
    assert second.revised is not None and second.revised.text == "Door on your left,"


def test_a_failed_turn_stays_as_a_silent_tick() -> None:
    class Failing(ModelSession):
        def __init__(self) -> None:
            super().__init__(Conversation("Guide me."))

        def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
            raise Recoverable(Code.MODEL_UNAVAILABLE, "down")

    session = Failing()
    with pytest.raises(Recoverable):
        session.step(_tick(1.0, query="hello?"))
    state = session.conversation.state()
    assert state.chunk_ticks == 1 and state.last_action is SILENCE
    assert state.qa_history == "User: hello?"  # the query was asked all the same


def test_the_scripted_runtime_sits_on_the_conversation() -> None:
    rt = ScriptedRuntime([ScriptLine(at=2.0, output="</response> Door on your left.")])
    session = rt.open_session("Guide me.")
    assert session.step(_tick(1.0)).silent
    session.add_context("Bus 42.")
    action = session.step(_tick(2.0, frame=False))
    assert action.text == "Door on your left." and [n for n, _ in action.stages] == ["decide"]
    seen = rt.sessions[0]
    assert seen.ticks[-1].context == ("Bus 42.",)
    assert seen.turns[-1] == f"Bus 42.\n<2.0 seconds> {NO_FRAME}"
    session.heard("Door on your left.", "Door")
    session.step(_tick(3.0))
    assert seen.heard_log == [("Door on your left.", "Door")]
    assert session.debug_state().qa_history == "Bus 42.\nAssistant: Door"  # type: ignore[attr-defined]
    rt.close()
