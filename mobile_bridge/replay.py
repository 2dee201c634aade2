"""``murmur-bridge replay``: a recorded walk sent to a server as if the glasses were live.

Wiring only: a ``FileReplaySource`` in the session wiring every command shares
(``live.run_session``: speech to an ``AudioSink`` and, with ``play``/``play_to``, a
``PlaybackSink`` that plays it as it arrives; traffic to the console and a
``ReportRecorder``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mobile_bridge.client import SessionOptions
from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.connection import LinkOptions
from mobile_bridge.live import PlaybackChoice, SessionWiring, run_session
from mobile_bridge.report import ReplayReport
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
    play: bool = False  # on the sound card, as it arrives
    play_to: str | Path | None = None  # ... or into this WAV, paced in real time
    output_device: int | str | None = None  # the sound card (None: the default)
    jitter_ms: int = 60
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

    def wiring(self) -> SessionWiring:
        playback = PlaybackChoice(self.play, self.play_to, self.output_device, self.jitter_ms)
        return SessionWiring(
            self.link, self.session(), playback, self.out_dir, self.echo, keep_audio=True
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

    Raises ``MediaError`` for unusable media or audio output (before connecting) and
    ``LinkError`` when the session cannot be opened or ends badly.
    """
    clock = clock or SystemClock()
    source = await FileReplaySource.open(opts.media(), clock)
    try:
        return await run_session(source, opts.wiring(), timeline=source.media_time, clock=clock)
    finally:
        await source.aclose()
