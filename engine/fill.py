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
``(S + r) // D``; that is decided per radius by an exhaustive check over every possible ``S``
(:func:`_plan`).

Speed (``fooocus_fill`` is 60 blur passes, i.e. 120 one-dimensional passes over the image):

* **Packed lanes.**  The three channels of a pixel share one int64 as 16-bit lanes (32-bit lanes
  in two int64 "planes" for radii whose window sums need more than 16 bits, 64-bit lanes for
  absurd radii).  Window sums are differences of prefix sums, all linear, so they are computed
  on the packed int64 values modulo 2**64: each lane's true sum is below its width, so it comes
  out exactly and nothing carries between lanes.  The rounding ``(S + r) // D`` then runs on the
  lanes (numpy ``floor_divide`` by a scalar, SIMD), and its uint16 output *is* the packed input
  of the next pass.  Radius 128 uses the exact float32 formula on the lanes.
* **Flat ops.**  Horizontal prefix sums are one cumulative sum over a block of flattened rows,
  and the window sums of every interior column one shifted subtraction; only the ``r + 1``
  columns at each edge are recomputed with slices (clamped indices, replicated edge samples).
* **Interleaved rows for the vertical pass.**  Rows are stored in the order ``i*G + s`` for image
  row ``s*L + i`` (``G`` segments of ``L`` rows), so the vertical prefix sum is ``L`` flat
  additions of ``G`` contiguous rows, and the interior window sums are a few flat shifted
  subtractions (plus segment totals where a window straddles two segments); the ``2r + 2`` edge
  rows are gathered.  Horizontal passes do not care about the row order.
* **Cache-sized blocks.**  Window sums, rounding and the reset of the known pixels run one block
  of rows (1 MiB per array) at a time, so their temporaries stay in cache.
* **Two threads when the machine is idle** (numpy releases the GIL inside its loops): each pass
  is cut in two halves of rows (columns for the prefix sums).  The outputs do not depend on it.
* Known pixels (``mask < 127``) are reset after every blur with two bitwise operations, and the
  work is restricted to the unknown pixels' bounding box grown by the largest window.

Everything is numpy integer arithmetic (plus the exact float32 formula of radius 128); torch and
its settings are not used.
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

logger = logging.getLogger(__name__)

#: ``(radius, repeats)`` of Fooocus's fill, in order (60 blur passes in total).
FILL_SCHEDULE: tuple[tuple[int, int], ...] = (
    (512, 2), (256, 2), (128, 4), (64, 4), (33, 8), (15, 8), (5, 16), (3, 16),
)

_ONE24 = 1 << 24
_HALF24 = 1 << 23
_F32_EXACT = 1 << 24  # integers below this are exact in float32
_MAX_RADIUS = (1 << 31) - 1  # Pillow's BoxBlur limit
_PLAN_SCAN_MAX = 4097  # largest window whose rounding is checked sum by sum (~1M sums)


@dataclass(frozen=True)
class _Plan:
    """How PIL's fixed-point division of one radius is evaluated exactly."""

    r: int
    D: int
    ww: int
    fw: int
    mode: str  # "simple": (S + r) // D | "pow2": float32 formula below | "exact": the uint64 one
    a: float = 0.0  # pow2: S multiplier
    f: float = 0.0  # pow2: E multiplier
    c: float = 0.0  # pow2: constant
    s: float = 0.0  # pow2: final power-of-two scale


@lru_cache(maxsize=None)
def _plan(r: int) -> _Plan:
    D = 2 * r + 1
    ww = _ONE24 // D
    fw = (_ONE24 - D * ww) // 2
    if D > _PLAN_SCAN_MAX:  # too many sums to check one by one: always use the exact formula
        return _Plan(r, D, ww, fw, "exact")
    S = np.arange(0, 255 * D + 1, dtype=np.int64)
    exact_lo = (S * ww + _HALF24) >> 24
    exact_hi = (S * ww + 510 * fw + _HALF24) >> 24
    rounded = (S + r) // D
    # The exact value is non-decreasing in E (0..510): equal at both ends => independent of E.
    if np.array_equal(exact_lo, rounded) and np.array_equal(exact_hi, rounded):
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
    return _Plan(r, D, ww, fw, "exact")


