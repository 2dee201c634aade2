"""Hazard lexicons per language and each mode's urgency rules: the data behind
``server.engine.urgency``.

A lexicon names the things the model may warn about (a canonical English key shared
by all languages, and a category), and how it says where (clock hours, sides, "in
your path"), how far, that a thing moves, that it is harmless ("not in your way"),
its own warning words and that it reads text aloud ("the sign says"). Patterns are
regular expressions over lower-cased text; things are phrases, and a ``*`` lets a
German compound end in one (``*kiste`` is also "Holzkiste"). English is thorough,
German and Spanish small but real; any other language falls back to English.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

__all__ = ["WATCHFUL", "Lexicon", "UrgencyRules", "alternation", "lexicon", "pattern", "rows"]

# vehicle and person move on their own; the rest stay where they are.
CATEGORIES = ("vehicle", "person", "drop", "surface", "obstacle", "landmark")


@dataclass(frozen=True, slots=True)
class UrgencyRules:
    """When a mode's unprompted line is an alert (prompted ones need "imminent")."""

    unprompted: str  # the least level that alerts unprompted: "present" or "imminent"
    side_obstacles: bool = False  # an obstacle beside the user is in the path too
    near_m: float = 1.5  # within this anything but a landmark is imminent
    far_m: float = 15.0  # beyond this nothing that is not approaching is urgent


# The most watchful rules (blind mode's): what a line is "about" is judged by them.
WATCHFUL = UrgencyRules("present", side_obstacles=True)


@dataclass(frozen=True, slots=True)
class Lexicon:
    language: str
    things: dict[str, tuple[str, str]]  # surface phrase -> (key, category)
    plural: str  # regex for the plural endings a thing may take
    directions: tuple[tuple[str, int], ...]  # pattern -> clock hour, most specific first
    clock: str  # pattern with one group: the hour, as digits or a number word
    in_path: tuple[str, ...]  # "in your path": ahead and in the way
    numbers: dict[str, float]
    units: dict[str, float]  # unit word -> metres
    vague: tuple[tuple[str, float, int], ...]  # pattern -> metres, clock (0: none)
    approaching: tuple[str, ...]
    parked: tuple[str, ...]  # a vehicle that stands still is an obstacle
    head_height: tuple[str, ...]
    negators: tuple[str, ...]  # words that deny the thing after them ("no cars")
    clear: tuple[str, ...]  # patterns saying it is harmless ("not in your way")
    warnings: tuple[str, ...]  # the model's own warning words
    reading: tuple[str, ...]  # patterns that start text being read out
    conjunctions: tuple[str, ...]  # a clause may start here
    prepositions: tuple[str, ...]  # a phrase may start here (the last resort for brevity)
    short_units: tuple[tuple[str, float], ...] = (("m", 1.0),)  # only after digits: "2 m"
    step_units: tuple[str, ...] = ()  # units that are also things ("three steps down")


def _things(**by_category: str) -> dict[str, tuple[str, str]]:
    """``vehicle="car: car, taxi | bicycle: bike"`` -> {"car": ("car", "vehicle"), …}."""
    out: dict[str, tuple[str, str]] = {}
    for category, spec in by_category.items():
        assert category in CATEGORIES, category
        for group in spec.split("|"):
            key, _, forms = group.partition(":")
            for form in forms.split(","):
                out[" ".join(form.split())] = (key.strip(), category)
    return out


