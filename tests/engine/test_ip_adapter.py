"""IP-Adapter plus maths (Fooocus formulation): Resampler, K/V ordering, weight scaling, attention."""
from __future__ import annotations

import math

import pytest
import torch

from engine import ip_adapter as ip


def tiny_resampler(seed=0, emb=24, dim=32, out=40, queries=4, depth=2, ff=4):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g) * 0.2

    sd = {"latents": r(1, queries, dim), "proj_in.weight": r(dim, emb), "proj_in.bias": r(dim),
          "proj_out.weight": r(out, dim), "proj_out.bias": r(out),
          "norm_out.weight": 1 + r(out), "norm_out.bias": r(out)}
    for i in range(depth):
        p = f"layers.{i}.0"
        sd.update({p + ".norm1.weight": 1 + r(dim), p + ".norm1.bias": r(dim),
                   p + ".norm2.weight": 1 + r(dim), p + ".norm2.bias": r(dim),
                   p + ".to_q.weight": r(dim, dim), p + ".to_kv.weight": r(2 * dim, dim),
                   p + ".to_out.weight": r(dim, dim)})
        f = f"layers.{i}.1"
        sd.update({f + ".0.weight": 1 + r(dim), f + ".0.bias": r(dim),
                   f + ".1.weight": r(dim * ff, dim), f + ".3.weight": r(dim, dim * ff)})
    return sd


def reference_resampler(sd, x, heads):
    """Independent per-sample, per-head loop version."""
    dim = sd["latents"].shape[2]
    dh = dim // heads
    ln = torch.nn.functional.layer_norm
    outs = []
    for b in range(x.shape[0]):
        lat = sd["latents"][0].clone()
        h = x[b] @ sd["proj_in.weight"].T + sd["proj_in.bias"]
        i = 0
        while f"layers.{i}.0.to_q.weight" in sd:
            p = f"layers.{i}.0"
            xn = ln(h, (dim,), sd[p + ".norm1.weight"], sd[p + ".norm1.bias"])
            lt = ln(lat, (dim,), sd[p + ".norm2.weight"], sd[p + ".norm2.bias"])
            q = lt @ sd[p + ".to_q.weight"].T
            kv = torch.cat([xn, lt]) @ sd[p + ".to_kv.weight"].T
            k, v = kv[:, :dim], kv[:, dim:]
            heads_out = []
            for hh in range(heads):
                s = slice(hh * dh, (hh + 1) * dh)
                a = torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(dh), dim=-1)
                heads_out.append(a @ v[:, s])
            lat = torch.cat(heads_out, 1) @ sd[p + ".to_out.weight"].T + lat
            f = f"layers.{i}.1"
            z = ln(lat, (dim,), sd[f + ".0.weight"], sd[f + ".0.bias"])
            lat = torch.nn.functional.gelu(z @ sd[f + ".1.weight"].T) @ sd[f + ".3.weight"].T + lat
            i += 1
        o = lat @ sd["proj_out.weight"].T + sd["proj_out.bias"]
        outs.append(ln(o, (o.shape[1],), sd["norm_out.weight"], sd["norm_out.bias"]))
    return torch.stack(outs)


def test_resampler_matches_reference_loop():
    sd = tiny_resampler()
    x = torch.randn(2, 7, 24, generator=torch.Generator().manual_seed(3))
    out = ip.resampler_forward(sd, x, heads=4)
    assert out.shape == (2, 4, 40)
    torch.testing.assert_close(out, reference_resampler(sd, x, 4), atol=1e-5, rtol=1e-5)
    shape = ip.resampler_shape(sd)
    assert (shape.queries, shape.dim, shape.embedding_dim, shape.output_dim, shape.depth, shape.ff_inner) == \
        (4, 32, 24, 40, 2, 128)


