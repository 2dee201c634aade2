"""What a model's line is for the user — an alert, an answer or narration — and why.

Pure functions, driven by the lexicons and urgency rules in ``server.modes.lexicons``:
``parse_hazard`` (what, where, how far, moving), ``classify`` (the kind under the
mode's rules, with a reason for the trace), ``same_hazard`` and ``worth_repeating``
(the policy's repeat window; they and ``Hazard`` live in ``hazards``), ``shorten`` (a
word budget, cut between clauses; it and the clause splitter live in ``brevity``).

A line is read as clauses (punctuation, dashes, conjunctions); a clause naming a
thing starts a *mention*, and the clauses near it that name none lend it their
direction and distance ("Car coming, on your left."); the mention that counts most
by itself is the line's hazard, wherever it comes. Text read out (after a cue, in
quotes, or before "that's what the sign says", or after a short heading and a colon:
``headings``) is not the model's own words. A thing the lexicon lacks but said to be
near has a hazard's shape and is ``UNNAMED``: urgent where the mode is watchful.
``server.runtime.clauses`` is not used: it is a streaming splitter that holds text
back for model markers.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

from server.engine.brevity import Span, shorten
from server.engine.brevity import lower as _lower
from server.engine.brevity import split as _split
from server.engine.hazards import Hazard, same_hazard, worth_repeating
from server.engine.headings import heading
from server.events import SpeechKind
from server.modes.lexicons import WATCHFUL, UrgencyRules, lexicon, pattern, rows
from server.modes.phrases import base_language

# fmt: off
__all__ = ["Hazard", "Urgency", "classify", "parse_hazard", "same_hazard", "shorten",
           "worth_repeating"]
# fmt: on

NONE, PRESENT, IMMINENT = 0, 1, 2
UNNAMED = "unnamed"  # a thing the lexicon lacks, said only to be near: hazard-shaped
_SHAPED_M = 5.0  # an unnamed thing said to be farther than this counts for nothing
_AHEAD_M = 2.0  # nor, ahead, farther than this, unless the mode watches the sides too
_SENTENCE = re.compile(r"[.!?](?=\s)")


@dataclass(frozen=True, slots=True)
class Urgency:
    kind: SpeechKind  # ALERT, ANSWER or NARRATION
    reason: str  # one line for the trace
    hazard: Hazard | None = None  # what the line is about, urgent or not
    reading: bool = False  # the line reads text aloud (a sign, a label)


@dataclass(slots=True)
class _Clause:
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


def _clause(low: str, text: str, span: Span, lang: str) -> _Clause:
    a, s, lex = span[0], low[span[0] : span[1]], lexicon(lang)
    c, masked = _Clause(at=a, end=span[1]), s
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
    forms = [(t, " ".join((t.group(1) or t.group(2)).split())) for t in
             pattern(lang, "things").finditer(masked)]  # fmt: skip
    found = [(t, lex.things.get(form) or lex.things[f"*{form}"]) for t, form in forms]
    after, before = pattern(lang, "place_after"), pattern(lang, "place_before")
    found = [  # "the trolley bay", "la parada de taxis": a place, not the thing
        (
            t,
            (k[0], "landmark")
            if after.match(masked, t.end()) or before.search(masked, 0, t.start())
            else k,
        )
        for t, k in found
    ]
    # "Café tables": of the things in a clause, the first that is not a landmark; one
    # on show ("a display of bicycles") is scenery.
    if found:
        t, (c.key, c.category) = next((f for f in found if f[1][1] != "landmark"), found[0])
        c.what, shown = said(t), pattern(lang, "displayed").search(s)
        c.category = "landmark" if shown else c.category
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
    if (label := heading(text, low, lang)) is not None and label.start() < end:  # "Prices: …"
        reading, end = label.group(0).strip(), label.start()
    mentions: list[_Clause] = []
    pending: list[_Clause] = []  # clauses before the first mention
    for span in _split(low, lang, (0, end), fine=False):  # what is read out is not the model's
        c = _clause(low, text, span, lang)
        if c.what:
            # A denial lends nothing forward, nor does another sentence: "In 50 metres, turn
            # left. Careful, the curb here is high."
            # A route instruction's distance is where to turn: "In 20 m turn left; before that…"
            lend = [
                q for q in pending if not (q.safe or q.route or _SENTENCE.search(low, q.at, c.at))
            ]
            for q in lend:
                _merge(c, q, backward=False)
            pending = []
            mentions.append(c)
        elif mentions:
            _merge(mentions[-1], c, backward=True)
        else:
            pending.append(c)
    for c in mentions:  # "the shop banner, at head height": walked into, landmark or not
        if c.category == "landmark" and pattern(lang, "heights").search(c.head.lower()):
            c.category = "obstacle"
    w = pattern(lang, "warnings").search(low[:end])
    warning = text[w.start() : w.end()].strip(" .,!¡;:—–-") if w else ""
    live = [c for c in mentions if not (c.negated or c.receding) and (c.approaching or not c.safe)]
    if not mentions and (generic := _generic(low, text, pending, lang)) is not None:
        for q in [q for q in pending if q.at != generic.at and not (q.safe or q.route)]:
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
        at = next((c for c in [*pending, *mentions] if c.clock and not c.safe), _Clause(at=0))
        h = Hazard(warning=warning, head_height=head, clock=at.clock, direction=at.direction)
        return h, reading, ""
    safe = next((c.safe for c in [*pending, *mentions] if c.safe), "")
    denied = next((c.what for c in mentions if c.negated), "")
    gone = next((f"{c.what} {c.receding}" for c in mentions if c.receding), "")
    note = f"declared clear ('{safe}')" if safe else f"moving away ('{gone}')" if gone else ""
    return None, reading, note or (f"denied ('{denied}')" if denied else "no hazard mentioned")


def _generic(low: str, text: str, clauses: list[_Clause], lang: str) -> _Clause | None:
    """A thing the lexicon lacks, said to be in the path, right ahead or at head height
    ("A wooden pallet in your way", "Overhanging sign at head height"): an obstacle. Said
    only to be near, in front or beside ("A sandbag two metres to your left") or to come
    at the user from somewhere ("Runner approaching from 5 o'clock"), it has the shape of
    a hazard but no name the rules know: ``UNNAMED``, imminent only when it comes."""
    lex = lexicon(lang)
    stops = {*lex.copulas, *(p.split()[0] for p in lex.prepositions), *lex.conjunctions}
    stops |= {"in", "into", "en"}
    for i, c in enumerate(clauses):
        near = c.distance_m is not None and c.distance_m <= 1.0 and c.clock == 12
        high = bool(c.head) and pattern(lang, "heights").search(c.head.lower()) is not None
        # Coming, not only "behind you": "The sun is low, behind you" stays where it is.
        comes = [x for x in pattern(lang, "approaching").finditer(low, c.at, c.end)
                 if x[0] not in c.direction.lower()]  # fmt: skip
        came = comes[0] if comes else None
        at_you = any(set(x[0].split()) & set(lex.persons) for x in comes)  # "hacia ti"
        nearing = pattern(lang, "nearing").search(low, c.at, c.end) is not None  # "approaching"
        moving = came is not None and (c.distance_m is not None or at_you or nearing)
        shaped = c.distance_m is not None and c.clock != 6 and c.distance_m <= _SHAPED_M
        if c.safe or c.receding or not (c.in_path or near or high or shaped or moving):
            continue
        said = c.direction if c.in_path else c.head if high and not near else c.distance
        m = pattern(lang, "in_path").search(low, c.at) if c.in_path else None
        # The name ends where the where, the path or the coming starts: "A stall takes up…"
        ends = [
            low.find(said.lower(), c.at) if said else -1,
            *(x.start() for x in (m, came if moving else None) if x),
        ]
        cut = min((e for e in ends if e >= c.at), default=len(low))
        words = [w.strip(",;:¡¿") for w in low[c.at : cut].split()]
        if set(lex.negators) & set(words):
            return None
        if c.in_path and not words and m:  # "Rechts ragt ein offener Kofferraum in den Gehweg"
            words = [w.strip(",;:¡¿.!?") for w in m[0].split()[1:]]
        # Named in a clause of its own: "Half a metre to your left, a sandbag", "A mattress
        # on the pavement, just ahead".
        for o in [clauses[k] for k in (i + 1, i - 1) if 0 <= k < len(clauses)] if not words else ():
            if not (o.distance_m or o.denies or o.safe or (o.clock and c.clock)):
                own = low[o.at :].split(",")[0]  # "Curb ahead, half a metre": up to its where
                own = own.split(o.direction.lower())[0] if o.direction else own
                words = [w.strip(",;:¡¿.!?") for w in own.split()]
                break
        start = next((k + 1 for k, w in enumerate(words) if w in lex.articles), 0)
        named = itertools.dropwhile(lambda w: w in stops, words[start:])  # "There's broken…"
        name = list(itertools.takewhile(lambda w: w not in stops, named))[:3]
        if not name or set(name) & set(lex.persons):
            continue
        at = low.find(" ".join(name), c.at)
        what = text[at : at + len(" ".join(name))] if at >= 0 else " ".join(name)
        sure = c.in_path or near or high
        return replace(c, what=what, key=" ".join(name), category="obstacle" if sure else UNNAMED)
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
    if h.category == UNNAMED and h.approaching:
        return IMMINENT, "something unnamed approaching"
    if h.category == UNNAMED:  # uncertain: urgent where the mode is watchful, never imminent
        side = r.side_obstacles and h.clock not in (5, 6, 7)
        ahead = h.clock in (0, 11, 12, 1) and (h.distance_m or 9.0) <= _AHEAD_M
        ahead |= (h.distance_m or 9.0) <= r.near_m
        return (
            (PRESENT, "something unnamed near the user")
            if ahead or side
            else (NONE, "unnamed, aside")
        )
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
