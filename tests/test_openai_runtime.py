"""The OpenAI-compatible HTTP runtime against a real local server that plays vLLM
(``tests/fake_vllm.py``): request shape, a byte-stable prefix, actions, failures,
memory. Frames by uuid: ``tests/test_openai_frames.py``."""

from __future__ import annotations

import base64
import io
import json
import socket
from typing import Any

import pytest
from PIL import Image

from server.codes import Code
from server.config import load_settings
from server.errors import ModelLoadError, Recoverable
from server.runtime.base import ActionKind, TickInput
from server.runtime.markers import marker_decision
from server.runtime.openai import (
    ModelRejected,
    ModelUnavailable,
    OpenAIRuntime,
    OpenAIRuntimeOptions,
)
from server.runtime.prompt import NO_FRAME, QA_HISTORY, QUERY_HEADER, SYSTEM_PROMPT
from tests.fake_vllm import INSTRUCTION, MODEL, as_held, messages_text, runtime, tick
from tests.fakes import FakeVLLM, Reply

# ---------------------------------------------------------------------- shape


def test_request_shape(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, stream=False)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(3.0, size=(1024, 768)))
    body = vllm.bodies()[0]
    assert body["model"] == MODEL
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["max_tokens"] == 64 and body["stream"] is False
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"]
    assert body["messages"][0]["content"] == SYSTEM_PROMPT
    text, image = body["messages"][1]["content"]
    assert text["type"] == "text"
    assert text["text"] == f"{QUERY_HEADER}\n{INSTRUCTION}\n<3.0 seconds>"
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.format == "JPEG"
    assert decoded.width * decoded.height <= 262144
    assert decoded.width / decoded.height == pytest.approx(1024 / 768, rel=0.01)
    rt.close()


def test_later_ticks_carry_only_new_queries_and_text_only_turns(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, stream=False)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(TickInput(tick_s=2.0, frame=None, context=("Location: 52.1, 4.3",)))
    session.step(tick(3.0, query="what is that?"))
    second, third = vllm.bodies()[1:]
    assert second["messages"][-1] == {
        "role": "user",
        "content": f"Location: 52.1, 4.3\n<2.0 seconds> {NO_FRAME}",
    }
    assert third["messages"][-1]["content"][0]["text"] == (
        f"{QUERY_HEADER}\nwhat is that?\n<3.0 seconds>"
    )
    rt.close()


@pytest.mark.parametrize("frame_refs", [True, False])
@pytest.mark.parametrize("stream", [False, True])
def test_prefix_is_byte_identical_across_ticks(
    vllm: FakeVLLM, stream: bool, frame_refs: bool
) -> None:
    vllm.replies.extend([Reply(), Reply("</response> Step ahead."), Reply(), Reply()])
    rt = runtime(vllm, stream=stream, frame_refs=frame_refs)
    session = rt.open_session(INSTRUCTION)
    for s in (1.0, 2.0, 3.0, 4.0):
        session.step(tick(s))
    raws = vllm.requests
    assert len(raws) == 4  # nothing was rejected and resent
    if frame_refs:
        raws = [as_held(raw) for raw in raws]
    bodies = [json.loads(raw) for raw in raws]
    for n in range(len(raws) - 1):
        before, after = bodies[n]["messages"], bodies[n + 1]["messages"]
        assert after[: len(before)] == before
        assert after[len(before)]["role"] == "assistant"
        assert len(after) == len(before) + 2
        # Byte for byte: request N's body up to the end of its turns opens request N+1.
        end = raws[n].index(b'],"max_tokens"')
        assert raws[n + 1].startswith(raws[n][:end])
    assert bodies[2]["messages"][4] == {"role": "assistant", "content": "</response> Step ahead."}
    rt.close()


# ---------------------------------------------------------------------- actions


