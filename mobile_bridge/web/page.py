"""The page as a glasses source and a speech sink, for an unchanged ``BridgeSession``.

``PageSource`` turns what the page sends (JPEG frames, a still when asked, PCM16 from
its AudioWorklet) into the session's frames and Opus packets, using the bridge's own
``OpusPacketizer``. ``PageSink`` decodes the server's Opus with the bridge's
``OpusDecoder`` and hands PCM16 to the page's player; the page plays it in real time,
so it reports what was heard itself (``take_reports``). Both talk to the page through
a ``PagePort``, which drops what it cannot deliver while the page is away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import numpy as np
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.media import MediaError, OpusDecoder, OpusPacketizer
from mobile_bridge.sinks.base import EventObserver, SpeechSink, UtteranceAudio
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities
from mobile_bridge.web.wire import MIC_RATE_HZ, speech_packet

__all__ = ["PageObserver", "PagePort", "PageSink", "PageSource"]

STILL_TIMEOUT_S = 5.0
AUDIO_QUEUE = 250  # 5 s of 20 ms packets; beyond that the oldest go (and are counted)
LOST_KEPT = 256  # utterances cut by a lost page, remembered so their tails are not sent
CUE_NAMES = {
    pb.CUE_KIND_HAZARD: "hazard",
    pb.CUE_KIND_ATTENTION: "attention",
    pb.CUE_KIND_THINKING: "thinking",
    pb.CUE_KIND_DONE: "done",
}
SPEECH_KINDS = {
    pb.SPEECH_KIND_ALERT: "alert",
    pb.SPEECH_KIND_ANSWER: "answer",
    pb.SPEECH_KIND_NARRATION: "narration",
    pb.SPEECH_KIND_DELEGATION_NOTE: "note",
    pb.SPEECH_KIND_DELEGATION_RESULT: "result",
    pb.SPEECH_KIND_SYSTEM: "system",
}


class PagePort(Protocol):
    """The page's socket as the session sees it: sends never block."""

    def send_json(self, message: dict[str, Any]) -> None: ...

    def send_bytes(self, data: bytes) -> None: ...


_END = object()


