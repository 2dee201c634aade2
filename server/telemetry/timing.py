"""Per-stage timing for the tick trace, and for ``murmur_tick_stage_seconds``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from server.events import StageTiming
from server.telemetry.metrics import TICK_STAGE

__all__ = ["StageTimer"]


class StageTimer:
    """Collects (stage, ms) pairs for one tick; each is observed in the stage histogram
    too, so the metrics see every tick, not only those whose client asked for traces."""

    __slots__ = ("_clock", "stages")

    def __init__(self, clock=time.perf_counter) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self.stages: list[StageTiming] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = self._clock()
        try:
            yield
        finally:
            self.add(name, (self._clock() - t0) * 1000.0)

    def add(self, name: str, ms: float) -> None:
        self.stages.append(StageTiming(name, ms))
        TICK_STAGE.labels(name).observe(max(ms, 0.0) / 1000.0)

    def total_ms(self, exclude: tuple[str, ...] = ()) -> float:
        """The stages summed. A dotted name (``model.decide``) is a part of the stage
        before the dot, already inside it, so it is not added again."""
        return sum(s.ms for s in self.stages if "." not in s.stage and s.stage not in exclude)
