"""FaceSwap face alignment without OpenCV: 5-point template, similarity fit and a cv2-exact warp (spec §8).

Fooocus crops the face before the face IP-Adapter (extras/face_crop.py ``crop_image``): facexlib's
RetinaFace finds faces with 5 landmarks, the first (most confident) face is mapped onto the FFHQ
5-point template of a 512x512 crop by a similarity transform (``cv2.estimateAffinePartial2D`` with
``cv2.LMEDS``) and warped with ``cv2.warpAffine`` (bilinear, constant border ``(135, 133, 132)`` given
in facexlib's BGR channel order, i.e. ``(132, 133, 135)`` in RGB).

This module is the pure part (numpy only):

- :data:`FFHQ_TEMPLATE_512` / :func:`face_template`: the template.
- :func:`estimate_similarity`: least-squares similarity (4 degrees of freedom, no reflection).  For
  a usual detection (all 5 points consistent) this is what ``estimateAffinePartial2D`` converges to:
  LMEDS picks a 2-point model, then refines it by least squares over the inliers.  With an outlier
  landmark the two differ; the face detector is the only source of landmarks, so the plain fit is kept.
- :func:`warp_affine`: ``cv2.warpAffine(..., INTER_LINEAR, BORDER_CONSTANT)`` reproduced bit-exactly on
  uint8 images, including OpenCV's fixed-point arithmetic (coordinates in 1/32 pixel, 15-bit weights).
- :func:`align_face`: both, for one face.

The detector itself (facexlib / OpenCV YuNet) is ComfyUI-side glue: ``nodes/face_detect.py``.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

#: Side of Fooocus's aligned face crop (facexlib ``FaceRestoreHelper(face_size=512)``).
FACE_SIZE = 512

#: The standard 5 facial landmarks of FFHQ-aligned faces at 512x512, as (x, y) pixels, in the order
#: left eye, right eye, nose tip, left mouth corner, right mouth corner ("left" = smaller x in the
#: image).  Source of the numbers: facexlib, ``facexlib/utils/face_restoration_helper.py``
#: (``FaceRestoreHelper.__init__``, "standard 5 landmarks for FFHQ faces with 512 x 512"), the
#: helper Fooocus vendors as ``extras/facexlib`` and calls with ``face_size=512`` and
#: ``template_3points=False``; also discussed in xinntao/facexlib issue #14.
FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708],
     [318.90277, 240.19360],
     [256.63416, 314.01935],
     [201.26117, 371.41043],
     [313.08905, 371.15118]], dtype=np.float64)

#: Fooocus's border colour ``(135, 133, 132)`` is given to cv2 on a BGR image; in RGB it is this.
FACE_BORDER_RGB = (132, 133, 135)

# OpenCV warpAffine fixed point (imgproc: INTER_BITS, AB_BITS, INTER_REMAP_COEF_BITS)
_INTER_BITS = 5
_INTER_TAB = 1 << _INTER_BITS
_AB_BITS = 10
_AB_SCALE = 1 << _AB_BITS
_ROUND_DELTA = _AB_SCALE // _INTER_TAB // 2
_COEF_BITS = 15


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return type(x).__name__


def _points(x: object, name: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an (N, 2) array of (x, y) points, got {_describe(x)}") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2 or (n is not None and arr.shape[0] != n):
        want = f"({n}, 2)" if n is not None else "(N, 2) with N >= 2"
        raise ValueError(f"{name} must be an array of (x, y) points of shape {want}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def face_template(size: int = FACE_SIZE) -> np.ndarray:
    """The FFHQ 5-point template for a ``size x size`` crop.

    Fooocus: extras/facexlib/utils/face_restoration_helper.py ``FaceRestoreHelper.face_template``
    (the 512 template times ``size / 512``).

    Args:
        size: crop side in pixels, int >= 1.
    Returns:
        float64 ``(5, 2)`` (x, y) pixel coordinates.
    """
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    return FFHQ_TEMPLATE_512 * (int(size) / FACE_SIZE)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation + uniform scale + translation) from ``src`` to ``dst``.

    Solves ``min sum |M @ [x, y, 1] - [x', y']|^2`` over ``M = [[a, -b, tx], [b, a, ty]]`` (no
    reflection, no shear): the model of ``cv2.estimateAffinePartial2D``.
    Fooocus: extras/face_crop.py ``align_warp_face`` (``cv2.estimateAffinePartial2D(landmark,
    face_template, method=cv2.LMEDS)``; equal to this fit when every landmark is an inlier).

    Args:
        src: float ``(N, 2)`` source points (x, y), N >= 2.
        dst: float ``(N, 2)`` target points, same N.
    Returns:
        float64 ``(2, 3)`` matrix mapping ``src`` to ``dst`` (cv2 affine layout).
    Raises:
        ValueError: bad shapes, non-finite values, or all source points coincide (no unique fit).
    """
    s = _points(src, "src")
    d = _points(dst, "dst", s.shape[0])
    n = s.shape[0]
    a = np.zeros((2 * n, 4))
    a[0::2] = np.stack([s[:, 0], -s[:, 1], np.ones(n), np.zeros(n)], axis=1)
    a[1::2] = np.stack([s[:, 1], s[:, 0], np.zeros(n), np.ones(n)], axis=1)
    spread = np.abs(s - s.mean(axis=0)).max()
    if spread <= 1e-9 * max(1.0, np.abs(s).max()):
        raise ValueError("src points all coincide: no similarity transform is defined")
    (pa, pb, tx, ty), *_ = np.linalg.lstsq(a, d.reshape(-1), rcond=None)
    return np.array([[pa, -pb, tx], [pb, pa, ty]], dtype=np.float64)


