"""What the user's words do, decided before the model sees them.

Spoken and typed commands work in every mode ("quiet", "never mind", "louder",
"quieter", "what's around me?", "switch to blind mode"), even when the model is busy
or wrong. ``decide`` is
pure: text in, ``Effects`` out; the session carries the effects out. The phrases and
mode names are the modes data's (``server/modes/modes.toml``), per language, never a
list written here.

The recogniser mishears short commands (tiny.en hears "blind mode" as "Light mode."),
so matching is tolerant: the utterance is normalised (case, accents, punctuation,
"please" and "now" at its ends) and compared, by spelling and by a rough sound key,
with the phrases. Each match has a confidence and a threshold. A mode switch also
needs a command's shape (a switch verb, or the word "mode" with one or two words
for the name), no question word in front, and a clear lead over the next-best mode:
a missed command reaches the model as a question and can be said again, while a
wrong switch changes every rule at once, so the thresholds favour missing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache
from typing import Any

from server.modes import CommandWords, ModeProfile, all_modes, command_words

__all__ = ["Effects", "command_hotwords", "decide", "level_line", "normalise"]


@dataclass(frozen=True, slots=True)
class Effects:
    """What one utterance does.

    No command silences an alert: ``silence_narration`` cuts narration, answers and
    announcements now and drops those waiting; an alert that plays or waits goes on.
    """

    silence_narration: bool = False
    cancel_delegations: str = ""  # non-empty: cancel what runs, for this reason
    set_mode: str | None = None  # a mode's name: ``profile(name)`` (a wire mode's is its value)
    query: str | None = None  # what, if anything, goes on to the model
    must_answer: bool = False  # the query is answered even when the model would keep silent
    level_steps: int = 0  # "louder" (+1) or "quieter" (-1): the session's level moves
    command: str = ""  # what matched: quiet, never_mind, louder, quieter, describe, switch
    confidence: float = 0.0  # how sure that match is, 0..1


MAX_COMMAND_WORDS = 6  # "please switch to blind assistance mode now" is a command; a story is not
PHRASE_MIN = 0.82  # quiet / never mind / louder / quieter: the whole utterance this alike
DESCRIBE_MIN = 0.8  # "what's around me?" (a miss only loses the forced answer)
VERB_MIN = 0.8  # each word of a switch verb
MODE_WORD_MIN = 0.75  # the word "mode" ("mood" will do; "board" will not)
MARGIN = 0.15  # the named mode leads the next-best one by this much
# How like a mode's name the rest must be, by the shape around it: a verb and the
# word "mode" ("switch compliant mode"); the word "mode" only ("light mode"); a
# verb only ("switch to blind", and then exactly as many words as the name).
NAME_MIN = {(True, True): 0.55, (False, True): 0.7, (True, False): 0.85}


def decide(
    text: str, profiles: Mapping[Any, ModeProfile] | None = None, language: str = "en"
) -> Effects:
    """The effects of a final transcript or typed text in ``language``.

    ``profiles``: the modes a switch may name (default: every mode in force).
    Commands are looked for in ``language``, then in English. A new question cancels
    the background answer still running: the user has moved on, and two answers
    would arrive out of order.
    """
    t = " ".join(text.split())
    tokens = normalise(t)
    if not tokens:
        return Effects()
    modes = tuple((profiles or all_modes()).values())
    for lang in dict.fromkeys((language, "en")):
        found = _command(command_words(lang), lang, t, modes)
        if found is not None:
            return found
    return Effects(cancel_delegations="new question", query=t)


def command_hotwords(
    language: str = "en", profiles: Mapping[Any, ModeProfile] | None = None
) -> str:
    """What the recogniser should expect (faster-whisper's ``hotwords``): the commands
    and each mode's name, in ``language``, as a few short sentences."""
    words = command_words(language)
    said = [words.quiet[0], words.never_mind[0], f"{words.describe[0]}?"]
    said += [w[0] for w in (words.louder, words.quieter) if w]
    for p in (profiles or all_modes()).values():
        if names := p.names_in(language):
            said.append(words.mode_phrase.format(name=names[0]))
    return " ".join(_sentence(s) for s in said)


# --- normalising and comparing -------------------------------------------------------

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def normalise(text: str) -> tuple[str, ...]:
    """Lower-case words without accents or punctuation: "¿Qué tal?" → ("que", "tal")."""
    folded = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return tuple(_TOKEN.findall(plain))


# A rough sound key for English-ish spelling: what a recogniser confuses sounds alike
# ("light" ~ "blind": lit / plint). Upper case marks sounds already rewritten.
_SOUNDS = tuple(
    (re.compile(a), b)
    for a, b in (
        (r"'", ""),
        (r"(?<=[^aeiou])e\b", ""),  # a silent final e: "mode" ~ "mod"
        (r"x", "ks"),
        (r"tch|sch|sh|ch", "S"),
        (r"igh", "i"),
        (r"gh", ""),
        (r"ph", "f"),
        (r"ck", "k"),
        (r"qu", "kw"),
        (r"wh", "w"),
        (r"th", "t"),
        (r"dg|j|g(?=[eiy])", "J"),
        (r"c(?=[eiy])", "s"),
        (r"[cqg]", "k"),
        (r"z", "s"),
        (r"v", "f"),
        (r"b", "p"),
        (r"d", "t"),
        (r"ee|ea|ie|ei|ey", "i"),
        (r"oo|ou", "u"),
        (r"y", "i"),
        (r"h", ""),
        (r"(.)\1+", r"\1"),
    )
)
_REPEATS = _SOUNDS[-1][0]


@cache
def _key(word: str) -> str:
    for pattern, sound in _SOUNDS:
        word = pattern.sub(sound, word)
    return word


def _similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """0..1: the better of spelling and sound, over the words run together."""
    spelt = SequenceMatcher(None, "".join(a), "".join(b)).ratio()
    keyed = SequenceMatcher(None, _keys(a), _keys(b)).ratio()
    return max(spelt, keyed)


def _keys(words: tuple[str, ...]) -> str:
    return _REPEATS.sub(r"\1", "".join(map(_key, words)))  # "why yet" ~ "quiet": wit / kwit


@cache
def _phrases(words: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(p for w in words if (p := normalise(w)))


def _strip_ends(tokens: tuple[str, ...], phrases: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    """``tokens`` without any of ``phrases`` (exactly) at either end, repeatedly."""
    changed = True
    while changed and tokens:
        changed = False
        for p in phrases:
            if len(p) < len(tokens) and tokens[: len(p)] == p:
                tokens, changed = tokens[len(p) :], True
            if len(p) < len(tokens) and tokens[-len(p) :] == p:
                tokens, changed = tokens[: -len(p)], True
    return tokens


# --- the commands --------------------------------------------------------------------


def _command(
    words: CommandWords, language: str, text: str, modes: tuple[ModeProfile, ...]
) -> Effects | None:
    tokens = _strip_ends(normalise(text), _phrases(words.filler))
    if len(tokens) > MAX_COMMAND_WORDS:
        return None
    # The closest phrase wins, so "leiser" (quieter) is not "leise" (quiet) and "más
    # alto" (louder) not "alto" (stop); on a tie the earlier kind wins.
    scores = {
        kind: _best(tokens, _phrases(getattr(words, kind)), slack=1)
        for kind in ("quiet", "never_mind", "louder", "quieter")
    }
    kind, score = max(scores.items(), key=lambda kv: kv[1])
    if score >= PHRASE_MIN:
        return _PHRASE_EFFECTS[kind](score)
    if (around := _best(tokens, _phrases(words.describe), slack=2)) >= DESCRIBE_MIN:
        return Effects(
            cancel_delegations="new question",
            query=text,  # in the user's words: a near miss asks what they asked
            must_answer=True,
            command="describe",
            confidence=around,
        )
    switch = _switch(words, language, tokens, modes)
    if switch is not None:
        name, confidence = switch
        return Effects(
            cancel_delegations="mode change", set_mode=name, command="switch", confidence=confidence
        )
    return None


_PHRASE_EFFECTS = {
    "quiet": lambda c: Effects(silence_narration=True, command="quiet", confidence=c),
    "never_mind": lambda c: Effects(
        silence_narration=True, cancel_delegations="never mind", command="never_mind", confidence=c
    ),
    "louder": lambda c: Effects(level_steps=1, command="louder", confidence=c),
    "quieter": lambda c: Effects(level_steps=-1, command="quieter", confidence=c),
}


def level_line(language: str, asked: int, moved: int) -> str:
    """What is said after "louder" (``asked`` > 0) or "quieter" moved the level by
    ``moved`` steps: "Louder.", or "This is as loud as I go." at the bound."""
    said = command_words(language).level_said or command_words("en").level_said
    key = ("louder" if moved else "loudest") if asked > 0 else ("quieter" if moved else "quietest")
    return said.get(key, "")


def _best(tokens: tuple[str, ...], phrases: tuple[tuple[str, ...], ...], *, slack: int) -> float:
    """How like its nearest phrase the whole utterance is (0 when much longer)."""
    return max(
        (_similarity(tokens, p) for p in phrases if len(tokens) <= len(p) + slack), default=0.0
    )


def _switch(
    words: CommandWords, language: str, tokens: tuple[str, ...], modes: tuple[ModeProfile, ...]
) -> tuple[str, float] | None:
    """(mode name, confidence) when the utterance has a switch's shape and names one."""
    if any(tokens[: len(q)] == q for q in _phrases(words.no_switch)):
        return None  # "what is blind mode?" asks about it; "exit blind mode" leaves it
    rest, verb = _strip_verb(tokens, _phrases(words.switch))
    rest, moded = _strip_mode_word(rest, words)
    rest = _strip_ends(rest, _phrases(words.articles))
    if not (verb or moded) or not 1 <= len(rest) <= 3:
        return None
    scored: dict[str, tuple[float, int]] = {}  # mode name -> (similarity, words in the name)
    for p in modes:
        for name in _phrases(p.names_in(language)):
            s = (_similarity(rest, name), len(name))
            scored[p.name] = max(scored.get(p.name, s), s)
    ranked = sorted(scored.items(), key=lambda kv: kv[1][0], reverse=True)
    if not ranked:
        return None
    best, (score, length) = ranked[0]
    runner_up = ranked[1][1][0] if len(ranked) > 1 else 0.0
    if not moded and len(rest) != length:
        return None  # "use the shopping list" names no mode
    if score >= NAME_MIN[(verb, moded)] and score - runner_up >= MARGIN:
        return best, score
    return None


def _strip_verb(
    tokens: tuple[str, ...], verbs: tuple[tuple[str, ...], ...]
) -> tuple[tuple[str, ...], bool]:
    """``tokens`` after the longest switch verb they start with (each word alike)."""
    for verb in sorted(verbs, key=len, reverse=True):
        head = tokens[: len(verb)]
        if len(verb) < len(tokens) and all(
            _similarity((a,), (b,)) >= VERB_MIN for a, b in zip(head, verb, strict=True)
        ):
            return tokens[len(verb) :], True
    return tokens, False


def _strip_mode_word(tokens: tuple[str, ...], words: CommandWords) -> tuple[tuple[str, ...], bool]:
    """``tokens`` without the word "mode" where the language puts it (``mode_phrase``:
    "{name} mode" after the name, "modo {name}" before it), or without it as the end
    of a compound ("blindenmodus" → "blinden")."""
    mode_words = normalise(" ".join(words.mode_word))
    first = not words.mode_phrase.startswith("{name}")
    if len(tokens) >= 2:
        edge, rest = (tokens[0], tokens[1:]) if first else (tokens[-1], tokens[:-1])
        if any(_similarity((edge,), (w,)) >= MODE_WORD_MIN for w in mode_words):
            return rest, True
    last = tokens[-1] if tokens else ""
    for w in mode_words:
        if len(last) > len(w) + 2 and last.endswith(w):
            return (*tokens[:-1], last[: -len(w)]), True
    return tokens, False


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text[-1:] in ".?!" else f"{text}."