@pytest.mark.parametrize("stream", [False, True])
def test_replies_become_actions(vllm: FakeVLLM, stream: bool) -> None:
    vllm.replies.extend(
        [
            Reply("</response> Door on your left."),
            Reply("</silence>"),
            Reply("Door on your left."),
            Reply("</response> Checking. </delegation> Which bus stops here?"),
            Reply("</response> Door on your left.", logprobs=False),
            Reply("Door on your left.", logprobs=False),
        ]
    )
    rt = runtime(vllm, stream=stream)
    session = rt.open_session(INSTRUCTION)
    actions = [session.step(tick(float(s))) for s in range(6)]
    assert actions[0].kind is ActionKind.RESPONSE and actions[0].text == "Door on your left."
    assert actions[1].silent
    assert actions[2].silent  # unmarked text is never spoken
    assert actions[3].kind is ActionKind.DELEGATE
    assert (actions[3].text, actions[3].question) == ("Checking.", "Which bus stops here?")
    assert actions[4].kind is ActionKind.RESPONSE  # no log-probs: the text decides
    assert actions[5].silent
    rt.close()


def test_streamed_reply_reaches_the_sink_clause_by_clause(vllm: FakeVLLM) -> None:
    vllm.replies.extend(
        [
            Reply("</response> Careful, a step down ahead. Hold the rail."),
            Reply("</response> One moment. </delegation> What does the sign say?"),
            Reply("</silence> a long unmarked ramble that nobody should hear"),
        ]
    )
    rt = runtime(vllm, stream=True)
    session = rt.open_session(INSTRUCTION)
    heard: list[str] = []
    action = session.step(tick(1.0), heard.append)
    assert heard == ["Careful,", "a step down ahead.", "Hold the rail."]
    assert action.text == "Careful, a step down ahead. Hold the rail."
    heard.clear()
    action = session.step(tick(2.0), heard.append)
    # The note before a delegation is not streamed: the engine speaks it as a note.
    assert heard == [] and action.text == "One moment."
    assert action.question == "What does the sign say?"
    heard.clear()
    action = session.step(tick(3.0), heard.append)
    assert action.silent and heard == []
    assert action.raw == "</silence>"  # the stream was closed at the decision
    rt.close()


def test_margin_holds_back_a_narrow_reply(vllm: FakeVLLM) -> None:
    top = {"</response>": -0.6, "</silence>": -0.9}
    vllm.replies.append(Reply("</response> Maybe a cat.", top=top))
    rt = runtime(vllm, stream=False, speak_margin=1.0)
    action = rt.open_session(INSTRUCTION).step(tick(1.0))
    assert action.silent
    rt.close()


@pytest.mark.parametrize("stream", [False, True])
def test_negative_margin_continues_a_reply_the_server_did_not_generate(
    vllm: FakeVLLM, stream: bool
) -> None:
    top = {"</silence>": -0.4, "</response>": -1.2}
    vllm.replies.extend([Reply("</silence>", top=top), Reply(" Bench at 2 o'clock.")])
    rt = runtime(vllm, stream=stream, speak_margin=-1.0)
    session = rt.open_session(INSTRUCTION)
    clauses: list[str] = []
    action = session.step(tick(1.0), clauses.append)
    assert action.kind is ActionKind.RESPONSE and action.text == "Bench at 2 o'clock."
    assert clauses == ["Bench at 2 o'clock."]
    first, second = (json.loads(as_held(raw)) for raw in vllm.requests)
    assert second["continue_final_message"] is True and second["add_generation_prompt"] is False
    assert second["messages"][:-1] == first["messages"]
    assert second["messages"][-1] == {"role": "assistant", "content": "</response>"}
    rt.close()


def test_marker_decision_with_markers_split_into_tokens() -> None:
    def entry(token: str, top: dict[str, float]) -> dict[str, Any]:
        return {
            "token": token,
            "logprob": top[token],
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()],
        }

    common = entry("</", {"</": -0.01, "Hello": -6.0})
    assert marker_decision([common], 0.0) is None
    split = entry("sil", {"sil": -0.3, "resp": -1.5, "res": -2.0})
    decision = marker_decision([common, split], 0.0)
    assert decision is not None and decision.speak is False and decision.generated == "silence"
    decision = marker_decision([common, split], -1.5)
    assert decision is not None and decision.speak is True
    unmarked = marker_decision([entry("Hello", {"Hello": -0.1})], 0.0)
    assert unmarked is not None and unmarked.speak is None


