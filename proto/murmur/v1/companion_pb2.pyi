from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_GENERAL: _ClassVar[Mode]
    MODE_BLIND: _ClassVar[Mode]
    MODE_NAVIGATION: _ClassVar[Mode]
    MODE_SHOPPING: _ClassVar[Mode]

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_OPUS: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_PCM16: _ClassVar[AudioEncoding]

class VideoEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIDEO_ENCODING_UNSPECIFIED: _ClassVar[VideoEncoding]
    VIDEO_ENCODING_JPEG: _ClassVar[VideoEncoding]
    VIDEO_ENCODING_H264: _ClassVar[VideoEncoding]

class SpeechKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEECH_KIND_UNSPECIFIED: _ClassVar[SpeechKind]
    SPEECH_KIND_ALERT: _ClassVar[SpeechKind]
    SPEECH_KIND_ANSWER: _ClassVar[SpeechKind]
    SPEECH_KIND_NARRATION: _ClassVar[SpeechKind]
    SPEECH_KIND_DELEGATION_NOTE: _ClassVar[SpeechKind]
    SPEECH_KIND_DELEGATION_RESULT: _ClassVar[SpeechKind]
    SPEECH_KIND_SYSTEM: _ClassVar[SpeechKind]

class CueKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUE_KIND_UNSPECIFIED: _ClassVar[CueKind]
    CUE_KIND_HAZARD: _ClassVar[CueKind]
    CUE_KIND_ATTENTION: _ClassVar[CueKind]
    CUE_KIND_THINKING: _ClassVar[CueKind]
    CUE_KIND_DONE: _ClassVar[CueKind]

class DelegationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELEGATION_STATE_UNSPECIFIED: _ClassVar[DelegationState]
    DELEGATION_STATE_STARTED: _ClassVar[DelegationState]
    DELEGATION_STATE_RUNNING: _ClassVar[DelegationState]
    DELEGATION_STATE_DONE: _ClassVar[DelegationState]
    DELEGATION_STATE_FAILED: _ClassVar[DelegationState]
    DELEGATION_STATE_CANCELLED: _ClassVar[DelegationState]
MODE_UNSPECIFIED: Mode
MODE_GENERAL: Mode
MODE_BLIND: Mode
MODE_NAVIGATION: Mode
MODE_SHOPPING: Mode
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
AUDIO_ENCODING_OPUS: AudioEncoding
AUDIO_ENCODING_PCM16: AudioEncoding
VIDEO_ENCODING_UNSPECIFIED: VideoEncoding
VIDEO_ENCODING_JPEG: VideoEncoding
VIDEO_ENCODING_H264: VideoEncoding
SPEECH_KIND_UNSPECIFIED: SpeechKind
SPEECH_KIND_ALERT: SpeechKind
SPEECH_KIND_ANSWER: SpeechKind
SPEECH_KIND_NARRATION: SpeechKind
SPEECH_KIND_DELEGATION_NOTE: SpeechKind
SPEECH_KIND_DELEGATION_RESULT: SpeechKind
SPEECH_KIND_SYSTEM: SpeechKind
CUE_KIND_UNSPECIFIED: CueKind
CUE_KIND_HAZARD: CueKind
CUE_KIND_ATTENTION: CueKind
CUE_KIND_THINKING: CueKind
CUE_KIND_DONE: CueKind
DELEGATION_STATE_UNSPECIFIED: DelegationState
DELEGATION_STATE_STARTED: DelegationState
DELEGATION_STATE_RUNNING: DelegationState
DELEGATION_STATE_DONE: DelegationState
DELEGATION_STATE_FAILED: DelegationState
DELEGATION_STATE_CANCELLED: DelegationState

class PairRequest(_message.Message):
    __slots__ = ("code", "device_name")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    code: str
    device_name: str
    def __init__(self, code: _Optional[str] = ..., device_name: _Optional[str] = ...) -> None: ...

