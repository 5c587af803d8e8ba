"""The Fooocus inpaint nodes: conditioning (crop, fill, latents), sampling with paste-back, and
applying the inpaint model to a MODEL for use with ComfyUI's own samplers."""
from __future__ import annotations

import logging

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import numpy as np
import torch
from comfy_api.latest import io

from ..engine import inpaint_prep
from ..engine.masks import hwc3
from .schema_util import advanced
from .convert import decoded_to_u8, fit_mask, image_to_u8, mask_to_u8, u8_to_image, u8_to_mask
from .image_prompt import reapply_controlnets
from .inpaint_model import SYNTHETIC_REFINER_SWITCH, fooocus_inpaint_model
from .types import FooocusInpaintData, InpaintDataIO, InpaintPatchIO, PromptIO

log = logging.getLogger(__name__)

CATEGORY = "inpaint/fooocus"
FILL_MODES = ["auto", "fooocus_fill", "none"]


def _upscaler(upscale_model):
    """Wrap a ComfyUI UPSCALE_MODEL as ``uint8 HxWx3 -> uint8`` the way Fooocus calls its ESRGAN
    (``modules/upscaler.perform_upscale``: tiles 512, overlap 32, clamp, truncating uint8 cast)."""
    if upscale_model is None:
        return None

    def run(img_u8: np.ndarray) -> np.ndarray:
        from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel

        out = ImageUpscaleWithModel.execute(upscale_model, u8_to_image(img_u8))
        img = out[0] if isinstance(out, tuple) else out.result[0]
        return np.clip(255.0 * img[0].cpu().float().numpy(), 0, 255).astype(np.uint8)

    return run


def _vae_encode_cropped(vae, pixels: torch.Tensor) -> torch.Tensor:
    """ComfyUI/Fooocus ``VAEEncode``: centre-crop to multiples of 8 (offset ``(n % 8) // 2``), encode."""
    h, w = pixels.shape[1:3]
    hh, ww = h // 8 * 8, w // 8 * 8
    oy, ox = (h % 8) // 2, (w % 8) // 2
    return vae.encode(pixels[:, oy:oy + hh, ox:ox + ww, :3])


class InpaintConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_InpaintConditioning",
            display_name="Inpaint Conditioning (Fooocus)",
            category=CATEGORY,
            description=(
                "Fooocus's inpaint pre-processing. Crops a square around the mask grown to the 'respective field', "
                "resizes the crop to SDXL's ~1024² working size (LANCZOS; an optional upscale model first when the crop "
                "is small), fills the masked area with Fooocus's multi-scale box-blur fill, and VAE-encodes the fill "
                "(initial latent) and the grey-masked crop (for the inpaint head). White (> 50%) mask = repaint. "
                "Connect its outputs to Fooocus Sampler."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The image to inpaint (one image). RGBA is composited over white, as Fooocus does."),
                io.Mask.Input("mask", tooltip="White = repaint. Pixels > 0.5 are repainted; any non-zero pixel widens the crop, "
                                              "as in Fooocus. A mask of another size is resized to the image (LANCZOS)."),
                io.Vae.Input("vae", tooltip="The SDXL VAE (from the checkpoint)."),
                io.Float.Input("respective_field", default=0.618, min=0.0, max=1.0, step=0.001,
                               tooltip="Fooocus 'inpaint respective field': how much of the image around the mask the model "
                                       "sees. 0 = a square just around the mask (1.15x), 1 = the whole image. "
                                       "Fooocus default 0.618; Improve Detail and Modify Content use 0."),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Fooocus 'inpaint denoising strength'. 1.0 repaints from the fill; below 1 keeps more "
                                       "of the original (no fill is used below 0.99). Fooocus Sampler uses this value."),
                advanced(io.Combo.Input("fill", options=FILL_MODES, default="auto",
                               tooltip="auto = Fooocus: fill the masked area with the box-blur fill when strength > 0.99. "
                                       "fooocus_fill / none force it on or off.")),
                io.UpscaleModel.Input("upscale_model", optional=True,
                                      tooltip="Optional upscaler for small crops (Fooocus uses fooocus_upscaler_s409985e5.bin, "
                                              "a 4x ESRGAN, when the crop is smaller than ~1024²). Without it the crop is "
                                              "only LANCZOS-resized."),
            ],
            outputs=[
                InpaintDataIO.Output(display_name="inpaint", tooltip="Crop, fill, masks and latents for Fooocus Sampler."),
                io.Latent.Output(display_name="latent", tooltip="The fill latent of the working crop (Fooocus's initial latent)."),
                io.Image.Output(display_name="crop_preview", tooltip="What the model sees: the working-size crop after fill."),
                io.Mask.Output(display_name="crop_mask", tooltip="The working-size repaint mask (0/1)."),
            ],
        )

    @classmethod
    def execute(cls, image, mask, vae, respective_field, strength, fill="auto", upscale_model=None) -> io.NodeOutput:
        if image.shape[0] != 1:
            raise ValueError(f"image: expected one image, got a batch of {image.shape[0]}; "
                             "use the sampler's num_images for several results")
        if not 0.0 <= respective_field <= 1.0:
            raise ValueError(f"respective_field: expected a number in [0, 1], got {respective_field}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength: expected a number in [0, 1], got {strength}")
        if fill not in FILL_MODES:
            raise ValueError(f"fill: expected one of {FILL_MODES}, got {fill!r}")
        img = hwc3(image_to_u8(image))
        m = mask_to_u8(mask)
        m = fit_mask(m, img.shape[0], img.shape[1], "Inpaint Conditioning")
        use_fill = strength > 0.99 if fill == "auto" else fill == "fooocus_fill"
        if not np.any(m > 127):
            prep = inpaint_prep.passthrough(img, m) if hasattr(inpaint_prep, "passthrough") else img
            data = FooocusInpaintData(prep=prep, active=False, strength=strength, meta={"full_image": img})
            empty = torch.zeros((1, 4, max(1, img.shape[0] // 8), max(1, img.shape[1] // 8)))
            return io.NodeOutput(data, {"samples": empty}, u8_to_image(img), u8_to_mask(np.zeros(img.shape[:2], np.uint8)))

        prep = inpaint_prep.prepare_inpaint(img, m, respective_field, use_fill, upscale=_upscaler(upscale_model))
        fill_px = u8_to_image(prep.interested_fill)
        crop_px = u8_to_image(prep.interested_image)
        work_mask = u8_to_mask(prep.interested_mask)
        latent_fill = _vae_encode_cropped(vae, fill_px).to(torch.float32).cpu()
        latent_inpaint = vae.encode(inpaint_prep.masked_pixels_for_head(crop_px, work_mask)[:, :, :, :3]).to(torch.float32).cpu()
        h, w = latent_fill.shape[-2:]
        if tuple(latent_inpaint.shape[-2:]) != (h, w):
            latent_inpaint = latent_inpaint[..., :h, :w]
        lat_mask = inpaint_prep.latent_mask(work_mask, (h, w)).to(torch.float32)
        data = FooocusInpaintData(prep=prep, active=True, latent_fill=latent_fill, latent_inpaint=latent_inpaint,
                                  latent_mask=lat_mask, strength=strength,
                                  meta={"box": tuple(int(v) for v in prep.box), "working_size": tuple(prep.interested_image.shape[:2]),
                                        "fill": use_fill})
        return io.NodeOutput(data, {"samples": latent_fill}, fill_px, work_mask)


def _sampler_inputs(with_patch: bool = True) -> list:
    return [
        io.Model.Input("model", tooltip="The SDXL model (after any LoRAs)."),
        io.Conditioning.Input("positive", optional=True,
                              tooltip="Positive conditioning (or connect a Fooocus prompt to 'prompt')."),
        io.Conditioning.Input("negative", optional=True,
                              tooltip="Negative conditioning (or connect a Fooocus prompt to 'prompt')."),
        io.Vae.Input("vae", tooltip="The VAE used to decode the result (the one used for Inpaint Conditioning)."),
        InpaintDataIO.Input("inpaint", tooltip="From Inpaint Conditioning."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Seed of the first image; image i uses seed + i (Fooocus)."),
        io.Int.Input("steps", default=30, min=1, max=200,
                     tooltip="Sampling steps (Fooocus Speed 30, Quality 60, Extreme Speed 8, Lightning/Hyper-SD 4)."),
        io.Float.Input("cfg", default=4.0, min=1.0, max=30.0, step=0.1, round=0.01,
                       tooltip="Guidance scale (Fooocus default 4; 1 ignores the negative prompt)."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="dpmpp_2m_sde_gpu",
                       tooltip="Sampler (Fooocus default dpmpp_2m_sde_gpu)."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="karras",
                       tooltip="Scheduler (Fooocus default karras)."),
        InpaintPatchIO.Input("inpaint_patch", optional=True,
                             tooltip="From Fooocus Inpaint Patch Loader. Leave unconnected for inpaint engine 'None' "
                                     "(Improve Detail mode): no head, no patch, no synthetic refiner."),
        advanced(io.Float.Input("refiner_switch", default=SYNTHETIC_REFINER_SWITCH, min=0.0, max=1.0, step=0.01,
                       tooltip="Synthetic refiner: after this fraction of the steps the model without the inpaint "
                               "patch and head finishes the image (Fooocus: 0.8). 1.0 = off. Only with an inpaint_patch. "
                               "Not used when the MODEL comes from Fooocus Refiner (a real refiner replaces it).")),
    ]


class FooocusSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_Sampler",
            display_name="Fooocus Sampler",
            category=CATEGORY,
            description=(
                "Samples the inpaint crop the way Fooocus does, then pastes the result back into the full image with "
                "Fooocus's soft 32-pixel blend. Adds the inpaint patch and head, blends the unmasked area with the "
                "fill latent plus fresh noise at every step, and switches to the unpatched model for the last 20% "
                "(synthetic refiner) inside one sampler run. Pixels farther than 32 px from the mask stay unchanged."
            ),
            inputs=_sampler_inputs() + [
                PromptIO.Input("prompt", optional=True,
                               tooltip="A Fooocus prompt (styles, Fooocus V2 expansion): encoded per image with that "
                                       "image's seed, as Fooocus does. Replaces positive/negative when connected."),
                io.Int.Input("num_images", default=1, min=1, max=32,
                             tooltip="How many images; each uses seed + i and shares the pre-processing."),
                advanced(io.Boolean.Input("disable_initial_latent", default=False,
                                 tooltip="Fooocus 'disable initial latent in inpaint': start from an empty latent instead "
                                         "of the fill (Modify Content mode).")),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="Full-size results, pasted back into the image."),
                io.Latent.Output(display_name="latent", tooltip="The sampled latents of the working crop."),
                io.Image.Output(display_name="crop", tooltip="The decoded working-size crops, before paste-back."),
            ],
        )

    @classmethod
    def execute(cls, model, vae, inpaint: FooocusInpaintData, seed, steps, cfg, sampler_name, scheduler,
                positive=None, negative=None, inpaint_patch=None, refiner_switch=SYNTHETIC_REFINER_SWITCH,
                prompt=None, num_images=1, disable_initial_latent=False) -> io.NodeOutput:
        if not isinstance(inpaint, FooocusInpaintData):
            raise ValueError("inpaint: expected the output of Inpaint Conditioning (Fooocus)")
        if prompt is None and (positive is None or negative is None):
            raise ValueError("positive/negative: connect both conditionings, or a Fooocus prompt to 'prompt'")
        if not inpaint.active:
            full = u8_to_image(inpaint.meta["full_image"]).repeat(num_images, 1, 1, 1)
            empty = torch.zeros((num_images, 4, 1, 1))
            return io.NodeOutput(full, {"samples": empty}, full)
        patched = fooocus_inpaint_model(model, inpaint, inpaint_patch, refiner_switch)
        base_latent = torch.zeros_like(inpaint.latent_fill) if disable_initial_latent else inpaint.latent_fill
        images, latents, crops = [], [], []
        for i in range(num_images):
            seed_i = (seed + i) % (2**63)
            if prompt is not None:
                positive, negative = prompt.conditioning(seed_i, image_index=i)
                # image-prompt ControlNets recorded on the model apply to the fresh per-image conds too
                positive, negative = reapply_controlnets(model, positive, negative)
            noise = comfy.sample.prepare_noise(base_latent, seed_i)
            callback = latent_preview.prepare_callback(patched, steps)
            samples = comfy.sample.sample(patched, noise, steps, cfg, sampler_name, scheduler, positive, negative,
                                          base_latent, denoise=inpaint.strength, callback=callback,
                                          disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed_i)
            decoded = vae.decode(samples.to(comfy.model_management.intermediate_device()))
            if decoded.ndim == 5:
                decoded = decoded.reshape(-1, *decoded.shape[-3:])
            dec_u8 = decoded_to_u8(decoded)
            full = inpaint_prep.finish_inpaint(inpaint.prep, dec_u8)
            images.append(u8_to_image(full))
            crops.append(u8_to_image(dec_u8))
            latents.append(samples.cpu())
        return io.NodeOutput(torch.cat(images), {"samples": torch.cat(latents)}, torch.cat(crops))


class ApplyFooocusInpaint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_ApplyToModel",
            display_name="Apply Fooocus Inpaint",
            category=CATEGORY,
            description=(
                "For ComfyUI's own samplers (KSampler, SamplerCustom...): returns the MODEL patched as Fooocus does for "
                "this inpaint job (patch, head, per-step blending with the fill latent, synthetic refiner). Sample the "
                "'latent' of Inpaint Conditioning with denoise = strength, decode, then use Fooocus Paste Back."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The SDXL model (after any LoRAs)."),
                InpaintDataIO.Input("inpaint", tooltip="From Inpaint Conditioning."),
                InpaintPatchIO.Input("inpaint_patch", optional=True,
                                     tooltip="From Fooocus Inpaint Patch Loader; unconnected = engine 'None' (blending only)."),
                advanced(io.Float.Input("refiner_switch", default=SYNTHETIC_REFINER_SWITCH, min=0.0, max=1.0, step=0.01,
                               tooltip="Synthetic refiner switch (fraction of the steps); 1.0 = off. Not used when the MODEL "
                                       "comes from Fooocus Refiner (a real refiner replaces the synthetic one).")),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The patched model (a clone; the input is unchanged).")],
        )

    @classmethod
    def execute(cls, model, inpaint: FooocusInpaintData, inpaint_patch=None,
                refiner_switch=SYNTHETIC_REFINER_SWITCH) -> io.NodeOutput:
        if not inpaint.active:
            return io.NodeOutput(model)
        return io.NodeOutput(fooocus_inpaint_model(model, inpaint, inpaint_patch, refiner_switch))


class FooocusPasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_PasteBack",
            display_name="Fooocus Paste Back",
            category=CATEGORY,
            description=("Pastes decoded working-size crops back into the full image with Fooocus's soft blend "
                         "(LANCZOS resize to the crop box, 32 px ramp outside the mask, truncating colour blend)."),
            inputs=[
                InpaintDataIO.Input("inpaint", tooltip="From Inpaint Conditioning."),
                io.Image.Input("decoded", tooltip="The decoded sampler output (a batch is pasted image by image)."),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="Full-size results.")],
        )

    @classmethod
    def execute(cls, inpaint: FooocusInpaintData, decoded) -> io.NodeOutput:
        if not inpaint.active:
            return io.NodeOutput(u8_to_image(inpaint.meta["full_image"]).repeat(decoded.shape[0], 1, 1, 1))
        out = [u8_to_image(inpaint_prep.finish_inpaint(inpaint.prep, decoded_to_u8(decoded[i:i + 1])))
               for i in range(decoded.shape[0])]
        return io.NodeOutput(torch.cat(out))


MENU_ORDER = 30
NODES = [InpaintConditioning, FooocusSampler, ApplyFooocusInpaint, FooocusPasteBack]
