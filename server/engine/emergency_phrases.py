"""The emergency path's words, per language: what calls for help, what answers
"Are you OK?", what the model says when it sees a fall, and what Murmur says.

Patterns are regular expressions over *folded* text (server/engine/emergency.py:
lower case, accents dropped, as ASR often writes them, ß as ss), one clause at a time.
They belong with the modes' per-language data (server/modes) once that is data; they
are here until then.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["LEXICONS", "Lexicon", "Line"]


class Line(enum.StrEnum):
    ASK = "ask"
    CLARIFY = "clarify"
    CALLING = "calling"
    CALLED = "called"
    RETRYING = "retrying"
    UNREACHABLE = "unreachable"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Lexicon:
    alone: tuple[str, ...]  # a clause that is only this calls for help
    anywhere: tuple[str, ...]  # this anywhere in a clause calls for help
    fine: tuple[str, ...]  # an answer with this anywhere: the user is fine
    not_fine: tuple[str, ...]  # checked before ``fine``: "not OK", "no estoy bien"
    confirm: tuple[str, ...]  # an answer clause that is only this: call now
    unsure: tuple[str, ...]  # an answer clause that is only this: ask back
    model: tuple[str, ...]  # the model reporting an emergency, anywhere in its reply
    lines: dict[Line, str]
    # For the contacts: who raised it (user, model, fall), how it went (confirmed, no
    # answer), where (known, unknown).
    messages: tuple[str, str, str, str, str, str, str]


EN = Lexicon(
    alone=(
        r"(please )?(somebody |someone )?help( me| us)?( please| now| somebody| someone)*",
        r"help( help)+",
        r"(i )?(really )?need help( now| please)*",
        r"(oh no )?i (just )?fell( down| over)?",
        r"sos|mayday",
    ),
    anywhere=(
        r"\bcall (for )?help\b",
        r"\b(call|get) (me )?(an |the )?ambulance\b",
        r"\bcall (911|112|999)\b",
        r"\bi (just )?fell (down|over|off|and)\b",
        r"\bi (just )?fell$",
        r"\bi('ve| have) fallen\b",
        r"\b(i'm|im|i am) (hurt|injured|bleeding)\b",
        r"\b(this is|it's|it is) an emergency\b",
    ),
    fine=(
        r"\b(i'm|im|i am) (fine|ok|okay|alright|all right|good|not hurt)\b",
        r"\b(all good|false alarm|don't call|do not call|no need|never ?mind|cancel)\b",
        r"^(fine|ok|okay)$",
        r"^(no )?(don't|dont|do not)$",
    ),
    not_fine=(r"\bnot (fine|ok|okay|alright|all right|good)\b",),
    confirm=(
        r"(yes |yeah )?(please )?(help|call|call them|call now|call for help|do it|go ahead)"
        r"( please| now)*",
        r"no|nope|not really|no i'm not",
    ),
    unsure=(r"yes|yeah|yep|yup|uh huh|sure",),
    model=(
        r"\byou (seem to |appear to |might |may )?(have )?(fallen|fell)\b",
        r"\blooks like you (have )?(fallen|fell|tripped)\b",
        r"\bdid you (fall|trip)\b",
        r"\bare you (ok|okay|alright|all right|hurt)\b",
    ),
    lines={
        Line.ASK: "Are you OK? I will call for help unless you say I'm fine.",
        Line.CLARIFY: "Say I'm fine, or say help.",
        Line.CALLING: "Calling for help now.",
        Line.CALLED: "I have called for help.",
        Line.RETRYING: "I could not reach your contacts, trying again.",
        Line.UNREACHABLE: "I could not reach your contacts. Call for help yourself if you can.",
        Line.CANCELLED: "OK, I will not call anyone.",
    },
    messages=(
        "The person wearing Murmur glasses asked for help.",
        "Murmur's assistant saw that the person wearing the glasses may have fallen.",
        "Murmur detected that the person wearing the glasses may have fallen.",
        "They confirmed they need help.",
        "They did not answer when asked if they are OK ({waited:.0f} s).",
        "Location: {lat:.5f}, {lon:.5f} (±{accuracy:.0f} m, {age:.0f} s ago) {map}",
        "Location unknown.",
    ),
)

DE = Lexicon(
    alone=(
        r"(bitte )?hilfe( bitte| hilfe)*",
        r"(bitte )?(hilf|helft|helfen sie) mir( bitte)?",
        r"(ich )?brauche hilfe( bitte)?",
        r"ich bin (hin|um)?gefallen",
    ),
    anywhere=(
        r"\b(ruf|rufe|rufen sie|hol|hole|holen sie) (bitte )?(hilfe|einen krankenwagen|den notarzt)\b",
        r"\bich bin (hin|um)?gefallen\b",
        r"\bich bin gesturzt\b",
        r"\bich bin verletzt\b",
        r"\b(das|es) ist ein notfall\b",
    ),
    fine=(
        r"\b(mir geht es gut|mir geht's gut|mir gehts gut|es geht mir gut|alles (gut|ok|okay|in ordnung))\b",
        r"\b(ich bin ok|fehlalarm|nicht anrufen|abbrechen|niemanden anrufen)\b",
        r"^(gut|ok|okay)$",
    ),
    not_fine=(r"\bnicht (gut|ok|okay|in ordnung)\b",),
    confirm=(
        r"(ja )?(bitte )?(hilfe|ruf an|anrufen|ruf hilfe|mach|los)( bitte)?",
        r"nein|nicht wirklich",
    ),
    unsure=(r"ja|jawohl|jap|klar",),
    model=(
        r"\b(du bist|sie sind) (wohl |anscheinend )?(hin|um)?gefallen\b",
        r"\b(bist du|sind sie) (gesturzt|gefallen|hingefallen|verletzt)\b",
        r"\bgeht es (dir|ihnen) gut\b",
    ),
    lines={
        Line.ASK: "Geht es dir gut? Ich rufe Hilfe, außer du sagst: alles gut.",
        Line.CLARIFY: "Sag alles gut, oder sag Hilfe.",
        Line.CALLING: "Ich rufe jetzt Hilfe.",
        Line.CALLED: "Ich habe Hilfe gerufen.",
        Line.RETRYING: "Ich erreiche deine Kontakte nicht, ich versuche es weiter.",
        Line.UNREACHABLE: "Ich konnte deine Kontakte nicht erreichen. Ruf selbst Hilfe, wenn du kannst.",
        Line.CANCELLED: "Gut, ich rufe niemanden an.",
    },
    messages=(
        "Die Person mit der Murmur-Brille hat um Hilfe gerufen.",
        "Murmurs Assistent hat gesehen, dass die Person mit der Brille gestürzt sein könnte.",
        "Murmur hat erkannt, dass die Person mit der Brille gestürzt sein könnte.",
        "Sie hat bestätigt, dass sie Hilfe braucht.",
        "Sie hat auf die Frage, ob alles gut ist, nicht geantwortet ({waited:.0f} s).",
        "Standort: {lat:.5f}, {lon:.5f} (±{accuracy:.0f} m, vor {age:.0f} s) {map}",
        "Standort unbekannt.",
    ),
)

ES = Lexicon(
    alone=(
        r"(por favor )?(ayuda|socorro|auxilio)( por favor| ayuda| socorro)*",
        r"ayudame( por favor)?",
        r"(necesito|quiero) ayuda( por favor)?",
        r"me (he )?(caido|cai)",
    ),
    anywhere=(
        r"\b(pide|pidan|llama|llame|busca) (ayuda|a una ambulancia|una ambulancia|al 112|al 911)\b",
        r"\bme (he )?(caido|cai)\b",
        r"\bestoy (herido|herida)\b",
        r"\bes una emergencia\b",
    ),
    fine=(
        r"\b(estoy bien|todo bien|estoy ok|falsa alarma|no llames|no llames a nadie|cancela|cancelar)\b",
        r"^(bien|ok|vale)$",
    ),
    not_fine=(r"\bno estoy bien\b",),
    confirm=(
        r"(si )?(por favor )?(ayuda|llama|llamalos|pide ayuda|hazlo)( por favor| ya)?",
        r"no|no mucho",
    ),
    unsure=(r"si|sip|claro",),
    model=(
        r"\b(te has caido|te caiste|se ha caido|se cayo)\b",
        r"\bestas bien\b",
    ),
    lines={
        Line.ASK: "¿Estás bien? Pediré ayuda si no dices: estoy bien.",
        Line.CLARIFY: "Di estoy bien, o di ayuda.",
        Line.CALLING: "Estoy pidiendo ayuda.",
        Line.CALLED: "He pedido ayuda.",
        Line.RETRYING: "No pude avisar a tus contactos, lo intento de nuevo.",
        Line.UNREACHABLE: "No pude avisar a tus contactos. Pide ayuda tú mismo si puedes.",
        Line.CANCELLED: "Vale, no llamaré a nadie.",
    },
    messages=(
        "La persona que lleva las gafas Murmur pidió ayuda.",
        "El asistente de Murmur vio que la persona de las gafas pudo haberse caído.",
        "Murmur detectó que la persona de las gafas pudo haberse caído.",
        "Confirmó que necesita ayuda.",
        "No respondió cuando se le preguntó si estaba bien ({waited:.0f} s).",
        "Ubicación: {lat:.5f}, {lon:.5f} (±{accuracy:.0f} m, hace {age:.0f} s) {map}",
        "Ubicación desconocida.",
    ),
)

LEXICONS = {"en": EN, "de": DE, "es": ES}
