"""Real headless Chromium (Debian's) for the phone page, with a fake camera and microphone.

The camera is a ``.y4m`` walk down the synthetic corridor (``mobile_bridge.synth``),
written with PyAV; the microphone an espeak-ng sentence as a WAV. Chromium loops both.
Playwright drives the system browser (``executable_path``); its own browser download
is never used. Skipped only where there is no Chromium and not in CI
(scripts/install-system-deps.sh installs it there), like the espeak-ng tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mobile_bridge.media import write_wav_pcm16
from mobile_bridge.synth import corridor_frame

__all__ = [
    "CHROMIUM",
    "VIBRATE_STUB",
    "chromium",
    "needs_chromium",
    "write_question_wav",
    "write_walk_y4m",
]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (scripts/install-system-deps.sh installs it)",
)

# Records every navigator.vibrate call (headless Chromium has no vibration motor).
VIBRATE_STUB = """
window.__vibrations = [];
Object.defineProperty(navigator, 'vibrate', {
  configurable: true,
  value: (pattern) => { window.__vibrations.push(pattern); return true; },
});
"""


def write_walk_y4m(
    path: Path, seconds: float = 2.0, fps: int = 10, size: tuple[int, int] = (320, 240)
) -> Path:
    """The corridor walk as raw YUV 4:2:0 (Chromium's fake camera reads only .y4m/.mjpeg)."""
    import av

    width, height = size
    with av.open(str(path), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            rgb = corridor_frame(i / fps, width, height)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_question_wav(path: Path, speech: np.ndarray, rate: int, tail_s: float) -> Path:
    """``speech`` with a short lead-in and a long silent tail (Chromium loops the file:
    the tail keeps the question from being asked twice within a test)."""
    lead = np.zeros(int(rate * 0.3), np.int16)
    tail = np.zeros(int(rate * tail_s), np.int16)
    return write_wav_pcm16(path, np.concatenate([lead, speech, tail]), rate)


@asynccontextmanager
async def chromium(
    video: Path | None, audio: Path | None, *, extra: Sequence[str] = ()
) -> AsyncIterator[Any]:
    """A Playwright browser on the system Chromium with the fake devices given."""
    from playwright.async_api import async_playwright

    args = [
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--no-sandbox",
        *extra,
    ]
    if video is not None:
        args.append(f"--use-file-for-fake-video-capture={video}")
    if audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={audio}")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield browser
        finally:
            await browser.close()
