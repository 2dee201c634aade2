"""``murmur``: the server's command line."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from server import __version__
from server.config import DEFAULT_MODEL, load_settings
from server.errors import ModelLoadError, MurmurError, StorageError

if TYPE_CHECKING:
    from server.config import Settings
    from server.pairing.service import PairingService

__all__ = ["main"]

log = logging.getLogger("murmur")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="murmur",
        description="Murmur: a self-hosted backend for AI glasses.",
    )
    p.add_argument("--version", action="version", version=f"murmur {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "serve",
        help="run the server",
        description=(
            "Serve glasses sessions over gRPC. --model picks the interaction model: a "
            f"Hugging Face id or local folder (default {DEFAULT_MODEL}, in-process with "
            "transformers), http://HOST:PORT/v1 (an OpenAI-compatible server such as vLLM), "
            "or scripted:FILE (replays a JSON Lines script; for building bridges and apps "
            "without a GPU, and for tests)."
        ),
    )
    _serve_options(s)
    _check_parsers(sub)
    _pairing_parsers(sub)
    return p


def _serve_options(p: argparse.ArgumentParser) -> None:
    """The settings flags `murmur serve` takes (and `murmur doctor` checks)."""
    p.add_argument("--model", help=f"model to serve (default {DEFAULT_MODEL})")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for your LAN)")
    p.add_argument("--port", type=int, help="port to listen on (default 50051; 0 = any free port)")
    p.add_argument("--config", help="TOML settings file (default ~/.config/murmur/server.toml)")
    p.add_argument("--tick-hz", type=float, help="model decisions per second (default 1)")
    p.add_argument("--device", help="model device: auto, cuda, cuda:1, cpu")
    p.add_argument("--dtype", help="model dtype: auto, bfloat16, float16, float32")
    p.add_argument(
        "--quantization",
        choices=["8bit", "4bit"],
        help="quantize a bf16 checkpoint as it loads (bitsandbytes, CUDA); for the official "
        "INT4 build pass --model jdopensource/JoyAI-VL-Interaction-INT4 instead",
    )
    p.add_argument("--tts", help="TTS fallback chain, comma-separated (default edge,piper,espeak)")
    p.add_argument("--no-asr", action="store_true", help="no speech input (text input only)")
    p.add_argument("--log-level", default=None, help="debug, info, warning (default info)")
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="development on loopback only: no TLS and no device tokens "
        "(refused with any --host but a loopback address)",
    )


def _check_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = sub.add_parser(
        "doctor",
        help="check this machine for `murmur serve` (with the same flags), each problem with its fix",
        description="One line per check (✓ fine, ! works with a fallback, ✗ stops serve): "
        "GPU memory for the model and quantization, model files and disk, ASR and TTS, the "
        "port, the certificate and device registry, Python. Exits 1 when serve would fail.",
    )
    _serve_options(d)
    g = sub.add_parser(
        "download",
        help="fetch a model into the Hugging Face cache before the first serve",
        description="Checks free disk against the model's size on the hub, then downloads "
        "with a progress bar. Interrupted? Run it again: it resumes.",
    )
    g.add_argument(
        "model", nargs="?", default=DEFAULT_MODEL, help=f"hub id (default {DEFAULT_MODEL})"
    )
    g.add_argument("--revision", help="branch, tag or commit (default main)")
    g.add_argument(
        "--cache-dir", help="cache folder (default HF_HUB_CACHE); serve with HF_HUB_CACHE=DIR"
    )


def _pairing_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    config = "TOML settings file (default ~/.config/murmur/server.toml)"
    p = sub.add_parser(
        "pair",
        help="issue a one-time code that pairs a phone (works while the server runs)",
        description="Print a one-time pairing code, the pairing URI and its QR code. "
        "On the phone: `murmur-bridge pair 'murmur://…'` (or scan the QR code).",
    )
    p.add_argument("--name", default="", help="name for the device this code pairs")
    p.add_argument(
        "--page",
        metavar="URL",
        help="the phone page's address (`murmur-bridge web`): the QR code opens it, paired",
    )
    p.add_argument(
        "--ttl", type=float, help="minutes the code works (default [pairing] code_ttl_s)"
    )
    p.add_argument("--config", help=config)
    d = sub.add_parser("devices", help="list, rename or revoke paired devices")
    d.add_argument("--config", help=config)
    dsub = d.add_subparsers(dest="action", required=True)
    dsub.add_parser("list", help="every paired device (never its token)")
    r = dsub.add_parser("rename", help="give a device another name")
    r.add_argument("id")
    r.add_argument("name")
    v = dsub.add_parser("revoke", help="revoke a device: its token stops working, its sessions end")
    v.add_argument("id")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "pair":
        return _pair(args)
    if args.command == "devices":
        return _devices(args)
    if args.command == "doctor":
        from server.doctor import doctor

        settings = _serve_settings(args)
        return settings if isinstance(settings, int) else doctor(settings)
    if args.command == "download":
        from server.download import download_command

        return download_command(args.model, revision=args.revision, cache_dir=args.cache_dir)
    return 2


def _serve_settings(args: argparse.Namespace) -> Settings | int:
    """The settings file and environment, then `_serve_options`' flags; 2 when unreadable."""
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as e:
        print(f"murmur: {e}", file=sys.stderr)
        return 2
    settings = settings.with_overrides(
        "server", host=args.host, port=args.port, tick_hz=args.tick_hz, log_level=args.log_level
    )
    if args.no_auth:
        settings = settings.with_overrides("server", no_auth=True)
    settings = settings.with_overrides(
        "model",
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        quantization=args.quantization,
    )
    if args.tts:
        settings = settings.with_overrides("voice", tts=tuple(args.tts.split(",")))
    if args.no_asr:
        settings = settings.with_overrides("voice", asr="none")
    return settings


