"""Incremental forward passes of a Qwen3-VL model against a kept KV cache.

The facts this relies on (DESIGN §2, checked by tests/test_transformers_runtime.py):

- A segment's multimodal rotary positions come from the model's own rope index
  computed on that segment alone, shifted by (largest cached position + 1). After
  an image the positions advance by max(h, w) of its merged grid, not by its token
  count, so plain sequential positions are wrong as soon as a frame is cached.
- Segments split on special tokens (``<|im_start|>``, ``<|im_end|>``), so
  tokenizing them apart equals tokenizing the whole conversation.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from server.runtime.transformers.attention import (
    CACHED_ATTENTION,
    folded_mask,
    register_cached_attention,
)
from server.runtime.transformers.kv_cache import ChunkKVCache

__all__ = ["ASSISTANT_PREFIX", "IM_END", "QwenForward", "Segment", "render_message"]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ASSISTANT_PREFIX = f"{IM_START}assistant\n"
_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"


def render_message(message: dict[str, Any]) -> str:
    """One chat message as the Qwen3-VL chat template renders it.

    Rendered here rather than through ``apply_chat_template`` because templates may
    add a default system turn to a lone message; a test checks this matches the
    checkpoint's own template for whole conversations.
    """
    content = message["content"]
    if isinstance(content, str):
        body = content
    else:
        body = "".join(_IMAGE if item.get("type") == "image" else item["text"] for item in content)
    return f"{IM_START}{message['role']}\n{body}{IM_END}\n"


@dataclass(slots=True)
class Segment:
    """Token ids (1, L), their 0-based rotary positions (3, L), and vision inputs."""

    ids: torch.Tensor
    positions: torch.Tensor
    vision: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.ids.shape[1])


class QwenForward:
    """The model, its processor, and the one lock every forward takes."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        device: torch.device,
        *,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.device = device
        # Steps of every session (and background summaries) share one accelerator.
        self.lock = threading.RLock()
        register_cached_attention(model)
        text_cfg = model.config.get_text_config()
        self._text_cfg = text_cfg
        self.num_layers: int = text_cfg.num_hidden_layers
        self.kv_heads: int = text_cfg.num_key_value_heads
        self.head_dim: int = getattr(text_cfg, "head_dim", None) or (
            text_cfg.hidden_size // text_cfg.num_attention_heads
        )
        self.kv_dtype: torch.dtype = next(model.parameters()).dtype
        if self.kv_dtype not in (torch.float32, torch.float16, torch.bfloat16):
            self.kv_dtype = torch.bfloat16  # quantized weights: activations stay in bf16
        size = dict(getattr(processor.image_processor, "size", {}) or {})
        if min_pixels is not None:
            size["shortest_edge"] = min_pixels
        if max_pixels is not None:
            size["longest_edge"] = max_pixels
        self._image_kwargs = {"size": size} if size else {}
        self.image_size: dict[str, int] = dict(size)  # the frame bounds every session gets
        # transformers renamed past_key_values to cache (5.2x); accept either.
        forward_params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward_params else "past_key_values"
        self.cache_keyword = self._cache_kw
        # Sessions' forwards can be packed into one only with the cached attention
        # (per-row caches, batch.py); with eager or flash attention they run one by one.
        self.packs = text_cfg._attn_implementation == CACHED_ATTENTION
        self._forward_params = set(forward_params)
        rope_params = inspect.signature(model.model.get_rope_index).parameters
        self._rope_takes_types = "mm_token_type_ids" in rope_params
        self.im_end_id: int = self.tokenizer.convert_tokens_to_ids(IM_END)
        stop = {
            self.im_end_id,
            self.tokenizer.eos_token_id,
            self.tokenizer.pad_token_id,
            self.tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        }
        self.stop_ids: frozenset[int] = frozenset(i for i in stop if isinstance(i, int) and i >= 0)

    # -- text ---------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    # -- segments -------------------------------------------------------------

    def text_segment(self, ids: list[int]) -> Segment:
        t = torch.tensor([ids], dtype=torch.long)
        pos = torch.arange(len(ids), dtype=torch.long).view(1, -1).expand(3, -1)
        return Segment(ids=t, positions=pos, vision={})

    def encode(
        self, text: str, image: Image.Image | None, max_pixels: int | None = None
    ) -> Segment:
        """Run the processor on one turn (its text and at most one image). ``max_pixels``:
        a still's larger budget (``TickInput.frame_max_pixels``); never below the frame cap."""
        if image is None:
            out = self.processor(text=[text], return_tensors="pt")
        else:
            out = self.processor(
                text=[text], images=[image], return_tensors="pt", **self._image_args(max_pixels)
            )
        ids = out["input_ids"]
        vision = {
            k: v
            for k, v in out.items()
            if k not in ("input_ids", "attention_mask") and k in self._forward_params
        }
        if image is None:
            pos = torch.arange(ids.shape[1], dtype=torch.long).view(1, -1).expand(3, -1)
        else:
            pos = self.rope_positions(ids, vision)
        return Segment(ids=ids, positions=pos, vision=vision)

    def _image_args(self, max_pixels: int | None) -> dict[str, Any]:
        cap = self.image_size.get("longest_edge")
        if max_pixels is None or (cap is not None and max_pixels <= cap):
            return self._image_kwargs
        return {"size": {**self.image_size, "longest_edge": max_pixels}}

    def rope_positions(self, ids: torch.Tensor, vision: dict[str, torch.Tensor]) -> torch.Tensor:
        """The segment's own multimodal rotary positions, starting at 0: (3, L)."""
        kwargs: dict[str, Any] = {"image_grid_thw": vision.get("image_grid_thw")}
        if self._rope_takes_types:
            types = vision.get("mm_token_type_ids")
            if types is None:
                types = (ids == self.model.config.image_token_id).long()
            kwargs["mm_token_type_ids"] = types
        pos, _ = self.model.model.get_rope_index(ids, **kwargs)
        return pos[:, 0, :]

    @staticmethod
    def join(first: Segment, second: Segment) -> Segment:
        """``first`` then ``second``, positions continuing after ``first``'s largest."""
        if len(first) == 0:
            return second
        if len(second) == 0:
            return first
        shift = int(first.positions.max()) + 1
        vision = dict(second.vision)
        if "mm_token_type_ids" in vision or "mm_token_type_ids" in first.vision:
            a = first.vision.get("mm_token_type_ids", torch.zeros_like(first.ids))
            b = second.vision.get("mm_token_type_ids", torch.zeros_like(second.ids))
            vision["mm_token_type_ids"] = torch.cat([a, b], dim=1)
        for k, v in first.vision.items():
            if k != "mm_token_type_ids":
                if k in vision:
                    raise ValueError("a segment holds at most one turn's image")
                vision[k] = v
        return Segment(
            ids=torch.cat([first.ids, second.ids], dim=1),
            positions=torch.cat([first.positions, second.positions + shift], dim=1),
            vision=vision,
        )

    # -- forward --------------------------------------------------------------

    @torch.inference_mode()
    def forward(self, segment: Segment, cache: ChunkKVCache, base_position: int) -> torch.Tensor:
        """Append ``segment`` to ``cache``; return the last token's logits (vocab,).

        The caller holds ``self.lock``.
        """
        dev = self.device
        kwargs: dict[str, Any] = {
            "input_ids": segment.ids.to(dev),
            "position_ids": (segment.positions + base_position).unsqueeze(1).to(dev),
            "attention_mask": self._mask(len(segment), cache.length),  # None: cached attention
            self._cache_kw: cache,
            "use_cache": True,
            "logits_to_keep": 1,
        }
        for k, v in segment.vision.items():
            kwargs[k] = v.to(dev)
        try:
            out = self.model(**kwargs)
        finally:
            folded_mask.cache_clear()  # shared by this forward's layers, not kept after it
        return out.logits[0, -1].float()

    def _mask(self, new: int, cached: int) -> torch.Tensor | None:
        """Full length: every cached token is visible, the new ones causally.

        Built once per forward as the 4D additive mask the attention kernels take;
        a 2D mask would be expanded to this and converted again in every layer,
        which on CPU cost more than the attention itself at 25k cached tokens.
        """
        if self._text_cfg._attn_implementation == CACHED_ATTENTION:
            return None  # the layout is the mask (attention.py)
        if self.model.config._attn_implementation not in ("sdpa", "eager"):
            return torch.ones((1, cached + new), dtype=torch.long, device=self.device)
        mask = torch.zeros((1, 1, new, cached + new), dtype=self.kv_dtype, device=self.device)
        if new > 1:
            tri = torch.ones((new, new), dtype=torch.bool, device=self.device).triu(1)
            mask[0, 0, :, cached:].masked_fill_(tri, torch.finfo(self.kv_dtype).min)
        return mask
