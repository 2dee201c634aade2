"""The OpenAI-compatible runtime sends each frame once and names it by uuid after:
against FakeVLLM keeping frames, dropping them, refusing uuids or ignoring them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.errors import Recoverable
from server.runtime.base import ActionKind
from server.runtime.openai import ModelRejected, ModelUnavailable
from tests.fake_vllm import INSTRUCTION, image_parts, runtime, tick
from tests.fakes import FakeVLLM, Reply


def test_each_frame_travels_once_then_by_uuid(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, stream=False)
    session = rt.open_session(INSTRUCTION)
    for s in (1.0, 2.0, 3.0, 4.0):
        session.step(tick(s))
    for n, body in enumerate(vllm.bodies()):
        parts = image_parts(body)
        assert len(parts) == n + 1
        *held, new = parts
        assert new["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert all(p["image_url"] is None for p in held)
    uuids = [p["uuid"] for p in image_parts(vllm.bodies()[-1])]
    assert len(set(uuids)) == 4
    other = rt.open_session(INSTRUCTION)  # another session never names this one's frames
    other.step(tick(1.0))
    assert image_parts(vllm.bodies()[-1])[0]["uuid"] not in uuids
    rt.close()


def test_a_frame_the_server_dropped_is_sent_again(make_vllm: Callable[..., FakeVLLM]) -> None:
    server = make_vllm()
    rt = runtime(server, stream=False)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0))
    server.held.clear()  # evicted from its cache
    assert session.step(tick(3.0)).kind is ActionKind.SILENCE
    rejected, resent = server.bodies()[2:4]
    assert image_parts(rejected)[0]["image_url"] is None
    assert all(p["image_url"] is not None and p["uuid"] for p in image_parts(resent))
    session.step(tick(4.0))  # and references again afterwards
    assert len(server.requests) == 5
    assert [p["image_url"] is None for p in image_parts(server.bodies()[4])] == [
        True,
        True,
        True,
        False,
    ]
    rt.close()


def test_a_server_without_media_uuids_gets_plain_frames(
    make_vllm: Callable[..., FakeVLLM],
) -> None:
    server = make_vllm(uuids="refuse")
    rt = runtime(server, stream=False)
    session = rt.open_session(INSTRUCTION)
    for s in (1.0, 2.0, 3.0):
        assert session.step(tick(s)).kind is ActionKind.SILENCE
    # One rejected request, then every frame as a data URL, every tick.
    assert len(server.requests) == 4
    assert "uuid" in server.requests[0].decode()
    for body in server.bodies()[1:]:
        assert all("uuid" not in p and p["image_url"]["url"] for p in image_parts(body))
    rt.close()


@pytest.mark.parametrize("miss_status", [400, 500])
def test_a_server_that_keeps_no_frames_gets_plain_frames(
    make_vllm: Callable[..., FakeVLLM], miss_status: int
) -> None:
    """It takes the uuid field but not a bare uuid: learnt on the first reference."""
    server = make_vllm(uuids="ignore", miss_status=miss_status)
    rt = runtime(server, stream=False)
    session = rt.open_session(INSTRUCTION)
    for s in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert session.step(tick(s)).kind is ActionKind.SILENCE
    assert rt.frame_refs is False
    failed = 2 if miss_status >= 500 else 1  # a 5xx is retried once first
    assert len(server.requests) == 5 + failed
    for body in server.bodies()[1 + failed + 1 :]:
        assert all("uuid" not in p for p in image_parts(body))
    rt.close()


def test_a_server_that_keeps_dropping_frames_gets_plain_frames(
    make_vllm: Callable[..., FakeVLLM],
) -> None:
    server = make_vllm()
    rt = runtime(server, stream=False)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0))
    assert rt.frame_refs is True
    for s in (3.0, 4.0, 5.0):
        server.held.clear()
        session.step(tick(s))
    assert rt.frame_refs is False  # three drops in a row
    count = len(server.requests)
    session.step(tick(6.0))
    assert len(server.requests) == count + 1
    assert all("uuid" not in p for p in image_parts(server.bodies()[-1]))
    rt.close()


def test_a_server_that_is_down_is_not_asked_again_with_the_frames(
    make_vllm: Callable[..., FakeVLLM], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_vllm()
    rt = runtime(server, stream=False, retries=0)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    session.step(tick(2.0))
    server.close()
    calls: list[bool] = []
    real = rt.client.complete
    monkeypatch.setattr(rt.client, "complete", lambda *a: calls.append(True) or real(*a))
    with pytest.raises(Recoverable) as info:
        session.step(tick(3.0))
    assert isinstance(info.value, ModelUnavailable) and len(calls) == 1
    assert rt.frame_refs is True  # nothing learnt about frames from a server that is down
    rt.close()


def test_a_busy_server_teaches_nothing_about_frames(vllm: FakeVLLM) -> None:
    rt = runtime(vllm, stream=False, retries=0)
    session = rt.open_session(INSTRUCTION)
    session.step(tick(1.0))
    vllm.replies.append(Reply(status=503))  # a proxy in front of a busy or restarting vLLM
    with pytest.raises(Recoverable) as info:
        session.step(tick(2.0))
    assert isinstance(info.value, ModelUnavailable) and info.value.status == 503
    assert len(vllm.requests) == 2
    assert rt.frame_refs is None
    session.step(tick(3.0))
    assert rt.frame_refs is True
    rt.close()


def test_a_continuation_naming_a_frame_the_server_never_kept_is_resent(
    make_vllm: Callable[..., FakeVLLM],
) -> None:
    server = make_vllm(uuids="ignore")
    top = {"</silence>": -0.4, "</response>": -1.2}
    server.replies.extend([Reply("</silence>", top=top), Reply(" Bench at 2 o'clock.")])
    rt = runtime(server, stream=False, speak_margin=-1.0)
    action = rt.open_session(INSTRUCTION).step(tick(1.0))
    assert action.kind is ActionKind.RESPONSE and action.text == "Bench at 2 o'clock."
    assert rt.frame_refs is False
    assert len(server.requests) == 3  # decision, continuation by uuid (refused), resent
    rt.close()


def test_a_request_rejected_with_and_without_uuids_is_rejected(vllm: FakeVLLM) -> None:
    vllm.replies.extend([Reply(status=400), Reply(status=400)])
    rt = runtime(vllm, retries=3)
    with pytest.raises(Recoverable) as info:
        rt.open_session(INSTRUCTION).step(tick(1.0))
    assert isinstance(info.value, ModelRejected)
    first, second = vllm.bodies()
    assert "uuid" in image_parts(first)[0] and "uuid" not in image_parts(second)[0]
    assert rt.frame_refs is None  # nothing learnt: the next request tries uuids again
    rt.close()


def test_a_request_is_written_in_large_pieces_of_its_parts_exactly() -> None:
    from server.runtime.openai.wire import Request

    parts = tuple(bytes([65 + i % 26]) * (1000 + i) for i in range(300))
    request = Request(parts, stream=False)
    writes = list(request.writes(size=64 * 1024))
    assert b"".join(writes) == request.body and request.size == len(request.body)
    assert all(len(w) >= 64 * 1024 for w in writes[:-1]) and len(writes) < len(parts) / 10
