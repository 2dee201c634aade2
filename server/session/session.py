"""One ``Session`` per ``Converse`` stream.

The session owns one ``asyncio.TaskGroup`` with four tasks — reader, ticker,
speaker and writer — and exactly one of them (the writer) talks to the call.
Video goes into a latest-only ``FrameSlot``, audio into the listener's bounded
buffer, and everything outbound through one bounded queue, so backpressure from
a slow client reaches TTS instead of piling up in memory.

A client half-close ends the session gently (queued speech is finished); a
client that vanishes cancels the task group and every task and child with it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from server.config import Settings
from server.engine.clock import TickClock
from server.engine.commands import parse_command
from server.engine.loop import Delegations, TickEngine, TickOptions
from server.engine.policy import GuidancePolicy
from server.errors import CapacityError, Fatal, ProtocolError, Recoverable
from server.events import (
    AskNow,
    AudioIn,
    AudioOut,
    ClientEvent,
    FrameIn,
    GoAway,
    LocationIn,
    Mode,
    Notice,
    PauseWatching,
    PlaybackReport,
    ServerEvent,
    SessionReady,
    SessionStart,
    SetMode,
    SetVolume,
    Speech,
    SpeechKind,
    StopSpeaking,
    StopSpeakingNow,
    TextIn,
    Transcript,
    VideoEncoding,
)
from server.modes import profile
from server.runtime.base import Frame, InteractionRuntime, ModelSession
from server.session.frames import FrameSlot, decode_jpeg
from server.session.outbox import Outbox
from server.session.speaker import Speaker
from server.voice.codec import PacketDecoder, validate_format
from server.voice.listener import SpeechStarted, TranscriptFinal, TranscriptPartial
from server.voice.tts.base import TTSBackend, VoiceOptions

__all__ = ["Session", "SessionLink", "SessionServices"]

log = logging.getLogger(__name__)

_END = object()  # writer sentinel: everything queued has been sent
ASK_NOW_DEFAULT = "What's in front of me?"


class SessionLink(Protocol):
    """The transport's side of a stream, in domain events."""

    async def recv(self) -> ClientEvent | None:
        """The next client event, or None when the client half-closed."""

    async def send(self, event: ServerEvent) -> None: ...


class Listener(Protocol):
    """The audio-in pipeline (server/voice/listener.py)."""

    async def feed(self, packet: bytes, capture_time_ms: int) -> None: ...

    def set_speaking(self, text: str | None) -> None: ...

    async def close(self) -> None: ...


class DelegationService(Protocol):
    def session(self, emit: Any, language: str) -> Any: ...

    async def aclose(self) -> None: ...


@dataclass
class SessionServices:
    """What every session shares: built once by ``server.app``."""

    settings: Settings
    runtime: InteractionRuntime
    tts: TTSBackend
    media: Executor  # JPEG decoding
    # (input format, event callback) -> listener; None = no speech input (text only).
    listener_factory: Callable[..., Listener] | None = None
    delegations: DelegationService | None = None
    clock: Callable[[], float] = time.monotonic


