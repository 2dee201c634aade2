"""Attention for incremental ticks that reads the kept cache in place.

A tick's new tokens see every cached token and each other causally. transformers'
SDPA path hands that to the kernel as one call with a (new × all) mask, and with
grouped KV heads and a mask it first copies the whole cache once per query head
group (``repeat_kv``): at 8B scale and 25k cached tokens that is ~420 MB written
per layer per tick. Both strategies here avoid the copy by folding each KV head's
group of query heads into the query length, so keys and values are read where the
cache keeps them:

- **split** (CPU): the cache part with no mask at all and the new part as a small
  square causal attention, merged exactly by their log-sum-exps. Needs a kernel
  that returns its log-sum-exp; the CPU flash kernel does.
- **folded** (any device): one ``scaled_dot_product_attention`` call over the
  folded queries with a (group × new) × all additive mask, built once per forward
  and shared by every layer; a single new token (reply generation) needs no mask.

Same result as the masked call: the equivalence test holds both to 1e-4 against a
full recompute with transformers' own attention.

Several sessions' ticks run as one forward by packing their new tokens into one
sequence (``batch.py``): while ``PACKED`` holds the rows, each row's queries
attend, with the same kernels, to that row's own cache only (``PackedRows``).
"""

from __future__ import annotations

import functools
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "CACHED_ATTENTION",
    "PACKED",
    "PackedRows",
    "cached_attention",
    "register_cached_attention",
]

CACHED_ATTENTION = "murmur_cached"

# Devices whose kernel returns a log-sum-exp we can merge with (tests empty it to
# run the folded strategy on the CPU).
SPLIT_DEVICES = {"cpu"}


@dataclass(slots=True)
class PackedRows:
    """Sessions packed into one forward: row ``r`` is tokens ``spans[r] = (start, n)``
    of the sequence; ``views[layer][r]`` its own cache (keys, values) after the
    layer's update, the row's new tokens at its end."""

    spans: list[tuple[int, int]]
    views: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)


# Set for the length of one packed forward, in the thread that runs it.
PACKED: ContextVar[PackedRows | None] = ContextVar("murmur_packed_rows", default=None)


def cached_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # (B, H, q, D)
    key: torch.Tensor,  # (B, Hkv, kv, D), the cache with the new tokens at its end
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    del attention_mask, dropout, kwargs  # no padding: the layout is the mask
    rows = PACKED.get()
    if rows is None:
        out = _one(query, key, value, scaling)
    else:  # each row against its own cache; the packed key/value are not read
        out = torch.empty_like(query)
        views = rows.views[int(getattr(module, "layer_idx"))]  # noqa: B009
        for (start, n), (k, v) in zip(rows.spans, views, strict=True):
            out[:, :, start : start + n] = _one(
                query[:, :, start : start + n].contiguous(), k, v, scaling
            )
    return out.transpose(1, 2).contiguous(), None


def _one(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None
) -> torch.Tensor:
    if query.device.type in SPLIT_DEVICES:
        return _split(query, key, value, scaling)
    return _folded(query, key, value, scaling)


def _split(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None
) -> torch.Tensor:
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    b, h, q, d = query.shape
    hkv, kv = key.shape[1], key.shape[2]
    rep = h // hkv
    cached = kv - q
    k_new, v_new = key[:, :, cached:], value[:, :, cached:]
    if rep > 1:
        k_new = k_new.repeat_interleave(rep, dim=1)  # only the new tokens: cheap
        v_new = v_new.repeat_interleave(rep, dim=1)
    out_n, lse_n = flash(query, k_new, v_new, 0.0, q > 1, scale=scaling)
    if cached == 0:
        return out_n
    grouped = query.reshape(b, hkv, rep * q, d)
    out_c, lse_c = flash(
        grouped, key[:, :, :cached], value[:, :, :cached], 0.0, False, scale=scaling
    )
    out_c = out_c.reshape(b, h, q, d)
    lse_c = lse_c.reshape(b, h, q)
    top = torch.maximum(lse_c, lse_n)  # log-sum-exps are float32 whatever the dtype
    w_c = torch.exp(lse_c - top).unsqueeze(-1)
    w_n = torch.exp(lse_n - top).unsqueeze(-1)
    return ((out_c * w_c + out_n * w_n) / (w_c + w_n)).to(query.dtype)


def _folded(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None
) -> torch.Tensor:
    b, h, q, d = query.shape
    hkv, kv = key.shape[1], key.shape[2]
    rep = h // hkv
    grouped = query.reshape(b, hkv, rep * q, d)
    mask = None if q == 1 else folded_mask(rep, q, kv - q, query.device, query.dtype)
    out = F.scaled_dot_product_attention(grouped, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(b, h, q, d)


# Rows padded to a multiple of this satisfy the memory-efficient CUDA kernel's
# alignment for a mask (8 or 16 elements by dtype); otherwise SDPA pads a copy on
# every call.
_MASK_ALIGN = 16


# Every layer of one forward asks for the same mask; a packed forward for one per row.
@functools.lru_cache(maxsize=8)
def folded_mask(
    rep: int, new: int, cached: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Additive mask for folded query row ``g·new + i``: 0 for every cached key and
    for new key ``j ≤ i``, the dtype's minimum elsewhere. Cached so the 36 layers of
    a forward build it once (~75 MB at 8B scale and 31k tokens; one per row of a
    packed forward, ≤ 8 kept); ``QwenForward`` clears it when the forward ends."""
    width = cached + new
    padded = -(-width // _MASK_ALIGN) * _MASK_ALIGN
    storage = torch.zeros((rep * new, padded), dtype=dtype, device=device)
    i = torch.arange(new, device=device).repeat(rep)
    j = torch.arange(new, device=device)
    hidden = j.unsqueeze(0) > i.unsqueeze(1)
    storage[:, cached:width].masked_fill_(hidden, torch.finfo(dtype).min)
    return storage[:, :width]


def register_cached_attention(model: Any) -> bool:
    """Use cached attention for the text decoder of ``model`` when it would use
    transformers' SDPA. Returns whether it was switched on."""
    from transformers import AttentionInterface

    text_config = model.config.get_text_config()
    if text_config._attn_implementation != "sdpa":
        return False  # eager or flash-attention-2: the user chose it
    AttentionInterface.register(CACHED_ATTENTION, cached_attention)
    text_config._attn_implementation = CACHED_ATTENTION
    return True
