"""What the tick engine asks of a session's background questions (server/agents'
per-session side of the delegation manager), as a protocol: the engine never
imports the agents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Delegations"]


class _Result(Protocol):
    @property
    def question(self) -> str: ...
    @property
    def spoken(self) -> str: ...
    @property
    def urgent(self) -> bool: ...


class Delegations(Protocol):
    """The per-session side of the delegation manager (server/agents)."""

    def start(
        self,
        question: str,
        *,
        frames: tuple[bytes, ...] = (),
        location: str | None = None,
        context: str = "",
        barcodes: tuple[str, ...] = (),
    ) -> str: ...

    def cancel_all(self, reason: str) -> None: ...

    def take_results(self) -> Sequence[_Result]: ...

    async def wait_result(self) -> None: ...

    async def close(self) -> None:
        """Cancel what runs and wait until it has cleaned up."""
