"""A frame budget that follows the scene: a still view is said in text, a changed one is
decided on when its frame lands (issue 15, deliverable 2).

``FrameBudget`` (``server/engine/scene.py``) runs on a hand-moved clock; the session on
the harness's virtual time, so the early tick's timing is exact and no test times
anything. ``benchmarks/bench_scene_budget.py`` measures what it saves on the real
transformers path.
"""

from __future__ import annotations

import numpy as np
import pytest

from server.config import Settings
from server.engine.scene import LOCAL_CHANGED, LOCAL_MAX, STILL_MAX, FrameBudget
from server.events import FrameIn, Mode, SessionStart, TextIn, TickTrace, VideoEncoding
from server.runtime.base import TickInput
from server.runtime.prompt import UNCHANGED, user_message
from server.session.ticker import EARLY_MIN_S
from tests.fakes import ManualClock
from tests.harness import jpeg, scripted
from tests.session_harness import run_session

VIEW = np.full((24, 32), 100.0, np.float32)


def _tick(
    budget: FrameBudget, clock: ManualClock, view: np.ndarray, *, asked: bool = False
) -> bool:
    clock.now += 1.0
    return budget.show(view, unchanged_s=5.0, asked=asked)


# ---------------------------------------------------------------------- the budget


def test_a_still_view_is_shown_once_per_unchanged_s_and_said_in_text_between():
    clock = ManualClock(0.0)
    budget = FrameBudget(clock.monotonic)
    noise = np.random.default_rng(0).normal(0, 1.0, VIEW.shape).astype(np.float32)
    shown = [_tick(budget, clock, VIEW + noise * (i % 2)) for i in range(12)]
    # An image at 1 s, then text until that image is 5 s old, then an image again.
    assert shown == [
        True,
        False,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
        True,
        False,
    ]


def test_a_question_always_sees_the_image():
    clock = ManualClock(0.0)
    budget = FrameBudget(clock.monotonic)
    assert _tick(budget, clock, VIEW)
    assert not _tick(budget, clock, VIEW)
    assert _tick(budget, clock, VIEW, asked=True)


def test_a_small_local_change_is_not_a_still_view():
    """A cyclist in one corner barely moves the mean: one box far off still counts."""
    clock = ManualClock(0.0)
    budget = FrameBudget(clock.monotonic)
    assert _tick(budget, clock, VIEW)
    corner = VIEW.copy()
    corner[2:4, 2:4] += LOCAL_MAX + 10  # four boxes of 768: the mean moves by 0.18
    assert float(np.abs(corner - VIEW).mean()) < STILL_MAX
    assert _tick(budget, clock, corner)


def test_a_change_against_the_models_last_image_asks_for_a_tick_now():
    clock = ManualClock(0.0)
    budget = FrameBudget(clock.monotonic)
    assert not budget.changed(VIEW)  # nothing shown yet: the period's own tick decides
    assert _tick(budget, clock, VIEW)
    assert not budget.changed(VIEW + 3.0)  # a still camera
    moved = VIEW.copy()
    moved[10:14, 10:16] += LOCAL_CHANGED + 1  # something came into one part of the view
    assert budget.changed(moved)
    assert budget.changed(VIEW + 20.0)  # the whole view changed
    assert not budget.changed(np.zeros((12, 16), np.float32))  # another size: no compare


def test_the_turn_says_the_view_has_not_changed_instead_of_an_image():
    message = user_message(TickInput(tick_s=3.0, frame=None, unchanged=True))
    [text] = [c["text"] for c in message["content"] if c["type"] == "text"]
    assert text.endswith(UNCHANGED)
    assert all(c["type"] != "image" for c in message["content"])


# ---------------------------------------------------------------------- in a session


def _frames(until: float, data: bytes, *, every: float = 1.0) -> list:
    n = int(until / every)
    return [
        (round(i * every, 3), FrameIn(i, int(i * every * 1000), VideoEncoding.JPEG, data))
        for i in range(n + 1)
    ]


