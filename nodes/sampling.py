"""Fooocus's sampling-time behaviour as ComfyUI wrappers on a ``ModelPatcher`` clone.

- Per-evaluation inpaint blending (Fooocus ``patched_KSamplerX0Inpaint_forward``): a PREDICT_NOISE
  wrapper blends ``x`` with the fill latent plus *fresh* energy noise before every denoiser call and
  the prediction with the fill latent after it. The energy generator and the model-space latents are
  per-run state made by a SAMPLER_SAMPLE wrapper (CPU generator seeded with ``seed + 1``).
- The synthetic refiner (Fooocus ``sample_hijack`` ``refiner_switch`` with method "joint"): after the
  sampler callback of step ``switch``, the following evaluations run on a refiner ``ModelPatcher``
  (for the synthetic refiner: the same model without the inpaint patch and head) inside the *same*
  sampler run, so multistep sampler state and the Brownian tree carry across.

Both are registered with a fixed key, so applying them twice replaces rather than stacks them; other
graphs and other packs never see them (they live on the clone's ``model_options``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import comfy.model_management
import comfy.patcher_extension
from comfy.patcher_extension import WrappersMP

from .patching import strip_fooocus_patches

log = logging.getLogger(__name__)

BLEND_KEY = "fooocus_inpaint_blend"
SWITCH_KEY = "fooocus_refiner_switch"
STATE_KEY = "fooocus_inpaint_state"


class _RunState:
    """Per sampler run; an object (not a dict) so ``create_model_options_clone`` keeps one instance."""

    def __init__(self):
        self.blend_latent = None      # model-space fill latent [1,4,h,w]
        self.blend_mask = None        # latent mask [1,1,h,w]
        self.generator = None         # CPU energy-noise generator
        self.switch_at = None         # callback step after which the refiner takes over
        self.refiner = None
        self.switched = False
        self.refiner_loaded = False


def _state(model_options: dict) -> _RunState | None:
    return model_options.get("transformer_options", {}).get(STATE_KEY)


def _ensure_state(extra_args: dict) -> _RunState:
    to = extra_args["model_options"].setdefault("transformer_options", {})
    st = to.get(STATE_KEY)
    if st is None:
        st = to[STATE_KEY] = _RunState()
    return st


@dataclass
class BlendSpec:
    """What the blending needs: the raw (VAE-space) fill latent and the latent mask (1 = repaint)."""

    latent_fill: torch.Tensor   # [1, 4, h, w] float32, raw VAE latent (not scaled)
    latent_mask: torch.Tensor   # [1, 1, h, w] float32 in {0, 1}


def add_inpaint_blending(model, spec: BlendSpec):
    """Clone ``model`` and add Fooocus's per-evaluation blending (see module docstring)."""
    m = model.clone()
    m.remove_wrappers_with_key(WrappersMP.SAMPLER_SAMPLE, BLEND_KEY)
    m.remove_wrappers_with_key(WrappersMP.PREDICT_NOISE, BLEND_KEY)

    def sampler_sample(executor, guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar):
        st = _ensure_state(extra_args)
        inner = guider.inner_model
        dev, dtype = noise.device, noise.dtype
        if tuple(spec.latent_fill.shape[-2:]) != tuple(noise.shape[-2:]):
            raise ValueError(f"inpaint: the latent being sampled is {tuple(noise.shape[-2:])} but the inpaint "
                             f"conditioning is for {tuple(spec.latent_fill.shape[-2:])} (latent cells); use the "
                             "LATENT from the same Inpaint Conditioning node")
        st.blend_latent = inner.process_latent_in(spec.latent_fill.to(dev, torch.float32)).to(dtype)
        st.blend_mask = spec.latent_mask.to(dev, dtype)
        seed = int(extra_args.get("seed") or 0)
        st.generator = torch.Generator(device="cpu").manual_seed((seed + 1) % (2**63 - 1))
        if denoise_mask is not None:
            log.warning("Fooocus inpaint: ignoring a noise_mask on the latent; Fooocus blending is used instead")
            denoise_mask = None
        return executor(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)

    def predict_noise(executor, x, timestep, model_options, seed):
        st = _state(model_options)
        if st is None or st.blend_latent is None:
            return executor(x, timestep, model_options, seed)
        m_, lat = st.blend_mask, st.blend_latent
        sigma = timestep.reshape([-1] + [1] * (x.ndim - 1)).to(x.dtype)
        energy = torch.randn(x.shape, generator=st.generator, device="cpu", dtype=torch.float32).to(x)
        x = x * m_ + (lat + energy * sigma) * (1.0 - m_)
        out = executor(x, timestep, model_options, seed)
        return out * m_ + lat * (1.0 - m_)

    m.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, BLEND_KEY, sampler_sample)
    m.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, BLEND_KEY, predict_noise)
    return m


def switch_index(steps: int, refiner_switch: float) -> int:
    """Fooocus: ``switch = int(round(steps * refiner_switch))``; the refiner runs after the callback of
    that step, i.e. the base makes evaluations for steps ``0..switch`` (Python ``round``)."""
    return int(round(steps * refiner_switch))


def add_refiner_switch(model, refiner, refiner_switch: float):
    """Clone ``model`` so that, after the sampler callback of step ``round(steps * refiner_switch)``
    (``steps`` = this run's sigma count - 1), every evaluation runs on ``refiner`` (a
    ``ModelPatcher``; for the synthetic refiner a clone of the base model without the inpaint patch)
    with this pack's head patch removed.

    ``refiner`` must share the base's ``BaseModel`` (same conds and latent format): the synthetic
    refiner or a clone of the base with other LoRAs. A switch index ``>= steps`` means no switch.
    """
    m = model.clone()
    m.remove_wrappers_with_key(WrappersMP.SAMPLER_SAMPLE, SWITCH_KEY)
    m.remove_wrappers_with_key(WrappersMP.PREDICT_NOISE, SWITCH_KEY)

    def sampler_sample(executor, guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar):
        st = _ensure_state(extra_args)
        st.switch_at = switch_index(len(sigmas) - 1, refiner_switch)
        st.refiner, st.switched, st.refiner_loaded = refiner, False, False

        def switch_callback(step, x0, x, total_steps):
            if step == st.switch_at:
                st.switched = True
            if callback is not None:
                callback(step, x0, x, total_steps)

        try:
            return executor(guider, sigmas, extra_args, switch_callback, noise, latent_image, denoise_mask, disable_pbar)
        finally:
            if st.refiner_loaded:
                st.refiner.cleanup()
            st.refiner = None

    def predict_noise(executor, x, timestep, model_options, seed):
        st = _state(model_options)
        if st is None or not st.switched or st.refiner is None:
            return executor(x, timestep, model_options, seed)
        if not st.refiner_loaded:
            comfy.model_management.load_models_gpu([st.refiner])
            st.refiner.pre_run()
            guider = executor.class_obj
            if guider.inner_model is not st.refiner.model:
                guider.inner_model = st.refiner.model
            st.refiner_loaded = True
        return executor(x, timestep, strip_fooocus_patches(model_options), seed)

    m.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, SWITCH_KEY, sampler_sample)
    m.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, SWITCH_KEY, predict_noise)
    return m
