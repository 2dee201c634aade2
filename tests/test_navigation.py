"""Navigation: the location and route step enter a turn when they change, with their age
(server/engine/location.py), and the modes data says where and how much."""

from __future__ import annotations

import dataclasses

import pytest

from server.engine.location import LocationContext, asks_where, distance_m, turned_deg
from server.events import LocationIn, Mode, SessionStart, TextIn
from server.modes import ModeDataError, profile
from server.modes.loader import LocationRules, load
from server.runtime.base import ModelSession
from server.runtime.scripted import ScriptedRuntime
from tests.harness import scripted
from tests.session_harness import run_session

NAV = profile("navigation")
BLIND = profile("blind")
GENERAL = profile("general")
M_PER_DEG_LAT = 111_195.0  # on the mean-radius sphere
WALL = 1_700_000_000.0  # the server's wall clock, Unix seconds


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fix(north_m: float = 0.0, **kw: object) -> LocationIn:
    base = {"accuracy_m": 5.0, "heading_deg": 90.0}
    return LocationIn(52.52 + north_m / M_PER_DEG_LAT, 13.405, **{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def where(clock: Clock) -> LocationContext:
    return LocationContext(clock, wall=lambda: WALL + clock.now)


# ------------------------------------------------------------------ geometry


def test_haversine_and_heading_arithmetic():
    assert distance_m(fix(), fix(100.0)) == pytest.approx(100.0, rel=1e-3)
    east = LocationIn(52.52, 13.405 + 0.001)  # a degree of longitude shrinks with cos(lat)
    assert distance_m(LocationIn(52.52, 13.405), east) == pytest.approx(67.7, abs=0.2)
    assert turned_deg(350.0, 10.0) == 20.0 and turned_deg(10.0, 200.0) == 170.0


# ------------------------------------------------------------------ when a line enters


def test_the_first_fix_enters_with_its_age_then_not_again_unchanged(where, clock):
    where.update(fix())
    clock.now += 12.0
    assert where.lines(NAV) == ["Location (12 s old): 52.52000, 13.40500 (±5 m), heading 90°"]
    where.update(fix())
    assert where.lines(NAV) == []
    assert where.lines(NAV) == []


def test_a_move_enters_only_past_the_modes_threshold(where):
    where.update(fix())
    where.lines(NAV)
    where.update(fix(8.0))  # under navigation's 10 m
    assert where.lines(NAV) == []
    where.update(fix(12.0))
    assert [line.split(": ")[1] for line in where.lines(NAV)] == [
        "52.52011, 13.40500 (±5 m), heading 90°"
    ]


def test_small_moves_add_up_against_the_fix_last_said(where):
    where.update(fix())
    where.lines(NAV)
    for north in (4.0, 8.0):
        where.update(fix(north))
        assert where.lines(NAV) == []
    where.update(fix(11.0))  # 3 m from the last fix, 11 m from the one the model knows
    assert len(where.lines(NAV)) == 1


def test_blind_mode_has_a_longer_threshold_of_its_own(where):
    assert BLIND.location.moved_m == 20.0 and NAV.location.moved_m == 10.0
    where.update(fix())
    where.lines(BLIND)
    where.update(fix(15.0))
    assert where.lines(BLIND) == []
    where.update(fix(25.0))
    assert len(where.lines(BLIND)) == 1


def test_a_turn_enters_past_the_heading_threshold(where):
    where.update(fix(heading_deg=350.0))
    where.lines(NAV)
    where.update(fix(heading_deg=10.0))  # 20°, across north
    assert where.lines(NAV) == []
    where.update(fix(heading_deg=45.0))  # 55° from the fix last said
    assert "heading 45°" in where.lines(NAV)[0]


def test_a_big_change_of_accuracy_enters(where):
    where.update(fix())
    where.lines(NAV)
    where.update(fix(accuracy_m=15.0))
    assert where.lines(NAV) == []
    where.update(fix(accuracy_m=60.0))  # indoors: the model should know the fix is rough
    assert "(±60 m)" in where.lines(NAV)[0]


def test_the_route_step_is_its_own_line_when_it_changes(where, clock):
    where.update(fix(route_step="Turn left on Main St"))
    clock.now += 2.0
    assert where.lines(NAV)[1] == "Route step (2 s old): Turn left on Main St"
    where.update(fix(route_step="Turn left on Main St"))
    assert where.lines(NAV) == []
    where.update(fix(3.0, route_step="Cross at the lights"))  # the position barely moved
    assert where.lines(NAV) == ["Route step (0 s old): Cross at the lights"]
    where.update(fix(3.0))
    assert where.lines(NAV) == ["Route step (0 s old): none now"]


# ------------------------------------------------------------------ age and staleness


def test_age_comes_from_the_phones_stamp_then_the_session_clock(where, clock):
    stamp = (WALL + clock.now - 4.0) * 1000  # taken 4 s before it arrived
    where.update(fix(time_ms=int(stamp)))
    clock.now += 3.0
    assert where.age_s() == pytest.approx(7.0)
    assert where.lines(NAV)[0].startswith("Location (7 s old)")


def test_a_phone_clock_ahead_of_ours_is_no_negative_age(where, clock):
    where.update(fix(time_ms=int((WALL + clock.now + 30.0) * 1000)))
    assert where.age_s() == 0.0


def test_without_a_stamp_a_fix_is_as_old_as_its_arrival(where, clock):
    where.update(fix())
    clock.now += 150.0
    assert where.age_s() == 150.0
    assert "2 min old" in where.lines(NAV)[0]


def test_a_stale_fix_is_said_once_as_stale_and_a_fresh_one_again(where, clock):
    where.update(fix())
    assert where.lines(NAV)
    clock.now += 45.0  # past navigation's 30 s, no newer fix
    assert where.lines(NAV) == [
        "Location (45 s old, stale: no newer fix): 52.52000, 13.40500 (±5 m), heading 90°"
    ]
    clock.now += 5.0
    assert where.lines(NAV) == []
    where.update(fix())  # the same place, fresh: the model hears it is current again
    assert where.lines(NAV)[0].startswith("Location (0 s old): 52.52000")


def test_a_fix_that_arrives_stale_says_so(where, clock):
    where.update(fix(time_ms=int((WALL + clock.now - 90.0) * 1000)))
    assert "90 s old, stale" in where.lines(NAV)[0]
    where.update(fix(time_ms=int((WALL + clock.now - 90.0) * 1000)))  # resent as it was
    assert where.lines(NAV) == []


# ------------------------------------------------------------------ asked, and which modes


def test_where_am_i_puts_the_unchanged_fix_in_that_turn(where):
    where.update(fix(route_step="Turn left on Main St"))
    where.lines(NAV)
    assert where.lines(NAV) == []
    forced = where.lines(NAV, asked=True)
    assert forced[0].startswith("Location (0 s old)") and forced[1].endswith("Main St")
    assert where.lines(NAV) == []


@pytest.mark.parametrize(
    ("query", "language", "asked"),
    [
        ("Where am I?", "en", True),
        ("Hey, which street is this?", "en-GB", True),
        ("Where is the bus stop?", "en", False),
        ("Wo bin ich gerade?", "de", True),
        ("Wo ist der Ausgang?", "de", False),
        ("¿Dónde estoy?", "es", True),
        ("donde estoy", "es-MX", True),
        ("where am I", "de", True),  # English works in every language
        (None, "en", False),
    ],
)
def test_the_location_question_in_each_language(query, language, asked):
    assert asks_where(query, language) is asked


def test_modes_without_location_never_get_it(where):
    assert not GENERAL.location_in_context and not profile("shopping").location_in_context
    where.update(fix(route_step="Turn left on Main St"))
    assert where.lines(GENERAL) == [] and where.lines(GENERAL, asked=True) == []
    assert where.text() is not None  # background agents still get it
    assert len(where.lines(NAV)) == 2  # a location mode again: its first turn has it


# ------------------------------------------------------------------ the data


def test_thresholds_and_margin_are_mode_data(tmp_path):
    assert NAV.location == LocationRules(10.0, 30.0, 20.0, 30.0)
    assert GENERAL.location == LocationRules() and GENERAL.speak_margin is None
    user = tmp_path / "modes.toml"
    user.write_text(
        "[modes.navigation]\nlocation_moved_m = 25\nlocation_stale_s = 60\nspeak_margin = -0.25\n",
        encoding="utf-8",
    )
    nav = load(user).modes["navigation"]
    assert nav.location == dataclasses.replace(NAV.location, moved_m=25.0, stale_s=60.0)
    assert nav.speak_margin == -0.25


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("location_heading_deg = 200", "location_heading_deg: expected degrees"),
        ("location_moved_m = -1", "location_moved_m: expected metres"),
        ('speak_margin = "high"', "speak_margin: expected a number"),
        ("location_moved = 10", "unknown key 'location_moved'"),
    ],
)
def test_bad_location_and_margin_keys_stop_the_start(tmp_path, line, expected):
    user = tmp_path / "modes.toml"
    user.write_text(f"[modes.navigation]\n{line}\n", encoding="utf-8")
    with pytest.raises(ModeDataError, match="navigation") as e:
        load(user)
    assert expected in str(e.value)


