"""Inpaint crop box ("respective field", spec §1.2).

Fooocus: modules/inpaint_worker.py ``compute_initial_abcd``, ``solve_abcd`` and ``regulate_abcd``.
A box is ``(a, b, c, d)``: rows ``a:b`` and columns ``c:d``, half-open.

``solve_abcd`` grows the box one pixel per side per loop iteration (O(image size) Python
iterations).  :func:`solve_box` gives the identical result with a phase-skipping loop: while the
grow decision does not change, many iterations are applied at once (each predicate the decision
depends on is monotone within a phase, so the phase length is found by bisection).
"""
from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]


def _check_shape(shape: object) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in tuple(shape)[:2])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (H, W, ...) with ints >= 1, got {shape!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"shape must be (H, W, ...) with ints >= 1, got {shape!r}")
    return h, w


def regulate_box(box: Box, h: int, w: int) -> Box:
    """Clamp rows to ``[0, h]`` and columns to ``[0, w]`` and cast to int.

    Fooocus: modules/inpaint_worker.py ``regulate_abcd``.
    """
    a, b, c, d = box
    return (int(min(max(a, 0), h)), int(min(max(b, 0), h)),
            int(min(max(c, 0), w)), int(min(max(d, 0), w)))


def initial_box(mask: np.ndarray) -> Box | None:
    """Square box around the non-zero pixels of ``mask``, 15% larger, clamped to the image.

    Fooocus: modules/inpaint_worker.py ``compute_initial_abcd(mask > 0)``: with ``a..b`` / ``c..d``
    the inclusive row / column extent of ``mask > 0`` (ANY non-zero value counts, so JPEG noise
    grows the box), ``l = int(max((b-a)//2, (d-c)//2) * 1.15)`` and the box is
    ``((b+a)//2 - l, (b+a)//2 + l + 1, (d+c)//2 - l, (d+c)//2 + l + 1)``, then clamped.

    Args:
        mask: ``H x W`` array (any dtype; uint8 0..255 normally).
    Returns:
        ``(a, b, c, d)`` ints, or ``None`` for a mask without any non-zero pixel (Fooocus raises a
        numpy ValueError there; callers never reach it because an empty mask skips inpainting).
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask must be a non-empty HxW array, got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}")
    nz = mask > 0
    rows = np.flatnonzero(nz.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(nz.any(axis=0))
    a, b = int(rows[0]), int(rows[-1])
    c, d = int(cols[0]), int(cols[-1])
    abp, abm = (b + a) // 2, (b - a) // 2
    cdp, cdm = (d + c) // 2, (d - c) // 2
    half = int(max(abm, cdm) * 1.15)
    return regulate_box((abp - half, abp + half + 1, cdp - half, cdp + half + 1), *mask.shape)


def _decision(box: Box, h: int, w: int) -> tuple[bool, bool]:
    a, b, c, d = box
    add_h = (b - a) < (d - c)
    add_w = not add_h
    if b - a == h:
        add_w = True
    if d - c == w:
        add_h = True
    return add_h, add_w


def _done(box: Box, h: int, w: int, k: float) -> bool:
    a, b, c, d = box
    return (b - a) >= h * k and (d - c) >= w * k


def _side(lo: int, hi: int, n: int, i: int) -> int:
    """Length of the side ``[lo, hi)`` (clamped to ``[0, n]``) after ``i`` grow steps."""
    return min(hi + i, n) - max(lo - i, 0)


def _first(pred, limit: int) -> int:
    """Smallest ``i`` in ``[0, limit]`` with ``pred(i)`` (``pred`` monotone, ``pred(limit)``)."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _check_k(k: object) -> float:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, float, np.integer, np.floating)) \
            or math.isnan(float(k)) or not (0.0 <= float(k) <= 1.0):
        raise ValueError(f"k (respective field) must be a number in [0, 1], got {k!r}")
    return float(k)


