"""Fooocus's refiner as a node: a MODEL that hands over to another model inside the same sampler run.

Chain::

    Load Checkpoint (base)    -> [Fooocus LoRA Stack] -> Fooocus Refiner (model)   -> Fooocus Sampler / KSampler
    Load Checkpoint (refiner) -> [Fooocus LoRA Stack] -> Fooocus Refiner (refiner)

Fooocus applies the user LoRAs to the base and to the refiner: pass the refiner (with its own CLIP
output) through a LoRA Stack with the same slots to do the same.
"""
from __future__ import annotations

import logging
import os

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import folder_paths
import latent_preview
import torch
from comfy_api.latest import io

from ..engine import inpaint_prep
from ..engine.interposer import FOOOCUS_FILE_NAME, load_interposer
from .convert import decoded_to_u8, u8_to_image
from .image_prompt import reapply_controlnets
from .inpaint_model import fooocus_inpaint_model
from .inpaint_nodes import _vae_encode_cropped
from .refiner import (DEFAULT_REFINER_SWITCH, KIND_SD15, PLAN_BASE, PLAN_REFINER, PLAN_SWAP, add_refiner,
                      check_switch, refiner_kind, sd15_conditioning, sd15_plan, vae_swap_sample)
from .sampling import BlendSpec, add_inpaint_blending, switch_index
from .types import FooocusInpaintData, InpaintDataIO, InpaintPatchIO, PromptIO

log = logging.getLogger(__name__)

CATEGORY = "inpaint/fooocus/sampling"


class FooocusRefiner(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_Refiner",
            display_name="Fooocus Refiner",
            category=CATEGORY,
            description=(
                "Fooocus's refiner (swap method 'joint'): returns the base MODEL set up so that, after "
                "round(steps x refiner_switch) steps, the refiner model finishes the image inside the same sampler run "
                "(sampler history and noise carry over). Works with Fooocus Sampler and ComfyUI's samplers. The refiner "
                "can be another SDXL checkpoint or the SDXL refiner (it then gets its own CLIP-G conditioning and "
                "aesthetic-score ADM). With an inpaint patch it replaces Fooocus's synthetic refiner, and it never gets "
                "the inpaint patch or head. SD1.5 refiners are not supported by this node."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The base SDXL model (after any LoRAs)."),
                io.Model.Input("refiner", tooltip="The refiner model: an SDXL checkpoint or the SDXL refiner. For Fooocus's "
                                                  "behaviour pass it through the same LoRA Stack as the base."),
                io.Float.Input("refiner_switch", default=DEFAULT_REFINER_SWITCH, min=0.0, max=1.0, step=0.001,
                               tooltip="Fraction of the steps after which the refiner takes over (fal default 0.8, Fooocus "
                                       "preset 0.5). 1.0 = never. With a refiner, Fooocus Sampler's own refiner_switch "
                                       "(for the synthetic refiner) is not used."),
            ],
            outputs=[io.Model.Output(display_name="model",
                                     tooltip="The base model with the refiner attached (a copy; the inputs are unchanged).")],
        )

    @classmethod
    def execute(cls, model, refiner, refiner_switch=DEFAULT_REFINER_SWITCH) -> io.NodeOutput:
        check_switch(refiner_switch)
        return io.NodeOutput(add_refiner(model, refiner, refiner_switch))


_INTERPOSERS: dict = {}


def _interposer_files() -> list[str]:
    try:
        return sorted(n for n in folder_paths.get_filename_list("vae_approx") if n.endswith(".safetensors"))
    except KeyError:
        return []


def _interposer(name: str):
    path = folder_paths.get_full_path("vae_approx", name) if name else None
    if path is None:
        raise ValueError(f"interposer: file {name!r} not found in models/vae_approx (Fooocus's file is {FOOOCUS_FILE_NAME})")
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _INTERPOSERS:
        _INTERPOSERS.clear()
        _INTERPOSERS[key] = load_interposer(path)
    return _INTERPOSERS[key]


def _decode(vae, samples):
    decoded = vae.decode(samples.to(comfy.model_management.intermediate_device()))
    if decoded.ndim == 5:
        decoded = decoded.reshape(-1, *decoded.shape[-3:])
    return decoded_to_u8(decoded)


