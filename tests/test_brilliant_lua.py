"""The Lua app the bridge uploads to Brilliant Labs Frame and Halo, executed.

``app_source`` is run under the system ``lua5.4`` on top of the SDK's own device-side
libraries (``brilliant_msg/lua/*.min.lua``, loaded the way the glasses' flat file
system does), with the firmware's ``frame`` global replaced by a stub written in Lua
(``tests/data/lua/frame_stub.lua``). The stub records every ``frame.bluetooth.send``,
feeds the receive callback host messages framed the way ``BrilliantBle.send_message``
frames them (payloads encoded by the SDK's ``TxCaptureSettings``/``TxCode``), hands out
a fake JPEG and PCM, fires tap and Halo button callbacks, and ends the app's endless
loop with an error ending in ``interrupted``, which the app hands on like a host break.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mobile_bridge.sources import brilliant_app as app

LUA = shutil.which("lua5.4")
LUAC = shutil.which("luac5.4")
STUB = Path(__file__).parent / "data" / "lua" / "frame_stub.lua"

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("brilliant_msg") is None,
        reason="the Frame/Halo SDK (brilliant_msg) is not installed",
    ),
]

MTU = 200  # frame.bluetooth.max_length() in the stub
JPEG = b"\xff\xd8\xff\xe0" + bytes((i * 7 + 3) % 256 for i in range(900)) + b"\xff\xd9"
PCM = bytes(range(1, 250))  # the microphone records this over and over
ACK = b"\x01\x00\x00"  # data.lua's acknowledgement of each host packet


def _sdk_lua_dir() -> Path:
    import brilliant_msg

    folder = Path(brilliant_msg.__file__).parent / "lua"
    missing = [lib for lib in app.SDK_LIBS if not (folder / f"{lib}.min.lua").is_file()]
    assert not missing, f"brilliant_msg ships no {missing} in {folder}"
    return folder


def _packets(msg_code: int, payload: bytes, packet_size: int = MTU) -> list[bytes]:
    """``payload`` in the packets ``BrilliantBle.send_message`` writes (less the data
    marker byte the firmware strips): code + 16-bit size + data, then code + data."""
    first = packet_size - 3
    out = [bytes([msg_code, len(payload) >> 8, len(payload) & 0xFF]) + payload[:first]]
    for i in range(first, len(payload), packet_size - 1):
        out.append(bytes([msg_code]) + payload[i : i + packet_size - 1])
    return out


def _rx(msg_code: int, payload: bytes, packet_size: int = MTU) -> list[str]:
    return [f"rx {p.hex()}" for p in _packets(msg_code, payload, packet_size)]


def _capture(packet_size: int = MTU) -> list[str]:
    from brilliant_msg import TxCaptureSettings

    settings = TxCaptureSettings(resolution=512, quality_index=4)
    return _rx(app.CAPTURE_MSG, settings.pack(), packet_size)


def _code(msg_code: int, value: int) -> list[str]:
    from brilliant_msg import TxCode

    return _rx(msg_code, TxCode(value=value).pack())


@dataclass
class Run:
    sent: list[bytes] = field(default_factory=list)  # every frame.bluetooth.send
    logs: list[str] = field(default_factory=list)  # the stub's record of hardware calls
    prints: list[str] = field(default_factory=list)  # the app's own output
    end: str = ""

    def with_flag(self, flag: int) -> list[bytes]:
        return [s[1:] for s in self.sent if s and s[0] == flag]

    def flags(self) -> list[int]:
        return [s[0] for s in self.sent if s != ACK]


def _run(
    tmp_path: Path,
    script: list[str],
    *,
    hw: str = "Frame",
    mic: tuple[int, int] = (16000, 16),
    idle_end: int = 20,
) -> Run:
    assert LUA is not None
    (tmp_path / app.APP_FILE).write_text(app.app_source(*mic))
    env = {
        **os.environ,
        "STUB_HW": hw,
        "STUB_LIB_PATH": f"{tmp_path};{_sdk_lua_dir()}",
        "STUB_APP": app.APP_MODULE,
        "STUB_MTU": str(MTU),
        "STUB_JPEG": JPEG.hex(),
        "STUB_PCM": PCM.hex(),
        "STUB_SCRIPT": "\n".join(script),
        "STUB_IDLE_END": str(idle_end),
        "STUB_MAX_TICKS": "200000",
    }
    done = subprocess.run(
        [LUA, str(STUB)], env=env, capture_output=True, text=True, timeout=20, check=False
    )
    run = Run()
    for line in done.stdout.splitlines():
        if line.startswith("STUB:TX "):
            run.sent.append(bytes.fromhex(line[8:]))
        elif line.startswith("STUB:LOG "):
            run.logs.append(line[9:])
        elif line.startswith("STUB:END "):
            run.end = line[9:]
        else:
            run.prints.append(line)
    assert run.end == "interrupted", (done.returncode, run.end, done.stdout[-3000:], done.stderr)
    assert done.returncode == 0, done.stderr
    assert run.prints == [app.APP_READY], (
        f"the app printed {run.prints} (its ready line, then errors)"
    )
    return run


@pytest.mark.parametrize("hw", ["Frame", "Halo"])
def test_app_says_ready_and_sends_a_requested_photo_in_chunks(tmp_path: Path, hw: str) -> None:
    run = _run(tmp_path, ["idle 2", *_capture(), "idle 5"], hw=hw)
    assert "camera_capture 512 VERY_HIGH 0" in run.logs
    assert "camera_power_save false" in run.logs
    assert run.sent.count(ACK) == 1  # data.lua acknowledged the one packet
    flags = [f for f in run.flags() if f in (app.IMAGE_MSG, app.IMAGE_FINAL_MSG)]
    assert len(flags) > 2 and set(flags[:-1]) == {app.IMAGE_MSG}
    assert flags[-1] == app.IMAGE_FINAL_MSG
    assert run.with_flag(app.IMAGE_FINAL_MSG) == [b""]
    chunks = run.with_flag(app.IMAGE_MSG)
    assert all(0 < len(c) <= MTU - 1 for c in chunks)
    assert b"".join(chunks) == JPEG
    assert run.with_flag(app.BATTERY_MSG)[:1] == [bytes([87])]


def test_app_reassembles_a_capture_request_split_over_packets(tmp_path: Path) -> None:
    packets = _capture(packet_size=4)  # 1 byte in the first packet, 3 in each after
    assert len(packets) == 3
    run = _run(tmp_path, [*packets, "idle 5"])
    assert run.sent.count(ACK) == 3
    assert run.logs.count("camera_capture 512 VERY_HIGH 0") == 1
    assert b"".join(run.with_flag(app.IMAGE_MSG)) == JPEG
    assert run.with_flag(app.IMAGE_FINAL_MSG) == [b""]


def test_app_takes_one_photo_at_a_time_and_a_second_after_the_first(tmp_path: Path) -> None:
    run = _run(tmp_path, [*_capture(), *_capture(), "idle 5", *_capture(), "idle 5"])
    assert run.logs.count("camera_capture 512 VERY_HIGH 0") == 2
    assert len(run.with_flag(app.IMAGE_FINAL_MSG)) == 2
    assert b"".join(run.with_flag(app.IMAGE_MSG)) == JPEG * 2


@pytest.mark.parametrize("mic", [(8000, 8), (16000, 16)])
def test_app_streams_the_microphone_between_start_and_stop(
    tmp_path: Path, mic: tuple[int, int]
) -> None:
    script = [*_code(app.MIC_MSG, 1), "idle 40", *_code(app.MIC_MSG, 0), "idle 5"]
    run = _run(tmp_path, script, mic=mic)
    rate, bits = mic
    assert f"mic_start {rate} {bits}" in run.logs
    assert "mic_stop" in run.logs
    flags = [f for f in run.flags() if f in (app.AUDIO_MSG, app.AUDIO_FINAL_MSG)]
    assert flags.count(app.AUDIO_FINAL_MSG) == 1
    assert flags[-1] == app.AUDIO_FINAL_MSG  # nothing after the end of the stream
    audio = run.with_flag(app.AUDIO_MSG)
    assert len(audio) >= 5
    assert all(0 < len(a) <= MTU - 1 and len(a) % 2 == 0 for a in audio)
    joined = b"".join(audio)
    # 40 sleeps of 5 ms at rate * bits / 8 bytes a second, give or take the last step
    assert len(joined) >= 40 * 0.005 * rate * bits // 8 * 0.9
    assert joined == (PCM * (len(joined) // len(PCM) + 1))[: len(joined)]


def test_app_sends_no_audio_without_a_start(tmp_path: Path) -> None:
    run = _run(tmp_path, [*_code(app.MIC_MSG, 0), "idle 10"])
    assert not any(line.startswith("mic_start") for line in run.logs)
    assert app.AUDIO_MSG not in run.flags()
    assert app.AUDIO_FINAL_MSG not in run.flags()


def test_app_photo_and_microphone_together(tmp_path: Path) -> None:
    script = [*_code(app.MIC_MSG, 1), "idle 3", *_capture(), "idle 10", *_code(app.MIC_MSG, 0)]
    run = _run(tmp_path, [*script, "idle 5"])
    assert b"".join(run.with_flag(app.IMAGE_MSG)) == JPEG
    assert run.with_flag(app.IMAGE_FINAL_MSG) == [b""]
    joined = b"".join(run.with_flag(app.AUDIO_MSG))
    assert joined and joined == (PCM * (len(joined) // len(PCM) + 1))[: len(joined)]
    assert run.flags().count(app.AUDIO_FINAL_MSG) == 1


def test_halo_buttons_send_clicks_and_its_speaker_opens_at_the_volume(tmp_path: Path) -> None:
    script = [
        "button single",
        "button double",
        "button long",
        "tap double",
        *_code(app.SPEAKER_MSG, 80),
        "idle 2",
        *_code(app.SPEAKER_MSG, 0),
    ]
    run = _run(tmp_path, script, hw="Halo")
    assert [line for line in run.logs if line.startswith("button_callback")] == [
        "button_callback single",
        "button_callback double",
        "button_callback long",
    ]
    assert run.with_flag(app.CLICK_MSG) == [b"\x01", b"\x02", b"\x03"]
    assert run.with_flag(app.TAP_MSG) == [b"\x02"]
    speaker = [line for line in run.logs if line.startswith("speaker")]
    assert speaker == ["speaker_start 80 pcm 16000 1", "speaker_stop"]
    assert run.sent.count(ACK) == 2


def test_frame_has_no_buttons_and_leaves_the_speaker_alone(tmp_path: Path) -> None:
    script = ["tap", *_code(app.SPEAKER_MSG, 80), "idle 2", *_code(app.SPEAKER_MSG, 0)]
    run = _run(tmp_path, script, hw="Frame")
    assert not any(line.startswith(("button", "speaker")) for line in run.logs)
    assert app.CLICK_MSG not in run.flags()
    assert run.with_flag(app.TAP_MSG) == [b""]  # Frame's tap is bare
    assert run.sent.count(ACK) == 2  # the messages were still taken


@pytest.mark.skipif(LUAC is None, reason="luac5.4 is not installed")
@pytest.mark.parametrize("mic", [(8000, 8), (16000, 16)])
def test_app_source_is_valid_lua_for_each_microphone_setting(
    tmp_path: Path, mic: tuple[int, int]
) -> None:
    assert LUAC is not None
    source = tmp_path / app.APP_FILE
    source.write_text(app.app_source(*mic))
    assert f"sample_rate = {mic[0]}, bit_depth = {mic[1]}" in source.read_text()
    done = subprocess.run(
        [LUAC, "-p", str(source)], capture_output=True, text=True, timeout=10, check=False
    )
    assert done.returncode == 0, done.stderr
