"""Codecs on the phone side: stills → scaled JPEG, WAV ↔ int16 PCM, PCM ↔ Opus packets.

Pure and blocking (decode, scale, encode): callers on the event loop run these in a
worker thread so the link never stalls on them. Reading whole videos is a source's
job (``sources/video.py``), not a codec's.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import opuslib_next as opus
import soxr
from PIL import Image

__all__ = [
    "OPUS_RATES",
    "MediaError",
    "OpusDecoder",
    "OpusPacketizer",
    "decode_jpeg_size",
    "encode_jpeg",
    "read_wav_pcm16",
    "resample_pcm16",
    "scaled_size",
    "write_wav_pcm16",
]

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


class MediaError(Exception):
    """A media file that cannot be used; the message says which and why."""


# ------------------------------------------------------------------------ stills


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``width × height`` shrunk (never grown) so its longer side fits ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    # Even sizes keep every decoder (and the server's vision patching) happy.
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def encode_jpeg(image: Image.Image, max_side: int, quality: int) -> bytes:
    """``image`` as an RGB JPEG whose longer side fits ``max_side``."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    size = scaled_size(image.width, image.height, max_side)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height of a JPEG (or any still Pillow reads); raises on garbage."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


# ------------------------------------------------------------------------ WAV


def resample_pcm16(pcm: np.ndarray, src_hz: int, dst_hz: int) -> np.ndarray:
    """int16 mono PCM from one rate to another."""
    if src_hz == dst_hz or pcm.size == 0:
        return pcm.astype(np.int16, copy=False)
    out = soxr.resample(pcm.astype(np.float32) / 32768.0, src_hz, dst_hz, quality="HQ")
    return np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)


def read_wav_pcm16(path: str | Path, target_hz: int) -> np.ndarray:
    """A WAV file as int16 mono PCM at ``target_hz`` (stereo is mixed down)."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"audio file not found: {p}")
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise MediaError(
            f"{p} is not a PCM WAV file ({e}); convert it with `sox IN -b 16 OUT.wav`"
        ) from e
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        samples = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)) >> 16
    elif width == 4:
        samples = np.frombuffer(raw, dtype="<i4").astype(np.int64) >> 16
    else:
        raise MediaError(f"{p} uses {width * 8}-bit samples; only 8/16/24/32-bit PCM is read")
    if channels > 1:
        samples = samples[: samples.size // channels * channels].reshape(-1, channels).mean(axis=1)
    mono = np.clip(samples, -32768, 32767).astype(np.int16)
    return resample_pcm16(mono, rate, target_hz)


def write_wav_pcm16(path: str | Path, pcm: np.ndarray, rate_hz: int) -> Path:
    p = Path(path)
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(pcm.astype("<i2").tobytes())
    return p


# ------------------------------------------------------------------------ Opus


class OpusPacketizer:
    """int16 mono PCM at ``rate_hz`` → raw Opus packets of ``frame_ms`` each.

    One per stream: Opus is stateful, so packets must come from one encoder in order.
    """

    def __init__(self, rate_hz: int = 16000, frame_ms: int = 20) -> None:
        if rate_hz not in OPUS_RATES:
            raise ValueError(f"Opus runs at {OPUS_RATES} Hz, not {rate_hz}")
        self.rate_hz = rate_hz
        self.frame_ms = frame_ms
        self.frame_samples = rate_hz * frame_ms // 1000
        self._encoder = opus.Encoder(rate_hz, 1, opus.APPLICATION_VOIP)

    def encode_frame(self, frame: np.ndarray) -> bytes:
        """One frame of exactly ``frame_samples`` (shorter ones are padded with silence)."""
        if frame.size < self.frame_samples:
            frame = np.concatenate([frame, np.zeros(self.frame_samples - frame.size, np.int16)])
        data = frame[: self.frame_samples].astype("<i2").tobytes()
        return bytes(self._encoder.encode(data, self.frame_samples))

    def packets(self, pcm: np.ndarray) -> Iterator[bytes]:
        """All of ``pcm`` as packets, the last frame padded with silence."""
        n = self.frame_samples
        for i in range(0, pcm.size, n):
            yield self.encode_frame(pcm[i : i + n])


class OpusDecoder:
    """Raw Opus packets → int16 mono PCM at ``rate_hz``.

    One per stream, like the encoder: the server encodes its whole stream with one
    encoder across utterances, so packets decode correctly only in order.
    """

    def __init__(self, rate_hz: int = 24000) -> None:
        if rate_hz not in OPUS_RATES:
            raise ValueError(f"Opus runs at {OPUS_RATES} Hz, not {rate_hz}")
        self.rate_hz = rate_hz
        self._decoder = opus.Decoder(rate_hz, 1)

    def decode(self, packet: bytes) -> np.ndarray:
        """One packet's PCM; raises ``MediaError`` when it is not valid Opus."""
        try:
            # 120 ms is the longest frame Opus allows, so any packet fits.
            raw = self._decoder.decode(packet, self.rate_hz * 120 // 1000)
        except opus.OpusError as e:
            raise MediaError(f"not a valid Opus packet ({e})") from e
        return np.frombuffer(raw, dtype="<i2").astype(np.int16)
