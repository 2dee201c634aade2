"""The in-process transformers runtime: JoyAI-VL-Interaction (Qwen3-VL) on this machine.

``TransformersRuntime.load`` loads the weights and processor once per process
(``loading.py``); each glasses session gets a ``TransformersSession``
(``session.py``) holding its own preallocated KV cache (``kv_cache.py``), so a
tick costs the new frame's tokens, not the whole context. The runtime runs in two
executors, the app's when it gives them (else its own, which ``close`` shuts down):
the model thread every step runs in, and one for chunk summaries.

Sessions share the model (DESIGN §8): steps due together run as one batched
forward (``batch.py``; then the runtime steps in a thread per batch row, its own
pool, since the app's one model thread would run them one after another), and the
KV memory is one budget shared by the live sessions (``budget.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Executor

import torch
from PIL import Image

from server.runtime.base import Frame, InteractionRuntime, RuntimeCapabilities, TickInput
from server.runtime.limits import DEFAULT_MODEL
from server.runtime.prompt import system_message
from server.runtime.transformers.allocator import pin_mmap_threshold
from server.runtime.transformers.batch import ModelLane, StepBatcher
from server.runtime.transformers.budget import KVBudget
from server.runtime.transformers.forward import QwenForward, render_message
from server.runtime.transformers.loading import LoadedModel, load_model
from server.runtime.transformers.options import TransformersOptions
from server.runtime.transformers.session import TransformersSession
from server.tasks import WorkerPool

__all__ = ["TransformersRuntime"]

log = logging.getLogger(__name__)

# Chunks longer than the reference's 100 ticks buy nothing: older ticks live on in
# the summaries. Shorter than 8 and summaries would churn.
_MAX_AUTO_CHUNK_TICKS = 100
_MIN_AUTO_CHUNK_TICKS = 8
# Activations of one tick (vision tower, a 300-token prefill) and allocator slack.
_ACTIVATION_HEADROOM_BYTES = int(1.5 * 2**30)
# Each further row of a batched forward: its activations and its folded mask.
_ROW_HEADROOM_BYTES = int(0.25 * 2**30)
# The speech models load after the runtime: faster-whisper small.en in float16 takes
# ~0.6 GiB on the GPU (Piper and espeak-ng run on the CPU).
_SPEECH_HEADROOM_BYTES = int(0.75 * 2**30)


class TransformersRuntime(InteractionRuntime):
    """A loaded Qwen3-VL interaction model shared by every session of the process."""

    def __init__(
        self,
        loaded: LoadedModel,
        options: TransformersOptions | None = None,
        *,
        executor: Executor | None = None,
        summary_executor: Executor | None = None,
    ) -> None:
        """``executor``/``summary_executor``: the app's model and summary threads (None:
        the runtime's own)."""
        super().__init__(
            RuntimeCapabilities(
                name=f"transformers:{loaded.source}", incremental=True, streams_text=True
            ),
            executor,
        )
        self.loaded = loaded
        options = options or TransformersOptions()
        self.forward = QwenForward(
            loaded.model,
            loaded.processor,
            loaded.device,
            min_pixels=options.min_pixels,
            max_pixels=options.max_pixels,
        )
        self.options = options
        if not options.chunk_ticks:
            self.options = dataclasses.replace(options, chunk_ticks=self.auto_chunk_ticks())
        self.budget = KVBudget(
            self._kv_budget_bytes(),
            self.kv_bytes_per_token(),
            share=self.options.kv_share,
            family=self.options.batch_sessions,
        )
        self._system_tokens = len(self.forward.tokenize(render_message(system_message())))
        self.batcher: StepBatcher | None = None
        if self.options.batch_window_ms > 0:
            rows = self.options.batch_sessions
            window_s = self.options.batch_window_ms / 1000
            self.batcher = StepBatcher(self.forward, window_s=window_s, max_rows=rows)
            self._pool.close()  # an own one-thread pool (never started), or the app's: kept
            self._pool = WorkerPool(None, prefix="model-step", workers=rows)
        # Summaries of closed chunks run here, off the model thread (summaries.py).
        self._summaries = WorkerPool(summary_executor, prefix="model-summary")

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        quantization: str | None = None,
        options: TransformersOptions | None = None,
        executor: Executor | None = None,
        summary_executor: Executor | None = None,
    ) -> TransformersRuntime:
        """Load a hub id or a local checkpoint folder.

        ``device``: auto (CUDA when present), cpu, cuda, cuda:N. ``dtype``: auto (bf16
        on CUDA, fp32 on CPU), bfloat16, float16, float32. ``quantization``: None,
        ``"8bit"`` or ``"4bit"`` (bitsandbytes, CUDA only). The executors: see ``__init__``.
        Raises ``ModelLoadError``.
        """
        pin_mmap_threshold()  # before the first tensor: sessions' buffers go back on close
        loaded = load_model(model, device=device, dtype=dtype, quantization=quantization)
        return cls(loaded, options, executor=executor, summary_executor=summary_executor)

    def kv_bytes_per_token(self) -> int:
        f = self.forward
        return f.num_layers * f.kv_heads * f.head_dim * 2 * torch.finfo(f.kv_dtype).bits // 8

    def auto_chunk_ticks(self) -> int:
        """Ticks per chunk so one session's KV cache fits the GPU memory left now.

        On CPU (RAM is rarely the limit) the reference's 100.
        """
        device = self.loaded.device
        if device.type != "cuda":
            return _MAX_AUTO_CHUNK_TICKS
        free, _ = torch.cuda.mem_get_info(device)
        tokens = (free - _ACTIVATION_HEADROOM_BYTES) // self.kv_bytes_per_token()
        ticks = int((tokens - 1536) // self.options.tick_token_budget)
        chosen = max(_MIN_AUTO_CHUNK_TICKS, min(_MAX_AUTO_CHUNK_TICKS, ticks))
        log.info(
            "KV chunk: %d ticks (%.1f GiB free on %s, %d KiB/token)",
            chosen,
            free / 2**30,
            device,
            self.kv_bytes_per_token() // 1024,
        )
        return chosen

    def _kv_budget_bytes(self) -> int | None:
        """The KV memory the live sessions share: the option's, else on CUDA what is
        free now less a batched tick's activations and the speech models, else
        unbounded (None)."""
        if self.options.kv_budget_bytes > 0:
            return self.options.kv_budget_bytes
        if self.loaded.device.type != "cuda":
            return None
        free, _ = torch.cuda.mem_get_info(self.loaded.device)
        rows = max(1, self.options.batch_sessions)
        headroom = _ACTIVATION_HEADROOM_BYTES + (rows - 1) * _ROW_HEADROOM_BYTES
        return max(0, free - headroom - _SPEECH_HEADROOM_BYTES)

    def open_session(
        self, instruction: str, *, language: str = "en", options: TransformersOptions | None = None
    ) -> TransformersSession:
        """``options`` overrides the runtime's for this session (frame size limits
        excepted); its ``chunk_ticks`` is what the KV budget grants (``budget.py``).
        Raises ``Recoverable(MODEL_MEMORY)`` when the budget has no room left."""
        lease = self.budget.lease(options or self.options, self._system_tokens)
        try:
            return TransformersSession(
                self.forward,
                lease.options,
                instruction,
                language,
                summaries=self._summaries.executor,
                lane=ModelLane(self.forward, self.batcher),
                lease=lease,
            )
        except BaseException:
            lease.release()
            raise

    def warm_up(self) -> None:
        session = self.open_session("Warm-up.")
        try:
            frame = Frame(Image.new("RGB", (448, 448), (90, 90, 90)), 0, 0, time.monotonic())
            session.step(TickInput(tick_s=0.0, frame=frame))
        finally:
            session.close()

    def close(self) -> None:
        super().close()
        self._summaries.close()
        if self.loaded.device.type == "cuda":
            torch.cuda.empty_cache()
