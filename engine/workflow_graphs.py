"""The graphs of the shipped workflows, written once here.

``workflows/*.json`` (UI format, for the editor's template browser) and ``workflows/api/*.json``
(API format, for headless runs) are both generated from these functions by
``scripts/build_workflows.py``; a test regenerates them and compares, so the two cannot drift.

The inpaint modes follow Fooocus's table (``fooocus-pipeline.md`` §3): mode → (disable initial
latent, engine, strength, respective field).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .api_graph import Graph

EXAMPLE_IMAGE = "fooocus_inpaint_example.png"
EXAMPLE_MASK = "fooocus_inpaint_example_mask.png"
DEFAULT_CHECKPOINT = "juggernautXL_v8Rundiffusion.safetensors"
HEAD_FILE = "fooocus_inpaint_head.pth"
PATCH_FILES = {"v1": "inpaint.fooocus.patch", "v2.5": "inpaint_v25.fooocus.patch", "v2.6": "inpaint_v26.fooocus.patch"}

MODE_DEFAULT = "Inpaint or Outpaint (default)"
MODE_DETAIL = "Improve Detail (face, hand, eyes, etc.)"
MODE_MODIFY = "Modify Content (add objects, change background, etc.)"
# mode -> (disable_initial_latent, engine, strength, respective_field)
MODE_TABLE = {
    MODE_DEFAULT: (False, "v2.6", 1.0, 0.618),
    MODE_DETAIL: (False, "None", 0.5, 0.0),
    MODE_MODIFY: (True, "v2.6", 1.0, 0.0),
}


@dataclass(frozen=True)
class InpaintGraphOptions:
    """Everything the inpaint graph exposes; defaults are Fooocus/fal defaults (Speed steps)."""

    checkpoint: str = DEFAULT_CHECKPOINT
    image: str = EXAMPLE_IMAGE
    mask: str = EXAMPLE_MASK
    prompt: str = "a cozy wooden cabin, detailed, sharp focus"
    negative_prompt: str = ""
    seed: int = 176400
    steps: int = 30
    cfg: float = 4.0
    sampler_name: str = "dpmpp_2m_sde_gpu"
    scheduler: str = "karras"
    engine: str = "v2.6"                     # "None", "v1", "v2.5", "v2.6"
    strength: float = 1.0
    respective_field: float = 0.618
    disable_initial_latent: bool = False
    erode_or_dilate: int = 0
    invert_mask: bool = False
    outpaint: tuple[str, ...] = ()           # subset of ("left", "right", "top", "bottom")
    outpaint_pixels: dict = field(default_factory=dict)
    num_images: int = 1
    refiner_switch: float = 0.8
    filename_prefix: str = "fooocus_inpaint"
    sdxl_refiner: str | None = None          # checkpoint of a real SDXL refiner (Fooocus Refiner node)
    sdxl_refiner_switch: float = 0.5

    def for_mode(self, mode: str) -> "InpaintGraphOptions":
        """These options with Fooocus's settings for ``mode`` (the fal ``inpaint_mode`` strings)."""
        if mode not in MODE_TABLE:
            raise ValueError(f"mode: expected one of {list(MODE_TABLE)}, got {mode!r}")
        disable, engine, strength, k = MODE_TABLE[mode]
        return replace(self, disable_initial_latent=disable, engine=engine, strength=strength, respective_field=k,
                       outpaint=self.outpaint if mode == MODE_DEFAULT else ())


