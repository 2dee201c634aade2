"""The emergency path's words per language, as data: ``[emergency.LANG]`` in modes.toml
(and a user's modes file), checked at start like the other tables.

Patterns are regular expressions over *folded* text — lower case, accents dropped, ß as
ss, as ASR often writes them — one clause at a time; ``server/engine/emergency.py``
folds what was said and matches (that logic stays in code). A pattern that does not
compile, or that has accents in it (it could never match), stops the server
with the file, the table and the key. A user's table overrides the lists it gives and,
key by key, ``lines`` and ``messages``; a new language must give every key.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.modes.schema import ModeDataError, Raw, base_language, table

__all__ = [
    "LINE_KEYS",
    "MESSAGE_FIELDS",
    "PATTERN_KEYS",
    "EmergencyWords",
    "emergency_table",
    "emergency_words",
    "merge_emergency",
]

PATTERN_KEYS = ("alone", "anywhere", "fine", "not_fine", "confirm", "unsure", "model")
# What Murmur says (server/engine/emergency_phrases.Line has one member per key).
LINE_KEYS = ("ask", "clarify", "calling", "called", "retrying", "unreachable", "cancelled")
# What the contacts are sent, and the {fields} each template may use.
MESSAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "user": (),  # who raised it: the user …
    "model": (),  # … the model …
    "fall": (),  # … a fall signal
    "confirmed": (),  # how it went: confirmed …
    "no_answer": ("waited",),  # … no answer in {waited} seconds
    "location": ("lat", "lon", "accuracy", "age", "map"),  # where
    "no_location": (),
}
_SAMPLE: dict[str, object] = {
    "waited": 20.0,
    "lat": 0.0,
    "lon": 0.0,
    "accuracy": 0.0,
    "age": 0.0,
    "map": "",
}


@dataclass(frozen=True, slots=True)
class EmergencyWords:
    """One language's ``[emergency.LANG]`` (see modes.toml for what each key is)."""

    language: str
    alone: tuple[str, ...]
    anywhere: tuple[str, ...]
    fine: tuple[str, ...]
    not_fine: tuple[str, ...]
    confirm: tuple[str, ...]
    unsure: tuple[str, ...]
    model: tuple[str, ...]
    lines: Mapping[str, str] = field(default_factory=dict, hash=False)
    messages: Mapping[str, str] = field(default_factory=dict, hash=False)


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise ModeDataError(f"{where}: expected a list of regular expressions, got {value!r}")
    for p in value:
        try:
            re.compile(p)
        except re.error as e:
            raise ModeDataError(f"{where}: {p!r} is not a regular expression ({e})") from None
        decomposed = unicodedata.normalize("NFKD", p)
        if "ß" in p or any(unicodedata.combining(c) for c in decomposed):
            raise ModeDataError(
                f'{where}: {p!r} has accents; patterns match folded text ("gesturzt", '
                'not "gestürzt"), so it could never match'
            )
    return tuple(value)


def _text(value: Any, where: str, fields: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModeDataError(f"{where}: expected a non-empty string, got {value!r}")
    if fields is None:
        return value
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        if used <= set(fields):
            value.format(**_SAMPLE)
    except (ValueError, KeyError, IndexError) as e:
        raise ModeDataError(f"{where}: {value!r} is not a usable template ({e})") from None
    if not used <= set(fields):
        allowed = ", ".join("{" + f + "}" for f in fields) or "no {fields}"
        raise ModeDataError(f"{where}: {value!r} may use {allowed}")
    return value


def emergency_table(raw: Any, source: str) -> dict[str, Raw]:
    """A file's ``[emergency]``, by base language, every key checked (none required yet)."""
    out: dict[str, Raw] = {}
    for lang, words in table(raw, f"{source}: [emergency]").items():
        where = f"{source}: [emergency.{lang}]"
        checked: Raw = {}
        for key, value in table(words, where).items():
            if key in PATTERN_KEYS:
                checked[key] = _patterns(value, f"{where} {key}")
            elif key == "lines":
                checked[key] = {
                    k: _text(v, f"{where} lines.{k}")
                    for k, v in _known(value, LINE_KEYS, f"{where} lines").items()
                }
            elif key == "messages":
                checked[key] = {
                    k: _text(v, f"{where} messages.{k}", MESSAGE_FIELDS[k])
                    for k, v in _known(value, tuple(MESSAGE_FIELDS), f"{where} messages").items()
                }
            else:
                known = ", ".join((*PATTERN_KEYS, "lines", "messages"))
                raise ModeDataError(f"{where}: unknown key {key!r}; known: {known}")
        out[base_language(lang)] = checked
    return out


def _known(value: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    found = table(value, where)
    unknown = sorted(set(found) - set(keys))
    if unknown:
        raise ModeDataError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(keys)}")
    return found


def merge_emergency(under: dict[str, Raw], over: Mapping[str, Raw]) -> dict[str, Raw]:
    """``over``'s lists win; ``lines`` and ``messages`` merge key by key."""
    out = dict(under)
    for lang, raw in over.items():
        merged = dict(out.get(lang, {}))
        for key, value in raw.items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
        out[lang] = merged
    return out


def emergency_words(
    by_language: Mapping[str, Raw], origin: Mapping[str, str]
) -> dict[str, EmergencyWords]:
    """Every language complete (``origin``: the file where each began, for the error)."""
    if "en" not in by_language:
        raise ModeDataError(f"{origin.get('en', 'modes')}: missing [emergency.en]")
    out = {}
    for lang, raw in by_language.items():
        missing = [k for k in (*PATTERN_KEYS, "lines", "messages") if k not in raw]
        missing += [f"lines.{k}" for k in LINE_KEYS if "lines" in raw and k not in raw["lines"]]
        missing += [
            f"messages.{k}"
            for k in MESSAGE_FIELDS
            if "messages" in raw and k not in raw["messages"]
        ]
        if missing:
            raise ModeDataError(f"{origin[lang]}: [emergency.{lang}] missing {', '.join(missing)}")
        out[lang] = EmergencyWords(language=lang, **raw)
    return out
