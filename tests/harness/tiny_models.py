"""Deterministic tiny models in the real file formats, for tests and the no-weights demo.

Run as a script with the host's Python (it imports ComfyUI from the host tree)::

    .host/venv/bin/python tests/harness/tiny_models.py --out DIR

It writes a ComfyUI ``models`` layout under DIR (plus whatever the ``tiny_extra_*.py`` plug-ins in this
folder add, e.g. tiny expansion or safety-checker weights):

- ``checkpoints/tiny_sdxl.safetensors``: an SDXL-layout checkpoint (``model.diffusion_model.*``,
  ``conditioner.embedders.{0,1}.*``, ``first_stage_model.*`` with a TAESD-layout VAE) that the
  unmodified ``CheckpointLoaderSimple`` loads once the test-only ``tiny_sdxl_ext`` is imported;
- ``inpaint/fooocus_inpaint_head.pth``: ``{"head": float32 [32, 5, 3, 3]}`` (the real head is
  [320, 5, 3, 3]; the tiny UNet has 32 channels in input block 0);
- ``inpaint/inpaint_v26.fooocus.patch``, ``inpaint_v25.fooocus.patch``, ``inpaint.fooocus.patch``:
  torch pickles of ``{unet_key: (uint8 weight-shaped, float32 min, float32 max)}`` keyed by the
  model's own ``diffusion_model.*`` names, as Fooocus's files are;
- ``loras/*.safetensors``: kohya-format SDXL LoRAs (``lora_unet_*``, ``lora_te1_*``, ``lora_te2_*``
  with ``lora_down``/``lora_up``/``alpha``), including tiny stand-ins under the file names Fooocus
  uses for its offset and performance LoRAs.

Everything is seeded, so two runs give byte-identical files. A ``VERSION`` stamp lets callers cache.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _version() -> str:
    """The cache key: a hash of every generator source (this file, the tiny config extensions and the
    ``tiny_extra_*.py`` plug-ins), so any change to how models are made regenerates them."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted([Path(__file__).resolve(), *HERE.glob("tiny_*_ext/__init__.py"), *HERE.glob("tiny_extra_*.py")]):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return "tiny-models-" + h.hexdigest()[:12]


VERSION = _version()
REPO = HERE.parents[1]
log = logging.getLogger("tiny_models")

LORA_FILES = {
    # file name: (seed, rank, scale of the up matrix)
    "tiny_style_lora.safetensors": (11, 4, 0.5),
    "sd_xl_offset_example-lora_1.0.safetensors": (12, 4, 0.5),
    "sdxl_lcm_lora.safetensors": (13, 4, 0.5),
    "sdxl_lightning_4step_lora.safetensors": (14, 4, 0.5),
    "sdxl_hyper_sd_4step_lora.safetensors": (15, 4, 0.5),
}
PATCH_FILES = {
    # file name: (seed, which UNet weights it covers)
    "inpaint_v26.fooocus.patch": (21, "input_middle"),
    "inpaint_v25.fooocus.patch": (22, "all"),
    "inpaint.fooocus.patch": (23, "input"),
}


def comfy_dir() -> Path:
    host = Path(os.environ.get("FOOOCUS_HOST_DIR", REPO / ".host"))
    return host / "ComfyUI"


def _import_comfy():
    sys.path.insert(0, str(comfy_dir()))
    from comfy.cli_args import args

    args.cpu = True
    import comfy.model_management  # noqa: F401  (after args.cpu)

    sys.path.insert(0, str(HERE))
    import tiny_sdxl_ext  # noqa: F401  registers TinySDXL

    return tiny_sdxl_ext


