"""Microsoft Edge's online neural voices (``edge-tts``): natural, but needs the network.

First in the default chain because it sounds best; when it cannot be reached the
``FallbackTTS`` chain moves on to Piper before the user hears anything. The service
streams MP3, which is decoded to PCM in this backend's thread, never on the loop.
Whispering (``VoiceOptions.whisper``) is not asked for: edge-tts sends prosody only
(rate, volume, pitch), never the ``mstts:express-as`` style some voices have.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

import numpy as np

from server.voice.tts.base import PcmChunk, TTSBackend, TTSCapabilities, TTSError, VoiceOptions

__all__ = ["DEFAULT_VOICES", "EdgeTTS", "decode_mp3", "edge_rate", "edge_volume"]

# Calm, clear voices; a full tag ("en-GB") is looked up before its language ("en").
DEFAULT_VOICES: Mapping[str, str] = {
    "en": "en-US-AriaNeural",
    "en-us": "en-US-AriaNeural",
    "en-gb": "en-GB-SoniaNeural",
    "en-au": "en-AU-NatashaNeural",
    "de": "de-DE-KatjaNeural",
    "fr": "fr-FR-DeniseNeural",
    "es": "es-ES-ElviraNeural",
    "it": "it-IT-ElsaNeural",
    "pt": "pt-BR-FranciscaNeural",
    "nl": "nl-NL-ColetteNeural",
    "pl": "pl-PL-ZofiaNeural",
    "sv": "sv-SE-SofieNeural",
    "tr": "tr-TR-EmelNeural",
    "ru": "ru-RU-SvetlanaNeural",
    "ja": "ja-JP-NanamiNeural",
    "ko": "ko-KR-SunHiNeural",
    "zh": "zh-CN-XiaoxiaoNeural",
    "hi": "hi-IN-SwaraNeural",
    "ar": "ar-SA-ZariyahNeural",
}

# "en-US-AriaNeural", "de-DE-KatjaNeural", "en-US-EmmaMultilingualNeural" ...
_EDGE_VOICE = re.compile(r"^[a-z]{2,3}-[A-Z]{2}(-[A-Za-z]+)?-[A-Za-z]+Neural$")

OUTPUT_RATE = 24000  # edge-tts returns audio-24khz-48kbitrate-mono-mp3


def edge_rate(rate: float) -> str:
    """``VoiceOptions.rate`` (1.0 = normal pace) → edge's "+N%" / "-N%"."""
    pct = round((min(max(rate, 0.5), 2.0) - 1.0) * 100)
    return f"{pct:+d}%"


def edge_volume(volume: float) -> str:
    """``VoiceOptions.volume`` (0..1 gain) → edge's "-N%" (edge's +0% is full volume)."""
    pct = round((min(max(volume, 0.05), 1.0) - 1.0) * 100)
    return f"{pct:+d}%"


def decode_mp3(data: bytes, sample_rate: int = OUTPUT_RATE) -> np.ndarray:
    """MP3 bytes → int16 mono PCM at ``sample_rate`` (PyAV)."""
    import av

    pcm: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), mode="r", format="mp3") as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pcm.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                pcm.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as e:  # type: ignore[attr-defined]
        raise TTSError(f"edge-tts sent audio that is not valid MP3 ({e})") from e
    if not pcm:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(pcm).astype(np.int16, copy=False)


class EdgeTTS(TTSBackend):
    """Online voices; ``capabilities.blocking`` is False (network I/O is awaited)."""

    def __init__(
        self,
        voices: Mapping[str, str] | None = None,
        *,
        connect_timeout_s: int = 5,
        receive_timeout_s: int = 15,
        pitch: str = "+0Hz",
        executor: Executor | None = None,  # the app's thread for MP3 decoding; None: its own
    ) -> None:
        try:
            import edge_tts
        except ImportError as e:  # pragma: no cover - edge-tts is a dependency
            raise TTSError("edge-tts is not installed: pip install edge-tts") from e
        self._edge: Any = edge_tts
        self.voices = dict(DEFAULT_VOICES if voices is None else voices)
        self.connect_timeout_s = connect_timeout_s
        self.receive_timeout_s = receive_timeout_s
        self.pitch = pitch
        super().__init__(
            TTSCapabilities(
                name="edge",
                offline=False,
                sample_rate=OUTPUT_RATE,
                languages=tuple(sorted({k[:2] for k in self.voices})),
                blocking=False,
            ),
            executor,
        )

    def voice_for(self, options: VoiceOptions) -> str:
        """The session's voice when it names an edge voice, else the language's default."""
        if _EDGE_VOICE.match(options.voice):
            return options.voice
        tag = options.language.lower().replace("_", "-")
        voice = self.voices.get(tag) or self.voices.get(tag.split("-")[0])
        if voice is None:
            raise TTSError(
                f"edge-tts has no default voice for language {options.language!r}; "
                "set the session's voice to an edge voice name (e.g. en-US-AriaNeural)"
            )
        return voice

    async def _synthesize_async(self, clause: str, options: VoiceOptions) -> PcmChunk:
        voice = self.voice_for(options)
        communicate = self._edge.Communicate(
            clause,
            voice,
            rate=edge_rate(options.rate),
            volume=edge_volume(options.volume),
            pitch=self.pitch,
            connect_timeout=self.connect_timeout_s,
            receive_timeout=self.receive_timeout_s,
        )
        mp3 = bytearray()
        try:
            async for item in communicate.stream():
                if item.get("type") == "audio":
                    mp3 += item.get("data", b"")
        except (OSError, TimeoutError, self._edge.exceptions.EdgeTTSException) as e:
            raise TTSError(f"edge-tts could not be reached ({type(e).__name__}: {e})") from e
        except Exception as e:  # aiohttp errors that are not OSErrors
            raise TTSError(f"edge-tts failed ({type(e).__name__}: {e})") from e
        if not mp3:
            raise TTSError("edge-tts returned no audio")
        loop = asyncio.get_running_loop()
        pcm = await loop.run_in_executor(self._executor, decode_mp3, bytes(mp3))
        return PcmChunk(pcm, OUTPUT_RATE, clause)

    def describe(self) -> str:
        return f"edge ({self.voices.get('en', 'per-language voices')}, {OUTPUT_RATE} Hz, online)"
