"""A source that is restarted when its frames stop, so a walk survives a camera that hangs.

``WatchedSource`` wraps the source a session reads. When no frame has come for
``stall_s`` seconds, or the device fails (an unplugged camera raises ``DeviceError``),
it tells its ``SourceListener`` (the ``Controller`` sends ``Control`` pause, so the
model is not fed a stale view), closes the source and opens a new one from the same
factory (retrying with backoff while it cannot), and tells the listener again at the
first frame from the new one (watching resumes). Each restart is counted and said.
A source that *ends* (a replay's last frame, a camera's ``seconds``) ends the walk.
The server's capture rate (``set_capture_rate``) is passed on, kept for a restarted
source, and stretches the stall timeout: at 0.2 fps a frame is 5 s apart by design.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.controls import Command, HasControls
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities

__all__ = ["SourceListener", "WatchdogOptions", "WatchedSource"]

T = TypeVar("T")
_STALL, _WAKE, _END = object(), object(), object()


@dataclass
class WatchdogOptions:
    stall_s: float = 5.0  # no frame for this long (or 3 frame intervals): the source is gone
    retry_s: float = 1.0  # first wait after a reopen that failed ...
    retry_max_s: float = 10.0  # ... doubling up to this


class SourceListener(Protocol):
    def source_stalled(self) -> None: ...

    def source_back(self) -> None: ...


class _Nobody:
    def source_stalled(self) -> None:
        pass

    def source_back(self) -> None:
        pass


class WatchedSource(GlassesSource):
    """``first`` as opened (its capabilities are the session's), and ``reopen`` for
    each restart. ``stop()`` ends every stream at once (the wearer quit)."""

    def __init__(
        self,
        first: GlassesSource,
        reopen: Callable[[], Awaitable[GlassesSource]],
        options: WatchdogOptions | None = None,
        *,
        say: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.options = options or WatchdogOptions()
        self.listener: SourceListener = _Nobody()
        self.restarts = 0
        self.source = first
        self._caps = first.capabilities
        self._reopen = reopen
        self._say = say or (lambda line: None)
        self._clock = clock or SystemClock()
        self._submit: Callable[[Command], None] | None = None
        self._started_at: float | None = None
        self._last_frame_at: float | None = None
        self._stopped = False
        self._wake = asyncio.Event()  # set at a restart (then replaced) and at stop
        self._coming_back = False
        self._hinted_fps: float | None = None  # the server's last CaptureHint

    @property
    def capabilities(self) -> SourceCapabilities:
        return self._caps

    def set_capture_rate(self, fps: float) -> None:
        self._hinted_fps = fps
        self.source.set_capture_rate(fps)

    @property
    def capture_fps(self) -> float | None:
        return self.source.capture_fps

    def _stall_s(self) -> float:
        fps = self.source.capture_fps
        return max(self.options.stall_s, 3.0 / fps) if fps else self.options.stall_s

    def bind_controls(self, submit: Callable[[Command], None]) -> None:
        self._submit = submit
        self._bind(self.source)

    def start(self) -> None:
        self._started_at = self._clock.monotonic()
        self.source.start()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopped

    def elapsed(self) -> float | None:
        """Seconds since ``start``; None before (the console's timeline)."""
        return None if self._started_at is None else self._clock.monotonic() - self._started_at

    def frame_age_s(self) -> float | None:
        """Seconds since the last frame (or since start, before the first); None before."""
        since = self._last_frame_at or self._started_at
        return None if since is None else self._clock.monotonic() - since

    async def frames(self) -> AsyncIterator[JpegFrame]:
        while not self._stopped:
            it = self.source.frames()
            try:
                while True:
                    stall_s = self._stall_s()
                    got = await self._next(it, stall_s)
                    if got is _END or got is _WAKE:
                        return
                    if got is _STALL:
                        why = f"no frame from the source for {stall_s:g} s"
                        break
                    self._last_frame_at = self._clock.monotonic()
                    if self._coming_back:
                        self._coming_back = False
                        self._say(f"(frames again after restart {self.restarts}; watching)")
                        self.listener.source_back()
                    yield got
            except Exception as e:  # the device failed (unplugged, vanished): restart it
                why = str(e) or type(e).__name__
            finally:
                await _aclose(it)
            if not await self._restart(why):
                return

    async def audio(self) -> AsyncIterator[OpusPacket]:
        async for packet in self.follow(lambda s: s.audio()):
            yield packet

    async def texts(self) -> AsyncIterator[str]:
        async for text in self.follow(lambda s: s.texts()):
            yield text

    async def capture_still(self) -> JpegFrame | None:
        return await self.source.capture_still()

    async def aclose(self) -> None:
        self.stop()
        await self._close(self.source)

    # ------------------------------------------------------------------ inside

    async def follow(self, stream: Callable[[GlassesSource], AsyncIterator[T]]) -> AsyncIterator[T]:
        """The current source's ``stream`` (its audio, texts, button presses); after a
        failure, the next source's, once it is restarted; ends with the stream or at stop."""
        while not self._stopped:
            source, wake = self.source, self._wake
            it = stream(source)
            try:
                while (got := await self._next(it, None)) is not _WAKE:
                    if got is _END:
                        return
                    yield got
            except Exception as e:
                if source is self.source and not self._stopped:
                    self._say(f"(source: {e}; waiting for it to be restarted)")
                    await wake.wait()
            finally:
                await _aclose(it)

    async def _next(self, it: AsyncIterator[T], timeout_s: float | None) -> Any:
        """The next item, ``_END``, ``_STALL`` after ``timeout_s``, or ``_WAKE``."""
        item = asyncio.ensure_future(anext(it))
        waits: list[asyncio.Future[Any]] = [item, asyncio.ensure_future(self._wake.wait())]
        if timeout_s is not None:
            waits.append(asyncio.ensure_future(self._clock.sleep(timeout_s)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits[1:]:
                w.cancel()
        if item.done():
            try:
                return item.result()
            except StopAsyncIteration:
                return _END
        item.cancel()
        await asyncio.wait([item])
        if not item.cancelled():
            item.exception()  # retrieved: it failed as it was being given up
        return _WAKE if waits[1].done() and not waits[1].cancelled() else _STALL

    async def _restart(self, why: str) -> bool:
        """Close, tell, reopen (with backoff); False when stopped meanwhile."""
        self.restarts += 1
        self._say(f"(source: {why}; watching paused, restarting it: restart {self.restarts})")
        self.listener.source_stalled()
        await self._close(self.source)
        delay = self.options.retry_s
        while not self._stopped:
            try:
                source = await self._reopen()
                break
            except Exception as e:  # said and tried again: the wearer can quit
                self._say(f"(could not reopen the source: {e}; trying again in {delay:g} s)")
            await self._sleep_unless_stopped(delay)
            delay = min(delay * 2, self.options.retry_max_s)
        else:
            return False
        if self._stopped:
            await self._close(source)
            return False
        self.source = source
        self._bind(source)
        if self._hinted_fps is not None:
            source.set_capture_rate(self._hinted_fps)
        if self._started_at is not None:
            source.start()
        self._coming_back = True
        # Whatever waited on the old source (its audio, its texts) moves to this one.
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()
        return True

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        stop = asyncio.ensure_future(self._wake.wait())
        nap = asyncio.ensure_future(self._clock.sleep(seconds))
        await asyncio.wait([stop, nap], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        nap.cancel()

    def _bind(self, source: GlassesSource) -> None:
        if self._submit is not None and isinstance(source, HasControls):
            source.bind_controls(self._submit)

    async def _close(self, source: GlassesSource) -> None:
        try:
            await source.aclose()
        except Exception as e:  # closing a device that already failed may fail again
            self._say(f"(closing the source: {e})")


async def _aclose(it: object) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
