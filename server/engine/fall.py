"""Has the wearer fallen? Two small pure detectors that feed ``EmergencyMachine.fall_detected``.

``MotionFallDetector`` reads the bridge's accelerometer batches (``DeviceMotion``): a
fall is a free fall, an impact soon after it, then a body lying mostly still and
turned from how it was carried before. Its clock is the samples' own time axis
(first sample time + index / rate), so the same stream always gives the same answer.

``FrameFallDetector`` is the fallback for a bridge without a motion sensor, used only
in modes whose data say ``fall_from_frames``: a sudden large change of the whole view,
then a view that stays near-identical and nearly featureless (the camera lying on the
floor, or facing the ceiling) for several seconds. It reads 32×24 grey thumbnails on
the caller's injected clock. It is deliberately conservative and only ever leads to
"Are you OK?", which "I'm fine" cancels; what it cannot tell from a fall is listed in
README "Emergency".

Neither detector speaks or keeps time of its own; both return a ``Fall`` (the evidence,
for the trace) or None.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from PIL import Image

from server.events import MotionIn

__all__ = [
    "MOTION_HZ",
    "Fall",
    "FrameFallDetector",
    "MotionFallDetector",
    "bad_motion",
    "grey_thumbnail",
]

G = 9.80665  # m/s² per g

# --- the motion detector's thresholds --------------------------------------------------
# Threshold fall detectors in the literature (Bourke et al. 2007, trunk and thigh;
# Kangas et al. 2008, waist and head) put the start of a fall at a total acceleration
# below ~0.4–0.6 g and the impact at ~2–3.5 g. Phones report at 50–100 Hz, which
# undersamples the impact's peak, so the impact threshold sits at the low end.
FREE_FALL_G = 0.6  # |a| below this is (partial) free fall
FREE_FALL_MIN_S = 0.15  # ≈ 11 cm of drop; a running stride's flight is about this long
IMPACT_G = 2.5  # |a| above this within IMPACT_WITHIN_S of the free fall's end
IMPACT_WITHIN_S = 1.0
SETTLE_S = 0.5  # after the impact: bounces and rolling, not judged
STILL_S = 1.5  # then this long is judged: is the body still, and turned?
STILL_BAND_G = 0.15  # a still sample is within this of 1 g …
STILL_FRACTION = 0.8  # … and this share of the window is still ("mostly")
# Lying down after a fall turns the carried device by ~90°; standing up again after
# a jump, not at all. A jump's landing is as hard as a fall's, so this is what tells
# them apart.
TURNED_DEG = 45.0
BEFORE_S = 1.0  # how the device was carried: its mean gravity over this before the fall
_GAP_S = 0.5  # samples missing longer than this, or going back more than
_OVERLAP_S = 0.1  # this (a bridge's batch stamps jitter a little): start over

# --- what a usable batch is -------------------------------------------------------------
# The rate the server asks bridges for (SessionReady.motion_hz): what phone browsers fire
# devicemotion at, so a page sends every sample it gets; a 150 ms free fall is 9 of them.
MOTION_HZ = 60.0
MIN_RATE_HZ = 20.0  # a 150 ms free fall must span several samples
MAX_RATE_HZ = 1000.0
MAX_BATCH_SAMPLES = 4096
MAX_BATCH_S = 5.0
MAX_ABS_MS2 = 2000.0  # ~200 g: beyond any phone accelerometer's range


@dataclass(frozen=True, slots=True)
class Fall:
    """What a detected fall looked like; ``how`` goes into the trace and the model's turn."""

    how: str


def bad_motion(m: MotionIn) -> str | None:
    """Why a batch cannot be used (for the Notice), or None when it can."""
    n = len(m.x)
    rate = m.sample_rate_hz
    if not math.isfinite(rate) or not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        return f"a sample rate of {rate:g} Hz (expected {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g})"
    if n == 0:
        return "no samples"
    if len(m.y) != n or len(m.z) != n:
        return f"x, y and z of different lengths ({n}, {len(m.y)}, {len(m.z)})"
    if n > MAX_BATCH_SAMPLES or n / rate > MAX_BATCH_S:
        return f"{n} samples ({n / rate:.1f} s; at most {MAX_BATCH_S:g} s a batch)"
    values = np.array((m.x, m.y, m.z), dtype=np.float64)
    if not np.isfinite(values).all():
        return "NaN or infinite values"
    if np.abs(values).max() > MAX_ABS_MS2:
        return f"values over {MAX_ABS_MS2:g} m/s² (are they in m/s²?)"
    return None