def test_resampler_bad_inputs():
    sd = tiny_resampler()
    with pytest.raises(ValueError, match="x must have 24"):
        ip.resampler_forward(sd, torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="heads"):
        ip.resampler_forward(sd, torch.zeros(1, 3, 24), heads=5)
    with pytest.raises(ValueError, match="image_proj"):
        ip.resampler_forward({"latents": torch.zeros(1, 2, 3)}, torch.zeros(1, 3, 24))
    with pytest.raises(ValueError, match="x must be"):
        ip.resampler_forward(sd, torch.zeros(3, 24))


def test_ordered_kv_weights_order_and_errors():
    w = {f"{n}.to_{kv}_ip.weight": torch.full((2, 3), float(n * 10 + (kv == "v")))
         for n in (11, 1, 3) for kv in "kv"}
    out = ip.ordered_kv_weights(w)
    assert [float(t[0, 0]) for t in out] == [10, 11, 30, 31, 110, 111]
    with pytest.raises(ValueError, match="unexpected key"):
        ip.ordered_kv_weights({"x": torch.zeros(1)})
    with pytest.raises(ValueError, match="both"):
        ip.ordered_kv_weights({"1.to_k_ip.weight": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="non-empty"):
        ip.ordered_kv_weights({})


def test_project_kv_and_scale():
    g = torch.Generator().manual_seed(1)
    ws = [torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g),
          torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)]
    tok = torch.randn(1, 3, 5, generator=g)
    kv = ip.project_kv(ws, tok)
    assert [tuple(k.shape) for k, _ in kv] == [(1, 3, 8), (1, 3, 4)]
    torch.testing.assert_close(kv[1][1], tok @ ws[3].T)
    k, v = kv[0]
    k2, v2 = ip.scale_ip_kv(k, v, 0.6)
    c = 0.6 * 8 / 1280
    torch.testing.assert_close(k2, k * c)
    m = v.mean(1, keepdim=True)
    torch.testing.assert_close(v2, v - m + m * c)
    # weight 1 at C = 1280 leaves v unchanged
    kk, vv = ip.scale_ip_kv(torch.ones(1, 2, 1280), v.new_ones(1, 2, 1280) * 3, 1.0)
    torch.testing.assert_close(vv, torch.full((1, 2, 1280), 3.0))
    with pytest.raises(ValueError, match="weight"):
        ip.scale_ip_kv(k, v, float("nan"))
    with pytest.raises(ValueError, match="channels"):
        ip.project_kv(ws, torch.zeros(1, 3, 6))
    with pytest.raises(ValueError, match="even"):
        ip.project_kv(ws[:1], tok)


def test_rows_for_chunks():
    c = torch.zeros(1, 2, 3)
    u = torch.ones(1, 2, 3)
    out = ip.rows_for_chunks(c, u, [1, 0], 4)
    assert out.shape == (4, 2, 3)
    assert out[:2].eq(1).all() and out[2:].eq(0).all()
    with pytest.raises(ValueError, match="multiple"):
        ip.rows_for_chunks(c, u, [1, 0], 3)


def test_ip_attention_is_one_softmax_over_concatenated_tokens():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 5, 8, generator=g) for _ in range(3))
    ki, vi = torch.randn(2, 3, 8, generator=g), torch.randn(2, 3, 8, generator=g)
    out = ip.ip_attention(q, k, v, [ki], [vi], heads=2)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.view(2, 5, 2, 4).transpose(1, 2), torch.cat([k, ki], 1).view(2, 8, 2, 4).transpose(1, 2),
        torch.cat([v, vi], 1).view(2, 8, 2, 4).transpose(1, 2)).transpose(1, 2).reshape(2, 5, 8)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


def test_negative_tokens():
    t = ip.negative_tokens({"data": torch.zeros(4, 6, dtype=torch.float16)})
    assert t.shape == (1, 4, 6) and t.dtype == torch.float32
    with pytest.raises(ValueError, match="data"):
        ip.negative_tokens({})
