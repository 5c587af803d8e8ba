"""The Stable Diffusion safety checker (NSFW concept detector) used by Fooocus, without diffusers.

Fooocus counterparts (2.5.5): ``extras/censor.py`` (preprocess with ``CLIPImageProcessor``, run the checker, replace
flagged images by black) and ``extras/safety_checker/models/safety_checker.py`` (diffusers'
``StableDiffusionSafetyChecker``). See spec ``fooocus-pipeline.md`` §9.

Model: a CLIP vision tower (ViT-L/14 in the real file) whose pooled output goes through ``visual_projection``
(no bias) into the projection space; the image embedding is compared (cosine similarity) with 17 concept
embeddings and 3 "special care" embeddings, each with its own threshold. A special-care hit adds 0.01 to every
concept score; an image is NSFW when any concept score is above 0. Scores are rounded to 3 decimals before the
comparisons (diffusers' non-ONNX ``forward``, INFERRED to be the one Fooocus calls).

Weight layout (diffusers / Fooocus ``stable-diffusion-safety-checker.bin``): ``vision_model.vision_model.*`` (a
``transformers.CLIPVisionModel`` under ``vision_model.``), ``visual_projection.weight [P, H]``,
``concept_embeds [17, P]``, ``special_care_embeds [3, P]``, ``concept_embeds_weights [17]``,
``special_care_embeds_weights [3]``. ``transformers`` is imported lazily (only to build the vision tower).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "CROP_SIZE",
    "SPECIAL_CARE_ADJUSTMENT",
    "SafetyCheckerWeights",
    "preprocess",
    "cosine_similarity",
    "nsfw_scores",
    "split_state_dict",
    "vision_config_from_state_dict",
    "vision_config_from_json",
    "build_vision_model",
    "SafetyChecker",
    "black_out",
]

logger = logging.getLogger(__name__)

#: CLIPImageProcessor's normalisation (OpenAI CLIP mean/std).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Input size of the vision tower (shortest side resize target and centre crop).
CROP_SIZE = 224
#: Added to every concept score of an image with a special-care hit.
SPECIAL_CARE_ADJUSTMENT = 0.01

_HEAD_KEYS = ("visual_projection.weight", "concept_embeds", "special_care_embeds", "concept_embeds_weights",
              "special_care_embeds_weights")
_VISION_PREFIX = "vision_model."


def preprocess(images_u8: np.ndarray, size: int = CROP_SIZE) -> torch.Tensor:
    """CLIPImageProcessor preprocessing: shortest side to ``size`` (PIL bicubic), centre crop, rescale, normalise.

    The long side becomes ``int(size * long / short)`` (truncated); the crop starts at ``(dim - size) // 2``.
    Fooocus: ``extras/censor.py`` (``feature_extractor(images, return_tensors="pt")``, a ``CLIPImageProcessor``
    with ``size.shortest_edge=224``, ``crop_size=224``, bicubic, CLIP mean/std).

    Args:
        images_u8: uint8 ``[B, H, W, 3]`` (or one ``[H, W, 3]``) RGB images.
        size: the resize and crop size (224 for the real checker).
    Returns:
        float32 ``[B, 3, size, size]``, normalised with :data:`CLIP_MEAN` / :data:`CLIP_STD`.
    Raises:
        ValueError: not uint8 RGB images, or ``size`` not a positive int.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    arr = np.asarray(images_u8)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"images_u8: expected uint8 [B, H, W, 3], got {arr.dtype} {arr.shape}")
    mean = np.asarray(CLIP_MEAN, np.float32)
    std = np.asarray(CLIP_STD, np.float32)
    out = []
    for img in arr:
        h, w = img.shape[:2]
        short, long = (h, w) if h <= w else (w, h)
        new_long = int(size * long / short)
        new_h, new_w = (size, new_long) if h <= w else (new_long, size)
        if (new_h, new_w) != (h, w):
            img = np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.BICUBIC))
        top = (new_h - size) // 2
        left = (new_w - size) // 2
        img = img[max(top, 0):max(top, 0) + size, max(left, 0):max(left, 0) + size]
        if img.shape[:2] != (size, size):  # smaller than the crop: pad with zeros, as transformers does
            padded = np.zeros((size, size, 3), np.uint8)
            oy, ox = (size - img.shape[0]) // 2, (size - img.shape[1]) // 2
            padded[oy:oy + img.shape[0], ox:ox + img.shape[1]] = img
            img = padded
        x = img.astype(np.float32) * np.float32(1 / 255)
        out.append(((x - mean) / std).transpose(2, 0, 1))
    return torch.from_numpy(np.ascontiguousarray(np.stack(out)))


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``normalize(a) @ normalize(b).T`` (L2 over the last axis).

    Fooocus: ``safety_checker.py`` ``cosine_distance`` (named "distance" there, it is a similarity).

    Args:
        a: ``[N, P]``; b: ``[M, P]``, float.
    Returns:
        ``[N, M]`` in ``a``'s dtype.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a/b: expected [N, P] and [M, P], got {tuple(a.shape)} and {tuple(b.shape)}")
    an = torch.nn.functional.normalize(a, dim=-1)
    bn = torch.nn.functional.normalize(b.to(a.dtype), dim=-1)
    return an @ bn.T


