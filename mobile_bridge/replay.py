"""Replay a recorded walk as if the glasses were live.

Frames go out at ``fps`` and audio as 20 ms Opus packets, both paced against the
wall clock from the moment the server says ``SessionReady`` (the server labels
ticks with real elapsed seconds, so ``speed`` other than 1.0 is for quick tests
only). Meanwhile the server's events are printed and collected into a
``ReplayReport``: captions, audio per utterance (decoded, optionally written to
WAVs), the tick trace, notices, transcripts, delegations and barge-ins.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.link import CLIENT_NAME, BridgeLink, LinkError, LinkOptions
from mobile_bridge.media import AudioSink, OpusPacketizer, iter_video_frames, read_wav_pcm16

__all__ = [
    "MODES",
    "ReplayOptions",
    "ReplayReport",
    "UtteranceLatency",
    "kind_name",
    "run_replay",
]

MODES = {
    "general": pb.MODE_GENERAL,
    "blind": pb.MODE_BLIND,
    "navigation": pb.MODE_NAVIGATION,
    "shopping": pb.MODE_SHOPPING,
}
AUDIO_IN_HZ = 16000
FRAME_MS = 20


def kind_name(kind: int) -> str:
    """``SPEECH_KIND_ALERT`` → ``alert``."""
    return pb.SpeechKind.Name(kind).removeprefix("SPEECH_KIND_").lower()


@dataclass
class ReplayOptions:
    """What to replay, to which server, and how."""

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


@dataclass
class UtteranceLatency:
    """How fast one utterance reached the bridge's speaker.

    ``speech_to_audio_ms``: its first ``Speech`` caption → its first audio packet
    (TTS and transport, as the bridge sees them). ``decision_to_audio_ms``: the
    arrival of the ``Tick`` that decided it (or the caption, whichever came first)
    → first audio, only when a trace tick matched. ``tick_ms``: the server's own
    per-stage timings of that tick, summed; ``model_ms`` its model stage.
    """

    utterance_id: str
    speech_to_audio_ms: float | None
    decision_to_audio_ms: float | None = None
    tick_s: float | None = None
    tick_ms: float | None = None
    model_ms: float | None = None


@dataclass
class ReplayReport:
    """Everything the server said during a replay."""

    session_ready: pb.SessionReady | None = None
    ticks: list[pb.Tick] = field(default_factory=list)
    speeches: list[tuple[str, str, int]] = field(
        default_factory=list
    )  # (utterance id, text, pb.SpeechKind)
    audio: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)  # id → (int16 PCM, Hz)
    wavs: dict[str, Path] = field(default_factory=dict)
    notices: list[pb.Notice] = field(default_factory=list)
    transcripts: list[pb.Transcript] = field(default_factory=list)
    delegations: list[pb.DelegationUpdate] = field(default_factory=list)
    stop_speaking: list[str] = field(default_factory=list)
    cues: list[pb.Cue] = field(default_factory=list)
    still_requests: int = 0
    latencies: list[UtteranceLatency] = field(default_factory=list)
    frames_sent: int = 0
    audio_packets_sent: int = 0
    texts_sent: int = 0
    reconnects: int = 0
    wall_s: float = 0.0

    @property
    def utterance_ids(self) -> list[str]:
        """Utterances in the order their first caption arrived."""
        return list(dict.fromkeys(uid for uid, _, _ in self.speeches))

    def latency_summary(self) -> dict[str, float]:
        """p50/max in ms of each latency measure that has samples."""
        out: dict[str, float] = {}
        for name in ("speech_to_audio_ms", "decision_to_audio_ms"):
            xs = [v for lat in self.latencies if (v := getattr(lat, name)) is not None]
            if xs:
                out[f"{name}_p50"] = statistics.median(xs)
                out[f"{name}_max"] = max(xs)
        return out


@dataclass
class _Arrivals:
    """Monotonic arrival times, for matching and latency."""

    first_speech: dict[str, float] = field(default_factory=dict)
    first_audio: dict[str, float] = field(default_factory=dict)
    speech_text: dict[str, str] = field(default_factory=dict)
    ticks: list[tuple[float, pb.Tick]] = field(default_factory=list)


def _session_start(opts: ReplayOptions) -> pb.SessionStart:
    if opts.mode not in MODES:
        raise ValueError(f"unknown mode {opts.mode!r}; choose one of {', '.join(MODES)}")
    return pb.SessionStart(
        mode=MODES[opts.mode],
        language=opts.language,
        audio_in=pb.AudioFormat(
            encoding=pb.AUDIO_ENCODING_OPUS, sample_rate_hz=AUDIO_IN_HZ, frame_ms=FRAME_MS
        ),
        audio_out=pb.AudioFormat(
            encoding=pb.AUDIO_ENCODING_OPUS, sample_rate_hz=opts.out_rate_hz, frame_ms=FRAME_MS
        ),
        video_encoding=pb.VIDEO_ENCODING_JPEG,
        capabilities=pb.GlassesCapabilities(speaker=True),
        instruction_override=opts.instruction_override,
        want_trace=opts.want_trace,
        client_name=CLIENT_NAME,
    )


def _audio_packets(opts: ReplayOptions) -> list[bytes]:
    if opts.audio is None:
        return []
    pcm = read_wav_pcm16(opts.audio, AUDIO_IN_HZ)
    return list(OpusPacketizer(AUDIO_IN_HZ, FRAME_MS).packets(pcm))


class _Replay:
    """One run: the senders pace media out, the receiver collects what comes back."""

    def __init__(
        self, opts: ReplayOptions, frames: Iterator[tuple[float, bytes]], packets: list[bytes]
    ) -> None:
        self.opts = opts
        self.frames = frames
        self.packets = packets
        self.report = ReplayReport()
        self.arrivals = _Arrivals()
        self.link = BridgeLink(opts.link, _session_start(opts), on_status=self._say)
        self.sink = AudioSink(opts.out_rate_hz, out_dir=opts.out_dir, play=opts.play)
        self.ready = asyncio.Event()
        self.ended = asyncio.Event()
        self.open_utterances: set[str] = set()
        self.last_jpeg: bytes | None = None
        self.t0_mono = 0.0
        self.t0_unix = 0.0

    def _say(self, line: str) -> None:
        if self.opts.echo is not None:
            self.opts.echo(line)

    def _media_t(self) -> float:
        return (time.monotonic() - self.t0_mono) * self.opts.speed

    async def _at(self, media_t: float) -> int:
        """Sleep until ``media_t`` on the wall clock; its capture time in unix ms."""
        wall = media_t / self.opts.speed
        delay = self.t0_mono + wall - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return int((self.t0_unix + wall) * 1000)

    # ---------------------------------------------------------------- senders

    async def send_frames(self) -> None:
        seq = 0
        while True:
            # Decoding and JPEG encoding block: do them off the loop, ahead of the send time.
            item = await asyncio.to_thread(next, self.frames, None)
            if item is None:
                return
            t, jpeg = item
            capture_ms = await self._at(t)
            self.last_jpeg = jpeg
            await self.link.send(
                pb.ClientEvent(
                    video_frame=pb.VideoFrame(
                        seq=seq,
                        capture_time_ms=capture_ms,
                        encoding=pb.VIDEO_ENCODING_JPEG,
                        data=jpeg,
                    )
                )
            )
            seq += 1
            self.report.frames_sent += 1

    async def send_audio(self) -> None:
        for seq, packet in enumerate(self.packets):
            capture_ms = await self._at(self.opts.audio_at_s + seq * FRAME_MS / 1000)
            await self.link.send(
                pb.ClientEvent(
                    audio_chunk=pb.AudioChunk(seq=seq, capture_time_ms=capture_ms, data=packet)
                )
            )
            self.report.audio_packets_sent += 1

    async def send_texts(self) -> None:
        for t, text in sorted(self.opts.texts):
            await self._at(t)
            await self.link.send(pb.ClientEvent(text_input=pb.TextInput(text=text)))
            self.report.texts_sent += 1
            self._say(f"[{t:6.1f}s] you typed: {text}")

    # ---------------------------------------------------------------- receiver

    async def receive(self) -> None:
        try:
            async for ev in self.link.events():
                self._on_event(ev)
        finally:
            self.ended.set()

    def _on_event(self, ev: pb.ServerEvent) -> None:
        now = time.monotonic()
        r, stamp = self.report, f"[{self._media_t():6.1f}s]" if self.ready.is_set() else "[  --  ]"
        match ev.WhichOneof("event"):
            case "session_ready":
                if r.session_ready is None:
                    self._say(
                        f"session {ev.session_ready.session_id} ready: model "
                        f"{ev.session_ready.model or '?'}, {ev.session_ready.tick_hz:g} ticks/s"
                    )
                else:
                    self._say(f"session resumed as {ev.session_ready.session_id}")
                r.session_ready = ev.session_ready
                if not self.ready.is_set():
                    # The server's session clock starts now; the media timeline maps onto it.
                    self.t0_mono, self.t0_unix = now, time.time()
                    self.ready.set()
            case "speech":
                s = ev.speech
                r.speeches.append((s.utterance_id, s.text, s.kind))
                self.arrivals.first_speech.setdefault(s.utterance_id, now)
                self.arrivals.speech_text.setdefault(s.utterance_id, s.text)
                self.open_utterances.add(s.utterance_id)
                self._say(f"{stamp} {kind_name(s.kind)}: {s.text}")
            case "audio_out":
                a = ev.audio_out
                self.arrivals.first_audio.setdefault(a.utterance_id, now)
                self.open_utterances.add(a.utterance_id)
                self.sink.feed(a.utterance_id, a.data)
                if a.last:
                    self._finish(a.utterance_id, interrupted=False)
            case "stop_speaking":
                r.stop_speaking.extend(ev.stop_speaking.utterance_ids)
                self._say(f"{stamp} (stop speaking: {ev.stop_speaking.reason or 'no reason'})")
                for uid in ev.stop_speaking.utterance_ids:
                    if uid in self.open_utterances:
                        self._finish(uid, interrupted=True)
            case "cue":
                r.cues.append(ev.cue)
            case "transcript":
                r.transcripts.append(ev.transcript)
                if ev.transcript.final:
                    self._say(f"{stamp} heard: {ev.transcript.text}")
            case "delegation_update":
                d = ev.delegation_update
                r.delegations.append(d)
                state = pb.DelegationState.Name(d.state).removeprefix("DELEGATION_STATE_").lower()
                self._say(f"{stamp} delegation {d.task_id} {state}: {d.summary or d.question}")
            case "still_request":
                r.still_requests += 1
                self._answer_still()
            case "tick":
                r.ticks.append(ev.tick)
                self.arrivals.ticks.append((now, ev.tick))
                if (
                    self.opts.want_trace
                    and self.opts.echo is not None
                    and ev.tick.action != "silence"
                ):
                    self._say(
                        f"{stamp} tick {ev.tick.tick_s:g}: {ev.tick.action} {_timings(ev.tick)}"
                    )
            case "notice":
                r.notices.append(ev.notice)
                self._say(
                    f"{stamp} notice [{ev.notice.component}] {ev.notice.code}: {ev.notice.message}"
                )
            case "go_away":
                pass  # the link reconnects and says so
            case _:
                pass  # a newer server's event; ignored like the server ignores ours

    def _finish(self, uid: str, *, interrupted: bool) -> None:
        self.open_utterances.discard(uid)
        u = self.sink.finish(uid, interrupted=interrupted)
        self.report.audio[uid] = (u.pcm, u.sample_rate_hz)
        if u.wav_path is not None:
            self.report.wavs[uid] = u.wav_path
        report = pb.PlaybackReport(
            utterance_id=uid,
            played_ms=u.duration_ms,
            finished=not interrupted,
            interrupted=interrupted,
        )
        # The receiver must never block on the outbox (it is what drains the stream).
        try:
            self.link.outbox.put_nowait(pb.ClientEvent(playback_report=report))
        except asyncio.QueueFull:
            self._say(f"(outbox full; playback report for {uid} dropped)")

    def _answer_still(self) -> None:
        if self.last_jpeg is None:
            return
        frame = pb.VideoFrame(
            seq=0,
            capture_time_ms=int(time.time() * 1000),
            encoding=pb.VIDEO_ENCODING_JPEG,
            data=self.last_jpeg,
            high_res=True,
        )
        try:
            self.link.outbox.put_nowait(pb.ClientEvent(video_frame=frame))
        except asyncio.QueueFull:
            pass

    # ---------------------------------------------------------------- the run

    async def run(self) -> ReplayReport:
        started = time.monotonic()
        receiver = asyncio.create_task(self.receive())
        senders: asyncio.Future[Any] | None = None
        try:
            await self._wait_ready(receiver)
            sending: asyncio.Future[Any] = asyncio.gather(
                self.send_frames(), self.send_audio(), self.send_texts()
            )
            senders = sending
            pending: list[asyncio.Future[Any]] = [sending, receiver]
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if not receiver.done():
                await sending  # re-raises a sender's error
                await self._linger(receiver)
                await self.link.close()
                done, _ = await asyncio.wait([receiver], timeout=5.0)
                if not done:
                    self._say(
                        "(the server did not end the session after the bridge finished; closing)"
                    )
                    self.link.cancel()
                    await asyncio.wait([receiver], timeout=2.0)
            elif not receiver.cancelled() and receiver.exception() is None:
                self._say("(the server ended the session before the media did)")
            if (
                receiver.done()
                and not receiver.cancelled()
                and (e := receiver.exception()) is not None
            ):
                raise e
        finally:
            for task in (senders, receiver):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.wait([task])
                if task is not None and not task.cancelled():
                    task.exception()  # retrieved: a cancelled gather may hold CancelledError
            self.sink.finish_all()
            for uid, u in self.sink.utterances.items():
                self.report.audio.setdefault(uid, (u.pcm, u.sample_rate_hz))
                if u.wav_path is not None:
                    self.report.wavs.setdefault(uid, u.wav_path)
        self.report.reconnects = self.link.reconnects
        self.report.latencies = _latencies(self.arrivals)
        self.report.wall_s = time.monotonic() - started
        return self.report

    async def _wait_ready(self, receiver: asyncio.Task[None]) -> None:
        ready = asyncio.create_task(self.ready.wait())
        done, _ = await asyncio.wait(
            [ready, receiver],
            timeout=self.opts.ready_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        ready.cancel()
        if self.ready.is_set():
            return
        if receiver in done:
            exc = receiver.exception()
            if exc is not None:
                raise exc
            raise LinkError(
                f"the server at {self.opts.link.target} ended the stream before SessionReady"
            )
        raise LinkError(
            f"the server at {self.opts.link.target} sent no SessionReady within "
            f"{self.opts.ready_timeout_s:g} s"
        )

    async def _linger(self, receiver: asyncio.Task[None]) -> None:
        """Wait ``linger_s`` for trailing speech, longer while an utterance still plays."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.opts.linger_s
        hard_end = loop.time() + self.opts.linger_max_s
        while not receiver.done():
            now = loop.time()
            if now >= hard_end or (now >= end and not self.open_utterances):
                return
            await asyncio.sleep(0.05)


