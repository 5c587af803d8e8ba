"""engine.fill: PIL BoxBlur and fooocus_fill, bit-exact (oracle + random vs Pillow)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import load_npz
from engine import fill as F


def _pil_blur(img, r):
    return np.asarray(Image.fromarray(img).filter(ImageFilter.BoxBlur(r)))


def _pil_fill(img, mask):
    known = mask < 127
    cur, orig = img.copy(), img[known]
    for r, n in F.FILL_SCHEDULE:
        for _ in range(n):
            cur = np.array(Image.fromarray(cur).filter(ImageFilter.BoxBlur(r)))
            cur[known] = orig
    return cur


def test_fill_oracle(oracle_dir):
    z = load_npz("fill.npz")
    for cid in z["cases"]:
        np.testing.assert_array_equal(F.fooocus_fill(z[f"{cid}_image"], z[f"{cid}_mask"]),
                                      z[f"{cid}_out"], err_msg=str(cid))


def test_box_blur_oracle(oracle_dir):
    z = load_npz("fill.npz")
    for cid in z["box_blur_cases"]:
        np.testing.assert_array_equal(F.box_blur(z[f"{cid}_in"], int(z[f"{cid}_k"])),
                                      z[f"{cid}_out"], err_msg=str(cid))


def test_box_blur_random_vs_pil():
    rng = np.random.default_rng(0)
    radii = [0, 1, 2, 3, 5, 15, 33, 64, 128, 256, 512, 1000, 2500]
    for t in range(160):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        r = int(radii[t % len(radii)] if t % 2 else rng.integers(0, 300))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if t % 3 == 0:  # flat areas with small steps stress the rounding
            img = (img // 64 * 64 + rng.integers(0, 3, (h, w, 3))).astype(np.uint8)
        np.testing.assert_array_equal(F.box_blur(img, r), _pil_blur(img, r), err_msg=f"{h}x{w} r={r}")


def test_plans_cover_every_mode():
    modes = {r: F._plan(r).mode for r, _ in F.FILL_SCHEDULE}
    assert modes[128] == "pow2" and modes[3] == "simple" and modes[512] == "simple"
    assert F._plan(1000).mode == "exact" and F._plan(5000).mode == "exact"  # beyond the scan
    # lane widths: 16 bits up to radius 127 (and 128, whose formula needs no "+ r"), then 32, 64
    assert [F._bits_for(r) for r in (3, 64, 127, 128, 256, 512, 2**23, 2**24)] == \
        [16, 16, 16, 16, 32, 32, 32, 64]


def test_pack_roundtrip_and_layouts():
    rng = np.random.default_rng(3)
    for h, w in ((1, 1), (95, 7), (96, 5), (130, 3), (1000, 2)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for bits in (16, 32, 64):
            lay = F._layout(h, w, bits)
            assert lay.G * lay.L >= h and (lay.G == 1 or bits == 16)
            X = F._pack(img, lay)
            np.testing.assert_array_equal(F._unpack(X, lay), img)
            if lay.G * lay.L > h:
                assert not lay.pad_rows(X).any()


def test_box_blur_interleaved_vs_pil():
    # heights >= 96 use the interleaved row order (8 segments); radii around and above the
    # segment length L = ceil(H/8) make windows straddle one or several segments
    rng = np.random.default_rng(4)
    radii = [0, 1, 3, 5, 12, 15, 33, 40, 64, 127, 128, 129, 256, 512]
    for t in range(42):
        h, w = int(rng.integers(96, 300)), int(rng.integers(1, 90))
        r = radii[t % len(radii)]
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if t % 2:
            img = (img // 64 * 64 + rng.integers(0, 3, (h, w, 3))).astype(np.uint8)
        np.testing.assert_array_equal(F.box_blur(img, r), _pil_blur(img, r), err_msg=f"{h}x{w} r={r}")


def test_box_blur_huge_radii_vs_pil():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for r in (4097, 10**5, 2**23 - 1, 2**24, 2**25):
        np.testing.assert_array_equal(F.box_blur(img, r), _pil_blur(img, r), err_msg=str(r))


def test_two_threads_match(monkeypatch):
    # the 2-thread split (used when the machine is idle) must not change any value
    monkeypatch.setattr(F, "_threads", lambda: 2)
    monkeypatch.setattr(F, "_MIN_SPLIT", 1)
    rng = np.random.default_rng(6)
    for h, w, r in ((150, 40, 3), (150, 40, 128), (97, 33, 256), (40, 41, 5)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        np.testing.assert_array_equal(F.box_blur(img, r), _pil_blur(img, r), err_msg=f"{h}x{w} r={r}")
    img = rng.integers(0, 256, (120, 64, 3), dtype=np.uint8)
    mask = np.zeros((120, 64), np.uint8)
    mask[20:100, 10:50] = 255
    np.testing.assert_array_equal(F.fooocus_fill(img, mask), _pil_fill(img, mask))


def test_fill_medium_full_and_blob_vs_pil():
    # full mask (no known pixel: no reset) and a blob, at a size using the interleaved layout
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:160, :200]
    img = np.stack([yy, xx, (yy * xx) % 256], -1).astype(np.uint8)
    img = np.clip(img + rng.integers(0, 9, img.shape), 0, 255).astype(np.uint8)
    full = np.full((160, 200), 255, np.uint8)
    np.testing.assert_array_equal(F.fooocus_fill(img, full), _pil_fill(img, full))
    blob = ((((yy - 90) / 50.0) ** 2 + ((xx - 80) / 70.0) ** 2) < 1).astype(np.uint8) * 255
    np.testing.assert_array_equal(F.fooocus_fill(img, blob), _pil_fill(img, blob))


def test_fill_random_vs_pil():
    rng = np.random.default_rng(1)
    for t in range(12):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if t % 3 == 0:
            mask = rng.integers(0, 256, (h, w), dtype=np.uint8)  # grey: only < 127 is known
        else:
            mask = (rng.random((h, w)) < rng.random()).astype(np.uint8) * 255
        np.testing.assert_array_equal(F.fooocus_fill(img, mask), _pil_fill(img, mask))


def test_fill_edge_cases():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    empty = np.zeros((16, 16), np.uint8)
    out = F.fooocus_fill(img, empty)
    assert out is not img and np.array_equal(out, img)
    np.testing.assert_array_equal(F.fooocus_fill(img, np.full((16, 16), 126, np.uint8)), img)
    for mask in (np.full((16, 16), 255, np.uint8), np.full((16, 16), 127, np.uint8)):
        np.testing.assert_array_equal(F.fooocus_fill(img, mask), _pil_fill(img, mask))
    one = empty.copy()
    one[15, 0] = 255  # single pixel in a corner
    np.testing.assert_array_equal(F.fooocus_fill(img, one), _pil_fill(img, one))
    big = rng.integers(0, 256, (40, 700, 3), dtype=np.uint8)  # wider than the largest window
    m = np.zeros((40, 700), np.uint8)
    m[10:20, 600:650] = 255
    np.testing.assert_array_equal(F.fooocus_fill(big, m), _pil_fill(big, m))
    px = np.array([[[10, 20, 30]]], np.uint8)
    np.testing.assert_array_equal(F.fooocus_fill(px, np.full((1, 1), 255, np.uint8)), px)


def test_errors():
    img = np.zeros((4, 4, 3), np.uint8)
    for r in (-1, 1.5, True, "3", 2**31):
        with pytest.raises(ValueError, match="radius"):
            F.box_blur(img, r)
    with pytest.raises(ValueError, match="image"):
        F.box_blur(np.zeros((4, 4), np.uint8), 1)
    with pytest.raises(ValueError, match="image"):
        F.fooocus_fill(img.astype(np.float32), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="mask"):
        F.fooocus_fill(img, np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="mask"):
        F.fooocus_fill(img, np.zeros((4, 4), np.float32))
