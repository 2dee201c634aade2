"""Sessions handed from a draining frontend to the one their bridges resume on.

In a fleet ([fleet] store) a frontend that drains writes each of its sessions to the
shared store under the sha256 of its resume token — the token itself is never
stored or logged — for ``resume_window_s``, then ends the session's call with
UNAVAILABLE (the bridge's cue to reconnect, through the balancer, with that token).
The frontend the bridge lands on finds no local session for the token, takes the
hand-over from the store (taking deletes it: one frontend resumes it) and opens the
session again under the same id, in the same mode, with the conversation's memory:
its next turn opens a new chunk whose first turn carries the ``[Video History]`` and
``[Q&A History]`` (``Conversation.export`` / ``restore``), so the model still knows
what was asked and answered.

What does not travel: a backend's cache of the chunk's turns (an in-process KV
cache; vLLM re-reads the history text instead), speech that was playing, running
delegations (cancelled; their answers are not given), the tick clock (it starts
again at 0 s). Only a drain hands over: a frontend that crashes takes its live
sessions with it, and those bridges start new sessions with a ``session.resume_unknown``
Notice, as after a restart of one server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from server.errors import ResumeRefusedError, StorageError, UnavailableError
from server.events import Mode, SessionStart

if TYPE_CHECKING:
    from server.session.services import SessionServices
    from server.session.session import Session

__all__ = [
    "DRAINING",
    "Handover",
    "HandoverStore",
    "capture",
    "fetch",
    "hand_over",
    "reopen",
    "token_key",
]

log = logging.getLogger(__name__)

VERSION = 1
DRAINING = (
    "this frontend is draining; reconnect with your resume token (the balancer sends "
    "you to another one) and the session goes on there"
)


class HandoverStore(Protocol):
    """Where hand-overs wait (``server.storage.redis_store.RedisHandoverStore``).
    Calls block (network): run them off the loop."""

    def put(self, key: str, value: str, ttl_s: float) -> None: ...

    def take(self, key: str) -> str | None:
        """The value under ``key``, deleted in the same step; None when there is none."""
        ...

    def close(self) -> None: ...


def token_key(resume_token: str) -> str:
    """What a hand-over is stored under: the token's sha256, never the token."""
    return hashlib.sha256(resume_token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Handover:
    session_id: str
    device_id: str
    mode: str  # the mode at the drain (a bridge resends the one it started with)
    conversation: dict[str, Any]  # Conversation.export()

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": VERSION,
                "session_id": self.session_id,
                "device_id": self.device_id,
                "mode": self.mode,
                "conversation": self.conversation,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str) -> Handover | None:
        """None for what this version cannot read (written by a newer one, or broken)."""
        try:
            data = json.loads(text)
            if data.get("v") != VERSION:
                return None
            return cls(
                str(data["session_id"]),
                str(data["device_id"]),
                str(data["mode"]),
                dict(data["conversation"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


async def capture(session: Session) -> Handover:
    """``session``'s hand-over: ticks held first, then the memory read in the model
    thread, after the step that may be running there."""
    session.parts.ticker.hold(True)
    loop = asyncio.get_running_loop()
    conversation = await loop.run_in_executor(
        session.services.runtime.executor, session.model.conversation.export
    )
    mode = session.parts.engine.profile.mode.value
    return Handover(session.id, session.device_id, mode, conversation)


async def hand_over(
    sessions: list[Session], store: HandoverStore, ttl_s: float, pool: Executor
) -> int:
    """Write each session to ``store`` and end it with UNAVAILABLE (``DRAINING``);
    how many were written. A session that cannot be written still ends (its bridge
    then starts afresh elsewhere, with a Notice saying so)."""
    loop = asyncio.get_running_loop()
    written = 0
    for session in sessions:
        try:
            record = await capture(session)
            key = token_key(session.resume_token)
            await loop.run_in_executor(pool, store.put, key, record.dumps(), ttl_s)
            written += 1
        except StorageError as e:
            log.warning("session %s not handed over: %s", session.id, e.message)
        except Exception:  # one session's failure must not keep the others here
            log.exception("session %s not handed over", session.id)
        session.terminate(UnavailableError(DRAINING))
    return written


async def fetch(store: HandoverStore, resume_token: str, pool: Executor) -> Handover | None:
    """The hand-over for ``resume_token`` (deleted from the store), or None."""
    loop = asyncio.get_running_loop()
    try:
        text = await loop.run_in_executor(pool, store.take, token_key(resume_token))
    except StorageError as e:
        log.warning("cannot look for a handed-over session: %s", e.message)
        return None
    return None if text is None else Handover.loads(text)


async def reopen(services: SessionServices, start: SessionStart, device_id: str) -> Session | None:
    """The session another frontend handed over for ``start``'s resume token, opened
    here under its id and mode with its memory; None when the store has none."""
    store = services.handover
    if store is None or not start.resume_token:
        return None
    handed = await fetch(store, start.resume_token, services.executors.registry)
    if handed is None:
        return None
    if handed.device_id != device_id and device_id not in ("", "anonymous"):
        raise ResumeRefusedError(
            "this resume token belongs to a session of another device; start a new "
            "session (send no resume token)"
        )
    from server.session.session import Session  # (session.py imports this module's users)

    with contextlib.suppress(ValueError):  # a mode this version does not know: the bridge's
        start = replace(start, mode=Mode(handed.mode))
    session = await Session.open(services, start, device_id=device_id, session_id=handed.session_id)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(
        services.runtime.executor, session.model.conversation.restore, handed.conversation
    )
    log.info("session %s handed over from another frontend", session.id)
    return session
