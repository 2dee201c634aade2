"""Modes are data (DESIGN §5): a standing instruction, a brevity budget, hazard
vocabulary, cue rules and still-request rules. The engine reads them; nothing
branches on a mode's name outside this file.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.events import Mode
from server.modes.lexicons import UrgencyRules

__all__ = ["MODES", "ModeProfile", "profile"]


ANY_HAZARD_PRESENT = UrgencyRules("present")  # a hazard present unprompted is an alert


@dataclass(frozen=True, slots=True)
class ModeProfile:
    mode: Mode
    instruction: str  # the standing instruction, in force from the first second
    max_words: int  # brevity budget for spontaneous speech
    # When the model's unprompted line is an alert (server/engine/urgency.py). Every
    # alert, in every mode, gets a hazard cue first and cuts lower-priority speech.
    urgency: UrgencyRules = ANY_HAZARD_PRESENT
    repeat_after_s: float = 8.0  # the same line is not repeated sooner
    request_stills_for: tuple[str, ...] = ()  # words in a query that warrant a full photo
    location_in_context: bool = False  # the phone's location enters every tick's turn
    spoken_names: tuple[str, ...] = ()  # what a user calls it: "switch to <name> mode"

    @property
    def announcement(self) -> str:
        """What is said when the mode starts."""
        return f"{self.spoken_names[0].capitalize()} mode." if self.spoken_names else ""


MODES: dict[Mode, ModeProfile] = {
    Mode.GENERAL: ModeProfile(
        mode=Mode.GENERAL,
        instruction=(
            "Watch with me. Speak only when something is worth telling me: a hazard, "
            "something I am looking for, or an answer to my question. Keep it short."
        ),
        max_words=25,
        spoken_names=("general",),
    ),
    Mode.BLIND: ModeProfile(
        mode=Mode.BLIND,
        instruction=(
            "I am blind. Warn me at once about obstacles in my path, steps, curbs, "
            "vehicles and people approaching, using clock directions like 'bike at 2 "
            "o'clock'. Read signs that matter. Otherwise stay silent. At most 12 words."
        ),
        max_words=12,
        # A path is not known to the metre: an obstacle beside the user counts too.
        urgency=UrgencyRules("present", side_obstacles=True),
        repeat_after_s=5.0,
        request_stills_for=("read", "sign", "label", "what does"),
        spoken_names=("blind", "blind assistance"),
    ),
    Mode.NAVIGATION: ModeProfile(
        mode=Mode.NAVIGATION,
        instruction=(
            "Help me find my way. Use my location, heading and route step. Call out "
            "turns, crossings and landmarks that confirm the route. Be brief."
        ),
        max_words=15,
        location_in_context=True,
        spoken_names=("navigation",),
    ),
    Mode.SHOPPING: ModeProfile(
        mode=Mode.SHOPPING,
        instruction=(
            "Help me shop. When I hold or look at a product, tell me what it is, its "
            "price and what the label says if I ask. Stay silent otherwise."
        ),
        max_words=25,
        urgency=UrgencyRules("imminent"),  # aisles and shelves are no hazards
        request_stills_for=("read", "label", "price", "ingredients"),
        spoken_names=("shopping",),
    ),
}


def profile(mode: Mode) -> ModeProfile:
    return MODES[mode]
