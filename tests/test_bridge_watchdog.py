"""The watchdog on the virtual clock: glasses reconnecting by themselves, a dead
microphone, the same glasses at each restart; and the console's wire names and labels."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge import cli
from mobile_bridge.controls import Controller
from mobile_bridge.devices import DeviceError
from mobile_bridge.live import SourceChoice
from mobile_bridge.location.base import LocationSource
from mobile_bridge.sinks.console import (
    BridgeStatus,
    ConsoleLog,
    kind_name,
    stale_after_s,
    status_line,
)
from mobile_bridge.sinks.earcons import cue_name
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities
from mobile_bridge.watchdog import WatchdogOptions, WatchedSource
from tests.fakes import ManualClock

pytestmark = pytest.mark.timeout(30)


class Glasses(GlassesSource):
    """Frames every ``period`` s; after ``drop_after`` frames, ``connected`` is False for
    ``away_s`` (the BLE link reconnecting by itself) and no frame comes meanwhile."""

    def __init__(
        self,
        clock: ManualClock,
        *,
        period: float = 1.0,
        drop_after: int | None = None,
        away_s: float = 0.0,
        mic_dies_after: int | None = None,
        hangs: bool = False,
    ) -> None:
        self.clock = clock
        self.period = period
        self.drop_after = drop_after
        self.away_s = away_s
        self.mic_dies_after = mic_dies_after
        self.hangs = hangs  # away while still ``connected`` (a camera pulled, not a link)
        self.connected = True
        self.closed = False

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(camera=True, microphone=True)

    @property
    def capture_fps(self) -> float | None:
        return 1.0 / self.period

    async def frames(self) -> AsyncIterator[JpegFrame]:
        n = 0
        while True:
            if n == self.drop_after:
                self.connected = self.hangs
                await self.clock.sleep(self.away_s)
                self.connected = True
            await self.clock.sleep(self.period)
            n += 1
            yield JpegFrame(b"\xff\xd8", int(self.clock.now * 1000))

    async def audio(self) -> AsyncIterator[OpusPacket]:
        n = 0
        while True:
            await self.clock.sleep(0.02)
            if n == self.mic_dies_after:
                raise DeviceError("the microphone stopped (PortAudio error -9999)", "mic")
            n += 1
            yield OpusPacket(b"\x01", int(self.clock.now * 1000))

    async def aclose(self) -> None:
        self.closed = True


async def test_glasses_reconnecting_by_themselves_are_not_restarted():
    clock = ManualClock()
    glasses = Glasses(clock, drop_after=2, away_s=20.0)
    reopened: list[int] = []

    async def reopen() -> GlassesSource:
        reopened.append(1)
        return Glasses(clock)

    said: list[str] = []
    watched = WatchedSource(glasses, reopen, WatchdogOptions(stall_s=5.0), clock=clock)
    watched._say = said.append
    watched.start()
    at: list[float] = []

    async def watch() -> None:
        async for _ in watched.frames():
            at.append(clock.now)
            if len(at) == 4:
                watched.stop()

    await clock.run(watch())
    assert watched.restarts == 0 and reopened == []  # the BLE backoff was left to work
    assert at[2] - at[1] == pytest.approx(21.0)  # 20 s away, then a frame period
    assert sum("reconnecting by itself" in line for line in said) == 1, said


class Heard:
    """What the server is told, on the virtual clock: ``(now, "pause" | "resume")``."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.controller = Controller()
        self.controller.connect(self._sent)
        self.log: list[tuple[float, str]] = []

    def _sent(self, control: pb.Control) -> None:
        if control.HasField("pause_watching"):
            self.log.append((self.clock.now, "pause" if control.pause_watching else "resume"))


async def _walk(watched: WatchedSource, clock: ManualClock, frames: int) -> list[float]:
    at: list[float] = []

    async def watch() -> None:
        async for _ in watched.frames():
            at.append(clock.now)
            if len(at) == frames:
                watched.stop()

    watched.start()
    await clock.run(watch())
    return at


async def test_glasses_reconnecting_pause_watching_until_their_first_frame():
    clock = ManualClock()
    heard = Heard(clock)

    async def reopen() -> GlassesSource:
        raise AssertionError("the BLE backoff is left to reconnect them")

    watched = WatchedSource(
        Glasses(clock, drop_after=2, away_s=20.0), reopen, WatchdogOptions(stall_s=5.0), clock=clock
    )
    watched.listener = heard.controller
    at = await _walk(watched, clock, 4)
    (paused_at, pause), (back_at, resume) = heard.log
    assert (pause, resume) == ("pause", "resume")
    assert at[1] < paused_at <= at[1] + stale_after_s(1.0)  # as soon as the frame is stale
    assert back_at == at[2]  # resumed at the first frame after
    assert watched.restarts == 0 and not heard.controller.paused


