"""``murmur``: the server's command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from server import __version__
from server.config import DEFAULT_MODEL, load_settings
from server.errors import ModelLoadError

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
    s.add_argument("--model", help=f"model to serve (default {DEFAULT_MODEL})")
    s.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for your LAN)")
    s.add_argument("--port", type=int, help="port to listen on (default 50051; 0 = any free port)")
    s.add_argument("--config", help="TOML settings file (default ~/.config/murmur/server.toml)")
    s.add_argument("--tick-hz", type=float, help="model decisions per second (default 1)")
    s.add_argument("--device", help="model device: auto, cuda, cuda:1, cpu")
    s.add_argument("--dtype", help="model dtype: auto, bfloat16, float16, float32")
    s.add_argument(
        "--quantization",
        choices=["8bit", "4bit"],
        help="quantize a bf16 checkpoint as it loads (bitsandbytes, CUDA); for the official "
        "INT4 build pass --model jdopensource/JoyAI-VL-Interaction-INT4 instead",
    )
    s.add_argument("--tts", help="TTS fallback chain, comma-separated (default edge,piper,espeak)")
    s.add_argument("--no-asr", action="store_true", help="no speech input (text input only)")
    s.add_argument("--log-level", default=None, help="debug, info, warning (default info)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from server.telemetry.logs import setup_logging

    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as e:
        print(f"murmur: {e}", file=sys.stderr)
        return 2
    settings = settings.with_overrides(
        "server", host=args.host, port=args.port, tick_hz=args.tick_hz, log_level=args.log_level
    )
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
    setup_logging(settings.server.log_level)
    try:
        return asyncio.run(_run(settings))
    except ModelLoadError as e:
        print(f"murmur: cannot start: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _run(settings) -> int:  # type: ignore[no-untyped-def]
    from server.app import build_app
    from server.transport.server import GrpcServer

    cfg = settings.server
    log.info("loading model %s", settings.model.model)
    loop = asyncio.get_running_loop()
    # Loading can take minutes; do it off the loop so Ctrl-C still works.
    app = await loop.run_in_executor(None, build_app, settings)
    runtime = app.services.runtime
    # Warm up before serving, so the first real tick is not the slow one.
    await loop.run_in_executor(runtime.executor, runtime.warm_up)
    server = GrpcServer(app.services)
    try:
        port = await server.start(cfg.host, cfg.port)
    except OSError as e:
        print(f"murmur: {e}", file=sys.stderr)
        app.close()
        return 1
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and not cfg.tls_cert:
        log.warning(
            "listening on %s without TLS or pairing: anyone on this network can connect", cfg.host
        )
    # The line tests and scripts wait for; keep its shape.
    print(f"murmur: serving {app.services.runtime.name} on {cfg.host}:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping (grace %.0f s)", cfg.grace_s)
    await server.stop(cfg.grace_s)  # sessions end and close their model and agent work
    await app.aclose()
    log.info("stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
