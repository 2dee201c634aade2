"""``murmur-bridge live``: glasses, a camera or a replay as a live session, with controls.

Two layers. ``run_session`` is the one session wiring every command shares (replay,
camera, live): a live player opened before connecting, the console and a
``ReportRecorder`` watching the traffic, an ``AudioSink`` for the speech, and a
``BridgeSession`` over a ``BridgeLink`` (which resumes after drops). ``run_live`` adds
what a person walking needs: the source under a ``WatchedSource`` (restarted when its
frames stop, the server told to pause meanwhile), a ``Controller`` fed by the keyboard,
``--control`` and the glasses' own buttons, speech on the glasses' own speaker when
they have one (``--output``), a status line with the frame age, an optional location
feed, and a ``LiveStats`` for the summary at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import BridgeSession, SessionOptions
from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.connection import LinkOptions
from mobile_bridge.controls import (
    ControlChannel,
    Controller,
    LiveTerminal,
    SessionFollower,
    command_for_action,
)
from mobile_bridge.devices import DeviceError
from mobile_bridge.link import BridgeLink
from mobile_bridge.media import MediaError
from mobile_bridge.report import ReplayReport, ReportRecorder
from mobile_bridge.sinks.audio import AudioSink
from mobile_bridge.sinks.base import EventObserver
from mobile_bridge.sinks.console import BridgeStatus, ConsoleLog, status_line
from mobile_bridge.sinks.outputs import AudioOutput, Render
from mobile_bridge.sinks.playback import PlaybackOptions, PlaybackSink, PlaybackStats, open_playback
from mobile_bridge.sources import brilliant_speaker as halo
from mobile_bridge.sources.base import GlassesSource
from mobile_bridge.sources.microphone import MicrophoneOptions
from mobile_bridge.watchdog import WatchdogOptions, WatchedSource

__all__ = [
    "LiveOptions",
    "LiveReport",
    "LiveStats",
    "PlaybackChoice",
    "PlayoutTimer",
    "SessionWiring",
    "SoundTimes",
    "SourceChoice",
    "SourceUnavailable",
    "WiredSession",
    "live_summary",
    "run_live",
    "run_session",
]

SourceOpener = Callable[[], Awaitable[GlassesSource]]
POLL_S = 0.1
SILENT = 1e-4  # a sample below this is silence (a float32 block, full scale 1.0)
RUN_GAP_S = 0.03  # sound this close to the last is the same stretch
CUE_MASK_S = 1.0  # an utterance this soon after a cue may start behind its earcon


class SourceUnavailable(MediaError):
    """A source this bridge cannot open at all (a missing SDK): said, exit code 2."""


# ---------------------------------------------------------------------- the shared wiring


@dataclass
class PlaybackChoice:
    """``--play``, ``--play-to``, ``--output-device``, ``--jitter-ms``, ``--output``."""

    play: bool = False  # on the sound card, as it arrives
    play_to: str | Path | None = None  # ... or into this WAV, paced in real time
    output_device: int | str | None = None  # the sound card (None: the default)
    jitter_ms: int = 60
    stamp_sound: bool = False  # note when sound leaves the output (``SoundTimes``)
    # live: auto (the glasses' own speaker when they have one, unless --play-to),
    # local (this machine: --play/--play-to), glasses (their speaker, or refuse).
    output: str = "auto"
    speaker: halo.GlassesSpeaker | None = None  # where speech goes instead, once decided

    def open(self, rate_hz: int, clock: Clock) -> PlaybackSink | None:
        """The player asked for, opened now so a bad device fails before connecting."""
        options = PlaybackOptions(rate_hz=rate_hz, jitter_ms=self.jitter_ms)
        if self.speaker is not None:
            output: AudioOutput = halo.HaloSpeakerOutput(self.speaker, rate_hz, clock=clock)
            player = PlaybackSink(output, options)
        elif not self.play and self.play_to is None:
            return None
        else:
            player = open_playback(
                options, device=self.output_device, play_to=self.play_to, clock=clock
            )
        if self.stamp_sound:  # before it starts: the sink pulls through ``output``
            player.output = SoundTimes(player.output, clock)
        return player


class SoundTimes(AudioOutput):
    """An output that notes when sound leaves it: ``runs`` of [start, end] monotonic
    seconds, a block's samples placed at the moment the output pulled it."""

    def __init__(self, inner: AudioOutput, clock: Clock) -> None:
        super().__init__(inner.rate_hz, inner.channels, inner.block_ms)
        self.inner = inner
        self.runs: list[list[float]] = []
        self._clock = clock

    def start(self, render: Render) -> None:
        def stamped(frames: int) -> np.ndarray:
            block = render(frames)
            loud = np.flatnonzero(np.abs(block).max(axis=1) > SILENT)
            if loud.size:
                now = self._clock.monotonic()
                start, end = now + loud[0] / self.rate_hz, now + (loud[-1] + 1) / self.rate_hz
                if self.runs and start - self.runs[-1][1] <= RUN_GAP_S:
                    self.runs[-1][1] = end
                else:
                    self.runs.append([start, end])
            return block

        self.inner.start(stamped)

    def close(self) -> None:
        self.inner.close()


