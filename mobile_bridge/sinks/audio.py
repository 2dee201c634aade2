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

__all__ = ["AudioSink"]

log = logging.getLogger(__name__)


class AudioSink(SpeechSink):
    """Server audio → PCM per utterance (``utterances``, the replay report's audio)
    → one WAV each in ``out_dir`` (optional).

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
    ) -> None:
        self.rate_hz = rate_hz
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if play and player is None:
            player = open_playback(PlaybackOptions(rate_hz=rate_hz, opus_packets=opus_packets))
        self.player = player
        self._decoder = OpusDecoder(rate_hz) if opus_packets else None
        self._chunks: dict[str, list[np.ndarray]] = {}
        self.utterances: dict[str, UtteranceAudio] = {}

    def feed(self, utterance_id: str, packet: bytes) -> None:
        if self.player is not None:
            self.player.feed(utterance_id, packet)
        u = self.utterances.setdefault(utterance_id, UtteranceAudio(utterance_id, self.rate_hz))
        chunks = self._chunks.setdefault(utterance_id, [])
        if not packet:
            return
        u.packets += 1
        if self._decoder is None:
            pcm = np.frombuffer(packet[: len(packet) // 2 * 2], dtype="<i2").astype(np.int16)
        else:
            try:
                pcm = self._decoder.decode(packet)
            except MediaError as e:
                log.warning("utterance %s: %s; skipped", utterance_id, e)
                return
        chunks.append(pcm)

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
            written = len([x for x in self.utterances.values() if x.wav_path])
            name = f"{written:03d}_{_safe(utterance_id)}.wav"
            u.wav_path = write_wav_pcm16(self.out_dir / name, u.pcm, self.rate_hz)
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


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "utt"
