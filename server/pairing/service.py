"""``PairingService``: codes traded for device tokens, tokens checked, devices managed.

Every store call runs on the registry's one-thread executor (the app's, or the
service's own when built standalone), never on the event loop (a write may wait for
the CLI's transaction). The async methods are the server's; the blocking ones
(``issue_code``, ``list_devices``, ``rename``, ``revoke``…) are the CLI's and must not
be called from a running loop.

Logs name devices by id and name and peers by address; never a token, its secret,
a hash or a pairing code.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

from server.errors import PairingDenied, PairingMalformed, PairingRateLimited
from server.pairing.codes import (
    MAX_PEERS,
    AttemptLimiter,
    IssuedCode,
    hash_code,
    new_code,
    normalize_code,
    peer_key,
)
from server.pairing.tokens import new_device_id, new_token, split_token, token_matches
from server.storage.base import DeviceRecord, DeviceStore, NewDevice, Redeemed
from server.tasks import WorkerPool

__all__ = ["MAX_NAME_CHARS", "MAX_TTL_S", "DeviceGrant", "PairingService"]

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TTL_S = 24 * 3600.0  # codes.py's brute-force arithmetic assumes at most this
MAX_NAME_CHARS = 64
TOUCH_EVERY_S = 60.0  # last-seen is written at most this often per device (same address)
PRUNE_AFTER_S = 24 * 3600.0  # expired codes are forgotten a day later
REFUSAL_LOG_EVERY_S = 60.0  # a refused token is logged once a minute per peer, then counted
ENDPOINT_KEY = "server.listen"

_DENIED = {
    Redeemed.UNKNOWN: "this pairing code is not valid; check it, or run `murmur pair` on "
    "the server for a new one",
    Redeemed.EXPIRED: "this pairing code has expired; run `murmur pair` on the server for a new one",
    Redeemed.USED: "this pairing code was already used (a code works once); run `murmur pair` "
    "on the server for a new one",
}


@dataclass(frozen=True, slots=True)
class DeviceGrant:
    device_id: str
    token: str = field(repr=False)  # goes to the device once; never logged, never stored


class PairingService:
    def __init__(
        self,
        store: DeviceStore,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.time,
        limiter: AttemptLimiter | None = None,
    ) -> None:
        """``executor``: the app's one registry thread (store calls are serialised on
        it); None makes (and owns) one."""
        self.store = store
        self._pool = WorkerPool(executor, prefix="murmur-registry")
        self.clock = clock
        self.limiter = limiter or AttemptLimiter()
        self._touched: dict[str, tuple[float, str]] = {}  # used on the executor thread only
        self._refusals = _RefusalLog(REFUSAL_LOG_EVERY_S)
        self._closed = False

    # ------------------------------------------------------------ the server's side

    async def pair(self, code: str, device_name: str, peer: str) -> DeviceGrant:
        """Trade a code for a token; raises PairingMalformed / PairingRateLimited / PairingDenied."""
        name = _device_name(device_name)
        raw = normalize_code(code)
        if raw is None:
            raise PairingMalformed(
                "that is not a pairing code: a code is 8 letters and digits like ABCD-EFGH, "
                "shown by `murmur pair` on the server"
            )
        now = self.clock()
        wait, scope = self.limiter.wait_s(peer, now)
        if wait > 0:
            who = "from this address" if scope == "peer" else "sent to this server"
            log.warning("pairing attempt from %s refused: too many wrong codes (%s)", peer, scope)
            raise PairingRateLimited(
                f"too many wrong pairing codes {who}; wait {math.ceil(wait)} s and try again",
                wait,
            )
        # Counted as wrong before the store is asked, and forgiven if it was right:
        # a thousand attempts sent at once cannot all slip past the limit together.
        self.limiter.failed(peer, now)
        for _ in range(3):  # a new id on the rare clash with an existing one
            device_id = new_device_id()
            token, token_hash = new_token(device_id)
            new = NewDevice(device_id, name, token_hash, now)
            try:
                result, record = await self._run(self.store.redeem_code, hash_code(raw), now, new)
                break
            except KeyError:
                continue
        else:  # pragma: no cover - three 32-bit clashes in a row
            raise PairingDenied("could not assign a device id; try again")
        if result is not Redeemed.OK or record is None:
            log.info("pairing from %s refused: %s code", peer, result.value)
            raise PairingDenied(_DENIED[result])
        self.limiter.forgive(peer, now)
        log.info("paired device %s (%r) from %s", record.id, record.name, peer)
        return DeviceGrant(record.id, token)

    async def verify(self, token: str, peer: str) -> str | None:
        """The device id for a valid, unrevoked token, else None; notes when and where
        the device was last seen."""
        parts = split_token(token)
        if parts is None:
            return None
        device_id, secret = parts
        ok = await self._run(self._check, device_id, secret, peer)
        if not ok:
            # A client retrying a revoked token (or a flood of made-up ones) must not
            # fill the log: one line per peer per minute, then how many were not logged.
            quiet = self._refusals.note(peer, self.clock())
            if quiet is not None:
                more = f"; {quiet} more refused from there since the last line" if quiet else ""
                log.info("refused a device token (device %r) from %s%s", device_id[:16], peer, more)
        return device_id if ok else None

    def _check(self, device_id: str, secret: str, peer: str) -> bool:
        record = self.store.device(device_id)
        if record is None or not token_matches(secret, record.token_hash) or not record.active:
            return False
        now = self.clock()
        last = self._touched.get(device_id)
        if last is None or last[1] != peer or now - last[0] >= TOUCH_EVERY_S:
            self.store.touch(device_id, now, peer)
            self._touched[device_id] = (now, peer)
        return True

    async def revoked_ids(self) -> frozenset[str]:
        return await self._run(self.store.revoked_ids)

    # ------------------------------------------------------------ the CLI's side (blocking)

    def issue_code(self, ttl_s: float, name: str = "") -> IssuedCode:
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"a pairing code lives between 1 s and {MAX_TTL_S / 3600:.0f} h")
        name = _device_name(name, fallback="") if name else ""
        now = self.clock()
        code = new_code()
        expires = now + ttl_s
        self._call(self.store.prune_codes, now - PRUNE_AFTER_S)
        self._call(self.store.add_code, hash_code(code.replace("-", "")), expires, name)
        return IssuedCode(code, expires, name)

    def list_devices(self) -> list[DeviceRecord]:
        return self._call(self.store.devices)

    def rename(self, device_id: str, name: str) -> bool:
        return self._call(self.store.rename, device_id, _device_name(name))

    def revoke(self, device_id: str) -> bool:
        """False when there is no such device or it is revoked already. Its live
        sessions end within seconds (the server polls ``revoked_ids``)."""
        ok = self._call(self.store.revoke, device_id, self.clock())
        if ok:
            log.info("revoked device %s", device_id)
        return ok

    def note_endpoint(self, address: str) -> None:
        """Where the server listens (HOST:PORT), for `murmur pair` to put in its URI."""
        self._call(self.store.set_meta, ENDPOINT_KEY, address)

    def endpoint(self) -> str | None:
        return self._call(self.store.get_meta, ENDPOINT_KEY)

    def close(self) -> None:
        """Close the registry, then an own executor; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self.store.close)
        finally:
            self._pool.close(wait=True)

    # ------------------------------------------------------------ plumbing

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool.executor, fn, *args)

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        return self._pool.executor.submit(fn, *args).result()


class _RefusalLog:
    """When to log a refused token: the first per peer (``peer_key``) in each
    ``every_s``; the rest are counted and the count goes into the next line."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._peers: dict[str, tuple[float, int]] = {}  # peer → (last line at, kept quiet)

    def note(self, peer: str, now: float) -> int | None:
        """None: say nothing; else log, with this many refusals left out since the last line."""
        key = peer_key(peer)
        last = self._peers.get(key)
        if last is not None and now - last[0] < self.every_s:
            self._peers[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._peers) >= MAX_PEERS:
            for stale in [p for p, (at, _) in self._peers.items() if now - at >= self.every_s]:
                del self._peers[stale]
            if len(self._peers) >= MAX_PEERS:
                self._peers.pop(next(iter(self._peers)))  # the longest-known peer
        self._peers[key] = (now, 0)
        return last[1] if last is not None else 0


def _device_name(text: str, fallback: str = "device") -> str:
    name = " ".join(text.split())
    if len(name) > MAX_NAME_CHARS:
        raise PairingMalformed(f"the device name is longer than {MAX_NAME_CHARS} characters")
    if not name.isprintable():
        raise PairingMalformed("the device name has control characters")
    return name or fallback
