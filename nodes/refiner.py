"""A user-chosen refiner model inside the base model's sampler run (Fooocus refiner, swap method "joint").

:func:`add_refiner` returns a clone of the base ``ModelPatcher`` that, after the sampler callback of
step ``round(steps * refiner_switch)``, runs every further evaluation on the refiner, inside the *same*
sampler run (so multistep sampler history and the Brownian tree carry across), as Fooocus's
``sample_hijack`` does with ``refiner_swap_method == "joint"``:

- A refiner with its own ``BaseModel`` (another SDXL checkpoint, or an SDXL refiner) is attached with
  ``set_additional_models`` so ComfyUI loads it together with the base for the run; a refiner that
  shares the base's ``BaseModel`` (a clone, e.g. the same checkpoint with other LoRAs) is loaded only
  at the switch, as the synthetic refiner is (loading it up front would patch the shared weights).
- At the switch the guider's ``inner_model`` becomes the refiner's ``BaseModel``. SDXL refiners keep
  the base conds; an ``SDXLRefiner`` model gets its own conds: the last 1280 dims of the cross-attention
  (CLIP-G) and its own ADM vector (``SDXLRefiner.encode_adm``: aesthetic score 6 / 2.5), made by
  ``comfy.samplers.process_conds`` with the refiner model.
- From the switch on, ``transformer_options`` patches (``patches`` / ``patches_replace``: the inpaint
  head, IP-Adapter...) are dropped, as Fooocus resets ``transformer_options``; the refiner never has the
  inpaint head or weight patch (it is a separate patcher).
- It *replaces* the synthetic refiner that the inpaint model adds (``nodes.sampling.add_refiner_switch``),
  whichever order the two are applied in, as Fooocus uses the synthetic refiner only without a real one.
  Fooocus's per-evaluation inpaint blending keeps running on the refiner.

Fooocus counterparts: ``modules/default_pipeline.py`` (``refresh_refiner_model``, ``process_diffusion``),
``modules/sample_hijack.py`` (``refiner_switch``, ``callback_wrap``, ``clip_separate``).
"""
from __future__ import annotations

import logging

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.conds
import comfy.samplers
from comfy.patcher_extension import WrappersMP

from . import sampling

log = logging.getLogger(__name__)

REFINER_KEY = "fooocus_user_refiner"
RUN_KEY = "fooocus_user_refiner_run"
DEFAULT_REFINER_SWITCH = 0.8   # fal default (the Fooocus preset uses 0.5)
REFINER_CONTEXT_DIM = 1280     # SDXLRefiner cross-attention: the CLIP-G part of the SDXL cond

KIND_SAME = "same_model"        # shares the base's BaseModel (a clone)
KIND_SDXL = "sdxl"              # another SDXL-architecture model
KIND_SDXL_REFINER = "sdxl_refiner"
KIND_SD15 = "sd15"


def refiner_kind(base, refiner) -> str:
    """Classify ``refiner`` (a ``ModelPatcher``) relative to ``base``: one of ``same_model``, ``sdxl``,
    ``sdxl_refiner``, ``sd15``. Raises ``ValueError`` for any other model (Fooocus supports SDXL,
    SDXL-refiner and SD1.5 refiners only)."""
    if not hasattr(refiner, "model") or not hasattr(refiner, "clone"):
        raise ValueError(f"refiner: expected a MODEL, got {type(refiner).__name__}")
    if refiner.model is base.model:
        return KIND_SAME
    m = refiner.model
    if isinstance(m, comfy.model_base.SDXLRefiner):
        return KIND_SDXL_REFINER
    if isinstance(m, comfy.model_base.SDXL):
        return KIND_SDXL
    if isinstance(getattr(m, "latent_format", None), comfy.latent_formats.SD15) and type(m) is comfy.model_base.BaseModel:
        return KIND_SD15
    raise ValueError(f"refiner: {type(m).__name__} models are not supported as a Fooocus refiner "
                     "(use an SDXL checkpoint, the SDXL refiner, or an SD1.5 checkpoint)")


def check_switch(refiner_switch: float) -> float:
    """Validate ``refiner_switch`` (a fraction of the steps in [0, 1])."""
    try:
        v = float(refiner_switch)
    except (TypeError, ValueError):
        raise ValueError(f"refiner_switch: expected a number in [0, 1], got {refiner_switch!r}") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"refiner_switch: expected a number in [0, 1], got {refiner_switch}")
    return v


