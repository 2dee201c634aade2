"""Text read out, known by its form: a short heading and a colon ("Prices: apples 1.99,
…", "Text on the ATM: Out of service."), whatever the heading's words.

A heading that warns, says where, names a hazard or addresses the user ("Careful: …",
"Ahead: a step", "Around you: …") is the model's own words.
"""

from __future__ import annotations

import re

from server.modes.lexicons import lexicon, pattern, rows

__all__ = ["heading"]

# At a sentence's start, up to five words and a colon; what follows is read out when it
# starts like a label (a capital, a quote, a digit) or lists numbers ("pan 1,20, …").
_HEADING = re.compile(r"(?:^|(?<=[.!?] ))([^\W\d_][^,.:;!?\"“„«]{0,40}?):\s+(?=\S)")
_LABEL_START = re.compile(r"[\"“„«'0-9]|[^\W\d_]")


def heading(text: str, low: str, lang: str) -> re.Match[str] | None:
    """The first heading in ``text`` (``low`` is it lower-cased) that starts text read out."""
    lex = lexicon(lang)
    for m in _HEADING.finditer(text):
        head, rest = low[m.start(1) : m.end(1)], text[m.end() :]
        words = [w.strip("¡¿'") for w in head.split()]
        if len(words) > 5 or set(words) & set(lex.persons):
            continue
        if any(pattern(lang, n).search(head) for n in ("warnings", "clock", "in_path", "distance")):
            continue
        if any(r.search(head) for r, _, _ in (*rows(lang, "directions"), *rows(lang, "vague"))):
            continue
        forms = [
            " ".join((t.group(1) or t.group(2)).split())
            for t in pattern(lang, "things").finditer(head)
        ]
        if any((lex.things.get(f) or lex.things[f"*{f}"])[1] != "landmark" for f in forms):
            continue
        first = rest[:1]
        numbers = re.search(r"\d", re.split(r"[.!?](?:\s|$)", rest)[0]) is not None
        if (_LABEL_START.match(first) and (first.isupper() or not first.isalpha())) or numbers:
            return m
    return None