def _timings(tick: pb.Tick) -> str:
    parts = [f"{t.stage}={t.ms:.0f}ms" for t in tick.timings]
    if tick.frame_age_ms >= 0:
        parts.append(f"frame_age={tick.frame_age_ms:.0f}ms")
    return " ".join(parts)


def _latencies(a: _Arrivals) -> list[UtteranceLatency]:
    decisive = [(at, t) for at, t in a.ticks if t.action and t.action != "silence"]
    claimed: set[int] = set()
    out = []
    for uid, spoke_at in sorted(a.first_speech.items(), key=lambda kv: kv[1]):
        audio_at = a.first_audio.get(uid)
        lat = UtteranceLatency(uid, (audio_at - spoke_at) * 1000 if audio_at is not None else None)
        # The deciding tick's trace is sent after dispatch, so it may arrive just
        # before or just after the caption; prefer one whose text matches.
        best: int | None = None
        for i, (at, tick) in enumerate(decisive):
            if i in claimed or abs(at - spoke_at) > 1.0:
                continue
            text = a.speech_text.get(uid, "")
            if best is None or (
                tick.text and text and (tick.text.startswith(text) or text.startswith(tick.text))
            ):
                best = i
        if best is not None:
            claimed.add(best)
            at, tick = decisive[best]
            lat.tick_s, lat.tick_ms = tick.tick_s, sum(t.ms for t in tick.timings)
            lat.model_ms = next((t.ms for t in tick.timings if t.stage == "model"), None)
            if audio_at is not None:
                lat.decision_to_audio_ms = (audio_at - min(at, spoke_at)) * 1000
        out.append(lat)
    return out


async def run_replay(opts: ReplayOptions) -> ReplayReport:
    """Replay ``opts.video`` (and ``opts.audio``) to a server; what it said back.

    Raises ``MediaError`` for unusable media (before connecting) and ``LinkError``
    when the session cannot be opened or ends badly.
    """
    if opts.fps <= 0 or opts.speed <= 0:
        raise ValueError("fps and speed must be positive")
    frames = iter_video_frames(opts.video, opts.fps, opts.max_side, opts.jpeg_quality)
    # Fail on a bad video before connecting: pull the first frame now.
    first = await asyncio.to_thread(next, frames, None)
    packets = await asyncio.to_thread(_audio_packets, opts)
    replay = _Replay(opts, _prepend(first, frames), packets)
    return await replay.run()


def _prepend(
    first: tuple[float, bytes] | None, rest: Iterator[tuple[float, bytes]]
) -> Iterator[tuple[float, bytes]]:
    if first is not None:
        yield first
    yield from rest
