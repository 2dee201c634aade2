"""Scenarios: a first-person walk with labelled events on a timeline, rendered frame
by frame on the bridge's own synthetic corridor (``mobile_bridge.synth``).

A ``Scenario`` is a mode, a language, a duration, a frame rate and its events:

- ``HazardEvent``: something approaching, from its onset to its closest approach —
  what it is, its clock direction and its distance, both interpolated over time; drawn
  as a shape that grows as it nears, placed by its clock direction;
- ``SignEvent``: a sign in view (its text on a panel), optionally with the user asking
  to have it read;
- ``ProductEvent``: a product box held in view with an EAN-13 and a QR code printed on
  it (drawn with zxing-cpp's writer, as tests/test_products.py draws them);
- ``FallEvent``: the wearer falls (the view tips over and stays tipped), with the
  user's answer to "Are you OK?" or none;
- ``QuietStretch``: nothing worth saying happens;
- ``Question``: the user asks something at a time (typed or phone-recognised text);
- ``RouteStep``: the phone's route step changes (navigation), with a location fix.

Frames are JPEG, scaled and compressed as ``mobile_bridge.media.encode_jpeg`` does
(640 px, quality 80); a still request is answered with a 1600×1200 photo of the same
moment.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

from mobile_bridge.media import encode_jpeg
from mobile_bridge.synth import corridor_frame
from server.events import ClientEvent, FrameIn, LocationIn, Mode, TextIn, VideoEncoding

__all__ = [
    "FRAME_SIZE",
    "STILL_SIZE",
    "FallEvent",
    "HazardEvent",
    "ProductEvent",
    "Question",
    "QuietStretch",
    "RouteStep",
    "Scenario",
    "SignEvent",
    "client_script",
    "render",
    "render_jpeg",
    "still_jpeg",
]

FRAME_SIZE = (640, 480)
STILL_SIZE = (1600, 1200)
FRAME_QUALITY = 80  # the bridge's replay default (mobile_bridge/sources/replay.py)
STILL_QUALITY = 90

# What a hazard looks like: a colour and a shape's width/height as parts of the frame's
# height at one metre.
_LOOKS: dict[str, tuple[tuple[int, int, int], float, float]] = {
    "bicycle": ((30, 160, 40), 0.9, 0.8),
    "car": ((200, 30, 30), 1.6, 0.9),
    "person": ((40, 60, 200), 0.4, 1.2),
    "step": ((60, 60, 60), 1.2, 0.15),
    "cart": ((180, 180, 190), 0.7, 0.7),
}


@dataclass(frozen=True, slots=True)
class HazardEvent:
    """``what`` (a key of ``oracle.NAMES``) from ``onset_s`` to ``closest_s``, moving
    from ``clock[0]`` to ``clock[1]`` and from ``distance_m[0]`` to ``distance_m[1]``;
    out of view ``linger_s`` after its closest approach."""

    what: str
    onset_s: float
    closest_s: float
    clock: tuple[int, int]
    distance_m: tuple[float, float]
    linger_s: float = 1.5

    @property
    def gone_s(self) -> float:
        return self.closest_s + self.linger_s

    def at(self, t: float) -> tuple[int, float] | None:
        """(clock direction, distance in metres) at ``t``, or None when out of view."""
        if not self.onset_s <= t < self.gone_s:
            return None
        span = max(1e-6, self.closest_s - self.onset_s)
        k = min(1.0, (t - self.onset_s) / span)
        c0, c1 = self.clock
        # The short way round the dial: 11 → 1 passes 12.
        delta = ((c1 - c0 + 6) % 12) - 6
        clock = round(c0 + delta * k) % 12 or 12
        d0, d1 = self.distance_m
        return clock, round(d0 + (d1 - d0) * k, 1)


@dataclass(frozen=True, slots=True)
class SignEvent:
    text: tuple[str, ...]  # its lines
    start_s: float
    end_s: float
    asked_s: float | None = None  # the user asks to have it read
    ask: str = "Read the sign for me"


@dataclass(frozen=True, slots=True)
class ProductEvent:
    ean13: str
    qr: str
    start_s: float
    end_s: float
    asked_s: float | None = None
    ask: str = "What is this product?"


@dataclass(frozen=True, slots=True)
class FallEvent:
    at_s: float
    answer: str | None = None  # what the user says to "Are you OK?"; None: nothing
    answer_after_s: float = 3.0


@dataclass(frozen=True, slots=True)
class QuietStretch:
    start_s: float
    end_s: float

    @property
    def minutes(self) -> float:
        return (self.end_s - self.start_s) / 60


@dataclass(frozen=True, slots=True)
class Question:
    at_s: float
    text: str
    answer: str = ""  # what the oracle answers ("" for its own description of the view)


@dataclass(frozen=True, slots=True)
class RouteStep:
    at_s: float
    step: str
    lat: float = 52.52
    lon: float = 13.405


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: Mode
    duration_s: float
    language: str = "en"
    fps: float = 1.0
    hazards: tuple[HazardEvent, ...] = ()
    signs: tuple[SignEvent, ...] = ()
    products: tuple[ProductEvent, ...] = ()
    falls: tuple[FallEvent, ...] = ()
    quiet: tuple[QuietStretch, ...] = ()
    questions: tuple[Question, ...] = ()
    route: tuple[RouteStep, ...] = ()
    notes: str = field(default="", compare=False)

    def frame_times(self) -> list[float]:
        n = int(self.duration_s * self.fps) + 1
        return [round(i / self.fps, 3) for i in range(n)]

    def quiet_at(self, t: float) -> bool:
        return any(q.start_s <= t < q.end_s for q in self.quiet)

    def sign_at(self, t: float) -> SignEvent | None:
        return next((s for s in self.signs if s.start_s <= t < s.end_s), None)

    def product_at(self, t: float) -> ProductEvent | None:
        return next((p for p in self.products if p.start_s <= t < p.end_s), None)

    def fallen_at(self, t: float) -> FallEvent | None:
        return next((f for f in self.falls if f.at_s <= t), None)

    def seen_at(self, t: float) -> float:
        """The capture time of the first frame at or after ``t``: when the camera shows it."""
        return next((f for f in self.frame_times() if f >= t - 1e-6), self.duration_s)


# ------------------------------------------------------------------ drawing


@lru_cache(maxsize=8)
def _symbol(content: str, fmt: zxingcpp.BarcodeFormat, module_px: int) -> Image.Image:
    img = Image.fromarray(np.array(zxingcpp.create_barcode(content, fmt).to_image(scale=1)))
    return img.resize((img.width * module_px, img.height * module_px), Image.Resampling.NEAREST)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _x_of(clock: int, width: int) -> int:
    """Where a thing at ``clock`` o'clock shows across the view (12 in the middle)."""
    return int(width * (0.5 + 0.42 * math.sin(math.radians(clock * 30))))


