"""engine.paste: soft blend mask (oracle + literal Fooocus loop) and paste-back."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from conftest import load_npz
from engine import paste as P


def _literal_soft(mask):
    x = np.where(mask > 127, 256, 0).astype(np.int16)
    for _ in range(32):
        x = np.maximum(ndimage.maximum_filter(x, size=3, mode="nearest") - 8, x)
    return x.clip(0, 255).astype(np.uint8)


def _literal_post(image, decoded, box, soft):
    a, b, c, d = box
    fg = image.copy()
    fg[a:b, c:d] = np.asarray(Image.fromarray(decoded).resize((d - c, b - a), Image.LANCZOS))
    w = soft[:, :, None].astype(np.float32) / 255.0
    y = fg.astype(np.float32) * w + image.astype(np.float32) * (1 - w)
    return y.clip(0, 255).astype(np.uint8)


def test_soft_mask_oracle(oracle_dir):
    z = load_npz("soft_mask.npz")
    for cid in z["cases"]:
        np.testing.assert_array_equal(P.soft_blend_mask(z[f"{cid}_mask"]), z[f"{cid}_out"],
                                      err_msg=str(cid))


def test_soft_mask_vs_literal():
    rng = np.random.default_rng(0)
    for shape in ((1, 1), (1, 70), (16, 16), (50, 90), (100, 37)):
        for p in (0.0, 0.001, 0.05, 1.0):
            m = (rng.random(shape) < p).astype(np.uint8) * 255
            m[rng.random(shape) < 0.05] = 127  # grey <= 127 does not count
            np.testing.assert_array_equal(P.soft_blend_mask(m), _literal_soft(m), err_msg=f"{shape} {p}")
    m = np.zeros((80, 80), np.uint8)
    m[40, 40] = 128
    s = P.soft_blend_mask(m)
    assert s[40, 40] == 255 and s[40, 41] == 248 and s[40 - 31, 40] == 8 and s[40, 40 + 32] == 0


def test_paste_back_oracle(oracle_dir):
    z = load_npz("worker.npz")
    for cid in z["cases"]:
        out = P.paste_back(z[f"{cid}_image"], z[f"{cid}_decoded"], tuple(z[f"{cid}_area"]),
                           z[f"{cid}_soft_mask"])
        np.testing.assert_array_equal(out, z[f"{cid}_post"], err_msg=str(cid))


def test_paste_back_vs_literal():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)
    img[:5] = 255
    mask = np.zeros((61, 83), np.uint8)
    mask[20:30, 40:47] = 255
    soft = P.soft_blend_mask(mask)
    for box in ((0, 61, 0, 83), (10, 45, 30, 70), (0, 1, 0, 1)):
        dec = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
        np.testing.assert_array_equal(P.paste_back(img, dec, box, soft),
                                      _literal_post(img, dec, box, soft))
    zero = np.zeros((61, 83), np.uint8)
    np.testing.assert_array_equal(P.paste_back(img, dec, (0, 61, 0, 83), zero), img)


def test_errors():
    img = np.zeros((8, 8, 3), np.uint8)
    soft = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="box"):
        P.paste_back(img, img, (0, 9, 0, 8), soft)
    with pytest.raises(ValueError, match="box"):
        P.paste_back(img, img, (0, 8), soft)
    with pytest.raises(ValueError, match="decoded"):
        P.paste_back(img, img[:, :, 0], (0, 8, 0, 8), soft)
    with pytest.raises(ValueError, match="soft_mask"):
        P.paste_back(img, img, (0, 8, 0, 8), soft[:4])
    with pytest.raises(ValueError, match="mask"):
        P.soft_blend_mask(soft.astype(bool))
