"""Per-step sampling cost of Fooocus image prompts: 4 active prompts (2 IP-Adapter + 2 ControlNet) vs none.

Runs in-process on the tiny SDXL (real ComfyUI 0.3.75 code path) with the tiny image-prompt models
(tests/harness/tiny_extra_image_prompt.py) and prints a table: median time of the sampling call
(comfy.sample.sample) without image prompts (baseline, measured in the same run), with the 2
IP-Adapters only (ImagePrompt + FaceSwap), with the 2 ControlNets only (PyraCanny + CPDS), and with all
4, each with stop_at 1.0 so every prompt is active at every step; plus the ratio to the baseline.
Image encoding and hint preprocessing happen once, before sampling, and are excluded.

    .host/venv/bin/python benchmarks/bench_image_prompts.py [--size 1024] [--steps 4] [--repeats 3]
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling_bench import print_table, start_tiny_host, time_sampling  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024, help="image size in pixels (latent = size/8)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ns = ap.parse_args()
    pack = start_tiny_host(logging.ERROR)
    import nodes
    import numpy as np
    import torch

    ipn = pack.nodes.image_prompt_nodes
    model, clip, _ = nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[:3]
    pos = nodes.CLIPTextEncode().encode(clip, "a house")[0]
    neg = nodes.CLIPTextEncode().encode(clip, "")[0]
    clip_vision = nodes.NODE_CLASS_MAPPINGS["TinyCLIPVisionLoader"]().load_clip("clip_vision_vit_h.safetensors")[0]
    rng = np.random.default_rng(0)
    image = torch.tensor(rng.integers(0, 256, (1, 256, 256, 3)), dtype=torch.float32) / 255.0
    image[:, 64:192, 80:176] = 0.8

    def with_ip(m):
        for kind, file in (("ImagePrompt", "ip-adapter-plus_sdxl_vit-h.bin"),
                           ("FaceSwap", "ip-adapter-plus-face_sdxl_vit-h.bin")):
            ip = ipn.FooocusIPAdapterLoader.execute(file, "fooocus_ip_negative.safetensors").result[0]
            m = ipn.FooocusImagePromptIPAdapter.execute(m, ip, clip_vision, image, kind, 0.6, 1.0,
                                                        skip_preprocessor=True).result[0]
        return m

    def with_cn(m, p, n):
        for kind, file in (("PyraCanny", "control-lora-canny-rank128.safetensors"),
                           ("CPDS", "fooocus_xl_cpds_128.safetensors")):
            cn = nodes.ControlNetLoader().load_controlnet(file)[0]
            m, p, n, _ = ipn.FooocusImagePromptControlNet.execute(m, p, n, cn, image, kind, 1.0, 1.0,
                                                                  ns.size, ns.size).result
        return m, p, n

    cn_model, cn_pos, cn_neg = with_cn(model, pos, neg)
    variants = {
        "no image prompts (baseline)": (model, pos, neg),
        "2 IP-Adapter (ImagePrompt + FaceSwap)": (with_ip(model), pos, neg),
        "2 ControlNet (PyraCanny + CPDS)": (cn_model, cn_pos, cn_neg),
        "4 image prompts (2 IP-Adapter + 2 ControlNet)": (with_ip(cn_model), cn_pos, cn_neg),
    }
    h = w = ns.size // 8
    latent = torch.zeros(1, 4, h, w)

    times = time_sampling(variants, latent, ns.steps, ns.repeats)
    print_table(times, ns.steps, "no image prompts (baseline)",
                f"Sampling {ns.steps} steps at {ns.size}x{ns.size} (latent {h}x{w}), tiny SDXL on CPU, "
                f"image prompts active at every step (stop_at 1), median of {ns.repeats}:")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
