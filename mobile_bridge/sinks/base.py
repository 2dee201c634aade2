"""What the session hands the server's output to: a speech sink and event observers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from murmur.v1 import companion_pb2 as pb

__all__ = ["EventObserver", "SpeechSink", "UtteranceAudio", "wire_name"]


def wire_name(enum: Any, value: int, prefix: str) -> str:
    """``SPEECH_KIND_ALERT`` → ``alert``; a value this bridge does not know (a newer
    server's) is ``kind 9``, never an error that would end the session."""
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return f"kind {value}"


@dataclass
class UtteranceAudio:
    """One utterance's audio as received: decoded PCM (when kept), how many samples
    came, and where it was written."""

    utterance_id: str
    sample_rate_hz: int
    pcm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    packets: int = 0
    finished: bool = False
    interrupted: bool = False
    wav_path: Path | None = None
    samples: int = 0  # received, whether or not ``pcm`` keeps them

    @property
    def duration_ms(self) -> int:
        return int(max(self.pcm.size, self.samples) * 1000 / self.sample_rate_hz)


class SpeechSink(ABC):
    """Plays the server's speech as it arrives; cut at once on ``StopSpeaking``.

    ``finish`` says what was played, which becomes the ``PlaybackReport`` the server
    uses to remember only what the wearer heard.
    """

    @abstractmethod
    def feed(self, utterance_id: str, packet: bytes) -> None:
        """One ``AudioOut`` packet of an utterance, in stream order."""

    @abstractmethod
    def finish(self, utterance_id: str, *, interrupted: bool = False) -> UtteranceAudio:
        """The utterance is over (its last packet came, or it was cut); idempotent."""

    @abstractmethod
    def finish_all(self) -> None:
        """Close every utterance still open (the stream ended): each counts as cut."""

    def cue(self, cue: pb.Cue) -> None:  # noqa: B027 (optional hook)
        """A ``Cue``: a sink the wearer hears renders it as an earcon; others ignore it."""

    @property
    def audible(self) -> bool:
        """The wearer hears what is fed here (a player); a sink that only keeps or
        writes the audio is not heard, and reports nothing heard."""
        return False

    @property
    def wants_audio(self) -> bool:
        """It uses the server's speech audio even when nobody hears it (WAVs written):
        the server is then asked for audio; without, captions only."""
        return self.audible

    def take_reports(self, send: Callable[[pb.PlaybackReport], None]) -> bool:
        """Whether this sink sends the ``PlaybackReport``s itself, through ``send``.

        A sink that plays in real time knows what was heard only later than ``finish``
        (after its last sample, or at the cut), so it keeps ``send`` and says True; by
        default the session reports at ``finish`` from what it returned.
        """
        return False

    @property
    def playing(self) -> bool:
        """Speech or an earcon is still queued or sounding (the session lingers for it)."""
        return False


class EventObserver:
    """Sees the session's traffic both ways, stamped with the clock's monotonic time.

    For logs and reports: observers only watch, so the session calls them before it
    acts on an event, and they must not block.
    """

    def received(self, event: pb.ServerEvent, at: float) -> None:
        """A server event arrived."""

    def sent(self, event: pb.ClientEvent, at: float) -> None:
        """A client event was queued for the stream."""
