"""The speaker as the engine sees it, and speech that must keep its order.

A streamed reply starts speaking before the model has finished writing it. When it
turns out to be a delegation, its last clause (held back by the runtime: the one
before the marker) is said as a delegation note of its own, right after the
streamed start, and the two stay one reply for the listener: in order, and cut
together (``say_after``). A background answer, which outranks a note, still never
plays before the note that promised it (``NoteOrder``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from server.engine.policy import Utterance

__all__ = ["NoteOrder", "PlaybackResultLike", "SpeechHandleLike", "SpeechSink", "say_after"]


class PlaybackResultLike(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def heard(self) -> str: ...
    @property
    def interrupted(self) -> bool: ...
    @property
    def reason(self) -> str: ...


class SpeechHandleLike(Protocol):
    def add_done_callback(self, fn: Callable[[PlaybackResultLike], None]) -> None: ...

    def interrupt(self, reason: str) -> None: ...


class SpeechSink(Protocol):
    """The session's speaker."""

    def say(self, utt: Utterance, more: AsyncIterator[str] | None = None) -> SpeechHandleLike: ...

    @property
    def dropped(self) -> Mapping[str, int]:
        """Utterances that did not play out so far, by "reason/kind" ("superseded/alert")."""


def say_after(
    speaker: SpeechSink,
    head: SpeechHandleLike,
    rest: Utterance,
    on_heard: Callable[[PlaybackResultLike], None],
) -> SpeechHandleLike:
    """Say ``rest`` as the end of the reply ``head`` began.

    ``rest`` must rank no higher than ``head`` (``GuidancePolicy.note(after=...)``):
    the speaker plays equal ranks in the order given, so it follows ``head``. A cut
    ``head`` (barge-in, an alert, gone stale) takes ``rest`` with it, as one
    utterance would be cut. ``on_heard`` gets what was heard of each; of a ``rest``
    cut with its head nothing, since the head's trim already drops all after the cut.
    """
    handle = speaker.say(rest)
    cut_with_head = False

    def head_done(result: PlaybackResultLike) -> None:
        nonlocal cut_with_head
        if result.interrupted:
            cut_with_head = True
            handle.interrupt(result.reason)

    def rest_done(result: PlaybackResultLike) -> None:
        if not cut_with_head:
            on_heard(result)

    head.add_done_callback(head_done)
    handle.add_done_callback(rest_done)
    return handle


class NoteOrder:
    """Background answers wait for the delegation note said before them to end.

    An urgent answer does not wait: it ranks with alerts and cuts what plays.
    """

    def __init__(self, say: Callable[[Utterance], object]) -> None:
        self._say = say
        self._note: SpeechHandleLike | None = None  # the newest note, not yet ended

    def note(self, handle: SpeechHandleLike) -> None:
        self._note = handle

        def ended(_: PlaybackResultLike) -> None:
            if self._note is handle:
                self._note = None

        handle.add_done_callback(ended)

    def answer(self, utt: Utterance, *, urgent: bool = False) -> None:
        note = self._note
        if note is None or urgent:
            self._say(utt)
            return

        def after_note(_: PlaybackResultLike) -> None:
            self._say(utt)

        note.add_done_callback(after_note)
