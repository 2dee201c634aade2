"""Device tokens: ``<device id>.<secret>``, the secret 256 random bits.

Only sha256(secret) is stored. A plain hash is enough for 256-bit random secrets (there
is nothing to guess, so no slow KDF is needed); the id in front lets the registry find
the one row to compare, and that comparison is constant-time (``hmac.compare_digest``)
so the time a wrong token takes says nothing about the right one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["hash_secret", "new_device_id", "new_token", "split_token", "token_matches"]

SECRET_BYTES = 32
MAX_TOKEN_CHARS = 200  # anything longer is not one of ours; refused before hashing


def new_device_id() -> str:
    return secrets.token_hex(4)  # short enough to type in `murmur devices revoke ID`


def new_token(device_id: str) -> tuple[str, str]:
    """(token for the device, the hash to store)."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return f"{device_id}.{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """(device id, secret), or None when it cannot be a token."""
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return None
    device_id, dot, secret = token.partition(".")
    if not dot or not device_id or not secret:
        return None
    return device_id, secret


def token_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret).encode(), stored_hash.encode())
