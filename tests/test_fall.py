"""Falls: the device-motion detector on synthesized accelerometer streams, the frame
heuristic on the project's synthetic walk, and both through a whole session on virtual
time (the "Are you OK?" question, its trace, "I'm fine", and garbage batches)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import io
import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from murmur.v1 import companion_pb2 as pb
from PIL import Image

from mobile_bridge.client import motion_event
from mobile_bridge.synth import corridor_frame
from server.codes import Code
from server.engine.emergency import Alert, State
from server.engine.emergency_phrases import Line, lexicon
from server.engine.fall import (
    FrameFallDetector,
    MotionFallDetector,
    bad_motion,
    grey_thumbnail,
)
from server.events import (
    AudioEncoding,
    AudioFormat,
    ClientEvent,
    FrameIn,
    Mode,
    MotionIn,
    Notice,
    SessionStart,
    Speech,
    TextIn,
    TickTrace,
    VideoEncoding,
)
from server.runtime.base import InteractionRuntime
from server.session.session import Session
from server.transport.convert import from_client
from tests.fakes import ScriptedLink
from tests.harness import scripted
from tests.session_harness import make_services, run_virtual

G = 9.80665
UP, FLAT = (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
T0_MS = 1_700_000_000_000

# ------------------------------------------------------------------ motion, synthesized


class Motion:
    """An accelerometer stream built from segments: |a| in g over time, and the way the
    device points (gravity's direction in its own axes), turning linearly in a segment."""

    def __init__(self, rate: float = 100.0, seed: int = 0) -> None:
        self.rate = rate
        self._rng = np.random.default_rng(seed)
        self._parts: list[np.ndarray] = []
        self._u: tuple[float, float, float] = UP

    def held(self, u: tuple[float, float, float]) -> Motion:
        self._u = u
        return self

    def seg(
        self,
        seconds: float,
        g: float | Callable[[np.ndarray], np.ndarray],
        *,
        to: tuple[float, float, float] | None = None,
        noise: float = 0.02,
    ) -> Motion:
        n = round(seconds * self.rate)
        tau = np.arange(n) / self.rate
        mag = np.broadcast_to(np.asarray(g(tau) if callable(g) else g, dtype=np.float64), (n,))
        a, b = np.array(self._u), np.array(to or self._u)
        w = (tau / seconds)[:, None]
        u = a * (1 - w) + b * w
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        self._parts.append(u * (mag * G)[:, None] + self._rng.normal(0, noise * G, (n, 3)))
        self._u = to or self._u
        return self

    def stand(self, seconds: float, noise: float = 0.01) -> Motion:
        return self.seg(seconds, 1.0, noise=noise)

    def walk(self, seconds: float) -> Motion:
        steps = lambda t: 1 + 0.35 * np.sin(2 * np.pi * 1.8 * t) + 0.1 * np.sin(2 * np.pi * 3.6 * t)  # noqa: E731
        return self.seg(seconds, steps, noise=0.05)

    def run(self, seconds: float) -> Motion:
        # ~170 steps a minute: 0.2 s of stance peaking at 3.2 g, 0.16 s of flight at 0.15 g.
        def stride(t: np.ndarray) -> np.ndarray:
            p = t % 0.36
            return np.where(p < 0.2, 1 + 2.2 * np.sin(np.pi * p / 0.2), 0.15)

        return self.seg(seconds, stride, noise=0.08)

    def samples(self) -> np.ndarray:
        return np.concatenate(self._parts)

    def batches(self, every_s: float = 0.25, t0_ms: int = T0_MS) -> Iterator[MotionIn]:
        v = self.samples()
        k = max(1, round(every_s * self.rate))
        for i in range(0, len(v), k):
            c = v[i : i + k]
            at = t0_ms + round(i * 1000 / self.rate)
            yield MotionIn(at, self.rate, tuple(c[:, 0]), tuple(c[:, 1]), tuple(c[:, 2]))


def fall(rate: float = 100.0) -> Motion:
    """Walking, a stumble into 0.45 s of partial free fall (turning as the body tips), a
    4 g impact, a roll, then lying still on one side."""
    m = Motion(rate).walk(3).seg(0.45, 0.3, to=(0.0, 0.7, 0.7)).seg(0.06, 4.0)
    return m.seg(0.3, lambda t: 1 + 0.6 * np.sin(2 * np.pi * 5 * t), to=FLAT).stand(3)


def _falls(stream: Motion, every_s: float = 0.25) -> list[str]:
    detector = MotionFallDetector()
    found = []
    for batch in stream.batches(every_s):
        assert bad_motion(batch) is None
        if (f := detector.feed(batch)) is not None:
            found.append(f.how)
    return found


@pytest.mark.parametrize("rate", [50.0, 60.0, 100.0, 200.0])
def test_a_fall_is_detected_at_phone_rates(rate):
    (how,) = _falls(fall(rate))
    assert how.startswith("device motion: free fall 0.4")
    assert "impact 4.0 g, then still, turned" in how


NOT_FALLS: dict[str, Callable[[], Motion]] = {
    # 0.4 s of flight and a 4.5 g landing, as hard as a fall, but standing upright after.
    "a jump": lambda: (
        Motion().stand(2).seg(0.25, 1.8).seg(0.4, 0.05).seg(0.08, 4.5).seg(0.3, 1.5).stand(3)
    ),
    # Turned 90° (the thigh) and still after, but never in free fall.
    "a sit-down": lambda: (
        Motion().stand(2).seg(0.5, 0.75).seg(0.1, 1.7).seg(0.3, 1.1, to=FLAT).stand(3)
    ),
    # Dropping into a chair: a quarter second near 0.5 g, but a 2.2 g landing.
    "a hard sit-down": lambda: (
        Motion().stand(2).seg(0.25, 0.5).seg(0.08, 2.2).seg(0.3, 1.1, to=FLAT).stand(3)
    ),
    "walking": lambda: Motion().walk(120),
    # Every stride is a free fall and an impact; it never lies still, nor turns when it stops.
    "running, then stopping": lambda: Motion().run(60).stand(4),
    # Held upright, dropped, and landing the way it was held (on its end, in a cup).
    "a phone dropped and landing as it was held": lambda: (
        Motion().stand(2).seg(0.35, 0.02).seg(0.03, 6.0).seg(0.1, 1.5).stand(3, noise=0.002)
    ),
}


@pytest.mark.parametrize("name", list(NOT_FALLS))
def test_these_are_not_falls(name):
    assert _falls(NOT_FALLS[name]()) == []


def test_a_phone_dropped_on_a_table_asks_are_you_ok():
    """Decided and documented (README "Emergency"): a phone that slips from the hand and
    lands flat is a free fall, an impact, still and turned, like a fall. We ask rather
    than guess; "I'm fine" ends it."""
    held = Motion().held((0.0, 0.8, 0.6)).stand(2, noise=0.03)
    dropped = held.seg(0.38, 0.02).seg(0.03, 8.0).seg(0.1, 2.0, to=FLAT).stand(3, noise=0.002)
    (how,) = _falls(dropped)
    assert "impact 8.0 g" in how and "turned 53°" in how


@pytest.mark.parametrize("every_s", [0.01, 0.1, 1.0, 4.0])
def test_how_samples_are_batched_does_not_matter(every_s):
    assert _falls(fall(), every_s) == _falls(fall(), 0.25)


def test_samples_lost_mid_fall_start_over():
    """A half-seen fall is not pieced together across a gap in the stream."""
    batches = list(fall().batches(0.25))
    gap = 400  # ms shifted after the free fall: the impact and after arrive 0.4 s late
    late = [
        dataclasses.replace(b, first_sample_time_ms=b.first_sample_time_ms + gap)
        for b in batches[14:]
    ]
    detector = MotionFallDetector()
    assert [f for b in batches[:14] + late if (f := detector.feed(b))] != []  # 0.4 s: a jitter
    late = [
        dataclasses.replace(b, first_sample_time_ms=b.first_sample_time_ms + 2000)
        for b in batches[14:]
    ]
    detector = MotionFallDetector()
    assert [f for b in batches[:14] + late if (f := detector.feed(b))] == []


def _batch(**kw: object) -> MotionIn:
    base: dict[str, object] = {
        "first_sample_time_ms": T0_MS,
        "sample_rate_hz": 100.0,
        "x": (0.0,) * 10,
        "y": (G,) * 10,
        "z": (0.0,) * 10,
    }
    return MotionIn(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("batch", "why"),
    [
        (_batch(x=(math.nan,) * 10), "NaN or infinite"),
        (_batch(z=(0.0,) * 9 + (math.inf,)), "NaN or infinite"),
        (_batch(sample_rate_hz=0.0), "sample rate of 0 Hz"),
        (_batch(sample_rate_hz=5.0), "sample rate of 5 Hz"),
        (_batch(sample_rate_hz=1e6), "sample rate of 1e+06 Hz"),
        (_batch(sample_rate_hz=math.nan), "sample rate of nan Hz"),
        (_batch(x=(), y=(), z=()), "no samples"),
        (_batch(y=(G,) * 9), "different lengths (10, 9, 10)"),
        (_batch(x=(0.0,) * 600, y=(G,) * 600, z=(0.0,) * 600), "600 samples (6.0 s"),
        (_batch(sample_rate_hz=1000.0, x=(0.0,) * 5000, y=(G,) * 5000, z=(0.0,) * 5000), "5000"),
        (_batch(y=(G,) * 9 + (1e5,)), "values over 2000 m/s²"),
    ],
)
def test_garbage_batches_are_refused_with_a_reason(batch, why):
    assert why in (bad_motion(batch) or "")


def test_device_motion_on_the_wire():
    """The bridge's helper, the wire and the server's domain event agree."""
    event = motion_event(T0_MS, 60.0, [(0.5, 9.8, 0.25), (0.0, -9.75, 1.0)])
    wire = pb.ClientEvent.FromString(event.SerializeToString())
    assert from_client(wire) == MotionIn(
        T0_MS, 60.0, (0.5, 0.0), (9.800000190734863, -9.75), (0.25, 1.0)
    )
    # An old server sees an unknown oneof case; an old bridge never sends one.
    assert wire.WhichOneof("event") == "device_motion"


# ------------------------------------------------------------------ frames, synthesized

W, H = 320, 240


def _image(arr: np.ndarray) -> Image.Image:
    """Through JPEG and back, as a bridge's frame arrives."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=80)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _floor(rng: np.random.Generator) -> np.ndarray:
    """The floor, close up: an even grey with a little shading and sensor noise."""
    ys, xs = np.linspace(0, 1, H)[:, None], np.linspace(0, 1, W)[None, :]
    g = 110 + 18 * ys + 6 * xs + rng.normal(0, 2.0, (H, W))
    return np.stack([g, g * 0.95, g * 0.9], -1).clip(0, 255).astype(np.uint8)


def _ceiling(rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.linspace(-1, 1, H)[:, None], np.linspace(-1, 1, W)[None, :]
    g = 200 - 25 * (xs**2 + ys**2) + rng.normal(0, 2.0, (H, W))
    return np.stack([g, g, g * 0.97], -1).clip(0, 255).astype(np.uint8)


def _walk(seconds: float, fps: float, t0: float = 0.0) -> Iterator[tuple[float, np.ndarray]]:
    for i in range(int(seconds * fps)):
        yield t0 + i / fps, corridor_frame(t0 + i / fps, W, H)


@functools.lru_cache(maxsize=1)
def _panorama(t: float) -> np.ndarray:
    return corridor_frame(t, 3 * W, 2 * H)


def _head_turns(seconds: float, fps: float, seed: int = 1) -> Iterator[tuple[float, np.ndarray]]:
    """Walking down the corridor, turning the head every few seconds — left, right, down to
    the floor, up — in 0.3–0.6 s, holding it 1–8 s (standing: the view wobbles a few px),
    and back. The views are windows of a corridor three frames wide and two high."""
    rng = np.random.default_rng(seed)
    t = 0.0
    targets = [(-1, 0), (1, 0), (0, 1), (0, -0.6), (0.7, 0.8), (-0.7, 0.8)]
    while t < seconds:
        ty, tp = targets[rng.integers(len(targets))]
        aim = (ty * rng.uniform(0.6, 1), tp * rng.uniform(0.6, 1))
        turn = rng.uniform(0.3, 0.6)
        for phase, dur in (
            ("turn", turn),
            ("hold", rng.uniform(1, 8)),
            ("back", turn),
            ("walk", rng.uniform(1, 5)),
        ):
            n = max(1, int(dur * fps))
            for k in range(n):
                f = (k + 1) / n
                yaw, pitch = {
                    "turn": (aim[0] * f, aim[1] * f),
                    "hold": aim,
                    "back": (aim[0] * (1 - f), aim[1] * (1 - f)),
                }.get(phase, (0.0, 0.0))
                pano = _panorama(t if phase != "hold" else 0.0)
                jx, jy = (int(v) for v in rng.normal(0, 2, 2))
                x0 = min(max(0, int(W + yaw * W) + jx), 2 * W)
                y0 = min(max(0, int(H / 2 + pitch * H / 2) + jy), H)
                yield t, pano[y0 : y0 + H, x0 : x0 + W]
                t += 1 / fps


def _frame_falls(frames: Iterator[tuple[float, np.ndarray]]) -> list[str]:
    detector = FrameFallDetector()
    return [f.how for t, arr in frames if (f := detector.feed(grey_thumbnail(_image(arr)), t))]


@pytest.mark.parametrize("fps", [1.0, 5.0])
def test_the_synthetic_walk_never_looks_like_a_fall(fps):
    assert _frame_falls(_walk(180 if fps == 1.0 else 60, fps)) == []


@pytest.mark.parametrize("fps", [1.0, 5.0])
def test_ordinary_head_turns_never_look_like_a_fall(fps):
    assert _frame_falls(_head_turns(180 if fps == 1.0 else 45, fps)) == []


def _fall_onto(
    view: Callable[[np.random.Generator], np.ndarray], fps: float
) -> Iterator[tuple[float, np.ndarray]]:
    rng = np.random.default_rng(2)
    yield from _walk(5, fps)
    for i in range(int(12 * fps)):
        yield 5 + i / fps, view(rng)


@pytest.mark.parametrize("fps", [1.0, 2.0, 5.0])
@pytest.mark.parametrize("view", [_floor, _ceiling], ids=["floor", "ceiling"])
def test_a_fall_onto_the_floor_or_the_back_is_seen_in_frames(view, fps):
    (how,) = _frame_falls(_fall_onto(view, fps))
    assert how.startswith("frames: the view changed at once") and "still and featureless" in how


def test_a_still_featureless_view_that_did_not_come_suddenly_is_no_fall():
    rng = np.random.default_rng(3)
    detector = FrameFallDetector()
    assert [
        f for i in range(30) if (f := detector.feed(grey_thumbnail(_image(_floor(rng))), float(i)))
    ] == []


def test_frames_stopping_for_a_while_start_over():
    frames = list(_fall_onto(_floor, 1.0))
    gapped = [(t + (10.0 if t >= 6 else 0.0), a) for t, a in frames]  # paused right after
    assert _frame_falls(iter(gapped)) == []


# ------------------------------------------------------------------ in a session

ASK = lexicon("en").lines[Line.ASK]
CANCELLED = lexicon("en").lines[Line.CANCELLED]


class _RecordingNotifier:
    """The session's ``Notifier`` at the test boundary: records, reaches nobody."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def notify(self, alert: Alert, report: object) -> bool:
        self.alerts.append(alert)
        return True


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _frames(views: list[np.ndarray], t0: float, fps: float) -> list[tuple[float, ClientEvent]]:
    return [
        (t0 + i / fps, FrameIn(i + 1, T0_MS + int(i * 1000 / fps), VideoEncoding.JPEG, _jpeg(v)))
        for i, v in enumerate(views)
    ]


def _session(
    script: list[tuple[float, ClientEvent]],
    mode: Mode,
    until: float,
    runtime: InteractionRuntime | None = None,
) -> tuple[ScriptedLink, _RecordingNotifier, Session]:
    notifier = _RecordingNotifier()
    start = SessionStart(
        mode=mode, want_trace=True, audio_out=AudioFormat(AudioEncoding.PCM16, 16000)
    )
    link = ScriptedLink(script, until)
    opened: list[Session] = []

    async def main() -> None:
        services = dataclasses.replace(make_services(runtime or scripted()), emergency=notifier)
        try:
            session = await Session.open(services, start)
            opened.append(session)
            life = asyncio.create_task(session.run())
            await session.serve(link)
            await life
        finally:
            services.executors.shutdown()

    run_virtual(main())
    return link, notifier, opened[0]


def _sent(link: ScriptedLink, kind: type) -> list:  # type: ignore[type-arg]
    return [e for _, e in link.sent if isinstance(e, kind)]


def _emergency_trace(link: ScriptedLink) -> list[str]:
    return [t.text for t in _sent(link, TickTrace) if t.action == "emergency"]


def _fall_frames() -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    return [corridor_frame(i / 2, W, H) for i in range(6)] + [_floor(rng) for _ in range(20)]


def test_in_blind_mode_a_fall_seen_in_frames_asks_and_im_fine_cancels():
    script = [*_frames(_fall_frames(), 0.5, 2.0), (16.0, TextIn("I'm fine"))]
    link, notifier, _ = _session(script, Mode.BLIND, until=18.0)
    said = [s.text for s in _sent(link, Speech)]
    assert ASK in said and said.index(ASK) < said.index(CANCELLED)
    trace = _emergency_trace(link)
    assert trace[0].startswith(
        "emergency: idle → asking (a fall was detected (frames: the view changed"
    )
    assert trace[-1] == "emergency: asking → idle (the user is fine)"
    assert notifier.alerts == []


def test_the_models_own_fall_line_is_spoken_for_by_the_question_not_said_too():
    fell = "</response> You seem to have fallen. Are you OK?"
    model = scripted((2.0, fell), (6.0, fell))  # and again after "I'm fine"
    link, notifier, _ = _session([(4.0, TextIn("I'm fine"))], Mode.GENERAL, 9.0, model)
    said = [s.text for s in _sent(link, Speech)]
    assert said.count(ASK) == 1 and CANCELLED in said
    assert not any("fallen" in s for s in said)
    assert notifier.alerts == []


def test_general_mode_does_not_guess_falls_from_frames():
    link, _, _ = _session(_frames(_fall_frames(), 0.5, 2.0), Mode.GENERAL, until=14.0)
    assert ASK not in [s.text for s in _sent(link, Speech)]
    assert _emergency_trace(link) == []


def test_once_device_motion_arrives_frames_are_not_guessed_from():
    standing = list(Motion().stand(1).batches(0.5))
    script = [(0.2, standing[0]), (0.4, standing[1]), *_frames(_fall_frames(), 0.5, 2.0)]
    link, _, _ = _session(script, Mode.BLIND, until=14.0)
    assert ASK not in [s.text for s in _sent(link, Speech)]
    assert _emergency_trace(link) == [
        "emergency: device motion arrives; falls are detected from it"
    ]


def test_a_fall_in_device_motion_asks_and_garbage_is_said_once_and_survived():
    bad = [
        (0.1, _batch(x=(math.nan,) * 10)),
        (0.2, _batch(sample_rate_hz=0.0)),
        (0.3, _batch(x=(), y=(), z=())),
    ]
    good = [(1.0 + 0.1 * i, b) for i, b in enumerate(fall().batches(0.25))]
    link, notifier, session = _session(
        [*bad, *good, (10.0, TextIn("I'm fine"))], Mode.GENERAL, until=12.0
    )
    notices = [n for n in _sent(link, Notice) if n.code == Code.PROTOCOL_BAD_MESSAGE]
    assert len(notices) == 1 and "NaN or infinite values" in notices[0].message
    trace = _emergency_trace(link)
    assert trace[:2] == [
        "emergency: device motion arrives; falls are detected from it",
        trace[1],
    ] and trace[1].startswith(
        "emergency: idle → asking (a fall was detected (device motion: free fall"
    )
    assert trace[-1] == "emergency: asking → idle (the user is fine)"
    assert [s.text for s in _sent(link, Speech) if s.text in (ASK, CANCELLED)] == [ASK, CANCELLED]
    assert session.parts.emergency is not None and session.parts.emergency.state is State.IDLE
    assert notifier.alerts == []


def test_a_fall_nobody_answers_notifies_with_the_fall_as_trigger():
    good = [(1.0 + 0.1 * i, b) for i, b in enumerate(fall().batches(0.25))]
    _, notifier, _ = _session(good, Mode.GENERAL, until=30.0)
    (alert,) = notifier.alerts
    assert alert.trigger == "fall" and not alert.confirmed
    assert "Murmur detected that the person wearing the glasses may have fallen." in alert.message
