"""The in-process runtime on a tiny random Qwen3-VL, loaded like the real 8B.

The checkpoint is built once per test session (tests/tiny_qwen.py) with the real
Qwen3 tokenizer, and loaded through ``TransformersRuntime.load(folder)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from PIL import Image

from server.errors import ModelLoadError
from server.runtime.base import ActionKind, Frame, TickInput
from server.runtime.clauses import ClauseStream
from server.runtime.memory import SessionMemory
from server.runtime.prompt import NO_FRAME
from server.runtime.transformers import (
    TransformersDebugState,
    TransformersOptions,
    TransformersRuntime,
    TransformersSession,
    attention,
    loading,
)
from server.runtime.transformers import session as kv_session
from server.runtime.transformers.forward import render_message
from tests.tiny_qwen import build_tiny_qwen, reference_logits

pytestmark = pytest.mark.slow

# Small frames keep the tiny model fast; the runtime's pixel bounds apply to all sessions.
MIN_PIXELS = 32 * 32
SIZES = [(64, 48), (96, 64), (128, 128), (160, 96), (48, 200)]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen3-vl"))


@pytest.fixture(scope="session")
def runtime(tiny_dir: Path) -> Iterator[TransformersRuntime]:
    rt = TransformersRuntime.load(
        str(tiny_dir),
        device="cpu",
        options=TransformersOptions(min_pixels=MIN_PIXELS, max_pixels=160 * 160),
    )
    yield rt
    rt.close()


def _opts(**kw: object) -> TransformersOptions:
    base = TransformersOptions(
        min_pixels=MIN_PIXELS,
        max_pixels=160 * 160,
        background_summary=False,
        max_new_tokens=4,
        summary_max_new_tokens=4,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def _tick(t: int, *, query: str | None = None, size: tuple[int, int] | None = None) -> TickInput:
    w, h = size or SIZES[t % len(SIZES)]
    # Different pixels every tick so a wrong position or a stale image shows.
    img = Image.effect_noise((w, h), 40 + t).convert("RGB")
    return TickInput(tick_s=float(t), frame=Frame(img, t, t * 1000, 0.0), user_query=query)


def _script_reply(rt: TransformersRuntime, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """Make the next replies generate ``text`` (a random model says nothing useful).

    Replaces the reply's decode loop only: chunk summaries keep the real one."""
    ids = rt.forward.tokenize(text)

    def fake_generate(logits: object, max_new: int, **kw: Any) -> list[int]:
        for n in range(1, len(ids) + 1):
            if kw.get("on_token") is not None:
                kw["on_token"](ids[:n])
        return ids

    monkeypatch.setattr(kv_session, "generate", fake_generate)


def _state(session: TransformersSession) -> TransformersDebugState:
    return session.debug_state()


def _reference(rt: TransformersRuntime, session: TransformersSession) -> tuple[Any, list[int]]:
    """The current tick recomputed from scratch: everything before its assistant turn."""
    state = _state(session)
    return reference_logits(
        rt.loaded.model,
        rt.loaded.processor,
        list(state.messages[:-1]),
        list(state.decision_prefix_ids),
        rt.forward.lock,
    )


# -- loading ------------------------------------------------------------------


def test_loads_through_the_production_path(runtime: TransformersRuntime) -> None:
    assert type(runtime.loaded.model).__name__ == "Qwen3VLForConditionalGeneration"
    assert runtime.loaded.dtype == torch.float32  # fp32 on CPU
    assert runtime.capabilities.incremental and runtime.capabilities.streams_text
    assert runtime.loaded.processor.image_processor is not None


def test_renderer_matches_the_checkpoint_chat_template(runtime: TransformersRuntime) -> None:
    session = runtime.open_session("Read signs.", options=_opts(speak_margin=1e9))
    for t in range(3):
        session.step(_tick(t, query="what does it say?" if t == 1 else None))
    messages = list(_state(session).messages)
    rendered = "".join(render_message(m) for m in messages)
    template = runtime.loaded.processor.apply_chat_template(messages, tokenize=False)
    assert rendered == template


def test_not_a_checkpoint_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError) as e:
        TransformersRuntime.load(str(tmp_path), device="cpu")
    assert "config.json" in e.value.message
    assert "--model http://HOST:PORT/v1" in e.value.message
    assert "scripted:FILE" in e.value.message


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        TransformersRuntime.load(str(tmp_path / "nope"), device="cpu")


def test_not_a_qwen3_vl_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="qwen3_vl"):
        TransformersRuntime.load(str(tmp_path), device="cpu")


