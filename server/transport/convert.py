"""Protobuf ⇄ domain events. Pure functions; the wire's only translator."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from murmur.v1 import companion_pb2 as pb

from server.errors import ProtocolError
from server.events import (
    AskNow,
    AudioEncoding,
    AudioFormat,
    AudioIn,
    AudioOut,
    CaptureHint,
    ClientEvent,
    Cue,
    CueKind,
    DelegationState,
    DelegationUpdate,
    FrameIn,
    GoAway,
    LocationIn,
    Mode,
    MotionIn,
    Notice,
    PauseWatching,
    PlaybackReport,
    ServerEvent,
    SessionReady,
    SessionStart,
    SetMode,
    SetVolume,
    Speech,
    SpeechKind,
    StillRequest,
    StopSpeaking,
    StopSpeakingNow,
    TextIn,
    TickTrace,
    Transcript,
    VideoEncoding,
)

__all__ = [
    "from_client",
    "has_unknown_fields",
    "parse_client",
    "parse_pair",
    "session_start",
    "to_server",
]

_M = TypeVar("_M", bound=Message)

_MODE = {
    pb.MODE_UNSPECIFIED: Mode.GENERAL,
    pb.MODE_GENERAL: Mode.GENERAL,
    pb.MODE_BLIND: Mode.BLIND,
    pb.MODE_NAVIGATION: Mode.NAVIGATION,
    pb.MODE_SHOPPING: Mode.SHOPPING,
}
_MODE_PB = {v: k for k, v in _MODE.items() if k != pb.MODE_UNSPECIFIED}
_AUDIO_ENC = {
    pb.AUDIO_ENCODING_UNSPECIFIED: AudioEncoding.OPUS,
    pb.AUDIO_ENCODING_OPUS: AudioEncoding.OPUS,
    pb.AUDIO_ENCODING_PCM16: AudioEncoding.PCM16,
}
_AUDIO_ENC_PB = {
    AudioEncoding.OPUS: pb.AUDIO_ENCODING_OPUS,
    AudioEncoding.PCM16: pb.AUDIO_ENCODING_PCM16,
}
_VIDEO_ENC = {
    pb.VIDEO_ENCODING_UNSPECIFIED: VideoEncoding.JPEG,
    pb.VIDEO_ENCODING_JPEG: VideoEncoding.JPEG,
    pb.VIDEO_ENCODING_H264: VideoEncoding.H264,
}
_SPEECH_KIND = {
    SpeechKind.ALERT: pb.SPEECH_KIND_ALERT,
    SpeechKind.ANSWER: pb.SPEECH_KIND_ANSWER,
    SpeechKind.NARRATION: pb.SPEECH_KIND_NARRATION,
    SpeechKind.DELEGATION_NOTE: pb.SPEECH_KIND_DELEGATION_NOTE,
    SpeechKind.DELEGATION_RESULT: pb.SPEECH_KIND_DELEGATION_RESULT,
    SpeechKind.SYSTEM: pb.SPEECH_KIND_SYSTEM,
}
_CUE = {
    CueKind.HAZARD: pb.CUE_KIND_HAZARD,
    CueKind.ATTENTION: pb.CUE_KIND_ATTENTION,
    CueKind.THINKING: pb.CUE_KIND_THINKING,
    CueKind.DONE: pb.CUE_KIND_DONE,
}
_DELEGATION = {
    DelegationState.STARTED: pb.DELEGATION_STATE_STARTED,
    DelegationState.RUNNING: pb.DELEGATION_STATE_RUNNING,
    DelegationState.DONE: pb.DELEGATION_STATE_DONE,
    DelegationState.FAILED: pb.DELEGATION_STATE_FAILED,
    DelegationState.CANCELLED: pb.DELEGATION_STATE_CANCELLED,
}


def _enum(table: dict, value: int, what: str):  # type: ignore[no-untyped-def,type-arg]
    try:
        return table[value]
    except KeyError:
        raise ProtocolError(f"unknown {what} value {value}") from None


def _audio_format(msg: pb.AudioFormat, default_rate: int) -> AudioFormat:
    return AudioFormat(
        encoding=_enum(_AUDIO_ENC, msg.encoding, "audio encoding"),
        sample_rate_hz=msg.sample_rate_hz or default_rate,
        frame_ms=msg.frame_ms or 20,
    )


def _audio_format_pb(fmt: AudioFormat) -> pb.AudioFormat:
    return pb.AudioFormat(
        encoding=_AUDIO_ENC_PB[fmt.encoding],
        sample_rate_hz=fmt.sample_rate_hz,
        frame_ms=fmt.frame_ms,
    )


def parse_client(raw: bytes) -> pb.ClientEvent:
    """A ``ClientEvent`` from the wire's bytes (gRPC hands them over unparsed, so
    that bytes that are not one are this server's protocol error, not gRPC's INTERNAL)."""
    return _parse(pb.ClientEvent, raw)


def parse_pair(raw: bytes) -> pb.PairRequest:
    return _parse(pb.PairRequest, raw)


def _parse(cls: type[_M], raw: bytes) -> _M:
    msg = cls()
    try:
        msg.ParseFromString(raw)
    except DecodeError as e:
        # protobuf says why ("String field had bad UTF-8", "Wire format was corrupt").
        why = str(e).rsplit(": ", 1)[-1] if ": " in str(e) else "it does not parse"
        raise ProtocolError(
            f"a message of {len(raw)} bytes is not a valid {cls.DESCRIPTOR.full_name} ({why}); "
            "check the client's generated code against proto/murmur/v1/companion.proto"
        ) from None
    return msg


def session_start(msg: pb.ClientEvent) -> SessionStart:
    """The first message of a stream; anything else is a protocol error."""
    if msg.WhichOneof("event") != "session_start":
        got = msg.WhichOneof("event") or "an empty or unknown event"
        raise ProtocolError(f"the first message of Converse must be session_start, got {got}")
    s = msg.session_start
    if not 0.0 <= s.volume <= 1.0:
        raise ProtocolError(f"volume must be between 0 and 1, got {s.volume}")
    return SessionStart(
        mode=_enum(_MODE, s.mode, "mode"),
        language=s.language or "en",
        voice=s.voice,
        volume=s.volume,
        audio_in=_audio_format(s.audio_in, 16000),
        audio_out=_audio_format(s.audio_out, 24000),
        video_encoding=_enum(_VIDEO_ENC, s.video_encoding, "video encoding"),
        # A client that declares no capabilities (an older bridge) has a speaker.
        speaker=s.capabilities.speaker if s.HasField("capabilities") else True,
        haptics=s.capabilities.haptics,
        resume_token=s.resume_token,
        instruction_override=s.instruction_override,
        want_trace=s.want_trace,
        client_name=s.client_name,
    )


def from_client(msg: pb.ClientEvent) -> ClientEvent | None:
    """A client event in domain terms; None for an event this server does not know."""
    which = msg.WhichOneof("event")
    if which == "video_frame":
        f = msg.video_frame
        return FrameIn(
            f.seq,
            f.capture_time_ms,
            _enum(_VIDEO_ENC, f.encoding, "video encoding"),
            f.data,
            f.high_res,
        )
    if which == "audio_chunk":
        a = msg.audio_chunk
        return AudioIn(a.seq, a.capture_time_ms, a.data)
    if which == "text_input":
        return TextIn(msg.text_input.text, msg.text_input.from_phone_asr)
    if which == "playback_report":
        p = msg.playback_report
        return PlaybackReport(p.utterance_id, p.played_ms, p.finished, p.interrupted)
    if which == "location":
        loc = msg.location
        return LocationIn(
            loc.lat,
            loc.lon,
            loc.accuracy_m,
            loc.heading_deg,
            loc.speed_mps,
            loc.route_step,
            loc.time_ms,
        )
    if which == "device_motion":
        m = msg.device_motion  # checked by the session: garbage is its Notice, not ours
        return MotionIn(
            m.first_sample_time_ms, m.sample_rate_hz, tuple(m.x), tuple(m.y), tuple(m.z)
        )
    if which == "control":
        return _control(msg.control)
    if which == "session_start":
        return session_start(msg)
    return None


def _control(c: pb.Control) -> ClientEvent | None:
    which = c.WhichOneof("action")
    if which == "set_mode":
        return SetMode(_enum(_MODE, c.set_mode, "mode"))
    if which == "pause_watching":
        return PauseWatching(c.pause_watching)
    if which == "stop_speaking":
        return StopSpeakingNow()
    if which == "set_volume":
        if not 0.0 <= c.set_volume <= 1.0:
            raise ProtocolError(f"volume must be between 0 and 1, got {c.set_volume}")
        return SetVolume(c.set_volume)
    if which == "ask_now":
        return AskNow(c.ask_now.question)
    return None


def has_unknown_fields(msg: Message) -> bool:
    """True when a newer client sent fields this server does not know."""
    from google.protobuf import unknown_fields

    if len(unknown_fields.UnknownFieldSet(msg)):
        return True
    for field, value in msg.ListFields():
        if field.message_type is not None and not field.is_repeated:
            if has_unknown_fields(value):
                return True
    return False


def to_server(event: ServerEvent) -> pb.ServerEvent:
    match event:
        case AudioOut():
            return pb.ServerEvent(
                audio_out=pb.AudioOut(
                    utterance_id=event.utterance_id, seq=event.seq, data=event.data, last=event.last
                )
            )
        case Speech():
            return pb.ServerEvent(
                speech=pb.Speech(
                    utterance_id=event.utterance_id,
                    text=event.text,
                    kind=_SPEECH_KIND[event.kind],
                    priority=event.priority,
                )
            )
        case TickTrace():
            return pb.ServerEvent(
                tick=pb.Tick(
                    tick_s=event.tick_s,
                    action=event.action,
                    text=event.text,
                    user_query=event.user_query,
                    frame_age_ms=event.frame_age_ms,
                    timings=[pb.StageTiming(stage=t.stage, ms=t.ms) for t in event.timings],
                    coalesced=event.coalesced,
                    slip_ms=event.slip_ms,
                    dropped=dict(event.dropped),
                    batch_size=event.batch_size,
                    model_wait_ms=event.model_wait_ms,
                )
            )
        case StopSpeaking():
            return pb.ServerEvent(
                stop_speaking=pb.StopSpeaking(
                    utterance_ids=list(event.utterance_ids), reason=event.reason
                )
            )
        case Cue():
            return pb.ServerEvent(
                cue=pb.Cue(
                    kind=_CUE[event.kind],
                    intensity=event.intensity,
                    clock_direction=event.clock_direction,
                )
            )
        case Transcript():
            return pb.ServerEvent(
                transcript=pb.Transcript(
                    text=event.text, final=event.final, utterance_id=event.utterance_id
                )
            )
        case DelegationUpdate():
            return pb.ServerEvent(
                delegation_update=pb.DelegationUpdate(
                    task_id=event.task_id,
                    state=_DELEGATION[event.state],
                    question=event.question,
                    summary=event.summary,
                )
            )
        case Notice():
            return pb.ServerEvent(
                notice=pb.Notice(
                    code=event.code,
                    message=event.message,
                    component=event.component,
                    retryable=event.retryable,
                )
            )
        case SessionReady():
            return pb.ServerEvent(
                session_ready=pb.SessionReady(
                    session_id=event.session_id,
                    resume_token=event.resume_token,
                    audio_in=_audio_format_pb(event.audio_in),
                    audio_out=_audio_format_pb(event.audio_out),
                    model=event.model,
                    tick_hz=event.tick_hz,
                    mode=_MODE_PB[event.mode],
                    motion_hz=event.motion_hz,
                )
            )
        case StillRequest():
            return pb.ServerEvent(still_request=pb.StillRequest(reason=event.reason))
        case CaptureHint():
            return pb.ServerEvent(capture_hint=pb.CaptureHint(fps=event.fps, reason=event.reason))
        case GoAway():
            return pb.ServerEvent(
                go_away=pb.GoAway(reconnect_after_ms=event.reconnect_after_ms, reason=event.reason)
            )
    raise TypeError(f"no wire form for {type(event).__name__}")
