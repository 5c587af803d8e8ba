"""Build a ComfyUI API-format graph that runs one ``fal-ai/fooocus/inpaint`` request with this pack.

A user holding a fal request (a validated :class:`~.request.InpaintRequest`) uploads the image, the
mask and any image prompts to their ComfyUI (``/upload/image``), then calls :func:`build_graph` with
the stored file names (:class:`GraphInputs`) and a resolved seed, and queues the result (``POST /prompt``).
The graph always ends in ``FooocusInpaint_SaveImage`` with the fixed id :data:`SAVE_NODE_ID`, whose
``/history`` output carries the files, ``image_info`` (fal ``Image`` fields) and ``has_nsfw_concepts``.

Inpaint graph (every request with a mask, an outpaint direction or ``invert_mask``)::

    CheckpointLoaderSimple -> Fooocus LoRA Stack (fal loras) -> Fooocus Performance
        (performance, guidance_scale -> cfg, sharpness) -> model / clip / steps / cfg / sampler / scheduler
    Fooocus Prompt (clip of Performance; prompt, negative_prompt, styles, inpaint_additional_prompt)
    LoadImage(image) [+ LoadImage(mask)] -> Mask From Upload (LANCZOS, mean RGB, > 127)
        -> Mask Erode / Dilate (erode_or_dilate, invert) -> Outpaint Pad (directions)
    [Fooocus Inpaint Patch Loader (head + patch of the engine)]   [Load Upscale Model (Fooocus ESRGAN)]
    Inpaint Conditioning (respective_field, strength) -> Fooocus Sampler (seed, num_images, prompt,
        disable_initial_latent, synthetic refiner switch) -> Fooocus Safety Checker -> Fooocus Save Image

Text-to-image graph: Fooocus runs plain text-to-image at ``aspect_ratio`` when nothing is to be
repainted (``async_worker.py`` gate ``np.any(mask > 127) or outpaint``, fooocus-pipeline.md §1.1 step 5).
Known before running only when there is no mask, no outpaint direction and no ``invert_mask``; then the
builder emits ``EmptyLatentImage(aspect_ratio)`` + one ``Fooocus Prompt Encode`` / ``KSampler`` /
``VAEDecode`` per image (seed + i) joined with ``ImageBatch``. A mask that is present but all black is
only seen at run time: the inpaint graph then returns the image unchanged (documented gap).

Field by field meaning: :data:`FIELD_MAPPING` and ``docs/fal_mapping.md``.

Refiner (``refiner_model`` realisticVisionV60B1_v51VAE, SD1.5; used with Speed / Quality): a second
``CheckpointLoaderSimple`` (``ModelNames.refiners``) through a LoRA Stack with the user's slots (Fooocus
applies the user LoRAs to the refiner; SDXL LoRAs do not fit SD1.5 and are skipped with a warning), and
``Fooocus Sampler (SD1.5 refiner)`` instead of Fooocus Sampler (VAE swap + XL->v1 interposer
``ModelNames.interposer``, sigmas x 1.4, seed + 1, ``refiner_switch`` from the request, no synthetic
refiner). Text-to-image with a refiner is not supported (:func:`check_supported`).

Image prompts (``mixing_image_prompt_and_inpaint`` true, slots with an image; fooocus-pipeline.md §8):
ImagePrompt / FaceSwap -> ``FooocusInpaint_ImagePromptIPAdapter`` (``FooocusInpaint_IPAdapterLoader`` per
adapter file + one ``CLIPVisionLoader``) chained on the model after Performance; PyraCanny / CPDS ->
``ControlNetLoader`` + ``FooocusInpaint_ImagePromptControlNet`` (hint at the inpaint working size via its
``inpaint`` input, or at ``aspect_ratio`` for text-to-image) on the model and on conditionings from
``Fooocus Prompt Encode``; the samplers that encode the prompt per image re-apply the ControlNets recorded
on the model. The inpaint patch and head are added by the sampler on a clone of that model (weight patch,
input-block patch and attention replaces commute, so the order matches Fooocus's "patch, then IP-Adapter").
"""
from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import performance as perf
from .api_graph import Graph
from .request import (MAX_LORAS, MAX_SEED, RESTRICTED_PERFORMANCES, SYNTHETIC_REFINER_SWITCH, InpaintOptions,
                      InpaintRequest, effective_inpaint_options)

log = logging.getLogger(__name__)

__all__ = [
    "FIELD_MAPPING", "FILENAME_PREFIX", "PATCH_FILES", "SAVE_NODE_ID", "GraphInputs", "ModelNames",
    "UnsupportedRequestError", "build_graph", "build_layout_graph", "check_against_object_info", "check_supported",
    "effective_refiner", "image_prompts_used", "is_text_to_image", "lora_file_name", "render_mapping_table",
]

#: Image prompt types that use a ControlNet / an IP-Adapter (fooocus-pipeline.md §8).
CONTROLNET_TYPES = ("PyraCanny", "CPDS")
IP_ADAPTER_TYPES = ("ImagePrompt", "FaceSwap")
#: Fooocus ControlNet softness and PyraCanny thresholds (not exposed by fal).
CN_SOFTNESS, CANNY_LOW, CANNY_HIGH = 0.25, 64, 128

#: Id of the ``FooocusInpaint_SaveImage`` node in every built graph (its /history output is the answer).
SAVE_NODE_ID = "save"
#: ``filename_prefix`` of the save node (files land in ComfyUI's output folder).
FILENAME_PREFIX = "fooocus_inpaint_fal"
#: Fooocus inpaint patch file per ``inpaint_engine`` (Fooocus ``config.downloading_inpaint_models``).
PATCH_FILES: dict[str, str] = {"v1": "inpaint.fooocus.patch", "v2.5": "inpaint_v25.fooocus.patch",
                               "v2.6": "inpaint_v26.fooocus.patch"}
