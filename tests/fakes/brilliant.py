"""A Brilliant Labs Frame or Halo at the Bluetooth LE boundary: Bleak's scanner and
client, with the device behind them.

The SDK runs for real above it (``brilliant_ble.BrilliantBle`` framing, ACK flow
control, break/reset, file upload; ``brilliant_msg`` receivers); only Bleak is
replaced (``install_fake_bleak``). The device does what the glasses' firmware and the bridge's
Lua app do, in the SDK's own formats: it reassembles ``send_message`` packets per
code and ACKs each (``01 00 00``, as data.lua), answers Lua with ``print`` output,
keeps uploaded files, and once ``require('murmur_app')`` runs it answers
``TxCaptureSettings`` with a JPEG in ``07``/``08`` chunks (camera.lua), streams PCM
in ``05`` chunks on ``TxCode(1)`` (audio.lua), and sends taps (``09``), clicks
(``0b``) and anything raw a test asks for. Knobs: ``drop_after_chunks`` cuts the
link in the middle of the next photo, ``truncate_next_photo`` sends half of one,
``present`` makes it vanish from scans.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from PIL import Image

from mobile_bridge.sources import brilliant_app as app

__all__ = ["FakeBleakClient", "FakeGlasses", "install_fake_bleak"]

SERVICE = "7a230001-5475-a6a4-654c-8431f6ad49c4"
TX = "7a230002-5475-a6a4-654c-8431f6ad49c4"  # host writes
RX = "7a230003-5475-a6a4-654c-8431f6ad49c4"  # device notifies
AUDIO_TX = "7a230005-5475-a6a4-654c-8431f6ad49c4"  # Halo's speaker
CHUNK = 240  # camera.lua / audio.lua packet size at a 247-byte MTU


class _Characteristic:
    def __init__(self, uuid: str) -> None:
        self.uuid = uuid


class _Service:
    def __init__(self, uuids: list[str]) -> None:
        self._chars = {u: _Characteristic(u) for u in uuids}

    def get_characteristic(self, uuid: str) -> _Characteristic | None:
        return self._chars.get(uuid)


class _Services:
    def __init__(self, halo: bool) -> None:
        self._service = _Service([TX, RX, AUDIO_TX] if halo else [TX, RX])

    def get_service(self, uuid: str) -> _Service | None:
        return self._service if uuid == SERVICE else None


class _Device:
    def __init__(self, name: str) -> None:
        self.name = name
        self.address = "C0:FF:EE:00:00:4F"


class _Backend:  # BrilliantBle checks the backend's class name for BlueZ
    pass


class FakeGlasses:
    """The glasses: firmware, file system and the bridge's running app."""

    def __init__(self, kind: str = "Frame", name: str | None = None, mtu: int = 247) -> None:
        self.kind = kind
        self.name = name or f"{kind} 4F"
        self.mtu = mtu
        self.present = True
        self.files: dict[str, str] = {}
        self.client: FakeBleakClient | None = None
        self.connects = 0
        self.app_running = False
        self.captures: list[dict[str, Any]] = []  # parsed TxCaptureSettings
        self.mic_pcm = np.zeros(0, np.int16)  # what the microphone hears, streamed once
        self.mic_bit_depth = 16
        self.mic_subscriptions: list[int] = []
        self.speaker_volume: int | None = None
        self.speaker_bytes = bytearray()
        self._speaker_wrote = asyncio.Event()
        self.drop_after_chunks: int | None = None
        self.truncate_next_photo = False
        self.photos_sent = 0
        self._accum: dict[int, tuple[int, bytearray]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._open_file: str | None = None

    @property
    def halo(self) -> bool:
        return self.kind == "Halo"

    # ---------------------------------------------------------------- test controls

    async def tap(self, kind: int | None = None) -> None:
        """A tap: Frame's bare code, or Halo's with its kind (1..3)."""
        await self.send(bytes([app.TAP_MSG]) + (b"" if kind is None else bytes([kind])))

    async def click(self, kind: int) -> None:
        await self.send(bytes([app.CLICK_MSG, kind]))

    async def send(self, payload: bytes) -> None:
        """``frame.bluetooth.send(payload)``: a data notification (marker 0x01)."""
        await self._notify(b"\x01" + payload)

    async def speaker_heard(self, n_bytes: int) -> bytes:
        """Once the speaker has had ``n_bytes`` of PCM: all it had."""
        while len(self.speaker_bytes) < n_bytes:
            self._speaker_wrote.clear()
            await self._speaker_wrote.wait()
        return bytes(self.speaker_bytes)

    async def drop(self) -> None:
        """The link goes (out of range, switched off)."""
        client, self.client = self.client, None
        self.app_running = False
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if client is not None:
            await client.lose()

    # ---------------------------------------------------------------- the wire

    async def _notify(self, data: bytes) -> None:
        if self.client is not None:
            await self.client.notify(data)

    async def received(self, char: str, data: bytes) -> None:
        if char == AUDIO_TX:
            self.speaker_bytes.extend(data)
            self._speaker_wrote.set()
            return
        first = data[0]
        if first == 0x01:
            await self._data_packet(data[1:])
        elif first in (0x03, 0x04):  # break, reset: the app stops
            self.app_running = False
        else:
            await self._lua(data.decode())

    async def _data_packet(self, packet: bytes) -> None:
        # data.lua: the first packet of a message carries its size; every one is ACKed.
        code = packet[0]
        if code not in self._accum:
            size = packet[1] << 8 | packet[2]
            self._accum[code] = (size, bytearray(packet[3:]))
        else:
            self._accum[code][1].extend(packet[1:])
        size, body = self._accum[code]
        await self.send(b"\x01\x00\x00")
        if len(body) >= size:
            del self._accum[code]
            if self.app_running:
                self._spawn(self._app_message(code, bytes(body)))

    async def _lua(self, lua: str) -> None:
        if m := re.match(r"f=frame\.file\.open\('([^']+)','w'\)", lua):
            self._open_file = m.group(1)
            self.files[self._open_file] = ""
            await self._print("1")
        elif lua.startswith('f:write("') and self._open_file is not None:
            self.files[self._open_file] += lua[len('f:write("') : lua.rindex('");print(1)')]
            await self._print("1")
        elif lua.startswith("f:close()"):
            self._open_file = None
            await self._print("nil")
        elif m := re.match(r"require\('([^']+)'\)", lua):
            module = f"{m.group(1)}.lua"
            if module == app.APP_FILE and module in self.files:
                self.app_running = True
                await self._print(app.APP_READY)
            else:
                await self._print(f"module '{m.group(1)}' not found")
        elif "print(" in lua:
            await self._print("nil")

    async def _print(self, text: str) -> None:
        await self._notify(text.encode())

    # ---------------------------------------------------------------- the app

    def _spawn(self, aw: Awaitable[None]) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _app_message(self, code: int, body: bytes) -> None:
        if code == app.CAPTURE_MSG:
            await self._photo(body)
        elif code == app.MIC_MSG:
            self.mic_subscriptions.append(body[0])
            if body[0] == 1:
                self._spawn(self._stream_mic())
        elif code == app.SPEAKER_MSG:
            self.speaker_volume = body[0]

    async def _photo(self, body: bytes) -> None:
        # camera.lua's parse_capture_settings
        settings = {
            "quality": body[0],
            "resolution": (body[1] << 8 | body[2]) * 2,
            "pan": (body[3] << 8 | body[4]) - 140,
            "raw": body[5] > 0,
        }
        self.captures.append(settings)
        side = 640 if self.halo else settings["resolution"]
        jpeg = _jpeg(side, len(self.captures))
        if self.truncate_next_photo:
            self.truncate_next_photo = False
            jpeg = jpeg[: len(jpeg) // 2]
        for n, i in enumerate(range(0, len(jpeg), CHUNK)):
            if self.drop_after_chunks is not None and n == self.drop_after_chunks:
                self.drop_after_chunks = None
                await self.drop()
                return
            await self.send(bytes([app.IMAGE_MSG]) + jpeg[i : i + CHUNK])
            await asyncio.sleep(0)
        await self.send(bytes([app.IMAGE_FINAL_MSG]))
        self.photos_sent += 1

    async def _stream_mic(self) -> None:
        pcm = self.mic_pcm
        if self.mic_bit_depth == 8:
            raw = (pcm >> 8).astype(np.int8).tobytes()
        else:
            raw = pcm.astype("<i2").tobytes()
        for i in range(0, len(raw), CHUNK):
            await self.send(bytes([app.AUDIO_MSG]) + raw[i : i + CHUNK])
            await asyncio.sleep(0)


class FakeBleakClient:
    """What ``BrilliantBle`` uses of ``bleak.BleakClient``."""

    glasses: FakeGlasses  # set by install_fake_bleak()

    def __init__(
        self, device: _Device, disconnected_callback: Callable[[Any], None], **_: Any
    ) -> None:
        self._device = device
        self._disconnected = disconnected_callback
        self._connected = False
        self._notify: Callable[[Any, bytearray], Any] | None = None
        self._backend = _Backend()
        self.services = _Services(self.glasses.halo)
        self.mtu_size = self.glasses.mtu

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        if not self.glasses.present:
            raise ConnectionError("the device went away")
        self._connected = True
        self.glasses.client = self
        self.glasses.connects += 1

    async def start_notify(self, uuid: str, handler: Callable[[Any, bytearray], Any]) -> None:
        self._notify = handler

    async def write_gatt_char(self, char: Any, data: bytes, response: bool = True) -> None:
        if not self._connected:
            raise ConnectionError("not connected")
        await self.glasses.received(char.uuid, bytes(data))

    async def notify(self, data: bytes) -> None:
        if self._connected and self._notify is not None:
            result = self._notify(None, bytearray(data))
            if asyncio.iscoroutine(result):
                await result

    async def disconnect(self) -> None:
        if self._connected:
            await self.lose()

    async def lose(self) -> None:
        self._connected = False
        if self.glasses.client is self:
            self.glasses.client = None
        self._disconnected(self)


class _FakeScanner:
    glasses: FakeGlasses

    @classmethod
    async def find_device_by_filter(
        cls, filterfunc: Callable[[Any, Any], bool], **_: Any
    ) -> _Device | None:
        device = _Device(cls.glasses.name)
        if cls.glasses.present and filterfunc(device, None):
            return device
        return None


def install_fake_bleak(monkeypatch: Any, glasses: FakeGlasses) -> FakeGlasses:
    """Bleak replaced by ``glasses`` under the real ``brilliant_ble``."""
    import brilliant_ble.brilliant_ble as ble_module

    client = type("BoundFakeBleakClient", (FakeBleakClient,), {"glasses": glasses})
    scanner = type("BoundFakeScanner", (_FakeScanner,), {"glasses": glasses})
    monkeypatch.setattr(ble_module, "BleakClient", client)
    monkeypatch.setattr(ble_module, "BleakScanner", scanner)
    return glasses


def _jpeg(side: int, n: int) -> bytes:
    """A camera photo: a gradient, brighter with each photo (so frames differ)."""
    ramp = np.linspace(0, 255, side, dtype=np.uint8)
    rgb = np.stack(
        [
            np.tile(ramp, (side, 1)),
            np.tile(ramp[:, None], (1, side)),
            np.full((side, side), (n * 40) % 256, np.uint8),
        ],
        axis=2,
    )
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=70)
    return buf.getvalue()