class _Run:
    """Per sampler run (an object, so ``create_model_options_clone`` keeps one instance)."""

    def __init__(self, refiner, switch_at: int, noise, latent_image, seed):
        self.refiner = refiner
        self.switch_at = switch_at
        self.switched = False
        self.loaded = False
        self.noise = noise
        self.latent_image = latent_image
        self.seed = seed
        self.saved = None  # (guider, inner_model, conds) to restore after the run
        self.evaluations = [0, 0]  # base, refiner (diagnostics)


def _disable_synthetic(model_options: dict) -> None:
    """A real refiner replaces the synthetic one (Fooocus ``use_synthetic_refiner`` only without one)."""
    st = sampling._state(model_options)
    if st is not None and st.refiner is not None:
        st.refiner = None


def strip_transformer_patches(model_options: dict) -> dict:
    """A copy of ``model_options`` without ``transformer_options`` ``patches`` / ``patches_replace``
    (Fooocus resets ``transformer_options`` at the refiner switch: no head, no IP-Adapter)."""
    mo = comfy.model_patcher.create_model_options_clone(model_options)
    to = mo.get("transformer_options")
    if to is not None:
        to.pop("patches", None)
        to.pop("patches_replace", None)
    return mo


def refiner_conds(original_conds: dict) -> dict:
    """Copies of the guider's ``original_conds`` for an ``SDXLRefiner``: cross-attention = the last
    1280 dims (CLIP-G, Fooocus ``clip_separate``), no ControlNet / GLIGEN (built for the base)."""
    out = {}
    for k, clist in original_conds.items():
        new = []
        for c in clist:
            c = dict(c)
            ca = c.get("cross_attn")
            if ca is not None and ca.shape[-1] != REFINER_CONTEXT_DIM:
                if ca.shape[-1] < REFINER_CONTEXT_DIM:
                    raise ValueError(f"refiner: the conditioning is {ca.shape[-1]} wide; an SDXL refiner needs the "
                                     f"SDXL (2048-wide) or refiner (1280-wide) text conditioning")
                ca = ca[..., -REFINER_CONTEXT_DIM:]
                c["cross_attn"] = ca
            mc = dict(c.get("model_conds", {}))
            if ca is not None:
                mc["c_crossattn"] = comfy.conds.CONDCrossAttn(ca)
            mc.pop("y", None)
            c["model_conds"] = mc
            c.pop("control", None)
            c.pop("gligen", None)
            new.append(c)
        out[k] = new
    return out


def add_refiner(model, refiner, refiner_switch: float = DEFAULT_REFINER_SWITCH):
    """Return a clone of ``model`` (the base ``ModelPatcher``) that switches to ``refiner`` after the
    sampler callback of step ``round(steps * refiner_switch)`` inside one sampler run (see the module
    docstring). ``refiner_switch >= 1`` (or a switch step ``>= steps``) never switches.

    ``refiner`` is a ``ModelPatcher`` of an SDXL or SDXL-refiner model, or a clone of ``model``; user
    LoRAs apply to it only if it went through the LoRA loader itself (Fooocus applies the user LoRAs
    to base and refiner). SD1.5 refiners need the VAE-swap sampler (``ValueError`` here).
    """
    switch = check_switch(refiner_switch)
    kind = refiner_kind(model, refiner)
    if kind == KIND_SD15:
        raise ValueError("refiner: an SD1.5 refiner cannot run inside the SDXL sampler run (Fooocus swaps it in with "
                         "the VAE-swap method); use 'Fooocus Sampler (SD1.5 refiner)'")
    m = model.clone()
    m.remove_wrappers_with_key(WrappersMP.SAMPLER_SAMPLE, REFINER_KEY)
    m.remove_wrappers_with_key(WrappersMP.PREDICT_NOISE, REFINER_KEY)
    m.remove_additional_models(REFINER_KEY)
    if kind != KIND_SAME:
        m.set_additional_models(REFINER_KEY, [refiner])

    def sampler_sample(executor, guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar):
        # the loaded instance: clone() clones additional models, so look it up on this run's patcher
        if kind == KIND_SAME:
            ref = refiner
        else:
            attached = guider.model_patcher.get_additional_models_with_key(REFINER_KEY)
            ref = attached[0] if attached else refiner
        to = extra_args["model_options"].setdefault("transformer_options", {})
        run = to[RUN_KEY] = _Run(ref, sampling.switch_index(len(sigmas) - 1, switch), noise, latent_image,
                                 extra_args.get("seed"))
        _disable_synthetic(extra_args["model_options"])  # when the synthetic switch is the outer wrapper

        def switch_callback(step, x0, x, total_steps):
            if step == run.switch_at:
                run.switched = True
            if callback is not None:
                callback(step, x0, x, total_steps)

        try:
            return executor(guider, sigmas, extra_args, switch_callback, noise, latent_image, denoise_mask, disable_pbar)
        finally:
            if run.saved is not None:
                g, inner, conds = run.saved
                g.inner_model, g.conds = inner, conds
            if run.loaded and kind == KIND_SAME:
                run.refiner.cleanup()
            log.debug("Fooocus refiner: %d base / %d refiner evaluations", *run.evaluations)
            run.refiner = None

    def predict_noise(executor, x, timestep, model_options, seed):
        run = model_options.get("transformer_options", {}).get(RUN_KEY)
        if run is None:
            return executor(x, timestep, model_options, seed)
        _disable_synthetic(model_options)
        if not run.switched or run.refiner is None:
            run.evaluations[0] += 1
            return executor(x, timestep, model_options, seed)
        if not run.loaded:
            guider = executor.class_obj
            comfy.model_management.load_models_gpu([run.refiner])
            run.refiner.pre_run()
            run.saved = (guider, guider.inner_model, guider.conds)
            if guider.inner_model is not run.refiner.model:
                guider.inner_model = run.refiner.model
            if kind == KIND_SDXL_REFINER:
                guider.conds = comfy.samplers.process_conds(
                    run.refiner.model, run.noise, refiner_conds(guider.original_conds), run.noise.device,
                    run.latent_image, None, run.seed)
            run.loaded = True
        run.evaluations[1] += 1
        return executor(x, timestep, strip_transformer_patches(model_options), seed)

    m.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, REFINER_KEY, sampler_sample)
    m.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, REFINER_KEY, predict_noise)
    return m


