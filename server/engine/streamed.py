"""Speaking a reply while the model still writes it, a sentence at a time.

``ClauseHandoff`` (handoff.py) brings the clauses over from the model thread;
``StreamedSpeech`` decides what they are spoken as. The opening — the first sentence,
or more when it is a bare "Stop!" — is judged whole, so that "On your right, a cyclist
is coming straight at you." is an alert and a nag is known as one before a word of it
plays. A calm opening streams on a sentence at a time, and a later sentence that is
urgent becomes an alert of its own (cue first, cutting the calm start it followed);
an alert's opening streams the rest with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from server.engine.handoff import ClauseHandoff
from server.engine.policy import GuidancePolicy, Utterance
from server.engine.speech import SpeechHandleLike
from server.events import SpeechKind
from server.runtime.base import Action

__all__ = ["StreamedSpeech"]

Say = Callable[[Utterance, AsyncIterator[str] | None], SpeechHandleLike]


class StreamedSpeech:
    def __init__(self, policy: GuidancePolicy, say: Say, clock: Callable[[], float]) -> None:
        """``say``: hands an utterance (and the clauses that continue it) to speech, as
        the model's own words."""
        self._policy = policy
        self._say = say
        self._clock = clock

    async def start(
        self, handoff: ClauseHandoff, first: str, step: asyncio.Future[Action], *, answering: bool
    ) -> tuple[Utterance | None, SpeechHandleLike | None]:
        """Speak the reply whose first clause is ``first``: its head and its handle."""

        def ready(text: str, ended: bool) -> bool:  # a bare "Stop!" waits for its thing
            u = self._policy.judge(text, answering=answering)
            bare = u.kind is SpeechKind.ALERT and not (u.hazard and u.hazard.key)
            return ended and not bare

        def urgent(text: str) -> bool:
            return self._policy.judge(text, answering=answering).kind is SpeechKind.ALERT

        def later(sentence: str, after: AsyncIterator[str]) -> None:
            if (u := self._policy.reply(sentence, self._clock(), answering=answering)) is not None:
                self._say(u, after)

        opening = await handoff.opening(first, step, ready)
        head = self._policy.reply(opening, self._clock(), answering=answering)
        if head is None:
            return None, None
        alert = head.kind is SpeechKind.ALERT
        more = handoff.rest() if alert else handoff.sentences(urgent, later)
        return head, self._say(head, more)
