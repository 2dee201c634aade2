"""Pictures from the wire (issue 14): one bounded decode path, and a frame slot that
a bridge's counter or clock cannot freeze.

Reproductions: a 1.3 KB JPEG whose header claims 65500×65500 ended the session with
INTERNAL; a PNG was decoded at full size (gigabytes); a ``VideoFrame`` with seq
2^64−1 made every later frame be ignored, silently. Each is checked on the decode
path itself, on the in-process session (virtual time) and over real gRPC.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import struct
from collections.abc import Iterator

import grpc
import pytest
from murmur.v1 import companion_pb2 as pb
from PIL import Image, ImageFile, JpegImagePlugin

from server.codes import Code
from server.config import Settings
from server.errors import Recoverable
from server.events import FrameIn, Notice, SessionStart, TickTrace, VideoEncoding
from server.runtime.base import Frame
from server.session.frames import LATE_FOR_S, LATE_SEQS, RESTART_GAP_S, FrameSlot
from server.session.images import FRAME, STILL, decode_image
from tests.harness import Client, jpeg, running_server, scripted
from tests.session_harness import run_session

U64_MAX = 2**64 - 1
FAST = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)


def claims(data: bytes, w: int, h: int) -> bytes:
    """A real JPEG whose SOF header is patched to claim ``w``×``h``."""
    i = 2
    while True:
        assert data[i] == 0xFF
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return data[: i + 5] + struct.pack(">HH", h, w) + data[i + 9 :]
        i += 2 + length


def bomb() -> bytes:
    data = claims(jpeg(32, 32), 65500, 65500)
    assert len(data) < 1500  # the fuzzer's was 1.3 KB
    return data


def png(w: int, h: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """The size of every image Pillow decodes pixels for: the memory a decode costs."""
    seen: list[tuple[int, int]] = []
    images: set[int] = set()  # convert() calls load() again: counted once an image
    real = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        if id(self) not in images:
            images.add(id(self))
            seen.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    yield seen


# ------------------------------------------------------------------ the decode path


@pytest.mark.parametrize("pillow_guard", [None, 1000, Image.MAX_IMAGE_PIXELS])
def test_a_header_claiming_65500_square_is_refused_before_a_pixel_is_decoded(
    loads, monkeypatch, pillow_guard
):
    # Pillow's own guard is process-wide: whatever it is set to, the budget decides.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_guard)
    for budget in (FRAME, STILL):
        with pytest.raises(Recoverable) as e:
            decode_image(bomb(), budget)
        assert e.value.code is Code.FRAME_TOO_MANY_PIXELS and e.value.component == "video"
        assert "65500×65500" in e.value.message
        assert f"{budget.max_side} px a side" in e.value.message
    assert loads == []
    assert decode_image(jpeg(640, 480)).image.size == (640, 480)


@pytest.mark.parametrize(
    ("size", "budget", "decoded"),
    [
        ((640, 480), FRAME, (640, 480)),
        ((1920, 1080), FRAME, (960, 540)),
        ((4000, 3000), FRAME, (1000, 750)),
        ((4000, 3000), STILL, (2000, 1500)),
        ((8000, 6000), STILL, (2000, 1500)),
    ],
)
def test_a_jpeg_is_decoded_dct_scaled_within_its_budget(loads, size, budget, decoded):
    data = jpeg(*size)
    out = decode_image(data, budget)
    assert out.image.size == decoded and out.image.mode == "RGB"
    assert out.format == "JPEG" and out.jpeg is data  # passed on as it came
    assert loads == [decoded]  # no pixels at full size, ever
    w, h = decoded
    assert budget.max_pixels <= w * h <= budget.decode_pixels


def test_a_jpeg_may_claim_up_to_its_header_budget_and_no_more(loads):
    side = 4096  # 16.8 MP: a frame's header budget, exactly
    assert side * side == FRAME.header_pixels
    out = decode_image(claims(jpeg(64, 64), side, side), FRAME)
    assert out.image.size == (1024, 1024) and out.scale == 4  # ÷ 4 fits 4× the cap
    with pytest.raises(Recoverable, match="16,777,216 pixels") as e:
        decode_image(claims(jpeg(64, 64), side + 8, side), FRAME)
    assert e.value.code is Code.FRAME_TOO_MANY_PIXELS
    with pytest.raises(Recoverable, match="8192 px a side"):
        decode_image(claims(jpeg(64, 64), 8200, 100), FRAME)


def test_a_big_png_is_refused_before_decoding_and_a_small_one_is_read(loads):
    for budget in (FRAME, STILL):
        with pytest.raises(Recoverable) as e:
            decode_image(png(4000, 3000), budget)
        assert e.value.code is Code.FRAME_TOO_MANY_PIXELS
        assert "4000×3000" in e.value.message and f"{budget.decode_pixels:,}" in e.value.message
    assert loads == []  # PNG has no reduced decode: its full size must fit
    out = decode_image(png(1024, 1024, "RGBA"), FRAME)
    assert out.image.size == (1024, 1024) and out.image.mode == "RGB"
    assert out.format == "PNG" and loads == [(1024, 1024)]
    # Agents and alerts are handed JPEG, as the contract promises them.
    assert out.jpeg.startswith(b"\xff\xd8") and Image.open(io.BytesIO(out.jpeg)).size == (
        1024,
        1024,
    )
    assert decode_image(png(2000, 1500), STILL).image.size == (2000, 1500)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", Code.FRAME_CORRUPT),
        (b"hello, world", Code.FRAME_CORRUPT),
        (b"\xff\xd8\xff\xe0 this is not a jpeg", Code.FRAME_CORRUPT),
        (jpeg(640, 480)[:400], Code.FRAME_CORRUPT),
        (jpeg(640, 480)[:-300], Code.FRAME_CORRUPT),
        (claims(jpeg(32, 32), 0, 32), Code.FRAME_CORRUPT),
        (png(100, 100)[:60], Code.FRAME_CORRUPT),
        (png(100, 100)[:8] + b"\0" * 40, Code.FRAME_CORRUPT),
        (b"GIF89a" + b"\0" * 20, Code.FRAME_UNSUPPORTED),
        (b"RIFF\0\0\0\0WEBPVP8 ", Code.FRAME_UNSUPPORTED),
        (b"\0\0\0\1\x67\x42", Code.FRAME_UNSUPPORTED),
    ],
    ids=[
        "empty",
        "text",
        "jpeg-magic",
        "jpeg-head",
        "jpeg-cut",
        "zero-height",
        "png-head",
        "png-garbage",
        "gif",
        "webp",
        "h264",
    ],
)
def test_truncated_and_garbage_pictures_are_recoverable_and_say_no_internals(data, code):
    with pytest.raises(Recoverable) as e:
        decode_image(data)
    assert e.value.code is code
    assert " at 0x" not in e.value.message and "BytesIO" not in e.value.message


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (OSError("broken data stream"), Code.FRAME_CORRUPT),
        (ValueError("bad table"), Code.FRAME_CORRUPT),
        (SyntaxError("not a JPEG"), Code.FRAME_CORRUPT),
        (struct.error("unpack requires a buffer"), Code.FRAME_CORRUPT),
        (EOFError(), Code.FRAME_CORRUPT),
        (IndexError("out of range"), Code.FRAME_CORRUPT),
        (MemoryError(), Code.FRAME_TOO_MANY_PIXELS),
        (Image.DecompressionBombError("bomb"), Code.FRAME_TOO_MANY_PIXELS),
        (Image.DecompressionBombWarning("bomb"), Code.FRAME_TOO_MANY_PIXELS),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_whatever_pillow_raises_becomes_a_recoverable(monkeypatch, raised, code):
    def fail(fp):  # type: ignore[no-untyped-def]
        raise raised

    monkeypatch.setattr(JpegImagePlugin, "jpeg_factory", fail)
    with pytest.raises(Recoverable) as e:
        decode_image(jpeg())
    assert e.value.code is code


def test_a_phones_multi_picture_jpeg_is_a_jpeg(loads):
    buf = io.BytesIO()
    Image.new("RGB", (4032, 3024)).save(
        buf, "MPO", save_all=True, append_images=[Image.new("RGB", (640, 480))]
    )
    out = decode_image(buf.getvalue(), STILL)
    assert out.format == "JPEG" and out.image.size == (2016, 1512) and out.scale == 2
    assert loads == [(2016, 1512)]  # the first picture only, DCT-scaled


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grey_and_cmyk_jpegs_come_out_rgb(mode):
    buf = io.BytesIO()
    Image.new(mode, (1920, 1080)).save(buf, "JPEG")
    out = decode_image(buf.getvalue())
    assert out.image.mode == "RGB" and out.image.size == (960, 540)


# ------------------------------------------------------------------ the frame slot


def frame(seq: int, at: float, capture_ms: int | None = None) -> Frame:
    capture = int(at * 1000) + 1_700_000_000_000 if capture_ms is None else capture_ms
    return Frame(Image.new("RGB", (8, 8)), seq, capture, at, 1.0)


def offer_all(slot: FrameSlot, frames: list[Frame]) -> list[tuple[bool, list[str]]]:
    out = []
    for f in frames:
        o = slot.put(f)
        out.append((o.taken, [str(code) for code, _ in o.notices]))
    return out


def test_seq_u64_max_does_not_freeze_the_slot():
    slot = FrameSlot()
    got = offer_all(slot, [frame(U64_MAX, 0.0), frame(1, 0.2), frame(2, 0.4), frame(3, 0.6)])
    assert got == [(True, []), (True, ["frame.seq_reset"]), (True, []), (True, [])]
    assert slot.latest is not None and slot.latest.seq == 3


def test_a_jump_to_u64_max_mid_stream_is_taken_and_so_is_the_count_after_it():
    slot = FrameSlot()
    seqs = [1, 2, U64_MAX, 3, 4]
    got = offer_all(slot, [frame(s, i * 0.2) for i, s in enumerate(seqs)])
    assert [t for t, _ in got] == [True] * 5
    assert [n for _, n in got] == [[], [], ["frame.seq_reset"], ["frame.seq_reset"], []]


def test_a_little_late_frame_is_still_dropped_and_so_is_a_repeat():
    slot = FrameSlot()
    got = offer_all(slot, [frame(1, 0.0), frame(2, 0.1), frame(4, 0.2), frame(3, 0.25)])
    assert got == [(True, []), (True, []), (True, []), (False, [])]
    assert not slot.put(frame(4, 0.3)).taken  # the same seq again
    assert not slot.put(frame(4 - LATE_SEQS, 0.35)).taken
    assert slot.latest is not None and slot.latest.seq == 4


def test_a_counter_restarted_by_a_bridge_is_taken_at_once_when_far_behind():
    slot = FrameSlot()
    offer_all(slot, [frame(s, s * 0.1) for s in range(1, 500)])
    o = slot.put(frame(1, 50.0))
    assert o.taken and [c for c, _ in o.notices] == [Code.FRAME_SEQ_RESET]
    assert "went back from 499 to 1" in o.notices[0][1]


def test_a_count_starting_over_after_a_pause_in_the_video_is_no_fault():
    slot = FrameSlot()
    offer_all(slot, [frame(s, s * 0.1) for s in range(1, 100)])
    o = slot.put(frame(1, 9.9 + RESTART_GAP_S))  # a restarted bridge, a resumed call
    assert o.taken and o.notices == ()
    assert slot.put(frame(2, 10.0 + RESTART_GAP_S)).taken


def test_a_counter_that_keeps_going_back_never_holds_a_frame_older_than_the_window():
    slot = FrameSlot()
    taken_at = []
    for i in range(100):  # 10 fps, each seq one lower: every frame "late"
        at = i * 0.1
        if slot.put(frame(1000 - i, at)).taken:
            taken_at.append(at)
    gaps = [b - a for a, b in itertools.pairwise(taken_at)]
    assert len(taken_at) > 5 and max(gaps) <= LATE_FOR_S + 0.1 + 1e-9


def test_seq_zero_is_never_ordered():
    slot = FrameSlot()
    got = offer_all(slot, [frame(5, 0.0), frame(0, 0.1), frame(0, 0.2), frame(6, 0.3)])
    assert got == [(True, [])] * 4


def test_a_bridge_clock_jump_is_used_and_said():
    slot = FrameSlot()
    day_ms = 86_400_000
    got = offer_all(
        slot,
        [
            frame(1, 0.0, 1_700_000_000_000),
            frame(2, 1.0, 1_700_000_001_000),
            frame(3, 2.0, 1_700_000_001_000 - day_ms),  # set back a day
            frame(4, 3.0, 1_700_000_001_000 - day_ms + 900),  # ticking from there: fine
            frame(5, 4.0, 0),  # no clock at all: nothing to compare
            frame(6, 5.0, 5),
        ],
    )
    assert [t for t, _ in got] == [True] * 6
    assert [n for _, n in got] == [[], [], ["frame.clock_jump"], [], [], []]


# ------------------------------------------------------------------ the session


def start() -> SessionStart:
    return SessionStart(want_trace=True)


def frames_at(
    seqs: list[int], *, bad: dict[int, bytes] | None = None
) -> list[tuple[float, FrameIn]]:
    """One frame a second from t=0; ``bad``: the data of some, by index."""
    out = []
    for i, seq in enumerate(seqs):
        data = (bad or {}).get(i) or jpeg(shade=40 + i)
        out.append((float(i), FrameIn(seq, i * 1000, VideoEncoding.JPEG, data)))
    return out


def fresh_ticks(run, after: float) -> dict[float, float]:  # type: ignore[no-untyped-def]
    return {t.tick_s: t.frame_age_ms for t in run.of(TickTrace) if t.tick_s > after}


def test_a_65500_square_header_in_a_session_is_one_notice_and_the_next_frame_is_used():
    script = frames_at([1, 2, 3, 4, 5, 6], bad={2: bomb()})
    run = run_session(script, scripted(), until=6, start=start())
    notices = run.of(Notice)
    assert [n.code for n in notices] == ["frame.too_many_pixels"]
    assert notices[0].component == "video" and "65500×65500" in notices[0].message
    assert run.session is not None and run.session.stats["frames"] == 5
    ages = fresh_ticks(run, after=3.0)
    assert ages and all(0 <= a < 500 for a in ages.values()), ages


def test_seq_u64_max_then_a_fresh_count_keeps_every_later_tick_fresh():
    script = frames_at([U64_MAX, 1, 2, 3, 4, 5, 6])
    run = run_session(script, scripted(), until=7, start=start())
    assert [n.code for n in run.of(Notice)] == ["frame.seq_reset"]
    ages = fresh_ticks(run, after=1.0)
    assert set(ages) >= {2.0, 3.0, 4.0, 5.0, 6.0}
    assert all(0 <= a < 500 for a in ages.values()), ages


def test_a_counter_jumping_and_coming_back_is_said_once_a_session():
    script = frames_at([1, 2, U64_MAX, 3, U64_MAX, 4, 5])
    run = run_session(script, scripted(), until=7, start=start())
    assert [n.code for n in run.of(Notice)] == ["frame.seq_reset"]
    assert run.session is not None and run.session.stats["frames"] == 7


def test_a_bomb_still_takes_the_same_path_within_the_still_budget():
    script = [
        (0.0, FrameIn(1, 0, VideoEncoding.JPEG, jpeg())),
        (0.5, FrameIn(0, 500, VideoEncoding.JPEG, bomb(), high_res=True)),
        (1.0, FrameIn(0, 1000, VideoEncoding.JPEG, png(4000, 3000), high_res=True)),
    ]
    run = run_session(script, scripted(), until=3, start=start())
    notices = run.of(Notice)
    assert [n.code for n in notices] == ["frame.too_many_pixels"] * 2
    assert all(n.message.startswith("a still ") for n in notices)
    assert "16384 px a side" in notices[0].message


# ------------------------------------------------------------------ over real gRPC


async def test_over_grpc_a_65500_square_header_is_a_notice_not_internal(tts):
    runtime = scripted((0.6, "</response> Still here."))
    async with running_server(runtime, tts, FAST) as srv, Client(srv.address) as c:
        await c.start()
        await c.frame(1)
        await c.frame(2, bomb())
        notice = await c.wait_for("notice")
        assert notice.code == "frame.too_many_pixels" and "65500×65500" in notice.message
        await c.frame(3)
        await c.wait_for("speech")
        session = next(iter(srv.sessions))
        assert session.stats["frames"] == 2
        assert await c.finish() == grpc.StatusCode.OK


async def test_over_grpc_seq_u64_max_does_not_freeze_the_view(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        await c.start(want_trace=True)
        for seq in (U64_MAX, 1, 2, 3, 4):
            await c.send(
                pb.ClientEvent(
                    video_frame=pb.VideoFrame(seq=seq, capture_time_ms=1000, data=jpeg())
                )
            )
            await asyncio.sleep(0.15)
        await c.wait_for("tick", count=4)
        assert [n.code for n in c.of("notice")] == ["frame.seq_reset"]
        assert next(iter(srv.sessions)).stats["frames"] == 5
        assert await c.finish() == grpc.StatusCode.OK
