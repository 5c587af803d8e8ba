"""Test-only ComfyUI extension: teaches ComfyUI's model detection a tiny SDXL-architecture config.

It is linked into the *test* host's ``custom_nodes`` only, never shipped with the pack. Importing it
inserts :class:`TinySDXL` at the front of ``comfy.supported_models.models``; model detection iterates
that list at call time and matches a config only when every key of its ``unet_config`` equals the
detected one, so real checkpoints (``model_channels`` 320) still resolve to ComfyUI's own classes.

The tiny model is the real ``comfy.model_base.SDXL`` (ADM size conditioning, 2048-wide
cross-attention) with a 32-channel UNet, and the real SDXL CLIP-L + CLIP-G classes with 3 layers,
a narrow MLP and a 1024-row hashed token table (token ids are taken modulo 1024), so the shipped
tokenizers and every code path stay those of SDXL.

It also provides the node ``TinyCLIPVisionLoader``: the same input (``clip_name``, a combo of the
``clip_vision`` files) and output (``CLIP_VISION``) as ComfyUI's ``CLIPVisionLoader``, which cannot load
the tiny CLIP vision file (``comfy.clip_vision.load`` picks its config by layer count). It builds the real
``comfy.clip_vision.ClipVisionModel`` from :data:`TINY_CLIP_VISION_CONFIG` and loads the file's weights.
Tests substitute it for ``CLIPVisionLoader`` in graphs.
"""
from __future__ import annotations

import json
import os
import tempfile

import comfy.clip_vision
import comfy.ops
import comfy.sdxl_clip
import comfy.supported_models
import comfy.supported_models_base

TINY_UNET_CONFIG = {
    "model_channels": 32,
    "use_linear_in_transformer": True,
    "transformer_depth": [0, 1],
    "context_dim": 2048,
    "adm_in_channels": 2816,
    "use_temporal_attention": False,
}
# The complete UNetModel arguments, as ComfyUI's detect_unet_config reports them for the tiny file.
TINY_UNET_FULL_CONFIG = {
    **TINY_UNET_CONFIG,
    "use_checkpoint": False,
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth_middle": 1,
    "transformer_depth_output": [0, 0, 1, 1],
    "num_head_channels": 64,
    "use_temporal_resblock": False,
}
HASHED_VOCAB = 1024
CLIP_OVERRIDES = {"num_hidden_layers": 3, "intermediate_size": 256}


class HashedEmbedding(comfy.ops.manual_cast.Embedding):
    """Token table with ``HASHED_VOCAB`` rows; ids are reduced modulo the row count."""

    def forward(self, input, out_dtype=None):  # noqa: A002 - torch's name
        return super().forward(input % self.num_embeddings, out_dtype=out_dtype)


class TinySDXLClipModel(comfy.sdxl_clip.SDXLClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):  # noqa: B006 - ComfyUI's signature
        model_options = {
            **model_options,
            "clip_l_model_config": dict(CLIP_OVERRIDES),
            "clip_g_model_config": dict(CLIP_OVERRIDES),
        }
        super().__init__(device=device, dtype=dtype, model_options=model_options)
        for enc in (self.clip_l, self.clip_g):
            old = enc.transformer.get_input_embeddings()
            enc.transformer.set_input_embeddings(
                HashedEmbedding(HASHED_VOCAB, old.embedding_dim, dtype=old.weight.dtype, device=old.weight.device)
            )


class TinySDXL(comfy.supported_models.SDXL):
    unet_config = dict(TINY_UNET_CONFIG)

    def clip_target(self, state_dict={}):  # noqa: B006 - ComfyUI's signature
        return comfy.supported_models_base.ClipTarget(comfy.sdxl_clip.SDXLTokenizer, TinySDXLClipModel)


if not any(getattr(m, "__name__", "") == "TinySDXL" for m in comfy.supported_models.models):
    comfy.supported_models.models.insert(0, TinySDXL)


TINY_CLIP_WIDTH = 64
#: A 3-layer, 64-wide ViT with the CLIP-ViT-H/14 code path (``clip_vision_model``, 224 input).
TINY_CLIP_VISION_CONFIG = {
    "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "gelu", "hidden_size": TINY_CLIP_WIDTH,
    "image_size": 224, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 128,
    "layer_norm_eps": 1e-05, "model_type": "clip_vision_model", "num_attention_heads": 2, "num_channels": 3,
    "num_hidden_layers": 3, "patch_size": 32, "projection_dim": 32, "torch_dtype": "float32",
}


def tiny_clip_vision_model() -> comfy.clip_vision.ClipVisionModel:
    """An (unloaded) ``ClipVisionModel`` of the tiny config (``ClipVisionModel`` reads a json file)."""
    with tempfile.TemporaryDirectory(prefix="tiny_clip_vision_") as d:
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump(TINY_CLIP_VISION_CONFIG, f)
        return comfy.clip_vision.ClipVisionModel(path)


class TinyCLIPVisionLoader:
    """``CLIPVisionLoader`` for the tiny CLIP vision weights (same input and output)."""

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        import folder_paths

        return {"required": {"clip_name": (folder_paths.get_filename_list("clip_vision"),)}}

    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "load_clip"
    CATEGORY = "loaders"

    def load_clip(self, clip_name):
        import comfy.utils
        import folder_paths

        path = folder_paths.get_full_path_or_raise("clip_vision", clip_name)
        sd = comfy.utils.load_torch_file(path)
        cv = tiny_clip_vision_model()
        missing, unexpected = cv.load_sd(sd)
        if missing or unexpected:
            raise RuntimeError(f"{clip_name}: not a tiny CLIP vision file (missing {list(missing)[:4]}, "
                               f"unexpected {list(unexpected)[:4]})")
        return (cv,)


NODE_CLASS_MAPPINGS: dict = {"TinyCLIPVisionLoader": TinyCLIPVisionLoader}
NODE_DISPLAY_NAME_MAPPINGS: dict = {"TinyCLIPVisionLoader": "Load CLIP Vision (tiny, tests)"}
