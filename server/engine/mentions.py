"""One clause of a model's line and what it says of a thing: which, where, how far,
moving or not, cleared or not (``read_clause``), and how clauses that name nothing lend
their where to the one that does (``merge``). ``server.engine.urgency`` reads a line
as these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.engine.brevity import Span
from server.modes.lexicons import lexicon, pattern, rows

__all__ = ["Clause", "in_a_name", "merge", "read_clause"]


@dataclass(slots=True)
class Clause:
    at: int  # where the clause starts in the line
    end: int = 0  # and where it ends
    what: str = ""
    key: str = ""
    category: str = ""
    negated: bool = False
    clock: int = 0
    direction: str = ""
    in_path: bool = False
    distance_m: float | None = None
    distance: str = ""
    approaching: bool = False
    receding: str = ""  # as said: "has gone past"
    parked: bool = False
    head: str = ""
    safe: str = ""
    denies: bool = False  # names no thing but denies one ("and nobody nearby")
    route: bool = False  # a route instruction: "In 20 metres turn left"
    swinging: bool = False  # a door on the move: "swinging shut", "se está cerrando"


def read_clause(low: str, text: str, span: Span, lang: str) -> Clause:
    """``low[span]`` (``text`` lower-cased) as a ``Clause``: the first thing it names that
    is not a landmark, and its own where, how far and how it moves."""
    a, s, lex = span[0], low[span[0] : span[1]], lexicon(lang)
    c, masked = Clause(at=a, end=span[1]), s
    named, paced = list(pattern(lang, "things").finditer(s)), False

    def said(m: re.Match[str]) -> str:
        return text[a + m.start() : a + m.end()]

    for d in pattern(lang, "distance").finditer(s):
        unit = " ".join((d.group(2) or d.group(4)).split())
        at = d.start(2) if d.group(2) else d.start(4)
        if any(t.start() <= at and t.end() > d.end() for t in named):
            continue  # "un paso de peatones": the unit starts a longer thing's name
        if unit in lex.step_units and (
            d.group(3) in ("a", "an")
            or re.match(r"\s+(?:down|up|going|leading|starting)\b", s[d.end() :])
            or re.search(
                r"(?:there(?: are|'s| is)|flight of|(?:down|up)(?: the)?)\s+$", s[: d.start()]
            )
        ):
            continue  # "three steps down", "a flight of 15 steps": a thing, not how far
        if c.distance_m is None or (paced and unit not in lex.step_units):  # metres over paces
            paced = unit in lex.step_units
            n = d.group(1) or " ".join(d.group(3).split())
            metres = float(n.replace(",", ".")) if n[0].isdigit() else lex.numbers[n]
            metres += 0.5 if d.group(5) else 0.0  # "a metre and a half"
            c.distance_m = round(metres * {**lex.units, **dict(lex.short_units)}[unit], 2)
            c.distance = said(d)
        masked = masked[: d.start()] + " " * (d.end() - d.start()) + masked[d.end() :]
    for r, metres, clock in rows(lang, "vague"):
        if m := r.search(s):
            if c.distance_m is None:
                c.distance_m, c.distance = metres, said(m)
            c.clock = clock
            break
    if m := pattern(lang, "clock").search(s):
        c.clock, c.direction = int(m[1] if m[1].isdigit() else lex.numbers.get(m[1], 0)), said(m)
    else:
        for r, _, clock in rows(lang, "directions"):
            if m := r.search(s):
                c.clock, c.direction = clock, said(m)
                break
    if m := pattern(lang, "in_path").search(s):
        c.in_path, c.clock, c.direction = True, c.clock or 12, c.direction or said(m)
    c.head = said(m) if (m := pattern(lang, "head_height").search(s)) else ""
    c.safe = said(m) if (m := pattern(lang, "clear").search(s)) else ""
    c.approaching = pattern(lang, "approaching").search(s) is not None
    c.receding = said(m) if (m := pattern(lang, "receding").search(s)) else ""
    c.parked = pattern(lang, "parked").search(s) is not None
    c.route = pattern(lang, "route").search(s) is not None
    c.swinging = pattern(lang, "swinging").search(s) is not None
    forms = [(t, " ".join((t.group(1) or t.group(2)).split())) for t in
             pattern(lang, "things").finditer(masked)]  # fmt: skip
    found = [(t, lex.things.get(form) or lex.things[f"*{form}"]) for t, form in forms]
    after, before = pattern(lang, "place_after"), pattern(lang, "place_before")
    found = [  # "the trolley bay", "la parada de taxis", "Hole Island": a place, not the thing
        (
            t,
            (k[0], "landmark")
            if after.match(masked, t.end())
            or before.search(masked, 0, t.start())
            or in_a_name(text, a + t.start(), a + t.end(), lang)
            else k,
        )
        for t, k in found
    ]
    # "Café tables": of the things in a clause, the first that is not a landmark; one
    # on show ("a display of bicycles") is scenery.
    if found:
        t, (c.key, c.category) = next((f for f in found if f[1][1] != "landmark"), found[0])
        c.what, shown = said(t), pattern(lang, "displayed").search(s)
        # Shown, or a timetable ("the next bus leaves in five minutes"): not a thing near.
        timed = c.category == "vehicle" and pattern(lang, "schedule").search(s) is not None
        c.category = "landmark" if shown or timed else c.category
        c.negated = any(w.strip("¡¿,") in lex.negators for w in s[: t.start()].split()[-3:])
    words = [w.strip("¡¿,.;:!?") for w in s.split()]
    c.denies = not found and any(
        w in lex.negators and not (nxt in lex.bounds or nxt[:1].isdigit())
        for w, nxt in zip(words, [*words[1:], ""], strict=True)
    )
    return c


def in_a_name(text: str, start: int, end: int, lang: str) -> bool:
    """``text[start:end]`` capitalised inside a sentence beside another capitalised word:
    part of a proper name ("the Black Ice Café", "Cliff Edge Avenue", "Hole Island").
    Not in German, whose nouns are all capitalised."""
    if lang == "de" or not text[start:end][:1].isupper():
        return False
    before = text[:start].rstrip()
    if not before or before[-1] in '.!?:;—–-"“«¡¿(':
        return False  # a sentence's first word
    prev, nxt = before.split()[-1], text[end:].split()[:1]
    capital = [w for w in (prev, *nxt) if w[:1].isupper() and w.strip(".,;:!?") != "I"]
    starts = before[: -len(prev)].rstrip()
    if capital == [prev] and (not starts or starts[-1] in ".!?:;"):
        return False  # "Cliff …" as the first word: "Bike Lane …" stays unsure
    return bool(capital)


def merge(into: Clause, c: Clause, *, backward: bool) -> None:
    """Lend ``c``'s where (and, ``backward``, its "parked" or "clear") to ``into``, which
    keeps what it says itself; a clearance naming another side is that side's."""
    gap = abs(into.clock - c.clock) % 12
    if backward and c.safe and c.clock and into.clock and min(gap, 12 - gap) >= 2:
        return  # "Escalones a un metro delante; a la derecha el camino está libre": that side's
    if c.denies:  # "…, and nobody nearby": its where is of nothing; "…, not moving" stays
        into.parked |= backward and c.parked
        into.safe = into.safe or (c.safe if backward else "")
        return
    if not into.clock and c.clock:
        into.clock, into.direction = c.clock, c.direction
    if into.distance_m is None and c.distance_m is not None:
        into.distance_m, into.distance = c.distance_m, c.distance
    # Where it goes: the later clause's word wins ("It went past; now another is coming"),
    # but behind the user is where a thing that went past is anyway.
    late, early = (c, into) if backward else (into, c)
    coming = late.approaching and late.clock != 6
    into.receding = late.receding or ("" if coming else early.receding)
    into.in_path |= c.in_path
    into.approaching |= c.approaching
    into.head = into.head or c.head
    into.swinging |= c.swinging
    if backward:  # "…, not in your way", "…, but it is parked" speak of what came before
        into.parked |= c.parked
        into.safe = into.safe or c.safe
