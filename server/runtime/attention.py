"""Attention for incremental ticks on the CPU: cached part and new part apart.

A tick's new tokens see every cached token and each other causally. Handing that
to SDPA as one masked call costs a mask the size of (new × all) and, with grouped
KV heads, a copy of the whole cache per layer (``repeat_kv``). Split instead:

- new queries against the cache: no mask at all, and grouped heads folded into
  the query length, so the cache is read in place;
- new queries against the new keys: an ordinary square causal attention;

then merge the two softmaxes exactly with their log-sum-exps. Same result as the
masked call (the equivalence test holds it to 1e-4 against a full recompute),
about a quarter less attention time at 25k cached tokens, and no mask to build.
CPU only: it relies on the CPU flash kernel returning its log-sum-exp.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["SPLIT_ATTENTION", "register_split_attention", "split_attention"]

SPLIT_ATTENTION = "murmur_split_cpu"
_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def split_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # (B, H, q, D)
    key: torch.Tensor,  # (B, Hkv, kv, D), the cache with the new tokens at its end
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    del attention_mask, dropout, kwargs  # batch 1, no padding: the structure is the mask
    b, h, q, d = query.shape
    hkv, kv = key.shape[1], key.shape[2]
    rep = h // hkv
    cached = kv - q
    if cached > 0:
        # Fold each KV head's group of query heads into the query length: the
        # cache is then attended in place, with no copy per head.
        grouped = query.reshape(b, hkv, rep * q, d)
        out_c, lse_c = _flash(
            grouped, key[:, :, :cached], value[:, :, :cached], 0.0, False, scale=scaling
        )
        out_c = out_c.reshape(b, h, q, d)
        lse_c = lse_c.reshape(b, h, q)
    k_new, v_new = key[:, :, cached:], value[:, :, cached:]
    if rep > 1:
        k_new = k_new.repeat_interleave(rep, dim=1)  # only the new tokens: cheap
        v_new = v_new.repeat_interleave(rep, dim=1)
    out_n, lse_n = _flash(query, k_new, v_new, 0.0, q > 1, scale=scaling)
    if cached > 0:
        top = torch.maximum(lse_c, lse_n)
        w_c = torch.exp(lse_c - top).unsqueeze(-1)
        w_n = torch.exp(lse_n - top).unsqueeze(-1)
        out = (out_c * w_c + out_n * w_n) / (w_c + w_n)
    else:
        out = out_n
    return out.transpose(1, 2).contiguous(), None


def register_split_attention(model: Any) -> bool:
    """Use split attention for the text decoder of ``model`` when it runs on the CPU
    with SDPA. Returns whether it was switched on."""
    from transformers import AttentionInterface

    text_config = model.config.get_text_config()
    if next(model.parameters()).device.type != "cpu":
        return False
    if text_config._attn_implementation != "sdpa":
        return False
    AttentionInterface.register(SPLIT_ATTENTION, split_attention)
    text_config._attn_implementation = SPLIT_ATTENTION
    return True
