"""Exit 0 when the Murmur server on this machine answers SERVING, else 1.

The container image's HEALTHCHECK runs it. It asks the standard gRPC health service
(README "Watching it"), which says SERVING only once the model's warm-up step has run
and NOT_SERVING again while the server drains. Where to ask comes from the same
settings ``murmur serve`` reads (``--config FILE``, then ``MURMUR_*``), so set the
port as ``MURMUR_SERVER_PORT`` rather than as a flag on the command line for the probe
to follow it. TLS is pinned to the certificate the server serves (its own self-signed
one in the state directory, or ``[server] tls_cert``): the probe trusts nothing else
and sends no device token (health needs none).

    python deploy/healthcheck.py [--config FILE] [--timeout S]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mobile_bridge.errors import LinkError
from mobile_bridge.tls import pinned_credentials
from server.config import Settings, load_settings
from server.pairing.tls import CERT_NAME
from server.transport.security import state_dir

__all__ = ["main", "probe_address"]

_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


def probe_address(settings: Settings) -> str:
    """HOST:PORT to ask: the listening host, loopback for a wildcard bind."""
    host = settings.server.host
    host = _WILDCARDS.get(host, host).strip("[]")
    return f"[{host}]:{settings.server.port}" if ":" in host else f"{host}:{settings.server.port}"


def _channel(settings: Settings, address: str) -> grpc.Channel:
    cfg = settings.server
    if cfg.no_auth:
        return grpc.insecure_channel(address)
    cert = Path(cfg.tls_cert).expanduser() if cfg.tls_cert else state_dir(settings) / CERT_NAME
    creds, options = pinned_credentials(cert.read_text("ascii"), address)
    return grpc.secure_channel(address, creds, options=options)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Is the Murmur server here SERVING?")
    p.add_argument("--config", help="the TOML settings file serve was given, if any")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config)
        address = probe_address(settings)
        channel = _channel(settings, address)
    except (OSError, ValueError, LinkError) as e:  # no certificate yet: first start not done
        print(f"murmur health: {e}", file=sys.stderr)
        return 1
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=args.timeout
            )
        except grpc.RpcError as e:
            print(f"murmur health: {address}: {e.code().name} {e.details() or ''}".rstrip())
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"murmur health: {address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
