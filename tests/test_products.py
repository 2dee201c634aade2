"""Products: in shopping mode, an EAN-13 and a QR code rendered into the camera's
frames are decoded on the server, reach the model's turn as one line (once while
they stay in view), and go with a delegated comparison question, with the still,
to the agent; the agents render them into their prompt, body and argv.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from server.agents.base import DelegationRequest, prompt_text
from server.agents.command import CommandAgent
from server.agents.manager import DelegationManager
from server.agents.openai_chat import OpenAIChatAgent
from server.agents.webhook import WebhookAgent
from server.engine.reading import Reading, compares
from server.events import (
    ClientEvent,
    DelegationUpdate,
    FrameIn,
    Mode,
    Speech,
    SpeechKind,
    StillRequest,
    TextIn,
    VideoEncoding,
)
from server.modes import profile
from server.runtime.base import Action, ActionKind
from server.runtime.limits import STILL_MAX_PIXELS
from server.vision.barcodes import decode_barcodes
from tests.fakes import LocalHTTP, LocalHTTPReply, ScriptedAgent
from tests.harness import scripted
from tests.test_reading_stills import run

EAN13 = "4006381333931"
QR = "https://murmur.example/p/42"
QUESTION = "Is this cheaper elsewhere?"


def _symbol(content: str, fmt: zxingcpp.BarcodeFormat, module_px: int) -> Image.Image:
    img = Image.fromarray(np.array(zxingcpp.create_barcode(content, fmt).to_image(scale=1)))
    return img.resize((img.width * module_px, img.height * module_px), Image.Resampling.NEAREST)


def shelf(size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A product held up: an EAN-13 on its side, a QR code on its top right."""
    w, h = size
    k = max(1, w // 320)  # pixels per module: 2 in a frame, 5 in a 1600 px still
    img = Image.new("RGB", size, (150, 120, 90))
    img.paste(Image.new("RGB", (w // 2, h // 2), (235, 230, 220)), (w // 8, h // 3))
    img.paste(_symbol(EAN13, zxingcpp.EAN13, k).convert("RGB"), (w // 6, h // 2))
    img.paste(_symbol(QR, zxingcpp.QRCode, k).convert("RGB"), (int(w * 0.7), h // 10))
    return img


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


FRAME = _jpeg(shelf())
STILL = _jpeg(shelf((1600, 1200)))
LINE_EAN = f"Barcode EAN-13 {EAN13} (product code)"
LINE_QR = f'Barcode QR Code "{QR}" (link)'


def frames(until: float) -> list[tuple[float, ClientEvent]]:
    return [
        (float(n), FrameIn(n, n * 1000, VideoEncoding.JPEG, FRAME)) for n in range(int(until) + 1)
    ]


def test_the_rendered_frame_and_still_hold_both_codes():
    for jpeg in (FRAME, STILL):
        codes = decode_barcodes(Image.open(io.BytesIO(jpeg)))
        assert sorted(c.text for c in codes) == sorted([EAN13, QR])


def test_codes_in_a_shopping_frame_reach_the_models_turn_once():
    rt = scripted()
    run(frames(5), rt, until=5.5, mode=Mode.SHOPPING)
    with_codes = [t for t in rt.sessions[0].turns if LINE_EAN in t]
    assert len(with_codes) == 1  # held in view: said once (BarcodeMemory)
    [turn] = with_codes
    assert LINE_QR in turn and "at the top right of the view" in turn
    assert turn.index(LINE_QR) < turn.index(LINE_EAN)  # top to bottom
    assert "<1.0 seconds>" in turn  # the first frame's codes, in the first tick


def test_modes_without_barcodes_do_not_scan():
    rt = scripted()
    out = run(frames(3), rt, until=3.5, mode=Mode.GENERAL)
    assert not [t for t in rt.sessions[0].turns if "Barcode" in t]
    assert out.session is not None
    assert out.session.parts.inbound._vision is not None  # built, but idle
    assert out.session.parts.inbound._vision.stats["scans"] == 0


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> tuple[ScriptedAgent, list[DelegationRequest]]:
    """A scripted agent, and the requests it was given."""
    agent = ScriptedAgent()
    requests: list[DelegationRequest] = []
    answer = agent._run

    async def recording(request: DelegationRequest) -> Any:
        requests.append(request)
        return await answer(request)

    monkeypatch.setattr(agent, "_run", recording)
    return agent, requests


def test_a_comparison_question_goes_to_the_agent_with_the_codes_and_the_still(agent):
    scripted_agent, requests = agent
    rt = scripted()  # the model stays silent: the engine's rule delegates
    script = [
        *frames(6),
        (2.5, TextIn(QUESTION)),
        (2.8, FrameIn(0, 2800, VideoEncoding.JPEG, STILL, high_res=True)),
    ]
    out = run(
        script, rt, until=6.5, mode=Mode.SHOPPING, delegations=DelegationManager(scripted_agent)
    )
    [request] = out.of(StillRequest)
    assert request.reason == "the user asked to compare a product"
    [asked] = requests
    assert asked.question == QUESTION
    assert set(asked.barcodes) == {EAN13, QR}
    assert asked.frames[-1] == STILL and len(asked.frames) == 3  # the still, newest
    ticks = {t.tick_s: t for t in rt.sessions[0].ticks}
    assert ticks[2.0].user_query is None  # waited for the still
    assert ticks[3.0].user_query == QUESTION
    assert ticks[3.0].frame_max_pixels == STILL_MAX_PIXELS
    kinds = [s.kind for s in out.of(Speech)]
    assert kinds[:1] == [SpeechKind.DELEGATION_NOTE]  # "Let me check." while it works
    assert SpeechKind.DELEGATION_RESULT in kinds
    assert [u.state.value for u in out.of(DelegationUpdate)][-1] == "done"


def test_the_models_own_delegation_carries_the_codes_too(agent):
    scripted_agent, requests = agent
    rt = scripted((3.0, "</response> Let me look that up. </delegation> What is this product?"))
    run(frames(5), rt, until=5.5, mode=Mode.SHOPPING, delegations=DelegationManager(scripted_agent))
    [asked] = requests
    assert asked.question == "What is this product?" and set(asked.barcodes) == {EAN13, QR}


def test_outside_shopping_a_comparison_is_the_models_to_delegate(agent):
    scripted_agent, requests = agent
    script = [*frames(4), (1.5, TextIn(QUESTION))]
    out = run(
        script,
        scripted(),
        until=4.5,
        mode=Mode.GENERAL,
        delegations=DelegationManager(scripted_agent),
    )
    assert requests == [] and out.of(StillRequest) == []


@pytest.mark.parametrize(
    ("language", "question", "yes"),
    [
        ("en", "Is this cheaper elsewhere?", True),
        ("en", "What do the reviews say?", True),
        ("en", "What is this?", False),
        ("de", "Ist das woanders günstiger?", True),
        ("de", "Kannst du die Preise vergleichen?", True),
        ("de", "Was ist das?", False),
        ("es", "¿Es más barato en otro sitio?", True),
        ("es", "¿Qué opiniones tiene?", True),
        ("es", "¿Qué es esto?", False),
    ],
)
def test_comparison_questions_per_language(language, question, yes):
    assert compares(question, language) is yes


def test_route_needs_a_code_and_keeps_the_models_own_question():
    now = [0.0]
    reading = Reading(clock=lambda: now[0])
    shopping, silent = profile(Mode.SHOPPING), Action(ActionKind.SILENCE)
    assert reading.route(silent, QUESTION, shopping) is silent  # no code seen yet
    reading.add_barcodes(decode_barcodes(shelf()))
    routed = reading.route(silent, QUESTION, shopping)
    assert (routed.kind, routed.question, routed.text) == (ActionKind.DELEGATE, QUESTION, "")
    own = Action(ActionKind.DELEGATE, "Let me check.", question="Price of this?")
    assert reading.route(own, QUESTION, shopping) is own
    assert reading.route(silent, QUESTION, profile(Mode.GENERAL)) is silent
    now[0] = 31.0  # out of the window: no code to compare with
    assert reading.route(silent, QUESTION, shopping) is silent and reading.codes() == ()


# --- the agents render them -----------------------------------------------------------

REQUEST = DelegationRequest(
    QUESTION, frames=(FRAME, STILL), context="Let me check.", barcodes=(EAN13, QR)
)


def test_the_prompt_names_the_codes():
    text = prompt_text(REQUEST)
    assert f"{EAN13}, {QR}" in text and text.index(EAN13) < text.index(f"Question: {QUESTION}")
    assert "Barcodes" not in prompt_text(DelegationRequest(QUESTION))


async def test_the_webhook_body_carries_the_codes():
    async with LocalHTTP("/hook") as srv:
        srv.replies.append(LocalHTTPReply({"spoken": "It costs less at the market."}))
        agent = WebhookAgent(srv.base + "/hook", timeout_s=5)
        try:
            answer = await agent.answer(REQUEST, 5)
        finally:
            await agent.aclose()
    assert answer.spoken == "It costs less at the market."
    [body] = srv.requests
    assert body["barcodes"] == [EAN13, QR] and body["question"] == QUESTION
    assert len(body["frames"]) == 2


def test_the_chat_agents_request_names_the_codes():
    chat = OpenAIChatAgent("http://127.0.0.1:9/v1", "helper").payload(REQUEST)
    text, *images = chat["messages"][1]["content"]
    assert f"{EAN13}, {QR}" in text["text"] and len(images) == 2


async def test_a_command_agent_gets_the_codes_in_argv_and_environment(tmp_path):
    script = tmp_path / "agent.py"
    script.write_text(
        "import json, os, sys\n"
        "print(json.dumps({'spoken': 'Seen ' + sys.argv[1] + ' and ' "
        "+ os.environ['MURMUR_BARCODES'] + '.'}))\n"
    )
    agent = CommandAgent([sys.executable, str(script), "{barcodes}"], timeout_s=10)
    answer = await agent.answer(REQUEST, 10)
    assert answer.spoken == f"Seen {EAN13},{QR} and {EAN13},{QR}."
