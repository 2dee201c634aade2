"""A Companion server on loopback, its certificate, and the network between it and the
bridge."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
import numpy as np
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

from mobile_bridge.media import OpusPacketizer

__all__ = [
    "BRIDGE_SAY",
    "FakeCompanion",
    "SelfSignedCert",
    "TcpProxy",
    "companion_server",
    "self_signed_cert",
]

BRIDGE_SAY = "Door ahead, slightly right."


def _tone_packets(rate: int, n: int) -> list[bytes]:
    t = np.arange(rate * n * 20 // 1000) / rate
    pcm = (np.sin(2 * np.pi * 330 * t) * 9000).astype(np.int16)
    return list(OpusPacketizer(rate).packets(pcm))


@dataclass
class FakeCompanion(pb_grpc.CompanionServicer):
    """A Companion server's behaviour at the wire, with knobs for what goes wrong.

    Sessions resume as the real server's do: a known resume token gets its session
    back; an unknown one (``name`` differs after a "restart") gets a fresh session and
    one ``session.resume_unknown`` Notice. On the first frame of a call it speaks: a
    Tick, a Speech and 3 Opus packets, the last flagged.
    """

    token: str | None = None  # required bearer token (None: any)
    pair_code: str = "123456"
    name: str = ""  # prefixes session ids and resume tokens: a restarted server differs
    drop_after_frames: int | None = None  # first call: abort UNAVAILABLE after this many frames
    go_away_first_call: bool = False  # end the first call with GoAway after SessionReady
    refuse_calls: frozenset[int] = frozenset()  # these calls (1-based) get UNAVAILABLE at once
    cut: bool = False  # barge in: StopSpeaking after two packets, no `last`
    calls: list[list[pb.ClientEvent]] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    pairs: list[pb.PairRequest] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)  # resume token → session id

    async def Pair(
        self, request: pb.PairRequest, context: grpc.aio.ServicerContext
    ) -> pb.PairResponse:
        self.pairs.append(request)
        if request.code != self.pair_code:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "wrong pairing code")
        return pb.PairResponse(device_token="tok-" + request.device_name, device_id="dev-1")

    async def Converse(self, request_iterator, context: grpc.aio.ServicerContext) -> None:  # type: ignore[no-untyped-def,override]
        md = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        self.metadata.append(md)
        if self.token is not None and md.get("authorization") != f"Bearer {self.token}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the device token is not valid")
        seen: list[pb.ClientEvent] = []
        self.calls.append(seen)
        n = len(self.calls)
        first = await context.read()
        assert first is not grpc.aio.EOF
        seen.append(first)
        if n in self.refuse_calls:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "backend restarting")
        if first.WhichOneof("event") != "session_start":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "send session_start first")
        await self._ready(first.session_start.resume_token, context)
        if self.go_away_first_call and n == 1:
            await context.write(
                pb.ServerEvent(go_away=pb.GoAway(reconnect_after_ms=50, reason="upgrading"))
            )
            return
        drop = self.drop_after_frames if n == 1 else None
        frames, spoken = 0, False
        if drop == 0:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "backend restarting")
        while (msg := await context.read()) is not grpc.aio.EOF:
            seen.append(msg)
            if msg.WhichOneof("event") != "video_frame":
                continue
            frames += 1
            if frames == drop:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "network dropped")
            if not spoken:
                spoken = True
                await self._speak(context)

    def frames(self) -> list[tuple[int, int]]:
        """(call number, frame seq) of every frame received, in order."""
        return [
            (n, e.video_frame.seq)
            for n, call in enumerate(self.calls, 1)
            for e in call
            if e.HasField("video_frame")
        ]

    async def _ready(self, resume_token: str, context: grpc.aio.ServicerContext) -> None:
        session_id = self.sessions.get(resume_token) if resume_token else None
        if session_id is None:
            k = len(set(self.sessions.values())) + 1
            session_id = f"{self.name}s{k}"
            resume_token, unknown = f"{self.name}resume-{k}", bool(resume_token)
            self.sessions[resume_token] = session_id
        else:
            unknown = False
        await context.write(
            pb.ServerEvent(
                session_ready=pb.SessionReady(
                    session_id=session_id, resume_token=resume_token, model="fake", tick_hz=1.0
                )
            )
        )
        if unknown:
            await context.write(
                pb.ServerEvent(
                    notice=pb.Notice(
                        code="session.resume_unknown",
                        message="the resume token is not known to this server",
                        component="session",
                    )
                )
            )

    async def _speak(self, context: grpc.aio.ServicerContext) -> None:
        await context.write(
            pb.ServerEvent(
                tick=pb.Tick(
                    tick_s=0.0,
                    action="response",
                    text=BRIDGE_SAY,
                    frame_age_ms=12.0,
                    timings=[pb.StageTiming(stage="model", ms=40.0)],
                )
            )
        )
        await context.write(
            pb.ServerEvent(
                speech=pb.Speech(
                    utterance_id="u1", text=BRIDGE_SAY, kind=pb.SPEECH_KIND_ALERT, priority=5
                )
            )
        )
        for seq, packet in enumerate(_tone_packets(24000, 3)):
            await asyncio.sleep(0.01)
            if self.cut and seq == 2:
                await context.write(
                    pb.ServerEvent(
                        stop_speaking=pb.StopSpeaking(utterance_ids=["u1"], reason="barge_in")
                    )
                )
                return
            await context.write(
                pb.ServerEvent(audio_out=pb.AudioOut(utterance_id="u1", seq=seq, data=packet))
            )
        await context.write(
            pb.ServerEvent(audio_out=pb.AudioOut(utterance_id="u1", seq=3, last=True))
        )


@dataclass(frozen=True)
class SelfSignedCert:
    """A certificate like a Murmur server's own (SAN ``murmur-server``), made in the test."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(self.cert_pem.decode())).hexdigest()


def self_signed_cert() -> SelfSignedCert:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "murmur-server")])
    now = datetime.datetime.now(datetime.UTC)
    sans = [
        x509.DNSName("murmur-server"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return SelfSignedCert(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@asynccontextmanager
async def companion_server(
    servicer: pb_grpc.CompanionServicer, *, tls: SelfSignedCert | None = None
) -> AsyncIterator[str]:
    """A real ``grpc.aio`` server on a loopback port; its address."""
    server = grpc.aio.server()
    pb_grpc.add_CompanionServicer_to_server(servicer, server)
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
        port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


class TcpProxy:
    """A loopback TCP relay between bridge and server that can drop the network:
    ``cut()`` resets every connection and refuses new ones until ``mend()``, which
    may point it at another server (a restart elsewhere)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        await self.mend()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cut()

    async def mend(self, upstream: str | None = None) -> None:
        self.upstream = upstream or self.upstream
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._live):
            w.transport.abort()
        for t in list(self._pipes):
            t.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        host, port = self.upstream.rsplit(":", 1)
        try:
            up_r, up_w = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.transport.abort()
            return
        self._live.update((writer, up_w))
        for src, dst in ((reader, up_w), (up_r, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            self._live.discard(dst)
            dst.transport.abort()