#: Fooocus's default CLIP skip (the penultimate layer, stock SDXL); fal does not expose it.
CLIP_SKIP = 2
NONE = "None"


class UnsupportedRequestError(ValueError):
    """The request uses a feature this pack cannot run yet (message names the field and the reason)."""


@dataclass(frozen=True)
class GraphInputs:
    """File names in ComfyUI's ``input`` folder, already uploaded by the caller.

    ``image``: the ``inpaint_image_url`` picture (non-empty string). ``mask``: the ``mask_image_url``
    picture or ``None`` (no mask). ``image_prompts``: slot 1..4 -> uploaded ``image_prompt_N.image_url``.
    """

    image: str
    mask: str | None = None
    image_prompts: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelNames:
    """File names in the server's model folders (defaults: Fooocus 2.5.5's file names).

    ``checkpoint`` (checkpoints), ``inpaint_head`` and ``inpaint_patches`` (engine -> file; inpaint),
    ``upscaler`` (upscale_models; ``None`` = no ESRGAN pre-upscale of small crops), ``loras`` (a fal
    ``LoraWeight.path`` or its :func:`lora_file_name` -> file in loras; unmapped paths use the file name),
    the performance LoRAs (loras), ``refiners`` (fal ``refiner_model`` value -> checkpoint file; unmapped
    values are used as is), ``interposer`` (vae_approx; the XL->v1 latent interposer of the SD1.5 refiner),
    ``safety_checker`` (safety_checker), ``expansion`` (the Fooocus V2 folder in prompt_expansion), and the
    image prompt models: ``clip_vision`` (clip_vision), ``ip_adapter`` / ``ip_adapter_face`` /
    ``ip_negative`` (controlnet; ImagePrompt / FaceSwap / Fooocus's negative tokens), ``controlnet_canny``
    / ``controlnet_cpds`` (controlnet; PyraCanny / CPDS).
    """

    checkpoint: str = "juggernautXL_v8Rundiffusion.safetensors"
    inpaint_head: str = "fooocus_inpaint_head.pth"
    inpaint_patches: Mapping[str, str] = field(default_factory=lambda: dict(PATCH_FILES))
    upscaler: str | None = "fooocus_upscaler_s409985e5.bin"
    loras: Mapping[str, str] = field(default_factory=dict)
    lcm_lora: str = "sdxl_lcm_lora.safetensors"
    lightning_lora: str = "sdxl_lightning_4step_lora.safetensors"
    hyper_sd_lora: str = "sdxl_hyper_sd_4step_lora.safetensors"
    refiners: Mapping[str, str] = field(default_factory=dict)
    interposer: str = "xl-to-v1_interposer-v4.0.safetensors"
    safety_checker: str = "stable-diffusion-safety-checker.bin"
    expansion: str = "fooocus_expansion"
    clip_vision: str = "clip_vision_vit_h.safetensors"
    ip_adapter: str = "ip-adapter-plus_sdxl_vit-h.bin"
    ip_adapter_face: str = "ip-adapter-plus-face_sdxl_vit-h.bin"
    ip_negative: str = "fooocus_ip_negative.safetensors"
    controlnet_canny: str = "control-lora-canny-rank128.safetensors"
    controlnet_cpds: str = "fooocus_xl_cpds_128.safetensors"

    def image_prompt_file(self, kind: str) -> str:
        """The model file of an image prompt type (IP-Adapter for ImagePrompt/FaceSwap, ControlNet else)."""
        files = {"ImagePrompt": self.ip_adapter, "FaceSwap": self.ip_adapter_face,
                 "PyraCanny": self.controlnet_canny, "CPDS": self.controlnet_cpds}
        if kind not in files:
            raise ValueError(f"type: expected one of {list(files)}, got {kind!r}")
        return files[kind]