@dataclass
class SafetyCheckerWeights:
    """The checker head: projection and the concept tables (see the module docstring for shapes)."""

    visual_projection: torch.Tensor
    concept_embeds: torch.Tensor
    special_care_embeds: torch.Tensor
    concept_embeds_weights: torch.Tensor
    special_care_embeds_weights: torch.Tensor


def nsfw_scores(image_embeds: torch.Tensor, head: SafetyCheckerWeights) -> tuple[list[bool], list[dict]]:
    """Concept scores and NSFW flags from projected image embeddings.

    Per image: ``special[k] = round(cos(e, special_k) - special_threshold_k + adj, 3)`` where ``adj`` becomes
    0.01 once a special score is > 0 (later special scores see it too); then
    ``concept[k] = round(cos(e, concept_k) - concept_threshold_k + adj, 3)``; NSFW = any concept score > 0.
    Cosines are computed in the embeddings' dtype, the rest in float64 (Python ``round``).

    Fooocus: ``extras/safety_checker/models/safety_checker.py`` ``StableDiffusionSafetyChecker.forward``.

    Args:
        image_embeds: ``[B, P]``, the ``visual_projection`` of the pooled vision output.
        head: the checker tables.
    Returns:
        ``(has_nsfw_concepts [B] bools, details [B] dicts with "special_scores", "concept_scores" (lists of
        floats), "special_care" and "bad_concepts" (lists of indices))``.
    """
    special = cosine_similarity(image_embeds, head.special_care_embeds).detach().cpu().float().numpy()
    concept = cosine_similarity(image_embeds, head.concept_embeds).detach().cpu().float().numpy()
    special_thr = [float(x) for x in head.special_care_embeds_weights.detach().cpu().float().reshape(-1)]
    concept_thr = [float(x) for x in head.concept_embeds_weights.detach().cpu().float().reshape(-1)]
    if special.shape[1] != len(special_thr) or concept.shape[1] != len(concept_thr):
        raise ValueError("head: the concept tables and their thresholds have different lengths")
    flags: list[bool] = []
    details: list[dict] = []
    for i in range(special.shape[0]):
        adjustment = 0.0
        d: dict[str, list] = {"special_scores": [], "special_care": [], "concept_scores": [], "bad_concepts": []}
        for k, thr in enumerate(special_thr):
            score = round(float(special[i, k]) - thr + adjustment, 3)
            d["special_scores"].append(score)
            if score > 0:
                d["special_care"].append(k)
                adjustment = SPECIAL_CARE_ADJUSTMENT
        for k, thr in enumerate(concept_thr):
            score = round(float(concept[i, k]) - thr + adjustment, 3)
            d["concept_scores"].append(score)
            if score > 0:
                d["bad_concepts"].append(k)
        flags.append(len(d["bad_concepts"]) > 0)
        details.append(d)
    return flags, details


