"""engine.resize: shape ceil / working size (oracle) and LANCZOS."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import load_json
from engine import resize as R


def test_shape_ceil_oracle(oracle_dir):
    data = load_json("shape_ceil.json")
    assert data["target"] == 1024
    for c in data["cases"]:
        assert R.shape_ceil(c["h"], c["w"]) == c["shape_ceil"]
        assert R.working_size(c["h"], c["w"]) == (c["out_h"], c["out_w"], c["resized"]), c
        if c["resized"]:
            assert R.shape_ceil(c["out_h"], c["out_w"]) == c["out_shape_ceil"]
    for c in data["get_shape_ceil_extra"]:
        assert R.shape_ceil(c["h"], c["w"]) == c["value"]


def test_spec_examples():
    assert R.working_size(200, 300) == (768, 1216, True)
    assert R.working_size(637, 637) == (1024, 1024, True)
    assert R.working_size(1100, 700) == (1280, 768, True)
    assert R.working_size(331, 1021) == (576, 1792, True)
    assert R.working_size(768, 1331) == (768, 1331, False)
    assert R.working_size(16, 16) == (1024, 1024, True)
    h, w, _ = R.working_size(517, 333)
    assert 960 < (h * w) ** 0.5 <= 1024


def test_resize_to_working_size_identity_and_lanczos():
    img = np.random.default_rng(0).integers(0, 256, (768, 1331, 3), dtype=np.uint8)
    out, resized = R.resize_to_working_size(img)
    assert out is img and not resized
    small = img[:37, :53]
    out, resized = R.resize_to_working_size(small)
    exp = np.asarray(Image.fromarray(np.ascontiguousarray(small)).resize((out.shape[1], out.shape[0]),
                                                                         Image.LANCZOS))
    assert resized and np.array_equal(out, exp)


def test_lanczos_resize():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (21, 34, 3), dtype=np.uint8)
    out = R.lanczos_resize(img, 50, 13)
    assert out.shape == (13, 50, 3) and out.flags.writeable
    np.testing.assert_array_equal(out, np.asarray(Image.fromarray(img).resize((50, 13), Image.LANCZOS)))
    grey = img[:, :, 1]
    assert R.lanczos_resize(grey, 7, 9).shape == (9, 7)
    np.testing.assert_array_equal(R.lanczos_resize(grey, 34, 21), grey)


def test_errors():
    for h, w in ((0, 5), (5, -1), (2.5, 3), (True, 4)):
        with pytest.raises(ValueError, match="h and w"):
            R.shape_ceil(h, w)
    with pytest.raises(ValueError, match="target"):
        R.working_size(10, 10, target=8)
    with pytest.raises(ValueError, match="empty size"):
        R.working_size(1, 4096)
    with pytest.raises(ValueError, match="image"):
        R.lanczos_resize(np.zeros((4, 4), np.float32), 2, 2)
    with pytest.raises(ValueError):
        R.lanczos_resize(np.zeros((4, 4, 3), np.uint8), 0, 2)