@dataclass
class SessionWiring:
    """Where a session goes and where what comes back goes."""

    link: LinkOptions = field(default_factory=LinkOptions)
    session: SessionOptions = field(default_factory=SessionOptions)
    playback: PlaybackChoice = field(default_factory=PlaybackChoice)
    out_dir: str | Path | None = None  # one WAV per utterance
    echo: Callable[[str], None] | None = print  # captions and events, as they arrive
    keep_audio: bool = False  # every utterance's PCM in the report (a replay, not a walk)


@dataclass
class WiredSession:
    """The parts of one running session, for what runs beside it."""

    session: BridgeSession
    console: ConsoleLog
    recorder: ReportRecorder
    sink: AudioSink
    player: PlaybackSink | None


async def run_session(
    source: GlassesSource,
    wiring: SessionWiring,
    *,
    timeline: Callable[[], float | None],
    clock: Clock | None = None,
    observers: Sequence[EventObserver] = (),
    alongside: Callable[[WiredSession], Coroutine[Any, Any, None]] | None = None,
) -> ReplayReport:
    """One session of ``source`` (opened and closed by the caller); what the server said.

    ``timeline`` stamps console lines; ``alongside`` runs beside the session and is
    cancelled when it ends. Raises ``MediaError`` for an audio output that cannot be
    opened (before connecting) and ``LinkError`` when the session cannot open or go on.
    """
    clock = clock or SystemClock()
    player = wiring.playback.open(wiring.session.out_rate_hz, clock)
    try:
        console = ConsoleLog(wiring.echo, timeline, trace=wiring.session.want_trace)
        recorder = ReportRecorder()
        rate, keep = wiring.session.out_rate_hz, wiring.keep_audio
        sink = AudioSink(rate, out_dir=wiring.out_dir, player=player, keep_pcm=keep)
        session = BridgeSession(
            source,
            sink,
            lambda start: BridgeLink(wiring.link, start, on_status=console.say, clock=clock),
            wiring.session,
            observers=(console, recorder, *observers),
            say=console.say,
            clock=clock,
        )
        wired = WiredSession(session, console, recorder, sink, player)
        if not sink.wants_audio:
            console.say("(nothing plays speech here (no --play): the server sends captions only)")
        elif not sink.audible:
            console.say(
                "(speech is written to WAVs, not played: the server is told none was heard)"
            )
        started = clock.monotonic()
        side = asyncio.create_task(alongside(wired)) if alongside is not None else None
        try:
            await session.run()
        finally:
            if side is not None:
                side.cancel()
                await asyncio.wait([side])
                if not side.cancelled() and (e := side.exception()) is not None:
                    console.say(f"(live controls stopped: {e})")
        return recorder.finish(
            sink.utterances, reconnects=session.reconnects, wall_s=clock.monotonic() - started
        )
    finally:
        if player is not None:
            player.finish_all()  # the session closed it already, unless it never ran


# ---------------------------------------------------------------------- live


