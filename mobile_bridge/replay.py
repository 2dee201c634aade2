"""``murmur-bridge replay``: a recorded walk sent to a server as if the glasses were live.

Wiring only: a ``FileReplaySource`` feeds a ``BridgeSession``, whose speech goes to an
``AudioSink`` and whose traffic goes to the console and a ``ReportRecorder``. A live
source is wired the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mobile_bridge.client import BridgeSession, SessionOptions
from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.connection import LinkOptions
from mobile_bridge.link import BridgeLink
from mobile_bridge.report import ReplayReport, ReportRecorder
from mobile_bridge.sinks.audio import AudioSink
from mobile_bridge.sinks.console import ConsoleLog
from mobile_bridge.sources.replay import FileReplaySource, ReplayMedia

__all__ = ["ReplayOptions", "run_replay"]


@dataclass
class ReplayOptions:
    """What to replay, to which server, and how (one flat bag for the CLI and tests)."""

    video: str | Path
    audio: str | Path | None = None
    audio_at_s: float = 0.0  # where the WAV starts on the video's timeline
    texts: list[tuple[float, str]] = field(default_factory=list)  # typed input at media times
    link: LinkOptions = field(default_factory=LinkOptions)
    mode: str = "general"
    language: str = "en"
    instruction_override: str = ""
    fps: float = 1.0
    speed: float = 1.0
    max_side: int = 640
    jpeg_quality: int = 80
    out_rate_hz: int = 24000
    want_trace: bool = True
    out_dir: str | Path | None = None
    play: bool = False
    linger_s: float = 2.0  # after the media ends, wait this long for trailing speech
    linger_max_s: float = 15.0  # ... and at most this long while an utterance is still playing
    ready_timeout_s: float = 15.0
    echo: Callable[[str], None] | None = print  # captions and events, as they arrive

    def media(self) -> ReplayMedia:
        return ReplayMedia(
            video=self.video,
            audio=self.audio,
            audio_at_s=self.audio_at_s,
            texts=list(self.texts),
            fps=self.fps,
            speed=self.speed,
            max_side=self.max_side,
            jpeg_quality=self.jpeg_quality,
        )

    def session(self) -> SessionOptions:
        return SessionOptions(
            mode=self.mode,
            language=self.language,
            instruction_override=self.instruction_override,
            out_rate_hz=self.out_rate_hz,
            want_trace=self.want_trace,
            linger_s=self.linger_s,
            linger_max_s=self.linger_max_s,
            ready_timeout_s=self.ready_timeout_s,
        )


async def run_replay(opts: ReplayOptions, *, clock: Clock | None = None) -> ReplayReport:
    """Replay ``opts.video`` (and ``opts.audio``) to a server; what it said back.

    Raises ``MediaError`` for unusable media (before connecting) and ``LinkError``
    when the session cannot be opened or ends badly.
    """
    clock = clock or SystemClock()
    source = await FileReplaySource.open(opts.media(), clock)
    try:
        return await _replay(source, opts, clock)
    finally:
        await source.aclose()


async def _replay(source: FileReplaySource, opts: ReplayOptions, clock: Clock) -> ReplayReport:
    console = ConsoleLog(opts.echo, source.media_time, trace=opts.want_trace)
    recorder = ReportRecorder()
    sink = AudioSink(opts.out_rate_hz, out_dir=opts.out_dir, play=opts.play)
    session = BridgeSession(
        source,
        sink,
        lambda start: BridgeLink(opts.link, start, on_status=console.say, clock=clock),
        opts.session(),
        observers=(console, recorder),
        say=console.say,
        clock=clock,
    )
    started = clock.monotonic()
    await session.run()
    return recorder.finish(
        sink.utterances, reconnects=session.reconnects, wall_s=clock.monotonic() - started
    )
