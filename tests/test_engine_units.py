"""Pure decisions: tick clock, action parser, policy, commands, clause splitting, config."""

from __future__ import annotations

import pytest

from server.config import load_settings
from server.engine.clock import TickClock
from server.engine.commands import decide
from server.engine.policy import GuidancePolicy, clock_direction
from server.events import CueKind, Mode, SpeechKind
from server.modes import profile
from server.runtime.actions import parse_action
from server.runtime.base import ActionKind
from server.voice.tts.base import split_clauses

# ------------------------------------------------------------------ tick clock


def test_tick_labels_are_real_elapsed_whole_seconds():
    c = TickClock(start=100.0, period_s=1.0)
    assert c.label(101.04) == 1.0
    assert c.label(112.99) == 12.0
    assert c.label(100.0) == 0.0


def test_next_tick_follows_the_frame_phase():
    c = TickClock(start=0.0, period_s=1.0, frame_wait_s=0.15)
    assert c.plan().due == 1.0
    # Fired at 1.1 with a frame that arrived at 1.1 (it was a little late): the
    # next frame is expected at 2.1, so the next tick is due then.
    assert c.advance(fired_at=1.1, finished_at=1.12, frame_at=1.1) == 0
    assert c.plan().due == pytest.approx(2.1)
    # No fresh frame: one period after firing.
    c.advance(fired_at=2.1, finished_at=2.12, frame_at=None)
    assert c.plan().due == pytest.approx(3.1)


def test_no_two_ticks_share_a_label():
    c = TickClock(start=0.0, period_s=1.0)
    # The frame came at 0.3; 1.3 would be within the same whole second as the tick.
    c.advance(fired_at=1.2, finished_at=1.25, frame_at=0.3)
    assert c.plan().due == pytest.approx(2.0)
    assert c.label(c.plan().due) == 2.0


def test_overrunning_step_coalesces_instead_of_queueing():
    c = TickClock(start=0.0, period_s=1.0)
    # A step that took 3.5 periods: the ticks due at 2, 3 and 4 collapse into one
    # that fires at once.
    skipped = c.advance(fired_at=1.0, finished_at=4.5)
    assert skipped == 2
    assert c.plan().due <= 4.5
    assert c.coalesced_total == 2
    assert c.advance(fired_at=4.5, finished_at=4.6) == 0


def test_frame_wait_is_at_most_half_a_period():
    c = TickClock(start=0.0, period_s=0.2, frame_wait_s=0.5)
    assert c.plan().deadline - c.plan().due == pytest.approx(0.1)


# ------------------------------------------------------------------ actions


@pytest.mark.parametrize(
    ("raw", "kind", "text", "question"),
    [
        ("</silence>", ActionKind.SILENCE, "", ""),
        ("</response> Door on your left.", ActionKind.RESPONSE, "Door on your left.", ""),
        ("  </response>   Step   down.<|im_end|>", ActionKind.RESPONSE, "Step down.", ""),
        ("There is a door on the left.", ActionKind.SILENCE, "", ""),  # no marker: never spoken
        ("</response> Let me check. </delegation> Is this shop open?", ActionKind.DELEGATE,
         "Let me check.", "Is this shop open?"),
        ("</response> One moment <delegation> price of oat milk here", ActionKind.DELEGATE,
         "One moment", "price of oat milk here"),
        ("</response>", ActionKind.SILENCE, "", ""),
        ("</silence> </response> hello", ActionKind.SILENCE, "", ""),
        ("</response> note </delegation>", ActionKind.RESPONSE, "note", ""),
    ],
)  # fmt: skip
def test_parse_action(raw, kind, text, question):
    a = parse_action(raw)
    assert (a.kind, a.text, a.question) == (kind, text, question)


# ------------------------------------------------------------------ policy


def test_blind_mode_hazard_is_a_short_preempting_alert_with_a_cue():
    p = GuidancePolicy(profile(Mode.BLIND))
    u = p.reply(
        "Bike at 2 o'clock, coming fast toward you on the path, please move to the right side now.",
        0.0,
    )
    assert u is not None
    assert u.kind is SpeechKind.ALERT and u.preempt and u.cue is CueKind.HAZARD
    assert u.cue_direction == 2
    # Shortened at clause boundaries to the 12-word budget, except that the where and
    # the coming stay even a few words over ("on the path" goes, the sentence ends).
    assert u.text == "Bike at 2 o'clock, coming fast toward you. Please move to the right side now."


def test_same_line_is_not_repeated_within_the_window():
    p = GuidancePolicy(profile(Mode.BLIND))
    assert p.reply("Step down ahead.", 0.0) is not None
    assert p.reply("Step down ahead.", 2.0) is None
    assert p.reply("Step  down, ahead!", 3.0) is None
    assert p.reply("Step down ahead.", 10.0) is not None


