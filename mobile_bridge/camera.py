"""``murmur-bridge camera``: this machine's camera (and microphone) sent to a server.

Wiring only, as for replay: a ``CameraSource`` (with a ``Microphone`` when asked) in
the session wiring every command shares (``live.run_session``). ``murmur-bridge live
--source camera`` is the same camera with controls and a watchdog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mobile_bridge.client import SessionOptions
from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.connection import LinkOptions
from mobile_bridge.live import PlaybackChoice, SessionWiring, run_session
from mobile_bridge.report import ReplayReport
from mobile_bridge.sources.camera import CameraOptions, CameraSource
from mobile_bridge.sources.microphone import Microphone, MicrophoneOptions

__all__ = ["CameraRunOptions", "run_camera"]


@dataclass
class CameraRunOptions:
    """Which camera and microphone, which server, and how."""

    camera: CameraOptions = field(default_factory=CameraOptions)
    microphone: MicrophoneOptions | None = None  # None: no microphone
    link: LinkOptions = field(default_factory=LinkOptions)
    session: SessionOptions = field(default_factory=SessionOptions)
    out_dir: str | Path | None = None
    play: bool = False  # on the sound card, as it arrives
    play_to: str | Path | None = None  # ... or into this WAV, paced in real time
    output_device: int | str | None = None  # the sound card (None: the default)
    jitter_ms: int = 60
    echo: Callable[[str], None] | None = print  # captions and events, as they arrive
    on_open: Callable[[CameraSource], None] | None = None  # e.g. print what was opened

    def wiring(self) -> SessionWiring:
        playback = PlaybackChoice(self.play, self.play_to, self.output_device, self.jitter_ms)
        return SessionWiring(self.link, self.session, playback, self.out_dir, self.echo)


async def run_camera(opts: CameraRunOptions, *, clock: Clock | None = None) -> ReplayReport:
    """Stream the camera until ``opts.camera.seconds`` (or until cancelled); what the
    server said back.

    Raises ``DeviceError`` (a ``MediaError``) for a camera or microphone that cannot be
    opened (before connecting) or that stops mid-session, and ``LinkError`` when the
    session cannot be opened or ends badly.
    """
    clock = clock or SystemClock()
    mic = await Microphone.open(opts.microphone, clock) if opts.microphone else None
    try:
        source = await CameraSource.open(opts.camera, mic, clock)
    except BaseException:
        if mic is not None:
            await asyncio.to_thread(mic.close)
        raise
    try:
        if opts.on_open is not None:
            opts.on_open(source)
        return await run_session(source, opts.wiring(), timeline=source.elapsed, clock=clock)
    finally:
        await source.aclose()
