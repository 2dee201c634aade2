"""The bridge's gRPC link to a Murmur server: one ``Converse`` stream, resumed
across drops.

``BridgeLink.events()`` opens the stream, sends ``SessionStart`` first, then
forwards whatever is put on ``outbox`` while yielding the server's events. On
UNAVAILABLE or a ``GoAway`` it reconnects with the resume token from
``SessionReady`` (bounded tries, growing backoff) and carries on with the same
outbox, so the caller never sees the seam except as a second ``SessionReady``.

grpc.aio rule kept here: on the call only ``write``/``read``/``done_writing``
are used, never ``async for`` (mixing the two raises).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

__all__ = [
    "CLIENT_NAME",
    "BridgeLink",
    "LinkError",
    "LinkOptions",
    "explain_status",
    "open_channel",
    "pair",
]

log = logging.getLogger(__name__)

try:
    __version__ = importlib.metadata.version("murmur")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"
CLIENT_NAME = f"murmur-bridge/{__version__}"

_CLOSE = object()  # outbox sentinel: half-close the stream


@dataclass
class LinkOptions:
    """Where and how to reach the server."""

    target: str = "127.0.0.1:50051"
    token: str | None = None
    tls: bool = False
    ca_file: str | Path | None = None
    connect_timeout_s: float = 5.0
    max_reconnects: int = 5
    backoff_s: float = 0.5  # doubles per failed try, capped at 8 s
    outbox_size: int = 512


class LinkError(Exception):
    """The session cannot go on; ``str()`` says what happened and what to do."""

    def __init__(
        self, message: str, code: grpc.StatusCode | None = None, details: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def explain_status(code: grpc.StatusCode | None, details: str, target: str) -> str:
    """A status as a sentence a person can act on."""
    details = details or "(no details)"
    if code is grpc.StatusCode.UNAVAILABLE:
        return (
            f"cannot reach a Murmur server at {target} ({details}). Start one with "
            f"`murmur serve` or pass --server HOST:PORT"
        )
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return (
            f"the server at {target} refused this bridge: {details}. Pair it first: "
            f"`murmur-bridge pair --server {target} --code CODE` (the code comes from `murmur pair`)"
        )
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return f"the server at {target} rejected the session: {details}"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return f"the server at {target} is full: {details}. Try again later"
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return f"the server at {target} does not offer this yet: {details}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the server at {target} did not answer in time: {details}"
    name = code.name if code is not None else "UNKNOWN"
    return f"the session with {target} failed ({name}): {details}"


def open_channel(options: LinkOptions) -> grpc.aio.Channel:
    if not options.tls:
        return grpc.aio.insecure_channel(options.target)
    root: bytes | None = None
    if options.ca_file:
        path = Path(options.ca_file)
        if not path.is_file():
            raise LinkError(f"CA file not found: {path}")
        root = path.read_bytes()
    return grpc.aio.secure_channel(
        options.target, grpc.ssl_channel_credentials(root_certificates=root)
    )


def _metadata(options: LinkOptions) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {options.token}"),) if options.token else ()


async def _wait_ready(channel: grpc.aio.Channel, options: LinkOptions) -> None:
    try:
        await asyncio.wait_for(channel.channel_ready(), options.connect_timeout_s)
    except TimeoutError:
        raise LinkError(
            explain_status(
                grpc.StatusCode.UNAVAILABLE,
                f"no answer within {options.connect_timeout_s:g} s",
                options.target,
            ),
            grpc.StatusCode.UNAVAILABLE,
        ) from None


async def pair(options: LinkOptions, code: str, device_name: str) -> pb.PairResponse:
    """Trade a one-time pairing code for a device token."""
    async with open_channel(options) as channel:
        await _wait_ready(channel, options)
        stub = pb_grpc.CompanionStub(channel)
        try:
            return await stub.Pair(
                pb.PairRequest(code=code, device_name=device_name),
                timeout=options.connect_timeout_s * 2,
            )
        except grpc.aio.AioRpcError as e:
            raise LinkError(
                explain_status(e.code(), e.details() or "", options.target),
                e.code(),
                e.details() or "",
            ) from e


class BridgeLink:
    """One glasses session over ``Companion.Converse``, reconnecting with resume."""

    def __init__(
        self,
        options: LinkOptions,
        start: pb.SessionStart,
        *,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        self.start = start
        self.outbox: asyncio.Queue[object] = asyncio.Queue(options.outbox_size)
        self.ready: pb.SessionReady | None = None
        self.resume_token = start.resume_token
        self.reconnects = 0
        self.sent = 0
        self._on_status = on_status or (lambda msg: log.warning("%s", msg))
        self._closing = False
        self._call: grpc.aio.StreamStreamCall | None = None

    async def send(self, event: pb.ClientEvent) -> None:
        """Queue an event for the stream (waits when the outbox is full: backpressure)."""
        await self.outbox.put(event)

    async def close(self) -> None:
        """Half-close after everything already queued; the server then ends the session."""
        self._closing = True
        await self.outbox.put(_CLOSE)

    def cancel(self) -> None:
        """Drop the stream now."""
        if self._call is not None:
            self._call.cancel()

    async def events(self) -> AsyncIterator[pb.ServerEvent]:
        """The server's events until the session ends; raises ``LinkError`` when it
        ends badly and cannot be resumed."""
        opts = self.options
        failures = 0
        async with open_channel(opts) as channel:
            await _wait_ready(channel, opts)
            stub = pb_grpc.CompanionStub(channel)
            while True:
                go_away_ms: int | None = None
                got_ready = False
                call = self._call = stub.Converse(metadata=_metadata(opts))
                pump: asyncio.Task[None] | None = None
                try:
                    start = pb.SessionStart()
                    start.CopyFrom(self.start)
                    start.resume_token = self.resume_token
                    await call.write(pb.ClientEvent(session_start=start))
                    self.sent += 1
                    # Only now start the pump: one write at a time per call, and
                    # SessionStart must be the first.
                    pump = asyncio.create_task(self._pump(call))
                    while True:
                        msg = await call.read()
                        if msg is grpc.aio.EOF:
                            break
                        which = msg.WhichOneof("event")
                        if which == "session_ready":
                            self.ready = msg.session_ready
                            if msg.session_ready.resume_token:
                                self.resume_token = msg.session_ready.resume_token
                            got_ready, failures = True, 0
                        elif which == "go_away":
                            go_away_ms = msg.go_away.reconnect_after_ms
                            self._on_status(
                                f"server is draining ({msg.go_away.reason or 'no reason given'}); "
                                f"will reconnect after {go_away_ms} ms"
                            )
                        yield msg
                    if go_away_ms is None or self._closing:
                        return  # the server ended the session cleanly
                    delay = go_away_ms / 1000
                except grpc.aio.AioRpcError as e:
                    code, details = e.code(), e.details() or ""
                    if self._closing and code is grpc.StatusCode.CANCELLED:
                        return
                    resumable = code is grpc.StatusCode.UNAVAILABLE or go_away_ms is not None
                    if not resumable or self._closing:
                        raise LinkError(
                            explain_status(code, details, opts.target), code, details
                        ) from e
                    # Only tries that never got a SessionReady count against the limit:
                    # a session that keeps resuming after long healthy stretches is fine.
                    failures += 0 if got_ready else 1
                    if failures > opts.max_reconnects:
                        raise LinkError(
                            explain_status(
                                code,
                                f"{details}; gave up after {opts.max_reconnects} reconnects",
                                opts.target,
                            ),
                            code,
                            details,
                        ) from e
                    delay = (
                        go_away_ms / 1000
                        if go_away_ms is not None
                        else min(8.0, opts.backoff_s * 2 ** max(0, failures - 1))
                    )
                    self._on_status(f"lost the stream to {opts.target} ({code.name}: {details})")
                finally:
                    if pump is not None:
                        pump.cancel()
                        await asyncio.wait([pump])  # (never raises, so our own cancel stays ours)
                    call.cancel()
                    self._call = None
                self.reconnects += 1
                self._on_status(
                    f"reconnecting in {delay:.1f} s (try {self.reconnects}, "
                    f"{'resuming' if self.resume_token else 'new session'})"
                )
                await asyncio.sleep(delay)

    async def _pump(self, call: grpc.aio.StreamStreamCall) -> None:
        """The only writer to ``call`` after SessionStart: outbox → stream."""
        while True:
            item = await self.outbox.get()
            if item is _CLOSE:
                with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    await call.done_writing()
                return
            assert isinstance(item, pb.ClientEvent)
            try:
                await call.write(item)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                # The call is over; the reader sees why and decides whether to resume.
                # This one event is lost, as it would be over a real radio link.
                return
            self.sent += 1
