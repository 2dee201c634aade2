"""The WebSocket vocabulary between the phone page and the relay.

Text frames are JSON objects with a ``type``; binary frames carry media and start
with one tag byte. Kept tiny and explicit on purpose (the page's app.js mirrors it):

page → relay, binary: ``FRAME`` / ``STILL`` + u64 capture time (unix ms, big-endian)
+ JPEG bytes; ``PCM`` + u64 capture time + little-endian int16 mono at ``MIC_RATE_HZ``.

relay → page, binary: ``SPEECH_PCM`` + u8 id length + utterance id (UTF-8) + little-endian
int16 mono at ``OUT_RATE_HZ``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "FRAME",
    "MIC_RATE_HZ",
    "OUT_RATE_HZ",
    "PCM",
    "SPEECH_PCM",
    "STILL",
    "Media",
    "WireError",
    "parse_media",
    "speech_packet",
]

FRAME = 0x01
STILL = 0x02
PCM = 0x03
SPEECH_PCM = 0x10
MIC_RATE_HZ = 16000
OUT_RATE_HZ = 24000
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
