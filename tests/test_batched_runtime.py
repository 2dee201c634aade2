"""A family on one GPU: sessions' ticks as one batched forward, one shared KV budget.

The tiny random Qwen3-VL (tests/tiny_qwen.py) is loaded like the 8B, fp32 on the
CPU. Two copies of the same sessions are fed the same ticks: one copy steps one
session at a time (each forward alone, batch 1), the other steps them together
(their forwards packed into one, runtime/transformers/batch.py). Their logits must
agree per session to 1e-4.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from PIL import Image

from server.codes import Code
from server.errors import Recoverable
from server.events import (
    AudioEncoding,
    AudioFormat,
    SessionStart,
    TickTrace,
)
from server.runtime.base import Action, ActionKind, Frame, TickInput
from server.runtime.prompt import system_message
from server.runtime.scripted import ScriptedSession
from server.runtime.transformers import (
    TransformersOptions,
    TransformersRuntime,
    TransformersSession,
    attention,
)
from server.runtime.transformers.batch import StepBatcher, forward_packed
from server.runtime.transformers.budget import KVBudget
from server.runtime.transformers.forward import QwenForward, Segment, render_message
from server.runtime.transformers.kv_cache import ChunkFullError, ChunkKVCache
from server.transport.convert import to_server
from tests.harness import scripted
from tests.session_harness import run_session
from tests.tiny_qwen import build_tiny_qwen

pytestmark = pytest.mark.slow

MIN_PIXELS = 32 * 32
MAX_PIXELS = 160 * 160


def _opts(**kw: Any) -> TransformersOptions:
    base = TransformersOptions(
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
        background_summary=False,
        max_new_tokens=4,
        summary_max_new_tokens=4,
        speak_margin=1e9,
        # Long enough that a batch always gathers every session inside a step here
        # (it stops waiting as soon as they all brought their forward).
        batch_window_ms=2000.0,
    )
    return dataclasses.replace(base, **kw)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen3-vl-batched"))


@pytest.fixture(scope="module")
def runtime(tiny_dir: Path) -> Iterator[TransformersRuntime]:
    rt = TransformersRuntime.load(str(tiny_dir), device="cpu", options=_opts())
    rt.loaded.processor.image_processor.size = dict(rt.forward.image_size)
    yield rt
    rt.close()


@functools.cache
def _image(seed: int, size: tuple[int, int]) -> Image.Image:
    """The same pixels for the same seed (``Image.effect_noise`` is random each call)."""
    w, h = size
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy(), "RGB")


@dataclass(frozen=True)
class Wearer:
    """One session's script: when it opens, its chunk, frame size and special ticks."""

    opens_at: int
    chunk_ticks: int
    size: tuple[int, int]
    text_only: frozenset[int] = frozenset()
    queries: dict[int, str] = field(default_factory=dict)
    speaks: frozenset[int] = frozenset()

    def tick(self, t: int, seed: int) -> TickInput:
        frame = None
        if t not in self.text_only:
            frame = Frame(_image(seed * 1000 + t, self.size), t, t * 1000, 0.0)
        return TickInput(tick_s=float(t), frame=frame, user_query=self.queries.get(t))


FAMILY = [
    Wearer(0, 3, (64, 48)),  # rolls over at ticks 3 and 6 (with an inline summary)
    Wearer(0, 9, (160, 96), queries={1: "is the road clear?", 4: "what does it say?"}),
    Wearer(0, 9, (128, 128), text_only=frozenset({0, 2, 5}), speaks=frozenset({2, 4})),
    Wearer(3, 9, (48, 200), queries={3: "where am I?"}, speaks=frozenset({4})),  # joins late
]
TICKS = 7


class _Gates:
    """Holds each batched session after it encoded its turn until all due have, so a
    batch always holds every session due (the real window does this in service)."""

    def __init__(self) -> None:
        self.by_session: dict[int, threading.Barrier] = {}

    def wrap(self, encode: Any) -> Any:
        def gated(session: TransformersSession, turn: Any) -> Any:
            segment = encode(session, turn)
            barrier = self.by_session.get(id(session))
            if barrier is not None:
                barrier.wait(timeout=60)
            return segment

        return gated


def _step_together(
    runtime: TransformersRuntime, due: list[tuple[TransformersSession, TickInput]], gates: _Gates
) -> list[Action]:
    barrier = threading.Barrier(len(due))
    gates.by_session = {id(s): barrier for s, _ in due}
    futures = [runtime.executor.submit(s.step, tick) for s, tick in due]
    try:
        return [f.result(timeout=120) for f in futures]
    finally:
        gates.by_session = {}


def _with_margin(session: TransformersSession, speak: bool) -> None:
    session.options = dataclasses.replace(session.options, speak_margin=-1e9 if speak else 1e9)


