"""Modes as data: ``modes.toml`` (shipped beside this file) and a user's file of the
same shape, read and checked once, at start.

Every problem is an error that names the file, the table and the key, so a typo in
a user's modes stops the server with one line to fix rather than a mode that quietly
does nothing. A user's ``[modes.NAME]`` overrides the keys it gives of a shipped mode
(per-language tables merge by language); a new NAME copies its ``base`` (a shipped
mode; default "general"), reports as that mode on the wire, and needs names of its
own so that it can be asked for by voice.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TypeVar

from server.events import Mode
from server.modes.emergency import EmergencyWords, emergency_table, emergency_words, merge_emergency
from server.modes.lexicons import UrgencyRules
from server.modes.schema import (
    COMMAND_KEYS,
    REQUIRED_COMMANDS,
    REQUIRED_MODE,
    ModeDataError,
    Raw,
    base_language,
    checked,
    lexicon_table,
    mode_table,
    table,
)

__all__ = [
    "CaptureRules",
    "CommandWords",
    "LocationRules",
    "ModeData",
    "ModeDataError",
    "ModeProfile",
    "base_language",
    "load",
]

ANY_HAZARD_PRESENT = UrgencyRules("present")  # a hazard present unprompted is an alert
DEFAULT_BASE = "general"
_LOCATION_KEYS = (
    "location_moved_m",
    "location_heading_deg",
    "location_accuracy_m",
    "location_stale_s",
)
_CAPTURE_KEYS = ("capture_static_s", "capture_static_fps", "capture_unchanged_s")
T = TypeVar("T")


def _localized(by_language: Mapping[str, T], language: str, default: T) -> T:
    """The entry for ``language``'s base, else English, else ``default``."""
    found = by_language.get(base_language(language))
    return found if found is not None else by_language.get("en", default)


@dataclass(frozen=True, slots=True)
class LocationRules:
    """When the phone's fix enters a turn again (server/engine/location.py): it moved,
    turned or changed accuracy by more than these, or is older than ``stale_s``."""

    moved_m: float = 10.0  # haversine distance from the fix last said
    heading_deg: float = 30.0
    accuracy_m: float = 20.0  # change of the accuracy radius
    stale_s: float = 30.0  # an older fix is said to be stale, once


@dataclass(frozen=True, slots=True)
class CaptureRules:
    """When the bridge is told to capture less (server/engine/scene.py): after the view
    stayed still, with nobody speaking or asking, for ``static_s``, at ``static_fps``
    (never above the normal rate: a mode whose ``static_fps`` reaches it never lowers).
    A fresh frame showing the view the model last saw as an image is said in text for
    up to ``unchanged_s`` since that image (0: every frame is shown)."""

    static_s: float = 10.0
    static_fps: float = 0.5
    unchanged_s: float = 5.0


@dataclass(frozen=True, slots=True)
class CueRules:
    """The earcon before each kind of speech (a ``CueKind`` value, or "" for none). An
    alert always has the hazard cue — the one thing a cue must mean — at the mode's
    ``hazard_intensity`` (0..1, how loud the bridge renders it)."""

    answer: str = ""
    narration: str = ""
    note: str = "thinking"  # "Let me check." before a background question
    result: str = "done"  # a background answer
    hazard_intensity: float = 0.8


@dataclass(frozen=True, slots=True)
class ModeProfile:
    """One mode, as the engine reads it. Per-language tables fall back to English."""

    mode: Mode  # what it reports as on the wire (a user's new mode: its base's)
    instruction: str  # the standing instruction, in force from the first second
    max_words: int  # brevity budget for spontaneous speech
    # When the model's unprompted line is an alert (server/engine/urgency.py). Every
    # alert, in every mode, gets a hazard cue first and cuts lower-priority speech.
    urgency: UrgencyRules = ANY_HAZARD_PRESENT
    repeat_after_s: float = 8.0  # the same line is not repeated sooner
    location_in_context: bool = False  # the phone's location enters the mode's turns
    location: LocationRules = LocationRules()  # when it enters again
    capture: CaptureRules = CaptureRules()  # when the bridge may capture less
    # How much </response> must beat </silence> by (log-prob); None: the server's.
    speak_margin: float | None = None
    alerts_cut_results: bool = False  # an alert cuts a delegated answer (else waits after it)
    barcodes: bool = False  # frames and stills are scanned for barcodes (server/vision)
    # Without device motion from the bridge, a fall is guessed from frames (engine/fall.py).
    fall_from_frames: bool = False
    # Its voice (modes.toml ``voice``): a style name ("" = the server's [voice] style) and
    # a pace that multiplies the session's.
    voice_style: str = ""
    voice_rate: float = 1.0
    cues: CueRules = CueRules()
    name: str = ""  # its name in the data ("" = the wire mode's)
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    stills: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    announcements: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.mode.value)

    def names_in(self, language: str) -> tuple[str, ...]:
        """What a user calls it: "switch to <name> mode"."""
        return _localized(self.names, language, ())

    def stills_for(self, language: str) -> tuple[str, ...]:
        """Words in a query that warrant a full-resolution photo."""
        return _localized(self.stills, language, ())

    def announcement_for(self, language: str) -> str:
        """What is said when the mode starts."""
        return _localized(self.announcements, language, "")

    @property
    def spoken_names(self) -> tuple[str, ...]:
        return self.names_in("en")

    @property
    def request_stills_for(self) -> tuple[str, ...]:
        return self.stills_for("en")

    @property
    def announcement(self) -> str:
        return self.announcement_for("en")


