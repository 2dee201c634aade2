"""How well a model's line is classed — alert, answer, narration or reading — on
labelled corpora, for ``server.engine.urgency`` and for the policy as a default
``GuidancePolicy`` uses it.

Nine corpora, reported one after the other and labelled. Each held-out set was
written blind by a new hand after the fixes of the one before, and scored once
before its misses were read; its misses were then grouped into *categories* of
error, fixed by general rules in en/de/es and tested in ``tests/test_urgency.py``
with new sentences — after which it is tuned-on and only the next set is honest.

- **tuning** (``guidance_corpus.jsonl``): the lines the rules and lexicons were
  written against, grown by a few lines per category each round. A score here shows
  the rules do what they were written to do, not how well they generalise.
- **held-out** (``guidance_heldout.jsonl``, 200): moving away, far vehicles, a
  hazard after landmarks, lexicon gaps, hazards inside answers, text read out.
- **fresh** (``guidance_heldout2.jsonl``, 200; scored 2026-12-03: alert P/R
  0.921/0.921, reading R 0.903): "in the path" with a qualifier or a sticking-out
  verb, missing people and moving things and "in your direction", counted flights
  of steps, ice and mud, edges said with a verb and "don't go further", things on
  posters/TV, far in other words, dried/melted clearances, departed vehicles,
  denials lending a distance, menus read out.
- **fresh-2** (``guidance_heldout3.jsonl``, 250; scored 2026-12-04: 0.981/0.955,
  reading 0.975; 9 of its lines were glimpsed mid-round, before its score):
  warehouse vehicles and shop staff, an unknown thing at head height, "pushing …
  your way", "nowhere near you", things already passed, label headings read out,
  "takes up the whole pavement", "a metre and a half", no lending of a distance
  across sentences.
- **fresh-3** (``guidance_heldout4.jsonl``, 260; scored 2026-12-04: 0.965/0.948,
  reading 0.875): rules about form rather than phrases — a heading and a colon is
  text read out; commands to get out of the way and "you're about to walk into…"
  warn in all three languages; German Sie forms everywhere; a route instruction
  lends no distance; a thing the lexicon lacks but said to be near or coming at the
  user is "unnamed", urgent where the mode is watchful (with each alert's thing
  removed from the lexicon, 0.575 of alerts still alerted before, 0.784 after).
- **fresh-4** (``guidance_heldout5.jsonl``, 260, written as several different
  models' styles; scored 2026-12-04: 0.981/0.913, reading 1.000). Hand rules have
  plateaued near 0.91–0.95 on each new blind set: every set brings phrasings no
  earlier one had. A learned second opinion (a numpy logistic regression over
  hashed character and word n-grams, deciding only lines the rules found nothing
  in) was built and measured: replaying the earlier blind rounds with the rules of
  their day, pooled alert recall 0.943 → 0.962 at equal precision; on FRESH-4, its
  own first blind test, 0.913 → 0.913. Not landed (branch
  ``experiment/urgency-scorer``): no gain where it counted, for a binary and a
  coupling to the rules' reason strings. Its misses, read after that: a door or
  gate on the move within reach; a body part saying where ("Open drain, right
  foot"); a thing's name called out alone ("Pole!") and "don't trip"; a where
  fronted late in a long scene belongs to the thing after it; departing trains
  and buses; "within reach" in words; a clearance of another side; regional
  pavement words (Gehsteig, vereda, banqueta).
- **fresh-5** (``guidance_heldout6.jsonl``, 260, six speakers in new places;
  scored 2026-12-04: 0.948/0.957, reading 1.000). Five blind rounds in all: alert
  recall 0.921, 0.955, 0.948, 0.913, 0.957 — the rules meet about one new
  phrasing in twenty-five on text nobody has fed them.
- **fresh-6** (``guidance_heldout7.jsonl``, 260, written blind from the label rule
  alone after the FRESH-5 fixes and blind mode's ``unsure = "alert"``; scored
  2026-12-04: 0.965/0.948, reading 1.000). Its misses, read after that: proper
  names holding a hazard word ("Hole Island", "the Black Ice Café"), a thing said
  before its where in another sentence ("Something low … Looks like a crate"), tools
  and a hot oven, "across the floor", "has moved on", Spanish usted forms. One is
  left on purpose: a horse approaching at twenty metres is beyond ``far_m`` (15 m),
  for people and animals as for vehicles; the corpus rule names the limit for
  vehicles only. Six blind rounds: 0.921, 0.955, 0.948, 0.913, 0.957, 0.948.
- **fresh-7** (``guidance_heldout8.jsonl``, 260, five imagined models' habits — terse,
  chatty, US units, hedging, scene first — in new places; the label rule now says
  the 15 m limit for people too; scored 2026-12-04: 0.973/0.948, reading 1.000). Its
  misses, read after that: German "da steht" starting a reading when it means "there
  stands"; a warning word or hazard inside a name ("the film Danger Zone", "heißt Zum
  Glatteis"); "in front of your knees"; a thing the lexicon lacks at a body height
  within reach is an obstacle; a turnstile is walked into like a barrier. Left: "the
  map says" after "I can't make out the street sign" reads as reading; "the tables
  near you are empty" (within reach, harmless) alerts. Seven blind rounds in all,
  alert recall 0.921, 0.955, 0.948, 0.913, 0.957, 0.948, 0.948: about one new
  phrasing in twenty is missed on text nobody fed the rules, and blind mode's
  ``unsure = "alert"`` is there for the shape of those.

Each corpus line is one the model could say in some mode and language, with the
mode, whether the user had just asked something (``prompted``), a label and, for
alerts, the hazard (canonical ``what``, ``direction`` as a clock hour, ``distance``
in metres; null where the line does not say).

The label rule the corpus follows:

- **reading**: the line reads text aloud ("The sign says: …", quoted text), even when
  that text warns ("The sign says: Caution, wet floor."); it is an alert only if the
  model also warns in its own words before the reading.
- **alert**, unprompted, in general, navigation and blind mode: the model's own
  warning words ("Watch out", "Careful", "Stop!", "Mind the gap"); anything in the
  user's path or way; a vehicle that is not parked, far (over 15 m, even when
  approaching), moving away or said to be out of the way; a person or animal
  approaching, ahead or within reach (1.5 m), unless far (over 15 m; said since FRESH-7,
  as the classifier always had it); a
  step, stairs, curb, edge, hole or slippery or broken ground that is not behind the
  user or far; an obstacle ahead, at head height or within reach (blind mode: also
  one beside the user, unless more than 5 m away). A parked vehicle is an obstacle.
  Landmarks (doors, crossings, shops, stops) are never hazards by themselves.
- **alert**, prompted (an answer), and in shopping mode even unprompted: only what is
  imminent — warning words, in the path, a vehicle or person approaching, anything
  but a landmark within 1.5 m. Other answers are **answer**.
- A hazard that is denied or cleared ("No obstacles ahead.", "The path is clear.",
  "A car is parked far to your left, not in your way.", "The bike has passed.") is
  **narration** (or **answer** when prompted), as is anything else unprompted.

The second rule is ``GuidancePolicy.reply`` with the mode's profile and its default
language ("en"), used read-only. It was once a keyword rule; it now calls
``urgency.classify`` itself, so on English lines it scores as the first, and on German
and Spanish lines it shows what a policy built without the session's language would
do (the session passes it). It never says "reading": its reading lines count as
answer/narration in its table.

Exits 1 when the alert recall of ``urgency.classify`` is below 0.97 on any corpus
reported. Prints; no asserts. ``--corpus PATH`` reports that one corpus instead;
``--misses`` lists every line classed wrong; ``--brevity`` shows ``shorten`` on the
long lines.

    python benchmarks/bench_urgency.py [--misses] [--brevity] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.engine.policy import GuidancePolicy
from server.engine.urgency import Urgency, classify, parse_hazard, shorten
from server.events import Mode, SpeechKind
from server.modes import profile

DATA = Path(__file__).resolve().parent / "data"
CORPUS = DATA / "guidance_corpus.jsonl"
HELD_OUT = DATA / "guidance_heldout.jsonl"
FRESH = DATA / "guidance_heldout2.jsonl"
FRESH_2 = DATA / "guidance_heldout3.jsonl"
FRESH_3 = DATA / "guidance_heldout4.jsonl"
FRESH_4 = DATA / "guidance_heldout5.jsonl"
FRESH_5 = DATA / "guidance_heldout6.jsonl"
FRESH_6 = DATA / "guidance_heldout7.jsonl"
FRESH_7 = DATA / "guidance_heldout8.jsonl"
TITLES = {
    CORPUS: "TUNING",
    HELD_OUT: "HELD-OUT (read once to find error categories)",
    FRESH: "FRESH (read once to find error categories)",
    FRESH_2: "FRESH-2 (read once to find error categories)",
    FRESH_3: "FRESH-3 (read once to find error categories)",
    FRESH_4: "FRESH-4 (read once to find error categories)",
    FRESH_5: "FRESH-5 (read once to find error categories)",
    FRESH_6: "FRESH-6 (read once to find error categories)",
    FRESH_7: "FRESH-7 (read once to find error categories)",
}
LABELS = ("alert", "answer", "narration", "reading")
MIN_ALERT_RECALL = 0.97

HEADER = f"""\
Nine corpora:
  TUNING    {CORPUS.name:<24} the rules and lexicons were written against it
  HELD-OUT  {HELD_OUT.name:<24} written blind by someone else
  FRESH     {FRESH.name:<24} written blind after the held-out fixes
  FRESH-2   {FRESH_2.name:<24} written blind after the FRESH fixes
  FRESH-3   {FRESH_3.name:<24} written blind after the FRESH-2 fixes
  FRESH-4   {FRESH_4.name:<24} written blind after the FRESH-3 fixes
  FRESH-5   {FRESH_5.name:<24} written blind after the FRESH-4 fixes
  FRESH-6   {FRESH_6.name:<24} written blind after the FRESH-5 fixes
  FRESH-7   {FRESH_7.name:<24} written blind after the FRESH-6 fixes
