"""Brilliant Labs Frame and Halo as a glasses source, against a fake device at the BLE
boundary (``tests.fakes.brilliant``).

The SDK itself runs: ``brilliant_ble`` frames, ACKs and uploads; ``brilliant_msg``'s
``TxCaptureSettings``/``TxCode`` encode the requests and its ``RxPhoto``/``RxAudio``/
``RxTap``/``RxClick`` read the device's chunks. Only Bleak is replaced. Frames are
paced on a virtual clock, so rates are counted, never timed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import itertools
import sys
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import numpy as np
import pytest
from PIL import Image

from mobile_bridge.clock import SystemClock
from mobile_bridge.connection import Backoff
from mobile_bridge.devices import DeviceError
from mobile_bridge.media import OpusDecoder, OpusPacketizer
from mobile_bridge.sinks.playback import PlaybackOptions, PlaybackSink
from mobile_bridge.sources.brilliant import (
    INSTALL_HINT,
    Action,
    BrilliantOptions,
    BrilliantSource,
    check_sdk,
    open_brilliant,
)
from tests.fakes import FakeGlasses, SteppingClock, install_fake_bleak, server_pauses

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")

needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("brilliant_msg") is None
    or importlib.util.find_spec("brilliant_ble") is None,
    reason=f"the Frame/Halo SDK is not installed ({INSTALL_HINT})",
)


def _size(jpeg: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(jpeg)) as im:
        im.load()  # the whole JPEG decodes
        return im.size


async def _take(items: AsyncIterator[T], n: int) -> list[T]:
    got: list[T] = []
    async with asyncio.timeout(30):
        async for item in items:
            got.append(item)
            if len(got) == n:
                break
    return got


@pytest.fixture
def said() -> list[str]:
    return []


async def _open(
    monkeypatch: pytest.MonkeyPatch,
    glasses: FakeGlasses,
    said: list[str],
    **options: object,
) -> BrilliantSource:
    install_fake_bleak(monkeypatch, glasses)
    opts = BrilliantOptions(**options)  # type: ignore[arg-type]
    return await open_brilliant(opts, clock=SteppingClock(), say=said.append)


# ---------------------------------------------------------------------- photos


@needs_sdk
async def test_frames_reassemble_into_jpegs_at_the_requested_rate(monkeypatch, said):
    glasses = FakeGlasses("Frame")
    source = await _open(monkeypatch, glasses, said, fps=2.0, resolution=400, microphone=False)
    try:
        frames = await _take(source.frames(), 4)
    finally:
        await source.aclose()
    assert [_size(f.jpeg) for f in frames] == [(400, 400)] * 4
    # One capture per frame, as TxCaptureSettings encodes it and camera.lua reads it.
    assert glasses.captures == [{"quality": 2, "resolution": 400, "pan": 0, "raw": False}] * 4
    # Paced at 2 fps on the virtual clock: 500 ms between captures.
    stamps = [f.capture_time_ms for f in frames]
    assert [b - a for a, b in itertools.pairwise(stamps)] == [500, 500, 500]
    assert source.stats.photos == 4 and glasses.files.keys() >= {"murmur_app.lua", "data.min.lua"}


@needs_sdk
@pytest.mark.parametrize(("kind", "side"), [("Frame", 720), ("Halo", 640)])
async def test_a_still_is_taken_at_full_resolution(monkeypatch, said, kind, side):
    glasses = FakeGlasses(kind)
    source = await _open(monkeypatch, glasses, said, microphone=False)
    try:
        still = await source.capture_still()
    finally:
        await source.aclose()
    assert still is not None and _size(still.jpeg) == (side, side)
    assert glasses.captures[-1]["quality"] == 4  # VERY_HIGH
    assert glasses.captures[-1]["resolution"] == (640 if kind == "Halo" else 720)


# ---------------------------------------------------------------------- audio


@needs_sdk
@pytest.mark.parametrize("bits", [16, 8])
async def test_microphone_pcm_becomes_opus_that_decodes_to_the_tone(monkeypatch, said, bits):
    glasses = FakeGlasses("Halo")
    t = np.arange(16000) / 16000
    glasses.mic_pcm = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    glasses.mic_bit_depth = bits
    source = await _open(monkeypatch, glasses, said, mic_bit_depth=bits)
    try:
        assert glasses.mic_subscriptions == []  # nothing streams before the session starts
        source.start()
        packets = await _take(source.audio(), 50)
    finally:
        await source.aclose()
    assert glasses.mic_subscriptions == [1]
    decoder = OpusDecoder(16000)
    pcm = np.concatenate([decoder.decode(p.data) for p in packets])
    assert pcm.size == 16000  # 50 packets of 20 ms
    steady = pcm[1600:].astype(np.float64)  # past the codec's first frames
    peak_hz = np.argmax(np.abs(np.fft.rfft(steady))) * 16000 / steady.size
    assert abs(peak_hz - 440) < 10
    assert np.sqrt(np.mean(steady**2)) > 4000  # the tone, not silence
    stamps = [p.capture_time_ms for p in packets]
    assert all(b - a == 20 for a, b in itertools.pairwise(stamps))


# ---------------------------------------------------------------------- gestures


@needs_sdk
async def test_halo_taps_and_clicks_become_the_configured_controls(monkeypatch, said):
    glasses = FakeGlasses("Halo")
    gestures = {"tap": Action.ASK, "double_tap": Action.STOP_SPEAKING, "long_press": Action.PAUSE}
    source = await _open(monkeypatch, glasses, said, microphone=False, gestures=gestures)
    try:
        controls = source.controls()
        await glasses.tap(1)
        await glasses.tap(2)
        await glasses.click(3)  # the button held ~1 s
        await glasses.tap(7)  # a gesture the firmware of tomorrow might send
        await glasses.click(1)  # a press with no action configured
        got = await _take(controls, 3)
    finally:
        await source.aclose()
    assert [(c.gesture, c.action) for c in got] == [
        ("tap", Action.ASK),
        ("double_tap", Action.STOP_SPEAKING),
        ("long_press", Action.PAUSE),
    ]
    assert source.stats.unknown_gestures == 2
    assert any("tap of a kind this bridge does not know" in line for line in said)


@needs_sdk
async def test_a_frame_tap_asks_and_can_be_typed(monkeypatch, said):
    glasses = FakeGlasses("Frame")
    source = await _open(
        monkeypatch, glasses, said, microphone=False, ask_as_text=True, tap_window_s=0.05
    )
    try:
        await glasses.tap()  # Frame sends the bare code; RxTap counts taps in a window
        (control,) = await _take(source.controls(), 1)
        (text,) = await _take(source.texts(), 1)
    finally:
        await source.aclose()
    assert (control.gesture, control.action) == ("tap", Action.ASK)
    assert text == "What's in front of me?"


# ---------------------------------------------------------------------- the link


@needs_sdk
async def test_a_disconnect_mid_photo_discards_it_and_the_reconnect_resumes(monkeypatch, said):
    glasses = FakeGlasses("Frame")
    t = np.arange(8000) / 16000
    glasses.mic_pcm = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)
    source = await _open(monkeypatch, glasses, said, fps=1.0, resolution=256)
    try:
        source.start()
        first = await _take(source.audio(), 5)
        glasses.drop_after_chunks = 3  # the link goes three packets into the next photo
        frames = await _take(source.frames(), 2)
        later = await _take(source.audio(), 5)  # the new link's microphone stream
    finally:
        await source.aclose()
    assert [_size(f.jpeg) for f in frames] == [(256, 256)] * 2  # never a broken one
    assert source.stats.photos_lost == 1 and source.stats.photos == 2
    assert source.stats.disconnects == 1 and source.stats.reconnects == 1
    assert glasses.connects == 2 and glasses.mic_subscriptions == [1, 1]
    assert len(first) == len(later) == 5
    assert any("lost the Bluetooth link" in line for line in said)
    assert any("is back" in line for line in said)


@needs_sdk
async def test_garbage_from_the_glasses_is_skipped_and_counted(monkeypatch, said):
    glasses = FakeGlasses("Halo")
    source = await _open(monkeypatch, glasses, said, microphone=False)
    try:
        await glasses.send(b"\x42unknown")  # a message type nothing reads
        await glasses.send(b"")  # an empty notification
        glasses.truncate_next_photo = True  # a photo whose chunks stop half way
        still = await source.capture_still()
        assert source.connected
    finally:
        await source.aclose()
    assert still is not None and _size(still.jpeg) == (640, 640)
    s = source.stats
    assert (s.unknown_messages, s.malformed_messages, s.photos_broken) == (1, 1, 1)
    assert len(glasses.captures) == 2  # the broken one was asked for again
    assert any("unknown type 0x42" in line for line in said)


@needs_sdk
async def test_glasses_that_vanish_are_retried_with_backoff_then_given_up(monkeypatch, said):
    glasses = install_fake_bleak(monkeypatch, FakeGlasses("Frame"))
    clock = SteppingClock()
    options = BrilliantOptions(microphone=False, max_reconnects=3)
    # Backoff 1 s doubling, less up to half of itself: rand 0.5 takes a quarter off.
    source = BrilliantSource(options, clock=clock, say=said.append, rand=lambda: 0.5)
    await source.connect()
    try:
        glasses.present = False
        await glasses.drop()
        start = clock.now
        with pytest.raises(DeviceError, match="did not come back after 3 tries"):
            await source.capture_still()
        assert not source.connected
    finally:
        await source.aclose()
    tries = [line for line in said if "reconnect try" in line]
    assert [line.split(" in ")[-1] for line in tries] == ["0.8 s)", "1.5 s)", "3.0 s)"]
    assert clock.now - start == pytest.approx(0.75 + 1.5 + 3.0)
    assert sum("failed: No matching device found" in line for line in said) == 3


@needs_sdk
@pytest.mark.parametrize("away", [False, True], ids=["linked", "reconnecting"])
async def test_a_waiting_reader_ends_when_the_source_closes(monkeypatch, said, away):
    # The watchdog closes a source whose microphone reader is mid-wait; that reader once
    # spun on a wake-up event left set with no link, starving the loop (Ctrl-C too), or
    # (while reconnecting) waited forever.
    glasses = install_fake_bleak(monkeypatch, FakeGlasses("Frame"))
    source = BrilliantSource(BrilliantOptions(), clock=SteppingClock(), say=said.append)
    await source.connect()
    source.start()
    reader = asyncio.create_task(_take(source.audio(), 1))
    if away:
        glasses.present = False
        await glasses.drop()
    await asyncio.sleep(0.05)  # the reader waits: for audio, or for the link
    await source.aclose()
    with pytest.raises(DeviceError, match="closed"):
        await asyncio.wait_for(reader, 5)


@needs_sdk
async def test_no_glasses_in_range_is_a_clear_error(monkeypatch, said):
    glasses = FakeGlasses("Halo")
    glasses.present = False
    with pytest.raises(DeviceError, match=r"cannot connect to 'Halo 08'.*No matching device"):
        await _open(monkeypatch, glasses, said, name="Halo 08")


def test_a_machine_without_bluetooth_gets_its_own_fix_not_the_glasses():
    from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason

    from mobile_bridge.sources.brilliant_keeper import (
        CONNECT_HINT,
        NO_ADAPTER_HINT,
        NO_BLUEZ_HINT,
        connect_hint,
    )

    no_radio = BleakBluetoothNotAvailableError(
        "No Bluetooth adapters found.", BleakBluetoothNotAvailableReason.NO_BLUETOOTH
    )
    assert connect_hint(no_radio) == NO_ADAPTER_HINT
    off = Exception("No powered Bluetooth adapters found. Turn on Bluetooth and try again.")
    assert connect_hint(off) == NO_ADAPTER_HINT
    no_bus = FileNotFoundError(2, "No such file", "/run/dbus/system_bus_socket")
    assert connect_hint(no_bus) == NO_BLUEZ_HINT
    assert connect_hint(Exception("org.freedesktop.DBus.Error.ServiceUnknown")) == NO_BLUEZ_HINT
    assert connect_hint(Exception("No matching device found")) == CONNECT_HINT


def test_gestures_are_remapped_by_name_and_a_bad_mapping_is_refused(monkeypatch):
    from mobile_bridge import cli
    from mobile_bridge.sources.brilliant import DEFAULT_GESTURES, gestures_with

    seen: dict[str, Any] = {}
    monkeypatch.setattr(cli, "run_live", lambda source, opts: seen.update(source=source))
    monkeypatch.setattr(cli, "_stream", lambda run, summary: 0)
    args = ["live", "--source", "frame", "--gesture", "tap=pause", "--gesture", "long_press=none"]
    assert cli.main([*args, "--server", "localhost:1", "--insecure"]) == 0
    assert seen["source"].gestures == {"tap": "pause", "long_press": "none"}

    got = gestures_with({"tap": "pause", "long_press": "none"})
    assert got["tap"] is Action.PAUSE and got["long_press"] is Action.NONE
    assert got["double_tap"] is DEFAULT_GESTURES["double_tap"]  # the rest as shipped
    with pytest.raises(DeviceError, match=r"unknown gesture 'wink'.*tap, double_tap"):
        gestures_with({"wink": "ask"})
    with pytest.raises(DeviceError, match=r"unknown action 'dance' for tap; one of ask"):
        gestures_with({"tap": "dance"})


# ---------------------------------------------------------------------- capabilities, speaker


@needs_sdk
async def test_capabilities_say_what_each_device_has(monkeypatch, said):
    frame = await _open(monkeypatch, FakeGlasses("Frame"), said)
    halo = await _open(monkeypatch, FakeGlasses("Halo"), said)
    try:
        f, h = frame.capabilities, halo.capabilities
    finally:
        await frame.aclose()
        await halo.aclose()
    assert (f.camera, f.microphone, f.still_capture, f.display) == (True, True, True, True)
    assert (f.speaker, h.speaker) == (False, True)  # Frame has none; Halo's is opened
    assert not f.haptics and not h.haptics
    assert (f.mic_rate_hz, f.mic_frame_ms) == (16000, 20)


@needs_sdk
async def test_speech_plays_on_the_halo_speaker(monkeypatch, said):
    from mobile_bridge.sources.brilliant_speaker import HaloSpeakerOutput

    glasses = FakeGlasses("Halo")
    source = await _open(monkeypatch, glasses, said, microphone=False, speaker_volume=60)
    output = HaloSpeakerOutput(source, 24000, clock=SystemClock())  # paced in real time
    tone = (np.sin(2 * np.pi * 500 * np.arange(480) / 24000) * 0.5).astype(np.float32)
    try:
        output.start(lambda frames: tone[:frames, None])
        async with asyncio.timeout(20):
            heard = await glasses.speaker_heard(16000 * 2 // 10)  # 100 ms of 16 kHz PCM
    finally:
        output.close()
        await source.aclose()
    assert glasses.speaker_volume == 60
    pcm = np.frombuffer(heard, "<i2")
    assert 12000 < np.abs(pcm).max() <= 16500  # half scale, resampled to 16 kHz


def _tone_packets(n: int) -> list[bytes]:
    """``n`` 20 ms Opus packets of a 500 Hz tone at 16 kHz (what live asks for, for Halo)."""
    t = np.arange(n * 320) / 16000
    return list(
        OpusPacketizer(16000).packets((np.sin(2 * np.pi * 500 * t) * 9000).astype(np.int16))
    )


async def _handed_over(output) -> None:
    """Until the speaker's sender has written (or dropped) every block it was given."""
    await _soon(lambda: not output.busy)