def _randomize(module, seed: int, *, linear_std_scale: float = 1.0):
    """Fill every parameter deterministically: N(0, 1/sqrt(fan_in)) for matrices/kernels,
    1 for norm weights, small noise for biases (ComfyUI's ops leave parameters uninitialised)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (linear_std_scale / fan_in**0.5))
            elif name.endswith("weight") and ("norm" in name or "ln" in name):
                p.copy_(1.0 + 0.01 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.01 * torch.randn(p.shape, generator=gen))


def build_tiny_sdxl(seed: int = 0):
    """Return (ModelPatcher, CLIP, VAE) of the tiny SDXL, with deterministic random weights."""
    import torch
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.taesd.taesd

    ext = sys.modules["tiny_sdxl_ext"]
    mc = ext.TinySDXL(dict(ext.TINY_UNET_FULL_CONFIG))
    mc.set_inference_dtype(torch.float32, None)
    base = mc.get_model({})
    _randomize(base.diffusion_model, seed)
    with torch.no_grad():  # keep eps predictions moderate
        base.diffusion_model.out[2].weight.mul_(0.2)
    model = comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())

    clip = comfy.sd.CLIP(target=mc.clip_target(), embedding_directory=None)
    _randomize(clip.cond_stage_model, seed + 1)

    taesd = comfy.taesd.taesd.TAESD(latent_channels=4)
    _randomize(taesd, seed + 2)
    with torch.no_grad():
        # a random TAESD decoder saturates most pixels; damp its last conv so images carry detail
        taesd.taesd_decoder[-1].weight.mul_(0.15)
        taesd.vae_scale.fill_(0.13025)
        taesd.vae_shift.fill_(0.0)
    vae = comfy.sd.VAE(sd=taesd.state_dict())
    return model, clip, vae


def _lora_state_dict(model, clip, seed: int, rank: int, up_scale: float):
    import torch
    import comfy.lora

    targets = {}
    for prefix_filter, key_map in (
        ("lora_unet_", comfy.lora.model_lora_keys_unet(model.model, {})),
        ("lora_te", comfy.lora.model_lora_keys_clip(clip.cond_stage_model, {})),
    ):
        for lora_key, model_key in key_map.items():
            if lora_key.startswith(prefix_filter) and isinstance(model_key, str):
                targets[lora_key] = model_key
    shapes = {**model.model.state_dict(), **clip.cond_stage_model.state_dict()}
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for lora_key in sorted(targets):
        w = shapes.get(targets[lora_key])
        if w is None or w.ndim not in (2, 4) or (w.ndim == 4 and w.shape[2:] != (1, 1)):
            continue
        out_f, in_f = w.shape[0], w.shape[1]
        down = torch.randn((rank, in_f) + tuple(w.shape[2:]), generator=gen) / in_f**0.5
        up = torch.randn((out_f, rank) + tuple(w.shape[2:]), generator=gen) * (up_scale / rank**0.5)
        sd[f"{lora_key}.lora_down.weight"] = down.to(torch.float16).contiguous()
        sd[f"{lora_key}.lora_up.weight"] = up.to(torch.float16).contiguous()
        sd[f"{lora_key}.alpha"] = torch.tensor(float(rank), dtype=torch.float16)
    return sd


def _patch_state(model, seed: int, cover: str):
    import torch

    gen = torch.Generator().manual_seed(seed)
    sd = model.model.state_dict()
    out = {}
    for key in sorted(sd):
        if not key.startswith("diffusion_model.") or not key.endswith((".weight", ".bias")):
            continue
        part = key[len("diffusion_model."):]
        if cover == "input" and not part.startswith("input_blocks."):
            continue
        if cover == "input_middle" and not part.startswith(("input_blocks.", "middle_block.")):
            continue
        w = sd[key]
        u8 = torch.randint(0, 256, tuple(w.shape), generator=gen, dtype=torch.uint8)
        span = float(w.abs().mean()) * 0.2 + 1e-4
        lo = torch.tensor(-span * (0.5 + torch.rand((), generator=gen).item()), dtype=torch.float32)
        hi = torch.tensor(span * (0.5 + torch.rand((), generator=gen).item()), dtype=torch.float32)
        out[key] = (u8, lo, hi)
    return out


def generate(out_dir: Path) -> dict[str, str]:
    """Write every tiny model file under ``out_dir`` and return {role: path}."""
    _import_comfy()
    import torch
    import comfy.sd
    import comfy.utils

    out_dir = Path(out_dir)
    for sub in ("checkpoints", "inpaint", "loras"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model, clip, vae = build_tiny_sdxl(seed=0)
    ckpt = out_dir / "checkpoints" / "tiny_sdxl.safetensors"
    comfy.sd.save_checkpoint(str(ckpt), model, clip, vae, metadata={"tiny_models": VERSION})
    # save_checkpoint stores the live (fp32) weights; keep the file small and deterministic in fp16
    sd = comfy.utils.load_torch_file(str(ckpt))
    sd = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    comfy.utils.save_torch_file(sd, str(ckpt), metadata={"tiny_models": VERSION})

    head = torch.randn((32, 5, 3, 3), generator=torch.Generator().manual_seed(31)) * 0.05
    torch.save({"head": head}, out_dir / "inpaint" / "fooocus_inpaint_head.pth")
    for name, (seed, cover) in PATCH_FILES.items():
        torch.save(_patch_state(model, seed, cover), out_dir / "inpaint" / name)
    for name, (seed, rank, scale) in LORA_FILES.items():
        comfy.utils.save_torch_file(_lora_state_dict(model, clip, seed, rank, scale), str(out_dir / "loras" / name))
    # plug-ins: tests/harness/tiny_extra_<topic>.py, each with generate(out_dir, model, clip, vae)
    import importlib

    for plug in sorted(HERE.glob("tiny_extra_*.py")):
        mod = importlib.import_module(plug.stem)
        log.info("tiny models: %s", plug.stem)
        mod.generate(out_dir, model, clip, vae)
    (out_dir / "VERSION").write_text(VERSION)
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    return {str(p.relative_to(out_dir)): str(p) for p in files}


def ensure(out_dir: Path) -> Path:
    """Generate into ``out_dir`` unless a complete set of this version is already there."""
    out_dir = Path(out_dir)
    stamp = out_dir / "VERSION"
    if stamp.is_file() and stamp.read_text() == VERSION:
        return out_dir
    generate(out_dir)
    return out_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--force", action="store_true", help="regenerate even if the stamp matches")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if ns.force and (ns.out / "VERSION").exists():
        (ns.out / "VERSION").unlink()
    ensure(ns.out)
    sizes = {str(p.relative_to(ns.out)): p.stat().st_size for p in sorted(ns.out.rglob("*")) if p.is_file()}
    json.dump(sizes, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
