"""FaceSwap alignment (engine/face_align.py): template, similarity fit, cv2-exact warp, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest

from engine import face_align as F
from engine import preprocessors as P


def _similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def test_template_values_and_scaling():
    t = F.face_template()
    assert t.shape == (5, 2) and t.dtype == np.float64
    np.testing.assert_array_equal(t, F.FFHQ_TEMPLATE_512)
    # eyes above nose above mouth; left/right ordered by x
    assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0] and t[0, 1] < t[2, 1] < t[3, 1]
    np.testing.assert_allclose(F.face_template(256), F.FFHQ_TEMPLATE_512 / 2)
    # the same numbers the cv2-based preprocessor uses
    np.testing.assert_allclose(F.FFHQ_TEMPLATE_512, P.FACE_TEMPLATE_512, atol=1e-5)


@pytest.mark.parametrize("scale,angle,tx,ty", [(1.0, 0.0, 0.0, 0.0), (0.37, 0.3, 50.0, -20.0),
                                               (2.5, -2.8, -300.0, 410.5), (0.05, 1.57, 3.0, 4.0)])
def test_similarity_recovers_exact_transform(scale, angle, tx, ty):
    fwd = _similarity(scale, angle, tx, ty)
    src = np.random.default_rng(1).uniform(-100, 600, (7, 2))
    m = F.estimate_similarity(src, _apply(fwd, src))
    np.testing.assert_allclose(m, fwd, rtol=1e-9, atol=1e-7)
    # landmarks -> template: the inverse of the template -> landmarks similarity
    lm = _apply(fwd, F.FFHQ_TEMPLATE_512)
    back = F.estimate_similarity(lm, F.FFHQ_TEMPLATE_512)
    np.testing.assert_allclose(_apply(back, lm), F.FFHQ_TEMPLATE_512, atol=1e-7)


def test_similarity_is_least_squares_and_has_no_reflection():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 100, (5, 2))
    dst = _apply(_similarity(1.3, 0.4, 10, 5), src) + rng.normal(0, 2.0, (5, 2))
    m = F.estimate_similarity(src, dst)
    assert m[0, 0] == m[1, 1] and m[0, 1] == -m[1, 0]
    err = ((_apply(m, src) - dst) ** 2).sum()
    for d in np.eye(4) * 1e-3:  # any perturbation of (a, b, tx, ty) fits worse
        for sign in (1, -1):
            a, b, tx, ty = m[0, 0] + sign * d[0], m[1, 0] + sign * d[1], m[0, 2] + sign * d[2], m[1, 2] + sign * d[3]
            assert ((_apply(np.array([[a, -b, tx], [b, a, ty]]), src) - dst) ** 2).sum() > err
    # mirrored points cannot be matched by a reflection
    mirrored = src * np.array([-1.0, 1.0])
    mm = F.estimate_similarity(src, mirrored)
    assert np.linalg.det(mm[:, :2]) >= 0


def test_similarity_matches_cv2_lmeds_for_consistent_landmarks():
    cv2 = pytest.importorskip("cv2")
    fwd = _similarity(0.6, 0.25, 120.0, 40.0)
    lm = _apply(fwd, F.FFHQ_TEMPLATE_512) + np.random.default_rng(3).normal(0, 0.05, (5, 2))
    ref = cv2.estimateAffinePartial2D(lm.astype(np.float32), F.FFHQ_TEMPLATE_512.astype(np.float32),
                                      method=cv2.LMEDS)[0]
    np.testing.assert_allclose(F.estimate_similarity(lm, F.FFHQ_TEMPLATE_512), ref, rtol=0, atol=2e-3)


def test_warp_known_pattern_translation_and_scale():
    img = np.zeros((4, 6, 3), np.uint8)
    img[..., 0] = np.arange(6)[None, :] * 40
    img[..., 1] = np.arange(4)[:, None] * 60
    img[..., 2] = 7
    # integer translation: a shifted copy, border elsewhere
    out = F.warp_affine(img, np.array([[1.0, 0, 2], [0, 1.0, 1]]), (8, 6), (1, 2, 3))
    np.testing.assert_array_equal(out[1:5, 2:8], img)
    assert (out[0] == [1, 2, 3]).all() and (out[:, :2] == [1, 2, 3]).all()
    # half-pixel shift: mean of neighbours, rounded half up as cv2 does
    half = F.warp_affine(img, np.array([[1.0, 0, -0.5], [0, 1.0, 0]]), (5, 4), (0, 0, 0))
    np.testing.assert_array_equal(half[..., 0], (img[:, :5, 0].astype(int) + img[:, 1:6, 0] + 1) // 2)
    # upscale x2: even output pixels hit source pixels exactly
    up = F.warp_affine(img, np.array([[2.0, 0, 0], [0, 2.0, 0]]), (12, 8), (0, 0, 0))
    np.testing.assert_array_equal(up[::2, ::2][:, :6], img)
    # 90 degree rotation about the origin, shifted back into view
    rot = F.warp_affine(img, np.array([[0.0, -1, 3], [1, 0.0, 0]]), (4, 6), (0, 0, 0))
    np.testing.assert_array_equal(rot, np.rot90(img, k=-1))


def test_warp_bit_exact_with_cv2():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(4)
    for i in range(12):
        h, w = (int(v) for v in rng.integers(3, 120, 2))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        m = _similarity(rng.uniform(0.2, 3.0), rng.uniform(-3.1, 3.1), rng.uniform(-80, 150), rng.uniform(-80, 150))
        if i % 3 == 0:
            m[0, 1] += 0.2  # general affine too
        ow, oh = (int(v) for v in rng.integers(1, 140, 2))
        ref = cv2.warpAffine(img, m, (ow, oh), borderMode=cv2.BORDER_CONSTANT, borderValue=(135, 133, 132))
        np.testing.assert_array_equal(F.warp_affine(img, m, (ow, oh), (135, 133, 132)), ref, err_msg=str(i))


def test_align_face_matches_fooocus_bgr_pipeline():
    """Fooocus warps the BGR image with border (135, 133, 132) and flips back: RGB border (132, 133, 135)."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    lm = _apply(_similarity(0.3, 0.2, -20.0, 60.0), F.FFHQ_TEMPLATE_512)  # face partly outside the image
    face, m = F.align_face(img, lm)
    assert face.shape == (512, 512, 3) and face.dtype == np.uint8 and m.shape == (2, 3)
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    ref = cv2.warpAffine(bgr, m, (512, 512), borderMode=cv2.BORDER_CONSTANT, borderValue=(135, 133, 132))[:, :, ::-1]
    np.testing.assert_array_equal(face, ref)
    assert (face == np.array(F.FACE_BORDER_RGB, np.uint8)).all(axis=2).any()
    np.testing.assert_allclose(_apply(m, lm), F.FFHQ_TEMPLATE_512, atol=1e-6)
    small, _ = F.align_face(img, lm, size=128)
    assert small.shape == (128, 128, 3)


