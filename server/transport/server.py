"""Build and run the grpc.aio server: Companion, health and reflection.

``GrpcServer(services, verifier, tls)``: with a verifier (the pairing service) every
``Converse`` needs a device token and a watcher ends the sessions of devices revoked
while they are connected; with ``tls`` the port speaks only TLS. ``None``/``None`` is
development mode (loopback, tests): plaintext, and everyone is ``anonymous``.
Health answers NOT_SERVING from ``start`` until ``warm_up`` has run the model's first
step, and again from ``stop``; while started, ``murmur_sessions`` counts its sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from murmur.v1 import companion_pb2 as pb

from server.errors import MurmurError
from server.pairing.tls import TlsIdentity
from server.session.services import SessionServices
from server.telemetry.metrics import SESSIONS
from server.transport.auth import HOW_TO_PAIR, DeviceGate
from server.transport.servicer import CompanionServicer, add_to_server

__all__ = ["GrpcServer"]

log = logging.getLogger(__name__)

_CLEANUP_S = 5.0  # how long stop() waits for cancelled sessions to close
REVOCATION_POLL_S = 2.0  # `murmur devices revoke` runs in another process: poll the registry
REVOKED_MESSAGE = (
    "this device was revoked on the server (`murmur devices revoke`); to pair it again, "
)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Companion"].full_name


class GrpcServer:
    def __init__(
        self,
        services: SessionServices,
        verifier: DeviceGate | None = None,
        tls: TlsIdentity | None = None,
    ) -> None:
        cfg = services.settings.server
        self.services = services
        self.verifier = verifier
        self.tls = tls
        self._watcher: asyncio.Task[None] | None = None
        limit = cfg.max_message_bytes
        self.server = grpc.aio.server(
            options=[
                # gRPC's own limit, exactly: a larger message ends the call with
                # RESOURCE_EXHAUSTED every time. (A server-side check of our own would
                # end it while the client may still be writing, and grpcio's client then
                # sometimes reports its failed write, INTERNAL, instead: grpc/grpc#36066.)
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ]
        )
        self.servicer = CompanionServicer(services, verifier)
        add_to_server(self.servicer, self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port = 0
        self._unwatch: Callable[[], None] = lambda: None

    async def start(self, host: str, port: int) -> int:
        # An IPv6 literal needs brackets: grpc reads "::1:0" as host "::0.1.0.0", port 443.
        address = (
            f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
        )
        try:
            if self.tls is not None:
                creds = grpc.ssl_server_credentials([(self.tls.key_pem, self.tls.cert_pem)])
                self.port = self.server.add_secure_port(address, creds)
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError as e:  # grpcio raises this when it cannot bind
            raise OSError(f"cannot listen on {address}: {e}") from e
        if not self.port:
            raise OSError(f"cannot listen on {address}: the port is in use or the host is wrong")
        # Until ``warm_up`` has run: the port answers, the model is not ready yet.
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        self._unwatch = SESSIONS.watch(self._session_states)
        if self.verifier is not None:
            self._watcher = asyncio.create_task(
                self._watch_revocations(self.verifier), name="murmur-revocations"
            )
        return self.port

    async def warm_up(self) -> None:
        """The model's throwaway first step, in its thread; health says SERVING only
        after it (until then NOT_SERVING: a balancer or a bridge waits, and the first
        real tick is not the slow one)."""
        runtime = self.services.runtime
        await asyncio.get_running_loop().run_in_executor(runtime.executor, runtime.warm_up)
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def _session_states(self) -> list[tuple[str, str]]:
        # Runs in the metrics thread: the registry's set is one snapshot, then attributes.
        return [
            (s.parts.engine.profile.mode.value, "attached" if s.attached else "detached")
            for s in self.servicer.sessions
        ]

    async def _watch_revocations(self, gate: DeviceGate) -> None:
        """End the live sessions of every revoked device, looking at all of them on each
        poll, not only the newly revoked: a call that passed ``authenticate`` just
        before a revocation registers its session after the poll that saw it."""
        while True:
            await asyncio.sleep(REVOCATION_POLL_S)
            try:
                revoked = await gate.revoked_ids()
            except MurmurError as e:  # a busy registry: look again next time
                log.warning("cannot check for revoked devices: %s", e.message)
                continue
            except Exception:  # a bug must not end the watching silently
                log.exception("checking for revoked devices failed; trying again")
                continue
            ended = self.servicer.end_devices(revoked, REVOKED_MESSAGE + HOW_TO_PAIR)
            for device_id, count in sorted(ended.items()):
                log.info("device %s revoked; ended %d live session(s)", device_id, count)

    async def stop(self, grace: float | None = None) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._unwatch()
        # In a fleet, the sessions go to the shared store and their bridges to another
        # frontend now, not after the grace.
        handed = await self.servicer.hand_over()
        if handed:
            log.info("handed %d session(s) over to the fleet store", handed)
        # Clients get a GoAway (with their resume token in hand) before the grace runs out.
        self.servicer.drain(reconnect_after_ms=int((grace or 0) * 1000) + 1000)
        await self.server.stop(grace)
        # grpc cancels the calls still open after the grace; their sessions then
        # close their model and agent work. Only after that may the app shut down
        # the pools those closes run in.
        if not await self.servicer.wait_closed(_CLEANUP_S):
            log.warning("calls still closing %.0f s after the grace period", _CLEANUP_S)
        # Sessions outlive their calls (for resume): the stopping server closes them.
        try:
            async with asyncio.timeout(_CLEANUP_S):
                await self.servicer.registry.aclose()
        except TimeoutError:
            log.warning("sessions still closing %.0f s after the grace period", _CLEANUP_S)

    async def wait(self) -> None:
        await self.server.wait_for_termination()