def inpaint_graph(o: InpaintGraphOptions = InpaintGraphOptions()) -> Graph:
    """Checkpoint + image + mask → Fooocus inpaint/outpaint → SaveImage."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", "Load Checkpoint", "Model", ckpt_name=o.checkpoint)
    loader = None
    if o.engine != "None":
        if o.engine not in PATCH_FILES:
            raise ValueError(f"engine: expected one of None, {', '.join(PATCH_FILES)}; got {o.engine!r}")
        loader = g.add("FooocusInpaint_Loader", "Fooocus Inpaint Patch Loader", "Model", head=HEAD_FILE,
                       patch=PATCH_FILES[o.engine])
    pos = g.add("CLIPTextEncode", "Positive prompt", "Prompt", text=o.prompt, clip=ckpt.out(1))
    neg = g.add("CLIPTextEncode", "Negative prompt", "Prompt", text=o.negative_prompt, clip=ckpt.out(1))
    image = g.add("LoadImage", "Image", "Image and mask", image=o.image)
    mask = g.add("LoadImageMask", "Mask (white = repaint)", "Image and mask", image=o.mask, channel="red")
    mask = g.add("FooocusInpaint_MaskErodeDilate", "Mask Erode / Dilate", "Mask and canvas", mask=mask.out(0),
                 amount=int(o.erode_or_dilate), invert=bool(o.invert_mask))
    sides = {s: s in o.outpaint for s in ("left", "right", "top", "bottom")}
    pixels = {f"{s}_pixels": int(o.outpaint_pixels.get(s, 0)) for s in ("left", "right", "top", "bottom")}
    pad = g.add("FooocusInpaint_OutpaintPad", "Outpaint Pad", "Mask and canvas", image=image.out(0), mask=mask.out(0),
                **sides, **pixels)
    cond = g.add("FooocusInpaint_InpaintConditioning", "Inpaint Conditioning", "Inpaint", image=pad.out(0),
                 mask=pad.out(1), vae=ckpt.out(2), respective_field=o.respective_field, strength=o.strength,
                 fill="auto")
    model = ckpt.out(0)
    if o.sdxl_refiner:
        rckpt = g.add("CheckpointLoaderSimple", "Load Refiner (SDXL)", "Model", ckpt_name=o.sdxl_refiner)
        model = g.add("FooocusInpaint_Refiner", "Fooocus Refiner", "Model", model=model, refiner=rckpt.out(0),
                      refiner_switch=o.sdxl_refiner_switch).out(0)
    sampler_inputs = dict(model=model, positive=pos.out(0), negative=neg.out(0), vae=ckpt.out(2),
                          inpaint=cond.out(0), seed=o.seed, steps=o.steps, cfg=o.cfg, sampler_name=o.sampler_name,
                          scheduler=o.scheduler, refiner_switch=o.refiner_switch, num_images=o.num_images,
                          disable_initial_latent=o.disable_initial_latent)
    if loader is not None:
        sampler_inputs["inpaint_patch"] = loader.out(0)
    sampler = g.add("FooocusInpaint_Sampler", "Fooocus Sampler", "Inpaint", **sampler_inputs)
    g.add("SaveImage", "Save Image", "Output", images=sampler.out(0), filename_prefix=o.filename_prefix)
    return g


FAL_EXAMPLE_PROMPT = "a cozy wooden cabin, detailed, sharp focus"
SDXL_REFINER = "sd_xl_refiner_1.0.safetensors"
_FAL_URL = "https://example.com/"
_CHANGE_INPAINT = ("Put your image and mask (white = repaint) in the Image and Mask nodes. Models: the SDXL checkpoint "
                   "in models/checkpoints; fooocus_inpaint_head.pth and the inpaint patch in models/inpaint.")
_CHANGE_FAL = ("Put your image and mask (white = repaint) in the two Load Image nodes, your text in Fooocus Prompt, "
               "the seed in the sampler. Every fal field maps to one widget (docs/fal_mapping.md). Models: "
               "`python -m comfyui-fooocus-inpaint download` fetches Fooocus's files.")


def fal_request(**fields):
    """A fal request (engine.request) for the example image and mask with ``fields`` on top of fal's defaults."""
    from .request import parse_request

    return parse_request({"prompt": FAL_EXAMPLE_PROMPT, "inpaint_image_url": _FAL_URL + EXAMPLE_IMAGE,
                          "mask_image_url": _FAL_URL + EXAMPLE_MASK, "seed": 176400, **fields})