@dataclass
class LiveOptions:
    wiring: SessionWiring = field(default_factory=SessionWiring)  # its echo: see ``echo``
    watchdog: WatchdogOptions = field(default_factory=WatchdogOptions)
    control_path: str | Path | None = None  # a FIFO, or where to serve a unix socket
    keyboard: bool = True  # keys on a TTY, line commands from a piped stdin
    stdin_fd: int | None = None  # default: sys.stdin's
    seconds: float | None = None  # end after this long from SessionReady; None: Ctrl-C / quit
    location: str | None = None  # a location spec for ``mobile_bridge.location``
    status_every_s: float | None = None  # None: 1 s on a TTY, 10 s elsewhere; 0: never
    handle_sigint: bool = True  # Ctrl-C ends with the summary (a second one at once)
    echo: Callable[[str], None] | None = None  # None: the terminal (a live display on a TTY)


@dataclass
class LiveStats:
    """What the summary adds to the report: the bridge's own side of the walk."""

    restarts: int = 0  # watchdog restarts of the source
    outbox_drops: int = 0  # events offered while the outbox was full
    stale_audio_dropped: int = 0  # queued audio left out after a reconnect
    frames_superseded: int = 0  # queued frames replaced by newer ones after a reconnect
    playback: PlaybackStats | None = None  # late/bad packets, underruns (with --play)
    playout_ms: list[float] = field(default_factory=list)  # first AudioOut → first sample
    controls_sent: int = 0


@dataclass
class LiveReport:
    report: ReplayReport
    stats: LiveStats


class PlayoutTimer(EventObserver):
    """First ``AudioOut`` of an utterance → its first sample out of the playback sink.

    Measured where it is unambiguous: an utterance whose first packet came while the
    output was quiet and no cue had just come (its earcon would be the first sound),
    against the first sound after that packet (``SoundTimes.runs``).
    """

    def __init__(self) -> None:
        self._first_audio: dict[str, float] = {}
        self._cues: list[float] = []

    def received(self, event: pb.ServerEvent, at: float) -> None:
        if event.HasField("audio_out"):
            self._first_audio.setdefault(event.audio_out.utterance_id, at)
        elif event.HasField("cue"):
            self._cues.append(at)

    def playout_ms(self, runs: Sequence[Sequence[float]]) -> list[float]:
        out = []
        for arrived in sorted(self._first_audio.values()):
            if any(arrived - CUE_MASK_S <= c <= arrived for c in self._cues):
                continue
            if any(start <= arrived <= end + RUN_GAP_S for start, end in runs):
                continue  # something was already sounding: not this one's first sample
            later = [start for start, _ in runs if start > arrived]
            if later:
                out.append(float(min(later) - arrived) * 1000)
        return out


