"""The bridge's way to a Murmur server: options, one open channel, pairing.

``connect`` tries each of the server's addresses in turn (TLS pinned to the
certificate learned at pairing, or verified by a CA) and says in one line why none
answered — asking the port itself, because grpc only says "Socket closed" when a
TLS server hangs up on plaintext. ``pair`` trades a one-time code for a device
token over such a connection. ``BridgeLink`` (link.py) holds the stream on top.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

from mobile_bridge.errors import PAIR_HINT, LinkError, explain_status, speaks_tls
from mobile_bridge.tls import ServerPin, fetch_certificate, pinned_credentials, verify_pin

__all__ = [
    "CLIENT_NAME",
    "DEVICE_HEADER",
    "Backoff",
    "Connection",
    "LinkOptions",
    "PairedDevice",
    "call_metadata",
    "connect",
    "hear_refusal",
    "lost_transport",
    "pair",
]

try:
    __version__ = importlib.metadata.version("murmur")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"
CLIENT_NAME = f"murmur-bridge/{__version__}"
CLIENT_NAME = f"murmur-bridge/{__version__}"


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnect tries: ``initial_s`` × ``factor``ⁿ, capped at ``max_s``,
    less up to ``jitter`` of itself at random (so a roomful of phones does not come
    back in step after a server restart)."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    jitter: float = 0.5

    def delay(self, attempt: int, rand: float) -> float:
        """The wait before reconnect try ``attempt`` (1, 2, …) in a row; ``rand`` is
        uniform in [0, 1)."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))
        return base * (1.0 - self.jitter * rand)


@dataclass
class LinkOptions:
    """Where and how to reach the server."""

    target: str = "127.0.0.1:50051"
    alternates: tuple[str, ...] = ()  # the same server's other addresses, tried in turn
    token: str | None = field(default=None, repr=False)  # a credential: never in a repr
    pin: ServerPin | None = None  # TLS trusting only this certificate (from pairing)
    tls: bool = False  # TLS verified by --ca or the system's roots (ignored with a pin)
    ca_file: str | Path | None = None
    connect_timeout_s: float = 5.0
    max_reconnects: int = 12  # tries in a row that get no SessionReady, then give up
    backoff: Backoff = field(default_factory=Backoff)
    outbox_size: int = 512
    stale_audio_s: float = 1.0  # after a reconnect, queued audio older than this is dropped

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.target, *(a for a in self.alternates if a != self.target))

    @property
    def secure(self) -> bool:
        return self.pin is not None or self.tls


@dataclass
class Connection:
    """An open channel to one of the server's addresses."""

    channel: grpc.aio.Channel
    target: str
    certificate_pem: str = ""  # what the server presented, when pinned


async def _open(options: LinkOptions, target: str) -> Connection:
    if options.pin is not None:
        pem = await verify_pin(target, options.pin, options.connect_timeout_s)
        creds, channel_options = pinned_credentials(pem, target)
        return Connection(grpc.aio.secure_channel(target, creds, channel_options), target, pem)
    return _unpinned(options, target)


def _unpinned(options: LinkOptions, target: str) -> Connection:
    if not options.tls:
        return Connection(grpc.aio.insecure_channel(target), target)
    root: bytes | None = None
    if options.ca_file:
        path = Path(options.ca_file)
        if not path.is_file():
            raise LinkError(f"CA file not found: {path}")
        root = path.read_bytes()
    creds = grpc.ssl_channel_credentials(root_certificates=root)
    return Connection(grpc.aio.secure_channel(target, creds), target)


async def _ready(conn: Connection, options: LinkOptions) -> None:
    """Until the channel is connected; fails fast (not a timeout) when it cannot be."""
    channel, target = conn.channel, conn.target
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.connect_timeout_s
    state = channel.get_state(try_to_connect=True)
    while state is not grpc.ChannelConnectivity.READY:
        if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            raise await _why_not(options, target)
        try:
            await asyncio.wait_for(
                channel.wait_for_state_change(state), max(0.0, deadline - loop.time())
            )
        except TimeoutError:
            raise LinkError(
                explain_status(
                    grpc.StatusCode.UNAVAILABLE,
                    f"no answer within {options.connect_timeout_s:g} s",
                    target,
                    tls=options.secure,
                ),
                grpc.StatusCode.UNAVAILABLE,
                retryable=True,
            ) from None
        state = channel.get_state(try_to_connect=True)


