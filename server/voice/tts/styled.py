"""A TTS backend that renders another's speech in a voice style (quiet or normal).

``StyledTTS(chain, style)`` wraps the whole chain (a backend made of a backend): for
each utterance it moves the style by ``options.level_steps`` ("louder"/"quieter": both
levels together, as far as ``level_range`` allows), picks the profile for
``options.kind`` (alerts louder than the rest), moves it by the session's volume, asks
the chain for that pace and, where the profile says so, a whispering voice, at full
gain; then it renders every chunk to the profile's active speech level through the
speech-band compressor and limiter (``LevelRenderer``, one per utterance, so the state
carries across its clauses). That work runs in this wrapper's thread, never on the loop.

The chain still decides which voice speaks and announces switches (``subscribe`` goes
through), so fallback behaviour is the chain's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import replace

from server.voice.loudness import LevelRenderer
from server.voice.profile import STYLES, VoiceProfile, VoiceStyle, volume_offset_db
from server.voice.tts.base import PcmChunk, SwitchCallback, TTSBackend, VoiceOptions

__all__ = ["StyledTTS"]


class StyledTTS(TTSBackend):
    def __init__(
        self,
        inner: TTSBackend,
        style: VoiceStyle,
        *,
        styles: Mapping[str, VoiceStyle] = STYLES,
        reference_volume: float = 0.7,
        executor: Executor | None = None,
    ) -> None:
        """``style``: the server's; ``styles``: those a session may name instead
        (``VoiceOptions.style``); ``reference_volume``: ``[voice] volume``, the session
        volume at which the style's levels hold exactly; ``executor``: the thread the
        rendering runs in (None: its own)."""
        self.inner = inner
        self.style = style
        self.styles = {**styles, style.name: style}
        self.reference_volume = reference_volume
        super().__init__(replace(inner.capabilities, blocking=False), executor)

    def style_for(self, options: VoiceOptions) -> VoiceStyle:
        """The session's style (``options.style``; unknown or "": the server's)."""
        return self.styles.get(options.style, self.style) if options.style else self.style

    def level_range(self, options: VoiceOptions) -> tuple[int, int]:
        return self.style_for(options).step_range()

    def plan(self, options: VoiceOptions) -> tuple[VoiceOptions, VoiceProfile, float]:
        """What the chain is asked for, the profile, and the target level (dBFS)."""
        style = self.style_for(options).moved(options.level_steps)  # the alerts' gap kept
        profile = style.for_kind(options.kind)
        target = profile.target_level_db + volume_offset_db(options.volume, self.reference_volume)
        # Full gain from the engine: the renderer sets the level, from clean samples.
        asked = replace(
            options, rate=options.rate * profile.rate, volume=1.0, whisper=profile.whisper
        )
        return asked, profile, target

    async def stream(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        asked, profile, target = self.plan(options)
        renderer = LevelRenderer(target, compress=profile.compress)
        loop = asyncio.get_running_loop()
        async with contextlib.aclosing(self.inner.stream(text, asked)) as chunks:
            async for chunk in chunks:
                pcm = await loop.run_in_executor(
                    self._executor, renderer.process, chunk.pcm, chunk.sample_rate
                )
                yield PcmChunk(pcm, chunk.sample_rate, chunk.text)

    def subscribe(self, callback: SwitchCallback) -> Callable[[], None]:
        return self.inner.subscribe(callback)

    def close(self) -> None:
        self.inner.close()
        super().close()

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            super().close()

    def describe(self) -> str:
        return f"{self.inner.describe()}; {self.style.describe()}"