async def run_live(
    source: SourceChoice | SourceOpener, opts: LiveOptions, *, clock: Clock | None = None
) -> LiveReport:
    """A live session of what ``source`` opens (again at each restart), until the
    source ends, ``seconds`` pass, the wearer quits or Ctrl-C.

    Raises ``MediaError`` (a device, a location spec or an audio output that cannot be
    used), ``ValueError`` (a bad choice of source) and ``OSError`` (a ``--control``
    path) before connecting, and ``LinkError`` when the session cannot open or go on.
    """
    clock = clock or SystemClock()
    early: list[str] = []  # said while the source opened, before there is a terminal
    to: list[Callable[[str], None]] = [early.append]  # the terminal, once it is made

    def say(line: str) -> None:
        to[0](line)

    open_source = source.opener(clock, say) if isinstance(source, SourceChoice) else source
    locations = _location_feed(opts.location, clock, say) if opts.location else None
    first = await open_source()  # a device that cannot open fails before connecting
    watched = WatchedSource(first, open_source, opts.watchdog, say=say, clock=clock)
    try:
        playback = _speech_output(opts.wiring.playback, watched, say)
    except MediaError:
        await watched.aclose()
        raise
    controller = Controller(
        mode=opts.wiring.session.mode,
        say=say,
        on_quit=watched.stop,
    )
    terminal = LiveTerminal(
        controller, keyboard=opts.keyboard, stdin_fd=opts.stdin_fd, echo=opts.echo
    )
    for line in early:
        terminal.say(line)
    to[0] = terminal.say
    if callable(describe := getattr(first, "describe", None)):
        say(f"source: {describe()}")  # what was opened: "lavfi:…: 640x480 at 10 fps (lavfi)"
    watched.listener = controller
    watched.bind_controls(lambda cmd: _submit_quietly(controller, cmd, say))
    session = opts.wiring.session
    if playback.speaker is not None:  # what the glasses play: no resampling here
        session = replace(session, out_rate_hz=halo.HALO_SPEAKER_RATE_HZ)
    wiring = SessionWiring(
        opts.wiring.link,
        session,
        replace(playback, stamp_sound=True),
        opts.wiring.out_dir,
        terminal.say,
    )
    timer = PlayoutTimer()
    stats = LiveStats()
    channel = (
        ControlChannel(opts.control_path, controller, terminal.say) if opts.control_path else None
    )

    parts: list[WiredSession] = []

    async def alongside(wired: WiredSession) -> None:
        parts.append(wired)
        controller.connect(wired.session.send_control, wired.player)
        jobs = [
            ("status line", _status_loop(wired, watched, controller, terminal, opts)),
            ("glasses controls", _gestures(watched, controller, say)),
        ]
        if opts.seconds is not None:
            jobs.append(("timer", _stop_after(watched, opts.seconds, clock)))
        if locations is not None:
            jobs.append(("location", locations(wired.session)))
        tasks = [asyncio.create_task(_guarded(what, job, say)) for what, job in jobs]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks)

    restore = _catch_sigint(watched, terminal.say) if opts.handle_sigint else None
    try:
        terminal.open()
        if channel is not None:
            await channel.open()
            terminal.say(f"(controls: one command a line on the {channel.kind} {channel.path})")
        report = await run_session(
            watched,
            wiring,
            timeline=watched.elapsed,
            clock=clock,
            observers=(timer, SessionFollower(controller)),
            alongside=alongside,
        )
        stats.restarts = watched.restarts
        stats.controls_sent = len(controller.sent)
        for wired in parts:
            link: Any = wired.session.link  # a BridgeLink counts what it left out
            stats.outbox_drops = wired.session.outbox_drops
            stats.stale_audio_dropped = getattr(link, "dropped_audio", 0)
            stats.frames_superseded = getattr(link, "dropped_frames", 0)
            if wired.player is not None:
                stats.playback = wired.player.stats
                if isinstance(wired.player.output, SoundTimes):
                    stats.playout_ms = timer.playout_ms(wired.player.output.runs)
        return LiveReport(report, stats)
    finally:
        if restore is not None:
            restore()
        terminal.close()
        if channel is not None:
            await channel.aclose()
        await watched.aclose()


def _speech_output(
    choice: PlaybackChoice, watched: WatchedSource, say: Callable[[str], None]
) -> PlaybackChoice:
    """``--output``: the glasses' own speaker (Halo) or this machine's output."""
    if choice.output not in ("auto", "local", "glasses"):
        raise ValueError(f"--output is auto, local or glasses, not {choice.output!r}")
    source = watched.source
    has = source.capabilities.speaker and callable(getattr(source, "speaker_write", None))
    name = getattr(source, "name", "") or "the glasses"
    if choice.output == "glasses" and not has:
        raise MediaError(
            f"--output glasses: {name} has no speaker this bridge can play on (Halo has "
            "one, Frame has none); use --output local with --play or --play-to"
        )
    if choice.output == "glasses" or (choice.output == "auto" and has and not choice.play_to):
        say(f"(speech plays on {name}'s speaker; --output local plays it here instead)")
        return replace(choice, speaker=halo.SpeakerOf(lambda: watched.source))
    return choice


async def _guarded(what: str, job: Coroutine[Any, Any, None], say: Callable[[str], None]) -> None:
    """A helper beside the session that fails is said; the walk goes on without it."""
    try:
        await job
    except Exception as e:
        say(f"({what} stopped: {e})")