@pytest.mark.parametrize("mode", list(Mode))
def test_every_mode_alerts_with_a_cue_and_preempts(mode):
    p = GuidancePolicy(profile(mode))
    u = p.reply("Box in your path, right in front of you.", 0.0)
    assert u is not None and u.kind is SpeechKind.ALERT, (mode, u)
    assert u.cue is CueKind.HAZARD and u.preempt


def test_a_hazard_repeats_only_when_it_came_closer_or_moved():
    p = GuidancePolicy(profile(Mode.BLIND))
    assert p.reply("Pole ahead in five metres.", 0.0) is not None
    assert p.reply("There is a pole ahead, five metres away.", 1.0) is None  # same news
    assert p.reply("Pole ahead in two metres.", 2.0) is not None  # closer
    assert p.reply("Pole at 3 o'clock, two metres.", 3.0) is not None  # moved
    assert p.reply("Bike at 3 o'clock.", 3.5) is not None  # another thing


def test_blind_brevity_ends_between_phrases_and_keeps_where_and_how_far():
    p = GuidancePolicy(profile(Mode.BLIND))
    u = p.reply(
        "A bright room with a wooden table, two chairs and nice paintings on the wall.", 0.0
    )
    assert u is not None and u.kind is SpeechKind.NARRATION
    assert not u.text.endswith(" on.") and u.text.endswith(".")
    alert = p.reply(
        "The street is busy today with many shops open, and a car is coming quickly "
        "from your left, about ten metres away.",
        1.0,
    )
    assert alert is not None and alert.kind is SpeechKind.ALERT
    assert "car" in alert.text and "left" in alert.text and "ten metres" in alert.text


def test_german_hazard_in_german():
    p = GuidancePolicy(profile(Mode.BLIND), "de-DE")
    u = p.reply("Achtung, Fahrrad von links!", 0.0)
    assert u is not None and u.kind is SpeechKind.ALERT


def test_answers_are_not_deduplicated_or_cut():
    p = GuidancePolicy(profile(Mode.BLIND))
    long = "The sign says the pharmacy is open from nine in the morning until eight at night."
    a = p.reply(long, 0.0, answering=True)
    b = p.reply(long, 1.0, answering=True)
    assert a and b and a.kind is SpeechKind.ANSWER and a.text == long


def test_clock_direction():
    assert clock_direction("bike at 2 o'clock") == 2
    assert clock_direction("car at 11 oclock") == 11
    assert clock_direction("nothing here") == 0


# ------------------------------------------------------------------ commands


@pytest.mark.parametrize(
    ("text", "stop", "cancel", "mode", "query"),
    [
        ("Quiet", True, "", None, None),
        ("never mind", True, "never mind", None, None),
        ("switch to blind mode", False, "mode change", Mode.BLIND, None),
        ("Navigation mode", False, "mode change", Mode.NAVIGATION, None),
        ("switch to blind assistance mode", False, "mode change", Mode.BLIND, None),
        ("what is in front of me", False, "new question", None, "what is in front of me"),
        ("tell me about the blind mode setting in the app and how it works", False,
         "new question", None, "tell me about the blind mode setting in the app and how it works"),
        ("  ", False, "", None, None),
        # what tiny.en makes of "blind mode" at espeak's faster rates
        ("Light mode.", False, "mode change", Mode.BLIND, None),
        ("switch to blind", False, "mode change", Mode.BLIND, None),
        ("What is blind mode?", False, "new question", None, "What is blind mode?"),
        ("What's around me?", False, "new question", None, "What's around me?"),
    ],
)  # fmt: skip
def test_commands(text, stop, cancel, mode, query):
    c = decide(text)
    assert (c.silence_narration, c.cancel_delegations, c.set_mode, c.query) == (
        stop,
        cancel,
        mode,
        query,
    )


# ------------------------------------------------------------------ clauses


def test_split_clauses_merges_tiny_pieces():
    text = "Door on your left. Watch the step, it is steep."
    parts = split_clauses(text)
    assert parts[0] == "Door on your left."
    assert len(parts) >= 2 and " ".join(parts) == text
    assert split_clauses("Yes, go.") == ["Yes, go."]


# ------------------------------------------------------------------ config


def test_settings_file_then_environment(tmp_path):
    f = tmp_path / "server.toml"
    f.write_text('[server]\nport = 6000\ntick_hz = 2.0\n[voice]\ntts = ["piper"]\n')
    s = load_settings(f, env={"MURMUR_SERVER_PORT": "7000", "MURMUR_VOICE_TTS": "espeak,piper"})
    assert s.server.port == 7000 and s.server.tick_hz == 2.0
    assert s.voice.tts == ("espeak", "piper")


def test_settings_unknown_key_names_the_known_ones(tmp_path):
    f = tmp_path / "server.toml"
    f.write_text("[server]\nprot = 1\n")
    with pytest.raises(ValueError, match=r"server\.prot.*port"):
        load_settings(f, env={})
