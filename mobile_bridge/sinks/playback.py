"""Speech that plays as it arrives, cues as earcons, and the truth about what was heard.

``PlaybackSink`` decodes each ``AudioOut`` packet as it comes and queues it on a
timeline that the output pulls 20 ms blocks from. An utterance starts once a small
jitter buffer (``jitter_ms``) of it has arrived, or its last packet has; a cut takes
effect at the next block the output pulls, so at most one more block of it is heard.
When an utterance plays out or is cut, the sink itself sends the ``PlaybackReport``
with the milliseconds that actually went to the output, which is what the server
keeps as "what the wearer heard".

Ordering facts the timeline keeps:

- utterances play one after another, in the order their first packet came; a new
  one's first packet ends any still open (the server speaks one at a time, so that
  one lost its last packet to a dropped stream);
- a hazard earcon goes ahead of all speech at once (the server sends the cue before
  its alert's speech, but a cue that comes late must still be heard first); speech
  that was playing pauses for it and goes on after; other earcons are laid over
  whatever is playing, speech ducked;
- a packet late past its utterance's buffer is an underrun: silence, counted, and
  the utterance goes on when its packets do.

The output may pull from its own audio thread, so the timeline is behind a lock and
reports are handed to the event loop with ``call_soon_threadsafe``.

An output that ``confirms`` (the Halo's speaker: a block pulled can still be lost on
the link) settles each block later; there an utterance counts only the samples of
blocks settled as heard, is reported once all its blocks are settled, and a cut
discards its blocks not yet handed over.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.media import MediaError, OpusDecoder
from mobile_bridge.sinks.base import SpeechSink, UtteranceAudio
from mobile_bridge.sinks.earcons import HapticPulse, earcon, haptic_pattern
from mobile_bridge.sinks.outputs import (
    AudioOutput,
    AudioOutputError,
    SoundDeviceOutput,
    WavFileOutput,
)

__all__ = ["PlaybackOptions", "PlaybackSink", "PlaybackStats", "open_playback"]

log = logging.getLogger(__name__)

HAZARD_MIN_GAIN = 0.5


@dataclass
class PlaybackOptions:
    rate_hz: int = 24000  # the session's audio-out rate; the output runs at it too
    opus_packets: bool = True  # False: AudioOut carries PCM16
    jitter_ms: int = 60  # buffered before an utterance starts (3 packets of 20 ms)
    gain: float = 1.0  # the wearer's volume, on everything
    duck: float = 0.5  # speech's gain while an earcon plays over it


@dataclass
class PlaybackStats:
    packets: int = 0
    bad_packets: int = 0  # not decodable: skipped, playback goes on
    late_packets: int = 0  # for an utterance already cut or played out: dropped
    underrun_blocks: int = 0  # blocks with silence where speech should have been
    lost_blocks: int = 0  # speech pulled, then not taken by the device (link away or behind)
    cues: int = 0
    finished: int = 0
    interrupted: int = 0


@dataclass(eq=False)
class _Utterance:
    uid: str
    chunks: deque[np.ndarray] = field(default_factory=deque)  # float32 mono, in order
    offset: int = 0  # samples of chunks[0] already played
    buffered: int = 0  # samples queued, not yet played
    played: int = 0
    ended: bool = False  # its last packet came
    started: bool = False  # the jitter buffer filled (or it ended): it may play
    unsettled: int = 0  # samples pulled that a confirming output has not settled yet
    lost: int = 0  # samples pulled that it settled as not heard
    cut: bool = False

    def take(self, n: int) -> np.ndarray:
        """Up to ``n`` queued samples, fewer when the buffer runs dry."""
        parts: list[np.ndarray] = []
        while n > 0 and self.chunks:
            head = self.chunks[0]
            piece = head[self.offset : self.offset + n]
            parts.append(piece)
            n -= piece.size
            self.offset += piece.size
            if self.offset >= head.size:
                self.chunks.popleft()
                self.offset = 0
        out = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        self.buffered -= out.size
        self.played += out.size
        return out


@dataclass(eq=False)
class _Earcon:
    samples: np.ndarray  # (n, channels)
    pos: int = 0

    def take(self, n: int) -> np.ndarray:
        out = self.samples[self.pos : self.pos + n]
        self.pos += out.shape[0]
        return out

    @property
    def done(self) -> bool:
        return self.pos >= self.samples.shape[0]


class PlaybackSink(SpeechSink):
    """The server's speech and cues, played on ``output`` as they arrive.

    ``on_haptic`` gets a ``HapticPulse`` for every cue (sources with a motor play it);
    ``set_gain`` is the wearer's volume and can change mid-utterance.
    """

    def __init__(
        self,
        output: AudioOutput,
        options: PlaybackOptions | None = None,
        *,
        on_haptic: Callable[[HapticPulse], None] | None = None,
    ) -> None:
        self.options = options or PlaybackOptions()
        if output.rate_hz != self.options.rate_hz:
            raise ValueError(
                f"output runs at {output.rate_hz} Hz, speech at {self.options.rate_hz}"
            )
        self.output = output
        self.rate_hz = self.options.rate_hz
        self.stats = PlaybackStats()
        self.utterances: dict[str, UtteranceAudio] = {}
        self._decoder = OpusDecoder(self.rate_hz) if self.options.opus_packets else None
        self._jitter = self.rate_hz * self.options.jitter_ms // 1000
        self._gain = self.options.gain
        self._cue_gain = 1.0
        self._on_haptic = on_haptic
        self._report: Callable[[pb.PlaybackReport], None] | None = None
        self._lock = threading.Lock()
        self._timeline: deque[_Utterance | _Earcon] = deque()
        self._overlays: list[_Earcon] = []
        self._live: dict[str, _Utterance] = {}
        self._done: set[str] = set()  # reported (or closed): later packets are late
        # Where each utterance's speech went out: its first and last+1 sample on the
        # output's timeline (the samples pulled before it).
        self.spans: dict[str, tuple[int, int]] = {}
        self._blocks = 0  # pulled so far
        self._pulled = 0  # samples pulled so far: the output's timeline
        self._device = output if output.confirms else None
        self._unsettled: dict[int, dict[_Utterance, int]] = {}  # block → speech samples in it
        self._settling: dict[str, _Utterance] = {}  # retired, waiting for its blocks
        if self._device is not None:
            self._device.bind(self._settled)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._started = False
        self._closed = False
        self._broken = False  # the output failed to start: nothing can be heard

    # ------------------------------------------------------------ the session's side

    @property
    def audible(self) -> bool:
        return True

    def take_reports(self, send: Callable[[pb.PlaybackReport], None]) -> bool:
        self._report = send
        return True

    @property
    def playing(self) -> bool:
        with self._lock:
            return bool(self._timeline or self._overlays or self._settling)

    def set_gain(self, gain: float) -> None:
        """The wearer's volume, 0..2 (1 = as the server sent it)."""
        self._gain = min(2.0, max(0.0, gain))

    def set_cue_gain(self, gain: float) -> None:
        """The earcons' own volume, 0..2, on top of ``set_gain``: a session volume the
        server already applies to its speech reaches the cues made here only so."""
        self._cue_gain = min(2.0, max(0.0, gain))

    def feed(self, utterance_id: str, packet: bytes) -> None:
        self._ensure_started()
        if self._broken:
            return  # its finish reports that nothing was heard
        # Decoded even when late: the decoder's state must follow the whole stream.
        pcm = self._decode(utterance_id, packet) if packet else None
        with self._lock:
            if utterance_id in self._done:
                self.stats.late_packets += bool(packet)
                return
            u = self._live.get(utterance_id)
            if u is None:
                # The server speaks one utterance at a time, in stream order: one still
                # open now lost its last packet (a dropped stream) and plays out as is.
                for older in self._live.values():
                    older.ended = True
                u = self._live[utterance_id] = _Utterance(utterance_id)
                self._timeline.append(u)
                self.utterances[utterance_id] = UtteranceAudio(utterance_id, self.rate_hz)
            if pcm is not None and pcm.size:
                u.chunks.append(pcm)
                u.buffered += pcm.size
        if packet:
            self.utterances[utterance_id].packets += 1

    def finish(self, utterance_id: str, *, interrupted: bool = False) -> UtteranceAudio:
        """Its last packet came (it plays out, then reports), or it is cut now."""
        report = None
        interrupted = interrupted or self._broken
        discard: list[int] = []
        with self._lock:
            u = self._live.get(utterance_id)
            if not interrupted:
                if u is not None:
                    u.ended = True
            elif utterance_id not in self._done:
                # A cut before any audio came still gets its report: 0 ms were heard.
                u = u or _Utterance(utterance_id)
                report = self._retire(u, interrupted=True)
            elif (u := self._settling.get(utterance_id)) is not None:
                u.cut = True  # played out here, but still on its way to the device
            if interrupted and u is not None:
                discard = [b for b, speech in self._unsettled.items() if u in speech]
        if report is not None:
            self._deliver([report])
        if discard and self._device is not None:
            self._device.discard(discard)  # settles them, outside the lock
        return self.utterances.setdefault(utterance_id, UtteranceAudio(utterance_id, self.rate_hz))

    def stop_all(self) -> None:
        """Cut every utterance now (the wearer asked for quiet); earcons play on."""
        for uid in [*self._live, *self._settling]:
            self.finish(uid, interrupted=True)

    def cue(self, cue: pb.Cue) -> None:
        self._ensure_started()
        self.stats.cues += 1
        if self._broken:
            return
        if self._on_haptic is not None:
            try:
                self._on_haptic(haptic_pattern(cue))
            except Exception as e:  # a haptic motor's trouble must not silence the earcon
                log.warning("haptic cue failed: %s", e)
        sound = _Earcon(
            earcon(
                cue.kind,
                self.rate_hz,
                channels=self.output.channels,
                intensity=cue.intensity,
                clock_direction=cue.clock_direction,
            )
        )
        with self._lock:
            if cue.kind != pb.CUE_KIND_HAZARD:
                self._overlays.append(sound)
                return
            # Now, ahead of all speech (one playing pauses for it and then goes on; one
            # stalled on late packets cannot hold it up), behind any hazard earcon
            # already waiting: two hazards play in the order they came.
            at = 0
            while at < len(self._timeline) and isinstance(self._timeline[at], _Earcon):
                at += 1
            self._timeline.insert(at, sound)

    def finish_all(self) -> None:
        """The session is over: whatever is still queued is dropped, the output closed.

        No reports: the stream they would go on has ended.
        """
        with self._lock:
            for u in self._live.values():
                self.utterances[u.uid].interrupted = not u.ended or u.buffered > 0
                self.utterances[u.uid].finished = True
                self._done.add(u.uid)
            for u in self._settling.values():
                self.utterances[u.uid].interrupted = u.cut
                self.utterances[u.uid].finished = True
            self._live.clear()
            self._settling.clear()
            self._unsettled.clear()
            self._timeline.clear()
            self._overlays.clear()
            self._closed = True
        self.output.close()

    # ------------------------------------------------------------ the output's side

    def render(self, frames: int) -> np.ndarray:
        """The next ``frames`` samples, shape (frames, channels); called by the output."""
        channels = self.output.channels
        out = np.zeros((frames, channels), np.float32)
        reports: list[pb.PlaybackReport | None] = []
        with self._lock:
            block, self._blocks = self._blocks, self._blocks + 1
            start, self._pulled = self._pulled, self._pulled + frames
            speech: dict[_Utterance, int] = {}  # samples of each utterance in this block
            speech_gain = self._gain * (self.options.duck if self._overlays else 1.0)
            gain = self._gain * self._cue_gain  # the earcons'

            pos = 0
            while pos < frames and self._timeline:
                head = self._timeline[0]
                if isinstance(head, _Earcon):  # a hazard: turned down, never off
                    part = head.take(frames - pos)
                    out[pos : pos + part.shape[0]] += part * max(gain, HAZARD_MIN_GAIN)
                    pos += part.shape[0]
                    if head.done:
                        self._timeline.popleft()
                    continue
                if not head.started:
                    if head.buffered < self._jitter and not head.ended:
                        break  # filling its jitter buffer: silence, not an underrun
                    head.started = True
                mono = head.take(frames - pos)
                out[pos : pos + mono.size] += (mono * speech_gain)[:, None]
                if mono.size:
                    at = start + pos
                    self.spans[head.uid] = self.spans.get(head.uid, (at, at))[0], at + mono.size
                    speech[head] = speech.get(head, 0) + mono.size
                    if self._device is not None:
                        head.unsettled += mono.size
                pos += mono.size
                if head.buffered == 0 and head.ended:
                    reports.append(self._retire(head, interrupted=False))
                elif pos < frames:
                    self.stats.underrun_blocks += 1  # its next packet is late
                    break
            for sound in self._overlays:
                part = sound.take(frames)
                out[: part.shape[0]] += part * gain
            self._overlays = [s for s in self._overlays if not s.done]
            if speech and self._device is not None:
                self._unsettled[block] = speech
        np.clip(out, -1.0, 1.0, out=out)
        if ready := [r for r in reports if r is not None]:
            self._deliver(ready)
        return out

    def _settled(self, block: int, heard: bool) -> None:
        """A confirming output's word on one block; called on the event loop."""
        reports = []
        with self._lock:
            speech = self._unsettled.pop(block, None)
            if not speech:
                return
            if not heard and not all(u.cut for u in speech):
                self.stats.lost_blocks += 1
            for u, n in speech.items():
                u.unsettled -= n
                u.lost += 0 if heard else n
                if u.unsettled <= 0 and u.uid in self._settling:
                    reports.append(self._retire(u, interrupted=u.cut))
        if ready := [r for r in reports if r is not None]:
            self._deliver(ready)

    # ------------------------------------------------------------ inside

    def _ensure_started(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        try:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        except RuntimeError:
            self._loop = None  # driven without a loop (tests): reports go out directly
        try:
            self.output.start(self.render)
        except AudioOutputError as e:
            # The device went away since it was checked: the session goes on with
            # captions, and every utterance is reported as not heard.
            log.error("%s; speech and cues will not be heard", e)
            self._broken = True

    def _decode(self, uid: str, packet: bytes) -> np.ndarray | None:
        self.stats.packets += 1
        if self._decoder is None:
            pcm = np.frombuffer(packet[: len(packet) // 2 * 2], dtype="<i2")
        else:
            try:
                pcm = self._decoder.decode(packet)
            except MediaError as e:
                self.stats.bad_packets += 1
                log.warning("utterance %s: %s; skipped", uid, e)
                return None
        return pcm.astype(np.float32) / 32768.0

    def _retire(self, u: _Utterance, *, interrupted: bool) -> pb.PlaybackReport | None:
        """Off the timeline, counted, and its report, or None while a confirming output
        still has blocks of it to settle (then again once it has); under the lock."""
        self._live.pop(u.uid, None)
        if u in self._timeline:
            self._timeline.remove(u)
        self._done.add(u.uid)
        u.cut = interrupted
        if u.unsettled > 0:
            self._settling[u.uid] = u
            return None
        self._settling.pop(u.uid, None)
        audio = self.utterances.setdefault(u.uid, UtteranceAudio(u.uid, self.rate_hz))
        audio.finished, audio.interrupted = True, u.cut
        if u.cut:
            self.stats.interrupted += 1
        else:
            self.stats.finished += 1
        return pb.PlaybackReport(
            utterance_id=u.uid,
            played_ms=(u.played - u.lost) * 1000 // self.rate_hz,
            finished=not u.cut,
            interrupted=u.cut,
        )

    def _deliver(self, reports: list[pb.PlaybackReport]) -> None:
        send = self._report
        if send is None:
            return
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            for r in reports:
                try:
                    loop.call_soon_threadsafe(send, r)
                except RuntimeError:  # the loop closed under the audio thread
                    return
            return
        for r in reports:
            send(r)


def open_playback(
    options: PlaybackOptions,
    *,
    device: int | str | None = None,
    play_to: str | Path | None = None,
    clock: Clock | None = None,
    on_haptic: Callable[[HapticPulse], None] | None = None,
) -> PlaybackSink:
    """``--play`` (a sound card, stereo where it has two channels) or ``--play-to
    FILE.wav`` (paced on ``clock``); raises ``AudioOutputError`` before any session
    starts when the device or file cannot be opened."""
    output: AudioOutput
    if play_to is not None:
        output = WavFileOutput(play_to, options.rate_hz, clock=clock or SystemClock())
    else:
        try:
            output = SoundDeviceOutput(options.rate_hz, 2, device=device)
        except AudioOutputError as stereo_failed:
            try:  # a mono speaker (a headset's earpiece, a Bluetooth hands-free profile)
                output = SoundDeviceOutput(options.rate_hz, 1, device=device)
            except AudioOutputError:
                raise stereo_failed from None
    return PlaybackSink(output, options, on_haptic=on_haptic)
