"""Media on the phone side: video → JPEG stills, WAV → Opus packets, Opus → WAV.

Everything here is blocking and CPU-bound (decode, scale, encode); the replay
runs it in a worker thread so the link's event loop never stalls on it.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import opuslib_next as opus
import soxr
from PIL import Image

__all__ = [
    "OPUS_RATES",
    "AudioSink",
    "MediaError",
    "OpusPacketizer",
    "UtteranceAudio",
    "decode_jpeg_size",
    "iter_video_frames",
    "read_wav_pcm16",
    "resample_pcm16",
    "write_synthetic_clip",
    "write_wav_pcm16",
]

log = logging.getLogger(__name__)

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
STILL_SUFFIXES = (".jpg", ".jpeg", ".png")


class MediaError(Exception):
    """A media file that cannot be used; the message says which and why."""


# ------------------------------------------------------------------------ video


def _scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # Even sizes keep every decoder (and the server's vision patching) happy.
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _jpeg(image: Image.Image, max_side: int, quality: int) -> bytes:
    if image.mode != "RGB":
        image = image.convert("RGB")
    size = _scaled_size(image.width, image.height, max_side)
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


def _iter_stills(
    folder: Path, fps: float, max_side: int, quality: int
) -> Iterator[tuple[float, bytes]]:
    stills = sorted(p for p in folder.iterdir() if p.suffix.lower() in STILL_SUFFIXES)
    if not stills:
        raise MediaError(f"{folder} holds no .jpg or .png stills to replay")
    for i, path in enumerate(stills):
        try:
            with Image.open(path) as im:
                data = _jpeg(im, max_side, quality)
        except OSError as e:
            raise MediaError(f"cannot read the still {path}: {e}") from e
        yield i / fps, data


def _iter_video(
    path: Path, fps: float, max_side: int, quality: int
) -> Iterator[tuple[float, bytes]]:
    import av  # heavy; only replay needs it

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise MediaError(f"cannot open {path} as a video: {e}") from e
    with container:
        if not container.streams.video:
            raise MediaError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        period = 1.0 / fps
        start: float | None = None
        next_t = 0.0
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                if start is None:
                    start = frame.time
                t = frame.time - start
                # Sample by timestamp, not by index: variable-rate and dropped-frame
                # files still give one still per period of media time.
                if t + 1e-6 < next_t:
                    continue
                w, h = _scaled_size(frame.width, frame.height, max_side)
                image = frame.reformat(width=w, height=h, format="rgb24").to_image()
                yield t, _jpeg(image, max_side, quality)
                while next_t <= t + 1e-6:
                    next_t += period
        except av.FFmpegError as e:
            raise MediaError(f"{path} stopped decoding part-way: {e}") from e
        if start is None:
            raise MediaError(f"{path} has a video stream but no decodable frames")


def iter_video_frames(
    path: str | Path, fps: float, max_side: int = 640, jpeg_quality: int = 80
) -> Iterator[tuple[float, bytes]]:
    """``(media time in seconds, JPEG bytes)`` sampled at ``fps`` from a video or a
    folder of stills (sorted by name, one every ``1/fps`` seconds).

    Frames are picked by timestamp: the first frame at or after each sample time.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    p = Path(path)
    if not p.exists():
        raise MediaError(f"video not found: {p}")
    if p.is_dir():
        return _iter_stills(p, fps, max_side, jpeg_quality)
    if p.suffix.lower() in STILL_SUFFIXES:
        return _iter_stills_single(p, max_side, jpeg_quality)
    return _iter_video(p, fps, max_side, jpeg_quality)


def _iter_stills_single(path: Path, max_side: int, quality: int) -> Iterator[tuple[float, bytes]]:
    try:
        with Image.open(path) as im:
            data = _jpeg(im, max_side, quality)
    except OSError as e:
        raise MediaError(f"cannot read the still {path}: {e}") from e
    yield 0.0, data