def attached_refiner(model):
    """The refiner ``ModelPatcher`` attached by :func:`add_refiner` (None for a same-model refiner or none)."""
    found = model.get_additional_models_with_key(REFINER_KEY)
    return found[0] if found else None


def has_refiner(model) -> bool:
    """True if :func:`add_refiner` set up ``model`` (its wrappers are present)."""
    return bool(model.wrappers.get(WrappersMP.SAMPLER_SAMPLE, {}).get(REFINER_KEY))


# -- SD1.5 refiner: Fooocus's VAE-swap method --------------------------------------------------------
SD15_CONTEXT_DIM = 768
SWAP_DENOISE = 0.9           # denoise above this: the VAE-swap method (base then refiner)
SWAP_SIGMA_SCALE = 1.4       # Fooocus: refiner sigmas[switch:] * 1.4
SINGLE_MODEL_EXPONENT = 0.834
EPS_KEY = "fooocus_eps_record"

PLAN_SWAP, PLAN_BASE, PLAN_REFINER = "vae_swap", "base_only", "refiner_only"


def sd15_plan(steps: int, switch: int, denoise: float) -> str:
    """Which way Fooocus runs an SD1.5 refiner (``default_pipeline.process_diffusion`` / ``get_candidate_vae``):
    ``vae_swap`` when ``denoise > 0.9``; otherwise one model for the whole run: ``base_only`` when
    ``denoise > ((steps - switch) / steps) ** 0.834``, else ``refiner_only``."""
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    if denoise > SWAP_DENOISE:
        return PLAN_SWAP
    return PLAN_BASE if denoise > (float(steps - switch) / float(steps)) ** SINGLE_MODEL_EXPONENT else PLAN_REFINER


def sd15_conditioning(conditioning: list, clip) -> list:
    """SDXL CONDITIONING -> SD1.5 CONDITIONING as Fooocus's ``clip_separate`` does for an SD1.5 target:
    the first 768 dims (CLIP-L) of each cond through the CLIP-L ``final_layer_norm`` of ``clip`` (the
    base SDXL CLIP), computed in float32 on CPU; the pooled output is dropped."""
    enc = getattr(getattr(clip, "cond_stage_model", None), "clip_l", None)
    if enc is None:
        raise ValueError("clip: expected the base SDXL CLIP (with a CLIP-L part) to build the SD1.5 refiner conditioning")
    norm = enc.transformer.text_model.final_layer_norm
    out = []
    with torch.no_grad():
        w = norm.weight.detach().to("cpu", torch.float32)
        b = norm.bias.detach().to("cpu", torch.float32)
        for c, d in conditioning:
            if c.shape[-1] < SD15_CONTEXT_DIM:
                raise ValueError(f"positive/negative: conditioning is {c.shape[-1]} wide; expected an SDXL conditioning")
            x = c[..., :SD15_CONTEXT_DIM].to("cpu", torch.float32)
            y = torch.nn.functional.layer_norm(x, (SD15_CONTEXT_DIM,), w, b, norm.eps).to(c.dtype)
            nd = {k: v for k, v in d.items() if k not in ("pooled_output", "control", "gligen")}
            out.append([y, nd])
    return out


