"""The session client every source shares: one glasses session over a ``BridgeLink``.

``BridgeSession`` announces the source's capabilities in ``SessionStart``, pumps its
frames, audio and typed text into the link once the server is ready, and routes the
server's events: speech and cues to the ``SpeechSink`` (with a ``PlaybackReport`` for
each utterance that ends or is cut), ``StillRequest`` to ``source.capture_still()``,
``CaptureHint`` to ``source.set_capture_rate()``, and
every event to the observers (console, report). After the source runs dry it lingers
for trailing speech, then half-closes so the server ends the session.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from murmur.v1 import companion_pb2 as pb

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.connection import CLIENT_NAME, LinkOptions
from mobile_bridge.errors import LinkError
from mobile_bridge.sinks.base import EventObserver, SpeechSink
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities

__all__ = [
    "MODES",
    "BridgeSession",
    "ServerEventRouter",
    "SessionLink",
    "SessionOptions",
    "motion_event",
    "session_start",
]

T = TypeVar("T")

MODES = {
    "general": pb.MODE_GENERAL,
    "blind": pb.MODE_BLIND,
    "navigation": pb.MODE_NAVIGATION,
    "shopping": pb.MODE_SHOPPING,
}
LINGER_POLL_S = 0.05
CANCEL_WAIT_S = 2.0


@dataclass
class SessionOptions:
    """What to ask of the server, and how long to wait for it."""

    mode: str = "general"
    language: str = "en"
    instruction_override: str = ""
    out_rate_hz: int = 24000
    want_trace: bool = True
    linger_s: float = 2.0  # after the source ends, wait this long for trailing speech
    linger_max_s: float = 15.0  # ... and at most this long while an utterance is still playing
    ready_timeout_s: float = 15.0
    close_timeout_s: float = 5.0  # after half-closing, for the server to end the session


def session_start(
    caps: SourceCapabilities, opts: SessionOptions, *, speaker: bool | None = None
) -> pb.SessionStart:
    """The first message of the stream, from what the device has and what is asked.

    ``speaker`` (default: the device's own) says whether the server should send speech
    audio; without, it sends captions only."""
    if opts.mode not in MODES:
        raise ValueError(f"unknown mode {opts.mode!r}; choose one of {', '.join(MODES)}")
    return pb.SessionStart(
        mode=MODES[opts.mode],
        language=opts.language,
        # Declared even without a microphone: the server's listener is built from it,
        # and a typed-only session stays the same shape as a spoken one.
        audio_in=pb.AudioFormat(
            encoding=pb.AUDIO_ENCODING_OPUS,
            sample_rate_hz=caps.mic_rate_hz,
            frame_ms=caps.mic_frame_ms,
        ),
        audio_out=pb.AudioFormat(
            encoding=pb.AUDIO_ENCODING_OPUS, sample_rate_hz=opts.out_rate_hz, frame_ms=20
        ),
        video_encoding=pb.VIDEO_ENCODING_JPEG,
        capabilities=pb.GlassesCapabilities(
            speaker=caps.speaker if speaker is None else speaker,
            haptics=caps.haptics,
            display=caps.display,
        ),
        instruction_override=opts.instruction_override,
        want_trace=opts.want_trace,
        client_name=CLIENT_NAME,
    )


class SessionLink(Protocol):
    """What the session needs of ``BridgeLink`` (tests substitute a fake)."""

    options: LinkOptions
    outbox: asyncio.Queue[object]
    reconnects: int

    def events(self) -> AsyncIterator[pb.ServerEvent]: ...

    async def send(self, event: pb.ClientEvent) -> None: ...

    def send_control(self, control: pb.Control) -> None:
        """Queue a control apart from the outbox: never dropped (the latest per kind)."""

    async def close(self) -> None: ...

    def cancel(self) -> None: ...


class ServerEventRouter:
    """Server events → the source, the speech sink and the stream back.

    Runs on the receiving task, so nothing here may block: replies are *offered* to
    the outbox (the receiver is what drains the stream), and stills are captured on
    their own task from ``stills_wanted``.
    """

    def __init__(
        self,
        source: GlassesSource,
        sink: SpeechSink,
        offer: Callable[[pb.ClientEvent], None],
    ) -> None:
        self._source = source
        self._still_capture = source.capabilities.still_capture
        self._sink = sink
        self._offer = offer
        self.ready = asyncio.Event()
        self.stills_wanted: asyncio.Queue[None] = asyncio.Queue()
        self._open: set[str] = set()
        # A sink that plays in real time reports what was heard itself, when it knows.
        self._sink_reports = sink.take_reports(
            lambda report: offer(pb.ClientEvent(playback_report=report))
        )
        # Ticks, notices, transcripts... are the observers' business; GoAway is the
        # link's; a newer server's events are ignored, as the server ignores ours.
        self._handlers: dict[str, Callable[[pb.ServerEvent], None]] = {
            "session_ready": self._on_ready,
            "speech": lambda ev: self._open.add(ev.speech.utterance_id),
            "audio_out": self._on_audio,
            "stop_speaking": self._on_stop,
            "still_request": self._on_still,
            "cue": lambda ev: self._sink.cue(ev.cue),
            "capture_hint": self._on_capture_hint,
        }

    @property
    def speaking(self) -> bool:
        """An utterance has begun and neither ended nor been cut, or still plays."""
        return bool(self._open) or self._sink.playing

    def handle(self, event: pb.ServerEvent) -> None:
        handler = self._handlers.get(event.WhichOneof("event") or "")
        if handler is not None:
            handler(event)

    def _on_ready(self, event: pb.ServerEvent) -> None:
        if not self.ready.is_set():  # a resumed session keeps the first one's timeline
            self._source.start()
            self.ready.set()

    def _on_audio(self, event: pb.ServerEvent) -> None:
        a = event.audio_out
        self._open.add(a.utterance_id)
        self._sink.feed(a.utterance_id, a.data)
        if a.last:
            self._finish(a.utterance_id, interrupted=False)

    def _on_stop(self, event: pb.ServerEvent) -> None:
        for uid in event.stop_speaking.utterance_ids:
            # One whose last packet came may still be playing on a real-time sink.
            if uid in self._open or self._sink_reports:
                self._finish(uid, interrupted=True)

    def _on_capture_hint(self, event: pb.ServerEvent) -> None:
        fps = event.capture_hint.fps
        if fps > 0 and math.isfinite(fps):  # advice; nonsense is not followed
            self._source.set_capture_rate(fps)

    def _on_still(self, event: pb.ServerEvent) -> None:
        if self._still_capture:
            self.stills_wanted.put_nowait(None)

    def _finish(self, uid: str, *, interrupted: bool) -> None:
        self._open.discard(uid)
        played = self._sink.finish(uid, interrupted=interrupted)
        if self._sink_reports:
            return
        # Audio kept or written to files is not heard: the server's memory of what the
        # wearer heard must not count it.
        heard = self._sink.audible
        report = pb.PlaybackReport(
            utterance_id=uid,
            played_ms=played.duration_ms if heard else 0,
            finished=heard and not interrupted,
            interrupted=interrupted,
        )
        self._offer(pb.ClientEvent(playback_report=report))


class BridgeSession:
    """One session between a ``GlassesSource`` and a server, whatever the device."""

    def __init__(
        self,
        source: GlassesSource,
        sink: SpeechSink,
        open_link: Callable[[pb.SessionStart], SessionLink],
        options: SessionOptions | None = None,
        *,
        observers: Sequence[EventObserver] = (),
        say: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.source = source
        self.sink = sink
        self.options = options or SessionOptions()
        # Speech audio is asked for only when the sink uses it: a player the wearer hears
        # (the sound card, a Halo's speaker, the phone page) or WAVs being written;
        # otherwise the server sends captions only.
        start = session_start(source.capabilities, self.options, speaker=sink.wants_audio)
        self.link = open_link(start)
        self._observers = tuple(observers)
        self._say = say or (lambda line: None)
        self._clock = clock or SystemClock()
        self._router = ServerEventRouter(source, sink, self._offer)
        self.outbox_drops = 0  # events offered while the outbox was full (said as they go)

    @property
    def reconnects(self) -> int:
        return self.link.reconnects

    async def run(self) -> None:
        """Until the source ends and the server has said its last, or the server ends
        the session first; raises ``LinkError`` when the session cannot open or go on."""
        receiver = asyncio.create_task(self._receive())
        stills = asyncio.create_task(self._answer_stills())
        sending: asyncio.Future[Any] | None = None
        pumps: list[asyncio.Task[None]] = []
        try:
            await self._wait_ready(receiver)
            pumps = [asyncio.create_task(p) for p in self._pumps()]
            # A pump that fails completes the gather but leaves the others running:
            # the finally below stops each of them, not only the gather.
            sending = asyncio.gather(*pumps)
            pending: list[asyncio.Future[Any]] = [sending, receiver]
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if not receiver.done():
                await sending  # re-raises a pump's error
                await self._linger(receiver)
                await self._end(receiver)
            elif not receiver.cancelled() and receiver.exception() is None:
                self._say("(the server ended the session before the media did)")
            if (
                receiver.done()
                and not receiver.cancelled()
                and (e := receiver.exception()) is not None
            ):
                raise e
        finally:
            tasks: list[asyncio.Future[Any] | None] = [*pumps, sending, stills, receiver]
            for task in tasks:
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.wait([task])
                if task is not None and not task.cancelled():
                    task.exception()  # retrieved: a cancelled gather may hold CancelledError
            self.sink.finish_all()

    # ------------------------------------------------------------------ receiving

    async def _receive(self) -> None:
        async for event in self.link.events():
            at = self._clock.monotonic()
            for observer in self._observers:
                observer.received(event, at)
            self._router.handle(event)

    async def _answer_stills(self) -> None:
        while True:
            await self._router.stills_wanted.get()
            try:
                still = await self.source.capture_still()
            except Exception as e:  # a failed still must not end the session
                self._say(f"(could not take the still the server asked for: {e})")
                continue
            if still is not None:
                frame = pb.VideoFrame(
                    seq=0,
                    capture_time_ms=still.capture_time_ms,
                    encoding=pb.VIDEO_ENCODING_JPEG,
                    data=still.jpeg,
                    high_res=True,
                )
                self._offer(pb.ClientEvent(video_frame=frame))

    # ------------------------------------------------------------------ sending

    def _pumps(self) -> list[Coroutine[Any, Any, None]]:
        caps = self.source.capabilities
        pumps = []
        if caps.camera:
            pumps.append(self._pump(self.source.frames(), _frame_event))
        if caps.microphone:
            pumps.append(self._pump(self.source.audio(), _audio_event))
        pumps.append(self._pump(self.source.texts(), lambda text, _: _text_event(text)))
        return pumps

    async def _pump(
        self, items: AsyncIterator[T], to_event: Callable[[T, int], pb.ClientEvent]
    ) -> None:
        try:
            seq = 0
            async for item in items:
                event = to_event(item, seq)
                await self.link.send(event)  # waits while the outbox is full: backpressure
                self._sent(event)
                seq += 1
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

    def send_motion(
        self, first_sample_time_ms: int, rate_hz: float, samples: Sequence[Sequence[float]]
    ) -> None:
        """A batch of the device's accelerometer samples (x, y, z with gravity, m/s²),
        for the server's fall detection; a bridge without a motion sensor never calls it."""
        self._offer(motion_event(first_sample_time_ms, rate_hz, samples))

    def send_control(self, control: pb.Control) -> None:
        """A wearer's command (mode, pause, stop, volume, ask) from the keyboard, a
        control socket or the glasses' buttons. Never dropped, even with the outbox
        full through a long outage: the link keeps the latest of each kind."""
        self.link.send_control(control)
        self._sent(pb.ClientEvent(control=control))

    async def wait_ready(self) -> None:
        """Until the server's first ``SessionReady`` (for senders beside ``run``)."""
        await self._router.ready.wait()

    def send_location(self, fix: pb.Location) -> None:
        """A position fix for the server's blind and navigation modes: degrees WGS 84,
        the error radius in metres, the course from true north (0: unknown), m/s, the
        route's current instruction, unix ms of the fix (``mobile_bridge.location``'s
        ``run_location`` calls this)."""
        self._offer(pb.ClientEvent(location=fix))

    def _offer(self, event: pb.ClientEvent) -> None:
        """Queue without waiting; a full outbox drops the event and says so."""
        try:
            self.link.outbox.put_nowait(event)
        except asyncio.QueueFull:
            self.outbox_drops += 1
            self._say(f"(outbox full; {_describe(event)} dropped)")
            return
        self._sent(event)

    def _sent(self, event: pb.ClientEvent) -> None:
        at = self._clock.monotonic()
        for observer in self._observers:
            observer.sent(event, at)

    # ------------------------------------------------------------------ lifecycle

    async def _wait_ready(self, receiver: asyncio.Task[None]) -> None:
        ready = asyncio.ensure_future(self._router.ready.wait())
        timeout = self.options.ready_timeout_s
        done = await self._first_of([ready, receiver], timeout)
        ready.cancel()
        if self._router.ready.is_set():
            return
        target = self.link.options.target
        if receiver in done:
            exc = receiver.exception()
            if exc is not None:
                raise exc
            raise LinkError(f"the server at {target} ended the stream before SessionReady")
        raise LinkError(f"the server at {target} sent no SessionReady within {timeout:g} s")

    async def _linger(self, receiver: asyncio.Task[None]) -> None:
        """Wait ``linger_s`` for trailing speech, longer while an utterance still plays."""
        start = self._clock.monotonic()
        end, hard_end = start + self.options.linger_s, start + self.options.linger_max_s
        while not receiver.done():
            now = self._clock.monotonic()
            if now >= hard_end or (now >= end and not self._router.speaking):
                return
            await self._clock.sleep(LINGER_POLL_S)

    async def _end(self, receiver: asyncio.Task[None]) -> None:
        """Half-close; the server then ends the session, or is cut off after a while."""
        await self.link.close()
        if not await self._first_of([receiver], self.options.close_timeout_s):
            self._say("(the server did not end the session after the bridge finished; closing)")
            self.link.cancel()
            await self._first_of([receiver], CANCEL_WAIT_S)

    async def _first_of(
        self, waits: list[asyncio.Future[Any]], timeout_s: float
    ) -> set[asyncio.Future[Any]]:
        """Those of ``waits`` done when the first is, or none after ``timeout_s`` on the clock."""
        timer = asyncio.ensure_future(self._clock.sleep(timeout_s))
        try:
            done, _ = await asyncio.wait([*waits, timer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        return done - {timer}


def _frame_event(frame: JpegFrame, seq: int) -> pb.ClientEvent:
    return pb.ClientEvent(
        video_frame=pb.VideoFrame(
            seq=seq,
            capture_time_ms=frame.capture_time_ms,
            encoding=pb.VIDEO_ENCODING_JPEG,
            data=frame.jpeg,
        )
    )


def _audio_event(packet: OpusPacket, seq: int) -> pb.ClientEvent:
    return pb.ClientEvent(
        audio_chunk=pb.AudioChunk(seq=seq, capture_time_ms=packet.capture_time_ms, data=packet.data)
    )


def motion_event(
    first_sample_time_ms: int, rate_hz: float, samples: Sequence[Sequence[float]]
) -> pb.ClientEvent:
    """``DeviceMotion``: samples evenly spaced at ``rate_hz`` from the first one's time
    (unix ms), each (x, y, z) in m/s² with gravity, as a browser's
    ``DeviceMotionEvent.accelerationIncludingGravity`` gives them (Core Motion's g × 9.80665)."""
    return pb.ClientEvent(
        device_motion=pb.DeviceMotion(
            first_sample_time_ms=first_sample_time_ms,
            sample_rate_hz=rate_hz,
            x=[s[0] for s in samples],
            y=[s[1] for s in samples],
            z=[s[2] for s in samples],
        )
    )


def _text_event(text: str) -> pb.ClientEvent:
    return pb.ClientEvent(text_input=pb.TextInput(text=text))


def _describe(event: pb.ClientEvent) -> str:
    which = event.WhichOneof("event") or "event"
    if which == "playback_report":
        return f"playback report for {event.playback_report.utterance_id}"
    return which.replace("_", " ")
