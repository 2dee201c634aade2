"""Cutting a model's line: into clauses (``split``, which ``urgency`` reads hazards
from) and down to a word budget (``shorten``, between clauses, keeping a hazard's words).
"""

from __future__ import annotations

import itertools
import re

from server.engine.hazards import Hazard
from server.modes.lexicons import lexicon, pattern, rows
from server.modes.phrases import base_language

__all__ = ["Span", "lower", "shorten", "split"]

Span = tuple[int, int]


def lower(text: str) -> str:
    """Lower-case with the same length, so offsets hold in the original text."""
    text = text.replace("’", "'").replace("‘", "'")
    low = text.lower()
    return low if len(low) == len(text) else text


def split(low: str, lang: str, span: Span, *, fine: bool) -> list[Span]:
    """``low[span]`` cut at punctuation, dashes and conjunctions (and, when ``fine``,
    before prepositions), never inside a direction or distance phrase."""
    start, seg, leads = span[0], low[span[0] : span[1]], set(lexicon(lang).leads)
    where = [pattern(lang, n) for n in ("clock", "in_path", "distance")]  # never cut inside
    where += [r for r, _, _ in (*rows(lang, "directions"), *rows(lang, "vague"))]
    guard = [(m.start(), m.end()) for r in where for m in r.finditer(seg)]
    cuts = {m.end() for m in re.finditer(r"[,.!?;:](?=\s)|\s[—–-](?=\s)", seg)}
    cuts |= {m.start() for m in pattern(lang, "conjunctions").finditer(seg)}
    if fine:
        preps = pattern(lang, "prepositions").finditer(seg)
        cuts |= {m.start() for m in preps if not leads & set(seg[: m.start()].split()[-1:])}
    spans, prev = [], 0
    for c in [*sorted(c for c in cuts if not any(a < c < b for a, b in guard)), len(seg)]:
        piece = seg[prev:c]
        a = prev + len(piece) - len(piece.lstrip())
        if piece.strip():
            spans.append((start + a, start + a + len(piece.strip())))
        prev = c
    return spans


def _words(s: str) -> int:
    return sum(1 for w in s.split() if any(ch.isalnum() for ch in w))


def shorten(
    text: str, max_words: int, hazard: Hazard | None = None, *, language: str = "en"
) -> str:
    """At most ``max_words`` words, cut only between clauses (or, when one clause is
    too long, between phrases), ending in punctuation; a clause with nowhere to cut
    stays whole. ``hazard`` (pass an alert's): its object, direction, distance, height
    and warning words stay, even when that runs a few words over — and so does every
    where and every coming the line says, found or not by the hazard's parse ("…
    cyclist who is carrying boxes is heading straight toward you from 2 o'clock"). A
    clause dropped from inside a sentence ends the sentence there: pieces are never
    spliced into a new meaning."""
    text = " ".join(text.split())
    if _words(text) <= max_words:
        return _finish(text, lang="") if text else ""
    lang, low, h = base_language(language), lower(text), hazard or Hazard()
    said = (h.what, h.direction, h.distance, h.head_height, h.warning)
    spans = [(i, i + len(k)) for k in said if k and (i := low.find(k.lower())) >= 0]
    if hazard is not None:
        spans += [m.span() for r in _wheres(lang) for m in r.finditer(low)]

    def hits(u: Span) -> bool:
        return any(a < u[1] and u[0] < b for a, b in spans)

    def size(u: Span) -> int:
        return _words(text[u[0] : u[1]])

    units = split(low, lang, (0, len(low)), fine=False)
    kept: list[int] = []
    if not any(map(hits, units)):
        kept = _prefix([size(u) for u in units], max_words)
        if not kept:  # the first clause alone is too long: cut it between phrases
            units = split(low, lang, units[0], fine=True)
            kept = _prefix([size(u) for u in units], max_words) or [0]
    else:
        if sum(size(u) for u in units if hits(u)) > max_words:
            parts = [split(low, lang, u, fine=True) if hits(u) else [u] for u in units]
            units = [s for p in parts for s in p]
        room = max_words - sum(size(u) for u in units if hits(u))
        for i, u in enumerate(units):  # the hazard's clauses, and those leading up to them
            if hits(u) or (size(u) <= room and (i == 0 or i - 1 in kept)):
                room -= 0 if hits(u) else size(u)
                kept.append(i)
    out = ""
    for i in kept:
        piece = text[units[i][0] : units[i][1]]
        if out and i - 1 not in kept:  # a new sentence after a dropped clause
            out = out if out.endswith((".", "!", "?")) else _finish(out, lang="")
            piece = _restart(piece, lang)
        out = f"{out} {piece}" if out else piece
    return _finish(out, lang=lang)


def _wheres(lang: str) -> list[re.Pattern[str]]:
    """Where a thing is and that it comes: clock, sides, in the path, how far, nearing."""
    named = [pattern(lang, n) for n in ("clock", "in_path", "distance", "approaching")]
    return [*named, *(r for r, _, _ in (*rows(lang, "directions"), *rows(lang, "vague")))]


def _prefix(sizes: list[int], budget: int) -> list[int]:
    return [i for i, total in enumerate(itertools.accumulate(sizes)) if total <= budget]


def _restart(s: str, lang: str) -> str:
    """A sentence start: no leading conjunction, a capital letter."""
    if m := pattern(lang, "leading_conjunction").match(s):
        s = s[m.end() :]
    i = next((k for k, ch in enumerate(s) if ch.isalpha()), 0)
    return s[:i] + s[i : i + 1].upper() + s[i + 1 :]


def _finish(s: str, *, lang: str) -> str:
    """End in punctuation; a cut line also loses a leading "and" and starts in capitals."""
    s = re.sub(r"[\s,;:—–-]+$", "", s)
    s = _restart(s, lang) if lang else s
    return s if s.endswith((".", "!", "?", "…")) else s + "."
