"""What a caller of the speaker holds: the ``SpeechHandle`` of one utterance, what it
resolves to (``PlaybackResult``), and the observers that hear what is said.

The handle is frozen and owns no playback state: how far an utterance got is the
speaker's own record (``speaker.py``); the handle only reaches it through ``_cut``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from server.engine.policy import Utterance
from server.events import SpeechKind

__all__ = ["PlaybackResult", "PlayoutObserver", "SpeechHandle", "SpeechObserver"]


class SpeechObserver(Protocol):
    """Told what Murmur is saying (the listener's echo guard)."""

    def speech_started(self, text: str) -> None: ...

    def speech_stopped(self) -> None: ...


@runtime_checkable
class PlayoutObserver(Protocol):
    """An observer that hears the audio too: ``pcm`` starts to play ``delay_s`` from now."""

    def speech_audio(self, pcm: np.ndarray, sample_rate: int, delay_s: float) -> None: ...


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    text: str  # what was handed to TTS
    heard: str  # what reached the listener's ear (all of ``text`` when it played out)
    interrupted: bool = False
    reason: str = ""  # why: preempted, superseded, barge_in, client, expired, closed


@dataclass(frozen=True, eq=False, slots=True)
class SpeechHandle:
    """One utterance given to the speaker, as its caller sees it (frozen)."""

    utterance: Utterance
    _done: asyncio.Future[PlaybackResult] = field(repr=False)  # the speaker resolves it
    _cut: Callable[[str], None] = field(repr=False)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def kind(self) -> SpeechKind:
        return self.utterance.kind

    @property
    def priority(self) -> int:
        return self.utterance.priority

    def interrupt(self, reason: str = "client") -> None:
        """Cut it now if it plays, or drop it if it still waits (once: later calls,
        and calls after it finished, do nothing)."""
        self._cut(reason)

    def done(self) -> bool:
        return self._done.done()

    async def result(self) -> PlaybackResult:
        return await asyncio.shield(self._done)

    def add_done_callback(self, fn: Callable[[PlaybackResult], None]) -> None:
        self._done.add_done_callback(lambda f: fn(f.result()))
