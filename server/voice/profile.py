"""Voice styles: how loud, how fast and in which voice each kind of speech is rendered.

A ``VoiceStyle`` ("quiet" or "normal") holds one ``VoiceProfile`` for speech (narration,
answers, delegation notes and results, system lines) and one for alerts. Levels are
P.56 active speech levels in dBFS (``server.voice.loudness``), reached by the
speech-band compressor and make-up gain, whatever level the backend produced.

The defaults, and why:

- normal: speech at -20 dBFS, about where Piper and espeak-ng render by themselves
  (20 dB of headroom for peaks); alerts at -16, a step louder.
- quiet (the card asks for whispered guidance): speech at -32 dBFS, 12 dB below normal
  (a clear step, and 2 dB beyond the 10 dB the acceptance asks, so rounding and the
  limiter never eat it), compressed so soft consonants survive, 8 % slower. Alerts
  stay at -20, the normal speaking level: 12 dB above quiet narration, because a
  hazard must be heard in the street even when the wearer asked for quiet.
- whisper is off by default: espeak-ng's whisper variant is a real whisper, but an
  independent recogniser gets markedly fewer of its words (about 80 %, against about
  94 % for its quiet narration in the normal voice; benchmarks/bench_whisper_voice.py
  prints it); Piper has no whisper voice; edge-tts cannot ask for a speaking style (it
  sends prosody only).
- Neither the level nor the compressor costs words: the recognisers get as many of the
  quiet renderings' words as of the normal ones, for every backend.

A mode may name its style (modes.toml ``voice``; blind mode: quiet); the session's
speaker renders each utterance in it (``server/session/voice.py``).

"louder"/"quieter" move both levels of the style together by ``STEP_DB`` a step
(``VoiceStyle.moved``), so alerts keep their gap above narration; a style goes only as
many steps as keep both within ``MIN_LEVEL_DB``..``MAX_LEVEL_DB`` (``step_range``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from server.events import SpeechKind

__all__ = [
    "MAX_LEVEL_DB",
    "MAX_STEPS",
    "MIN_LEVEL_DB",
    "NORMAL",
    "QUIET",
    "STEP_DB",
    "STYLES",
    "VoiceProfile",
    "VoiceStyle",
    "adjust",
    "configured",
    "volume_offset_db",
]

STEP_DB = 3.0  # one "louder" or "quieter"
MAX_STEPS = 4  # at most ±12 dB from the configured levels
# Louder than -12 dBFS active, compressed speech's peaks reach the limiter's ceiling;
# below -44 it is lost under any street's noise.
MIN_LEVEL_DB = -44.0
MAX_LEVEL_DB = -12.0


@dataclass(frozen=True, slots=True)
class VoiceProfile:
    target_level_db: float  # P.56 active speech level, dBFS
    compress: bool = True  # speech-band compressor (off: a plain gain and the limiter)
    rate: float = 1.0  # multiplies the session's pace
    whisper: bool = False  # a whispering voice, where the backend has one


@dataclass(frozen=True, slots=True)
class VoiceStyle:
    name: str
    speech: VoiceProfile  # narration, answers, delegation notes and results, system
    alert: VoiceProfile

    def for_kind(self, kind: SpeechKind) -> VoiceProfile:
        return self.alert if kind == SpeechKind.ALERT else self.speech

    def step_range(self) -> tuple[int, int]:
        """How many "quieter" (negative) and "louder" steps keep both levels in bounds."""
        low = min(self.speech.target_level_db, self.alert.target_level_db)
        high = max(self.speech.target_level_db, self.alert.target_level_db)
        down = math.floor((low - MIN_LEVEL_DB) / STEP_DB + 1e-9)
        up = math.floor((MAX_LEVEL_DB - high) / STEP_DB + 1e-9)
        return -min(max(down, 0), MAX_STEPS), min(max(up, 0), MAX_STEPS)

    def moved(self, steps: int) -> VoiceStyle:
        """Both levels ``steps`` × 3 dB louder (negative: quieter), the gap between them
        kept: ``steps`` is first bounded by ``step_range``."""
        low, high = self.step_range()
        steps = min(max(steps, low), high)
        if steps == 0:
            return self
        delta = STEP_DB * steps
        return replace(
            self,
            speech=replace(self.speech, target_level_db=self.speech.target_level_db + delta),
            alert=replace(self.alert, target_level_db=self.alert.target_level_db + delta),
        )

    def describe(self) -> str:
        whisper = ", whispered" if self.speech.whisper else ""
        return (
            f"{self.name} voice (speech {self.speech.target_level_db:g} dBFS{whisper}, "
            f"alerts {self.alert.target_level_db:g} dBFS)"
        )


NORMAL = VoiceStyle("normal", speech=VoiceProfile(-20.0), alert=VoiceProfile(-16.0))
QUIET = VoiceStyle("quiet", speech=VoiceProfile(-32.0, rate=0.92), alert=VoiceProfile(-20.0))
STYLES = {s.name: s for s in (QUIET, NORMAL)}


def _bounded(level_db: float) -> float:
    return min(max(level_db, MIN_LEVEL_DB), MAX_LEVEL_DB)


def adjust(profile: VoiceProfile, steps: int) -> VoiceProfile:
    """``profile`` made ``steps`` × 3 dB louder (negative: quieter), within the bounds."""
    steps = min(max(steps, -MAX_STEPS), MAX_STEPS)
    return replace(profile, target_level_db=_bounded(profile.target_level_db + STEP_DB * steps))


def configured(style: VoiceStyle, speech_db: float, alert_db: float, whisper: bool) -> VoiceStyle:
    """``style`` with the levels (and whisper choice) from the settings, checked."""
    for what, level in (("speech", speech_db), ("alert", alert_db)):
        if _bounded(level) != level:
            raise ValueError(
                f"[voice] {style.name}_{what}_db = {level:g} is outside "
                f"{MIN_LEVEL_DB:g}..{MAX_LEVEL_DB:g} dBFS"
            )
    if alert_db < speech_db:
        raise ValueError(
            f"[voice] {style.name}_alert_db ({alert_db:g}) must not be below "
            f"{style.name}_speech_db ({speech_db:g}): alerts are never quieter than narration"
        )
    return replace(
        style,
        speech=replace(style.speech, target_level_db=speech_db, whisper=whisper),
        alert=replace(style.alert, target_level_db=alert_db),
    )


def volume_offset_db(volume: float, reference: float) -> float:
    """The session's volume (SessionStart, SetVolume; 0..1) as dB against the configured
    ``[voice] volume``: at the default the style's levels hold exactly. 0 = default."""
    if volume <= 0 or reference <= 0:
        return 0.0
    return min(max(20 * math.log10(volume / reference), -18.0), 6.0)