def test_align_face_identity_when_landmarks_are_the_template():
    img = np.random.default_rng(6).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    face, m = F.align_face(img, F.FFHQ_TEMPLATE_512)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    np.testing.assert_array_equal(face, img)


def test_bad_inputs():
    ok = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="landmarks"):
        F.align_face(ok, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="landmarks"):
        F.align_face(ok, np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="landmarks"):
        F.align_face(ok, "eyes")
    with pytest.raises(ValueError, match="src points all coincide"):
        F.align_face(ok, np.ones((5, 2)))
    with pytest.raises(ValueError, match="size"):
        F.align_face(ok, F.FFHQ_TEMPLATE_512, size=0)
    with pytest.raises(ValueError, match="size"):
        F.face_template(True)
    with pytest.raises(ValueError, match="dst"):
        F.estimate_similarity(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="src"):
        F.estimate_similarity(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="image"):
        F.warp_affine(ok.astype(np.float32), np.eye(2, 3), (4, 4))
    with pytest.raises(ValueError, match="image"):
        F.warp_affine(ok[..., 0], np.eye(2, 3), (4, 4))
    with pytest.raises(ValueError, match="matrix"):
        F.warp_affine(ok, np.eye(3), (4, 4))
    with pytest.raises(ValueError, match="invertible"):
        F.warp_affine(ok, np.zeros((2, 3)), (4, 4))
    with pytest.raises(ValueError, match="size"):
        F.warp_affine(ok, np.eye(2, 3), (4, 0))
    with pytest.raises(ValueError, match="size"):
        F.warp_affine(ok, np.eye(2, 3), 4)
    with pytest.raises(ValueError, match="border_value"):
        F.warp_affine(ok, np.eye(2, 3), (4, 4), (1, 2))
    with pytest.raises(ValueError, match="border_value"):
        F.warp_affine(ok, np.eye(2, 3), (4, 4), (1, 2, 300))