@pytest.mark.parametrize("strategy", ["split", "folded"])
def test_batched_ticks_give_each_session_the_logits_it_gets_alone(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    """Four wearers: frames of four sizes, text-only ticks, queries, replies (two
    generated at once: batched decode), a rollover with its summary, and a session
    that opens mid-way (fresh beside three mid-chunk)."""
    if strategy == "folded":
        monkeypatch.setattr(attention, "SPLIT_DEVICES", set())
    gates = _Gates()
    monkeypatch.setattr(TransformersSession, "_encode", gates.wrap(TransformersSession._encode))
    alone: list[TransformersSession | None] = [None] * len(FAMILY)
    batched: list[TransformersSession | None] = [None] * len(FAMILY)
    worst = 0.0
    sizes: list[list[int]] = []
    for t in range(TICKS):
        due = []
        for i, w in enumerate(FAMILY):
            if w.opens_at == t:
                opts = _opts(chunk_ticks=w.chunk_ticks)
                alone[i] = runtime.open_session("Warn me about obstacles.", options=opts)
                batched[i] = runtime.open_session("Warn me about obstacles.", options=opts)
            if w.opens_at <= t:
                due.append(i)
        one_by_one: dict[int, Action] = {}
        for i in due:
            a = alone[i]
            assert a is not None
            _with_margin(a, t in FAMILY[i].speaks)
            one_by_one[i] = a.step(FAMILY[i].tick(t, i))
            assert one_by_one[i].batch_size == 1
        pairs = []
        for i in due:
            b = batched[i]
            assert b is not None
            _with_margin(b, t in FAMILY[i].speaks)
            pairs.append((b, FAMILY[i].tick(t, i)))
        assert runtime.batcher is not None
        decoded = runtime.batcher.decode_forwards[2]
        together = dict(zip(due, _step_together(runtime, pairs, gates), strict=True))
        if t == 4:  # two wearers reply at once: their reply tokens decode as one batch
            assert runtime.batcher.decode_forwards[2] > decoded
        sizes.append([together[i].batch_size for i in due])
        for i in due:
            a, b = alone[i], batched[i]
            assert a is not None and b is not None
            sa, sb = a.debug_state(), b.debug_state()
            assert sb.token_ids == sa.token_ids, f"tick {t}, session {i}: token ids differ"
            assert sa.decision_logits is not None and sb.decision_logits is not None
            worst = max(worst, float((sa.decision_logits - sb.decision_logits).abs().max()))
            assert together[i].kind is one_by_one[i].kind
            assert together[i].text == one_by_one[i].text  # batched decode: same reply
            assert (together[i].kind is ActionKind.RESPONSE) == (t in FAMILY[i].speaks)
            # A brand-new session's system prompt joins the batch; its decision follows.
            fresh = t == FAMILY[i].opens_at and t > 0
            assert together[i].batch_size == (1 if fresh else len(due)), (t, i, sizes[-1])
    assert worst <= 1e-4, worst
    print(f"batched vs alone ({strategy}): max |Δ logit| = {worst:.2e}; batch sizes {sizes}")
    first = batched[0]
    assert first is not None and first.conversation.state().chunk >= 3  # rolled over twice
    assert attention.folded_mask.cache_info().currsize == 0  # no mask outlives a forward
    for s in (*alone, *batched):
        assert s is not None
        s.close()


def _cache(fwd: QwenForward, capacity: int) -> ChunkKVCache:
    cache = ChunkKVCache(fwd.num_layers, capacity)
    cache.allocate(
        kv_heads=fwd.kv_heads, head_dim=fwd.head_dim, dtype=fwd.kv_dtype, device=fwd.device
    )
    return cache


def _turn(fwd: QwenForward, i: int, size: tuple[int, int] | None) -> Segment:
    text = f"<|im_start|>user\n<{i}.0 seconds> {'look ' * i}"
    if size is None:
        return fwd.text_segment(fwd.tokenize(text + "<|im_end|>\n"))
    image = "<|vision_start|><|image_pad|><|vision_end|>"
    return fwd.encode(text + image + "<|im_end|>\n", _image(70 + i, size))


@pytest.mark.parametrize("strategy", ["split", "folded"])
def test_a_packed_forward_gives_each_row_its_own_forward(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    """Rows of different lengths, cached contexts and positions, with and without an
    image, and single tokens (reply decoding): logits and caches as row by row."""
    if strategy == "folded":
        monkeypatch.setattr(attention, "SPLIT_DEVICES", set())
    fwd = runtime.forward
    prefixes = [_turn(fwd, i, size) for i, size in enumerate([(64, 48), None, (160, 96), None])]
    turns = [_turn(fwd, 5 + i, s) for i, s in enumerate([(96, 64), (48, 200), None, (128, 128)])]
    alone = [_cache(fwd, 600) for _ in turns]
    packed = [_cache(fwd, 600) for _ in turns]
    with fwd.lock:
        for caches in (alone, packed):
            for i, cache in enumerate(caches[:3]):  # the last row starts from nothing
                fwd.forward(prefixes[i], cache, 0)
        bases = [int(p.positions.max()) + 1 for p in prefixes[:3]] + [0]
        want = [fwd.forward(s, c, b) for s, c, b in zip(turns, alone, bases, strict=True)]
        got = forward_packed(fwd, list(zip(turns, packed, bases, strict=True)))
        tokens = [fwd.text_segment([1000 + i]) for i in range(4)]
        nexts = [b + int(s.positions.max()) + 1 for s, b in zip(turns, bases, strict=True)]
        want += [fwd.forward(s, c, b) for s, c, b in zip(tokens, alone, nexts, strict=True)]
        got += forward_packed(fwd, list(zip(tokens, packed, nexts, strict=True)))
    assert max(float((w - g).abs().max()) for w, g in zip(want, got, strict=True)) <= 1e-4
    for a, p in zip(alone, packed, strict=True):
        assert a.length == p.length
        for la, lp in zip(a.layers, p.layers, strict=True):
            assert la.keys is not None and lp.keys is not None
            assert float((la.keys[:, :, : a.length] - lp.keys[:, :, : p.length]).abs().max()) < 1e-4
    assert attention.PACKED.get() is None and attention.folded_mask.cache_info().currsize == 0


def test_a_row_that_does_not_fit_fails_alone(runtime: TransformersRuntime) -> None:
    fwd = runtime.forward
    batcher = StepBatcher(fwd, window_s=5.0, max_rows=2)
    segment = _turn(fwd, 3, None)
    small, roomy = _cache(fwd, len(segment) - 1), _cache(fwd, 200)
    results: dict[str, object] = {}

    def forward(name: str, cache: ChunkKVCache) -> None:
        try:
            results[name] = batcher.forward(segment, cache, 0)
        except ChunkFullError as e:
            results[name] = e

    with batcher.stepping(), batcher.stepping():  # two sessions due: the batch waits for both
        threads = [
            threading.Thread(target=forward, args=("small", small)),
            threading.Thread(target=forward, args=("roomy", roomy)),
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
    assert isinstance(results["small"], ChunkFullError) and small.length == 0
    logits, batch, _ = results["roomy"]  # type: ignore[misc]
    assert batch == 1 and roomy.length == len(segment)
    with fwd.lock:
        alone = fwd.forward(segment, _cache(fwd, 200), 0)
    assert float((alone - logits).abs().max()) <= 1e-4


def test_a_batched_step_reports_its_batch_and_its_wait(
    runtime: TransformersRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtime's side of the trace: every session of a batch says how many shared
    it, and those that waited for it to gather (or for the model) say how long."""
    gates = _Gates()
    with monkeypatch.context() as m:
        m.setattr(TransformersSession, "_encode", gates.wrap(TransformersSession._encode))
        sessions = [runtime.open_session("Guide me.", options=_opts()) for _ in range(3)]
        for t in range(2):
            due = [(s, FAMILY[1].tick(t, 9 + i)) for i, s in enumerate(sessions)]
            actions = _step_together(runtime, due, gates)
    assert [a.batch_size for a in actions] == [3, 3, 3]
    assert all(a.model_wait_ms >= 0 for a in actions)
    assert max(a.model_wait_ms for a in actions) > 0  # the followers waited for the leader
    stats = [s.debug_state().last_step for s in sessions]
    assert [st.batch_size for st in stats] == [3, 3, 3]
    alone = sessions[0].step(FAMILY[1].tick(2, 9))
    assert alone.batch_size == 1  # one session due: the batch-1 path, no waiting
    assert alone.model_wait_ms < 1000
    for s in sessions:
        s.close()


def test_the_tick_trace_carries_batch_size_and_model_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = scripted((1.0, "</response> Door on your left."))
    original = ScriptedSession._run_turn

    def shared(self: ScriptedSession, turn: Any, on_clause: Any) -> Action:
        return dataclasses.replace(original(self, turn, on_clause), batch_size=3, model_wait_ms=7.5)

    monkeypatch.setattr(ScriptedSession, "_run_turn", shared)
    start = SessionStart(audio_out=AudioFormat(AudioEncoding.PCM16, 16000), want_trace=True)
    run = run_session([], runtime, until=3, start=start)
    traces = run.of(TickTrace)
    assert traces and all(t.batch_size == 3 for t in traces)
    # The runtime's wait plus the wait for the model thread (never less).
    assert all(t.model_wait_ms >= 7.5 for t in traces)
    wire = to_server(dataclasses.replace(traces[0], model_wait_ms=12.5)).tick
    assert wire.batch_size == 3 and wire.model_wait_ms == 12.5


# -- the shared KV budget ------------------------------------------------------------


def _system_tokens(rt: TransformersRuntime) -> int:
    return len(rt.forward.tokenize(render_message(system_message())))


def test_the_budget_table_is_what_the_rule_gives(runtime: TransformersRuntime) -> None:
    """budget.py's table for the 8B on a 24 GB card (README "Fitting one RTX 3090")."""
    per_token = 36 * 8 * 128 * 2 * 2  # 144 KiB in bf16
    system = _system_tokens(runtime)  # the real Qwen3 tokenizer, as in production
    options = TransformersOptions()
    assert options.capacity(system) == 31_417
    bf16 = KVBudget(int(4.1 * 2**30), per_token).plan(options, system, 6)
    int4 = KVBudget(int(13.4 * 2**30), per_token).plan(options, system, 6)
    assert bf16 == [45, 19, 8, 8, 0, 0]
    assert int4 == [100, 100, 53, 24, 9, 8]


def test_sessions_share_a_fixed_kv_budget(tiny_dir: Path) -> None:
    """A 2nd, 3rd and 4th session open on a fixed budget with shorter chunks, as the
    rule says; a 5th is refused at open (never at a tick); ticks run through chunk
    rollovers without allocating; closing gives the bytes back."""
    per_token = 2 * 2 * 16 * 2 * 4  # the tiny model: 2 layers × 2 KV heads × 16 × K,V × fp32
    probe = _opts(chunk_ticks=20)
    full = probe.capacity(150) * per_token
    options = dataclasses.replace(probe, kv_budget_bytes=int(2.5 * full))
    rt = TransformersRuntime.load(str(tiny_dir), device="cpu", options=options)
    try:
        assert rt.kv_bytes_per_token() == per_token
        assert _system_tokens(rt) == 150
        budget = rt.budget
        plan = budget.plan(options, 150, 5)
        assert plan == [19, 8, 8, 8, 0]  # shrinks as sessions join; the 5th finds no room
        sessions = [rt.open_session("Guide me.") for _ in range(4)]
        assert [s.options.chunk_ticks for s in sessions] == plan[:4]
        held = [s.debug_state().kv_bytes for s in sessions]
        assert held == [s.options.capacity(150) * per_token for s in sessions]
        assert budget.used_bytes == sum(held) <= options.kv_budget_bytes
        assert budget.live == 4
        with pytest.raises(Recoverable) as refused:
            rt.open_session("Guide me.")
        assert refused.value.code is Code.MODEL_MEMORY
        assert "KV budget" in refused.value.message and "end a session" in refused.value.message
        # Eleven ticks each, all four due together: the 8-tick chunks roll over.
        for t in range(11):
            futures = [
                rt.executor.submit(s.step, FAMILY[0].tick(t, 20 + i))
                for i, s in enumerate(sessions)
            ]
            for f in futures:
                f.result(timeout=60)
        assert all(s.debug_state().kv_bytes == h for s, h in zip(sessions, held, strict=True))
        assert sessions[1].conversation.state().chunk >= 2
        sessions.pop().close()
        assert budget.used_bytes == sum(held[:3]) and budget.live == 3
        again = rt.open_session("Guide me.")  # the closed one's room is there again
        assert again.options.chunk_ticks == 8
        again.close()
        for s in sessions:
            s.close()
            s.close()  # twice is harmless
        assert budget.used_bytes == 0 and budget.live == 0
        assert all(s.debug_state().kv_bytes == 0 for s in sessions)  # the buffers are gone
        first = rt.open_session("Guide me.")
        assert first.options.chunk_ticks == plan[0]  # all of it back
        first.close()
    finally:
        rt.close()


def test_unbounded_budget_on_the_cpu_keeps_the_configured_chunk(
    runtime: TransformersRuntime,
) -> None:
    assert runtime.budget.total_bytes is None
    session = runtime.open_session("Guide me.", options=_opts(chunk_ticks=37))
    assert session.options.chunk_ticks == 37
    session.close()


def test_batching_off_steps_one_at_a_time(tiny_dir: Path) -> None:
    rt = TransformersRuntime.load(str(tiny_dir), device="cpu", options=_opts(batch_window_ms=0))
    try:
        sessions = [rt.open_session("Guide me.") for _ in range(2)]
        ticks = [FAMILY[0].tick(0, 40 + i) for i in range(2)]
        futures = [rt.executor.submit(s.step, t) for s, t in zip(sessions, ticks, strict=True)]
        assert [f.result(timeout=60).batch_size for f in futures] == [1, 1]
        for s in sessions:
            s.close()
    finally:
        rt.close()
