"""Build and run the grpc.aio server: Companion, health and reflection."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

from server.session.services import SessionServices
from server.transport.auth import TokenVerifier
from server.transport.servicer import CompanionServicer

__all__ = ["GrpcServer"]

log = logging.getLogger(__name__)

_CLEANUP_S = 5.0  # how long stop() waits for cancelled sessions to close
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Companion"].full_name


class GrpcServer:
    def __init__(self, services: SessionServices, verifier: TokenVerifier | None = None) -> None:
        cfg = services.settings.server
        self.services = services
        limit = cfg.max_message_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ]
        )
        self.servicer = CompanionServicer(services, verifier)
        pb_grpc.add_CompanionServicer_to_server(self.servicer, self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        address = f"{host}:{port}"
        cfg = self.services.settings.server
        try:
            if cfg.tls_cert and cfg.tls_key:
                creds = _server_credentials(cfg.tls_key, cfg.tls_cert)
                self.port = self.server.add_secure_port(address, creds)
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError as e:  # grpcio raises this when it cannot bind
            raise OSError(f"cannot listen on {address}: {e}") from e
        if not self.port:
            raise OSError(f"cannot listen on {address}: the port is in use or the host is wrong")
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Clients get a GoAway (with their resume token in hand) before the grace runs out.
        self.servicer.drain(reconnect_after_ms=int((grace or 0) * 1000) + 1000)
        await self.server.stop(grace)
        # grpc cancels the calls still open after the grace; their sessions then
        # close their model and agent work. Only after that may the app shut down
        # the pools those closes run in.
        if not await self.servicer.wait_closed(_CLEANUP_S):
            log.warning("sessions still closing %.0f s after the grace period", _CLEANUP_S)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


def _server_credentials(key_path: str, cert_path: str) -> grpc.ServerCredentials:
    with open(key_path, "rb") as k, open(cert_path, "rb") as c:
        return grpc.ssl_server_credentials([(k.read(), c.read())])
