"""Capture devices on the machine running the bridge: what there is, and why one failed.

``murmur-bridge devices`` prints ``describe_devices()``. Video devices come from
``/dev/video*`` (named from sysfs) on Linux and from FFmpeg's own device listing
(AVFoundation on macOS, DirectShow on Windows, V4L2 on Linux) where the PyAV build has
it; audio inputs from PortAudio through ``sounddevice``, which is optional.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from mobile_bridge.media import MediaError

__all__ = [
    "MIC_INSTALL_HINT",
    "AudioInput",
    "DeviceError",
    "VideoDevice",
    "describe_devices",
    "import_sounddevice",
    "list_audio_inputs",
    "list_video_devices",
    "platform_camera_format",
]

MIC_INSTALL_HINT = (
    "the microphone needs sounddevice and PortAudio: pip install 'murmur[audio]' "
    "(and on Debian/Ubuntu apt-get install libportaudio2)"
)
_DEV = Path("/dev")
_SYSFS_V4L = Path("/sys/class/video4linux")


class DeviceError(MediaError):
    """A camera or microphone that cannot be opened, or stopped delivering.

    ``device`` is the spec it was opened with, so the message and the bridge's status
    line can name it; ``str()`` says what happened and what to try.
    """

    def __init__(self, message: str, device: str = "") -> None:
        super().__init__(message)
        self.device = device


@dataclass(frozen=True, slots=True)
class VideoDevice:
    spec: str  # what to pass to `murmur-bridge camera`, e.g. /dev/video0
    name: str  # what the device calls itself, e.g. "HD Pro Webcam C920"


@dataclass(frozen=True, slots=True)
class AudioInput:
    index: int  # what to pass to --mic
    name: str
    channels: int
    default_rate_hz: float
    is_default: bool


def platform_camera_format(platform: str | None = None) -> str:
    """The FFmpeg capture format for cameras on this OS."""
    platform = platform or sys.platform
    if platform.startswith("darwin"):
        return "avfoundation"
    if platform.startswith("win"):
        return "dshow"
    return "v4l2"


def list_video_devices() -> list[VideoDevice]:
    """Cameras this machine shows, Linux's ``/dev/video*`` first; never raises."""
    found: dict[str, VideoDevice] = {}
    for dev in sorted(_DEV.glob("video*"), key=_video_index):
        found[str(dev)] = VideoDevice(str(dev), _sysfs_name(dev.name) or "(no name in sysfs)")
    fmt = platform_camera_format()
    try:
        import av

        listed = av.enumerate_input_devices(fmt)
    except Exception:  # an old PyAV, or a build without the device: the glob is enough
        listed = []
    for info in listed:
        if "video" not in (getattr(info, "media_types", None) or ["video"]):
            continue
        spec = {"v4l2": info.name, "dshow": f"dshow:video={info.name}"}.get(
            fmt, f"{fmt}:{info.name}"
        )
        found.setdefault(spec, VideoDevice(spec, info.description or info.name))
    return list(found.values())


def import_sounddevice() -> ModuleType:
    """``sounddevice``, or a ``DeviceError`` saying how to install it."""
    try:
        import sounddevice
    except ImportError as e:
        raise DeviceError(f"{MIC_INSTALL_HINT} ({e})") from e
    except OSError as e:  # the module is there, the PortAudio library is not
        raise DeviceError(f"{MIC_INSTALL_HINT} ({e})") from e
    return sounddevice


def list_audio_inputs() -> list[AudioInput]:
    """Microphones PortAudio sees; raises ``DeviceError`` when it cannot be asked."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except sd.PortAudioError as e:
        raise DeviceError(f"PortAudio could not list audio devices: {e}") from e
    return [
        AudioInput(
            index=i,
            name=str(d["name"]),
            channels=int(d["max_input_channels"]),
            default_rate_hz=float(d["default_samplerate"]),
            is_default=i == default_in,
        )
        for i, d in enumerate(devices)
        if int(d["max_input_channels"]) > 0
    ]


def describe_devices() -> list[str]:
    """The lines ``murmur-bridge devices`` prints."""
    lines = ["video capture devices:"]
    videos = list_video_devices()
    lines += [f"  {v.spec}  {v.name}" for v in videos] or [
        "  none found (no /dev/video*; plug in a camera, or use an FFmpeg source such as "
        "lavfi:testsrc2=size=640x480:rate=10)"
    ]
    lines.append("audio input devices:")
    try:
        mics = list_audio_inputs()
    except DeviceError as e:
        lines.append(f"  cannot list them: {e}")
        return lines
    lines += [
        f"  {m.index}{' *' if m.is_default else ''}  {m.name} "
        f"({m.channels} ch, {m.default_rate_hz:g} Hz)"
        for m in mics
    ] or ["  none found (PortAudio sees no microphone)"]
    if any(m.is_default for m in mics):
        lines.append("  (* the default; pass another with --mic INDEX or a name)")
    return lines


def _sysfs_name(node: str) -> str:
    try:
        return (_SYSFS_V4L / node / "name").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _video_index(path: Path) -> tuple[int, str]:
    digits = path.name.removeprefix("video")
    return (int(digits), "") if digits.isdigit() else (1 << 30, path.name)
