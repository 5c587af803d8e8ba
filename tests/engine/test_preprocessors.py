"""PyraCanny / CPDS pre-processors, resize_image, HWC3 and face alignment against the Fooocus oracle."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import load_npz
from engine import preprocessors as P
from engine.masks import hwc3

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed (optional dependency of "
                                        "the image-prompt preprocessors)")


@pytest.fixture(scope="module")
def data(oracle_dir):
    return load_npz("preprocessors.npz")


def test_pyramid_canny_color_exact(data):
    for c in data["cases"]:
        out = P.pyramid_canny_color(data[f"{c}_image"], 64, 128)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, data[f"{c}_canny_pyramid_color"], err_msg=c)


def test_canny_pyramid_exact(data):
    for c in data["cases"]:
        out = P.canny_pyramid(data[f"{c}_image"], 64, 128)
        assert out.dtype == np.uint8 and out.shape == data[f"{c}_image"].shape[:2]
        np.testing.assert_array_equal(out, data[f"{c}_canny"], err_msg=c)
    np.testing.assert_array_equal(P.canny_pyramid(data["p00_image"], 32, 200), data["p00_canny_t32_200"])


def test_cpds_exact(data):
    for c in data["cases"]:
        np.testing.assert_array_equal(P.cpds(data[f"{c}_image"]), data[f"{c}_cpds"], err_msg=c)


def test_norm255_exact_and_not_in_place(data):
    for n in data["norm255_cases"]:
        x = data[f"{n}_in"].copy()
        out = P.norm255(x, int(data[f"{n}_low"]), int(data[f"{n}_high"]))
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, data[f"{n}_out"], err_msg=n)
        np.testing.assert_array_equal(x, data[f"{n}_in"])


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_resize_image_modes_exact(data, mode):
    seen = 0
    for r in data["resize_cases"]:
        w, h, m = (int(v) for v in data[f"{r}_args"])
        if m != mode:
            continue
        seen += 1
        out = P.resize_image(data[f"{r}_image"], w, h, m)
        assert out.shape == (h, w, 3)
        np.testing.assert_array_equal(out, data[f"{r}_out"], err_msg=r)
    assert seen


def test_hwc3_cases(data):
    np.testing.assert_array_equal(hwc3(data["hwc3_rgba_in"]), data["hwc3_rgba_out"])
    np.testing.assert_array_equal(hwc3(data["hwc3_grey_in"]), data["hwc3_grey_out"])


def test_controlnet_image_is_hwc3_then_fill_crop(data):
    img = data["hwc3_rgba_in"]
    out = P.controlnet_image(img, 40, 16)
    np.testing.assert_array_equal(out, P.resize_image(hwc3(img), 40, 16, 1))
    grey = P.controlnet_image(data["hwc3_grey_in"], 16, 16)
    assert grey.shape == (16, 16, 3)
    assert P.clip_vision_image(data["p01_image"]).shape == (224, 224, 3)
    np.testing.assert_array_equal(P.clip_vision_image(data["p01_image"]),
                                  P.resize_image(data["p01_image"], 224, 224, 0))


def test_hint_to_rgb():
    h = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = P.hint_to_rgb(h)
    assert out.shape == (3, 4, 3) and (out[..., 2] == h).all()
    with pytest.raises(ValueError, match="hint"):
        P.hint_to_rgb(np.zeros((3, 4, 3), np.uint8))


def test_bad_inputs():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="image"):
        P.resize_image(np.zeros((8, 8), np.uint8), 4, 4)
    with pytest.raises(ValueError, match="image"):
        P.canny_pyramid(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="width"):
        P.resize_image(img, 0, 4)
    with pytest.raises(ValueError, match="height"):
        P.resize_image(img, 4, 2.5)
    with pytest.raises(ValueError, match="resize_mode"):
        P.resize_image(img, 4, 4, 3)
    with pytest.raises(ValueError, match="low"):
        P.canny_pyramid(np.zeros((16, 16, 3), np.uint8), -1, 10)
    with pytest.raises(ValueError, match="too small"):
        P.canny_pyramid(np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        P.norm255(np.zeros((4, 4), np.float64))
    with pytest.raises(ValueError, match="high"):
        P.norm255(np.zeros((4, 4), np.float32), 1, 101)


def test_require_cv2_message(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name == "cv2":
            raise ImportError("no cv2")
        return real_import(name, *a, **k)

    monkeypatch.setattr(P, "_CV2", None)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(P.OpenCVMissing, match="opencv-python-headless"):
        P.cpds(np.zeros((8, 8, 3), np.uint8))
    assert not P.cv2_available()


def _similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def test_face_alignment_recovers_similarity():
    # landmarks = template mapped by a known similarity; the alignment must be its inverse
    fwd = _similarity(0.4, 0.3, 50.0, 20.0)
    tmpl = P.FACE_TEMPLATE_512.astype(np.float64)
    lm = tmpl @ fwd[:, :2].T + fwd[:, 2]
    m = P.face_alignment_matrix(lm)
    assert m.shape == (2, 3)
    back = lm @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(back, tmpl, atol=1e-2)


def test_align_face_warp_and_border():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    fwd = _similarity(0.4, 0.0, 150.0, 80.0)
    lm = P.FACE_TEMPLATE_512.astype(np.float64) @ fwd[:, :2].T + fwd[:, 2]
    out = P.align_face(img, lm)
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    m = P.face_alignment_matrix(lm)
    expect = cv2.warpAffine(img, m, (512, 512), borderMode=cv2.BORDER_CONSTANT, borderValue=(135, 133, 132))
    np.testing.assert_array_equal(out, expect)
    # a face near the image corner leaves border-coloured pixels
    fwd2 = _similarity(0.4, 0.0, -60.0, -60.0)
    lm2 = P.FACE_TEMPLATE_512.astype(np.float64) @ fwd2[:, :2].T + fwd2[:, 2]
    out2 = P.align_face(img, lm2)
    assert (out2[0, 0] == np.array(P.FACE_BORDER_VALUE, np.uint8)).all()
    small = P.align_face(img, lm, size=256)
    assert small.shape == (256, 256, 3)


def test_face_alignment_bad_landmarks():
    with pytest.raises(ValueError, match="landmarks"):
        P.face_alignment_matrix(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="landmarks"):
        P.align_face(np.zeros((8, 8, 3), np.uint8), np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="size"):
        P.align_face(np.zeros((8, 8, 3), np.uint8), P.FACE_TEMPLATE_512, size=0)


def test_flat_image_gives_zero_hint_without_warnings():
    import warnings

    flat = np.full((32, 32, 3), 100, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.canny_pyramid(flat).max() == 0
        assert P.cpds(flat).max() == 0
