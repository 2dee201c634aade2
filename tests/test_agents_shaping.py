"""Turning agent output into something short enough to speak; the localised lines."""

from __future__ import annotations

import pytest

from server.agents.base import (
    MAX_SPOKEN_WORDS,
    AgentAnswer,
    AgentError,
    DelegationRequest,
    parse_output,
)
from server.modes import phrases
from tests.fakes import ScriptedAgent


def test_first_two_sentences_are_spoken_the_rest_is_detail():
    a = parse_output(
        "The store closes at 9 pm. It opens at 8 am tomorrow. Parking is free after 6."
    )
    assert a == AgentAnswer(
        "The store closes at 9 pm. It opens at 8 am tomorrow.", "Parking is free after 6."
    )


def test_markdown_is_stripped_for_speech():
    a = parse_output(
        "## Result\n**Yes** — see [the label](http://x.y). `gluten` free.\n- rice\n- water"
    )
    assert a is not None
    assert "*" not in a.spoken and "http" not in a.spoken and "#" not in a.spoken
    assert a.spoken.startswith("Result Yes — see the label.")


def test_long_sentence_is_cut_at_a_clause_and_still_ends():
    text = " ".join(["word"] * 30) + ", and then " + " ".join(["more"] * 30) + ". Next."
    a = parse_output(text)
    assert a is not None
    assert len(a.spoken.split()) <= MAX_SPOKEN_WORDS
    assert a.spoken.endswith("word.")
    assert a.detail.startswith("and then more") and a.detail.endswith("Next.")


def test_second_sentence_is_dropped_when_it_would_be_too_long():
    first = "It is the blue door."
    second = " ".join(["detail"] * 45) + "."
    a = parse_output(f"{first} {second}")
    assert a is not None and a.spoken == first and a.detail == second


def test_chinese_uses_sentence_marks_and_a_character_budget():
    a = parse_output("这是一家咖啡店。营业到晚上九点。周末也开门。")
    assert a == AgentAnswer("这是一家咖啡店。营业到晚上九点。", "周末也开门。")


@pytest.mark.parametrize(
    ("raw", "spoken", "urgent"),
    [
        ('{"spoken": "Turn left.", "urgent": true}', "Turn left.", True),
        ('{"answer": "Two euros."}', "Two euros.", False),
        ('progress...\n{"result": "It is 5 km away."}', "It is 5 km away.", False),
        ('{"spoken": "Stop.", "urgent": "yes"}', "Stop.", False),
    ],
)
def test_json_output(raw, spoken, urgent):
    a = parse_output(raw)
    assert a is not None and (a.spoken, a.urgent) == (spoken, urgent)


@pytest.mark.parametrize("junk", ["", "   \n", "...", "{}", '{"spoken": 3}', "**  **"])
def test_junk_is_rejected(junk):
    assert parse_output(junk) is None


async def test_base_normalises_errors_and_shapes_answers():
    async def answer(scripted: AgentAnswer | Exception) -> AgentAnswer:
        return await ScriptedAgent({"q": scripted}).answer(DelegationRequest("q"), 1)

    with pytest.raises(AgentError, match="ValueError: bad"):
        await answer(ValueError("bad"))
    with pytest.raises(AgentError, match="nothing that can be spoken"):
        await answer(AgentAnswer(" ... "))
    long = AgentAnswer("One. Two. Three.", "More.")
    assert await answer(long) == AgentAnswer("One. Two.", "Three.\nMore.")


def test_agent_error_is_a_recoverable_with_a_category():
    e = AgentError("bad key", is_permanent=True)
    assert (e.code, e.component, e.retryable, e.is_permanent) == (
        "agent.failed",
        "agent",
        False,
        True,
    )
    assert AgentError("flaky").retryable


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "Sorry, I couldn't find that out."),
        ("de-AT", "Tut mir leid, das konnte ich nicht herausfinden."),
        ("fr_CA", "Désolé, je n'ai pas pu le trouver."),
        ("ES", "Lo siento, no pude averiguarlo."),
        ("zh-Hans-CN", "抱歉，我没能查到。"),
        ("pt-BR", "Sorry, I couldn't find that out."),
        ("", "Sorry, I couldn't find that out."),
    ],
)
def test_apology_is_localised(lang, expected):
    assert phrases.apology(lang) == expected


def test_fillers_rotate_within_the_language():
    said = {phrases.filler("de") for _ in range(6)}
    assert len(said) == 3 and "Ich schaue kurz nach." in said
    assert phrases.filler("xx") in {phrases.filler("en") for _ in range(3)}
    assert all(phrases.busy(lang) for lang in phrases.LANGUAGES)