# ----------------------------------------------------------------------------- packed layout
@dataclass(frozen=True)
class _Layout:
    """Packed storage of an ``H x W x 3`` uint8 image as an ``M x W`` int64 array.

    ``bits``-wide lanes (16, 32 or 64), ``nl = 64 // bits`` lanes per int64, ``k`` planes (int64s)
    per pixel; channel ``c`` is lane ``c % nl`` of plane ``c // nl``, unused lanes hold 0.  Image
    row ``y = s*L + i`` (``s < G``, ``i < L``), plane ``p`` is memory row ``(i*k + p)*G + s``;
    memory rows of ``y >= H`` (padding) are kept at 0.
    """

    H: int
    W: int
    bits: int
    G: int
    L: int

    @property
    def nl(self) -> int:
        return 64 // self.bits

    @property
    def k(self) -> int:
        return -(-3 // self.nl)

    @property
    def M(self) -> int:
        return self.L * self.k * self.G

    @property
    def lane(self) -> type:
        return {16: np.uint16, 32: np.uint32, 64: np.uint64}[self.bits]

    def mem(self, y: np.ndarray | int, p: np.ndarray | int = 0) -> np.ndarray | int:
        return ((y % self.L) * self.k + p) * self.G + y // self.L

    def lanes(self, X: np.ndarray) -> np.ndarray:
        """``L x k x G x W x nl`` lane view of a packed array."""
        return X.view(self.lane).reshape(self.L, self.k, self.G, self.W, self.nl)

    def channel_view(self, X: np.ndarray, c: int) -> np.ndarray:
        """``L x G x W`` view of channel ``c`` (memory order)."""
        p, lane = divmod(c, self.nl)
        return self.lanes(X)[:, p, :, :, lane]

    def pad_rows(self, X: np.ndarray) -> np.ndarray:
        """``Lp x k x W`` view of the padding rows (segment ``G-1``, ``i >= H - (G-1)*L``)."""
        i0 = self.H - (self.G - 1) * self.L
        return X.reshape(self.L, self.k, self.G, self.W)[i0:, :, self.G - 1]


def _layout(H: int, W: int, bits: int) -> _Layout:
    # Interleaving only pays for the 16-bit lanes (small radii: few edge rows to gather); wider
    # lanes serve the large radii, whose edge rows are best handled as contiguous row blocks.
    G = 1 if bits > 16 or H < 96 else 8 if H < 4096 else 16
    return _Layout(H, W, bits, G, -(-H // G))


def _bits_for(r: int) -> int:
    """Lane width holding every window sum (plus ``r`` for the simple rounding)."""
    top = 255 * (2 * r + 1) + (r if _plan(r).mode == "simple" else 0)
    return 16 if top < (1 << 16) else 32 if top < (1 << 32) else 64


def _to_memory_order(a: np.ndarray, lay: _Layout) -> np.ndarray:
    """``H x W`` array -> ``L x G x W`` (memory order, padding rows 0)."""
    pad = np.zeros((lay.G * lay.L, lay.W), a.dtype)
    pad[: lay.H] = a
    return pad.reshape(lay.G, lay.L, lay.W).transpose(1, 0, 2)


def _pack(img: np.ndarray, lay: _Layout) -> np.ndarray:
    X = np.zeros((lay.M, lay.W), np.int64)
    for c in range(3):
        lay.channel_view(X, c)[...] = _to_memory_order(img[:, :, c], lay)
    return X


def _unpack(X: np.ndarray, lay: _Layout) -> np.ndarray:
    out = np.empty((lay.H, lay.W, 3), np.uint8)
    for c in range(3):
        ch = lay.channel_view(X, c).transpose(1, 0, 2).reshape(lay.G * lay.L, lay.W)
        out[:, :, c] = ch[: lay.H]
    return out


def _relayout(X: np.ndarray, src: _Layout, dst: _Layout) -> np.ndarray:
    """Same image in another layout."""
    return _pack(_unpack(X, src), dst)


def _pack_mask(known: np.ndarray, lay: _Layout) -> np.ndarray:
    """``M x W`` int64: all ones where the pixel is unknown (to keep), 0 where known/padding."""
    keep = _to_memory_order(~known, lay)  # padding rows: False
    out = np.zeros((lay.L, lay.k, lay.G, lay.W), np.int64)
    out[...] = np.where(keep, np.int64(-1), np.int64(0))[:, None]
    return out.reshape(lay.M, lay.W)


def _lanes_const(value: int, lay: _Layout) -> np.int64:
    """``value`` in every lane of an int64 (as the signed bit pattern)."""
    v = 0
    for j in range(lay.nl):
        v |= value << (j * lay.bits)
    return np.array([v], np.uint64).view(np.int64)[0]


# ----------------------------------------------------------------------------- window sums
_BLOCK = 1 << 17  # int64 elements per block (1 MiB): the per-block temporaries stay in cache
_MIN_SPLIT = 1 << 16  # int64 elements below which a pass is not split over threads
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _threads() -> int:
    """Threads a fill is split over: 2 when this process may use 2+ cores and the machine is
    not busy (1-minute load average below cores - 0.5), else 1.  On busy cores a helper thread
    only waits for a time slice, so it would make the fill slower, not faster."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    if n < 2:
        return 1
    try:
        busy = os.getloadavg()[0] >= n - 0.5
    except OSError:  # pragma: no cover - no load average
        busy = True
    return 1 if busy else 2


def _split(work, n: int, step: int, bufs: list, elems: int) -> None:
    """Run ``work(lo, hi, buf)`` over ``[0, n)`` cut at a multiple of ``step``: the first part
    on this thread, the second on a helper thread (numpy releases the GIL in its loops).
    ``elems`` (the work's size) below ``_MIN_SPLIT`` runs everything here."""
    global _POOL
    cut = (n // 2 + step - 1) // step * step
    if len(bufs) < 2 or cut <= 0 or cut >= n or elems < _MIN_SPLIT:
        work(0, n, bufs[0])
        return
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fooocus-fill")
        fut = _POOL.submit(work, cut, n, bufs[1])
    try:
        work(0, cut, bufs[0])
    finally:
        fut.result()


class _Blocks:
    """Cache-sized scratch of one thread."""

    def __init__(self, n: int, W: int) -> None:
        self.Kb = np.empty((n, W), np.int64)
        self.Sb = np.empty((n, W), np.int64)
        self.Tb = np.empty((n, W), np.int64)
        self.Eb = np.empty((n, W), np.int64)
        self.F: np.ndarray | None = None  # float32 lanes (pow2 only)
        self.F2: np.ndarray | None = None


class _Work:
    """Scratch buffers of one layout: whole-image ones and per-thread cache-sized blocks."""

    def __init__(self, lay: _Layout, threads: int | None = None) -> None:
        self.lay = lay
        self.K = np.empty((lay.M, lay.W), np.int64)  # vertical prefix sums
        self.S: np.ndarray | None = None  # whole-image window sums / outer pixels (G = 1 only)
        self.T: np.ndarray | None = None
        self.E: np.ndarray | None = None
        self.rb = max(1, min(lay.M, _BLOCK // lay.W))  # rows per horizontal block
        self.rbv = min(max(lay.G, self.rb // lay.G * lay.G), lay.M)  # multiple of G
        n = max(self.rb, self.rbv)
        self.blocks = [_Blocks(n, lay.W) for _ in range(_threads() if threads is None else threads)]

    def full(self, name: str) -> np.ndarray:
        if getattr(self, name) is None:
            setattr(self, name, np.empty((self.lay.M, self.lay.W), np.int64))
        return getattr(self, name)


def _sl(axis: int, a: int, b: int) -> tuple:
    return (slice(None), slice(a, b)) if axis == 1 else (slice(a, b), slice(None))


def _edge_pieces(out: np.ndarray, A: np.ndarray, a: int, b: int, sign: int,
                 span: tuple[int, int], axis: int) -> None:
    """``out[j] = A[clamp(j+a)] +- A[clamp(j+b)]`` for the lines ``j`` in ``span`` along ``axis``.

    Lines are columns (``axis=1``) or rows (``axis=0``) of the 2-D arrays; slices where the
    shifted index is in range, the first/last line (broadcast) where it is clamped.
    """
    n = A.shape[axis]
    j0, j1 = span
    if j1 <= j0:
        return
    cuts = {j0, j1}
    for sh in (a, b):
        for t in (-sh, n - sh):  # j+sh < 0  |  j+sh > n-1
            if j0 < t < j1:
                cuts.add(t)
    cuts = sorted(cuts)

    def src(sh: int, u0: int, u1: int) -> np.ndarray:
        if u0 + sh < 0:
            return A[_sl(axis, 0, 1)]
        if u0 + sh > n - 1:
            return A[_sl(axis, n - 1, n)]
        return A[_sl(axis, u0 + sh, u1 + sh)]

    for u0, u1 in zip(cuts[:-1], cuts[1:]):
        (np.add if sign > 0 else np.subtract)(src(a, u0, u1), src(b, u0, u1),
                                              out=out[_sl(axis, u0, u1)])


def _sums_from_prefix(X: np.ndarray, K: np.ndarray, r: int, S: np.ndarray, T: np.ndarray,
                      axis: int) -> np.ndarray:
    """Window sums ``S`` (radius ``r``, edge replication) of the lines of ``X`` along ``axis``.

    ``K`` holds prefix sums along ``axis`` (for ``axis=1`` a flat prefix over the whole array is
    fine: only differences within a line are used).  With ``Kc(z) = K[clamp z] + min(z,0)*x[0]
    + max(z-n+1,0)*x[n-1]``, ``S[j] = Kc(j+r) - Kc(j-r-1)``.
    """
    n = X.shape[axis]
    st = 1 if axis == 1 else X.shape[1]
    N = X.size
    if n - r > r + 1:  # interior lines: one flat shifted subtraction (row ends fixed below)
        Kf, Sf = K.ravel(), S.ravel()
        w = (2 * r + 1) * st
        np.subtract(Kf[w:], Kf[:N - w], out=Sf[(r + 1) * st:N - r * st])
    e1 = min(r + 1, n)
    e2 = max(n - r, e1)
    _edge_pieces(S, K, r, -r - 1, -1, (0, e1), axis)
    _edge_pieces(S, K, r, -r - 1, -1, (e2, n), axis)
    shape = (1, -1) if axis == 1 else (-1, 1)
    c0 = np.arange(r + 1, r + 1 - e1, -1, dtype=np.int64).reshape(shape)  # j < e1: r+1-j
    t = T[_sl(axis, 0, e1)]
    np.multiply(X[_sl(axis, 0, 1)], c0, out=t)
    d = S[_sl(axis, 0, e1)]
    np.add(d, t, out=d)
    h0 = max(n - r, 0)
    if h0 < n:
        cH = np.arange(h0 + r - n + 1, r + 1, dtype=np.int64).reshape(shape)  # j >= h0: j+r-n+1
        t = T[_sl(axis, 0, n - h0)]
        np.multiply(X[_sl(axis, n - 1, n)], cH, out=t)
        d = S[_sl(axis, h0, n)]
        np.add(d, t, out=d)
    return S


def _outer_lines(X: np.ndarray, r: int, E: np.ndarray, axis: int) -> np.ndarray:
    """``E[j] = X[clamp(j-r-1)] + X[clamp(j+r+1)]`` along ``axis``."""
    n = X.shape[axis]
    st = 1 if axis == 1 else X.shape[1]
    N = X.size
    if n - r - 1 > r + 1:
        Xf, Ef = X.ravel(), E.ravel()
        w = (2 * r + 2) * st
        np.add(Xf[:N - w], Xf[w:], out=Ef[(r + 1) * st:N - (r + 1) * st])
    e1 = min(r + 1, n)
    e2 = max(n - r - 1, e1)
    _edge_pieces(E, X, -r - 1, r + 1, 1, (0, e1), axis)
    _edge_pieces(E, X, -r - 1, r + 1, 1, (e2, n), axis)
    return E


def _row_prefix(X: np.ndarray, P: np.ndarray, threads: int) -> None:
    """``P[i] = X[0] + ... + X[i]`` (rows of 2-D arrays), split by columns over the threads."""
    def work(c0: int, c1: int, _: object) -> None:
        x, p = X[:, c0:c1], P[:, c0:c1]
        np.copyto(p[0], x[0])
        for i in range(1, x.shape[0]):
            np.add(p[i - 1], x[i], out=p[i])

    _split(work, X.shape[1], 1, [None] * threads, X.size)


def _segment_prefix(X: np.ndarray, lay: _Layout, P: np.ndarray, threads: int) -> np.ndarray:
    """Vertical prefix sums *within each segment* of a ``k = 1`` interleaved layout.

    Returns ``off`` (``G x W``): the sum of the segments before ``s``, i.e. the global prefix is
    ``P + off[s]``; it is only needed where a window straddles segments (see :func:`_v_pass`).
    """
    L, G, W = lay.L, lay.G, lay.W
    _row_prefix(X.reshape(L, G * W), P.reshape(L, G * W), threads)
    tot = P.reshape(L, G, W)[L - 1]
    off = np.empty((G, W), np.int64)
    off[0] = 0
    for s in range(1, G):
        np.add(off[s - 1], tot[s - 1], out=off[s])
    return off


@lru_cache(maxsize=64)
def _v_plan(lay: _Layout, a: int, b: int, lo: int, hi: int):
    """Flat runs and gathered edge rows for ``f(y+a) op f(y+b)`` in a ``k = 1`` interleaved layout.

    Interior rows are ``lo <= y < hi`` (``0 <= y+a, y+b <= H-1``).  Returns ``runs`` of
    ``(m0, m1, da, db, sa, sb)``: memory rows ``[m0, m1)`` read memory rows ``m+da`` and ``m+db``,
    which lie ``sa`` and ``sb`` segments further (garbage for the non-interior rows among them,
    overwritten afterwards), and for the other rows ``ys`` (ascending) their memory rows and
    clamped source rows.
    """
    H, L, G, M = lay.H, lay.L, lay.G, lay.M

    def shift_classes(sh: int) -> list[tuple[int, int, int, int]]:
        q, t = divmod(sh, L)  # y+sh = (s+q)*L + i+t
        b1 = L - t  # i < b1: row i+t of segment s+q; else row i+t-L of segment s+q+1
        res = [(0, b1 * G, t * G + q, q)]
        if b1 < L:
            res.append((b1 * G, M, (t - L) * G + q + 1, q + 1))
        return res

    runs = []
    if hi > lo:
        for m0a, m1a, da, sa in shift_classes(a):
            for m0b, m1b, db, sb in shift_classes(b):
                m0 = max(m0a, m0b, -da, -db)
                m1 = min(m1a, m1b, M - da, M - db)
                if m1 > m0:
                    runs.append((m0, m1, da, db, sa, sb))
    ys = np.concatenate([np.arange(0, min(lo, H)), np.arange(max(hi, lo, 0), H)])
    rows = lay.mem(ys)
    ia = lay.mem(np.clip(ys + a, 0, H - 1))
    ib = lay.mem(np.clip(ys + b, 0, H - 1))
    return runs, ys, rows, ia, ib


def _add_per_segment(S: np.ndarray, m0: int, m1: int, C: np.ndarray, G: int) -> None:
    """``S[m] += C[m % G]`` for the memory rows ``m`` in ``[m0, m1)``."""
    a0, a1 = -(-m0 // G) * G, (m1 // G) * G
    if a1 <= a0:
        for m in range(m0, m1):
            S[m] += C[m % G]
        return
    if a0 > m0:
        S[m0:a0] += C[m0 % G:]
    blk = S[a0:a1].reshape(-1, G, S.shape[1])
    np.add(blk, C, out=blk)
    if m1 > a1:
        S[a1:m1] += C[:m1 - a1]


def _v_edges(X: np.ndarray, P: np.ndarray, off: np.ndarray, r: int, lay: _Layout,
             wk: _Work) -> tuple[np.ndarray, np.ndarray]:
    """Window sums of the rows gathered by :func:`_v_plan` (sorted by memory row)."""
    H, G = lay.H, lay.G
    runs, ys, rows, iu, iv = _v_plan(lay, r, -r - 1, r + 1, H - r)
    n = rows.size
    if not n:
        return rows, np.empty((0, lay.W), np.int64)
    Se = np.take(P, iu, axis=0)  # global prefix = P + off[segment]
    Se += off[iu % G]
    Se -= np.take(P, iv, axis=0)
    Se -= off[iv % G]
    n0 = int(np.count_nonzero(ys <= r))  # ys ascending: c0 = r+1-y > 0 on a prefix
    if n0:
        Se[:n0] += (r + 1 - ys[:n0])[:, None] * X[lay.mem(0)]
    h = int(np.searchsorted(ys, H - r))  # cH = y+r-H+1 > 0 on a suffix
    if h < n:
        Se[h:] += (ys[h:] + r - H + 1)[:, None] * X[lay.mem(H - 1)]
    order = np.argsort(rows)
    return rows[order], Se[order]


def _h_pass(X: np.ndarray, r: int, lay: _Layout, wk: _Work) -> None:
    """Horizontal blur pass of packed ``X`` in place, one cache-sized block of rows at a time."""
    plan = _plan(r)

    def work(lo: int, hi: int, bk: _Blocks) -> None:
        for m0 in range(lo, hi, wk.rb):
            n = min(wk.rb, hi - m0)
            Xb, Kb, Sb = X[m0:m0 + n], bk.Kb[:n], bk.Sb[:n]
            np.cumsum(Xb.ravel(), out=Kb.ravel())
            _sums_from_prefix(Xb, Kb, r, Sb, bk.Tb[:n], 1)
            Eb = None if plan.mode == "simple" else _outer_lines(Xb, r, bk.Eb[:n], 1)
            _round(Sb, Eb, plan, lay, bk, Xb)

    _split(work, lay.M, wk.rb, wk.blocks, X.size)


def _v_pass(X: np.ndarray, r: int, lay: _Layout, wk: _Work,
            keep: np.ndarray | None = None, orig: np.ndarray | None = None) -> None:
    """Vertical blur pass of packed ``X`` in place (then ``X = X & keep | orig`` if given)."""
    plan = _plan(r)
    M, G = lay.M, lay.G
    E = None
    if G == 1:
        rows = (lay.L, lay.k * lay.W)
        P, S = wk.K, wk.full("S")
        _row_prefix(X.reshape(rows), P.reshape(rows), len(wk.blocks))
        _sums_from_prefix(X.reshape(rows), P.reshape(rows), r, S.reshape(rows),
                          wk.full("T").reshape(rows), 0)
        if plan.mode != "simple":
            E = wk.full("E")
            _outer_lines(X.reshape(rows), r, E.reshape(rows), 0)

        def finish(lo: int, hi: int, bk: _Blocks) -> None:
            for m0 in range(lo, hi, wk.rbv):
                m1 = min(m0 + wk.rbv, hi)
                _round(S[m0:m1], None if E is None else E[m0:m1], plan, lay, bk, X[m0:m1])
                if keep is not None:
                    np.bitwise_and(X[m0:m1], keep[m0:m1], out=X[m0:m1])
                    np.bitwise_or(X[m0:m1], orig[m0:m1], out=X[m0:m1])

        _split(finish, M, wk.rbv, wk.blocks, X.size)
        return
    P = wk.K
    off = _segment_prefix(X, lay, P, len(wk.blocks))
    runs = _v_plan(lay, r, -r - 1, r + 1, lay.H - r)[0]
    corr = []
    for m0, m1, da, db, sa, sb in runs:
        if sa != sb:
            sg = np.arange(G)
            corr.append(off[np.clip(sg + sa, 0, G - 1)] - off[np.clip(sg + sb, 0, G - 1)])
        else:
            corr.append(None)
    erows, Se = _v_edges(X, P, off, r, lay, wk)
    if plan.mode != "simple":
        E = _v_outer(X, r, lay, wk.full("E"))

    def work(lo: int, hi: int, bk: _Blocks) -> None:
        for b0 in range(lo, hi, wk.rbv):
            b1 = min(b0 + wk.rbv, hi)
            Sb = bk.Sb[:b1 - b0]
            for (m0, m1, da, db, _, _), C in zip(runs, corr):
                lo_, hi_ = max(m0, b0), min(m1, b1)
                if hi_ > lo_:
                    np.subtract(P[lo_ + da:hi_ + da], P[lo_ + db:hi_ + db],
                                out=Sb[lo_ - b0:hi_ - b0])
                    if C is not None:
                        _add_per_segment(Sb, lo_ - b0, hi_ - b0, C, G)
            e0, e1 = np.searchsorted(erows, (b0, b1))
            if e1 > e0:
                Sb[erows[e0:e1] - b0] = Se[e0:e1]
            Xb = X[b0:b1]
            _round(Sb, None if E is None else E[b0:b1], plan, lay, bk, Xb)
            if keep is not None:
                np.bitwise_and(Xb, keep[b0:b1], out=Xb)
                np.bitwise_or(Xb, orig[b0:b1], out=Xb)

    _split(work, M, wk.rbv, wk.blocks, X.size)


def _v_outer(X: np.ndarray, r: int, lay: _Layout, E: np.ndarray) -> np.ndarray:
    """``E = X[clamp(y-r-1)] + X[clamp(y+r+1)]`` along the height (interleaved layout)."""
    runs, _, rows, ia, ib = _v_plan(lay, -r - 1, r + 1, r + 1, lay.H - r - 1)
    for m0, m1, da, db, _, _ in runs:
        np.add(X[m0 + da:m1 + da], X[m0 + db:m1 + db], out=E[m0:m1])
    if rows.size:
        Ee = np.take(X, ia, axis=0)
        Ee += np.take(X, ib, axis=0)
        E[rows] = Ee
    return E


# ----------------------------------------------------------------------------- rounding
def _round(S: np.ndarray, E: np.ndarray | None, plan: _Plan, lay: _Layout, bk: _Blocks,
           dest: np.ndarray) -> None:
    """``dest`` (packed) = PIL's uint8 values of the window sums ``S`` (``E``: the two pixels
    just outside each window, for the non-simple plans).  ``S`` and ``E`` are scratch."""
    lt = lay.lane
    if plan.mode == "simple":
        np.add(S, _lanes_const(plan.r, lay), out=S)
        np.floor_divide(S.view(lt), lt(plan.D), out=dest.view(lt))
        return
    if plan.mode == "pow2":
        shape = S.view(lt).shape
        if bk.F is None or bk.F.size < S.view(lt).size:
            bk.F = np.empty(max(bk.Sb.size, S.size) * lay.nl, np.float32)
            bk.F2 = np.empty_like(bk.F)
        F = bk.F[:S.size * lay.nl].reshape(shape)
        F2 = bk.F2[:S.size * lay.nl].reshape(shape)
        m = -int(np.log2(plan.f)) if plan.f > 0 else -1
        if m >= 0 and plan.f == 2.0 ** -m and 255 + plan.c < (1 << lay.bits) >> 1:
            # floor(E*f) + c on the packed lanes: a shift, a mask dropping the bits shifted in
            # from the next lane, and an add (no lane overflows).
            np.right_shift(E, m, out=E)
            np.bitwise_and(E, _lanes_const((1 << (lay.bits - m)) - 1, lay), out=E)
            np.add(E, _lanes_const(int(plan.c), lay), out=E)
            np.copyto(F2, E.view(lt), casting="unsafe")
        else:
            np.copyto(F2, E.view(lt), casting="unsafe")
            F2 *= np.float32(plan.f)
            np.floor(F2, out=F2)
            F2 += np.float32(plan.c)
        np.copyto(F, S.view(lt), casting="unsafe")
        F *= np.float32(plan.a)
        F += F2
        F *= np.float32(plan.s)
        np.copyto(dest.view(lt), F, casting="unsafe")  # values >= 0: truncation is floor
        return
    Su = S.view(lt).astype(np.uint64)
    Eu = E.view(lt).astype(np.uint64)
    Su *= np.uint64(plan.ww)
    Eu *= np.uint64(plan.fw)
    Su += Eu
    Su += np.uint64(_HALF24)
    Su >>= np.uint64(24)
    np.copyto(dest.view(lt), Su, casting="unsafe")


def _blur(X: np.ndarray, r: int, lay: _Layout, wk: _Work,
          keep: np.ndarray | None = None, orig: np.ndarray | None = None) -> np.ndarray:
    """One PIL box blur of packed ``X``, in place (then ``X = X & keep | orig`` if given)."""
    _h_pass(X, r, lay, wk)
    _v_pass(X, r, lay, wk, keep, orig)
    if lay.G * lay.L > lay.H:
        lay.pad_rows(X)[...] = 0
    return X


# ----------------------------------------------------------------------------- public API
def _check_radius(radius: object) -> int:
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, np.integer)):
        raise ValueError(f"radius must be a non-negative int, got {radius!r}")
    if radius < 0 or radius > _MAX_RADIUS:
        raise ValueError(f"radius must be a non-negative int <= {_MAX_RADIUS}, got {radius!r}")
    return int(radius)


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
        radius: int in ``[0, 2**31)`` (Pillow's range; larger than the image is fine: edges
            are replicated).
    Returns:
        New uint8 ``H x W x 3`` array.
    """
    _check_image(image)
    r = _check_radius(radius)
    H, W, _ = image.shape
    lay = _layout(H, W, _bits_for(r))
    X = _pack(image, lay)
    return _unpack(_blur(X, r, lay, _Work(lay)), lay)


def fooocus_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fooocus's fill: 60 box-blur passes that keep the known pixels fixed.

    Fooocus: modules/inpaint_worker.py ``fooocus_fill``.  Known pixels are ``mask < 127``; for
    each ``(radius, repeats)`` of :data:`FILL_SCHEDULE` the image is box-blurred (PIL semantics,
    see :func:`box_blur`) ``repeats`` times and the known pixels are reset to the input after
    every pass.  Bit-identical to Fooocus, much faster (packed integer lanes, flat prefix sums,
    work restricted to the unknown pixels' bounding box grown by the largest window).

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
    img = image[ga:gb, gc:gd]
    known = ~unknown[ga:gb, gc:gd]
    h, w = gb - ga, gd - gc
    any_known = bool(known.any())
    threads = _threads()
    lay = None
    X = keep = orig = None
    wk = None
    for r, repeats in FILL_SCHEDULE:
        new = _layout(h, w, _bits_for(r))
        if new != lay:
            X = _pack(img, new) if lay is None else _relayout(X, lay, new)
            lay, wk = new, _Work(new, threads)
            if any_known:
                keep = _pack_mask(known, lay)
                orig = _pack(img, lay)
                np.bitwise_and(orig, ~keep, out=orig)
        for _ in range(repeats):
            _blur(X, r, lay, wk, keep, orig)
    out = image.copy()
    out[ga:gb, gc:gd] = _unpack(X, lay)
    return out