async def _soon(check) -> None:
    """Until ``check()``, yielding to the other tasks between looks (10 s at most)."""
    async with asyncio.timeout(10):
        while True:
            if check():
                return
            await asyncio.sleep(0.001)


BLOCK_BYTES = 640  # one 20 ms block as the Halo takes it: 16 kHz, 16 bit


async def _speaker_sink(monkeypatch, said):
    from mobile_bridge.sources.brilliant_speaker import HaloSpeakerOutput

    glasses = install_fake_bleak(monkeypatch, FakeGlasses("Halo"))
    quick = Backoff(0.05, 2.0, 0.1, 0.0)  # real time, short: the link is away on purpose
    options = BrilliantOptions(microphone=False, backoff=quick)
    source = BrilliantSource(options, clock=SystemClock(), say=said.append)
    await source.connect()
    output = HaloSpeakerOutput(source, 16000)  # no clock: pulled by step(), block by block
    sink = PlaybackSink(output, PlaybackOptions(rate_hz=16000))
    reports: list = []
    sink.take_reports(reports.append)
    return glasses, source, output, sink, reports


@needs_sdk
async def test_the_halo_speaker_reports_only_what_the_glasses_took(monkeypatch, said):
    glasses, source, output, sink, reports = await _speaker_sink(monkeypatch, said)
    try:
        for packet in _tone_packets(20):  # 400 ms, all here: it plays at once
            sink.feed("u1", packet)
        sink.finish("u1")
        for n in range(20):
            if n == 5:  # out of range for four blocks
                glasses.present = False
                await glasses.drop()
            if n == 9:
                glasses.present = True
                await _soon(lambda: source.connected)
            output.step()
            await _handed_over(output)
        heard_u1 = len(glasses.speaker_bytes)
        # A link slower than speech: 30 blocks pulled before the sender runs once; the
        # queue keeps the newest 25 and the oldest go, counted.
        for packet in _tone_packets(30):
            sink.feed("u2", packet)
        sink.finish("u2")
        output.step(30)
        await _handed_over(output)
    finally:
        output.close()
        await source.aclose()
    r1, r2 = reports
    assert (r1.utterance_id, r1.finished, r1.played_ms) == ("u1", True, 16 * 20)
    assert (r2.utterance_id, r2.finished, r2.played_ms) == ("u2", True, 25 * 20)
    assert heard_u1 == 16 * BLOCK_BYTES
    assert sink.stats.lost_blocks == 4 + 5 == output.dropped_blocks
    assert output.sent_blocks == 16 + 25


