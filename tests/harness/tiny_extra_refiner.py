"""Tiny stand-ins for the refiner tests:

- ``checkpoints/tiny_sdxl_refiner.safetensors``: the tiny SDXL checkpoint with its UNet weights
  perturbed (a second, different SDXL model, loaded as its own ``BaseModel``);
- ``checkpoints/tiny_sd15.safetensors``: a tiny SD1.5-architecture checkpoint (``tiny_sd15_ext``: 32-channel
  UNet, 768-wide context, 3-layer CLIP-L, SD1.5-scaled TAESD-layout VAE), loadable once that test-only
  extension is imported;
- ``vae_approx/xl-to-v1_interposer-v4.0.safetensors``: an XL->v1 latent interposer in the key layout
  Fooocus loads (``engine.interposer``), with random weights and 16 hidden channels.
"""
from __future__ import annotations

from pathlib import Path

import torch


def _interposer_state(seed: int, hidden: int = 16, blocks: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, o, i, scale=1.0):
        sd[name + ".weight"] = (torch.randn(o, i, 3, 3, generator=g) * (scale / (i * 9) ** 0.5)).contiguous()
        sd[name + ".bias"] = (torch.randn(o, generator=g) * 0.01).contiguous()

    conv("head_short", hidden, 4)
    conv("head_long.0", hidden, 4)
    conv("head_long.2", hidden, hidden)
    conv("head_long.4", hidden, hidden)
    for b in range(blocks):
        for j in (0, 2, 4):
            conv(f"core.{b}.long.{j}", hidden, hidden, 0.5)
    conv("tail.1", 4, hidden)
    return sd


def build_tiny_sd15(seed: int = 61):
    """(ModelPatcher, CLIP, VAE) of the tiny SD1.5 model, deterministic random weights."""
    import sys

    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.taesd.taesd

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import tiny_sd15_ext as ext
    from tiny_models import _randomize

    mc = ext.TinySD15(dict(ext.TINY_UNET_FULL_CONFIG))
    mc.set_inference_dtype(torch.float32, None)
    base = mc.get_model({})
    _randomize(base.diffusion_model, seed)
    with torch.no_grad():
        base.diffusion_model.out[2].weight.mul_(0.2)
    model = comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
    clip = comfy.sd.CLIP(target=mc.clip_target(), embedding_directory=None)
    _randomize(clip.cond_stage_model, seed + 1)
    taesd = comfy.taesd.taesd.TAESD(latent_channels=4)
    _randomize(taesd, seed + 2)
    with torch.no_grad():
        taesd.taesd_decoder[-1].weight.mul_(0.15)
        taesd.vae_scale.fill_(0.18215)
        taesd.vae_shift.fill_(0.0)
    vae = comfy.sd.VAE(sd=taesd.state_dict())
    return model, clip, vae


def generate(out_dir: Path, model, clip, vae) -> None:
    import comfy.sd
    import comfy.utils

    m15, c15, v15 = build_tiny_sd15()
    path15 = out_dir / "checkpoints" / "tiny_sd15.safetensors"
    comfy.sd.save_checkpoint(str(path15), m15, c15, v15, metadata={"tiny_models": "sd15"})
    sd15 = comfy.utils.load_torch_file(str(path15))
    sd15 = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in sd15.items()}
    comfy.utils.save_torch_file(sd15, str(path15), metadata={"tiny_models": "sd15"})

    src = out_dir / "checkpoints" / "tiny_sdxl.safetensors"
    sd = comfy.utils.load_torch_file(str(src))
    g = torch.Generator().manual_seed(51)
    out = {}
    for k in sorted(sd):
        v = sd[k]
        if k.startswith("model.diffusion_model.") and v.is_floating_point() and v.ndim >= 2:
            v = (v.float() + torch.randn(v.shape, generator=g) * (v.float().std() * 0.5 + 1e-4)).to(v.dtype)
        out[k] = v.contiguous()
    comfy.utils.save_torch_file(out, str(out_dir / "checkpoints" / "tiny_sdxl_refiner.safetensors"),
                                metadata={"tiny_models": "refiner"})
    (out_dir / "vae_approx").mkdir(parents=True, exist_ok=True)
    comfy.utils.save_torch_file(_interposer_state(52), str(out_dir / "vae_approx" / "xl-to-v1_interposer-v4.0.safetensors"))