#: fal field -> (where it goes in the built graph, what it means). ``docs/fal_mapping.md`` is the long form.
FIELD_MAPPING: dict[str, tuple[str, str]] = {
    "prompt": ("FooocusInpaint_Prompt.prompt",
               "positive prompt; line 1 styled and expanded; `<lora:name:w>` tokens applied to model and CLIP; "
               "`__name__` wildcards per image"),
    "negative_prompt": ("FooocusInpaint_Prompt.negative_prompt", "negative prompt"),
    "styles": ("FooocusInpaint_Prompt.styles", "comma-joined style names in order; 'Fooocus V2' = expansion"),
    "performance": ("FooocusInpaint_Performance.performance", "steps, sampler, scheduler, LoRA and forced settings"),
    "guidance_scale": ("FooocusInpaint_Performance.cfg", "CFG (forced to 1 by the LoRA presets)"),
    "sharpness": ("FooocusInpaint_Performance.sharpness", "Fooocus sharpness (forced to 0 by the LoRA presets)"),
    "aspect_ratio": ("EmptyLatentImage.width/height (text-to-image graph only)",
                     "ignored for inpaint/outpaint: the working size comes from the crop"),
    "num_images": ("FooocusInpaint_Sampler.num_images (or one KSampler per image)", "images seed, seed+1, ..."),
    "loras": ("FooocusInpaint_LoraStack.lora_i/weight_i", "user LoRAs on model and CLIP, before Performance"),
    "refiner_model": ("CheckpointLoaderSimple (ModelNames.refiners) -> LoraStack -> "
                      "FooocusInpaint_SamplerSD15Refiner.refiner/refiner_vae (Speed/Quality only)",
                      "SD1.5 refiner: VAE swap + XL->v1 interposer; forced off by the LoRA presets"),
    "refiner_switch": ("FooocusInpaint_SamplerSD15Refiner.refiner_switch (only with a refiner)",
                       "base steps fraction; Fooocus forces 0.8 for the synthetic refiner"),
    "output_format": ("FooocusInpaint_SaveImage.format", "png / jpeg / webp encoding"),
    "sync_mode": ("none (client / fal drop-in side)",
                  "the CLI and the fal drop-in routes return data URIs instead of file URLs"),
    "seed": ("FooocusInpaint_Sampler.seed (build_graph's seed)", "seed of image 0; null = random"),
    "inpaint_image_url": ("LoadImage.image (GraphInputs.image)", "the image to inpaint"),
    "mask_image_url": ("LoadImage.image -> FooocusInpaint_MaskFromUpload.mask_image (GraphInputs.mask)",
                       "upload mask: LANCZOS to the image size, mean RGB > 127 = repaint"),
    "inpaint_mode": ("via effective_inpaint_options", "preset (disable_initial_latent, engine, strength, field)"),
    "inpaint_additional_prompt": ("FooocusInpaint_Prompt.inpaint_additional_prompt", "becomes prompt line 1"),
    "outpaint_selections": ("FooocusInpaint_OutpaintPad.left/right/top/bottom", "30% edge padding per side"),
    "override_inpaint_options": ("via effective_inpaint_options", "use the five advanced fields instead of the preset"),
    "inpaint_disable_initial_latent": ("FooocusInpaint_Sampler.disable_initial_latent", "zero initial latent"),
    "inpaint_engine": ("FooocusInpaint_Loader.patch (absent for None) + Sampler.refiner_switch",
                       "inpaint head + patch version; None = neither, no synthetic refiner"),
    "inpaint_strength": ("FooocusInpaint_InpaintConditioning.strength", "denoise; fill when > 0.99"),
    "inpaint_respective_field": ("FooocusInpaint_InpaintConditioning.respective_field", "crop context 0..1"),
    "inpaint_erode_or_dilate": ("FooocusInpaint_MaskErodeDilate.amount", "pixels, before invert"),
    "invert_mask": ("FooocusInpaint_MaskErodeDilate.invert", "invert after erode/dilate"),
    "image_prompt_1": ("LoadImage (GraphInputs.image_prompts[1]) -> FooocusInpaint_ImagePromptIPAdapter "
                       "(ImagePrompt/FaceSwap) or FooocusInpaint_ImagePromptControlNet (PyraCanny/CPDS)",
                       "image prompt slot 1: type, weight, stop_at; only with mixing"),
    "image_prompt_2": ("LoadImage (GraphInputs.image_prompts[2]) -> FooocusInpaint_ImagePromptIPAdapter "
                       "(ImagePrompt/FaceSwap) or FooocusInpaint_ImagePromptControlNet (PyraCanny/CPDS)",
                       "image prompt slot 2: type, weight, stop_at; only with mixing"),
    "image_prompt_3": ("LoadImage (GraphInputs.image_prompts[3]) -> FooocusInpaint_ImagePromptIPAdapter "
                       "(ImagePrompt/FaceSwap) or FooocusInpaint_ImagePromptControlNet (PyraCanny/CPDS)",
                       "image prompt slot 3: type, weight, stop_at; only with mixing"),
    "image_prompt_4": ("LoadImage (GraphInputs.image_prompts[4]) -> FooocusInpaint_ImagePromptIPAdapter "
                       "(ImagePrompt/FaceSwap) or FooocusInpaint_ImagePromptControlNet (PyraCanny/CPDS)",
                       "image prompt slot 4: type, weight, stop_at; only with mixing"),
    "mixing_image_prompt_and_inpaint": ("gate for image_prompt_1..4", "image prompts act only when true"),
    "enable_safety_checker": ("FooocusInpaint_SafetyChecker.enabled", "black out NSFW images, report flags"),
}


