"""What guards the port: the device registry (pairing, tokens) and the TLS identity,
built from settings in the server's state directory — or, in a fleet ([fleet] store),
the registry in the store every frontend shares, and one certificate they all
present. The composition root (``server/app.py``, ``server/cli.py``) builds it; the
transport enforces it."""

from __future__ import annotations

import ipaddress
import os
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.config import Settings

if TYPE_CHECKING:
    from server.pairing.service import PairingService
    from server.pairing.tls import TlsIdentity
    from server.session.handover import HandoverStore
    from server.storage.base import DeviceStore

__all__ = [
    "Security",
    "build_handover",
    "build_pairing",
    "device_store",
    "is_loopback",
    "state_dir",
]


def state_dir(settings: Settings) -> Path:
    """``[pairing] state_dir``, else $XDG_STATE_HOME/murmur (~/.local/state/murmur)."""
    if settings.pairing.state_dir:
        return Path(settings.pairing.state_dir).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(xdg).expanduser() / "murmur"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Security:
    """What guards the port: the pairing service (device tokens) and the TLS identity.
    Both None only in ``--no-auth`` development mode."""

    pairing: PairingService | None
    tls: TlsIdentity | None

    def close(self) -> None:
        if self.pairing is not None:
            self.pairing.close()


def build_pairing(settings: Settings, registry: Executor | None = None) -> Security:
    """The device registry (its calls in ``registry``, else a thread of its own) and TLS
    identity in the state directory (made at first start), or a configured certificate.
    Raises ValueError / OSError / StorageError saying what to do."""
    cfg = settings.server
    if cfg.no_auth:
        if not is_loopback(cfg.host):
            raise ValueError(
                f"--no-auth (no TLS, no device tokens) is for development on loopback only; "
                f"it refuses to listen on {cfg.host}. Use --host 127.0.0.1, or drop --no-auth "
                "and pair devices with `murmur pair`"
            )
        return Security(None, None)
    from server.pairing.service import PairingService
    from server.pairing.tls import ensure_self_signed, load_identity
    from server.storage.sqlite import ensure_private_dir

    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ValueError("[server] tls_cert and tls_key go together: set both or neither")
    if settings.fleet.store and not cfg.tls_cert:
        raise ValueError(
            "[fleet] store is set, so every frontend must present the same certificate "
            "(a bridge pins it): set [server] tls_cert and tls_key (in Kubernetes, from "
            "one Secret)"
        )
    folder = ensure_private_dir(state_dir(settings))
    store = device_store(settings)
    try:
        if cfg.tls_cert:
            tls = load_identity(cfg.tls_cert, cfg.tls_key)
        else:
            tls = ensure_self_signed(folder)
    except BaseException:
        store.close()
        raise
    return Security(PairingService(store, registry), tls)


def device_store(settings: Settings, *, create: bool = True) -> DeviceStore:
    """The device registry: the fleet's Redis when [fleet] store is set (every frontend
    and `murmur pair` share it), else SQLite in the state directory."""
    if settings.fleet.store:
        from server.storage.redis_store import RedisDeviceStore

        return RedisDeviceStore(settings.fleet.store)
    from server.storage.sqlite import DB_NAME, SqliteDeviceStore

    return SqliteDeviceStore(state_dir(settings) / DB_NAME, create=create)


def build_handover(settings: Settings) -> HandoverStore | None:
    """Where a draining frontend hands its sessions over ([fleet] store); None alone."""
    if not settings.fleet.store:
        return None
    from server.storage.redis_store import RedisHandoverStore

    return RedisHandoverStore(settings.fleet.store)
