"""Is the scene still? When it is, and nobody speaks, the bridge may capture less.

``CapturePace`` decides the ``CaptureHint``s a session sends (battery: every photo a
pair of glasses takes and sends over Bluetooth costs it). It reads each accepted
frame's 32×24 grey thumbnail (``fall.grey_thumbnail``) and what happens around it —
the user speaking or asking, Murmur speaking, a still asked for — on an injected clock,
and returns a hint only when the rate it advises changes:

- **lower** to the mode's ``capture.static_fps`` once the view has stayed within
  ``STILL_MAX`` of one anchor view, and nothing was said or asked, for the mode's
  ``capture.static_s``;
- **back to normal** (the server's tick rate) at once when a frame differs from the
  anchor by more than ``CHANGED_MIN``, or on any activity.

Hysteresis keeps it from flapping: a view must move more to restore the rate
(``CHANGED_MIN``) than it may move to count as still (``STILL_MAX``), and after a
restore the scene must be still for ``static_s`` again. The server never depends on
the hint being followed: its ticks keep their period either way.

``FrameBudget`` is the model's side of the same question, against the last frame the
model saw as an image rather than an anchor: a fresh frame that shows the same view
(the whole within ``STILL_MAX`` and no 20×20-pixel box off by more than ``LOCAL_MAX``)
enters the turn as a text marker, until that image is the mode's ``unchanged_s`` old;
a frame that differs by more than ``CHANGED_MIN`` overall or ``LOCAL_CHANGED`` in one
box — a scene change, or something coming into one part of the view — asks for a tick
at once instead of at the period's end (``Ticker.wake``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from server.events import CaptureHint
from server.modes.loader import CaptureRules

__all__ = ["CHANGED_MIN", "LOCAL_CHANGED", "LOCAL_MAX", "STILL_MAX", "CapturePace", "FrameBudget"]

# Mean absolute difference of two 32×24 grey thumbnails (0..255). A camera held still
# differs from itself by ~1 (sensor noise and JPEG, averaged over 20×20-pixel boxes);
# the project's synthetic walk moves ≤ 7 from frame to frame and far more over a few
# seconds (server/engine/fall.py), so walking re-anchors long before ``static_s``.
STILL_MAX = 4.0  # within this of the anchor: still (at the normal rate)
CHANGED_MIN = 8.0  # beyond this from the anchor: changed (restores a lowered rate)
# One thumbnail pixel is a 20×20 box of a 640×480 frame: a cyclist or a light changing
# colour moves a few boxes a lot and the mean barely.
LOCAL_MAX = 24.0  # no box off by more than this: still, for the model's budget
LOCAL_CHANGED = 48.0  # a box off by more than this: changed, tick now


class CapturePace:
    """The capture rate advised so far (``fps``), and when it changes."""

    def __init__(self, normal_fps: float, clock: Callable[[], float]) -> None:
        self.normal_fps = normal_fps
        self.fps = normal_fps  # what the bridge was last told (nothing said yet: normal)
        self._clock = clock
        self._anchor: np.ndarray | None = None  # the view the scene is compared with
        self._quiet_since = clock()  # unchanged and unspoken since

    @property
    def lowered(self) -> bool:
        return self.fps < self.normal_fps

    def frame(self, thumb: np.ndarray, rules: CaptureRules) -> CaptureHint | None:
        """An accepted frame's thumbnail, under the mode in force's rules."""
        now = self._clock()
        anchor = self._anchor
        if anchor is None or anchor.shape != thumb.shape:
            self._anchor, self._quiet_since = thumb, max(self._quiet_since, now)
            return None
        change = float(np.abs(thumb - anchor).mean())
        if change > (CHANGED_MIN if self.lowered else STILL_MAX):
            self._anchor, self._quiet_since = thumb, now
            return self._set(self.normal_fps, "scene_changed")
        low = min(rules.static_fps, self.normal_fps)
        if self.lowered:  # the mode changed under a lowered rate: its floor holds
            return self._set(low, "static" if low < self.normal_fps else "mode")
        if low < self.normal_fps and now - self._quiet_since >= rules.static_s:
            return self._set(low, "static")
        return None

    def activity(self, reason: str) -> CaptureHint | None:
        """Someone spoke or asked (``reason`` says who, as ``CaptureHint.reason`` does):
        the quiet starts over, and a lowered rate is restored at once."""
        self._quiet_since = self._clock()
        return self._set(self.normal_fps, reason)

    def _set(self, fps: float, reason: str) -> CaptureHint | None:
        if fps == self.fps:  # one hint per change
            return None
        self.fps = fps
        return CaptureHint(fps, reason)


class FrameBudget:
    """Which fresh frames the model sees as images; which ones call for a tick now."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._shown: np.ndarray | None = None  # the last frame shown to the model
        self._shown_at = float("-inf")

    def show(self, thumb: np.ndarray | None, *, unchanged_s: float, asked: bool) -> bool:
        """A fresh frame's thumbnail at a tick: True to show it as an image, False to say
        in text that the view has not changed. A question always sees the image."""
        now, last = self._clock(), self._shown
        carried = (
            thumb is not None
            and last is not None
            and not asked
            and now - self._shown_at < unchanged_s
            and last.shape == thumb.shape
            and _still(np.abs(thumb - last))
        )
        if not carried:
            self._shown, self._shown_at = thumb, now
        return not carried

    def changed(self, thumb: np.ndarray | None) -> bool:
        """An accepted frame differs from the model's last image enough to tick now."""
        last = self._shown
        if thumb is None or last is None or last.shape != thumb.shape:
            return False
        diff = np.abs(thumb - last)
        return float(diff.mean()) > CHANGED_MIN or float(diff.max()) > LOCAL_CHANGED


def _still(diff: np.ndarray) -> bool:
    return float(diff.mean()) <= STILL_MAX and float(diff.max()) <= LOCAL_MAX
