"""The interaction model: its files (a folder, the Hugging Face cache, or the hub), the
disk a download needs, and the GPU memory the chosen model and quantization need,
counted by the loader's own arithmetic (``estimate_weight_bytes`` and its headroom)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.config import Settings
from server.doctor.report import Check
from server.download import (
    DOCUMENTED_BYTES,
    DownloadError,
    cache_root,
    cached_snapshot,
    check_disk,
    free_bytes,
    gib,
    plan_download,
)

__all__ = ["ModelFacts", "check_gpu", "check_model_files", "model_kind"]

NO_GPU_FIX = (
    "run on a machine with an NVIDIA GPU, or use --model http://HOST:8000/v1 (vLLM on "
    "another machine), or --model scripted:FILE to try the loop"
)
# A session's smallest KV chunk (the runtime's _MIN_AUTO_CHUNK_TICKS of 300 tokens, plus
# system prompt, history and generation room): below this the runtime cannot serve at all.
_MIN_CHUNK_TOKENS = 8 * 300 + 1536


def model_kind(spec: str) -> str:
    """scripted, http, folder or hub, as ``server.app.build_runtime`` tells them apart."""
    spec = spec.strip()
    if spec.startswith("scripted:"):
        return "scripted"
    if spec.startswith(("http://", "https://")):
        return "http"
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1
    return "folder" if looks_like_path or Path(spec).expanduser().exists() else "hub"


@dataclass
class ModelFacts:
    """What the model-files check learnt, for the GPU check."""

    folder: Path | None = None  # the checkpoint on this machine, when it is all here
    hub_bytes: int | None = None  # its size per the hub


def check_model_files(settings: Settings, facts: ModelFacts) -> list[Check]:
    spec = settings.model.model.strip()
    kind = model_kind(spec)
    if kind in ("scripted", "http"):
        return [_check_built_runtime(settings, kind)]
    if kind == "folder":
        folder = Path(spec).expanduser()
        if not (folder / "config.json").is_file():
            return [Check.fail("model", f"{folder} is not a checkpoint folder (no config.json)",
                               "pass a folder with config.json, *.safetensors, tokenizer and "
                               "preprocessor files, or a hub id (`murmur download ID`)")]  # fmt: skip
        facts.folder = folder
        return [Check.ok("model", f"{folder} (a local checkpoint)")]
    cached = cached_snapshot(spec)
    if cached is not None:
        facts.folder = cached
        size = sum(p.stat().st_size for p in cached.rglob("*") if p.is_file())
        return [Check.ok("model", f"{spec} in the Hugging Face cache ({gib(size)}, {cached})")]
    try:
        plan = plan_download(spec)
    except DownloadError as e:
        documented = DOCUMENTED_BYTES.get(spec)
        cache = cache_root()
        return [
            Check.fail(
                "model",
                f"{spec} is not in the Hugging Face cache ({cache}), and {e.short}",
                f"on a machine with internet: murmur download {spec} --cache-dir DIR, copy DIR "
                "here and serve with HF_HUB_CACHE=DIR; or --model /path/to/checkpoint, or "
                "--model http://HOST:8000/v1",
            ),
            Check.warn(
                "disk",
                f"{gib(free_bytes(cache))} free at {cache}; the model needs "
                + (f"about {gib(documented)}" if documented else "its size (unknown offline)"),
            ),
        ]
    facts.hub_bytes = plan.total
    lines = [Check.warn("model", f"{spec} is not downloaded yet ({gib(plan.remaining)} of "
                        f"{gib(plan.total)} to fetch); `murmur serve` would fetch it at start",
                        f"murmur download {spec}  (progress bar, resumable)")]  # fmt: skip
    problem = check_disk(plan)
    if problem:
        lines.append(
            Check.fail("disk", problem, "free space, or --cache-dir DIR with HF_HUB_CACHE=DIR")
        )
    else:
        lines.append(Check.ok("disk", f"{gib(free_bytes(plan.cache))} free at {plan.cache}"))
    return lines


def _check_built_runtime(settings: Settings, kind: str) -> Check:
    """The app's own ``build_runtime``: a script is parsed, an endpoint's /models read."""
    from server.app import build_runtime
    from server.errors import ModelLoadError
    from server.session.services import Executors

    executors = Executors()
    try:
        runtime = build_runtime(settings, executors)
    except (ModelLoadError, OSError, ValueError) as e:
        fix = ("fix the script (one JSON object a line; examples/walk.jsonl)" if kind == "scripted"
               else "start it: vllm serve jdopensource/JoyAI-VL-Interaction --enable-prefix-caching")  # fmt: skip
        return Check.fail("model", getattr(e, "message", str(e)), fix)
    finally:
        executors.shutdown()
    try:
        return Check.ok("model", f"{runtime.name}: loads")
    finally:
        runtime.close()


def check_gpu(settings: Settings, facts: ModelFacts) -> Check:
    m = settings.model
    if model_kind(m.model) in ("scripted", "http"):
        return Check.skip("gpu", f"not needed for {m.model.split(':')[0]} models")
    try:
        import torch

        from server.runtime.transformers.loading import resolve_device
    except ImportError as e:
        return Check.fail("gpu", f"torch/transformers missing ({e})",
                          "pip install murmur (with torch), or " + NO_GPU_FIX.split(", or ", 1)[1])  # fmt: skip
    from server.errors import ModelLoadError

    try:
        device = resolve_device(m.device)
    except ModelLoadError as e:
        return Check.fail("gpu", e.message.split(". Point")[0], NO_GPU_FIX)
    need, how = _need_bytes(settings, device, facts)
    quant = m.quantization
    if device.type != "cuda" and m.device == "auto":
        cuda = torch.version.cuda or "none"
        return Check.fail("gpu", f"no CUDA GPU (torch {torch.__version__}, CUDA {cuda}); "
                          f"{m.model} needs {how}", NO_GPU_FIX + "; --device cpu runs it on "
                          "the CPU anyway (an 8B model takes seconds per tick)")  # fmt: skip
    problem = _prequantized_problem(settings, facts)
    if problem is not None:
        return problem
    if device.type != "cuda":
        if quant:
            return Check.fail("gpu", f"--quantization {quant} (bitsandbytes) needs a CUDA GPU",
                              "drop --quantization on the CPU")  # fmt: skip
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        if need is not None and need > ram:
            return Check.fail("gpu", f"--device cpu: needs {how}, {gib(ram)} RAM free",
                              "free memory, or " + NO_GPU_FIX)  # fmt: skip
        return Check.ok("gpu", f"--device cpu: needs {how}, {gib(ram)} RAM free")
    if quant and importlib.util.find_spec("bitsandbytes") is None:
        return Check.fail("gpu", f"--quantization {quant} needs bitsandbytes",
                          "pip install 'murmur[quantize]'")  # fmt: skip
    free, total = torch.cuda.mem_get_info(device)
    name = torch.cuda.get_device_name(device)
    found = f"{name} ({device}): {gib(free)} free of {gib(total)}; needs {how}"
    if need is None:
        return Check.warn("gpu", found, f"murmur download {m.model}, then run doctor again")
    if need > free:
        return Check.fail("gpu", found, "free the GPU, use --quantization 4bit, or the official "
                          "INT4 build (--model jdopensource/JoyAI-VL-Interaction-INT4)")  # fmt: skip
    return Check.ok("gpu", found)


def _prequantized_problem(settings: Settings, facts: ModelFacts) -> Check | None:
    """A checkpoint that ships quantized loads as it is, with what it needs (as the loader
    refuses it)."""
    from server.runtime.transformers.loading import INT4_MODEL, checkpoint_quantization

    m = settings.model
    config = _local_config(facts.folder)
    method = checkpoint_quantization(config) if config is not None else None
    if method is None and m.model.strip() == INT4_MODEL:
        method = "compressed-tensors"
    if method is None:
        return None
    if m.quantization:
        return Check.fail("gpu", f"{m.model} is already quantized ({method})",
                          f"drop --quantization {m.quantization}")  # fmt: skip
    if method == "compressed-tensors" and importlib.util.find_spec("compressed_tensors") is None:
        return Check.fail("gpu", f"{m.model} is a {method} checkpoint",
                          "pip install 'murmur[int4]'  (compressed-tensors)")  # fmt: skip
    return None


def _need_bytes(settings: Settings, device: Any, facts: ModelFacts) -> tuple[int | None, str]:
    """Bytes of GPU (or CPU) memory the model needs at least, and how that reads."""
    from server.runtime.transformers.loading import (
        CUDA_HEADROOM_BYTES,
        checkpoint_quantization,
        estimate_weight_bytes,
        resolve_dtype,
    )

    m = settings.model
    dtype = resolve_dtype(m.dtype, device)
    quant = m.quantization or None
    config = _local_config(facts.folder)
    if config is None:
        weights = DOCUMENTED_BYTES.get(m.model.strip()) or facts.hub_bytes
        if weights is None:
            return None, "an amount known once its config.json is here"
        # Published sizes are bf16 (2 bytes a parameter): bitsandbytes keeps 1 (8bit) or
        # 0.56 (4bit, as estimate_weight_bytes counts) of them.
        weights = int(weights * {None: 1.0, "8bit": 0.5, "4bit": 0.28}[quant])
        kv = 144 * 1024 * _MIN_CHUNK_TOKENS  # the 8B's 144 KiB/token (README)
        kind = quant or "as published"
    else:
        weights = estimate_weight_bytes(config, dtype, quant, str(facts.folder))
        text = getattr(config, "text_config", config)
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        per_token = text.num_hidden_layers * text.num_key_value_heads * head_dim * 2 * 2
        kv = per_token * _MIN_CHUNK_TOKENS
        kind = checkpoint_quantization(config) or quant or str(dtype).removeprefix("torch.")
    need = weights + CUDA_HEADROOM_BYTES + kv
    how = (f"{gib(need)} ({gib(weights)} weights {kind} + {gib(CUDA_HEADROOM_BYTES)} "
           f"working memory + {gib(kv)} for the smallest KV chunk)")  # fmt: skip
    return need, how


def _local_config(folder: Path | None) -> Any:
    if folder is None:
        return None
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError, ImportError):
        return None
