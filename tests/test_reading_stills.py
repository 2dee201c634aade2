"""Reading on demand: "read the sign for me" → StillRequest → the still → the next
tick at the still's pixel budget, with its OCR text when OCR is on; a bridge that
does not answer → the normal frame and one Notice; the model saying it cannot read
→ one StillRequest. Checked on the session harness (virtual time), over real gRPC,
and on both runtimes' pixel budgets (the tiny Qwen3-VL, the OpenAI wire).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import importlib.util
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from murmur.v1 import companion_pb2 as pb
from PIL import Image, ImageDraw, ImageFont

from server.config import Settings
from server.engine.reading import STILL_LINE, STILL_TEXT, Reading, cannot_read
from server.events import (
    AudioEncoding,
    AudioFormat,
    ClientEvent,
    FrameIn,
    Mode,
    Notice,
    SessionStart,
    StillRequest,
    TextIn,
    VideoEncoding,
)
from server.modes import profile
from server.runtime.base import Frame, InteractionRuntime, TickInput
from server.runtime.conversation import Conversation
from server.runtime.limits import MAX_PIXELS, PIXELS_PER_TOKEN, STILL_MAX_PIXELS
from server.runtime.openai import OpenAIRuntimeOptions
from server.runtime.openai.wire import data_url
from server.runtime.prompt import QUERY_HEADER
from server.runtime.scripted import ScriptedSession
from server.session.services import DelegationService, SessionServices
from server.vision.ocr import OcrBackend, load_ocr
from tests import session_harness
from tests.fake_vllm import INSTRUCTION, image_parts, runtime
from tests.fakes import FakeVLLM, InstantTTS
from tests.harness import Client, running_server, scripted
from tests.session_harness import SessionRun, run_session

PCM_OUT = AudioFormat(AudioEncoding.PCM16, 16000)
SIGN = ("PLATFORM 4", "Exit to Main St")
QUERY = "Read the sign for me"


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def sign_still(size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A phone photo of a sign: two lines of white print on a blue board."""
    w, h = size
    img = Image.new("RGB", size, (90, 110, 90))
    draw = ImageDraw.Draw(img)
    draw.rectangle((w * 0.2, h * 0.25, w * 0.8, h * 0.7), fill=(20, 60, 160))
    font = ImageFont.load_default(size=h // 12)
    draw.text((w * 0.25, h * 0.32), SIGN[0], fill="white", font=font)
    draw.text((w * 0.25, h * 0.48), SIGN[1], fill="white", font=font)
    return _jpeg(img)


FRAME = _jpeg(Image.new("RGB", (640, 480), (90, 110, 90)))


def frames(until: float, data: bytes = FRAME) -> list[tuple[float, ClientEvent]]:
    """The glasses' 1 fps video: frame n at n seconds."""
    return [
        (float(n), FrameIn(n, n * 1000, VideoEncoding.JPEG, data)) for n in range(int(until) + 1)
    ]


def still_at(t: float, data: bytes | None = None) -> tuple[float, ClientEvent]:
    # As mobile_bridge sends one: seq 0, high_res set.
    return (t, FrameIn(0, int(t * 1000), VideoEncoding.JPEG, data or sign_still(), high_res=True))


def run(
    script: Sequence[tuple[float, ClientEvent]],
    rt: InteractionRuntime,
    *,
    until: float,
    mode: Mode = Mode.BLIND,
    ocr: OcrBackend | None = None,
    delegations: DelegationService | None = None,
) -> SessionRun:
    """``run_session`` in ``mode``, with the services' OCR backend set to ``ocr``."""
    made = session_harness.make_services

    def with_ocr(*args: Any, **kwargs: Any) -> SessionServices:
        return dataclasses.replace(made(*args, **kwargs), ocr=ocr)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(session_harness, "make_services", with_ocr)
        start = SessionStart(mode=mode, audio_out=PCM_OUT)
        return run_session(script, rt, until=until, start=start, delegations=delegations)


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, tuple[int, int] | None, Any]]:
    """(tick, size of the picture the model got, its pixel budget) for every tick."""
    seen: list[tuple[float, tuple[int, int] | None, Any]] = []
    original = ScriptedSession._run_turn

    def recording(self: ScriptedSession, turn: Any, on_clause: Any) -> Any:
        size = turn.image.size if turn.image is not None else None
        seen.append((turn.tick.tick_s, size, turn.tick.frame_max_pixels))
        return original(self, turn, on_clause)

    monkeypatch.setattr(ScriptedSession, "_run_turn", recording)
    return seen


