"""Every test double, each at the boundary it stands in for, on the real interfaces
(STYLE.md). Import fakes from here and nowhere else.

In order: the model (``StreamingRuntime``, ``OutOfMemoryRuntime``); agents
(``ScriptedAgent``, ``SleepyAgent``); speech out (``InstantTTS``, ``FakeTTS``); speech
in (``FakeASR``, ``ScriptedListener``); a session's task spawner (``Spawner``); then the
bridge's world: clocks, the link, the glasses, the speaker, a Companion server and the
network between them.

``FakeVLLM``, the OpenAI-compatible model server over HTTP, is re-exported from
``tests/fake_vllm.py``: it is a whole HTTP server (streaming, log-probs, a frame cache)
with request-reading helpers only the OpenAI runtime's tests use, and would double the
size of this file. Real-audio helpers (espeak-ng speech, Opus packets, tiny Whisper)
are not fakes; they live in ``tests/audio_fixtures.py``.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import heapq
import ipaddress
import itertools
import ssl
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import numpy as np
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

from mobile_bridge.clock import Clock
from mobile_bridge.link import LinkOptions
from mobile_bridge.media import OpusPacketizer
from mobile_bridge.sinks.base import SpeechSink, UtteranceAudio
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities
from server.agents.base import Agent, AgentAnswer, AgentCapabilities, DelegationRequest
from server.codes import Code
from server.errors import Recoverable
from server.runtime.base import (
    SILENCE,
    Action,
    ActionKind,
    InteractionRuntime,
    ModelSession,
    RuntimeCapabilities,
    TextSink,
)
from server.runtime.conversation import Conversation, Turn
from server.voice.asr.base import ASRBackend, ASRCapabilities
from server.voice.tts.base import PcmChunk, TTSBackend, TTSCapabilities, TTSError, VoiceOptions
from tests.fake_vllm import FakeVLLM, Reply

__all__ = [
    "BRIDGE_SAY",
    "CAMERA_AND_MIC",
    "READY",
    "FakeASR",
    "FakeCompanion",
    "FakeLink",
    "FakeSource",
    "FakeTTS",
    "FakeVLLM",
    "InstantTTS",
    "ManualClock",
    "OutOfMemoryRuntime",
    "RecordingClock",
    "RecordingSink",
    "Reply",
    "ScriptedAgent",
    "ScriptedListener",
    "SelfSignedCert",
    "SleepyAgent",
    "Spawner",
    "StreamingRuntime",
    "TcpProxy",
    "companion_server",
    "self_signed_cert",
]


# ---------------------------------------------------------------------------------------
# The model: an interaction runtime, in process. (Over HTTP: FakeVLLM, tests/fake_vllm.py.)
# ---------------------------------------------------------------------------------------


class StreamingRuntime(InteractionRuntime):
    """A model that writes its reply slowly, clause by clause, at a chosen tick —
    for checking that speech starts before the reply is finished."""

    def __init__(
        self, at: float, clauses: list[str], clause_delay_s: float = 0.3, question: str = ""
    ) -> None:
        super().__init__(RuntimeCapabilities(name="streaming-fake", streams_text=True))
        self.at = at
        self.clauses = clauses
        self.delay = clause_delay_s
        self.question = question  # non-empty: the reply is a delegation note
        self.sessions: list[_StreamingSession] = []

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        s = _StreamingSession(self)
        self.sessions.append(s)
        return s


class _StreamingSession(ModelSession):
    def __init__(self, rt: StreamingRuntime) -> None:
        super().__init__(Conversation(""))
        self.rt = rt
        self.done = False
        self.heard_log: list[tuple[str, str]] = []

    def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
        tick = turn.tick
        if self.done or tick.tick_s < self.rt.at:
            return SILENCE
        self.done = True
        # As the real runtimes do: the clause before a delegation marker (the note)
        # is never streamed.
        streamed = self.rt.clauses[:-1] if self.rt.question else self.rt.clauses
        for clause in streamed:
            time.sleep(self.rt.delay)
            if on_clause is not None:
                on_clause(clause)
        text = " ".join(self.rt.clauses)
        if self.rt.question:
            return Action(ActionKind.DELEGATE, text=text, question=self.rt.question)
        return Action(ActionKind.RESPONSE, text=text, raw=f"</response> {text}")

    def heard(self, utterance_text: str, heard_text: str) -> None:
        self.heard_log.append((utterance_text, heard_text))
        super().heard(utterance_text, heard_text)


class OutOfMemoryRuntime(InteractionRuntime):
    """A model whose GPU is full: every ``open_session`` raises ``model.memory``."""

    def __init__(self) -> None:
        super().__init__(RuntimeCapabilities(name="out-of-memory"))

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        raise Recoverable(Code.MODEL_MEMORY, "not enough GPU memory for a session's KV cache")


# ---------------------------------------------------------------------------------------
# Agents: the background workers a delegation goes to.
# ---------------------------------------------------------------------------------------


class ScriptedAgent(Agent):
    """An agent that answers from a script; each question waits until ``gate`` is set.

    A scripted exception is raised as it is (the base turns it into an ``AgentError``);
    a question not in the script gets "Answer to QUESTION.".
    """

    def __init__(self, answers: dict[str, AgentAnswer | Exception] | None = None) -> None:
        super().__init__(AgentCapabilities(name="scripted"))
        self.answers = answers or {}
        self.gate = asyncio.Event()
        self.gate.set()
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        self.started.append(request.question)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(request.question)
            raise
        answer = self.answers.get(request.question, AgentAnswer(f"Answer to {request.question}."))
        if isinstance(answer, Exception):
            raise answer
        return answer


class SleepyAgent(Agent):
    """An agent that answers after ``delay_s`` of (virtual, under the session harness) time."""

    def __init__(
        self, delay_s: float, answer: str = "It is a tin of tomatoes.", *, urgent: bool = False
    ) -> None:
        super().__init__(AgentCapabilities(name="sleepy"))
        self.delay_s = delay_s
        self.reply = answer
        self.urgent = urgent

    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        await asyncio.sleep(self.delay_s)
        return AgentAnswer(self.reply, urgent=self.urgent)


# ---------------------------------------------------------------------------------------
# Speech out: TTS backends.
# ---------------------------------------------------------------------------------------


class InstantTTS(TTSBackend):
    """A TTS backend that costs no time: silence, a quarter second a word, per clause.

    Non-blocking, so it runs no thread (the session harness's clock never waits on it).
    """

    SECONDS_PER_WORD = 0.25

    def __init__(self, sample_rate: int = 16000) -> None:
        super().__init__(
            TTSCapabilities(name="instant", offline=True, sample_rate=sample_rate, blocking=False)
        )
        self.spoken: list[str] = []

    async def _synthesize_async(self, clause: str, options: VoiceOptions) -> PcmChunk:
        self.spoken.append(clause)
        n = int(len(clause.split()) * self.SECONDS_PER_WORD * self.capabilities.sample_rate)
        return PcmChunk(np.zeros(n, dtype=np.int16), self.capabilities.sample_rate, clause)

    def describe(self) -> str:
        return "instant (silence, for tests)"


class FakeTTS(TTSBackend):
    """A TTS backend that speaks a quiet tone per clause and fails on demand.

    ``fail_at_clause``: the clause index that raises ``TTSError`` (0 = before any
    audio); ``hang``: never produce audio (a stuck network voice); ``broken``: fail
    every call until ``broken`` is set back to False; ``blocking``: synthesise in the
    backend's thread, as local engines do (``hang`` is for the async path only).
    """

    def __init__(
        self,
        name: str,
        *,
        fail_at_clause: int | None = None,
        hang: bool = False,
        broken: bool = False,
        blocking: bool = False,
    ) -> None:
        super().__init__(
            TTSCapabilities(name=name, offline=True, sample_rate=16000, blocking=blocking)
        )
        self.fail_at_clause = fail_at_clause
        self.hang = hang
        self.broken = broken
        self.calls: list[str] = []
        self._clause = 0

    async def stream(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        self._clause = 0
        async for chunk in super().stream(text, options):
            yield chunk

    async def _synthesize_async(self, clause: str, options: VoiceOptions) -> PcmChunk:
        chunk = self._tone(clause)
        if self.hang:
            await asyncio.Event().wait()
        return chunk

    def _synthesize(self, clause: str, options: VoiceOptions) -> Iterator[PcmChunk]:
        yield self._tone(clause)

    def _tone(self, clause: str) -> PcmChunk:
        self.calls.append(clause)
        index, self._clause = self._clause, self._clause + 1
        if self.broken or index == self.fail_at_clause:
            raise TTSError(f"{self.name} broke at clause {index}")
        t = np.arange(1600) / 16000
        return PcmChunk((np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16), 16000, clause)

    def describe(self) -> str:
        return f"fake {self.name}"


# ---------------------------------------------------------------------------------------
# Speech in: the ASR backend, and a whole listener.
# ---------------------------------------------------------------------------------------


class FakeASR(ASRBackend):
    """An ASR backend that hears ``text`` in every call; ``gate`` (a threading.Event)
    holds each call, and it counts how many run at once and on which threads."""

    def __init__(self, text: str = "hello there", gate: threading.Event | None = None) -> None:
        super().__init__(ASRCapabilities(name="fake-asr"))
        self.text = text
        self.gate = gate
        self.calls: list[tuple[int, bool]] = []  # (samples, partial)
        self.threads: list[str] = []
        self.entered = threading.Event()  # set when a call starts
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def _transcribe(self, pcm16k: np.ndarray, partial: bool, language: str | None) -> str:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        self.calls.append((pcm16k.size, partial))
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        try:
            if self.gate is not None:
                self.gate.wait(5)
            return self.text
        finally:
            with self._lock:
                self.running -= 1

    def describe(self) -> str:
        return "fake asr"


class ScriptedListener:
    """A session's audio listener whose 'audio' packets say what the user did.

    ``b"speech"`` is speech onset (``SpeechStarted``), ``b"final:TEXT"`` a final
    transcript. It records what the speaker told its echo guard.
    """

    def __init__(self, emit: Any) -> None:
        self._emit = emit
        self.heard_murmur: list[str] = []  # speech_started texts
        self.stopped = 0
        self.closed = False
        self._n = 0

    @classmethod
    def factory(cls, made: list[ScriptedListener]) -> Any:
        def make(fmt: Any, emit: Any, **_: Any) -> ScriptedListener:
            made.append(cls(emit))
            return made[-1]

        return make

    async def feed(self, packet: bytes, capture_time_ms: int) -> None:
        from server.voice.listener import SpeechStarted, TranscriptFinal

        if packet == b"speech":
            self._n += 1
            await self._emit(SpeechStarted(capture_time_ms, capture_time_ms, self._n))
        elif packet.startswith(b"final:"):
            await self._emit(TranscriptFinal(packet[6:].decode(), self._n))

    def speech_started(self, text: str) -> None:
        self.heard_murmur.append(text)

    def speech_stopped(self) -> None:
        self.stopped += 1

    async def close(self) -> None:
        self.closed = True


# ---------------------------------------------------------------------------------------
# A session's task spawner.
# ---------------------------------------------------------------------------------------


class Spawner:
    """A session's ``spawn(coro, name)`` for tests: named tasks on the running loop,
    kept so a test can check that none of them outlives its owner's ``close()``."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def __call__(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.append(task)
        return task

    @property
    def names(self) -> list[str]:
        return [t.get_name() for t in self.tasks]

    @property
    def running(self) -> list[str]:
        """Names of the spawned tasks that have not finished."""
        return [t.get_name() for t in self.tasks if not t.done()]


# ---------------------------------------------------------------------------------------
# Bridge fakes: the glasses, the network, the speaker, and a Companion server on loopback.
# ---------------------------------------------------------------------------------------

T = TypeVar("T")
UNIX0 = 1_700_000_000.0
READY = pb.ServerEvent(session_ready=pb.SessionReady(session_id="s1", model="fake", tick_hz=1))
CAMERA_AND_MIC = SourceCapabilities(camera=True, microphone=True, speaker=True, still_capture=True)
BRIDGE_SAY = "Door ahead, slightly right."


class ManualClock(Clock):
    """Virtual time: ``run`` lets every task settle, then wakes the earliest sleeper."""

    SETTLE_ROUNDS = 50

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return UNIX0 + self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), fut))
        await fut

    async def run(self, aw: Awaitable[T]) -> T:
        task = asyncio.ensure_future(aw)
        idle = 0
        while not task.done():
            for _ in range(self.SETTLE_ROUNDS):
                await asyncio.sleep(0)  # a yield, not a wait: every runnable task moves on
            if task.done() or self._wake_next():
                idle = 0
                continue
            idle += 1  # nobody sleeps on the clock: a worker thread is still busy
            assert idle < 20_000, "deadlock: the task waits on something that never comes"
        return task.result()

    def _wake_next(self) -> bool:
        while self._sleepers:
            due, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():  # cancelled timers stay in the heap until here
                self.now = max(self.now, due)
                fut.set_result(None)
                return True
        return False