def _draw_hazard(draw: ImageDraw.ImageDraw, h: HazardEvent, t: float, w: int, ht: int) -> None:
    where = h.at(t)
    if where is None:
        return
    clock, distance = where
    colour, sw, sh = _LOOKS.get(h.what, ((220, 120, 0), 0.6, 0.6))
    scale = ht * min(1.0, 0.8 / max(0.3, distance))
    bw, bh = max(4, int(sw * scale)), max(3, int(sh * scale))
    cx = _x_of(clock, w)
    floor = int(ht * (0.55 + 0.4 * min(1.0, 1.0 / max(0.5, distance))))  # nearer: lower
    box = (cx - bw // 2, floor - bh, cx + bw // 2, floor)
    draw.ellipse(box, fill=colour, outline=(0, 0, 0), width=max(1, ht // 240))


def _draw_sign(img: Image.Image, s: SignEvent) -> None:
    w, h = img.size
    draw = ImageDraw.Draw(img)
    draw.rectangle((w * 0.52, h * 0.12, w * 0.95, h * 0.42), fill=(20, 60, 160))
    font = _font(max(10, h // 16))
    for i, line in enumerate(s.text):
        draw.text((w * 0.55, h * (0.16 + 0.1 * i)), line, fill="white", font=font)


def _draw_product(img: Image.Image, p: ProductEvent) -> None:
    """A box held up in the lower left: an EAN-13 on its side, a QR code above it."""
    w, h = img.size
    k = max(2, w // 320)  # pixels per module: 2 in a frame, 5 in a still
    img.paste(Image.new("RGB", (int(w * 0.46), int(h * 0.56)), (235, 230, 220)), (w // 24, h // 3))
    ean = _symbol(p.ean13, zxingcpp.EAN13, k).convert("RGB")
    img.paste(ean, (w // 16, int(h * 0.6)))
    qr = _symbol(p.qr, zxingcpp.QRCode, k).convert("RGB")
    img.paste(qr, (int(w * 0.3), int(h * 0.36)))


def render(scenario: Scenario, t: float, size: tuple[int, int] = FRAME_SIZE) -> Image.Image:
    """The wearer's view at ``t`` seconds."""
    w, h = size
    img = Image.fromarray(corridor_frame(t, w, h))
    draw = ImageDraw.Draw(img)
    if (s := scenario.sign_at(t)) is not None:
        _draw_sign(img, s)
    if (p := scenario.product_at(t)) is not None:
        _draw_product(img, p)
    # Far things first, so a near one is drawn over them.
    for hz in sorted(scenario.hazards, key=lambda x: -(x.at(t) or (0, 0.0))[1]):
        _draw_hazard(draw, hz, t, w, h)
    fall = scenario.fallen_at(t)
    if fall is not None:  # on the floor: the view tipped over, close to the ground
        img = img.rotate(80, fillcolor=(70, 55, 40)).point(lambda v: int(v * 0.6))
    return img


def render_jpeg(scenario: Scenario, t: float) -> bytes:
    return encode_jpeg(render(scenario, t), max(FRAME_SIZE), FRAME_QUALITY)


def still_jpeg(scenario: Scenario, t: float) -> bytes:
    """A full-resolution photo of the moment ``t``, as a bridge answers a still request."""
    buf = io.BytesIO()
    render(scenario, t, STILL_SIZE).save(buf, "JPEG", quality=STILL_QUALITY)
    return buf.getvalue()


def client_script(
    scenario: Scenario, frame_jpeg: Callable[[Scenario, float], bytes] = render_jpeg
) -> list[tuple[float, ClientEvent]]:
    """What the bridge sends, at scenario times: frames at the frame rate, the user's
    words, location fixes with the route step (every 2 s in navigation, as the phone
    map updates), and the answer to "Are you OK?"."""
    script: list[tuple[float, ClientEvent]] = []
    for n, t in enumerate(scenario.frame_times()):
        script.append((t, FrameIn(n, int(t * 1000), VideoEncoding.JPEG, frame_jpeg(scenario, t))))
    for s in scenario.signs:
        if s.asked_s is not None:
            script.append((s.asked_s, TextIn(s.ask)))
    for p in scenario.products:
        if p.asked_s is not None:
            script.append((p.asked_s, TextIn(p.ask)))
    for q in scenario.questions:
        script.append((q.at_s, TextIn(q.text)))
    for f in scenario.falls:
        if f.answer is not None:
            script.append((f.at_s + f.answer_after_s, TextIn(f.answer)))
    if scenario.route:
        first = scenario.route[0].at_s
        times = {first + 2.0 * k for k in range(int((scenario.duration_s - first) / 2) + 1)}
        for t in sorted(times | {r.at_s for r in scenario.route}):
            step = [r for r in scenario.route if r.at_s <= t][-1]
            moved = (t - first) * 1e-5  # walking north, about a metre a second
            fix = LocationIn(step.lat + moved, step.lon, 6.0, 0.0, 1.2, step.step)  # no stamp
            script.append((t + 0.2, fix))
    return sorted(script, key=lambda item: item[0])
