"""Short localised lines: around a delegation, the filler while an agent works, the
apology when it fails and the line for when every agent is busy; and the answer to
"what's around me?" when the model found nothing to say (that question always answers).

Languages: en, de, fr, es, zh; anything else falls back to English. A region or
script suffix is ignored ("de-AT" → de, "zh-Hans-CN" → zh).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

__all__ = ["LANGUAGES", "apology", "base_language", "busy", "filler", "nothing_seen"]

_FILLERS: dict[str, tuple[str, ...]] = {
    "en": ("Let me check.", "One moment, I'll look that up.", "Checking on that."),
    "de": ("Ich schaue kurz nach.", "Einen Moment, ich finde es heraus.", "Ich prüfe das."),
    "fr": ("Je vérifie.", "Un instant, je me renseigne.", "Je regarde ça."),
    "es": ("Déjame comprobarlo.", "Un momento, lo averiguo.", "Lo estoy mirando."),
    "zh": ("我查一下。", "稍等，我去查查。", "我看一下。"),
}

_APOLOGY: dict[str, str] = {
    "en": "Sorry, I couldn't find that out.",
    "de": "Tut mir leid, das konnte ich nicht herausfinden.",
    "fr": "Désolé, je n'ai pas pu le trouver.",
    "es": "Lo siento, no pude averiguarlo.",
    "zh": "抱歉，我没能查到。",
}

_BUSY: dict[str, str] = {
    "en": "Sorry, I'm busy with other questions. Please ask again in a moment.",
    "de": "Tut mir leid, ich bin gerade ausgelastet. Frag bitte gleich noch einmal.",
    "fr": "Désolé, je suis occupé. Redemande-moi dans un instant.",
    "es": "Lo siento, estoy ocupado. Pregúntame otra vez en un momento.",
    "zh": "抱歉，我现在很忙，请稍后再问。",
}

_NOTHING_SEEN: dict[str, str] = {
    "en": "Nothing stands out around you right now.",
    "de": "Gerade fällt mir um dich herum nichts auf.",
    "fr": "Rien de particulier autour de toi pour l'instant.",
    "es": "Ahora mismo no veo nada destacable a tu alrededor.",
    "zh": "你周围现在没有什么特别的。",
}

LANGUAGES = tuple(_FILLERS)

# Fillers rotate so the same words are not heard every time a question is handed off.
_rotation: dict[str, Iterator[str]] = {
    lang: itertools.cycle(lines) for lang, lines in _FILLERS.items()
}


def base_language(language: str) -> str:
    """The supported base language for a BCP-47-ish code, or "en"."""
    base = language.strip().lower().replace("_", "-").split("-", 1)[0]
    return base if base in _FILLERS else "en"


def filler(language: str) -> str:
    """A short line to say at once when a question goes to a background agent."""
    return next(_rotation[base_language(language)])


def apology(language: str) -> str:
    """What to say when the background agent failed or gave nothing usable."""
    return _APOLOGY[base_language(language)]


def busy(language: str) -> str:
    """What to say when every background agent is taken and the question was not queued."""
    return _BUSY[base_language(language)]


def nothing_seen(language: str) -> str:
    """The answer to "what's around me?" when the model stayed silent: it looked and
    found nothing worth saying, which the user must still hear."""
    return _NOTHING_SEEN[base_language(language)]
