"""Load a Qwen3-VL interaction model and its processor, or say exactly why not.

Every failure becomes a ``ModelLoadError`` whose message names what failed and
how to point ``murmur serve --model`` somewhere that works: a local folder, a
remote OpenAI-compatible endpoint, or a scripted model.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from server.errors import ModelLoadError
from server.runtime.limits import DEFAULT_MODEL

__all__ = [
    "CUDA_HEADROOM_BYTES",
    "INT4_MODEL",
    "LoadedModel",
    "checkpoint_quantization",
    "estimate_weight_bytes",
    "image_only_processor",
    "load_model",
    "resolve_device",
    "resolve_dtype",
]

log = logging.getLogger(__name__)

# JD's official 4-bit build (compressed-tensors, W4A16): ~7.6 GB of weights.
INT4_MODEL = "jdopensource/JoyAI-VL-Interaction-INT4"
SUPPORTED_MODEL_TYPES = ("qwen3_vl",)
# CUDA context, vision-tower activations and the allocator's slack.
CUDA_HEADROOM_BYTES = int(1.5 * 2**30)

_HOW_TO = (
    "Point `murmur serve --model` at a local checkpoint folder (config.json, "
    "*.safetensors, tokenizer and preprocessor files), at a remote OpenAI-compatible "
    "server (`--model http://HOST:PORT/v1`), or at a scripted model "
    "(`--model scripted:FILE`)."
)


def _fail(what: str, cause: BaseException | None = None) -> ModelLoadError:
    detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return ModelLoadError(f"{what}{detail}. {_HOW_TO}")


@dataclass(slots=True)
class LoadedModel:
    model: Any  # Qwen3VLForConditionalGeneration
    processor: Any  # Qwen3VLProcessor (or the image-only subclass)
    device: torch.device
    dtype: torch.dtype
    source: str


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise _fail(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N", e) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise _fail(
            f"device {device!r} was asked for but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})"
        )
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        # bf16 is what the model was trained in; CPUs run fp32 much faster and exactly.
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    names = {
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
        "float32": torch.float32,
        "fp32": torch.float32,
    }
    if dtype not in names:
        raise _fail(f"unknown dtype {dtype!r}; use auto, bfloat16, float16 or float32")
    return names[dtype]


def _looks_like_path(model: str) -> bool:
    # Hub ids are "owner/name"; anything else with a slash, or that exists, is a folder.
    return (
        model.startswith((".", "/", "~"))
        or model.count("/") > 1
        or Path(model).expanduser().exists()
    )


def _load_config(model: str) -> tuple[Any, str]:
    from transformers import AutoConfig

    path = Path(model).expanduser()
    if _looks_like_path(model) and not path.is_dir():
        raise _fail(f"model folder {model!r} does not exist")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _fail(f"{str(path)!r} is not a model checkpoint: it has no config.json")
        try:
            return AutoConfig.from_pretrained(path), str(path)
        except (OSError, ValueError, KeyError) as e:
            raise _fail(f"cannot read the model config in {str(path)!r}", e) from e
    # A hub id. Try the local cache first: it answers at once, while an unreachable
    # hub is retried for minutes before failing.
    try:
        return AutoConfig.from_pretrained(model, local_files_only=True), model
    except (OSError, ValueError):
        pass
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        raise _fail(
            f"model {model!r} is not in the local Hugging Face cache and the hub is "
            "disabled (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE=1)"
        )
    try:
        return AutoConfig.from_pretrained(model), model
    except (OSError, ValueError) as e:
        raise _fail(f"cannot fetch {model!r} from the Hugging Face hub (no network?)", e) from e


def checkpoint_quantization(config: Any) -> str | None:
    """The quantization a checkpoint ships with (``compressed-tensors`` for the
    official INT4 build, ``gptq``, ``awq``, …), or None for plain weights."""
    qc = getattr(config, "quantization_config", None)
    if qc is None:
        return None
    method = qc.get("quant_method") if isinstance(qc, dict) else getattr(qc, "quant_method", None)
    return str(getattr(method, "value", method) or "unknown")


def _checkpoint_scheme(config: Any) -> tuple[int, int]:
    """Weight bits and group size a pre-quantized checkpoint declares (4 and 128, the
    usual W4A16 scheme, where it does not say)."""
    qc = config.quantization_config
    qc = qc if isinstance(qc, dict) else qc.to_dict()
    bits, group = qc.get("bits"), qc.get("group_size")  # gptq, awq
    for scheme in (qc.get("config_groups") or {}).values():  # compressed-tensors
        weights = scheme.get("weights") or {}
        bits, group = weights.get("num_bits", bits), weights.get("group_size", group)
        break
    # A group size of -1 or 0 means one scale per output channel: none per group.
    return (bits if isinstance(bits, int) else 4), (group if isinstance(group, int) else 128)


def _safetensors_bytes(source: str) -> int | None:
    """Bytes of a checkpoint's weights when all its files are on this machine."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(source, local_files_only=True))
        except (OSError, ValueError):  # not in the cache (yet): estimate instead
            return None
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = [folder / s for s in set(json.loads(index.read_text())["weight_map"].values())]
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            return None  # not an index we can read: estimate instead
        if not all(f.is_file() for f in files):
            return None  # an interrupted download: its size says nothing yet
        return sum(f.stat().st_size for f in files)
    single = folder / "model.safetensors"
    return single.stat().st_size if single.is_file() else None


