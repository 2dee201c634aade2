"""Config names → TTS backend constructors, for the composition root (``server.app``).

Each entry takes the process settings (anything with a ``voice`` section holding
``piper_voice``) and returns a started backend, or raises ``TTSError`` saying why it
cannot start (missing binary, missing voice file). Imports are lazy so that a chain
without, say, edge never imports aiohttp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.voice.tts.base import TTSBackend

__all__ = ["TTS_BACKENDS"]


def _edge(settings: Any) -> TTSBackend:
    from server.voice.tts.edge import EdgeTTS

    return EdgeTTS()


def _piper(settings: Any) -> TTSBackend:
    from server.voice.tts.piper import PiperTTS

    return PiperTTS(getattr(settings.voice, "piper_voice", "") or None)


def _espeak(settings: Any) -> TTSBackend:
    from server.voice.tts.espeak import EspeakTTS

    return EspeakTTS()


TTS_BACKENDS: dict[str, Callable[[Any], TTSBackend]] = {
    "edge": _edge,
    "piper": _piper,
    "espeak": _espeak,
}