class PairResponse(_message.Message):
    __slots__ = ("device_token", "device_id")
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_token: str
    device_id: str
    def __init__(self, device_token: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class ClientEvent(_message.Message):
    __slots__ = ("session_start", "video_frame", "audio_chunk", "text_input", "control", "location", "playback_report", "device_motion")
    SESSION_START_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FRAME_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHUNK_FIELD_NUMBER: _ClassVar[int]
    TEXT_INPUT_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    PLAYBACK_REPORT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MOTION_FIELD_NUMBER: _ClassVar[int]
    session_start: SessionStart
    video_frame: VideoFrame
    audio_chunk: AudioChunk
    text_input: TextInput
    control: Control
    location: Location
    playback_report: PlaybackReport
    device_motion: DeviceMotion
    def __init__(self, session_start: _Optional[_Union[SessionStart, _Mapping]] = ..., video_frame: _Optional[_Union[VideoFrame, _Mapping]] = ..., audio_chunk: _Optional[_Union[AudioChunk, _Mapping]] = ..., text_input: _Optional[_Union[TextInput, _Mapping]] = ..., control: _Optional[_Union[Control, _Mapping]] = ..., location: _Optional[_Union[Location, _Mapping]] = ..., playback_report: _Optional[_Union[PlaybackReport, _Mapping]] = ..., device_motion: _Optional[_Union[DeviceMotion, _Mapping]] = ...) -> None: ...

class AudioFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz", "frame_ms")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    FRAME_MS_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hz: int
    frame_ms: int
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., frame_ms: _Optional[int] = ...) -> None: ...

class GlassesCapabilities(_message.Message):
    __slots__ = ("speaker", "haptics", "display")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    HAPTICS_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    speaker: bool
    haptics: bool
    display: bool
    def __init__(self, speaker: _Optional[bool] = ..., haptics: _Optional[bool] = ..., display: _Optional[bool] = ...) -> None: ...

class SessionStart(_message.Message):
    __slots__ = ("mode", "language", "voice", "volume", "audio_in", "audio_out", "video_encoding", "capabilities", "resume_token", "instruction_override", "want_trace", "client_name")
    MODE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    AUDIO_IN_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OUT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ENCODING_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    WANT_TRACE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    mode: Mode
    language: str
    voice: str
    volume: float
    audio_in: AudioFormat
    audio_out: AudioFormat
    video_encoding: VideoEncoding
    capabilities: GlassesCapabilities
    resume_token: str
    instruction_override: str
    want_trace: bool
    client_name: str
    def __init__(self, mode: _Optional[_Union[Mode, str]] = ..., language: _Optional[str] = ..., voice: _Optional[str] = ..., volume: _Optional[float] = ..., audio_in: _Optional[_Union[AudioFormat, _Mapping]] = ..., audio_out: _Optional[_Union[AudioFormat, _Mapping]] = ..., video_encoding: _Optional[_Union[VideoEncoding, str]] = ..., capabilities: _Optional[_Union[GlassesCapabilities, _Mapping]] = ..., resume_token: _Optional[str] = ..., instruction_override: _Optional[str] = ..., want_trace: _Optional[bool] = ..., client_name: _Optional[str] = ...) -> None: ...

