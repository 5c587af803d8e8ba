"""Benchmark of the pixel-side inpaint engine against a straightforward Fooocus-style baseline.

Run: ``.host/venv/bin/python benchmarks/bench_preprocess.py [--repeats N]``

For 1024x1024 and 2048x2048 images with a blob mask (~15% of the area) and a full-image mask it
times every step (mask prep, crop box, crop+resize, fill, latent mask, soft mask, paste-back) for
``engine`` and for a baseline written here the way Fooocus does it (iterated 3x3 filters, the
literal box-grow loop, the PIL BoxBlur loop, ...), checks that both give identical outputs and
prints the speed-ups.  Times are the minimum over the repeats (the machine may be shared).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import crop, fill, inpaint_prep, masks, paste, resize  # noqa: E402

K = 0.618
DILATE = 3
STEPS = ("mask prep", "crop box", "crop+resize", "fill", "latent mask", "soft mask", "paste-back")


# ----------------------------------------------------------------------------- baseline (Fooocus way)
def base_mask_prep(mask: np.ndarray) -> np.ndarray:
    x = mask
    for _ in range(DILATE):  # cv2.dilate(3x3 ones) |k| times; border pixels never win
        x = ndimage.maximum_filter(x, size=3, mode="nearest")
    return x


def base_crop_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.where(mask > 0)
    a, b, c, d = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    abp, abm, cdp, cdm = (b + a) // 2, (b - a) // 2, (d + c) // 2, (d - c) // 2
    half = int(max(abm, cdm) * 1.15)
    init = crop.regulate_box((abp - half, abp + half + 1, cdp - half, cdp + half + 1), *mask.shape)
    return crop.solve_box_literal(mask.shape, init, K)


def base_crop_resize(image, mask, box):
    a, b, c, d = box
    img = image[a:b, c:d]  # identity "upscaler"
    H, W = img.shape[:2]
    for _ in range(256):
        ceil = resize.shape_ceil(H, W)
        if abs(ceil - 1024) < 0.1:
            break
        k = 1024 / ceil
        H, W = int(round(H * k / 64.0)) * 64, int(round(W * k / 64.0)) * 64
    if (H, W) != img.shape[:2]:
        img = np.array(Image.fromarray(img).resize((W, H), Image.LANCZOS))
    m = np.array(Image.fromarray(mask[a:b, c:d]).resize((W, H), Image.LANCZOS))
    return img, ((m > 127) * 255).astype(np.uint8)


def base_fill(image, mask):
    known = mask < 127
    cur, orig = image.copy(), image[known]
    for r, n in fill.FILL_SCHEDULE:
        for _ in range(n):
            cur = np.array(Image.fromarray(cur).filter(ImageFilter.BoxBlur(r)))
            cur[known] = orig
    return cur


def base_latent_mask(mask_u8, hw):
    m = torch.from_numpy(mask_u8).float()[None, None] / 255.0
    m = F.interpolate(m, size=(hw[0] * 8, hw[1] * 8), mode="bilinear").round()
    return F.max_pool2d(m, (8, 8)).round()


def base_soft_mask(mask):
    x = ((mask > 127) * 256).astype(np.int16)
    for _ in range(32):
        x = np.maximum(ndimage.maximum_filter(x, size=3, mode="nearest") - 8, x)
    return x.clip(0, 255).astype(np.uint8)


def base_paste(image, decoded, box, soft):
    a, b, c, d = box
    fg = image.copy()
    fg[a:b, c:d] = np.array(Image.fromarray(decoded).resize((d - c, b - a), Image.LANCZOS))
    w = soft[:, :, None].astype(np.float32) / 255.0
    y = fg.astype(np.float32) * w + image.astype(np.float32) * (1 - w)
    return y.clip(0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- engine
def eng_crop_resize(image, mask, box):
    a, b, c, d = box
    img = image[a:b, c:d]
    H, W, resized = resize.working_size(*img.shape[:2])
    img = resize.lanczos_resize(img, W, H) if resized else img.copy()
    m = resize.lanczos_resize(np.ascontiguousarray(mask[a:b, c:d]), W, H)
    return img, np.where(m > 127, 255, 0).astype(np.uint8)


def eng_latent_mask(mask_u8, hw):
    return inpaint_prep.latent_mask(masks.u8_to_comfy_mask(mask_u8), hw)


# ----------------------------------------------------------------------------- driver
def make_case(size: int, kind: str):
    rng = np.random.default_rng(size)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    image = np.stack([255 * yy, 255 * xx, 128 + 100 * np.sin(9 * xx + 5 * yy)], -1)
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    if kind == "full":
        return image, np.full((size, size), 255, np.uint8)
    # blob ~15% of the area: an irregular ellipse-ish shape
    ang = np.arctan2(yy - 0.55, xx - 0.45)
    rad = 0.215 * (1 + 0.15 * np.sin(3 * ang))
    mask = (((yy - 0.55) ** 2 + (xx - 0.45) ** 2) < rad ** 2).astype(np.uint8) * 255
    return image, mask


def timed(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run_case(size, kind, repeats, fill_repeats):
    image, raw_mask = make_case(size, kind)
    res = {}
    for name, impl in (("base", "base"), ("ours", "ours")):
        b = impl == "base"
        r_fill = fill_repeats if b else repeats
        t = {}
        t["mask prep"], mask = timed(
            (lambda: base_mask_prep(raw_mask)) if b else (lambda: masks.prepare_mask(raw_mask, DILATE)),
            repeats)
        t["crop box"], box = timed(
            (lambda: base_crop_box(mask)) if b else (lambda: crop.crop_box(mask, K)), repeats)
        t["crop+resize"], (wimg, wmask) = timed(
            lambda: (base_crop_resize if b else eng_crop_resize)(image, mask, box), repeats)
        t["fill"], filled = timed(
            lambda: (base_fill if b else fill.fooocus_fill)(wimg, wmask), r_fill)
        hw = (wimg.shape[0] // 8, wimg.shape[1] // 8)
        t["latent mask"], lmask = timed(
            lambda: (base_latent_mask if b else eng_latent_mask)(wmask, hw), repeats)
        t["soft mask"], soft = timed(
            lambda: (base_soft_mask if b else paste.soft_blend_mask)(mask), repeats)
        decoded = np.ascontiguousarray(filled[: hw[0] * 8, : hw[1] * 8][:, :, ::-1])
        t["paste-back"], post = timed(
            lambda: (base_paste if b else paste.paste_back)(image, decoded, box, soft), repeats)
        res[name] = (t, (mask, box, wimg, wmask, filled, lmask.numpy(), soft, post))
    outs_b, outs_o = res["base"][1], res["ours"][1]
    same = all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(outs_b, outs_o))
    return res["base"][0], res["ours"][0], same, box, wimg.shape[:2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fill-repeats", type=int, default=1, help="repeats of the slow baseline fill")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
          f"numpy {np.__version__}, Pillow {Image.__version__}; min of {args.repeats} runs "
          f"(baseline fill: {args.fill_repeats}); k={K}, dilate={DILATE}, identity upscaler")
    # engine fill: numpy only, split over 2 threads only while the machine is idle
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"engine fill threads now: {fill._threads()}")
    all_same = True
    for size in (1024, 2048):
        for kind in ("blob", "full"):
            tb, to, same, box, whw = run_case(size, kind, args.repeats, args.fill_repeats)
            all_same &= same
            print(f"\n{size}x{size} {kind} mask: box {box}, working size {whw[0]}x{whw[1]}, "
                  f"identical outputs: {same}")
            print(f"  {'step':<12} {'baseline ms':>12} {'engine ms':>10} {'speed-up':>9}")
            for s in STEPS + ("total",):
                b = sum(tb.values()) if s == "total" else tb[s]
                o = sum(to.values()) if s == "total" else to[s]
                print(f"  {s:<12} {b * 1e3:12.1f} {o * 1e3:10.1f} {b / max(o, 1e-9):8.1f}x")
    print(f"\nall outputs identical: {all_same}")
    return 0 if all_same else 1


if __name__ == "__main__":
    raise SystemExit(main())
