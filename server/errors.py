"""The error taxonomy.

Two families, kept apart from the policy that acts on them:

- ``Recoverable`` problems become a ``Notice`` on the stream; the session goes on.
- ``Fatal`` problems end the call; ``server/transport/status.py`` maps each class to
  a gRPC status code in one table.

Messages say what happened and what to do about it.
"""

from __future__ import annotations

from server.codes import CODES, Code

__all__ = [
    "CapacityError",
    "Fatal",
    "IdleTimeout",
    "ModelLoadError",
    "MurmurError",
    "NotOfferedError",
    "PairingDenied",
    "PairingMalformed",
    "PairingRateLimited",
    "ProtocolError",
    "Recoverable",
    "ResumeRefusedError",
    "StorageError",
    "StreamClosed",
    "TakenOverError",
    "TimedOutError",
    "UnauthenticatedError",
    "UnavailableError",
]


class MurmurError(Exception):
    """Base of every error Murmur raises on purpose."""

    component: str = "server"

    def __init__(self, message: str, *, component: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if component is not None:
            self.component = component


class Recoverable(MurmurError):
    """A problem the session survives; reported as a ``Notice``."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        component: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        code = Code(code)  # an unknown code is a bug: every code has a row in server/codes.py
        info = CODES[code]
        super().__init__(message, component=component or info.component)
        self.code = code
        self.retryable = info.retryable if retryable is None else retryable


class Fatal(MurmurError):
    """A problem that ends the session."""


class ProtocolError(Fatal):
    """The client broke the wire contract (wrong order, bad format, bad values)."""

    component = "protocol"


class TimedOutError(Fatal):
    """The client did not send what it had to in time (DEADLINE_EXCEEDED)."""

    component = "protocol"


class IdleTimeout(TimedOutError):
    """A session whose call sent nothing for ``[server] idle_timeout_s``."""

    component = "session"


class UnauthenticatedError(Fatal):
    component = "auth"


class CapacityError(Fatal):
    """The server is at its session limit; retry later or elsewhere."""


class TakenOverError(Fatal):
    """A newer connection took this session (a resume) or this device's place."""

    component = "session"


class ResumeRefusedError(Fatal):
    """A resume token presented by a device other than the one that opened the session."""

    component = "session"


class UnavailableError(Fatal):
    """Every backend (and fallback) for something the session needs has failed."""


class NotOfferedError(Fatal):
    """Something this server is not set up to do (Pair without pairing: UNIMPLEMENTED)."""


class PairingMalformed(ProtocolError):
    """A Pair request that cannot be a pairing code or a device name (INVALID_ARGUMENT)."""

    component = "pairing"


class PairingDenied(Fatal):
    """A pairing code that is wrong, expired or already used (PERMISSION_DENIED)."""

    component = "pairing"


class PairingRateLimited(Fatal):
    """Too many wrong pairing codes, from this peer or from everyone (RESOURCE_EXHAUSTED)."""

    component = "pairing"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageError(Fatal):
    """The device registry cannot be read or written (corrupt, locked, newer schema)."""

    component = "storage"


class StreamClosed(MurmurError):
    """The call is gone (the client vanished, the server cancelled it): nothing to
    report to anyone; the session just ends."""


class ModelLoadError(MurmurError):
    """The interaction model could not be loaded. Raised at start-up, never mid-session."""

    component = "model"
