"""Every session of the process, live or waiting to be resumed.

A session outlives the call that opened it: the registry owns each session's
``run`` task, so a phone that hops from Wi-Fi to mobile data comes back with its
resume token to the same conversation, mode, memory and running delegations. A
detached session waits ``resume_window_s`` for its device, then is closed and
frees its memory (its KV cache). Resume is bound to the device that opened the
session; a device has at most ``sessions_per_device`` sessions (a newer one takes
over the oldest), and the process at most ``max_sessions``. The limit counts
sessions, not calls: a resume needs no new slot, and nor does a new session that
takes over one of the same device's (its phone came back on another network before
the server noticed the old call was gone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from server.errors import (
    CapacityError,
    Fatal,
    ResumeRefusedError,
    TakenOverError,
    TimedOutError,
    UnavailableError,
)
from server.events import SessionStart
from server.session.handover import DRAINING, reopen
from server.session.services import SessionServices
from server.session.session import Session, SessionLink
from server.telemetry.logs import bind_log_context

__all__ = ["SessionRegistry"]

log = logging.getLogger(__name__)


class SessionRegistry:
    def __init__(self, services: SessionServices) -> None:
        self._services = services
        self._sessions: dict[str, Session] = {}  # by id
        self._by_token: dict[str, Session] = {}  # by resume token: no scan, no `==` on secrets
        self._revoked: set[str] = set()  # ids of sessions ended for a revocation, still closing
        self._tasks: dict[str, asyncio.Task[None]] = {}  # each session's run()
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._opening = 0  # sessions being opened right now
        self.expired = 0  # detached sessions closed because nobody resumed them
        # Handing its sessions over to the fleet store (handover.py): no call is served.
        self.draining = False

    @property
    def sessions(self) -> set[Session]:
        return set(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    async def connect(self, link: SessionLink, start: SessionStart, device_id: str) -> None:
        """Serve one call: resume its session if the token is known (here, or handed
        over by another frontend of the fleet), else open one."""
        if self.draining:
            raise UnavailableError(DRAINING)
        session = self._resumable(start.resume_token, device_id)
        resumed = session is not None
        # This call's log lines, and those of every task it starts, name both (JSON logs).
        bind_log_context(device=device_id, session=session.id if session else "")
        if session is None:
            cfg = self._services.settings.server
            # Counted before the first await: simultaneous opens cannot all slip in.
            if self._held_after_open(device_id) + self._opening >= cfg.max_sessions:
                raise CapacityError(
                    f"the server is at its limit of {cfg.max_sessions} sessions; "
                    "try again later or raise [server] max_sessions"
                )
            self._opening += 1
            try:
                session = await reopen(self._services, start, device_id)
                resumed = session is not None
                if session is None:
                    session = await Session.open(self._services, start, device_id=device_id)
            finally:
                self._opening -= 1
            bind_log_context(session=session.id)  # before _add: its run() task inherits it
            self._add(session)
            self._limit_device(session)
        else:
            self._cancel_expiry(session)
            log.info("session %s resumed", session.id)
        try:
            await session.serve(link, resumed=resumed)
        except TimedOutError:
            # The call went silent (IdleTimeout): its session ends with it, not parked
            # for a resume nobody will make.
            session.terminate()
            raise
        finally:
            if session.id in self._sessions and not session.attached:
                self._detached(session)

    def end_devices(self, device_ids: frozenset[str], error: Fatal) -> dict[str, int]:
        """End every session of the (revoked) ``device_ids`` with ``error``'s status;
        how many per device, not counting sessions told so before and still closing.

        Cheap enough to run on every poll of the registry, which is what ends a
        session opened just before its device was revoked (registered after the poll
        that first saw the revocation)."""
        ended: dict[str, int] = {}
        for s in list(self._sessions.values()):
            if s.device_id in device_ids and s.id not in self._revoked:
                self._revoked.add(s.id)
                s.terminate(error)
                ended[s.device_id] = ended.get(s.device_id, 0) + 1
        return ended

    def go_away(self, reconnect_after_ms: int, reason: str) -> None:
        for s in self._sessions.values():
            if s.attached:
                s.go_away(reconnect_after_ms, reason)

    async def aclose(self) -> None:
        """Close every session (the server is stopping) and wait until they are closed."""
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        for s in list(self._sessions.values()):
            s.terminate()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks)

    # ------------------------------------------------------------------ inside

    def _resumable(self, token: str, device_id: str) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None  # restarted or expired: a new session, and a Notice says so
        if session.device_id != device_id and not _anonymous(device_id, session.device_id):
            raise ResumeRefusedError(
                "this resume token belongs to a session of another device; start a new "
                "session (send no resume token)"
            )
        return session

    def _add(self, session: Session) -> None:
        self._sessions[session.id] = session
        self._by_token[session.resume_token] = session
        task = asyncio.get_running_loop().create_task(session.run(), name=f"session-{session.id}")
        self._tasks[session.id] = task
        task.add_done_callback(self._forget(session))

    def _forget(self, session: Session) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._sessions.pop(session.id, None)
            self._by_token.pop(session.resume_token, None)
            self._tasks.pop(session.id, None)
            self._revoked.discard(session.id)
            self._cancel_expiry(session)
            if not task.cancelled() and task.exception() is not None:
                # The serving call reports it (as a status); here only the log line.
                log.info("session %s ended: %s", session.id, task.exception())
            else:
                log.info("session %s ended (%s)", session.id, session.stats)

        return done

    def _held_after_open(self, device_id: str) -> int:
        """Sessions still holding a slot once a new one of ``device_id`` is open: all
        but those of the same device it takes over (``_limit_device``)."""
        held = len(self._sessions)
        if _anonymous(device_id):
            return held
        mine = sum(1 for s in self._sessions.values() if s.device_id == device_id)
        keep = max(1, self._services.settings.server.sessions_per_device) - 1
        return held - max(0, mine - keep)

    def _limit_device(self, newest: Session) -> None:
        if _anonymous(newest.device_id):
            return  # development without pairing: every connection is its own
        limit = max(1, self._services.settings.server.sessions_per_device)
        mine = [s for s in self._sessions.values() if s.device_id == newest.device_id]
        for old in mine[: max(0, len(mine) - limit)]:  # oldest first (insertion order)
            old.terminate(TakenOverError("a newer connection from this device took over"))

    def _detached(self, session: Session) -> None:
        window = self._services.settings.server.resume_window_s
        log.info("session %s detached; resumable for %.0f s", session.id, window)
        if window <= 0:
            session.terminate()
            return
        loop = asyncio.get_running_loop()
        self._expiry[session.id] = loop.call_later(window, self._expire, session)

    def _expire(self, session: Session) -> None:
        self._expiry.pop(session.id, None)
        if not session.attached:
            self.expired += 1
            session.terminate()

    def _cancel_expiry(self, session: Session) -> None:
        handle = self._expiry.pop(session.id, None)
        if handle is not None:
            handle.cancel()


def _anonymous(*device_ids: str) -> bool:
    """No pairing (``murmur serve --no-auth``): there is no device to bind to."""
    return all(d in ("", "anonymous") for d in device_ids)
