"""Reading on demand and products: a session's still requests, and what the server
read in pictures by itself (a still's printed text, barcodes) on its way into the
model's turn and to background agents.

Pure decisions on the session's clock. The decoding (barcodes, OCR) runs off the
loop in the session (``server/session/vision.py``) and arrives here as results.

- A still is asked for when the user's words ask to read (the mode's ``stills``
  words; in a mode with ``barcodes`` also a comparison or price question), or when
  the model says it cannot read something (``CANNOT_READ``: once per such reply, at
  most every ``ask_again_s``, never about a still it was just shown). One request is
  on its way at a time; it answers every question asked meanwhile.
- A question that asked for a still waits for it (ticks go on without it), so it is
  answered from the still: at most ``timeout_s`` for the bridge to send it, then at
  most ``read_s`` for reading it (OCR on a small CPU takes seconds).
- The still enters the next tick in place of the newest frame, at the larger pixel
  budget (``STILL_MAX_PIXELS``), with a line saying what it is and, with OCR on, a
  line with its text. It is held here, apart from the latest-only frame slot, so a
  normal frame cannot overtake it.
- No still within ``timeout_s``: the waiting question goes on with the normal frame,
  and one ``still.timeout`` Notice says so. After that, questions no longer wait and
  no further Notice is sent (requests still go out) until the bridge sends a still.
- Barcodes: a code not seen within ``window_s`` becomes one line in the next turn;
  the codes seen within it, and the last still taken within it, go with every
  delegation. A comparison question with a code known is delegated by the engine
  (``route``), whatever the model chose.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from server.codes import Code
from server.events import Notice, ServerEvent, StillRequest
from server.modes import ModeProfile
from server.runtime.base import Action, ActionKind, Frame
from server.runtime.limits import STILL_MAX_PIXELS
from server.vision.barcodes import Barcode, BarcodeMemory, describe

__all__ = [
    "CANNOT_READ",
    "COMPARE",
    "STILL_LINE",
    "STILL_TEXT",
    "Reading",
    "ReadingOptions",
    "Seen",
    "Still",
    "cannot_read",
    "compares",
]

# The model saying it cannot read what it sees: a still may help. Whole phrases, so
# "I can't read minds" is the only kind of false alarm (a harmless still).
CANNOT_READ: Mapping[str, tuple[str, ...]] = {
    "en": (
        "can't read", "cannot read", "can not read", "unable to read", "not able to read",
        "too small to read", "too far to read", "too blurry to read", "hard to read",
        "can't make out", "cannot make out", "not legible", "illegible", "not readable",
    ),
    "de": (
        "kann ich nicht lesen", "kann es nicht lesen", "kann das nicht lesen",
        "kann ich nicht entziffern", "nicht lesbar", "unleserlich", "zu klein zum lesen",
        "schrift nicht erkennen", "text nicht erkennen",
    ),
    "es": (
        "no puedo leer", "no se puede leer", "no consigo leer", "no logro leer",
        "no alcanzo a leer", "no se lee", "ilegible", "demasiado pequeño para leer",
    ),
}  # fmt: skip

# Comparison and price questions: in a mode with barcodes they go to an agent with
# the codes and the still (an agent can look a product up; the model cannot).
COMPARE: Mapping[str, tuple[str, ...]] = {
    "en": (
        "cheaper", "cheapest", "price", "prices", "compare", "comparison", "reviews",
        "review", "ratings", "better deal", "cost elsewhere",
    ),
    "de": (
        "billiger", "günstiger", "preis", "preise", "vergleich", "vergleiche",
        "vergleichen", "bewertungen", "bewertung", "rezensionen",
    ),
    "es": (
        "más barato", "mas barato", "barato", "precio", "precios", "comparar", "compara",
        "comparación", "reseñas", "opiniones", "valoraciones",
    ),
}  # fmt: skip

# The lines a still brings into its turn. The text is quoted: it is what a sign says,
# data for the model, never an instruction to it.
STILL_LINE = "[Still] This picture is a full-resolution photo the glasses took for reading."
STILL_TEXT = "[Text in the still (OCR)]"

_WORD = re.compile(r"[\w']+")


def _norm(text: str) -> str:
    """Lower-case words with single spaces around them: phrases match whole words."""
    text = text.replace("’", "'").replace("‘", "'").lower()
    return f" {' '.join(_WORD.findall(text))} "


def _base(language: str) -> str:
    return language.strip().lower().replace("_", "-").split("-", 1)[0] or "en"


def _says(table: Mapping[str, tuple[str, ...]], text: str, language: str) -> bool:
    low = _norm(text)
    phrases = {*table.get(_base(language), ()), *table["en"]}
    return any(f" {' '.join(_WORD.findall(p))} " in low for p in phrases)


def cannot_read(text: str, language: str = "en") -> bool:
    """The model's reply says it cannot read something (its language, or English)."""
    return _says(CANNOT_READ, text, language)