@dataclass(frozen=True, slots=True)
class CommandWords:
    """One language's command phrases (``[commands.LANG]``; see modes.toml)."""

    language: str
    quiet: tuple[str, ...]
    never_mind: tuple[str, ...]
    describe: tuple[str, ...]
    switch: tuple[str, ...]
    mode_word: tuple[str, ...]
    mode_phrase: str
    filler: tuple[str, ...] = ()
    articles: tuple[str, ...] = ()
    no_switch: tuple[str, ...] = ()
    where_am_i: tuple[str, ...] = ()  # anywhere in a question: the location enters that turn
    louder: tuple[str, ...] = ()  # whole utterances: the session's level one step up
    quieter: tuple[str, ...] = ()
    # What is said at the new level: louder, quieter; loudest, quietest at the bound.
    level_said: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class ModeData:
    modes: Mapping[str, ModeProfile]  # by name: the shipped four, then the user's
    commands: Mapping[str, CommandWords]  # by base language
    sources: tuple[str, ...]  # the files read, for the log
    emergency: Mapping[str, EmergencyWords] = field(default_factory=dict)  # by base language
    # Things added to the hazard lexicons ([lexicon.LANG]): language → category → phrases
    lexicon: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    def wire(self) -> dict[Mode, ModeProfile]:
        """The profile each wire mode selects (a user's override included)."""
        return {m: self.modes[m.value] for m in Mode}

    def words(self, language: str) -> CommandWords:
        return _localized(self.commands, language, self.commands["en"])

    def emergency_words(self, language: str) -> EmergencyWords:
        return _localized(self.emergency, language, self.emergency["en"])


Parsed = tuple[
    dict[str, Raw], dict[str, Raw], dict[str, Raw], dict[str, dict[str, tuple[str, ...]]]
]