# fmt: off
EN = Lexicon(
    language="en",
    things=_things(
        vehicle="car: car, automobile, taxi, cab, van, suv, jeep | bicycle: bike, bicycle, "
        "cyclist, biker, bike rider | scooter: scooter, e-scooter, electric scooter | "
        "motorbike: motorbike, motorcycle, moped, motorcyclist | bus: bus | "
        "truck: truck, lorry, pickup truck, delivery truck, forklift | tram: tram, streetcar, "
        "train | vehicle: vehicle, traffic | skateboard: skateboard, skateboarder | "
        "cart: shopping cart, golf cart, trolley, shopping trolley",
        person="person: person, people, man, men, woman, women, someone, somebody, pedestrian, "
        "jogger, runner, child, children, kid, crowd, guy, lady, group of people, "
        "wheelchair user | dog: dog, puppy | animal: cat, horse, animal, goose, geese | "
        "stroller: stroller, pram, pushchair, buggy",
        drop="step: step, steps down, step down, steps up, step up, stair, stairs, staircase, "
        "stairway, flight of stairs | curb: curb, kerb, curbside | edge: edge, platform edge, "
        "ledge, drop, drop-off, dropoff | hole: hole, pothole, manhole, open manhole, ditch, "
        "trench, crack | gap: gap | ramp: ramp, slope",
        surface="wet floor: wet floor, wet, slippery, spill, slick | puddle: puddle | "
        "ice: ice on, black ice, icy | glass: broken glass, shattered glass | "
        "uneven ground: uneven ground, uneven pavement, loose tiles, uneven, loose gravel",
        obstacle="pole: pole, post, lamppost, lamp post, street light, signpost, bollard, "
        "pillar, column, parking meter, fire hydrant, hydrant | branch: branch, low branch, "
        "tree branch, low-hanging branch, overhanging branch | box: box, crate, package, "
        "parcel, carton, boxes | bin: bin, trash can, garbage can, rubbish bin, dumpster, "
        "wheelie bin | cone: cone, traffic cone | barrier: barrier, barricade, fence, railing, "
        "rope, roadworks, road works, construction site, construction work | "
        "scaffolding: scaffolding, ladder | chair: chair, stool | table: table | "
        "bench: bench | tree: tree, tree trunk, bush, hedge, planter, flower pot | "
        "wall: wall, glass wall | glass door: glass door | bag: bag, suitcase, luggage, "
        "backpack | cable: cable, hose, wire, cord | obstacle: obstacle, obstruction, "
        "object | sign board: sign board, signboard, sandwich board, a-frame sign | "
        "beam: low beam, beam, awning, low ceiling, overhang | pallet: pallet, display stand | "
        "rack: bike rack, bicycle rack",
        landmark="door: door, doorway, entrance, exit, gate, turnstile | crossing: crossing, "
        "crosswalk, zebra crossing, pedestrian crossing, intersection, junction, traffic light, "
        "traffic lights | stop: bus stop, tram stop, stop sign, station, platform | "
        "elevator: elevator, lift, escalator | counter: counter, checkout, till, register | "
        "shop: shop, store, cafe, café, pharmacy, bakery, post office | station: train station, "
        "bus station, car park, parking lot, bike lane",
    ),
    plural=r"(?:s|es)?",
    directions=(
        (r"(?:ahead|in front)(?: and| of you)?,? (?:to |on )?(?:your |the )?left|front left|"
         r"half left|slightly (?:to (?:your |the )?)?left|left ahead", 11),
        (r"(?:ahead|in front)(?: and| of you)?,? (?:to |on )?(?:your |the )?right|front right|"
         r"half right|slightly (?:to (?:your |the )?)?right", 1),
        (r"\b(?:to|on|from|at|towards?) (?:your|the) left\b|\byour left\b|\bleft[- ]hand side\b|"
         r"\bleft side\b|\bleft of you\b", 9),
        (r"\b(?:to|on|from|at|towards?) (?:your|the) right\b|\byour right\b|"
         r"\bright[- ]hand side\b|\bright side\b|\bright of you\b", 3),
        (r"\bbehind you\b|\bfrom behind\b|\bat your back\b|\bbehind\b", 6),
        (r"\b(?:straight|directly|dead|just|right|up) ahead\b|\bahead\b|\bin front(?: of you)?\b|"
         r"\bcoming up\b|\bin your direction\b", 12),
    ),
    clock=r"\b(?:at |towards? |from )?(1[0-2]|[1-9]|one|two|three|four|five|six|seven|eight|"
    r"nine|ten|eleven|twelve)\s*o'?\s*clock\b",
    in_path=(r"\bin (?:your|the|my) (?:path|way)\b", r"\bcrossing (?:your|the) path\b",
             r"\bacross (?:the|your) (?:path|way|sidewalk|pavement)\b",
             r"\bblocking (?:the |your )?(?:path|way|sidewalk|pavement|aisle|door|corridor)\b",
             r"\bin the middle of the (?:path|sidewalk|pavement|aisle|corridor|walkway)\b",
             r"\bon (?:the|your) (?:path|sidewalk|pavement|walkway) ahead\b"),
    numbers={"one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0, "six": 6.0,
             "seven": 7.0, "eight": 8.0, "nine": 9.0, "ten": 10.0, "eleven": 11.0, "twelve": 12.0,
             "fifteen": 15.0, "twenty": 20.0, "thirty": 30.0, "fifty": 50.0, "a": 1.0, "an": 1.0,
             "half a": 0.5, "a couple of": 2.0, "a few": 3.0},
    units={"metres": 1.0, "meters": 1.0, "metre": 1.0, "meter": 1.0, "feet": 0.3048,
           "foot": 0.3048, "yards": 0.9144, "yard": 0.9144, "steps": 0.75, "step": 0.75,
           "paces": 0.75, "pace": 0.75},
    vague=(
        (r"\b(?:right|directly|just|immediately) in front of (?:you|your feet)\b", 0.5, 12),
        (r"\b(?:at|under|by) your feet\b", 0.3, 12),
        (r"\b(?:right|directly) ahead(?: of you)?\b", 1.0, 12),
        (r"\bjust ahead(?: of you)?\b", 2.0, 12),
        (r"\bright (?:next to|beside) you\b", 0.5, 0),
        (r"\barm'?s length\b", 0.7, 0),
        (r"\b(?:very )?close(?: to you| by)?\b|\bnear you\b|\bnearby\b", 1.5, 0),
        (r"\bfar (?:away|off)\b|\bin the distance\b|\bfar\b", 30.0, 0),
    ),
    approaching=(r"\bapproach\w*", r"\bcom(?:ing|es)\b", r"\bheading (?:for|towards?|at|your)\b",
                 r"\b(?:moving )?towards? you\b", r"\bfast\b", r"\bspeeding\b", r"\breversing\b",
                 r"\bbacking (?:up|out)\b", r"\bpulling (?:out|in)\b", r"\bturning (?:in|into)\b",
                 r"\bclosing in\b", r"\bfrom (?:your |the )?(?:left|right|behind)\b",
                 r"\bbehind you\b", r"\bfrom \d{1,2} o'?clock\b"),
    parked=(r"\bparked\b", r"\bstationary\b", r"\bnot moving\b", r"\bstopped\b", r"\bstanding\b"),
    head_height=(r"\b(?:at )?head[- ]height\b", r"\bhead level\b", r"\boverhead\b", r"\blow[- ]hanging\b",
                 r"\bmind your head\b", r"\bduck\b"),
    negators=("no", "not", "nothing", "without", "none", "zero", "any"),
    clear=(
        r"\b(?:path|way|road|street|sidewalk|pavement|route|crossing|coast|area|aisle|it)"
        r"(?:'s| is| looks| seems)(?: all| now)? clear\b",
        r"\ball clear\b", r"\bclear (?:path|way|road)\b", r"\bnothing (?:in|on|ahead|around)\b",
        r"\bnot in (?:your|the) (?:way|path)\b", r"\bout of (?:your|the) (?:way|path)\b",
        r"\bsafe to (?:cross|walk|go|continue|proceed)\b", r"\bno (?:obstacles?|hazards?)\b",
        r"\bhas (?:passed|gone|moved away)\b", r"\bmoving away\b", r"\bwell away from\b",
        r"\bclosed to (?:traffic|cars|vehicles)\b",
    ),
    warnings=(
        r"^(?:warning|caution|danger|alert)\b", r"\bwatch out\b", r"\blook out\b",
        r"\bheads up\b", r"\bcareful\b", r"\bwatch (?:your|the|for)\b", r"\bmind (?:the|your)\b",
        r"(?:^|[.!,;:—–-] ?)stop(?: now| right there| walking| moving| here)*(?=\s*(?:[!.,;:—–-]|$))",
        r"\bduck(?: down)?!", r"\bwait!", r"\bhold on!", r"\bplease stop\b", r"\bfreeze\b",
        r"\bdon't move\b", r"\bstep back\b", r"\bslow down\b", r"\bdanger\b",
    ),
    reading=(
        r"\b(?:sign|label|board|notice|poster|plaque|menu|screen|display|banner|placard|text|"
        r"writing|note|sticker|packet|package|can|bottle|jar|card|ticket|tag|panel|it|plate)s?"
        r"\b[^.!?]{0,30}?\b(?:says|say|reads|shows|displays|states)\b",
        r"\b(?:written|printed) (?:on|above|below)\b", r"[\"“„«]", r"\b(?:says|reads):",
        r"^(?:the|this|that) (?:[\w-]+ ){1,3}(?:says|reads)\b",
    ),
    conjunctions=("and", "but", "or", "while", "which", "who", "then", "because"),
    prepositions=("with", "on", "in", "at", "near", "next to", "behind", "under", "over",
                  "by", "from", "across", "along", "past", "beside", "towards", "toward"),
    short_units=(("m", 1.0), ("ft", 0.3048)),
    step_units=("steps", "step", "paces", "pace"),
)

