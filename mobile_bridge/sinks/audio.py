"""Server speech → PCM per utterance → one WAV each, and a live player beside it if asked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.media import MediaError, OpusDecoder, write_wav_pcm16
from mobile_bridge.sinks.base import SpeechSink, UtteranceAudio
from mobile_bridge.sinks.playback import PlaybackOptions, open_playback

__all__ = ["AudioSink", "opus_samples"]

log = logging.getLogger(__name__)


class AudioSink(SpeechSink):
    """Server audio → PCM per utterance (``utterances``, the replay report's audio)
    → one WAV each in ``out_dir`` (optional).

    With ``keep_pcm`` False (a walk, which may last hours) an utterance keeps only its
    counts and duration: its PCM is decoded only for its WAV, and dropped once written;
    without ``out_dir`` nothing is decoded here at all (the player decodes its own).

    ``player`` (a ``PlaybackSink``) plays the same stream as it arrives; it then sends
    the ``PlaybackReport``s, since only it knows what was heard. ``play=True`` without
    a player opens one on the default sound card. One Opus decoder
    for the whole stream, since the server encodes it with one encoder across
    utterances.
    """

    def __init__(
        self,
        rate_hz: int = 24000,
        *,
        opus_packets: bool = True,
        out_dir: str | Path | None = None,
        play: bool = False,
        player: SpeechSink | None = None,
        keep_pcm: bool = True,
    ) -> None:
        self.rate_hz = rate_hz
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if play and player is None:
            player = open_playback(PlaybackOptions(rate_hz=rate_hz, opus_packets=opus_packets))
        self.player = player
        self.keep_pcm = keep_pcm
        self._decoding = keep_pcm or self.out_dir is not None
        self._opus = opus_packets
        self._decoder = OpusDecoder(rate_hz) if opus_packets and self._decoding else None
        self._chunks: dict[str, list[np.ndarray]] = {}
        self._wavs = 0
        self.utterances: dict[str, UtteranceAudio] = {}

    def feed(self, utterance_id: str, packet: bytes) -> None:
        if self.player is not None:
            self.player.feed(utterance_id, packet)
        u = self.utterances.setdefault(utterance_id, UtteranceAudio(utterance_id, self.rate_hz))
        chunks = self._chunks.setdefault(utterance_id, [])
        if not packet:
            return
        u.packets += 1
        if not self._decoding:  # counted, not decoded: nothing here needs the samples
            u.samples += opus_samples(packet, self.rate_hz) if self._opus else len(packet) // 2
            return
        if self._decoder is None:
            pcm = np.frombuffer(packet[: len(packet) // 2 * 2], dtype="<i2").astype(np.int16)
        else:
            try:
                pcm = self._decoder.decode(packet)
            except MediaError as e:
                log.warning("utterance %s: %s; skipped", utterance_id, e)
                return
        chunks.append(pcm)
        u.samples += pcm.size

    def finish(self, utterance_id: str, *, interrupted: bool = False) -> UtteranceAudio:
        """Close an utterance: join its PCM and write its WAV (what was received)."""
        if self.player is not None:
            self.player.finish(utterance_id, interrupted=interrupted)
        u = self.utterances.setdefault(utterance_id, UtteranceAudio(utterance_id, self.rate_hz))
        if u.finished:
            return u
        chunks = self._chunks.pop(utterance_id, [])
        u.pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        u.finished, u.interrupted = True, interrupted
        if self.out_dir is not None and u.pcm.size:
            name = f"{self._wavs:03d}_{_safe(utterance_id)}.wav"
            self._wavs += 1
            u.wav_path = write_wav_pcm16(self.out_dir / name, u.pcm, self.rate_hz)
        if not self.keep_pcm:
            u.pcm = np.zeros(0, np.int16)  # written; its duration stays in ``samples``
        return u

    def finish_all(self) -> None:
        if self.player is not None:  # first: the stream is over, so no cut is reported
            self.player.finish_all()
        for uid in list(self._chunks):
            self.finish(uid, interrupted=True)

    def cue(self, cue: pb.Cue) -> None:
        if self.player is not None:
            self.player.cue(cue)

    @property
    def audible(self) -> bool:
        return self.player is not None and self.player.audible

    @property
    def wants_audio(self) -> bool:
        return self.audible or self.out_dir is not None

    def take_reports(self, send: Callable[[pb.PlaybackReport], None]) -> bool:
        return self.player is not None and self.player.take_reports(send)

    @property
    def playing(self) -> bool:
        return self.player is not None and self.player.playing


# Opus frame sizes by TOC config (RFC 6716 §3.1), in 1/48000 s: SILK, hybrid, CELT.
_OPUS_FRAME_48K = [480, 960, 1920, 2880] * 3 + [480, 960] * 2 + [120, 240, 480, 960] * 4


def opus_samples(packet: bytes, rate_hz: int) -> int:
    """Samples at ``rate_hz`` in one Opus packet, from its TOC byte (and frame count),
    without decoding it; 0 for a packet too short to say."""
    if not packet:
        return 0
    toc = packet[0]
    code = toc & 0x3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    elif len(packet) < 2:
        return 0
    else:
        frames = packet[1] & 0x3F
    return _OPUS_FRAME_48K[toc >> 3] * frames * rate_hz // 48000


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "utt"
