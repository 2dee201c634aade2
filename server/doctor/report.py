"""One line per check: what was found, and for a problem the fix."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Check", "Status", "exit_code", "render"]


class Status(enum.Enum):
    OK = "✓"
    WARN = "!"  # works, but worse than it could (a fallback, a first-start download)
    FAIL = "✗"  # `murmur serve` would not start, or not do what was asked
    SKIP = "-"  # not part of the chosen configuration


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    found: str
    fix: str = ""

    @classmethod
    def ok(cls, name: str, found: str) -> Check:
        return cls(name, Status.OK, found)

    @classmethod
    def warn(cls, name: str, found: str, fix: str = "") -> Check:
        return cls(name, Status.WARN, found, fix)

    @classmethod
    def fail(cls, name: str, found: str, fix: str) -> Check:
        return cls(name, Status.FAIL, found, fix)

    @classmethod
    def skip(cls, name: str, found: str) -> Check:
        return cls(name, Status.SKIP, found)


def render(checks: Iterable[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"{c.status.value} {c.name:<12} {c.found}")
        if c.fix:
            lines.append(f"  {'':<12} fix: {c.fix}")
    return "\n".join(lines)


def exit_code(checks: Iterable[Check]) -> int:
    return 1 if any(c.status is Status.FAIL for c in checks) else 0