@needs_sdk
async def test_a_cut_stops_the_halo_speaker_within_a_block(monkeypatch, said):
    glasses, source, output, sink, reports = await _speaker_sink(monkeypatch, said)
    try:
        for packet in _tone_packets(50):  # a second of speech, still streaming
            sink.feed("u1", packet)
        for _ in range(10):
            output.step()
            await _handed_over(output)
        output.step(5)  # pulled, not yet written: the link is busy with photos
        before = len(glasses.speaker_bytes)
        sink.finish("u1", interrupted=True)  # StopSpeaking
        output.step(10)
        await _handed_over(output)
        after = len(glasses.speaker_bytes)
    finally:
        output.close()
        await source.aclose()
    assert after - before <= BLOCK_BYTES  # at most the block being written at the cut
    [r] = reports
    assert (r.interrupted, r.finished, r.played_ms) == (True, False, 10 * 20)
    assert output.cut_blocks == 5 and sink.stats.lost_blocks == 0


def test_without_the_sdk_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "brilliant_ble", None)  # import fails as if absent
    with pytest.raises(DeviceError, match=r"pip install 'murmur\[frame\]'"):
        check_sdk()
    with pytest.raises(DeviceError, match=r"pip install 'murmur\[frame\]'"):
        BrilliantSource(BrilliantOptions())