def estimate_weight_bytes(
    config: Any, dtype: torch.dtype, quantization: str | None, source: str | None = None
) -> int:
    """Bytes of weights in GPU memory.

    Plain checkpoints: the exact parameter count (meta device) × bytes per parameter,
    with bitsandbytes' ``quantization`` applied on load. A pre-quantized checkpoint
    (the official INT4 build): the size of its weight files when all of them are
    here; before its download, the text decoder's linear layers at the declared bits
    (plus a scale per group) and everything else — embeddings, the output layer, the
    vision tower, which such builds leave alone — in ``dtype``.
    """
    from transformers import AutoModelForImageTextToText

    prequantized = quantization is None and checkpoint_quantization(config) is not None
    if prequantized and source is not None:
        on_disk = _safetensors_bytes(source)
        if on_disk is not None:
            return on_disk
    with torch.device("meta"):
        skeleton = AutoModelForImageTextToText.from_config(config)
    per_param = torch.finfo(dtype).bits / 8
    params = sum(p.numel() for p in skeleton.parameters())
    if not prequantized:
        per_param = {None: per_param, "8bit": 1.0, "4bit": 0.56}[quantization]
        return int(params * per_param)
    bits, group = _checkpoint_scheme(config)
    packed = sum(
        m.weight.numel()
        for name, m in skeleton.named_modules()
        if isinstance(m, torch.nn.Linear) and ".layers." in name and "visual" not in name
    )
    per_packed = bits / 8 + (per_param / group if group > 0 else 0.0)  # + a scale per group
    return int((params - packed) * per_param + packed * per_packed)


def _check_fits_gpu(
    config: Any,
    dtype: torch.dtype,
    device: torch.device,
    quantization: str | None,
    model: str,
    source: str,
) -> None:
    need = estimate_weight_bytes(config, dtype, quantization, source)
    free, total = torch.cuda.mem_get_info(device)
    if need + CUDA_HEADROOM_BYTES > free:
        gib = 2**30
        kind = checkpoint_quantization(config) or quantization or str(dtype)
        raise _fail(
            f"{model!r} needs about {need / gib:.1f} GiB for its weights ({kind}) plus "
            f"{CUDA_HEADROOM_BYTES / gib:.1f} GiB working memory, but {device} has only "
            f"{free / gib:.1f} GiB free of {total / gib:.1f} GiB. Free the GPU, use "
            f"--quantization 4bit, or the official INT4 build (--model {INT4_MODEL})"
        )


def _check_prequantized(config: Any, quantization: str | None, model: str) -> None:
    """A checkpoint that ships quantized is loaded as it is, with what it needs."""
    method = checkpoint_quantization(config)
    if method is None:
        return
    if quantization is not None:
        raise _fail(
            f"{model!r} is already quantized ({method}); drop --quantization {quantization}"
        )
    needed = {"compressed-tensors": "compressed_tensors"}.get(method)
    if needed is not None and importlib.util.find_spec(needed) is None:
        pip_name = needed.replace("_", "-")
        raise _fail(
            f"{model!r} is a {method} checkpoint and needs the {pip_name} package: "
            f"pip install {pip_name}"
        )


