"""How one session's speech sounds: the session's voice, its mode's, and the steps the
user asked for ("louder", "quieter").

Three things decide how an utterance is rendered, and they change at different times:
the session's ``VoiceOptions`` (language, pace, volume: from SessionStart and SetVolume),
the mode's voice (modes.toml ``voice``: a style and a pace, on each mode change), and the
level steps (by voice). The styled chain (``StyledTTS``) turns the result into levels;
this only keeps the three apart, so a mode change never forgets a "louder", and says how
far the style lets the level go. The session object keeps it, so a resumed session
sounds as it did.
"""

from __future__ import annotations

from dataclasses import replace

from server.events import SpeechKind
from server.voice.tts.base import TTSBackend, VoiceOptions

__all__ = ["SessionVoice"]


class SessionVoice:
    def __init__(self, tts: TTSBackend, options: VoiceOptions) -> None:
        self._tts = tts
        self.options = options  # the session's: language, pace, volume, level steps
        self.mode_style = ""  # the mode's style name ("" = the server's [voice] style)
        self.mode_rate = 1.0  # multiplies the session's pace

    @property
    def level_steps(self) -> int:
        return self.options.level_steps

    def set_volume(self, volume: float) -> None:
        self.options = replace(self.options, volume=min(max(volume, 0.0), 1.0))

    def use_mode(self, style: str = "", rate: float = 1.0) -> None:
        """The mode's voice from now on. The level steps stay, within what its style
        allows (a louder step the new style cannot take is dropped)."""
        self.mode_style, self.mode_rate = style, rate
        self.options = self.options.louder(0, self._bounds())

    def change_level(self, steps: int) -> int:
        """``steps`` "louder" (negative: "quieter"): narration and alerts move together,
        as far as the style allows. Returns the steps taken, 0 at the bound."""
        before = self.options.level_steps
        self.options = self.options.louder(steps, self._bounds())
        return self.options.level_steps - before

    def for_kind(self, kind: SpeechKind) -> VoiceOptions:
        """What an utterance of ``kind`` is rendered with now."""
        return replace(
            self.options,
            kind=kind,
            style=self.mode_style or self.options.style,
            rate=self.options.rate * self.mode_rate,
        )

    def _bounds(self) -> tuple[int, int]:
        return self._tts.level_range(self.for_kind(SpeechKind.NARRATION))
