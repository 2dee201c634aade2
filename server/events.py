"""Domain events: what a session receives and emits, free of any wire format.

``server/transport/convert.py`` is the only place that turns these into protobuf
messages and back. Everything else in the server speaks these types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

from server.codes import CODES, Code

__all__ = [
    "AskNow",
    "AudioEncoding",
    "AudioFormat",
    "AudioIn",
    "AudioOut",
    "CaptureHint",
    "ClientEvent",
    "Cue",
    "CueKind",
    "DelegationState",
    "DelegationUpdate",
    "FrameIn",
    "GoAway",
    "Lane",
    "LocationIn",
    "Mode",
    "MotionIn",
    "Notice",
    "PauseWatching",
    "PlaybackReport",
    "ServerEvent",
    "SessionReady",
    "SessionStart",
    "SetMode",
    "SetVolume",
    "Speech",
    "SpeechKind",
    "StageTiming",
    "StillRequest",
    "StopSpeaking",
    "StopSpeakingNow",
    "TextIn",
    "TickTrace",
    "Transcript",
    "VideoEncoding",
]


class Mode(enum.StrEnum):
    GENERAL = "general"
    BLIND = "blind"
    NAVIGATION = "navigation"
    SHOPPING = "shopping"


class AudioEncoding(enum.StrEnum):
    OPUS = "opus"
    PCM16 = "pcm16"


class VideoEncoding(enum.StrEnum):
    JPEG = "jpeg"
    H264 = "h264"


class SpeechKind(enum.StrEnum):
    ALERT = "alert"
    ANSWER = "answer"
    NARRATION = "narration"
    DELEGATION_NOTE = "delegation_note"
    DELEGATION_RESULT = "delegation_result"
    SYSTEM = "system"


class CueKind(enum.StrEnum):
    HAZARD = "hazard"
    ATTENTION = "attention"
    THINKING = "thinking"
    DONE = "done"


class DelegationState(enum.StrEnum):
    STARTED = "started"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class AudioFormat:
    encoding: AudioEncoding = AudioEncoding.OPUS
    sample_rate_hz: int = 16000
    frame_ms: int = 20

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate_hz * self.frame_ms // 1000


# ------------------------------------------------------------------ client events


@dataclass(frozen=True, slots=True)
class SessionStart:
    mode: Mode = Mode.GENERAL
    language: str = "en"
    voice: str = ""
    volume: float = 0.0
    audio_in: AudioFormat = field(default_factory=AudioFormat)
    audio_out: AudioFormat = field(default_factory=lambda: AudioFormat(sample_rate_hz=24000))
    video_encoding: VideoEncoding = VideoEncoding.JPEG
    speaker: bool = True
    haptics: bool = False
    resume_token: str = field(default="", repr=False)  # a bearer secret for the session
    instruction_override: str = ""
    want_trace: bool = False
    client_name: str = ""


@dataclass(frozen=True, slots=True)
class FrameIn:
    seq: int
    capture_time_ms: int
    encoding: VideoEncoding
    data: bytes
    high_res: bool = False


@dataclass(frozen=True, slots=True)
class AudioIn:
    seq: int
    capture_time_ms: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TextIn:
    text: str
    from_phone_asr: bool = False


@dataclass(frozen=True, slots=True)
class SetMode:
    mode: Mode


@dataclass(frozen=True, slots=True)
class PauseWatching:
    paused: bool


@dataclass(frozen=True, slots=True)
class StopSpeakingNow:
    pass


@dataclass(frozen=True, slots=True)
class SetVolume:
    volume: float


@dataclass(frozen=True, slots=True)
class AskNow:
    question: str = ""


@dataclass(frozen=True, slots=True)
class LocationIn:
    lat: float
    lon: float
    accuracy_m: float = 0.0
    heading_deg: float = 0.0
    speed_mps: float = 0.0
    route_step: str = ""
    time_ms: int = 0


@dataclass(frozen=True, slots=True)
class MotionIn:
    """A batch of accelerometer samples, gravity included (``DeviceMotion`` on the
    wire): m/s² per axis, evenly spaced at ``sample_rate_hz`` from the first sample's
    client time. Checked, and fed to the fall detector, by the session."""

    first_sample_time_ms: int
    sample_rate_hz: float
    x: tuple[float, ...]
    y: tuple[float, ...]
    z: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class PlaybackReport:
    utterance_id: str
    played_ms: int
    finished: bool = False
    interrupted: bool = False


ClientEvent = (
    SessionStart
    | FrameIn
    | AudioIn
    | TextIn
    | SetMode
    | PauseWatching
    | StopSpeakingNow
    | SetVolume
    | AskNow
    | LocationIn
    | MotionIn
    | PlaybackReport
)


# ------------------------------------------------------------------ server events


class Lane(enum.Enum):
    """How an outbound event travels (pipecat's system / data frames, by type).

    The session's outbox routes every event by its type's lane; no caller picks one.
    """

    DATA = "data"  # in order, bounded: a slow client back-pressures the producer
    SPEECH = "speech"  # like DATA, but dropped from the queue when its utterance is cut
    IMMEDIATE = "immediate"  # ahead of everything queued, never waits for room


@dataclass(frozen=True, slots=True)
class SessionReady:
    lane: ClassVar[Lane] = Lane.DATA

    session_id: str
    resume_token: str = field(repr=False)  # a bearer secret for the session
    audio_in: AudioFormat
    audio_out: AudioFormat
    model: str
    tick_hz: float
    mode: Mode
    motion_hz: float = 0.0  # > 0: DeviceMotion wanted at this rate (fall detection)


@dataclass(frozen=True, slots=True)
class Speech:
    lane: ClassVar[Lane] = Lane.DATA

    utterance_id: str
    text: str
    kind: SpeechKind
    priority: int = 0


@dataclass(frozen=True, slots=True)
class AudioOut:
    lane: ClassVar[Lane] = Lane.SPEECH

    utterance_id: str
    seq: int
    data: bytes
    last: bool = False


@dataclass(frozen=True, slots=True)
class StopSpeaking:
    lane: ClassVar[Lane] = Lane.IMMEDIATE

    utterance_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Cue:
    lane: ClassVar[Lane] = Lane.DATA

    kind: CueKind
    intensity: float = 0.5
    clock_direction: int = 0


@dataclass(frozen=True, slots=True)
class Transcript:
    lane: ClassVar[Lane] = Lane.DATA

    text: str
    final: bool
    utterance_id: str = ""


@dataclass(frozen=True, slots=True)
class DelegationUpdate:
    lane: ClassVar[Lane] = Lane.DATA

    task_id: str
    state: DelegationState
    question: str = ""
    summary: str = ""


@dataclass(frozen=True, slots=True)
class StillRequest:
    lane: ClassVar[Lane] = Lane.DATA

    reason: str = ""


@dataclass(frozen=True, slots=True)
class StageTiming:
    stage: str
    ms: float


@dataclass(frozen=True, slots=True)
class TickTrace:
    lane: ClassVar[Lane] = Lane.DATA

    tick_s: float
    action: str
    text: str = ""
    user_query: str = ""
    frame_age_ms: float = -1.0
    timings: tuple[StageTiming, ...] = ()
    coalesced: int = 0
    slip_ms: float = 0.0
    # Utterances not played out so far in the session: ("reason/kind", count), sorted.
    dropped: tuple[tuple[str, int], ...] = ()
    batch_size: int = 1  # sessions whose ticks shared this tick's model forward
    model_wait_ms: float = 0.0  # waited for the model, apart from the step itself


@dataclass(frozen=True, slots=True)
class Notice:
    lane: ClassVar[Lane] = Lane.DATA

    code: str
    message: str
    component: str = "server"
    retryable: bool = False

    @classmethod
    def of(cls, code: Code, message: str) -> Notice:
        """A Notice with the component and retryability ``server/codes.py`` gives ``code``."""
        info = CODES[code]
        return cls(code, message, info.component, info.retryable)


@dataclass(frozen=True, slots=True)
class CaptureHint:
    """How often frames are worth capturing now (battery); advice the bridge may ignore.

    Immediate: a restore must not wait behind queued audio, and it is a few bytes."""

    lane: ClassVar[Lane] = Lane.IMMEDIATE

    fps: float
    reason: str  # "static", or what ended it (companion.proto lists them)


@dataclass(frozen=True, slots=True)
class GoAway:
    lane: ClassVar[Lane] = Lane.IMMEDIATE

    reconnect_after_ms: int
    reason: str = ""


ServerEvent = (
    SessionReady
    | Speech
    | AudioOut
    | StopSpeaking
    | Cue
    | Transcript
    | DelegationUpdate
    | StillRequest
    | TickTrace
    | Notice
    | GoAway
    | CaptureHint
)