def _check_box(box: object) -> Box:
    try:
        vals = tuple(int(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"box must be (a, b, c, d) ints, got {box!r}") from None
    if len(vals) != 4:
        raise ValueError(f"box must be (a, b, c, d) ints, got {box!r}")
    return vals  # type: ignore[return-value]


def _check_box_in(box: object, h: int, w: int) -> Box:
    a, b, c, d = _check_box(box)
    if not (0 <= a < b <= h and 0 <= c < d <= w):
        raise ValueError(f"box must satisfy 0 <= a < b <= {h} and 0 <= c < d <= {w}, got {box!r}")
    return a, b, c, d


def solve_box(shape: tuple[int, ...], box: Box, k: float) -> Box:
    """Grow ``box`` until it covers the fraction ``k`` of the image height and width.

    Fooocus: modules/inpaint_worker.py ``solve_abcd`` (only the mask's shape is used).  ``k == 1``
    returns the whole image.  Otherwise, while ``b-a < H*k or d-c < W*k``: grow the shorter side
    (the width on a tie) by one pixel at each end, also the other one when a side is already
    full, and clamp.

    Closed form of that loop: each side's length after ``i`` steps is monotone in ``i``, and the
    loop always steps the side whose current length is smaller, i.e. it *merges* the two length
    sequences (width first on ties).  It stops right after the later of the two "last short"
    lengths is consumed, which fixes both step counts (a few bisections instead of O(H+W)
    iterations; identical to :func:`solve_box_literal`, see tests/engine/test_crop.py).

    Args:
        shape: ``(H, W, ...)`` of the image.
        box: ``(a, b, c, d)`` with ``0 <= a < b <= H`` and ``0 <= c < d <= W`` (what
            :func:`initial_box` returns).
        k: float in [0, 1].
    Returns:
        ``(a, b, c, d)`` ints.
    """
    h, w = _check_shape(shape)
    k = _check_k(k)
    a, b, c, d = _check_box_in(box, h, w)
    if k == 1.0:
        return 0, h, 0, w
    if (b - a) >= h * k and (d - c) >= w * k:
        return a, b, c, d
    lim = max(h, w) + abs(a) + abs(b) + abs(c) + abs(d) + 2

    def hs(i: int) -> int:
        return _side(a, b, h, i)

    def ws(j: int) -> int:
        return _side(c, d, w, j)

    n_h_need = _first(lambda i: hs(i) >= h * k, lim)   # steps until the height is long enough
    n_w_need = _first(lambda j: ws(j) >= w * k, lim)
    if n_h_need > 0 and (n_w_need == 0 or ws(n_w_need - 1) <= hs(n_h_need - 1)):
        # the last needed step is a height step, taken at height v: every width length <= v
        # was stepped before it (ties go to the width)
        v = hs(n_h_need - 1)
        n_h, n_w = n_h_need, _first(lambda j: ws(j) > v or ws(j) == w, lim)
    else:
        u = ws(n_w_need - 1)
        n_w, n_h = n_w_need, _first(lambda i: hs(i) >= u or hs(i) == h, lim)
    return (max(a - n_h, 0), min(b + n_h, h), max(c - n_w, 0), min(d + n_w, w))


def solve_box_literal(shape: tuple[int, ...], box: Box, k: float) -> Box:
    """Reference one-step-per-iteration version of :func:`solve_box` (tests and benchmarks).

    Fooocus: modules/inpaint_worker.py ``solve_abcd``, iteration by iteration.
    """
    h, w = _check_shape(shape)
    k = _check_k(k)
    cur = _check_box_in(box, h, w)
    if k == 1.0:
        return 0, h, 0, w
    while not _done(cur, h, w, k):
        add_h, add_w = _decision(cur, h, w)
        a, b, c, d = cur
        if add_h:
            a, b = a - 1, b + 1
        if add_w:
            c, d = c - 1, d + 1
        cur = regulate_box((a, b, c, d), h, w)
    return cur


def crop_box(mask: np.ndarray, k: float) -> Box | None:
    """``solve_box(mask.shape, initial_box(mask), k)``; ``None`` for an all-zero mask.

    Fooocus: modules/inpaint_worker.py ``InpaintWorker.__init__`` (the two box calls).
    """
    init = initial_box(mask)
    if init is None:
        return None
    return solve_box(mask.shape, init, k)
