"""The scenarios: ``core`` (one or two per mode, for the test suite) and ``extended``
(more, in three languages, for the benchmark). ``seed`` shifts each event by a few
seconds and varies directions and distances, so seeds give different clips."""

from __future__ import annotations

import random

from server.events import Mode
from tests.scenarios.clips import (
    FallEvent,
    HazardEvent,
    ProductEvent,
    Question,
    QuietStretch,
    RouteStep,
    Scenario,
    SignEvent,
)

__all__ = ["EAN13", "QR", "core", "extended"]

EAN13 = "4006381333931"
QR = "https://murmur.example/p/42"
SIGN = ("PLATFORM 4", "Exit to Main St")
ASKS: dict[str, dict[str, str]] = {
    "read": {
        "en": "Read the sign for me",
        "de": "Lies mir das Schild vor",
        "es": "Léeme el cartel",
    },
    "around": {
        "en": "What's around me?",
        "de": "Was ist um mich herum?",
        "es": "¿Qué hay a mi alrededor?",
    },
    "product": {
        "en": "What is this product?",
        "de": "Was ist das für ein Produkt?",
        "es": "¿Qué producto es este?",
    },
}


def _shift(rng: random.Random) -> float:
    return float(rng.randint(0, 2))


def street_walk(seed: int = 0, mode: Mode = Mode.GENERAL, language: str = "en") -> Scenario:
    """A bike coming from 2 o'clock and passing close, then a car from the left."""
    rng = random.Random(seed)
    a = 5.0 + _shift(rng)
    b = a + 8.0 + _shift(rng)
    return Scenario(
        name=f"street-{mode.value}-{language}-s{seed}",
        mode=mode,
        language=language,
        duration_s=b + 9.0,
        hazards=(
            HazardEvent("bicycle", a, a + 4, (2, 1), (float(rng.choice([6, 7, 8])), 1.5)),
            HazardEvent("car", b, b + 3, (9, 10), (9.0, 3.0)),
        ),
        quiet=(QuietStretch(0.0, a), QuietStretch(b + 5.0, b + 9.0)),
    )


def blind_errand(seed: int = 0, language: str = "en") -> Scenario:
    """Blind mode: a step ahead, a person approaching, a sign the user asks to have
    read, "what's around me?", quiet stretches between."""
    rng = random.Random(seed)
    a = 4.0 + _shift(rng)
    b = a + 6.0
    sign = b + 6.0 + _shift(rng)
    return Scenario(
        name=f"blind-errand-{language}-s{seed}",
        mode=Mode.BLIND,
        language=language,
        duration_s=sign + 14.0,
        hazards=(
            HazardEvent("step", a, a + 2, (12, 12), (4.0, 1.0)),
            HazardEvent("person", b, b + 3, (11, 12), (8.0, 2.0)),
        ),
        signs=(SignEvent(SIGN, sign, sign + 8.0, sign + 1.5, ASKS["read"][language]),),
        questions=(Question(sign + 10.5, ASKS["around"][language]),),
        quiet=(QuietStretch(0.0, a), QuietStretch(sign + 12.0, sign + 14.0)),
    )


def route_walk(seed: int = 0, language: str = "en") -> Scenario:
    """Navigation: route steps from the phone, a person crossing from 11 o'clock."""
    rng = random.Random(seed)
    a = 8.0 + _shift(rng)
    return Scenario(
        name=f"route-{language}-s{seed}",
        mode=Mode.NAVIGATION,
        language=language,
        duration_s=a + 10.0,
        hazards=(HazardEvent("person", a, a + 3, (11, 1), (7.0, 2.5)),),
        route=(
            RouteStep(1.0, "walk north on Main Street for 200 metres"),
            RouteStep(a + 5.0, "turn left onto Park Lane"),
        ),
        quiet=(QuietStretch(3.0, a), QuietStretch(a + 7.0, a + 10.0)),
    )


def shop_aisle(seed: int = 0, language: str = "en") -> Scenario:
    """Shopping: a box with an EAN-13 and a QR code held up, asked about; a cart."""
    rng = random.Random(seed)
    p = 3.0 + _shift(rng)
    c = p + 9.0
    return Scenario(
        name=f"shop-{language}-s{seed}",
        mode=Mode.SHOPPING,
        language=language,
        duration_s=c + 8.0,
        products=(ProductEvent(EAN13, QR, p, p + 6.0, p + 3.5, ASKS["product"][language]),),
        hazards=(HazardEvent("cart", c, c + 3, (1, 12), (5.0, 1.5)),),
        quiet=(QuietStretch(0.0, p), QuietStretch(c + 5.0, c + 8.0)),
    )


def fall(seed: int = 0, answer: str | None = None, language: str = "en") -> Scenario:
    """The wearer falls; no answer (the contacts are told), or "I'm fine"."""
    rng = random.Random(seed)
    at = 6.0 + _shift(rng)
    tag = "no-answer" if answer is None else "fine"
    return Scenario(
        name=f"fall-{tag}-{language}-s{seed}",
        mode=Mode.BLIND,
        language=language,
        duration_s=at + 10.0,
        hazards=(HazardEvent("step", 2.0, 4.0, (12, 12), (4.0, 1.5)),),
        falls=(FallEvent(at, answer, answer_after_s=2.5),),
        quiet=(QuietStretch(4.0 + 1.5 + 1.0, at),),
    )


def dense(seed: int = 0, mode: Mode = Mode.BLIND) -> Scenario:
    """Two hazards at once, from both sides, and chatter between: alerts behind alerts."""
    rng = random.Random(seed)
    a = 4.0 + _shift(rng)
    return Scenario(
        name=f"dense-{mode.value}-s{seed}",
        mode=mode,
        duration_s=a + 14.0,
        hazards=(
            HazardEvent("bicycle", a, a + 4, (3, 2), (8.0, 1.5)),
            HazardEvent("car", a + 1, a + 5, (9, 10), (10.0, 3.0)),
            HazardEvent("person", a + 7, a + 9, (12, 12), (5.0, 1.5)),
        ),
        quiet=(QuietStretch(0.0, a), QuietStretch(a + 11.0, a + 14.0)),
    )


def core(seed: int = 0) -> list[Scenario]:
    """For the test suite: every mode, reading, products, a fall."""
    return [
        street_walk(seed, Mode.GENERAL),
        blind_errand(seed),
        route_walk(seed),
        shop_aisle(seed),
        fall(seed),
    ]


def extended(seed: int = 0) -> list[Scenario]:
    """For the benchmark: ``core`` and the same walk in every mode and language."""
    more = [street_walk(seed, m) for m in (Mode.BLIND, Mode.NAVIGATION, Mode.SHOPPING)]
    more += [street_walk(seed, Mode.BLIND, "de"), street_walk(seed, Mode.GENERAL, "es")]
    more += [blind_errand(seed, "de"), shop_aisle(seed, "es")]
    more += [fall(seed, "I'm fine."), dense(seed), dense(seed, Mode.GENERAL)]
    return [*core(seed), *more]