class RecordingClock(Clock):
    """Real time, except that sleeps are recorded and last ``scale`` × as long."""

    def __init__(self, scale: float = 0.0) -> None:
        self.scale = scale
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(seconds * self.scale)


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


class RecordingSink(SpeechSink):
    """Keeps every call; 2 bytes of packet count as one played sample at 1 kHz."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.bytes: dict[str, int] = {}

    def feed(self, utterance_id: str, packet: bytes) -> None:
        self.calls.append(("feed", utterance_id, packet))
        self.bytes[utterance_id] = self.bytes.get(utterance_id, 0) + len(packet)

    def finish(self, utterance_id: str, *, interrupted: bool = False) -> UtteranceAudio:
        self.calls.append(("finish", utterance_id, interrupted))
        pcm = np.zeros(self.bytes.get(utterance_id, 0) // 2, np.int16)
        return UtteranceAudio(utterance_id, 1000, pcm, finished=True, interrupted=interrupted)

    def finish_all(self) -> None:
        self.calls.append(("finish_all", "", None))


def _tone_packets(rate: int, n: int) -> list[bytes]:
    t = np.arange(rate * n * 20 // 1000) / rate
    pcm = (np.sin(2 * np.pi * 330 * t) * 9000).astype(np.int16)
    return list(OpusPacketizer(rate).packets(pcm))


@dataclass
class FakeCompanion(pb_grpc.CompanionServicer):
    """A Companion server's behaviour at the wire, with knobs for what goes wrong.

    Sessions resume as the real server's do: a known resume token gets its session
    back; an unknown one (``name`` differs after a "restart") gets a fresh session and
    one ``session.resume_unknown`` Notice. On the first frame of a call it speaks: a
    Tick, a Speech and 3 Opus packets, the last flagged.
    """

    token: str | None = None  # required bearer token (None: any)
    pair_code: str = "123456"
    name: str = ""  # prefixes session ids and resume tokens: a restarted server differs
    drop_after_frames: int | None = None  # first call: abort UNAVAILABLE after this many frames
    go_away_first_call: bool = False  # end the first call with GoAway after SessionReady
    refuse_calls: frozenset[int] = frozenset()  # these calls (1-based) get UNAVAILABLE at once
    cut: bool = False  # barge in: StopSpeaking after two packets, no `last`
    calls: list[list[pb.ClientEvent]] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    pairs: list[pb.PairRequest] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)  # resume token → session id

    async def Pair(
        self, request: pb.PairRequest, context: grpc.aio.ServicerContext
    ) -> pb.PairResponse:
        self.pairs.append(request)
        if request.code != self.pair_code:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "wrong pairing code")
        return pb.PairResponse(device_token="tok-" + request.device_name, device_id="dev-1")

    async def Converse(self, request_iterator, context: grpc.aio.ServicerContext) -> None:  # type: ignore[no-untyped-def,override]
        md = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        self.metadata.append(md)
        if self.token is not None and md.get("authorization") != f"Bearer {self.token}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the device token is not valid")
        seen: list[pb.ClientEvent] = []
        self.calls.append(seen)
        n = len(self.calls)
        first = await context.read()
        assert first is not grpc.aio.EOF
        seen.append(first)
        if n in self.refuse_calls:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "backend restarting")
        if first.WhichOneof("event") != "session_start":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "send session_start first")
        await self._ready(first.session_start.resume_token, context)
        if self.go_away_first_call and n == 1:
            await context.write(
                pb.ServerEvent(go_away=pb.GoAway(reconnect_after_ms=50, reason="upgrading"))
            )
            return
        drop = self.drop_after_frames if n == 1 else None
        frames, spoken = 0, False
        if drop == 0:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "backend restarting")
        while (msg := await context.read()) is not grpc.aio.EOF:
            seen.append(msg)
            if msg.WhichOneof("event") != "video_frame":
                continue
            frames += 1
            if frames == drop:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "network dropped")
            if not spoken:
                spoken = True
                await self._speak(context)

    def frames(self) -> list[tuple[int, int]]:
        """(call number, frame seq) of every frame received, in order."""
        return [
            (n, e.video_frame.seq)
            for n, call in enumerate(self.calls, 1)
            for e in call
            if e.HasField("video_frame")
        ]

    async def _ready(self, resume_token: str, context: grpc.aio.ServicerContext) -> None:
        session_id = self.sessions.get(resume_token) if resume_token else None
        if session_id is None:
            k = len(set(self.sessions.values())) + 1
            session_id = f"{self.name}s{k}"
            resume_token, unknown = f"{self.name}resume-{k}", bool(resume_token)
            self.sessions[resume_token] = session_id
        else:
            unknown = False
        await context.write(
            pb.ServerEvent(
                session_ready=pb.SessionReady(
                    session_id=session_id, resume_token=resume_token, model="fake", tick_hz=1.0
                )
            )
        )
        if unknown:
            await context.write(
                pb.ServerEvent(
                    notice=pb.Notice(
                        code="session.resume_unknown",
                        message="the resume token is not known to this server",
                        component="session",
                    )
                )
            )

    async def _speak(self, context: grpc.aio.ServicerContext) -> None:
        await context.write(
            pb.ServerEvent(
                tick=pb.Tick(
                    tick_s=0.0,
                    action="response",
                    text=BRIDGE_SAY,
                    frame_age_ms=12.0,
                    timings=[pb.StageTiming(stage="model", ms=40.0)],
                )
            )
        )
        await context.write(
            pb.ServerEvent(
                speech=pb.Speech(
                    utterance_id="u1", text=BRIDGE_SAY, kind=pb.SPEECH_KIND_ALERT, priority=5
                )
            )
        )
        for seq, packet in enumerate(_tone_packets(24000, 3)):
            await asyncio.sleep(0.01)
            if self.cut and seq == 2:
                await context.write(
                    pb.ServerEvent(
                        stop_speaking=pb.StopSpeaking(utterance_ids=["u1"], reason="barge_in")
                    )
                )
                return
            await context.write(
                pb.ServerEvent(audio_out=pb.AudioOut(utterance_id="u1", seq=seq, data=packet))
            )
        await context.write(
            pb.ServerEvent(audio_out=pb.AudioOut(utterance_id="u1", seq=3, last=True))
        )


@dataclass(frozen=True)
class SelfSignedCert:
    """A certificate like a Murmur server's own (SAN ``murmur-server``), made in the test."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(self.cert_pem.decode())).hexdigest()


def self_signed_cert() -> SelfSignedCert:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "murmur-server")])
    now = datetime.datetime.now(datetime.UTC)
    sans = [
        x509.DNSName("murmur-server"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return SelfSignedCert(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@asynccontextmanager
async def companion_server(
    servicer: pb_grpc.CompanionServicer, *, tls: SelfSignedCert | None = None
) -> AsyncIterator[str]:
    """A real ``grpc.aio`` server on a loopback port; its address."""
    server = grpc.aio.server()
    pb_grpc.add_CompanionServicer_to_server(servicer, server)
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
        port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


class TcpProxy:
    """A loopback TCP relay between bridge and server that can drop the network:
    ``cut()`` resets every connection and refuses new ones until ``mend()``, which
    may point it at another server (a restart elsewhere)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        await self.mend()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cut()

    async def mend(self, upstream: str | None = None) -> None:
        self.upstream = upstream or self.upstream
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._live):
            w.transport.abort()
        for t in list(self._pipes):
            t.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        host, port = self.upstream.rsplit(":", 1)
        try:
            up_r, up_w = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.transport.abort()
            return
        self._live.update((writer, up_w))
        for src, dst in ((reader, up_w), (up_r, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            self._live.discard(dst)
            dst.transport.abort()