DE = Lexicon(
    language="de",
    things=_things(
        vehicle="car: auto, wagen, pkw, taxi, transporter | bicycle: fahrrad, fahrräder, rad, "
        "radfahrer, radfahrerin, fahrradfahrer | scooter: roller, e-roller, scooter | "
        "motorbike: motorrad, mofa | bus: bus, busse | truck: lkw, lastwagen, laster | "
        "tram: straßenbahn, tram, zug | vehicle: fahrzeug, verkehr",
        person="person: person, mensch, menschen, mann, männer, frau, kind, kinder, jemand, "
        "fußgänger, jogger, läufer, gruppe | dog: hund | animal: katze, tier | "
        "stroller: kinderwagen | cart: einkaufswagen",
        drop="step: *stufe, *treppe | curb: bordstein, bordsteinkante | edge: *kante, absatz, "
        "abgrund | hole: *loch, löcher, graben | gap: lücke, spalt | ramp: rampe, gefälle",
        surface="wet floor: nass, nasser boden, rutschig, glatt | puddle: pfütze | "
        "ice: glatteis, eisglätte | glass: scherben, glasscherben | uneven ground: uneben",
        obstacle="pole: *pfosten, *pfahl, *stange, laterne, poller, säule | branch: ast, äste, "
        "zweig | box: *kiste, *karton, paket, kasten | bin: mülltonne, mülleimer, tonne | "
        "cone: leitkegel, pylon, hütchen | barrier: absperrung, baustelle, zaun, geländer | "
        "scaffolding: gerüst, leiter | chair: stuhl, stühle, hocker | table: tisch | "
        "bench: bank | tree: baum, bäume, busch, hecke, blumenkübel | wall: wand, mauer | "
        "glass door: glastür | bag: tasche, koffer, gepäck, rucksack | "
        "obstacle: hindernis, gegenstand | cable: kabel, schlauch | beam: balken, vordach",
        landmark="door: tür, eingang, ausgang, tor | crossing: zebrastreifen, übergang, "
        "kreuzung, ampel | stop: haltestelle, bushaltestelle, bahnhof, bahnsteig | "
        "elevator: aufzug, fahrstuhl, rolltreppe | counter: kasse, theke | "
        "shop: laden, geschäft, apotheke, bäckerei",
    ),
    plural=r"(?:e|en|n|s|er|es)?",
    directions=(
        (r"\bvorne links\b|\blinks vor dir\b|\bhalb links\b", 11),
        (r"\bvorne rechts\b|\brechts vor dir\b|\bhalb rechts\b", 1),
        (r"\blinks\b|\blinker hand\b|\blinken seite\b", 9),
        (r"\brechts\b|\brechter hand\b|\brechten seite\b", 3),
        (r"\bhinter dir\b|\bvon hinten\b|\bhinten\b", 6),
        (r"\bgeradeaus\b|\bvor dir\b|\bvorne\b|\bvoraus\b|\bvor ihnen\b", 12),
    ),
    clock=r"\b(?:auf |bei |um |von )?(1[0-2]|[1-9]|eins|zwei|drei|vier|fünf|sechs|sieben|"
    r"acht|neun|zehn|elf|zwölf)\s*uhr\b",
    in_path=(r"\b(?:in|auf) deinem weg\b", r"\bim weg\b", r"\bversperrt den weg\b",
             r"\bmitten auf dem (?:weg|gehweg|bürgersteig)\b"),
    numbers={"ein": 1.0, "eine": 1.0, "einen": 1.0, "einem": 1.0, "einer": 1.0, "zwei": 2.0,
             "drei": 3.0, "vier": 4.0, "fünf": 5.0, "sechs": 6.0, "sieben": 7.0, "acht": 8.0,
             "neun": 9.0, "zehn": 10.0, "zwanzig": 20.0, "dreißig": 30.0, "fünfzig": 50.0,
             "eins": 1.0, "elf": 11.0, "zwölf": 12.0, "einen halben": 0.5, "einem halben": 0.5,
             "halben": 0.5, "ein paar": 3.0},
    units={"metern": 1.0, "meter": 1.0, "schritten": 0.75, "schritte": 0.75, "schritt": 0.75},
    vague=(
        (r"\b(?:direkt|genau|unmittelbar) vor dir\b", 0.5, 12),
        (r"\bvor deinen füßen\b", 0.3, 12),
        (r"\b(?:kurz|gleich|knapp) vor dir\b", 1.5, 12),
        (r"\bdirekt neben dir\b", 0.5, 0),
        (r"\bganz nah\b|\bin deiner nähe\b|\bnah\b|\bnahe\b|\bdicht\b", 1.5, 0),
        (r"\bweit weg\b|\bin der ferne\b|\bweit\b", 30.0, 0),
    ),
    approaching=(r"\bkomm\w*", r"\bnäher\w*", r"\bauf dich zu\b", r"\bschnell\b", r"\brast\b",
                 r"\brückwärts\b", r"\bvon (?:links|rechts|hinten)\b", r"\bfährt\b",
                 r"\bfahren\b", r"\bbiegt\b"),
    parked=(r"\bgeparkt\w*", r"\bparkt\b", r"\bparkend\w*", r"\bsteht\b", r"\bstehend\w*"),
    head_height=(r"\bkopfhöhe\b", r"\bauf kopfhöhe\b", r"\bkopf einziehen\b", r"\bbücken\b"),
    negators=("kein", "keine", "keinen", "keinem", "keiner", "nicht", "ohne", "nichts"),
    clear=(r"\b(?:weg|gehweg|straße|bahn|strecke|übergang|es) ist (?:jetzt )?frei\b",
           r"\balles frei\b", r"\bfreie[rn]? weg\b", r"\bnichts im weg\b",
           r"\bnicht (?:im|in deinem) weg\b", r"\bkein hindernis\b", r"\bist vorbei\b",
           r"\bhat dich überholt\b", r"\bsicher (?:gehen|überqueren)\b", r"\bentfernt sich\b"),
    warnings=(r"^(?:warnung|gefahr)\b", r"\bachtung\b", r"\bvorsicht\b", r"\bpass auf\b",
              r"\baufpassen\b", r"\bstopp\b", r"(?:^|[.!,;:—–-] ?)halt\b", r"\bbleib stehen\b",
              r"\bstehen bleiben\b", r"\blangsam!", r"\bkopf einziehen\b", r"\bgefahr\b"),
    reading=(r"\b\w*(?:schild|etikett|tafel|aufschrift|text|anzeige|display|plakat|zettel|"
             r"packung|dose|flasche)\w*\b[^.!?]{0,30}?\b(?:steht|sagt|zeigt|lautet)\b",
             r"\bda steht\b", r"\bsteht:", r"[\"“„«]"),
    conjunctions=("und", "aber", "oder", "sondern", "während", "dann", "weil"),
    prepositions=("mit", "auf", "neben", "hinter", "unter", "über", "bei", "am", "im", "von"),
)

