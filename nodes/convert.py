"""Conversions between ComfyUI's float tensors and the uint8 arrays Fooocus's pixel stages use."""
from __future__ import annotations

import numpy as np
import torch


def image_to_u8(image: torch.Tensor, index: int = 0) -> np.ndarray:
    """ComfyUI IMAGE ``[B,H,W,C]`` float in [0,1] → ``H x W x C`` uint8 (rounded; exact for images
    that came from 8-bit files). RGBA is kept as 4 channels for the engine to composite."""
    if image.ndim != 4:
        raise ValueError(f"image: expected an IMAGE tensor [B,H,W,C], got shape {tuple(image.shape)}")
    x = image[index].detach().to("cpu", torch.float32)
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def mask_to_u8(mask: torch.Tensor, index: int = 0) -> np.ndarray:
    """ComfyUI MASK ``[B,H,W]`` (or ``[H,W]``) float in [0,1] → ``H x W`` uint8 0..255 (rounded)."""
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f"mask: expected a MASK tensor [B,H,W], got shape {tuple(mask.shape)}")
    x = mask[min(index, mask.shape[0] - 1)].detach().to("cpu", torch.float32)
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def u8_to_image(arr: np.ndarray) -> torch.Tensor:
    """``H x W x 3`` uint8 → IMAGE ``[1,H,W,3]`` float32 in [0,1]."""
    return torch.tensor(arr, dtype=torch.float32).div_(255.0)[None]


def u8_to_mask(arr: np.ndarray) -> torch.Tensor:
    """``H x W`` uint8 → MASK ``[1,H,W]`` float32 in [0,1]."""
    return torch.tensor(arr, dtype=torch.float32).div_(255.0)[None]


def decoded_to_u8(decoded: torch.Tensor) -> np.ndarray:
    """VAE output ``[1,H,W,3]`` float → uint8 by ``clip(255*x)`` then truncation (Fooocus
    ``pytorch_to_numpy``: ``np.clip(255. * y, 0, 255).astype(np.uint8)``)."""
    y = decoded[0].detach().to("cpu", torch.float32).numpy()
    return np.clip(255.0 * y, 0, 255).astype(np.uint8)


def fit_mask(mask_u8: np.ndarray, height: int, width: int, node: str) -> np.ndarray:
    """Return the mask at ``height x width``: unchanged when it already is, else LANCZOS-resized (what
    Fooocus does with an uploaded mask of another size), with a warning naming the node."""
    if mask_u8.shape == (height, width):
        return mask_u8
    import logging

    from ..engine.resize import lanczos_resize

    logging.getLogger(__name__).warning("%s: mask %dx%d resized to the image size %dx%d (LANCZOS)", node,
                                        mask_u8.shape[1], mask_u8.shape[0], width, height)
    return lanczos_resize(np.ascontiguousarray(mask_u8), width, height)