def _submit_quietly(controller: Controller, cmd: Any, say: Callable[[str], None]) -> None:
    """A source's button press: a bad one is said, never raised into the source."""
    try:
        controller.submit(cmd)
    except ValueError as e:
        say(f"(glasses: {e})")


async def _status_loop(
    wired: WiredSession,
    watched: WatchedSource,
    controller: Controller,
    terminal: LiveTerminal,
    opts: LiveOptions,
) -> None:
    def text() -> str:
        return status_line(
            BridgeStatus(
                elapsed_s=watched.elapsed(),
                mode=controller.mode,
                paused=controller.paused,
                source_gone=controller.source_gone,
                frame_age_s=watched.frame_age_s(),
                frames_sent=wired.recorder.report.frames_sent,
                restarts=watched.restarts,
                reconnects=wired.session.reconnects,
                volume=controller.volume,
                capture_fps=watched.capture_fps,
            )
        )

    every = opts.status_every_s
    if every is None:
        every = 1.0 if terminal.redraws else 10.0
    if every <= 0:
        return
    terminal.status_text = text
    while True:
        await asyncio.sleep(every)
        terminal.status()


async def _gestures(
    watched: WatchedSource, controller: Controller, say: Callable[[str], None]
) -> None:
    """A source's own buttons (a Frame's taps, a Halo's clicks: ``controls()``), across
    restarts; each gesture's action as a command."""
    async for gesture in watched.follow(_controls_of):
        cmd = command_for_action(str(getattr(gesture, "action", "")))
        if cmd is not None:
            _submit_quietly(controller, cmd, say)


async def _controls_of(source: GlassesSource) -> AsyncIterator[object]:
    controls = getattr(source, "controls", None)
    if controls is None:
        return
    async for gesture in controls():
        yield gesture


async def _stop_after(watched: WatchedSource, seconds: float, clock: Clock) -> None:
    while (elapsed := watched.elapsed()) is None or elapsed < seconds:
        await clock.sleep(POLL_S)
    watched.stop()


