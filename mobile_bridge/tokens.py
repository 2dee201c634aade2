"""Device tokens on the phone side: kept per server in ``~/.config/murmur/bridge.toml``.

The file is written owner-only (0600): the token is the bridge's credential.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

__all__ = ["config_path", "load_token", "save_token"]


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "murmur" / "bridge.toml"


def _read(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path} is not valid TOML ({e}); fix or delete it") from e
    servers = data.get("servers", {})
    return {k: dict(v) for k, v in servers.items() if isinstance(v, dict)}


def load_token(server: str, path: Path | None = None) -> str | None:
    """The saved device token for ``server``, if this bridge was paired with it."""
    entry = _read(path or config_path()).get(server)
    token = entry.get("token") if entry else None
    return token or None


def save_token(server: str, token: str, device_id: str = "", path: Path | None = None) -> Path:
    """Remember ``token`` for ``server``; other servers' entries are kept."""
    path = path or config_path()
    servers = _read(path)
    servers[server] = {"token": token, "device_id": device_id}
    lines = ["# murmur-bridge device tokens, one table per server. Keep private.", ""]
    for name, entry in sorted(servers.items()):
        # JSON strings are valid TOML basic strings (same escapes).
        lines.append(f"[servers.{json.dumps(name)}]")
        lines.extend(f"{k} = {json.dumps(str(v))}" for k, v in sorted(entry.items()))
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path
