"""Fooocus's A1111 weighting with the per-chunk mean rescale, and the multi-text concat/sum (engine.clip_weights)."""
from __future__ import annotations

import pytest
import torch

from engine.clip_weights import apply_fooocus_weights, concat_conditioning, weight_chunks


def test_hand_example():
    z = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    z_empty = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    w = torch.tensor([[1.0, 2.0, 1.0]])
    out = weight_chunks(z, z_empty, w)
    # token 1: (z - z_empty) * 2 + z_empty = [5, 7]; mean before 21/6, after 26/6
    expect = torch.tensor([[[1.0, 2.0], [5.0, 7.0], [5.0, 6.0]]]) * (3.5 / (26 / 6))
    torch.testing.assert_close(out, expect, rtol=1e-6, atol=1e-6)
    assert out.mean().item() == pytest.approx(z.mean().item(), rel=1e-6)  # the rescale keeps the chunk mean


def test_all_ones_is_identity_and_a_copy():
    z = torch.randn(2, 77, 8)
    out = weight_chunks(z, torch.randn(77, 8), torch.ones(2, 77))
    assert torch.equal(out, z) and out.data_ptr() != z.data_ptr()


def test_chunks_rescaled_independently_and_unweighted_chunk_kept():
    g = torch.Generator().manual_seed(0)
    z = torch.rand(2, 5, 3, generator=g) + 0.5
    z_empty = torch.rand(5, 3, generator=g)
    w = torch.ones(2, 5)
    w[1, 2] = 1.3
    out = weight_chunks(z, z_empty[None], w)
    # chunk 0 has no weight: its ratio is exactly 1 (same values, same mean)
    assert torch.equal(out[0], z[0])
    c = z[1].clone()
    c[2] = (c[2] - z_empty[2]) * 1.3 + z_empty[2]
    torch.testing.assert_close(out[1], c * (z[1].mean() / c.mean()))


def test_weight_below_one_and_zero():
    z = torch.tensor([[[2.0], [4.0]]])
    z_empty = torch.tensor([[1.0], [1.0]])
    out = weight_chunks(z, z_empty, torch.tensor([[1.0, 0.0]]))
    # token 1 -> z_empty = 1; means 3 -> 1.5; x2
    torch.testing.assert_close(out, torch.tensor([[[4.0], [2.0]]]))


def test_apply_per_encoder_slices():
    g = torch.Generator().manual_seed(1)
    cond = torch.rand(1, 154, 5, generator=g) + 0.1
    empty = torch.rand(1, 77, 5, generator=g)
    wl = torch.ones(2, 77)
    wl[0, 3] = 1.2
    wg = wl.clone()
    out = apply_fooocus_weights(cond, empty, [wl, wg], [2, 3])
    assert out.shape == cond.shape
    for (a, b), w in (((0, 2), wl), ((2, 5), wg)):
        z = cond[0, :, a:b].reshape(2, 77, b - a)
        exp = weight_chunks(z, empty[0, :, a:b], w).reshape(154, b - a)
        torch.testing.assert_close(out[0, :, a:b], exp, rtol=0, atol=0)
    # one encoder over all features is different (the means differ)
    whole = apply_fooocus_weights(cond, empty, [wl], [5])
    assert not torch.allclose(whole, out)


def test_apply_errors():
    cond = torch.zeros(1, 77, 4)
    empty = torch.zeros(1, 77, 4)
    with pytest.raises(ValueError, match="widths"):
        apply_fooocus_weights(cond, empty, [torch.ones(1, 77)], [3])
    with pytest.raises(ValueError, match="weights/widths"):
        apply_fooocus_weights(cond, empty, [torch.ones(1, 77)], [2, 2])
    with pytest.raises(ValueError, match="weights"):
        apply_fooocus_weights(cond, empty, [torch.ones(2, 77)], [4])
    with pytest.raises(ValueError, match="chunks"):
        apply_fooocus_weights(torch.zeros(1, 80, 4), empty, [torch.ones(1, 77)], [4])
    with pytest.raises(ValueError, match="cond"):
        apply_fooocus_weights(torch.zeros(77, 4), empty, [torch.ones(1, 77)], [4])
    with pytest.raises(ValueError, match="z_empty"):
        weight_chunks(torch.zeros(1, 77, 4), torch.zeros(76, 4), torch.ones(1, 77))
    with pytest.raises(ValueError, match="z:"):
        weight_chunks(torch.zeros(1, 77, 4, dtype=torch.long), torch.zeros(77, 4), torch.ones(1, 77))


def test_concat_sums_first_top_k_pooled():
    conds = [torch.full((1, 77, 3), float(i)) for i in range(3)]
    pooled = [torch.full((1, 2), 10.0 ** i) for i in range(3)]
    cond, p = concat_conditioning(conds, pooled, 2)
    assert cond.shape == (1, 231, 3)
    assert torch.equal(cond[:, 77:154], conds[1])
    assert torch.equal(p, torch.full((1, 2), 11.0))  # the third text (the expansion) is not pooled
    _, p1 = concat_conditioning(conds[:1], pooled[:1], 1)
    assert torch.equal(p1, pooled[0])
    with pytest.raises(ValueError, match="pool_top_k"):
        concat_conditioning(conds, pooled, 0)
    with pytest.raises(ValueError, match="pool_top_k"):
        concat_conditioning(conds, pooled, 4)
    with pytest.raises(ValueError, match="conds/pooleds"):
        concat_conditioning([], [], 1)
    with pytest.raises(ValueError, match="conds"):
        concat_conditioning([torch.zeros(1, 77, 3), torch.zeros(1, 77, 4)], pooled[:2], 1)