# ------------------------------------------------------------------ through a session


def test_a_session_turn_carries_the_location_when_it_changes_or_is_asked_for():
    runtime = scripted()
    here = fix(route_step="Turn left on Main St")
    run_session(
        [
            (0.2, here),
            (1.2, here),
            (2.2, here),
            (3.2, fix(22.0, route_step="Turn left on Main St")),  # past blind mode's 20 m
            (4.5, TextIn("Where am I?")),
        ],
        runtime,
        until=6.5,
        start=SessionStart(mode=Mode.BLIND),
    )
    turns = list(runtime.sessions[0].turns)
    assert turns[0].endswith(
        "Location (1 s old): 52.52000, 13.40500 (±5 m), heading 90°\n"
        "Route step (1 s old): Turn left on Main St\n<1.0 seconds> (no new camera frame)"
    )
    assert turns[1] == "<2.0 seconds> (no new camera frame)"  # unchanged: left out
    assert turns[2].startswith("Location (0 s old): 52.52020, 13.40500")
    assert "Route step" not in turns[2]
    asked = next(t for t in turns if "Where am I?" in t)
    assert "Location (1 s old): 52.52020" in asked and "Route step" in asked
    assert "Location" not in turns[-1]


class _ShortChunks(ScriptedRuntime):
    """The scripted model with three ticks to a chunk of its context."""

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        session = super().open_session(instruction, language=language)
        session.conversation.chunk_ticks = 3
        return session


def test_a_new_chunk_of_the_models_context_hears_the_fix_again():
    runtime = _ShortChunks([])
    run_session(
        [(0.2, fix(route_step="Turn left on Main St"))],
        runtime,
        until=7.5,
        start=SessionStart(mode=Mode.NAVIGATION),
    )
    session = runtime.sessions[0]
    opened = [t for t in session.turns if t.startswith("[User Query")]  # a chunk's first turn
    assert len(opened) >= 2 and len(session.turns) > len(opened)
    assert all("Location (" in t and "Route step (" in t for t in opened)
    assert sum("Location (" in t for t in session.turns) == len(opened)  # only those
