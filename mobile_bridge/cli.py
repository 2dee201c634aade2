"""``murmur-bridge``: replay a recorded walk to a Murmur server, or pair with one."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from mobile_bridge.client import MODES
from mobile_bridge.link import LinkError, LinkOptions, pair
from mobile_bridge.media import MediaError
from mobile_bridge.replay import ReplayOptions, run_replay
from mobile_bridge.report import ReplayReport
from mobile_bridge.sinks.console import kind_name
from mobile_bridge.synth import write_synthetic_clip
from mobile_bridge.tokens import load_token, save_token

__all__ = ["main"]

DEFAULT_SERVER = "127.0.0.1:50051"


def _err(msg: str) -> None:
    print(f"murmur-bridge: {msg}", file=sys.stderr)


def _add_link_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        metavar="HOST:PORT",
        help=f"the Murmur server (default {DEFAULT_SERVER})",
    )
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument(
        "--ca", metavar="FILE", help="CA certificate (PEM) to trust with --tls (default: system)"
    )


def _say_at(value: str) -> tuple[float, str]:
    seconds, sep, text = value.partition(":")
    try:
        if not sep or not text:
            raise ValueError
        return float(seconds), text
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS:TEXT, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="murmur-bridge",
        description="The phone side of Murmur: stream glasses media to a Murmur server.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    rp = sub.add_parser(
        "replay",
        help="replay a video (and a WAV) as if the glasses were live",
        description=(
            "Send VIDEO's frames as JPEG stills at --fps and --audio as 20 ms Opus packets, "
            "in real time, and print what the server says as it says it."
        ),
    )
    rp.add_argument("video", type=Path, help="a video file, or a folder of .jpg/.png stills")
    rp.add_argument("--audio", type=Path, metavar="WAV", help="speech to send (any PCM WAV)")
    rp.add_argument(
        "--audio-at",
        type=float,
        default=0.0,
        metavar="S",
        help="when the WAV starts on the video's timeline (default 0)",
    )
    rp.add_argument(
        "--say",
        type=_say_at,
        action="append",
        default=[],
        metavar="S:TEXT",
        help="type TEXT at S seconds (repeatable)",
    )
    _add_link_args(rp)
    rp.add_argument(
        "--token",
        help="device token (default: $MURMUR_TOKEN, else the one saved by `murmur-bridge pair`)",
    )
    rp.add_argument("--mode", choices=list(MODES), default="general", help="assistance mode")
    rp.add_argument("--language", default="en", help="BCP-47 language tag (default en)")
    rp.add_argument("--fps", type=float, default=1.0, help="frames per second to send (default 1)")
    rp.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replay speed factor (default 1; the server's clock is real time, so keep 1 "
        "unless testing)",
    )
    rp.add_argument("--max-side", type=int, default=640, help="downscale frames to this (px)")
    rp.add_argument("--out", type=Path, metavar="DIR", help="write one WAV per utterance here")
    rp.add_argument("--play", action="store_true", help="play speech with paplay/aplay")
    rp.add_argument("--trace", action="store_true", help="ask for and print the tick trace")
    rp.add_argument(
        "--linger", type=float, default=2.0, metavar="S", help="wait after the media ends"
    )
    rp.add_argument("--instruction", default="", help="replace the mode's standing instruction")

    pp = sub.add_parser(
        "pair",
        help="trade a pairing code (from `murmur pair`) for a device token",
        description="Pair this bridge with a server and save the token to "
        "~/.config/murmur/bridge.toml (owner-only).",
    )
    _add_link_args(pp)
    pp.add_argument("--code", required=True, help="the one-time code shown by `murmur pair`")
    pp.add_argument("--name", default=platform.node() or "bridge", help="this device's name")

    sp = sub.add_parser("synth", help="write a synthetic first-person test clip (.mp4)")
    sp.add_argument("out", type=Path, help="where to write the .mp4")
    sp.add_argument("--seconds", type=float, default=10.0)
    sp.add_argument("--fps", type=float, default=15.0)
    return parser


def _link_options(args: argparse.Namespace, token: str | None) -> LinkOptions:
    return LinkOptions(target=args.server, token=token, tls=args.tls, ca_file=args.ca)


def _print_summary(report: ReplayReport) -> None:
    spoken = report.utterance_ids
    print("\n--- summary ---")
    print(
        f"frames sent {report.frames_sent}, audio packets sent {report.audio_packets_sent}, "
        f"{report.wall_s:.1f} s"
        + (f", {report.reconnects} reconnect(s)" if report.reconnects else "")
    )
    kinds: dict[str, int] = {}
    for _, _, kind in report.speeches:
        kinds[kind_name(kind)] = kinds.get(kind_name(kind), 0) + 1
    print(
        f"utterances {len(spoken)}"
        + (
            f" ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))} captions)"
            if kinds
            else ""
        )
        + (f", {len(report.stop_speaking)} cut" if report.stop_speaking else "")
    )
    if report.ticks:
        decided = sum(1 for t in report.ticks if t.action != "silence")
        print(f"ticks traced {len(report.ticks)} ({decided} not silent)")
    if report.notices:
        print(f"notices {len(report.notices)}")
    for lat in report.latencies:
        parts = []
        if lat.speech_to_audio_ms is not None:
            parts.append(f"caption→audio {lat.speech_to_audio_ms:.0f} ms")
        if lat.decision_to_audio_ms is not None:
            parts.append(f"decision→audio {lat.decision_to_audio_ms:.0f} ms")
        if lat.model_ms is not None:
            parts.append(f"model {lat.model_ms:.0f} ms")
        print(f"  {lat.utterance_id}: {', '.join(parts) or 'no audio'}")
    s = report.latency_summary()
    if "speech_to_audio_ms_p50" in s:
        print(
            f"latency caption→first audio: p50 {s['speech_to_audio_ms_p50']:.0f} ms, "
            f"max {s['speech_to_audio_ms_max']:.0f} ms"
        )
    if "decision_to_audio_ms_p50" in s:
        print(
            f"latency decision→first audio: p50 {s['decision_to_audio_ms_p50']:.0f} ms, "
            f"max {s['decision_to_audio_ms_max']:.0f} ms"
        )
    if report.wavs:
        print(f"wrote {len(report.wavs)} WAV(s) to {next(iter(report.wavs.values())).parent}")


def _replay(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("MURMUR_TOKEN") or load_token(args.server)
    if args.fps <= 0 or args.speed <= 0:
        _err("--fps and --speed must be positive")
        return 2
    opts = ReplayOptions(
        video=args.video,
        audio=args.audio,
        audio_at_s=args.audio_at,
        texts=list(args.say),
        link=_link_options(args, token),
        mode=args.mode,
        language=args.language,
        instruction_override=args.instruction,
        fps=args.fps,
        speed=args.speed,
        max_side=args.max_side,
        want_trace=args.trace,
        out_dir=args.out,
        play=args.play,
        linger_s=args.linger,
    )
    try:
        report = asyncio.run(run_replay(opts))
    except MediaError as e:
        _err(str(e))
        return 2
    except LinkError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    _print_summary(report)
    return 0


def _pair(args: argparse.Namespace) -> int:
    try:
        resp = asyncio.run(pair(_link_options(args, None), args.code, args.name))
    except LinkError as e:
        _err(str(e))
        return 1
    path = save_token(args.server, resp.device_token, resp.device_id)
    # Never echo the token itself: terminals scroll into logs, screenshots and
    # shell recordings, and the token is this bridge's credential.
    print(f"paired with {args.server} as device {resp.device_id or '?'}")
    print(f"token saved to {path} (readable by you only; keep it private)")
    return 0


def _synth(args: argparse.Namespace) -> int:
    path = write_synthetic_clip(args.out, args.seconds, args.fps)
    print(f"wrote {path} ({args.seconds:g} s at {args.fps:g} fps)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    match args.command:
        case "replay":
            return _replay(args)
        case "pair":
            return _pair(args)
        case "synth":
            return _synth(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