def add_eps_record(model):
    """Clone ``model`` with an innermost PREDICT_NOISE wrapper that records ``(x - x0) / sigma`` of each
    evaluation in ``model_options[EPS_KEY]`` (a one-slot list), for Fooocus's ``noise_mean``
    (``patch_settings.eps_record``; INFERRED to be the guided eps of the last evaluation)."""
    m = model.clone()
    m.remove_wrappers_with_key(WrappersMP.PREDICT_NOISE, EPS_KEY)
    slot: list = [None]
    m.model_options[EPS_KEY] = slot

    def predict_noise(executor, x, timestep, model_options, seed):
        out = executor(x, timestep, model_options, seed)
        sigma = timestep.reshape([-1] + [1] * (x.ndim - 1)).to(x.dtype)
        slot[0] = ((x - out) / sigma).detach().cpu()
        return out

    m.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, EPS_KEY, predict_noise)
    return m


def vae_swap_sample(base_model, refiner_model, interposer, noise, latent, steps: int, switch: int, cfg: float,
                    sampler_name: str, scheduler: str, positive, negative, positive15, negative15, denoise: float,
                    seed: int, swap_blend=None, callback=None, disable_pbar: bool = True):
    """Fooocus's VAE-swap refine (``process_diffusion`` with ``refiner_swap_method == 'vae'``); returns the
    raw SD1.5 latent [1,4,h,w] to decode with the refiner's VAE.

    1. ``base_model`` (already the inpaint model: patch, head, blending) samples steps ``0..switch`` with
       ``force_full_denoise`` (last sigma 0) from ``noise`` / raw ``latent``.
    2. The XL->v1 ``interposer`` maps the raw result to an SD1.5 latent.
    3. Sigmas: the refiner's schedule for (steps, denoise), from index ``switch``, times 1.4.
    4. Noise: ``prepare_noise(seed + 1)`` shifted to the channel mean of the last base eps.
    5. ``refiner_model`` (plus Fooocus blending with ``swap_blend``, the SD1.5 fill latent, if given)
       samples those sigmas with seed + 1 from the interposed latent.
    """
    import comfy.sample

    from ..engine.interposer import interpose

    recorder = add_eps_record(base_model)
    first = comfy.sample.sample(recorder, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                                denoise=denoise, start_step=0, last_step=switch, force_full_denoise=True,
                                callback=callback, disable_pbar=disable_pbar, seed=seed)
    eps = recorder.model_options[EPS_KEY][0]
    lat15 = interpose(interposer, first.to(torch.float32).cpu())
    ks = comfy.samplers.KSampler(refiner_model, steps=steps, device=refiner_model.load_device,
                                 sampler=sampler_name, scheduler=scheduler, denoise=denoise)
    sigmas = ks.sigmas[switch:].cpu() * SWAP_SIGMA_SCALE
    seed2 = (int(seed) + 1) % (2**63)
    noise2 = comfy.sample.prepare_noise(lat15, seed2)
    if eps is not None:
        noise_mean = torch.mean(eps.to(noise2), dim=1, keepdim=True)
        noise2 = noise2 + noise_mean - torch.mean(noise2, dim=1, keepdim=True)
    ref = refiner_model
    if swap_blend is not None:
        ref = sampling.add_inpaint_blending(ref, swap_blend)
    if len(sigmas) < 2:
        return lat15
    cb2 = None
    if callback is not None:
        def cb2(step, x0, x, total):  # continue the progress of the first pass
            callback(step + switch, x0, x, steps)
    sampler = comfy.samplers.sampler_object(sampler_name)
    return comfy.sample.sample_custom(ref, noise2, cfg, sampler, sigmas, positive15, negative15, lat15,
                                      callback=cb2, disable_pbar=disable_pbar, seed=seed2)
