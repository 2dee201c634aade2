"""What a model's line is for the user — an alert, an answer or narration — and why.

Pure functions, driven by the lexicons and urgency rules in ``server.modes.lexicons``:
``parse_hazard`` (what, where, how far, moving), ``classify`` (the kind under the
mode's rules, with a reason for the trace), ``same_hazard`` and ``worth_repeating``
(the policy's repeat window; they and ``Hazard`` live in ``hazards``), ``shorten`` (a
word budget, cut between clauses).

A line is read as clauses (punctuation, dashes, conjunctions); a clause naming a
thing starts a *mention*, and the clauses near it that name none lend it their
direction and distance ("Car coming, on your left."); the mention that counts most
by itself is the line's hazard, wherever it comes. Text read out (after a cue, in
quotes, or before "that's what the sign says") is not the model's own words.
``server.runtime.clauses`` is not used: it is a streaming splitter that holds text
back for model markers.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

from server.engine.hazards import Hazard, same_hazard, worth_repeating
from server.events import SpeechKind
from server.modes.lexicons import WATCHFUL, UrgencyRules, lexicon, pattern, rows
from server.modes.phrases import base_language

# fmt: off
__all__ = ["Hazard", "Urgency", "classify", "parse_hazard", "same_hazard", "shorten",
           "worth_repeating"]
# fmt: on

NONE, PRESENT, IMMINENT = 0, 1, 2
_SENTENCE = re.compile(r"[.!?](?=\s)")
Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Urgency:
    kind: SpeechKind  # ALERT, ANSWER or NARRATION
    reason: str  # one line for the trace
    hazard: Hazard | None = None  # what the line is about, urgent or not
    reading: bool = False  # the line reads text aloud (a sign, a label)


def _lower(text: str) -> str:
    """Lower-case with the same length, so offsets hold in the original text."""
    text = text.replace("’", "'").replace("‘", "'")
    low = text.lower()
    return low if len(low) == len(text) else text


def _split(low: str, lang: str, span: Span, *, fine: bool) -> list[Span]:
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


@dataclass(slots=True)
class _Clause:
    at: int  # where the clause starts in the line
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


def _clause(low: str, text: str, span: Span, lang: str) -> _Clause:
    a, s, lex = span[0], low[span[0] : span[1]], lexicon(lang)
    c, masked = _Clause(at=a), s

    def said(m: re.Match[str]) -> str:
        return text[a + m.start() : a + m.end()]

    for d in pattern(lang, "distance").finditer(s):
        unit = " ".join((d.group(2) or d.group(4)).split())
        if unit in lex.step_units and (
            d.group(3) in ("a", "an")
            or re.match(r"\s+(?:down|up|going|leading|starting)\b", s[d.end() :])
            or re.search(
                r"(?:there(?: are|'s| is)|flight of|(?:down|up)(?: the)?)\s+$", s[: d.start()]
            )
        ):
            continue  # "three steps down", "a flight of 15 steps": a thing, not how far
        if c.distance_m is None:
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
    forms = [(t, " ".join((t.group(1) or t.group(2)).split())) for t in
             pattern(lang, "things").finditer(masked)]  # fmt: skip
    found = [(t, lex.things.get(form) or lex.things[f"*{form}"]) for t, form in forms]
    # "Café tables": of the things in a clause, the first that is not a landmark; one
    # on show ("a display of bicycles") is scenery.
    if found:
        t, (c.key, c.category) = next((f for f in found if f[1][1] != "landmark"), found[0])
        c.what, shown = said(t), pattern(lang, "displayed").search(s)
        c.category = "landmark" if shown else c.category
        if c.category == "landmark" and c.head and pattern(lang, "heights").search(s):
            c.category = "obstacle"  # "the shop banner at head height": walked into
        c.negated = any(w.strip("¡¿,") in lex.negators for w in s[: t.start()].split()[-3:])
    words = [w.strip("¡¿,.;:!?") for w in s.split()]
    c.denies = not found and any(
        w in lex.negators and not (nxt in lex.bounds or nxt[:1].isdigit())
        for w, nxt in zip(words, [*words[1:], ""], strict=True)
    )
    return c


def _merge(into: _Clause, c: _Clause, *, backward: bool) -> None:
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
    if backward:  # "…, not in your way", "…, but it is parked" speak of what came before
        into.parked |= c.parked
        into.safe = into.safe or c.safe


def _analyse(text: str, language: str) -> tuple[Hazard | None, str, str]:
    """The hazard, the words that start a reading aloud, and why there is no hazard."""
    text, lang = " ".join(text.split()), base_language(language)
    low = _lower(text)
    m = pattern(lang, "reading").search(low)  # from a cue, or the sentence a cue ends
    reading, end = (text[m.start() : m.end()].strip(), m.start()) if m else ("", len(low))
    mentions: list[_Clause] = []
    pending: list[_Clause] = []  # clauses before the first mention
    for span in _split(low, lang, (0, end), fine=False):  # what is read out is not the model's
        c = _clause(low, text, span, lang)
        if c.what:
            # A denial lends nothing forward, nor does another sentence: "In 50 metres, turn
            # left. Careful, the curb here is high."
            for q in [q for q in pending if not (q.safe or _SENTENCE.search(low, q.at, c.at))]:
                _merge(c, q, backward=False)
            pending = []
            mentions.append(c)
        elif mentions:
            _merge(mentions[-1], c, backward=True)
        else:
            pending.append(c)
    w = pattern(lang, "warnings").search(low[:end])
    warning = text[w.start() : w.end()].strip(" .,!¡;:—–-") if w else ""
    live = [c for c in mentions if not (c.negated or c.receding) and (c.approaching or not c.safe)]
    if not mentions and (generic := _generic(low, text, pending, lang)) is not None:
        for q in [q for q in pending if q.at != generic.at and not q.safe]:
            _merge(generic, q, backward=q.at > generic.at)  # "…, 12 o'clock"
        live = [generic]
    if live:
        # The thing that counts most by itself (first if tied): the warning is the line's.
        best = max(map(_hazard, live), key=lambda h: _level(h, WATCHFUL)[0])
        best = replace(best, warning=warning)
        level, why = _level(best, WATCHFUL)  # the rules that count the most
        return (best, reading, "") if level else (None, reading, f"{why} ({best.describe()})")
    if warning:
        head = next((c.head for c in [*pending, *mentions] if c.head), "")
        return Hazard(warning=warning, head_height=head), reading, ""
    safe = next((c.safe for c in [*pending, *mentions] if c.safe), "")
    denied = next((c.what for c in mentions if c.negated), "")
    gone = next((f"{c.what} {c.receding}" for c in mentions if c.receding), "")
    note = f"declared clear ('{safe}')" if safe else f"moving away ('{gone}')" if gone else ""
    return None, reading, note or (f"denied ('{denied}')" if denied else "no hazard mentioned")


def _generic(low: str, text: str, clauses: list[_Clause], lang: str) -> _Clause | None:
    """A thing the lexicon lacks, said to be in the path, right ahead or at head height:
    "A wooden pallet in your way", "Overhanging sign at head height"."""
    lex = lexicon(lang)
    stops = {*lex.copulas, *(p.split()[0] for p in lex.prepositions)}  # where a name ends
    for c in clauses:
        near = c.distance_m is not None and c.distance_m <= 1.0 and c.clock == 12
        high = bool(c.head) and pattern(lang, "heights").search(c.head.lower()) is not None
        if c.safe or not (c.in_path or near or high):
            continue
        said = c.direction if c.in_path else c.distance if near else c.head
        cut = low.find(said.lower(), c.at)
        if c.in_path and (m := pattern(lang, "in_path").search(low, c.at)):
            cut = m.start() if cut < 0 else min(cut, m.start())  # "A stall takes up the whole…"
        words = [w.strip(",;:¡¿") for w in low[c.at : cut].split()]
        if set(lex.negators) & set(words):
            return None
        start = next((i + 1 for i, w in enumerate(words) if w in lex.articles), 0)
        name = list(itertools.takewhile(lambda w: w not in stops, words[start:]))[:3]
        if not name:
            return None
        at = low.find(" ".join(name), c.at)
        what = text[at : at + len(" ".join(name))] if at >= 0 else " ".join(name)
        return replace(c, what=what, key=" ".join(name), category="obstacle")
    return None


def _hazard(c: _Clause) -> Hazard:
    same = ("what", "key", "clock", "distance_m", "distance", "in_path", "approaching")
    parked = c.category == "vehicle" and c.parked  # a parked car is something to walk into
    return Hazard(
        **{f: getattr(c, f) for f in same},
        category="obstacle" if parked else c.category,
        direction=c.direction,
        head_height=c.head,
    )


def parse_hazard(text: str, language: str) -> Hazard | None:
    """What the line says about a thing the user could meet, or None. Whether that is
    urgent is ``classify``'s call: it depends on the mode and on being asked."""
    return _analyse(text, language)[0]


