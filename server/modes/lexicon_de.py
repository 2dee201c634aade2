"""The German hazard lexicon: small but real."""

from __future__ import annotations

import re
from typing import Any

from server.modes.lexicon_base import QUOTE, Lexicon, thing_table

__all__ = ["DE"]

_FORMAL = re.compile(r"\b(?:(dir)|(dich)|dein(e|em|en|er|es)?)\b")


def _sie(*patterns: str) -> tuple[str, ...]:
    """Each pattern in the formal address too: "vor dir" also "vor Ihnen", "auf dich zu"
    also "auf Sie zu", "in deinem Weg" also "in Ihrem Weg"."""

    def both(m: re.Match[str]) -> str:
        if m[1]:
            return "(?:dir|ihnen)"
        if m[2]:
            return "(?:dich|sie)"
        return f"(?:dein{m[3] or ''}|ihr{m[3] or ''})"

    return tuple(_FORMAL.sub(both, p) for p in patterns)


def _sie_rows(*table: tuple[Any, ...]) -> tuple[Any, ...]:
    """``_sie`` on the pattern that starts each row of a table."""
    return tuple((_sie(row[0])[0], *row[1:]) for row in table)


_TEXTS = (
    r"(?:schild|etikett|tafel|aufschrift|anzeige|display|plakat|zettel|packung|fahrplan|karte|"
    r"menü|preisliste)"
)

# Where a thing touches the body ("am rechten Knie", "Poller, linke Schulter"), not what
# one holds ("mit der rechten Schulter").
_NOT_HELD = r"(?<!\bin der )(?<!\bin deiner )(?<!\bin ihrer )(?<!\bmit der )"
_BODY = r"(?:hüfte|knie|schienbein|ellbogen|schulter)\b"

