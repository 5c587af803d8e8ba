"""Socket types the pack's nodes exchange, and the Python objects that travel on them."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from comfy_api.latest import io

InpaintPatchIO = io.Custom("FOOOCUS_INPAINT_PATCH")
InpaintDataIO = io.Custom("FOOOCUS_INPAINT")
# A per-image prompt: an object with ``conditioning(seed, image_index=0) -> (positive, negative)`` (ComfyUI
# CONDITIONING lists), so Fooocus's per-image parts (task seed, Random Style, Fooocus V2 expansion)
# follow the seed of each image. Made by the prompt nodes; consumed by Fooocus Sampler.
PromptIO = io.Custom("FOOOCUS_PROMPT")


@dataclass(frozen=True)
class FooocusInpaintPatch:
    """The Fooocus inpaint model: head weight [C,5,3,3] and the uint8 patch ``{unet_key: PatchEntry}``.

    ``engine`` is "v1", "v2.5", "v2.6" (from the patch file name) or "custom" for renamed files.
    """

    head: torch.Tensor
    patch: dict
    engine: str
    head_file: str
    patch_file: str

    def __repr__(self) -> str:  # keep ComfyUI's logs short
        return f"FooocusInpaintPatch(engine={self.engine!r}, head={self.head_file!r}, patch={self.patch_file!r})"


@dataclass
class FooocusInpaintData:
    """Everything sampling and paste-back need, from :class:`InpaintConditioning`.

    ``prep`` is the engine's :class:`engine.inpaint_prep.InpaintPrep` (crop box, working-size crop,
    fill, masks, soft blend mask, the full image). The latents are raw VAE latents ``[1,4,h,w]``
    (not scaled); ``latent_mask`` is ``[1,1,h,w]`` in {0,1}. ``active`` is False when nothing is to
    be repainted (no mask pixel > 127): sampling is skipped and the image comes back unchanged.
    """

    prep: object
    active: bool
    latent_fill: torch.Tensor | None = None
    latent_inpaint: torch.Tensor | None = None
    latent_mask: torch.Tensor | None = None
    strength: float = 1.0
    meta: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"FooocusInpaintData(active={self.active}, meta={self.meta})"