def _ticks_with(rt: Any, text: str) -> list[str]:
    return [t for t in rt.sessions[0].turns if text in t]


# --- the session harness --------------------------------------------------------------


def test_read_the_sign_sends_a_still_request_and_the_next_tick_shows_the_still(shown):
    rt = scripted()
    script = [*frames(4), (0.5, TextIn(QUERY)), still_at(1.3)]
    out = run(script, rt, until=4.5)
    assert out.types()[:2] == ["SessionReady", "StillRequest"]
    assert out.at(StillRequest) == [pytest.approx(0.5, abs=0.01)]
    assert out.of(StillRequest)[0].reason == "the user asked to read"
    assert not out.of(Notice)
    # The question waited for its still (the 1 s tick went on without it); the 2 s
    # tick shows the still, not the frame that came after it, at the still's budget.
    by_tick = {t: (size, budget) for t, size, budget in shown}
    assert by_tick[1.0] == ((640, 480), None)
    assert by_tick[2.0] == ((1600, 1200), STILL_MAX_PIXELS)
    assert by_tick[3.0] == ((640, 480), None)
    [turn] = _ticks_with(rt, QUERY)
    assert turn.index(QUERY_HEADER) < turn.index(QUERY) < turn.index(STILL_LINE)
    assert turn.rstrip().endswith("<2.0 seconds>")  # the image follows the time marker
    ticks = {t.tick_s: t for t in rt.sessions[0].ticks}
    assert ticks[1.0].user_query is None and ticks[2.0].user_query == QUERY
    assert ticks[2.0].frame_max_pixels == STILL_MAX_PIXELS and not ticks[3.0].still
    assert STILL_TEXT not in turn  # OCR is off: the model reads the still alone


def _has_rapidocr() -> bool:
    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


needs_ocr = pytest.mark.skipif(
    not _has_rapidocr(), reason="rapidocr-onnxruntime is not installed (pip install 'murmur[ocr]')"
)


@pytest.fixture(scope="module")
def ocr() -> OcrBackend:
    backend = load_ocr("rapidocr")
    assert backend is not None
    return backend


@pytest.mark.slow
@needs_ocr
def test_with_ocr_on_the_still_tick_holds_the_signs_text(shown, ocr):
    rt = scripted()
    out = run([*frames(4), (0.5, TextIn(QUERY)), still_at(1.3)], rt, until=4.5, ocr=ocr)
    assert out.types()[:2] == ["SessionReady", "StillRequest"] and not out.of(Notice)
    [turn] = _ticks_with(rt, STILL_TEXT)
    assert QUERY in turn and STILL_LINE in turn
    line = next(x for x in turn.splitlines() if x.startswith(STILL_TEXT))
    assert line == f'{STILL_TEXT} "{SIGN[0]} / {SIGN[1]}"'
    assert (2.0, (1600, 1200), STILL_MAX_PIXELS) in shown


def test_a_bridge_that_sends_no_still_gets_the_normal_frame_and_one_notice(shown):
    rt = scripted()
    # A second reading question after the first timed out: asked again, not waited for.
    out = run([*frames(9), (0.5, TextIn(QUERY)), (5.5, TextIn("Read the label"))], rt, until=9.5)
    assert len(out.of(StillRequest)) == 2
    [notice] = out.of(Notice)
    assert notice.code == "still.timeout" and "3 s" in notice.message and notice.retryable
    ticks = {t.tick_s: t for t in rt.sessions[0].ticks}
    assert [ticks[s].user_query for s in (1.0, 2.0, 3.0)] == [None, None, None]
    assert ticks[4.0].user_query == QUERY  # 3 s after the request: on with the frame
    assert ticks[6.0].user_query == "Read the label"  # no longer waits
    # The normal frame, or the still view said in text (engine/scene.py): never a still.
    assert all(budget is None and size in ((640, 480), None) for _, size, budget in shown)
    assert {4.0, 6.0} <= {t for t, size, _ in shown if size == (640, 480)}  # the questions
    assert out.at(Notice)[0] == pytest.approx(4.0, abs=0.05)


