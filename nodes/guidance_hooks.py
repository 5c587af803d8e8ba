"""Fooocus's guidance (sharpness, adaptive CFG, ADM scaling) on a ``ModelPatcher`` clone.

Fooocus counterparts (2.5.5, ``modules/patch.py``): ``patched_sampling_function`` / ``compute_cfg``
(sharpness + CFG mimicking), ``sdxl_encode_adm_patched`` + ``timed_adm`` (ADM scaling); spec
``fooocus-pipeline.md`` §5 and ``comfy-hooks.md`` §5-§6. The maths lives in ``engine.guidance``; this
module only connects it to ComfyUI:

- **Sharpness + adaptive CFG**: a 1-argument ``sampler_cfg_function`` (``set_model_sampler_cfg_function``).
  The discrete timestep comes from ``args["model"].model_sampling.timestep(sigma)``, i.e. the model's
  *current* (possibly LCM-patched) model sampling. At cfg == 1 it returns the cond eps unchanged.
- **ADM scaling**: an OUTER_SAMPLE wrapper rewrites *copies* of this run's cond dicts (the guider's
  ``conds``, which ComfyUI has just copied from ``original_conds``) once the latent size is known:
  the positive gets ``width/height x adm_positive``, the negative ``x adm_negative``, both with
  ``target_* = round64(size)``; ComfyUI then computes that scaled ``y`` itself. The unscaled ``y`` goes
  into ``model_conds[PLAIN_ADM_KEY]``. A CALC_COND_BATCH wrapper then, per evaluation, uses the scaled
  ``y`` while ``t > 999 * (1 - adm_end)`` and the unscaled one afterwards, and always drops the extra
  key, so the UNet and every ControlNet see the same 2816-wide ``y``.

All hooks have fixed keys, so applying the guidance twice replaces it. The caller's cond lists and
the input ``ModelPatcher`` are never modified.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import comfy.conds
import comfy.model_base
import torch
from comfy.patcher_extension import WrappersMP

from ..engine import guidance

log = logging.getLogger(__name__)

#: Key of our wrappers (OUTER_SAMPLE, CALC_COND_BATCH) and of the settings record in ``model_options``.
GUIDANCE_KEY = "fooocus_guidance"
#: ``model_conds`` entry holding the unscaled ADM vector during a run.
PLAIN_ADM_KEY = "fooocus_adm_plain"
_CFG_MARK = "_fooocus_guidance_cfg"


@dataclass(frozen=True)
class GuidanceSettings:
    """Fooocus ``PatchSettings`` (``modules/patch.py:32-38``) plus where they came from.

    ``sharpness`` >= 0 (UI 0..30, default 2.0); ``adaptive_cfg`` > 0 (default 7.0); ``adm_positive`` /
    ``adm_negative`` > 0 (1.5 / 0.8); ``adm_end`` in [0, 1] (0.3). ``source`` names the node or preset
    that set them (shown in logs).
    """

    sharpness: float = 2.0
    adaptive_cfg: float = 7.0
    adm_positive: float = 1.5
    adm_negative: float = 0.8
    adm_end: float = 0.3
    source: str = "Fooocus Guidance"

    def __post_init__(self):
        for name in ("sharpness", "adaptive_cfg", "adm_positive", "adm_negative", "adm_end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        if self.sharpness < 0:
            raise ValueError(f"sharpness: expected >= 0, got {self.sharpness}")
        if self.adaptive_cfg <= 0:
            raise ValueError(f"adaptive_cfg: expected > 0, got {self.adaptive_cfg}")
        if self.adm_positive <= 0 or self.adm_negative <= 0:
            raise ValueError(f"adm_positive/adm_negative: expected > 0, got {self.adm_positive}/{self.adm_negative}")
        if not 0.0 <= self.adm_end <= 1.0:
            raise ValueError(f"adm_end: expected a number in [0, 1], got {self.adm_end}")


def _timestep_of(model, sigma: torch.Tensor) -> float:
    """Discrete t of the current evaluation from the model's (possibly patched) model_sampling."""
    t = model.model_sampling.timestep(sigma)
    return float(t.reshape(-1)[0].item()) if isinstance(t, torch.Tensor) else float(t)


def make_cfg_function(settings: GuidanceSettings):
    """The ``sampler_cfg_function`` (1 argument, returns eps) of Fooocus's sampling function.

    ``args`` as ComfyUI builds it (``samplers.cfg_function``): ``cond``/``uncond`` eps, ``cond_denoised``
    (the x0 used as the sharpness guide), ``cond_scale``, ``sigma`` and ``model``. cfg close to 1
    returns ``args["cond"]`` itself (ComfyUI did not evaluate the negative; Fooocus ignores it).
    """

    def fooocus_cfg(args: dict) -> torch.Tensor:
        cond_scale = float(args["cond_scale"])
        if math.isclose(cond_scale, 1.0):
            return args["cond"]
        t = _timestep_of(args["model"], args["sigma"])
        progress = guidance.progress_from_timestep(min(max(t, 0.0), guidance.MAX_TIMESTEP))
        return guidance.fooocus_guided_eps(
            args["cond"], args["uncond"], args["cond_denoised"], cfg=cond_scale, sharpness=settings.sharpness,
            adaptive_cfg=settings.adaptive_cfg, progress=progress)

    setattr(fooocus_cfg, _CFG_MARK, settings)
    return fooocus_cfg


