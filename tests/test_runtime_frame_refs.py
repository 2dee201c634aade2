"""The frame-reference policy of the HTTP runtime as a state machine, without HTTP
(server/runtime/openai/frame_refs.py); against a server: tests/test_openai_frames.py."""

from __future__ import annotations

from server.runtime.openai.frame_refs import LOST_LIMIT, Form, FrameRefPolicy, Refusal
from server.runtime.openai.wire import Turn


def test_frames_go_plain_when_off_or_when_there_are_none() -> None:
    assert FrameRefPolicy(enabled=False).form(has_frames=True) is Form.PLAIN
    assert FrameRefPolicy().form(has_frames=False) is Form.PLAIN
    assert FrameRefPolicy().form(has_frames=True) is Form.REFS


def test_a_first_reference_that_goes_through_confirms_the_server_keeps_frames() -> None:
    policy = FrameRefPolicy()
    policy.sent(named=False)  # the first frame travels with its data: nothing learnt
    assert policy.known is None
    policy.sent(named=True)
    assert policy.known is True and policy.form(True) is Form.REFS


def test_a_server_that_never_kept_a_frame_gets_plain_frames() -> None:
    policy = FrameRefPolicy()
    for refusal in (Refusal.REJECTED, Refusal.SERVER_ERROR):
        assert policy.retry(Form.REFS, named=True, refusal=refusal) is Form.PLAIN
    policy.resent()
    assert policy.known is False and policy.form(True) is Form.PLAIN


def test_a_server_that_refuses_the_uuid_field_itself_gets_plain_frames() -> None:
    policy = FrameRefPolicy()
    assert policy.retry(Form.REFS, named=False, refusal=Refusal.REJECTED) is Form.PLAIN
    # A 500 without any reference is not about the frames.
    assert policy.retry(Form.REFS, named=False, refusal=Refusal.SERVER_ERROR) is None
    # Once plain, a refusal is the request's own.
    assert policy.retry(Form.PLAIN, named=False, refusal=Refusal.REJECTED) is None


def test_dropped_frames_are_resent_in_full_until_the_limit() -> None:
    policy = FrameRefPolicy()
    policy.sent(named=True)
    for n in range(1, LOST_LIMIT + 1):
        assert policy.retry(Form.REFS, named=True, refusal=Refusal.REJECTED) is Form.FULL
        policy.resent()
        assert policy.known is (n < LOST_LIMIT)
    assert policy.form(True) is Form.PLAIN


def test_a_good_tick_between_drops_resets_the_count() -> None:
    policy = FrameRefPolicy()
    policy.sent(named=True)
    for _ in range(LOST_LIMIT - 1):
        policy.resent()
    policy.sent(named=True)
    for _ in range(LOST_LIMIT - 1):
        policy.resent()
    assert policy.known is True


def test_a_turn_renders_in_each_form() -> None:
    turn = Turn(plain="P", full="F", ref="R")
    assert [turn.fragment(f) for f in Form] == ["P", "F", "F"]  # not held yet: no ref
    turn.held = True
    assert [turn.fragment(f) for f in Form] == ["P", "R", "F"]
    text = Turn(plain="T")
    assert {text.fragment(f) for f in Form} == {"T"}
