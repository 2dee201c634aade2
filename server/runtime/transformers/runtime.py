"""The in-process transformers runtime: JoyAI-VL-Interaction (Qwen3-VL) on this machine.

``TransformersRuntime.load`` loads the weights and processor once per process
(``loading.py``); each glasses session gets a ``TransformersSession``
(``session.py``) holding its own preallocated KV cache (``kv_cache.py``), so a
tick costs the new frame's tokens, not the whole context. The runtime runs in two
executors, the app's when it gives them (else its own, which ``close`` shuts down):
the model thread every step runs in, and one for chunk summaries.
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
from server.runtime.transformers.forward import QwenForward
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

    def open_session(
        self, instruction: str, *, language: str = "en", options: TransformersOptions | None = None
    ) -> TransformersSession:
        """``options`` overrides the runtime's for this session (frame size limits excepted)."""
        return TransformersSession(
            self.forward,
            options or self.options,
            instruction,
            language,
            summaries=self._summaries.executor,
        )

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