def _angle_deg(a: tuple[float, float, float], b: tuple[float, float, float]) -> float | None:
    na, nb = math.hypot(*a), math.hypot(*b)
    if na < 1e-6 or nb < 1e-6:
        return None
    cos = (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) / (na * nb)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


class MotionFallDetector:
    """Free fall → impact → still and turned, over a stream of checked batches."""

    def __init__(self) -> None:
        self._recent: deque[tuple[float, float, float, float]] = deque()  # t, x, y, z
        self._last_t: float | None = None
        self._low_since: float | None = None  # the current run of free-fall samples
        self._fell: tuple[float, float] | None = None  # (start, end) of the last free fall
        self._before: tuple[float, float, float] | None = None  # gravity before it
        self._impact: tuple[float, float] | None = None  # (time, peak g)
        self._window: list[tuple[float, float, float, float]] = []  # judged samples

    def feed(self, m: MotionIn) -> Fall | None:
        """One batch (checked with ``bad_motion`` first); a fall when this batch completed one."""
        step = 1.0 / m.sample_rate_hz
        t0 = m.first_sample_time_ms / 1000.0
        if self._last_t is not None and not -_OVERLAP_S < t0 - self._last_t - step < _GAP_S:
            self._reset()  # a gap, or time went back: a half-seen fall is not pieced together
        found = None
        for i, (x, y, z) in enumerate(zip(m.x, m.y, m.z, strict=True)):
            fall = self._sample(t0 + i * step, x, y, z)
            found = found or fall
        return found

    def _reset(self) -> None:
        self._recent.clear()
        self._low_since = self._fell = self._before = self._impact = None
        self._window = []

    def _sample(self, t: float, x: float, y: float, z: float) -> Fall | None:
        self._last_t = t
        g = math.sqrt(x * x + y * y + z * z) / G
        self._recent.append((t, x, y, z))
        while self._recent[0][0] < t - BEFORE_S - 2.0:
            self._recent.popleft()
        # A free fall is tracked in every state: a stumble, then the real fall, starts over.
        if g < FREE_FALL_G:
            if self._low_since is None:
                self._low_since = t
        elif self._low_since is not None:
            start, self._low_since = self._low_since, None
            if t - start >= FREE_FALL_MIN_S:
                self._fell, self._impact, self._window = (start, t), None, []
                self._before = self._mean_before(start)
        if self._fell is None:
            return None
        if self._impact is None:
            if g >= IMPACT_G:
                self._impact = (t, g)
            elif t - self._fell[1] > IMPACT_WITHIN_S:
                self._fell = None  # no impact: a hop, a lowered arm
            return None
        at, peak = self._impact
        if t < at + SETTLE_S:
            self._impact = (at, max(peak, g))
            return None
        if t < at + SETTLE_S + STILL_S:
            self._window.append((g, x, y, z))
            return None
        return self._judge()

    def _mean_before(self, start: float) -> tuple[float, float, float] | None:
        xs = [(x, y, z) for t, x, y, z in self._recent if start - BEFORE_S <= t < start]
        if not xs:
            return None
        n = len(xs)
        return (sum(v[0] for v in xs) / n, sum(v[1] for v in xs) / n, sum(v[2] for v in xs) / n)

    def _judge(self) -> Fall | None:
        assert self._fell is not None and self._impact is not None
        (start, end), (_, peak), window = self._fell, self._impact, self._window
        self._fell, self._impact, self._window = None, None, []
        if not window:
            return None
        still = sum(abs(g - 1.0) <= STILL_BAND_G for g, *_ in window) / len(window)
        if still < STILL_FRACTION:
            return None  # moving on: a run's stride, a jump into a walk
        n = len(window)
        after = (
            sum(w[1] for w in window) / n,
            sum(w[2] for w in window) / n,
            sum(w[3] for w in window) / n,
        )
        turned = _angle_deg(self._before, after) if self._before is not None else None
        if turned is not None and turned < TURNED_DEG:
            return None  # still, but upright as before: landed a jump and stood
        how = f"device motion: free fall {end - start:.2f} s, impact {peak:.1f} g, then still"
        return Fall(how + (f", turned {turned:.0f}°" if turned is not None else ""))