class FooocusSamplerSD15Refiner(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = _interposer_files()
        return io.Schema(
            node_id="FooocusInpaint_SamplerSD15Refiner",
            display_name="Fooocus Sampler (SD1.5 refiner)",
            category=CATEGORY,
            description=(
                "Fooocus Sampler with an SD1.5 refiner, as Fooocus runs it. Strength > 0.9: the SDXL base (with the "
                "inpaint patch and head) samples the first round(steps x refiner_switch) steps to a clean latent, the "
                "XL->v1 interposer turns it into an SD1.5 latent, and the SD1.5 model finishes it (its sigmas x 1.4, seed "
                "+ 1, blending with the fill encoded by the SD1.5 VAE), decoded by the SD1.5 VAE ('VAE swap'). Strength "
                "<= 0.9: Fooocus runs one model for the whole image (base or refiner, by its formula). No synthetic "
                "refiner. The SD1.5 model sees the CLIP-L part of the SDXL conditioning."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The SDXL base model (after any LoRAs)."),
                io.Clip.Input("clip", tooltip="The base SDXL CLIP: its CLIP-L final layer norm turns the SDXL conditioning "
                                              "into the SD1.5 one (Fooocus clip_separate)."),
                io.Vae.Input("vae", tooltip="The SDXL VAE (the one used for Inpaint Conditioning)."),
                io.Model.Input("refiner", tooltip="The SD1.5 refiner model (Fooocus applies the user LoRAs to it too: "
                                                  "pass it through a LoRA Stack if you want that)."),
                io.Vae.Input("refiner_vae", tooltip="The SD1.5 checkpoint's VAE (Fooocus keeps the SD1.5 refiner's VAE)."),
                InpaintDataIO.Input("inpaint", tooltip="From Inpaint Conditioning."),
                io.Conditioning.Input("positive", optional=True, tooltip="Positive SDXL conditioning (or connect 'prompt')."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative SDXL conditioning (or connect 'prompt')."),
                PromptIO.Input("prompt", optional=True, tooltip="A Fooocus prompt, encoded per image with that image's seed."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the first image; image i uses seed + i; the SD1.5 pass uses seed + 1."),
                io.Int.Input("steps", default=30, min=1, max=200, tooltip="Sampling steps (Fooocus Speed 30)."),
                io.Float.Input("cfg", default=4.0, min=1.0, max=30.0, step=0.1, round=0.01, tooltip="Guidance scale."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="dpmpp_2m_sde_gpu",
                               tooltip="Sampler (Fooocus default dpmpp_2m_sde_gpu)."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="karras",
                               tooltip="Scheduler (Fooocus default karras)."),
                InpaintPatchIO.Input("inpaint_patch", optional=True,
                                     tooltip="From Fooocus Inpaint Patch Loader (on the SDXL base only); unconnected = engine 'None'."),
                io.Float.Input("refiner_switch", default=DEFAULT_REFINER_SWITCH, min=0.0, max=1.0, step=0.001,
                               tooltip="Fraction of the steps the SDXL base samples before the SD1.5 refiner (fal 0.8)."),
                io.Combo.Input("interposer", options=files or [FOOOCUS_FILE_NAME],
                               default=FOOOCUS_FILE_NAME if FOOOCUS_FILE_NAME in files else None,
                               tooltip="The XL->v1 latent interposer in models/vae_approx (Fooocus: "
                                       "xl-to-v1_interposer-v4.0.safetensors)."),
                io.Int.Input("num_images", default=1, min=1, max=32, tooltip="How many images (seed + i each)."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="Full-size results, pasted back into the image."),
                io.Latent.Output(display_name="latent", tooltip="The final latents (SD1.5 latents when the refiner ran)."),
                io.Image.Output(display_name="crop", tooltip="The decoded working-size crops, before paste-back."),
            ],
        )

    @classmethod
    def execute(cls, model, clip, vae, refiner, refiner_vae, inpaint: FooocusInpaintData, seed, steps, cfg,
                sampler_name, scheduler, positive=None, negative=None, prompt=None, inpaint_patch=None,
                refiner_switch=DEFAULT_REFINER_SWITCH, interposer=FOOOCUS_FILE_NAME, num_images=1) -> io.NodeOutput:
        if not isinstance(inpaint, FooocusInpaintData):
            raise ValueError("inpaint: expected the output of Inpaint Conditioning (Fooocus)")
        if prompt is None and (positive is None or negative is None):
            raise ValueError("positive/negative: connect both conditionings, or a Fooocus prompt to 'prompt'")
        check_switch(refiner_switch)
        if refiner_kind(model, refiner) != KIND_SD15:
            raise ValueError("refiner: expected an SD1.5 model; use Fooocus Refiner for SDXL refiners")
        if not inpaint.active:
            full = u8_to_image(inpaint.meta["full_image"]).repeat(num_images, 1, 1, 1)
            return io.NodeOutput(full, {"samples": torch.zeros((num_images, 4, 1, 1))}, full)
        switch = switch_index(steps, refiner_switch)
        plan = sd15_plan(steps, switch, inpaint.strength)
        fill_px = u8_to_image(inpaint.prep.interested_fill)
        log.info("Fooocus SD1.5 refiner: %s (strength %.3f, switch %d of %d steps)", plan, inpaint.strength, switch, steps)
        if plan == PLAN_REFINER:
            latent = _vae_encode_cropped(refiner_vae, fill_px).to(torch.float32).cpu()
            latent = latent[..., :inpaint.latent_mask.shape[-2], :inpaint.latent_mask.shape[-1]]
            run_model = add_inpaint_blending(refiner, BlendSpec(latent, inpaint.latent_mask))
            out_vae = refiner_vae
        else:
            latent = inpaint.latent_fill
            run_model = fooocus_inpaint_model(model, inpaint, inpaint_patch, refiner_switch=1.0)  # no synthetic refiner
            out_vae = vae if plan == PLAN_BASE else refiner_vae
        swap = None
        interp = None
        if plan == PLAN_SWAP:
            latent15 = _vae_encode_cropped(refiner_vae, fill_px).to(torch.float32).cpu()
            h, w = inpaint.latent_mask.shape[-2:]
            swap = BlendSpec(latent15[..., :h, :w], inpaint.latent_mask)
            interp = _interposer(interposer)
        images, latents, crops = [], [], []
        for i in range(num_images):
            seed_i = (seed + i) % (2**63)
            if prompt is not None:
                positive, negative = prompt.conditioning(seed_i, image_index=i)
                # as Fooocus Sampler: image-prompt ControlNets recorded on the base model apply to the fresh conds
                positive, negative = reapply_controlnets(model, positive, negative)
            noise = comfy.sample.prepare_noise(latent, seed_i)
            callback = latent_preview.prepare_callback(run_model, steps)
            pbar = not comfy.utils.PROGRESS_BAR_ENABLED
            if plan == PLAN_SWAP:
                samples = vae_swap_sample(run_model, refiner, interp, noise, latent, steps, switch, cfg, sampler_name,
                                          scheduler, positive, negative, sd15_conditioning(positive, clip),
                                          sd15_conditioning(negative, clip), inpaint.strength, seed_i, swap,
                                          callback=callback, disable_pbar=pbar)
            else:
                pos, neg = (positive, negative) if plan == PLAN_BASE else (sd15_conditioning(positive, clip),
                                                                          sd15_conditioning(negative, clip))
                samples = comfy.sample.sample(run_model, noise, steps, cfg, sampler_name, scheduler, pos, neg, latent,
                                              denoise=inpaint.strength, callback=callback, disable_pbar=pbar, seed=seed_i)
            dec_u8 = _decode(out_vae, samples)
            images.append(u8_to_image(inpaint_prep.finish_inpaint(inpaint.prep, dec_u8)))
            crops.append(u8_to_image(dec_u8))
            latents.append(samples.cpu())
        return io.NodeOutput(torch.cat(images), {"samples": torch.cat(latents)}, torch.cat(crops))


MENU_ORDER = 27
NODES = [FooocusRefiner, FooocusSamplerSD15Refiner]
