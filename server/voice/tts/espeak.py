"""espeak-ng: robotic but always there. The last resort of the fallback chain.

Runs the ``espeak-ng`` binary once per clause (``--stdout`` writes a WAV); the text
goes through stdin so a clause that starts with "-" is never read as an option.
``VoiceOptions.whisper`` picks espeak-ng's whisper variant (``-v en+whisper``).

Words are kept apart by a short pause (``word_gap_ms``, espeak-ng's ``-g``): run
together, its formant speech loses word boundaries, and an independent recogniser got
about 76 % of its words at 157 wpm; with 80 ms between words (and the US voice for a
plain "en") it gets about 90 %, while slowing the syllables alone did not help
(benchmarks/bench_whisper_voice.py prints it).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import Iterator
from concurrent.futures import Executor

import numpy as np

from server.voice.tts.base import PcmChunk, TTSBackend, TTSCapabilities, TTSError, VoiceOptions

__all__ = ["EspeakTTS"]

SAMPLE_RATE = 22050  # espeak-ng's native output rate
_INSTALL_HINT = "install it with: apt-get install -y espeak-ng (or brew install espeak-ng)"


class EspeakTTS(TTSBackend):
    def __init__(
        self,
        binary: str = "",
        *,
        words_per_minute: int = 165,
        word_gap_ms: int = 80,
        timeout_s: float = 10.0,
        executor: Executor | None = None,  # the app's thread for this voice; None: its own
    ) -> None:
        found = (
            shutil.which(binary)
            if binary
            else (shutil.which("espeak-ng") or shutil.which("espeak"))
        )
        if found is None:
            raise TTSError(f"{binary or 'espeak-ng'} was not found on PATH; {_INSTALL_HINT}")
        self.binary = found
        self.words_per_minute = words_per_minute
        self.word_gap_ms = word_gap_ms
        self.timeout_s = timeout_s
        super().__init__(
            TTSCapabilities(
                name="espeak",
                offline=True,
                sample_rate=SAMPLE_RATE,
                languages=("en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "ru", "zh", "ja"),
            ),
            executor,
        )

    def command(self, options: VoiceOptions) -> list[str]:
        wpm = round(self.words_per_minute * min(max(options.rate, 0.5), 2.0))
        amplitude = round(100 * min(max(options.volume, 0.0), 1.0))  # espeak: 0..200, 100 = normal
        voice = options.language.lower().replace("_", "-") or "en"
        if voice == "en":  # espeak-ng's "en" is British; its US voice is understood better
            voice = "en-us"
        if options.whisper:
            voice += "+whisper"  # espeak-ng --voices=variant lists it
        gap = str(max(round(self.word_gap_ms / 10), 0))  # -g: units of 10 ms
        return [
            self.binary,
            "--stdout",
            "-v",
            voice,
            "-s",
            str(wpm),
            "-a",
            str(amplitude),
            "-g",
            gap,
        ]

    def _synthesize(self, clause: str, options: VoiceOptions) -> Iterator[PcmChunk]:
        try:
            proc = subprocess.run(
                self.command(options),
                input=clause.encode("utf-8"),
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except FileNotFoundError as e:
            raise TTSError(f"{self.binary} disappeared; {_INSTALL_HINT}") from e
        except subprocess.TimeoutExpired as e:
            raise TTSError(
                f"espeak-ng took longer than {self.timeout_s:.0f} s for one clause"
            ) from e
        if proc.returncode != 0 or not proc.stdout:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise TTSError(f"espeak-ng failed (exit {proc.returncode}): {err or 'no audio'}")
        yield _read_wav(proc.stdout, clause)

    def describe(self) -> str:
        return f"espeak ({self.binary}, {SAMPLE_RATE} Hz, offline)"


def _read_wav(data: bytes, clause: str) -> PcmChunk:
    # espeak-ng writes placeholder RIFF sizes (~2 GiB) when streaming to stdout; `wave`
    # copes, but only with readframes bounded by what is really there.
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise TTSError(f"espeak-ng wrote an unreadable WAV ({e})") from e
    if width != 2:
        raise TTSError(f"espeak-ng wrote {8 * width}-bit audio; expected 16-bit")
    pcm = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2").astype(np.int16)
    if channels > 1:
        pcm = pcm.reshape(-1, channels)[:, 0].copy()
    return PcmChunk(pcm, rate, clause)
