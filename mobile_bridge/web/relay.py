"""``murmur-bridge web``: the phone page and its relay to the Murmur server.

One WebSocket per page. Each page gets a ``PageRelay``: a ``BridgeSession`` over a
``BridgeLink`` (TLS pinned to the stored pairing, device token, resume), fed by a
``PageSource`` and playing into a ``PageSink``. The token never reaches the page: the
relay pairs on the page's behalf (the page sends the code or the scanned link) and
keeps the pairing where ``murmur-bridge pair`` keeps it. The page holds only its
per-page id, so when the phone's network changes it reconnects and picks up the same
session; a page that stays away past ``detach_grace_s`` ends its session, and what it
had not played is reported as cut.

A page id names a session, not a socket: the newest socket to say ``hello`` with it
owns the session, and the one it supersedes is closed (``SUPERSEDED``). Only the owner's
end detaches the page: a phone that changed networks reconnects in a few hundred
milliseconds, while its old TCP socket lingers until the heartbeat gives up on it.

Only the page's own origin may open ``/ws`` (browsers send ``Origin`` on every
WebSocket; another site's script would otherwise drive this relay and its pairing),
and a pairing the relay already holds is replaced only when the page says its user
confirmed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import MODES, BridgeSession, SessionOptions
from mobile_bridge.connection import LinkOptions
from mobile_bridge.errors import LinkError
from mobile_bridge.link import BridgeLink
from mobile_bridge.pairing import ConnectFlags, link_options, pair_with, parse_invite
from mobile_bridge.sinks.base import EventObserver
from mobile_bridge.sources.base import SourceCapabilities
from mobile_bridge.tokens import save_pairing
from mobile_bridge.web.page import PageObserver, PageSink, PageSource
from mobile_bridge.web.wire import (
    FRAME,
    OUT_RATE_HZ,
    PCM,
    STILL,
    WireError,
    parse_media,
    parse_motion,
)

__all__ = [
    "PageRelay",
    "Relay",
    "RelayOptions",
    "SocketPort",
    "build_app",
    "content_security_policy",
    "same_origin",
    "serve",
]

log = logging.getLogger(__name__)
OUTBOUND = 2048  # messages waiting for a slow socket; beyond that the oldest go
MAX_MESSAGE = 8 * 1024 * 1024  # a full-resolution still
ENDED_KEPT = 64  # forgotten pages whose reason a returning page is told
SUPERSEDED = 4001  # close code: another socket picked this page's session up
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors' elder, for old browsers
}
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def content_security_policy(host: str) -> str:
    """The page's CSP: everything from the page's own origin, and no framing (a hidden
    iframe of ``/#pair=…`` would pair an unpaired relay without a tap). The socket's
    origin is spelled out beside ``'self'``: older Safari does not match ``ws:`` to it."""
    sockets = f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""
    return (
        f"default-src 'self'; connect-src 'self'{sockets}; img-src 'self' blob: data:; "
        "media-src 'self' blob:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def same_origin(request: web.Request) -> bool:
    """A browser's WebSocket from this page: its ``Origin`` names the host it asked."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


@dataclass
class RelayOptions:
    """How the relay reaches the server and what it asks of it."""

    connect: ConnectFlags = field(default_factory=ConnectFlags)
    default_server: str = "127.0.0.1:50051"
    fingerprint: str | None = None  # for a bare code typed on the page (else the link's)
    device_name: str = "phone"
    session: SessionOptions = field(default_factory=lambda: SessionOptions(want_trace=True))
    detach_grace_s: float = 30.0  # a page away longer than this ends its session
    # More observers of every page's session (each page's own PageObserver comes
    # first): benchmarks and tools watch the events without reaching into the relay.
    observers: tuple[EventObserver, ...] = ()


class SocketPort:
    """The page's socket, or none while the page is away; one writer task per socket."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | bytes] = asyncio.Queue(OUTBOUND)
        self._ws: web.WebSocketResponse | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[Any]] = set()
        self.dropped = 0

    @property
    def attached(self) -> bool:
        return self._ws is not None

    def owns(self, ws: web.WebSocketResponse) -> bool:
        return self._ws is ws

    def send_json(self, message: dict[str, Any]) -> None:
        self._put(json.dumps(message))

    def send_bytes(self, data: bytes) -> None:
        self._put(data)

    def _put(self, item: str | bytes) -> None:
        if self._ws is None:
            self.dropped += 1
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    def attach(self, ws: web.WebSocketResponse) -> web.WebSocketResponse | None:
        """``ws`` becomes the page's socket; the one it supersedes (returned) is closed."""
        old = self._ws if self._ws is not ws else None
        self.detach()
        self._ws = ws
        self._writer = asyncio.create_task(self._write(ws))
        if old is not None and not old.closed:
            closing = asyncio.create_task(old.close(code=SUPERSEDED, message=b"superseded"))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return old

    def detach(self, ws: web.WebSocketResponse | None = None) -> bool:
        """Forget the socket (``ws``: only if it is still the page's); True if it was."""
        if self._ws is None or (ws is not None and ws is not self._ws):
            return False
        self._ws = None
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        while not self._queue.empty():
            self._queue.get_nowait()
        return True

    async def _write(self, ws: web.WebSocketResponse) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                else:
                    await ws.send_str(item)
            except (ConnectionError, RuntimeError):  # closing under us: the reader sees it
                return


class PageRelay:
    """One page's session: its socket (when attached), source, sink and session task."""

    def __init__(self, page_id: str, relay: Relay) -> None:
        self.page_id = page_id
        self.relay = relay
        self.port = SocketPort()
        self.source: PageSource | None = None
        self.sink: PageSink | None = None
        self.session: BridgeSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.hidden = False
        self.ended_why = ""  # why the session ended, for a page that comes back to it
        self._observer: PageObserver | None = None
        self._grace: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def attach(self, ws: web.WebSocketResponse, *, ended: str = "") -> None:
        """``ws`` says hello with this page's id (``ended``: why the session the page
        asked for ended while it was away; this page is a fresh one)."""
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        if self.port.attach(ws) is not None and self.sink is not None:
            self.sink.page_lost()  # the superseded socket's player will not report
        observer_ready = self._observer.ready if self.running and self._observer else None
        self.port.send_json(
            {
                "type": "welcome",
                "page": self.page_id,
                "paired": self.relay.paired(),
                "running": self.running,
                "tick_hz": observer_ready.tick_hz if observer_ready else 0,
                "motion_hz": observer_ready.motion_hz if observer_ready else 0,
                "grace_s": self.relay.options.detach_grace_s,
                "ended": ended,
            }
        )
        if self.running and not self.hidden:
            self._control(pb.Control(pause_watching=False))

    def detach(self, ws: web.WebSocketResponse) -> None:
        """``ws`` closed: the page is away, unless a newer socket already owns it."""
        if not self.port.detach(ws):
            return
        if self.sink is not None:
            self.sink.page_lost()
        if self.running:
            self._control(pb.Control(pause_watching=True))
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(self.relay.options.detach_grace_s, self._away_too_long)

    # ------------------------------------------------------------ from the page

    async def on_text(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "pair":
            await self._pair(str(msg.get("code", "")), replace=msg.get("replace") is True)
        elif kind == "start":
            self._start(msg)
        elif kind == "stop":
            self._stop()
        elif kind == "control":
            control = _control_for(msg)
            if control is not None:
                self._control(control)
        elif kind == "played" and self.sink is not None:
            played_ms = msg.get("played_ms", 0)
            if not isinstance(played_ms, int | float) or isinstance(played_ms, bool):
                raise WireError("played_ms must be a number of milliseconds")
            self.sink.played(
                str(msg.get("utterance", "")),
                int(played_ms),
                finished=msg.get("finished") is True,
            )
        elif kind == "location" and self.session is not None:
            self.session.send_location(_location(msg))
        elif kind == "motion" and self.session is not None:
            batch = parse_motion(msg)
            self.session.send_motion(batch.first_sample_time_ms, batch.rate_hz, batch.samples)
        elif kind == "visibility":
            self.hidden = msg.get("hidden") is True
            if self.running:
                self._control(pb.Control(pause_watching=self.hidden))

    def on_bytes(self, data: bytes) -> None:
        if self.source is None:
            return
        media = parse_media(data)
        if media.tag == FRAME:
            self.source.put_frame(media.data, media.capture_time_ms)
        elif media.tag == STILL:
            self.source.put_still(media.data, media.capture_time_ms)
        elif media.tag == PCM:
            self.source.put_pcm(media.data, media.capture_time_ms)

    def _control(self, control: pb.Control) -> None:
        if self.session is not None and self.running:
            self.session.send_control(control)

    # ------------------------------------------------------------ the session

    async def _pair(self, text: str, *, replace: bool) -> None:
        if self.relay.paired() and not replace:
            # Another page (or a link opened without a tap) must not swap the server
            # this relay sends the camera to: the page asks its user first.
            self.port.send_json(
                {
                    "type": "error",
                    "where": "pair",
                    "confirm": True,
                    "message": "This relay is already paired with a Murmur server. "
                    "Press Pair again and confirm to replace that pairing.",
                }
            )
            return
        try:
            await self.relay.pair(text)
        except (ValueError, LinkError) as e:
            self.port.send_json({"type": "error", "where": "pair", "message": str(e)})
            return
        self.port.send_json({"type": "paired"})

    def _start(self, msg: dict[str, Any]) -> None:
        if self.running:
            return
        try:
            link = self.relay.link()
        except LinkError as e:
            self.port.send_json({"type": "error", "where": "start", "message": str(e)})
            return
        mode = str(msg.get("mode", "general"))
        options = self.relay.session_options(mode if mode in MODES else "general")
        caps = SourceCapabilities(
            camera=msg.get("camera") is True,
            microphone=msg.get("microphone") is True,
            speaker=True,
            haptics=msg.get("haptics") is True,
            still_capture=msg.get("camera") is True,
        )
        self.source = PageSource(self.port, caps)
        self.sink = PageSink(self.port, options.out_rate_hz)
        self._observer = PageObserver(self.port)
        self.ended_why = ""
        say = self._status
        self.session = BridgeSession(
            self.source,
            self.sink,
            lambda start: BridgeLink(link, start, on_status=say),
            options,
            observers=(self._observer, *self.relay.options.observers),
            say=say,
        )
        self.task = asyncio.create_task(self._run(self.session))

    async def _run(self, session: BridgeSession) -> None:
        try:
            await session.run()
        except LinkError as e:
            self.port.send_json({"type": "error", "where": "session", "message": str(e)})
        except Exception as e:  # the relay serves other pages: say it, keep serving
            log.exception("page session failed")
            self.port.send_json({"type": "error", "where": "session", "message": repr(e)})
        finally:
            if self.source is not None:
                self.source.end()
            self.port.send_json({"type": "closed"})
            if not self.port.attached:  # ended while the page was away: forget it
                self.relay.forget(self.page_id, self.ended_why)

    def _status(self, line: str) -> None:
        self.port.send_json({"type": "status", "message": line})

    def _away_too_long(self) -> None:
        grace = self.relay.options.detach_grace_s
        self.ended_why = (
            f"Your session ended: the page was away from the relay for more than {grace:g} "
            "seconds. Press Start to begin again."
        )
        self._stop()

    def _stop(self) -> None:
        self._grace = None
        if self.source is not None:
            self.source.end()

    async def aclose(self) -> None:
        self._stop()
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait([self.task])
        self.port.detach()


class Relay:
    """Every page's ``PageRelay``, and the pairing they share."""

    def __init__(self, options: RelayOptions) -> None:
        self.options = options
        self.pages: dict[str, PageRelay] = {}
        self.ended: dict[str, str] = {}  # a forgotten page id → why its session ended

    def link(self) -> LinkOptions:
        return link_options(self.options.connect, default_server=self.options.default_server)

    def paired(self) -> bool:
        try:
            self.link()
        except LinkError:
            return False
        return True

    def session_options(self, mode: str) -> SessionOptions:
        base = self.options.session
        return SessionOptions(
            mode=mode,
            language=base.language,
            instruction_override=base.instruction_override,
            out_rate_hz=OUT_RATE_HZ,
            want_trace=True,  # the page shows the frame age from the trace
            linger_s=base.linger_s,
        )

    async def pair(self, text: str) -> None:
        invite = parse_invite(text, self.options.connect.server)
        if invite.fingerprint is None and self.options.fingerprint is None:
            raise ValueError(
                "a bare code needs the server's certificate fingerprint: scan or paste the "
                "whole murmur://pair?… link, or start the relay with --fingerprint"
            )
        pairing = await pair_with(
            invite, self.options.device_name, expected=self.options.fingerprint
        )
        await asyncio.to_thread(save_pairing, pairing)

    def page(self, page_id: object) -> tuple[PageRelay, str]:
        """The page with this id, or a fresh one and why the asked-for one is gone."""
        if isinstance(page_id, str) and page_id in self.pages:
            return self.pages[page_id], ""
        why = self.ended.pop(page_id, "") if isinstance(page_id, str) else ""
        fresh = secrets.token_urlsafe(16)
        self.pages[fresh] = PageRelay(fresh, self)
        return self.pages[fresh], why

    def forget(self, page_id: str, why: str) -> None:
        self.pages.pop(page_id, None)
        if why:
            self.ended[page_id] = why
            while len(self.ended) > ENDED_KEPT:
                del self.ended[next(iter(self.ended))]

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            log.warning("refused a page socket from origin %r", request.headers.get("Origin"))
            return web.Response(status=403, text="only this relay's own page may connect")
        ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        page: PageRelay | None = None
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    if not isinstance(data, dict):
                        continue
                    if data.get("type") == "hello":
                        if page is not None:
                            page.detach(ws)
                        page, ended = self.page(data.get("page"))
                        page.attach(ws, ended=ended)
                    elif page is not None and page.port.owns(ws):
                        await _guarded(page, page.on_text, data)
                elif msg.type == WSMsgType.BINARY and page is not None and page.port.owns(ws):
                    await _guarded(page, page.on_bytes, msg.data)
        finally:
            # A superseded socket's end is not the page's: the page lives on the new one.
            if page is not None:
                page.detach(ws)
                if not page.running and not page.port.attached:
                    self.pages.pop(page.page_id, None)  # nothing to pick up again
        return ws

    async def aclose(self) -> None:
        for page in list(self.pages.values()):
            await page.aclose()


async def _guarded(page: PageRelay, handle: Callable[[Any], Any], message: Any) -> None:
    """One page message handled; a malformed one is said to the page, the socket goes on."""
    try:
        handled = handle(message)
        if inspect.isawaitable(handled):
            await handled
    except (WireError, ValueError, TypeError, OverflowError) as e:
        page.port.send_json({"type": "error", "where": "wire", "message": str(e)})


def _control_for(msg: dict[str, Any]) -> pb.Control | None:
    action, value = msg.get("action"), msg.get("value")
    if action == "mode" and value in MODES:
        return pb.Control(set_mode=MODES[str(value)])
    if action == "stop_speaking":
        return pb.Control(stop_speaking=pb.StopSpeakingNow())
    if action == "ask":
        return pb.Control(ask_now=pb.AskNow(question=str(value or "")))
    if action == "pause":
        return pb.Control(pause_watching=value is True)
    return None


def _location(msg: dict[str, Any]) -> pb.Location:
    def num(key: str) -> float:
        value = msg.get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    return pb.Location(
        lat=num("lat"),
        lon=num("lon"),
        accuracy_m=num("accuracy"),
        heading_deg=num("heading"),
        speed_mps=num("speed"),
        time_ms=int(num("time")),
    )


def _static_dir() -> Path:
    return Path(str(resources.files("mobile_bridge.web") / "static"))


@web.middleware
async def _headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    if not isinstance(response, web.WebSocketResponse):
        response.headers.update(SECURITY_HEADERS)
        response.headers["Content-Security-Policy"] = content_security_policy(request.host)
    return response


def build_app(relay: Relay) -> web.Application:
    static = _static_dir()

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(static / "index.html")

    app = web.Application(middlewares=[_headers])
    app.router.add_get("/", index)
    app.router.add_get("/ws", relay.socket)
    app.router.add_static("/static/", static)

    async def closing(app: web.Application) -> None:
        await relay.aclose()

    app.on_shutdown.append(closing)
    return app


@contextlib.asynccontextmanager
async def serve(
    relay: Relay, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> Any:
    """The relay listening (port 0: any free one); yields the page's address."""
    runner = web.AppRunner(build_app(relay))
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = runner.addresses[0][1]  # the port actually bound (port 0: the one picked)
    scheme = "https" if ssl_context is not None else "http"
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"{scheme}://{shown}:{bound}/"
    finally:
        await runner.cleanup()
