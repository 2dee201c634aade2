"""A TTS backend made of TTS backends, tried in order of preference.

When the active backend fails *before* it produced any audio of an utterance, the
next one takes that same utterance over at once, so the user only notices a
different voice. Once audio has gone out, an utterance is never continued in
another voice: a failure after the first chunk ends the utterance with a
``TTSError`` (the next utterance starts with the next backend). A recovery probe
tries the preferred backends again every ``probe_interval_s`` and switches back
when one works.

One chain is shared by every session; switches are announced through
``on_switch(from, to, reason)`` and any callbacks added with ``subscribe``,
exactly once per switch. The probe is the chain's own task: at most one exists,
on the loop that is using the chain, and ``close``/``aclose`` cancel it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence

from server.tasks import cancel_and_wait
from server.telemetry.metrics import TTS_FALLBACKS
from server.voice.tts.base import (
    PcmChunk,
    SwitchCallback,
    TTSBackend,
    TTSCapabilities,
    TTSError,
    VoiceOptions,
)

__all__ = ["FallbackTTS", "SwitchCallback"]

log = logging.getLogger(__name__)


class FallbackTTS(TTSBackend):
    def __init__(
        self,
        backends: Sequence[TTSBackend],
        on_switch: SwitchCallback | None = None,
        *,
        first_audio_timeout_s: float = 3.0,
        probe_interval_s: float = 30.0,
        probe_text: str = "One moment.",
    ) -> None:
        if not backends:
            raise ValueError("FallbackTTS needs at least one backend")
        self.backends: tuple[TTSBackend, ...] = tuple(backends)
        self.first_audio_timeout_s = first_audio_timeout_s
        self.probe_interval_s = probe_interval_s
        self.probe_text = probe_text
        self._listeners: list[SwitchCallback] = [on_switch] if on_switch is not None else []
        self._active = 0
        self._probe: asyncio.Task[None] | None = None
        self._last_options = VoiceOptions()
        self.switches = 0
        languages = sorted({lang for b in self.backends for lang in b.capabilities.languages})
        super().__init__(
            TTSCapabilities(
                name="fallback",
                offline=any(b.capabilities.offline for b in self.backends),
                sample_rate=self.backends[0].capabilities.sample_rate,
                languages=tuple(languages),
                blocking=False,  # the members block, each in its own thread
            )
        )

    @property
    def active(self) -> str:
        """The name of the backend new utterances start with."""
        return self.backends[self._active].name

    @property
    def probing(self) -> bool:
        """True while the background probe is waiting to retry a preferred backend."""
        return self._probe is not None and not self._probe.done()

    def subscribe(self, callback: SwitchCallback) -> Callable[[], None]:
        """Hear about switches too (e.g. one per session); returns the unsubscribe call."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return unsubscribe

    async def stream(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        self._last_options = options
        errors: list[str] = []
        for i in range(self._active, len(self.backends)):
            backend = self.backends[i]
            got_audio = False
            try:
                async with contextlib.aclosing(backend.stream(text, options)) as chunks:
                    first = await self._first_chunk(chunks, last=i == len(self.backends) - 1)
                    if first is None:
                        return  # nothing to say (blank text)
                    got_audio = True
                    yield first
                    async for chunk in chunks:
                        yield chunk
                return
            except Exception as e:
                self._demote(i, str(e) or type(e).__name__)
                if got_audio:
                    # Never continue an utterance in another voice: it ends here, and
                    # the next utterance starts with the next backend.
                    raise TTSError(
                        f"{backend.name} failed mid-utterance ({e}); the rest of it was dropped"
                    ) from e
                errors.append(f"{backend.name}: {e}")
                if i + 1 < len(self.backends):  # the next one takes the utterance over
                    TTS_FALLBACKS.labels(backend.name).inc()
        raise TTSError("every TTS backend failed: " + "; ".join(errors))

    async def _first_chunk(self, chunks: AsyncIterator[PcmChunk], *, last: bool) -> PcmChunk | None:
        # A hung network voice must not hold speech up while an offline one could
        # talk; the last backend has nothing to fall back to, so it gets no deadline.
        timeout = None if last else self.first_audio_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await anext(chunks)
        except StopAsyncIteration:
            return None
        except TimeoutError as e:
            raise TTSError(f"no audio within {self.first_audio_timeout_s:g} s") from e

    # ------------------------------------------------------------------ switching

    def _demote(self, failed: int, reason: str) -> None:
        # Only the first session to see a failure switches; others that were
        # already trying the same backend follow quietly.
        if self._active != failed or failed + 1 >= len(self.backends):
            return
        self._switch(failed + 1, reason)
        self._ensure_probe()

    def _switch(self, to: int, reason: str) -> None:
        old = self.active
        self._active = to
        self.switches += 1
        log.warning("TTS switched from %s to %s: %s", old, self.active, reason)
        for callback in list(self._listeners):
            try:
                callback(old, self.active, reason)
            except Exception:
                log.exception("TTS switch callback failed")

    def _ensure_probe(self) -> None:
        loop = asyncio.get_running_loop()
        probe = self._probe
        if probe is not None and not probe.done():
            if probe.get_loop() is loop:
                return
            # Left behind on a loop that is gone (or another one): this loop takes over.
            self._cancel_probe()
        # Shared by every session: an empty context, or its log lines would name the
        # session whose utterance happened to start it.
        self._probe = loop.create_task(
            self._probe_loop(), name="tts-recovery-probe", context=contextvars.Context()
        )

    async def _probe_loop(self) -> None:
        while self._active > 0:
            await asyncio.sleep(self.probe_interval_s)
            await self.probe_once()

    async def probe_once(self) -> bool:
        """Try each backend preferred over the active one; switch back to the first that works."""
        for i in range(self._active):
            backend = self.backends[i]
            try:
                async with contextlib.aclosing(
                    backend.stream(self.probe_text, self._last_options)
                ) as chunks:
                    chunk = await self._first_chunk(chunks, last=False)
            except Exception as e:
                log.debug("TTS backend %s still failing: %s", backend.name, e)
                continue
            if chunk is not None and i < self._active:
                self._switch(i, "recovered")
                return True
        return False

    def _cancel_probe(self) -> asyncio.Task[None] | None:
        probe, self._probe = self._probe, None
        if probe is None or probe.done():
            return None
        try:
            probe.cancel()
        except RuntimeError:  # its loop is already closed: nothing runs it any more
            return None
        return probe

    def close(self) -> None:
        self._cancel_probe()
        for backend in self.backends:
            backend.close()
        super().close()

    async def aclose(self) -> None:
        """``close``, after the recovery probe has stopped."""
        probe = self._cancel_probe()
        try:
            if probe is not None and probe.get_loop() is asyncio.get_running_loop():
                await cancel_and_wait(probe)  # already cancelled: this waits for it
        finally:
            self.close()

    def describe(self) -> str:
        chain = " > ".join(b.name for b in self.backends)
        return f"fallback: {chain} (active: {self.active})"