# ---------------------------------------------------------------------- failures


def test_a_5xx_is_retried(vllm: FakeVLLM) -> None:
    vllm.replies.extend([Reply(status=500), Reply("</response> Curb ahead.")])
    rt = runtime(vllm, retries=1)
    action = rt.open_session(INSTRUCTION).step(tick(1.0))
    assert action.text == "Curb ahead."
    assert len(vllm.requests) == 2 and vllm.requests[0] == vllm.requests[1]
    rt.close()


def test_an_unavailable_server_is_recoverable_and_the_tick_stays_silent(vllm: FakeVLLM) -> None:
    vllm.replies.extend([Reply(status=503), Reply(status=500), Reply("</response> Back.")])
    rt = runtime(vllm, retries=1)
    session = rt.open_session(INSTRUCTION)
    with pytest.raises(Recoverable) as info:
        session.step(tick(1.0))
    assert isinstance(info.value, ModelUnavailable) and info.value.status == 500
    assert info.value.code is Code.MODEL_UNAVAILABLE
    assert info.value.component == "model" and info.value.retryable
    assert session.step(tick(2.0)).text == "Back."
    messages = vllm.bodies()[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "</silence>"
    rt.close()


def test_a_server_that_went_away_is_recoverable(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, retries=1)
    session = rt.open_session(INSTRUCTION)
    vllm.close()
    with pytest.raises(Recoverable) as info:
        session.step(tick(1.0))
    assert isinstance(info.value, ModelUnavailable) and info.value.status is None
    rt.close()


def test_a_rejected_request_is_recoverable_and_not_retried(vllm: FakeVLLM) -> None:
    vllm.replies.append(Reply(status=400))
    rt = runtime(vllm, retries=3, frame_refs=False)  # else it is resent once without uuids
    session = rt.open_session(INSTRUCTION)
    with pytest.raises(Recoverable) as info:
        session.step(tick(1.0))
    assert isinstance(info.value, ModelRejected) and info.value.status == 400
    assert info.value.code is Code.MODEL_REJECTED and len(vllm.requests) == 1
    session.step(tick(2.0))  # too long a context, say: the next tick starts a new chunk
    assert [m["role"] for m in vllm.bodies()[-1]["messages"]] == ["system", "user"]
    rt.close()


def test_unreachable_endpoint_at_load() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelLoadError, match="cannot reach the model server"):
        OpenAIRuntime(OpenAIRuntimeOptions(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=1))


def test_a_server_without_the_model_names_what_it_serves() -> None:
    server = FakeVLLM(models=("Qwen/Qwen2.5-VL-7B-Instruct",))
    try:
        with pytest.raises(ModelLoadError, match=r"it serves: Qwen/Qwen2\.5-VL-7B-Instruct"):
            runtime(server)
        with pytest.raises(ModelLoadError, match="did you mean"):
            OpenAIRuntime(OpenAIRuntimeOptions(base_url=server.url.removesuffix("/v1")))
    finally:
        server.close()


def test_a_local_folder_served_under_its_path_is_found() -> None:
    server = FakeVLLM(models=("/models/JoyAI-VL-Interaction",))
    try:
        rt = runtime(server)
        rt.open_session(INSTRUCTION).step(tick(1.0))
        assert server.bodies()[0]["model"] == "/models/JoyAI-VL-Interaction"
        rt.close()
    finally:
        server.close()


# ---------------------------------------------------------------------- memory


def test_chunk_rollover_starts_over_with_history(vllm: FakeVLLM) -> None:
    vllm.replies.extend([Reply(), Reply("</response> A red door.")])
    rt = runtime(vllm, chunk_ticks=2)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0, query="what colour is the door?"))
    session.add_context("Q: which bus? A: the 12.")
    session.step(tick(3.0))  # a new chunk: the Q&A history and the note itself
    session.step(tick(4.0))
    third, fourth = vllm.bodies()[2:]
    assert [m["role"] for m in third["messages"]] == ["system", "user"]
    text = third["messages"][1]["content"][0]["text"]
    assert text == (
        f"{QA_HISTORY}\nUser: what colour is the door?\nAssistant: A red door.\n"
        f"Q: which bus? A: the 12.\n{QUERY_HEADER}\n{INSTRUCTION}\n"
        "Q: which bus? A: the 12.\n<3.0 seconds>"
    )
    assert len(fourth["messages"]) == 4  # the new chunk grows as before
    rt.close()