class PageSource(GlassesSource):
    """The phone's camera and microphone, as the page captures them."""

    def __init__(self, port: PagePort, caps: SourceCapabilities) -> None:
        self._port = port
        self._caps = caps
        # Video is latest-only: a frame that waits is replaced by a newer one (the
        # second place is for the end marker).
        self._frames: asyncio.Queue[object] = asyncio.Queue(2)
        self._audio: asyncio.Queue[object] = asyncio.Queue(AUDIO_QUEUE)
        self._packetizer = OpusPacketizer(MIC_RATE_HZ, caps.mic_frame_ms)
        self._pcm = np.zeros(0, np.int16)
        self._pcm_time_ms = 0
        self._still: asyncio.Future[JpegFrame] | None = None
        self.frames_in = 0
        self.frames_replaced = 0
        self.audio_dropped = 0
        self.ended = False

    @property
    def capabilities(self) -> SourceCapabilities:
        return self._caps

    # ------------------------------------------------------------ from the page

    def put_frame(self, jpeg: bytes, capture_time_ms: int) -> None:
        if self.ended:
            return
        self.frames_in += 1
        if not self._frames.empty():
            self._frames.get_nowait()
            self.frames_replaced += 1
        self._frames.put_nowait(JpegFrame(jpeg, capture_time_ms))

    def put_still(self, jpeg: bytes, capture_time_ms: int) -> None:
        if self._still is not None and not self._still.done():
            self._still.set_result(JpegFrame(jpeg, capture_time_ms))
        else:  # a still nobody waits for still shows the scene
            self.put_frame(jpeg, capture_time_ms)

    def put_pcm(self, pcm16le: bytes, capture_time_ms: int) -> None:
        """Microphone samples; cut into ``mic_frame_ms`` Opus packets (encoding a 20 ms
        frame takes ~0.2 ms, so it runs here, on the loop)."""
        if self.ended or not pcm16le:
            return
        if self._pcm.size == 0:
            self._pcm_time_ms = capture_time_ms
        self._pcm = np.concatenate([self._pcm, np.frombuffer(pcm16le, "<i2").astype(np.int16)])
        n = self._packetizer.frame_samples
        while self._pcm.size >= n:
            packet = OpusPacket(self._packetizer.encode_frame(self._pcm[:n]), self._pcm_time_ms)
            self._pcm = self._pcm[n:]
            self._pcm_time_ms += self._caps.mic_frame_ms
            if self._audio.full():
                self._audio.get_nowait()
                self.audio_dropped += 1
            self._audio.put_nowait(packet)

    def end(self) -> None:
        """The wearer pressed stop, or the page did not come back: the walk is over."""
        if self.ended:
            return
        self.ended = True
        if self._audio.full():
            self._audio.get_nowait()
            self.audio_dropped += 1
        self._audio.put_nowait(_END)
        self._frames.put_nowait(_END)
        if self._still is not None and not self._still.done():
            self._still.cancel()

    # ------------------------------------------------------------ to the session

    async def frames(self) -> AsyncIterator[JpegFrame]:
        while (item := await self._frames.get()) is not _END:
            assert isinstance(item, JpegFrame)
            yield item

    async def audio(self) -> AsyncIterator[OpusPacket]:
        while (item := await self._audio.get()) is not _END:
            assert isinstance(item, OpusPacket)
            yield item

    async def capture_still(self) -> JpegFrame | None:
        if self.ended:
            return None
        self._still = asyncio.get_running_loop().create_future()
        self._port.send_json({"type": "still"})
        try:
            return await asyncio.wait_for(self._still, STILL_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            if self.ended:
                return None
            raise MediaError(f"the page sent no still within {STILL_TIMEOUT_S:g} s") from None


class PageSink(SpeechSink):
    """Speech → the page's player; what the page reports it played → the server."""

    def __init__(self, port: PagePort, rate_hz: int) -> None:
        self._port = port
        self._rate_hz = rate_hz
        self._decoder = OpusDecoder(rate_hz)
        self._report: Callable[[pb.PlaybackReport], None] | None = None
        self._samples: dict[str, int] = {}
        self._unreported: set[str] = set()  # sent to the page, no report back yet
        # Reported cut when the page went away: the rest of it is not sent to the page
        # that comes back (its player dropped the head; a tail alone is no utterance).
        self._lost: dict[str, None] = {}
        self.bad_packets = 0

    @property
    def audible(self) -> bool:
        return True  # the page plays it and reports what it played

    def feed(self, utterance_id: str, packet: bytes) -> None:
        if not packet or utterance_id in self._lost:
            return
        try:
            pcm = self._decoder.decode(packet)
        except MediaError:
            self.bad_packets += 1
            return
        self._samples[utterance_id] = self._samples.get(utterance_id, 0) + pcm.size
        self._unreported.add(utterance_id)
        self._port.send_bytes(speech_packet(utterance_id, pcm.astype("<i2").tobytes()))

    def finish(self, utterance_id: str, *, interrupted: bool = False) -> UtteranceAudio:
        if utterance_id in self._lost:
            pass  # reported as cut when the page went away
        elif utterance_id in self._unreported:
            self._port.send_json(
                {"type": "cut" if interrupted else "end", "utterance": utterance_id}
            )
        elif interrupted and utterance_id not in self._samples:
            # Cut before any of it reached the page: nothing was heard.
            self._samples[utterance_id] = 0
            self._unreported.add(utterance_id)
            self.played(utterance_id, 0, finished=False)
        return UtteranceAudio(utterance_id, self._rate_hz, finished=not interrupted)

    def finish_all(self) -> None:
        for uid in list(self._unreported):
            self._port.send_json({"type": "cut", "utterance": uid})
            self.played(uid, 0, finished=False)  # the stream is gone: nothing more is heard

    def played(self, utterance_id: str, played_ms: int, *, finished: bool) -> None:
        """The page's word on an utterance: it ended (all played) or was cut."""
        if utterance_id not in self._unreported:
            return
        self._unreported.discard(utterance_id)
        if self._report is not None:
            self._report(
                pb.PlaybackReport(
                    utterance_id=utterance_id,
                    played_ms=max(0, played_ms),
                    finished=finished,
                    interrupted=not finished,
                )
            )

    def page_lost(self) -> None:
        """The page went away mid-speech: what it had not reported counts as cut there."""
        for uid in list(self._unreported):
            self.played(uid, 0, finished=False)
            self._lost[uid] = None
        while len(self._lost) > LOST_KEPT:
            del self._lost[next(iter(self._lost))]

    def cue(self, cue: pb.Cue) -> None:
        self._port.send_json(
            {
                "type": "cue",
                "kind": CUE_NAMES.get(cue.kind, "attention"),
                "intensity": cue.intensity,
                "clock": cue.clock_direction,
            }
        )

    def take_reports(self, send: Callable[[pb.PlaybackReport], None]) -> bool:
        self._report = send
        return True

    @property
    def playing(self) -> bool:
        return bool(self._unreported)


class PageObserver(EventObserver):
    """What the wearer sees on the page: captions, transcripts, status, notices."""

    def __init__(self, port: PagePort) -> None:
        self._port = port
        self.ready: pb.SessionReady | None = None
        self.last_frame_sent_ms = 0

    def received(self, event: pb.ServerEvent, at: float) -> None:
        which = event.WhichOneof("event")
        send = self._port.send_json
        if which == "session_ready":
            r = event.session_ready
            self.ready = r
            send(
                {
                    "type": "ready",
                    "tick_hz": r.tick_hz,
                    "motion_hz": r.motion_hz,  # > 0: the server asks for device motion
                    "model": r.model,
                    "session": r.session_id,
                }
            )
        elif which == "speech":
            s = event.speech
            kind = SPEECH_KINDS.get(s.kind, "answer")
            send({"type": "speech", "utterance": s.utterance_id, "text": s.text, "kind": kind})
        elif which == "transcript":
            t = event.transcript
            send({"type": "transcript", "text": t.text, "final": t.final})
        elif which == "tick":
            t = event.tick
            send({"type": "tick", "action": t.action, "frame_age_ms": t.frame_age_ms})
        elif which == "notice":
            send({"type": "notice", "code": event.notice.code, "message": event.notice.message})
        elif which == "delegation_update":
            d = event.delegation_update
            send({"type": "delegation", "question": d.question, "summary": d.summary})

    def sent(self, event: pb.ClientEvent, at: float) -> None:
        if event.WhichOneof("event") == "video_frame":
            self.last_frame_sent_ms = int(time.time() * 1000)