def _plain_adm(base_model, cond: dict, width: int, height: int, prompt_type: str, device) -> torch.Tensor:
    _, _, tw, th = guidance.adm_sizes(width, height, 1.0)
    params = dict(cond)
    params.update(width=width, height=height, target_width=tw, target_height=th, prompt_type=prompt_type,
                  device=device)
    return base_model.encode_adm(**params)


def _scale_conds(base_model, conds: list, scale: float, latent_w: int, latent_h: int, prompt_type: str,
                 device) -> list:
    """New cond dicts with scaled ADM sizes and the unscaled ``y`` under :data:`PLAIN_ADM_KEY`."""
    out = []
    for c in conds:
        if not isinstance(c, dict) or c.get("pooled_output") is None:
            out.append(c)  # nothing to embed (ComfyUI would fail on it anyway, or it is not ours)
            continue
        w = int(c.get("width") or latent_w)
        h = int(c.get("height") or latent_h)
        sw, sh, tw, th = guidance.adm_sizes(w, h, scale)
        plain = _plain_adm(base_model, c, w, h, prompt_type, device)
        n = dict(c)
        n.update(width=sw, height=sh, target_width=tw, target_height=th)
        n["model_conds"] = {**c.get("model_conds", {}), PLAIN_ADM_KEY: comfy.conds.CONDRegular(plain)}
        out.append(n)
    return out


def _outer_sample_wrapper(settings: GuidanceSettings):
    def outer_sample(executor, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
                     disable_pbar=False, seed=None, **kwargs):
        guider = executor.class_obj
        base_model = guider.model_patcher.model
        conds = getattr(guider, "conds", None)
        if not isinstance(base_model, comfy.model_base.SDXL) or not isinstance(conds, dict):
            log.debug("Fooocus guidance: no ADM scaling for %s", type(base_model).__name__)
            return executor(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed, **kwargs)
        lw, lh = int(noise.shape[-1]) * 8, int(noise.shape[-2]) * 8
        scales = {"positive": settings.adm_positive, "negative": settings.adm_negative}
        new = dict(conds)
        for key, scale in scales.items():
            if conds.get(key) is not None:
                new[key] = _scale_conds(base_model, conds[key], scale, lw, lh, key, noise.device)
        guider.conds = new
        return executor(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed, **kwargs)

    return outer_sample


def _calc_cond_batch_wrapper(settings: GuidanceSettings):
    def calc_cond_batch(executor, model, conds, x_in, timestep, model_options):
        has_plain = any(c is not None and any(PLAIN_ADM_KEY in d.get("model_conds", {}) for d in c) for c in conds)
        if not has_plain:
            return executor(model, conds, x_in, timestep, model_options)
        scaled = guidance.use_scaled_adm(min(max(_timestep_of(model, timestep), 0.0), guidance.MAX_TIMESTEP),
                                         settings.adm_end)
        new_conds = []
        for clist in conds:
            if clist is None:
                new_conds.append(None)
                continue
            out = []
            for d in clist:
                mc = d.get("model_conds", {})
                if PLAIN_ADM_KEY not in mc:
                    out.append(d)
                    continue
                mc = dict(mc)
                plain = mc.pop(PLAIN_ADM_KEY)
                if not scaled:
                    mc["y"] = plain
                out.append({**d, "model_conds": mc})
            new_conds.append(out)
        return executor(model, new_conds, x_in, timestep, model_options)

    return calc_cond_batch


def current_settings(model) -> GuidanceSettings | None:
    """The :class:`GuidanceSettings` this module put on ``model`` (a ModelPatcher), or None."""
    s = model.model_options.get(GUIDANCE_KEY)
    return s if isinstance(s, GuidanceSettings) else None


def apply_fooocus_guidance(model, settings: GuidanceSettings):
    """Return a clone of ``model`` with Fooocus's sharpness / adaptive CFG and ADM scaling.

    Replaces guidance set earlier by this function (same keys); another pack's
    ``sampler_cfg_function`` is replaced with a warning (ComfyUI allows only one).
    """
    if not isinstance(settings, GuidanceSettings):
        raise ValueError(f"settings: expected GuidanceSettings, got {type(settings).__name__}")
    m = model.clone()
    previous = m.model_options.get("sampler_cfg_function")
    if previous is not None and getattr(previous, _CFG_MARK, None) is None:
        log.warning("Fooocus Guidance: replacing the model's existing sampler CFG function (from another node)")
    old = current_settings(m)
    if old is not None and old != settings:
        log.info("Fooocus Guidance: replacing guidance from %s with %s", old.source, settings.source)
    m.set_model_sampler_cfg_function(make_cfg_function(settings), disable_cfg1_optimization=False)
    m.remove_wrappers_with_key(WrappersMP.OUTER_SAMPLE, GUIDANCE_KEY)
    m.remove_wrappers_with_key(WrappersMP.CALC_COND_BATCH, GUIDANCE_KEY)
    # installed even when the scaling is neutral (1/1 or end 0): Fooocus's unscaled vector still has the
    # round-to-64 target sizes
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, GUIDANCE_KEY, _outer_sample_wrapper(settings))
    m.add_wrapper_with_key(WrappersMP.CALC_COND_BATCH, GUIDANCE_KEY, _calc_cond_batch_wrapper(settings))
    m.model_options[GUIDANCE_KEY] = settings
    return m
