"""engine.outpaint: padding amounts, order, edge replication, mask 255, distances, errors."""
from __future__ import annotations

import numpy as np
import pytest

from engine.outpaint import outpaint_pad


def _img(h, w):
    return np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_right_spec_example():
    img, m = outpaint_pad(_img(768, 1024), None, ["right"])
    assert img.shape == (768, 1331, 3) and m.shape == (768, 1331)
    assert (m[:, 1024:] == 255).all() and (m[:, :1024] == 0).all()
    assert (img[:, 1024:] == img[:, 1023:1024]).all()


def test_all_sides_order_and_amounts():
    src = _img(100, 50)
    mask = np.zeros((100, 50), np.uint8)
    mask[10, 10] = 7
    img, m = outpaint_pad(src, mask, ["Left", "TOP", "bottom", "right", "top"])
    # top/bottom: int(100*0.3)=30 each; left/right: int(50*0.3)=15 each (width after vertical pad)
    assert img.shape == (160, 80, 3)
    np.testing.assert_array_equal(img[30:130, 15:65], src)
    np.testing.assert_array_equal(img[0, 15:65], src[0])
    np.testing.assert_array_equal(img[159, 15:65], src[-1])
    assert (img[0, 0] == src[0, 0]).all() and (img[-1, -1] == src[-1, -1]).all()
    assert m[40, 25] == 7 and (m[:30] == 255).all() and (m[:, :15] == 255).all()
    assert (m[30:130, 15:65] != 255).all()


def test_small_and_distances():
    src = _img(3, 3)  # int(3*0.3) = 0: nothing to pad
    img, m = outpaint_pad(src, None, ["top", "left"])
    assert img.shape == (3, 3, 3) and not m.any()
    img, m = outpaint_pad(src, None, ["top", "left"], {"top": 5, "left": 0, "RIGHT": 9})
    assert img.shape == (8, 3, 3)  # left default 0, right not selected
    img, m = outpaint_pad(_img(10, 20), None, ["bottom", "right"], {"bottom": 4})
    assert img.shape == (14, 26, 3)
    img, m = outpaint_pad(_img(10, 20), None, [])
    assert img.shape == (10, 20, 3)


def test_errors():
    src = _img(10, 10)
    with pytest.raises(ValueError, match="directions"):
        outpaint_pad(src, None, ["up"])
    with pytest.raises(ValueError, match="directions"):
        outpaint_pad(src, None, [3])
    with pytest.raises(ValueError, match="distances"):
        outpaint_pad(src, None, ["top"], {"top": -1})
    with pytest.raises(ValueError, match="distances"):
        outpaint_pad(src, None, ["top"], {"middle": 3})
    with pytest.raises(ValueError, match="mask"):
        outpaint_pad(src, np.zeros((9, 10), np.uint8), ["top"])
    with pytest.raises(ValueError, match="image"):
        outpaint_pad(src[:, :, 0], None, ["top"])
