"""One-time pairing codes and the limits on guessing them.

A code is 8 symbols from a 32-symbol alphabet without look-alikes (no 0/O, 1/I),
shown as ``ABCD-EFGH``: 32**8 = 2**40 ≈ 1.1e12 codes.

Why it cannot be brute-forced in its lifetime: every wrong code counts against the
global limit (``GLOBAL_FAILURES`` = 30 per ``WINDOW_S`` = 60 s, whoever sends it), so in
the default 10-minute lifetime at most 30 * 10 = 300 guesses are even looked at, and the
chance that any of them hits one live code is 300 / 2**40 ≈ 2.7e-10. Even at the longest
lifetime the CLI allows (24 h: 43,200 guesses) it is ≈ 3.9e-8 per live code. The per-peer
limit (``PEER_FAILURES``) keeps one noisy client from locking out everyone else first.
A peer is an IPv4 address or an IPv6 /64 (``peer_key``): an IPv6 host picks any
address of its /64 at will, so counting addresses would count nothing.

Codes are stored as sha256 hashes: a copy of the database does not hand out a code
that still works, and the code is never written anywhere in the clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections import deque
from dataclasses import dataclass

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "GLOBAL_FAILURES",
    "PEER_FAILURES",
    "WINDOW_S",
    "AttemptLimiter",
    "IssuedCode",
    "format_code",
    "hash_code",
    "new_code",
    "normalize_code",
    "peer_key",
]

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols: 5 bits each
CODE_LENGTH = 8
WINDOW_S = 60.0
PEER_FAILURES = 5  # wrong codes one peer may send per window
GLOBAL_FAILURES = 30  # wrong codes everyone together may send per window
MAX_PEERS = 10_000  # peers remembered at once; the global limit bounds the rest
IPV6_PREFIX = 64  # one IPv6 subscriber (a phone, a home) holds a whole /64


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str  # as shown: ABCD-EFGH
    expires: float  # wall-clock seconds
    name: str = ""  # the device name the code gives, if ``murmur pair --name`` set one


def new_code() -> str:
    return format_code("".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH)))


def format_code(raw: str) -> str:
    half = CODE_LENGTH // 2
    return f"{raw[:half]}-{raw[half:]}"


def normalize_code(text: str) -> str | None:
    """The code's 8 symbols, forgiving case, spaces and dashes; None if it cannot be one."""
    raw = "".join(text.split()).replace("-", "").upper()
    if len(raw) != CODE_LENGTH or any(c not in ALPHABET for c in raw):
        return None
    return raw


def hash_code(raw: str) -> str:
    return hashlib.sha256(b"murmur-pairing-code:" + raw.encode()).hexdigest()


def peer_key(host: str) -> str:
    """What one client is counted as: its IPv4 address, or its IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (``unix:``): the string itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        # int(): the zone (fe80::1%eth0) is not part of the network.
        return str(ipaddress.IPv6Network((int(address), IPV6_PREFIX), strict=False))
    return str(address)


class AttemptLimiter:
    """Wrong codes per peer (``peer_key`` of the address) and for everyone, in a
    sliding window (in memory: the server is the only process that checks codes)."""

    def __init__(
        self,
        per_peer: int = PEER_FAILURES,
        overall: int = GLOBAL_FAILURES,
        window_s: float = WINDOW_S,
    ) -> None:
        self.per_peer = per_peer
        self.overall = overall
        self.window_s = window_s
        self._all: deque[float] = deque()
        self._peers: dict[str, deque[float]] = {}

    def wait_s(self, peer: str, now: float) -> tuple[float, str]:
        """(seconds to wait, "" | "peer" | "global"); 0 when an attempt may go ahead."""
        self._prune(self._all, now)
        mine = self._peers.get(peer_key(peer))
        if mine is not None and len(self._prune(mine, now)) >= self.per_peer:
            return mine[0] + self.window_s - now, "peer"
        if len(self._all) >= self.overall:
            return self._all[0] + self.window_s - now, "global"
        return 0.0, ""

    def failed(self, peer: str, now: float) -> None:
        peer = peer_key(peer)
        self._all.append(now)
        if peer not in self._peers and len(self._peers) >= MAX_PEERS:
            for stale in [p for p, q in self._peers.items() if not self._prune(q, now)]:
                del self._peers[stale]
            if len(self._peers) >= MAX_PEERS:
                self._peers.pop(next(iter(self._peers)))  # the longest-known peer
        self._peers.setdefault(peer, deque()).append(now)

    def forgive(self, peer: str, at: float) -> None:
        """Take back the failure counted ``at`` (the attempt turned out right)."""
        for q in (self._all, self._peers.get(peer_key(peer))):
            if q is not None and at in q:
                q.remove(at)

    def _prune(self, q: deque[float], now: float) -> deque[float]:
        cutoff = now - self.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        return q
