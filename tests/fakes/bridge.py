"""The bridge's world in memory: the link to the server, the glasses, the speaker."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.connection import LinkOptions
from mobile_bridge.controls import Command
from mobile_bridge.sinks.base import SpeechSink, UtteranceAudio
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities
from tests.fakes.clocks import ManualClock

__all__ = [
    "CAMERA_AND_MIC",
    "READY",
    "FakeLink",
    "FakeSource",
    "PressableSource",
    "RecordingSink",
    "server_pauses",
]

READY = pb.ServerEvent(session_ready=pb.SessionReady(session_id="s1", model="fake", tick_hz=1))
CAMERA_AND_MIC = SourceCapabilities(camera=True, microphone=True, speaker=True, still_capture=True)
_LINK_CLOSE = object()


class FakeLink:
    """``BridgeLink``'s surface in memory, with a scripted server behind it.

    ``respond`` maps each client event the server receives to the events it answers
    with; half-closing ends the session unless ``ignore_close``.
    """

    def __init__(
        self,
        respond: Callable[[pb.ClientEvent], Sequence[pb.ServerEvent]] = lambda ev: (),
        *,
        greet: Sequence[pb.ServerEvent] = (READY,),
        ignore_close: bool = False,
    ) -> None:
        self.options = LinkOptions(target="fake:1")
        self.outbox: asyncio.Queue[object] = asyncio.Queue(64)
        self.reconnects = 0
        self.start: pb.SessionStart | None = None
        self.sent: list[pb.ClientEvent] = []
        self._respond = respond
        self._ignore_close = ignore_close
        self._server: asyncio.Queue[pb.ServerEvent | None] = asyncio.Queue()
        for ev in greet:
            self._server.put_nowait(ev)

    def open(self, start: pb.SessionStart) -> FakeLink:
        self.start = start
        return self

    def end(self) -> None:
        self._server.put_nowait(None)

    async def events(self) -> AsyncIterator[pb.ServerEvent]:
        pump = asyncio.create_task(self._pump())
        try:
            while (ev := await self._server.get()) is not None:
                yield ev
        finally:
            pump.cancel()

    async def send(self, event: pb.ClientEvent) -> None:
        await self.outbox.put(event)

    def send_control(self, control: pb.Control) -> None:
        self.outbox.put_nowait(pb.ClientEvent(control=control))

    async def close(self) -> None:
        await self.outbox.put(_LINK_CLOSE)

    def cancel(self) -> None:
        self.end()

    def kinds(self) -> list[str]:
        return [e.WhichOneof("event") or "" for e in self.sent]

    async def _pump(self) -> None:
        while (item := await self.outbox.get()) is not _LINK_CLOSE:
            assert isinstance(item, pb.ClientEvent)
            self.sent.append(item)
            for ev in self._respond(item):
                self._server.put_nowait(ev)
        if not self._ignore_close:
            self.end()


class FakeSource(GlassesSource):
    """Frames, packets and texts handed over at once, or every ``period_s`` on a clock."""

    def __init__(
        self,
        caps: SourceCapabilities = CAMERA_AND_MIC,
        *,
        frames: int = 2,
        packets: int = 3,
        texts: Sequence[str] = (),
        clock: ManualClock | None = None,
        period_s: float = 1.0,
    ) -> None:
        self._caps = caps
        self._frames, self._packets, self._texts = frames, packets, texts
        self._clock, self._period = clock, period_s
        self.started = 0
        self.stills_taken = 0
        self.audio_read = False

    @property
    def capabilities(self) -> SourceCapabilities:
        return self._caps

    def start(self) -> None:
        self.started += 1

    async def frames(self) -> AsyncIterator[JpegFrame]:
        for i in itertools.count():
            if i == self._frames:
                return
            if self._clock is not None and i:
                await self._clock.sleep(self._period)
            yield JpegFrame(b"\xff\xd8frame%d" % i, 1000 + i)

    async def audio(self) -> AsyncIterator[OpusPacket]:
        self.audio_read = True
        for i in range(self._packets):
            yield OpusPacket(b"opus%d" % i, 2000 + 20 * i)

    async def texts(self) -> AsyncIterator[str]:
        for text in self._texts:
            yield text

    async def capture_still(self) -> JpegFrame | None:
        self.stills_taken += 1
        return JpegFrame(b"\xff\xd8still", 5000)


class PressableSource(GlassesSource):
    """A camera with buttons: a frame every ``period_s`` (real time) for ever, and
    ``press`` submits a ``Command`` as a tap on the glasses would."""

    def __init__(self, period_s: float = 0.05) -> None:
        self.period_s = period_s
        self._submit: Callable[[Command], None] | None = None

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(camera=True)

    def bind_controls(self, submit: Callable[[Command], None]) -> None:
        self._submit = submit

    def press(self, cmd: Command) -> None:
        assert self._submit is not None, "not bound to a controller yet"
        self._submit(cmd)

    async def frames(self) -> AsyncIterator[JpegFrame]:
        for i in itertools.count():
            await asyncio.sleep(self.period_s)
            yield JpegFrame(b"\xff\xd8frame%d" % i, 1000 + i)


class RecordingSink(SpeechSink):
    """Keeps every call; 2 bytes of packet count as one played sample at 1 kHz."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.bytes: dict[str, int] = {}

    @property
    def audible(self) -> bool:
        return True  # it stands for a player the wearer hears

    def feed(self, utterance_id: str, packet: bytes) -> None:
        self.calls.append(("feed", utterance_id, packet))
        self.bytes[utterance_id] = self.bytes.get(utterance_id, 0) + len(packet)

    def finish(self, utterance_id: str, *, interrupted: bool = False) -> UtteranceAudio:
        self.calls.append(("finish", utterance_id, interrupted))
        pcm = np.zeros(self.bytes.get(utterance_id, 0) // 2, np.int16)
        return UtteranceAudio(utterance_id, 1000, pcm, finished=True, interrupted=interrupted)

    def finish_all(self) -> None:
        self.calls.append(("finish_all", "", None))


def server_pauses(monkeypatch: object) -> list[bool]:
    """Every ``pause_watching`` a real server in this process acted on, in order: its
    ticker's ``pause`` is wrapped (the server is read, never changed)."""
    from server.session.ticker import Ticker

    seen: list[bool] = []
    real = Ticker.pause

    def pause(self: Ticker, paused: bool) -> None:
        seen.append(paused)
        real(self, paused)

    monkeypatch.setattr(Ticker, "pause", pause)  # type: ignore[attr-defined]
    return seen
