"""IP-Adapter "plus" maths in Fooocus's formulation (spec §8): Resampler, per-layer K/V, IP attention.

Fooocus: extras/ip_adapter.py (``Resampler`` from extras/resampler.py, ``To_KV``, ``load_ip_adapter``,
``patch_model``) for ``ip-adapter-plus_sdxl_vit-h.bin`` / ``ip-adapter-plus-face_sdxl_vit-h.bin`` and
``fooocus_ip_negative.safetensors``.  Pure torch: the ComfyUI glue (attn2_replace) lives in
``nodes/image_prompt.py``.

File layout (``.bin`` torch pickle, loaded with :mod:`engine.safe_pickle`):

- ``image_proj``: the Resampler: ``latents`` [1, Q, dim], ``proj_in`` (emb -> dim), ``proj_out``
  (dim -> out), ``norm_out``, and per layer i ``layers.i.0.{norm1,norm2,to_q,to_kv,to_out}``
  (PerceiverAttention, bias-free linears) and ``layers.i.1.{0,1,3}`` (LayerNorm, Linear, GELU, Linear).
- ``ip_adapter``: ``"<n>.to_k_ip.weight"`` / ``"<n>.to_v_ip.weight"`` [C, out] for the cross-attention
  processors, ``n`` odd; taken in ascending ``n``, k then v, as a flat list of linear layers
  (Fooocus ``To_KV``): cross-attention block ``j`` uses layers ``2j`` (K) and ``2j+1`` (V).
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

#: Fooocus's Resampler hyper-parameters for the SDXL plus adapters.
RESAMPLER_DIM = 1280
RESAMPLER_DEPTH = 4
RESAMPLER_DIM_HEAD = 64
RESAMPLER_HEADS = 20
RESAMPLER_FF_MULT = 4
#: The channel width the Fooocus weight is normalised by (``C / 1280``).
CHANNEL_NORM = 1280.0

_KV_KEY = re.compile(r"^(\d+)\.to_([kv])_ip\.weight$")


def _check_tensor(x: object, name: str, ndim: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != ndim or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating {ndim}-D tensor, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    return x


def _layer_norm(x: torch.Tensor, sd: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    w, b = sd[prefix + ".weight"], sd[prefix + ".bias"]
    return torch.nn.functional.layer_norm(x, (w.shape[0],), w.to(x), b.to(x), 1e-5)


def _linear(x: torch.Tensor, sd: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    b = sd.get(prefix + ".bias")
    return torch.nn.functional.linear(x, sd[prefix + ".weight"].to(x), None if b is None else b.to(x))


@dataclass(frozen=True)
class ResamplerShape:
    """Sizes read from an ``image_proj`` state dict."""

    queries: int
    dim: int
    embedding_dim: int
    output_dim: int
    depth: int
    ff_inner: int


def resampler_shape(sd: dict[str, torch.Tensor]) -> ResamplerShape:
    """Check an ``image_proj`` state dict and read its sizes (``queries = latents.shape[1]``).

    Fooocus: extras/ip_adapter.py ``load_ip_adapter`` (plus branch).
    """
    if not isinstance(sd, dict) or "latents" not in sd or "proj_in.weight" not in sd \
            or "proj_out.weight" not in sd or "norm_out.weight" not in sd:
        raise ValueError("image_proj must be a Resampler state dict with latents, proj_in, proj_out, norm_out; "
                         f"got keys {sorted(sd)[:8] if isinstance(sd, dict) else type(sd).__name__}")
    depth = 0
    while f"layers.{depth}.0.to_q.weight" in sd:
        depth += 1
    if depth == 0:
        raise ValueError("image_proj has no 'layers.0.0.to_q.weight': not an IP-Adapter plus Resampler")
    lat = sd["latents"]
    if lat.ndim != 3 or lat.shape[0] != 1:
        raise ValueError(f"image_proj latents must be [1, Q, dim], got {tuple(lat.shape)}")
    return ResamplerShape(queries=int(lat.shape[1]), dim=int(lat.shape[2]),
                          embedding_dim=int(sd["proj_in.weight"].shape[1]),
                          output_dim=int(sd["proj_out.weight"].shape[0]), depth=depth,
                          ff_inner=int(sd["layers.0.1.1.weight"].shape[0]))


def resampler_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, heads: int | None = None) -> torch.Tensor:
    """The IP-Adapter plus Resampler (perceiver): image tokens to ``Q`` prompt tokens.

    Fooocus: extras/resampler.py ``Resampler.forward`` / ``PerceiverAttention`` / ``FeedForward``.
    Per layer: ``latents += attn(norm1(x), norm2(latents))`` with keys/values over
    ``[norm1(x); norm2(latents)]`` and ``q, k`` each scaled by ``dim_head**-0.25``, softmax in float32;
    then ``latents += ff(latents)`` (LayerNorm, Linear, GELU, Linear).  Finally ``norm_out(proj_out)``.

    Args:
        sd: ``image_proj`` state dict (see the module docstring).
        x: float ``[B, N, embedding_dim]``: CLIP-ViT-H penultimate hidden states (N = 257 for ViT-H/14).
        heads: attention heads; default ``dim // 64`` (Fooocus: 20 heads of 64 at dim 1280).
    Returns:
        float ``[B, Q, output_dim]`` (Q = 16, output 2048 for the real files).
    """
    shape = resampler_shape(sd)
    x = _check_tensor(x, "x", 3)
    if x.shape[2] != shape.embedding_dim:
        raise ValueError(f"x must have {shape.embedding_dim} channels (the CLIP vision width), got {x.shape[2]}")
    if heads is None:
        heads = max(shape.dim // RESAMPLER_DIM_HEAD, 1)
    if not isinstance(heads, int) or heads < 1 or shape.dim % heads:
        raise ValueError(f"heads must divide the Resampler width {shape.dim}, got {heads!r}")
    dim_head = shape.dim // heads
    latents = sd["latents"].to(x).repeat(x.shape[0], 1, 1)
    x = _linear(x, sd, "proj_in")
    scale = 1.0 / math.sqrt(math.sqrt(dim_head))
    for i in range(shape.depth):
        p = f"layers.{i}.0"
        xn = _layer_norm(x, sd, p + ".norm1")
        ln = _layer_norm(latents, sd, p + ".norm2")
        b, q_len, _ = ln.shape
        q = _linear(ln, sd, p + ".to_q")
        kv = _linear(torch.cat((xn, ln), dim=1), sd, p + ".to_kv")
        k, v = kv.chunk(2, dim=-1)

        def heads_first(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], heads, -1).transpose(1, 2)

        q, k, v = heads_first(q), heads_first(k), heads_first(v)
        w = (q * scale) @ (k * scale).transpose(-2, -1)
        w = torch.softmax(w.float(), dim=-1).type(w.dtype)
        out = (w @ v).permute(0, 2, 1, 3).reshape(b, q_len, -1)
        latents = _linear(out, sd, p + ".to_out") + latents
        f = f"layers.{i}.1"
        h = _layer_norm(latents, sd, f + ".0")
        h = torch.nn.functional.gelu(_linear(h, sd, f + ".1"))
        latents = _linear(h, sd, f + ".3") + latents
    return _layer_norm(_linear(latents, sd, "proj_out"), sd, "norm_out")


def ordered_kv_weights(sd: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The ``ip_adapter`` K/V weights as Fooocus's flat ``To_KV`` list: ascending ``n``, k then v.

    Fooocus: extras/ip_adapter.py ``To_KV.load_state_dict_ordered``.

    Args:
        sd: ``{"<n>.to_k_ip.weight": [C, D], "<n>.to_v_ip.weight": [C, D], ...}``.
    Returns:
        ``[K_0, V_0, K_1, V_1, ...]``, each ``[C_j, D]``; cross-attention block ``j`` uses ``2j, 2j+1``.
    """
    if not isinstance(sd, dict) or not sd:
        raise ValueError("ip_adapter must be a non-empty dict of '<n>.to_k_ip.weight'/'<n>.to_v_ip.weight'")
    found: dict[int, dict[str, torch.Tensor]] = {}
    for key, w in sd.items():
        m = _KV_KEY.match(key)
        if m is None:
            raise ValueError(f"ip_adapter has an unexpected key {key!r} (expected '<n>.to_k_ip.weight' "
                             "or '<n>.to_v_ip.weight')")
        found.setdefault(int(m.group(1)), {})[m.group(2)] = w
    out: list[torch.Tensor] = []
    for n in sorted(found):
        pair = found[n]
        if set(pair) != {"k", "v"}:
            raise ValueError(f"ip_adapter layer {n} needs both to_k_ip and to_v_ip weights, got {sorted(pair)}")
        if pair["k"].ndim != 2 or pair["k"].shape != pair["v"].shape:
            raise ValueError(f"ip_adapter layer {n}: K and V weights must be equal 2-D shapes, got "
                             f"{tuple(pair['k'].shape)} and {tuple(pair['v'].shape)}")
        out += [pair["k"], pair["v"]]
    return out


