"""Voice activity detection with start/end hysteresis.

Each 20 ms frame is classified voiced or not (WebRTC's GMM VAD, ~3 µs a frame,
behind a level gate so hiss is never speech). Speech *starts* only after
``min_speech_ms`` of voiced frames with no gap longer than ``max_gap_ms`` — a cough
or an "mm-hm" must not cut Murmur off — and *ends* after ``hangover_ms`` of
silence, so a breath between words does not split an utterance. With
``confirm_ms`` set, a ``SpeechConfirmed`` follows once that much of the speech has
been voiced: more proof, for when a start alone is not enough (see the listener).

The detector is pure: time is the count of samples fed, nothing sleeps or reads a
clock, and the frame classifier can be injected, so tests drive it exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SpeechConfirmed",
    "SpeechEnd",
    "SpeechStart",
    "VADEvent",
    "VADOptions",
    "VoiceActivityDetector",
]

Classifier = Callable[[np.ndarray], bool]  # one int16 frame → voiced?


@dataclass(frozen=True, slots=True)
class VADOptions:
    sample_rate: int = 16000  # WebRTC VAD: 8000, 16000, 32000 or 48000
    frame_ms: int = 20  # 10, 20 or 30
    aggressiveness: int = 2  # WebRTC mode 0 (lenient) .. 3 (strict)
    min_speech_ms: int = 300  # voiced audio before "started" (barge-in)
    max_gap_ms: int = 160  # a pause this short does not restart the onset count
    hangover_ms: int = 600  # silence before "ended"
    min_level_dbfs: float = -50.0  # quieter frames are never speech
    confirm_ms: int = 0  # voiced audio in one speech before SpeechConfirmed; 0 = never

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * self.frame_ms // 1000


@dataclass(frozen=True, slots=True)
class SpeechStart:
    onset_sample: int  # where the speech began
    detected_sample: int  # where enough of it had arrived to say so


@dataclass(frozen=True, slots=True)
class SpeechConfirmed:
    onset_sample: int  # where the speech began (as in its SpeechStart)
    detected_sample: int  # where confirm_ms of it had been voiced


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    end_sample: int  # just after the last voiced frame
    detected_sample: int  # after the hang-over silence


VADEvent = SpeechStart | SpeechConfirmed | SpeechEnd


def webrtc_classifier(options: VADOptions) -> Classifier:
    import webrtcvad

    vad = webrtcvad.Vad(options.aggressiveness)
    rate = options.sample_rate
    return lambda frame: bool(vad.is_speech(frame.astype("<i2").tobytes(), rate))


class VoiceActivityDetector:
    def __init__(
        self, options: VADOptions | None = None, classifier: Classifier | None = None
    ) -> None:
        self.options = options or VADOptions()
        self._classify = classifier or webrtc_classifier(self.options)
        self._frame = self.options.frame_samples
        # Level gate threshold as a mean square on int16 samples.
        self._min_power = (32768.0 * 10 ** (self.options.min_level_dbfs / 20)) ** 2
        self._pending = np.zeros(0, dtype=np.int16)
        self.samples = 0  # samples classified so far: the detector's clock
        self.speaking = False
        self.voiced = False  # the last frame was voiced
        self._onset: int | None = None  # the candidate's onset, then the speech's
        self._voiced = 0  # voiced samples since the onset
        self._confirmed = False
        self._gap = 0  # unvoiced samples in a row
        self._last_voiced_end = 0

    def feed(self, pcm: np.ndarray) -> list[VADEvent]:
        """Classify whole frames of ``pcm`` (any length; the remainder waits)."""
        buf = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        n = buf.size // self._frame
        events = []
        for i in range(n):
            event = self.process(buf[i * self._frame : (i + 1) * self._frame])
            if event is not None:
                events.append(event)
        self._pending = buf[n * self._frame :].astype(np.int16, copy=True)
        return events

    def process(self, frame: np.ndarray) -> VADEvent | None:
        """One frame of exactly ``options.frame_samples`` samples."""
        start = self.samples
        self.samples += frame.size
        self.voiced = voiced = self._is_voiced(frame)
        if not self.speaking:
            return self._while_quiet(voiced, start)
        if voiced:
            self._gap = 0
            self._last_voiced_end = self.samples
            self._voiced += frame.size
            return self._maybe_confirm()
        self._gap += frame.size
        if self._gap >= self._ms(self.options.hangover_ms):
            self.speaking = False
            self._reset_candidate()
            return SpeechEnd(end_sample=self._last_voiced_end, detected_sample=self.samples)
        return None

    def _while_quiet(self, voiced: bool, frame_start: int) -> SpeechStart | None:
        if voiced:
            if self._onset is None:
                self._onset = frame_start
            self._voiced += self.samples - frame_start
            self._gap = 0
            if self._voiced >= self._ms(self.options.min_speech_ms):
                self.speaking = True
                self._last_voiced_end = self.samples
                return SpeechStart(onset_sample=self._onset, detected_sample=self.samples)
        elif self._onset is not None:
            self._gap += self.samples - frame_start
            if self._gap > self._ms(self.options.max_gap_ms):
                self._reset_candidate()
        return None

    def _maybe_confirm(self) -> SpeechConfirmed | None:
        confirm = self._ms(self.options.confirm_ms)
        if self._confirmed or confirm <= 0 or self._voiced < confirm or self._onset is None:
            return None
        self._confirmed = True
        return SpeechConfirmed(onset_sample=self._onset, detected_sample=self.samples)

    def _is_voiced(self, frame: np.ndarray) -> bool:
        power = float(np.mean(np.square(frame, dtype=np.float64))) if frame.size else 0.0
        return power >= self._min_power and self._classify(frame)

    def _reset_candidate(self) -> None:
        self._onset = None
        self._voiced = 0
        self._gap = 0
        self._confirmed = False

    def _ms(self, ms: int) -> int:
        return self.options.sample_rate * ms // 1000

    def reset(self) -> None:
        """Forget any speech in progress (the clock keeps counting)."""
        self.speaking = False
        self._reset_candidate()
        self._pending = np.zeros(0, dtype=np.int16)
