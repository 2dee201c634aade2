"""The WebSocket vocabulary between the phone page and the relay.

Text frames are JSON objects with a ``type``; binary frames carry media and start
with one tag byte. Kept tiny and explicit on purpose (the page's app.js mirrors it):

page → relay, binary: ``FRAME`` / ``STILL`` + u64 capture time (unix ms, big-endian)
+ JPEG bytes; ``PCM`` + u64 capture time + little-endian int16 mono at ``MIC_RATE_HZ``.

relay → page, binary: ``SPEECH_PCM`` + u8 id length + utterance id (UTF-8) + little-endian
int16 mono at ``OUT_RATE_HZ``.

page → relay, text, ``motion``: ``{"t0": unix ms of the first sample, "rate": Hz, "x": [],
"y": [], "z": []}``, accelerometer samples with gravity (m/s², as
``DeviceMotionEvent.accelerationIncludingGravity`` gives them), evenly spaced, about
``MOTION_BATCH_S`` a batch. The page sends them only while the server asks
(``SessionReady.motion_hz``, passed on as ``motion_hz`` in ``ready`` and ``welcome``),
resampled to that rate. ``parse_motion`` checks the shape; the server judges the values.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "FRAME",
    "MAX_MOTION_SAMPLES",
    "MIC_RATE_HZ",
    "MOTION_BATCH_S",
    "OUT_RATE_HZ",
    "PCM",
    "SPEECH_PCM",
    "STILL",
    "Media",
    "MotionBatch",
    "WireError",
    "parse_media",
    "parse_motion",
    "speech_packet",
]

FRAME = 0x01
STILL = 0x02
PCM = 0x03
SPEECH_PCM = 0x10
MIC_RATE_HZ = 16000
OUT_RATE_HZ = 24000
MOTION_BATCH_S = 0.5  # the page's batch length (app.js); the contract allows 0.1..1 s
MAX_MOTION_SAMPLES = 4096  # the server's own limit for one batch
_STAMP = struct.Struct(">Q")


class WireError(ValueError):
    """A binary frame the relay cannot use (said to the page, the session goes on)."""


@dataclass(frozen=True, slots=True)
class Media:
    tag: int
    capture_time_ms: int
    data: bytes


def parse_media(frame: bytes) -> Media:
    """One binary frame from the page."""
    if len(frame) < 1 + _STAMP.size or frame[0] not in (FRAME, STILL, PCM):
        raise WireError("a binary message from the page has no known media tag")
    (stamp,) = _STAMP.unpack_from(frame, 1)
    data = bytes(frame[1 + _STAMP.size :])
    if frame[0] == PCM and len(data) % 2:
        raise WireError("microphone PCM must be whole 16-bit samples")
    return Media(frame[0], stamp, data)


def speech_packet(utterance_id: str, pcm16le: bytes) -> bytes:
    """Decoded speech for the page's player."""
    uid = utterance_id.encode()[:255]
    return bytes((SPEECH_PCM, len(uid))) + uid + pcm16le


@dataclass(frozen=True, slots=True)
class MotionBatch:
    first_sample_time_ms: int
    rate_hz: float
    samples: list[tuple[float, float, float]]


def parse_motion(msg: dict[str, object]) -> MotionBatch:
    """A ``motion`` message from the page; WireError when it is not one."""
    t0, rate = msg.get("t0"), msg.get("rate")
    xs, ys, zs = msg.get("x"), msg.get("y"), msg.get("z")
    if not isinstance(t0, int | float) or not isinstance(rate, int | float):
        raise WireError("a motion batch needs a numeric t0 and rate")
    if not (isinstance(xs, list) and isinstance(ys, list) and isinstance(zs, list)):
        raise WireError("a motion batch needs x, y and z lists")
    if not len(xs) == len(ys) == len(zs) or not 0 < len(xs) <= MAX_MOTION_SAMPLES:
        raise WireError(f"a motion batch needs 1..{MAX_MOTION_SAMPLES} samples per axis, alike")
    samples = []
    for x, y, z in zip(xs, ys, zs, strict=True):
        if not (
            isinstance(x, int | float) and isinstance(y, int | float) and isinstance(z, int | float)
        ):
            raise WireError("a motion batch holds numbers only (m/s²)")
        samples.append((float(x), float(y), float(z)))
    return MotionBatch(int(t0), float(rate), samples)
