"""Test-only ComfyUI extension: teaches ComfyUI's model detection a tiny SD1.5-architecture config.

Like ``tiny_sdxl_ext``: importing it inserts :class:`TinySD15` at the front of
``comfy.supported_models.models``; it matches only a UNet with ``model_channels`` 32 and a 768-wide
context, so real SD1.5 checkpoints (320 channels) keep ComfyUI's own class. The model is the real
``comfy.model_base.BaseModel`` (SD1.5 latent format, eps) with the real SD1 CLIP-L class cut to 3
layers, a narrow MLP and a 1024-row hashed token table (token ids modulo 1024).
"""
from __future__ import annotations

import comfy.ops
import comfy.sd1_clip
import comfy.supported_models
import comfy.supported_models_base

TINY_UNET_CONFIG = {
    "context_dim": 768,
    "model_channels": 32,
    "use_linear_in_transformer": False,
    "adm_in_channels": None,
    "use_temporal_attention": False,
}
TINY_UNET_FULL_CONFIG = {
    **TINY_UNET_CONFIG,
    "use_checkpoint": False,
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": None,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth": [0, 1],
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


class TinySD15ClipModel(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):  # noqa: B006 - ComfyUI's signature
        model_options = {**model_options, "clip_l_model_config": dict(CLIP_OVERRIDES)}
        super().__init__(device=device, dtype=dtype, model_options=model_options, **kwargs)
        enc = self.clip_l
        old = enc.transformer.get_input_embeddings()
        enc.transformer.set_input_embeddings(
            HashedEmbedding(HASHED_VOCAB, old.embedding_dim, dtype=old.weight.dtype, device=old.weight.device))


class TinySD15(comfy.supported_models.SD15):
    unet_config = dict(TINY_UNET_CONFIG)
    # one 64-wide head like the tiny SDXL (SD1.5's 8 heads of 8 channels are slow on CPU); weights unchanged
    unet_extra_config = {"num_heads": -1, "num_head_channels": 64}

    def clip_target(self, state_dict={}):  # noqa: B006 - ComfyUI's signature
        return comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, TinySD15ClipModel)


if not any(getattr(m, "__name__", "") == "TinySD15" for m in comfy.supported_models.models):
    comfy.supported_models.models.insert(0, TinySD15)

NODE_CLASS_MAPPINGS: dict = {}
