"""Attach the Fooocus inpaint head and patch to a ComfyUI model, through ``ModelPatcher`` only.

- The dense uint8 weight patch becomes one :class:`FooocusU8Delta` per weight, given to
  ``ModelPatcher.add_patches`` on a *clone*. ComfyUI's own ``comfy.lora.calculate_weight`` calls it
  when it patches that weight (``WeightAdapterBase`` dispatch), so nothing global is replaced, other
  packs' Fooocus patches keep working, and other graphs never see ours. The uint8 tensors stay as
  they are (1 byte per patched parameter); each weight is decoded in float32 only while ComfyUI
  patches it.
- The head feature is added right after UNet input block 0 with ``set_model_input_block_patch``.

Fooocus counterparts: ``modules/patch.py calculate_weight_patched`` ('fooocus' type),
``modules/inpaint_worker.py InpaintWorker.patch`` and the patched UNet forward (``patch.py:401-410``).
"""
from __future__ import annotations

import logging

import torch
from comfy.weight_adapter.base import WeightAdapterBase

from ..engine.inpaint_head import head_feature
from ..engine.inpaint_patch import PatchEntry, decode_delta, match_keys

log = logging.getLogger(__name__)

HEAD_PATCH_MARK = "_fooocus_inpaint_head"
IP_PATCH_MARK = "_fooocus_ip_adapter"  # set by nodes/image_prompt.py on its attn2 replacements


class FooocusU8Delta(WeightAdapterBase):
    """One weight's Fooocus delta ``(u8/255)*(max-min)+min``, decoded in float32 when applied."""

    name = "fooocus_u8"

    def __init__(self, entry: PatchEntry):
        self.entry = entry
        self.loaded_keys = set()
        self.weights = [entry.u8]

    def calculate_weight(self, weight, key, strength, strength_model, offset, function,
                         intermediate_dtype=torch.float32, original_weight=None):
        if tuple(self.entry.u8.shape) != tuple(weight.shape):
            log.warning("Fooocus inpaint patch: shape mismatch for %s (patch %s, model %s); not merged",
                        key, tuple(self.entry.u8.shape), tuple(weight.shape))
            return weight
        # Fooocus: W(float32) += alpha * delta, the delta decoded in float32 on the weight's device
        d = decode_delta(self.entry, weight.device, torch.float32)
        if strength != 1.0:
            d.mul_(strength)
        weight += function(d.to(weight.dtype))
        return weight


def add_inpaint_patch(model, patch: dict[str, PatchEntry], strength: float = 1.0):
    """Return a clone of ``model`` (a ``ModelPatcher``) with the Fooocus weight patch added.

    Raises ``ValueError`` when no patch key matches the model (a patch for another architecture).
    Keys that do not match are logged; ComfyUI-style partial application is kept, as Fooocus does.
    """
    m = model.clone()
    model_keys = m.model.state_dict().keys()
    matched, unmatched = match_keys(patch.keys(), model_keys)
    if not matched:
        raise ValueError(
            "inpaint_patch: none of the patch's %d weights match this model (is it an SDXL model? "
            "first patch key %r)" % (len(patch), next(iter(patch), None)))
    if unmatched:
        log.warning("Fooocus inpaint patch: %d of %d weights have no counterpart in the model (first: %s)",
                    len(unmatched), len(patch), unmatched[0])
    m.add_patches({mk: FooocusU8Delta(PatchEntry(*patch[pk])) for pk, mk in matched.items()}, strength)
    return m


def add_head_feature(model, head: torch.Tensor, latent_mask: torch.Tensor, latent_inpaint: torch.Tensor):
    """Return a clone of ``model`` that adds the inpaint-head feature to ``h`` after input block 0.

    The feature ``head(cat[latent_mask, latent_inpaint * 0.13025])`` ([1, C, h, w]) is computed once
    per device/dtype, in the dtype and on the device of the UNet's activations (as Fooocus computes it
    in the model's dtype), and broadcast over the cond/uncond batch. The patch function carries a
    marker attribute so the refiner switch drops exactly this patch (not other packs' patches).
    """
    m = model.clone()
    cache: dict = {}

    def input_block_patch(h, transformer_options):
        if transformer_options.get("block") != ("input", 0):
            return h
        key = (h.device, h.dtype)
        feature = cache.get(key)
        if feature is None:
            feature = cache[key] = head_feature(head.to(h.device, h.dtype), latent_mask.to(h.device, h.dtype),
                                                latent_inpaint.to(h.device, h.dtype))
        if h.shape[1] != feature.shape[1] or h.shape[2:] != feature.shape[2:]:
            raise ValueError(
                f"inpaint head: feature {tuple(feature.shape)} does not fit the output of UNet input block 0 "
                f"{tuple(h.shape)} (a head file for another model width, or a latent of another size)")
        return h + feature

    setattr(input_block_patch, HEAD_PATCH_MARK, True)
    m.set_model_input_block_patch(input_block_patch)
    return m


def strip_fooocus_patches(model_options: dict) -> dict:
    """A copy of ``model_options`` without this pack's head patch and image-prompt attention
    (used after the refiner switch: Fooocus's refiner never has them)."""
    import comfy.model_patcher

    mo = comfy.model_patcher.create_model_options_clone(model_options)
    patches = mo.get("transformer_options", {}).get("patches", {})
    if "input_block_patch" in patches:
        patches["input_block_patch"] = [p for p in patches["input_block_patch"] if not getattr(p, HEAD_PATCH_MARK, False)]
    # the image-prompt (IP-Adapter) attention replacements are dropped too, as Fooocus does
    repl = mo.get("transformer_options", {}).get("patches_replace", {})
    if repl.get("attn2"):
        repl["attn2"] = {k: f for k, f in repl["attn2"].items() if not getattr(f, IP_PATCH_MARK, False)}
    return mo
