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


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def load_api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def with_tiny(api: dict, **overrides) -> dict:
    """Copy of an API graph running on the tiny checkpoint, with inputs overridden per class:
    ``overrides = {"FooocusInpaint_Sampler": {"steps": 4}, ...}``."""
    api = copy.deepcopy(api)
    for node in api.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["inputs"]["ckpt_name"] = TINY_CKPT
        for k, v in overrides.get(node["class_type"], {}).items():
            node["inputs"][k] = v
    return api


def far_from_mask(mask_u8: np.ndarray, distance: int = 32) -> np.ndarray:
    """Boolean map of pixels whose Chebyshev distance to every mask pixel > 127 exceeds ``distance``."""
    rep = mask_u8 > 127
    if not rep.any():
        return np.ones_like(rep)
    d = ndimage.distance_transform_cdt(~rep, metric="chessboard")
    return d > distance