# fmt: off
DE = Lexicon(
    language="de",
    things=thing_table(
        vehicle="car: auto, wagen, pkw, taxi, transporter, lieferwagen | bicycle: fahrrad, fahrräder, rad, "
        "radfahrer, radfahrerin, fahrradfahrer | scooter: roller, e-roller, scooter | "
        "motorbike: motorrad, mofa | bus: bus, busse | truck: lkw, lastwagen, laster | "
        "tram: straßenbahn, tram, zug | vehicle: fahrzeug, verkehr | robot: roboter, "
        "lieferroboter, "
        "*roboter | tractor: traktor, bagger | forklift: gabelstapler, *stapler, hubwagen, "
        "*hubwagen",
        person="person: person, mensch, menschen, leute, mann, männer, frau, kind, kinder, jemand, "
        "fußgänger, jogger, läufer, gruppe, kellner, kellnerin, *arbeiter, arbeiterin, passant, "
        "passantin, kurier, bote, verkäufer, verkäuferin, tourist, touristen, schüler, kleinkind, "
        "angestellte, angestellter, kassierer, kassiererin, reinigungskraft, kunde, kundin | "
        "dog: hund | animal: katze, tier | "
        "stroller: kinderwagen | cart: einkaufswagen",
        drop="step: *stufe, *treppe | escalator: rolltreppe, rollsteig | curb: bordstein, "
        "bordsteinkante | edge: *kante, absatz, abgrund, bahnsteig endet, steg endet, endet der "
        "bahnsteig, "
        "endet der steg | hole: *loch, löcher, graben, "
        "*kanaldeckel, *schachtdeckel, gully, *schacht | hatch: *luke, falltür | gap: lücke, "
        "spalt | ramp: rampe, gefälle",
        surface="wet floor: nass, nasser boden, rutschig, glatt | puddle: pfütze | "
        "ice: glatteis, eisglätte, *eisfläche, *eisplatte, vereist, eisglatt | "
        "mud: matsch, schlamm, schneematsch | glass: scherben, glasscherben | "
        "uneven ground: uneben | hot: *herdplatte, kochfeld, heiße pfanne, heißer topf, "
        "heißes wasser, kochendes wasser, heißes öl, bügeleisen, offene flamme, flammen, "
        "lagerfeuer, heißer grill",
        obstacle="pole: *pfosten, *pfahl, *stange, laterne, poller, säule | branch: ast, äste, "
        "zweig | box: *kiste, *karton, paket, kasten | bin: mülltonne, mülleimer, tonne | "
        "cone: leitkegel, pylon, hütchen | barrier: *absperrung, absperrband, baustelle, *zaun, "
        "geländer, *kette, seil | scaffolding: *gerüst, leiter | chair: stuhl, stühle, hocker | "
        "table: tisch | bench: bank | tree: baum, bäume, busch, hecke, blumenkübel | "
        "wall: wand, mauer | glass door: glastür | bag: tasche, koffer, gepäck, rucksack | "
        "obstacle: hindernis, gegenstand | rack: fahrradständer, *ständer | cable: kabel, schlauch | beam: balken, vordach, "
        "niedrige decke, tiefe decke, niedriger durchgang, markise | shelf: regal | "
        "car door: autotür, wagentür, fahrzeugtür, kofferraum, kofferraumklappe, heckklappe | "
        "icicle: eiszapfen | shutter: rollladen, rolladen, rolltor, rollgitter",
        landmark="door: tür, *tür, eingang, ausgang, tor | crossing: zebrastreifen, übergang, "
        "kreuzung, ampel | stop: haltestelle, bushaltestelle, bahnhof, bahnsteig, wartehäuschen | "
        "elevator: aufzug, fahrstuhl | counter: kasse, theke | "
        "shop: laden, geschäft, apotheke, bäckerei",
    ),
    plural=r"(?:e|en|n|s|er|es)?",
    directions=_sie_rows(
        (r"\bvorne links\b|\blinks vor dir\b|\bhalb links\b", 11),
        (r"\bvorne rechts\b|\brechts vor dir\b|\bhalb rechts\b", 1),
        (r"\blinks\b|\blinker hand\b|\blinken seite\b", 9),
        (r"\brechts\b|\brechter hand\b|\brechten seite\b", 3),
        (r"\bhinter dir\b|\bvon hinten\b|\bhinten\b", 6),
        (r"\bgeradeaus\b|\bvor dir\b|\bvorne\b|\bvoraus\b", 12),
    ),
    clock=r"\b(?:auf |bei |um |von )?(1[0-2]|[1-9]|eins|zwei|drei|vier|fünf|sechs|sieben|"
    r"acht|neun|zehn|elf|zwölf)\s*uhr\b",
    in_path=_sie(r"\b(?:in|auf) deinem weg\b", r"\bim weg\b",
             r"\bversperrt (?:\w+ )?den (?:\w+ )?(?:weg|gehweg|gehsteig|bürgersteig|trottoir|gang)\b",
             r"\bmitten auf dem (?:weg|gehweg|gehsteig|bürgersteig|trottoir)\b",
             r"\b(?:genau )?(?:da|dort),? wo (?:du|sie) (?:gleich )?(?:hin)?(?:gehst|gehen|läufst|laufen|"
             r"trittst|treten)\b",
             r"\bgeht (?:\w+ )?(?:nach außen|auf dich zu) auf\b",
             r"\böffnet sich (?:\w+ )?(?:nach außen|zu dir|auf dich zu)\b",
             r"\bschwingt (?:\w+ )?auf\b",
             r"\b(?:geht|schwingt|fällt|schlägt) (?:\w+ ){0,2}?(?:auf dich|in deine richtung) zu\b",
             r"\b(?:öffnet|schließt) sich (?:\w+ )?in deine richtung\b",
             r"\b(?:ragt|ragen|steht|stehen|hängt|hängen) (?:\w+ ){0,4}?(?:in|auf|über) "
             r"(?:den|deinen) "
             r"\w*(?:weg|steig|gang)\b",
             r"\bquer (?:über|auf|vor) (?:den|dem|deinen|deinem) \w*(?:weg|steig|gang)\b",
             r"\b(?:nimmt|nehmen|belegt|belegen|blockiert|blockieren|versperrt|versperren|füllt|"
             r"füllen|bedeckt|bedecken) (?:\w+ ){0,2}?(?:den|die|das) (?:ganzen?|gesamten?) "
             r"\w*(?:weg|steig|gang)\b",
             r"\b(?:den|die|das) (?:ganzen?|gesamten?) \w*(?:weg|steig|gang) (?:\w+ )?(?:einnimmt|"
             r"einnehmen|blockiert|versperrt|belegt|füllt|bedeckt)\b",
             r"\büber die (?:ganze|gesamte|volle) breite (?:des|der) \w*(?:wegs|weges|steigs|"
             r"steiges|gangs|ganges)\b"),
    numbers={"ein": 1.0, "eine": 1.0, "einen": 1.0, "einem": 1.0, "einer": 1.0, "zwei": 2.0,
             "drei": 3.0, "vier": 4.0, "fünf": 5.0, "sechs": 6.0, "sieben": 7.0, "acht": 8.0,
             "neun": 9.0, "zehn": 10.0, "fünfzehn": 15.0, "zwanzig": 20.0, "dreißig": 30.0,
             "vierzig": 40.0, "fünfzig": 50.0, "sechzig": 60.0, "achtzig": 80.0,
             "hundert": 100.0,
             "eins": 1.0, "elf": 11.0, "zwölf": 12.0, "einen halben": 0.5, "einem halben": 0.5,
             "halben": 0.5, "ein paar": 3.0, "anderthalb": 1.5, "eineinhalb": 1.5,
             "zweieinhalb": 2.5, "dreieinhalb": 3.5},
    units={"metern": 1.0, "meter": 1.0, "schritten": 0.75, "schritte": 0.75, "schritt": 0.75},
    vague=(*_sie_rows(
        (r"\b(?:direkt|genau|unmittelbar) vor dir\b", 0.5, 12),
        (r"\bvor deinen füßen\b|\b(?:an|bei|vor) deinem (?:linken |rechten )?fuß\b|"
         r"\b(?:linke[rnm]?|rechte[rnm]?) fuß\b", 0.3, 12),
        (r"\b(?:kurz|gleich|knapp) vor dir\b", 1.5, 12),
        (r"\bdirekt neben dir\b", 0.5, 0),
        (r"\b(?:eine )?arm(?:es)?länge\b|\bin (?:greif|griff|reich)weite\b|\bgreifbar\b", 0.7, 0),
        (r"(?<!nicht )(?<!nirgends )(?<!nirgendwo )(?<!gar nicht )(?:\bganz nah\b|"
         r"\bin deiner nähe\b|\bnah\b|\bnahe\b|\bdicht\b)", 1.5, 0),
        (r"\bweit weg\b|\bin der ferne\b|\bweit\b(?! (?:in|hinein|über|auf|hinaus)\b)|\bein "
        r"(?:ganzes |gutes |großes )?stück (?:weg|entfernt)\b|"
         r"\bin (?:einiger|großer|sicherer) entfernung\b|\bam (?:anderen )?ende der straße\b|"
         r"\bweiter (?:vorne |hinten )?(?:die straße|den block) (?:hinunter|runter|entlang)\b",
         30.0, 0),
    ),  # "Kiste am rechten Knie", "Poller, linke Schulter"; not through ``_sie``
        (rf"{_NOT_HELD}\blinke[rnms]? {_BODY}", 0.3, 9),
        (rf"{_NOT_HELD}\brechte[rnms]? {_BODY}", 0.3, 3)),
    approaching=_sie(r"\bkomm\w*", r"\bnäher\w*", r"\bauf dich zu\b", r"\bschnell\b", r"\brast\b",
                 r"\brückwärts\b", r"\bvon (?:links|rechts|hinten)\b", r"\bfährt\b",
                 r"\bfahren\b", r"\bbiegt\b", r"\bdir (?:\w+ )?entgegen\b",
                 r"\bin deine richtung\b"),
    receding=_sie(r"\b(?:von dir|von uns) weg\b", r"\bweg von dir\b", r"\bentfernt sich\b",
              r"\b(?:ist|sind) (?:schon |bereits |jetzt )?vorbei\b",
              r"\bvorbei(?:gefahren|gegangen|gelaufen)\b", r"\babgebogen\b",
              r"\bhat dich überholt\b",
              r"\bin die (?:andere|entgegengesetzte) richtung\b",  # "weg" the particle, not "den Weg"
              r"\b(?:fährt|geht|läuft|rollt) (?:gerade |schon |jetzt |bereits )?weg\b",
              r"\b(?:fährt|fahren) (?:[\w-]+ ){0,5}?ab(?=\s*(?:[.,;!?]|$))",  # "fährt … ab": departs
              r"\b(?:ist|sind) (?:schon |bereits |gerade |jetzt )?"
              r"(?:weggefahren|abgefahren|weg)\b",
              r"\b(?:hast|habt) (?:du |ihr )?(?:\w+ ){0,4}?(?:passiert|hinter dir gelassen)\b",
              r"\b(?:bist|seid) (?:du |ihr )?(?:\w+ ){0,4}?vorbei\b"),
    parked=(r"\bgeparkt\w*", r"\bparkt\b", r"\bparkend\w*", r"\bsteht\b", r"\bstehend\w*",
            r"\babgestellt\w*", r"\bangeschlossen\w*", r"\blehnt\b"),
    displayed=(r"\bim schaufenster\b", r"\bausgestellt\w*", r"\bauslage\b",
               r"\b(?:bild|foto|plakat|gemälde|statue)\w* (?:von|eines|einer)\b",
               r"\bauf (?:dem|einem|den) "
               r"\w*(?:plakat|poster|bild|foto|bildschirm|fernseher|werbung)\w*\b",
               r"\b(?:fernseher|bildschirm|monitor|werbung|plakat)\w*\b[^.!?;,]{0,30}?\bzeigt\b",
               r"\bim fernsehen\b", r"\bin den nachrichten\b", r"\bwerbung für\b"),
    head_height=(r"\bkopfhöhe\b", r"\bauf kopfhöhe\b", r"\bkopf einziehen\b", r"\bbücken\b",
                 r"\b(?:stirn|augen|gesichts)höhe\b",
                 r"\b(?:knie|schienbein|hüft|bauch|brust|schulter)höhe\b"),
    negators=("kein", "keine", "keinen", "keinem", "keiner", "nicht", "ohne", "nichts", "niemand"),
    bounds=("mehr", "weiter", "weniger", "mal", "zwei", "drei", "vier", "fünf"),
    clear=_sie(r"\b(?:weg|gehweg|gehsteig|bürgersteig|trottoir|straße|bahn|strecke|übergang|es) ist (?:jetzt )?frei\b",
           r"\bauf der (?:anderen|gegenüberliegenden) (?:straßenseite|seite der straße)\b",
           r"\bauf der anderen seite\b",
           r"\balles frei\b", r"\bfrei von\b",
           r"\b(?:weg|gehweg|gehsteig|bürgersteig|trottoir|straße|gang|flur|korridor|durchgang)"
           r"(?: \w+){0,3}? (?:ist|bleibt) (?:jetzt |wieder |noch )?(?:frei|leer)\b", r"\bfreie[rn]? weg\b", r"\bnichts im weg\b",
           r"\bnicht (?:im|in deinem) weg\b", r"\bkein hindernis\b",
           r"\b(?:nicht|nirgends|nirgendwo|gar nicht) (?:in deiner nähe|nah|nahe|in der nähe)\b",
           r"\bsicher (?:gehen|überqueren)\b", r"\b(?:wurde|wurden) (?:\w+ )?(?:entfernt|"
           r"weggeräumt|abgebaut)\b", r"\b(?:ist|sind) (?:jetzt |wieder )?trocken\b",
           r"\b(?:ist|sind) (?!nicht )(?:\w+ )?(?:ab)?(?:getrocknet|geschmolzen|getaut)\b",
           r"\b(?:ist|sind) (?:jetzt |wieder )?(?:in ordnung|okay|ok)\b"),
    warnings=_sie(r"^(?:warnung|gefahr)\b", r"\bachtung\b", r"\bvorsicht\b", r"\bpass auf\b",
              r"\bpassen sie auf\b", r"\b(?:geh|lauf)\w* sie nicht weiter\b",
              # Evasive commands and the user about to collide are warnings.
              r"\bduck (?:dich|sie sich)\b", r"\bweich\w* (?:\w+ ){0,2}?aus\b", r"\bausweichen\b",
              r"\b(?:geh|tritt|tret|gehen|treten)\w* (?:\w+ )?zur seite\b",
              r"\b(?:du läufst|sie laufen|du stößt|sie stoßen) (?:\w+ ){0,3}?gegen\b",
              r"\bgleich (?:stößt|läufst|stolperst|prallst|fällst)\b",
              r"\b(?:läufst|stößt|stolperst|prallst) du (?:\w+ ){0,2}?(?:gegen|über|an)\b",
              r"\baufpassen\b", r"\bnicht (?:stolpern|anstoßen|ausrutschen|hinfallen|dagegen ?laufen)\b",
              r"\b(?:stolper|stoß|rutsch)\w* (?:\w+ ){0,2}?nicht\b", r"\bstopp\b", r"(?:^|[.!,;:—–-] ?)halt\b",
              r"\bbleib\w* (?:\w+ )?stehen\b", r"\bstehen bleiben\b", r"\blangsam!",
              r"\bkopf einziehen\b", r"\bzieh\w* (?:den|deinen) kopf ein\b", r"\bgefahr\b",
              r"\bnicht weiter(?:gehen|laufen)\b", r"\b(?:geh|lauf)\w* nicht weiter\b",
              r"\bkeinen schritt weiter\b", r"\bbleib\w*,? (?:wo du bist|zurück)\b"),
    reading=(rf"\b\w*{_TEXTS}\w*\b[^.!?]{{0,30}}?\b(?:steht|sagt|zeigt|lautet|listet|nennt)\b",
             rf"\blaut (?:dem |der )?\w*{_TEXTS}\w*\b", rf"\b\w*{_TEXTS}\w*(?: [\w'-]+){{0,4}}:",
             r"\b(?:abfahrt|abfahrten|ankunft) (?:nach|von|aus|richtung)\b",
             r"\bda steht(?=\s*[:\"„“«])", r"\bsteht:", QUOTE,
             r"(?:^|(?<=[.!?] ))(?:zutaten|inhaltsstoffe|allergene|allergiehinweis|enthält|"
             r"nährwerte|nährwertangaben|preis|zubereitung)(?: [\w'-]+){0,3}:",
             r"(?:^|(?<=[.!?] ))(?:mindestens haltbar|zu verbrauchen bis|kann spuren)\b"),
    reading_end=(r"\bso steht (?:es|das)\b", r"\b(?:das|so) steht (?:da |so )?(?:auf|an|am)\b"),
    conjunctions=("und", "aber", "oder", "sondern", "während", "dann", "weil", "obwohl",
                  "doch", "außer", "jedoch", "allerdings"),
    prepositions=("mit", "auf", "neben", "hinter", "unter", "über", "bei", "am", "im", "von"),
    articles=("ein", "eine", "einen", "der", "die", "das"),
    copulas=("ist", "sind", "liegt", "steht", "gibt", "hängt", "hängen", "ragt"),
    leads=("direkt", "genau", "gleich"),
    heights=(r"\b(?:kopf|stirn|augen|gesichts)höhe\b",),
    route=(r"\b(?:links|rechts) abbiegen\b", r"\bbieg\w* (?:\w+ )?(?:links|rechts)(?: ab)?\b",
           r"\b(?:geh|lauf)\w* (?:\w+ )?geradeaus\b", r"\büberquer\w*"),
    nearing=(r"\bnähert\w*", r"\bkommt (?:\w+ )?näher\b"),
    place_before=(r"(?:über|oberhalb) (?:der|den|dem|die|das)",
                  r"(?:heißt|heißen|namens|genannt)(?: \w+)?"),
    schedule=(r"\balle (?:\w+ )?(?:minuten|stunden?)\b", r"\bin (?:\w+ ){1,2}minuten\b",
              r"\b(?:nächste|letzte|erste)[nrs]? (?:\w+ )?(?:zug|züge|bus|busse|bahn|s-bahn|u-bahn|"
              r"straßenbahn|fähre)\b", r"\b(?:fährt|fahren|kommt|kommen) (?:\w+ )?um \d",
              r"\bfahrplan\w*", r"\bstündlich\b", r"\btakt\b"),
    swinging=(r"\b(?:öffnet|schließt) sich\b", r"\bschwingt\b", r"\b(?:fällt|schlägt) (?:\w+ )?zu\b",
              r"\bgeht (?:\w+ )?(?:auf|zu)(?=\s*(?:[.,;!?]|$))"),
    persons=("du", "dir", "dich", "sie", "ihnen", "ich", "wir", "uns", "mir", "deine", "ihre"),
    pronouns=("es", "er", "das", "dies", "diese", "dieser", "dieses", "einer", "eins", "da",
              "dort", "hier"),
)
# fmt: on
