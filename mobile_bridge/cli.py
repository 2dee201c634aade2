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
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mobile_bridge.camera import CameraRunOptions, run_camera
from mobile_bridge.client import MODES, SessionOptions
from mobile_bridge.connection import LinkOptions
from mobile_bridge.devices import describe_devices
from mobile_bridge.errors import LinkError
from mobile_bridge.live import (
    DEFAULT_FPS,
    SOURCE_KINDS,
    LiveOptions,
    LiveReport,
    PlaybackChoice,
    SessionWiring,
    SourceChoice,
    live_summary,
    run_live,
)
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
from mobile_bridge.sources.camera import CameraOptions
from mobile_bridge.sources.microphone import MicrophoneOptions
from mobile_bridge.synth import write_synthetic_clip
from mobile_bridge.tls import normalize_fingerprint
from mobile_bridge.tokens import remove_pairing, save_pairing
from mobile_bridge.web.command import add_web_parser, run_web

__all__ = ["main"]

DEFAULT_SERVER = "127.0.0.1:50051"
T = TypeVar("T")


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


def _add_playback_args(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--play",
        action="store_true",
        help="play speech and cue earcons on the sound card as they arrive (needs sounddevice)",
    )
    where.add_argument(
        "--play-to",
        type=Path,
        metavar="WAV",
        help="write what the wearer would hear (speech, earcons, silences) to a stereo WAV",
    )
    p.add_argument(
        "--output-device",
        metavar="INDEX|NAME",
        help="the sound card for --play (default: the system's; `python -m sounddevice` lists them)",
    )
    p.add_argument(
        "--jitter-ms",
        type=int,
        default=60,
        metavar="MS",
        help="speech buffered before an utterance starts playing (default 60)",
    )


def _say_at(value: str) -> tuple[float, str]:
    seconds, sep, text = value.partition(":")
    try:
        if not sep or not text:
            raise ValueError
        return float(seconds), text
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS:TEXT, got {value!r}") from None


def _option(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, val


def _add_camera_parser(sub: Any) -> None:
    cp = sub.add_parser(
        "camera",
        help="stream this machine's camera (and microphone) as if it were the glasses",
        description=(
            "Send frames from a camera at --fps as JPEG stills (and, with --mic, its "
            "microphone as 20 ms Opus packets) and print what the server says. DEVICE: "
            "/dev/videoN or N (Linux; on macOS N is an AVFoundation camera), "
            "FORMAT:INPUT for any FFmpeg capture format (avfoundation:NAME, "
            "dshow:video=NAME, lavfi:testsrc2=size=640x480:rate=10), or a URL. "
            "`murmur-bridge devices` lists what this machine has."
        ),
    )
    cp.add_argument("device", nargs="?", default="0", help="the camera (default 0)")
    _add_camera_input_args(cp)
    _add_link_args(cp)
    _add_stream_args(cp)
    _add_output_args(cp)


def _add_camera_input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mic",
        nargs="?",
        const="",
        metavar="DEVICE",
        help="also send the microphone: the default one, or a PortAudio index or name",
    )
    p.add_argument(
        "--camera-option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an FFmpeg input option, e.g. video_size=1280x720 or framerate=30 (repeatable)",
    )


def _add_stream_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=list(MODES), default="general", help="assistance mode")
    p.add_argument("--language", default="en", help="BCP-47 language tag (default en)")
    p.add_argument(
        "--fps",
        type=float,
        help="frames per second to send (default: 0.5 for Frame/Halo, 1 for a camera or replay)",
    )
    p.add_argument("--max-side", type=int, default=640, help="downscale frames to this (px)")
    p.add_argument(
        "--seconds", type=float, metavar="S", help="stop after S seconds (default: Ctrl-C)"
    )


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, metavar="DIR", help="write one WAV per utterance here")
    _add_playback_args(p)
    p.add_argument("--trace", action="store_true", help="ask for and print the tick trace")
    p.add_argument("--linger", type=float, default=2.0, metavar="S", help="wait at the end")
    p.add_argument("--instruction", default="", help="replace the mode's standing instruction")


