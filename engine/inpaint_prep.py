"""Pixel side of Fooocus's ``InpaintWorker``: crop, working size, fill, soft mask, paste-back, plus
the latent mask and the masked pixels of the inpaint head (spec §1.2-§1.6, §1.9).

Fooocus: modules/inpaint_worker.py ``InpaintWorker.__init__`` / ``post_process``;
modules/core.py ``encode_vae_inpaint`` (mask part).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .crop import Box, initial_box, solve_box
from .fill import fooocus_fill
from .paste import paste_back, soft_blend_mask
from .resize import lanczos_resize, shape_ceil, working_size

logger = logging.getLogger(__name__)

#: Working-size target of SDXL (``set_image_shape_ceil(..., 1024)``).
TARGET = 1024

Upscaler = Callable[[np.ndarray], np.ndarray]


@dataclass
class InpaintPrep:
    """Everything the rest of the pipeline and :func:`finish_inpaint` need.

    Attributes:
        image: uint8 ``H x W x 3``, the full (padded) image the crop comes from.
        mask: uint8 ``H x W``, the full mask as given.
        box: ``(a, b, c, d)`` crop box (Fooocus ``interested_area``).
        upscaler_called: whether the crop went through ``upscale`` (shape ceil < 1024).
        interested_image: uint8 ``h x w x 3`` crop at the working size.
        interested_fill: uint8 ``h x w x 3`` ``fooocus_fill`` result, or a copy of
            ``interested_image`` when ``use_fill`` is false.
        interested_mask: uint8 ``h x w`` in {0, 255}.
        soft_mask: uint8 ``H x W`` paste-back blend mask.
    """

    image: np.ndarray
    mask: np.ndarray
    box: Box
    upscaler_called: bool
    interested_image: np.ndarray
    interested_fill: np.ndarray
    interested_mask: np.ndarray
    soft_mask: np.ndarray

    @property
    def working_hw(self) -> tuple[int, int]:
        """``(h, w)`` of the working-size crop."""
        return self.interested_image.shape[0], self.interested_image.shape[1]


def _check_u8(x: object, name: str, ndim: int) -> np.ndarray:
    ok = isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == ndim and x.size > 0
    if ok and ndim == 3:
        ok = x.shape[2] == 3
    if not ok:
        want = "HxWx3" if ndim == 3 else "HxW"
        raise ValueError(f"{name} must be a non-empty uint8 {want} array, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    return x  # type: ignore[return-value]


def prepare_inpaint(image: np.ndarray, mask: np.ndarray, k: float, use_fill: bool,
                    upscale: Upscaler | None = None) -> InpaintPrep:
    """Reproduce ``InpaintWorker.__init__``.

    Fooocus: modules/inpaint_worker.py ``InpaintWorker.__init__``:
    box = ``solve_abcd(compute_initial_abcd(mask > 0), k)``; crop the image; when the crop's
    shape ceil is below 1024 call ``upscale`` (Fooocus: ESRGAN ``perform_upscale``); resize to the
    working size (``set_image_shape_ceil(…, 1024)``, LANCZOS); ``interested_mask`` =
    ``255 * (LANCZOS(mask crop, w, h) > 127)``; ``fooocus_fill`` when ``use_fill``; soft mask of
    the full mask.

    Args:
        image: uint8 ``H x W x 3`` (already HWC3 and outpaint-padded).
        mask: uint8 ``H x W`` with at least one non-zero pixel.
        k: respective field in [0, 1].
        use_fill: Fooocus passes ``strength > 0.99``.
        upscale: ``f(uint8 h x w x 3) -> uint8 h' x w' x 3``; ``None`` = identity (what the oracle
            fixtures used; real Fooocus upscales 4x with its ESRGAN).
    Returns:
        :class:`InpaintPrep`.
    """
    _check_u8(image, "image", 3)
    _check_u8(mask, "mask", 2)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} must equal image H x W {image.shape[:2]}")
    if not isinstance(use_fill, (bool, np.bool_)):
        raise ValueError(f"use_fill must be a bool, got {use_fill!r}")
    if upscale is not None and not callable(upscale):
        raise ValueError(f"upscale must be callable or None, got {upscale!r}")
    init = initial_box(mask)
    if init is None:
        raise ValueError("mask must have at least one non-zero pixel (Fooocus skips inpainting "
                         "for an empty mask)")
    a, b, c, d = solve_box(mask.shape, init, k)
    crop = image[a:b, c:d]
    upscaled = False
    if shape_ceil(b - a, d - c) < TARGET:
        upscaled = True
        if upscale is not None:
            crop = _check_u8(upscale(np.ascontiguousarray(crop)), "upscale() result", 3)
    h, w, resized = working_size(crop.shape[0], crop.shape[1], TARGET)
    interested_image = lanczos_resize(crop, w, h) if resized else np.ascontiguousarray(crop).copy()
    mask_crop = lanczos_resize(np.ascontiguousarray(mask[a:b, c:d]), w, h)
    interested_mask = np.where(mask_crop > 127, 255, 0).astype(np.uint8)
    if use_fill:
        interested_fill = fooocus_fill(interested_image, interested_mask)
    else:
        interested_fill = interested_image.copy()
    return InpaintPrep(
        image=image, mask=mask, box=(a, b, c, d), upscaler_called=upscaled,
        interested_image=interested_image, interested_fill=interested_fill,
        interested_mask=interested_mask, soft_mask=soft_blend_mask(mask))


def finish_inpaint(prep: InpaintPrep, decoded: np.ndarray) -> np.ndarray:
    """Paste the decoded crop back into the full image.

    Fooocus: modules/inpaint_worker.py ``InpaintWorker.post_process`` (+ ``color_correction``).

    Args:
        prep: from :func:`prepare_inpaint`.
        decoded: uint8 ``h' x w' x 3`` (VAE output, latent size x 8; resized to the box anyway).
    Returns:
        uint8 ``H x W x 3``.
    """
    if not isinstance(prep, InpaintPrep):
        raise ValueError(f"prep must be an InpaintPrep, got {type(prep).__name__}")
    return paste_back(prep.image, decoded, prep.box, prep.soft_mask)


def latent_mask(mask: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """Pixel mask to the latent mask of the inpaint head / blending.

    Fooocus: modules/core.py ``encode_vae_inpaint``: bilinear resize to ``(8h, 8w)``
    (``align_corners=False``), round, 8x8 max-pool, round.  A latent cell is 1 if any of its 8x8
    pixels rounds to 1.

    Args:
        mask: float tensor ``[B, H, W]`` or ``[B, 1, H, W]`` in [0, 1].
        latent_hw: ``(h, w)`` of the latent.
    Returns:
        Tensor ``[B, 1, h, w]`` in {0, 1}, same dtype/device as ``mask``.
    """
    if not isinstance(mask, torch.Tensor) or not mask.is_floating_point() \
            or mask.ndim not in (3, 4) or (mask.ndim == 4 and mask.shape[1] != 1):
        raise ValueError(f"mask must be a float tensor [B,H,W] or [B,1,H,W], got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} "
                         f"{tuple(getattr(mask, 'shape', ()))}")
    try:
        h, w = (int(v) for v in latent_hw)
    except (TypeError, ValueError):
        raise ValueError(f"latent_hw must be (h, w) ints >= 1, got {latent_hw!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"latent_hw must be (h, w) ints >= 1, got {latent_hw!r}")
    m = mask[:, None] if mask.ndim == 3 else mask
    m = F.interpolate(m, size=(h * 8, w * 8), mode="bilinear", align_corners=False).round()
    return F.max_pool2d(m, (8, 8)).round()


def masked_pixels_for_head(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pixels the inpaint head's latent is encoded from: masked area set to mid-grey 0.5.

    Fooocus: modules/core.py ``encode_vae_inpaint``: ``w = round(mask)``,
    ``pixels * (1 - w) + 0.5 * w``.

    Args:
        pixels: float ``[B, H, W, 3]`` in [0, 1].
        mask: float ``[B, H, W]`` or ``[B, 1, H, W]`` in [0, 1], same B, H, W.
    Returns:
        float ``[B, H, W, 3]``.
    """
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"pixels must be a tensor [B,H,W,3], got "
                         f"{tuple(getattr(pixels, 'shape', ()))}")
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (3, 4) \
            or (mask.ndim == 4 and mask.shape[1] != 1):
        raise ValueError(f"mask must be a tensor [B,H,W] or [B,1,H,W], got "
                         f"{tuple(getattr(mask, 'shape', ()))}")
    m = mask[:, 0] if mask.ndim == 4 else mask
    if m.shape != pixels.shape[:3]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match pixels {tuple(pixels.shape)}")
    w = m.round()[..., None]
    return pixels * (1 - w) + 0.5 * w
