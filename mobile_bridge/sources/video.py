"""Recorded video for the file source: a video file, a folder of stills, or one still,
sampled into ``(media seconds, JPEG)`` pairs.

Blocking (decode, scale, encode): the replay source pulls from these iterators in a
worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from mobile_bridge.media import MediaError, encode_jpeg, scaled_size

__all__ = ["STILL_SUFFIXES", "iter_video_frames"]

STILL_SUFFIXES = (".jpg", ".jpeg", ".png")


def iter_video_frames(
    path: str | Path, fps: float, max_side: int = 640, jpeg_quality: int = 80
) -> Iterator[tuple[float, bytes]]:
    """``(media time in seconds, JPEG bytes)`` sampled at ``fps`` from a video or a
    folder of stills (sorted by name, one every ``1/fps`` seconds).

    Frames are picked by timestamp: the first frame at or after each sample time.
    A missing path raises ``MediaError`` here; an unreadable file on the first ``next``.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    p = Path(path)
    if not p.exists():
        raise MediaError(f"video not found: {p}")
    if p.is_dir():
        return _iter_stills(p, fps, max_side, jpeg_quality)
    if p.suffix.lower() in STILL_SUFFIXES:
        return _iter_one_still(p, max_side, jpeg_quality)
    return _iter_video(p, fps, max_side, jpeg_quality)


def _read_still(path: Path, max_side: int, quality: int) -> bytes:
    try:
        with Image.open(path) as im:
            return encode_jpeg(im, max_side, quality)
    except OSError as e:
        raise MediaError(f"cannot read the still {path}: {e}") from e


def _iter_stills(
    folder: Path, fps: float, max_side: int, quality: int
) -> Iterator[tuple[float, bytes]]:
    stills = sorted(p for p in folder.iterdir() if p.suffix.lower() in STILL_SUFFIXES)
    if not stills:
        raise MediaError(f"{folder} holds no .jpg or .png stills to replay")
    for i, path in enumerate(stills):
        yield i / fps, _read_still(path, max_side, quality)


def _iter_one_still(path: Path, max_side: int, quality: int) -> Iterator[tuple[float, bytes]]:
    yield 0.0, _read_still(path, max_side, quality)


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
                w, h = scaled_size(frame.width, frame.height, max_side)
                image = frame.reformat(width=w, height=h, format="rgb24").to_image()
                yield t, encode_jpeg(image, max_side, quality)
                while next_t <= t + 1e-6:
                    next_t += period
        except av.FFmpegError as e:
            raise MediaError(f"{path} stopped decoding part-way: {e}") from e
        if start is None:
            raise MediaError(f"{path} has a video stream but no decodable frames")
