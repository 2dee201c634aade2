"""Modes as data: the shipped modes.toml, its checks at start, and a user's modes."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest

from server.engine.commands import command_hotwords, decide
from server.events import LocationIn, Mode, SessionStart, Speech, SpeechKind, TextIn
from server.modes import MODES, ModeDataError, all_modes, profile, use_modes
from server.modes.loader import load
from tests.harness import scripted
from tests.session_harness import run_session

SHIPPED = Path(str(resources.files("server.modes").joinpath("modes.toml")))


@pytest.fixture
def user_file(tmp_path):
    """Write a user's modes file; the shipped modes are back in force afterwards."""

    def write(text: str) -> Path:
        path = tmp_path / "my-modes.toml"
        path.write_text(text, encoding="utf-8")
        return path

    yield write
    use_modes()


# ------------------------------------------------------------------ the shipped data


def test_the_shipped_file_is_in_the_package():
    # pyproject's package-data must ship it (an installed wheel has no source tree).
    assert SHIPPED.is_file() and tomllib.loads(SHIPPED.read_text(encoding="utf-8"))["modes"]


def test_every_wire_mode_has_a_profile_from_the_data():
    assert set(MODES) == set(Mode)
    for mode, p in MODES.items():
        assert p.mode is mode and p.name == mode.value and p is profile(mode) is profile(mode.value)
        assert p.instruction and p.max_words >= 1 and p.spoken_names
        for lang in ("en", "de", "es"):
            assert p.names_in(lang) and p.announcement_for(lang)


def test_the_modes_rules_as_the_data_says():
    blind, shopping, general = profile(Mode.BLIND), profile(Mode.SHOPPING), profile(Mode.GENERAL)
    assert blind.max_words == 12 and blind.repeat_after_s == 5.0
    assert blind.urgency.unprompted == "present" and blind.urgency.side_obstacles
    assert shopping.urgency.unprompted == "imminent" and not general.urgency.side_obstacles
    assert "read" in blind.request_stills_for and "lies" in blind.stills_for("de-DE")
    assert general.stills_for("es") == ()
    assert blind.announcement == "Blind mode." and blind.announcement_for("de") == "Blindenmodus."
    assert blind.announcement_for("fr") == "Blind mode."  # no French data: English


def test_which_modes_get_the_location():
    # Blind mode too: "where am I?" needs it.
    assert {m for m, p in MODES.items() if p.location_in_context} == {Mode.BLIND, Mode.NAVIGATION}


def test_a_blind_mode_turn_carries_the_location():
    runtime = scripted()
    run_session(
        [(0.2, LocationIn(52.52, 13.405, 5.0, route_step="Turn left on Main St"))],
        runtime,
        until=2.5,
        start=SessionStart(mode=Mode.BLIND),
    )
    contexts = [c for t in runtime.sessions[0].ticks for c in t.context]
    assert any("52.52000" in c for c in contexts)  # each on its own line, once
    assert any(c.endswith(": Turn left on Main St") for c in contexts)


def test_a_mode_change_is_announced_in_the_sessions_language():
    run = run_session(
        [(1.2, TextIn("Wechsle zum Blindenmodus"))],
        scripted(),
        until=4,
        start=SessionStart(mode=Mode.GENERAL, language="de-DE"),
    )
    said = run.of(Speech)
    assert [s.text for s in said] == ["Blindenmodus."] and said[0].kind is SpeechKind.SYSTEM


# ------------------------------------------------------------------ checked at start