def fal_workflow_graph(**fields) -> Graph:
    """The graph :func:`engine.fal_graph.build_graph` makes for :func:`fal_request` (``fields``), with the
    example image (also used as every image prompt) -- generated from the builder, so it cannot drift."""
    from . import fal_graph

    req = fal_request(**fields)
    inputs = fal_graph.GraphInputs(image=EXAMPLE_IMAGE, mask=EXAMPLE_MASK,
                                   image_prompts={i: EXAMPLE_IMAGE for i in fal_graph.image_prompts_used(req)})
    return fal_graph.build_layout_graph(req, inputs, seed=req.seed)


def shipped_workflows() -> dict[str, tuple[str, Graph]]:
    """name -> (text of the workflow's Note: what it does and what to change, graph) for every workflow in
    ``workflows/``."""
    base = InpaintGraphOptions()
    plain = "\n\n" + _CHANGE_INPAINT
    fal = "\n\n" + _CHANGE_FAL
    perf = ("Performance preset {p}: set on the Fooocus Performance node (steps, sampler, scheduler, the "
            "preset's LoRA and forced settings come from it{extra}). Otherwise the fal default request.")
    return {
        "fooocus_inpaint_default": (
            "Fooocus inpaint, default mode: head + patch v2.6, fill, respective field 0.618, synthetic refiner."
            + plain, inpaint_graph(base.for_mode(MODE_DEFAULT))),
        "fooocus_outpaint_left_right": (
            "Fooocus outpaint on the left and right (30% each), whole canvas (respective field 1). Tick other "
            "sides (or set pixels) on Outpaint Pad." + plain,
            inpaint_graph(replace(base.for_mode(MODE_DEFAULT), outpaint=("left", "right"), respective_field=1.0,
                                  filename_prefix="fooocus_outpaint"))),
        "fooocus_improve_detail": (
            "Fooocus Improve Detail: no inpaint patch, strength 0.5, tight crop around the mask. Raise the "
            "strength on Inpaint Conditioning for bigger changes." + plain,
            inpaint_graph(replace(base.for_mode(MODE_DETAIL), prompt="detailed face, sharp focus",
                                  filename_prefix="fooocus_detail"))),
        "fooocus_modify_content": (
            "Fooocus Modify Content: empty initial latent, head + patch, tight crop around the mask. Describe "
            "the new content in the positive prompt." + plain,
            inpaint_graph(replace(base.for_mode(MODE_MODIFY), prompt="a red vintage car",
                                  filename_prefix="fooocus_modify"))),
        "fooocus_sdxl_refiner": (
            "Fooocus with a real SDXL refiner (Fooocus Refiner node, swap 'joint'): after refiner_switch x steps "
            "the refiner checkpoint finishes the image inside the same sampler run; it replaces the synthetic "
            "refiner. Pick your refiner checkpoint (an SDXL model or the SDXL refiner) in 'Load Refiner'." + plain,
            inpaint_graph(replace(base.for_mode(MODE_DEFAULT), sdxl_refiner=SDXL_REFINER,
                                  filename_prefix="fooocus_refiner"))),
        "fooocus_fal_default": (
            "The fal-ai/fooocus/inpaint default request (engine.fal_graph.build_graph): Extreme Speed (LCM LoRA, "
            "8 steps), styles Fooocus Enhance + Fooocus V2 (GPT-2 prompt expansion) + Fooocus Sharp on the Fooocus "
            "Prompt node, the SDXL offset LoRA at 0.1 in the LoRA Stack, engine v2.6, Fooocus's ESRGAN for small "
            "crops, safety checker on, jpeg. Edit the styles as comma-separated names ('Fooocus V2' = expansion; "
            "style files in models/styles)." + fal, fal_workflow_graph()),
        "fooocus_fal_speed": (perf.format(p="Speed", extra="; 30 steps, cfg 4") + fal,
                              fal_workflow_graph(performance="Speed")),
        "fooocus_fal_quality": (perf.format(p="Quality", extra="; 60 steps") + fal,
                                fal_workflow_graph(performance="Quality")),
        "fooocus_fal_lightning": (perf.format(p="Lightning", extra="; 4 steps, Lightning LoRA, cfg 1") + fal,
                                  fal_workflow_graph(performance="Lightning")),
        "fooocus_fal_hyper_sd": (perf.format(p="Hyper-SD", extra="; 4 steps, Hyper-SD LoRA, cfg 1") + fal,
                                 fal_workflow_graph(performance="Hyper-SD")),
        "fooocus_fal_loras": (
            "Three LoRAs in the Fooocus LoRA Stack (fal 'loras'): up to 5 slots, each on the model and the CLIP, "
            "before the performance LoRA; pick None to leave a slot empty. Weights -2..2." + fal,
            fal_workflow_graph(loras=[{"path": "sd_xl_offset_example-lora_1.0.safetensors", "scale": 0.1},
                                      {"path": "sdxl_lcm_lora.safetensors", "scale": 0.3},
                                      {"path": "sdxl_lightning_4step_lora.safetensors", "scale": 0.2}])),
        "fooocus_fal_sd15_refiner": (
            "fal refiner_model realisticVisionV60B1_v51VAE (an SD1.5 refiner) with Speed: Fooocus Sampler (SD1.5 "
            "refiner) samples the SDXL base for refiner_switch x steps, converts the latent with the XL->v1 "
            "interposer (models/vae_approx) and finishes with the SD1.5 model (sigmas x1.4, seed+1, its own VAE). "
            "Change refiner_switch on the sampler, the SD1.5 checkpoint in 'Load Refiner'." + fal,
            fal_workflow_graph(performance="Speed", refiner_model="realisticVisionV60B1_v51VAE.safetensors")),
        "fooocus_fal_image_prompts": (
            "Image prompts mixed with inpaint (fal mixing_image_prompt_and_inpaint): PyraCanny and CPDS "
            "ControlNets (hint at the inpaint working size) and ImagePrompt and FaceSwap IP-Adapters "
            "(clip_vision_vit_h in models/clip_vision; IP-Adapters and ControlNets in models/controlnet). Load "
            "your reference pictures in the 'Image prompt' nodes; weight and stop_at per prompt. Delete a "
            "prompt's nodes (and reconnect the model) to drop it." + fal,
            fal_workflow_graph(mixing_image_prompt_and_inpaint=True, performance="Lightning",
                               image_prompt_1={"image_url": _FAL_URL + "ip1.png", "type": "PyraCanny"},
                               image_prompt_2={"image_url": _FAL_URL + "ip2.png", "type": "CPDS"},
                               image_prompt_3={"image_url": _FAL_URL + "ip3.png", "type": "ImagePrompt",
                                               "weight": 0.6},
                               image_prompt_4={"image_url": _FAL_URL + "ip4.png", "type": "FaceSwap",
                                               "weight": 0.75, "stop_at": 0.9})),
        "fooocus_fal_no_safety_checker": (
            "The fal default request with enable_safety_checker off: Fooocus Safety Checker passes the images "
            "through (flags all false, no checker weights needed); png output. Switch 'enabled' back on to "
            "black out NSFW images." + fal,
            fal_workflow_graph(enable_safety_checker=False, output_format="png")),
    }


def render_workflow_files(object_info: dict) -> dict[str, str]:
    """Relative path (under ``workflows/``) → file text, for every shipped workflow: the UI format
    at the top level (listed by the template browser) and the API format under ``api/``."""
    import json

    from .ui_workflow import to_ui_workflow

    files = {}
    for name, (about, graph) in shipped_workflows().items():
        note = f"{about} Headless twin: workflows/api/{name}.json."
        files[f"{name}.json"] = json.dumps(to_ui_workflow(graph, object_info, note), indent=1, ensure_ascii=False) + "\n"
        files[f"api/{name}.json"] = json.dumps(graph.api(), indent=1, ensure_ascii=False) + "\n"
    return files
