"""A hazard as a line describes it, and whether two of them are the same thing: the
leaf type ``server.engine.urgency`` parses into and the policy's repeat window reads.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Hazard", "same_hazard", "side", "worth_repeating"]


@dataclass(frozen=True, slots=True)
class Hazard:
    what: str = ""  # the thing as said ("low branch", "Fahrrad"); "" for a bare "Stop!"
    key: str = ""  # canonical and language-neutral: "branch", "bicycle"
    # one of lexicons.CATEGORIES; "unnamed" for a thing the lexicon lacks; "" for a bare warning
    category: str = ""
    clock: int = 0  # 1–12: 12 ahead, 3 right, 6 behind, 9 left; 0 unknown
    direction: str = ""  # as said: "at 3 o'clock", "from your left", "in your path"
    distance_m: float | None = None
    distance: str = ""  # as said: "in two metres", "right in front of you"
    in_path: bool = False
    approaching: bool = False
    head_height: str = ""  # as said: "at head height"; "" when not
    warning: str = ""  # the model's own warning words, as said: "Watch out", "Achtung"

    def describe(self) -> str:
        where = (self.direction, self.distance, self.head_height)
        parts = (self.what or self.warning or "something", *where)
        return ", ".join(p for p in parts if p)


def same_hazard(a: Hazard, b: Hazard) -> bool:
    """The same thing (by canonical key, across wording and language), wherever it is
    now. Two lines naming nothing the lexicon knows ("Watch out!", "Watch out, the
    kettle is boiling over") are never taken for the same thing: only their words can
    say so (the policy's repeat table of what was said)."""
    return bool(a.key) and a.key == b.key


def side(clock: int) -> str:
    """A clock hour as the side it is on: "ahead", "right", "behind", "left" or ""."""
    if not clock:
        return ""
    return ("ahead", "right", "right", "right", "behind", "behind", "behind", "left", "left",
            "left", "ahead", "ahead")[clock % 12]  # fmt: skip


def worth_repeating(previous: Hazard, now: Hazard) -> bool:
    """Say ``now`` again inside the repeat window only if it is news: another thing,
    closer (by a fifth and at least half a metre, or newly within reach), or somewhere
    else (two clock hours or more, a direction where there was none, into the path)."""
    if not same_hazard(previous, now):
        return True
    d0, d1 = previous.distance_m, now.distance_m
    if d1 is not None and (d1 <= 1.5 if d0 is None else d1 <= d0 - max(0.5, d0 / 5)):
        return True
    gap = abs(previous.clock - now.clock) % 12
    if now.clock and (not previous.clock or min(gap, 12 - gap) >= 2):
        return True
    return now.in_path and not previous.in_path
