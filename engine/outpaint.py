"""Outpaint padding (spec §2).

Fooocus: modules/async_worker.py ``apply_outpaint`` (2.5.x); the optional per-side pixel
distances are the Fooocus-API ``outpaint_distance_{left,top,right,bottom}`` extension.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np

logger = logging.getLogger(__name__)

DIRECTIONS = ("top", "bottom", "left", "right")


def _parse_directions(directions: Iterable[str]) -> set[str]:
    if isinstance(directions, str):
        directions = [directions]
    try:
        items = list(directions)
    except TypeError:
        raise ValueError(f"directions must be an iterable of strings, got {directions!r}") from None
    out = set()
    for d in items:
        if not isinstance(d, str) or d.strip().lower() not in DIRECTIONS:
            raise ValueError(f"directions must be among {DIRECTIONS} (any case), got {d!r}")
        out.add(d.strip().lower())
    return out


def _parse_distances(distances: Mapping[str, int] | None) -> dict[str, int]:
    if distances is None:
        return {}
    if not isinstance(distances, Mapping):
        raise ValueError(f"distances must be a dict side -> pixels, got {distances!r}")
    out = {}
    for key, val in distances.items():
        side = key.strip().lower() if isinstance(key, str) else key
        if side not in DIRECTIONS:
            raise ValueError(f"distances keys must be among {DIRECTIONS}, got {key!r}")
        if isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, np.integer)) or val < 0:
            raise ValueError(f"distances[{key!r}] must be an int >= 0, got {val!r}")
        out[side] = int(val)
    return out


def outpaint_pad(image: np.ndarray, mask: np.ndarray | None, directions: Iterable[str],
                 distances: Mapping[str, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pad the image (edge replication) and the mask (255 = repaint) for outpainting.

    Fooocus: modules/async_worker.py ``apply_outpaint``.  Order top, bottom, left, right.  The
    default amount is ``int(H * 0.3)`` rows for top/bottom (H = original height) and
    ``int(W * 0.3)`` columns for left/right, W measured after the vertical padding (= original
    width).  A ``distances[side] > 0`` (Fooocus-API) replaces the default for that side; 0 keeps
    the default.

    Args:
        image: uint8 ``H x W x 3``.
        mask: uint8 ``H x W`` or ``None`` (= all zeros).
        directions: iterable of "top", "bottom", "left", "right" (case-insensitive; duplicates
            are ignored; empty = no padding).
        distances: optional ``{side: pixels}`` with ints >= 0.
    Returns:
        ``(image, mask)`` new arrays, uint8 ``H' x W' x 3`` and ``H' x W'``.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.size == 0:
        raise ValueError(f"image must be a non-empty uint8 HxWx3 array, got "
                         f"{getattr(image, 'dtype', type(image).__name__)} "
                         f"{getattr(image, 'shape', '')}")
    if mask is None:
        mask = np.zeros(image.shape[:2], np.uint8)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be None or a uint8 array of shape {image.shape[:2]}, got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}")
    sides = _parse_directions(directions)
    dist = _parse_distances(distances)
    img, msk = image.copy(), mask.copy()
    h0, w0 = image.shape[:2]  # vertical padding adds rows only, so w0 is also the width after it
    for side in DIRECTIONS:
        if side not in sides:
            continue
        default = int(h0 * 0.3) if side in ("top", "bottom") else int(w0 * 0.3)
        n = dist.get(side, 0) or default
        if n <= 0:
            continue
        before, after = (n, 0) if side in ("top", "left") else (0, n)
        if side in ("top", "bottom"):
            pad_i, pad_m = ((before, after), (0, 0), (0, 0)), ((before, after), (0, 0))
        else:
            pad_i, pad_m = ((0, 0), (before, after), (0, 0)), ((0, 0), (before, after))
        img = np.pad(img, pad_i, mode="edge")
        msk = np.pad(msk, pad_m, mode="constant", constant_values=255)
    return img, msk