def test_hub_id_offline_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as e:
        TransformersRuntime.load("jdopensource/JoyAI-VL-Interaction", device="cpu")
    assert time.monotonic() - started < 15
    assert "local folder" in e.value.message or "local checkpoint folder" in e.value.message
    assert "HF_HUB_OFFLINE" in e.value.message


def test_cuda_without_gpu_is_a_load_error(tiny_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        TransformersRuntime.load(str(tiny_dir), device="cuda")


def _prequantized_copy(tiny_dir: Path, tmp_path: Path) -> Path:
    """The tiny checkpoint, labelled the way the official INT4 build's config is."""
    folder = tmp_path / "int4"
    shutil.copytree(tiny_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4}}},
        "ignore": ["lm_head", "re:model.visual.*"],
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_prequantized_checkpoint_refuses_a_second_quantization(
    tiny_dir: Path, tmp_path: Path
) -> None:
    folder = _prequantized_copy(tiny_dir, tmp_path)
    with pytest.raises(ModelLoadError, match=r"already quantized \(compressed-tensors\)"):
        TransformersRuntime.load(str(folder), device="cpu", quantization="4bit")


def test_prequantized_checkpoint_names_the_package_it_needs(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _prequantized_copy(tiny_dir, tmp_path)
    real = loading.importlib.util.find_spec
    monkeypatch.setattr(
        loading.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "compressed_tensors" else real(name, *a),
    )
    with pytest.raises(ModelLoadError, match="pip install compressed-tensors"):
        TransformersRuntime.load(str(folder), device="cpu")


def test_weight_estimate_follows_the_checkpoint(tiny_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoConfig

    from tests.tiny_qwen import TinyShape, tiny_config

    plain = AutoConfig.from_pretrained(tiny_dir)
    params = loading.estimate_weight_bytes(plain, torch.float32, None) // 4
    assert loading.estimate_weight_bytes(plain, torch.bfloat16, None) == params * 2
    assert loading.estimate_weight_bytes(plain, torch.bfloat16, "8bit") == params
    folder = _prequantized_copy(tiny_dir, tmp_path)
    packed = AutoConfig.from_pretrained(folder)
    assert loading.checkpoint_quantization(packed) == "compressed-tensors"
    # When its files are all here, they are the answer.
    on_disk = (folder / "model.safetensors").stat().st_size
    assert loading.estimate_weight_bytes(packed, torch.bfloat16, None, str(folder)) == on_disk
    # An interrupted sharded download is not: the estimate is used instead.
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    before = loading.estimate_weight_bytes(packed, torch.bfloat16, None, str(folder))
    assert before == loading.estimate_weight_bytes(packed, torch.bfloat16, None)
    assert params < before < params * 2  # some layers packed, the rest in bf16
    # At 8B: 17.5 GB in bf16 (17.6 GB on the hub), and the INT4 build before its
    # download within a few percent of the 7.6 GB it is.
    eight_b = tiny_config(TinyShape.eight_b())
    assert 17.4e9 < loading.estimate_weight_bytes(eight_b, torch.bfloat16, None) < 17.7e9
    eight_b.quantization_config = packed.quantization_config
    int4 = loading.estimate_weight_bytes(eight_b, torch.bfloat16, None)
    assert 7.0e9 < int4 < 8.0e9
    eight_b.quantization_config = {"quant_method": "gptq", "bits": 4, "group_size": -1}
    assert 0.9 * int4 < loading.estimate_weight_bytes(eight_b, torch.bfloat16, None) < int4


# -- the tick protocol ----------------------------------------------------------


@pytest.mark.parametrize("strategy", ["split", "folded"])
def test_incremental_ticks_match_full_recompute(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    """22 ticks, five frame sizes, user queries mid-chunk, replies, two rollovers.

    Both attention strategies run here on the CPU: split is the CPU's, folded the
    one a GPU takes (server/runtime/attention.py)."""
    if strategy == "folded":
        monkeypatch.setattr(attention, "SPLIT_DEVICES", set())
    session = runtime.open_session(
        "Warn me about obstacles.", options=_opts(chunk_ticks=9, speak_margin=1e9)
    )
    _script_reply(runtime, monkeypatch, " Door on your left, two steps.")
    runtime.loaded.processor.image_processor.size = dict(runtime.forward.image_size)
    worst = 0.0
    for t in range(22):
        speak = t % 5 == 2
        session.options = dataclasses.replace(session.options, speak_margin=-1e9 if speak else 1e9)
        if t == 6:
            session.add_context("Bus 42 arrives in 3 minutes.")
        if t == 8:
            session.heard("Door on your left, two steps.", "Door on your left,")
        # Ticks 10 and 15 had no new camera frame: a text-only turn.
        no_frame = t in (10, 15)
        tick = _tick(t, query="is the road clear?" if t in (4, 12) else None)
        action = session.step(dataclasses.replace(tick, frame=None) if no_frame else tick)
        assert action.kind is (ActionKind.RESPONSE if speak else ActionKind.SILENCE)
        ref, ids = _reference(runtime, session)
        state = _state(session)
        assert list(state.token_ids[: len(ids)]) == ids, f"tick {t}: token ids differ"
        assert state.decision_logits is not None
        worst = max(worst, float((ref - state.decision_logits).abs().max()))
        if no_frame:
            assert state.messages[-2]["content"][0]["text"].endswith(f"seconds> {NO_FRAME}")
            assert len(state.messages[-2]["content"]) == 1  # no image repeated
    assert worst <= 1e-4, worst
    assert _state(session).conversation.qa_history  # the rollovers carried Q&A history
    assert attention.folded_mask.cache_info().currsize == 0  # no mask outlives a forward


@pytest.mark.parametrize("strategy", ["split", "folded"])
@pytest.mark.parametrize(("new", "cached"), [(1, 0), (1, 37), (7, 0), (7, 50)])
def test_cached_attention_matches_masked_attention(
    monkeypatch: pytest.MonkeyPatch, strategy: str, new: int, cached: int
) -> None:
    """Against the textbook form: repeat the KV heads, mask the new tokens causally."""
    if strategy == "folded":
        monkeypatch.setattr(attention, "SPLIT_DEVICES", set())
    torch.manual_seed(new * 100 + cached)
    heads, kv_heads, dim = 8, 2, 16
    q = torch.randn(1, heads, new, dim)
    k = torch.randn(1, kv_heads, cached + new, dim)
    v = torch.randn(1, kv_heads, cached + new, dim)
    mask = torch.ones(new, cached + new, dtype=torch.bool)
    mask[:, cached:] = torch.ones(new, new, dtype=torch.bool).tril()
    rep = heads // kv_heads
    want = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1), attn_mask=mask
    ).transpose(1, 2)
    got, _ = attention.cached_attention(torch.nn.Module(), q, k, v, None, scaling=dim**-0.5)
    assert got.shape == (1, new, heads, dim)
    assert float((got - want).abs().max()) < 1e-5


@pytest.mark.parametrize("strategy", ["split", "folded"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_on_the_cpu_ticks(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, dtype: str
) -> None:
    if strategy == "folded":
        monkeypatch.setattr(attention, "SPLIT_DEVICES", set())
    rt = TransformersRuntime.load(str(tiny_dir), device="cpu", dtype=dtype, options=_opts())
    session = rt.open_session("Warn me about obstacles.")
    for t in range(3):
        session.step(_tick(t))
    logits = _state(session).decision_logits
    assert logits is not None and bool(logits.isfinite().all())
    session.close()
    rt.close()


def test_folded_mask_is_built_once_and_readable_in_place() -> None:
    mask = attention.folded_mask(4, 5, 37, torch.device("cpu"), torch.bfloat16)
    assert mask.shape == (20, 42) and mask.dtype == torch.bfloat16
    assert mask.stride(0) % 16 == 0  # CUDA's memory-efficient kernel takes it without a copy
    assert attention.folded_mask(4, 5, 37, torch.device("cpu"), torch.bfloat16) is mask


def test_sequential_positions_would_not_match(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The equivalence test can fail: plain positions after a cached frame are wrong."""
    fwd = runtime.forward

    def sequential(ids: torch.Tensor, vision: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.arange(ids.shape[1]).view(1, -1).expand(3, -1)

    monkeypatch.setattr(fwd, "rope_positions", sequential)
    session = runtime.open_session("Warn me about obstacles.", options=_opts(speak_margin=1e9))
    runtime.loaded.processor.image_processor.size = dict(fwd.image_size)
    worst = 0.0
    for t in range(3):
        session.step(_tick(t))
        ref, _ = _reference(runtime, session)
        logits = _state(session).decision_logits
        assert logits is not None
        worst = max(worst, float((ref - logits).abs().max()))
    assert worst > 1e-3


def test_huge_margin_forces_silence(runtime: TransformersRuntime) -> None:
    session = runtime.open_session("Describe everything.", options=_opts(speak_margin=1e9))
    clauses: list[str] = []
    for t in range(3):
        assert session.step(_tick(t), clauses.append).kind is ActionKind.SILENCE
    assert clauses == []
    text = runtime.forward.decode(list(_state(session).token_ids))
    assert text.count("</silence><|im_end|>") == 3


def test_negative_margin_forces_a_streamed_response(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = runtime.open_session("Describe everything.", options=_opts(speak_margin=-1e9))
    clauses: list[str] = []
    action = session.step(_tick(0), clauses.append)
    assert action.kind is ActionKind.RESPONSE and clauses  # the random model's own reply
    assert [name for name, _ in action.stages] == ["decide", "reply"]
    _script_reply(runtime, monkeypatch, " Door on your left, two steps ahead. Careful!")
    clauses.clear()
    action = session.step(_tick(1), clauses.append)
    assert action.text == "Door on your left, two steps ahead. Careful!"
    assert clauses == ["Door on your left,", "two steps ahead.", "Careful!"]
    assert _state(session).last_step.first_token_ms is not None


def test_delegation_is_detected_and_not_spoken(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = runtime.open_session("Help me shop.", options=_opts(speak_margin=-1e9))
    _script_reply(runtime, monkeypatch, " Let me check. </delegation> Which cereal has less sugar?")
    clauses: list[str] = []
    action = session.step(_tick(0), clauses.append)
    assert action.kind is ActionKind.DELEGATE
    assert action.text == "Let me check."
    assert action.question == "Which cereal has less sugar?"
    assert clauses == []  # the note is spoken from the Action, as a note, not streamed


def test_heard_trims_the_last_reply(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = runtime.open_session("Guide me.", options=_opts(speak_margin=-1e9))
    _script_reply(runtime, monkeypatch, " Door on your left. Two steps ahead.")
    action = session.step(_tick(0))
    untrimmed = len(_state(session).token_ids)
    session.heard(action.text, "Door on your left.")
    session.options = dataclasses.replace(session.options, speak_margin=1e9)
    session.step(_tick(1))
    state = _state(session)
    text = runtime.forward.decode(list(state.token_ids))
    assert "</response> Door on your left.<|im_end|>" in text
    assert "Two steps ahead" not in text
    assert state.messages[2]["content"][0]["text"] == "</response> Door on your left."
    assert "heard only" not in state.messages[3]["content"][0]["text"]
    assert untrimmed - len(runtime.forward.tokenize(" Two steps ahead.")) < len(state.token_ids)
    assert "Assistant: Door on your left." in state.conversation.qa_history


def test_heard_after_later_turns_becomes_a_context_line(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = runtime.open_session("Guide me.", options=_opts(speak_margin=-1e9))
    _script_reply(runtime, monkeypatch, " Door on your left. Two steps ahead.")
    action = session.step(_tick(0))
    session.options = dataclasses.replace(session.options, speak_margin=1e9)
    session.step(_tick(1))
    session.heard(action.text, "Door on your left.")
    session.step(_tick(2))
    last_user = _state(session).messages[-2]["content"][0]["text"]
    assert 'heard only "Door on your left."' in last_user


def test_add_context_enters_the_next_turn_and_history(runtime: TransformersRuntime) -> None:
    session = runtime.open_session("Guide me.", options=_opts(speak_margin=1e9, chunk_ticks=2))
    session.step(_tick(0))
    session.add_context("Bus 42 arrives in 3 minutes.")
    session.step(_tick(1))  # closes the chunk
    assert "Bus 42 arrives in 3 minutes." in _state(session).messages[-2]["content"][0]["text"]
    session.step(_tick(2))  # first turn of the next chunk
    first = _state(session).messages[1]["content"][0]["text"]
    assert "[Q&A History]" in first and "Bus 42" in first
    assert "Guide me." in first  # the standing instruction, restated


def test_background_summary_does_not_block_the_next_tick(runtime: TransformersRuntime) -> None:
    session = runtime.open_session(
        "Guide me.",
        options=_opts(
            speak_margin=1e9, chunk_ticks=2, background_summary=True, summary_max_new_tokens=64
        ),
    )
    for t in range(6):
        session.step(_tick(t))
    state = _state(session)
    assert state.conversation.rollover_due and state.conversation.chunk_ticks == 2
    # The summary runs in the runtime's own summary executor, not in a private thread.
    names = {th.name for th in threading.enumerate()}
    assert any(n.startswith("model-summary") for n in names), names
    session.step(_tick(6))  # the next tick cuts it short and starts the next chunk
    assert _state(session).conversation.chunk_ticks == 1
    session.close()
    assert not _state(session).summary_running


def test_memory_of_an_hour_stays_flat(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour at one tick a second on a fast clock: 3,600 ticks in the default
    100-tick chunks, summaries in the background, queries, replies and background
    answers along the way. After the first chunk nothing grows: process memory, KV
    buffers, the tokens of a chunk at the same point, the history text."""
    options = dataclasses.replace(_opts(speak_margin=1e9), background_summary=True)
    assert options.chunk_ticks == 100
    session = runtime.open_session("Warn me about obstacles.", options=options)
    _script_reply(runtime, monkeypatch, " Careful, step down ahead.")
    probes: dict[int, tuple[int, int, int]] = {}
    for t in range(3600):
        speak = t % 97 == 5
        session.options = dataclasses.replace(session.options, speak_margin=-1e9 if speak else 1e9)
        if t % 11 == 0:
            session.add_context(f"Delegation result {t}: " + "words " * 40)
        q = "anything ahead?" if t % 17 == 0 else None
        session.step(_tick(t, query=q, size=(64, 64)))
        if t in (149, 3549):  # half-way through the second chunk and the last
            state = _state(session)
            probes[t] = (_rss(), state.kv_bytes, len(state.token_ids))
    rss_early, kv_early, ids_early = probes[149]
    rss_end, kv_end, ids_end = probes[3549]
    assert kv_end == kv_early
    assert ids_end <= ids_early + 64  # history text is capped, so a chunk's tokens are too
    state = _state(session)
    assert state.cached_tokens <= state.capacity
    assert len(state.conversation.video_history) <= session.options.video_history_chars
    assert len(state.conversation.qa_history) <= session.options.qa_history_chars
    assert "Careful, step down ahead." in state.conversation.qa_history
    assert rss_end - rss_early < 40 * 2**20, (rss_early, rss_end)
    session.close()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- pure pieces ------------------------------------------------------------------


def test_clause_stream_holds_back_markers() -> None:
    stream = ClauseStream()
    text = ""
    out: list[str] = []
    for piece in ["Stop", ", car", " at 2 o'clock. Wait", " <", "/dele", "gation> When?"]:
        text += piece
        out += stream.feed(text)
    out += stream.finish(text)
    # "Wait" is the delegation note: never streamed as reply text.
    assert out == ["Stop,", "car at 2 o'clock."]


def test_clause_stream_never_streams_a_one_clause_delegation_note() -> None:
    stream = ClauseStream()
    text, out = "", []
    for piece in ["Let me", " look.", " </dele", "gation> What is on the shelf?"]:
        text += piece
        out += stream.feed(text)
    assert out + stream.finish(text) == []


def test_clause_stream_flushes_the_last_clause_of_a_reply() -> None:
    stream = ClauseStream()
    assert stream.feed("Door on your left.") == []  # held: a delegation might follow
    assert stream.finish("Door on your left.") == ["Door on your left."]


def test_session_memory_compresses_and_stays_bounded() -> None:
    memory = SessionMemory(
        video_max_chars=300, qa_max_chars=100, summary_max_chars=120, mid_term_max=2
    )
    calls: list[str] = []

    def compressor(text: str) -> str:
        calls.append(text)
        return "Walked down a street with cars."

    for i in range(30):
        memory.add_summary(f"Chunk {i}: " + "saw a red door and a bike " * 3)
        memory.compress(compressor)
        memory.add_qa(f"User: question {i}?")
    assert calls
    assert len(memory.mid_term) <= 2
    assert memory.long_term == "Walked down a street with cars."
    assert len(memory.video_text()) <= 300
    assert len(memory.qa_text()) <= 100
    memory.compress(None)  # without the model it still stays bounded
    assert len(memory.video_text()) <= 300


def test_a_reply_that_parses_as_silence_shows_its_reply_time(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trace must see what a generated-then-silent tick cost (Action.stages)."""
    session = runtime.open_session("Guide me.", options=_opts(speak_margin=1e9))
    silent = session.step(_tick(0))
    assert [name for name, _ in silent.stages] == ["decide"]
    session.options = dataclasses.replace(session.options, speak_margin=-1e9)
    _script_reply(runtime, monkeypatch, " </silence>")
    action = session.step(_tick(1))
    assert action.silent
    assert [name for name, _ in action.stages] == ["decide", "reply"]
    assert all(ms >= 0 for _, ms in action.stages)
    session.close()