# --- the frame heuristic ----------------------------------------------------------------
# Grey levels are 0..255 on a 32×24 thumbnail (mean absolute difference between two).
# Measured on the project's synthetic walk (mobile_bridge/synth.py corridor_frame) at
# 1–5 fps: frame to frame ≤ 7; head turns in it (left, right, down, up): up to ~60;
# the view going from the corridor to a floor or ceiling: ~40–50. So a change alone
# says little; what a worn camera's view never does is stay both still and nearly
# featureless (std ≥ ~20 over the walk and its head turns; a floor or ceiling filling
# the view: ≲ 11).
THUMB_SIZE = (32, 24)
CHANGE_MIN = 25.0  # the whole view changed, against any frame of the last CHANGE_WITHIN_S
CHANGE_WITHIN_S = 2.5  # a fall takes about a second, spread over frames at 5 fps, or
# between two at 1 fps with a blurred one in the middle
STILL_MAX = 3.0  # then near-identical: frame to frame, and (×2) to the first such view
FEATURELESS_STD = 14.0  # and nearly featureless
STILL_FOR_S = 6.0  # for this long after the last change …
STILL_FRAMES = 4  # … and at least this many frames
_FRAME_GAP_S = 3.0  # no frame for this long: start over (paused, reconnecting)


def grey_thumbnail(image: Image.Image) -> np.ndarray:
    """The 32×24 grey thumbnail the heuristic reads (~0.3 ms for a 640×480 frame)."""
    small = image.reduce(4) if image.width >= 8 * THUMB_SIZE[0] else image
    grey = small.convert("L").resize(THUMB_SIZE, Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float32)


class FrameFallDetector:
    """A large change, then a still, featureless view for ``STILL_FOR_S``."""

    def __init__(self) -> None:
        self._recent: deque[tuple[float, np.ndarray]] = deque()  # the last CHANGE_WITHIN_S
        self._after: np.ndarray | None = None  # the view after the last large change
        self._changed_at = 0.0
        self._change = 0.0  # the largest change of this episode, for the trace
        self._still = 0

    def reset(self) -> None:
        self._recent.clear()
        self._after = None

    def feed(self, thumb: np.ndarray, now: float) -> Fall | None:
        if self._recent and now - self._recent[-1][0] > _FRAME_GAP_S:
            self.reset()
        prev = self._recent[-1][1] if self._recent else None
        while self._recent and self._recent[0][0] < now - CHANGE_WITHIN_S:
            self._recent.popleft()
        change = max((float(np.abs(thumb - t).mean()) for _, t in self._recent), default=0.0)
        self._recent.append((now, thumb))
        if prev is None:
            return None
        if change >= CHANGE_MIN:
            self._change = change if self._after is None else max(self._change, change)
            self._after, self._changed_at, self._still = thumb, now, 0
            return None
        if self._after is None:
            return None
        step = float(np.abs(thumb - prev).mean())
        drift = float(np.abs(thumb - self._after).mean())
        if step > STILL_MAX or drift > 2 * STILL_MAX or float(thumb.std()) > FEATURELESS_STD:
            self._after = None  # moving again, or a view with things in it: worn, upright
            return None
        self._still += 1
        if self._still < STILL_FRAMES or now - self._changed_at < STILL_FOR_S:
            return None
        self._after = None
        return Fall(
            f"frames: the view changed at once ({self._change:.0f}/255), then lay still "
            f"and featureless for {now - self._changed_at:.0f} s"
        )