def _catch_sigint(watched: WatchedSource, say: Callable[[str], None]) -> Callable[[], None] | None:
    """Ctrl-C ends the walk cleanly (linger, half-close, summary); a second one at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def interrupted() -> None:
        if watched.stopping:
            if main is not None:
                main.cancel()
            return
        say("(stopping: Ctrl-C again to quit at once)")
        watched.stop()

    try:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
        return None

    def restore() -> None:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGINT)

    return restore


def _location_feed(
    spec: str, clock: Clock, say: Callable[[str], None]
) -> Callable[[BridgeSession], Coroutine[Any, Any, None]]:
    """``--location SPEC``: opened now (a bad spec fails before connecting), its fixes
    sent once the session is ready, and the receiver closed with the session."""
    from mobile_bridge.location import open_location, run_location

    source = open_location(spec, clock=clock, say=say)

    async def run(session: BridgeSession) -> None:
        try:
            await run_location(source, session, clock=clock, say=say)
        finally:
            await source.aclose()

    return run


SOURCE_KINDS = ("camera", "replay", "frame")
FRAME_HINT = "pip install 'murmur[frame]'"
# Frames a second when --fps is not given: BLE carries a few tens of KB a second and a
# glasses photo is 10-80 KB, so Frame/Halo default lower than a wired camera.
DEFAULT_FPS = {"camera": 1.0, "replay": 1.0, "frame": 0.5}


@dataclass
class SourceChoice:
    """``--source KIND [SPEC]`` and what each kind takes."""

    kind: str = "camera"  # camera | replay | frame
    spec: str | None = None  # camera: a device spec; replay: a video; frame: a device name
    fps: float | None = None  # None: the kind's own default (DEFAULT_FPS)
    max_side: int = 640
    camera_options: dict[str, str] = field(default_factory=dict)  # FFmpeg input options
    microphone: MicrophoneOptions | None = None  # camera: also its microphone
    audio: str | Path | None = None  # replay: a WAV beside the video
    gestures: dict[str, str] = field(default_factory=dict)  # frame: --gesture NAME=ACTION
    # frame: the glasses first opened, so every restart reopens the same pair (a
    # nearest-first scan could otherwise pick a neighbour's glasses).
    opened_name: str | None = field(default=None, init=False)

    @property
    def rate(self) -> float:
        """The frames a second asked for, or the kind's default."""
        return self.fps if self.fps is not None else DEFAULT_FPS.get(self.kind, 1.0)

    def opener(self, clock: Clock, say: Callable[[str], None]) -> SourceOpener:
        """What opens the source, first and at each restart; raises ``ValueError``
        for an unknown kind or a replay without a video."""
        if self.kind == "camera":
            return lambda: self._camera(clock)
        if self.kind == "replay":
            if not self.spec:
                raise ValueError("--source replay needs the video (or folder of stills) to replay")
            return lambda: self._replay(clock)
        if self.kind == "frame":
            return lambda: self._frame(clock, say)
        raise ValueError(f"unknown source {self.kind!r}; choose one of {', '.join(SOURCE_KINDS)}")

    async def _camera(self, clock: Clock) -> GlassesSource:
        from mobile_bridge.sources.camera import CameraOptions, CameraSource
        from mobile_bridge.sources.microphone import Microphone

        camera = CameraOptions(
            device=self.spec or "0",
            fps=self.rate,
            max_side=self.max_side,
            input_options=dict(self.camera_options),
        )
        mic = await Microphone.open(self.microphone, clock) if self.microphone else None
        try:
            return await CameraSource.open(camera, mic, clock)
        except BaseException:
            if mic is not None:
                await asyncio.to_thread(mic.close)
            raise

    async def _replay(self, clock: Clock) -> GlassesSource:
        from mobile_bridge.sources.replay import FileReplaySource, ReplayMedia

        assert self.spec is not None
        media = ReplayMedia(self.spec, self.audio, fps=self.rate, max_side=self.max_side)
        return await FileReplaySource.open(media, clock)

    async def _frame(self, clock: Clock, say: Callable[[str], None]) -> GlassesSource:
        # Imported only here: the BLE SDK is an optional extra (the module says so
        # itself, with the install hint, when the SDK is missing).
        try:
            from mobile_bridge.sources import brilliant

            brilliant.check_sdk()  # a missing SDK refuses at once, not at each watchdog restart
        except (ImportError, DeviceError) as e:
            raise SourceUnavailable(
                f"--source frame needs the Brilliant Labs Frame/Halo source ({FRAME_HINT}): {e}"
            ) from e
        name = self.spec or self.opened_name
        gestures = brilliant.gestures_with(self.gestures)
        options = brilliant.BrilliantOptions(name=name, fps=self.rate, gestures=gestures)
        source = await brilliant.open_brilliant(options, clock=clock, say=say)
        if not name and (found := getattr(source, "name", None)):
            self.opened_name = found
            say(f"(glasses: {found}; a restart reopens these)")
        return source


def live_summary(stats: LiveStats) -> list[str]:
    """The bridge's own lines of the summary (the report's are printed beside them)."""
    drops = [f"outbox {stats.outbox_drops}"]
    if stats.stale_audio_dropped or stats.frames_superseded:
        drops.append(
            f"after reconnects {stats.stale_audio_dropped} audio, {stats.frames_superseded} frames"
        )
    p = stats.playback
    if p is not None:
        drops.append(f"late audio {p.late_packets}, bad audio {p.bad_packets}")
        drops.append(f"underruns {p.underrun_blocks}")
        if p.lost_blocks:
            drops.append(f"speech blocks the glasses did not take {p.lost_blocks}")
    lines = [
        f"drops: {', '.join(drops)}",
        f"watchdog restarts {stats.restarts}, controls sent {stats.controls_sent}",
    ]
    if stats.playout_ms:
        xs = sorted(stats.playout_ms)
        p50 = xs[len(xs) // 2]
        lines.append(
            f"latency first AudioOut→first sample played: p50 {p50:.0f} ms, "
            f"max {xs[-1]:.0f} ms ({len(xs)} utterance(s))"
        )
    return lines
