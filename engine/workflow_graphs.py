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
        loader = g.add("FooocusInpaint_Loader", "Fooocus Inpaint Loader", "Model", head=HEAD_FILE,
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
    sampler_inputs = dict(model=ckpt.out(0), positive=pos.out(0), negative=neg.out(0), vae=ckpt.out(2),
                          inpaint=cond.out(0), seed=o.seed, steps=o.steps, cfg=o.cfg, sampler_name=o.sampler_name,
                          scheduler=o.scheduler, refiner_switch=o.refiner_switch, num_images=o.num_images,
                          disable_initial_latent=o.disable_initial_latent)
    if loader is not None:
        sampler_inputs["inpaint_patch"] = loader.out(0)
    sampler = g.add("FooocusInpaint_Sampler", "Fooocus Sampler", "Inpaint", **sampler_inputs)
    g.add("SaveImage", "Save Image", "Output", images=sampler.out(0), filename_prefix=o.filename_prefix)
    return g


def shipped_workflows() -> dict[str, tuple[str, Graph]]:
    """name -> (one-line description, graph) for every workflow in ``workflows/``."""
    base = InpaintGraphOptions()
    return {
        "fooocus_inpaint_default": (
            "Fooocus inpaint, default mode: head + patch v2.6, fill, respective field 0.618, synthetic refiner.",
            inpaint_graph(base.for_mode(MODE_DEFAULT))),
        "fooocus_outpaint_left_right": (
            "Fooocus outpaint on the left and right (30% each), whole canvas (respective field 1).",
            inpaint_graph(replace(base.for_mode(MODE_DEFAULT), outpaint=("left", "right"), respective_field=1.0,
                                  filename_prefix="fooocus_outpaint"))),
        "fooocus_improve_detail": (
            "Fooocus Improve Detail: no inpaint patch, strength 0.5, tight crop around the mask.",
            inpaint_graph(replace(base.for_mode(MODE_DETAIL), prompt="detailed face, sharp focus",
                                  filename_prefix="fooocus_detail"))),
        "fooocus_modify_content": (
            "Fooocus Modify Content: empty initial latent, head + patch, tight crop around the mask.",
            inpaint_graph(replace(base.for_mode(MODE_MODIFY), prompt="a red vintage car",
                                  filename_prefix="fooocus_modify"))),
    }


def render_workflow_files(object_info: dict) -> dict[str, str]:
    """Relative path (under ``workflows/``) → file text, for every shipped workflow: the UI format
    at the top level (listed by the template browser) and the API format under ``api/``."""
    import json

    from .ui_workflow import to_ui_workflow

    files = {}
    for name, (about, graph) in shipped_workflows().items():
        note = (f"{about}\n\nPut your image and mask (white = repaint) in the Image and Mask nodes. Models: the SDXL "
                f"checkpoint in models/checkpoints; fooocus_inpaint_head.pth and inpaint_v26.fooocus.patch in "
                f"models/inpaint. Headless twin: workflows/api/{name}.json.")
        files[f"{name}.json"] = json.dumps(to_ui_workflow(graph, object_info, note), indent=1, ensure_ascii=False) + "\n"
        files[f"api/{name}.json"] = json.dumps(graph.api(), indent=1, ensure_ascii=False) + "\n"
    return files