def _broken(tmp_path: Path, text: str) -> str:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModeDataError) as e:
        load(path)
    return str(e.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[modes.blind]\nmax_wrds = 10\n", ["[modes.blind]", "unknown key 'max_wrds'", "max_words"]),
        ('[modes.blind]\nmax_words = "twelve"\n', ["[modes.blind] max_words", "whole number"]),
        ("[modes.blind]\nmax_words = 0\n", ["[modes.blind] max_words", "at least 1"]),
        ('[modes.blind]\nlocation = "yes"\n', ["[modes.blind] location", "true or false"]),
        ("[modes.blind]\nrepeat_after_s = true\n", ["[modes.blind] repeat_after_s", "seconds"]),
        ('[modes.blind]\nnames = { en = "blind" }\n', ["[modes.blind] names.en", "list"]),
        ("[modes.blind]\nnames = [\"blind\"]\n", ["[modes.blind] names", "expected a table"]),
        ('[modes.blind]\nurgency = { unprompted = "always" }\n', ["urgency unprompted", "imminent"]),
        ("[modes.blind]\nurgency = { loud = true }\n", ["urgency", "unknown key 'loud'"]),
        ('[modes.blind]\nurgency = { unsure = "warn" }\n', ["urgency unsure", '"alert"']),
        ('[modes.blind]\nbase = "general"\n', ["[modes.blind] base", "only a new mode"]),
        ('[modes.museum]\ninstruction = "Tell me about art."\n', ["[modes.museum]", "missing names"]),
        ('[modes.museum]\nbase = "museum2"\nnames = { en = ["museum"] }\n', ["base", "museum2"]),
        ('[modes.museum]\nnames = { en = ["shopping"] }\n', ["names.en", "already names mode 'shopping'"]),
        ('[commands.en]\nmode_phrase = "mode"\n', ["[commands.en] mode_phrase", "{name}"]),
        ('[commands.fr]\nquiet = ["silence"]\n', ["[commands.fr]", "missing never_mind"]),
        ('[mode.blind]\nmax_words = 3\n', ["unknown table(s) mode"]),
        ("[modes.blind\n", ["not valid TOML"]),
    ],
)  # fmt: skip
def test_a_wrong_user_file_says_where_and_what(tmp_path, text, says):
    message = _broken(tmp_path, text)
    assert message.startswith(str(tmp_path / "broken.toml"))
    for part in says:
        assert part in message, message


def test_a_missing_user_file_says_so(tmp_path):
    with pytest.raises(ModeDataError, match=r"nope\.toml: cannot read the modes file"):
        load(tmp_path / "nope.toml")


def test_missing_fields_in_the_shipped_data_stop_the_start(tmp_path):
    doc = SHIPPED.read_text(encoding="utf-8")
    cut = tmp_path / "modes.toml"
    cut.write_text(doc.replace("max_words = 15\n", ""), encoding="utf-8")
    with pytest.raises(ModeDataError, match=r"\[modes\.navigation\]: missing max_words"):
        load(shipped=cut)
    cut.write_text(doc.replace("[modes.shopping]", "[modes.shop]"), encoding="utf-8")
    with pytest.raises(ModeDataError, match=r"missing \[modes\.shopping\]"):
        load(shipped=cut)


def test_a_wrong_file_changes_nothing_in_force(user_file):
    before = profile(Mode.BLIND)
    with pytest.raises(ModeDataError):
        use_modes(user_file("[modes.blind]\nmax_words = -1\n"))
    assert profile(Mode.BLIND) is before and MODES[Mode.BLIND] is before


# ------------------------------------------------------------------ a user's modes


def test_a_user_file_overrides_only_the_keys_it_gives(user_file):
    use_modes(
        user_file(
            "[modes.blind]\n"
            "max_words = 8\n"
            "urgency = { side_obstacles = false }\n"
            'announce = { de = "Blindenmodus an." }\n'
        )
    )
    blind = MODES[Mode.BLIND]
    assert blind.max_words == 8 and blind.mode is Mode.BLIND
    assert blind.urgency.unprompted == "present" and not blind.urgency.side_obstacles
    assert (
        blind.announcement_for("de") == "Blindenmodus an." and blind.announcement == "Blind mode."
    )
    assert blind.repeat_after_s == 5.0 and blind.location_in_context and blind.names_in("es")


def test_a_user_mode_is_added_beside_the_shipped_ones(user_file):
    use_modes(
        user_file(
            "[modes.museum]\n"
            'base = "blind"\n'
            'instruction = "Describe the exhibits I look at, briefly."\n'
            "max_words = 20\n"
            'names = { en = ["museum", "gallery"], de = ["museums"] }\n'
        )
    )
    museum = profile("museum")
    assert museum.mode is Mode.BLIND and museum.max_words == 20
    assert museum.urgency.side_obstacles and museum.location_in_context  # from its base
    assert (
        museum.announcement == "Museum mode." and museum.announcement_for("de") == "Museumsmodus."
    )
    assert set(MODES) == set(Mode) and MODES[Mode.BLIND].name == "blind"  # the wire is unchanged
    assert list(all_modes()) == ["general", "blind", "navigation", "shopping", "museum"]
    assert decide("switch to museum mode").set_mode == "museum"
    assert decide("Museumsmodus", language="de").set_mode == "museum"
    assert "Museum mode." in command_hotwords("en")


