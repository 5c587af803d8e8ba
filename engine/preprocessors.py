"""Image-prompt pre-processors: resize rules, PyraCanny, CPDS and the FaceSwap face alignment (spec §8).

Fooocus: extras/preprocessors.py (``centered_canny``, ``centered_canny_color``,
``pyramid_canny_color``, ``norm255``, ``canny_pyramid``, ``cpds``), modules/util.py
(``resize_image``, ``HWC3``) and extras/face_crop.py (5-point alignment to the 512 FFHQ template).

OpenCV is an *optional* dependency of this pack (ComfyUI does not ship it).  It is imported lazily
by :func:`require_cv2`; every function that needs it raises :class:`OpenCVMissing` (an
``ImportError``) naming ``opencv-python-headless`` when it is not installed.  Fooocus pins
``opencv-python-headless==4.10.0.84``; ``cv2.Canny`` and ``cv2.decolor`` are what the oracle
matches bit-exactly.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from PIL import Image

from .masks import hwc3
from .resize import lanczos_resize

logger = logging.getLogger(__name__)

OPENCV_PACKAGE = "opencv-python-headless"
OPENCV_PIN = "opencv-python-headless==4.10.0.84"

#: Pyramid scales of Fooocus's PyraCanny (``pyramid_canny_color``).
PYRAMID_SCALES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

#: FaceSwap: size of the aligned face and the fill colour outside the source image.
FACE_SIZE = 512
FACE_BORDER_VALUE = (132, 133, 135)  # RGB; Fooocus gives (135, 133, 132) to cv2 on a BGR image
#: The 5 facial landmarks (left eye, right eye, nose tip, left and right mouth corner) of the FFHQ
#: face template at 512x512, as (x, y) pixel coordinates.  facexlib ``FaceRestoreHelper``
#: (used by Fooocus extras/face_crop.py with ``face_size=512``).
FACE_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.19360], [256.63416, 314.01935],
     [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)


class OpenCVMissing(ImportError):
    """OpenCV is needed (PyraCanny / CPDS / FaceSwap alignment) but is not installed."""


_CV2: Any = None


def require_cv2() -> Any:
    """Import and return the ``cv2`` module, or raise :class:`OpenCVMissing` naming the package.

    Returns:
        The ``cv2`` module (cached after the first call).
    """
    global _CV2
    if _CV2 is None:
        try:
            import cv2  # noqa: PLC0415 - optional dependency, imported lazily on purpose
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise OpenCVMissing(
                "Fooocus image prompts (PyraCanny, CPDS, FaceSwap) need OpenCV: install "
                f"'{OPENCV_PACKAGE}' into ComfyUI's Python (Fooocus pins {OPENCV_PIN})") from exc
        _CV2 = cv2
    return _CV2


def cv2_available() -> bool:
    """True when ``cv2`` can be imported."""
    try:
        require_cv2()
    except OpenCVMissing:
        return False
    return True


def _describe(x: object) -> str:
    return f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"


def _check_rgb(image: object, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty uint8 HxWx3 array, got {_describe(image)}")
    return image


def _check_size(width: object, height: object) -> tuple[int, int]:
    for n, v in (("width", width), ("height", height)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{n} must be an int >= 1, got {v!r}")
    return int(width), int(height)


def _check_threshold(v: object, name: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return int(v)


# -- resize -------------------------------------------------------------------------------------------
def resize_image(image: np.ndarray, width: int, height: int, resize_mode: int = 1) -> np.ndarray:
    """Resize an image to exactly ``height x width`` with one of three rules (PIL LANCZOS).

    Fooocus: modules/util.py ``resize_image`` (A1111-style).

    - mode 0: stretch to ``width x height``.
    - mode 1: *fill*: scale so the image covers the target (the other side is
      ``src * target // src_other`` in integer maths), then centre-crop.  This is the rule for the
      PyraCanny/CPDS images, with the target being the generation (inpaint working) size.
    - mode 2: *fit*: scale so the image fits inside, centre it, and fill each margin with a PIL
      BICUBIC resize of the zero-thickness edge box of the resized image (a smoothed copy of the
      outermost row/column).

    Args:
        image: uint8 ``H x W x 3``.
        width, height: ints >= 1.
        resize_mode: 0, 1 or 2.
    Returns:
        New uint8 ``height x width x 3``.
    """
    image = _check_rgb(image)
    width, height = _check_size(width, height)
    if isinstance(resize_mode, (bool, np.bool_)) or resize_mode not in (0, 1, 2):
        raise ValueError(f"resize_mode must be 0, 1 or 2, got {resize_mode!r}")
    h, w = image.shape[:2]
    if resize_mode == 0:
        return lanczos_resize(image, width, height)
    ratio = width / height
    src_ratio = w / h
    if resize_mode == 1:
        src_w = width if ratio > src_ratio else w * height // h
        src_h = height if ratio <= src_ratio else h * width // w
        resized = lanczos_resize(image, max(src_w, 1), max(src_h, 1))
        res = np.zeros((height, width, 3), dtype=np.uint8)
        y0, x0 = height // 2 - src_h // 2, width // 2 - src_w // 2
        # paste with clipping (numpy slice-assign of the overlapping part)
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + src_h, height), min(x0 + src_w, width)
        res[ys:ye, xs:xe] = resized[ys - y0:ye - y0, xs - x0:xe - x0]
        return res
    src_w = width if ratio < src_ratio else w * height // h
    src_h = height if ratio >= src_ratio else h * width // w
    resized = lanczos_resize(image, max(src_w, 1), max(src_h, 1))
    res = np.zeros((height, width, 3), dtype=np.uint8)
    y0, x0 = height // 2 - src_h // 2, width // 2 - src_w // 2
    res[y0:y0 + src_h, x0:x0 + src_w] = resized
    pil = Image.fromarray(resized)
    if ratio < src_ratio:
        fill = height // 2 - src_h // 2
        if fill > 0:
            # PIL resize of the zero-height top/bottom edge box (Pillow's default BICUBIC filter)
            res[:fill] = np.asarray(pil.resize((width, fill), box=(0, 0, width, 0),
                                               resample=Image.BICUBIC))
            res[fill + src_h:] = np.asarray(pil.resize((width, fill), box=(0, src_h, width, src_h),
                                                       resample=Image.BICUBIC))
    elif ratio > src_ratio:
        fill = width // 2 - src_w // 2
        if fill > 0:
            res[:, :fill] = np.asarray(pil.resize((fill, height), box=(0, 0, 0, height),
                                                  resample=Image.BICUBIC))
            res[:, fill + src_w:] = np.asarray(pil.resize((fill, height), box=(src_w, 0, src_w, height),
                                                          resample=Image.BICUBIC))
    return res


def controlnet_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``resize_image(HWC3(image), width, height, mode 1)``: a PyraCanny/CPDS input at the generation size.

    Fooocus: modules/async_worker.py ``apply_control_nets`` (the first step for both ControlNets;
    for inpaint the size is the inpaint working crop size).

    Args:
        image: uint8 ``H x W``, ``H x W x 1/3/4``.
        width, height: the generation (working) size.
    Returns:
        uint8 ``height x width x 3``.
    """
    return resize_image(hwc3(image), width, height, 1)


def clip_vision_image(image: np.ndarray, size: int = 224) -> np.ndarray:
    """``resize_image(HWC3(image), 224, 224, mode 0)``: the stretched IP-Adapter input.

    Fooocus: extras/ip_adapter.py ``preprocess`` (before the CLIP mean/std normalisation).

    Returns:
        uint8 ``size x size x 3``.
    """
    return resize_image(hwc3(image), size, size, 0)


# -- norm255 / PyraCanny / CPDS -----------------------------------------------------------------------
def norm255(x: np.ndarray, low: float = 4, high: float = 96) -> np.ndarray:
    """Percentile normalisation ``(x - p_low) / (p_high - p_low) * 255`` (not clipped).

    Fooocus: extras/preprocessors.py ``norm255`` (which also modifies its argument in place; this
    version does not).  Percentiles are numpy's default linear interpolation, in float64;
    the subtraction and division are float32 (numpy 1.x casting, bit-exact with the oracle).

    Args:
        x: float32 ``H x W``.
        low, high: percentiles in [0, 100].
    Returns:
        New float32 ``H x W``; the callers clip to [0, 255] and cast to uint8.  A constant input
        (``p_high == p_low``) gives NaN/inf, without a warning.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2 or x.size == 0:
        raise ValueError(f"x must be a non-empty float32 HxW array, got {_describe(x)}")
    for n, v in (("low", low), ("high", high)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not 0 <= v <= 100:
            raise ValueError(f"{n} must be a percentile in [0, 100], got {v!r}")
    # Fooocus ran numpy 1.26: float64 percentiles, and legacy value-based casting turned the float64
    # scalars into float32 before the in-place float32 ops (numpy 2 would compute in float64)
    v_min = np.percentile(x.astype(np.float64), low)
    v_max = np.percentile(x.astype(np.float64), high)
    y = x.copy()
    with np.errstate(divide="ignore", invalid="ignore"):  # a flat input gives 0/0 (NaN) as in Fooocus
        y -= np.float32(v_min)
        y /= np.float32(v_max - v_min)
        return y * np.float32(255.0)


def _to_u8(x: np.ndarray) -> np.ndarray:
    """``clip(0, 255).astype(uint8)``; NaN (flat inputs) becomes 0, what the cast gives on x86."""
    return np.nan_to_num(x, nan=0.0).clip(0, 255).astype(np.uint8)


def centered_canny_color(image: np.ndarray, low: int, high: int) -> np.ndarray:
    """Per-channel ``cv2.Canny(low, high) / 255``.

    Fooocus: extras/preprocessors.py ``centered_canny_color`` / ``centered_canny``.

    Args:
        image: uint8 ``H x W x 3``.
    Returns:
        float32 ``H x W x 3`` with values 0 or 1.
    """
    cv2 = require_cv2()
    image = _check_rgb(image)
    low, high = _check_threshold(low, "low"), _check_threshold(high, "high")
    chans = [cv2.Canny(np.ascontiguousarray(image[:, :, c]), low, high).astype(np.float32) / 255.0
             for c in range(3)]
    return np.stack(chans, axis=2)


def pyramid_canny_color(image: np.ndarray, low: int = 64, high: int = 128) -> np.ndarray:
    """Multi-scale colour Canny accumulated coarse to fine.

    Fooocus: extras/preprocessors.py ``pyramid_canny_color``.  For k in 0.2, 0.3, ..., 1.0 the image is
    shrunk with ``INTER_AREA`` to ``(int(W*k), int(H*k))``, edges are taken per channel, and the
    accumulator is resized (``INTER_LINEAR``) to that level and blended ``acc*0.75 + edge*0.25``
    (the first level starts the accumulator).

    Args:
        image: uint8 ``H x W x 3``; ``low``/``high``: Canny thresholds.
    Returns:
        float32 ``H x W x 3``.
    """
    cv2 = require_cv2()
    image = _check_rgb(image)
    h, w = image.shape[:2]
    acc: np.ndarray | None = None
    for k in PYRAMID_SCALES:
        hs, ws = int(h * k), int(w * k)
        if hs < 1 or ws < 1:
            raise ValueError(f"image {h}x{w} is too small for the Canny pyramid (level {k} is {hs}x{ws})")
        small = cv2.resize(image, (ws, hs), interpolation=cv2.INTER_AREA)
        edge = centered_canny_color(small, low, high)
        if acc is None:
            acc = edge
        else:
            acc = cv2.resize(acc, (edge.shape[1], edge.shape[0]), interpolation=cv2.INTER_LINEAR)
            acc = acc * 0.75 + edge * 0.25
    assert acc is not None
    return acc


def canny_pyramid(image: np.ndarray, low: int = 64, high: int = 128) -> np.ndarray:
    """The PyraCanny ControlNet hint: channel sum of :func:`pyramid_canny_color`, ``norm255(1, 99)``.

    Fooocus: extras/preprocessors.py ``canny_pyramid`` (UI defaults low 64, high 128).

    Args:
        image: uint8 ``H x W x 3`` (already at the generation size).
    Returns:
        uint8 ``H x W``.
    """
    color = pyramid_canny_color(image, low, high)
    result = np.sum(color, axis=2)
    return _to_u8(norm255(result, low=1, high=99))


def cpds(image: np.ndarray) -> np.ndarray:
    """The CPDS ControlNet hint: decolourised density plus the colour distance to the boost image.

    Fooocus: extras/preprocessors.py ``cpds``.  ``raw = GaussianBlur(image, sigma 0.8)``,
    ``(density, boost) = cv2.decolor(raw)``, ``density + ||raw - boost||_2`` over channels (float32),
    then ``norm255(4, 96)``, clip, uint8.

    Args:
        image: uint8 ``H x W x 3``.
    Returns:
        uint8 ``H x W``.
    """
    cv2 = require_cv2()
    image = _check_rgb(image)
    raw = cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0), 0.8)
    density, boost = cv2.decolor(raw)
    raw_f = raw.astype(np.float32)
    density_f = density.astype(np.float32)
    boost_f = boost.astype(np.float32)
    offset = np.sum((raw_f - boost_f) ** 2.0, axis=2) ** 0.5
    result = density_f + offset
    return _to_u8(norm255(result, low=4, high=96))


def hint_to_rgb(hint: np.ndarray) -> np.ndarray:
    """A single-channel uint8 hint as ``H x W x 3`` (what the ControlNet receives).

    Fooocus: modules/async_worker.py ``apply_control_nets`` (``HWC3`` of the preprocessor output).
    """
    if not isinstance(hint, np.ndarray) or hint.dtype != np.uint8 or hint.ndim != 2:
        raise ValueError(f"hint must be a uint8 HxW array, got {_describe(hint)}")
    return hwc3(hint)


# -- FaceSwap alignment -------------------------------------------------------------------------------
def _check_landmarks(landmarks: object) -> np.ndarray:
    arr = np.asarray(landmarks, dtype=np.float32) if not isinstance(landmarks, np.ndarray) \
        else landmarks.astype(np.float32)
    if arr.shape != (5, 2) or not np.all(np.isfinite(arr)):
        raise ValueError(f"landmarks must be 5 finite (x, y) points, shape (5, 2), got {_describe(landmarks)}")
    return arr


def face_alignment_matrix(landmarks: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
    """Similarity transform (rotation, uniform scale, translation) mapping 5 landmarks to the template.

    Fooocus: extras/face_crop.py via facexlib ``align_warp_face``:
    ``cv2.estimateAffinePartial2D(landmarks, template, method=cv2.LMEDS)``.

    Args:
        landmarks: float ``(5, 2)`` (x, y) in source pixels: eyes, nose, mouth corners.
        template: float ``(5, 2)``; default :data:`FACE_TEMPLATE_512`.
    Returns:
        float64 ``2 x 3`` affine matrix.
    """
    cv2 = require_cv2()
    src = _check_landmarks(landmarks)
    dst = FACE_TEMPLATE_512 if template is None else _check_landmarks(template)
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("landmarks are degenerate: no similarity transform to the face template")
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Warp the face given by 5 landmarks to the aligned ``size x size`` FaceSwap crop.

    Fooocus: extras/face_crop.py ``crop_image`` (facexlib ``align_warp_face``): the LMEDS similarity to
    the FFHQ template, ``cv2.warpAffine`` (bilinear) with a constant border of colour
    :data:`FACE_BORDER_VALUE`.

    Args:
        image: uint8 ``H x W x 3``.
        landmarks: ``(5, 2)`` float (x, y) in image pixels.
        size: output side; the template is scaled by ``size/512``.
    Returns:
        uint8 ``size x size x 3``.
    """
    cv2 = require_cv2()
    image = _check_rgb(image)
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    template = FACE_TEMPLATE_512 * (size / FACE_SIZE)
    matrix = face_alignment_matrix(landmarks, template.astype(np.float32))
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (int(size), int(size)),
                          borderMode=cv2.BORDER_CONSTANT, borderValue=FACE_BORDER_VALUE)
