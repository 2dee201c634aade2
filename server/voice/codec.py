"""Audio packets on the wire: Opus (20 ms packets) or PCM16, one codec state per stream.

``PacketDecoder`` turns inbound packets into int16 PCM at the declared rate;
``PacketEncoder`` turns PCM at any rate into outbound packets at the negotiated
format. Both keep per-stream state (Opus is stateful), so each session owns one
of each.
"""

from __future__ import annotations

import numpy as np
import opuslib_next as opus
import soxr

from server.codes import Code
from server.errors import ProtocolError, Recoverable
from server.events import AudioEncoding, AudioFormat

__all__ = [
    "OPUS_RATES",
    "PacketDecoder",
    "PacketEncoder",
    "resample",
    "validate_format",
]

OPUS_RATES = (16000, 24000, 48000)
FRAME_MS = (20,)


def validate_format(fmt: AudioFormat, direction: str) -> AudioFormat:
    """Reject formats Murmur does not speak, naming the ones it does."""
    if fmt.encoding is AudioEncoding.OPUS and fmt.sample_rate_hz not in OPUS_RATES:
        raise ProtocolError(
            f"unsupported audio {direction} format: Opus at {fmt.sample_rate_hz} Hz; "
            f"supported: Opus at 16000/24000/48000 Hz in 20 ms frames, or PCM16 at any "
            f"rate from 8000 to 48000 Hz"
        )
    if fmt.encoding is AudioEncoding.PCM16 and not 8000 <= fmt.sample_rate_hz <= 48000:
        raise ProtocolError(
            f"unsupported audio {direction} format: PCM16 at {fmt.sample_rate_hz} Hz; "
            f"supported: PCM16 at 8000 to 48000 Hz, or Opus at 16000/24000/48000 Hz"
        )
    if fmt.frame_ms not in FRAME_MS:
        raise ProtocolError(
            f"unsupported audio {direction} frame length {fmt.frame_ms} ms; supported: 20 ms"
        )
    return fmt


def resample(pcm: np.ndarray, src_hz: int, dst_hz: int) -> np.ndarray:
    """int16 mono PCM from one rate to another."""
    if src_hz == dst_hz or pcm.size == 0:
        return pcm.astype(np.int16, copy=False)
    out = soxr.resample(pcm.astype(np.float32) / 32768.0, src_hz, dst_hz, quality="HQ")
    return np.clip(out * 32768.0, -32768, 32767).astype(np.int16)


class PacketDecoder:
    """Inbound packets → int16 PCM at ``fmt.sample_rate_hz``."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._opus = (
            opus.Decoder(fmt.sample_rate_hz, 1) if fmt.encoding is AudioEncoding.OPUS else None
        )

    def decode(self, packet: bytes) -> np.ndarray:
        if self._opus is None:
            if len(packet) % 2:
                raise Recoverable(
                    Code.AUDIO_BAD_PCM,
                    f"PCM16 chunk of {len(packet)} bytes is not whole samples; dropped",
                )
            return np.frombuffer(packet, dtype="<i2").astype(np.int16)
        try:
            # Opus carries up to 120 ms in a packet; ask for room for that.
            raw = self._opus.decode(packet, self.format.sample_rate_hz * 120 // 1000)
        except opus.OpusError as e:
            raise Recoverable(
                Code.AUDIO_BAD_OPUS,
                f"an audio packet is not valid Opus ({e}); dropped. Check that the bridge "
                "sends one raw Opus packet per AudioChunk, not an Ogg page",
            ) from e
        return np.frombuffer(raw, dtype="<i2").astype(np.int16)


class PacketEncoder:
    """int16 PCM at any rate → packets of ``fmt`` (20 ms each), with carry-over.

    Resampling is streamed (soxr keeps its filter state between calls), so audio
    may be fed in pieces of any size without clicks at the seams.
    """

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._frame = fmt.samples_per_frame
        self._pending = np.zeros(0, dtype=np.int16)
        self._opus: opus.Encoder | None = None
        self._resampler: soxr.ResampleStream | None = None
        self._resampler_rate = 0
        if fmt.encoding is AudioEncoding.OPUS:
            self._opus = opus.Encoder(fmt.sample_rate_hz, 1, opus.APPLICATION_VOIP)

    def encode(self, pcm: np.ndarray, src_hz: int) -> list[bytes]:
        """Encode whole frames; the remainder waits for more audio or ``flush``."""
        return self._packetize(self._resample(pcm, src_hz))

    def flush(self) -> list[bytes]:
        """The resampler's tail, then the remainder padded with silence to a whole frame."""
        packets: list[bytes] = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            self._resampler = None
            packets = self._packetize(np.asarray(tail, dtype=np.int16))
        if self._pending.size:
            frame = np.zeros(self._frame, dtype=np.int16)
            frame[: self._pending.size] = self._pending
            self._pending = np.zeros(0, dtype=np.int16)
            packets.append(self._pack(frame))
        return packets

    def _resample(self, pcm: np.ndarray, src_hz: int) -> np.ndarray:
        dst = self.format.sample_rate_hz
        if src_hz == dst or pcm.size == 0:
            return pcm.astype(np.int16, copy=False)
        if self._resampler is None or self._resampler_rate != src_hz:
            self._resampler = soxr.ResampleStream(src_hz, dst, 1, dtype="int16", quality="HQ")
            self._resampler_rate = src_hz
        return np.asarray(self._resampler.resample_chunk(pcm.astype(np.int16)), dtype=np.int16)

    def _packetize(self, pcm: np.ndarray) -> list[bytes]:
        buf = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        n = buf.size // self._frame
        packets = [self._pack(buf[i * self._frame : (i + 1) * self._frame]) for i in range(n)]
        self._pending = buf[n * self._frame :].copy()
        return packets

    def _pack(self, frame: np.ndarray) -> bytes:
        data = frame.astype("<i2").tobytes()
        if self._opus is None:
            return data
        return bytes(self._opus.encode(data, self._frame))
