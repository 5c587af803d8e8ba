"""Fooocus's A1111 prompt weighting applied to CLIP token embeddings, and the multi-text conditioning sum.

Fooocus counterparts (2.5.5): ``modules/patch_clip.py`` (its replacement of ``encode_token_weights``) and
``modules/default_pipeline.py`` ``clip_encode`` (182-201). See spec ``fooocus-pipeline.md`` §6 and §11 item 4.

Weighting, per CLIP encoder and per text: the chunks (77 tokens each) are encoded with every weight at 1; if any
token of the text has a weight other than 1, every token ``j`` with weight ``w != 1`` becomes
``z_empty[j] + (z[j] - z_empty[j]) * w`` (``z_empty`` = the encoding of the empty prompt, start/end/padding
tokens), and then each chunk is multiplied by ``mean(chunk before) / mean(chunk after)`` (the mean over all its
tokens and features). ComfyUI's own ``ClipTokenWeightEncoder`` applies the same per-token formula but does not
rescale, so the node encodes with weights 1 and applies this module on top.

For SDXL the two encoders (CLIP-L, 768 features, then CLIP-G, 1280) are weighted and rescaled separately: their
outputs sit side by side along the feature axis, so :func:`apply_fooocus_weights` takes the feature widths.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

__all__ = [
    "weight_chunks",
    "apply_fooocus_weights",
    "concat_conditioning",
]

logger = logging.getLogger(__name__)


def _check_float(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point torch.Tensor, got {type(t).__name__}")
    return t


def weight_chunks(z: torch.Tensor, z_empty: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Fooocus weighting of one encoder's chunks: per-token formula, then the per-chunk mean rescale.

    Fooocus: ``modules/patch_clip.py`` (patched ``ClipTokenWeightEncoder.encode_token_weights``).

    Args:
        z: float tensor ``[C, T, D]``: ``C`` chunks of ``T`` tokens (77 for CLIP), encoded with all weights 1.
        z_empty: float tensor ``[T, D]`` or ``[1, T, D]``: the empty prompt's encoding by the same encoder.
        weights: tensor ``[C, T]`` (any real dtype): each token's A1111 weight.
    Returns:
        A new float tensor ``[C, T, D]`` in ``z``'s dtype. When every weight is exactly 1 it equals ``z``
        (Fooocus then skips both steps). Otherwise, per chunk ``c``: tokens with ``w != 1`` become
        ``(z - z_empty) * w + z_empty``, then the chunk is multiplied by ``z[c].mean() / new[c].mean()``.
    Raises:
        ValueError: shapes that do not match, or non-float tensors.
    """
    _check_float("z", z)
    _check_float("z_empty", z_empty)
    if not isinstance(weights, torch.Tensor):
        weights = torch.as_tensor(weights)
    if z.ndim != 3:
        raise ValueError(f"z: expected shape [chunks, tokens, features], got {tuple(z.shape)}")
    if z_empty.ndim == 3 and z_empty.shape[0] == 1:
        z_empty = z_empty[0]
    if tuple(z_empty.shape) != tuple(z.shape[1:]):
        raise ValueError(f"z_empty: expected shape {tuple(z.shape[1:])} (one chunk), got {tuple(z_empty.shape)}")
    if tuple(weights.shape) != tuple(z.shape[:2]):
        raise ValueError(f"weights: expected shape {tuple(z.shape[:2])} (chunks, tokens), got {tuple(weights.shape)}")
    if bool((weights == 1.0).all()):
        return z.clone()
    z_empty = z_empty.to(device=z.device, dtype=z.dtype)
    w = weights.to(device=z.device, dtype=z.dtype)
    out = []
    for c in range(z.shape[0]):
        chunk = z[c]
        original_mean = chunk.mean()
        weighted = torch.where((w[c] != 1.0)[:, None], (chunk - z_empty) * w[c][:, None] + z_empty, chunk)
        new_mean = weighted.mean()
        out.append(weighted * (original_mean / new_mean))
    return torch.stack(out)


