"""Pairings on the phone side: one per server, in ``~/.config/murmur/bridge.toml``.

Each pairing holds the server's addresses, its certificate (and that certificate's
fingerprint, checked again on load), this device's id and its token. The token is
the bridge's credential: the file is owner-only (0600, in a 0700 folder), is
replaced atomically, and no repr or message here ever shows a token::

    # murmur-bridge pairings, one table per server (keyed by certificate fingerprint).
    [servers."3f1c…e9"]
    addresses = ["192.168.1.20:50051", "10.8.0.1:50051"]
    certificate = "-----BEGIN CERTIFICATE-----\\n…"
    device_id = "dev-7"
    device_name = "pixel"
    paired_at = "2025-06-01T10:00:00+00:00"
    token = "…"
"""

from __future__ import annotations

import json
import os
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mobile_bridge.tls import ServerPin, fingerprint, normalize_fingerprint

__all__ = [
    "Pairing",
    "PairingFileError",
    "config_path",
    "find_pairing",
    "load_pairings",
    "remove_pairing",
    "save_pairing",
]

_HEADER = (
    "# murmur-bridge pairings, one table per server (keyed by certificate fingerprint).\n"
    "# Holds device tokens: keep it private (mode 0600). `murmur-bridge unpair` removes one.\n"
)


class PairingFileError(ValueError):
    """The pairings file is unreadable, or a lookup in it has no single answer."""


@dataclass(frozen=True)
class Pairing:
    """What this bridge knows about one server it paired with."""

    addresses: tuple[str, ...]
    fingerprint: str
    certificate_pem: str = field(repr=False)
    device_id: str
    token: str = field(repr=False)
    device_name: str = ""
    paired_at: str = ""

    @property
    def pin(self) -> ServerPin:
        return ServerPin(self.fingerprint, self.certificate_pem)

    def describe(self) -> str:
        """One line for people: where, which certificate, which device (never the token)."""
        return (
            f"{', '.join(self.addresses)} (certificate {self.fingerprint[:16]}…, "
            f"device {self.device_id or '?'})"
        )


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "murmur" / "bridge.toml"


def _parse(key: str, entry: dict[str, object], path: Path) -> Pairing:
    def text(name: str) -> str:
        value = entry.get(name, "")
        if not isinstance(value, str):
            raise PairingFileError(f"{path}: [servers.{key}] {name} is not a string")
        return value

    addresses = entry.get("addresses")
    if (
        not isinstance(addresses, list)
        or not addresses
        or not all(isinstance(a, str) for a in addresses)
    ):
        raise PairingFileError(f"{path}: [servers.{key}] has no addresses; pair again")
    try:
        fp = normalize_fingerprint(text("fingerprint"))
        presented = fingerprint(ssl.PEM_cert_to_DER_cert(text("certificate")))
    except ValueError as e:
        raise PairingFileError(f"{path}: [servers.{key}]: {e}; pair again") from e
    if presented != fp:
        raise PairingFileError(
            f"{path}: [servers.{key}] holds a certificate whose fingerprint is not "
            f"{fp}; the file was edited or damaged: unpair and pair again"
        )
    if not text("token"):
        raise PairingFileError(f"{path}: [servers.{key}] has no token; pair again")
    return Pairing(
        addresses=tuple(addresses),
        fingerprint=fp,
        certificate_pem=text("certificate"),
        device_id=text("device_id"),
        token=text("token"),
        device_name=text("device_name"),
        paired_at=text("paired_at"),
    )


def load_pairings(path: Path | None = None) -> list[Pairing]:
    """Every pairing in the file (none when there is no file), in file order."""
    path = path or config_path()
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PairingFileError(f"{path} is not valid TOML ({e}); fix or delete it") from e
    servers = data.get("servers", {})
    if not isinstance(servers, dict):
        raise PairingFileError(f"{path}: `servers` is not a table; fix or delete it")
    return [_parse(k, v, path) for k, v in servers.items() if isinstance(v, dict)]


def find_pairing(server: str | None = None, path: Path | None = None) -> Pairing | None:
    """The pairing for ``server`` (any of its addresses), or the only one there is.

    Raises ``PairingFileError`` when ``server`` is None and there are several.
    """
    pairings = load_pairings(path)
    if server is not None:
        return next((p for p in pairings if server in p.addresses), None)
    if len(pairings) > 1:
        listed = "".join(f"\n  {p.describe()}" for p in pairings)
        raise PairingFileError(
            f"this bridge is paired with {len(pairings)} servers; pass --server HOST:PORT "
            f"for one of them:{listed}"
        )
    return pairings[0] if pairings else None


def _toml_str(value: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _write(pairings: list[Pairing], path: Path) -> None:
    lines = [_HEADER]
    for p in pairings:
        lines.append(f"[servers.{_toml_str(p.fingerprint)}]")
        lines.append(f"addresses = [{', '.join(_toml_str(a) for a in p.addresses)}]")
        lines.append(f"certificate = {_toml_str(p.certificate_pem)}")
        for name in ("device_id", "device_name", "fingerprint", "paired_at", "token"):
            lines.append(f"{name} = {_toml_str(getattr(p, name))}")
        lines.append("")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # (an older file's looser mode must not survive the swap)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_pairing(pairing: Pairing, path: Path | None = None) -> tuple[Path, list[Pairing]]:
    """Remember ``pairing``; the file and the pairings it replaced.

    It replaces an earlier pairing with the same server, and any other pairing at
    one of its addresses (that address now answers with this server's certificate).
    """
    path = path or config_path()
    kept: list[Pairing] = []
    replaced: list[Pairing] = []
    for p in load_pairings(path):
        same = p.fingerprint == pairing.fingerprint or set(p.addresses) & set(pairing.addresses)
        (replaced if same else kept).append(p)
    _write([*kept, pairing], path)
    return path, replaced


def remove_pairing(server: str | None = None, path: Path | None = None) -> Pairing:
    """Forget the pairing for ``server`` (or the only one); the one forgotten."""
    path = path or config_path()
    pairing = find_pairing(server, path)
    if pairing is None:
        where = f" with {server}" if server else ""
        raise PairingFileError(f"this bridge is not paired{where} (nothing in {path})")
    _write([p for p in load_pairings(path) if p.fingerprint != pairing.fingerprint], path)
    return pairing