ES = Lexicon(
    language="es",
    things=_things(
        vehicle="car: coche, carro, auto, taxi, furgoneta | bicycle: bicicleta, bici, "
        "ciclista | scooter: patinete, patinete eléctrico | motorbike: moto, motocicleta, "
        "motorista | bus: autobús, autobuses, bus | truck: camión, camiones | "
        "tram: tranvía, tren | vehicle: vehículo, tráfico",
        person="person: persona, gente, hombre, mujer, mujeres, niño, niña, alguien, peatón, "
        "peatones, corredor, grupo | dog: perro | animal: gato, animal | "
        "stroller: carrito de bebé, cochecito | cart: carrito",
        drop="step: escalón, escalones, escalera | curb: bordillo | edge: borde, desnivel, "
        "borde del andén | hole: agujero, hoyo, bache, zanja | gap: hueco | ramp: rampa, "
        "pendiente",
        surface="wet floor: suelo mojado, mojado, resbaladizo, resbaladiza | puddle: charco | "
        "ice: hielo | glass: cristales rotos, vidrios rotos | uneven ground: irregular",
        obstacle="pole: poste, farola, pilar, columna, bolardo | branch: rama | "
        "box: caja, paquete | bin: contenedor, papelera, cubo de basura | cone: cono | "
        "barrier: valla, barrera, obras | scaffolding: andamio, escalera de mano | "
        "chair: silla, taburete | table: mesa | bench: banco | tree: árbol, árboles, arbusto, "
        "maceta | wall: pared, paredes, muro | glass door: puerta de cristal | "
        "bag: bolsa, maleta, mochila | obstacle: obstáculo, objeto | cable: cable, manguera | "
        "beam: toldo, viga",
        landmark="door: puerta, entrada, salida | crossing: paso de peatones, cruce, semáforo | "
        "stop: parada, parada de autobús, estación, andén | elevator: ascensor, "
        "escalera mecánica | counter: mostrador | shop: tienda, farmacia, panadería",
    ),
    plural=r"(?:s|es)?",
    directions=(
        (r"\bdelante a (?:tu|la) izquierda\b|\ba la izquierda delante\b", 11),
        (r"\bdelante a (?:tu|la) derecha\b|\ba la derecha delante\b", 1),
        (r"\bizquierda\b", 9), (r"\bderecha\b", 3),
        (r"\bdetrás\b|\batrás\b|\ba tu espalda\b", 6),
        (r"\bdelante\b|\badelante\b|\benfrente\b|\bfrente a ti\b|\bal frente\b|"
         r"\btodo recto\b|\bde frente\b", 12),
    ),
    clock=r"\ba (?:las|la) (1[0-2]|[1-9]|una|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|diez|"
    r"once|doce)\b(?: en punto)?",
    in_path=(r"\ben (?:tu|el|su) camino\b", r"\bbloquea\w* (?:el|tu) (?:paso|camino)\b",
             r"\ben medio de la acera\b", r"\ben medio del camino\b"),
    numbers={"un": 1.0, "uno": 1.0, "una": 1.0, "dos": 2.0, "tres": 3.0, "cuatro": 4.0,
             "cinco": 5.0, "seis": 6.0, "siete": 7.0, "ocho": 8.0, "nueve": 9.0, "diez": 10.0,
             "once": 11.0, "doce": 12.0, "veinte": 20.0, "treinta": 30.0, "cincuenta": 50.0,
             "medio": 0.5, "un par de": 2.0, "pocos": 3.0, "unos pocos": 3.0},
    units={"metros": 1.0, "metro": 1.0, "pasos": 0.75, "paso": 0.75, "pies": 0.3048},
    vague=(
        (r"\bjusto (?:delante|enfrente|frente a ti|adelante)\b", 0.5, 12),
        (r"\ba tus pies\b", 0.3, 12),
        (r"\bjusto a tu lado\b", 0.5, 0),
        (r"\bmuy cerca\b|\bcerca\b|\bpegad[oa] a ti\b", 1.5, 0),
        (r"\ba lo lejos\b|\blejos\b", 30.0, 0),
    ),
    approaching=(r"\bse acerca\w*", r"\bacercándose\b", r"\bviene\w*", r"\bhacia ti\b",
                 r"\brápido\b", r"\ba toda velocidad\b", r"\bmarcha atrás\b",
                 r"\bpor (?:tu|la) (?:izquierda|derecha)\b", r"\bdesde\b", r"\bcircula\w*"),
    parked=(r"\baparcad\w*", r"\bestacionad\w*", r"\bparad[oa]s?\b", r"\bdetenid\w*"),
    head_height=(r"\baltura de (?:la|tu) cabeza\b", r"\bagáchate\b"),
    negators=("no", "ningún", "ninguna", "ninguno", "sin", "nada"),
    clear=(r"\bdespejad[oa]\b", r"\b(?:camino|paso|acera|cruce) (?:está )?libre\b",
           r"\bnada en (?:tu|el) camino\b", r"\bno (?:está )?en tu camino\b",
           r"\bno te estorba\b", r"\bseguro cruzar\b", r"\bya (?:pasó|ha pasado)\b",
           r"\bse aleja\w*"),
    warnings=(r"^(?:aviso|peligro)\b", r"\bcuidado\b", r"\batención\b",
              r"(?:^|[¡.!,;:—–-] ?)(?:alto|para|ojo|quiet[oa]|espera)\b(?=\s*[!.,]|$)",
              r"\bdetente\b", r"\bno te muevas\b", r"\bdespacio\b", r"\bagáchate\b",
              r"\bpeligro\b"),
    reading=(r"\b(?:letrero|cartel|etiqueta|señal|rótulo|pantalla|placa|texto|nota|paquete|"
             r"bote|botella|lata)\w*\b[^.!?]{0,30}?\b(?:dice|pone|indica|muestra)\b",
             r"\bse lee\b", r"\bestá escrito\b", r"^pone\b|\bpone:", r"[\"“„«]"),
    conjunctions=("y", "e", "pero", "o", "u", "mientras", "luego", "aunque", "porque"),
    prepositions=("con", "en", "sobre", "junto a", "detrás de", "bajo", "por", "desde"),
)

