"""The echo guard: is this transcript Murmur hearing its own voice?

Open-ear speakers on glasses leak Murmur's voice into the microphone. Bridges
should capture with the phone's acoustic echo cancellation on (Android
``VOICE_COMMUNICATION`` source / iOS ``.voiceChat`` mode); that is the first line of
defence. This is the second: the session's speaker says what Murmur begins to say
(``speech_started``, once per caption piece) and when it stops
(``speech_stopped``), and a transcript made mostly of those words is not taken as
the user's. Words keep counting for ``tail_s`` after they were replaced or
stopped, because the microphone's audio reaches ASR late.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EchoGuard", "EchoOptions", "echo_overlap", "words"]

_WORD = re.compile(r"\w+(?:'\w+)?")


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, as the guard compares them."""
    return _WORD.findall(text.lower())


def echo_overlap(transcript: str, spoken_words: frozenset[str] | set[str]) -> float:
    """Share of the transcript's words that Murmur itself was saying."""
    heard = words(transcript)
    if not heard:
        return 0.0
    return sum(w in spoken_words for w in heard) / len(heard)


@dataclass(frozen=True, slots=True)
class EchoOptions:
    overlap: float = 0.6  # share of transcript words found in Murmur's speech
    min_words: int = 2  # shorter transcripts ("stop") are never called echo
    tail_s: float = 4.0  # how long after Murmur stops its words still count


class EchoGuard:
    """What Murmur is saying and has just said, on the clock given."""

    def __init__(
        self, options: EchoOptions | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options or EchoOptions()
        self._clock = clock
        self._current: frozenset[str] | None = None  # None: Murmur is quiet
        self._recent: deque[tuple[float, frozenset[str]]] = deque(maxlen=8)  # (until, words)

    @property
    def speaking(self) -> bool:
        """Murmur is saying something now."""
        return self._current is not None

    def speech_started(self, text: str) -> None:
        """Murmur began saying ``text`` (the next caption piece replaces the last one)."""
        self._retire()
        self._current = frozenset(words(text))

    def speech_stopped(self) -> None:
        """The utterance finished or was cut."""
        self._retire()
        self._current = None

    def spoken_words(self) -> frozenset[str]:
        """Every word that counts as echo now: the piece being said and the tail."""
        now = self._clock()
        out: set[str] = set(self._current or ())
        for until, spoken in self._recent:
            if until >= now:
                out |= spoken
        return frozenset(out)

    def check(self, text: str, spoken: frozenset[str]) -> tuple[bool, float]:
        """(is ``text`` echo of ``spoken``, the overlap)."""
        overlap = echo_overlap(text, spoken)
        long_enough = len(words(text)) >= self.options.min_words
        return overlap >= self.options.overlap and long_enough, overlap

    def _retire(self) -> None:
        if self._current is not None:
            self._recent.append((self._clock() + self.options.tail_s, self._current))
