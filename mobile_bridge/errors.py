"""What goes wrong between the bridge and a server, said so a person can act on it.

``LinkError`` is the one exception the link raises; ``explain_status`` turns a gRPC
status (and the transport's details, which is where TLS mix-ups show) into a sentence.
"""

from __future__ import annotations

import grpc

__all__ = [
    "PAIR_HINT",
    "LinkError",
    "explain_status",
    "fingerprint_mismatch",
    "not_tls",
    "speaks_tls",
]

PAIR_HINT = "murmur-bridge pair 'murmur://pair?…' (the link or code comes from `murmur pair`)"

# grpc reports a TLS mix-up as UNAVAILABLE at once; only the details tell which.
_VERIFY_FAILED = ("certificate_verify_failed", "certificate verify failed")
_NOT_TLS = ("wrong_version_number", "wrong version number", "handshake", "ssl", "tls")
_TLS_HANGUP = ("socket closed", "connection reset", "broken pipe", "end of tcp stream")


class LinkError(Exception):
    """The session cannot go on; ``str()`` says what happened and what to do.

    ``retryable`` marks a failure to reach the server that a later try may get past
    (a dropped network); a refused certificate or token is not.
    """

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        details: str = "",
        *,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details = details
        self.retryable = retryable


def speaks_tls(target: str) -> str:
    return (
        f"the server at {target} speaks TLS and this bridge spoke plaintext; pair with it "
        f"({PAIR_HINT}) or pass --tls"
    )


def not_tls(target: str) -> str:
    return (
        f"the server at {target} is not using TLS (started with --no-auth?); "
        f"pass --insecure to talk to it in plaintext on this machine"
    )


def fingerprint_mismatch(target: str, presented: str, expected: str) -> str:
    return (
        f"refusing {target}: its certificate has fingerprint {presented}, but this bridge "
        f"expected {expected}. Someone may be in the middle; if the server's certificate "
        f"was replaced on purpose, pair again: {PAIR_HINT}"
    )


def explain_status(
    code: grpc.StatusCode | None, details: str, target: str, *, tls: bool | None = None
) -> str:
    """A status as a sentence a person can act on.

    ``tls`` says how the bridge spoke (None: unknown); it decides what a bare
    "Socket closed" means at connect time.
    """
    details = details or "(no details)"
    low = details.lower()
    if code is grpc.StatusCode.UNAVAILABLE:
        if any(s in low for s in _VERIFY_FAILED):
            return (
                f"the server at {target} presented a certificate this bridge does not "
                f"trust ({details}). Pair again ({PAIR_HINT}), or with --tls check --ca"
            )
        if tls is not False and any(s in low for s in _NOT_TLS):
            return not_tls(target)
        if tls is False and any(s in low for s in _TLS_HANGUP):
            return speaks_tls(target)
        return (
            f"cannot reach a Murmur server at {target} ({details}). Start one with "
            f"`murmur serve` or pass --server HOST:PORT"
        )
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return (
            f"the server at {target} refused this bridge ({details}): its device token is "
            f"missing or was revoked. Pair again: {PAIR_HINT}"
        )
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return f"the server at {target} said no: {details}"
    if code is grpc.StatusCode.ABORTED:
        return f"the session with {target} was taken over by another connection: {details}"
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return f"the server at {target} rejected the session: {details}"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return f"the server at {target} is full or busy: {details}. Try again later"
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return f"the server at {target} does not offer this yet: {details}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the server at {target} did not answer in time: {details}"
    name = code.name if code is not None else "UNKNOWN"
    return f"the session with {target} failed ({name}): {details}"
