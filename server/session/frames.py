"""The latest-only frame slot.

Video never queues: the model always takes the newest frame, and a frame that is
overtaken before a tick uses it is simply replaced. Decoding happens off the event
loop (``images.decode_image`` runs in a small media executor), and the capture time
travels with the image so the trace can report how old a frame was when it was
decided on.

"Newest" is by ``VideoFrame.seq``, but a bridge's counter is not trusted to stay
sane: one stream delivers in order, so a frame with a lower seq than the held one
is late only by a little, and only just after the held one arrived. Anything else
(a counter that jumps by more than 2^31, goes back by more than a few frames, or
keeps going back for longer than ``LATE_FOR_S``: a wrapped or garbage counter,
2^64−1, a restarted bridge) is taken as the newest frame, the count re-anchors on
it and the session hears about it once (a count that starts over after a pause in
the video is no fault: it re-anchors quietly). Whatever the counter does, the held frame is
never older than ``LATE_FOR_S`` while newer ones arrive: the view cannot freeze.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from server.codes import Code
from server.runtime.base import Frame
from server.telemetry.metrics import FRAMES_DROPPED

__all__ = [
    "CLOCK_JUMP_S",
    "LATE_FOR_S",
    "LATE_SEQS",
    "RESTART_GAP_S",
    "SEQ_JUMP",
    "FrameSlot",
    "Offer",
]

# A still the server asked for (``high_res``) never enters the slot: it is decoded
# within the still's budget and held apart until its tick (session/vision.py,
# engine/reading.py).

SEQ_JUMP = 2**31  # a counter moving further ahead than this at once is not counting
LATE_SEQS = 64  # a frame at most this far behind the held one may be a late one …
LATE_FOR_S = 1.0  # … arriving this soon after it; later, it is the newest there is
RESTART_GAP_S = 5.0  # no frame for this long, and the count starts over: not a fault
# capture_time_ms (the bridge's clock) moving this much more or less than the frames'
# arrival times: the clock was set, or is garbage. Stalls on the network stay under it.
CLOCK_JUMP_S = 60.0


@dataclass(frozen=True, slots=True)
class Offer:
    """What ``FrameSlot.put`` made of a frame, and what the session should be told."""

    taken: bool
    notices: tuple[tuple[Code, str], ...] = ()  # (code, message): each sent once a session


def _judge(held: Frame, frame: Frame) -> Offer:
    notices: list[tuple[Code, str]] = []
    gap_s = frame.received_at - held.received_at
    if frame.seq and held.seq:  # seq 0: the bridge does not count; always the newest
        ahead = frame.seq - held.seq
        if -LATE_SEQS <= ahead <= 0 and gap_s < LATE_FOR_S:
            return Offer(False)  # late (or repeated): the held frame is newer
        # After a pause in the video, a count starting over is a restarted bridge (or a
        # resumed call): re-anchored quietly. While frames flow, it is a broken counter.
        if ahead > SEQ_JUMP or (ahead <= 0 and gap_s < RESTART_GAP_S):
            if ahead > 0:
                how = f"jumped from {held.seq} to {frame.seq}"
            elif ahead == 0:
                how = f"stayed at {frame.seq} for {gap_s:.1f} s"
            else:
                how = f"went back from {held.seq} to {frame.seq}"
            notices.append(
                (
                    Code.FRAME_SEQ_RESET,
                    f"VideoFrame.seq {how}; the frame was used as the newest and later ones "
                    "are ordered from it. Count frames up by one from any start (0: not "
                    "counted). Said once a session.",
                )
            )
    if frame.capture_time_ms and held.capture_time_ms:  # 0: the bridge has no clock
        moved_s = (frame.capture_time_ms - held.capture_time_ms) / 1000
        if abs(moved_s - gap_s) > CLOCK_JUMP_S:
            notices.append(
                (
                    Code.FRAME_CLOCK_JUMP,
                    f"VideoFrame.capture_time_ms moved {moved_s:+.0f} s between frames that "
                    f"arrived {gap_s:.1f} s apart: the bridge's clock jumped. The frame was "
                    "used; send unix milliseconds from one clock. Said once a session.",
                )
            )
    return Offer(True, tuple(notices))


class FrameSlot:
    """Holds only the newest frame; a tick asks whether it is fresh."""

    def __init__(self, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self._frame: Frame | None = None
        self._fresh = False
        self._event = asyncio.Event()
        self.replaced = 0  # frames overtaken before any tick used them

    @property
    def latest(self) -> Frame | None:
        return self._frame

    @property
    def fresh(self) -> bool:
        return self._fresh

    def fresh_since(self, since: float) -> bool:
        """A fresh frame is held, received at ``since`` or later."""
        return self._fresh and self._frame is not None and self._frame.received_at >= since

    def put(self, frame: Frame) -> Offer:
        """Offer a frame; a late one (by seq, see above) is dropped, anything else held."""
        offer = Offer(True) if self._frame is None else _judge(self._frame, frame)
        if not offer.taken:
            FRAMES_DROPPED.labels("late").inc()
            return offer
        if self._fresh:
            self.replaced += 1
            FRAMES_DROPPED.labels("replaced").inc()
        self._frame = frame
        self._fresh = True
        self._event.set()
        return offer

    def take(self) -> tuple[Frame | None, bool]:
        """The newest frame and whether it arrived since the last take."""
        fresh = self._fresh
        self._fresh = False
        self._event.clear()
        return self._frame, fresh

    async def wait_fresh(self, within_s: float, *, since: float | None = None) -> bool:
        """Until a fresh frame is held (one received at ``since`` or later, when given),
        for at most ``within_s``; whether one is."""

        def ready() -> bool:
            return self._fresh if since is None else self.fresh_since(since)

        if ready():
            return True
        if within_s <= 0:
            return False
        try:
            async with asyncio.timeout(within_s):
                while not ready():
                    self._event.clear()  # (fresh but too old: wait for the next put)
                    await self._event.wait()
        except TimeoutError:
            return False
        return True