async def _why_not(options: LinkOptions, target: str) -> LinkError:
    """Why a channel failed, asking the port itself: grpc says only "Socket closed"
    when a TLS server hangs up on plaintext, and "handshake failed" for any TLS fault."""
    unavailable = grpc.StatusCode.UNAVAILABLE
    if options.pin is None:  # (with a pin the certificate was just fetched and checked)
        try:
            await fetch_certificate(target, options.connect_timeout_s)
        except LinkError as e:
            if not e.retryable:
                return e  # it answered, without TLS
        else:
            if not options.secure:
                return LinkError(speaks_tls(target), unavailable)
            trusted = f"--ca {options.ca_file}" if options.ca_file else "the system's roots"
            return LinkError(
                f"the server at {target} presented a certificate that {trusted} does not "
                f"vouch for. A Murmur server's own certificate is trusted by pairing: "
                f"{PAIR_HINT}",
                unavailable,
            )
    return LinkError(
        explain_status(unavailable, "connection failed", target, tls=options.secure),
        unavailable,
        retryable=True,
    )


async def connect(options: LinkOptions) -> Connection:
    """The first of the server's addresses that answers (in order).

    Raises ``LinkError``: when every address fails, the first address's reason (with
    the others' appended); at once when one refuses in a way another address cannot
    fix, such as a certificate that does not match the pin.
    """
    failures: list[LinkError] = []
    for target in options.addresses:
        try:
            conn = await _open(options, target)
        except LinkError as e:
            if not e.retryable and e.code is None:
                raise  # a wrong certificate or a missing CA file: no address helps
            failures.append(e)
            continue
        try:
            await _ready(conn, options)
        except LinkError as e:
            await conn.channel.close()
            failures.append(e)
            continue
        return conn
    first = failures[0]
    others = "".join(f"\n  also: {e}" for e in failures[1:])
    raise LinkError(
        f"{first}{others}", first.code, first.details, retryable=any(e.retryable for e in failures)
    )


def lost_transport(code: grpc.StatusCode, details: str) -> bool:
    """The connection died under the call (so resuming may help).

    UNAVAILABLE is the usual word; when a TLS connection is reset mid-read the
    client's own core sometimes says INTERNAL "Internal error from Core" instead,
    which no server sends (the server's INTERNAL carries its own message).
    """
    return code is grpc.StatusCode.UNAVAILABLE or (
        code is grpc.StatusCode.INTERNAL and details.startswith("Internal error from Core")
    )


async def hear_refusal(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], wait_s: float
) -> grpc.aio.AioRpcError | None:
    """The status of a server that refuses a call before its first message, heard on a
    call that sends none.

    When a server ends a call as the client's first write goes out, grpc.aio may
    report that write's failure, INTERNAL "Internal error from Core", in place of
    the status the server sent (grpc/grpc#36066); a call that writes nothing cannot
    lose it so. A server that refuses the token refuses this one at once; one that
    does not waits for SessionStart and is left after ``wait_s`` (None).
    """
    probe = pb_grpc.CompanionStub(channel).Converse(metadata=metadata)
    try:
        async with asyncio.timeout(wait_s):
            await probe.read()
    except grpc.aio.AioRpcError as e:
        if not lost_transport(e.code(), e.details() or ""):
            return e
    except TimeoutError:
        pass
    finally:
        probe.cancel()
    return None


# The device's id, on every call: what a balancer in front of a fleet of servers keeps
# a device's calls together by (deploy/k8s/envoy.yaml hashes on it). The id is the
# public part of the token, in front of its dot; servers ignore the header.
DEVICE_HEADER = "x-murmur-device"


def call_metadata(options: LinkOptions) -> tuple[tuple[str, str], ...]:
    if not options.token:
        return ()
    metadata = [("authorization", f"Bearer {options.token}")]
    device_id, dot, _ = options.token.partition(".")
    if dot and device_id:
        metadata.append((DEVICE_HEADER, device_id))
    return tuple(metadata)


@dataclass(frozen=True)
class PairedDevice:
    """What ``Pair`` gave this bridge, and where it was given."""

    device_id: str
    token: str = field(repr=False)
    target: str = ""
    certificate_pem: str = field(default="", repr=False)


async def pair(options: LinkOptions, code: str, device_name: str) -> PairedDevice:
    """Trade a one-time pairing code for a device token (over ``options``, pinned)."""
    conn = await connect(options)
    async with conn.channel as channel:
        stub = pb_grpc.CompanionStub(channel)
        try:
            resp = await stub.Pair(
                pb.PairRequest(code=code, device_name=device_name),
                timeout=options.connect_timeout_s * 2,
            )
        except grpc.aio.AioRpcError as e:
            code_, details = e.code(), e.details() or ""
            raise LinkError(
                explain_status(code_, details, conn.target, tls=options.secure), code_, details
            ) from e
    if not resp.device_token:
        raise LinkError(f"the server at {conn.target} answered Pair without a device token")
    return PairedDevice(resp.device_id, resp.device_token, conn.target, conn.certificate_pem)
