"""SDXL working size of the inpaint crop and PIL LANCZOS resampling (spec §1.3).

Fooocus: modules/util.py ``get_shape_ceil``, ``get_image_shape_ceil``, ``set_image_shape_ceil``
and ``resample_image``.
"""
from __future__ import annotations

import logging
import math

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)


def _check_hw(h: object, w: object) -> tuple[int, int]:
    if isinstance(h, (bool, np.bool_)) or isinstance(w, (bool, np.bool_)) \
            or not isinstance(h, (int, np.integer)) or not isinstance(w, (int, np.integer)) \
            or h < 1 or w < 1:
        raise ValueError(f"h and w must be ints >= 1, got {h!r}, {w!r}")
    return int(h), int(w)


def shape_ceil(h: int, w: int) -> float:
    """``ceil(sqrt(h*w) / 64) * 64`` as a float (e.g. ``1024.0``).

    Fooocus: modules/util.py ``get_shape_ceil`` (and ``get_image_shape_ceil`` on an image's h, w).
    """
    h, w = _check_hw(h, w)
    return math.ceil(math.sqrt(h * w) / 64.0) * 64.0


def working_size(h: int, w: int, target: int = 1024) -> tuple[int, int, bool]:
    """Size Fooocus resizes an inpaint crop to, and whether it resizes at all.

    Fooocus: modules/util.py ``set_image_shape_ceil(im, target)``: up to 256 times, stop when
    ``|shape_ceil(H, W) - target| < 0.1``, else ``k = target / shape_ceil`` and
    ``H = round(H*k/64)*64``, ``W = round(W*k/64)*64`` (Python round: half to even).  If that leaves
    ``(H, W)`` equal to the input the image is returned as is (no resize, possibly not a multiple
    of 64; e.g. 768x1331 stays), otherwise it is LANCZOS-resized once to ``(W, H)``.

    Args:
        h, w: input size, ints >= 1.
        target: int >= 64.
    Returns:
        ``(H, W, resized)``.
    Raises:
        ValueError: bad arguments, or a size that rounds to 0 (Fooocus would fail too).
    """
    h, w = _check_hw(h, w)
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer)) \
            or target < 64:
        raise ValueError(f"target must be an int >= 64, got {target!r}")
    H, W = h, w
    for _ in range(256):
        ceil = shape_ceil(H, W)
        if abs(ceil - target) < 0.1:
            break
        k = target / ceil
        H = int(round(H * k / 64.0)) * 64
        W = int(round(W * k / 64.0)) * 64
        if H < 1 or W < 1:
            raise ValueError(f"working_size: {h}x{w} rounds to an empty size {H}x{W}")
    return H, W, (H, W) != (h, w)


def lanczos_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL LANCZOS resize of a uint8 image to ``width x height``.

    Fooocus: modules/util.py ``resample_image``.  Same size returns an equal copy (PIL does).

    Args:
        image: uint8 ``H x W`` or ``H x W x 3``.
        width, height: ints >= 1.
    Returns:
        New uint8 array ``height x width`` (``x 3``).
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0 \
            or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must be a non-empty uint8 HxW or HxWx3 array, got "
                         f"{getattr(image, 'dtype', type(image).__name__)} "
                         f"{getattr(image, 'shape', '')}")
    width, height = _check_hw(width, height)
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize((width, height), resample=Image.LANCZOS)).copy()


def resize_to_working_size(image: np.ndarray, target: int = 1024) -> tuple[np.ndarray, bool]:
    """``set_image_shape_ceil(image, target)``: the image at its working size.

    Fooocus: modules/util.py ``set_image_shape_ceil``.  Returns ``(image_or_resized, resized)``;
    when nothing changes the input object itself is returned, like Fooocus.
    """
    if not isinstance(image, np.ndarray) or image.ndim < 2:
        raise ValueError(f"image must be a uint8 HxW or HxWx3 array, got {type(image).__name__}")
    H, W, resized = working_size(image.shape[0], image.shape[1], target)
    if not resized:
        return image, False
    return lanczos_resize(image, W, H), True
