"""What a hazard lexicon holds: the ``Lexicon`` type and the helpers its per-language
data (``lexicon_en``, ``lexicon_de``, ``lexicon_es``) is written with.

Patterns are regular expressions over lower-cased text; things are phrases, and a
``*`` lets a German compound end in one (``*kiste`` is also "Holzkiste").
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATEGORIES", "QUOTE", "Lexicon", "thing_table"]

# vehicle and person move on their own; the rest stay where they are.
CATEGORIES = ("vehicle", "person", "drop", "surface", "obstacle", "landmark")

# Text in quotes is read out, in any language. A single quote opens one only where no
# letter comes before it and a closing one follows ("there's" is no quote).
QUOTE = r"[\"“„«]|(?<![\w'])'(?=[^']+'(?!\w))"


@dataclass(frozen=True, slots=True)
class Lexicon:
    language: str
    things: dict[str, tuple[str, str]]  # surface phrase -> (key, category)
    plural: str  # regex for the plural endings a thing may take
    directions: tuple[tuple[str, int], ...]  # pattern -> clock hour, most specific first
    clock: str  # pattern with one group: the hour, as digits or a number word
    # "in your path": ahead and in the way (as is a door swinging open towards the user)
    in_path: tuple[str, ...]
    numbers: dict[str, float]
    units: dict[str, float]  # unit word -> metres
    vague: tuple[tuple[str, float, int], ...]  # pattern -> metres, clock (0: none)
    approaching: tuple[str, ...]
    # Moving off or already past ("has gone past", "walking away"): not approaching,
    # whatever else the line says of it, and no hazard any more.
    receding: tuple[str, ...]
    parked: tuple[str, ...]  # a vehicle that stands still is an obstacle
    # Shown, not there ("a display of bicycles", "in the shop window"): scenery.
    displayed: tuple[str, ...]
    # A height one walks into: the head, and lower ("at knee height", "shin height").
    head_height: tuple[str, ...]
    # Words that deny the thing after them ("no cars"); a clause naming no thing but one
    # of these ("and nobody nearby") lends its where to nothing.
    negators: tuple[str, ...]
    clear: tuple[str, ...]  # patterns saying it is harmless ("not in your way")
    warnings: tuple[str, ...]  # the model's own warning words
    reading: tuple[str, ...]  # patterns that start text being read out
    # Patterns said after text read out ("…, that's what the sign says"): their
    # sentence, from its start, is read out.
    reading_end: tuple[str, ...]
    conjunctions: tuple[str, ...]  # a clause may start here
    prepositions: tuple[str, ...]  # a phrase may start here (the last resort for brevity)
    # Around the name of a thing the lexicon lacks ("There is a shopping basket in
    # your way"): the articles before it, the verbs after it.
    articles: tuple[str, ...] = ()
    copulas: tuple[str, ...] = ()
    leads: tuple[str, ...] = ()  # a phrase is not cut from these ("right | in front of you")
    short_units: tuple[tuple[str, float], ...] = (("m", 1.0),)  # only after digits: "2 m"
    step_units: tuple[str, ...] = ()  # units that are also things ("three steps down")
    # After a negator, a bound and no denial: "no more than a metre", "keine zwei Meter".
    bounds: tuple[str, ...] = ()
    # Said after a unit, half a unit more: "a metre and a half", "dos metros y medio".
    half: str = r"(?!)"
    # The head heights said as a level ("at head height", "knee-high"): there, a thing the
    # lexicon lacks is an obstacle ("Overhanging sign at head height"); "overhead" is not one.
    heights: tuple[str, ...] = ()
    # A route instruction ("In 20 metres turn left"): its distance is where to turn, and
    # lends nothing to a hazard that follows.
    route: tuple[str, ...] = ()
    # A thing that names a place ("the trolley bay", "la parada de taxis"): the words
    # after it, or before it, that make it a landmark.
    place_after: tuple[str, ...] = ()
    place_before: tuple[str, ...] = ()
    # Words addressing the user or the speaker: a heading before a colon that has one
    # ("Around you: …") is the model's own words, not a label read out.
    persons: tuple[str, ...] = ()
    # Verbs that say a thing comes nearer, whatever it is ("approaching", "se acerca"): a
    # thing the lexicon lacks that does so is a mover.
    nearing: tuple[str, ...] = ()
    # A door or gate on the move ("swinging shut", "öffnet sich", "se está cerrando"):
    # within reach it is something to walk into, not a landmark.
    swinging: tuple[str, ...] = ()
    # Words standing for a thing named before ("it", "one"): never an unnamed thing's name.
    pronouns: tuple[str, ...] = ()
    # A timetable, not a vehicle on its way: "trains leave every twenty minutes", "der
    # nächste Zug fährt in zwölf Minuten". A vehicle in such a clause is a landmark.
    schedule: tuple[str, ...] = ()


def thing_table(**by_category: str) -> dict[str, tuple[str, str]]:
    """``vehicle="car: car, taxi | bicycle: bike"`` -> {"car": ("car", "vehicle"), …}."""
    out: dict[str, tuple[str, str]] = {}
    for category, spec in by_category.items():
        assert category in CATEGORIES, category
        for group in spec.split("|"):
            key, _, forms = group.partition(":")
            for form in forms.split(","):
                out[" ".join(form.split())] = (key.strip(), category)
    return out
