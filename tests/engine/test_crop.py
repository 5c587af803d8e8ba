"""engine.crop: oracle boxes and closed form == literal Fooocus loop."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import load_json, load_npz
from engine import crop as C


def test_crop_oracle(oracle_dir):
    data = load_json("crop.json")
    masks = load_npz("crop_masks.npz")
    assert len(data["cases"]) >= 40
    for case in data["cases"]:
        m = masks[case["mask_key"]]
        init = C.initial_box(m)
        if case["initial"] is None:
            assert init is None and case["error"]
            assert C.crop_box(m, 0.5) is None
            continue
        assert list(init) == case["initial"], case["id"]
        for ks, exp in case["solve"].items():
            assert list(C.solve_box(m.shape, init, float(ks))) == exp, (case["id"], ks)
            assert list(C.solve_box_literal(m.shape, init, float(ks))) == exp, (case["id"], ks)
            assert list(C.crop_box(m, float(ks))) == exp


def test_spec_example():
    m = np.zeros((1024, 1536), np.uint8)
    m[400:500, 700:760] = 255
    assert C.initial_box(m) == (393, 506, 673, 786)
    assert C.crop_box(m, 0.3) == (220, 679, 499, 960)
    assert C.crop_box(m, 0.618) == (0, 949, 254, 1205)
    assert C.crop_box(m, 1.0) == (0, 1024, 0, 1536)


def test_closed_form_equals_literal_loop():
    rng = np.random.default_rng(0)
    for t in range(6000):
        hi = (12, 12) if t % 3 == 0 else (400, 400)
        H, W = (int(v) for v in rng.integers(1, hi, 2))
        a = int(rng.integers(0, H)); b = int(rng.integers(a + 1, H + 1))
        c = int(rng.integers(0, W)); d = int(rng.integers(c + 1, W + 1))
        if t % 4 == 0:
            b, d = min(a + int(rng.integers(1, 4)), H), min(c + int(rng.integers(1, 4)), W)
        k = float(rng.choice([0.0, 0.3, 0.5, 0.618, 0.9, 0.99, 1.0, rng.random()]))
        assert C.solve_box((H, W), (a, b, c, d), k) == C.solve_box_literal((H, W), (a, b, c, d), k), \
            (H, W, a, b, c, d, k)


def test_edge_masks():
    m = np.zeros((16, 16), np.uint8)
    assert C.initial_box(m) is None
    m[0, 0] = 1  # faint pixel counts (> 0)
    assert C.initial_box(m) == (0, 1, 0, 1)
    assert C.crop_box(m, 0.5) == (0, 8, 0, 8)
    full = np.full((16, 16), 255, np.uint8)
    assert C.crop_box(full, 0.0) == (0, 16, 0, 16)
    one = np.full((1, 1), 9, np.uint8)
    assert C.crop_box(one, 0.9) == (0, 1, 0, 1)
    m = np.zeros((13, 29), np.uint8)
    m[12, 28] = 255
    for k in (0.0, 0.3, 0.618, 0.9):
        assert C.crop_box(m, k) == C.solve_box_literal(m.shape, C.initial_box(m), k)


def test_errors():
    m = np.zeros((8, 8), np.uint8)
    m[2, 2] = 255
    box = C.initial_box(m)
    for k in (-0.1, 1.1, float("nan"), "0.5", None, True):
        with pytest.raises(ValueError, match="k"):
            C.solve_box((8, 8), box, k)
    for bad in ((0, 9, 0, 8), (3, 3, 0, 8), (0, 8), None, (0, 8, 5, 2)):
        with pytest.raises(ValueError, match="box"):
            C.solve_box((8, 8), bad, 0.5)
    with pytest.raises(ValueError, match="shape"):
        C.solve_box((0, 8), (0, 1, 0, 1), 0.5)
    with pytest.raises(ValueError, match="mask"):
        C.initial_box(np.zeros((2, 2, 3), np.uint8))