def render_mapping_table() -> str:
    """:data:`FIELD_MAPPING` as a Markdown table (``| fal field | where in the graph | meaning |``), one row per
    fal input field in schema order; the README embeds it between ``fal-mapping`` markers (a test compares)."""
    rows = ["| fal field | where in the graph | meaning |", "|---|---|---|"]
    for name, (where, meaning) in FIELD_MAPPING.items():
        cell = lambda text: text.replace("|", "\\|")  # noqa: E731
        rows.append(f"| `{name}` | {cell(where)} | {cell(meaning)} |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------------------------------
# Small decisions, exposed for the client and the tests
# --------------------------------------------------------------------------------------------------
def lora_file_name(path_or_url: str) -> str:
    """The file name in ComfyUI's ``loras`` folder for a fal ``LoraWeight.path``.

    URLs (``scheme://...``): the last segment of the URL path, percent-decoded, query and fragment
    dropped (``.../resolve/main/sd_xl_offset_example-lora_1.0.safetensors?download=true`` ->
    ``sd_xl_offset_example-lora_1.0.safetensors``). Paths: the last component (``/`` or ``\\``
    separators). Fooocus counterpart: its LoRA dropdown holds bare file names of ``models/loras``.
    Raises ``ValueError`` for a non-string, an empty value, or one without a file name.
    """
    if not isinstance(path_or_url, str) or not path_or_url.strip():
        raise ValueError(f"path_or_url: expected a non-empty LoRA URL or path, got {path_or_url!r}")
    text = path_or_url.strip()
    if "://" in text:
        text = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
    name = text.replace("\\", "/").rsplit("/", 1)[-1]
    if not name or name in (".", ".."):
        raise ValueError(f"path_or_url: no file name in LoRA path {path_or_url!r}")
    return name


def effective_refiner(req: InpaintRequest) -> str:
    """The refiner Fooocus would load: ``"None"`` for the LoRA presets (Extreme Speed, Lightning, Hyper-SD
    force it off, fooocus-pipeline.md §4), else ``req.refiner_model``. Fooocus: ``async_worker.py`` 1093-1098."""
    return NONE if req.performance in RESTRICTED_PERFORMANCES else req.refiner_model


def image_prompts_used(req: InpaintRequest) -> tuple[int, ...]:
    """Slots (1..4) whose image prompt Fooocus would apply to an inpaint request: only when
    ``mixing_image_prompt_and_inpaint`` is true, and only slots with an image (fooocus-pipeline.md §8,
    ``apply_image_input``: goal ``cn`` needs the mixing flag on the inpaint tab)."""
    if not req.mixing_image_prompt_and_inpaint:
        return ()
    return tuple(i for i, p in enumerate(req.image_prompts, 1) if p is not None and p.image_url)


def is_text_to_image(req: InpaintRequest, inputs: GraphInputs) -> bool:
    """True when Fooocus's inpaint gate is known to be closed before running: no mask, no effective
    outpaint direction and no ``invert_mask`` (an inverted empty mask repaints everything). Fooocus then
    generates at ``aspect_ratio`` (``async_worker.py`` ~870, fooocus-pipeline.md §1.1 step 5)."""
    opts = effective_inpaint_options(req)
    return inputs.mask is None and not opts.outpaint_selections and not opts.invert_mask


def check_supported(req: InpaintRequest, inputs: GraphInputs | None = None) -> None:
    """Raise :class:`UnsupportedRequestError` if the request needs a feature the pack does not run.

    The only one left: a refiner (``effective_refiner(req) != "None"``) on the text-to-image path
    (``inputs`` given and :func:`is_text_to_image`): the SD1.5 refiner's VAE swap exists only in
    ``Fooocus Sampler (SD1.5 refiner)``, which samples an inpaint job. Fooocus would run the base for
    ``round(steps x refiner_switch)`` steps and finish with the SD1.5 model. Use ``refiner_model`` "None",
    a LoRA performance (which turns the refiner off, as in Fooocus), or give a mask.
    """
    refiner = effective_refiner(req)
    if refiner != NONE and inputs is not None and is_text_to_image(req, inputs):
        raise UnsupportedRequestError(
            f"refiner_model: {refiner!r} is not supported for text-to-image requests (no mask, no outpaint, no "
            f"invert_mask): the pack runs the SD1.5 refiner's VAE swap only for inpaint; use 'None', a performance "
            f"of {sorted(RESTRICTED_PERFORMANCES)} (which turns the refiner off as in Fooocus), or give a mask")


# --------------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------------
def _check_args(req: Any, inputs: Any, seed: Any, models: Any) -> None:
    if not isinstance(req, InpaintRequest):
        raise ValueError(f"req: expected an InpaintRequest (engine.request.parse_request), got {type(req).__name__}")
    if not isinstance(inputs, GraphInputs):
        raise ValueError(f"inputs: expected a GraphInputs, got {type(inputs).__name__}")
    if not isinstance(models, ModelNames):
        raise ValueError(f"models: expected a ModelNames, got {type(models).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed: expected an int in [0, {MAX_SEED}] (engine.request.resolve_seed), got {seed!r}")
    if req.seed is not None and seed != req.seed:
        raise ValueError(f"seed: the request fixes seed {req.seed}, but build_graph got {seed}")
    if not isinstance(inputs.image, str) or not inputs.image:
        raise ValueError(f"inputs.image: expected the uploaded image's file name, got {inputs.image!r}")
    if inputs.mask is not None and (not isinstance(inputs.mask, str) or not inputs.mask):
        raise ValueError(f"inputs.mask: expected the uploaded mask's file name or None, got {inputs.mask!r}")
    if req.mask_image_url is not None and inputs.mask is None:
        raise ValueError("inputs.mask: the request has a mask_image_url; upload it and pass its file name")
    if req.mask_image_url is None and inputs.mask is not None:
        raise ValueError("inputs.mask: the request has no mask_image_url, but a mask file was given")
    if not isinstance(inputs.image_prompts, Mapping):
        raise ValueError(f"inputs.image_prompts: expected a dict slot -> file name, got {inputs.image_prompts!r}")
    for slot, name in inputs.image_prompts.items():
        if isinstance(slot, bool) or slot not in (1, 2, 3, 4) or not isinstance(name, str) or not name:
            raise ValueError(f"inputs.image_prompts: expected slots 1..4 -> file names, got {slot!r}: {name!r}")
    missing = [i for i in image_prompts_used(req) if i not in inputs.image_prompts]
    if missing:
        raise ValueError(f"inputs.image_prompts: image_prompt_{missing[0]} is used (mixing_image_prompt_and_inpaint "
                         f"is true); upload its image_url and pass the file name for slot {missing[0]}")
    bad_styles = [s for s in req.styles if "," in s or "\n" in s or "\r" in s]
    if bad_styles:
        raise ValueError(f"req.styles: style names may not contain commas or line breaks: {bad_styles}")
    if len(req.loras) > MAX_LORAS:
        raise ValueError(f"req.loras: at most {MAX_LORAS} LoRAs, got {len(req.loras)}")


def _lora_slots(req: InpaintRequest, models: ModelNames) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    for i in range(1, MAX_LORAS + 1):
        if i <= len(req.loras):
            lora = req.loras[i - 1]
            name = models.loras.get(lora.path) or models.loras.get(lora_file_name(lora.path)) \
                or lora_file_name(lora.path)
            slots[f"lora_{i}"], slots[f"weight_{i}"] = name, float(lora.scale)
        else:
            slots[f"lora_{i}"], slots[f"weight_{i}"] = NONE, 1.0
    return slots


def _model_stack(g: Graph, req: InpaintRequest, models: ModelNames):
    ckpt = g.add("CheckpointLoaderSimple", "Load Checkpoint", "Model", ckpt_name=models.checkpoint)
    loras = g.add("FooocusInpaint_LoraStack", "LoRAs (fal loras)", "Model", model=ckpt.out(0), clip=ckpt.out(1),
                  **_lora_slots(req, models))
    performance = g.add(
        "FooocusInpaint_Performance", "Performance (fal performance, guidance_scale, sharpness)", "Model",
        model=loras.out(0), clip=loras.out(1), performance=req.performance, cfg=float(req.guidance_scale),
        sampler_name=perf.DEFAULT_SAMPLER, scheduler=perf.DEFAULT_SCHEDULER, sharpness=float(req.sharpness),
        adaptive_cfg=perf.DEFAULT_ADAPTIVE_CFG, adm_positive=perf.DEFAULT_ADM_POSITIVE,
        adm_negative=perf.DEFAULT_ADM_NEGATIVE, adm_end=perf.DEFAULT_ADM_END, steps_override=0,
        lcm_lora=models.lcm_lora, lightning_lora=models.lightning_lora, hyper_sd_lora=models.hyper_sd_lora)
    return ckpt, performance


def _refiner_stack(g: Graph, req: InpaintRequest, models: ModelNames):
    """(checkpoint, LoRA stack) of the refiner, or ``None`` when Fooocus uses none."""
    refiner = effective_refiner(req)
    if refiner == NONE:
        return None
    name = models.refiners.get(refiner) or refiner
    ckpt = g.add("CheckpointLoaderSimple", "Load Refiner (fal refiner_model)", "Refiner", ckpt_name=name)
    loras = g.add("FooocusInpaint_LoraStack", "Refiner LoRAs (fal loras, skipped where they do not fit)", "Refiner",
                  model=ckpt.out(0), clip=ckpt.out(1), **_lora_slots(req, models))
    return ckpt, loras


def _prompt(g: Graph, req: InpaintRequest, performance, additional_prompt: str, models: ModelNames):
    """Fooocus Prompt; its ``model`` output (Performance's model plus the prompt's inline ``<lora:...>``
    LoRAs) is the model the samplers use. ``upstream_loras``: the LoRA Stack's files (Fooocus skips an
    inline LoRA naming one of them, and counts them towards the limit of 5)."""
    upstream = [v for k, v in _lora_slots(req, models).items() if k.startswith("lora_") and v != NONE]
    return g.add("FooocusInpaint_Prompt", "Prompt (fal prompt, negative_prompt, styles)", "Prompt",
                 clip=performance.out(1), prompt=req.prompt, negative_prompt=req.negative_prompt,
                 styles=", ".join(req.styles), inpaint_additional_prompt=additional_prompt,
                 expansion_model=models.expansion, clip_skip=CLIP_SKIP, model=performance.out(0),
                 read_wildcards_in_order=False, upstream_loras=",".join(upstream))


@dataclass
class _ImagePrompts:
    """Image prompt slots split by kind, with their LoadImage nodes (built once)."""

    ip: list = field(default_factory=list)   # (slot, ImagePrompt, LoadImage ref)
    cn: list = field(default_factory=list)   # (slot, ImagePrompt, LoadImage ref, ControlNetLoader ref)


def _image_prompt_inputs(g: Graph, req: InpaintRequest, inputs: GraphInputs, models: ModelNames) -> _ImagePrompts:
    out = _ImagePrompts()
    loaders: dict[str, Any] = {}
    for slot in image_prompts_used(req):
        p = req.image_prompts[slot - 1]
        image = g.add("LoadImage", f"Image prompt {slot} (fal image_prompt_{slot}.image_url, {p.type})",
                      "Image prompts", image=inputs.image_prompts[slot])
        if p.type in CONTROLNET_TYPES:
            name = models.image_prompt_file(p.type)
            if name not in loaders:
                loaders[name] = g.add("ControlNetLoader", f"ControlNet ({p.type})", "Image prompts",
                                      control_net_name=name)
            out.cn.append((slot, p, image, loaders[name]))
        else:
            out.ip.append((slot, p, image))
    return out


def _apply_ip_adapters(g: Graph, ips: _ImagePrompts, models: ModelNames, model: list) -> list:
    """Chain the ImagePrompt/FaceSwap slots on ``model`` (a link); returns the new model link."""
    if not ips.ip:
        return model
    clip_vision = g.add("CLIPVisionLoader", "CLIP Vision (ViT-H)", "Image prompts", clip_name=models.clip_vision)
    adapters: dict[str, Any] = {}
    for slot, p, image in ips.ip:
        name = models.image_prompt_file(p.type)
        if name not in adapters:
            adapters[name] = g.add("FooocusInpaint_IPAdapterLoader", f"IP-Adapter ({p.type})", "Image prompts",
                                   ip_adapter=name, negative=models.ip_negative)
        node = g.add("FooocusInpaint_ImagePromptIPAdapter",
                     f"Image prompt {slot} (IP-Adapter, fal weight / stop_at)", "Image prompts", model=model,
                     ip_adapter=adapters[name].out(0), clip_vision=clip_vision.out(0), image=image.out(0),
                     type=p.type, weight=float(p.weight), stop_at=float(p.stop_at))
        model = node.out(0)
    return model


def _apply_controlnets(g: Graph, ips: _ImagePrompts, model: list, positive: list, negative: list, *,
                       inpaint: list | None = None, size: tuple[int, int] = (1024, 1024), label: str = ""):
    """Chain the PyraCanny/CPDS slots on (model, positive, negative) links; returns the new links. The hint is
    made at the inpaint working size when ``inpaint`` (a link) is given, else at ``size`` = (width, height)."""
    for slot, p, image, loader in ips.cn:
        extra = {"inpaint": inpaint} if inpaint is not None else {}
        node = g.add("FooocusInpaint_ImagePromptControlNet",
                     f"Image prompt {slot} (ControlNet, fal weight / stop_at){label}", "Image prompts",
                     model=model, positive=positive, negative=negative, control_net=loader.out(0),
                     image=image.out(0), type=p.type, weight=float(p.weight), stop_at=float(p.stop_at),
                     width=int(size[0]), height=int(size[1]), softness=CN_SOFTNESS, skip_preprocessor=False,
                     canny_low=CANNY_LOW, canny_high=CANNY_HIGH, **extra)
        model, positive, negative = node.out(0), node.out(1), node.out(2)
    return model, positive, negative


def _inpaint_nodes(g: Graph, req: InpaintRequest, opts: InpaintOptions, inputs: GraphInputs, seed: int,
                   models: ModelNames, ckpt, performance, prompt):
    image = g.add("LoadImage", "Image (fal inpaint_image_url)", "Image and mask", image=inputs.image)
    mask_inputs: dict[str, Any] = {"image": image.out(0)}
    if inputs.mask is not None:
        upload = g.add("LoadImage", "Mask (fal mask_image_url)", "Image and mask", image=inputs.mask)
        mask_inputs["mask_image"] = upload.out(0)
    mask = g.add("FooocusInpaint_MaskFromUpload", "Mask From Upload", "Image and mask", **mask_inputs)
    mask = g.add("FooocusInpaint_MaskErodeDilate", "Mask Erode / Dilate (fal inpaint_erode_or_dilate, invert_mask)",
                 "Image and mask", mask=mask.out(0), amount=int(opts.erode_or_dilate), invert=bool(opts.invert_mask))
    sides = {s: s in opts.outpaint_directions_lower for s in ("left", "right", "top", "bottom")}
    pad = g.add("FooocusInpaint_OutpaintPad", "Outpaint Pad (fal outpaint_selections)", "Image and mask",
                image=image.out(0), mask=mask.out(0), **sides,
                left_pixels=0, right_pixels=0, top_pixels=0, bottom_pixels=0)
    loader = None
    if opts.use_inpaint_patch:
        patch = models.inpaint_patches.get(opts.engine)
        if not patch:
            raise ValueError(f"models.inpaint_patches: no patch file for inpaint_engine {opts.engine!r}")
        loader = g.add("FooocusInpaint_Loader", f"Fooocus Inpaint Patch Loader (engine {opts.engine})", "Inpaint",
                       head=models.inpaint_head, patch=patch)
    cond_inputs: dict[str, Any] = dict(image=pad.out(0), mask=pad.out(1), vae=ckpt.out(2),
                                       respective_field=float(opts.respective_field), strength=float(opts.strength),
                                       fill="auto")
    if models.upscaler:
        upscaler = g.add("FooocusInpaint_UpscalerLoader", "Fooocus Upscaler (small crops)", "Inpaint",
                         model_name=models.upscaler)
        cond_inputs["upscale_model"] = upscaler.out(0)
    cond = g.add("FooocusInpaint_InpaintConditioning", "Inpaint Conditioning (fal strength, respective field)",
                 "Inpaint", **cond_inputs)
    ips = _image_prompt_inputs(g, req, inputs, models)
    model = _apply_ip_adapters(g, ips, models, prompt.out(1))
    refiner = _refiner_stack(g, req, models)
    common: dict[str, Any] = dict(vae=ckpt.out(2), inpaint=cond.out(0), steps=performance.out(2),
                                  cfg=performance.out(3), sampler_name=performance.out(4),
                                  scheduler=performance.out(5))
    if loader is not None:
        common["inpaint_patch"] = loader.out(0)
    if refiner is None:
        if ips.cn:
            # the ControlNet nodes need conditionings (image 0's); the sampler re-encodes per image and
            # re-applies the ControlNets recorded on the model (nodes.image_prompt.reapply_controlnets)
            enc = g.add("FooocusInpaint_PromptEncode", "Prompt Encode (for the ControlNets)", "Image prompts",
                        prompt=prompt.out(0), seed=seed, image_index=0)
            model, _, _ = _apply_controlnets(g, ips, model, enc.out(0), enc.out(1), inpaint=cond.out(0))
        return g.add("FooocusInpaint_Sampler", "Fooocus Sampler (fal seed, num_images)", "Inpaint", model=model,
                     seed=seed, refiner_switch=SYNTHETIC_REFINER_SWITCH if opts.use_synthetic_refiner else 1.0,
                     prompt=prompt.out(0), num_images=int(req.num_images),
                     disable_initial_latent=bool(opts.disable_initial_latent), **common)
    if opts.disable_initial_latent:
        log.warning("inpaint_disable_initial_latent has no effect with the SD1.5 refiner (its sampler starts from "
                    "the fill latent)")
    r_ckpt, r_loras = refiner
    sd15: dict[str, Any] = dict(clip=performance.out(1), refiner=r_loras.out(0), refiner_vae=r_ckpt.out(2),
                                refiner_switch=float(req.refiner_switch), interposer=models.interposer, **common)
    title = "Fooocus Sampler, SD1.5 refiner (fal seed, num_images, refiner_switch)"
    if not ips.cn:
        return g.add("FooocusInpaint_SamplerSD15Refiner", title, "Inpaint", model=model, seed=seed,
                     prompt=prompt.out(0), num_images=int(req.num_images), **sd15)
    # This sampler does not re-apply recorded ControlNets to its per-image prompt encodes: give it each
    # image's conditionings (Prompt Encode seed+i -> ControlNets) and one image per sampler, batched.
    images = None
    for i in range(int(req.num_images)):
        seed_i = (seed + i) % (MAX_SEED + 1)
        enc = g.add("FooocusInpaint_PromptEncode", f"Prompt Encode (image {i + 1})", "Image prompts",
                    prompt=prompt.out(0), seed=seed_i, image_index=i)
        m_i, pos, neg = _apply_controlnets(g, ips, model, enc.out(0), enc.out(1), inpaint=cond.out(0),
                                           label=f" image {i + 1}")
        node = g.add("FooocusInpaint_SamplerSD15Refiner", f"{title} image {i + 1}", "Inpaint", model=m_i,
                     seed=seed_i, positive=pos, negative=neg, num_images=1, **sd15)
        images = node if images is None else g.add("ImageBatch", f"Batch (images 1-{i + 1})", "Inpaint",
                                                   image1=images.out(0), image2=node.out(0))
    return images


def _text_to_image_nodes(g: Graph, req: InpaintRequest, inputs: GraphInputs, seed: int, models: ModelNames,
                         ckpt, performance, prompt):
    width, height = req.width_height
    latent = g.add("EmptyLatentImage", "Empty Latent (fal aspect_ratio)", "Text to image", width=width,
                   height=height, batch_size=1)
    ips = _image_prompt_inputs(g, req, inputs, models)
    model = _apply_ip_adapters(g, ips, models, prompt.out(1))
    images = None
    for i in range(int(req.num_images)):
        seed_i = (seed + i) % (MAX_SEED + 1)
        enc = g.add("FooocusInpaint_PromptEncode", f"Prompt Encode (image {i + 1})", "Text to image",
                    prompt=prompt.out(0), seed=seed_i, image_index=i)
        m_i, pos, neg = _apply_controlnets(g, ips, model, enc.out(0), enc.out(1), size=(width, height),
                                           label=f" image {i + 1}")
        samples = g.add("KSampler", f"KSampler (image {i + 1})", "Text to image", model=m_i,
                        seed=seed_i, steps=performance.out(2), cfg=performance.out(3),
                        sampler_name=performance.out(4), scheduler=performance.out(5), positive=pos,
                        negative=neg, latent_image=latent.out(0), denoise=1.0)
        decoded = g.add("VAEDecode", f"VAE Decode (image {i + 1})", "Text to image", samples=samples.out(0),
                        vae=ckpt.out(2))
        images = decoded if images is None else g.add("ImageBatch", f"Batch (images 1-{i + 1})", "Text to image",
                                                      image1=images.out(0), image2=decoded.out(0))
    return images


def _build(req: InpaintRequest, inputs: GraphInputs, seed: int, models: ModelNames):
    """(Graph, safety checker ref): everything but the save node (see :func:`build_graph`)."""
    _check_args(req, inputs, seed, models)
    check_supported(req, inputs)
    opts = effective_inpaint_options(req)
    ignored = [i for i, p in enumerate(req.image_prompts, 1) if p is not None and p.image_url
               and not req.mixing_image_prompt_and_inpaint]
    if ignored:
        log.warning("image_prompt_%s ignored: mixing_image_prompt_and_inpaint is false (as in Fooocus)", ignored)
    g = Graph()
    ckpt, performance = _model_stack(g, req, models)
    if is_text_to_image(req, inputs):
        log.info("no mask, no outpaint and no invert: text-to-image at %s, as Fooocus does", req.aspect_ratio)
        prompt = _prompt(g, req, performance, "", models)
        images = _text_to_image_nodes(g, req, inputs, seed, models, ckpt, performance, prompt)
    else:
        prompt = _prompt(g, req, performance, opts.additional_prompt, models)
        images = _inpaint_nodes(g, req, opts, inputs, seed, models, ckpt, performance, prompt)
    safety = g.add("FooocusInpaint_SafetyChecker", "Safety Checker (fal enable_safety_checker)", "Output",
                   images=images.out(0), enabled=bool(req.enable_safety_checker), checker=models.safety_checker)
    return g, safety


def _save_inputs(req: InpaintRequest, safety) -> dict:
    return {"images": safety.out(0), "format": req.output_format, "filename_prefix": FILENAME_PREFIX,
            "has_nsfw_concepts": safety.out(1)}


def build_graph(req: InpaintRequest, inputs: GraphInputs, *, seed: int,
                models: ModelNames = ModelNames()) -> dict:
    """The ComfyUI API-format graph (``{id: {"class_type", "inputs", "_meta"}}``) running ``req``.

    ``req``: a validated request (:func:`~.request.parse_request`); ``inputs``: uploaded file names (a mask
    file exactly when ``req.mask_image_url`` is set; an image prompt file for every slot of
    :func:`image_prompts_used`); ``seed``: int in [0, 2**63-1], the request's own seed if it has one
    (:func:`~.request.resolve_seed`); ``models``: server file names. Deterministic: equal arguments give an
    equal dict. Node ids are "1", "2", ... in build order, plus :data:`SAVE_NODE_ID`. Resolution of the
    inpaint settings: :func:`~.request.effective_inpaint_options` (mode presets, override, outpaint forcing
    strength and respective field to 1.0). Fooocus counterpart: the whole of ``async_worker.handler`` for one
    inpaint task (fooocus-pipeline.md §0).

    Raises ``ValueError`` for bad arguments and :class:`UnsupportedRequestError` (a ``ValueError``) for
    what the pack cannot run (:func:`check_supported`).
    """
    g, safety = _build(req, inputs, seed, models)
    api = g.api()
    api[SAVE_NODE_ID] = {"class_type": "FooocusInpaint_SaveImage", "inputs": _save_inputs(req, safety),
                         "_meta": {"title": "Save Image (fal output_format)"}}
    return api


def build_layout_graph(req: InpaintRequest, inputs: GraphInputs, *, seed: int,
                       models: ModelNames = ModelNames()) -> Graph:
    """The same graph as :func:`build_graph` as a :class:`~.api_graph.Graph` with layout groups (for the
    shipped UI workflows, :mod:`.workflow_graphs`); the save node gets the next numeric id instead of
    :data:`SAVE_NODE_ID` (the UI format needs integer ids)."""
    g, safety = _build(req, inputs, seed, models)
    g.add("FooocusInpaint_SaveImage", "Save Image (fal output_format)", "Output", **_save_inputs(req, safety))
    return g


# --------------------------------------------------------------------------------------------------
# Checking a graph against a server's /object_info
# --------------------------------------------------------------------------------------------------
def _input_spec(info: dict, name: str):
    for part in ("required", "optional"):
        spec = info.get("input", {}).get(part, {}).get(name)
        if spec is not None:
            return part, spec
    return None, None


def _link_ok(out_type: Any, in_type: Any) -> bool:
    if in_type == "*" or out_type == "*":
        return True
    if isinstance(out_type, list):          # a COMBO output (its option list)
        if in_type == "COMBO":
            return True
        return isinstance(in_type, list) and set(out_type) <= set(in_type)
    if isinstance(in_type, list):
        return out_type == "COMBO"
    return set(str(out_type).split(",")) & set(str(in_type).split(",")) != set()


def check_against_object_info(api: dict, object_info: dict) -> list[str]:
    """Problems of an API graph against a server's ``/object_info`` (empty list = none found).

    Checks: every ``class_type`` exists; every input name is declared; every required input is given;
    links point at existing nodes and output slots whose type fits the input (COMBO outputs fit inputs whose
    options include all of theirs); widget values: combo values in the options, numbers within min/max,
    booleans and strings of the right type. Mirrors ComfyUI's ``execution.validate_inputs`` for what a
    static check can see (it cannot see files the server lacks beyond the combo lists).
    """
    problems: list[str] = []
    for nid, node in api.items():
        cls = node.get("class_type")
        info = object_info.get(cls)
        if info is None:
            problems.append(f"node {nid}: unknown class_type {cls!r}")
            continue
        for part_name, spec in info.get("input", {}).get("required", {}).items():
            if part_name not in node.get("inputs", {}):
                problems.append(f"node {nid} ({cls}): required input {part_name!r} missing")
        for name, value in node.get("inputs", {}).items():
            _, spec = _input_spec(info, name)
            if spec is None:
                problems.append(f"node {nid} ({cls}): unknown input {name!r}")
                continue
            in_type = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                src = api.get(value[0])
                if src is None:
                    problems.append(f"node {nid} ({cls}).{name}: link to missing node {value[0]!r}")
                    continue
                outs = object_info.get(src.get("class_type"), {}).get("output", [])
                if not isinstance(value[1], int) or not 0 <= value[1] < len(outs):
                    problems.append(f"node {nid} ({cls}).{name}: link to missing output {value!r}")
                    continue
                if not _link_ok(outs[value[1]], in_type):
                    problems.append(f"node {nid} ({cls}).{name}: type {in_type!r} cannot take output "
                                    f"{value[1]} of {src.get('class_type')} ({outs[value[1]]!r})")
                continue
            options = in_type if isinstance(in_type, list) else (opts.get("options") if in_type == "COMBO" else None)
            if options is not None:
                if value not in options:
                    problems.append(f"node {nid} ({cls}).{name}: {value!r} not among the options")
            elif in_type == "INT":
                if isinstance(value, bool) or not isinstance(value, int):
                    problems.append(f"node {nid} ({cls}).{name}: expected an int, got {value!r}")
                elif ("min" in opts and value < opts["min"]) or ("max" in opts and value > opts["max"]):
                    problems.append(f"node {nid} ({cls}).{name}: {value} outside [{opts.get('min')}, {opts.get('max')}]")
            elif in_type == "FLOAT":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    problems.append(f"node {nid} ({cls}).{name}: expected a number, got {value!r}")
                elif ("min" in opts and value < opts["min"]) or ("max" in opts and value > opts["max"]):
                    problems.append(f"node {nid} ({cls}).{name}: {value} outside [{opts.get('min')}, {opts.get('max')}]")
            elif in_type == "BOOLEAN" and not isinstance(value, bool):
                problems.append(f"node {nid} ({cls}).{name}: expected a boolean, got {value!r}")
            elif in_type == "STRING" and not isinstance(value, str):
                problems.append(f"node {nid} ({cls}).{name}: expected a string, got {value!r}")
            elif in_type not in ("INT", "FLOAT", "BOOLEAN", "STRING"):
                problems.append(f"node {nid} ({cls}).{name}: socket of type {in_type!r} needs a link, got {value!r}")
    return problems
