"""Sampling overhead of Fooocus Sampler against a plain KSampler run, same model, steps and size.

Runs in-process on the tiny SDXL (real ComfyUI 0.3.75 code path) and prints a table: median time of
the sampling call for ComfyUI's KSampler path (comfy.sample.sample on the plain model) and for the
Fooocus paths (blending only = engine None; blending + patch + head + synthetic refiner switch;
Fooocus Guidance = sharpness + ADM + adaptive CFG; everything together), with their ratio. Decode and paste-back are excluded (the same VAE work either way).

    .host/venv/bin/python benchmarks/bench_sampler.py [--size 1024] [--steps 8] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "harness"), str(REPO)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024, help="working size in pixels (latent = size/8)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ns = ap.parse_args()
    import comfy_host
    import tiny_models

    cache = comfy_host.HOST / "cache" / tiny_models.VERSION
    subprocess.run([sys.executable, str(REPO / "tests/harness/tiny_models.py"), "--out", str(cache)], check=True,
                   stdout=subprocess.DEVNULL)
    base = comfy_host.make_base_dir(Path(tempfile.mkdtemp()), [cache], comfy_host.TINY_EXTS)
    comfy_host.InProcessHost(base)
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    import comfy.sample
    import nodes
    import torch

    pack = next(m for n, m in sys.modules.items() if n.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))
    FooocusInpaintData = pack.nodes.types.FooocusInpaintData
    model, clip, _ = nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[:3]
    pos = nodes.CLIPTextEncode().encode(clip, "a house")[0]
    neg = nodes.CLIPTextEncode().encode(clip, "")[0]
    h = w = ns.size // 8
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(1, 4, h, w, generator=g)
    lmask = torch.zeros(1, 1, h, w)
    lmask[..., h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
    data = FooocusInpaintData(prep=None, active=True, latent_fill=latent, latent_inpaint=latent.clone(),
                              latent_mask=lmask, strength=1.0)
    patch = pack.nodes.loader_nodes.FooocusInpaintLoader.execute("fooocus_inpaint_head.pth",
                                                                 "inpaint_v26.fooocus.patch").result[0]
    gh = pack.nodes.guidance_hooks
    guided = gh.apply_fooocus_guidance(model, gh.GuidanceSettings(sharpness=2.0))
    variants = {
        "KSampler (plain model)": model,
        "Fooocus, engine None (blending)": pack.nodes.inpaint_model.fooocus_inpaint_model(model, data, None),
        "Fooocus, v2.6 patch + head + refiner switch": pack.nodes.inpaint_model.fooocus_inpaint_model(model, data, patch),
        "KSampler + Fooocus Guidance (sharpness 2, ADM, adaptive CFG)": guided,
        "Fooocus v2.6 + Guidance (everything on)": pack.nodes.inpaint_model.fooocus_inpaint_model(guided, data, patch),
    }

    def run(m, seed):
        noise = comfy.sample.prepare_noise(latent, seed)
        t0 = time.perf_counter()
        comfy.sample.sample(m, noise, ns.steps, 4.0, "dpmpp_2m_sde_gpu", "karras", pos, neg, latent,
                            denoise=1.0, disable_pbar=True, seed=seed)
        return time.perf_counter() - t0

    times = {k: [] for k in variants}
    for name, m in variants.items():
        run(m, 0)  # warm-up (first load / patch)
    for r in range(ns.repeats):  # interleaved, so machine noise hits all variants alike
        for name, m in variants.items():
            times[name].append(run(m, r + 1))
    base_t = statistics.median(times["KSampler (plain model)"])
    print(f"\nSampling {ns.steps} steps at {ns.size}x{ns.size} (latent {h}x{w}), tiny SDXL on CPU, "
          f"median of {ns.repeats}:\n")
    print(f"| {'variant':<62} | {'median s':>9} | {'s/step':>7} | {'ratio':>6} |")
    print(f"|{'-' * 64}|{'-' * 11}|{'-' * 9}|{'-' * 8}|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name:<62} | {med:9.3f} | {med / ns.steps:7.4f} | {med / base_t:6.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
