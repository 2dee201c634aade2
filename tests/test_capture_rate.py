"""Capture-rate hints (battery): a still scene asks the bridge for fewer frames, and
any change, word or still request restores the rate at once.

The decider (``server/engine/scene.py``) runs on a hand-moved clock; the session runs
on the harness's virtual time; the bridge's pacing on virtual clocks (a camera's
recorded sleeps, the Brilliant source's stepping clock), so no test times anything.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools

import numpy as np
import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import ServerEventRouter
from mobile_bridge.sinks.console import BridgeStatus, ConsoleLog, status_line
from mobile_bridge.sources import brilliant_app as app
from mobile_bridge.sources.base import JpegFrame
from mobile_bridge.sources.camera import CameraOptions, CameraSource
from mobile_bridge.sources.pace import FramePacer
from mobile_bridge.watchdog import WatchedSource
from server.engine.scene import CHANGED_MIN, STILL_MAX, CapturePace
from server.events import (
    AudioEncoding,
    AudioFormat,
    CaptureHint,
    FrameIn,
    Mode,
    SessionStart,
    TextIn,
    TickTrace,
    VideoEncoding,
)
from server.modes import profile
from server.modes.loader import CaptureRules
from server.transport.convert import to_server
from tests.fakes import FakeSource, ManualClock, RecordingSink, SteppingClock
from tests.harness import jpeg, scripted
from tests.session_harness import run_session

RULES = CaptureRules(static_s=10.0, static_fps=0.5)
VIEW = np.full((24, 32), 100.0, np.float32)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _still(pace: CapturePace, clock: Clock, until: float, view: np.ndarray = VIEW) -> list:
    """A frame a second up to ``until``; the hints that came."""
    hints = []
    while clock.now < until:
        clock.now += 1.0
        if (h := pace.frame(view, RULES)) is not None:
            hints.append((clock.now, h))
    return hints


# ---------------------------------------------------------------------- the decider


def test_a_still_scene_lowers_the_rate_once_after_static_s():
    clock = Clock()
    pace = CapturePace(1.0, clock)
    noisy = VIEW + np.random.default_rng(0).normal(0, 1.0, VIEW.shape).astype(np.float32)
    assert pace.frame(VIEW, RULES) is None  # the first frame anchors
    hints = _still(pace, clock, 30.0, noisy)  # sensor noise is still
    assert hints == [(10.0, CaptureHint(0.5, "static"))]
    assert pace.lowered and pace.fps == 0.5


def test_a_change_restores_the_rate_at_once_and_the_quiet_starts_over():
    clock = Clock()
    pace = CapturePace(1.0, clock)
    pace.frame(VIEW, RULES)
    _still(pace, clock, 12.0)
    clock.now += 1.0
    assert pace.frame(VIEW + 40, RULES) == CaptureHint(1.0, "scene_changed")
    # Still again (on the new view): lowered only after another static_s.
    assert _still(pace, clock, 30.0, VIEW + 40) == [(23.0, CaptureHint(0.5, "static"))]


def test_hysteresis_a_small_move_neither_restores_nor_keeps_it_from_lowering_twice():
    clock = Clock()
    pace = CapturePace(1.0, clock)
    pace.frame(VIEW, RULES)
    _still(pace, clock, 10.0)
    assert pace.lowered
    between = VIEW + (STILL_MAX + CHANGED_MIN) / 2  # more than still, less than changed
    for _ in range(20):
        clock.now += 1.0
        assert pace.frame(between, RULES) is None  # lowered stays lowered: no flapping
    # At the normal rate the same move restarts the quiet: not still any more.
    clock.now += 1.0
    assert pace.frame(VIEW + 50, RULES) == CaptureHint(1.0, "scene_changed")
    hints = []
    for i in range(30):  # the view creeps: each frame is a small move from the last
        clock.now += 1.0
        hints.append(pace.frame(VIEW + 50 + (i + 1) * (STILL_MAX + 0.5), RULES))
    assert hints == [None] * 30


@pytest.mark.parametrize("reason", ["user_speech", "asked", "alert", "spoke", "still_request"])
def test_speech_questions_alerts_and_stills_restore_at_once(reason):
    clock = Clock()
    pace = CapturePace(1.0, clock)
    pace.frame(VIEW, RULES)
    clock.now = 5.0
    assert pace.activity(reason) is None  # nothing to restore: no hint
    assert _still(pace, clock, 14.0) == []  # still, but spoken to 9 s ago: not yet
    assert _still(pace, clock, 15.0) == [(15.0, CaptureHint(0.5, "static"))]
    assert pace.activity(reason) == CaptureHint(1.0, reason)
    assert pace.activity(reason) is None  # one hint per change
    assert _still(pace, clock, 24.0) == []  # the quiet starts over at the activity
    assert _still(pace, clock, 25.0) == [(25.0, CaptureHint(0.5, "static"))]


def test_floors_per_mode():
    clock = Clock()
    blind, general = profile(Mode.BLIND).capture, profile(Mode.GENERAL).capture
    assert (general.static_s, general.static_fps) == (10.0, 0.25)
    assert blind.static_fps == 1.0 and profile(Mode.SHOPPING).capture.static_fps == 0.5
    pace = CapturePace(1.0, clock)
    for _ in range(60):  # blind's floor is the normal rate at 1 Hz: never lowered
        clock.now += 1.0
        assert pace.frame(VIEW, blind) is None
    fast = CapturePace(2.0, clock)  # a server ticking at 2 Hz: blind goes to its floor
    assert fast.frame(VIEW, blind) is None
    clock.now += blind.static_s
    assert fast.frame(VIEW, blind) == CaptureHint(1.0, "static")
    # A lowered rate follows the mode in force: general's lower floor, then blind's.
    assert pace.frame(VIEW, general) == CaptureHint(0.25, "static")
    clock.now += 1.0
    assert pace.frame(VIEW, blind) == CaptureHint(1.0, "mode")


def test_the_hint_crosses_the_wire():
    wire = to_server(CaptureHint(0.25, "static"))
    assert wire.WhichOneof("event") == "capture_hint"
    assert (wire.capture_hint.fps, wire.capture_hint.reason) == (0.25, "static")


# ---------------------------------------------------------------------- the session


def _frames(times_and_shades: list[tuple[float, int]]) -> list[tuple[float, FrameIn]]:
    return [
        (t, FrameIn(i, int(t * 1000), VideoEncoding.JPEG, jpeg(160, 120, shade)))
        for i, (t, shade) in enumerate(times_and_shades)
    ]


def _start(mode: Mode = Mode.GENERAL) -> SessionStart:
    return SessionStart(
        mode=mode, audio_out=AudioFormat(AudioEncoding.PCM16, 16000), want_trace=True
    )


def test_a_still_session_is_hinted_down_then_up_when_the_view_changes():
    script = _frames([(t + 0.2, 90) for t in range(14)] + [(14.2, 200), (15.2, 200)])
    run = run_session(script, scripted(), until=16, start=_start())
    hints = run.of(CaptureHint)
    assert hints == [CaptureHint(0.25, "static"), CaptureHint(1.0, "scene_changed")]
    down, up = run.at(CaptureHint)
    assert 10.0 <= down <= 11.5 and 14.2 <= up < 14.5  # at once: the frame that changed
    traced = [t.text for t in run.of(TickTrace) if t.action == "capture"]
    assert traced == ["capture 0.25 fps: static", "capture 1 fps: scene_changed"]


def test_typed_words_restore_and_blind_mode_never_lowers():
    script = [*_frames([(t + 0.2, 90) for t in range(14)]), (12.5, TextIn("what is that?"))]
    run = run_session(script, scripted(), until=14, start=_start())
    assert run.of(CaptureHint) == [CaptureHint(0.25, "static"), CaptureHint(1.0, "asked")]
    blind = run_session(_frames([(t + 0.2, 90) for t in range(14)]), scripted(), until=14,
                        start=_start(Mode.BLIND))  # fmt: skip
    assert blind.of(CaptureHint) == []


@pytest.mark.parametrize(
    ("said", "reason"),
    [("</response> Nothing new here.", "spoke"), ("</response> Car on your left.", "alert")],
)
def test_murmur_speaking_restores_the_rate(said, reason):
    script = _frames([(t + 0.2, 90) for t in range(14)])
    run = run_session(script, scripted((12.0, said)), until=14, start=_start())
    assert run.of(CaptureHint) == [CaptureHint(0.25, "static"), CaptureHint(1.0, reason)]


# ---------------------------------------------------------------------- the bridge


class PacedSource(FakeSource):
    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def set_capture_rate(self, fps: float) -> None:
        self.rates.append(fps)

    @property
    def capture_fps(self) -> float | None:
        return self.rates[-1] if self.rates else None


def _hint(fps: float, reason: str = "static") -> pb.ServerEvent:
    return pb.ServerEvent(capture_hint=pb.CaptureHint(fps=fps, reason=reason))


async def test_the_router_hands_the_hint_to_the_source_and_skips_nonsense():
    source = PacedSource()
    router = ServerEventRouter(source, RecordingSink(), lambda ev: None)
    for event in (_hint(0.25), _hint(0.0), _hint(float("nan")), _hint(1.0, "scene_changed")):
        router.handle(event)
    assert source.rates == [0.25, 1.0]


async def test_the_watchdog_passes_the_rate_on_and_waits_longer_for_slow_frames():
    inner = PacedSource()
    watched = WatchedSource(inner, lambda: asyncio.sleep(0, PacedSource()))
    assert watched._stall_s() == 5.0  # not hinted yet: the default
    watched.set_capture_rate(0.2)
    assert inner.rates == [0.2] and watched.capture_fps == 0.2
    assert watched._stall_s() == 15.0  # three frame intervals at 0.2 fps
    assert await watched._restart("test")
    assert watched.source is not inner and watched.source.rates == [0.2]  # kept


async def test_the_pacer_wakes_at_once_when_the_rate_goes_back_up():
    clock = ManualClock()
    pace = FramePacer(1.0, clock)
    taken: list[float] = []

    async def frames(n: int) -> None:
        for _ in range(n):
            await pace.wait()
            taken.append(clock.now)
            pace.done()

    async def main() -> None:
        run = asyncio.ensure_future(frames(5))
        await asyncio.sleep(0)
        pace.cap("server", 0.25)  # after the first frame: 4 s apart
        while len(taken) < 3:
            await clock.sleep(0.5)
        pace.cap("server", 1.0)  # mid-wait: the next is due one second after the last
        await run

    await clock.run(main())
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(taken)]
    assert gaps[:2] == [4.0, 4.0] and gaps[2:] == [1.0, 1.0]
    assert pace.fps == 1.0


TESTSRC = "lavfi:testsrc2=size=160x120:rate=10"


async def test_the_camera_paces_at_the_hinted_rate():
    clock = ManualClock()  # virtual time; the camera's own thread decodes in real time
    source = await CameraSource.open(CameraOptions(device=TESTSRC, fps=2.0), clock=clock)
    taken: list[float] = []

    async def main() -> None:
        source.start()
        frames = source.frames()
        for i in range(9):
            if i == 3:
                source.set_capture_rate(0.25)
                assert source.capture_fps == 0.25
            if i == 6:
                source.set_capture_rate(5.0)  # above its own rate: back to its own
                assert source.capture_fps == 2.0
            await anext(frames)
            taken.append(clock.now)
        await frames.aclose()

    try:
        await clock.run(main())
    finally:
        await source.aclose()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(taken)]
    assert gaps == [0.5, 0.5, 4.0, 4.0, 4.0, 0.5, 0.5, 0.5]


needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("brilliant_msg") is None
    or importlib.util.find_spec("brilliant_ble") is None,
    reason="the Frame/Halo SDK is not installed",
)


@needs_sdk
async def test_low_battery_slows_the_glasses_and_says_so_once(monkeypatch):
    from mobile_bridge.sources.brilliant import BrilliantOptions, open_brilliant
    from tests.fakes import FakeGlasses, install_fake_bleak

    glasses = FakeGlasses("Frame")
    install_fake_bleak(monkeypatch, glasses)
    said: list[str] = []
    options = BrilliantOptions(fps=1.0, resolution=256, microphone=False)
    source = await open_brilliant(options, clock=SteppingClock(), say=said.append)
    frames = source.frames()
    stamps: list[int] = []

    async def take(n: int) -> None:
        for _ in range(n):
            frame: JpegFrame = await asyncio.wait_for(anext(frames), 30)
            stamps.append(frame.capture_time_ms)

    try:
        await take(2)
        await glasses.send(bytes([app.BATTERY_MSG, 15]))  # battery.lua's report
        await asyncio.sleep(0.05)
        await take(3)
        await glasses.send(bytes([app.BATTERY_MSG, 14]))
        await asyncio.sleep(0.05)
        await take(1)
        source.set_capture_rate(0.1)  # the server asks for even less: the lower wins
        await take(1)
        source.set_capture_rate(1.0)
        await glasses.send(bytes([app.BATTERY_MSG, 60]))  # charged
        await asyncio.sleep(0.05)
        await take(2)
        await frames.aclose()
    finally:
        await source.aclose()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[0] == 1000 and gaps[1:5] == [5000] * 4 and gaps[5] == 10_000
    assert gaps[-1] == 1000
    battery = [line for line in said if "battery" in line]
    assert battery == [
        "(glasses battery at 15%: a photo every 5 s to save it)",
        "(glasses battery at 60%: photos at 1 fps again)",
    ]


def test_the_console_shows_the_rate_and_each_hint():
    lines: list[str] = []
    console = ConsoleLog(lines.append, lambda: 12.0)
    console.received(_hint(0.25), 0.0)
    assert lines == ["[  12.0s] (capture: 0.25 fps, static)"]
    status = BridgeStatus(12.0, "general", False, 0.4, 12, capture_fps=0.25)
    assert "12 frames sent · 0.25 fps" in status_line(status)
    assert "fps" not in status_line(BridgeStatus(12.0, "general", False, 0.4, 12))