def test_bad_options_are_refused_before_connecting():
    with pytest.raises(DeviceError, match="256-720") as err:
        BrilliantSource(BrilliantOptions(resolution=1080, gestures={"wink": Action.ASK}))
    assert "unknown gestures ['wink']" in str(err.value)


# ---------------------------------------------------------------------- live, end to end


async def _until(check, what: str, live: asyncio.Task, deadline_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not check():
        if live.done():  # ended early: say why, not "gave up"
            raise AssertionError(f"live ended waiting for {what}") from live.exception()
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


@needs_sdk
async def test_live_frame_survives_a_broken_photo_and_glasses_that_vanish(monkeypatch, tts):
    from mobile_bridge.client import SessionOptions
    from mobile_bridge.connection import LinkOptions
    from mobile_bridge.live import LiveOptions, SessionWiring, SourceChoice, run_live
    from server.config import Settings
    from tests.harness import running_server, scripted

    glasses = install_fake_bleak(monkeypatch, FakeGlasses("Frame"))
    glasses.truncate_next_photo = True  # the first photo stops half way
    pauses = server_pauses(monkeypatch)
    runtime = scripted()
    lines: list[str] = []
    settings = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    async with running_server(runtime, tts, settings) as srv:
        opts = LiveOptions(
            wiring=SessionWiring(
                link=LinkOptions(target=srv.address), session=SessionOptions(linger_s=0.3)
            ),
            keyboard=False,
            status_every_s=0,
            handle_sigint=False,
            echo=lines.append,
        )
        live = asyncio.create_task(run_live(SourceChoice(kind="frame", fps=4.0), opts))
        try:
            await _until(lambda: runtime.sessions and runtime.sessions[0].ticks, "ticks", live)
            await _until(
                lambda: any("not a whole JPEG" in x for x in lines), "the broken photo", live
            )
            await _until(lambda: glasses.photos_sent >= 3, "photos after it", live)
            glasses.present = False
            await glasses.drop()
            await asyncio.sleep(3.0)  # away for a while: tries back off, never spin
            tries = [x for x in lines if "reconnect try" in x]
            paused_while_away = list(pauses)
            glasses.present = True
            await _until(lambda: any("is back" in x for x in lines), "the glasses back", live)
            sent = glasses.photos_sent
            await _until(lambda: glasses.photos_sent > sent + 2, "photos on the new link", live)
        finally:
            if not live.done():
                live.cancel()
                await asyncio.wait([live])
    assert any("lost the Bluetooth link to Frame 4F" in x for x in lines), lines
    assert 1 <= len(tries) <= 3, tries  # 1 s doubling: two or three tries in 3 s
    assert paused_while_away == [True], lines  # the server stopped watching while away ...
    assert pauses == [True, False], lines  # ... and went on at the first photo back
    assert not live.done() or live.cancelled()


def _live_options(address: str, lines: list[str], **kw):
    from mobile_bridge.client import SessionOptions
    from mobile_bridge.connection import LinkOptions
    from mobile_bridge.live import LiveOptions, SessionWiring

    return LiveOptions(
        wiring=SessionWiring(
            link=LinkOptions(target=address), session=SessionOptions(linger_s=0.3), **kw
        ),
        keyboard=False,
        status_every_s=0,
        handle_sigint=False,
        echo=lines.append,
    )


@needs_sdk
async def test_live_halo_speech_plays_on_its_own_speaker(monkeypatch, tts):
    from mobile_bridge.live import SourceChoice, run_live
    from server.config import Settings
    from tests.harness import running_server, scripted

    glasses = install_fake_bleak(monkeypatch, FakeGlasses("Halo"))
    runtime = scripted((1, "</response> Door on your left."))
    lines: list[str] = []
    settings = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    async with running_server(runtime, tts, settings) as srv:
        opts = _live_options(srv.address, lines)
        opts.seconds = 6.0
        choice = SourceChoice(kind="frame", fps=2.0)
        result = await asyncio.wait_for(run_live(choice, opts), 60)
    assert any("speech plays on Halo 4F's speaker" in x for x in lines), lines
    # The utterance went to the glasses (16 kHz 16-bit: 32 bytes a ms), was reported as
    # heard by the sink, and nothing was lost on the way.
    assert len(glasses.speaker_bytes) > 300 * 32
    playback = result.stats.playback
    assert playback is not None and playback.finished >= 1 and playback.lost_blocks == 0


@needs_sdk
async def test_output_glasses_on_a_frame_is_refused_before_connecting(monkeypatch):
    from mobile_bridge.live import PlaybackChoice, SourceChoice, run_live
    from mobile_bridge.media import MediaError

    glasses = install_fake_bleak(monkeypatch, FakeGlasses("Frame"))
    lines: list[str] = []
    opts = _live_options("127.0.0.1:1", lines, playback=PlaybackChoice(output="glasses"))
    with pytest.raises(MediaError, match=r"Frame 4F has no speaker.*--output local"):
        await run_live(SourceChoice(kind="frame"), opts)
    assert glasses.client is None  # closed again