def split_state_dict(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], SafetyCheckerWeights]:
    """Split a checker state dict into the ``CLIPVisionModel`` state dict and the head tables.

    Accepts the diffusers layout (``vision_model.vision_model.*``) and, for robustness, a vision tower saved
    without the outer ``vision_model.`` (``vision_model.embeddings...`` directly). ``position_ids`` buffers are
    dropped (not persistent in current transformers).

    Returns:
        ``(vision_sd, head)``; ``vision_sd`` keys are the vision transformer's own names without any
        ``vision_model.`` prefix (``embeddings.…``, ``encoder.layers.N.…``, ``pre_layrnorm.…``,
        ``post_layernorm.…``); :func:`build_vision_model` adds what the installed transformers expects.
    Raises:
        ValueError: a head key is missing or has the wrong rank, naming what was expected.
    """
    if not isinstance(sd, Mapping):
        raise ValueError(f"sd: expected a dict of tensors, got {type(sd).__name__}")
    missing = [k for k in _HEAD_KEYS if k not in sd]
    if missing:
        raise ValueError(
            f"safety checker weights: missing {missing}; expected the diffusers StableDiffusionSafetyChecker "
            f"layout (vision_model.*, {', '.join(_HEAD_KEYS)})"
        )
    vision: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k in _HEAD_KEYS or not k.startswith(_VISION_PREFIX) or k.endswith("position_ids"):
            continue
        rest = k[len(_VISION_PREFIX):]
        if rest.startswith(_VISION_PREFIX):
            rest = rest[len(_VISION_PREFIX):]
        vision[rest] = v
    if not vision:
        raise ValueError("safety checker weights: no vision_model.* tensors (the CLIP vision tower) found")
    head = SafetyCheckerWeights(*(sd[k] for k in _HEAD_KEYS))
    if head.visual_projection.ndim != 2 or head.concept_embeds.ndim != 2 or head.special_care_embeds.ndim != 2:
        raise ValueError("safety checker weights: visual_projection, concept_embeds and special_care_embeds must be 2-D")
    if head.concept_embeds.shape[1] != head.visual_projection.shape[0] or \
            head.special_care_embeds.shape[1] != head.visual_projection.shape[0]:
        raise ValueError("safety checker weights: concept embeddings do not match the projection size")
    return vision, head


def vision_config_from_state_dict(vision_sd: Mapping[str, torch.Tensor], projection_dim: int) -> dict:
    """Infer a ``CLIPVisionConfig`` (as a dict) from the vision tower's weights, for files without config.json.

    hidden size, patch size and channels from ``patch_embedding.weight``; image size from the position table
    (``(sqrt(n - 1)) * patch``); layers from the highest ``encoder.layers.N``; MLP size from ``fc1``; heads =
    ``hidden // 64`` (ViT-L/14: 16); ``quick_gelu`` and ``layer_norm_eps = 1e-5`` as OpenAI CLIP.

    Fooocus: none (it ships ``extras/safety_checker/configs/config.json`` beside the code); this lets a bare
    ``stable-diffusion-safety-checker.bin`` load without that GPL file.

    Args:
        vision_sd: the tower's weights from :func:`split_state_dict`.
        projection_dim: rows of ``visual_projection.weight``.
    Returns:
        ``CLIPVisionConfig`` keyword arguments (dict of ints/str/float).
    Raises:
        ValueError: a needed weight is missing or the position table is not a square grid plus one.
    """
    try:
        patch = vision_sd["embeddings.patch_embedding.weight"]
        pos = vision_sd["embeddings.position_embedding.weight"]
        fc1 = vision_sd["encoder.layers.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise ValueError(f"safety checker weights: cannot infer the vision config, {exc} is missing") from None
    hidden, channels, p, _ = patch.shape
    n_patches = pos.shape[0] - 1
    side = int(round(n_patches ** 0.5))
    if side * side != n_patches:
        raise ValueError(f"safety checker weights: {n_patches} position embeddings is not a square grid")
    layers = 1 + max(int(k.split(".")[2]) for k in vision_sd if k.startswith("encoder.layers."))
    return {
        "hidden_size": int(hidden),
        "intermediate_size": int(fc1.shape[0]),
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, int(hidden) // 64),
        "num_channels": int(channels),
        "image_size": side * int(p),
        "patch_size": int(p),
        "projection_dim": int(projection_dim),
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }


_VISION_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels",
                "image_size", "patch_size", "projection_dim", "hidden_act", "layer_norm_eps", "attention_dropout",
                "initializer_range", "initializer_factor", "dropout")


