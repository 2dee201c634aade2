"""A real server on port 0 and a real client with the generated stubs.

``running_server`` wires the app exactly as ``murmur serve`` does, with the
backends a test injects (a scripted model, the bundled Piper voice). ``Client``
drives one ``Converse`` stream with ``write()``/``read()`` only.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import opuslib_next as opus
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc
from PIL import Image

from server.app import Overrides, build_app
from server.config import Settings
from server.pairing.service import PairingService
from server.runtime.base import InteractionRuntime
from server.runtime.scripted import ScriptedRuntime, ScriptLine
from server.storage.sqlite import DB_NAME, SqliteDeviceStore
from server.transport.security import Security, build_pairing
from server.transport.server import GrpcServer
from server.voice.tts.piper import PiperTTS

__all__ = [
    "NAME_OVERRIDE",
    "Client",
    "Secure",
    "jpeg",
    "piper_tts",
    "running_server",
    "scripted",
    "secure_server",
    "serving_address",
    "stop_process",
    "write_script",
]


def piper_tts() -> PiperTTS:
    return PiperTTS()


def scripted(*lines: tuple[float, str]) -> ScriptedRuntime:
    return ScriptedRuntime([ScriptLine(at, out) for at, out in lines])


def write_script(path: Path, *lines: tuple[float, str]) -> Path:
    path.write_text("".join(json.dumps({"at": at, "output": out}) + "\n" for at, out in lines))
    return path


def jpeg(w: int = 320, h: int = 240, shade: int = 90) -> bytes:
    img = Image.new("RGB", (w, h), (shade, shade + 30, 150))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


@dataclass
class Running:
    address: str
    server: GrpcServer
    app: Any

    @property
    def sessions(self) -> set[Any]:
        return self.server.servicer.sessions


@asynccontextmanager
async def running_server(
    runtime: InteractionRuntime,
    tts: Any,
    settings: Settings | None = None,
    **app_kwargs: Any,
) -> AsyncIterator[Running]:
    settings = settings or Settings()
    # What a test does not inject, it does not get: no Whisper, no agent.
    if app_kwargs.get("listener_factory") is None:
        settings = settings.with_overrides("voice", asr="none")
    if app_kwargs.get("delegations") is None:
        settings = settings.with_overrides("agent", backend="")
    app = build_app(settings, Overrides(runtime=runtime, tts=tts, **app_kwargs))
    server = GrpcServer(app.services)
    port = await server.start("127.0.0.1", 0)
    await server.warm_up()
    try:
        yield Running(f"127.0.0.1:{port}", server, app)
    finally:
        await server.stop(0.5)
        app.services.executors.shutdown()


NAME_OVERRIDE = (("grpc.ssl_target_name_override", "murmur-server"),)


@dataclass
class Secure:
    address: str
    security: Security
    server: GrpcServer
    state_dir: Path
    app: Any

    @property
    def cert_pem(self) -> bytes:
        assert self.security.tls is not None
        return self.security.tls.cert_pem

    @property
    def pairing(self) -> PairingService:
        assert self.security.pairing is not None
        return self.security.pairing

    def channel(self) -> grpc.aio.Channel:
        creds = grpc.ssl_channel_credentials(root_certificates=self.cert_pem)
        return grpc.aio.secure_channel(self.address, creds, options=NAME_OVERRIDE)

    async def issue(self, ttl_s: float = 600.0) -> str:
        # As `murmur pair` does: its own connection to the shared registry.
        cli = PairingService(SqliteDeviceStore(self.state_dir / DB_NAME, create=False))
        try:
            return (await asyncio.to_thread(cli.issue_code, ttl_s)).code
        finally:
            await asyncio.to_thread(cli.close)

    async def revoke(self, device_id: str) -> bool:
        cli = PairingService(SqliteDeviceStore(self.state_dir / DB_NAME, create=False))
        try:
            return await asyncio.to_thread(cli.revoke, device_id)
        finally:
            await asyncio.to_thread(cli.close)


@asynccontextmanager
async def secure_server(
    tmp_path: Path,
    tts: Any,
    runtime: InteractionRuntime | None = None,
    *,
    host: str = "127.0.0.1",
    server: dict[str, Any] | None = None,
    **app_kwargs: Any,
) -> AsyncIterator[Secure]:
    """A server as `murmur serve` runs it: generated TLS certificate, SQLite registry,
    device tokens required. `issue()` plays the part of `murmur pair`. ``host``: another
    loopback address (``::1``); ``server``: other [server] settings."""
    state = tmp_path / "state"
    settings = (
        Settings()
        .with_overrides("server", tick_hz=5.0, frame_wait_ms=20, **(server or {}))
        .with_overrides("pairing", state_dir=str(state))
        .with_overrides("voice", asr="none")
    )
    if app_kwargs.get("delegations") is None:
        settings = settings.with_overrides("agent", backend="")
    security = build_pairing(settings)
    app = build_app(settings, Overrides(runtime=runtime or scripted(), tts=tts, **app_kwargs))
    grpc_server = GrpcServer(app.services, verifier=security.pairing, tls=security.tls)
    port = await grpc_server.start(host, 0)
    await grpc_server.warm_up()
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        yield Secure(address, security, grpc_server, state, app)
    finally:
        await grpc_server.stop(0.5)
        app.services.executors.shutdown()
        security.close()


def session_start(**kw: Any) -> pb.ClientEvent:
    kw.setdefault("client_name", "tests")
    return pb.ClientEvent(session_start=pb.SessionStart(**kw))


@dataclass
class Client:
    """One Converse stream. Events are collected by a reader task as they arrive."""

    address: str
    metadata: tuple[tuple[str, str], ...] = ()
    events: list[pb.ServerEvent] = field(default_factory=list)
    arrived_at: list[float] = field(default_factory=list)  # time.perf_counter() per event

    async def __aenter__(self) -> Client:
        self.channel = grpc.aio.insecure_channel(self.address)
        self.stub = pb_grpc.CompanionStub(self.channel)
        self.call = self.stub.Converse(metadata=self.metadata or None)
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._reader.cancel()
        self.call.cancel()
        await self.channel.close()

    async def _read(self) -> None:
        try:
            while True:
                msg = await self.call.read()
                if msg is grpc.aio.EOF:
                    return
                async with self._arrived:
                    self.arrived_at.append(time.perf_counter())
                    self.events.append(msg)
                    self._arrived.notify_all()
        except grpc.aio.AioRpcError:
            return
        finally:
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, event: pb.ClientEvent) -> None:
        await self.call.write(event)

    async def start(self, **kw: Any) -> pb.SessionReady:
        await self.send(session_start(**kw))
        return await self.wait_for("session_ready")

    async def frame(self, seq: int, data: bytes | None = None) -> None:
        await self.send(
            pb.ClientEvent(
                video_frame=pb.VideoFrame(seq=seq, capture_time_ms=seq * 1000, data=data or jpeg())
            )
        )

    async def finish(self) -> grpc.StatusCode:
        await self.call.done_writing()
        await self._reader
        return await self.call.code()

    def of(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]

    def kinds(self) -> list[str]:
        return [e.WhichOneof("event") for e in self.events]

    async def wait_for(
        self, kind: str, count: int = 1, within_s: float = 10.0, pred: Any = None
    ) -> Any:
        def matches() -> list[Any]:
            return [x for x in self.of(kind) if pred is None or pred(x)]

        async with asyncio.timeout(within_s), self._arrived:
            while len(matches()) < count:
                if self._reader.done():
                    raise AssertionError(f"stream ended before {count} {kind}; got {self.kinds()}")
                await self._arrived.wait()
        return matches()[count - 1]


def decode_opus(packets: list[bytes], rate: int = 24000) -> np.ndarray:
    dec = opus.Decoder(rate, 1)
    pcm = [np.frombuffer(dec.decode(p, rate * 120 // 1000), dtype="<i2") for p in packets if p]
    return np.concatenate(pcm) if pcm else np.zeros(0, dtype=np.int16)


def live_threads(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


async def serving_address(proc: asyncio.subprocess.Process, within_s: float = 90.0) -> str:
    """Where a `murmur serve` subprocess listens, read from its "serving … on" line."""
    assert proc.stdout is not None
    async with asyncio.timeout(within_s):
        while line := (await proc.stdout.readline()).decode():
            if m := re.search(r"serving .* on ([\d.]+:\d+)", line):
                return m.group(1)
    raise AssertionError("murmur serve exited before serving")


async def stop_process(proc: asyncio.subprocess.Process, grace_s: float = 15.0) -> None:
    """SIGTERM, as a service manager stops the server; SIGKILL if it outstays ``grace_s``."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