def compares(text: str, language: str = "en") -> bool:
    """A comparison or price question ("is this cheaper elsewhere?")."""
    return _says(COMPARE, text, language)


@dataclass(frozen=True, slots=True)
class Still:
    """A full-resolution still, decoded, with what the server read in it."""

    frame: Frame
    jpeg: bytes
    text: str = ""  # OCR's ``reading_text``; "" without OCR or when nothing was legible
    ocr_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ReadingOptions:
    timeout_s: float = 3.0  # [vision] still_timeout_s
    read_s: float = 8.0  # a still that came is waited for this long while it is read
    ask_again_s: float = 10.0  # the model's "I can't read it" asks at most this often
    window_s: float = 30.0  # a code seen again within this is not new; agents get these


@dataclass(frozen=True, slots=True)
class Seen:
    """What one tick shows the model."""

    frame: Frame | None
    max_pixels: int | None = None  # a still's budget; None: the runtime's own
    context: tuple[str, ...] = ()
    hold: bool = False  # the question waits for its still: it is not in this tick


class Reading:
    """One session's stills and codes (the module docstring has the rules)."""

    def __init__(
        self,
        language: str = "en",
        options: ReadingOptions = ReadingOptions(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.language = language
        self.options = options
        self._clock = clock
        self._asked_at: float | None = None  # a still is on its way since (or being read)
        self._answered = False  # the bridge sent it: it is being read
        self._for_query = False  # a question waits for it
        self._unanswered = False  # a request timed out, and no still came since
        self._still: Still | None = None  # for the next tick
        self._last_still: tuple[Still, float] | None = None  # for agents
        self._showed_still = False  # the last tick showed a still
        self._model_asked_at = -float("inf")
        self._memory = BarcodeMemory(options.window_s)
        self._new: list[Barcode] = []
        self._codes: dict[str, float] = {}  # text -> last seen
        self._out: list[ServerEvent] = []  # for ``after``: a timeout's Notice

    # ------------------------------------------------------------------ asking

    def for_query(self, query: str, profile: ModeProfile) -> StillRequest | None:
        """The still a user's question needs, if any (None too when one is on its way)."""
        low = _norm(query)
        word = next((w for w in profile.stills_for(self.language) if _norm(w) in low), None)
        if word is not None:
            return self._ask(f"the user asked to {word}", for_query=True)
        if profile.barcodes and compares(query, self.language):
            return self._ask("the user asked to compare a product", for_query=True)
        return None

    def for_reply(self, text: str) -> StillRequest | None:
        """The still the model's reply asks for by saying it cannot read something."""
        now = self._clock()
        if self._showed_still or now - self._model_asked_at < self.options.ask_again_s:
            return None
        if not cannot_read(text, self.language):
            return None
        self._model_asked_at = now
        return self._ask("the model could not read it", for_query=False)

    def _ask(self, reason: str, *, for_query: bool) -> StillRequest | None:
        self._for_query |= for_query and not self._unanswered
        if self._asked_at is not None:
            return None  # the still on its way answers this too
        self._asked_at, self._answered = self._clock(), False
        return StillRequest(reason=reason)

    # ------------------------------------------------------------------ arriving

    def answered(self) -> None:
        """A still came from the bridge; it is being read (``read_s`` from now)."""
        self._asked_at, self._answered, self._unanswered = self._clock(), True, False

    def add_still(self, still: Still) -> None:
        """A still, read: it is the next tick's picture."""
        self._still = still
        self._last_still = (still, self._clock())
        self._asked_at, self._answered = None, False

    def add_barcodes(self, codes: Iterable[Barcode]) -> None:
        """Codes decoded in a frame or a still."""
        now = self._clock()
        codes = list(codes)
        self._new = [*self._new, *self._memory.fresh(codes, now)][-16:]
        window = self.options.window_s
        self._codes = {k: t for k, t in self._codes.items() if now - t < window}
        self._codes.update((c.text, now) for c in codes)

    # ------------------------------------------------------------------ ticks

    def seen(self, frame: Frame | None) -> Seen:
        """What this tick shows: the still in place of ``frame`` (the newest frame, if
        fresh), its lines and the new codes; whether a question waits for its still."""
        now = self._clock()
        still, self._still = self._still, None
        timeout = self.options.timeout_s
        bound = self.options.read_s if self._answered else timeout
        if still is None and self._asked_at is not None and now - self._asked_at >= bound:
            if not (self._answered or self._unanswered):  # one Notice until a still comes
                self._unanswered = True
                notice = Notice.of(
                    Code.STILL_TIMEOUT,
                    f"the glasses sent no still within {timeout:g} s of the request; the "
                    "normal frame was used. A bridge answers a StillRequest with one "
                    "VideoFrame with high_res set ([vision] still_timeout_s sets the wait)",
                )
                self._out.append(notice)
            self._asked_at, self._answered = None, False
        hold = still is None and self._for_query and self._asked_at is not None
        self._for_query = hold
        self._showed_still = still is not None
        lines = [describe(self._new)] if self._new else []
        self._new = []
        if still is None:
            return Seen(frame, context=tuple(lines), hold=hold)
        if still.text:
            text = " / ".join(still.text.replace('"', "'").splitlines())
            lines.insert(0, f'{STILL_TEXT} "{text}"')
        return Seen(still.frame, STILL_MAX_PIXELS, (STILL_LINE, *lines))

    def after(self, reply: str) -> list[ServerEvent]:
        """What the engine sends once the tick is decided: the Notice of a still that
        did not come, and a StillRequest when the model said it cannot read something."""
        out, self._out = self._out, []
        if reply and (still := self.for_reply(reply)) is not None:
            out.append(still)
        return out

    def route(self, action: Action, query: str | None, profile: ModeProfile) -> Action:
        """``action``, or ``query`` handed to an agent by the engine's own rule: a
        comparison question, in a mode with barcodes, with a code seen within the
        window. The model's words (if any) become the delegation's note."""
        if action.kind is ActionKind.DELEGATE or not query or not profile.barcodes:
            return action
        if not (self.codes() and compares(query, self.language)):
            return action
        return replace(action, kind=ActionKind.DELEGATE, question=query)

    def codes(self) -> tuple[str, ...]:
        """The texts of the codes seen within the window, the newest last."""
        now = self._clock()
        seen = sorted((t, k) for k, t in self._codes.items() if now - t < self.options.window_s)
        return tuple(k for _, k in seen)

    def frames(self, recent: Sequence[bytes]) -> tuple[bytes, ...]:
        """Frames for an agent, oldest first: the recent ones, and the last still taken
        within the window in place of the oldest (agents look at the last three)."""
        kept = self._last_still
        if kept is None or self._clock() - kept[1] >= self.options.window_s:
            return tuple(recent)
        return (*tuple(recent)[-2:], kept[0].jpeg)
