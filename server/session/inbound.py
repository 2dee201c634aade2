"""Client events and microphone events → the part that handles each.

A table from event type to handler, not a long ``match``: adding an event is one
line and one small method. Handlers do cheap work inline; decoding goes to the
shared pools. What the user's words *mean* is the engine's decision
(``engine/commands.decide``); this file only carries the effects out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server.codes import Code
from server.engine.commands import Effects, decide, level_line
from server.engine.fall import grey_thumbnail
from server.engine.tick import Delegations, TickEngine
from server.errors import Recoverable
from server.events import (
    AskNow,
    AudioIn,
    FrameIn,
    LocationIn,
    MotionIn,
    Notice,
    PauseWatching,
    PlaybackReport,
    SessionStart,
    SetMode,
    SetVolume,
    SpeechKind,
    StopSpeakingNow,
    TextIn,
    Transcript,
    VideoEncoding,
)
from server.modes import ModeProfile, profile
from server.runtime.base import Frame
from server.session.capture_rate import CaptureHints
from server.session.emergency import EmergencyCaller
from server.session.frames import FrameSlot
from server.session.images import decode_image
from server.session.notices import Notices
from server.session.outbox import Outbox
from server.session.services import Listener, SessionServices
from server.session.speaker import Speaker
from server.session.ticker import Ticker
from server.session.vision import FrameVision
from server.telemetry.metrics import BARGE_INS, FRAMES_DROPPED
from server.voice.codec import PacketDecoder
from server.voice.listener import SpeechStarted, TranscriptFinal, TranscriptPartial

__all__ = ["ASK_NOW_DEFAULT", "Inbound"]

ASK_NOW_DEFAULT = "What's in front of me?"

Handler = Callable[[Any], Awaitable[None]]


class Inbound:
    def __init__(
        self,
        services: SessionServices,
        *,
        slot: FrameSlot,
        speaker: Speaker,
        engine: TickEngine,
        ticker: Ticker,
        notices: Notices,
        delegations: Delegations | None,
        outbox: Outbox,
        emergency: EmergencyCaller | None = None,
    ) -> None:
        self._services = services
        self._slot = slot
        self._speaker = speaker
        self._engine = engine
        self._ticker = ticker
        self._notices = notices
        self._delegations = delegations
        self._out = outbox
        self._emergency = emergency
        self._listener: Listener | None = None
        self._decoder: PacketDecoder | None = None
        self._vision: FrameVision | None = None
        self._capture: CaptureHints | None = None
        self.stats = {"frames": 0, "audio_packets": 0}
        self._handlers: dict[type, Handler] = {
            FrameIn: self._frame,
            AudioIn: self._audio,
            TextIn: self._text,
            PlaybackReport: self._playback_report,
            LocationIn: self._location,
            MotionIn: self._motion,
            SetMode: self._set_mode,
            PauseWatching: self._pause,
            StopSpeakingNow: self._stop_speaking,
            SetVolume: self._volume,
            AskNow: self._ask_now,
            SessionStart: self._duplicate_start,
            Notice: self._notices.forward,  # the transport's protocol notices
        }

    def attach_listener(self, listener: Listener) -> None:
        self._listener = listener

    def attach_vision(self, vision: FrameVision) -> None:
        """Barcodes in frames, and stills read apart from the frame slot (vision.py)."""
        self._vision = vision

    def attach_capture(self, capture: CaptureHints) -> None:
        """Frames and the user's words tell the capture-rate hints (capture_rate.py)."""
        self._capture = capture

    def attach_decoder(self, decoder: PacketDecoder) -> None:
        """No speech input: audio is still validated, so a broken encoder is reported."""
        self._decoder = decoder

    async def handle(self, event: object) -> None:
        """Dispatch one event; a recoverable problem becomes a Notice."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        try:
            await handler(event)
        except Recoverable as e:
            if type(event) is FrameIn:  # too_large, unsupported, corrupt, too_many_pixels
                FRAMES_DROPPED.labels(e.code.removeprefix("frame.")).inc()
            await self._notices.error(e)

    # ------------------------------------------------------------------ the user

    async def user_said(self, text: str) -> None:
        """A final transcript or typed text: commands act now, the rest goes to the model.
        The emergency path hears it first: a call for help or an answer to "Are you OK?"
        is its own, not a query."""
        self._heard("asked")
        if self._emergency is not None and self._emergency.heard_user(text):
            return
        await self.apply(decide(text, language=self._engine.policy.language))

    async def apply(self, effects: Effects) -> None:
        if effects.silence_narration:  # "quiet" silences narration, never an alert
            self._speaker.interrupt("client", keep_alerts=True)
        if effects.set_mode is not None:
            await self._switch(profile(effects.set_mode))
        elif effects.cancel_delegations and self._delegations is not None:
            self._delegations.cancel_all(effects.cancel_delegations)
        if effects.level_steps:  # "louder"/"quieter", acknowledged at the new level
            self._change_level(effects.level_steps)
        if effects.query:
            await self._ask(effects.query, must_answer=effects.must_answer)

    def _change_level(self, steps: int) -> None:
        moved = self._speaker.voice.change_level(steps)
        if said := level_line(self._engine.policy.language, steps, moved):
            now = self._services.clock()
            self._engine.say(self._engine.policy.announce(said, SpeechKind.SYSTEM, now))

    async def _ask(self, query: str, *, must_answer: bool = False) -> None:
        self._engine.add_query(query, must_answer=must_answer)
        if (still := self._engine.reading.for_query(query, self._engine.profile)) is not None:
            self._heard("still_request")
            await self._out.put(still)

    def _heard(self, reason: str) -> None:
        if self._capture is not None:
            self._capture.heard(reason)

    async def on_listener_event(self, event: object) -> None:
        match event:
            case SpeechStarted():
                self._heard("user_speech")
                # The listener asks for more proof while Murmur itself is speaking. An
                # alert goes on: talking over it (even "quiet") must not lose it.
                if self._speaker.interrupt("barge_in", keep_alerts=True):
                    BARGE_INS.inc()
            case TranscriptPartial():
                await self._out.put(
                    Transcript(event.text, final=False, utterance_id=f"u{event.user_utterance}")
                )
            case TranscriptFinal():
                await self._out.put(
                    Transcript(event.text, final=True, utterance_id=f"u{event.user_utterance}")
                )
                await self.user_said(event.text)
            case Notice():
                await self._notices.forward(event)

    # ------------------------------------------------------------------ handlers

    async def _frame(self, event: FrameIn) -> None:
        server = self._services.settings.server
        # A still is a phone camera's photo: only the message limit bounds it.
        limit = server.max_message_bytes if event.high_res else server.max_frame_bytes
        if len(event.data) > limit:
            raise Recoverable(
                Code.FRAME_TOO_LARGE,
                f"a video frame of {len(event.data)} bytes exceeds the {limit}-byte limit "
                "and was dropped; send smaller JPEGs (about 640 px wide is plenty)",
            )
        if event.encoding is not VideoEncoding.JPEG:
            raise Recoverable(
                Code.FRAME_UNSUPPORTED,
                f"a {event.encoding.value} frame was dropped; this session takes JPEG stills",
            )
        if event.high_res and self._vision is not None:  # held apart from the frame slot
            self._vision.still(event)
            return
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        decoded = await loop.run_in_executor(
            self._services.executors.media, decode_image, event.data
        )
        decode_ms = (time.perf_counter() - t0) * 1000
        image = decoded.image
        # One 32×24 grey thumbnail (~0.3 ms) serves the model's frame budget, the fall
        # heuristic and the capture rate.
        thumb = grey_thumbnail(image)
        received = self._services.clock()
        frame = Frame(image, event.seq, event.capture_time_ms, received, decode_ms, thumb)
        offer = self._slot.put(frame)
        for code, message in offer.notices:  # the bridge's counter or clock misbehaves
            await self._notices.once(code, message)
        if offer.taken:
            self._engine.add_frame_data(decoded.jpeg)
            if self._vision is not None:
                self._vision.frame(image)
            if self._engine.budget.changed(thumb):  # decided now, not at the period's end
                self._ticker.wake()
            if self._emergency is not None:
                self._emergency.saw(decoded.jpeg, thumb)
            if self._capture is not None:
                self._capture.frame(thumb)
            self.stats["frames"] += 1

    async def _audio(self, event: AudioIn) -> None:
        self.stats["audio_packets"] += 1
        if self._listener is not None:
            await self._listener.feed(event.data, event.capture_time_ms)
        elif self._decoder is not None:
            self._decoder.decode(event.data)  # validates; speech input is off

    async def _text(self, event: TextIn) -> None:
        await self.user_said(event.text)

    async def _playback_report(self, event: PlaybackReport) -> None:
        self._speaker.playback_report(event.utterance_id, event.played_ms)

    async def _location(self, event: LocationIn) -> None:
        self._engine.location.update(event)
        if self._emergency is not None:
            self._emergency.located(event)

    async def _motion(self, event: MotionIn) -> None:
        if self._emergency is not None:  # without contacts there is no fall path to feed
            await self._emergency.moved(event)

    async def _set_mode(self, event: SetMode) -> None:
        await self._switch(profile(event.mode))

    async def _switch(self, to: ModeProfile) -> None:
        if to.name == self._engine.profile.name:
            return
        if self._delegations is not None:
            self._delegations.cancel_all("mode change")
        self._speaker.voice.use_mode(to.voice_style, to.voice_rate)  # before its announcement
        self._engine.set_mode(to)

    async def _pause(self, event: PauseWatching) -> None:
        self._ticker.pause(event.paused)

    async def _stop_speaking(self, event: StopSpeakingNow) -> None:
        self._speaker.interrupt("client")

    async def _volume(self, event: SetVolume) -> None:
        self._speaker.set_volume(event.volume)

    async def _ask_now(self, event: AskNow) -> None:
        self._heard("asked")
        await self._ask(event.question or ASK_NOW_DEFAULT)

    async def _duplicate_start(self, event: SessionStart) -> None:
        await self._notices.once(
            Code.PROTOCOL_DUPLICATE_START,
            "SessionStart was sent again mid-session and ignored; open a new stream to "
            "change formats",
        )
