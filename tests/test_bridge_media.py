"""The bridge's media: video → JPEG stills by timestamp, WAV → Opus → WAV."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import opuslib_next as opus
import pytest
from PIL import Image

from mobile_bridge.media import (
    MediaError,
    OpusPacketizer,
    decode_jpeg_size,
    read_wav_pcm16,
    write_wav_pcm16,
)
from mobile_bridge.sinks.audio import AudioSink
from mobile_bridge.sources.video import iter_video_frames
from mobile_bridge.synth import write_synthetic_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_clip(tmp_path_factory.mktemp("clip") / "walk.mp4", 4.0, 15.0)


def _voice_like(rate: int, seconds: float) -> np.ndarray:
    """Harmonics of a gliding pitch under a syllable-rate envelope: speech-shaped."""
    t = np.arange(int(rate * seconds)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t)
    return (x * env / np.max(np.abs(x)) * 12000).astype(np.int16)


def _best_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> float:
    """Peak normalised correlation of ``b`` against ``a`` over codec delays 0..max_lag."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    best = 0.0
    for lag in range(max_lag + 1):
        n = min(a64.size, b64.size - lag)
        x, y = a64[:n], b64[lag : lag + n]
        best = max(best, float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-9)))
    return best


def test_video_is_sampled_by_time_into_jpegs(clip: Path):
    frames = list(iter_video_frames(clip, fps=1.0))
    assert len(frames) == 4  # t = 0, 1, 2, 3 of a 4 s clip
    times = [t for t, _ in frames]
    assert times == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.07)
    for _, data in frames:
        assert data[:2] == b"\xff\xd8"
        assert decode_jpeg_size(data) == (640, 480)
    # The corridor moves: consecutive stills differ.
    assert len({data for _, data in frames}) == 4


def test_higher_rate_and_downscale(clip: Path):
    frames = list(iter_video_frames(clip, fps=2.5, max_side=320))
    assert 9 <= len(frames) <= 11
    gaps = np.diff([t for t, _ in frames])
    assert np.all(gaps > 0.3) and np.all(gaps < 0.5)
    assert decode_jpeg_size(frames[0][1]) == (320, 240)


def test_folder_of_stills(tmp_path: Path):
    for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (1280, 720), color).save(tmp_path / f"{i:02d}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    frames = list(iter_video_frames(tmp_path, fps=2.0))
    assert [t for t, _ in frames] == [0.0, 0.5, 1.0]
    assert decode_jpeg_size(frames[0][1]) == (640, 360)
    with Image.open(io.BytesIO(frames[1][1])) as im:
        r, g, b = im.convert("RGB").getpixel((10, 10))
    assert g > 200 and r < 50 and b < 50


def test_missing_and_unreadable_media_say_so(tmp_path: Path):
    with pytest.raises(MediaError, match="not found"):
        iter_video_frames(tmp_path / "nope.mp4", fps=1.0)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video at all" * 50)
    with pytest.raises(MediaError, match=r"bad\.mp4"):
        list(iter_video_frames(bad, fps=1.0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match=r"no \.jpg or \.png"):
        list(iter_video_frames(tmp_path / "empty", fps=1.0))
    with pytest.raises(MediaError, match="not found"):
        read_wav_pcm16(tmp_path / "nope.wav", 16000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(MediaError, match="not a PCM WAV"):
        read_wav_pcm16(tmp_path / "bad.wav", 16000)


def test_stereo_wav_is_mixed_down_and_resampled(tmp_path: Path):
    rate = 44100
    t = np.arange(rate) / rate
    left = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    stereo = np.stack([left, left], axis=1)
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(stereo.astype("<i2").tobytes())
    pcm = read_wav_pcm16(path, 16000)
    assert pcm.dtype == np.int16
    assert abs(pcm.size - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    assert abs(np.argmax(spectrum) * 16000 / pcm.size - 440) < 3
    assert 5000 < np.max(np.abs(pcm)) < 9000


def test_wav_to_opus_packets_and_back(tmp_path: Path):
    src = _voice_like(16000, 1.01)  # 50.5 frames: the last one is padded
    path = write_wav_pcm16(tmp_path / "voice.wav", src, 16000)
    pcm = read_wav_pcm16(path, 16000)
    np.testing.assert_array_equal(pcm, src)

    packer = OpusPacketizer(16000)
    assert packer.frame_samples == 320
    packets = list(packer.packets(pcm))
    assert len(packets) == 51
    assert all(0 < len(p) < 400 for p in packets)

    dec = opus.Decoder(16000, 1)
    out = np.concatenate([np.frombuffer(dec.decode(p, 320), dtype="<i2") for p in packets]).astype(
        np.int16
    )
    assert out.size == 51 * 320  # every packet is exactly 20 ms
    rms_in = np.sqrt(np.mean(src.astype(np.float64) ** 2))
    rms_out = np.sqrt(np.mean(out[: src.size].astype(np.float64) ** 2))
    assert 0.6 < rms_out / rms_in < 1.4
    assert _best_correlation(src[:12000], out, max_lag=400) > 0.8


def test_audio_sink_writes_one_wav_per_utterance(tmp_path: Path):
    src = _voice_like(24000, 0.3)
    packets = list(OpusPacketizer(24000).packets(src))
    sink = AudioSink(24000, out_dir=tmp_path / "out")
    for p in packets:
        sink.feed("u1", p)
    sink.feed("u2", packets[0])
    u1 = sink.finish("u1")
    sink.finish_all()
    assert u1.finished and not u1.interrupted and u1.packets == len(packets)
    assert u1.pcm.size == len(packets) * 480
    assert sink.utterances["u2"].interrupted
    wavs = sorted((tmp_path / "out").glob("*.wav"))
    assert [w.name for w in wavs] == ["000_u1.wav", "001_u2.wav"]
    with wave.open(str(wavs[0])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (24000, 1, u1.pcm.size)


def test_a_walks_audio_sink_keeps_durations_not_pcm(tmp_path: Path):
    """A walk may last hours: without ``--out`` nothing is decoded or kept here (the
    player decodes its own); with it, each utterance's PCM goes once written."""
    packets = list(OpusPacketizer(24000).packets(_voice_like(24000, 0.3)))
    bare = AudioSink(24000, keep_pcm=False)
    written = AudioSink(24000, out_dir=tmp_path / "out", keep_pcm=False)
    for sink in (bare, written):
        for n in range(3):
            for p in packets:
                sink.feed(f"u{n}", p)
            sink.finish(f"u{n}")
        assert all(u.pcm.size == 0 for u in sink.utterances.values())
        assert [u.duration_ms for u in sink.utterances.values()] == [len(packets) * 20] * 3
    assert bare._decoder is None  # never decoded: the packets' own headers say how long
    assert [w.name for w in sorted((tmp_path / "out").glob("*.wav"))] == [
        "000_u0.wav",
        "001_u1.wav",
        "002_u2.wav",
    ]
