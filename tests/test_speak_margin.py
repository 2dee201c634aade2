"""The speak margin per mode: the mode's value rides on each unprompted tick
(``TickInput.speak_margin``) and the runtimes decide with it instead of their own."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from server.events import Mode, SessionStart, TextIn
from server.modes import profile
from server.runtime.base import ActionKind, Frame, TickInput
from tests.fake_vllm import INSTRUCTION, runtime, tick
from tests.fakes import FakeVLLM, Reply
from tests.harness import scripted
from tests.session_harness import run_session

if TYPE_CHECKING:
    from server.runtime.transformers import TransformersRuntime

# The first token's log-probs: </response> beats </silence> by 0.3.
NARROW = {"</response>": -0.6, "</silence>": -0.9}


def test_blind_mode_asks_for_a_small_positive_margin_the_others_keep_the_servers():
    assert profile("blind").speak_margin == 0.5
    assert {profile(m).speak_margin for m in ("general", "navigation", "shopping")} == {None}


def test_a_tick_margin_wins_over_the_configured_one():
    t = TickInput(1.0, None)
    assert t.margin(0.25) == 0.25
    assert dataclasses.replace(t, speak_margin=-1.0).margin(0.25) == -1.0


@pytest.mark.parametrize(("mode", "unprompted"), [(Mode.BLIND, 0.5), (Mode.GENERAL, None)])
def test_the_session_passes_the_modes_margin_on_unprompted_ticks(mode, unprompted):
    runtime = scripted()
    run_session(
        [(2.5, TextIn("What is in front of me?"))],
        runtime,
        until=4.5,
        start=SessionStart(mode=mode),
    )
    ticks = list(runtime.sessions[0].ticks)
    asked = [t for t in ticks if t.user_query]
    assert len(asked) == 1 and asked[0].speak_margin is None  # a question wants an answer
    assert {t.speak_margin for t in ticks if not t.user_query} == {unprompted}


# ------------------------------------------------------------------ OpenAI-compatible


def test_openai_a_tick_margin_holds_back_what_the_servers_margin_lets_through(
    vllm: FakeVLLM,
) -> None:
    vllm.replies.extend(
        [
            Reply("</response> Maybe a cat.", top=NARROW),
            Reply("</response> Maybe a cat.", top=NARROW),
        ]
    )
    rt = runtime(vllm, stream=False)  # speak_margin 0.0: 0.3 is enough
    session = rt.open_session(INSTRUCTION)
    assert session.step(tick(1.0)).kind is ActionKind.RESPONSE
    assert session.step(dataclasses.replace(tick(2.0), speak_margin=0.5)).silent
    rt.close()


def test_openai_a_negative_tick_margin_asks_for_the_reply(vllm: FakeVLLM) -> None:
    top = {"</silence>": -0.4, "</response>": -1.2}
    vllm.replies.extend([Reply("</silence>", top=top), Reply(" Bench at 2 o'clock.")])
    rt = runtime(vllm, stream=False, speak_margin=1.0)
    action = rt.open_session(INSTRUCTION).step(dataclasses.replace(tick(1.0), speak_margin=-1.0))
    assert action.kind is ActionKind.RESPONSE and action.text == "Bench at 2 o'clock."
    rt.close()


# ------------------------------------------------------------------ in-process model


@pytest.fixture(scope="module")
def tiny_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersRuntime]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from server.runtime.transformers import TransformersOptions, TransformersRuntime
    from tests.tiny_qwen import build_tiny_qwen

    folder: Path = build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen3-vl-margin"))
    options = TransformersOptions(
        min_pixels=32 * 32,
        max_pixels=96 * 96,
        background_summary=False,
        max_new_tokens=2,
        summary_max_new_tokens=2,
    )
    rt = TransformersRuntime.load(str(folder), device="cpu", options=options)
    yield rt
    rt.close()


def _frame_tick(t: int, margin: float | None) -> TickInput:
    image = Image.effect_noise((64, 48), 40 + t).convert("RGB")
    return TickInput(float(t), Frame(image, t, t * 1000, 0.0), speak_margin=margin)


@pytest.mark.slow
def test_transformers_decides_with_the_ticks_margin(tiny_runtime: TransformersRuntime) -> None:
    base = tiny_runtime.options
    quiet = tiny_runtime.open_session("Watch.", options=dataclasses.replace(base, speak_margin=1e9))
    assert quiet.step(_frame_tick(0, None)).kind is ActionKind.SILENCE
    assert quiet.step(_frame_tick(1, -1e9)).kind is ActionKind.RESPONSE  # the mode's wins
    chatty = tiny_runtime.open_session(
        "Watch.", options=dataclasses.replace(base, speak_margin=-1e9)
    )
    assert chatty.step(_frame_tick(0, 1e9)).kind is ActionKind.SILENCE
    assert chatty.step(_frame_tick(1, None)).kind is ActionKind.RESPONSE
