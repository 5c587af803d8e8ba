"""Tiny stand-ins for Fooocus's image-prompt models, in the real file formats (spec §8, §10).

Written under ``controlnet/`` (where Fooocus keeps them):

- ``control-lora-canny-rank128.safetensors`` and ``fooocus_xl_cpds_128.safetensors``: plain ComfyUI-format
  ControlNets (``zero_convs.*``, ``input_hint_block.*``, ``middle_block_out.*`` + the UNet encoder keys) for
  the tiny SDXL, which the stock ``ControlNetLoader`` detects through the tiny UNet config. (The real canny
  file is a control-LoRA; the application path in ComfyUI is the same ``ControlBase``.)
- ``ip-adapter-plus_sdxl_vit-h.bin`` / ``ip-adapter-plus-face_sdxl_vit-h.bin``: torch pickles
  ``{"image_proj": Resampler, "ip_adapter": {"<n>.to_k_ip.weight", "<n>.to_v_ip.weight"}}`` in the real key
  layout, scaled down: CLIP width ``TINY_CLIP_WIDTH``, Resampler width 128 (2 heads of 64), depth 2,
  16 queries, output 2048 (the real cross-attention width); one K/V pair per cross-attention block of the
  tiny UNet (n = 1, 3, 5, ...), with that block's K width.
- ``fooocus_ip_negative.safetensors``: ``{"data": float16 [1, 16, 2048]}``.

and under ``clip_vision/`` ``clip_vision_vit_h.safetensors`` (Fooocus's file name): the weights of a tiny
``comfy.clip_vision.ClipVisionModel`` (:data:`TINY_CLIP_VISION_CONFIG`, transformers key layout). ComfyUI's
``CLIPVisionLoader`` cannot load it (it picks configs by layer count); the test extension's
``TinyCLIPVisionLoader`` (tests/harness/tiny_sdxl_ext) can, and tests substitute it in graphs.
"""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_sdxl_ext import TINY_CLIP_VISION_CONFIG, TINY_CLIP_WIDTH, tiny_clip_vision_model  # noqa: F401

CLIP_VISION_FILE = "clip_vision_vit_h.safetensors"
RESAMPLER = {"dim": 128, "depth": 2, "queries": 16, "out": 2048, "ff_mult": 4}


def cross_attention_widths(model) -> list[int]:
    """K widths of the cross-attention blocks in Fooocus/diffusers order (input, output, middle)."""
    unet = model.model.diffusion_model
    widths = []
    for blocks in (list(unet.input_blocks), list(unet.output_blocks), [unet.middle_block]):
        for block in blocks:
            for layer in block:
                for tb in getattr(layer, "transformer_blocks", []) or []:
                    if getattr(tb, "attn2", None) is not None:
                        widths.append(int(tb.attn2.to_k.weight.shape[0]))
    return widths


def _ip_adapter(model, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    d, emb, out, q = RESAMPLER["dim"], TINY_CLIP_WIDTH, RESAMPLER["out"], RESAMPLER["queries"]

    def r(*s, scale=1.0):
        fan_in = s[-1] if len(s) > 1 else 1
        return (torch.randn(*s, generator=g) * (scale / fan_in ** 0.5)).to(torch.float16)

    proj = {"latents": r(1, q, d, scale=float(d) ** 0.5 * 0.1), "proj_in.weight": r(d, emb), "proj_in.bias": r(d, scale=0.1),
            "proj_out.weight": r(out, d), "proj_out.bias": r(out, scale=0.1),
            "norm_out.weight": (1 + r(out, scale=0.1)), "norm_out.bias": r(out, scale=0.1)}
    for i in range(RESAMPLER["depth"]):
        p = f"layers.{i}.0"
        proj.update({p + ".norm1.weight": 1 + r(d, scale=0.1), p + ".norm1.bias": r(d, scale=0.1),
                     p + ".norm2.weight": 1 + r(d, scale=0.1), p + ".norm2.bias": r(d, scale=0.1),
                     p + ".to_q.weight": r(d, d), p + ".to_kv.weight": r(2 * d, d), p + ".to_out.weight": r(d, d)})
        f = f"layers.{i}.1"
        inner = d * RESAMPLER["ff_mult"]
        proj.update({f + ".0.weight": 1 + r(d, scale=0.1), f + ".0.bias": r(d, scale=0.1),
                     f + ".1.weight": r(inner, d), f + ".3.weight": r(d, inner)})
    ip = {}
    for j, c in enumerate(cross_attention_widths(model)):
        n = 2 * j + 1
        ip[f"{n}.to_k_ip.weight"] = r(c, out, scale=4.0)
        ip[f"{n}.to_v_ip.weight"] = r(c, out, scale=4.0)
    return {"image_proj": proj, "ip_adapter": ip}


def _controlnet(model, seed: int) -> dict:
    import comfy.cldm.cldm
    import comfy.ops
    import tiny_sdxl_ext  # noqa: F811

    cfg = dict(tiny_sdxl_ext.TINY_UNET_FULL_CONFIG)
    cfg.pop("out_channels")
    cfg.update(hint_channels=3, operations=comfy.ops.disable_weight_init, dtype=torch.float32, device="cpu")
    cn = comfy.cldm.cldm.ControlNet(**cfg)
    # start from the UNet encoder (as ControlNets are trained), random hint block and non-zero zero-convs
    unet_sd = model.model.diffusion_model.state_dict()
    sd = cn.state_dict()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in sd.items():
        if k in unet_sd and unet_sd[k].shape == v.shape:
            out[k] = unet_sd[k].detach().clone()
        elif v.ndim >= 2:
            out[k] = torch.randn(v.shape, generator=g) * (0.5 / v[0].numel() ** 0.5)
        else:
            out[k] = torch.randn(v.shape, generator=g) * 0.01
    return {k: v.to(torch.float16).contiguous() for k, v in out.items()}


def _clip_vision(seed: int) -> dict:
    """Seeded weights of the tiny CLIP vision model (LayerNorm weights near 1, small random elsewhere)."""
    cv = tiny_clip_vision_model()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, p in sorted(cv.model.state_dict().items()):
        w = torch.randn(p.shape, generator=g) * (0.02 if p.ndim >= 2 else 0.01)
        if "norm" in name and name.endswith("weight"):
            w = w + 1.0
        out[name] = w.to(torch.float16).contiguous()
    return out


def generate(out_dir: Path, model, clip, vae) -> None:
    import comfy.utils

    d = Path(out_dir) / "controlnet"
    d.mkdir(parents=True, exist_ok=True)
    comfy.utils.save_torch_file(_controlnet(model, 61), str(d / "control-lora-canny-rank128.safetensors"))
    comfy.utils.save_torch_file(_controlnet(model, 62), str(d / "fooocus_xl_cpds_128.safetensors"))
    torch.save(_ip_adapter(model, 63), d / "ip-adapter-plus_sdxl_vit-h.bin")
    torch.save(_ip_adapter(model, 64), d / "ip-adapter-plus-face_sdxl_vit-h.bin")
    neg = torch.randn(1, RESAMPLER["queries"], RESAMPLER["out"], generator=torch.Generator().manual_seed(65))
    comfy.utils.save_torch_file({"data": neg.to(torch.float16)}, str(d / "fooocus_ip_negative.safetensors"))
    cv_dir = Path(out_dir) / "clip_vision"
    cv_dir.mkdir(parents=True, exist_ok=True)
    comfy.utils.save_torch_file(_clip_vision(7), str(cv_dir / CLIP_VISION_FILE))