def vision_config_from_json(path: str | os.PathLike) -> dict:
    """Read the vision config from a diffusers ``config.json`` (``vision_config`` of a ``CLIPConfig``) or a plain
    ``CLIPVisionConfig`` json; only the keys that shape the tower are kept.

    Fooocus: ``extras/safety_checker/configs/config.json`` read by ``StableDiffusionSafetyChecker.from_pretrained``.

    Raises:
        ValueError: unreadable / malformed file.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"config: cannot read the safety checker config {p} ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config: {p} is not a JSON object")
    vision = data.get("vision_config", data)
    if not isinstance(vision, dict):
        raise ValueError(f"config: {p} has a vision_config that is not an object")
    out = {k: vision[k] for k in _VISION_KEYS if k in vision}
    if "projection_dim" not in out and "projection_dim" in data:
        out["projection_dim"] = data["projection_dim"]
    return out


def build_vision_model(config: Mapping[str, Any], vision_sd: Mapping[str, torch.Tensor]) -> Any:
    """Build ``transformers.CLIPVisionModel`` from a config dict and load its weights (strict).

    Fooocus: ``StableDiffusionSafetyChecker.__init__`` (``CLIPVisionModel(config.vision_config)``) + weight loading.

    Args:
        config: ``CLIPVisionConfig`` keyword arguments (:func:`vision_config_from_json` /
            :func:`vision_config_from_state_dict`).
        vision_sd: the tower's weights as :func:`split_state_dict` returns them (no ``vision_model.`` prefix).
    Returns:
        The model in eval mode (CPU, float32 unless the weights say otherwise).

    Raises:
        ValueError: the weights do not fit the config (missing/unexpected keys or shapes).
    """
    from transformers import CLIPVisionConfig, CLIPVisionModel  # lazy

    cfg = CLIPVisionConfig(**dict(config))
    model = CLIPVisionModel(cfg)
    # transformers 4.x nests the tower under ``vision_model.``; 5.x does not
    nested = any(k.startswith(_VISION_PREFIX) for k in model.state_dict())
    sd = {(_VISION_PREFIX + k if nested else k): v for k, v in vision_sd.items()}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"safety checker weights do not fit the vision config {dict(config)}: {str(exc)[:500]}") from None
    return model.eval()


class SafetyChecker(torch.nn.Module):
    """Vision tower + projection + concept tables; :meth:`check` gives NSFW flags for uint8 images.

    Fooocus: ``extras/censor.py`` ``Censor`` + diffusers ``StableDiffusionSafetyChecker``.
    """

    def __init__(self, vision_model: torch.nn.Module, head: SafetyCheckerWeights, image_size: int = CROP_SIZE):
        super().__init__()
        self.vision_model = vision_model
        self.visual_projection = torch.nn.Linear(head.visual_projection.shape[1], head.visual_projection.shape[0],
                                                 bias=False)
        with torch.no_grad():
            self.visual_projection.weight.copy_(head.visual_projection.float())
        self.register_buffer("concept_embeds", head.concept_embeds.float().clone())
        self.register_buffer("special_care_embeds", head.special_care_embeds.float().clone())
        self.register_buffer("concept_embeds_weights", head.concept_embeds_weights.float().clone())
        self.register_buffer("special_care_embeds_weights", head.special_care_embeds_weights.float().clone())
        self.image_size = int(image_size)

    def head(self) -> SafetyCheckerWeights:
        return SafetyCheckerWeights(self.visual_projection.weight, self.concept_embeds, self.special_care_embeds,
                                    self.concept_embeds_weights, self.special_care_embeds_weights)

    @torch.no_grad()
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` normalised pixels → projected embeddings ``[B, P]`` (pooled output = CLS token after
        the post layer norm)."""
        p = next(self.parameters())
        out = self.vision_model(pixel_values=pixel_values.to(device=p.device, dtype=p.dtype))
        pooled = out.pooler_output if hasattr(out, "pooler_output") else out[1]
        return self.visual_projection(pooled.to(self.visual_projection.weight.dtype))

    @torch.no_grad()
    def check(self, images_u8: np.ndarray) -> tuple[list[bool], list[dict]]:
        """uint8 ``[B, H, W, 3]`` → ``(has_nsfw_concepts, details)`` (see :func:`nsfw_scores`)."""
        embeds = self.embed(preprocess(images_u8, self.image_size))
        return nsfw_scores(embeds, self.head())


def black_out(images_u8: np.ndarray, flags: list[bool]) -> np.ndarray:
    """Replace flagged images by black (zeros), same shape; a copy.

    Fooocus: ``extras/censor.py`` (``np.zeros(image.shape)`` for NSFW images, cast back to uint8).
    """
    arr = np.array(images_u8, copy=True)
    if arr.ndim != 4 or len(flags) != arr.shape[0]:
        raise ValueError(f"flags: expected one flag per image ({arr.shape[0] if arr.ndim == 4 else '?'}), got {len(flags)}")
    for i, f in enumerate(flags):
        if f:
            arr[i] = 0
    return arr
