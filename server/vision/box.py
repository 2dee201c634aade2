"""Where something is in a picture: an axis-aligned box in image pixels, and the
words for it ("at the top left of the view") that a turn or a spoken line uses."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Box", "where_in_view"]


@dataclass(frozen=True, slots=True)
class Box:
    """Pixels of the image the thing was found in; ``right``/``bottom`` exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @classmethod
    def around(cls, points: Iterable[tuple[float, float]], size: tuple[int, int]) -> Box:
        """The smallest box holding ``points`` (a detector's corners, possibly rotated
        and fractional), clipped to an image of ``size`` = (width, height)."""
        pts = list(points)
        if not pts:
            raise ValueError("a box needs at least one point")
        w, h = size
        xs = [x for x, _ in pts]
        ys = [y for _, y in pts]
        left = min(max(math.floor(min(xs)), 0), w)
        top = min(max(math.floor(min(ys)), 0), h)
        right = min(max(math.ceil(max(xs)), left), w)
        bottom = min(max(math.ceil(max(ys)), top), h)
        return cls(left, top, right, bottom)

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)


_ROWS = ("top", "", "bottom")
_COLUMNS = ("left", "", "right")


def where_in_view(box: Box, size: tuple[int, int]) -> str:
    """The box's centre in a 3×3 grid over an image of ``size`` (width, height):
    "at the centre of the view", "on the left of the view", "at the top right of the
    view". Left and right are the picture's, which is the wearer's: the camera looks
    where they look."""
    w, h = size
    cx, cy = box.centre
    col = _COLUMNS[min(int(3 * cx / w), 2)] if w > 0 else ""
    row = _ROWS[min(int(3 * cy / h), 2)] if h > 0 else ""
    if not row and not col:
        return "at the centre of the view"
    if not row:
        return f"on the {col} of the view"
    return f"at the {' '.join(p for p in (row, col) if p)} of the view"
