"""A perfect model at the model boundary: it answers every tick from the scenario's
labels, as the real runtimes are called (``InteractionRuntime`` / ``ModelSession``,
the tick's ``Turn`` built by the shared ``Conversation``), and its outputs go through
the real action parser.

What it says, by priority (one action a tick):

1. the wearer fell (first frame showing it): "You seem to have fallen. Are you OK?";
2. a hazard: a warning in the session's language at the first frame that shows it
   ("Stop! Bike at 2 o'clock, 6 metres."), again only when it got closer (by a
   quarter and at least a metre) or moved two clock hours — stricter than the
   policy's repeat rule, so every warning it gives is news the policy must let
   through. With ``nag`` it also repeats the unchanged warning every tick it stays in
   view, as real models do, for the policy to hold back;
3. the user's question: a sign is read only from a still (``TickInput.still``, the
   higher pixel budget), otherwise "I can't read that from here."; a product question
   is answered from the barcode lines its turns carried; "what's around me?" with a
   description of the view;
4. a product's codes, once, when they first reach its turn (shopping);
5. a new route step in its turn (navigation);
6. chatter, when asked for: narration about this often (``chatter_every_s``), and
   once the tick before each hazard's onset, so that a narration is playing when the
   warning comes;

and silence otherwise. Each tick costs ``latency_s`` (plus ``reply_s`` when it
speaks) of *model time*, slept through ``sleep``: ``time.sleep`` on a real loop, the
suite's virtual-time sleep on the harness (tests/scenarios/suite.py), so virtual
time moves on while the model "thinks".

Everything it was given and said is kept (``OracleSession.seen`` / ``.said``), for
the metrics.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

from server.runtime.actions import parse_action
from server.runtime.base import (
    SILENCE,
    Action,
    InteractionRuntime,
    ModelSession,
    RuntimeCapabilities,
    TextSink,
)
from server.runtime.conversation import Conversation, Turn
from tests.scenarios.clips import HazardEvent, Scenario

__all__ = ["NAMES", "OracleLine", "OracleOptions", "OracleRuntime", "OracleSession", "SeenTick"]

NAMES: dict[str, dict[str, str]] = {
    "bicycle": {"en": "Bike", "de": "Fahrrad", "es": "Bicicleta"},
    "car": {"en": "Car", "de": "Auto", "es": "Coche"},
    "person": {"en": "Person", "de": "Person", "es": "Persona"},
    "step": {"en": "Step", "de": "Stufe", "es": "Escalón"},
    "cart": {"en": "Shopping cart", "de": "Einkaufswagen", "es": "Carrito"},
}
# The first of each is the terse default; with ``OracleOptions.varied`` a hazard is
# warned about in one of them all its life (a nag repeats its words), some of them
# calm in their first clause, as models are ("Just so you know, …").
_WARN = {
    "en": (
        "Stop! {what} at {clock} o'clock, {d} metres.",
        "Careful, {low} at {clock} o'clock, about {d} metres away.",
        "Heads up, {low} at {clock} o'clock, {d} metres.",
        "Just so you know, there is {low} at {clock} o'clock, {d} metres from you.",
    ),
    "de": (
        "Achtung! {what} auf {clock} Uhr, {d} Meter.",
        "Vorsicht, {what} auf {clock} Uhr, etwa {d} Meter entfernt.",
        "Nur zur Info, {what} auf {clock} Uhr, {d} Meter von dir.",
    ),
    "es": (
        "¡Cuidado! {what} a las {clock}, a {d} metros.",
        "Atención, {low} a las {clock}, a unos {d} metros.",
        "Para que lo sepas, {low} a las {clock}, a {d} metros de ti.",
    ),
}
_FELL = {
    "en": "You seem to have fallen. Are you OK?",
    "de": "Du bist wohl gestürzt. Geht es dir gut?",
    "es": "Parece que te has caído. ¿Estás bien?",
}
_SIGN = {"en": "The sign says: {}.", "de": "Auf dem Schild steht: {}.", "es": "El cartel dice: {}."}
_CANNOT = {
    "en": "I can't read that from here.",
    "de": "Das kann ich von hier nicht lesen.",
    "es": "No puedo leerlo desde aquí.",
}
_PRODUCT = {
    "en": "A product box, barcode {}.",
    "de": "Eine Produktschachtel, Strichcode {}.",
    "es": "Una caja de producto, código de barras {}.",
}
_NO_PRODUCT = {
    "en": "I see no product code yet.",
    "de": "Ich sehe noch keinen Strichcode.",
    "es": "Aún no veo ningún código.",
}
_AROUND = {
    "en": "A corridor with a door ahead{}.",
    "de": "Ein Flur mit einer Tür vorne{}.",
    "es": "Un pasillo con una puerta delante{}.",
}
_AROUND_SIGN = {
    "en": ", and a blue sign",
    "de": " und ein blaues Schild",
    "es": " y un cartel azul",
}
_ROUTE = {"en": "Next, {}.", "de": "Als Nächstes: {}.", "es": "A continuación: {}."}
CHATTER: dict[str, tuple[str, ...]] = {
    "en": (
        "The hallway is calm, with soft light from the windows and a few framed pictures.",
        "There is a wooden door further down the corridor and the floor looks clean.",
        "The walls are painted a pale cream colour and the ceiling lights are all on.",
        "A long carpet runs down the middle of the floor towards the far door.",
    ),
    "de": (
        "Der Flur ist ruhig, mit weichem Licht aus den Fenstern und einigen Bildern.",
        "Weiter hinten im Flur ist eine Holztür und der Boden sieht sauber aus.",
        "Die Wände sind hell gestrichen und alle Deckenlampen brennen ruhig.",
    ),
    "es": (
        "El pasillo está tranquilo, con luz suave de las ventanas y algunos cuadros.",
        "Hay una puerta de madera al fondo del pasillo y el suelo se ve limpio.",
        "Las paredes están pintadas de color crema y todas las luces están encendidas.",
    ),
}
_EAN = re.compile(r"Barcode EAN-13 (\d{13})")
_QR = re.compile(r'Barcode QR Code "([^"]+)"')
# The old and the new form of the engine's line (server/engine/location.py).
_ROUTE_STEP = re.compile(r"[Rr]oute step(?: \([^)]*\))?: ([^,]+)")


@dataclass(frozen=True, slots=True)
class OracleOptions:
    latency_s: float = 0.0  # model time per tick (decide)
    reply_s: float = 0.0  # more model time when it speaks (the reply's tokens)
    chatter_every_s: float = 0.0  # 0: no chatter; else narration about this often
    chatter_before_hazards: bool = True  # with chatter: also the tick before each onset
    nag: bool = False  # repeat unchanged warnings every tick, for the policy to hold back
    varied: bool = False  # each hazard warned about in one of several phrasings (_WARN)
    stream: bool = False  # replies handed over clause by clause, as the real runtimes do
    seed: int = 0
    # How model time passes, in the model thread: None is ``time.sleep``.
    sleep: Callable[[float], None] | None = None


@dataclass(frozen=True, slots=True)
class SeenTick:
    """What one tick gave the model."""

    tick_s: float
    scene_s: float | None  # the capture time of its frame; None without a fresh frame
    query: str | None
    still: bool
    max_pixels: int | None
    image_size: tuple[int, int] | None
    context: tuple[str, ...]
    text: str  # the turn's rendered text


@dataclass(frozen=True, slots=True)
class OracleLine:
    """One thing the oracle said, and what it was about."""

    tick_s: float
    scene_s: float | None
    kind: str  # hazard, chatter, reading, answer, product, route, fall
    text: str
    event: int = -1  # the hazard's index in the scenario (hazards only)
    clock: int = 0
    distance_m: float = 0.0
    news: bool = True  # a hazard line that is news (False: an unchanged nag)


def warning(h: HazardEvent, clock: int, distance: float, language: str, variant: int = 0) -> str:
    lang = language if language in _WARN else "en"
    d = f"{distance:g}" if lang == "en" else f"{distance:g}".replace(".", ",")
    what = NAMES[h.what][lang]
    low = what if lang == "de" else ("a " if lang == "en" else "") + what.lower()
    template = _WARN[lang][variant % len(_WARN[lang])]
    return template.format(what=what, low=low, clock=clock, d=d)


_CLAUSE = re.compile(r"(?<=[,.!?])\s+")


def clauses(text: str) -> list[str]:
    """``text`` cut after each comma and sentence end, as a runtime streams it."""
    return [c for c in _CLAUSE.split(text) if c]


def is_news(last: tuple[int, float] | None, now: tuple[int, float]) -> bool:
    """The oracle's own rule (see the module docstring): stricter than the policy's."""
    if last is None:
        return True
    (c0, d0), (c1, d1) = last, now
    gap = abs(c0 - c1) % 12
    return d1 <= d0 - max(1.0, d0 / 4) or min(gap, 12 - gap) >= 2


class OracleRuntime(InteractionRuntime):
    def __init__(
        self,
        scenario: Scenario,
        options: OracleOptions = OracleOptions(),
        *,
        executor: Executor | None = None,
    ) -> None:
        capabilities = RuntimeCapabilities(
            name="oracle", incremental=True, streams_text=options.stream
        )
        super().__init__(capabilities, executor)
        self.scenario = scenario
        self.options = options
        self.sessions: list[OracleSession] = []

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        session = OracleSession(self.scenario, self.options, instruction, language)
        self.sessions.append(session)
        return session


@dataclass
class _Memory:
    warned: dict[int, tuple[int, float]] = field(default_factory=dict)
    phrasing: dict[int, int] = field(default_factory=dict)  # a hazard's _WARN variant
    fall_said: bool = False
    codes_said: set[str] = field(default_factory=set)
    codes_seen: list[str] = field(default_factory=list)
    routes_seen: list[str] = field(default_factory=list)
    route_said: set[str] = field(default_factory=set)
    queries: list[str] = field(default_factory=list)  # not yet answered
    chatter_at: list[float] = field(default_factory=list)
    last_scene: float | None = None


class OracleSession(ModelSession):
    def __init__(
        self, scenario: Scenario, options: OracleOptions, instruction: str, language: str
    ) -> None:
        super().__init__(Conversation(instruction, language=language))
        self.scenario = scenario
        self.options = options
        self.language = language if language in _WARN else "en"
        self.instruction = instruction
        self.seen: list[SeenTick] = []
        self.said: list[OracleLine] = []
        self._sleep = options.sleep or time.sleep
        self._m = _Memory(chatter_at=self._chatter_times())
        self._chatter = random.Random(options.seed)

    def _chatter_times(self) -> list[float]:
        o = self.options
        if o.chatter_every_s <= 0:
            return []
        rng = random.Random(o.seed * 7919 + 1)
        times, t = [], 1.0 + rng.uniform(0, o.chatter_every_s)
        while t < self.scenario.duration_s:
            times.append(float(int(t)))
            t += o.chatter_every_s * rng.uniform(0.6, 1.4)
        if o.chatter_before_hazards:
            times += [self.scenario.seen_at(h.onset_s) - 1.0 for h in self.scenario.hazards]
        return sorted({t for t in times if t >= 1.0})

    # ------------------------------------------------------------------ the tick

    def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
        tick = turn.tick
        o = self.options
        started = time.perf_counter()
        self._sleep(o.latency_s)
        scene = tick.frame.capture_time_ms / 1000 if tick.frame is not None else None
        image = turn.image
        self.seen.append(
            SeenTick(
                tick.tick_s,
                scene,
                tick.user_query,
                tick.still,
                tick.frame_max_pixels,
                image.size if image is not None else None,
                tick.context,
                turn.text,
            )
        )
        for line in tick.context:
            self._m.codes_seen += _EAN.findall(line) + _QR.findall(line)
            self._m.routes_seen += _ROUTE_STEP.findall(line)
        if tick.user_query:
            self._m.queries.append(tick.user_query)
        if scene is not None:
            self._m.last_scene = scene
        line = self._decide(tick.tick_s, scene, still=tick.still)
        decided_ms = (time.perf_counter() - started) * 1000
        if line is None:
            return replace(SILENCE, stages=(("decide", decided_ms),))
        self.said.append(line)
        if o.stream and on_clause is not None:  # the reply's time spread over its clauses
            parts = clauses(line.text)
            for part in parts:
                self._sleep(o.reply_s / len(parts))
                on_clause(part)
        elif o.reply_s:
            self._sleep(o.reply_s)
        action = parse_action(f"</response> {line.text}")
        stages = [("decide", decided_ms), ("reply", (time.perf_counter() - started) * 1000)]
        return replace(action, stages=tuple(stages))

    def _decide(self, tick_s: float, scene: float | None, *, still: bool) -> OracleLine | None:
        s, lang, m = self.scenario, self.language, self._m
        if scene is not None:
            fall = s.fallen_at(scene)
            if fall is not None and not m.fall_said:
                m.fall_said = True
                return OracleLine(tick_s, scene, "fall", _FELL[lang])
            if (said := self._hazard(tick_s, scene)) is not None:
                return said
        if m.queries:
            return self._answer(tick_s, scene, m.queries.pop(0), still=still)
        fresh = [c for c in dict.fromkeys(m.codes_seen) if c not in m.codes_said]
        if fresh and s.mode.value == "shopping":
            m.codes_said.update(fresh)
            ean = next((c for c in fresh if c.isdigit()), fresh[0])
            return OracleLine(tick_s, scene, "product", _PRODUCT[lang].format(ean))
        if (route := self._route(tick_s, scene)) is not None:
            return route
        if m.chatter_at and tick_s >= m.chatter_at[0]:
            while m.chatter_at and tick_s >= m.chatter_at[0]:
                m.chatter_at.pop(0)
            text = self._chatter.choice(CHATTER[lang])
            return OracleLine(tick_s, scene, "chatter", text)
        return None

    def _hazard(self, tick_s: float, scene: float) -> OracleLine | None:
        m, lang = self._m, self.language
        nag: OracleLine | None = None
        for i, h in enumerate(self.scenario.hazards):
            where = h.at(scene)
            if where is None:
                continue
            clock, distance = where
            last = m.warned.get(i)
            variant = m.phrasing.setdefault(
                i, self._chatter.randrange(4) if self.options.varied else 0
            )
            text = warning(h, clock, distance, lang, variant)
            if is_news(last, where):
                m.warned[i] = where
                return OracleLine(tick_s, scene, "hazard", text, i, clock, distance)
            if self.options.nag and nag is None and last is not None:
                said = warning(h, last[0], last[1], lang, variant)  # the same words as before
                nag = OracleLine(tick_s, scene, "hazard", said, i, last[0], last[1], news=False)
        return nag

    def _answer(self, tick_s: float, scene: float | None, query: str, *, still: bool) -> OracleLine:
        s, lang = self.scenario, self.language
        t = scene if scene is not None else (self._m.last_scene or 0.0)
        sign = next((x for x in s.signs if x.ask.lower() in query.lower()), None)
        if sign is not None:
            shown = s.sign_at(t) or sign
            if still:
                return OracleLine(
                    tick_s, scene, "reading", _SIGN[lang].format(", ".join(shown.text))
                )
            return OracleLine(tick_s, scene, "answer", _CANNOT[lang])
        if any(p.ask.lower() in query.lower() for p in s.products):
            ean = next((c for c in self._m.codes_seen if c.isdigit()), None)
            text = _PRODUCT[lang].format(ean) if ean else _NO_PRODUCT[lang]
            return OracleLine(tick_s, scene, "answer", text)
        q = next((x for x in s.questions if x.text.lower() in query.lower()), None)
        if q is not None and q.answer:
            return OracleLine(tick_s, scene, "answer", q.answer)
        extra = _AROUND_SIGN[lang] if s.sign_at(t) is not None else ""
        return OracleLine(tick_s, scene, "answer", _AROUND[lang].format(extra))

    def _route(self, tick_s: float, scene: float | None) -> OracleLine | None:
        for step in dict.fromkeys(self._m.routes_seen):
            if step not in self._m.route_said:
                self._m.route_said.add(step)
                return OracleLine(tick_s, scene, "route", _ROUTE[self.language].format(step))
        return None

    @property
    def codes_seen(self) -> list[str]:
        """Every barcode text that reached its turns, in order, once each."""
        return list(dict.fromkeys(self._m.codes_seen))
