"""Keeping the Bluetooth link to a Frame or Halo up: connect, start the app, reconnect.

``LinkKeeper.connect`` scans (``BrilliantBle.connect``: by exact name, or the first
device advertising the Frame/Halo service), restarts the glasses' Lua, uploads the
SDK's device-side libraries and the bridge's app (``brilliant_app``), starts it and
attaches the SDK's receivers (``BleLink``). When Bleak reports the link gone it is
retried with ``Backoff`` (exponential, jittered), each try said through ``say``;
``current()`` waits through that and raises ``DeviceError`` once the tries run out.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from importlib.resources import files
from types import ModuleType
from typing import TYPE_CHECKING

from mobile_bridge.clock import Clock
from mobile_bridge.devices import DeviceError
from mobile_bridge.sources import brilliant_app as app
from mobile_bridge.sources.brilliant_link import BleLink, BrilliantStats, NotificationRouter

if TYPE_CHECKING:
    from mobile_bridge.sources.brilliant import BrilliantOptions

__all__ = ["CONNECT_HINT", "LinkKeeper", "connect_hint"]

CONNECT_HINT = (
    "is it switched on, charged, in range, and not connected to a phone app? "
    "(Halo: to pair a new host, hold the button for 5 s)"
)
NO_ADAPTER_HINT = (
    "this machine has no Bluetooth LE adapter that is on: plug one in, or turn it on "
    "(`bluetoothctl power on`)"
)
NO_BLUEZ_HINT = (
    "the Bluetooth service is not reachable: start it (`sudo systemctl start bluetooth`) "
    "and check that this user may use it (the `bluetooth` group)"
)


def connect_hint(e: BaseException) -> str:
    """The fix for a first connection that failed: the glasses (out of range, off), or
    this machine (no adapter, adapter off, BlueZ or D-Bus not running)."""
    text = f"{type(e).__name__} {e}".lower()
    if "notavailable" in text or "adapter" in text or "powered" in text:
        return NO_ADAPTER_HINT
    if "dbus" in text or "bluez" in text or "system_bus_socket" in text:
        return NO_BLUEZ_HINT
    return CONNECT_HINT


class LinkKeeper:
    """One pair of glasses' link, kept up for as long as the source is open."""

    def __init__(
        self,
        options: BrilliantOptions,
        sdk: tuple[ModuleType, ModuleType],
        stats: BrilliantStats,
        clock: Clock,
        say: Callable[[str], None],
        *,
        complain: Callable[[str, str], None],
        gesture: Callable[[str], None],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._options = options
        self._sdk_ble, self._sdk_msg = sdk
        self.stats = stats
        self._clock = clock
        self._say = say
        self._complain = complain
        self._gesture = gesture
        self._rand = rand
        self._link: BleLink | None = None
        self._relinked = asyncio.Event()
        self._dropped = asyncio.Event()
        self._failed: DeviceError | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self.name = ""
        self.halo = False
        self.listening = False  # the session reads audio: every link streams the microphone

    async def connect(self) -> None:
        """The first connection; raises ``DeviceError`` saying why there is none, then
        keeps the link up (reconnecting) until ``aclose``."""
        try:
            link = await self._connect()
        except DeviceError:
            raise
        except Exception as e:  # the SDK raises bare Exceptions ("No matching device found")
            which = repr(self._options.name) if self._options.name else "a Frame or Halo"
            raise DeviceError(
                f"cannot connect to {which} over Bluetooth: {e}; {connect_hint(e)}",
                self._options.name or "frame",
            ) from e
        self.name, self.halo = link.name, link.halo
        self._up(link)
        self._supervisor = asyncio.create_task(self._supervise())

    async def _connect(self) -> BleLink:
        opts = self._options
        router = NotificationRouter(self.stats, self._complain)
        ble = self._sdk_ble.BrilliantBle()
        loop = asyncio.get_running_loop()
        holder: list[BleLink] = []

        def dropped() -> None:  # Bleak's callback; on the loop, but it may be a thread
            if holder:
                loop.call_soon_threadsafe(self.lost, holder[0])

        name = await ble.connect(
            # A reconnect goes back to the same glasses, not to whichever is nearest.
            name=opts.name or self.name or None,
            timeout=opts.scan_timeout_s,
            data_response_handler=router.handle,
            disconnect_handler=dropped,
        )
        try:
            # What BrilliantMsg.connect(initialize=True) does: stop any app, restart Lua.
            await ble.send_break_signal()
            await ble.send_reset_signal()
            await ble.send_break_signal()
            await ble.drain_print_channel()
            for lib in app.SDK_LIBS:
                lua = files("brilliant_msg").joinpath(f"lua/{lib}.min.lua").read_text()
                await ble.upload_file_from_string(lua, f"{lib}.min.lua")
            await ble.upload_file_from_string(
                app.app_source(opts.mic_rate_hz, opts.mic_bit_depth), app.APP_FILE
            )
            said = await ble.send_lua(
                f"require('{app.APP_MODULE}')", await_print=True, timeout=opts.start_timeout_s
            )
            if (said or "").strip() != app.APP_READY:
                raise DeviceError(f"{name} could not start the bridge's app: {said}", name)
            link = BleLink(ble, router, name, ble.type == self._sdk_ble.BrilliantDeviceType.HALO)
            holder.append(link)
            await link.attach(self._sdk_msg, opts.tap_window_s, self._gesture)
            if self.listening:  # a reconnect: the microphone streams again at once
                await self._send_mic_on(link)
            if link.halo and opts.speaker_volume:
                volume = self._sdk_msg.TxCode(value=opts.speaker_volume)
                await ble.send_message(app.SPEAKER_MSG, volume.pack())
        except BaseException:
            if holder:
                holder[0].detach()
            try:
                await ble.disconnect()
            except Exception:  # the link is already gone: nothing to release
                pass
            raise
        if not ble.is_connected():  # it dropped while starting: the callback saw no link
            link.detach()
            raise ConnectionError(f"{name} disconnected while the app started")
        return link

    def _up(self, link: BleLink) -> None:
        self._link = link
        self._relinked.set()

    def lost(self, link: BleLink) -> None:
        if not link.lost.is_set():
            link.lost.set()
            link.detach()
        if self._link is link:
            self._link = None
            self._relinked.clear()
            self._dropped.set()

    async def _supervise(self) -> None:
        opts = self._options
        while True:
            await self._dropped.wait()
            self._dropped.clear()
            self.stats.disconnects += 1
            self._say(f"(glasses: lost the Bluetooth link to {self.name}; reconnecting)")
            attempt = 0
            while self._link is None:
                attempt += 1
                if opts.max_reconnects and attempt > opts.max_reconnects:
                    self._failed = DeviceError(
                        f"{self.name} did not come back after {opts.max_reconnects} tries; "
                        f"{CONNECT_HINT}",
                        self.name,
                    )
                    self._say(f"(glasses: {self._failed})")
                    self._relinked.set()  # wakes the readers, who raise it
                    return
                delay = opts.backoff.delay(attempt, self._rand())
                self._say(f"(glasses: reconnect try {attempt} to {self.name} in {delay:.1f} s)")
                await self._clock.sleep(delay)
                try:
                    link = await self._connect()
                except Exception as e:
                    self._say(f"(glasses: try {attempt} failed: {e})")
                    continue
                self.stats.reconnects += 1
                self._up(link)
                self._say(f"(glasses: {self.name} is back; frames and audio resume)")

    async def current(self) -> BleLink:
        """The live link, waiting through a reconnect; ``DeviceError`` once given up."""
        while True:
            if self._failed is not None:
                raise self._failed
            link = self._link
            if link is not None:
                if not link.lost.is_set() and link.ble.is_connected():
                    return link
                self.lost(link)  # dropped, and Bleak's callback has not come yet
            # Nothing to hand out: wait for the next link (or the end). Cleared here, not
            # only where the link goes, so a set event with no link can never make this a
            # loop that never yields (it starved the event loop, Ctrl-C included).
            self._relinked.clear()
            await self._relinked.wait()

    async def listen(self) -> None:
        """Stream the microphone from now on, on this link and every later one (audio
        from before the session began is of no use to it)."""
        self.listening = True
        link = self.link
        if link is not None:
            try:
                await self._send_mic_on(link)
            except Exception as e:  # dropped (the reconnect asks again), or not acknowledged
                self._say(f"(glasses: could not start the microphone: {e})")

    async def _send_mic_on(self, link: BleLink) -> None:
        await link.ble.send_message(app.MIC_MSG, self._sdk_msg.TxCode(value=1).pack())

    @property
    def connected(self) -> bool:
        return self._link is not None and not self._link.lost.is_set()

    @property
    def link(self) -> BleLink | None:
        """The link now, if it is up (never waits)."""
        return self._link if self.connected else None

    async def aclose(self) -> None:
        # Readers still waiting on ``current()`` (a watchdog restart closes a source
        # whose microphone reader is mid-read) end with this, not with a wait forever.
        self._failed = self._failed or DeviceError(f"{self.name or 'the glasses'}: closed", "frame")
        self._relinked.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor])
        link, self._link = self._link, None
        if link is not None:
            link.lost.set()
            link.detach()
            try:
                await link.ble.disconnect()
            except Exception as e:  # the glasses already went: nothing left to release
                self._say(f"(glasses: disconnecting: {e})")
