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
    "ModelLoadError",
    "MurmurError",
    "ProtocolError",
    "Recoverable",
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


class UnauthenticatedError(Fatal):
    component = "auth"


class CapacityError(Fatal):
    """The server is at its session limit; retry later or elsewhere."""


class UnavailableError(Fatal):
    """Every backend (and fallback) for something the session needs has failed."""


class ModelLoadError(MurmurError):
    """The interaction model could not be loaded. Raised at start-up, never mid-session."""

    component = "model"
