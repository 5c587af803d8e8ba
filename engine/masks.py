"""Image/mask pre-processing of a Fooocus inpaint request (spec §1.1).

Fooocus: modules/util.py ``HWC3`` and ``erode_or_dilate``; modules/async_worker.py
``apply_image_input`` (advanced-masking upload, erode/dilate, invert).

Masks are uint8 ``H x W`` with 0 = keep and 255 = repaint (grey values allowed).  ComfyUI masks are
float ``[B, H, W]`` in [0, 1]; :func:`comfy_mask_to_u8` / :func:`u8_to_comfy_mask` convert.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

logger = logging.getLogger(__name__)

MAX_ERODE_DILATE = 64


def _describe(x: object) -> str:
    return f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"


def _check_mask(mask: object, name: str = "mask") -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2 \
            or mask.size == 0:
        raise ValueError(f"{name} must be a non-empty uint8 HxW array, got {_describe(mask)}")
    return mask


def hwc3(image: np.ndarray) -> np.ndarray:
    """Any uint8 image to ``H x W x 3`` RGB.

    Fooocus: modules/util.py ``HWC3``.  ``H x W`` and ``H x W x 1`` are repeated to 3 channels,
    ``H x W x 3`` is returned as is (same object), ``H x W x 4`` is composited over white in
    float32 (``rgb*a + 255*(1-a)``, ``a = alpha/255``), clipped and truncated with ``astype``.

    Args:
        image: uint8 ``H x W``, ``H x W x 1``, ``H x W x 3`` or ``H x W x 4``.
    Returns:
        uint8 ``H x W x 3``.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 array, got {_describe(image)}")
    x = image[:, :, None] if image.ndim == 2 else image
    if x.ndim != 3 or x.shape[2] not in (1, 3, 4):
        raise ValueError(f"image must be HxW or HxWxC with C in (1, 3, 4), got {_describe(image)}")
    channels = x.shape[2]
    if channels == 3:
        return x
    if channels == 1:
        return np.concatenate([x, x, x], axis=2)
    color = x[:, :, 0:3].astype(np.float32)
    alpha = x[:, :, 3:4].astype(np.float32) / 255.0
    y = color * alpha + 255.0 * (1.0 - alpha)
    return y.clip(0, 255).astype(np.uint8)


def erode_or_dilate(mask: np.ndarray, k: int) -> np.ndarray:
    """Grow (``k > 0``) or shrink (``k < 0``) a mask by ``|k|`` pixels.

    Fooocus: modules/util.py ``erode_or_dilate``: ``cv2.dilate``/``cv2.erode`` with a 3x3 all-ones
    kernel applied ``|k|`` times, default border (pixels outside the image never win).  That equals
    one ``(2|k|+1)``-square max/min filter with edge replication, which is what runs here.

    Args:
        mask: uint8 ``H x W`` (grey values are filtered as values, not thresholded).
        k: int in [-64, 64]; 0 returns a copy.
    Returns:
        New uint8 ``H x W``.
    """
    _check_mask(mask)
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) \
            or not -MAX_ERODE_DILATE <= k <= MAX_ERODE_DILATE:
        raise ValueError(f"erode_or_dilate must be an int in [-64, 64], got {k!r}")
    k = int(k)
    if k == 0:
        return mask.copy()
    size = 2 * abs(k) + 1
    if k > 0:
        return ndimage.maximum_filter(mask, size=size, mode="nearest")
    return ndimage.minimum_filter(mask, size=size, mode="nearest")


def threshold_upload_mask(upload: np.ndarray, height: int, width: int) -> np.ndarray:
    """Binarise an uploaded mask for the advanced-masking path.

    Fooocus: modules/async_worker.py ``apply_image_input`` (inpaint_advanced_masking_checkbox):
    the upload (already ``max(image, mask)`` of the upload dict, done by the caller) is made RGB
    (:func:`hwc3`), LANCZOS-resampled to ``width x height``, averaged over the 3 channels and
    thresholded ``> 127``.  Combine it with the sketch mask with ``np.maximum``.

    Args:
        upload: uint8 ``h x w`` or ``h x w x C`` (C in 1, 3, 4).
        height, width: target size (the inpaint image's), ints >= 1.
    Returns:
        uint8 ``height x width`` with values {0, 255}.
    """
    if not isinstance(height, (int, np.integer)) or not isinstance(width, (int, np.integer)) \
            or height < 1 or width < 1:
        raise ValueError(f"height and width must be ints >= 1, got {height!r}, {width!r}")
    from .resize import lanczos_resize

    rgb = lanczos_resize(hwc3(upload), int(width), int(height))
    return np.where(rgb.mean(axis=2) > 127, 255, 0).astype(np.uint8)


def prepare_mask(mask: np.ndarray, erode_or_dilate: int = 0, invert: bool = False) -> np.ndarray:
    """Erode/dilate then optionally invert a uint8 mask, in Fooocus's order (spec §1.1 steps 2-3).

    Fooocus: modules/async_worker.py ``apply_image_input``: ``erode_or_dilate`` first, then
    ``255 - mask`` when ``invert_mask_checkbox``; so dilation grows the white area before the
    inversion.  Nothing is thresholded here.

    Args:
        mask: uint8 ``H x W``.
        erode_or_dilate: int in [-64, 64].
        invert: bool.
    Returns:
        New uint8 ``H x W``.
    """
    if not isinstance(invert, (bool, np.bool_)):
        raise ValueError(f"invert must be a bool, got {invert!r}")
    out = _erode_or_dilate(mask, erode_or_dilate)
    if invert:
        np.subtract(255, out, out=out)
    return out


_erode_or_dilate = erode_or_dilate


def comfy_mask_to_u8(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """ComfyUI float mask to uint8 ``0..255`` by ROUNDING ``clip(m, 0, 1) * 255``.

    Rounding (not Fooocus's usual truncation) makes ``u8 -> float -> u8`` an exact round trip,
    since ComfyUI masks normally come from ``u8 / 255``.

    Args:
        mask: float tensor/array ``[H, W]`` or ``[B, H, W]`` in [0, 1] (values outside are clipped).
    Returns:
        uint8 array of the same shape.
    """
    if isinstance(mask, torch.Tensor):
        arr = mask.detach().to("cpu", torch.float32).numpy()
    elif isinstance(mask, np.ndarray):
        arr = mask
    else:
        raise ValueError(f"mask must be a torch.Tensor or numpy array, got {type(mask).__name__}")
    if arr.ndim not in (2, 3) or arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"mask must be a non-empty float [H,W] or [B,H,W], got {_describe(arr)}")
    return np.rint(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def u8_to_comfy_mask(mask: np.ndarray) -> torch.Tensor:
    """uint8 mask ``[H, W]`` or ``[B, H, W]`` to a ComfyUI float32 mask ``[B, H, W]`` = ``m / 255``.

    A 2-D input gets a batch dimension of 1.
    """
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim not in (2, 3):
        raise ValueError(f"mask must be a uint8 [H,W] or [B,H,W] array, got {_describe(mask)}")
    t = torch.from_numpy(np.ascontiguousarray(mask)).to(torch.float32) / 255.0
    return t[None] if t.ndim == 2 else t