def _level(h: Hazard, r: UrgencyRules) -> tuple[int, str]:
    if h.warning:
        return IMMINENT, f"the model's warning '{h.warning}'"
    if h.in_path:
        return IMMINENT, "in the path"
    if h.distance_m is not None and h.distance_m > r.far_m:  # even approaching: not yet
        return NONE, "far away"
    if h.category in ("vehicle", "person") and h.approaching:
        return IMMINENT, "approaching"
    if h.category != "landmark" and h.distance_m is not None and h.distance_m <= r.near_m:
        return IMMINENT, "within reach"
    ahead = h.clock in (11, 12, 1) or (h.clock == 0 and h.distance_m is not None)
    if h.category == "vehicle":
        return PRESENT, "a vehicle near the user"
    if h.category == "person":
        return (PRESENT, "someone ahead") if ahead else (NONE, "someone out of the way")
    if h.category in ("drop", "surface"):
        return (NONE, "behind the user") if h.clock == 6 else (PRESENT, f"a {h.category}")
    if h.category == "obstacle":
        if ahead or h.head_height:
            return PRESENT, "an obstacle ahead"
        beside = h.clock not in (0, 5, 6, 7) and (h.distance_m is None or h.distance_m <= 5)
        if r.side_obstacles and beside:
            return PRESENT, "an obstacle beside the user"
        return NONE, "an obstacle out of the way"
    return NONE, "a landmark, not a hazard"


