"""The tick clock: when to tick, what to call the tick, and what to coalesce.

The clock starts when the first frame arrives (or one period after the session
starts, if none comes), so the camera's frames land just as ticks fall due.
Ticks never queue behind the model. When a step overruns, the ticks it covered
are counted as coalesced and the next tick takes the newest frame. Each tick is
labelled with the real time elapsed since the session began (in whole tick
periods), never with a tick counter, so the model's clock never drifts from the
world's even when frames or ticks drop.
Pure arithmetic on an injected time source: unit tests need no sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TickClock", "TickPlan"]


@dataclass(frozen=True, slots=True)
class TickPlan:
    due: float  # when the tick is scheduled
    deadline: float  # the latest it waits for a fresh frame


class TickClock:
    def __init__(self, start: float, period_s: float = 1.0, frame_wait_s: float = 0.15) -> None:
        if period_s <= 0:
            raise ValueError("tick period must be positive")
        self.start = start
        self.period = period_s
        self.frame_wait = min(frame_wait_s, period_s / 2)
        self._next_due = start + period_s
        self.coalesced_total = 0

    def plan(self) -> TickPlan:
        """When the next tick is due, and how long it may wait for a fresh frame."""
        return TickPlan(self._next_due, self._next_due + self.frame_wait)

    def label(self, now: float) -> float:
        """Elapsed time at ``now`` in whole tick periods, rounded to 0.1 s."""
        n = math.floor((now - self.start) / self.period + 1e-9)
        return round(n * self.period, 1)

    def advance(self, fired_at: float, finished_at: float, frame_at: float | None = None) -> int:
        """Schedule the next tick after one that fired at ``fired_at`` (using a frame
        received at ``frame_at``) and finished at ``finished_at``; return how many
        ticks were coalesced.

        The next tick is due one period after the frame arrived rather than after
        the tick fired: the camera's next frame then lands just as the tick is due,
        so frames wait for the model as little as possible. It is never due before
        the next whole period begins, so no two ticks share a label. When the step
        overran one or more periods, the newest overrun tick fires at once and the
        others coalesce into it.
        """
        base = frame_at if frame_at is not None and frame_at < fired_at else fired_at
        due = max(base + self.period, self.start + self.label(fired_at) + self.period)
        if finished_at <= due:
            self._next_due = due
            return 0
        missed = math.floor((finished_at - due) / self.period + 1e-9) + 1
        self._next_due = due + (missed - 1) * self.period
        self.coalesced_total += missed - 1
        return missed - 1
