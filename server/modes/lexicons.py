"""Hazard lexicons per language and each mode's urgency rules: the data behind
``server.engine.urgency``.

A lexicon names the things the model may warn about (a canonical English key shared
by all languages, and a category), and how it says where (clock hours, sides, "in
your path"), how far, that a thing moves (towards the user, or off and away), that it
is harmless ("not in your way"), its own warning words and that it reads text aloud
("the sign says"). The type is ``lexicon_base.Lexicon``; the data is one module per
language (``lexicon_en``, ``lexicon_de``, ``lexicon_es``). English is thorough, German
and Spanish small but real; any other language falls back to English.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache

from server.modes.lexicon_base import CATEGORIES, Lexicon
from server.modes.lexicon_de import DE
from server.modes.lexicon_en import EN
from server.modes.lexicon_es import ES

# fmt: off
__all__ = ["CATEGORIES", "WATCHFUL", "Lexicon", "UrgencyRules", "add_things", "alternation",
           "lexicon", "pattern", "rows"]
# fmt: on


@dataclass(frozen=True, slots=True)
class UrgencyRules:
    """When a mode's unprompted line is an alert (prompted ones need "imminent")."""

    unprompted: str  # the least level that alerts unprompted: "present" or "imminent"
    side_obstacles: bool = False  # an obstacle beside the user is in the path too
    near_m: float = 1.5  # within this anything but a landmark is imminent
    # Beyond this nothing is urgent, not even a vehicle approaching, unless it is in
    # the path or the model warns: at 15 m a car is seconds away, and says so again.
    far_m: float = 15.0
    # An unprompted line that puts something near the user ("…, right where you're
    # heading", "rechts neben dir") but names nothing the lexicon knows and clears
    # nothing: "narration", or "alert" where a miss costs more than a false alarm.
    unsure: str = "narration"


# The most watchful rules (blind mode's): what a line is "about" is judged by them.
WATCHFUL = UrgencyRules("present", side_obstacles=True)

SHIPPED: dict[str, Lexicon] = {lex.language: lex for lex in (EN, DE, ES)}
LEXICONS: dict[str, Lexicon] = dict(SHIPPED)  # in force: the shipped ones and a user's things


def add_things(additions: Mapping[str, Mapping[str, Iterable[str]]]) -> None:
    """Put the shipped lexicons in force with ``additions`` (language → category →
    phrases; each phrase is its own canonical key) — a user's ``[lexicon.LANG]``. A
    language without a lexicon of its own adds to a copy of English's."""
    LEXICONS.clear()
    LEXICONS.update(SHIPPED)
    for lang, by_category in additions.items():
        base = SHIPPED.get(lang, EN)
        more = {p: (p, cat) for cat, phrases in by_category.items() for p in phrases}
        LEXICONS[lang] = replace(base, language=lang, things={**base.things, **more})
    pattern.cache_clear()
    rows.cache_clear()


def lexicon(language: str) -> Lexicon:
    """The lexicon for a base language ("de", "es"), English for any other."""
    return LEXICONS.get(language, EN)


def alternation(words: Iterable[str]) -> str:
    """Literal phrases as one regex, longest first ("step down" before "step")."""
    forms = sorted(words, key=len, reverse=True)
    return "|".join(re.escape(f).replace(r"\ ", r"\s+") for f in forms)


@cache
def pattern(language: str, name: str) -> re.Pattern[str]:
    """A lexicon field as one compiled pattern. Built ones: "things" (group 1 a plain
    form, group 2 a compound's end, group 3 the plural), "distance" (digits and unit
    in groups 1–2, or number word and unit in 3–4; group 5 "and a half"), "conjunctions" and
    "prepositions" (the space before one; a preposition only where a word follows it),
    "leading_conjunction", "place_after" and "place_before" (around a thing's name), and "reading" (with the sentence that a ``reading_end`` cue
    closes)."""
    lex = lexicon(language)
    if name == "things":
        plain = alternation(f for f in lex.things if not f.startswith("*"))
        ends = alternation(f[1:] for f in lex.things if f.startswith("*"))
        tail = rf"|\w*?({ends})" if ends else "|(?!)()"
        # Before a hyphen a thing names another ("wet-floor sign", "step-free").
        return re.compile(rf"\b(?:({plain}){tail})({lex.plural})\b(?!-\w)")
    if name == "distance":
        units, any_unit = alternation(lex.units), alternation([*lex.units, *dict(lex.short_units)])
        return re.compile(
            rf"\b(?:(\d+(?:[.,]\d+)?)\s*({any_unit})|({alternation(lex.numbers)})\s+({units}))"
            rf"(\s+(?:{lex.half}))?\b"
        )
    if name == "conjunctions":
        return re.compile(rf"\s(?=(?:{alternation(lex.conjunctions)})\b)")
    if name == "prepositions":  # not one left at a clause's end: "the lane you're in, …"
        return re.compile(rf"\s(?=(?:{alternation(lex.prepositions)})\b(?!\s*(?:[,.;:!?]|$)))")
    if name == "leading_conjunction":
        return re.compile(rf"(?:{alternation(lex.conjunctions)})\s+", re.IGNORECASE)
    if name == "clock":
        return re.compile(lex.clock)
    if name == "place_after":  # matched where a thing's name ends
        return re.compile(rf"\s+(?:{'|'.join(lex.place_after) or '(?!)'})\b")
    if name == "place_before":  # searched up to where a thing's name starts
        return re.compile(rf"\b(?:{'|'.join(lex.place_before) or '(?!)'})\s+$")
    if name == "reading":  # a cue leading into text read out, or the sentence a cue ends
        ends = "|".join(f"(?:{p})" for p in lex.reading_end) or r"(?!)"
        cues = "|".join(f"(?:{p})" for p in lex.reading)
        return re.compile(rf"{cues}|(?:^|(?<=[.!?] ))[^.!?]*?(?:{ends})")
    patterns: tuple[str, ...] = getattr(lex, name)
    return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)")


@cache
def rows(language: str, name: str) -> tuple[tuple[re.Pattern[str], float, int], ...]:
    """``directions`` as (pattern, 0, clock) and ``vague`` as (pattern, metres, clock)."""
    lex = lexicon(language)
    if name == "directions":
        return tuple((re.compile(p), 0.0, clock) for p, clock in lex.directions)
    return tuple((re.compile(p), metres, clock) for p, metres, clock in lex.vague)
