"""A source that is restarted when its frames stop, so a walk survives a camera that hangs.

``WatchedSource`` wraps the source a session reads. Two thresholds, kept apart:

- once the frame is *stale* (the status line's rule, ``stale_after_s``: 2 s or 2.5
  frame periods, whichever is longer), or the source says it is reconnecting by itself
  (glasses over BLE, whose ``connected`` is False meanwhile), its ``SourceListener`` is
  told (the ``Controller`` sends ``Control`` pause, so the model is not fed a stale
  view); the first frame after tells it again (watching resumes);
- once no frame has come for ``stall_s`` seconds (or 3 frame periods), or the device
  fails (an unplugged camera raises ``DeviceError``), the source is closed and a new
  one opened from the same factory (retrying with backoff while it cannot). Each
  restart is counted and said. A source reconnecting by itself is not restarted: the
  watchdog and the BLE backoff do not fight over one device.

A source that *ends* (a replay's last frame, a camera's ``seconds``) ends the walk.
The server's capture rate (``set_capture_rate``) is passed on, kept for a restarted
source, and stretches both thresholds: at 0.2 fps a frame is 5 s apart by design.
A microphone that fails while frames still flow restarts the source the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.controls import Command, HasControls
from mobile_bridge.sinks.console import stale_after_s
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities

__all__ = ["SourceListener", "WatchdogOptions", "WatchedSource"]

T = TypeVar("T")
_STALL, _WAKE, _END = object(), object(), object()


@dataclass
class WatchdogOptions:
    stall_s: float = 5.0  # no frame for this long (or 3 frame intervals): restart the source
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
        self._paused = False  # the listener was told the source is gone
        self._coming_back = False  # a restart is waiting for its first frame
        self._restarting = False  # one restart at a time (frames' and audio's)
        self._mic_failed_at: float | None = None  # the microphone's last failure ...
        self._mic_delay = 0.0  # ... and the wait before the next restart for it
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

    def _pause_s(self) -> float:
        """The frame is stale: watching pauses long before a restart (never after)."""
        return min(stale_after_s(self.source.capture_fps), self._stall_s())

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
            source, wake = self.source, self._wake
            it = source.frames()
            why: str | None = None
            try:
                while True:
                    got = await self._next_frame(it)
                    if got is _END and not self._moved(source):
                        return  # the source ended: so does the walk
                    if got is _END or got is _WAKE:
                        break  # stopped, or restarted for its microphone
                    if got is _STALL:
                        why = f"no frame from the source for {self._stall_s():g} s"
                        break
                    self._last_frame_at = self._clock.monotonic()
                    if self._paused:
                        self._resume()
                    yield got
            except Exception as e:  # the device failed (unplugged, vanished): restart it
                why = str(e) or type(e).__name__
            finally:
                await _aclose(it)
            if self._stopped:
                return
            if self._moved(source):  # another stream's restart: follow it
                if source is self.source:
                    await wake.wait()
                continue
            if why is not None and not await self._restart(why):
                return

    def _moved(self, source: GlassesSource) -> bool:
        """``source`` is being, or has been, replaced by a restart."""
        return source is not self.source or self._restarting

    async def audio(self) -> AsyncIterator[OpusPacket]:
        # A dead microphone with live frames would never trip the frame watchdog:
        # restart the source for it too, with the same backoff.
        async for packet in self.follow(lambda s: s.audio(), restart=True):
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

    async def follow(
        self, stream: Callable[[GlassesSource], AsyncIterator[T]], *, restart: bool = False
    ) -> AsyncIterator[T]:
        """The current source's ``stream`` (its audio, texts, button presses); after a
        failure, the next source's, once it is restarted; ends with the stream or at stop.
        With ``restart`` a failure of this stream restarts the source itself (else it
        waits for the frames' watchdog to do so)."""
        while not self._stopped:
            source, wake = self.source, self._wake
            it = stream(source)
            failed: str | None = None
            try:
                while (got := await self._next(it)) is not _WAKE:
                    if got is _END:
                        if not self._moved(source):
                            return
                        break  # closed by a restart: go on with the next source
                    yield got
            except Exception as e:
                failed = str(e) or type(e).__name__
            finally:
                await _aclose(it)
            if self._stopped:
                return
            if self._moved(source):
                if source is self.source:
                    await wake.wait()
                continue
            if failed is None:
                continue
            if restart:
                await self._mic_backoff(failed)
                if self._stopped:
                    return
                if source is self.source and not self._restarting:
                    if not await self._restart(f"the microphone failed ({failed})"):
                        return
            else:
                self._say(f"(source: {failed}; waiting for it to be restarted)")
                await wake.wait()

    async def _mic_backoff(self, why: str) -> None:
        """A microphone that opens but fails again soon is restarted with backoff, not
        in a loop: the same waits as a reopen that fails."""
        now = self._clock.monotonic()
        again = self._mic_failed_at is not None and now - self._mic_failed_at < 2 * (
            self.options.retry_max_s
        )
        self._mic_failed_at = now
        if not again:
            self._mic_delay = 0.0
            return
        delay = self._mic_delay = min(
            self._mic_delay * 2 or self.options.retry_s, self.options.retry_max_s
        )
        self._say(f"(the microphone failed again ({why}); restarting in {delay:g} s)")
        await self._sleep_unless_stopped(delay)

    def _reconnecting(self) -> bool:
        """The source says it is reconnecting by itself (``connected`` False)."""
        return getattr(self.source, "connected", True) is False

    def _pause(self, why: str) -> None:
        if not self._paused:
            self._paused = True
            self._say(f"(source: {why}; watching paused)")
            self.listener.source_stalled()

    def _resume(self) -> None:
        self._paused = False
        if self._coming_back:
            self._coming_back = False
            self._say(f"(frames again after restart {self.restarts}; watching)")
        else:
            self._say("(frames again; watching)")
        self.listener.source_back()

    async def _next_frame(self, it: AsyncIterator[T]) -> Any:
        """The next frame, ``_END``, ``_WAKE``, or ``_STALL`` (restart the source).
        Watching is paused once the frame is stale, or at once while the source says it
        is reconnecting by itself; meanwhile the restart clock does not run (said once),
        and starts again when it stops: a source just back gets a whole timeout."""
        item = asyncio.ensure_future(anext(it))
        wake = asyncio.ensure_future(self._wake.wait())
        since = self._clock.monotonic()
        told = False
        try:
            while not (item.done() or wake.done()):
                now = self._clock.monotonic()
                if self._reconnecting():
                    since = now
                    if not told:
                        told = True
                        self._say("(source reconnecting by itself; the watchdog waits for it)")
                    self._pause("the source is reconnecting")
                    timeout = self._pause_s()  # when to look again
                else:
                    # A hair of slack: on a virtual clock ``now - since`` can stay one
                    # ulp short of a deadline the sleep was meant to reach.
                    waited, stall_s, pause_s = now - since, self._stall_s(), self._pause_s()
                    if waited + 1e-6 >= stall_s:
                        break
                    if waited + 1e-6 >= pause_s:
                        self._pause(f"no frame for {pause_s:g} s")
                    timeout = (stall_s if self._paused else pause_s) - waited
                await self._until_first([item, wake], timeout)
        finally:
            wake.cancel()
        return await self._outcome(item, wake)

    async def _next(self, it: AsyncIterator[T]) -> Any:
        """The next item, ``_END``, or ``_WAKE`` (a restart or stop)."""
        item = asyncio.ensure_future(anext(it))
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait([item, wake], return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
        return await self._outcome(item, wake)

    async def _until_first(self, waits: list[asyncio.Future[Any]], timeout_s: float) -> None:
        nap = asyncio.ensure_future(self._clock.sleep(max(timeout_s, 0.0)))
        try:
            await asyncio.wait([*waits, nap], return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()

    @staticmethod
    async def _outcome(item: asyncio.Future[Any], wake: asyncio.Future[Any]) -> Any:
        if item.done():
            try:
                return item.result()
            except StopAsyncIteration:
                return _END
        item.cancel()
        await asyncio.wait([item])
        if not item.cancelled():
            item.exception()  # retrieved: it failed as it was being given up
        return _WAKE if wake.done() and not wake.cancelled() else _STALL

    async def _restart(self, why: str) -> bool:
        """Close, tell, reopen (with backoff); False when stopped meanwhile."""
        self.restarts += 1
        self._restarting = True
        try:
            return await self._reopen_after(why)
        finally:
            self._restarting = False

    async def _reopen_after(self, why: str) -> bool:
        self._say(f"(source: {why}; watching paused, restarting it: restart {self.restarts})")
        if not self._paused:  # else told already, when the frame went stale
            self._paused = True
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
