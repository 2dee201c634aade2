"""What a model's line is for the user — an alert, an answer or narration — and why.

Pure functions, driven by the lexicons and urgency rules in ``server.modes.lexicons``:
``parse_hazard`` (what, where, how far, moving), ``classify`` (the kind under the
mode's rules, with a reason for the trace), ``same_hazard`` and ``worth_repeating``
(the policy's repeat window; they and ``Hazard`` live in ``hazards``), ``shorten`` (a
word budget, cut between clauses; it and the clause splitter live in ``brevity``).

A line is read as clauses (punctuation, dashes, conjunctions; each read by
``mentions``); a clause naming a thing starts a *mention*, and the clauses near it
that name none lend it their direction and distance ("Car coming, on your left."), the
nearest first; a where fronted after a break or an "and" lends forward instead ("…,
and, right in front of you, a sandwich board"). The mention that counts most by itself
is the line's hazard, wherever it comes; a thing's name called out alone ("Pole!")
warns. Text read out (after a cue, in quotes, or before "that's what the sign says", or
after a short heading and a colon: ``headings``) is not the model's own words. A thing
the lexicon lacks but said to be near has a hazard's shape and is ``UNNAMED``: urgent
where the mode is watchful.
``server.runtime.clauses`` is not used: it is a streaming splitter that holds text
back for model markers.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

from server.engine.brevity import lower as _lower
from server.engine.brevity import shorten
from server.engine.brevity import split as _split
from server.engine.hazards import Hazard, same_hazard, worth_repeating
from server.engine.headings import heading
from server.engine.mentions import Clause, in_a_name, merge, read_clause
from server.events import SpeechKind
from server.modes.lexicons import WATCHFUL, UrgencyRules, lexicon, pattern
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
UNSURE = "something near, named in no lexicon"  # the trace's words; ``UrgencyRules.unsure``


@dataclass(frozen=True, slots=True)
class Urgency:
    kind: SpeechKind  # ALERT, ANSWER or NARRATION
    reason: str  # one line for the trace
    hazard: Hazard | None = None  # what the line is about, urgent or not
    reading: bool = False  # the line reads text aloud (a sign, a label)


def _analyse(text: str, language: str) -> tuple[Hazard | None, str, str]:
    """The hazard, the words that start a reading aloud, and why there is no hazard."""
    text, lang = " ".join(text.split()), base_language(language)
    low = _lower(text)
    m = pattern(lang, "reading").search(low)  # from a cue, or the sentence a cue ends
    reading, end = (text[m.start() : m.end()].strip(), m.start()) if m else ("", len(low))
    if (label := heading(text, low, lang)) is not None and label.start() < end:  # "Prices: …"
        reading, end = label.group(0).strip(), label.start()
    mentions: list[Clause] = []
    pending: list[Clause] = []  # clauses before the first mention
    floating: list[Clause] = []  # a where fronted after a mention: whose it is comes next
    prev = ""
    for span in _split(low, lang, (0, end), fine=False):  # what is read out is not the model's
        c = read_clause(low, text, span, lang)
        # Fronted wheres wait for a thing without one in their sentence; else they settle.
        if floating and (
            _SENTENCE.search(low, floating[0].at, c.at)
            or (c.what and (c.clock or c.distance_m is not None))
        ):
            floating = _settle(low, text, floating, mentions, lang)
        if c.what:
            # A denial lends nothing forward, nor does another sentence: "In 50 metres, turn
            # left. Careful, the curb here is high."
            # A route instruction's distance is where to turn: "In 20 m turn left; before that…"
            lend = [
                q for q in pending if not (q.safe or q.route or _SENTENCE.search(low, q.at, c.at))
            ]
            for q in [*floating[::-1], *lend[::-1]]:  # the nearest where first
                merge(c, q, backward=False)
            pending, floating = [], []
            mentions.append(c)
        elif mentions and (floating or _fronted(c, low[span[0] : span[1]], prev, lang)):
            floating.append(c)
        elif mentions:
            merge(mentions[-1], c, backward=True)
        else:
            pending.append(c)
        prev = low[span[0] : span[1]]
    _settle(low, text, floating, mentions, lang)
    for c in mentions:  # "the shop banner, at head height": walked into, landmark or not
        near = c.distance_m is not None and c.distance_m <= WATCHFUL.near_m
        if c.category == "landmark" and pattern(lang, "heights").search(c.head.lower()):
            c.category = "obstacle"
        # Any body height within reach, or a step or two ahead: "Turnstile arm at waist
        # height, one metre."
        ahead = c.clock in (11, 12, 1) and (c.distance_m or 9.0) <= _AHEAD_M
        touching = c.distance_m is not None and c.distance_m <= 0.3  # "at your knees"
        if c.category == "landmark" and ((c.head and (near or ahead)) or touching):
            c.category = "obstacle"
        # A door on the move within reach: "Die Bustür öffnet sich direkt neben Ihnen."
        if c.category == "landmark" and c.key in ("door", "elevator") and c.swinging and near:
            c.category = "obstacle"
    # Not inside a name: "a poster for the film Danger Zone".
    w = next((w for w in pattern(lang, "warnings").finditer(low[:end])
              if not in_a_name(text, w.start(), w.end(), lang)), None)  # fmt: skip
    warning = (
        text[w.start() : w.end()].strip(" .,!¡;:—–-") if w else _shout(text, low, mentions, lang)
    )
    live = [c for c in mentions if not (c.negated or c.receding) and (c.approaching or not c.safe)]
    if not mentions and (generic := _generic(low, text, pending, lang)) is not None:
        for q in [q for q in pending if q.at != generic.at and not (q.safe or q.route)]:
            merge(generic, q, backward=q.at > generic.at)  # "…, 12 o'clock"
        live = [generic]
    if live:
        # The thing that counts most by itself (first if tied): the warning is the line's.
        best = max(map(_hazard, live), key=lambda h: _level(h, WATCHFUL)[0])
        best = replace(best, warning=warning)
        level, why = _level(best, WATCHFUL)  # the rules that count the most
        return (best, reading, "") if level else (None, reading, f"{why} ({best.describe()})")
    if warning:
        head = next((c.head for c in [*pending, *mentions] if c.head), "")
        at = next((c for c in [*pending, *mentions] if c.clock and not c.safe), Clause(at=0))
        h = Hazard(warning=warning, head_height=head, clock=at.clock, direction=at.direction)
        return h, reading, ""
    clauses = [*pending, *mentions]
    safe = next((c.safe for c in clauses if c.safe), "")
    denied = next((c.what for c in mentions if c.negated), "")
    gone = next((f"{c.what} {c.receding}" for c in mentions if c.receding), "")
    note = f"declared clear ('{safe}')" if safe else f"moving away ('{gone}')" if gone else ""
    if not (note or denied or any(c.denies or c.route for c in clauses)):
        where = next((x for c in clauses if not mentions and (x := _near(c, low, lang))), "")
        note = f"{UNSURE} ('{where}')" if where else ""
    return None, reading, note or (f"denied ('{denied}')" if denied else "no hazard mentioned")


def _near(c: Clause, low: str, lang: str) -> str:
    """Where ``c`` puts something in the way, at head height or within a few metres
    (not behind), as said, or "" — also when what it puts there is the user's or named
    before ("Your friend is two metres to your left", "It is …")."""
    lex, first = lexicon(lang), low[c.at : c.end].split()[:1]
    if first and first[0].strip(",;:¡¿") in {*lex.persons, *lex.pronouns}:
        return ""
    if c.in_path:
        return c.direction
    if c.head and pattern(lang, "heights").search(c.head.lower()):
        return c.head
    close = c.distance_m is not None and c.distance_m <= _SHAPED_M and c.clock != 6
    return c.distance if close else ""


def _fronted(c: Clause, s: str, prev: str, lang: str) -> bool:
    """A where that leads its clause ``s``, said before its thing, after a mention: after
    a break ("; justo delante de ti, …", "…. Right ahead, …") or a conjunction ("…, and,
    right in front of you, …", "…, und direkt vor dir steht …"); not "…, and one is
    sitting right in your way", whose where is the mention's."""
    if not (c.clock or c.distance_m is not None) or c.safe or c.route or c.denies:
        return False
    lex, conj = lexicon(lang), pattern(lang, "leading_conjunction")
    found = [i for i in (s.find(x.lower()) for x in (c.direction, c.distance) if x) if i >= 0]
    before = {w.strip(",") for w in s[: min(found, default=0)].split()}
    busy = {*lex.copulas, *lex.pronouns, *lex.persons}  # "it's just ahead" is the mention's
    small = {w for w in before if len(w) <= 3 and w not in busy}  # "a la izquierda"
    if not found or before - small - {*lex.conjunctions, *lex.leads, *lex.articles}:
        return False
    after_and = bool(before & set(lex.conjunctions))
    after_and |= conj.fullmatch(prev.strip(" ,") + " ") is not None
    return after_and or prev.rstrip()[-1:] in ";:.!?—–-"


def _settle(
    low: str, text: str, floating: list[Clause], mentions: list[Clause], lang: str
) -> list[Clause]:
    """Fronted wheres no named thing came after: an unnamed thing's ("…, and, directly
    ahead, a pile of bricks"), or else the mention's before them."""
    if floating and (generic := _generic(low, text, floating, lang)) is not None:
        for q in [q for q in floating if q.at != generic.at]:
            merge(generic, q, backward=q.at > generic.at)
        mentions.append(generic)
    elif floating:  # as one: "…; a la izquierda, todo despejado" clears the left only
        for q in floating[1:]:
            merge(floating[0], q, backward=True)
        merge(mentions[-1], floating[0], backward=True)
    return []


def _shout(text: str, low: str, mentions: list[Clause], lang: str) -> str:
    """A thing's name called out, all of a sentence: "Pole!", "¡Escalón!" — a warning."""
    for c in mentions:
        start = max(low.rfind(p, 0, c.at) for p in ".!?") + 1
        stop = min((i for i in (low.find(p, c.at) for p in ".!?") if i >= 0), default=-1)
        said = low[start:stop].strip(" ¡¿,").split()
        gone = c.negated or c.receding or c.safe  # "No bikes!", "Bike gone!"
        if gone or c.category == "landmark" or low[stop : stop + 1] != "!" or len(said) > 3:
            continue
        if said and said[0] in (c.what.lower().split()[0], *lexicon(lang).articles):
            return text[start:stop].strip(" ¡¿,")
    return ""


def _generic(low: str, text: str, clauses: list[Clause], lang: str) -> Clause | None:
    """A thing the lexicon lacks, said to be in the path, right ahead or at head height
    ("A wooden pallet in your way", "Overhanging sign at head height"): an obstacle. Said
    only to be near, in front or beside ("A sandbag two metres to your left") or to come
    at the user from somewhere ("Runner approaching from 5 o'clock"), it has the shape of
    a hazard but no name the rules know: ``UNNAMED``, imminent only when it comes."""
    lex = lexicon(lang)
    stops = {*lex.copulas, *(p.split()[0] for p in lex.prepositions), *lex.conjunctions}
    stops |= {"in", "into", "en"}
    lead = stops | set(lex.leads)  # before a name: "…, right at your toes"
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
        bare = not set(words) - lead  # no name before the where: "…, right at your feet, a …"
        for o in [clauses[k] for k in (i + 1, i - 1) if 0 <= k < len(clauses)] if bare else ():
            if not (o.distance_m or o.denies or o.safe or (o.clock and c.clock)):
                own = low[o.at :].split(",")[0]  # "Curb ahead, half a metre": up to its where
                own = own.split(o.direction.lower())[0] if o.direction else own
                words = [w.strip(",;:¡¿.!?") for w in own.split()]
                break
        if said and not set(words) - lead:  # "…, und genau vor Ihnen liegt eine lose Platte"
            after = low.find(said.lower(), c.at) + len(said)
            words = [w.strip(",;:¡¿.!?") for w in low[after : c.end].split()]
            words = [w for w in words if w]
            if set(lex.negators) & set(words):
                return None
        start = next((k + 1 for k, w in enumerate(words) if w in lex.articles), 0)
        named = itertools.dropwhile(lambda w: w in lead, words[start:])  # "There's broken…"
        name = list(itertools.takewhile(lambda w: w not in stops, named))[:3]
        if not name or set(name) & {*lex.persons, *lex.pronouns}:  # "one is sitting…"
            continue
        at = low.find(" ".join(name), c.at)
        what = text[at : at + len(" ".join(name))] if at >= 0 else " ".join(name)
        sure = c.in_path or near or high
        return replace(c, what=what, key=" ".join(name), category="obstacle" if sure else UNNAMED)
    return None


def _hazard(c: Clause) -> Hazard:
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
    reach = h.distance_m is not None and h.distance_m <= r.near_m
    if h.category == UNNAMED and h.head_height and reach:  # "cans at knee height, a foot off"
        return IMMINENT, "something unnamed at a body height within reach"
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
        if not (prompted or is_reading) and rules.unsure == "alert" and note.startswith(UNSURE):
            return Urgency(SpeechKind.ALERT, f"alert: {why}, and this mode warns when unsure")
        return Urgency(calm, f"{calm}: {why}", None, is_reading)
    level, why = _level(h, rules)
    if reading and not h.warning:
        return Urgency(calm, f"{calm}: reading on request; {why} ({h.describe()})", h, True)
    if level >= (IMMINENT if prompted or rules.unprompted == "imminent" else PRESENT):
        return Urgency(SpeechKind.ALERT, f"alert: {why} ({h.describe()})", h)
    asked = "when asked" if prompted else "unprompted in this mode"
    return Urgency(calm, f"{calm}: {why}, not urgent {asked} ({h.describe()})", h, is_reading)