class VideoFrame(_message.Message):
    __slots__ = ("seq", "capture_time_ms", "encoding", "data", "high_res")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    HIGH_RES_FIELD_NUMBER: _ClassVar[int]
    seq: int
    capture_time_ms: int
    encoding: VideoEncoding
    data: bytes
    high_res: bool
    def __init__(self, seq: _Optional[int] = ..., capture_time_ms: _Optional[int] = ..., encoding: _Optional[_Union[VideoEncoding, str]] = ..., data: _Optional[bytes] = ..., high_res: _Optional[bool] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("seq", "capture_time_ms", "data")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    seq: int
    capture_time_ms: int
    data: bytes
    def __init__(self, seq: _Optional[int] = ..., capture_time_ms: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class TextInput(_message.Message):
    __slots__ = ("text", "from_phone_asr")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FROM_PHONE_ASR_FIELD_NUMBER: _ClassVar[int]
    text: str
    from_phone_asr: bool
    def __init__(self, text: _Optional[str] = ..., from_phone_asr: _Optional[bool] = ...) -> None: ...

class Control(_message.Message):
    __slots__ = ("set_mode", "pause_watching", "stop_speaking", "set_volume", "ask_now")
    SET_MODE_FIELD_NUMBER: _ClassVar[int]
    PAUSE_WATCHING_FIELD_NUMBER: _ClassVar[int]
    STOP_SPEAKING_FIELD_NUMBER: _ClassVar[int]
    SET_VOLUME_FIELD_NUMBER: _ClassVar[int]
    ASK_NOW_FIELD_NUMBER: _ClassVar[int]
    set_mode: Mode
    pause_watching: bool
    stop_speaking: StopSpeakingNow
    set_volume: float
    ask_now: AskNow
    def __init__(self, set_mode: _Optional[_Union[Mode, str]] = ..., pause_watching: _Optional[bool] = ..., stop_speaking: _Optional[_Union[StopSpeakingNow, _Mapping]] = ..., set_volume: _Optional[float] = ..., ask_now: _Optional[_Union[AskNow, _Mapping]] = ...) -> None: ...

class StopSpeakingNow(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AskNow(_message.Message):
    __slots__ = ("question",)
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    question: str
    def __init__(self, question: _Optional[str] = ...) -> None: ...

class Location(_message.Message):
    __slots__ = ("lat", "lon", "accuracy_m", "heading_deg", "speed_mps", "route_step", "time_ms")
    LAT_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_M_FIELD_NUMBER: _ClassVar[int]
    HEADING_DEG_FIELD_NUMBER: _ClassVar[int]
    SPEED_MPS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_STEP_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    lat: float
    lon: float
    accuracy_m: float
    heading_deg: float
    speed_mps: float
    route_step: str
    time_ms: int
    def __init__(self, lat: _Optional[float] = ..., lon: _Optional[float] = ..., accuracy_m: _Optional[float] = ..., heading_deg: _Optional[float] = ..., speed_mps: _Optional[float] = ..., route_step: _Optional[str] = ..., time_ms: _Optional[int] = ...) -> None: ...

class PlaybackReport(_message.Message):
    __slots__ = ("utterance_id", "played_ms", "finished", "interrupted")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYED_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    utterance_id: str
    played_ms: int
    finished: bool
    interrupted: bool
    def __init__(self, utterance_id: _Optional[str] = ..., played_ms: _Optional[int] = ..., finished: _Optional[bool] = ..., interrupted: _Optional[bool] = ...) -> None: ...

class DeviceMotion(_message.Message):
    __slots__ = ("first_sample_time_ms", "sample_rate_hz", "x", "y", "z")
    FIRST_SAMPLE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    first_sample_time_ms: int
    sample_rate_hz: float
    x: _containers.RepeatedScalarFieldContainer[float]
    y: _containers.RepeatedScalarFieldContainer[float]
    z: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, first_sample_time_ms: _Optional[int] = ..., sample_rate_hz: _Optional[float] = ..., x: _Optional[_Iterable[float]] = ..., y: _Optional[_Iterable[float]] = ..., z: _Optional[_Iterable[float]] = ...) -> None: ...

class ServerEvent(_message.Message):
    __slots__ = ("session_ready", "speech", "audio_out", "stop_speaking", "cue", "transcript", "delegation_update", "still_request", "tick", "notice", "go_away", "capture_hint")
    SESSION_READY_FIELD_NUMBER: _ClassVar[int]
    SPEECH_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OUT_FIELD_NUMBER: _ClassVar[int]
    STOP_SPEAKING_FIELD_NUMBER: _ClassVar[int]
    CUE_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    DELEGATION_UPDATE_FIELD_NUMBER: _ClassVar[int]
    STILL_REQUEST_FIELD_NUMBER: _ClassVar[int]
    TICK_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    GO_AWAY_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_HINT_FIELD_NUMBER: _ClassVar[int]
    session_ready: SessionReady
    speech: Speech
    audio_out: AudioOut
    stop_speaking: StopSpeaking
    cue: Cue
    transcript: Transcript
    delegation_update: DelegationUpdate
    still_request: StillRequest
    tick: Tick
    notice: Notice
    go_away: GoAway
    capture_hint: CaptureHint
    def __init__(self, session_ready: _Optional[_Union[SessionReady, _Mapping]] = ..., speech: _Optional[_Union[Speech, _Mapping]] = ..., audio_out: _Optional[_Union[AudioOut, _Mapping]] = ..., stop_speaking: _Optional[_Union[StopSpeaking, _Mapping]] = ..., cue: _Optional[_Union[Cue, _Mapping]] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., delegation_update: _Optional[_Union[DelegationUpdate, _Mapping]] = ..., still_request: _Optional[_Union[StillRequest, _Mapping]] = ..., tick: _Optional[_Union[Tick, _Mapping]] = ..., notice: _Optional[_Union[Notice, _Mapping]] = ..., go_away: _Optional[_Union[GoAway, _Mapping]] = ..., capture_hint: _Optional[_Union[CaptureHint, _Mapping]] = ...) -> None: ...

class SessionReady(_message.Message):
    __slots__ = ("session_id", "resume_token", "audio_in", "audio_out", "model", "tick_hz", "mode", "motion_hz")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AUDIO_IN_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TICK_HZ_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MOTION_HZ_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    resume_token: str
    audio_in: AudioFormat
    audio_out: AudioFormat
    model: str
    tick_hz: float
    mode: Mode
    motion_hz: float
    def __init__(self, session_id: _Optional[str] = ..., resume_token: _Optional[str] = ..., audio_in: _Optional[_Union[AudioFormat, _Mapping]] = ..., audio_out: _Optional[_Union[AudioFormat, _Mapping]] = ..., model: _Optional[str] = ..., tick_hz: _Optional[float] = ..., mode: _Optional[_Union[Mode, str]] = ..., motion_hz: _Optional[float] = ...) -> None: ...

class Speech(_message.Message):
    __slots__ = ("utterance_id", "text", "kind", "priority")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    utterance_id: str
    text: str
    kind: SpeechKind
    priority: int
    def __init__(self, utterance_id: _Optional[str] = ..., text: _Optional[str] = ..., kind: _Optional[_Union[SpeechKind, str]] = ..., priority: _Optional[int] = ...) -> None: ...

class AudioOut(_message.Message):
    __slots__ = ("utterance_id", "seq", "data", "last")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    utterance_id: str
    seq: int
    data: bytes
    last: bool
    def __init__(self, utterance_id: _Optional[str] = ..., seq: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class StopSpeaking(_message.Message):
    __slots__ = ("utterance_ids", "reason")
    UTTERANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    utterance_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, utterance_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class Cue(_message.Message):
    __slots__ = ("kind", "intensity", "clock_direction")
    KIND_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_FIELD_NUMBER: _ClassVar[int]
    CLOCK_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    kind: CueKind
    intensity: float
    clock_direction: int
    def __init__(self, kind: _Optional[_Union[CueKind, str]] = ..., intensity: _Optional[float] = ..., clock_direction: _Optional[int] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("text", "final", "utterance_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    final: bool
    utterance_id: str
    def __init__(self, text: _Optional[str] = ..., final: _Optional[bool] = ..., utterance_id: _Optional[str] = ...) -> None: ...

class DelegationUpdate(_message.Message):
    __slots__ = ("task_id", "state", "question", "summary")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    state: DelegationState
    question: str
    summary: str
    def __init__(self, task_id: _Optional[str] = ..., state: _Optional[_Union[DelegationState, str]] = ..., question: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class StillRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    ms: float
    def __init__(self, stage: _Optional[str] = ..., ms: _Optional[float] = ...) -> None: ...

class Tick(_message.Message):
    __slots__ = ("tick_s", "action", "text", "user_query", "frame_age_ms", "timings", "coalesced", "slip_ms", "dropped", "batch_size", "model_wait_ms")
    class DroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TICK_S_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    USER_QUERY_FIELD_NUMBER: _ClassVar[int]
    FRAME_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    COALESCED_FIELD_NUMBER: _ClassVar[int]
    SLIP_MS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MODEL_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    tick_s: float
    action: str
    text: str
    user_query: str
    frame_age_ms: float
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    coalesced: int
    slip_ms: float
    dropped: _containers.ScalarMap[str, int]
    batch_size: int
    model_wait_ms: float
    def __init__(self, tick_s: _Optional[float] = ..., action: _Optional[str] = ..., text: _Optional[str] = ..., user_query: _Optional[str] = ..., frame_age_ms: _Optional[float] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., coalesced: _Optional[int] = ..., slip_ms: _Optional[float] = ..., dropped: _Optional[_Mapping[str, int]] = ..., batch_size: _Optional[int] = ..., model_wait_ms: _Optional[float] = ...) -> None: ...

class Notice(_message.Message):
    __slots__ = ("code", "message", "component", "retryable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    component: str
    retryable: bool
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., component: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...

class GoAway(_message.Message):
    __slots__ = ("reconnect_after_ms", "reason")
    RECONNECT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    reconnect_after_ms: int
    reason: str
    def __init__(self, reconnect_after_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class CaptureHint(_message.Message):
    __slots__ = ("fps", "reason")
    FPS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    fps: float
    reason: str
    def __init__(self, fps: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...