def _quantization_config(quantization: str | None, dtype: torch.dtype) -> Any:
    if quantization is None:
        return None
    if quantization not in ("8bit", "4bit"):
        raise _fail(f"unknown quantization {quantization!r}; use 8bit or 4bit")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise _fail(f"{quantization} quantization needs bitsandbytes: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4"
    )


def _image_only_processor_class() -> type:
    from transformers import Qwen3VLProcessor

    class _ImageOnly(Qwen3VLProcessor):  # type: ignore[misc]
        """Qwen3-VL's processor without the video processor (which needs torchvision).

        ``ProcessorMixin`` derives its sub-processors from ``__init__``'s parameters,
        so leaving ``video_processor`` out of the signature drops it.
        """

        def __init__(
            self,
            image_processor: Any = None,
            tokenizer: Any = None,
            chat_template: str | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(
                image_processor, tokenizer, None, chat_template=chat_template, **kwargs
            )

    _ImageOnly.__name__ = _ImageOnly.__qualname__ = "ImageOnlyQwen3VLProcessor"
    return _ImageOnly


def image_only_processor(source: str) -> Any:
    """Build the image-only processor for the checkpoint at ``source``."""
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    tokenizer = AutoTokenizer.from_pretrained(source)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(source)
    template = getattr(tokenizer, "chat_template", None)
    return _image_only_processor_class()(image_processor, tokenizer, chat_template=template)


def _load_processor(source: str) -> Any:
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(source)
    except ImportError as e:
        # transformers' Qwen3-VL AutoProcessor insists on torchvision for its video
        # processor; Murmur only sends still frames.
        if "torchvision" not in str(e).lower():
            raise _fail(f"cannot build the processor for {source!r}", e) from e
        log.info("torchvision missing: using the image-only Qwen3-VL processor")
    except (OSError, ValueError) as e:
        raise _fail(
            f"cannot load the processor (tokenizer, image processor) of {source!r}", e
        ) from e
    try:
        return image_only_processor(source)
    except (OSError, ValueError, ImportError) as e:
        raise _fail(f"cannot load the tokenizer / image processor of {source!r}", e) from e


def load_model(
    model: str = DEFAULT_MODEL,
    *,
    device: str = "auto",
    dtype: str | torch.dtype = "auto",
    quantization: str | None = None,
) -> LoadedModel:
    """Load weights and processor; raise ``ModelLoadError`` saying what failed."""
    from transformers import AutoModelForImageTextToText

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    config, source = _load_config(model)
    model_type = getattr(config, "model_type", "?")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise _fail(
            f"{model!r} is a {model_type!r} model; the in-process runtime runs Qwen3-VL "
            f"checkpoints ({', '.join(SUPPORTED_MODEL_TYPES)}) such as {DEFAULT_MODEL}"
        )
    _check_prequantized(config, quantization, model)
    if quantization is not None and dev.type != "cuda":
        raise _fail(f"{quantization} quantization (bitsandbytes) needs a CUDA GPU; got {dev}")
    quant_config = _quantization_config(quantization, torch_dtype)
    if dev.type == "cuda":
        _check_fits_gpu(config, torch_dtype, dev, quantization, model, source)
    processor = _load_processor(source)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "device_map": {"": str(dev)}}
    if quant_config is not None:
        kwargs["quantization_config"] = quant_config
    try:
        net = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except torch.cuda.OutOfMemoryError as e:
        raise _fail(f"ran out of GPU memory loading {model!r}", e) from e
    except (OSError, ValueError, ImportError, RuntimeError) as e:
        raise _fail(f"cannot load the weights of {model!r}", e) from e
    net.eval()
    if not hasattr(getattr(net, "model", None), "get_rope_index"):
        raise _fail(f"{model!r} loaded as {type(net).__name__}, which has no Qwen3-VL rope index")
    return LoadedModel(model=net, processor=processor, device=dev, dtype=torch_dtype, source=source)