# fmt: on

LEXICONS: dict[str, Lexicon] = {lex.language: lex for lex in (EN, DE, ES)}


def lexicon(language: str) -> Lexicon:
    """The lexicon for a base language ("de", "es"), English for any other."""
    return LEXICONS.get(language, EN)


def alternation(words: Iterable[str]) -> str:
    """Literal phrases as one regex, longest first ("step down" before "step")."""
    forms = sorted(words, key=len, reverse=True)
    return "|".join(re.escape(f).replace(r"\ ", r"\s+") for f in forms)


@cache
def pattern(language: str, name: str) -> re.Pattern[str]:
    """A lexicon field as one compiled pattern. Built ones: "things" (group 1 a plain
    form, group 2 a compound's end, group 3 the plural), "distance" (digits and unit
    in groups 1–2, or number word and unit in 3–4), "conjunctions" and
    "prepositions" (the space before one), "leading_conjunction"."""
    lex = lexicon(language)
    if name == "things":
        plain = alternation(f for f in lex.things if not f.startswith("*"))
        ends = alternation(f[1:] for f in lex.things if f.startswith("*"))
        tail = rf"|\w*?({ends})" if ends else "|(?!)()"
        return re.compile(rf"\b(?:({plain}){tail})({lex.plural})\b")
    if name == "distance":
        units, any_unit = alternation(lex.units), alternation([*lex.units, *dict(lex.short_units)])
        return re.compile(
            rf"\b(?:(\d+(?:[.,]\d+)?)\s*({any_unit})|({alternation(lex.numbers)})\s+({units}))\b"
        )
    if name in ("conjunctions", "prepositions"):
        return re.compile(rf"\s(?=(?:{alternation(getattr(lex, name))})\b)")
    if name == "leading_conjunction":
        return re.compile(rf"(?:{alternation(lex.conjunctions)})\s+", re.IGNORECASE)
    if name == "clock":
        return re.compile(lex.clock)
    patterns: tuple[str, ...] = getattr(lex, name)
    return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)")


@cache
def rows(language: str, name: str) -> tuple[tuple[re.Pattern[str], float, int], ...]:
    """``directions`` as (pattern, 0, clock) and ``vague`` as (pattern, metres, clock)."""
    lex = lexicon(language)
    if name == "directions":
        return tuple((re.compile(p), 0.0, clock) for p, clock in lex.directions)
    return tuple((re.compile(p), metres, clock) for p, metres, clock in lex.vague)
