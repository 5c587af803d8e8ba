"""Tiny stand-in for Fooocus's ESRGAN upscaler (``upscale_models/fooocus_upscaler_s409985e5.bin``):
an old-layout 4x RRDBNet (nf 8, one RRDB, gc 32) with random weights, saved as a torch pickle with
Fooocus's ``residual_block_`` key naming."""
from __future__ import annotations

from pathlib import Path

import torch


def generate(out_dir: Path, model, clip, vae) -> None:
    nf, gc, nb = 8, 32, 1
    g = torch.Generator().manual_seed(41)
    sd = {}

    def conv(name, o, i):
        sd[name + ".weight"] = torch.randn(o, i, 3, 3, generator=g) * (0.5 / (i * 9) ** 0.5)
        sd[name + ".bias"] = torch.zeros(o)

    conv("model.0", nf, 3)
    for b in range(nb):
        for j in range(1, 4):
            for k in range(1, 6):
                conv(f"model.1.sub.{b}.residual_block_{j}.conv{k}.0", nf if k == 5 else gc, nf + (k - 1) * gc)
    conv(f"model.1.sub.{nb}", nf, nf)
    for name in ("model.3", "model.6", "model.8"):
        conv(name, nf, nf)
    conv("model.10", 3, nf)
    sd["model.10.bias"] = torch.full((3,), 0.5)
    (out_dir / "upscale_models").mkdir(parents=True, exist_ok=True)
    torch.save(sd, out_dir / "upscale_models" / "fooocus_upscaler_s409985e5.bin")
