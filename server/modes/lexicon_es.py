"""The Spanish hazard lexicon: small but real."""

from __future__ import annotations

from server.modes.lexicon_base import QUOTE, Lexicon, thing_table

__all__ = ["ES"]

_TEXTS = (
    r"(?:letrero|cartel|etiqueta|señal|rótulo|pantalla|placa|texto|nota|paquete|bote|"
    r"botella|lata|panel|menú|carta|pizarra)"
)

# fmt: off
ES = Lexicon(
    language="es",
    things=thing_table(
        vehicle="car: coche, carro, auto, taxi, furgoneta | bicycle: bicicleta, bici, "
        "ciclista | scooter: patinete, patinete eléctrico | motorbike: moto, motocicleta, "
        "motorista | bus: autobús, autobuses, bus | truck: camión, camiones | "
        "tram: tranvía, tren | vehicle: vehículo, tráfico | robot: robot, robot de reparto | "
        "tractor: tractor, excavadora | forklift: carretilla elevadora, carretillas elevadoras, "
        "montacargas, transpaleta, traspaleta, apiladora",
        person="person: persona, gente, hombre, mujer, mujeres, niño, niña, alguien, peatón, "
        "peatones, corredor, grupo, camarero, camarera, trabajador, trabajadora, obrero, "
        "repartidor, "
        "repartidora, transeúnte, turista, vendedor, vendedora, mensajero, policía, empleado, "
        "empleada, dependiente, dependienta, cajero, cajera, reponedor, reponedora, cliente, "
        "clienta, limpiador, limpiadora | dog: perro | "
        "animal: gato, animal | "
        "stroller: carrito de bebé, cochecito | cart: carrito, carretilla",
        drop="step: escalón, escalones, escalera | escalator: escalera mecánica, "
        "escaleras mecánicas, cinta transportadora | curb: bordillo | edge: borde, desnivel, "
        "borde del andén, andén termina, andén acaba, termina el andén, "
        "acaba el andén | hole: agujero, hoyo, bache, zanja, alcantarilla, "
        "alcantarilla abierta, boca de alcantarilla, registro abierto | hatch: trampilla | "
        "gap: hueco | ramp: rampa, pendiente",
        surface="wet floor: suelo mojado, mojado, resbaladizo, resbaladiza | puddle: charco | "
        "ice: hielo, placa de hielo, escarcha, acera helada, suelo helado, camino helado | "
        "mud: barro, lodo, fango | glass: cristales rotos, vidrios rotos | "
        "uneven ground: irregular | hot: fogón, fogones, hornilla, placa caliente, vitrocerámica, "
        "sartén caliente, olla caliente, agua hirviendo, aceite caliente, plancha caliente, "
        "llama abierta, fuego, hoguera, parrilla caliente",
        obstacle="pole: poste, farola, pilar, columna, bolardo | branch: rama | "
        "box: caja, paquete | bin: contenedor, papelera, cubo de basura | cone: cono | "
        "barrier: valla, barrera, obras, cadena, cuerda, cinta de obra | "
        "scaffolding: andamio, escalera de mano | chair: silla, taburete | table: mesa | "
        "bench: banco | tree: árbol, árboles, arbusto, maceta | wall: pared, paredes, muro | "
        "glass door: puerta de cristal | bag: bolsa, maleta, mochila | "
        "obstacle: obstáculo, objeto | cable: cable, manguera | beam: toldo, viga, techo bajo, "
        "techo muy bajo, dintel bajo | shelf: estante, estantería, estanterías | "
        "car door: puerta del coche, puerta de un coche, puerta de coche, puerta del taxi, "
        "maletero, portón trasero | icicle: carámbano | shutter: persiana metálica, persiana",
        landmark="door: puerta, entrada, salida | crossing: paso de peatones, cruce, semáforo | "
        "stop: parada, parada de autobús, estación, andén, marquesina | elevator: ascensor | "
        "counter: mostrador | shop: tienda, farmacia, panadería",
    ),
    plural=r"(?:s|es)?",
    directions=(
        (r"\bdelante a (?:tu|la) izquierda\b|\ba la izquierda delante\b", 11),
        (r"\bdelante a (?:tu|la) derecha\b|\ba la derecha delante\b", 1),
        (r"\bizquierda\b", 9), (r"\bderecha\b", 3),
        (r"\bdetrás\b|\batrás\b|\ba tu espalda\b", 6),
        (r"\bdelante\b|\badelante\b|\benfrente\b|\bfrente a (?:ti|usted)\b|\bal frente\b|"
         r"\btodo recto\b|\bde frente\b", 12),
    ),
    clock=r"\ba (?:las|la) (1[0-2]|[1-9]|una|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|diez|"
    r"once|doce)\b(?: en punto)?",
    in_path=(r"\ben (?:tu|el|su) camino\b",
             r"\b(?:bloque|tap|obstruy|obstru)\w* (?:el|tu|la) "
             r"(?:paso|camino|acera|vereda|banqueta|pasillo)\b",
             r"\b(?:ocup|cubr|llen|bloque|invad|abarc|tap)\w* (?:casi |prácticamente )?"
             r"(?:todo (?:el|lo) ancho de (?:la|el)|el ancho de (?:la|el)|todo el|toda la) "
             r"(?:acera|vereda|banqueta|camino|paso|pasillo|carril|calle)\b",
             r"\ben medio de la (?:acera|vereda|banqueta)\b", r"\ben medio del camino\b",
             r"\b(?:justo )?por donde (?:vas|caminas|pasas|va usted|camina usted)\b",
             r"\bdonde vas a pisar\b",
             r"\bse abre hacia (?:ti|fuera|afuera)\b", r"\babriéndose hacia (?:ti|fuera)\b",
             r"\b(?:sobresal|invad)\w* (?:\w+ )?(?:en |a |hacia |sobre )?(?:la|el|tu) "
             r"(?:acera|vereda|banqueta|camino|paso|pasillo|carril)\b",
             r"\batravesad[oa]s? (?:en|sobre) (?:la|el|tu) "
             r"(?:acera|vereda|banqueta|camino|paso|pasillo|carril)\b",
             r"\bcuelga\w* (?:\w+ ){0,2}?(?:sobre|encima de) (?:la|el|tu) "
             r"(?:acera|vereda|banqueta|camino|paso|pasillo)\b",
             r"\bse (?:está |están )?(?:cierra|cierran|cerrando|abre|abren|abriendo) hacia "
             r"(?:ti|usted)\b",
             r"\b(?:cerrándose|abriéndose) hacia (?:ti|usted)\b"),
    numbers={"un": 1.0, "uno": 1.0, "una": 1.0, "dos": 2.0, "tres": 3.0, "cuatro": 4.0,
             "cinco": 5.0, "seis": 6.0, "siete": 7.0, "ocho": 8.0, "nueve": 9.0, "diez": 10.0,
             "once": 11.0, "doce": 12.0, "quince": 15.0, "veinte": 20.0, "treinta": 30.0,
             "cuarenta": 40.0, "cincuenta": 50.0, "sesenta": 60.0, "ochenta": 80.0,
             "cien": 100.0,
             "medio": 0.5, "un par de": 2.0, "pocos": 3.0, "unos pocos": 3.0},
    units={"metros": 1.0, "metro": 1.0, "pasos": 0.75, "paso": 0.75, "pies": 0.3048},
    vague=(
        (r"\bjusto (?:delante|enfrente|frente a (?:ti|usted)|adelante)\b", 0.5, 12),
        (r"\ba tus pies\b|\bjunto a tu pie\b|\b(?:a|junto a) tu pie (?:izquierdo|derecho)\b|"
         r"\bpie (?:izquierdo|derecho)\b", 0.3, 12),
        # Nominal: "Caja junto a tu rodilla derecha", "Poste, hombro izquierdo".
        (r"(?<!\ben la )(?<!\ben tu )(?<!\ben su )(?<!\bcon la )"
         r"\b(?:cadera|rodilla|espinilla|codo|hombro) (?:izquierd|derech)[oa]\b", 0.3, 0),
        (r"\bjusto a (?:tu|su) lado\b", 0.5, 0),
        (r"\b(?:a )?(?:un )?metro y medio\b", 1.5, 0),
        (r"\ba un brazo(?: de distancia)?\b|\bal alcance de (?:la|tu|su) mano\b|"
         r"\ba (?:tu|su) alcance\b", 0.7, 0),
        (r"(?<!no está )(?<!no están )(?<!no queda )(?<!no )(?<!ni )(?<!nada )"
         r"(?:\bmuy cerca\b|\bcerca\b)|\bpegad[oa] a ti\b", 1.5, 0),
        (r"\ba lo lejos\b|\blejos\b|\ba (?:mucha|bastante|gran|cierta) distancia\b|"
         r"\bal (?:final|fondo) de la calle\b|\bcalle (?:abajo|arriba)\b", 30.0, 0),
    ),
    approaching=(r"\bse acerca\w*", r"\bacercándose\b", r"\bviene\w*", r"\bhacia (?:ti|usted)\b",
                 r"\brápido\b", r"\ba toda velocidad\b", r"\bmarcha atrás\b",
                 r"\bpor (?:tu|la) (?:izquierda|derecha)\b", r"\bdesde\b", r"\bcircula\w*",
                 r"\ben tu dirección\b", r"\ben dirección a ti\b", r"\bhacia (?:aquí|acá)\b"),
    receding=(r"\bse aleja\w*", r"\balejándose\b",
              r"\ben (?:la )?(?:otra )?dirección (?:contraria|opuesta)\b", r"\ben la otra dirección\b",
              r"\bhacia el otro lado\b",
              r"\b(?:sale|salen|saliendo|está saliendo|están saliendo|parte|parten) (?:ya )?de "
              r"(?:la|el) (?:parada|estación|andén|vía|cochera)\b", r"\bya (?:has? |han |hemos )?pas\w*",
              r"\b(?:has|hemos) (?:pasado|dejado atrás|rebasado|superado)\b",
              r"\bse (?:fue|fueron|marcha|marchan|marchó|(?:ha|han) (?:ido|marchado))\b",
              r"\b(?:giró|ha girado|dobló|ha doblado) "
              r"(?:por|en|hacia)\b"),
    parked=(r"\baparcad\w*", r"\bestacionad\w*", r"\bparad[oa]s?\b", r"\bdetenid\w*",
            r"\bapoyad[oa]s?\b", r"\bamarrad[oa]s?\b", r"\bno se mueve\b"),
    displayed=(r"\ben (?:el|un) escaparate\b", r"\bexpuest[oa]s?\b", r"\ben exposición\b",
               r"\b(?:foto|cuadro|cartel|dibujo|estatua|imagen|anuncio)\w* de\b",
               r"\b(?:televisión|tele|tv|pantalla|monitor|póster|anuncio)\w*\b[^.!?;,]{0,40}?"
               r"\b(?:muestra|mostrando|sale|aparece|se ve)\b",
               r"\ben (?:la|el|las|un|una) "
               r"(?:televisión|tele|tv|pantalla|noticias|anuncio|póster)\b"),
    head_height=(r"\b(?:a (?:la )?)?altura de (?:la|tu|su) cabeza\b", r"\bagách(?:ate|ese)\b",
                 r"\b(?:a (?:la )?)?altura de (?:la|los|tu|tus|su|sus) (?:frente|cara|ojos)\b",
                 r"\baltura de (?:la|las|tu|tus) (?:rodillas?|espinillas?|cintura|cadera|pecho)\b"),
    negators=("no", "ningún", "ninguna", "ninguno", "sin", "nada", "nadie"),
    bounds=("más", "menos"),
    clear=(r"\bdespejad[oa]\b", r"\blibre de\b",
           r"\b(?:camino|paso|acera|vereda|banqueta|pasillo|calle)(?: \w+){0,3}? (?:está|queda|sigue) "
           r"(?:libre|vací[oa])\b", r"\b(?:camino|paso|acera|vereda|banqueta|cruce) (?:está )?libre\b",
           r"\bal otro lado de la (?:calle|carretera|avenida)\b",
           r"\ben la (?:otra )?acera de enfrente\b",
           r"\ben la otra acera\b", r"\bno (?:está )?en su camino\b",
           r"\bnada en (?:tu|el) camino\b", r"\bno (?:está )?en tu camino\b",
           r"\bno te estorba\b", r"\bseguro cruzar\b", r"\bya no están?\b",
           r"\bno (?:está|están|queda|quedan) (?:muy |nada )?cerca\b", r"\bni (?:de )?cerca\b",
           r"\b(?:han|ha) (?:sido )?(?:retirad|quitad)\w*",
           r"(?<!no )\bse (?:ha|han) (?:secado|derretido|evaporado)\b",
           r"(?<!no )\b(?:está|están) (?:ya )?sec[oa]s?\b",
           r"(?<!no )\b(?:está|están) bien (?:ahora|ya)\b"),
    warnings=(r"^(?:aviso|peligro)\b", r"\bcuidado\b", r"\batención\b",
              # Evasive commands (tú and usted) and the user about to collide are warnings.
              r"\b(?:apárt(?:ate|ese)|rodéa(?:lo|la|los|las)|rodée(?:lo|la)|"
              r"esquíva(?:lo|la|los|las)|"
              r"esquíve(?:lo|la)|deténgase|agáchese)\b",
              r"\b(?:échate|hazte|échese|hágase) a un lado\b",
              r"\bno se mueva\b", r"\bquédese (?:donde está|quiet[oa])\b",
              r"\bno (?:siga|avance)\b",
              r"\b(?:te )?vas? a (?:chocar|tropezar|darte|caerte|golpearte|pisar)\b",
              r"\bte vas a (?:dar|chocar|golpear|caer)\b",
              r"(?:^|[¡.!,;:—–-] ?)(?:alto|para|pare|ojo|quiet[oa]|espera|espere)"
              r"\b(?=\s*[!.,]|$)",
              r"\bdetente\b", r"\bno te muevas\b",
              r"\bno (?:sigas|avances|continúes)\b",
              r"\bno (?:te )?(?:tropieces|tropiece|choques|choque|resbales|resbale|caigas|caiga|"
              r"golpees|golpee)\b", r"\bni un paso más\b",
              r"\bquédate (?:donde estás|quiet[oa])\b", r"\bdespacio\b", r"\bagáchate\b",
              r"\bpeligro\b"),
    reading=(rf"\b{_TEXTS}\w*\b[^.!?]{{0,30}}?\b(?:dice|pone|indica|muestra)\b",
             rf"\b{_TEXTS}\w*(?: [\w'-]+){{0,4}}:", rf"\bsegún (?:el|la) {_TEXTS}\b",
             r"\b(?:en|sobre) (?:el|la|los|las|un|una) (?:\w+ ){1,4}?(?:pone|dice|se lee)\b",
             r"\bsalidas? (?:hacia|a|para)\b|\bllegadas? (?:de|desde)\b",
             r"\bse lee\b", r"\bestá escrito\b", r"^pone\b|\bpone:", QUOTE,
             r"(?:^|(?<=[.!?] ))(?:ingredientes|alérgenos|contiene|puede contener|información "
             r"nutricional|valores nutricionales|precio|modo de empleo|conservación)"
             r"(?: [\w'-]+){0,3}:",
             r"(?:^|(?<=[.!?] ))(?:consumir preferentemente|fecha de caducidad|caduca)\b"),
    reading_end=(r"\b(?:eso|esto) es lo que (?:dice|pone|indica)\b",
                 r"\bes lo que (?:dice|pone|indica)\b"),
    conjunctions=("y", "e", "pero", "o", "u", "mientras", "luego", "aunque", "porque",
                  "excepto", "salvo", "sin embargo", "así que"),
    prepositions=("con", "en", "sobre", "junto a", "detrás de", "bajo", "por", "desde"),
    articles=("un", "una", "unos", "unas", "el", "la"),
    copulas=("está", "están", "hay", "queda", "cuelga"),
    half=r"y medio",
    step_units=("pasos", "paso"),
    heights=(r"\baltura de (?:la|tu|su) cabeza\b",
             r"\baltura de (?:la|los|tu|tus|su|sus) (?:frente|cara|ojos)\b"),
    route=(r"\bgir[ae]\w* (?:a la )?(?:izquierda|derecha)\b", r"\bdobl[ae]\w*\b",
           r"\bsig(?:a|ue) (?:todo )?recto\b", r"\bcruz[ae]\b"),
    place_before=(r"(?:parada|estación|aparcamiento|zona|carril|fila)(?:s|es)?"
                  r"(?: de(?: los| las| la|"
                  r" el)?| del| al)?",
                  r"(?:sobre|encima de) (?:la|las|el|los)",
                  r"(?:llamad[oa]s?|se llama|se llaman)(?: \w+)?"),
    nearing=(r"\bse acerca\w*", r"\bacercándose\b"),
    schedule=(r"\bcada (?:\w+ )?(?:minutos?|horas?)\b", r"\ben (?:\w+ ){1,2}minutos\b",
              r"\b(?:próxim|últim|primer)[oa]? (?:\w+ )?(?:tren|trenes|autobús|autobuses|bus|"
              r"tranvía|metro|ferry)\b", r"\bsale (?:a las|cada)\b", r"\bhorarios?\b"),
    swinging=(r"\bse (?:está |están )?(?:abre|abren|abriendo|cierra|cierran|cerrando)\b",
              r"\b(?:abriéndose|cerrándose)\b", r"\b(?:está|están) (?:abriendo|cerrando)\b"),
    persons=("tú", "ti", "te", "usted", "yo", "me", "nos", "nosotros"),
    leads=("justo", "muy"),
    pronouns=("lo", "él", "ella", "ello", "eso", "esto", "esta", "este", "uno", "ahí", "aquí",
              "allí"),
)
# fmt: on