def _corridor_frame(t: float, width: int, height: int) -> np.ndarray:
    """A walk down a corridor: floor/ceiling gradients converging on a vanishing
    point, and a door that drifts right and grows as the wearer approaches."""
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    sway = 0.05 * np.sin(t * 2.2)
    depth = np.abs(ys) + 1e-3
    stripes = (np.sin(6.0 / depth + t * 8.0) > 0).astype(np.float32)
    floor = ys > 0
    shade = np.clip(np.abs(ys) * 1.4, 0, 1)
    r = np.where(floor, 90 + 80 * shade + 20 * stripes, 170 + 60 * shade)
    g = np.where(floor, 70 + 60 * shade + 20 * stripes, 170 + 55 * shade)
    b = np.where(floor, 50 + 40 * shade, 180 + 50 * shade)
    walls = np.abs(xs - sway) > (0.25 + 0.75 * np.abs(ys))
    r = np.where(walls, 200 - 60 * np.abs(xs), r)
    g = np.where(walls, 190 - 60 * np.abs(xs), g)
    b = np.where(walls, 160 - 50 * np.abs(xs), b)
    img = np.stack(np.broadcast_arrays(r, g, b), axis=-1).clip(0, 255).astype(np.uint8)
    # The door: brown, with a dark handle, getting closer.
    grow = min(1.0, 0.15 + 0.08 * t)
    cx = int(width * (0.55 + 0.25 * np.tanh(0.15 * t)))
    dw, dh = int(width * 0.2 * grow) + 4, int(height * 0.6 * grow) + 6
    x0, y0 = max(0, cx - dw // 2), max(0, height // 2 - dh // 3)
    img[y0 : y0 + dh, x0 : x0 + dw] = (120, 70, 30)
    hx, hy = x0 + int(dw * 0.8), y0 + dh // 2
    img[hy : hy + 3 + dh // 30, hx : hx + 3 + dw // 15] = (20, 20, 20)
    return img


def write_synthetic_clip(
    path: str | Path, seconds: float, fps: float, size: tuple[int, int] = (640, 480)
) -> Path:
    """A synthetic first-person clip (a corridor with a door) as H.264 in .mp4,
    or MPEG-4 Part 2 where this PyAV build has no libx264."""
    import av

    p = Path(path)
    width, height = size[0] // 2 * 2, size[1] // 2 * 2
    rate = Fraction(fps).limit_denominator(1001)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(p), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "28"}
        for i in range(max(1, round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(
                _corridor_frame(i / fps, width, height), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return p


# ------------------------------------------------------------------------ audio


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


@dataclass
class UtteranceAudio:
    """One utterance's audio as received: decoded PCM and where it was written."""

    utterance_id: str
    sample_rate_hz: int
    pcm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    packets: int = 0
    finished: bool = False
    interrupted: bool = False
    wav_path: Path | None = None

    @property
    def duration_ms(self) -> int:
        return int(self.pcm.size * 1000 / self.sample_rate_hz)


def _player(rate_hz: int) -> list[str] | None:
    """A command that plays raw s16le mono PCM from stdin, if one is installed."""
    if shutil.which("paplay"):
        return ["paplay", "--raw", "--channels=1", "--format=s16le", f"--rate={rate_hz}"]
    if shutil.which("aplay"):
        return ["aplay", "-q", "-t", "raw", "-f", "S16_LE", "-c", "1", "-r", str(rate_hz)]
    return None


class AudioSink:
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
        self._decoder = opus.Decoder(rate_hz, 1) if opus_packets else None
        self._chunks: dict[str, list[np.ndarray]] = {}
        self.utterances: dict[str, UtteranceAudio] = {}
        self._play_cmd = _player(rate_hz) if play else None
        if play and self._play_cmd is None:
            log.warning("--play: neither paplay nor aplay is installed; writing WAVs only")

    def feed(self, utterance_id: str, packet: bytes) -> np.ndarray:
        """Decode one packet of an utterance; returns its PCM (may be empty)."""
        u = self.utterances.setdefault(utterance_id, UtteranceAudio(utterance_id, self.rate_hz))
        chunks = self._chunks.setdefault(utterance_id, [])
        if not packet:
            return np.zeros(0, np.int16)
        u.packets += 1
        if self._decoder is None:
            pcm = np.frombuffer(packet[: len(packet) // 2 * 2], dtype="<i2").astype(np.int16)
        else:
            try:
                raw = self._decoder.decode(packet, self.rate_hz * 120 // 1000)
            except opus.OpusError as e:
                log.warning(
                    "utterance %s: a packet is not valid Opus (%s); skipped", utterance_id, e
                )
                return np.zeros(0, np.int16)
            pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
        chunks.append(pcm)
        return pcm

    def finish(self, utterance_id: str, *, interrupted: bool = False) -> UtteranceAudio:
        """Close an utterance: join its PCM, write its WAV, play it if asked."""
        u = self.utterances.setdefault(utterance_id, UtteranceAudio(utterance_id, self.rate_hz))
        if u.finished:
            return u
        chunks = self._chunks.pop(utterance_id, [])
        u.pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        u.finished, u.interrupted = True, interrupted
        if self.out_dir is not None and u.pcm.size:
            name = f"{len([x for x in self.utterances.values() if x.wav_path]):03d}_{_safe(utterance_id)}.wav"
            u.wav_path = write_wav_pcm16(self.out_dir / name, u.pcm, self.rate_hz)
        if self._play_cmd is not None and u.pcm.size and not interrupted:
            self._play(u.pcm)
        return u

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

    def finish_all(self) -> None:
        """Close utterances that never got their ``last`` packet (cut or stream ended)."""
        for uid in list(self._chunks):
            self.finish(uid, interrupted=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "utt"