def _add_live_parser(sub: Any) -> None:
    lp = sub.add_parser(
        "live",
        help="walk with it: glasses, a camera or a replay, with controls and a watchdog",
        description=(
            "A live session with the stored pairing: captions in the terminal, speech "
            "played as it arrives (--play), keys for the wearer (on a terminal: [space] "
            "ask, [s] stop, [p] pause, [m] mode, [+/-] volume, [q] quit; from a pipe: "
            "one command a line), --control for other apps, and a summary at exit. "
            "SPEC: camera: a device as for `camera` (default 0); replay: a video or a "
            "folder of stills; frame: the glasses' name (default: the nearest)."
        ),
    )
    lp.add_argument("--source", choices=SOURCE_KINDS, default="camera", help="default camera")
    lp.add_argument("spec", nargs="?", metavar="SPEC", help="which camera, video or glasses")
    _add_camera_input_args(lp)
    lp.add_argument("--audio", type=Path, metavar="WAV", help="replay: speech to send")
    _add_link_args(lp)
    _add_stream_args(lp)
    _add_output_args(lp)
    lp.add_argument(
        "--control",
        metavar="PATH",
        help="commands from other apps, one a line (mode blind, stop, ask, pause, resume, "
        "volume +): an existing FIFO is read, any other path is served as a unix socket",
    )
    lp.add_argument(
        "--no-keys", action="store_true", help="do not read the keyboard (or stdin) for commands"
    )
    lp.add_argument(
        "--output",
        choices=("auto", "local", "glasses"),
        default="auto",
        help="where speech plays: auto (the glasses' speaker when they have one, as Halo "
        "does, unless --play-to), local (--play / --play-to here), glasses (default auto)",
    )
    lp.add_argument(
        "--gesture",
        type=_option,
        action="append",
        default=[],
        metavar="NAME=ACTION",
        help="frame: what a gesture does (tap, double_tap, triple_tap, press, double_press, "
        "long_press = ask, stop_speaking, next_mode, pause, none; repeatable)",
    )
    lp.add_argument(
        "--stall",
        type=float,
        default=5.0,
        metavar="S",
        help="no frame for S seconds: pause watching and restart the source (default 5)",
    )
    lp.add_argument(
        "--location",
        metavar="SPEC",
        help="send location: gpsd[:HOST[:PORT]], an NMEA device (/dev/ttyUSB0[@BAUD]), "
        "or a .gpx/.nmea file to replay",
    )


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
    _add_playback_args(rp)
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

    _add_camera_parser(sub)
    _add_live_parser(sub)
    add_web_parser(sub, _add_link_args)
    sub.add_parser("devices", help="list this machine's cameras and microphones (for `camera`)")

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
    if args.jitter_ms < 0:
        _err("--jitter-ms cannot be negative")
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
        play_to=args.play_to,
        output_device=args.output_device,
        jitter_ms=args.jitter_ms,
        linger_s=args.linger,
    )
    return _stream(run_replay(opts), _print_summary)


def _stream(main: Coroutine[Any, Any, T], summary: Callable[[T], None]) -> int:
    """Run a streaming command to its summary; its exit code."""
    try:
        result = asyncio.run(main)
    except (MediaError, ValueError, OSError) as e:  # a device or file, named; before connecting
        _err(str(e))
        return 2
    except LinkError as e:
        _err(str(e))
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        _err("interrupted")
        return 130
    summary(result)
    return 0


def _stream_link(args: argparse.Namespace, *positive: str) -> LinkOptions | None:
    """The link for a streaming command, once its numbers are checked; None: said why."""
    bad = [name for name in ("fps", *positive) if (v := getattr(args, name)) is not None and v <= 0]
    if bad:
        shown = ", ".join(f"--{b.replace('_', '-')} {getattr(args, b):g}" for b in bad)
        _err(f"{shown}: must be positive")
        return None
    if args.jitter_ms < 0:
        _err("--jitter-ms cannot be negative")
        return None
    try:
        return _link_options(args)
    except LinkError as e:
        _err(str(e))
        return None


def _microphone(args: argparse.Namespace) -> MicrophoneOptions | None:
    if args.mic is None:
        return None
    device: int | str | None = int(args.mic) if args.mic.isdigit() else args.mic or None
    return MicrophoneOptions(device=device)


def _stream_session(args: argparse.Namespace) -> SessionOptions:
    return SessionOptions(
        mode=args.mode,
        language=args.language,
        instruction_override=args.instruction,
        want_trace=args.trace,
        linger_s=args.linger,
    )


def _camera(args: argparse.Namespace) -> int:
    if (link := _stream_link(args, "seconds")) is None:
        return 2
    opts = CameraRunOptions(
        camera=CameraOptions(
            device=args.device,
            fps=args.fps if args.fps is not None else DEFAULT_FPS["camera"],
            max_side=args.max_side,
            input_options=dict(args.camera_option),
            seconds=args.seconds,
        ),
        microphone=_microphone(args),
        link=link,
        session=_stream_session(args),
        out_dir=args.out,
        play=args.play,
        play_to=args.play_to,
        output_device=args.output_device,
        jitter_ms=args.jitter_ms,
        on_open=lambda source: print(f"camera {source.describe()}"),
    )
    return _stream(run_camera(opts), _print_summary)


def _live(args: argparse.Namespace) -> int:
    if (link := _stream_link(args, "stall", "seconds")) is None:
        return 2
    source = SourceChoice(
        kind=args.source,
        spec=args.spec,
        fps=args.fps,
        max_side=args.max_side,
        camera_options=dict(args.camera_option),
        microphone=_microphone(args),
        audio=args.audio,
        gestures=dict(args.gesture),
    )
    opts = LiveOptions(
        wiring=SessionWiring(
            link=link,
            session=_stream_session(args),
            playback=PlaybackChoice(
                args.play, args.play_to, args.output_device, args.jitter_ms, output=args.output
            ),
            out_dir=args.out,
        ),
        control_path=args.control,
        keyboard=not args.no_keys,
        seconds=args.seconds,
        location=args.location,
    )
    # Restarts wait a few frame periods at least: a slow --fps is not a stall.
    opts.watchdog.stall_s = max(args.stall, 3.0 / source.rate)
    return _stream(run_live(source, opts), _print_live_summary)


def _print_live_summary(result: LiveReport) -> None:
    _print_summary(result.report)
    for line in live_summary(result.stats):
        print(line)


def _devices(args: argparse.Namespace) -> int:
    for line in describe_devices():
        print(line)
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
        case "camera":
            return _camera(args)
        case "live":
            return _live(args)
        case "devices":
            return _devices(args)
        case "web":
            return run_web(args, DEFAULT_SERVER)
    return 2


if __name__ == "__main__":
    sys.exit(main())
