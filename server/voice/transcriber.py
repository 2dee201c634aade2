"""The listener's ASR worker: one transcription at a time, finals before partials.

The listener hands over audio; this turns it into ``TranscriptPartial``,
``TranscriptFinal`` and ``EchoDropped`` events (and a ``Notice`` when ASR fails).
Partials are skipped rather than queued when ASR is slower than the listener asks
for them; finals queue (at most ``max_pending``, the oldest dropped and counted).
Finals are primed with ``hotwords`` (the voice commands); one the backend judged
those words written for noise is dropped and counted (``hotword_dropped``).
A call with no text within ``timeout_s`` counts as failed: a hung backend costs an
utterance (and a Notice), never the listening.

The worker task is spawned through the owner's ``spawn`` when there is work and
ends when there is none, so an idle listener holds no task (its owner's task group
can end without waiting for it). It never raises (a failed step is logged), so it
cannot take that group down; ``close`` cancels it and waits until it has stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from server.codes import Code
from server.events import Notice
from server.tasks import Spawn, cancel_and_wait
from server.voice.asr.base import ASRBackend, ASRError
from server.voice.echo import EchoGuard

__all__ = [
    "EchoDropped",
    "FinalJob",
    "Transcriber",
    "TranscriptFinal",
    "TranscriptPartial",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TranscriptPartial:
    text: str
    user_utterance: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptFinal:
    text: str
    user_utterance: int = 0
    start_ms: int = 0  # capture times of the utterance
    end_ms: int = 0
    asr_ms: float = 0.0  # time spent transcribing it


@dataclass(frozen=True, slots=True)
class EchoDropped:
    """A final transcript that was Murmur hearing itself (for logs and traces only)."""

    text: str
    overlap: float
    user_utterance: int = 0


TranscriberEvent = TranscriptPartial | TranscriptFinal | EchoDropped | Notice


@dataclass(frozen=True, slots=True)
class FinalJob:
    """One ended user utterance, waiting for its final transcript."""

    user_utterance: int
    audio: np.ndarray  # 16 kHz int16
    start_ms: int
    end_ms: int
    echo_words: frozenset[str]  # what counted as echo when the utterance ended


class Transcriber:
    def __init__(
        self,
        asr: ASRBackend,
        emit: Callable[[TranscriberEvent], Awaitable[None]],
        echo: EchoGuard,
        *,
        spawn: Spawn,
        language: str | None = None,
        hotwords: str = "",
        max_pending: int = 4,
        timeout_s: float = 0.0,  # 0: no limit
    ) -> None:
        self.asr = asr
        self.language = language
        self.hotwords = hotwords
        self.max_pending = max_pending
        self.timeout_s = timeout_s
        self._emit = emit
        self._echo = echo
        self._spawn = spawn
        self._finals: deque[FinalJob] = deque()
        self._partial: tuple[int, np.ndarray] | None = None  # (user utterance, audio so far)
        self._ended = 0  # the newest user utterance handed over as a final
        self._last_partial: tuple[int, str] = (0, "")  # (user utterance, text) last emitted
        self._busy = False  # an ASR call is running
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = {
            "partials": 0,
            "skipped_partials": 0,
            "finals": 0,
            "dropped_finals": 0,
            "echo_dropped": 0,
            "hotword_dropped": 0,
            "asr_errors": 0,
        }

    def want_partial(self, user_utterance: int, audio: Callable[[], np.ndarray]) -> None:
        """Transcribe the utterance so far (``audio()``), unless ASR is still busy: then
        this partial is skipped, not queued."""
        if self._busy or self._finals:
            self.stats["skipped_partials"] += 1
            return
        self._partial = (user_utterance, audio())
        self._start()

    def final(self, job: FinalJob) -> None:
        """Queue the final transcript of an ended utterance; its pending partial is moot."""
        if len(self._finals) >= self.max_pending:
            self._finals.popleft()
            self.stats["dropped_finals"] += 1
        self._finals.append(job)
        self._ended = max(self._ended, job.user_utterance)
        self._partial = None
        self._start()

    async def close(self) -> None:
        """Stop at once; queued work is dropped. No task of this worker is left running."""
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)

    # ------------------------------------------------------------------ the worker

    def _start(self) -> None:
        # A worker that is still running sees the new job before it ends: it checks
        # for work after each step, with no await between that check and its end.
        if not self._closed and (self._task is None or self._task.done()):
            self._task = self._spawn(self._worker(), "listener-asr")

    async def _worker(self) -> None:
        while self._finals or self._partial is not None:
            try:
                if self._finals:
                    await self._run_final(self._finals.popleft())
                elif self._partial is not None:
                    (utterance, audio), self._partial = self._partial, None
                    await self._run_partial(utterance, audio)
            except Exception:  # one bad utterance must not end listening
                log.exception("listener: transcription step failed")

    async def _run_partial(self, user_utterance: int, audio: np.ndarray) -> None:
        text = await self._transcribe(audio, partial=True)
        # The utterance may have ended while ASR ran: its final says it better.
        if not text or user_utterance <= self._ended:
            return
        if self._echo.check(text, self._echo.spoken_words())[0]:
            return
        if (user_utterance, text) != self._last_partial:
            self._last_partial = (user_utterance, text)
            self.stats["partials"] += 1
            await self._emit(TranscriptPartial(text, user_utterance))

    async def _run_final(self, job: FinalJob) -> None:
        started = time.perf_counter()
        text = await self._transcribe(job.audio, partial=False)
        asr_ms = (time.perf_counter() - started) * 1000
        if not text:
            return
        echo, overlap = self._echo.check(text, job.echo_words)
        if echo:
            self.stats["echo_dropped"] += 1
            # Never the words themselves: logs carry no transcripts.
            log.debug(
                "dropped an echo of %d words (%.0f%% were Murmur's)",
                len(text.split()),
                overlap * 100,
            )
            await self._emit(EchoDropped(text, overlap, job.user_utterance))
            return
        self.stats["finals"] += 1
        await self._emit(
            TranscriptFinal(text, job.user_utterance, job.start_ms, job.end_ms, asr_ms)
        )

    async def _transcribe(self, audio: np.ndarray, *, partial: bool) -> str:
        self._busy = True
        try:
            # Partials stay unprimed: they are fast, and never act as commands.
            hotwords = "" if partial else self.hotwords
            try:
                async with asyncio.timeout(self.timeout_s if self.timeout_s > 0 else None):
                    heard = await self.asr.transcription(
                        audio, partial=partial, language=self.language, hotwords=hotwords
                    )
            except TimeoutError:
                # Its thread may still be stuck: the next call waits behind it with a
                # deadline of its own, and is transcribed once the backend is back.
                raise ASRError(f"no text within {self.timeout_s:g} s") from None
        except ASRError as e:
            self.stats["asr_errors"] += 1
            log.warning("ASR failed: %s", e)
            if not partial:
                await self._emit(
                    Notice.of(
                        Code.ASR_FAILED,
                        f"speech could not be transcribed ({e}); say it again, or type it",
                    )
                )
            return ""
        finally:
            self._busy = False
        if heard.prompt_echo:
            self.stats["hotword_dropped"] += 1
        return heard.text