def _invert_like_cv2(m: np.ndarray) -> np.ndarray:
    """``cv2.invertAffineTransform`` as warpAffine does it internally (same operation order)."""
    m00, m01, m02 = m[0]
    m10, m11, m12 = m[1]
    det = m00 * m11 - m01 * m10
    det = 1.0 / det if det != 0 else 0.0
    a11, a22 = m11 * det, m00 * det
    m00, m01, m10, m11 = a11, m01 * -det, m10 * -det, a22
    b1 = -m00 * m02 - m01 * m12
    b2 = -m10 * m02 - m11 * m12
    return np.array([[m00, m01, b1], [m10, m11, b2]])


def warp_affine(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int],
                border_value: Sequence[int] = FACE_BORDER_RGB) -> np.ndarray:
    """Bilinear affine warp with a constant border, bit-exact with ``cv2.warpAffine`` on uint8.

    Output pixel ``(x, y)`` samples the source at ``inverse(matrix) @ (x, y, 1)``.  As OpenCV: the
    source position is rounded to 1/32 pixel in fixed point, the 4 neighbours are weighted with
    integer weights summing to 2**15, neighbours outside the image take ``border_value``, and the
    sum is rounded (+2**14, >> 15).
    Fooocus: extras/face_crop.py ``align_warp_face`` (``cv2.warpAffine(img, M, (512, 512),
    borderMode=cv2.BORDER_CONSTANT, borderValue=(135, 133, 132))``).

    Args:
        image: uint8 ``H x W x C`` (C >= 1), any values 0..255.
        matrix: float ``(2, 3)`` forward affine matrix (source -> output pixels), invertible.
        size: output ``(width, height)``, ints >= 1 (cv2's order).
        border_value: C ints 0..255, the colour outside the source image.
    Returns:
        uint8 ``height x width x C``.
    """
    if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3
            or min(image.shape) < 1):
        raise ValueError(f"image must be a uint8 HxWxC array, got {_describe(image)}")
    m = np.asarray(matrix, dtype=np.float64) if not isinstance(matrix, str) else np.zeros(0)
    if m.shape != (2, 3) or not np.all(np.isfinite(m)):
        raise ValueError(f"matrix must be a finite 2x3 affine matrix, got {_describe(matrix)}")
    if abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]) < 1e-12:
        raise ValueError(f"matrix must be invertible, got {m.tolist()}")
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1
                   for v in size)):
        raise ValueError(f"size must be (width, height) ints >= 1, got {size!r}")
    c = image.shape[2]
    border = np.asarray(border_value, dtype=np.int64).reshape(-1)
    if border.shape != (c,) or border.min() < 0 or border.max() > 255:
        raise ValueError(f"border_value must be {c} ints in 0..255, got {border_value!r}")
    out_w, out_h = int(size[0]), int(size[1])
    h, w = image.shape[:2]
    inv = _invert_like_cv2(m)

    xs = np.arange(out_w, dtype=np.float64)
    ys = np.arange(out_h, dtype=np.float64)
    adelta = np.rint(inv[0, 0] * xs * _AB_SCALE).astype(np.int64)
    bdelta = np.rint(inv[1, 0] * xs * _AB_SCALE).astype(np.int64)
    x0 = np.rint((inv[0, 1] * ys + inv[0, 2]) * _AB_SCALE).astype(np.int64) + _ROUND_DELTA
    y0 = np.rint((inv[1, 1] * ys + inv[1, 2]) * _AB_SCALE).astype(np.int64) + _ROUND_DELTA
    fx_all = (x0[:, None] + adelta[None, :]) >> (_AB_BITS - _INTER_BITS)
    fy_all = (y0[:, None] + bdelta[None, :]) >> (_AB_BITS - _INTER_BITS)
    sx, ax = fx_all >> _INTER_BITS, fx_all & (_INTER_TAB - 1)
    sy, ay = fy_all >> _INTER_BITS, fy_all & (_INTER_TAB - 1)
    # weights of the 2x2 neighbourhood: (32 - a) * (32 - b) * 32 etc.; they sum to 2**15 exactly
    scale = (1 << _COEF_BITS) // (_INTER_TAB * _INTER_TAB)
    weights = [((_INTER_TAB - ax) * (_INTER_TAB - ay) * scale, 0, 0), (ax * (_INTER_TAB - ay) * scale, 1, 0),
               ((_INTER_TAB - ax) * ay * scale, 0, 1), (ax * ay * scale, 1, 1)]
    src = image.astype(np.int64)
    acc = np.zeros((out_h, out_w, c), dtype=np.int64)
    for wgt, dx, dy in weights:
        px, py = sx + dx, sy + dy
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        vals = src[np.clip(py, 0, h - 1), np.clip(px, 0, w - 1)]
        vals = np.where(inside[..., None], vals, border[None, None, :])
        acc += vals * wgt[..., None]
    out = (acc + (1 << (_COEF_BITS - 1))) >> _COEF_BITS
    return np.clip(out, 0, 255).astype(np.uint8)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE,
               border_value: Sequence[int] = FACE_BORDER_RGB) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face given by 5 landmarks onto the FFHQ template of a ``size x size`` crop.

    Fooocus: extras/face_crop.py ``crop_image`` (after detection): similarity fit of the first face's
    landmarks to the template, then the constant-border bilinear warp.

    Args:
        image: uint8 ``H x W x C`` RGB (C = 3 for Fooocus).
        landmarks: float ``(5, 2)`` (x, y) source pixels: left eye, right eye, nose, left and right
            mouth corner (as they appear in the image).
        size: output side, int >= 1 (Fooocus 512).
        border_value: colour outside the source (default Fooocus's grey, in RGB).
    Returns:
        ``(face, matrix)``: uint8 ``size x size x C`` and the float64 ``(2, 3)`` source -> crop matrix.
    """
    lm = _points(landmarks, "landmarks", 5)
    matrix = estimate_similarity(lm, face_template(size))
    return warp_affine(image, matrix, (int(size), int(size)), border_value), matrix
