"""Fooocus inpaint head (engine/inpaint_head.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.inpaint_head import (
    InvalidInpaintHead,
    check_head_width,
    head_feature,
    load_inpaint_head,
    make_random_head,
    save_inpaint_head,
)
from engine.safe_pickle import CorruptModelFile, UnsafeModelFile


def _inputs(b=1, h=7, w=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(b, 1, h, w, generator=g) > 0.5).float()
    lat = torch.randn(b, 4, h, w, generator=g) * 5
    return mask, lat


def _explicit_reference(weight: torch.Tensor, mask: torch.Tensor, lat: torch.Tensor, scale: float) -> np.ndarray:
    """Replicate padding by index clamping + a 3x3 correlation written as loops, in float64."""
    feed = np.concatenate([mask.double().numpy(), (lat * scale).double().numpy()], axis=1)
    B, C, H, W = feed.shape
    wt = weight.double().numpy()
    out = np.zeros((B, wt.shape[0], H, W))
    for dy in range(3):
        for dx in range(3):
            rows = np.clip(np.arange(H) + dy - 1, 0, H - 1)
            cols = np.clip(np.arange(W) + dx - 1, 0, W - 1)
            shifted = feed[:, :, rows][:, :, :, cols]  # [B, 5, H, W]
            out += np.einsum("bchw,oc->bohw", shifted, wt[:, :, dy, dx])
    return out


def test_forward_matches_explicit_reference():
    wt = make_random_head(320, seed=1)
    mask, lat = _inputs(b=2, h=6, w=11)
    f = head_feature(wt, mask, lat)
    assert f.shape == (2, 320, 6, 11) and f.dtype == torch.float32
    ref = _explicit_reference(wt, mask, lat, 0.13025)
    np.testing.assert_allclose(f.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_forward_equals_conv2d_replicate_module():
    wt = make_random_head(320, seed=2)
    mask, lat = _inputs(b=1, h=16, w=12, seed=3)
    conv = torch.nn.Conv2d(5, 320, 3, padding=1, padding_mode="replicate", bias=False)
    with torch.no_grad():
        conv.weight.copy_(wt)
        ref = conv(torch.cat([mask, lat * 0.13025], dim=1))
    assert torch.equal(head_feature(wt, mask, lat), ref)


def test_forward_dtype_device_and_mask_broadcast():
    wt = make_random_head(320, seed=4)
    mask, lat = _inputs(b=3, h=5, w=5, seed=5)
    # weight follows the latent's dtype; a batch-1 mask broadcasts over the latent batch
    f = head_feature(wt, mask[:1], lat.to(torch.float64))
    assert f.dtype == torch.float64 and f.shape == (3, 320, 5, 5)
    ref = head_feature(wt.double(), mask[:1].expand(3, -1, -1, -1).double(), lat.double())
    assert torch.equal(f, ref)
    fb = head_feature(wt, mask[:1], lat.to(torch.bfloat16))
    assert fb.dtype == torch.bfloat16
    # custom scale
    f2 = head_feature(wt, mask, lat, scale=1.0)
    conv_ref = torch.nn.functional.conv2d(
        torch.nn.functional.pad(torch.cat([mask, lat], 1), (1, 1, 1, 1), mode="replicate"), wt
    )
    assert torch.equal(f2, conv_ref)


def test_single_pixel_latent():
    wt = make_random_head(8, seed=0)
    mask, lat = _inputs(b=1, h=1, w=1)
    f = head_feature(wt, mask, lat)
    # replicate padding of a 1x1 input: every tap sees the same pixel
    feed = torch.cat([mask, lat * 0.13025], 1)[0, :, 0, 0]
    np.testing.assert_allclose(f[0, :, 0, 0].numpy(), (wt.sum(dim=(2, 3)) @ feed).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "mask_shape, lat_shape, needle",
    [
        ((1, 1, 4, 4), (1, 3, 4, 4), "latent_raw"),
        ((1, 2, 4, 4), (1, 4, 4, 4), "latent_mask"),
        ((1, 1, 4, 5), (1, 4, 4, 4), "spatial size"),
        ((2, 1, 4, 4), (3, 4, 4, 4), "batch"),
        ((1, 4, 4), (1, 4, 4, 4), "latent_mask"),
    ],
)
def test_forward_bad_inputs(mask_shape, lat_shape, needle):
    wt = make_random_head(320)
    with pytest.raises(ValueError, match=needle):
        head_feature(wt, torch.zeros(mask_shape), torch.zeros(lat_shape))
    with pytest.raises(ValueError, match="head_weight"):
        head_feature(torch.zeros(320, 4, 3, 3), torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, 4))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    wt = make_random_head(320, seed=7)
    p = tmp_path / f"fooocus_inpaint_head{suffix}"
    save_inpaint_head(p, wt)
    out = load_inpaint_head(p)
    assert out.dtype == torch.float32 and torch.equal(out, wt)
    assert torch.equal(make_random_head(320, seed=7), wt)


def test_fooocus_format_and_fp16_file(tmp_path):
    wt = make_random_head(320, seed=8)
    p = tmp_path / "h.pth"
    save_inpaint_head(p, wt)
    raw = torch.load(p, weights_only=True)
    assert list(raw) == ["head"] and raw["head"].shape == (320, 5, 3, 3)
    q = tmp_path / "h16.pth"
    torch.save({"head": wt.half()}, q)
    out = load_inpaint_head(q)
    assert out.dtype == torch.float32 and torch.equal(out, wt.half().float())


@pytest.mark.parametrize(
    "obj, needle",
    [
        ({"weight": torch.zeros(320, 5, 3, 3)}, "no 'head' entry"),
        ({"head": torch.zeros(320, 5, 9)}, "rank 4"),
        ({"head": torch.zeros(320, 4, 3, 3)}, "5 input channels"),
        ({"head": torch.zeros(320, 5, 1, 1)}, "3x3"),
        ({"head": torch.zeros(320, 5, 3, 3, dtype=torch.int32)}, "float tensor"),
        ({"head": torch.full((320, 5, 3, 3), float("nan"))}, "non-finite"),
        ([torch.zeros(320, 5, 3, 3)], "expected a dict"),
    ],
)
def test_bad_head_files(tmp_path, obj, needle):
    p = tmp_path / "bad_head.pth"
    torch.save(obj, p)
    with pytest.raises(InvalidInpaintHead) as ei:
        load_inpaint_head(p)
    assert needle in str(ei.value) and str(p) in str(ei.value) and isinstance(ei.value, ValueError)


def test_head_file_errors(tmp_path):
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    p = tmp_path / "fooocus_inpaint_head.pth"
    torch.save({"head": Evil()}, p)
    with pytest.raises(UnsafeModelFile, match="inpaint head"):
        load_inpaint_head(p)
    assert not marker.exists()
    good = tmp_path / "good.pth"
    save_inpaint_head(good, make_random_head())
    tr = tmp_path / "trunc.pth"
    tr.write_bytes(good.read_bytes()[:20000])
    with pytest.raises(CorruptModelFile, match="trunc.pth"):
        load_inpaint_head(tr)


def test_check_head_width():
    wt = make_random_head(320)
    check_head_width(wt, 320)
    with pytest.raises(ValueError) as ei:
        check_head_width(wt, 384)
    assert "320 channels" in str(ei.value) and "has 384" in str(ei.value)
    with pytest.raises(ValueError, match="channels"):
        make_random_head(0)
