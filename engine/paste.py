"""Paste-back of the decoded crop with Fooocus's soft blend (spec §1.9).

Fooocus: modules/inpaint_worker.py ``morphological_open`` (built on ``max_filter_opencv``),
``InpaintWorker.post_process`` and ``InpaintWorker.color_correction``.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from .resize import lanczos_resize

logger = logging.getLogger(__name__)

#: Width of the outward blend ramp: 255 inside, 256 - 8*d for d = 1..31, 0 from d = 32 on.
RAMP = 32


def _check_mask(mask: object, name: str = "mask") -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2 \
            or mask.size == 0:
        raise ValueError(f"{name} must be a non-empty uint8 HxW array, got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}")
    return mask


def soft_blend_mask(mask: np.ndarray) -> np.ndarray:
    """Fooocus's paste-back blend mask, ``clip(256 - 8*d, 0, 255)``.

    Fooocus: modules/inpaint_worker.py ``morphological_open`` (``x = 256 * (mask > 127)``, then
    32 times ``x = max(maxfilter3x3(x) - 8, x)``, clip to uint8).  Its closed form uses ``d``, the
    Chebyshev (chessboard) distance to the nearest pixel ``> 127``; only the pixels within 32 of
    such a pixel are computed (bounding box grown by 32).

    Args:
        mask: uint8 ``H x W`` (grey values allowed; only ``> 127`` counts).
    Returns:
        New uint8 ``H x W``: 255 on the mask, 248, 240, ... outwards, 0 from distance 32 on.
    """
    _check_mask(mask)
    on = mask > 127
    rows = np.flatnonzero(on.any(axis=1))
    out = np.zeros(mask.shape, np.uint8)
    if rows.size == 0:
        return out
    cols = np.flatnonzero(on.any(axis=0))
    H, W = mask.shape
    a, b = max(int(rows[0]) - RAMP, 0), min(int(rows[-1]) + 1 + RAMP, H)
    c, d = max(int(cols[0]) - RAMP, 0), min(int(cols[-1]) + 1 + RAMP, W)
    sub = on[a:b, c:d]
    if sub.all():
        out[a:b, c:d] = 255
        return out
    dist = ndimage.distance_transform_cdt(~sub, metric="chessboard")
    out[a:b, c:d] = np.clip(256 - 8 * dist, 0, 255).astype(np.uint8)
    return out


def _check_image(image: object, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.size == 0:
        raise ValueError(f"{name} must be a non-empty uint8 HxWx3 array, got "
                         f"{getattr(image, 'dtype', type(image).__name__)} "
                         f"{getattr(image, 'shape', '')}")
    return image


def blend(foreground: np.ndarray, background: np.ndarray, soft_mask: np.ndarray) -> np.ndarray:
    """``uint8(clip(fg*w + bg*(1-w), 0, 255))`` with ``w = soft/255``, all in float32, truncating.

    Fooocus: modules/inpaint_worker.py ``InpaintWorker.color_correction``.  Only the ramp pixels
    (``0 < w < 1``) are computed: ``w == 0`` gives ``bg`` and ``w == 1`` gives ``fg`` exactly in float32;
    the per-pixel float32 arithmetic is Fooocus's.

    Args:
        foreground, background: uint8 ``H x W x 3``.
        soft_mask: uint8 ``H x W``.
    Returns:
        New uint8 ``H x W x 3``.
    """
    _check_image(foreground, "foreground")
    _check_image(background, "background")
    _check_mask(soft_mask, "soft_mask")
    if foreground.shape != background.shape or soft_mask.shape != foreground.shape[:2]:
        raise ValueError(f"foreground {foreground.shape}, background {background.shape} and "
                         f"soft_mask {soft_mask.shape} must have the same H x W")
    out = background.copy()
    full = soft_mask == 255
    # w == 1: fg*1 + bg*0 == fg exactly in float32, so those pixels are copied
    np.copyto(out, foreground, where=full[..., None])
    ramp = np.nonzero((soft_mask > 0) & ~full)
    if ramp[0].size:
        fg = foreground[ramp].astype(np.float32)
        bg = background[ramp].astype(np.float32)
        w = soft_mask[ramp][:, None].astype(np.float32) / np.float32(255.0)
        out[ramp] = (fg * w + bg * (np.float32(1.0) - w)).clip(0, 255).astype(np.uint8)
    return out


def paste_back(image: np.ndarray, decoded: np.ndarray, box: tuple[int, int, int, int],
               soft_mask: np.ndarray) -> np.ndarray:
    """Put the decoded crop back into the full image and blend it with the soft mask.

    Fooocus: modules/inpaint_worker.py ``InpaintWorker.post_process`` + ``color_correction``:
    LANCZOS-resize ``decoded`` to the box size ``(d-c) x (b-a)``, paste it into a copy of ``image``
    at ``[a:b, c:d]``, then :func:`blend` that over ``image`` with ``soft_mask``.

    Args:
        image: uint8 ``H x W x 3``, the full (outpaint-padded) image.
        decoded: uint8 ``h x w x 3``, the VAE-decoded crop (any size).
        box: ``(a, b, c, d)`` inside the image.
        soft_mask: uint8 ``H x W`` from :func:`soft_blend_mask`.
    Returns:
        New uint8 ``H x W x 3``.
    """
    _check_image(image, "image")
    _check_image(decoded, "decoded")
    try:
        a, b, c, d = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be (a, b, c, d) ints, got {box!r}") from None
    H, W = image.shape[:2]
    if not (0 <= a < b <= H and 0 <= c < d <= W):
        raise ValueError(f"box must satisfy 0 <= a < b <= {H} and 0 <= c < d <= {W}, got {box!r}")
    content = lanczos_resize(decoded, d - c, b - a)
    fg = image.copy()
    fg[a:b, c:d] = content
    return blend(fg, image, soft_mask)