class Session:
    @classmethod
    async def open(
        cls, services: SessionServices, link: SessionLink, start: SessionStart
    ) -> Session:
        """Validate ``start``, open the model conversation off the loop, build the session.

        Opening allocates the session's KV cache (gigabytes on a GPU): it runs in
        the model's thread, and running out of memory means the server is full.
        """
        cls._validate(start)
        runtime = services.runtime
        instruction = start.instruction_override or profile(start.mode).instruction
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(
                runtime.executor,
                functools.partial(
                    runtime.open_session, instruction, language=start.language or "en"
                ),
            )
        except Recoverable as e:
            raise CapacityError(f"cannot open another session: {e.message}") from e
        try:
            return cls(services, link, start, model)
        except BaseException:
            loop.run_in_executor(runtime.executor, model.close)
            raise

    def __init__(
        self,
        services: SessionServices,
        link: SessionLink,
        start: SessionStart,
        model: ModelSession,
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.link = link
        self.start = start
        self.id = secrets.token_hex(8)
        self.resume_token = secrets.token_urlsafe(18)
        self._clock = services.clock
        self.mode = start.mode
        self.profile = profile(start.mode)
        self._out = Outbox(self.settings.server.outbound_queue)
        self.slot = FrameSlot(self._clock)
        self._recent_jpegs: deque[bytes] = deque(maxlen=3)
        self._paused = False
        self._ending = asyncio.Event()
        self._noticed: set[str] = set()
        self.stats = {"frames": 0, "audio_packets": 0, "notices": 0}

        voice_cfg = self.settings.voice
        self.speaker = Speaker(
            services.tts,
            VoiceOptions(
                language=start.language or "en",
                voice=start.voice,
                rate=voice_cfg.rate,
                volume=start.volume or voice_cfg.volume,
            ),
            start.audio_out,
            self,
            on_cut=self._on_cut,
            on_error=self._on_tts_error,
            clock=self._clock,
        )
        runtime = services.runtime
        self.model = model
        self.delegations: Delegations | None = (
            services.delegations.session(self.emit, start.language or "en")
            if services.delegations is not None
            else None
        )
        self.engine = TickEngine(
            runtime,
            self.model,
            GuidancePolicy(self.profile),
            self.speaker.say,
            self.emit,
            delegations=self.delegations,
            recent_frames=lambda: tuple(self._recent_jpegs),
            options=self._tick_options(),
            clock=self._clock,
        )
        self.listener: Listener | None = None
        self._decoder: PacketDecoder | None = None
        if services.listener_factory is not None:
            self.listener = services.listener_factory(
                start.audio_in, self._on_listener_event, language=start.language or "en"
            )
        else:
            self._decoder = PacketDecoder(start.audio_in)
        # One Notice when the TTS chain falls back (or recovers) during this session.
        subscribe = getattr(services.tts, "subscribe", None)
        self._unsubscribe_tts = subscribe(self._on_tts_switch) if subscribe else None

    # ------------------------------------------------------------------ lifecycle

    @staticmethod
    def _validate(start: SessionStart) -> None:
        validate_format(start.audio_in, "in")
        validate_format(start.audio_out, "out")
        if start.video_encoding is not VideoEncoding.JPEG:
            raise ProtocolError(
                f"video encoding {start.video_encoding.value} is not supported by this "
                "server; supported: jpeg (one still per VideoFrame)"
            )

    def _tick_options(self) -> TickOptions:
        return TickOptions(
            language=self.start.language or "en",
            want_trace=self.start.want_trace,
            location_in_context=self.mode is Mode.NAVIGATION,
        )

    async def run(self) -> None:
        """Serve the stream until the client half-closes or goes away."""
        self.started_at = self._clock()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._writer(), name=f"writer-{self.id}")
                await self.emit(
                    SessionReady(
                        session_id=self.id,
                        resume_token=self.resume_token,
                        audio_in=self.start.audio_in,
                        audio_out=self.start.audio_out,
                        model=self.services.runtime.name,
                        tick_hz=self.settings.server.tick_hz,
                        mode=self.mode,
                    )
                )
                if self.start.resume_token:
                    await self.notice(
                        "session.resume_unknown",
                        "the resume token is not known to this server (it restarted, or "
                        "the session expired); a new session was started",
                        "session",
                    )
                ticker = tg.create_task(self._ticker(), name=f"ticker-{self.id}")
                speaker = tg.create_task(self.speaker.run(), name=f"speaker-{self.id}")
                results = (
                    tg.create_task(self._results(), name=f"results-{self.id}")
                    if self.delegations is not None
                    else None
                )
                tg.create_task(self._reader(ticker, speaker, results), name=f"reader-{self.id}")
        except* Fatal as group:
            raise group.exceptions[0] from None
        finally:
            await self._cleanup()

    def go_away(self, reconnect_after_ms: int, reason: str) -> None:
        """The server is draining: tell the client to come back with its resume token."""
        self.urgent(GoAway(reconnect_after_ms, reason))

    async def _cleanup(self) -> None:
        loop = asyncio.get_running_loop()
        # First, whatever else fails: the session's KV cache is released in the model
        # thread, after any step still running there.
        loop.run_in_executor(self.services.runtime.executor, self.model.close)
        if self._unsubscribe_tts is not None:
            self._unsubscribe_tts()
        if self.delegations is not None:
            self.delegations.cancel_all("session end")
            close = getattr(self.delegations, "close", None)
            if close is not None:
                await close()
        if self.listener is not None:
            await self.listener.close()

    # ------------------------------------------------------------------ outbound

    async def emit(self, event: ServerEvent) -> None:
        if self.listener is not None:
            # The echo guard needs to know what Murmur is saying right now.
            if isinstance(event, Speech):
                self.listener.set_speaking(event.text)
            elif isinstance(event, AudioOut) and event.last:
                self.listener.set_speaking(None)
        await self._out.put(event)

    def urgent(self, event: ServerEvent, drop_audio_of: tuple[str, ...] = ()) -> None:
        """Send ``event`` before anything queued (a cut), without waiting."""
        if self.listener is not None and isinstance(event, StopSpeaking):
            self.listener.set_speaking(None)
        self._out.urgent(event, drop_audio_of)

    async def notice(
        self, code: str, message: str, component: str, retryable: bool = False
    ) -> None:
        self.stats["notices"] += 1
        await self.emit(Notice(code, message, component, retryable))

    async def notice_once(self, code: str, message: str, component: str) -> None:
        if code not in self._noticed:
            self._noticed.add(code)
            await self.notice(code, message, component)

    async def _writer(self) -> None:
        while True:
            event = await self._out.get()
            if event is _END:
                return
            await self.link.send(cast(ServerEvent, event))

    # ------------------------------------------------------------------ reader

    async def _reader(
        self,
        ticker: asyncio.Task[None],
        speaker: asyncio.Task[None],
        results: asyncio.Task[None] | None,
    ) -> None:
        while True:
            event = await self.link.recv()
            if event is None:
                break
            try:
                await self._dispatch(event)
            except Recoverable as e:
                await self.notice(e.code, e.message, e.component, e.retryable)
        # Half-close: stop watching, finish what is being said, then end the stream.
        self._ending.set()
        if self.delegations is not None:
            self.delegations.cancel_all("session end")
        if results is not None:
            results.cancel()
        await ticker  # the tick in flight may still queue a reply: let it
        self.speaker.close()
        await speaker
        await self._out.put(_END)

    async def _dispatch(self, event: ClientEvent) -> None:
        match event:
            case FrameIn():
                await self._on_frame(event)
            case AudioIn():
                await self._on_audio(event)
            case TextIn(text=text):
                await self.user_said(text)
            case PlaybackReport():
                self.speaker.playback_report(event.utterance_id, event.played_ms)
            case LocationIn():
                self.engine.set_location(event)
            case SetMode(mode=mode):
                await self.set_mode(mode)
            case PauseWatching(paused=paused):
                self._paused = paused
            case StopSpeakingNow():
                self.speaker.interrupt("client")
            case SetVolume(volume=v):
                self.speaker.voice = replace(self.speaker.voice, volume=min(max(v, 0.0), 1.0))
            case AskNow(question=q):
                self.engine.add_query(q or ASK_NOW_DEFAULT)
            case SessionStart():
                await self.notice_once(
                    "protocol.duplicate_start",
                    "SessionStart was sent again mid-session and ignored; open a new "
                    "stream to change formats",
                    "protocol",
                )

    async def _on_frame(self, event: FrameIn) -> None:
        limit = self.settings.server.max_frame_bytes
        if len(event.data) > limit:
            raise Recoverable(
                "frame.too_large",
                f"a video frame of {len(event.data)} bytes exceeds the {limit}-byte limit "
                "and was dropped; send smaller JPEGs (about 640 px wide is plenty)",
                component="video",
            )
        if event.encoding is not VideoEncoding.JPEG:
            raise Recoverable(
                "frame.unsupported",
                f"a {event.encoding.value} frame was dropped; this session takes JPEG stills",
                component="video",
            )
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        image = await loop.run_in_executor(self.services.media, decode_jpeg, event.data)
        decode_ms = (time.perf_counter() - t0) * 1000
        accepted = self.slot.put(
            Frame(image, event.seq, event.capture_time_ms, self._clock(), decode_ms)
        )
        if accepted:
            self._recent_jpegs.append(event.data)
            self.stats["frames"] += 1

    async def _on_audio(self, event: AudioIn) -> None:
        self.stats["audio_packets"] += 1
        if self.listener is not None:
            await self.listener.feed(event.data, event.capture_time_ms)
        elif self._decoder is not None:
            self._decoder.decode(event.data)  # validates; speech input is off

    # ------------------------------------------------------------------ users

    async def user_said(self, text: str) -> None:
        """A final transcript or typed text: commands act now, the rest goes to the model."""
        cmd = parse_command(text)
        if cmd.stop_speaking:
            self.speaker.interrupt("client")
        if self.delegations is not None and (cmd.cancel_delegations or cmd.query):
            # "Never mind", a mode change or a new question: what runs is moot.
            reason = (
                "mode change" if cmd.set_mode else "never mind" if not cmd.query else "new question"
            )
            self.delegations.cancel_all(reason)
        if cmd.set_mode is not None:
            await self.set_mode(cmd.set_mode)
        if cmd.query:
            self.engine.add_query(cmd.query)

    async def set_mode(self, mode: Mode) -> None:
        if mode is self.mode:
            return
        self.mode = mode
        self.profile = profile(mode)
        self.engine.policy.set_profile(self.profile)
        self.engine.options = self._tick_options()
        if self.delegations is not None:
            self.delegations.cancel_all("mode change")
        # The new standing instruction reaches the model in its next turn (not as a
        # user query: that tick must not be treated as answering the user).
        self.model.add_context(f"[Mode changed] {self.profile.instruction}")
        now = self._clock()
        self.speaker.say(
            self.engine.policy.announce(f"{mode.value.capitalize()} mode.", SpeechKind.SYSTEM, now)
        )

    async def _results(self) -> None:
        """Speak delegation results as soon as they arrive, not at the next tick."""
        assert self.delegations is not None
        while True:
            await self.delegations.wait_result()
            if self.engine.deliver_results() == 0:
                await asyncio.sleep(0)  # never spin if a result was taken elsewhere

    async def _on_listener_event(self, event: Any) -> None:
        match event:
            case SpeechStarted():
                if self.speaker.speaking is not None:
                    self.speaker.interrupt("barge_in")
            case TranscriptPartial():
                await self.emit(
                    Transcript(event.text, final=False, utterance_id=str(event.utterance))
                )
            case TranscriptFinal():
                await self.emit(
                    Transcript(event.text, final=True, utterance_id=str(event.utterance))
                )
                await self.user_said(event.text)
            case Notice():
                self.stats["notices"] += 1
                await self.emit(event)

    def _on_tts_switch(self, old: str, new: str, reason: str) -> None:
        # Called on the loop from inside synthesis: never block it on the outbound queue.
        what = "is back" if reason == "recovered" else "took over"
        message = f"speech output: {new} {what} from {old} ({reason})"
        if reason != "recovered":
            message += "; the voice may sound different"
        code = "tts.recovered" if reason == "recovered" else "tts.fallback"
        asyncio.get_running_loop().create_task(self.notice(code, message, "tts", True))

    def _on_cut(self, text: str, heard: str) -> None:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(self.services.runtime.executor, self.model.heard, text, heard)

    async def _on_tts_error(self, error: Exception) -> None:
        await self.notice("tts.failed", f"speech synthesis failed: {error}", "tts", True)

    # ------------------------------------------------------------------ ticker

    async def _ticker(self) -> None:
        server = self.settings.server
        period = 1.0 / server.tick_hz
        # Time zero is the first frame: the camera's later frames then arrive just
        # as ticks fall due. Without video, ticks start one period in.
        if await self.slot.wait_fresh(period) and self.slot.latest is not None:
            zero = self.slot.latest.received_at
        else:
            zero = self.started_at
        clock = TickClock(zero, period, server.frame_wait_ms / 1000)
        coalesced = 0
        while not self._ending.is_set():
            plan = clock.plan()
            if await self._sleep_until(plan.due):
                return
            eligible = max(plan.due, self._clock())
            if not self.slot.fresh:
                got = await self.slot.wait_fresh(plan.deadline - self._clock())
                eligible = self._clock() if got else max(plan.deadline, eligible)
            if self._ending.is_set():
                return
            fired = self._clock()
            slip_ms = max(0.0, fired - eligible) * 1000
            frame_at = None
            if not self._paused:
                frame, fresh = self.slot.take()
                frame_at = frame.received_at if frame is not None and fresh else None
                await self.engine.tick(
                    clock.label(fired), frame, fresh=fresh, slip_ms=slip_ms, coalesced=coalesced
                )
            coalesced = clock.advance(fired, self._clock(), frame_at)

    async def _sleep_until(self, when: float) -> bool:
        """Sleep until ``when``; True if the session is ending instead."""
        delay = when - self._clock()
        if delay <= 0:
            return self._ending.is_set()
        try:
            async with asyncio.timeout(delay):
                await self._ending.wait()
        except TimeoutError:
            return False
        return True
