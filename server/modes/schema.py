"""The modes file's schema: each key's check and what it must be, and the errors
that name the file, the table and the key (read by ``loader.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "COMMAND_KEYS",
    "REQUIRED_COMMANDS",
    "REQUIRED_MODE",
    "ModeDataError",
    "Raw",
    "base_language",
    "checked",
    "lexicon_table",
    "mode_table",
    "table",
]


class ModeDataError(ValueError):
    """A modes file that cannot be used; the message says where and what to fix."""


def base_language(language: str) -> str:
    """The base of a BCP-47-ish code: "de-AT" → "de"; empty → "en"."""
    return language.strip().lower().replace("_", "-").split("-", 1)[0] or "en"


# --- the schema: key -> (check, what it must be) ------------------------------------

Check = Callable[[Any], Any]


def _is_str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise TypeError
    return v.strip()


def _is_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise TypeError
    return v


def _is_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise TypeError
    return float(v)


def _is_number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:  # v != v: NaN
        raise TypeError
    return float(v)


def _is_angle(v: Any) -> float:
    if not 0 <= _is_float(v) <= 180:
        raise TypeError
    return float(v)


def _is_fps(v: Any) -> float:
    if not 0.05 <= _is_float(v) <= 30:
        raise TypeError
    return float(v)


def _is_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _is_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise TypeError
    return tuple(_is_str(x) for x in v)


def _is_level(v: Any) -> str:
    if v not in ("present", "imminent"):
        raise TypeError
    return str(v)


def _is_unsure(v: Any) -> str:
    if v not in ("narration", "alert"):
        raise TypeError
    return str(v)


def _is_cue(v: Any) -> str:
    if v not in ("", *_CUE):
        raise TypeError
    return str(v)


def _is_share(v: Any) -> float:
    if not 0 <= _is_float(v) <= 1:
        raise TypeError
    return float(v)


def _is_phrase(v: Any) -> str:
    if "{name}" not in _is_str(v):
        raise TypeError
    return str(v)


VOICE_STYLES = ("quiet", "normal")  # server/voice/profile.py's STYLES
LEVEL_LINES = ("louder", "quieter", "loudest", "quietest")


def _is_style(v: Any) -> str:
    if v not in VOICE_STYLES:
        raise TypeError
    return str(v)


def _is_rate(v: Any) -> float:
    if not 0.5 <= _is_float(v) <= 2.0:
        raise TypeError
    return float(v)


def _is_said(v: Any) -> dict[str, str]:
    if not isinstance(v, dict) or set(v) != set(LEVEL_LINES):
        raise TypeError
    return {k: _is_str(v[k]) for k in LEVEL_LINES}


MODE_KEYS: dict[str, tuple[Check, str]] = {
    "base": (_is_str, "the name of a shipped mode"),
    "instruction": (_is_str, "a non-empty string"),
    "max_words": (_is_int, "a whole number of words, at least 1"),
    "repeat_after_s": (_is_float, "seconds, a number at least 0"),
    "location": (_is_bool, "true or false"),
    # When a fix re-enters the turn (server/engine/location.py); optional.
    "location_moved_m": (_is_float, "metres, a number at least 0"),
    "location_heading_deg": (_is_angle, "degrees, a number from 0 to 180"),
    "location_accuracy_m": (_is_float, "metres, a number at least 0"),
    "location_stale_s": (_is_float, "seconds, a number at least 0"),
    # When the bridge is told to capture less (server/engine/scene.py); optional.
    "capture_static_s": (_is_float, "seconds, a number at least 0"),
    "capture_static_fps": (_is_fps, "frames a second, from 0.05 to 30"),
    "capture_unchanged_s": (_is_float, "seconds, a number at least 0"),
    "speak_margin": (_is_number, "a number (log-prob; may be negative)"),
    "alerts_cut_results": (_is_bool, "true or false"),
    "barcodes": (_is_bool, "true or false"),
    "fall_from_frames": (_is_bool, "true or false"),
    "urgency": (_is_str, "a table"),  # checked key by key: URGENCY_KEYS
    "voice": (_is_str, "a table"),  # checked key by key: VOICE_KEYS
    "cues": (_is_str, "a table"),  # checked key by key: CUE_KEYS
    "stills": (_is_list, "a list of strings"),  # per language
    "names": (_is_list, "a list of strings"),  # per language
    "announce": (_is_str, "a non-empty string"),  # per language
}
_PER_LANGUAGE = ("stills", "names", "announce")
URGENCY_KEYS: dict[str, tuple[Check, str]] = {
    "unprompted": (_is_level, '"present" or "imminent"'),
    "side_obstacles": (_is_bool, "true or false"),
    "near_m": (_is_float, "metres, a number at least 0"),
    "far_m": (_is_float, "metres, a number at least 0"),
    "unsure": (_is_unsure, '"narration" or "alert"'),
}
VOICE_KEYS: dict[str, tuple[Check, str]] = {
    "style": (_is_style, " or ".join(f'"{s}"' for s in VOICE_STYLES)),
    "rate": (_is_rate, "a pace between 0.5 and 2.0 (1.0 = the session's)"),
}
_LISTS: tuple[str, ...] = ("quiet", "never_mind", "describe", "switch", "mode_word", "filler")
_LISTS += ("articles", "louder", "quieter")  # louder, quieter: the level, by voice
COMMAND_KEYS: dict[str, tuple[Check, str]] = {
    **{k: (_is_list, "a list of strings") for k in (*_LISTS, "no_switch", "where_am_i")},
    "mode_phrase": (_is_phrase, 'a string with "{name}" in it'),
    "level_said": (_is_said, f"a table of strings: {', '.join(LEVEL_LINES)}"),
}
_CUE = ("attention", "thinking", "done")  # never "hazard": that cue means an alert
CUE_KEYS: dict[str, tuple[Check, str]] = {
    **{
        k: (_is_cue, " or ".join(f'"{c}"' for c in ("", *_CUE)))
        for k in ("answer", "narration", "note", "result")
    },
    "hazard_intensity": (_is_share, "a number from 0 to 1"),
}
_TABLES = {"urgency": URGENCY_KEYS, "voice": VOICE_KEYS, "cues": CUE_KEYS}
REQUIRED_MODE = (
    "instruction",
    "max_words",
    "repeat_after_s",
    "location",
    "alerts_cut_results",
    "urgency",
)
REQUIRED_COMMANDS = ("quiet", "never_mind", "describe", "switch", "mode_word", "mode_phrase")

Raw = dict[str, Any]


def table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModeDataError(f"{where}: expected a table, got {value!r}")
    return value


def checked(
    value: Any, key: str, schema: Mapping[str, tuple[Check, str]], where: str, label: str = ""
) -> Any:
    if key not in schema:
        raise ModeDataError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(schema))}")
    check, what = schema[key]
    try:
        return check(value)
    except TypeError:
        raise ModeDataError(f"{where} {label or key}: expected {what}, got {value!r}") from None


def mode_table(raw: Any, where: str) -> Raw:
    out: Raw = {}
    for key, value in table(raw, where).items():
        if key in _TABLES:
            keys, schema = table(value, f"{where} {key}"), _TABLES[key]
            out[key] = {k: checked(v, k, schema, f"{where} {key}") for k, v in keys.items()}
        elif key in _PER_LANGUAGE:
            by_language = table(value, f"{where} {key}")
            out[key] = {
                base_language(lang): checked(v, key, MODE_KEYS, where, f"{key}.{lang}")
                for lang, v in by_language.items()
            }
        else:
            out[key] = checked(value, key, MODE_KEYS, where)
    return out


def lexicon_table(value: Any, source: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """``[lexicon.LANG]``: things a user's world has that the shipped lexicons lack, by
    category (``lexicon_base.CATEGORIES``): ``obstacle = ["rake", "robot mower"]``."""
    from server.modes.lexicon_base import CATEGORIES

    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for lang, raw in table(value, f"{source}: [lexicon]").items():
        where = f"{source}: [lexicon.{lang}]"
        things: dict[str, tuple[str, ...]] = {}
        for category, phrases in table(raw, where).items():
            if category not in CATEGORIES:
                raise ModeDataError(
                    f"{where}: unknown category {category!r}; known: {', '.join(CATEGORIES)}"
                )
            try:
                things[category] = tuple(p.strip().lower() for p in _is_list(phrases) if p.strip())
            except TypeError:
                raise ModeDataError(f"{where} {category}: expected a list of strings") from None
        out[lang] = things
    return out