def test_a_still_after_a_timeout_is_still_shown_and_waiting_resumes(shown):
    rt = scripted()
    script = [
        *frames(8),
        (0.5, TextIn(QUERY)),
        still_at(4.5),  # too late for the question, but a still
        (5.2, TextIn("Read the label")),
        still_at(6.4),
    ]
    out = run(script, rt, until=8.5)
    assert len(out.of(StillRequest)) == 2 and len(out.of(Notice)) == 1
    by_tick = {t: (size, budget) for t, size, budget in shown}
    assert by_tick[5.0] == ((1600, 1200), STILL_MAX_PIXELS)  # late, but shown
    ticks = {t.tick_s: t for t in rt.sessions[0].ticks}
    assert ticks[4.0].user_query == QUERY and ticks[5.0].user_query is None
    # A still came: questions wait for theirs again.
    assert ticks[6.0].user_query is None
    assert ticks[7.0].user_query == "Read the label" and by_tick[7.0][1] == STILL_MAX_PIXELS


def test_the_model_saying_it_cannot_read_asks_for_one_still(shown):
    rt = scripted(
        (1.0, "</response> I can't read the sign from here."),
        (2.0, "</response> Sorry, the print is too small to read."),
    )
    out = run([*frames(5), still_at(2.5)], rt, until=5.5)
    assert len(out.of(StillRequest)) == 1  # once per such reply, rate-limited
    assert out.of(StillRequest)[0].reason == "the model could not read it"
    assert out.at(StillRequest)[0] == pytest.approx(1.0, abs=0.05)
    by_tick = {t: (size, budget) for t, size, budget in shown}
    assert by_tick[3.0] == ((1600, 1200), STILL_MAX_PIXELS)
    assert _ticks_with(rt, STILL_LINE) and "<3.0 seconds>" in _ticks_with(rt, STILL_LINE)[0]


@pytest.mark.parametrize(
    ("language", "reply", "asks"),
    [
        ("en", "I can't read that sign from here.", True),
        ("en", "I cannot make out the label.", True),
        ("en", "The text is too small to read.", True),
        ("en", "The sign says Platform 4.", False),
        ("en", "Read the label before you buy.", False),
        ("de", "Das Schild kann ich nicht lesen.", True),
        ("de", "Die Schrift ist unleserlich.", True),
        ("de", "Auf dem Schild steht Ausgang.", False),
        ("es", "No puedo leer el cartel.", True),
        ("es", "El letrero es ilegible.", True),
        ("es", "El cartel dice salida.", False),
        ("de", "I can't read it.", True),  # English is understood in every session
    ],
)
def test_cannot_read_phrases_per_language(language, reply, asks):
    assert cannot_read(reply, language) is asks


def test_one_request_at_a_time_answers_every_question():
    now = [0.0]
    reading = Reading(clock=lambda: now[0])
    blind = profile(Mode.BLIND)
    assert reading.for_query("read the sign", blind) is not None
    assert reading.for_query("what does it say", blind) is None  # the one on its way
    assert reading.for_query("how far is the door", blind) is None  # no still needed
    now[0] = 1.0
    assert reading.seen(None).hold
    reading.answered()  # the bridge sent it; OCR takes a while: still waiting
    now[0] = 8.9
    assert reading.seen(None).hold
    now[0] = 9.1  # read for longer than read_s: the question goes on, no Notice
    assert not reading.seen(None).hold and reading.after("") == []


# --- over real gRPC, the app wiring OCR from the settings ------------------------------


