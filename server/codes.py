"""Every Notice and error code Murmur sends, in one table (a leaf: imports nothing).

A code names *what* happened, dotted ``component.what``; its row says which part
of the system it comes from and whether trying again may help. Code that raises
a ``Recoverable`` or sends a ``Notice`` names a ``Code`` member, never a string,
so a bridge author can read this file to learn every code the server may send.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["CODES", "Code", "CodeInfo"]


class Code(enum.StrEnum):
    # protocol: the client broke the contract, the message was dropped
    PROTOCOL_BAD_MESSAGE = "protocol.bad_message"
    PROTOCOL_UNKNOWN_EVENT = "protocol.unknown_event"
    PROTOCOL_UNKNOWN_FIELDS = "protocol.unknown_fields"
    PROTOCOL_DUPLICATE_START = "protocol.duplicate_start"
    PROTOCOL_TEXT_TOO_LONG = "protocol.text_too_long"  # cut to [server] max_text_bytes
    # session
    SESSION_RESUME_UNKNOWN = "session.resume_unknown"
    SESSION_IDLE = "session.idle"  # nothing arrived for [server] idle_timeout_s: closing
    # video
    FRAME_TOO_LARGE = "frame.too_large"
    FRAME_UNSUPPORTED = "frame.unsupported"
    FRAME_CORRUPT = "frame.corrupt"
    FRAME_TOO_MANY_PIXELS = "frame.too_many_pixels"  # its header claims more than is decoded
    FRAME_SEQ_RESET = "frame.seq_reset"  # VideoFrame.seq jumped or went back: re-anchored
    FRAME_CLOCK_JUMP = "frame.clock_jump"  # capture_time_ms jumped against arrival times
    STILL_TIMEOUT = "still.timeout"  # the bridge sent no still in time: the normal frame was used
    # audio in
    AUDIO_BAD_OPUS = "audio.bad_opus"
    AUDIO_BAD_PCM = "audio.bad_pcm"
    ASR_FAILED = "asr.failed"
    # speech out
    TTS_FAILED = "tts.failed"
    TTS_FALLBACK = "tts.fallback"
    TTS_RECOVERED = "tts.recovered"
    # the interaction model
    MODEL_ERROR = "model.error"
    MODEL_BAD_REPLY = "model.bad_reply"
    MODEL_REJECTED = "model.rejected"
    MODEL_UNAVAILABLE = "model.unavailable"
    MODEL_MEMORY = "model.memory"
    MODEL_CONTEXT_FULL = "model.context_full"
    MODEL_SLOW = "model.slow"  # a step outran [model] slow_step_s: ticks coalesce behind it
    # delegation
    AGENT_FAILED = "agent.failed"
    AGENT_UNCONFIGURED = "agent.unconfigured"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    component: str  # the Notice's component: which part of the system
    retryable: bool  # whether the same thing may work when tried again


CODES: dict[Code, CodeInfo] = {
    Code.PROTOCOL_BAD_MESSAGE: CodeInfo("protocol", False),
    Code.PROTOCOL_UNKNOWN_EVENT: CodeInfo("protocol", False),
    Code.PROTOCOL_UNKNOWN_FIELDS: CodeInfo("protocol", False),
    Code.PROTOCOL_DUPLICATE_START: CodeInfo("protocol", False),
    Code.PROTOCOL_TEXT_TOO_LONG: CodeInfo("protocol", False),
    Code.SESSION_RESUME_UNKNOWN: CodeInfo("session", False),
    Code.SESSION_IDLE: CodeInfo("session", True),
    Code.FRAME_TOO_LARGE: CodeInfo("video", False),
    Code.FRAME_UNSUPPORTED: CodeInfo("video", False),
    Code.FRAME_CORRUPT: CodeInfo("video", False),
    Code.FRAME_TOO_MANY_PIXELS: CodeInfo("video", False),
    Code.FRAME_SEQ_RESET: CodeInfo("video", False),
    Code.FRAME_CLOCK_JUMP: CodeInfo("video", False),
    Code.STILL_TIMEOUT: CodeInfo("video", True),
    Code.AUDIO_BAD_OPUS: CodeInfo("audio", False),
    Code.AUDIO_BAD_PCM: CodeInfo("audio", False),
    Code.ASR_FAILED: CodeInfo("asr", True),
    Code.TTS_FAILED: CodeInfo("tts", True),
    Code.TTS_FALLBACK: CodeInfo("tts", True),
    Code.TTS_RECOVERED: CodeInfo("tts", True),
    Code.MODEL_ERROR: CodeInfo("model", True),
    Code.MODEL_BAD_REPLY: CodeInfo("model", True),
    Code.MODEL_REJECTED: CodeInfo("model", False),
    Code.MODEL_UNAVAILABLE: CodeInfo("model", True),
    Code.MODEL_MEMORY: CodeInfo("model", True),
    Code.MODEL_CONTEXT_FULL: CodeInfo("model", False),
    Code.MODEL_SLOW: CodeInfo("model", True),
    Code.AGENT_FAILED: CodeInfo("agent", True),
    Code.AGENT_UNCONFIGURED: CodeInfo("agent", False),
}