def classify(
    text: str, *, rules: UrgencyRules, language: str, prompted: bool, reading: bool = False
) -> Urgency:
    """ALERT, ANSWER or NARRATION for a line of the model's, with the reason. ``prompted``
    (the user asked this tick): an alert only if imminent — warning words, in the path,
    approaching, within reach. ``reading`` (asked to read): only warning words alert."""
    h, read, note = _analyse(text, language)
    calm = SpeechKind.ANSWER if prompted else SpeechKind.NARRATION
    is_reading = reading or bool(read)
    if h is None:
        why = f"reading ('{read}')" if read else note
        return Urgency(calm, f"{calm}: {why}", None, is_reading)
    level, why = _level(h, rules)
    if reading and not h.warning:
        return Urgency(calm, f"{calm}: reading on request; {why} ({h.describe()})", h, True)
    if level >= (IMMINENT if prompted or rules.unprompted == "imminent" else PRESENT):
        return Urgency(SpeechKind.ALERT, f"alert: {why} ({h.describe()})", h)
    asked = "when asked" if prompted else "unprompted in this mode"
    return Urgency(calm, f"{calm}: {why}, not urgent {asked} ({h.describe()})", h, is_reading)


def _words(s: str) -> int:
    return sum(1 for w in s.split() if any(ch.isalnum() for ch in w))


def shorten(
    text: str, max_words: int, hazard: Hazard | None = None, *, language: str = "en"
) -> str:
    """At most ``max_words`` words, cut only between clauses (or, when one clause is
    too long, between phrases), ending in punctuation; a clause with nowhere to cut
    stays whole. ``hazard`` (pass an alert's): its object, direction, distance, height
    and warning words stay, even when that runs a few words over."""
    text = " ".join(text.split())
    if _words(text) <= max_words:
        return _finish(text, lang="") if text else ""
    lang, low, h = base_language(language), _lower(text), hazard or Hazard()
    said = (h.what, h.direction, h.distance, h.head_height, h.warning)
    spans = [(i, i + len(k)) for k in said if k and (i := low.find(k.lower())) >= 0]

    def hits(u: Span) -> bool:
        return any(a < u[1] and u[0] < b for a, b in spans)

    def size(u: Span) -> int:
        return _words(text[u[0] : u[1]])

    units = _split(low, lang, (0, len(low)), fine=False)
    kept: list[int] = []
    if not any(map(hits, units)):
        kept = _prefix([size(u) for u in units], max_words)
        if not kept:  # the first clause alone is too long: cut it between phrases
            units = _split(low, lang, units[0], fine=True)
            kept = _prefix([size(u) for u in units], max_words) or [0]
    else:
        if sum(size(u) for u in units if hits(u)) > max_words:
            parts = [_split(low, lang, u, fine=True) if hits(u) else [u] for u in units]
            units = [s for p in parts for s in p]
        room = max_words - sum(size(u) for u in units if hits(u))
        for i, u in enumerate(units):  # the hazard's clauses, and those leading up to them
            if hits(u) or (size(u) <= room and (i == 0 or i - 1 in kept)):
                room -= 0 if hits(u) else size(u)
                kept.append(i)
    out = ""
    for i in kept:
        piece = text[units[i][0] : units[i][1]]
        if out and i - 1 not in kept and out.endswith((".", "!", "?")):
            piece = _restart(piece, lang)  # a new sentence after a dropped one
        out = f"{out} {piece}" if out else piece
    return _finish(out, lang=lang)


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
