"""Test-only ComfyUI extension: teaches ComfyUI's model detection a tiny SDXL-architecture config.

It is linked into the *test* host's ``custom_nodes`` only, never shipped with the pack. Importing it
inserts :class:`TinySDXL` at the front of ``comfy.supported_models.models``; model detection iterates
that list at call time and matches a config only when every key of its ``unet_config`` equals the
detected one, so real checkpoints (``model_channels`` 320) still resolve to ComfyUI's own classes.

The tiny model is the real ``comfy.model_base.SDXL`` (ADM size conditioning, 2048-wide
cross-attention) with a 32-channel UNet, and the real SDXL CLIP-L + CLIP-G classes with 3 layers,
a narrow MLP and a 1024-row hashed token table (token ids are taken modulo 1024), so the shipped
tokenizers and every code path stay those of SDXL.
"""
from __future__ import annotations

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

NODE_CLASS_MAPPINGS: dict = {}
