"""engine.inpaint_prep: InpaintWorker reproduction (oracle), latent mask, head pixels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import load_npz
from engine.inpaint_prep import (InpaintPrep, finish_inpaint, latent_mask, masked_pixels_for_head,
                                 prepare_inpaint)


def test_worker_oracle(oracle_dir):
    z = load_npz("worker.npz")
    for cid in z["cases"]:
        p = prepare_inpaint(z[f"{cid}_image"], z[f"{cid}_mask"], float(z[f"{cid}_k"]),
                            bool(z[f"{cid}_use_fill"]))  # identity upscaler, like the fixtures
        assert p.box == tuple(int(v) for v in z[f"{cid}_area"]), cid
        assert p.upscaler_called == bool(z[f"{cid}_upscaler_called"]), cid
        for name in ("interested_image", "interested_fill", "interested_mask", "soft_mask"):
            np.testing.assert_array_equal(getattr(p, name), z[f"{cid}_{name}"], err_msg=f"{cid} {name}")
        np.testing.assert_array_equal(finish_inpaint(p, z[f"{cid}_decoded"]), z[f"{cid}_post"],
                                      err_msg=str(cid))


def test_upscaler_called_only_for_small_crops():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.zeros((40, 56), np.uint8)
    mask[10:20, 20:30] = 255
    calls = []

    def up4(x):
        calls.append(x.shape)
        return np.repeat(np.repeat(x, 4, axis=0), 4, axis=1)

    p = prepare_inpaint(img, mask, 0.618, use_fill=False, upscale=up4)
    assert calls and p.upscaler_called
    a, b, c, d = p.box
    assert calls[0] == (b - a, d - c, 3)
    h, w = p.working_hw
    assert 960 < (h * w) ** 0.5 <= 1024 and h % 64 == 0 and w % 64 == 0
    np.testing.assert_array_equal(p.interested_fill, p.interested_image)
    assert set(np.unique(p.interested_mask)) <= {0, 255}
    out = finish_inpaint(p, np.zeros((h // 8 * 8, w // 8 * 8, 3), np.uint8))
    assert out.shape == img.shape
    far = p.soft_mask == 0
    np.testing.assert_array_equal(out[far], img[far])
    with pytest.raises(ValueError, match="upscale"):
        prepare_inpaint(img, mask, 0.5, False, upscale=lambda x: x[:, :, 0])


def test_prepare_errors():
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="non-zero"):
        prepare_inpaint(img, np.zeros((16, 16), np.uint8), 0.5, True)
    with pytest.raises(ValueError, match="mask shape"):
        prepare_inpaint(img, np.zeros((16, 15), np.uint8), 0.5, True)
    with pytest.raises(ValueError, match="use_fill"):
        prepare_inpaint(img, np.full((16, 16), 255, np.uint8), 0.5, 1)
    with pytest.raises(ValueError, match="k"):
        prepare_inpaint(img, np.full((16, 16), 255, np.uint8), 2.0, True)
    with pytest.raises(ValueError, match="prep"):
        finish_inpaint(None, img)


def _reference_latent_mask(mask, h, w):
    m = F.interpolate(mask[:, None], size=(h * 8, w * 8), mode="bilinear").round()
    return F.max_pool2d(m, (8, 8)).round()


def test_latent_mask():
    g = torch.Generator().manual_seed(0)
    for H, W in ((64, 64), (75, 101), (16, 16), (1331 // 4, 768 // 4)):
        m = (torch.rand(2, H, W, generator=g) > 0.97).float()
        m[1] = torch.rand(H, W, generator=g)
        h, w = H // 8, W // 8
        out = latent_mask(m, (h, w))
        assert out.shape == (2, 1, h, w)
        torch.testing.assert_close(out, _reference_latent_mask(m, h, w), rtol=0, atol=0)
        torch.testing.assert_close(latent_mask(m[:, None], (h, w)), out, rtol=0, atol=0)
        assert set(out.unique().tolist()) <= {0.0, 1.0}
    one = torch.zeros(1, 64, 64)
    one[0, 9, 17] = 1.0
    lm = latent_mask(one, (8, 8))
    assert lm.sum() == 1 and lm[0, 0, 1, 2] == 1
    with pytest.raises(ValueError, match="mask"):
        latent_mask(torch.zeros(1, 2, 8, 8), (1, 1))
    with pytest.raises(ValueError, match="latent_hw"):
        latent_mask(torch.zeros(1, 8, 8), (0, 1))


def test_masked_pixels_for_head():
    px = torch.rand(1, 5, 6, 3)
    m = torch.zeros(1, 5, 6)
    m[0, 1, 2] = 0.6
    m[0, 3, 3] = 0.4
    out = masked_pixels_for_head(px, m)
    assert torch.all(out[0, 1, 2] == 0.5)
    torch.testing.assert_close(out[0, 3, 3], px[0, 3, 3])
    torch.testing.assert_close(masked_pixels_for_head(px, m[:, None]), out)
    with pytest.raises(ValueError, match="mask"):
        masked_pixels_for_head(px, torch.zeros(1, 5, 7))
    with pytest.raises(ValueError, match="pixels"):
        masked_pixels_for_head(px[..., :2], m)


def test_dataclass_fields():
    assert {"image", "mask", "box", "interested_fill", "soft_mask"} <= set(InpaintPrep.__dataclass_fields__)