def _parse(text: str, source: str) -> Parsed:
    """The file's modes, commands, emergency words and lexicon additions, each key
    checked; nothing merged yet."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ModeDataError(f"{source}: not valid TOML: {e}") from None
    unknown = set(doc) - {"modes", "commands", "emergency", "lexicon"}
    if unknown:
        raise ModeDataError(
            f"{source}: unknown table(s) {', '.join(sorted(unknown))}; "
            "known: commands, emergency, lexicon, modes"
        )
    modes = {
        name: mode_table(raw, f"{source}: [modes.{name}]")
        for name, raw in table(doc.get("modes", {}), f"{source}: [modes]").items()
    }
    commands = {}
    for lang, raw in table(doc.get("commands", {}), f"{source}: [commands]").items():
        where = f"{source}: [commands.{lang}]"
        commands[base_language(lang)] = {
            k: checked(v, k, COMMAND_KEYS, where) for k, v in table(raw, where).items()
        }
    things = lexicon_table(doc.get("lexicon", {}), source)
    return modes, commands, emergency_table(doc.get("emergency", {}), source), things


def _merge(under: Raw, over: Raw) -> Raw:
    """``over``'s keys win; tables (urgency, per-language ones) merge key by key."""
    out = dict(under)
    for key, value in over.items():
        out[key] = {**under.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def _overlay(modes: dict[str, Raw], user: dict[str, Raw], source: str) -> dict[str, Raw]:
    out = dict(modes)
    for name, raw in user.items():
        where = f"{source}: [modes.{name}]"
        if name in modes:
            if "base" in raw:
                raise ModeDataError(f"{where} base: only a new mode has a base")
            out[name] = _merge(modes[name], raw)
            continue
        base = raw.get("base", DEFAULT_BASE)
        if base not in {m.value for m in Mode} or base not in modes:
            wire = ", ".join(m.value for m in Mode)
            raise ModeDataError(f"{where} base: expected one of {wire}, got {base!r}")
        if not raw.get("names"):
            raise ModeDataError(
                f"{where}: missing names (a new mode needs names.LANG to be asked for by voice)"
            )
        inherited = {k: v for k, v in modes[base].items() if k not in ("names", "announce")}
        out[name] = {**_merge(inherited, raw), "base": base}
    return out


def _profile(name: str, raw: Raw, commands: Mapping[str, Raw], where: str) -> ModeProfile:
    missing = [k for k in REQUIRED_MODE if k not in raw]
    if "unprompted" not in raw.get("urgency", {"unprompted": 0}):
        missing.append("urgency.unprompted")
    if not raw.get("names") or ("base" not in raw and "en" not in raw["names"]):
        missing.append("names.en")  # a shipped mode is named in English at least
    if missing:
        raise ModeDataError(f"{where}: missing {', '.join(missing)}")
    names: dict[str, tuple[str, ...]] = raw["names"]
    announce = dict(raw.get("announce", {}))
    for lang, said in names.items():  # a user's mode is announced as it is named
        phrase = commands.get(lang, commands["en"])["mode_phrase"]
        named = phrase.format(name=said[0])
        announce.setdefault(lang, f"{named[:1].upper()}{named[1:]}.")
    return ModeProfile(
        mode=Mode(raw.get("base", name)),
        instruction=raw["instruction"],
        max_words=raw["max_words"],
        urgency=UrgencyRules(**raw["urgency"]),
        repeat_after_s=raw["repeat_after_s"],
        location_in_context=raw["location"],
        location=LocationRules(
            **{k.removeprefix("location_"): v for k, v in raw.items() if k in _LOCATION_KEYS}
        ),
        capture=CaptureRules(
            **{k.removeprefix("capture_"): v for k, v in raw.items() if k in _CAPTURE_KEYS}
        ),
        speak_margin=raw.get("speak_margin"),
        alerts_cut_results=raw["alerts_cut_results"],
        barcodes=raw.get("barcodes", False),
        fall_from_frames=raw.get("fall_from_frames", False),
        voice_style=raw.get("voice", {}).get("style", ""),
        voice_rate=raw.get("voice", {}).get("rate", 1.0),
        cues=CueRules(**raw.get("cues", {})),
        name=name,
        names=names,
        stills=dict(raw.get("stills", {})),
        announcements=announce,
    )


def _unique_names(profiles: Mapping[str, ModeProfile], where: Mapping[str, str]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for p in profiles.values():
        for lang, names in p.names.items():
            for n in names:
                other = seen.setdefault((lang, n.casefold()), p.name)
                if other != p.name:
                    raise ModeDataError(
                        f"{where[p.name]} names.{lang}: {n!r} already names mode {other!r}"
                    )


def _shipped() -> tuple[str, str]:
    file = resources.files("server.modes").joinpath("modes.toml")
    return str(file), file.read_text(encoding="utf-8")


def _read(file: str | Path) -> tuple[str, str]:
    path = Path(file).expanduser()
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as e:
        raise ModeDataError(f"{path}: cannot read the modes file ({e.strerror})") from None


def load(user_file: str | Path | None = None, *, shipped: str | Path | None = None) -> ModeData:
    """The shipped modes (``shipped``: another file in their place, for tests), with
    ``user_file``'s over them; raises ``ModeDataError``."""
    source, text = _read(shipped) if shipped else _shipped()
    found, commands, emergency, things = _parse(text, source)
    wire = {m.value for m in Mode}
    missing = [m.value for m in Mode if m.value not in found]
    if missing:
        raise ModeDataError(f"{source}: missing [modes.{missing[0]}] (every wire mode is needed)")
    extra = {k: v for k, v in found.items() if k not in wire}
    modes = _overlay({k: v for k, v in found.items() if k in wire}, extra, source)
    origin = dict.fromkeys(modes, source)
    sources = [source]
    said = dict.fromkeys(commands, source)  # where each language's commands begin
    began = dict.fromkeys(emergency, source)  # … and its emergency words
    if user_file:
        path, text = _read(user_file)
        user_modes, user_commands, user_emergency, user_things = _parse(text, path)
        for lang, more in user_things.items():
            things[base_language(lang)] = {**things.get(base_language(lang), {}), **more}
        began.update({lang: path for lang in user_emergency if lang not in emergency})
        emergency = merge_emergency(emergency, user_emergency)
        modes = _overlay(modes, user_modes, str(path))
        origin.update(dict.fromkeys(user_modes, path))
        for lang, raw in user_commands.items():
            if lang not in commands:
                said[lang] = path
            commands[lang] = {**commands.get(lang, {}), **raw}
        sources.append(path)
    for lang, raw in commands.items():
        missing = [k for k in REQUIRED_COMMANDS if k not in raw]
        if missing:
            raise ModeDataError(f"{said[lang]}: [commands.{lang}] missing {', '.join(missing)}")
    if "en" not in commands:
        raise ModeDataError(f"{source}: missing [commands.en]")
    labels = {name: f"{origin[name]}: [modes.{name}]" for name in modes}
    profiles = {name: _profile(name, raw, commands, labels[name]) for name, raw in modes.items()}
    _unique_names(profiles, labels)
    words = {lang: CommandWords(language=lang, **raw) for lang, raw in commands.items()}
    lexicon = {base_language(lang): more for lang, more in things.items()}
    return ModeData(profiles, words, tuple(sources), emergency_words(emergency, began), lexicon)
