"""Helpers shared by the end-to-end inpaint tests (not a test module)."""
from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
TINY_CKPT = "tiny_sdxl.safetensors"
TINY_SD15 = "tiny_sd15.safetensors"
TINY_SDXL_REFINER = "tiny_sdxl_refiner.safetensors"
#: Real checkpoint names used by shipped workflows / fal requests -> the tiny stand-in (others: TINY_CKPT).
TINY_CHECKPOINTS = {"realisticVisionV60B1_v51VAE.safetensors": TINY_SD15,
                    "sd_xl_refiner_1.0.safetensors": TINY_SDXL_REFINER,
                    TINY_SD15: TINY_SD15, TINY_SDXL_REFINER: TINY_SDXL_REFINER}
#: Node types that cannot load the tiny files -> the test extension's drop-in replacement.
TINY_CLASS_TYPES = {"CLIPVisionLoader": "TinyCLIPVisionLoader"}


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def load_api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def with_tiny(api: dict, **overrides) -> dict:
    """Copy of an API graph running on the tiny models, with inputs overridden per class:
    ``overrides = {"FooocusInpaint_Sampler": {"steps": 4}, ...}`` (by the original class type).

    Checkpoints: the SD1.5 refiner (realisticVision) -> ``tiny_sd15``, the SDXL refiner ->
    ``tiny_sdxl_refiner``, any other -> ``tiny_sdxl``. ``CLIPVisionLoader`` becomes the test extension's
    ``TinyCLIPVisionLoader`` (same input and output; ComfyUI's loader cannot load the tiny file)."""
    api = copy.deepcopy(api)
    for node in api.values():
        cls = node["class_type"]
        if cls == "CheckpointLoaderSimple":
            node["inputs"]["ckpt_name"] = TINY_CHECKPOINTS.get(node["inputs"].get("ckpt_name"), TINY_CKPT)
        for k, v in overrides.get(cls, {}).items():
            node["inputs"][k] = v
        node["class_type"] = TINY_CLASS_TYPES.get(cls, cls)
    return api


def node_defaults(input_types: dict, **given) -> dict:
    """Every input of a node (``INPUT_TYPES()`` or the ``input`` of its /object_info entry) at its default,
    overridden by ``given`` (which may also add inputs without a default)."""
    out = {}
    for sec in ("required", "optional"):
        for k, v in input_types.get(sec, {}).items():
            if k in given:
                out[k] = given[k]
            elif len(v) > 1 and isinstance(v[1], dict) and "default" in v[1]:
                out[k] = v[1]["default"]
    out.update({k: v for k, v in given.items() if k not in out})
    return out


def far_from_mask(mask_u8: np.ndarray, distance: int = 32) -> np.ndarray:
    """Boolean map of pixels whose Chebyshev distance to every mask pixel > 127 exceeds ``distance``."""
    rep = mask_u8 > 127
    if not rep.any():
        return np.ones_like(rep)
    d = ndimage.distance_transform_cdt(~rep, metric="chessboard")
    return d > distance
