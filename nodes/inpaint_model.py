"""Turn a MODEL into Fooocus's inpaint model for one inpaint job (all on ``ModelPatcher`` clones)."""
from __future__ import annotations

import logging

from ..engine.inpaint_head import check_head_width
from .patching import add_head_feature, add_inpaint_patch
from .sampling import BlendSpec, add_inpaint_blending, add_refiner_switch
from .types import FooocusInpaintData, FooocusInpaintPatch

log = logging.getLogger(__name__)

SYNTHETIC_REFINER_SWITCH = 0.8


def model_channels(model) -> int | None:
    cfg = getattr(getattr(model.model, "model_config", None), "unet_config", {}) or {}
    return cfg.get("model_channels")


def fooocus_inpaint_model(model, data: FooocusInpaintData, patch: FooocusInpaintPatch | None,
                          refiner_switch: float = SYNTHETIC_REFINER_SWITCH):
    """Return a clone of ``model`` set up as Fooocus does for an inpaint job.

    - With ``patch`` (an inpaint engine): the uint8 weight patch (added after any LoRAs already on
      ``model``), the head feature after input block 0, and the synthetic refiner: after step
      ``round(steps * refiner_switch)`` the unpatched ``model`` (LoRAs kept, no patch, no head) takes
      over inside the same sampler run. ``refiner_switch >= 1`` disables it.
    - Always: the per-evaluation blending with the fill latent and fresh energy noise.

    Fooocus counterparts: ``async_worker.apply_inpaint`` / ``InpaintWorker.patch``,
    ``default_pipeline.refresh_everything`` (synthetic refiner), ``patch.patched_KSamplerX0Inpaint_forward``.
    """
    m = model
    if patch is not None:
        channels = model_channels(model)
        if channels is not None:
            check_head_width(patch.head, channels)
        m = add_inpaint_patch(m, patch.patch)
        m = add_head_feature(m, patch.head, data.latent_mask, data.latent_inpaint)
        if refiner_switch < 1.0:
            m = add_refiner_switch(m, model.clone(), refiner_switch)
    return add_inpaint_blending(m, BlendSpec(data.latent_fill, data.latent_mask))