def _serve(args: argparse.Namespace) -> int:
    from server.telemetry.logs import setup_logging

    settings = _serve_settings(args)
    if isinstance(settings, int):
        return settings
    setup_logging(settings.server.log_level, settings.server.log_format)
    try:
        return asyncio.run(_run(settings))
    except (ModelLoadError, StorageError) as e:
        print(f"murmur: cannot start: {e.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:  # the state directory, a certificate, --no-auth's host
        print(f"murmur: cannot start: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _run(settings) -> int:  # type: ignore[no-untyped-def]
    from server.app import build_app
    from server.session.services import Executors
    from server.transport.security import build_pairing
    from server.transport.server import GrpcServer

    cfg = settings.server
    loop = asyncio.get_running_loop()
    executors = Executors()  # every pool of the process (no thread runs before its first job)
    # Before the model: a broken registry or a refused --no-auth fails in a second.
    security = await loop.run_in_executor(None, build_pairing, settings, executors.registry)
    log.info("loading model %s", settings.model.model)
    # Loading can take minutes; do it off the loop so Ctrl-C still works.
    build = functools.partial(build_app, settings, executors=executors, security=security)
    try:
        app = await loop.run_in_executor(None, build)
    except BaseException:  # until the app owns the registry and the pools, they are ours
        security.close()
        executors.shutdown()
        raise
    server = GrpcServer(app.services, verifier=security.pairing, tls=security.tls)
    try:
        port = await server.start(cfg.host, cfg.port)  # health: NOT_SERVING
    except OSError as e:
        print(f"murmur: {e}", file=sys.stderr)
        await app.aclose()
        return 1
    app.serve_metrics()
    await server.warm_up()  # the first real tick is not the slow one; then SERVING
    if security.pairing is not None and security.tls is not None:
        # `murmur pair` reads where we listen from the registry, for its pairing URI.
        endpoint = settings.fleet.advertise or f"{cfg.host}:{port}"  # a fleet: its balancer
        await loop.run_in_executor(None, security.pairing.note_endpoint, endpoint)
        log.info(
            "TLS on (certificate sha256 %s); devices need a token: pair one with `murmur pair`",
            security.tls.fingerprint,
        )
    else:
        log.warning("--no-auth: no TLS and no device tokens (development on loopback only)")
    # The line tests and scripts wait for; keep its shape.
    print(f"murmur: serving {app.services.runtime.name} on {cfg.host}:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping (grace %.0f s)", cfg.grace_s)
    await server.stop(cfg.grace_s)  # sessions end and close their model and agent work
    await app.aclose()  # then agents, the registry, the backends, and last the pools
    log.info("stopped")
    return 0


# ------------------------------------------------------------------ pair, devices
#
# Both open the registry the server shares (SQLite, WAL, a busy timeout), so they work
# while it runs. Neither makes server state: that is `murmur serve`'s first start.


def _registry(args: argparse.Namespace) -> tuple[Settings, PairingService] | int:
    from server.pairing.service import PairingService
    from server.storage.sqlite import DB_NAME
    from server.transport.security import device_store, state_dir

    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as e:
        print(f"murmur: {e}", file=sys.stderr)
        return 2
    db = state_dir(settings) / DB_NAME
    if not db.exists() and not settings.fleet.store:  # a fleet's registry is in its store
        print(
            f"murmur: no server state in {db.parent} yet. Start the server once with "
            "`murmur serve` (it makes its TLS certificate and device registry there), "
            f"then run `murmur {args.command}` again.",
            file=sys.stderr,
        )
        return 1
    try:
        return settings, PairingService(device_store(settings, create=False))
    except StorageError as e:
        print(f"murmur: {e.message}", file=sys.stderr)
        return 1


def _pair(args: argparse.Namespace) -> int:
    from server.pairing.tls import CERT_NAME, fingerprint
    from server.pairing.uri import page_address, page_link, pairing_uri, reachable_addresses
    from server.transport.security import state_dir

    try:
        if args.page:
            page_address(args.page)  # a bad --page issues no code
    except ValueError as e:
        print(f"murmur: {e}", file=sys.stderr)
        return 2
    opened = _registry(args)
    if isinstance(opened, int):
        return opened
    settings, service = opened
    cfg = settings.server
    try:
        cert = Path(cfg.tls_cert).expanduser() if cfg.tls_cert else state_dir(settings) / CERT_NAME
        fp = fingerprint(cert.read_bytes())
        ttl_s = args.ttl * 60 if args.ttl is not None else settings.pairing.code_ttl_s
        issued = service.issue_code(ttl_s, args.name)
        endpoint = service.endpoint() or f"{cfg.host}:{cfg.port}"
    except (OSError, ValueError, MurmurError) as e:
        print(f"murmur: {getattr(e, 'message', e)}", file=sys.stderr)
        return 1
    finally:
        service.close()
    host, _, port = endpoint.rpartition(":")
    addresses = reachable_addresses(host.strip("[]"), int(port))
    uri = pairing_uri(issued.code, fp, addresses)
    link = page_link(args.page, uri) if args.page else None
    until = time.strftime("%H:%M:%S", time.localtime(issued.expires))
    minutes = max(1, round((issued.expires - time.time()) / 60))
    named = f", for a device named {issued.name!r}" if issued.name else ""
    print(f"Pairing code:  {issued.code}   (works once, until {until}: {minutes} min{named})")
    print(f"Server:        {', '.join(addresses)}")
    print(f"Certificate:   sha256 {fp}")
    print(f"Pairing URI:   {uri}")
    if link:
        print(f"Phone page:    {link}")
    print()
    import segno

    segno.make(link or uri, error="m").terminal(out=sys.stdout, compact=True)
    print()
    if link:
        print("On the phone, scan the QR code with the camera app: it opens the page, which")
        print("pairs. Or open the page and paste the pairing URI, or on a bridge run:")
    else:
        print("On the phone, scan the QR code, or run:")
    print(f"  murmur-bridge pair '{uri}'")
    return 0


def _devices(args: argparse.Namespace) -> int:
    opened = _registry(args)
    if isinstance(opened, int):
        return opened
    _, service = opened
    try:
        if args.action == "list":
            devices = service.list_devices()
            if not devices:
                print("No devices paired yet; pair one with `murmur pair`.")
            rows = [("ID", "NAME", "PAIRED", "LAST SEEN", "LAST ADDRESS", "STATUS")]
            rows += [
                (d.id, d.name, _when(d.created), _when(d.last_seen), d.last_address or "-",
                 "active" if d.active else f"revoked {_when(d.revoked)}")
                for d in devices
            ]  # fmt: skip
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows if devices else []:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            return 0
        known = {d.id: d for d in service.list_devices()}
        device = known.get(args.id)
        if device is None:
            print(
                f"murmur: no device {args.id!r}; `murmur devices list` shows them", file=sys.stderr
            )
            return 1
        if args.action == "rename":
            service.rename(args.id, args.name)
            print(f"Renamed {args.id} from {device.name!r} to {' '.join(args.name.split())!r}.")
        elif service.revoke(args.id):
            print(
                f"Revoked {args.id} ({device.name}): its token no longer works; a running "
                "server ends its live sessions within seconds."
            )
        else:
            print(f"{args.id} ({device.name}) was already revoked.")
        return 0
    except MurmurError as e:
        print(f"murmur: {e.message}", file=sys.stderr)
        return 1
    finally:
        service.close()


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "never"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
