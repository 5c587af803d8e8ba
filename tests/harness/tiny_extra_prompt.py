"""Tiny-model plug-in: a tiny Fooocus V2 expansion GPT-2 and a tiny safety checker, in the real file layouts.

Writes under ``out_dir``:

- ``prompt_expansion/fooocus_expansion/``: ``config.json`` (a 1-layer, 32-wide GPT-2 with GPT-2's 50257-token
  vocabulary) and ``pytorch_model.bin`` (random, seeded; ``GPT2LMHeadModel`` state dict). The GPT-2 tokenizer
  files and ``positive.txt`` are GPL data from Fooocus: they are copied from ``../shared/fooocus-data`` next to
  the repo (or ``$FOOOCUS_SHARED/fooocus-data``) when present, otherwise left out (tests then skip the
  expansion end-to-end runs).
- ``safety_checker/stable-diffusion-safety-checker.bin``: the diffusers ``StableDiffusionSafetyChecker`` key
  layout (``vision_model.vision_model.*``, ``visual_projection.weight``, ``concept_embeds`` [17, 16],
  ``special_care_embeds`` [3, 16] and their thresholds) around a tiny CLIP vision tower (hidden 64, 1 head,
  2 layers, 224 px, patch 32); thresholds 2.0 so nothing is flagged (cosines are <= 1).
- ``safety_checker/tiny_safety_checker/``: the same weights in the diffusers folder layout (``config.json`` +
  ``pytorch_model.bin``).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("FOOOCUS_SHARED", REPO.parent / "shared"))
EXPANSION_DATA = SHARED / "fooocus-data" / "prompt_expansion" / "fooocus_expansion"
EXPANSION_COPY = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                  "positive.txt")

GPT2_CONFIG = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50257, "n_positions": 256,
               "n_ctx": 256, "n_embd": 32, "n_layer": 1, "n_head": 2, "activation_function": "gelu_new",
               "bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": 50256, "layer_norm_epsilon": 1e-5,
               "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "initializer_range": 0.02}
SAFETY_VISION = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 1,
                 "num_channels": 3, "image_size": 224, "patch_size": 32, "projection_dim": 16,
                 "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
SAFETY_THRESHOLD = 2.0


def tiny_gpt2_state_dict(seed: int = 41) -> dict:
    import torch
    import transformers

    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**GPT2_CONFIG))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # explicit values, independent of transformers' init code
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("weight") and "ln_" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
            elif "ln_" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
    # fp16 and without the tied lm_head.weight (the loader ties it back), to keep the cached file small
    return {k: v.detach().to(torch.float16).clone().contiguous() for k, v in model.state_dict().items()
            if k != "lm_head.weight"}


def tiny_safety_state_dict(seed: int = 51, threshold: float = SAFETY_THRESHOLD) -> dict:
    import torch
    import transformers

    cfg = transformers.CLIPVisionConfig(**SAFETY_VISION)
    torch.manual_seed(seed)
    vision = transformers.CLIPVisionModel(cfg)
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    with torch.no_grad():
        for name, t in sorted(vision.state_dict().items()):
            if "position_ids" in name:
                continue
            if t.ndim >= 2 or name.endswith("class_embedding"):
                fan_in = t[0].numel() if t.ndim >= 2 else t.numel()
                v = torch.randn(t.shape, generator=gen) / fan_in ** 0.5
            elif "norm" in name and name.endswith("weight"):
                v = torch.ones(t.shape)
            else:
                v = 0.01 * torch.randn(t.shape, generator=gen)
            # diffusers layout: StableDiffusionSafetyChecker.vision_model (CLIPVisionModel).vision_model.<name>
            bare = name[len("vision_model."):] if name.startswith("vision_model.") else name
            sd["vision_model.vision_model." + bare] = v.contiguous()
    p, h = SAFETY_VISION["projection_dim"], SAFETY_VISION["hidden_size"]
    sd["visual_projection.weight"] = torch.randn((p, h), generator=gen) / h ** 0.5
    sd["concept_embeds"] = torch.randn((17, p), generator=gen)
    sd["special_care_embeds"] = torch.randn((3, p), generator=gen)
    sd["concept_embeds_weights"] = torch.full((17,), float(threshold))
    sd["special_care_embeds_weights"] = torch.full((3,), float(threshold))
    return sd


def generate(out_dir: Path, model=None, clip=None, vae=None) -> None:
    import torch

    out_dir = Path(out_dir)
    exp = out_dir / "prompt_expansion" / "fooocus_expansion"
    exp.mkdir(parents=True, exist_ok=True)
    (exp / "config.json").write_text(json.dumps(GPT2_CONFIG, indent=1, sort_keys=True))
    torch.save(tiny_gpt2_state_dict(), exp / "pytorch_model.bin")
    if EXPANSION_DATA.is_dir():
        for name in EXPANSION_COPY:
            src = EXPANSION_DATA / name
            if src.is_file():
                shutil.copyfile(src, exp / name)

    sc = out_dir / "safety_checker"
    folder = sc / "tiny_safety_checker"
    folder.mkdir(parents=True, exist_ok=True)
    sd = tiny_safety_state_dict()
    torch.save(sd, sc / "stable-diffusion-safety-checker.bin")
    torch.save(sd, folder / "pytorch_model.bin")
    cfg = {"architectures": ["StableDiffusionSafetyChecker"], "projection_dim": SAFETY_VISION["projection_dim"],
           "vision_config": dict(SAFETY_VISION)}
    (folder / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True))


if __name__ == "__main__":
    import sys

    generate(Path(sys.argv[1]))
