"""The bridge machine's microphone as 20 ms Opus packets at 16 kHz mono.

PortAudio (through ``sounddevice``, an optional dependency: ``murmur[audio]``) is read
on a thread of its own, which also encodes, with the same ``OpusPacketizer`` the
replay source uses. A device that cannot record at 16 kHz is opened at its own rate
and resampled. Packets wait for the loop in a bounded buffer that drops the oldest
(counted) when the loop falls behind by more than ``buffer_s``.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.devices import DeviceError, import_sounddevice
from mobile_bridge.media import OpusPacketizer
from mobile_bridge.sources.base import OpusPacket
from mobile_bridge.sources.capture import CaptureBuffer

__all__ = ["Microphone", "MicrophoneOptions", "PcmStream"]

_HINT = "`murmur-bridge devices` lists the microphones this machine has"
STOP_WAIT_S = 2.0


@dataclass
class MicrophoneOptions:
    device: int | str | None = None  # a PortAudio index or part of a name; None: the default
    rate_hz: int = 16000
    frame_ms: int = 20
    buffer_s: float = 2.0  # audio held for a loop that falls behind, then the oldest goes


class PcmStream(Protocol):
    """What is used of ``sounddevice.InputStream`` (int16, mono, blocking reads)."""

    samplerate: float

    def start(self) -> None: ...

    def read(self, frames: int) -> tuple[Any, bool]: ...  # (samples, overflowed)

    def stop(self) -> None: ...

    def close(self) -> None: ...


class Microphone:
    """Opus packets from one input stream, stamped with the wall clock of their first
    sample. ``start`` starts recording; packets arrive in ``buffer``. Build it on the
    event loop that reads it (``await Microphone.open(options)``)."""

    def __init__(
        self,
        stream: PcmStream,
        options: MicrophoneOptions,
        name: str,
        clock: Clock | None = None,
    ) -> None:
        self.options = options
        self.name = name
        self.rate_hz = options.rate_hz
        self.frame_ms = options.frame_ms
        self._stream = stream
        self._clock = clock or SystemClock()
        self._packetizer = OpusPacketizer(options.rate_hz, options.frame_ms)
        self.buffer: CaptureBuffer[OpusPacket] = CaptureBuffer(
            max(1, int(options.buffer_s * 1000 / options.frame_ms))
        )
        self.overflows = 0  # times the device lost samples before they were read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mic-capture", daemon=True)

    @classmethod
    async def open(cls, options: MicrophoneOptions, clock: Clock | None = None) -> Microphone:
        """Open the device (at 16 kHz, else at its own rate) off the loop; raises
        ``DeviceError`` naming it."""
        stream, name = await asyncio.to_thread(_open_stream, options)
        return cls(stream, options, name, clock)

    def start(self) -> None:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def close(self) -> None:
        """Blocking: stop recording, wait for the reader, release the device."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_S)
        else:
            self._stream.close()

    def _run(self) -> None:
        framer = _Framer(self._packetizer.frame_samples)
        device_rate = round(self._stream.samplerate)
        resampler = _resampler(device_rate, self.rate_hz)
        block = max(1, device_rate * self.frame_ms // 1000)
        frame_s = self.frame_ms / 1000
        anchor: float | None = None  # unix time of the first sample not yet sent
        try:
            self._stream.start()
            while not self._stop.is_set():
                data, overflowed = self._stream.read(block)
                now = self._clock.time()
                pcm = np.asarray(data, dtype=np.int16).reshape(-1)
                if resampler is not None:
                    pcm = resampler.resample_chunk(pcm)
                if overflowed or anchor is None:
                    # Samples were lost (or this is the first read): the timeline starts
                    # again at what was just read, whatever was held is stale.
                    self.overflows += bool(overflowed)
                    framer.clear()
                    anchor = now - block / device_rate
                for frame in framer.push(pcm):
                    packet = self._packetizer.encode_frame(frame)
                    self.buffer.put(OpusPacket(packet, int(anchor * 1000)))
                    anchor += frame_s
        except Exception as e:  # PortAudioError, a device unplugged, a driver gone
            if not self._stop.is_set():
                self.buffer.fail(
                    DeviceError(
                        f"the microphone {self.name} stopped recording ({e}); is it still "
                        f"plugged in? ({_HINT})",
                        str(self.options.device),
                    )
                )
        finally:
            try:
                self._stream.stop()
            finally:
                self._stream.close()


def _open_stream(options: MicrophoneOptions) -> tuple[PcmStream, str]:
    sd = import_sounddevice()
    device = options.device
    try:
        info = sd.query_devices(device, "input")
    except (ValueError, sd.PortAudioError) as e:
        which = "the default microphone" if device is None else f"the microphone {device!r}"
        raise DeviceError(f"cannot find {which} ({e}; {_HINT})", str(device or "")) from e
    name = repr(str(info["name"]))
    try:
        stream = sd.InputStream(
            device=device,
            channels=1,
            dtype="int16",
            samplerate=options.rate_hz,
            blocksize=options.rate_hz * options.frame_ms // 1000,
        )
    except (ValueError, sd.PortAudioError):
        # Many devices record only at their own rate (often 48 kHz): take that.
        try:
            stream = sd.InputStream(
                device=device, channels=1, dtype="int16", samplerate=info["default_samplerate"]
            )
        except (ValueError, sd.PortAudioError) as e:
            raise DeviceError(
                f"cannot record from the microphone {name}: {e} ({_HINT})", str(device or "")
            ) from e
    return stream, name


class _Framer:
    """Arbitrary chunks of samples → frames of exactly ``n``."""

    def __init__(self, n: int) -> None:
        self._n = n
        self._held = np.zeros(0, np.int16)

    def clear(self) -> None:
        self._held = np.zeros(0, np.int16)

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        held = np.concatenate([self._held, pcm]) if self._held.size else pcm
        whole = held.size // self._n * self._n
        self._held = held[whole:].copy()
        return [held[i : i + self._n] for i in range(0, whole, self._n)]


def _resampler(src_hz: int, dst_hz: int) -> Any:
    if src_hz == dst_hz:
        return None
    import soxr

    # A stream resampler keeps its filter state across chunks (no clicks at the joins).
    return soxr.ResampleStream(src_hz, dst_hz, 1, dtype="int16")
