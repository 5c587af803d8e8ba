"""Sampling overhead of Fooocus Sampler against a plain KSampler run, same model, steps and size.

Runs in-process on the tiny SDXL (real ComfyUI 0.3.75 code path) and prints a table: median time of
the sampling call for ComfyUI's KSampler path (comfy.sample.sample on the plain model) and for the
Fooocus paths (blending only = engine None; blending + patch + head + synthetic refiner switch;
Fooocus Guidance = sharpness + ADM + adaptive CFG; everything together), with their ratio. Decode and paste-back are excluded (the same VAE work either way).

    .host/venv/bin/python benchmarks/bench_sampler.py [--size 1024] [--steps 8] [--repeats 5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling_bench import print_table, start_tiny_host, time_sampling  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024, help="working size in pixels (latent = size/8)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ns = ap.parse_args()
    pack = start_tiny_host()
    import nodes
    import torch

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

    times = time_sampling({k: (m, pos, neg) for k, m in variants.items()}, latent, ns.steps, ns.repeats)
    print_table(times, ns.steps, "KSampler (plain model)",
                f"Sampling {ns.steps} steps at {ns.size}x{ns.size} (latent {h}x{w}), tiny SDXL on CPU, "
                f"median of {ns.repeats}:")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
