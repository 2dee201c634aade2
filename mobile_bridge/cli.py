"""``murmur-bridge``: replay a recorded walk to a Murmur server, or pair with one.

Nothing here prints a device token: terminals scroll into logs, screenshots and
shell recordings, and the token is this bridge's credential.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from mobile_bridge.client import MODES
from mobile_bridge.connection import LinkOptions
from mobile_bridge.errors import LinkError
from mobile_bridge.media import MediaError
from mobile_bridge.pairing import (
    ConnectFlags,
    fetch_fingerprint,
    link_options,
    pair_with,
    parse_invite,
)
from mobile_bridge.replay import ReplayOptions, run_replay
from mobile_bridge.report import ReplayReport
from mobile_bridge.sinks.console import dropped_text, kind_name
from mobile_bridge.synth import write_synthetic_clip
from mobile_bridge.tls import normalize_fingerprint
from mobile_bridge.tokens import remove_pairing, save_pairing

__all__ = ["main"]

DEFAULT_SERVER = "127.0.0.1:50051"


def _err(msg: str) -> None:
    print(f"murmur-bridge: {msg}", file=sys.stderr)


def _add_link_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        metavar="HOST:PORT",
        help=f"the Murmur server (default: the paired one; with --insecure {DEFAULT_SERVER})",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="TLS verified by --ca or the system's roots (a server with a real certificate)",
    )
    p.add_argument(
        "--ca", metavar="FILE", help="CA certificate (PEM) to trust with --tls (default: system)"
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext, for a `murmur serve --no-auth` server on this machine",
    )
    p.add_argument(
        "--token",
        help="device token (default: $MURMUR_TOKEN, else the one saved by `murmur-bridge pair`)",
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
        help="pair with a server: trade the code from `murmur pair` for a device token",
        description="Pair this bridge with a server. With the murmur://pair?… link the "
        "server's certificate is checked against the link before the code is sent; with a "
        "bare code (and --server) you compare the certificate's fingerprint with the one "
        "`murmur pair` printed. The pairing is saved to ~/.config/murmur/bridge.toml "
        "(owner-only); the token is never printed.",
    )
    pp.add_argument("invite", metavar="CODE|URI", help="the murmur://pair?… link, or the code")
    pp.add_argument("--server", metavar="HOST:PORT", help="where to pair (needed with a code)")
    pp.add_argument("--name", default=platform.node() or "bridge", help="this device's name")
    pp.add_argument(
        "--fingerprint", metavar="HEX", help="the certificate fingerprint `murmur pair` printed"
    )
    pp.add_argument(
        "--yes", action="store_true", help="trust the certificate presented without asking"
    )

    up = sub.add_parser("unpair", help="forget a server this bridge paired with")
    up.add_argument("--server", metavar="HOST:PORT", help="which one (needed with several)")

    sp = sub.add_parser("synth", help="write a synthetic first-person test clip (.mp4)")
    sp.add_argument("out", type=Path, help="where to write the .mp4")
    sp.add_argument("--seconds", type=float, default=10.0)
    sp.add_argument("--fps", type=float, default=15.0)
    return parser


def _link_options(args: argparse.Namespace) -> LinkOptions:
    flags = ConnectFlags(
        server=args.server,
        token=args.token or os.environ.get("MURMUR_TOKEN") or None,
        tls=args.tls,
        ca=args.ca,
        insecure=args.insecure,
    )
    return link_options(flags, default_server=DEFAULT_SERVER)


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
        if dropped := next((t.dropped for t in reversed(report.ticks) if t.dropped), None):
            print(f"speech not played out: {dropped_text(dropped)}")
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
    if args.fps <= 0 or args.speed <= 0:
        _err("--fps and --speed must be positive")
        return 2
    try:
        link = _link_options(args)
    except LinkError as e:
        _err(str(e))
        return 2
    opts = ReplayOptions(
        video=args.video,
        audio=args.audio,
        audio_at_s=args.audio_at,
        texts=list(args.say),
        link=link,
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


def _confirm(fp: str, address: str, args: argparse.Namespace) -> str | None:
    """The fingerprint to pin for a bare code, once the person (or a flag) agreed."""
    if args.fingerprint:
        return normalize_fingerprint(args.fingerprint)
    print(f"the server at {address} presents the certificate with fingerprint\n  {fp}")
    if args.yes:
        return fp
    if not sys.stdin.isatty():
        _err(
            "cannot ask to compare fingerprints without a terminal: pass --fingerprint HEX "
            "(what `murmur pair` printed) or --yes"
        )
        return None
    answer = input("is it the one `murmur pair` printed? [y/N] ").strip().lower()
    return fp if answer in ("y", "yes") else None


def _pair(args: argparse.Namespace) -> int:
    try:
        invite = parse_invite(args.invite, args.server)
        expected = None
        if invite.fingerprint is None:
            shown = asyncio.run(fetch_fingerprint(invite.addresses[0]))
            expected = _confirm(shown, invite.addresses[0], args)
            if expected is None:
                _err("not paired: the certificate was not confirmed")
                return 1
        elif args.fingerprint and normalize_fingerprint(args.fingerprint) != invite.fingerprint:
            _err("--fingerprint differs from the one in the pairing link; which one is right?")
            return 2
        pairing = asyncio.run(pair_with(invite, args.name, expected=expected))
        path, replaced = save_pairing(pairing)
    except ValueError as e:
        _err(str(e))
        return 2
    except LinkError as e:
        _err(str(e))
        return 1
    print(f"paired with {pairing.addresses[0]} as device {pairing.device_id or '?'}")
    print(f"certificate fingerprint {pairing.fingerprint}")
    for old in replaced:
        print(f"replaced the earlier pairing with {old.describe()}")
    print(f"saved to {path} (readable by you only; keep it private)")
    return 0


def _unpair(args: argparse.Namespace) -> int:
    try:
        gone = remove_pairing(args.server)
    except ValueError as e:
        _err(str(e))
        return 1
    print(f"unpaired from {gone.describe()}")
    print("the server still knows this device until `murmur devices revoke` there")
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
        case "unpair":
            return _unpair(args)
        case "synth":
            return _synth(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
