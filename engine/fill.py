"""Fooocus's "fill" pre-pass: PIL ``BoxBlur`` reproduced bit-exactly, and ``fooocus_fill``.

Fooocus: modules/inpaint_worker.py ``box_blur`` (PIL ``ImageFilter.BoxBlur``) and ``fooocus_fill``.

PIL's box blur of an integer radius ``r`` is a horizontal pass (along the width) followed by a
vertical pass; each pass writes uint8.  For a line ``x`` of length ``n`` with edge replication
(``x[clamp(j)]``, also for ``r`` larger than the line) one output sample is::

    D  = 2r + 1
    ww = 2**24 // D                       # fixed-point weight of the 2r+1 window samples
    fw = (2**24 - D*ww) // 2              # weight of the two samples just outside the window
    S  = sum(x[clamp(j)] for j in [i-r, i+r])
    E  = x[clamp(i-r-1)] + x[clamp(i+r+1)]
    out[i] = (S*ww + E*fw + 2**23) >> 24

(the formula was checked against Pillow on random images, see tests/engine/test_fill.py).  For
most radii (all Fooocus radii except 128) ``E`` never changes the result, which then equals
``floor((S + r + 0.5) / D)``; that is decided per radius by an exhaustive check over every possible
``S`` (:func:`_plan`).

Speed (``fooocus_fill`` is 60 blur passes): the image is kept as float32 in an ``H x 3 x W``
layout, window sums come from prefix sums (torch ``cumsum`` along the width, a row-by-row numpy
scan along the height) with the edge replication added in closed form instead of padding, and
every pass is restricted to the bounding box of the unknown pixels (grown by the window): known
pixels are reset after every pass, so nothing outside that box can change.  All sums are integers
below 2**24, so float32 holds them exactly.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: ``(radius, repeats)`` of Fooocus's fill, in order (60 blur passes in total).
FILL_SCHEDULE: tuple[tuple[int, int], ...] = (
    (512, 2), (256, 2), (128, 4), (64, 4), (33, 8), (15, 8), (5, 16), (3, 16),
)

_ONE24 = 1 << 24
_HALF24 = 1 << 23
_F32_EXACT = 1 << 24  # integers below this are exact in float32


@dataclass(frozen=True)
class _Plan:
    """How the fixed-point division of one radius is evaluated exactly."""

    r: int
    D: int
    ww: int
    fw: int
    mode: str  # "simple" | "pow2" | "f64"
    a: float = 0.0  # pow2: S multiplier
    f: float = 0.0  # pow2: E multiplier
    c: float = 0.0  # pow2: constant
    s: float = 0.0  # pow2: final power-of-two scale


@lru_cache(maxsize=None)
def _plan(r: int) -> _Plan:
    D = 2 * r + 1
    ww = _ONE24 // D
    fw = (_ONE24 - D * ww) // 2
    S = np.arange(0, 255 * D + 1, dtype=np.int64)
    exact_lo = (S * ww + _HALF24) >> 24
    exact_hi = (S * ww + 510 * fw + _HALF24) >> 24
    rounded = (S + r) // D
    # The exact value is non-decreasing in E (0..510): equal at both ends => independent of E.
    # float32 evaluation of floor(S/D + (r+0.5)/D) is safe while the distance to the next integer,
    # at least 1/(2D), dwarfs float32 rounding near 255 (a few 1.5e-5).
    if D <= 2047 and np.array_equal(exact_lo, rounded) and np.array_equal(exact_hi, rounded):
        return _Plan(r, D, ww, fw, "simple")
    # S*ww + 2**23 is a multiple of g = 2**v (v = 2-adic valuation of ww, capped at 23), so
    # out = floor((S*(ww/g) + 2**23/g + floor(E*fw/g)) * g/2**24), exact in float32 when small.
    v = 0
    while v < 23 and (ww >> (v + 1)) << (v + 1) == ww:
        v += 1
    g = 1 << v
    a, c, f = ww // g, _HALF24 // g, fw / g
    if 255 * D * a + c + int(510 * f) < _F32_EXACT and float(np.float32(f)) == f:
        return _Plan(r, D, ww, fw, "pow2", float(a), f, float(c), g / _ONE24)
    return _Plan(r, D, ww, fw, "f64")


@contextlib.contextmanager
def _torch_single_thread() -> Iterator[None]:
    """Run torch's CPU ops of a fill single-threaded, restoring the previous setting.

    The fill issues thousands of medium-sized ops; with intra-op threads on a machine whose other
    cores are busy, every op waits for a descheduled worker (measured 100x slower on 2 busy
    cores), while one thread is never slower than ~1.5x.
    """
    prev = torch.get_num_threads()
    if prev == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _check_radius(radius: object) -> int:
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, np.integer)):
        raise ValueError(f"radius must be a non-negative int, got {radius!r}")
    if radius < 0:
        raise ValueError(f"radius must be a non-negative int, got {radius!r}")
    return int(radius)


def _ax(axis: int, s: slice) -> tuple:
    sl = [slice(None)] * 3
    sl[axis] = s
    return tuple(sl)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


def _put_clamped(x: np.ndarray, axis: int, shift: int, n: int, p0: int, lo: int, hi: int,
                 dest: np.ndarray, add: bool) -> None:
    """``dest[i-lo] (+)= x[clamp(i+shift, 0, n-1)]`` for ``i`` in ``[lo, hi)``.

    ``x`` holds line positions ``[p0, p0 + x.shape[axis])`` along ``axis``.
    """
    a = min(max(-shift, lo), hi)          # i < a: clamps to position 0
    b = max(min(n - 1 - shift, hi), a)     # i >= b: clamps to position n-1
    pieces = []
    if a > lo:
        pieces.append((lo, a, x[_ax(axis, slice(-p0, 1 - p0))]))
    if b > a:
        pieces.append((a, b, x[_ax(axis, slice(a + shift - p0, b + shift - p0))]))
    if hi > b:
        pieces.append((b, hi, x[_ax(axis, slice(n - 1 - p0, n - p0))]))
    for s0, s1, src in pieces:
        d = _t(dest[_ax(axis, slice(s0 - lo, s1 - lo))])
        if add:
            d.add_(_t(src))
        else:
            d.copy_(_t(src).expand_as(d))


def _window_sums(x: np.ndarray, axis: int, r: int, n: int, p0: int, lo: int, hi: int,
                 out: np.ndarray, kbuf: np.ndarray) -> None:
    """Window sums ``S[i] = sum_{j=i-r}^{i+r} x[clamp(j, 0, n-1)]`` for ``i`` in ``[lo, hi)``.

    ``x`` is ``A x 3 x B`` float; ``axis`` is 0 (rows) or 2 (columns).  Along ``axis`` it holds the
    line positions ``[p0, p0 + x.shape[axis])`` of a line of length ``n`` and must cover
    ``[max(lo-r, 0), min(hi+r, n))``.  ``out`` has ``hi-lo`` along ``axis``; ``kbuf`` is scratch
    with at least ``q1-q0+1`` along ``axis`` (same other dims as ``x``).
    """
    q0, q1 = max(lo - r, 0), min(hi + r, n)
    L = q1 - q0
    K = kbuf[_ax(axis, slice(0, L + 1))]
    K[_ax(axis, slice(0, 1))] = 0
    src = x[_ax(axis, slice(q0 - p0, q1 - p0))]
    if axis == 2:
        torch.cumsum(_t(src), -1, out=_t(K[..., 1:]))
    else:
        for k in range(L):
            np.add(K[k], src[k], out=K[k + 1])
    # S[i] = K[up(i)] - K[low(i)], up(i) = min(i+r+1, n) - q0, low(i) = max(i-r, 0) - q0;
    # the lower term is K[0] = 0 for i <= r, the upper one is the constant K[n-q0] for i >= n-r.
    cuts = sorted({lo, hi, min(max(r + 1, lo), hi), min(max(n - r, lo), hi)})
    for s0, s1 in zip(cuts[:-1], cuts[1:]):
        if s1 <= s0:
            continue
        d = _t(out[_ax(axis, slice(s0 - lo, s1 - lo))])
        if s0 >= n - r:
            up = _t(K[_ax(axis, slice(n - q0, n - q0 + 1))])
        else:
            up = _t(K[_ax(axis, slice(s0 + r + 1 - q0, s1 + r + 1 - q0))])
        if s0 >= r + 1:
            torch.sub(up, _t(K[_ax(axis, slice(s0 - r - q0, s1 - r - q0))]), out=d)
        else:
            d.copy_(up.expand_as(d))
    # replicated edge samples: (r - i) extra copies of x[0] for i < r, (i + r - n + 1) of x[n-1]
    shape = [1, 1, 1]
    if lo < r:
        e1 = min(hi, r)
        coef = torch.arange(r - lo, r - e1, -1, dtype=_t(out).dtype)
        shape[axis] = coef.numel()
        d = _t(out[_ax(axis, slice(0, e1 - lo))])
        d.addcmul_(_t(x[_ax(axis, slice(-p0, 1 - p0))]), coef.reshape(shape))
    if hi > n - r:
        b0 = max(lo, n - r)
        coef = torch.arange(b0 + r - n + 1, hi + r - n + 1, dtype=_t(out).dtype)
        shape[axis] = coef.numel()
        d = _t(out[_ax(axis, slice(b0 - lo, hi - lo))])
        d.addcmul_(_t(x[_ax(axis, slice(n - 1 - p0, n - p0))]), coef.reshape(shape))


def _finish(S: np.ndarray, plan: _Plan, x: np.ndarray, axis: int, n: int, p0: int,
            lo: int, hi: int, dest: np.ndarray) -> None:
    """``dest = PIL's uint8 value of the window sums S`` (still stored as float).

    ``S`` may be overwritten (it is scratch).
    """
    tS, td = _t(S), _t(dest)
    if plan.mode == "simple":
        torch.mul(tS, 1.0 / plan.D, out=td)
        td.add_((plan.r + 0.5) / plan.D).floor_()
        return
    E = np.empty_like(S)
    _put_clamped(x, axis, -plan.r - 1, n, p0, lo, hi, E, add=False)
    _put_clamped(x, axis, plan.r + 1, n, p0, lo, hi, E, add=True)
    tE = _t(E)
    if plan.mode == "pow2":
        tE.mul_(plan.f).floor_()
        torch.mul(tS, plan.a, out=td)
        td.add_(tE).add_(plan.c).mul_(plan.s).floor_()
        return
    num = tS.double().mul_(plan.ww).add_(tE.double().mul_(plan.fw)).add_(_HALF24)
    td.copy_(num.mul_(1.0 / _ONE24).floor_())


def _blur_region(X: np.ndarray, r: int, r0: int, r1: int, c0: int, c1: int,
                 bufs: dict[str, np.ndarray]) -> np.ndarray:
    """One PIL box blur of ``X`` (``H x 3 x W`` float, whole image) evaluated on rows
    ``[r0, r1)`` and columns ``[c0, c1)`` only; returns a view of a scratch buffer with it."""
    H, _, W = X.shape
    plan = _plan(r)
    ra, rb = max(r0 - r - 1, 0), min(r1 + r + 1, H)
    nr, nc = rb - ra, c1 - c0
    Hs = bufs["s_h"][:nr, :, :nc]
    _window_sums(X[ra:rb], 2, r, W, 0, c0, c1, Hs, bufs["k_h"][:nr])
    Hb = bufs["h"][:nr, :, :nc]
    _finish(Hs, plan, X[ra:rb], 2, W, 0, c0, c1, Hb)
    Vs = bufs["s_v"][: r1 - r0, :, :nc]
    _window_sums(Hb, 0, r, H, ra, r0, r1, Vs, bufs["k_v"][:, :, :nc])
    Vb = bufs["v"][: r1 - r0, :, :nc]
    _finish(Vs, plan, Hb, 0, H, ra, r0, r1, Vb)
    return Vb


def _work_dtype(h: int, w: int) -> type:
    return np.float32 if 255 * (max(h, w) + 2) < _F32_EXACT else np.float64


def _alloc(h: int, w: int, nr_max: int, nc_max: int, dtype: type) -> dict[str, np.ndarray]:
    return {
        "k_h": np.empty((nr_max, 3, w + 1), dtype),
        "s_h": np.empty((nr_max, 3, nc_max), dtype),
        "h": np.empty((nr_max, 3, nc_max), dtype),
        "k_v": np.empty((h + 1, 3, nc_max), dtype),
        "s_v": np.empty((h, 3, nc_max), dtype),
        "v": np.empty((h, 3, nc_max), dtype),
    }


def _check_image(image: object, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise ValueError(f"{name} must be a uint8 HxWx3 array, got {got}")
    return image


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """PIL ``ImageFilter.BoxBlur(radius)`` on an RGB uint8 image, bit-exact.

    Fooocus: modules/inpaint_worker.py ``box_blur`` (``Image.fromarray(x).filter(BoxBlur(k))``).

    Args:
        image: uint8 ``H x W x 3``.
        radius: int >= 0 (any size; larger than the image is fine: edges are replicated).
    Returns:
        New uint8 ``H x W x 3`` array.
    """
    _check_image(image)
    r = _check_radius(radius)
    H, W, _ = image.shape
    dtype = _work_dtype(H, W)
    X = np.ascontiguousarray(image.transpose(0, 2, 1), dtype=dtype)
    with _torch_single_thread():
        out = _blur_region(X, r, 0, H, 0, W, _alloc(H, W, H, W, dtype))
    return np.ascontiguousarray(out.transpose(0, 2, 1)).astype(np.uint8)


def fooocus_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fooocus's fill: 60 box-blur passes that keep the known pixels fixed.

    Fooocus: modules/inpaint_worker.py ``fooocus_fill``.  Known pixels are ``mask < 127``; for
    each ``(radius, repeats)`` of :data:`FILL_SCHEDULE` the image is box-blurred (PIL semantics,
    see :func:`box_blur`) ``repeats`` times and the known pixels are reset to the input after
    every pass.  Bit-identical to Fooocus, much faster (work is restricted to the unknown pixels'
    bounding box grown by each radius).  torch runs single-threaded inside (restored after).

    Args:
        image: uint8 ``H x W x 3``.
        mask: uint8 ``H x W`` (any values; only ``< 127`` matters).
    Returns:
        New uint8 ``H x W x 3`` array; equal to ``image`` when every pixel is known.
    """
    _check_image(image)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
        raise ValueError(
            f"mask must be a uint8 HxW array matching image {image.shape[:2]}, got "
            f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}")
    unknown = mask >= 127
    rows = np.flatnonzero(unknown.any(axis=1))
    if rows.size == 0:
        return image.copy()
    cols = np.flatnonzero(unknown.any(axis=0))
    H, W = mask.shape
    # Nothing outside the unknown box grown by the largest window can influence the result.
    grow = max(r for r, _ in FILL_SCHEDULE) + 1
    ga, gb = max(int(rows[0]) - grow, 0), min(int(rows[-1]) + 1 + grow, H)
    gc, gd = max(int(cols[0]) - grow, 0), min(int(cols[-1]) + 1 + grow, W)
    r0, r1 = int(rows[0]) - ga, int(rows[-1]) + 1 - ga
    c0, c1 = int(cols[0]) - gc, int(cols[-1]) + 1 - gc
    h, w = gb - ga, gd - gc
    dtype = _work_dtype(h, w)
    X = np.ascontiguousarray(image[ga:gb, gc:gd].transpose(0, 2, 1), dtype=dtype)
    region = X[r0:r1, :, c0:c1]
    orig = region.copy()
    known = np.broadcast_to((~unknown[ga + r0:ga + r1, gc + c0:gc + c1])[:, None, :], orig.shape)
    any_known = bool(known.any())
    bufs = _alloc(h, w, h, c1 - c0, dtype)
    with _torch_single_thread():
        for r, repeats in FILL_SCHEDULE:
            for _ in range(repeats):
                V = _blur_region(X, r, r0, r1, c0, c1, bufs)
                if any_known:
                    np.copyto(V, orig, where=known)
                region[...] = V
    out = image.copy()
    out[ga + r0:ga + r1, gc + c0:gc + c1] = region.transpose(0, 2, 1).astype(np.uint8)
    return out
