"""Redis as a fleet's shared store ([fleet] store = "redis://HOST:6379/0").

N frontends behind one balancer are one server to a bridge only if they share what
outlives a call: the device registry (``RedisDeviceStore``, the ``DeviceStore`` the
SQLite file is for one frontend) and the sessions a draining frontend hands over
(``RedisHandoverStore``). Both keep what SQLite keeps, no more: device tokens and
pairing codes only as hashes, and a hand-over under the hash of its resume token,
so a dump of the store hands out no credential. Every entry that can go stale has a
TTL: a pairing code a day after it expired, a hand-over after the resume window.

Keys (``murmur:`` first, so one Redis can hold other things):

- ``murmur:device:<id>`` a hash per device; ``murmur:devices`` a sorted set of ids by
  pairing time; ``murmur:revoked`` the set of revoked ids;
- ``murmur:code:<code hash>`` a hash per pairing code;
- ``murmur:meta`` small facts (where the fleet is reached, for `murmur pair`);
- ``murmur:handover:<resume token hash>`` one session's hand-over (JSON text).

Writes that must be atomic (redeeming a code, revoking) are Lua scripts, which Redis
runs as one step; the rest are single commands. A Redis that cannot be reached is a
``StorageError`` (UNAVAILABLE to a caller), naming the store without its password.
The ``redis`` client is imported only when a store is configured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from server.errors import StorageError
from server.storage.base import DeviceRecord, NewDevice, Redeemed

__all__ = ["PREFIX", "RedisDeviceStore", "RedisHandoverStore", "connect", "safe_url"]

PREFIX = "murmur:"
CODE_KEEP_S = 24 * 3600  # an expired code's key lives this long after (as SQLite prunes)
TIMEOUT_S = 5.0

_REDEEM = """
local c = redis.call('HMGET', KEYS[1], 'name', 'expires', 'used')
if not c[2] then return {'unknown', ''} end
if c[3] and c[3] ~= '' then return {'used', ''} end
if tonumber(c[2]) <= tonumber(ARGV[1]) then return {'expired', ''} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'taken', ''} end
redis.call('HSET', KEYS[1], 'used', ARGV[1])
local name = c[1]
if not name or name == '' then name = ARGV[3] end
redis.call('HSET', KEYS[2], 'name', name, 'token_hash', ARGV[4], 'created', ARGV[5],
           'last_seen', '', 'last_address', '', 'revoked', '')
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
return {'ok', name}
"""
# HSET field value on an existing hash only (never makes a half device); 1 if it did.
_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
_REVOKE = """
local r = redis.call('HGET', KEYS[1], 'revoked')
if not r or r ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'revoked', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""


def safe_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str) -> Any:
    """A checked client for ``url`` (redis:// or rediss://); raises StorageError saying
    what to do."""
    try:
        import redis
    except ImportError as e:
        raise StorageError(
            f"[fleet] store is {safe_url(url)!r}, which needs the redis client ({e}); "
            "pip install 'murmur[fleet]', or leave [fleet] store empty for one frontend alone"
        ) from e
    try:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            health_check_interval=30,
        )
        client.ping()
    except (redis.RedisError, ValueError) as e:
        raise StorageError(
            f"cannot reach the fleet store {safe_url(url)} ({e}); check [fleet] store "
            "and that Redis is running"
        ) from e
    return client


@contextlib.contextmanager
def _guard(url: str, what: str) -> Iterator[None]:
    import redis

    try:
        yield
    except redis.RedisError as e:
        raise StorageError(
            f"cannot {what} the fleet store {safe_url(url)} ({e}); try again in a moment"
        ) from e


def _num(value: str | None) -> float | None:
    return float(value) if value else None