@pytest.mark.parametrize("kind", ["camera", "frame"])
async def test_a_source_pulled_for_5_s_at_the_cli_defaults_pauses_when_stale(kind, monkeypatch):
    seen: dict[str, object] = {}

    def run_live(source, opts):  # what ``murmur-bridge live`` would run, not run
        seen.update(source=source, opts=opts)

    monkeypatch.setattr(cli, "run_live", run_live)
    monkeypatch.setattr(cli, "_stream", lambda run, summary: 0)
    assert cli.main(["live", "--source", kind, "--server", "localhost:1", "--insecure"]) == 0
    rate = seen["source"].rate  # type: ignore[attr-defined]
    options = seen["opts"].watchdog  # type: ignore[attr-defined]
    clock = ManualClock()
    heard = Heard(clock)
    period = 1.0 / rate
    pulled = Glasses(clock, period=period, drop_after=3, away_s=5.0, hangs=True)

    async def reopen() -> GlassesSource:
        return Glasses(clock, period=period)

    watched = WatchedSource(pulled, reopen, options, clock=clock)
    watched.set_capture_rate(rate)
    watched.listener = heard.controller
    at = await _walk(watched, clock, 6)
    (paused_at, pause), (_, resume) = heard.log
    assert (pause, resume) == ("pause", "resume")
    # Paused once the frame is stale (the status line's rule), not at the restart:
    # at 1 fps a 1 Hz server re-reads the old frame twice, not five times.
    assert paused_at - at[2] == pytest.approx(stale_after_s(rate))
    assert paused_at - at[2] < options.stall_s
    assert len(at) == 6  # and the walk went on


async def test_glasses_that_stay_silent_once_connected_are_restarted():
    clock = ManualClock()
    glasses = Glasses(clock, drop_after=2, away_s=0.0)
    glasses.period = 1.0

    async def hang() -> AsyncIterator[JpegFrame]:  # connected, yet no photo ever comes
        for _ in range(2):
            await clock.sleep(1.0)
            yield JpegFrame(b"\xff\xd8", 0)
        await asyncio.Event().wait()
        yield JpegFrame(b"", 0)

    glasses.frames = hang  # type: ignore[method-assign]

    async def reopen() -> GlassesSource:
        return Glasses(clock)

    watched = WatchedSource(glasses, reopen, WatchdogOptions(stall_s=5.0), clock=clock)
    watched.start()

    async def watch() -> None:
        got = 0
        async for _ in watched.frames():
            got += 1
            if got == 3:
                watched.stop()

    await clock.run(watch())
    assert watched.restarts == 1 and glasses.closed


async def test_a_dead_microphone_restarts_the_source_while_frames_flow():
    clock = ManualClock()
    first = Glasses(clock, period=0.5, mic_dies_after=5)
    opened: list[Glasses] = []
    tries: list[float] = []

    async def reopen() -> GlassesSource:
        tries.append(clock.now)
        if len(tries) < 3:
            raise DeviceError("cannot open the microphone", "mic")
        source = Glasses(clock, period=0.5)
        opened.append(source)
        return source

    said: list[str] = []
    watched = WatchedSource(
        first, reopen, WatchdogOptions(retry_s=1.0, retry_max_s=10.0), say=said.append, clock=clock
    )
    watched.start()
    packets: list[int] = []
    frames: list[float] = []

    async def listen() -> None:
        async for packet in watched.audio():
            packets.append(packet.capture_time_ms)
            if len(packets) == 15:
                watched.stop()

    async def look() -> None:
        async for _ in watched.frames():
            frames.append(clock.now)

    async def both() -> None:
        await asyncio.gather(listen(), look())
        await watched.aclose()

    await clock.run(both())
    assert watched.restarts == 1 and first.closed and len(opened) == 1
    assert tries[1] - tries[0] == pytest.approx(1.0) and tries[2] - tries[1] == pytest.approx(2.0)
    assert any("the microphone failed" in line and "restart 1" in line for line in said), said
    assert any("could not reopen the source" in line for line in said)
    assert len(packets) == 15  # 5 from the first microphone, 10 from the restarted one
    assert frames, "frames went on from the restarted source"