@pytest.mark.slow
@needs_ocr
async def test_over_grpc_a_still_answers_the_request_with_its_text():
    rt = scripted()
    settings = Settings().with_overrides("vision", ocr="rapidocr")
    async with running_server(rt, InstantTTS(), settings) as srv, Client(srv.address) as c:
        await c.start(mode=pb.MODE_BLIND)
        await c.frame(0, FRAME)
        await c.send(pb.ClientEvent(text_input=pb.TextInput(text=QUERY)))
        await c.wait_for("still_request")
        t0 = time.perf_counter()
        still = pb.VideoFrame(seq=0, capture_time_ms=500, data=sign_still(), high_res=True)
        await c.send(pb.ClientEvent(video_frame=still))
        for seq in range(1, 60):  # the camera goes on until the still's tick has run
            await c.frame(seq, FRAME)
            await asyncio.sleep(0.25)
            if _ticks_with(rt, STILL_TEXT):
                break
        waited = time.perf_counter() - t0
        assert await c.finish() is not None
    [turn] = _ticks_with(rt, STILL_TEXT)
    assert QUERY in turn and f'"{SIGN[0]} / {SIGN[1]}"' in turn
    assert not c.of("notice")
    assert waited < 15.0  # the read, OCR included, within a few ticks


# --- both runtimes honour the still's budget ------------------------------------------


def _big(size: tuple[int, int] = (1600, 1200)) -> Frame:
    return Frame(Image.effect_noise(size, 50).convert("RGB"), 1, 1000, 0.0)


def test_the_openai_wire_sends_a_still_at_its_larger_budget(vllm: FakeVLLM):
    rt = runtime(vllm, stream=False)
    session = rt.open_session(INSTRUCTION)
    session.step(TickInput(1.0, _big()))
    session.step(TickInput(2.0, _big(), frame_max_pixels=STILL_MAX_PIXELS))
    rt.close()
    *_, normal, still = image_parts(vllm.bodies()[-1])
    assert normal["image_url"] is None  # sent once, then named by uuid
    first = image_parts(vllm.bodies()[0])[0]
    sizes = [_decoded(p) for p in (first, still)]
    assert sizes[0][0] * sizes[0][1] <= MAX_PIXELS < sizes[1][0] * sizes[1][1] <= STILL_MAX_PIXELS
    assert sizes == [(591, 443), (1182, 886)]


def _decoded(part: dict[str, Any]) -> tuple[int, int]:
    url = part["image_url"]["url"]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size


def test_a_still_budget_is_never_below_the_frame_cap():
    conv = Conversation("Watch.")
    turn = conv.next_turn(TickInput(0.0, _big(), frame_max_pixels=1000))
    [image] = [p for p in turn.message["content"] if p["type"] == "image"]
    assert image["max_pixels"] == 1000
    options = OpenAIRuntimeOptions(base_url="http://127.0.0.1:9/v1")
    url = data_url(image["image"], options, image["max_pixels"])
    assert _decoded({"image_url": {"url": url}}) == (591, 443)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_qwen import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen3-vl-stills"))


@pytest.mark.slow
def test_a_still_tick_gets_more_vision_tokens_on_the_tiny_qwen(tiny: Path):
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from server.runtime.transformers import TransformersOptions, TransformersRuntime

    # The production frame cap (MAX_PIXELS), as `murmur serve` runs it; a margin no
    # random model clears keeps every tick to its decision (no reply is generated).
    options = TransformersOptions(background_summary=False, speak_margin=1e9)
    rt = TransformersRuntime.load(str(tiny), device="cpu", options=options)
    try:
        session = rt.open_session("Watch.")
        pad = rt.loaded.model.config.image_token_id
        counts = []
        for tick in (
            TickInput(1.0, _big()),
            TickInput(2.0, _big(), frame_max_pixels=STILL_MAX_PIXELS),
            TickInput(3.0, _big()),
        ):
            before = session.debug_state().token_ids.count(pad)
            session.step(tick)
            counts.append(session.debug_state().token_ids.count(pad) - before)
        session.close()
    finally:
        rt.close()
    normal, still, after = counts
    # 1600×1200 fitted to 262,144 px: 416×576 (13×18 tokens); to 1,048,576 px: 864×1152.
    assert (normal, still, after) == (234, 972, 234)
    assert normal * PIXELS_PER_TOKEN <= MAX_PIXELS and still * PIXELS_PER_TOKEN <= STILL_MAX_PIXELS
