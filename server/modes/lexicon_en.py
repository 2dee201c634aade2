"""The English hazard lexicon: the thorough one, and the fallback for any language
without its own (``server.modes.lexicons.lexicon``)."""

from __future__ import annotations

from server.modes.lexicon_base import QUOTE, Lexicon, thing_table

__all__ = ["EN"]

# Where a thing touches the body: "at your right knee", or said alone ("Bin. Right hand.").
_AT_BODY = (
    r"(?:\b(?:at|by|near|beside|against|next to|level with) (?:your )?|(?:^|(?<=[,.;:—–-] )))"
)
_BODY = r"(?:hip|knee|shin|elbow|shoulder)\b(?![- ]side)"

# fmt: off
EN = Lexicon(
    language="en",
    things=thing_table(
        vehicle="car: car, automobile, taxi, cab, van, suv, jeep | bicycle: bike, bicycle, "
        "cyclist, biker, bike rider | scooter: scooter, e-scooter, electric scooter | "
        "motorbike: motorbike, motorcycle, moped, motorcyclist | bus: bus | "
        "truck: truck, lorry, pickup truck, delivery truck | forklift: forklift, fork-lift, "
        "forklift truck, pallet jack, pallet truck, reach truck | tram: tram, streetcar, "
        "train | vehicle: vehicle, traffic | skateboard: skateboard, skateboarder | "
        "cart: shopping cart, golf cart, trolley, shopping trolley | robot: robot, delivery robot, "
        "cleaning robot | tractor: tractor, digger, excavator, bulldozer",
        person="person: person, people, man, men, woman, women, someone, somebody, pedestrian, "
        "jogger, runner, child, children, kid, crowd, guy, lady, group of people, "
        "wheelchair user, waiter, waitress, worker, workman, builder, courier, passer-by, "
        "passerby, "
        "shopper, tourist, student, skier, snowboarder, hiker, climber, toddler, teenager, skater, officer, security guard, vendor, "
        "staff member, employee, shop assistant, sales assistant, assistant, cashier, cleaner, "
        "shelf stacker, stacker, stock clerk, clerk, attendant, porter, janitor, customer | dog: dog, puppy | animal: cat, horse, animal, goose, geese | "
        "stroller: stroller, pram, pushchair, buggy",
        drop="step: step, steps down, step down, steps up, step up, stair, stairs, staircase, "
        "stairway, flight of stairs | escalator: escalator, moving staircase, moving walkway, "
        "travelator | curb: curb, kerb, curbside | edge: edge, platform edge, "
        "ledge, drop, drop-off, dropoff, platform ends, pier ends, jetty ends, quay ends | hole: "
        "hole, pothole, manhole, open manhole, ditch, drain, open drain, storm drain, drain hole, "
        "trench, crack | hatch: hatch, cellar hatch, trapdoor, trap door | gap: gap | "
        "ramp: ramp, slope",
        surface="wet floor: wet floor, wet, slippery, spill, spilled, spilt, spillage, slick | puddle: puddle | "
        "ice: ice on, black ice, icy, ice patch, patch of ice, icy patch, sheet of ice, "
        "frozen puddle, frost | mud: mud, muddy, slush | glass: broken glass, shattered glass | "
        "uneven ground: uneven ground, uneven pavement, loose tiles, uneven, loose gravel | "
        "hot: hot oven, hot oven door, open oven, oven door, hot tray, hot stove, stove top, hot plate, hotplate, hob, cooktop, hot pan, hot pot, "
        "boiling water, boiling pot, hot oil, hot iron, hot kettle, open flame, naked flame, "
        "open fire, flames, bonfire, campfire, hot grill, barbecue grill, hot steam",
        obstacle="pole: pole, post, lamppost, lamp post, street light, signpost, bollard, "
        "pillar, column, parking meter, fire hydrant, hydrant | branch: branch, low branch, "
        "tree branch, low-hanging branch, overhanging branch | box: box, crate, package, "
        "parcel, carton, boxes | bin: bin, trash can, garbage can, rubbish bin, dumpster, "
        "wheelie bin | cone: cone, traffic cone | barrier: barrier, barricade, fence, railing, "
        "handrail, rope, chain, barrier tape, police tape, cordon, roadworks, road works, "
        "construction site, construction work, turnstile, turnstile arm, ticket barrier, ticket gate | scaffolding: scaffolding, ladder, stepladder | "
        "chair: chair, stool, step stool, stepstool, footstool, kick stool | table: table | bench: bench | tree: tree, tree trunk, bush, "
        "hedge, planter, flower pot, plant pot, hanging plant, hanging basket | "
        "wall: wall, glass wall | "
        "glass door: glass door | "
        "bag: bag, suitcase, luggage, backpack | cable: cable, hose, wire, cord | "
        "obstacle: obstacle, obstruction, object, something | "
        "tool: rake, shovel, spade, hoe, pitchfork, broom, mop, bucket, toolbox, tools, "
        "hammer, lawnmower, mower, hose reel | sign board: sign board, signboard, "
        "sandwich board, a-frame sign | beam: low beam, beam, awning, low ceiling, ceiling, "
        "overhang, low doorway, low door frame, low arch, low archway, low bridge, low pipe, "
        "girder | shutter: shutter, roller shutter, shop shutter | icicle: icicle | "
        "pallet: pallet, display stand | rack: bike rack, bicycle rack | "
        "shelf: shelf, shelves, shelving | car door: car door, open car door, van door, taxi door, "
        "truck door, car boot, boot lid, open boot, trunk lid, open trunk, tailgate",
        landmark="door: door, doorway, entrance, exit, gate | crossing: crossing, "
        "crosswalk, zebra crossing, pedestrian crossing, intersection, junction, traffic light, "
        "traffic lights | stop: bus stop, tram stop, stop sign, station, platform, bus shelter, "
        "shelter | "
        "elevator: elevator, lift | counter: counter, checkout, till, register | "
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
         r"\bcoming up\b|\bin your direction\b|\b(?:just )?before (?:that|then|the turn)\b", 12),
    ),
    clock=r"\b(?:at |towards? |from )?(1[0-2]|[1-9]|one|two|three|four|five|six|seven|eight|"
    r"nine|ten|eleven|twelve)\s*o'?\s*clock\b",
    in_path=(r"\bin (?:your|the|my) (?:path|way)\b", r"\bcrossing (?:your|the) path\b",
             r"\bacross (?:it|(?:the|your) (?:[\w-]+ "
             r")?(?:path|way|sidewalk|pavement|walkway|corridor|floor|trail|track|"
             r"aisle|hallway|passage|doorway|entrance|lane))\b",
             r"\b(?:stick|jut|protrud|pok|reach|hang)\w* (?:[\w-]+ ){0,2}?(?:into|across|onto|over) "
             r"(?:the|your) "
             r"(?:[\w-]+ )?(?:path|way|sidewalk|pavement|walkway|aisle|lane|corridor)\b",
             r"\bblocking (?:the |your )?(?:path|way|sidewalk|pavement|aisle|door|corridor)\b",
             r"\bin the middle of the (?:path|sidewalk|pavement|aisle|corridor|walkway)\b",
             r"\bon (?:the|your) (?:path|sidewalk|pavement|walkway) ahead\b",
             r"\binto (?:your|the) (?:path|way)\b",
             r"\bin your (?:line|line of travel|walking line)\b",
             r"\b(?:right |just |exactly )?where you(?:'re| are)? (?:heading|walking|going|"
             r"stepping|about to step|about to walk)\b",
             r"\b(?:tak\w* up|cover\w*|fill\w*|span\w*|block\w*|occup\w*|stretch\w* across|"
             r"run\w* across) (?:almost |nearly )?(?:the )?(?:whole|entire|full|full width "
             r"of the|width of the) (?:[\w-]+ )?(?:path|way|sidewalk|pavement|walkway|aisle|"
             r"corridor|passage|hallway|footpath|lane)\b",
             r"\bopen(?:ing|s)? (?:outwards?|towards? you)\b",
             r"\bswing(?:ing|s)? (?:open|out|outwards?|towards? you)\b",
             r"\b(?:swing|clos|shut|slam)(?:ing|s|es)? (?:shut |closed |open )?(?:towards?|at|on|into) "
             r"you\b"),
    swinging=(r"\b(?:swing|clos|shut|slamm|open|turn|revolv|spinn|rotat)ing\b", r"\bswings\b", r"\b(?:clos|shut)(?:es|s)\b",
              r"\bslams\b"),
    numbers={"one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0, "six": 6.0,
             "seven": 7.0, "eight": 8.0, "nine": 9.0, "ten": 10.0, "eleven": 11.0, "twelve": 12.0,
             "thirteen": 13.0, "fourteen": 14.0, "fifteen": 15.0, "sixteen": 16.0,
             "seventeen": 17.0, "eighteen": 18.0, "nineteen": 19.0, "twenty": 20.0,
             "thirty": 30.0, "forty": 40.0, "fifty": 50.0, "sixty": 60.0, "seventy": 70.0,
             "eighty": 80.0, "ninety": 90.0, "a hundred": 100.0, "hundred": 100.0,
             "a": 1.0, "an": 1.0,
             "half a": 0.5, "a couple of": 2.0, "a few": 3.0, "one and a half": 1.5,
             "two and a half": 2.5, "three and a half": 3.5},
    units={"metres": 1.0, "meters": 1.0, "metre": 1.0, "meter": 1.0, "feet": 0.3048,
           "foot": 0.3048, "yards": 0.9144, "yard": 0.9144, "steps": 0.75, "step": 0.75,
           "paces": 0.75, "pace": 0.75},
    vague=(
        (r"\b(?:right|directly|just|immediately) in front of (?:you|your feet)\b", 0.5, 12),
        (r"\b(?:at|under|by|beside) your (?:left |right )?(?:feet|foot|toes)\b|"
         r"(?<!\bwith )(?<!\bwith your )(?<!\blift )(?<!\blift your )\b(?:left|right) (?:foot|toes?)\b", 0.3,
         12),
        (r"\bat your (?:forehead|face|eyes|head|chest|shins?|knees?)\b", 0.3, 12),  # touching
        # Nominal: "Post, left shoulder", "Step stool at your right knee" (a hand reaches for
        # things, it does not walk into them); not "the right-hand side".
        (rf"{_AT_BODY}left {_BODY}", 0.3, 9), (rf"{_AT_BODY}right {_BODY}", 0.3, 3),
        (r"\b(?:right|directly) ahead(?: of you)?\b", 1.0, 12),
        (r"\bjust ahead(?: of you)?\b", 2.0, 12),
        (r"\bright (?:next to|beside) you\b", 0.5, 0),
        (r"\b(?:right |just |directly )?in front of your (?:knees?|shins?|feet|toes|face)\b", 0.3, 12),
        (r"\barm'?s length\b|\bwithin (?:(?:arm'?s|easy|touching) )?reach\b", 0.7, 0),
        (r"(?<!nowhere )(?<!not )(?<!anywhere )(?<!n't )\b(?:very )?close(?: to you| by)?\b|"
         r"(?<!nowhere )(?<!not )(?<!anywhere )\bnear you\b|\bnearby\b", 1.5, 0),
        (r"\bfar (?:away|off)\b|\bin the distance\b|\bfar\b|\ba long way\b|\bquite a way\b|"
         r"\bway off\b|\bmiles away\b|\bsome distance (?:away|off)\b|\bat a distance\b|"
         r"\b(?:way|far|further|farther) (?:down|up|along) the (?:block|street|road)\b|"
         r"\bat the (?:far |other )?end of the (?:block|street|road)\b", 30.0, 0),
    ),
    approaching=(r"\bapproach\w*", r"\bcom(?:ing|es)\b", r"\bheading (?:for|towards?|at|your)\b",
                 r"\b(?:moving )?towards? you\b",
                 r"\b(?:straight|right|directly) (?:at|for|towards?) you\b",
                 r"\bheading (?:straight |right |directly )(?:for|at|towards?)\b",
                 r"\bfast\b", r"\bspeeding\b", r"\breversing\b",
                 r"\bbacking (?:up|out)\b", r"\bpulling (?:out|in)\b", r"\bturning (?:in|into)\b",
                 r"\bclosing in\b", r"\bin your direction\b", r"\b(?:straight |right )?into you\b",
                 r"\b(?:headed|heading|moving|walking|rolling|running|riding|driving|cycling) your "
                 r"way\b", r"\bfrom (?:your |the )?(?:left|right|behind)\b",
                 r"\bbehind you\b", r"\bfrom \d{1,2} o'?clock\b",
                 r"\b(?:push|pull|wheel|carr|drag|roll|steer|bring|driv|rid|walk|run|head|mov|"
                 r"com|cycl|skat|jog|rac|speed|hurr|rush|swerv|veer)\w*\b(?: [\w'-]+){0,6}? "
                 r"(?<!of )(?<!in )(?<!on )(?:your|this) way\b"),
    receding=(r"\b(?:has|have|had|just|already)(?: just| already)? (?:passed|gone)\b",
              r"\b(?:gone|went|driven|drove|ridden|rode|walked|cycled|rolled|ran|run|moved|"
              r"headed|zoomed|sped) (?:past|by|off|away)\b", r"\bpulled away\b", r"\bturned away\b",
              r"\bdepart(?:ed|ing|s)\b", r"\b(?:is|are) (?:just |now )?leaving(?=\s*(?:[.,;!?]|$)| "
              r"(?:the |its )?(?:stop|station|platform|bus stop|tram stop|bay)\b)", r"\b(?:has|have|had)(?: just| already)? (?:left(?=\s*(?:[.,;!?]|$)|"
              r" the (?:stop|station|platform)))\b",
              r"\bturned off\b(?! (?:its|the|his|her|their)\b)",
              r"\bmoved (?:on|off|away|aside|out of (?:the|your) way)\b",
              r"\b(?:heading|going|moving|walking|driving|riding|cycling|running|travelling|"
              r"traveling) (?:off )?(?:the other way|the opposite way|in the (?:other|opposite) "
              r"direction)\b",  # not "turned off its engine"
              r"\b(?:moving|walking|driving|riding|cycling|rolling|running|heading|going|"
              r"pulling) (?:off|away)\b", r"\bpassed (?:you|by)\b", r"\baway from you\b",
              r"(?:'ve|\bhave)(?: just| already| now)? (?:passed|gone past|got past|gotten past|"
              r"walked past|cleared)\b", r"\byou(?:'re| are) (?:now |already )?(?:past|beyond)\b"),
    parked=(r"\bparked\b", r"\bstationary\b", r"\b(?:not|isn't|aren't) moving\b", r"\bstopped\b",
            r"\bstanding\b", r"\bdocked\b", r"\bchained\b", r"\blocked (?:up|to)\b",
            r"\bleaning (?:against|on)\b", r"\bengine off\b"),
    displayed=(r"\bdisplay of\b", r"\bon display\b", r"\bdisplayed\b",
               r"\bin (?:a|the) (?:shop |store )?window\b",
               r"\b(?:picture|photo|painting|poster|drawing|mural|statue|sculpture|image|advert)s?"
               r" of\b",
               # "a poster on the shelter of a car speeding…", "the TV showing a crash"
               r"\b(?:poster|billboard|advert|advertisement|ad|picture|photo|mural|screen|tv|"
               r"television)s?\b(?:[^.!?;,]{0,40}?(?<!side )(?<!back )(?<!front )(?<!top )\bof\b|"
               r"[^.!?;,]{0,30}?\b(?:showing|shows|depicting|depicts|has|with|features|"
               r"featuring)\b)",
               r"\bon (?:the |a )?(?:tv|television|screen|monitor|billboard)\b",
               r"\b(?:ad|advert|advertisement|commercial)s? for\b", r"\b(?:in|on) the news\b"),
    head_height=(r"\b(?:at )?head[- ]height\b", r"\bhead level\b", r"\boverhead\b",
                 r"\blow[- ]hanging\b", r"\bmind your head\b", r"\bduck\b",
                 r"\b(?:at )?(?:knee|shin|ankle|waist|hip|chest|shoulder)[- "
                 r"](?:height|level|high)\b",
                 r"\b(?:at |to )?(?:your )?(?:forehead|face|eye)[- ]?(?:height|level)\b",
                 r"\bat your (?:forehead|face|eyes|head)\b"),
    negators=("no", "not", "nothing", "without", "none", "zero", "any", "nobody", "noone",
              "no-one"),
    bounds=("more", "further", "farther", "less", "even"),
    clear=(
        r"\b(?:path|way|road|street|sidewalk|pavement|route|crossing|coast|area|aisle|it)"
        r"(?:'s| is| looks| seems)(?: all| now)? clear\b",
        r"\ball clear\b", r"\bclear (?:path|way|road)\b", r"\bclear of\b",
        r"\b(?:path|way|road|street|sidewalk|pavement|route|corridor|aisle|hallway|passage|area|"
        r"stairs?)(?: [\w'-]+){0,3}? (?:is|looks|seems)(?: all| now| still)? (?:clear|empty|free)\b",
        r"\b(?:path|way|sector|area|road|route) clear\b", r"\bclear ahead\b", r"\bnothing (?:in|on|ahead|around)\b",
        r"\bnot in (?:your|the) (?:way|path)\b", r"\bout of (?:your|the) (?:way|path)\b",
        r"\bsafe to (?:cross|walk|go|continue|proceed)\b", r"\bno (?:obstacles?|hazards?)\b",
        r"\bwell away from\b", r"\bnowhere (?:near|close)\b",
        r"\bnot (?:anywhere )?(?:near|close to) (?:you|your path|the path)\b", r"\bclosed to (?:traffic|cars|vehicles)\b",
        r"\b(?:has|have) been (?:taken away|removed|cleared|cleaned up|mopped up|tidied away)\b",
        r"\b(?:looks|is|are|seems)(?: now)? dry\b",
        r"\b(?:has|have|had)(?: now| already)? (?:dried|melted|thawed|drained)\b",
        r"(?<!n't )(?<!not )(?<!yet )\bdried (?:up|out)\b",
        r"\b(?:is|are|looks|seems) (?:fine|ok|okay|safe) (?:now|again)\b",
        r"\b(?:on )?the (?:far|other|opposite) side of the (?:street|road)\b",
        r"\bon the far side\b",
        r"\bacross the (?:street|road)(?=\s*(?:[,.;!?]|$|from you))",
    ),
    warnings=(
        r"^(?:warning|caution|danger|alert)\b", r"\bwatch out\b", r"\blook out\b",
        r"\bheads up\b", r"\bcareful\b", r"\bwatch (?:your|the|for)\b", r"\bmind (?:the|your)\b",
        r"(?:^|[.!,;:—–-] ?)stop(?: now| right there| walking| moving| "
        r"here)*(?=\s*(?:[!.,;:—–-]|$))",
        r"\bduck(?: down)?!", r"\bwait(?:!| ?[—–]| -|, no\b)", r"\bhold on!", r"\bplease stop\b",
        r"\bfreeze\b",
        r"\bdon't move\b",
        r"\b(?:don't|do not) (?:go|walk|step|move) (?:any )?(?:further|farther|forward|on)\b",
        r"\bstay (?:where you are|still|back)\b", r"\bstep back\b", r"\bslow down\b",
        r"\b(?:walk|go|move|step) (?:slowly|carefully)\b", r"\bdanger\b",
        # Evasive commands are warnings: "…, duck or go around", "Hold it — a cyclist".
        r"(?:^|[.!,;:—–-] ?)(?:duck|hold (?:it|up))"
        r"(?=\s*(?:[!.,;:—–-]|$|or\b|and\b|down\b|under\b))",
        r"\b(?:go|walk|step) (?:a)?round (?:it|them)\b", r"\b(?:step|move) aside\b",
        r"\bget out of the way\b",
        # Told what not to do with it: "…, don't trip", "try not to bump into it".
        r"\b(?:don't|do not|try not to) (?:trip|stumble|bump|knock|bang|slip|fall|hit|walk into|"
        r"step (?:on|in|into))\b",
        # The user as the one about to collide: "You're about to walk into …".
        r"\byou(?:'re| are) (?:about|going) to "
        r"(?:walk|bump|run|step|trip|crash|hit|fall|knock|bang)\b",
        r"\byou(?:'ll| will) (?:walk|bump|run|trip|crash|bang) (?:into|over|on)\b",
        r"\byou(?:'re| are) (?:walking|heading|drifting|veering) (?:straight |right )?into\b",
    ),
    reading=(
        r"\b(?:sign|label|board|notice|poster|plaque|menu|screen|display|banner|placard|text|"
        r"writing|note|sticker|packet|package|can|bottle|jar|card|ticket|tag|panel|it|plate|"
        r"timetable|ingredients|chalkboard|blackboard|whiteboard)s?\b[^.!?]{0,30}?\b"
        r"(?:says|say|reads|"
        r"shows|displays|states|warns|"
        r"(?<!\bthe )(?<!\ba )(?<!\bon )(?<!\bin )(?<!\bthis )(?<!\bthat )(?<!\byour )"
        r"lists?)\b",
        r"(?:^|(?<=[.!?] ))(?:ingredients|allergens|allergy advice|contains|may contain|"
        r"nutrition(?:al)? (?:facts|information|values)|best before|use by|expiry date|expires|"
        r"price|net weight|directions for use|storage)(?: [\w'-]+){0,3}:",
        r"(?:^|(?<=[.!?] ))(?:best before|use by|expires on)\b",
        r"\b(?:sign|label|notice|plaque|menu|screen|display|board|packet|package|bottle|jar|"
        r"tag|ticket|poster|banner|sticker|chalkboard|blackboard|whiteboard|price list)s?\b"
        r"(?: [\w'-]+){0,4}:",
        r"\b(?:is|are) (?:listed|given|printed|written|marked) as\b",
        r"\baccording to (?:the|this|that) (?:[\w-]+ )?(?:sign|label|notice|screen|board|"
        r"packet|timetable)\b",
        r"\b(?:departures?|arrivals?) (?:to|for|from)\b",
        r"\b(?:written|printed) (?:on|above|below)\b",
        r"\b(?:on|in) (?:the|this|that) (?:[\w-]+ )?(?:sign|board|chalkboard|blackboard|whiteboard|"
        r"menu|screen|display|notice|list|timetable|label)s? (?:are|is|include|includes)\b", QUOTE,
        r"\b(?:says|reads):",
        r"(?:^|(?<=[.!?] ))(?:the|this|that) (?:[\w-]+ ){1,5}?(?:says|reads|lists)\b",
    ),
    reading_end=(r"\b(?:that's|that is|this is|is|are) what (?:[\w'-]+ ){0,6}?(?:says|say|"
                 r"reads|shows|displays|states)\b",),
    conjunctions=("and", "but", "or", "while", "which", "who", "then", "because", "although",
                  "though", "except", "unless", "whereas", "so", "apart from"),
    prepositions=("with", "on", "in", "at", "near", "next to", "behind", "under", "over",
                  "by", "from", "across", "along", "past", "beside", "towards", "toward"),
    articles=("a", "an", "the", "some"),
    copulas=("is", "are", "was", "has", "have", "lying", "standing", "sitting", "left",
             "there's", "hangs"),
    leads=("right", "just", "directly", "straight", "quite", "very"),
    short_units=(("m", 1.0), ("ft", 0.3048)),
    half=r"and a half",
    heights=(r"\bhead[- ](?:height|level)\b", r"\b(?:forehead|face|eye)[- ]?(?:height|level)\b",
             r"\bat your (?:forehead|face|eyes|head)\b"),
    step_units=("steps", "step", "paces", "pace"),
    route=(r"\b(?:turn|bear|fork|keep) (?:left|right)\b", r"\b(?:go|walk|head|carry on|continue) "
           r"(?:straight|forward|ahead)\b", r"\bcross (?:the|over|here|now)\b"),
    # A place one looks over, not a thing in the way: "the sun's out over the slopes".
    place_before=(r"(?:over|above|beyond) the", r"(?:called|named)(?: the)?(?: \w+)?"),
    place_after=(r"bays?|ranks?|parks?|parking|stands?|lanes?|areas?|zones?|corrals?|hire|"
                 r"rental|docks?|return",),
    nearing=(r"\bapproach\w*", r"\bclosing in\b"),
    schedule=(r"\bevery (?:[\w-]+ ){0,2}(?:minutes?|hours?)\b", r"\bin (?:[\w-]+ ){1,3}minutes?\b",
              r"\b(?:next|last|first) (?:[\w-]+ )?(?:trains?|bus(?:es)?|trams?|ferry|ferries|coach)\b",
              r"\bleaves? (?:from here|at \d|every|hourly)\b", r"\b(?:depart|arriv)\w* at \d",
              r"\btimetable\b", r"\bschedule[ds]?\b"),
    persons=("you", "your", "you're", "i", "i'm", "we", "me", "us"),
    pronouns=("it", "it's", "its", "they", "they're", "them", "one", "ones", "this", "that", "these", "those", "there", "here"),
)
# fmt: on