NOTE: every corpus but TUNING was scored once, blind, and then used to find the
categories of error the rules now cover (the fixes are general rules, unit-tested on
new sentences), so the scores printed here are optimistic. The unbiased estimates
are those first scores, in the module docstring: alert recall 0.921, 0.955, 0.948,
0.913, 0.957, 0.948, 0.948 on seven rounds of text nobody had fed the rules."""


def load(path: Path) -> list[dict]:
    lines = [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines() if raw]
    for row in lines:
        assert row["label"] in LABELS, row
    return lines


def as_label(u: Urgency) -> str:
    if u.kind is SpeechKind.ALERT:
        return "alert"
    return "reading" if u.reading else str(u.kind)


def new_rule(row: dict) -> tuple[str, str]:
    u = classify(
        row["text"],
        rules=profile(Mode(row["mode"])).urgency,
        language=row["language"],
        prompted=row["prompted"],
    )
    return as_label(u), u.reason


def old_rule(row: dict) -> tuple[str, str]:
    policy = GuidancePolicy(profile(Mode(row["mode"])))
    u = policy.reply(row["text"], 0.0, answering=row["prompted"])
    return (str(u.kind) if u is not None else "narration"), "policy"


Score = dict[str, tuple[float, float, float, int]]  # label -> precision, recall, F1, n


def scores(pairs: list[tuple[str, str]]) -> Score:
    out = {}
    for label in LABELS:
        tp = sum(1 for gold, got in pairs if gold == label and got == label)
        fp = sum(1 for gold, got in pairs if gold != label and got == label)
        fn = sum(1 for gold, got in pairs if gold == label and got != label)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out[label] = (p, r, f1, tp + fn)
    return out


def report(title: str, pairs: list[tuple[str, str]]) -> Score:
    s = scores(pairs)
    print(f"\n{title}  ({len(pairs)} lines)")
    print(f"  {'label':<10} {'precision':>9} {'recall':>7} {'F1':>6} {'n':>5}")
    for label in LABELS:
        p, r, f1, n = s[label]
        print(f"  {label:<10} {p:9.3f} {r:7.3f} {f1:6.3f} {n:5d}")
    confusion = Counter(pairs)
    print("  confusion (rows: label, columns: predicted)")
    print("  " + " " * 10 + "".join(f"{c:>10}" for c in LABELS))
    for gold in LABELS:
        print(f"  {gold:<10}" + "".join(f"{confusion[(gold, c)]:>10}" for c in LABELS))
    return s


def hazard_fields(rows: list[dict]) -> None:
    """How often the parsed what/direction/distance match the corpus, on its alerts."""
    hits, totals = Counter(), Counter()
    for row in rows:
        gold = row["hazard"]
        if row["label"] != "alert" or gold is None:
            continue
        h = parse_hazard(row["text"], row["language"])
        if gold["what"] is not None:
            totals["what"] += 1
            hits["what"] += h is not None and h.key == gold["what"]
        totals["direction"] += 1
        hits["direction"] += (h.clock if h else 0) == (gold["direction"] or 0)
        totals["distance"] += 1
        want, got = gold["distance"], h.distance_m if h else None
        hits["distance"] += (want is None and got is None) or (
            want is not None and got is not None and abs(got - want) <= max(0.25 * want, 0.2)
        )
    print("\nhazard fields on the corpus alerts (urgency.parse_hazard)")
    for f in ("what", "direction", "distance"):
        print(f"  {f:<10} {hits[f]:4d}/{totals[f]:<4d} {hits[f] / max(totals[f], 1):6.3f}")


def brevity(rows: list[dict]) -> None:
    print("\nshorten() on lines over their mode's budget (the policy's cut below it)")
    for row in rows:
        mode = Mode(row["mode"])
        budget = profile(mode).max_words
        if len(row["text"].split()) <= budget or row["label"] in ("answer", "reading"):
            continue
        u = classify(
            row["text"], rules=profile(mode).urgency, language=row["language"], prompted=False
        )
        h = u.hazard if u.kind is SpeechKind.ALERT else None  # as the policy would pass it
        new = shorten(row["text"], budget, h, language=row["language"])
        old = GuidancePolicy(profile(mode)).reply(row["text"], 0.0)
        print(f"  [{mode}, {budget} words] {row['text']}")
        print(f"      urgency ({len(new.split())}): {new}")
        print(f"      policy  ({len(old.text.split()) if old else 0}): {old.text if old else ''}")


def evaluate(title: str, path: Path, *, misses: bool, brevity_too: bool) -> dict[str, Score]:
    """One corpus: both rules, per language, the misses; the scores per rule."""
    rows = load(path)
    langs = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(r["language"] for r in rows).items()))
    print(f"\n{'=' * 88}\n{title}: {path.name}, {len(rows)} lines ({langs})\n{'=' * 88}")
    results = {}
    for name, rule in (("urgency.classify", new_rule), ("policy, language en", old_rule)):
        predicted = [(row, *rule(row)) for row in rows]
        results[name] = report(f"{title} — {name}", [(r["label"], g) for r, g, _ in predicted])
        by_language(name, predicted)
        if name == "urgency.classify":
            wrong = [(r, g, why) for r, g, why in predicted if g != r["label"]]
            print(
                f"\n  {len(wrong)} lines urgency.classify gets wrong"
                + ("" if misses else " (--misses lists them)")
            )
            for r, g, why in wrong if misses else ():
                print(
                    f"  {r['label']:>9} → {g:<9} [{r['mode']}, {r['language']}, "
                    f"{'asked' if r['prompted'] else 'unprompted'}] {r['text']}\n{'':14}{why}"
                )
    hazard_fields(rows)
    if brevity_too:
        brevity(rows)
    return results


def by_language(name: str, predicted: list[tuple[dict, str, str]]) -> None:
    print(f"  {name} per language: alert P / R, reading R")
    for lang in sorted({r["language"] for r, _, _ in predicted}):
        s = scores([(r["label"], g) for r, g, _ in predicted if r["language"] == lang])
        n = sum(1 for r, _, _ in predicted if r["language"] == lang)
        print(
            f"    {lang}  ({n:3d} lines)  alert {s['alert'][0]:.3f} / {s['alert'][1]:.3f}"
            f"   reading {s['reading'][1]:.3f}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, help="report only this corpus")
    ap.add_argument("--misses", action="store_true", help="list every line the new rule gets wrong")
    ap.add_argument("--brevity", action="store_true", help="show shorten() on the long lines")
    args = ap.parse_args()
    if args.corpus is None:
        print(HEADER)
        corpora = [(title, path) for path, title in TITLES.items()]
    else:
        corpora = [(TITLES.get(args.corpus.resolve(), "CORPUS"), args.corpus)]
    summary = [
        (t.split(" (")[0], evaluate(t, p, misses=args.misses, brevity_too=args.brevity))
        for t, p in corpora
    ]
    print(f"\n{'=' * 88}\nsummary (alert precision / recall, reading recall)")
    for title, results in summary:
        for name, s in results.items():
            print(
                f"  {title:<9} {name:<21} alert {s['alert'][0]:.3f} / {s['alert'][1]:.3f}"
                f"   reading {s['reading'][1]:.3f}"
            )
    if args.corpus is None:
        print(
            "  (all but TUNING were read once after their blind score: optimistic; see the header)"
        )
    low = [t for t, r in summary if r["urgency.classify"]["alert"][1] < MIN_ALERT_RECALL]
    print(f"alert recall of urgency.classify needs ≥ {MIN_ALERT_RECALL}: " + (
        f"below on {', '.join(low)}" if low else
        "met on every corpus, each tuned on after its blind score; on text the rules had "
        "not seen, alert recall was 0.913-0.957 (see the header)"))  # fmt: skip
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
