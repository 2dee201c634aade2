"""The camera source on a real capture path, and the microphone at PortAudio's boundary.

No camera is present here or in CI: FFmpeg's ``lavfi`` virtual input device
(``testsrc2``, a moving pattern) is opened through PyAV exactly as a V4L2 camera is, and
read at its own frame rate on the capture thread. Bounds on frame counts are generous
(two shared cores); nothing asserts on timing alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import sys
import threading
import time
import types
from collections.abc import AsyncIterator

import numpy as np
import pytest
from PIL import Image

from mobile_bridge import devices
from mobile_bridge.camera import CameraRunOptions, run_camera
from mobile_bridge.client import SessionOptions
from mobile_bridge.connection import LinkOptions
from mobile_bridge.devices import DeviceError, describe_devices, import_sounddevice
from mobile_bridge.devices import list_audio_inputs as audio_inputs
from mobile_bridge.media import OpusDecoder
from mobile_bridge.sources.base import JpegFrame
from mobile_bridge.sources.camera import CameraOptions, CameraSource, parse_camera_spec
from mobile_bridge.sources.capture import CaptureBuffer
from mobile_bridge.sources.microphone import Microphone, MicrophoneOptions
from server.config import Settings
from server.runtime.base import Action
from server.runtime.conversation import Turn
from server.runtime.scripted import ScriptedRuntime, ScriptedSession
from tests.harness import running_server

pytestmark = pytest.mark.timeout(60)

TESTSRC = "lavfi:testsrc2=size=640x480:rate=10"


def _size(jpeg: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(jpeg)) as im:
        im.load()
        return im.size


async def _take(frames: AsyncIterator[JpegFrame], n: int) -> list[tuple[float, JpegFrame]]:
    got = []
    async for frame in frames:
        got.append((time.monotonic(), frame))
        if len(got) == n:
            break
    return got


# ---------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("spec", "platform", "url", "fmt", "live"),
    [
        ("/dev/video2", "linux", "/dev/video2", "v4l2", True),
        ("0", "linux", "/dev/video0", "v4l2", True),
        ("0", "darwin", "0", "avfoundation", True),
        ("lavfi:testsrc2=rate=5", "linux", "testsrc2=rate=5", "lavfi", False),
        ("rtsp://cam.local/stream", "linux", "rtsp://cam.local/stream", None, True),
        ("walk.mp4", "linux", "walk.mp4", None, False),
        ("C:\\walk.mp4", "win32", "C:\\walk.mp4", None, False),
    ],
)
def test_a_camera_spec_names_a_url_and_a_format(spec, platform, url, fmt, live):
    parsed = parse_camera_spec(spec, platform)
    assert (parsed.url, parsed.format, parsed.live) == (url, fmt, live)


def test_a_number_on_windows_asks_for_the_directshow_name():
    with pytest.raises(DeviceError, match="dshow:video=NAME"):
        parse_camera_spec("0", "win32")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("/dev/video99", "cannot open the camera '/dev/video99'"),
        ("nosuchformat:cam", "no capture format 'nosuchformat'"),
        ("lavfi:nosuchfilter", "cannot open the camera 'lavfi:nosuchfilter'"),
    ],
)
async def test_a_bad_camera_fails_at_open_naming_it(spec, says):
    with pytest.raises(DeviceError, match=says) as e:
        await CameraSource.open(CameraOptions(device=spec))
    assert e.value.device == spec
    assert "murmur-bridge devices" in str(e.value)


# ---------------------------------------------------------------------- the source


async def test_frames_come_at_the_requested_rate_scaled_and_in_order():
    source = await CameraSource.open(CameraOptions(device=TESTSRC, fps=4, max_side=320))
    try:
        caps = source.capabilities
        assert (caps.camera, caps.still_capture, caps.microphone, caps.max_fps) == (
            True,
            True,
            False,
            10.0,
        )
        source.start()
        t0 = time.monotonic()
        got = await _take(source.frames(), 7)
    finally:
        await source.aclose()
    spent = got[-1][0] - t0
    # 7 frames at 4 fps span at least 1.5 s: never faster than the rate. How much slower
    # a loaded machine is, is not this test's business (the timeout catches a hang).
    assert spent >= 1.2, spent
    stamps = [f.capture_time_ms for _, f in got]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(b - a >= 150 for a, b in itertools.pairwise(stamps)), stamps  # paced at 4 fps
    assert {_size(f.jpeg) for _, f in got} == {(320, 240)}
    # testsrc2 moves: every frame sent is a different picture.
    assert len({f.jpeg for _, f in got}) == len(got)


async def test_only_the_newest_frame_is_sent():
    source = await CameraSource.open(
        CameraOptions(device="lavfi:testsrc2=size=160x120:rate=25", fps=2, max_side=160)
    )
    try:
        source.start()
        got = await _take(source.frames(), 3)
        captured = source.frames_captured
    finally:
        await source.aclose()
    # At 25 fps the camera made ~12 frames per one sent; what was sent is the newest,
    # so consecutive frames sent are ~500 ms apart, never the next 40 ms frame.
    stamps = [f.capture_time_ms for _, f in got]
    assert all(b - a >= 250 for a, b in itertools.pairwise(stamps)), stamps
    assert captured >= 3 * len(got)
    # ... and it was taken fresh: captured after the one before it went out (the buffer
    # kept the newest, not a frame queued since), however slow the machine is.
    sent_ms = [(time.time() - (time.monotonic() - sent_at)) * 1000 for sent_at, _ in got]
    for before, (_, frame) in zip(sent_ms, got[1:], strict=False):
        assert frame.capture_time_ms >= before - 100, (frame.capture_time_ms, before)


def test_the_capture_buffer_keeps_the_newest_and_counts_the_rest():
    async def run() -> tuple[list[int], int, int | None]:
        buffer: CaptureBuffer[int] = CaptureBuffer(1)
        feeder = threading.Thread(target=lambda: [buffer.put(i) for i in range(5)])
        feeder.start()
        feeder.join()
        first = await buffer.get()
        buffer.put(7)
        buffer.fail(DeviceError("gone"))
        second = await buffer.get()
        with pytest.raises(DeviceError, match="gone"):
            await buffer.get()
        return [first, second], buffer.dropped, buffer.latest

    assert asyncio.run(run()) == ([4, 7], 4, 7)


async def test_a_still_is_the_newest_frame_at_full_resolution():
    source = await CameraSource.open(CameraOptions(device=TESTSRC, fps=5, max_side=160))
    try:
        source.start()
        [(_, frame)] = await _take(source.frames(), 1)
        still = await source.capture_still()
    finally:
        await source.aclose()
    assert _size(frame.jpeg) == (160, 120)
    assert still is not None and _size(still.jpeg) == (640, 480)
    assert still.capture_time_ms >= frame.capture_time_ms


async def test_a_camera_that_stops_ends_frames_with_a_message_naming_it():
    spec = "lavfi:testsrc2=size=160x120:rate=10:duration=0.6"
    source = await CameraSource.open(CameraOptions(device=spec, fps=10))
    got: list[JpegFrame] = []
    try:
        source.start()
        with pytest.raises(DeviceError, match="ended its stream") as e:
            async for frame in source.frames():
                got.append(frame)
    finally:
        await source.aclose()
    assert e.value.device == spec and spec in str(e.value)
    assert 1 <= len(got) <= 6


async def test_frames_stop_after_the_seconds_asked():
    source = await CameraSource.open(
        CameraOptions(device="lavfi:testsrc2=size=160x120:rate=10", fps=5, seconds=1.0)
    )
    try:
        source.start()
        got = [f async for f in source.frames()]
    finally:
        await source.aclose()
    assert 3 <= len(got) <= 6, len(got)


# ---------------------------------------------------------------------- live server


class _FramesSeen(ScriptedRuntime):
    """The scripted model, noting each frame a tick hands it (seq, capture, size, digest)."""

    def __init__(self) -> None:
        super().__init__([])
        self.frames: list[tuple[int, int, tuple[int, int], str]] = []

    def open_session(self, instruction: str, *, language: str = "en") -> ScriptedSession:
        runtime = self

        class Session(ScriptedSession):
            def _run_turn(self, turn: Turn, on_clause) -> Action:
                f = turn.tick.frame
                if f is not None:
                    digest = hashlib.sha1(f.image.tobytes()).hexdigest()
                    runtime.frames.append((f.seq, f.capture_time_ms, f.image.size, digest))
                return super()._run_turn(turn, on_clause)

        session = Session(self.script, instruction, language)
        self.sessions.append(session)
        return session


async def test_the_camera_streams_to_a_live_server_at_the_requested_rate(tts):
    seconds, fps = 4.0, 2.0
    runtime = _FramesSeen()
    # Ticks at 5 Hz see every frame sent at 2 fps (the newest one at each tick).
    settings = Settings().with_overrides("server", tick_hz=5.0)
    async with running_server(runtime, tts, settings) as srv:
        report = await run_camera(
            CameraRunOptions(
                camera=CameraOptions(device=TESTSRC, fps=fps, max_side=320, seconds=seconds),
                link=LinkOptions(target=srv.address),
                session=SessionOptions(linger_s=0.5, want_trace=True),
                echo=None,
            )
        )
    n = int(seconds * fps)
    # Never faster than the rate; a slow machine may send fewer (opening, warming up).
    assert 2 <= report.frames_sent <= n + 1, report.frames_sent
    seen: dict[int, tuple[int, tuple[int, int], str]] = {}
    for seq, capture_ms, size, digest in runtime.frames:
        seen.setdefault(seq, (capture_ms, size, digest))
    # The server decoded each frame sent, in order, each a new picture.
    seqs = sorted(seen)
    assert len(seqs) >= 2, runtime.frames
    captures = [seen[s][0] for s in seqs]
    assert captures == sorted(captures) and len(set(captures)) == len(captures)
    # Paced at 2 fps: frames the server saw are at least most of a period apart.
    assert all(b - a >= 250 for a, b in itertools.pairwise(captures)), captures
    assert {seen[s][1] for s in seqs} == {(320, 240)}
    assert len({seen[s][2] for s in seqs}) == len(seqs)
    assert report.ticks and report.notices == []


# ---------------------------------------------------------------------- microphone


class _TonePcm:
    """``sounddevice.InputStream``'s boundary: a 440 Hz tone at ``rate`` in blocking
    reads, then the device goes away (its next read raises, as PortAudio does)."""

    def __init__(self, rate: float, blocks: int) -> None:
        self.samplerate = rate
        self._left = blocks
        self._t = 0
        self.closed = False

    def start(self) -> None:
        pass

    def read(self, frames: int) -> tuple[np.ndarray, bool]:
        if self._left == 0:
            raise RuntimeError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        self._left -= 1
        t = (self._t + np.arange(frames)) / self.samplerate
        self._t += frames
        return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(-1, 1), False

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("device_rate", [16000, 48000])
async def test_the_microphone_sends_20ms_opus_packets_at_16khz(device_rate):
    stream = _TonePcm(device_rate, blocks=25)  # 0.5 s
    mic = Microphone(stream, MicrophoneOptions(), "'Test Mic'")
    mic.start()
    packets = []
    with pytest.raises(DeviceError, match="the microphone 'Test Mic' stopped recording"):
        while True:
            packets.append(await mic.buffer.get())
    await asyncio.to_thread(mic.close)
    assert stream.closed
    # 16 kHz in: exactly 25 packets; resampled from 48 kHz, the filter holds back a few ms.
    assert 23 <= len(packets) <= 25, len(packets)
    stamps = [p.capture_time_ms for p in packets]
    assert all(b - a in (19, 20, 21) for a, b in itertools.pairwise(stamps))
    decoder = OpusDecoder(16000)
    pcm = np.concatenate([decoder.decode(p.data) for p in packets])
    assert pcm.size == len(packets) * 320
    # Still the tone after Opus (and resampling): the energy is at 440 Hz.
    tail = pcm[1600:].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(tail))
    peak_hz = np.argmax(spectrum) * 16000 / tail.size
    assert abs(peak_hz - 440) < 20, peak_hz


async def test_the_camera_source_carries_the_microphone():
    mic = Microphone(_TonePcm(16000, blocks=10), MicrophoneOptions(), "'Test Mic'")
    source = await CameraSource.open(CameraOptions(device=TESTSRC, fps=5), microphone=mic)
    try:
        caps = source.capabilities
        assert (caps.microphone, caps.mic_rate_hz, caps.mic_frame_ms) == (True, 16000, 20)
        source.start()
        got = []
        with pytest.raises(DeviceError, match="stopped recording"):
            async for packet in source.audio():
                got.append(packet)
    finally:
        await source.aclose()
    assert len(got) == 10


def _real_microphone_or_skip() -> None:
    try:
        import_sounddevice()
        mics = audio_inputs()
    except DeviceError as e:
        pytest.skip(f"no PortAudio here, so no real microphone to record: {e}")
    if not mics:
        pytest.skip("PortAudio runs but sees no microphone on this machine (no sound card)")


async def test_a_real_microphone_records_at_the_packet_rate():
    _real_microphone_or_skip()
    mic = await Microphone.open(MicrophoneOptions())
    mic.start()
    try:
        packets = [await mic.buffer.get() for _ in range(25)]
    finally:
        await asyncio.to_thread(mic.close)
    span = packets[-1].capture_time_ms - packets[0].capture_time_ms
    assert 24 * 20 - 40 <= span <= 24 * 20 + 40


class NoSuchMicrophone(types.ModuleType):
    """``sounddevice`` at the boundary, asked for a microphone that is not there."""

    class PortAudioError(Exception):
        pass

    def __init__(self) -> None:
        super().__init__("sounddevice")
        self.asked: list[tuple[object, object]] = []

    def query_devices(self, device: object = None, kind: object = None) -> object:
        self.asked.append((device, kind))
        raise ValueError(f"No input device matching {device!r}")

    def InputStream(self, **_: object) -> object:
        raise AssertionError("a device that was not found must not be opened")


async def test_a_missing_microphone_is_named(monkeypatch):
    fake = NoSuchMicrophone()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with pytest.raises(DeviceError) as e:
        await Microphone.open(MicrophoneOptions(device="no-such-mic"))
    assert "the microphone 'no-such-mic'" in str(e.value)
    assert "No input device matching 'no-such-mic'" in str(e.value)
    assert fake.asked == [("no-such-mic", "input")]


def test_a_microphone_without_sounddevice_installed_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(DeviceError, match=r"murmur\[audio\]"):
        import_sounddevice()


def test_linux_cameras_are_listed_with_their_sysfs_names(tmp_path, monkeypatch):
    dev, sysfs = tmp_path / "dev", tmp_path / "video4linux"
    for node, name in [("video0", "HD Pro Webcam C920\n"), ("video10", None), ("video2", "")]:
        (dev / node).parent.mkdir(exist_ok=True)
        (dev / node).touch()
        if name is not None:
            (sysfs / node).mkdir(parents=True)
            (sysfs / node / "name").write_text(name)
    monkeypatch.setattr(devices, "_DEV", dev)
    monkeypatch.setattr(devices, "_SYSFS_V4L", sysfs)
    listed = [(v.spec.removeprefix(str(dev)), v.name) for v in devices.list_video_devices()]
    assert listed == [
        ("/video0", "HD Pro Webcam C920"),
        ("/video2", "(no name in sysfs)"),
        ("/video10", "(no name in sysfs)"),
    ]


def test_devices_lists_both_kinds_or_says_why_not():
    lines = describe_devices()
    assert lines[0] == "video capture devices:"
    assert "audio input devices:" in lines
    assert len(lines) >= 4
