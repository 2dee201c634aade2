"""Chunk summaries (mid-term memory) made by the same model over the closed chunk.

A closed chunk's cache already holds everything the summary needs, so the summary
prompt is appended to it and generated there, in the runtime's summary executor
(not the model thread, so the next tick is not delayed). It takes the model lock
one token at a time and is cut short the moment the session's next tick arrives;
the next chunk reuses the same KV buffers from just after the system prompt.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, Future

import torch

from server.runtime.memory import SessionMemory
from server.runtime.transformers.forward import ASSISTANT_PREFIX, render_message
from server.runtime.transformers.options import TransformersOptions
from server.runtime.transformers.sampling import Sampler, generate
from server.runtime.transformers.turns import KVChunk

__all__ = ["COMPRESS_PROMPT", "SUMMARY_PROMPT", "ChunkSummariser"]

log = logging.getLogger(__name__)

SUMMARY_PROMPT = (
    "Summarise the video so far for your own memory in at most three short sentences: "
    "where the user is, what they did, people, objects and hazards seen, and what "
    "they asked or were told."
)
COMPRESS_PROMPT = (
    "Compress these notes about a video into at most three short sentences, keeping "
    "places, hazards and the user's requests:\n"
)


class ChunkSummariser:
    """One session's summaries; ``executor`` None runs them inline (tests)."""

    def __init__(
        self,
        chunk: KVChunk,
        memory: SessionMemory,
        options: TransformersOptions,
        sampler: Sampler,
        executor: Executor | None,
    ) -> None:
        self._chunk = chunk
        self._memory = memory
        self._options = options
        self._sampler = sampler
        self._executor = executor
        self._preempt = threading.Event()
        self._future: Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def start(self, options: TransformersOptions) -> None:
        """Summarise the chunk that just closed (model thread, after its last turn)."""
        self._options = options
        self._preempt.clear()
        if self._executor is None:
            self._summarise()
            return
        try:
            self._future = self._executor.submit(self._summarise)
        except RuntimeError:  # the runtime is closing: no summary, the chunk still rolls
            log.info("chunk summary skipped: the runtime is shutting down")

    def stop(self) -> None:
        """Cut a running summary short and wait for it (model thread, before a turn)."""
        future, self._future = self._future, None
        if future is None:
            return
        self._preempt.set()  # the summary stops at its next token
        if not future.cancel():
            future.result()

    def _summarise(self) -> None:
        try:
            summary = self._generate(SUMMARY_PROMPT)
            if summary:
                self._memory.add_summary(summary)
            if self._memory.needs_compression():
                self._memory.compress(self._compress)
        except Exception:  # a failed summary must not end the session
            log.exception("chunk summary failed")

    def _compress(self, notes: str) -> str | None:
        chunk = self._chunk
        if chunk.system_mark is None or self._preempt.is_set():
            return None
        with chunk.fwd.lock:
            chunk.rewind(chunk.system_mark)  # the closed chunk is no longer needed
        return self._generate(COMPRESS_PROMPT + notes) or None

    def _generate(self, request: str) -> str:
        """Generate after ``request``, holding the model lock one token at a time."""
        chunk, fwd = self._chunk, self._chunk.fwd
        max_new = self._options.summary_max_new_tokens
        prompt = fwd.tokenize(
            render_message({"role": "user", "content": request}) + ASSISTANT_PREFIX
        )
        if self._preempt.is_set() or len(prompt) + max_new > chunk.free():
            return ""

        def feed(token: int) -> torch.Tensor:
            with fwd.lock:
                return chunk.feed_ids([token])

        with fwd.lock:
            logits = chunk.feed_ids(prompt)
        ids = generate(
            logits,
            max_new,
            pick=self._sampler.pick,
            feed=feed,
            stop_ids=fwd.stop_ids,
            should_stop=self._preempt.is_set,
        )
        text = fwd.decode(ids).strip()
        if not self._preempt.is_set():
            return text
        if len(ids) < 4:
            return ""
        # Cut short: keep whole sentences when there are some.
        cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
        return text[: cut + 1] if cut > len(text) // 3 else text