def project_kv(kv_weights: list[torch.Tensor], tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per cross-attention block ``(k_ip, v_ip) = (tokens @ K_j^T, tokens @ V_j^T)``.

    Fooocus: extras/ip_adapter.py ``preprocess`` (``ip_layers.to_kvs`` applied to the Resampler output
    for the image and to ``fooocus_ip_negative`` 'data' for the uncond).

    Args:
        kv_weights: from :func:`ordered_kv_weights`.
        tokens: float ``[B, Q, D]`` (D = 2048).
    Returns:
        list over blocks of ``(k [B, Q, C_j], v [B, Q, C_j])``.
    """
    tokens = _check_tensor(tokens, "tokens", 3)
    if len(kv_weights) % 2 or not kv_weights:
        raise ValueError(f"kv_weights must be a non-empty even-length list, got {len(kv_weights)}")
    out = []
    for j in range(0, len(kv_weights), 2):
        wk, wv = kv_weights[j], kv_weights[j + 1]
        if wk.shape[1] != tokens.shape[2]:
            raise ValueError(f"tokens have {tokens.shape[2]} channels but the IP-Adapter K/V layers take "
                             f"{wk.shape[1]}")
        out.append((tokens @ wk.to(tokens).T, tokens @ wv.to(tokens).T))
    return out


def scale_ip_kv(k_ip: torch.Tensor, v_ip: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fooocus's IP weight: ``k *= w*C/1280``; ``v = (v - mean_tokens(v)) + mean_tokens(v)*w*C/1280``.

    Fooocus: extras/ip_adapter.py ``patch_model`` (the "Midjourney-style" formulation).

    Args:
        k_ip, v_ip: float ``[B, T, C]``.
        weight: the image prompt weight (>= 0).
    Returns:
        ``(k, v)`` of the same shapes.
    """
    _check_tensor(k_ip, "k_ip", 3)
    _check_tensor(v_ip, "v_ip", 3)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ValueError(f"weight must be a finite number, got {weight!r}")
    w = float(weight) * (k_ip.shape[2] / CHANNEL_NORM)
    mean = torch.mean(v_ip, dim=1, keepdim=True)
    return k_ip * w, (v_ip - mean) + mean * w


def rows_for_chunks(cond_rows: torch.Tensor, uncond_rows: torch.Tensor, cond_or_uncond: list[int],
                    batch: int) -> torch.Tensor:
    """Stack image (cond, 0) / negative (uncond, 1) K or V rows in the order of a batch chunk.

    ComfyUI batches ``len(cond_or_uncond)`` equal groups along the batch; group ``i`` is cond if
    ``cond_or_uncond[i] == 0``.  Single-row ``[1, T, C]`` inputs are repeated to the group size.

    Args:
        cond_rows, uncond_rows: ``[1, T, C]`` (or ``[g, T, C]`` with g the group size).
        cond_or_uncond: e.g. ``[1, 0]``.
        batch: the attention batch B (a multiple of ``len(cond_or_uncond)``).
    Returns:
        ``[B, T, C]``.
    """
    if not cond_or_uncond or batch % len(cond_or_uncond):
        raise ValueError(f"batch {batch} must be a multiple of len(cond_or_uncond)={len(cond_or_uncond)}")
    g = batch // len(cond_or_uncond)
    parts = []
    for c in cond_or_uncond:
        src = uncond_rows if c == 1 else cond_rows
        parts.append(src if src.shape[0] == g else src[:1].expand(g, -1, -1))
    return torch.cat(parts, dim=0)


def ip_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_ips: list[torch.Tensor],
                 v_ips: list[torch.Tensor], heads: int) -> torch.Tensor:
    """Reference: one softmax attention over ``[text; ip_1; ...]`` tokens (no mask).

    Fooocus: extras/ip_adapter.py ``patch_model`` attention (``torch.cat(k, dim=1)``), used to check the
    ComfyUI attn2_replace glue.

    Args:
        q: ``[B, Lq, H*d]``; k, v: ``[B, Lk, H*d]``; k_ips, v_ips: lists of ``[B, T_i, H*d]``.
        heads: H.
    Returns:
        ``[B, Lq, H*d]``.
    """
    kk = torch.cat([k, *k_ips], dim=1)
    vv = torch.cat([v, *v_ips], dim=1)
    b, lq, inner = q.shape
    d = inner // heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, t.shape[1], heads, d).transpose(1, 2)

    w = torch.softmax((split(q) @ split(kk).transpose(-2, -1)) / math.sqrt(d), dim=-1)
    return (w @ split(vv)).transpose(1, 2).reshape(b, lq, inner)


def negative_tokens(sd: dict[str, torch.Tensor]) -> torch.Tensor:
    """The ``'data'`` tensor of ``fooocus_ip_negative.safetensors`` as float32 ``[1, Q, D]``.

    Fooocus: extras/ip_adapter.py ``load_ip_adapter`` (``ip_negative``).
    """
    if not isinstance(sd, dict) or "data" not in sd:
        raise ValueError("fooocus_ip_negative must contain a 'data' tensor")
    t = sd["data"]
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"fooocus_ip_negative 'data' must be [1, Q, D], got {tuple(t.shape)}")
    return t.float()
