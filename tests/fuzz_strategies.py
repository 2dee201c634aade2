"""Hypothesis strategies for what a broken or hostile client can put on the wire.

Shared by tests/test_fuzz.py (small, reproducible runs in the suite) and
benchmarks/fuzz_server.py (the ≥ 10,000-message run against a live server).

Every strategy yields *bytes* as they go on the wire, tagged with a class so a
run can count by it, and with what the contract says must happen to the session:

- ``valid``: well-formed events a good bridge sends;
- ``hostile``: valid protobuf with hostile values (huge, negative, NaN numbers,
  unknown enums, empty or garbage JPEG/Opus payloads, a JPEG header claiming
  65500×65500, long texts, DeviceMotion garbage, a Location off the globe, a second
  SessionStart);
- ``not_protobuf``: bytes that do not parse (field 0, a length past the end,
  invalid UTF-8 in a string, truncated messages, random bytes).

After ``session_start`` every one of them is recoverable: the message is used or
dropped (with a Notice), never the session. ``first_outcome`` says what the
*first* message of a stream must lead to (companion.proto, server/transport/status.py).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from hypothesis import strategies as st
from murmur.v1 import companion_pb2 as pb
from PIL import Image

__all__ = [
    "CLASSES",
    "Wire",
    "bad_protobuf",
    "client_event",
    "first_outcome",
    "hostile_event",
    "huge_header_jpeg",
    "small_jpeg",
    "valid_event",
    "wire_message",
]

CLASSES = ("valid", "hostile", "not_protobuf")

_U64 = st.integers(0, 2**64 - 1)
_I64 = st.integers(-(2**63), 2**63 - 1)
_U32 = st.integers(0, 2**32 - 1)
_ENUM = st.integers(-(2**31), 2**31 - 1)  # open enums: any int32 parses
_F32 = st.floats(width=32)  # NaN, ±inf, ±max, subnormals
_F64 = st.floats()
_CHAR = st.characters(codec="utf-8")  # no lone surrogates: protobuf strings are UTF-8
_TEXT = st.one_of(
    st.text(_CHAR, max_size=40),
    # Past [server] max_text_bytes (4096), built by repeating: Hypothesis' own buffer
    # would overrun drawing thousands of characters one by one.
    st.tuples(st.text(_CHAR, min_size=1, max_size=4), st.integers(1000, 9000)).map(
        lambda t: t[0] * t[1]
    ),
    st.sampled_from(["", "quiet", "louder", "stop", "blind mode", "help", "\x00" * 8, "🙂" * 2000]),
)


@dataclass(frozen=True, slots=True)
class Wire:
    """One message as sent: its class (``CLASSES``), a short label, the bytes."""

    cls: str
    label: str
    raw: bytes


def small_jpeg(w: int = 64, h: int = 48, shade: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (shade, 120, 150)).save(buf, "JPEG", quality=70)
    return buf.getvalue()


def huge_header_jpeg(w: int = 65500, h: int = 65500) -> bytes:
    """A small valid JPEG whose SOF0 header claims ``w``×``h`` (issue 14's 1.3 KB bomb)."""
    data = bytearray(small_jpeg(16, 16))
    at = data.index(b"\xff\xc0")  # SOF0: marker, length(2), precision(1), height(2), width(2)
    data[at + 5 : at + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


_JPEG = small_jpeg()
_IMAGES = st.one_of(
    st.just(_JPEG),
    st.just(b""),
    st.binary(max_size=256),
    st.just(huge_header_jpeg()),
    st.builds(huge_header_jpeg, st.integers(1, 65535), st.integers(1, 65535)),
    st.just(_JPEG[: len(_JPEG) // 2]),  # truncated
    st.just(b"\xff\xd8\xff" + b"\x00" * 64),  # a JPEG start, then nothing sensible
    st.just(_png()),
    st.integers(1, 3 * 1024 * 1024).map(lambda n: b"\xff" * n),  # up to past max_frame_bytes
)
_AUDIO = st.one_of(
    st.just(b""),
    st.binary(max_size=400),  # not Opus (nor a whole PCM16 chunk, mostly)
    st.just(b"\xfc\xff\xfe"),  # an Opus TOC byte, then garbage
    st.just(b"\x00" * 640),  # 20 ms of PCM16 silence at 16 kHz
    st.integers(1, 200_000).map(lambda n: b"\x01" * n),
)


def _ev(**kw: object) -> pb.ClientEvent:
    return pb.ClientEvent(**kw)  # type: ignore[arg-type]


def _audio_format() -> st.SearchStrategy[pb.AudioFormat]:
    return st.builds(
        pb.AudioFormat,
        encoding=st.one_of(st.sampled_from([0, 1, 2]), _ENUM),
        sample_rate_hz=st.one_of(st.sampled_from([0, 8000, 16000, 24000, 48000]), _U32),
        frame_ms=st.one_of(st.sampled_from([0, 20]), _U32),
    )


def _session_start(hostile: bool) -> st.SearchStrategy[pb.ClientEvent]:
    if not hostile:
        return st.builds(
            lambda mode, trace: _ev(
                session_start=pb.SessionStart(mode=mode, want_trace=trace, client_name="fuzz")
            ),
            st.sampled_from([0, 1, 2, 3, 4]),
            st.booleans(),
        )
    return st.builds(
        lambda **kw: _ev(session_start=pb.SessionStart(**kw)),
        mode=st.one_of(st.sampled_from([0, 1, 2, 3, 4]), _ENUM),
        language=_TEXT,
        voice=_TEXT,
        volume=st.one_of(st.floats(0, 1, width=32), _F32),
        audio_in=_audio_format(),
        audio_out=_audio_format(),
        video_encoding=st.one_of(st.sampled_from([0, 1, 2]), _ENUM),
        resume_token=st.text(_CHAR, max_size=64),
        instruction_override=_TEXT,
        want_trace=st.booleans(),
        client_name=_TEXT,
    )


def _frame(hostile: bool) -> st.SearchStrategy[pb.ClientEvent]:
    if not hostile:
        return st.builds(
            lambda seq: _ev(
                video_frame=pb.VideoFrame(seq=seq, capture_time_ms=seq * 1000, data=_JPEG)
            ),
            st.integers(1, 10_000),
        )
    return st.builds(
        lambda **kw: _ev(video_frame=pb.VideoFrame(**kw)),
        seq=st.one_of(st.just(2**64 - 1), _U64),
        capture_time_ms=st.one_of(st.just(-(2**63)), st.just(2**63 - 1), _I64),
        encoding=st.one_of(st.sampled_from([0, 1, 2]), _ENUM),
        data=_IMAGES,
        high_res=st.booleans(),
    )


def _audio(hostile: bool) -> st.SearchStrategy[pb.ClientEvent]:
    data = _AUDIO if hostile else st.just(b"\x00" * 640)
    return st.builds(
        lambda **kw: _ev(audio_chunk=pb.AudioChunk(**kw)),
        seq=_U64 if hostile else st.integers(0, 10_000),
        capture_time_ms=_I64 if hostile else st.integers(0, 2**41),
        data=data,
    )


def _text(hostile: bool) -> st.SearchStrategy[pb.ClientEvent]:
    text = _TEXT if hostile else st.sampled_from(["what is that?", "read the sign", "hello"])
    return st.builds(
        lambda t, asr: _ev(text_input=pb.TextInput(text=t, from_phone_asr=asr)),
        text,
        st.booleans(),
    )


def _control(hostile: bool) -> st.SearchStrategy[pb.ClientEvent]:
    mode = st.one_of(st.sampled_from([0, 1, 2, 3, 4]), _ENUM) if hostile else st.just(1)
    volume = _F32 if hostile else st.floats(0, 1, width=32)
    question = _TEXT if hostile else st.just("")
    actions = st.one_of(
        mode.map(lambda m: pb.Control(set_mode=m)),
        # pause_watching=True pauses ticks: the liveness probe resumes them first.
        st.booleans().map(lambda p: pb.Control(pause_watching=p)),
        st.just(pb.Control(stop_speaking=pb.StopSpeakingNow())),
        volume.map(lambda v: pb.Control(set_volume=v)),
        question.map(lambda q: pb.Control(ask_now=pb.AskNow(question=q))),
        st.just(pb.Control()),  # no action set
    )
    return actions.map(lambda c: _ev(control=c))


def _location(hostile: bool) -> st.SearchStrategy[pb.ClientEvent]:
    if not hostile:
        return st.builds(
            lambda lat, lon: _ev(location=pb.Location(lat=lat, lon=lon, accuracy_m=5.0)),
            st.floats(-90, 90),
            st.floats(-180, 180),
        )
    return st.builds(
        lambda **kw: _ev(location=pb.Location(**kw)),
        lat=_F64,
        lon=_F64,
        accuracy_m=_F32,
        heading_deg=_F32,
        speed_mps=_F32,
        route_step=_TEXT,
        time_ms=_I64,
    )


def _playback(hostile: bool) -> st.SearchStrategy[pb.ClientEvent]:
    return st.builds(
        lambda **kw: _ev(playback_report=pb.PlaybackReport(**kw)),
        utterance_id=_TEXT if hostile else st.sampled_from(["", "a1", "a2"]),
        played_ms=_U32 if hostile else st.integers(0, 10_000),
        finished=st.booleans(),
        interrupted=st.booleans(),
    )


def _motion(hostile: bool) -> st.SearchStrategy[pb.ClientEvent]:
    if not hostile:
        return st.builds(
            lambda t: _ev(
                device_motion=pb.DeviceMotion(
                    first_sample_time_ms=t,
                    sample_rate_hz=50.0,
                    x=[0.1] * 25,
                    y=[0.2] * 25,
                    z=[9.8] * 25,
                )
            ),
            st.integers(0, 2**41),
        )
    axis = st.one_of(
        st.lists(_F32, max_size=40),
        st.integers(0, 6000).map(lambda n: [9.81] * n),  # past 4096 samples
    )
    return st.builds(
        lambda **kw: _ev(device_motion=pb.DeviceMotion(**kw)),
        first_sample_time_ms=_I64,
        sample_rate_hz=st.one_of(st.sampled_from([0.0, 19.9, 20.0, 1000.0, 1000.1]), _F32),
        x=axis,
        y=axis,
        z=axis,
    )


_MEMBERS = {
    "session_start": _session_start,
    "video_frame": _frame,
    "audio_chunk": _audio,
    "text_input": _text,
    "control": _control,
    "location": _location,
    "playback_report": _playback,
    "device_motion": _motion,
}
assert set(_MEMBERS) == {f.name for f in pb.ClientEvent.DESCRIPTOR.oneofs_by_name["event"].fields}


def client_event(hostile: bool) -> st.SearchStrategy[pb.ClientEvent]:
    """Any ``ClientEvent`` member (a mid-session ``session_start`` included)."""
    members = [make(hostile) for make in _MEMBERS.values()]
    if hostile:
        members.append(st.just(pb.ClientEvent()))  # no event set (an unknown oneof case)
    return st.one_of(members)


def _serialized(event: pb.ClientEvent) -> bytes:
    return event.SerializeToString()


def _label(event: pb.ClientEvent) -> str:
    return event.WhichOneof("event") or "empty"


def valid_event() -> st.SearchStrategy[Wire]:
    return client_event(False).map(lambda e: Wire("valid", _label(e), _serialized(e)))


def hostile_event() -> st.SearchStrategy[Wire]:
    with_unknown = client_event(True).map(
        lambda e: Wire("hostile", "unknown_fields", _serialized(e) + b"\xf8\x07\x01")  # field 127
    )
    unknown_member = st.just(Wire("hostile", "unknown_member", b"\xca\x3e\x00"))  # field 1001
    plain = client_event(True).map(lambda e: Wire("hostile", _label(e), _serialized(e)))
    return st.one_of(plain, plain, plain, with_unknown, unknown_member)


def _bad_utf8(data: bytes) -> bytes:
    # text_input (field 4, length-delimited) holding text (field 1) of invalid UTF-8.
    inner = b"\x0a" + bytes([len(data)]) + data
    return b"\x22" + bytes([len(inner)]) + inner


def bad_protobuf() -> st.SearchStrategy[Wire]:
    """Bytes that are not a ``ClientEvent``: filtered to those protobuf refuses."""
    truncated = st.tuples(client_event(True), st.integers(1, 10_000)).map(
        lambda t: _serialized(t[0])[: max(0, len(_serialized(t[0])) - t[1])]
    )
    raw = st.one_of(
        st.just(b"\x00\x00"),  # field number 0
        st.binary(max_size=8).map(lambda b: b"\x00" + b),
        st.just(b"\x0a\x10abc"),  # a length past the end
        st.integers(1, 2**28).map(lambda n: b"\x22" + _varint(n) + b"x"),
        st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]).map(_bad_utf8),
        truncated,
        st.binary(min_size=1, max_size=300),
    )
    return raw.filter(_not_parsing).map(lambda b: Wire("not_protobuf", "not_protobuf", b))


def wire_message() -> st.SearchStrategy[Wire]:
    """Any message of any class, for mid-session fuzzing."""
    return st.one_of(valid_event(), hostile_event(), hostile_event(), bad_protobuf())


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _not_parsing(raw: bytes) -> bool:
    try:
        pb.ClientEvent.FromString(raw)
    except DecodeError:
        return True
    return False


def first_outcome(raw: bytes) -> str:
    """What a stream whose first message is ``raw`` must get on a server without
    pairing and with the default limits: ``"ready"`` (a session starts) or
    ``"INVALID_ARGUMENT"`` (companion.proto: the first message must be a usable
    session_start; status.py's table)."""
    from server.errors import ProtocolError
    from server.session.session import _validate
    from server.transport import convert

    try:
        _validate(convert.session_start(convert.parse_client(raw)))
    except ProtocolError:
        return "INVALID_ARGUMENT"
    return "ready"