async def test_a_microphone_that_keeps_failing_is_restarted_with_backoff():
    clock = ManualClock()
    restarted: list[float] = []

    async def reopen() -> GlassesSource:
        restarted.append(clock.now)
        return Glasses(clock, period=0.5, mic_dies_after=0)

    said: list[str] = []
    watched = WatchedSource(
        Glasses(clock, period=0.5, mic_dies_after=0),
        reopen,
        WatchdogOptions(retry_s=1.0, retry_max_s=4.0),
        say=said.append,
        clock=clock,
    )
    watched.start()

    async def listen() -> None:
        async for _ in watched.audio():
            pass

    async def look() -> None:
        async for _ in watched.frames():
            if len(restarted) == 5:
                watched.stop()

    await clock.run(asyncio.gather(listen(), look()))
    await watched.aclose()
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(restarted)]
    assert gaps == [1.02, 2.02, 4.02, 4.02], gaps  # doubling up to retry_max_s, then held
    assert sum("failed again" in line for line in said) >= 4


# ---------------------------------------------------------------------- the same glasses


class Named(GlassesSource):
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(camera=True)

    async def frames(self) -> AsyncIterator[JpegFrame]:
        return
        yield


async def test_a_restart_reopens_the_glasses_first_found(monkeypatch):
    from mobile_bridge.sources import brilliant

    asked: list[tuple[str | None, float]] = []
    nearest = iter(["Frame 4F", "Frame 9A"])  # a neighbour's glasses come nearer

    async def open_brilliant(options, *, clock=None, say=None) -> GlassesSource:
        asked.append((options.name, options.fps))
        return Named(options.name or next(nearest))

    monkeypatch.setattr(brilliant, "check_sdk", lambda: None)
    monkeypatch.setattr(brilliant, "open_brilliant", open_brilliant)
    said: list[str] = []
    opener = SourceChoice(kind="frame").opener(ManualClock(), said.append)
    first, again = await opener(), await opener()
    assert asked == [(None, 0.5), ("Frame 4F", 0.5)]  # Frame/Halo default to 0.5 fps
    assert first.name == again.name == "Frame 4F"  # type: ignore[attr-defined]
    assert any("Frame 4F" in line and "restart" in line for line in said)


def test_fps_defaults_per_source_and_a_bad_one_is_named(capsys):
    assert SourceChoice(kind="frame").rate == 0.5
    assert SourceChoice(kind="camera").rate == SourceChoice(kind="replay").rate == 1.0
    assert SourceChoice(kind="frame", fps=2.0).rate == 2.0
    args = cli.build_parser().parse_args(["live", "--source", "frame"])
    assert args.fps is None
    assert cli.main(["live", "--fps", "0", "--stall", "3"]) == 2
    err = capsys.readouterr().err
    assert "--fps 0" in err and "--stall" not in err


# ---------------------------------------------------------------------- the console


def test_a_newer_servers_kinds_get_a_neutral_label():
    lines: list[str] = []
    console = ConsoleLog(lines.append, lambda: 1.0)
    speech = pb.ServerEvent(speech=pb.Speech(utterance_id="u9", text="hello", kind=9))
    console.received(speech, 0.0)  # must not raise: the session goes on
    assert kind_name(9) == "kind 9" and cue_name(42) == "kind 42"
    assert kind_name(pb.SPEECH_KIND_ALERT) == "alert"
    assert any("kind 9: hello" in line for line in lines), lines
    update = pb.ServerEvent(delegation_update=pb.DelegationUpdate(task_id="t1", state=77))
    console.received(update, 0.0)
    assert any("delegation t1 kind 77" in line for line in lines), lines


def _status(age: float, fps: float | None) -> str:
    return status_line(BridgeStatus(1.0, "blind", False, age, 3, capture_fps=fps))


def test_a_frame_is_stale_after_a_few_frame_periods_not_a_fixed_two_seconds():
    assert "(stale)" in _status(3.0, 1.0) and "(stale)" in _status(2.5, None)
    assert "(stale)" not in _status(4.0, 0.5)  # 2 s apart by design: 5 s is stale
    assert "(stale)" in _status(5.5, 0.5)
    assert "(stale)" not in _status(1.5, 10.0)


# ---------------------------------------------------------------------- location lines


class _Fixes(LocationSource):
    @property
    def describe(self) -> str:
        return "a test receiver"

    async def fixes(self):  # pragma: no cover - not read here
        return
        yield


def test_a_fix_again_is_coarse_on_the_console_and_not_in_logs(caplog):
    from mobile_bridge.location.base import Fix

    fix = Fix(lat=52.520_008, lon=13.404_954, accuracy_m=5.0, time_ms=0)
    said: list[str] = []
    console = _Fixes(say=said.append)
    console.skip("no fix")
    console.fixed(fix)
    assert any("a fix again (near 52.520, 13.405)" in line for line in said), said
    assert not any("52.52000" in line for line in said)
    logged = _Fixes()
    with caplog.at_level("WARNING"):
        logged.skip("no fix")
        logged.fixed(fix)
    assert "a fix again" in caplog.text and "52.5" not in caplog.text
