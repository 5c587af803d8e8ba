"""Seconds per KSampler step of the tiny SDXL on this CPU, at a few sizes (cfg 4, so batch 2).

    .host/venv/bin/python benchmarks/bench_tiny_steps.py [--sizes 64 256 1024] [--steps 6]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "harness"), str(REPO)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--steps", type=int, default=6)
    ns = ap.parse_args()
    import comfy_host
    import tiny_models

    cache = comfy_host.HOST / "cache" / tiny_models.VERSION
    subprocess.run([sys.executable, str(REPO / "tests/harness/tiny_models.py"), "--out", str(cache)], check=True,
                   stdout=subprocess.DEVNULL)
    comfy_host.InProcessHost(comfy_host.make_base_dir(Path(tempfile.mkdtemp()), [cache], comfy_host.TINY_EXTS))
    import nodes

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[:3]
    pos = nodes.CLIPTextEncode().encode(clip, "a house")[0]
    neg = nodes.CLIPTextEncode().encode(clip, "")[0]
    print(f"\n| size | latent | s/step (KSampler, euler, cfg 4) | VAE decode s |")
    print("|---|---|---|---|")
    for size in ns.sizes:
        (lat,) = nodes.EmptyLatentImage().generate(size, size, 1)
        nodes.common_ksampler(model, 0, 1, 4.0, "euler", "normal", pos, neg, lat)  # warm-up
        t0 = time.perf_counter()
        (out,) = nodes.common_ksampler(model, 0, ns.steps, 4.0, "euler", "normal", pos, neg, lat)
        per_step = (time.perf_counter() - t0) / ns.steps
        t1 = time.perf_counter()
        vae.decode(out["samples"])
        print(f"| {size}x{size} | {size // 8}x{size // 8} | {per_step:.4f} | {time.perf_counter() - t1:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
