"""This machine: Python, the port, the state directory, the certificate, the registry.

Nothing here makes server state (that is the first ``murmur serve``'s job): what does
not exist yet is reported as made at first start, when its folder is writable.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

from server.config import Settings
from server.doctor.report import Check
from server.errors import MurmurError
from server.transport.security import is_loopback, state_dir

__all__ = ["check_certificate", "check_port", "check_python", "check_registry", "check_state_dir"]


def check_python() -> Check:
    v = sys.version_info
    found = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if v < (3, 11):
        return Check.fail("python", found, "Murmur needs Python 3.11 or newer")
    return Check.ok("python", found)


def _free_port(host: str) -> int | None:
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])
    except OSError:
        return None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_port(settings: Settings) -> Check:
    """Binds the port the way a listener would (SO_REUSEADDR, never SO_REUSEPORT, so
    another server on it, Murmur's own gRPC included, is found)."""
    host, port = settings.server.host, settings.server.port
    where = f"{host}:{port}"
    if port == 0:
        return Check.ok("port", f"{host}:0, any free port (the server prints which)")
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host.strip("[]"), port))
    except OSError as e:
        other = _free_port(host)
        alt = f" (e.g. --port {other})" if other else ""
        if e.errno == errno.EADDRINUSE:
            return Check.fail(
                "port",
                f"{where} is in use by another process",
                f"stop it (`ss -ltnp 'sport = :{port}'` shows which), or pick another port: "
                f"--port N or [server] port{alt}",
            )
        if e.errno == errno.EACCES:
            return Check.fail(
                "port", f"{where}: not allowed ({e.strerror})", f"use a port above 1023{alt}"
            )
        return Check.fail(
            "port",
            f"cannot listen on {where} ({e.strerror or e})",
            "--host must be an address of this machine (127.0.0.1, 0.0.0.0, ::)",
        )
    if settings.server.no_auth and not is_loopback(host):
        return Check.fail(
            "port",
            f"{where} is free, but --no-auth refuses any host but loopback",
            "use --host 127.0.0.1, or drop --no-auth and pair devices (`murmur pair`)",
        )
    return Check.ok("port", f"{where} is free")


def _writable_ancestor(path: Path) -> Path | None:
    for p in (path, *path.parents):
        if p.exists():
            return p if p.is_dir() and os.access(p, os.W_OK | os.X_OK) else None
    return None


def check_state_dir(settings: Settings) -> Check:
    folder = state_dir(settings)
    if settings.server.no_auth:
        return Check.skip("state dir", f"{folder}: not used with --no-auth")
    fix_owner = (
        f"run murmur as the user who owns it, or `chown -R $USER {folder}` (or set "
        "[pairing] state_dir / MURMUR_PAIRING_STATE_DIR to a folder of yours)"
    )
    if not folder.exists():
        parent = _writable_ancestor(folder)
        if parent is None:
            return Check.fail(
                "state dir", f"{folder} does not exist and cannot be made here", fix_owner
            )
        return Check.ok("state dir", f"{folder}: made by the first `murmur serve`")
    if not folder.is_dir():
        return Check.fail(
            "state dir",
            f"{folder} is not a folder",
            f"move it aside (mv '{folder}' '{folder}.old') or set [pairing] state_dir",
        )
    if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        return Check.fail("state dir", f"{folder} is not readable and writable by you", fix_owner)
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        return Check.warn(
            "state dir",
            f"{folder} is mode {mode:o}; the server makes it owner-only (700) at start",
            f"chmod 700 {folder}",
        )
    return Check.ok("state dir", f"{folder} (owner-only)")


def check_certificate(settings: Settings) -> Check:
    from server.pairing.tls import CERT_NAME, KEY_NAME, fingerprint, load_identity

    cfg = settings.server
    if cfg.no_auth:
        return Check.skip("certificate", "no TLS with --no-auth")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        return Check.fail(
            "certificate", "only one of [server] tls_cert and tls_key is set", "set both or neither"
        )
    try:
        if cfg.tls_cert:
            identity = load_identity(cfg.tls_cert, cfg.tls_key)
            return Check.ok("certificate", f"{cfg.tls_cert} (sha256 {identity.fingerprint[:16]}…)")
        folder = state_dir(settings)
        cert, key = folder / CERT_NAME, folder / KEY_NAME
        if not cert.exists():
            return Check.ok("certificate", f"{cert}: a self-signed one is made at first start")
        fp = fingerprint(cert.read_bytes())
        if not key.is_file():
            return Check.fail(
                "certificate",
                f"{cert} exists but its key {key} does not",
                f"delete {cert} to make a new certificate (every bridge must then pair again)",
            )
        key.read_bytes()
    except (OSError, ValueError) as e:
        return Check.fail(
            "certificate",
            f"cannot read it ({e})",
            "fix its permissions, or set [server] tls_cert/tls_key to a readable PEM pair",
        )
    return Check.ok("certificate", f"{cert} (sha256 {fp[:16]}…)")


def check_registry(settings: Settings) -> Check:
    from server.storage.sqlite import DB_NAME, SqliteDeviceStore

    if settings.server.no_auth:
        return Check.skip("registry", "no device tokens with --no-auth")
    db = state_dir(settings) / DB_NAME
    if not db.exists():
        return Check.ok("registry", f"{db}: made at first start; then pair with `murmur pair`")
    try:
        store = SqliteDeviceStore(db, create=False)
    except MurmurError as e:
        return Check.fail("registry", f"{db} cannot be opened", e.message)
    except OSError as e:
        return Check.fail(
            "registry", f"{db} cannot be opened ({e})", f"chown $USER {db}; chmod 600 {db}"
        )
    try:
        devices = store.devices()
    except MurmurError as e:
        return Check.fail("registry", f"{db} cannot be read", e.message)
    finally:
        store.close()
    active = sum(d.active for d in devices)
    hint = "" if active else "; pair one with `murmur pair`"
    return Check.ok("registry", f"{db}: {active} device(s) paired{hint}")
