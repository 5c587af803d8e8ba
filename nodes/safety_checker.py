"""ComfyUI glue for the safety checker: finding its weights in the ``safety_checker`` model folder, loading them
safely into :class:`engine.safety.SafetyChecker` under ComfyUI's memory management, and running it.

Accepted layouts (Fooocus / diffusers):

- a single file at the top of the folder, e.g. Fooocus's ``stable-diffusion-safety-checker.bin`` (a torch pickle of
  diffusers' ``StableDiffusionSafetyChecker`` state dict) or a ``.safetensors`` re-save; its vision config is read
  from ``<stem>.json`` beside it when present, else inferred from the weights (ViT-L/14 for the real file);
- a folder (diffusers ``CompVis/stable-diffusion-safety-checker`` layout) holding ``config.json`` and
  ``model.safetensors`` or ``pytorch_model.bin``.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import folder_paths
import numpy as np

from ..engine import safety
from ..engine.safe_pickle import load_model_file

log = logging.getLogger(__name__)

FOLDER = "safety_checker"
DEFAULT_CHECKER = "stable-diffusion-safety-checker.bin"
WEIGHT_SUFFIXES = (".bin", ".safetensors", ".pth", ".pt")
FOLDER_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
HINT = (
    "the safety checker needs Fooocus's stable-diffusion-safety-checker.bin (mashb1t/misc, 1.2 GB) in "
    "ComfyUI/models/safety_checker, or a diffusers CompVis/stable-diffusion-safety-checker folder (config.json + "
    "model.safetensors or pytorch_model.bin) there; or set 'enabled' to false"
)


def _folders() -> list[str]:
    try:
        return list(folder_paths.get_folder_paths(FOLDER))
    except KeyError:
        return []


def checker_names() -> list[str]:
    """Weight files at the top of the ``safety_checker`` folders, and sub-folders holding a diffusers checker."""
    names = set()
    for folder in _folders():
        p = Path(folder)
        if not p.is_dir():
            continue
        for child in p.iterdir():
            if child.is_file() and child.suffix.lower() in WEIGHT_SUFFIXES:
                names.add(child.name)
            elif child.is_dir() and any((child / n).is_file() for n in FOLDER_WEIGHT_NAMES):
                names.add(child.name)
    return sorted(names)


def resolve_checker(name: str) -> tuple[Path, Path | None]:
    """``name`` → ``(weights file, config.json or None)``; a clear ``ValueError`` when absent."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"checker: expected a file or folder name inside models/{FOLDER}, got {name!r}")
    for folder in _folders():
        p = Path(folder) / name
        if p.is_file():
            cfg = p.with_suffix(".json")
            return p, cfg if cfg.is_file() else None
        if p.is_dir():
            weights = next((p / n for n in FOLDER_WEIGHT_NAMES if (p / n).is_file()), None)
            if weights is None:
                raise ValueError(f"checker: folder {p} has no {' or '.join(FOLDER_WEIGHT_NAMES)}; {HINT}")
            cfg = p / "config.json"
            return weights, cfg if cfg.is_file() else None
    raise ValueError(f"checker: {name!r} not found in the {FOLDER} model folders ({', '.join(_folders())}); {HINT}")


def build_checker(weights: Path, config: Path | None) -> safety.SafetyChecker:
    """Load the weights safely and build the checker (CPU, float32)."""
    obj, _, _ = load_model_file(weights, what="safety checker weights",
                                expected="the StableDiffusionSafetyChecker state dict")
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    vision_sd, head = safety.split_state_dict(obj)
    cfg = safety.vision_config_from_state_dict(vision_sd, head.visual_projection.shape[0])
    if config is not None:
        cfg.update(safety.vision_config_from_json(config))
    model = safety.build_vision_model(cfg, vision_sd)
    return safety.SafetyChecker(model, head, image_size=int(cfg["image_size"]))


class LoadedChecker:
    """A safety checker on ComfyUI's text-encoder device (Fooocus keeps it beside the CLIP), fp16 where supported."""

    def __init__(self, checker: safety.SafetyChecker):
        load_device = comfy.model_management.text_encoder_device()
        offload_device = comfy.model_management.text_encoder_offload_device()
        if comfy.model_management.should_use_fp16(device=load_device):
            checker = checker.half()
        self.patcher = comfy.model_patcher.ModelPatcher(checker, load_device=load_device, offload_device=offload_device)

    def check(self, images_u8: np.ndarray) -> tuple[list[bool], list[dict]]:
        comfy.model_management.load_models_gpu([self.patcher])
        return self.patcher.model.check(images_u8)


_CACHE: OrderedDict = OrderedDict()


def get_checker(name: str) -> LoadedChecker:
    """Load (once; cached while the file is unchanged) the checker ``name`` of the ``safety_checker`` folder."""
    weights, config = resolve_checker(name)
    st = weights.stat()
    cst = config.stat().st_mtime_ns if config is not None else None
    key = (str(weights), st.st_mtime_ns, st.st_size, str(config), cst)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = LoadedChecker(build_checker(weights, config))
        log.info("safety checker loaded from %s", weights)
    return _CACHE[key]