STILL, OTHER = jpeg(640, 480, 60), jpeg(640, 480, 200)
START = SessionStart(mode=Mode.GENERAL, want_trace=True)


def _session(script: list, *, early: bool = True, until: float = 9.5):
    settings = Settings().with_overrides("server", early_tick=early)
    rt = scripted()
    out = run_session(sorted(script, key=lambda x: x[0]), rt, until=until, start=START,
                      settings=settings)  # fmt: skip
    return rt, out


def test_a_still_clip_reaches_the_model_as_text_between_images():
    rt, _ = _session(_frames(9, STILL))
    ticks = list(rt.sessions[0].ticks)
    unchanged = [t.tick_s for t in ticks if t.unchanged]
    # General mode's capture_unchanged_s is 5: an image at 1 s and 6 s, text between.
    assert unchanged == [2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 9.0]
    assert rt.sessions[0].frames_seen == 2


def test_a_question_on_a_still_view_sees_the_image():
    rt, _ = _session([*_frames(9, STILL), (2.5, TextIn("What is this?"))])
    asked = next(t for t in rt.sessions[0].ticks if t.user_query)
    assert asked.tick_s == 3.0 and not asked.unchanged


def test_a_changed_view_mid_period_is_decided_on_when_its_frame_lands():
    # The glasses send at 2 fps; the view changes at 5.5 s, half a period before the tick.
    script = [
        *[(t, f) for t, f in _frames(9, STILL, every=0.5) if t < 5.5],
        *[(t, f) for t, f in _frames(9, OTHER, every=0.5) if t >= 5.5],
    ]
    rt, out = _session(script)
    labels = [t.tick_s for t in rt.sessions[0].ticks]
    assert 5.5 in labels and labels == sorted(set(labels))  # early, and no label repeated
    [early] = [t for t in out.of(TickTrace) if t.tick_s == 5.5]
    assert early.frame_age_ms < 1.0  # ticked on its frame's arrival (virtual time)
    assert not next(t for t in rt.sessions[0].ticks if t.tick_s == 5.5).unchanged
    # The period restarts from it: the next tick is a period after its frame.
    assert labels[labels.index(5.5) + 1] == 6.0
    [after] = [t for t, e in out.events if isinstance(e, TickTrace) and e.tick_s == 6.0]
    assert after == pytest.approx(6.5, abs=0.05)  # its trace, sent when the tick ends


def test_without_early_ticks_the_change_waits_for_the_period():
    script = [
        *[(t, f) for t, f in _frames(9, STILL, every=0.5) if t < 5.5],
        *[(t, f) for t, f in _frames(9, OTHER, every=0.5) if t >= 5.5],
    ]
    rt, out = _session(script, early=False)
    labels = [t.tick_s for t in rt.sessions[0].ticks]
    assert 5.5 not in labels and labels == [float(n) for n in range(1, 10)]
    [late] = [t for t in out.of(TickTrace) if t.tick_s == 6.0]
    assert late.frame_age_ms >= 400  # the changed frame waited half a period


def test_no_early_tick_right_after_a_tick_or_just_before_one():
    # A change 0.1 s after the tick at 5 s, and one 0.1 s before the tick at 7 s.
    script = [
        *[(t, f) for t, f in _frames(9, STILL) if t < 5],
        (5.0 + EARLY_MIN_S / 2, FrameIn(90, 5100, VideoEncoding.JPEG, OTHER)),
        (6.0, FrameIn(91, 6000, VideoEncoding.JPEG, OTHER)),
        (7.0 - EARLY_MIN_S / 2, FrameIn(92, 6900, VideoEncoding.JPEG, STILL)),
        *[(t, f) for t, f in _frames(9, STILL) if t >= 7],
    ]
    rt, _ = _session(script)
    labels = [t.tick_s for t in rt.sessions[0].ticks]
    assert labels == [float(n) for n in range(1, 10)]