def apply_fooocus_weights(
    cond: torch.Tensor,
    cond_empty: torch.Tensor,
    weights: Sequence[torch.Tensor],
    widths: Sequence[int],
) -> torch.Tensor:
    """Fooocus weighting of one text's conditioning made of several encoders side by side.

    Fooocus: ``modules/patch_clip.py`` (applied by each encoder; SDXL concatenates CLIP-L then CLIP-G features).

    Args:
        cond: float ``[1, C*T, sum(widths)]``: the text encoded with all weights 1 (ComfyUI
            ``encode_from_tokens``), ``C`` chunks of ``T`` tokens.
        cond_empty: float ``[1, T, sum(widths)]``: the empty prompt encoded the same way (one chunk).
        weights: one ``[C, T]`` weight tensor per encoder, in feature order.
        widths: the feature width of each encoder, in feature order (SDXL: ``[768, 1280]``).
    Returns:
        ``[1, C*T, sum(widths)]``: each encoder's slice through :func:`weight_chunks`.
    Raises:
        ValueError: inconsistent shapes, or ``len(weights) != len(widths)``.
    """
    _check_float("cond", cond)
    _check_float("cond_empty", cond_empty)
    if cond.ndim != 3 or cond.shape[0] != 1:
        raise ValueError(f"cond: expected shape [1, tokens, features], got {tuple(cond.shape)}")
    if cond_empty.ndim != 3 or cond_empty.shape[0] != 1:
        raise ValueError(f"cond_empty: expected shape [1, tokens, features], got {tuple(cond_empty.shape)}")
    if len(weights) != len(widths) or not widths:
        raise ValueError(f"weights/widths: expected one weight tensor per encoder, got {len(weights)} and {len(widths)}")
    if any(isinstance(x, bool) or not isinstance(x, int) or x <= 0 for x in widths):
        raise ValueError(f"widths: expected positive ints, got {list(widths)}")
    if sum(widths) != cond.shape[2] or cond_empty.shape[2] != cond.shape[2]:
        raise ValueError(
            f"widths: sum {sum(widths)} must equal the feature size of cond ({cond.shape[2]}) and cond_empty "
            f"({cond_empty.shape[2]})"
        )
    t = cond_empty.shape[1]
    if cond.shape[1] % t:
        raise ValueError(f"cond: {cond.shape[1]} tokens is not a whole number of {t}-token chunks")
    chunks = cond.shape[1] // t
    parts = []
    start = 0
    for w, width in zip(weights, widths):
        w = torch.as_tensor(w)
        if tuple(w.shape) != (chunks, t):
            raise ValueError(f"weights: expected shape ({chunks}, {t}) per encoder, got {tuple(w.shape)}")
        z = cond[0, :, start:start + width].reshape(chunks, t, width)
        z_empty = cond_empty[0, :, start:start + width]
        parts.append(weight_chunks(z, z_empty, w).reshape(chunks * t, width))
        start += width
    return torch.cat(parts, dim=1)[None]


def concat_conditioning(
    conds: Sequence[torch.Tensor], pooleds: Sequence[torch.Tensor], pool_top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Join several encoded texts as Fooocus does: token embeddings concatenated, pooled outputs summed.

    Fooocus: ``modules/default_pipeline.py`` ``clip_encode`` (``pooled_acc += pooled`` for ``i < pool_top_k``).

    Args:
        conds: per text ``[1, T_i, D]`` float tensors.
        pooleds: per text ``[1, P]`` float tensors.
        pool_top_k: how many of the first texts are pooled (``1 <= pool_top_k <= len(conds)``); the rest
            (the Fooocus V2 expansion) only add tokens.
    Returns:
        ``(cond [1, sum T_i, D], pooled [1, P])``; ``pooled`` is the **sum** of the first ``pool_top_k``
        (summed in order, starting from the first one).
    Raises:
        ValueError: empty input, mismatched lengths or feature sizes, or ``pool_top_k`` out of range.
    """
    if len(conds) == 0 or len(conds) != len(pooleds):
        raise ValueError(f"conds/pooleds: expected the same non-zero number of texts, got {len(conds)} and {len(pooleds)}")
    if isinstance(pool_top_k, bool) or not isinstance(pool_top_k, int) or not 1 <= pool_top_k <= len(conds):
        raise ValueError(f"pool_top_k: expected an int in [1, {len(conds)}], got {pool_top_k!r}")
    feats = {int(c.shape[-1]) for c in conds}
    if len(feats) != 1 or any(c.ndim != 3 or c.shape[0] != 1 for c in conds):
        raise ValueError(f"conds: expected [1, tokens, D] tensors with one D, got {[tuple(c.shape) for c in conds]}")
    pooled = pooleds[0]
    for p in pooleds[1:pool_top_k]:
        pooled = pooled + p
    return torch.cat(list(conds), dim=1), pooled
