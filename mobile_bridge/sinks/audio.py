"""Server speech → PCM per utterance → one WAV each, and the local speakers if asked."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np

from mobile_bridge.media import MediaError, OpusDecoder, write_wav_pcm16
from mobile_bridge.sinks.base import SpeechSink, UtteranceAudio

__all__ = ["AudioSink"]

log = logging.getLogger(__name__)


def _player(rate_hz: int) -> list[str] | None:
    """A command that plays raw s16le mono PCM from stdin, if one is installed."""
    if shutil.which("paplay"):
        return ["paplay", "--raw", "--channels=1", "--format=s16le", f"--rate={rate_hz}"]
    if shutil.which("aplay"):
        return ["aplay", "-q", "-t", "raw", "-f", "S16_LE", "-c", "1", "-r", str(rate_hz)]
    return None


class AudioSink(SpeechSink):
    """Server audio → PCM per utterance → one WAV each in ``out_dir`` (optional),
    and to the speakers with ``play=True`` when ``paplay``/``aplay`` exist.

    One Opus decoder for the whole stream, since the server encodes the stream
    with one encoder across utterances.
    """

    def __init__(
        self,
        rate_hz: int = 24000,
        *,
        opus_packets: bool = True,
        out_dir: str | Path | None = None,
        play: bool = False,
    ) -> None:
        self.rate_hz = rate_hz
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._decoder = OpusDecoder(rate_hz) if opus_packets else None
        self._chunks: dict[str, list[np.ndarray]] = {}
        self.utterances: dict[str, UtteranceAudio] = {}
        self._play_cmd = _player(rate_hz) if play else None
        if play and self._play_cmd is None:
            log.warning("--play: neither paplay nor aplay is installed; writing WAVs only")

    def feed(self, utterance_id: str, packet: bytes) -> None:
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
        """Close an utterance: join its PCM, write its WAV, play it if asked."""
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
        if self._play_cmd is not None and u.pcm.size and not interrupted:
            self._play(u.pcm)
        return u

    def finish_all(self) -> None:
        for uid in list(self._chunks):
            self.finish(uid, interrupted=True)

    def _play(self, pcm: np.ndarray) -> None:
        assert self._play_cmd is not None
        try:
            # Fire and forget: playback runs alongside the stream like a real speaker.
            proc = subprocess.Popen(
                self._play_cmd, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            assert proc.stdin is not None
            proc.stdin.write(pcm.astype("<i2").tobytes())
            proc.stdin.close()
        except OSError as e:
            log.warning("playback failed (%s); WAVs are still written", e)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "utt"
