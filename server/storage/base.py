"""What the pairing service needs from a device registry, and the records it holds.

Only ``server/storage`` knows SQL; everything above sees these records. Times are
wall-clock seconds (``time.time()``): the CLI and the server are different processes
and both read the expiry of a code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DeviceRecord", "DeviceStore", "NewDevice", "Redeemed"]


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    id: str
    name: str
    # hex sha256 of the token's secret (the token itself is never stored); not in repr:
    # a record in a log line or a traceback must not hand out what verifies the token
    token_hash: str = field(repr=False)
    created: float
    last_seen: float | None = None
    last_address: str = ""
    revoked: float | None = None  # when it was revoked; None while it may connect

    @property
    def active(self) -> bool:
        return self.revoked is None


@dataclass(frozen=True, slots=True)
class NewDevice:
    """The device a redeemed code creates; the code's own name, if any, wins."""

    id: str
    name: str
    token_hash: str = field(repr=False)
    created: float


class Redeemed(enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"  # no such code (a wrong guess)
    EXPIRED = "expired"
    USED = "used"


class DeviceStore(Protocol):
    """A registry shared by the server and the ``murmur`` CLI. Calls block (they may
    wait for the other process's write); run them off the event loop."""

    def add_code(self, code_hash: str, expires: float, name: str = "") -> None: ...

    def redeem_code(
        self, code_hash: str, now: float, device: NewDevice
    ) -> tuple[Redeemed, DeviceRecord | None]:
        """Atomically mark a live code used and add the device it pairs.

        Raises ``KeyError`` when ``device.id`` is taken (nothing is changed then)."""
        ...

    def prune_codes(self, before: float) -> int:
        """Forget codes that expired before ``before``; how many."""
        ...

    def device(self, device_id: str) -> DeviceRecord | None: ...

    def devices(self) -> list[DeviceRecord]: ...

    def touch(self, device_id: str, seen: float, address: str) -> None: ...

    def rename(self, device_id: str, name: str) -> bool: ...

    def revoke(self, device_id: str, when: float) -> bool:
        """False when there is no such device or it was already revoked."""
        ...

    def revoked_ids(self) -> frozenset[str]: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
