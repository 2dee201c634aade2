"""Where the playback sink's mixed blocks go: a sound card, a WAV file, or memory.

Every output *pulls*: it asks ``render(frames)`` for the next block of float32 samples,
shape (frames, channels), when it is ready for one. A sound card asks from its own
audio thread at its own pace; ``PacedOutput`` asks every ``block_ms`` on a ``Clock``
(real time for ``--play-to FILE.wav``, virtual time in tests), or only when
``step()`` is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import wave
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mobile_bridge.clock import Clock
from mobile_bridge.media import MediaError

__all__ = [
    "AudioOutput",
    "AudioOutputError",
    "PacedOutput",
    "RecordingOutput",
    "Render",
    "SoundDeviceOutput",
    "WavFileOutput",
]

log = logging.getLogger(__name__)

Render = Callable[[int], np.ndarray]

SOUNDDEVICE_HINT = (
    "playing speech needs sounddevice and PortAudio: pip install 'murmur[audio]' "
    "(and on Debian/Ubuntu apt-get install libportaudio2); "
    "or write the speech to a file with --play-to FILE.wav"
)


class AudioOutputError(MediaError):
    """The output cannot be opened; the message says why and what to do."""


class AudioOutput(ABC):
    """A place blocks of ``channels`` float32 samples at ``rate_hz`` are played.

    An output that can still lose a block after pulling it (glasses over a radio link)
    ``confirms``: it tells ``settled(block, heard)`` once per pulled block (numbered
    from 0 in the order pulled) whether the device took it, and ``discard`` drops
    pulled blocks not yet handed over (a cut). The sink then counts as heard only what
    was settled as heard. Every other output plays what it pulls.
    """

    confirms = False

    def __init__(self, rate_hz: int, channels: int = 2, block_ms: int = 20) -> None:
        self.rate_hz = rate_hz
        self.channels = channels
        self.block_ms = block_ms
        self.block_frames = rate_hz * block_ms // 1000

    def bind(self, settled: Callable[[int, bool], None]) -> None:  # noqa: B027 (optional hook)
        """Where an output that ``confirms`` says what became of each block."""

    def discard(self, blocks: Iterable[int]) -> None:  # noqa: B027 (optional hook)
        """Drop these pulled blocks if they are not handed over yet (each settled as
        not heard); the one being handed over now goes on."""

    @abstractmethod
    def start(self, render: Render) -> None:
        """Begin pulling blocks from ``render``; called once, on the event loop."""

    @abstractmethod
    def close(self) -> None:
        """Stop pulling and release the device or file; idempotent."""


def _sounddevice() -> Any:
    try:
        import sounddevice  # optional: only --play needs it
    except (ImportError, OSError) as e:  # OSError: the module is there, PortAudio is not
        raise AudioOutputError(f"{SOUNDDEVICE_HINT} ({e})") from e
    return sounddevice


def _has_output(sd: Any) -> bool:
    try:
        return any(d["max_output_channels"] > 0 for d in sd.query_devices())
    except Exception:
        return False


class SoundDeviceOutput(AudioOutput):
    """A sound card through sounddevice (PortAudio); its audio thread pulls the blocks.

    ``device`` is an index or a name (a unique part of one, as sounddevice matches),
    None for the system default. The settings are checked when it is made, so a bad
    device is reported before the session starts, not at its first word.
    """

    def __init__(
        self,
        rate_hz: int,
        channels: int = 2,
        block_ms: int = 20,
        *,
        device: int | str | None = None,
    ) -> None:
        super().__init__(rate_hz, channels, block_ms)
        self._sd = _sounddevice()
        self.device = int(device) if isinstance(device, str) and device.isdigit() else device
        self.underflows = 0  # blocks the card wanted before the callback gave them
        self._stream: Any = None
        try:
            self._sd.check_output_settings(
                device=self.device, channels=channels, samplerate=rate_hz, dtype="float32"
            )
        except Exception as e:  # sounddevice raises ValueError or PortAudioError
            why = str(e) if _has_output(self._sd) else "PortAudio sees no sound card that can play"
            raise AudioOutputError(
                f"cannot play {channels} ch at {rate_hz} Hz on output device "
                f"{self.device if self.device is not None else '(default)'}: {why}; "
                "see `python -m sounddevice` for the devices, or use --play-to FILE.wav"
            ) from e

    def start(self, render: Render) -> None:
        def callback(outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
            if status.output_underflow:
                self.underflows += 1
            outdata[:] = render(frames)

        try:
            self._stream = self._sd.OutputStream(
                samplerate=self.rate_hz,
                channels=self.channels,
                dtype="float32",
                blocksize=self.block_frames,
                device=self.device,
                latency="low",
                callback=callback,
            )
            self._stream.start()
        except Exception as e:
            raise AudioOutputError(f"cannot start the audio output: {e}") from e

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as e:  # closing a vanished device must not end the bridge
                log.warning("closing the audio output: %s", e)


class PacedOutput(AudioOutput):
    """Blocks pulled every ``block_ms`` of ``clock`` time and handed to ``write``.

    With no clock, nothing is pulled until ``step()``: tests move playback on block
    by block and look at exactly what came out. Late wakeups catch up (several blocks
    at once), so the output's timeline never drifts from the clock's.
    """

    def __init__(
        self,
        rate_hz: int,
        channels: int = 2,
        block_ms: int = 20,
        *,
        clock: Clock | None = None,
        write: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        super().__init__(rate_hz, channels, block_ms)
        self._clock = clock
        self._write = write
        self._render: Render | None = None
        self._task: asyncio.Task[None] | None = None
        self.blocks_out = 0
        self.closed = False

    def start(self, render: Render) -> None:
        self._render = render
        if self._clock is not None:
            self._task = asyncio.get_running_loop().create_task(self._pace(self._clock))

    def step(self, blocks: int = 1) -> None:
        """Pull and write ``blocks`` blocks now."""
        if self._render is None or self.closed:
            return
        for _ in range(blocks):
            block = self._render(self.block_frames)
            self.blocks_out += 1
            if self._write is not None:
                self._write(block)

    async def _pace(self, clock: Clock) -> None:
        start = clock.monotonic()
        block_s = self.block_ms / 1000
        while not self.closed:
            due = start + (self.blocks_out + 1) * block_s
            await clock.sleep(max(0.0, due - clock.monotonic()))
            behind = int((clock.monotonic() - start) / block_s) - self.blocks_out
            self.step(max(1, behind))

    def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            self._task = None


class RecordingOutput(PacedOutput):
    """Keeps every block it wrote: the oracle of what the wearer would have heard."""

    def __init__(
        self, rate_hz: int, channels: int = 2, block_ms: int = 20, *, clock: Clock | None = None
    ) -> None:
        super().__init__(rate_hz, channels, block_ms, clock=clock, write=self._keep)
        self.blocks: list[np.ndarray] = []

    def _keep(self, block: np.ndarray) -> None:
        self.blocks.append(block.copy())

    def samples(self) -> np.ndarray:
        """Everything written, shape (frames, channels)."""
        if not self.blocks:
            return np.zeros((0, self.channels), np.float32)
        return np.concatenate(self.blocks)


class WavFileOutput(PacedOutput):
    """``--play-to FILE.wav``: the wearer's ears as a 16-bit WAV, silences included."""

    def __init__(
        self,
        path: str | Path,
        rate_hz: int,
        channels: int = 2,
        block_ms: int = 20,
        *,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(rate_hz, channels, block_ms, clock=clock, write=self._append)
        self.path = Path(path)
        try:
            self._wav: wave.Wave_write | None = wave.open(str(self.path), "wb")
        except OSError as e:
            raise AudioOutputError(f"cannot write {self.path}: {e}") from e
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate_hz)

    def _append(self, block: np.ndarray) -> None:
        if self._wav is not None:
            pcm = np.clip(np.round(block * 32767.0), -32768, 32767).astype("<i2")
            self._wav.writeframes(pcm.tobytes())

    def close(self) -> None:
        super().close()
        wav, self._wav = self._wav, None
        if wav is not None:
            with contextlib.suppress(OSError):
                wav.close()