def test_heard_trims_only_the_last_assistant_turn(vllm: FakeVLLM) -> None:
    vllm.replies.extend(
        [Reply("</response> Hi."), Reply("</response> Door on your left, then stairs.")]
    )
    rt = runtime(vllm)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0))
    session.heard("Door on your left, then stairs.", "Door on your left,")
    session.heard("Hi.", "")  # not the last turn: rewriting it would break the prefix
    session.step(tick(3.0))
    second, third = (json.loads(as_held(raw)) for raw in vllm.requests[1:])
    assert third["messages"][:4] == second["messages"]
    assert third["messages"][2]["content"] == "</response> Hi."
    assert third["messages"][4] == {
        "role": "assistant",
        "content": "</response> Door on your left,",
    }
    assert messages_text(third).startswith(messages_text(second))
    # What was cut in an older turn is said in the next one instead.
    assert third["messages"][5]["content"][0]["text"] == (
        '(The user heard only "" of your reply "Hi.".)\n<3.0 seconds>'
    )
    rt.close()


def test_heard_nothing_of_a_reply_records_silence(vllm: FakeVLLM) -> None:
    vllm.replies.append(Reply("</response> Bike at 2 o'clock."))
    rt = runtime(vllm)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.heard("Bike at 2 o'clock.", "")
    session.step(tick(2.0))
    assert vllm.bodies()[1]["messages"][2] == {"role": "assistant", "content": "</silence>"}
    rt.close()


def test_warm_up_caches_the_same_system_turn_sessions_send(vllm: FakeVLLM) -> None:
    rt = runtime(vllm)
    rt.warm_up()
    rt.open_session(INSTRUCTION).step(tick(1.0))
    warm, first = vllm.bodies()
    assert warm["max_tokens"] == 1 and warm["stream"] is False
    assert [m["role"] for m in warm["messages"]] == ["system", "user"]
    assert warm["messages"][0] == first["messages"][0]
    system = vllm.requests[1].split(b',{"role":"user"', 1)[0]
    assert vllm.requests[0].startswith(system)
    rt.close()


def test_context_enters_the_next_turn_once(vllm: FakeVLLM) -> None:
    rt = runtime(vllm)
    session = rt.open_session(INSTRUCTION, language="de")
    session.step(tick(1.0))
    session.add_context("Q: which bus? A: the 12.")
    session.step(tick(2.0))
    session.step(tick(3.0))
    first, second, third = vllm.bodies()
    assert "Reply in the user's language (de)." in first["messages"][1]["content"][0]["text"]
    assert second["messages"][3]["content"][0]["text"] == "Q: which bus? A: the 12.\n<2.0 seconds>"
    assert third["messages"][5]["content"][0]["text"] == "<3.0 seconds>"
    rt.close()


def test_api_key_comes_from_the_settings_environment(vllm: FakeVLLM) -> None:
    """Only server/config.py reads the environment; the runtime takes its options."""
    settings = load_settings(env={"MURMUR_MODEL_API_KEY": "sk-test"})
    assert settings.model.api_key == "sk-test"
    rt = runtime(vllm, api_key=settings.model.api_key)
    rt.open_session(INSTRUCTION).step(tick(1.0))
    assert vllm.headers[-1]["authorization"] == "Bearer sk-test"
    rt.close()


def test_stages_time_the_decision_and_the_reply(vllm: FakeVLLM) -> None:
    vllm.replies.extend([Reply(), Reply("</response> Door on your left.")])
    rt = runtime(vllm, stream=True)
    session = rt.open_session(INSTRUCTION)
    silent, spoken = session.step(tick(1.0)), session.step(tick(2.0))
    assert [name for name, _ in silent.stages] == ["decide"]
    assert [name for name, _ in spoken.stages] == ["decide", "reply"]
    assert all(ms >= 0 for _, ms in spoken.stages)
    rt.close()