def test_a_user_mode_is_reached_by_voice_in_a_session(user_file):
    use_modes(
        user_file(
            '[modes.museum]\ninstruction = "Describe exhibits."\nnames = { en = ["museum"] }\n'
        )
    )
    run = run_session([(1.2, TextIn("museum mode"))], scripted(), until=4)
    assert [s.text for s in run.of(Speech)] == ["Museum mode."]
    assert run.session is not None
    engine = run.session.parts.engine
    assert engine.profile.name == "museum" and engine.profile.mode is Mode.GENERAL


def test_user_commands_for_a_new_language(user_file):
    use_modes(
        user_file(
            "[commands.fr]\n"
            'quiet = ["silence", "tais-toi"]\n'
            'never_mind = ["laisse tomber"]\n'
            'describe = ["qu\'y a-t-il autour de moi"]\n'
            'switch = ["passe en", "passe au"]\n'
            'mode_word = ["mode"]\n'
            'mode_phrase = "mode {name}"\n'
            "[modes.blind]\n"
            'names = { fr = ["aveugle"] }\n'
        )
    )
    assert decide("Tais-toi !", language="fr-FR").silence_narration
    assert decide("passe en mode aveugle", language="fr").set_mode == "blind"
    assert decide("switch to blind mode", language="fr").set_mode == "blind"  # English too


def test_cue_rules_are_mode_data_and_a_hazard_cue_stays_the_alerts_own(tmp_path):
    from server.engine.policy import GuidancePolicy
    from server.events import CueKind

    blind, general = profile(Mode.BLIND), profile(Mode.GENERAL)
    assert blind.cues.hazard_intensity == 1.0 and general.cues.hazard_intensity == 0.8
    alert = GuidancePolicy(blind).reply("Car coming at you from your left!", 0.0)
    assert alert is not None and alert.cue is CueKind.HAZARD and alert.cue_intensity == 1.0
    user = tmp_path / "modes.toml"
    user.write_text('[modes.general]\ncues = { answer = "attention" }\n', encoding="utf-8")
    data = load(user)
    answer = GuidancePolicy(data.modes["general"]).reply("It is a bench.", 0.0, answering=True)
    assert answer is not None and answer.cue is CueKind.ATTENTION
    assert "hazard" in _broken(tmp_path, '[modes.general]\ncues = { answer = "hazard" }\n')


def test_a_users_lexicon_adds_things_their_world_has(tmp_path):
    from server.engine.urgency import classify

    line = "Robot mower coming at you from the left."
    general = profile(Mode.GENERAL).urgency
    before = classify("Zorbel trolley on the path, right in front of you.", rules=general,
                      language="en", prompted=False)  # fmt: skip
    assert before.hazard is None or before.hazard.key != "zorbel trolley"
    user = tmp_path / "modes.toml"
    user.write_text('[lexicon.en]\nvehicle = ["robot mower"]\nobstacle = ["zorbel trolley"]\n')
    try:
        use_modes(user)
        u = classify(line, rules=general, language="en", prompted=False)
        assert u.hazard is not None and u.hazard.key == "robot mower" and u.kind is SpeechKind.ALERT
        h = classify("Zorbel trolley on the path, right in front of you.", rules=general,
                     language="en", prompted=False).hazard  # fmt: skip
        assert h is not None and h.key == "zorbel trolley" and h.category == "obstacle"
    finally:
        use_modes()  # the shipped lexicons again, for every other test
    after = classify(line, rules=general, language="en", prompted=False)
    assert after.hazard is None or after.hazard.key != "robot mower"
    assert "unknown category 'thing'" in _broken(tmp_path, '[lexicon.en]\nthing = ["x"]\n')