class RedisDeviceStore:
    """The device registry in Redis: what ``SqliteDeviceStore`` is for one frontend,
    shared by every frontend of a fleet and by `murmur pair` / `murmur devices`."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self._r = client if client is not None else connect(url)
        self._redeem = self._r.register_script(_REDEEM)
        self._set_if_exists = self._r.register_script(_SET_IF_EXISTS)
        self._revoke = self._r.register_script(_REVOKE)

    # ---------------------------------------------------------------- codes

    def add_code(self, code_hash: str, expires: float, name: str = "") -> None:
        key = f"{PREFIX}code:{code_hash}"
        with _guard(self.url, "write"):
            pipe = self._r.pipeline(transaction=True)
            pipe.hset(key, mapping={"name": name, "expires": repr(expires), "used": ""})
            pipe.expireat(key, int(expires + CODE_KEEP_S))
            pipe.execute()

    def redeem_code(
        self, code_hash: str, now: float, device: NewDevice
    ) -> tuple[Redeemed, DeviceRecord | None]:
        keys = [f"{PREFIX}code:{code_hash}", f"{PREFIX}device:{device.id}", f"{PREFIX}devices"]
        args = [repr(now), device.id, device.name, device.token_hash, repr(device.created)]
        with _guard(self.url, "write"):
            result, name = self._redeem(keys=keys, args=args)
        if result == "taken":
            raise KeyError(device.id)
        if result != "ok":
            return Redeemed(result), None
        return Redeemed.OK, DeviceRecord(device.id, name, device.token_hash, device.created)

    def prune_codes(self, before: float) -> int:
        """Redis forgets expired codes by itself (each key's TTL): nothing to do."""
        return 0

    # ---------------------------------------------------------------- devices

    def device(self, device_id: str) -> DeviceRecord | None:
        with _guard(self.url, "read"):
            row = self._r.hgetall(f"{PREFIX}device:{device_id}")
        return _record(device_id, row) if row else None

    def devices(self) -> list[DeviceRecord]:
        with _guard(self.url, "read"):
            ids = self._r.zrange(f"{PREFIX}devices", 0, -1)
            pipe = self._r.pipeline(transaction=False)
            for device_id in ids:
                pipe.hgetall(f"{PREFIX}device:{device_id}")
            rows = pipe.execute()
        return [_record(i, row) for i, row in zip(ids, rows, strict=True) if row]

    def touch(self, device_id: str, seen: float, address: str) -> None:
        with _guard(self.url, "write"):
            self._set_if_exists(
                keys=[f"{PREFIX}device:{device_id}"],
                args=["last_seen", repr(seen), "last_address", address],
            )

    def rename(self, device_id: str, name: str) -> bool:
        with _guard(self.url, "write"):
            done = self._set_if_exists(keys=[f"{PREFIX}device:{device_id}"], args=["name", name])
        return bool(done)

    def revoke(self, device_id: str, when: float) -> bool:
        keys = [f"{PREFIX}device:{device_id}", f"{PREFIX}revoked"]
        with _guard(self.url, "write"):
            return bool(self._revoke(keys=keys, args=[repr(when), device_id]))

    def revoked_ids(self) -> frozenset[str]:
        with _guard(self.url, "read"):
            return frozenset(self._r.smembers(f"{PREFIX}revoked"))

    # ---------------------------------------------------------------- meta

    def get_meta(self, key: str) -> str | None:
        with _guard(self.url, "read"):
            value = self._r.hget(f"{PREFIX}meta", key)
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with _guard(self.url, "write"):
            self._r.hset(f"{PREFIX}meta", key, value)

    def close(self) -> None:
        self._r.close()


def _record(device_id: str, row: dict[str, str]) -> DeviceRecord:
    return DeviceRecord(
        id=device_id,
        name=row.get("name", ""),
        token_hash=row.get("token_hash", ""),
        created=float(row.get("created") or 0.0),
        last_seen=_num(row.get("last_seen")),
        last_address=row.get("last_address", ""),
        revoked=_num(row.get("revoked")),
    )


class RedisHandoverStore:
    """Sessions handed over by a draining frontend, each under its resume token's hash
    (the caller hashes; this store never sees a token), for ``ttl_s``; ``take`` gets
    one and deletes it in one step, so only one frontend resumes it."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self._r = client if client is not None else connect(url)

    def put(self, key: str, value: str, ttl_s: float) -> None:
        with _guard(self.url, "write"):
            self._r.set(f"{PREFIX}handover:{key}", value, px=max(1, int(ttl_s * 1000)))

    def take(self, key: str) -> str | None:
        with _guard(self.url, "read"):
            value = self._r.getdel(f"{PREFIX}handover:{key}")
        return None if value is None else str(value)

    def close(self) -> None:
        self._r.close()
