"""engine.masks: HWC3, erode/dilate (oracle), upload thresholding, prepare_mask, ComfyUI masks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_npz
from engine import masks as M


def test_hwc3_oracle(oracle_dir):
    z = load_npz("preprocessors.npz")
    np.testing.assert_array_equal(M.hwc3(z["hwc3_rgba_in"]), z["hwc3_rgba_out"])
    np.testing.assert_array_equal(M.hwc3(z["hwc3_grey_in"]), z["hwc3_grey_out"])


def test_hwc3_shapes_and_errors():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert M.hwc3(rgb) is rgb
    one = rgb[:, :, :1]
    np.testing.assert_array_equal(M.hwc3(one), np.repeat(one, 3, axis=2))
    rgba = np.dstack([rgb, np.full((5, 7), 255, np.uint8)])
    np.testing.assert_array_equal(M.hwc3(rgba), rgb)
    rgba[..., 3] = 0
    assert (M.hwc3(rgba) == 255).all()
    with pytest.raises(ValueError, match="image"):
        M.hwc3(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="image"):
        M.hwc3(np.zeros((4, 4, 2), np.uint8))


def test_erode_dilate_oracle(oracle_dir):
    z = load_npz("erode_dilate.npz")
    for cid in z["cases"]:
        for i, k in enumerate(z["ks"]):
            np.testing.assert_array_equal(M.erode_or_dilate(z[f"{cid}_mask"], int(k)),
                                          z[f"{cid}_out"][i], err_msg=f"{cid} k={k}")


def _literal(mask, k):
    """k iterations of a 3x3 max/min where outside pixels never win (cv2 default border)."""
    x = mask.astype(np.int16)
    fill, op = (-1, np.maximum) if k > 0 else (256, np.minimum)
    for _ in range(abs(k)):
        p = np.pad(x, 1, constant_values=fill)
        y = p[1:-1, 1:-1].copy()
        for dy in range(3):
            for dx in range(3):
                y = op(y, p[dy:dy + x.shape[0], dx:dx + x.shape[1]])
        x = y
    return x.astype(np.uint8)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (16, 16), (13, 29)])
def test_erode_dilate_matches_iterated_3x3(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    m = (rng.random(shape) < 0.3).astype(np.uint8) * 255
    m[rng.random(shape) < 0.1] = 77
    for k in (-5, -2, -1, 0, 1, 2, 5, 64, -64):
        np.testing.assert_array_equal(M.erode_or_dilate(m, k), _literal(m, k), err_msg=str(k))


def test_erode_dilate_errors():
    m = np.zeros((4, 4), np.uint8)
    for k in (65, -65, 1.5, True, "3", None):
        with pytest.raises(ValueError, match="erode_or_dilate"):
            M.erode_or_dilate(m, k)
    with pytest.raises(ValueError, match="mask"):
        M.erode_or_dilate(np.zeros((4, 4, 3), np.uint8), 1)
    out = M.erode_or_dilate(m, 0)
    assert out is not m and np.array_equal(out, m)


def test_threshold_upload_mask():
    rng = np.random.default_rng(1)
    up = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = M.threshold_upload_mask(up, 45, 61)
    res = np.asarray(Image.fromarray(up).resize((61, 45), Image.LANCZOS)).astype(np.float64)
    np.testing.assert_array_equal(out, np.where(res.mean(axis=2) > 127, 255, 0))
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 255}
    grey = up[:, :, 0]
    g = M.threshold_upload_mask(grey, 30, 40)  # same size: no resampling change
    np.testing.assert_array_equal(g, np.where(grey > 127, 255, 0))
    with pytest.raises(ValueError, match="height"):
        M.threshold_upload_mask(up, 0, 5)


def test_prepare_mask_order():
    m = np.zeros((9, 9), np.uint8)
    m[4, 4] = 255
    out = M.prepare_mask(m, 1, invert=True)
    exp = np.full((9, 9), 255, np.uint8)
    exp[3:6, 3:6] = 0  # dilated first, then inverted
    np.testing.assert_array_equal(out, exp)
    np.testing.assert_array_equal(M.prepare_mask(m), m)
    grey = np.full((3, 3), 100, np.uint8)
    np.testing.assert_array_equal(M.prepare_mask(grey, invert=True), 155)
    with pytest.raises(ValueError, match="invert"):
        M.prepare_mask(m, 0, invert="yes")
    with pytest.raises(ValueError, match="erode_or_dilate"):
        M.prepare_mask(m, 100)


def test_comfy_mask_round_trip():
    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    t = M.u8_to_comfy_mask(u8)
    assert t.shape == (1, 16, 16) and t.dtype == torch.float32
    np.testing.assert_array_equal(M.comfy_mask_to_u8(t)[0], u8)
    batch = M.u8_to_comfy_mask(np.stack([u8, u8[::-1]]))
    assert batch.shape == (2, 16, 16)
    # rounding, not truncation; out-of-range values are clipped
    f = torch.tensor([[0.0, 0.51 / 255, 0.49 / 255, 1.0, 1.7, -0.2, 0.9999]])
    np.testing.assert_array_equal(M.comfy_mask_to_u8(f), [[0, 1, 0, 255, 255, 0, 255]])
    assert M.comfy_mask_to_u8(np.full((2, 2), 0.6, np.float32)).tolist() == [[153, 153]] * 2
    with pytest.raises(ValueError):
        M.comfy_mask_to_u8(torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError):
        M.comfy_mask_to_u8(np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError):
        M.u8_to_comfy_mask(np.zeros((3, 3), np.float32))
