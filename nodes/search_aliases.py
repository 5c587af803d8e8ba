"""Search aliases of every node of the pack: node id -> the words users type in the editor's node
search (double-click on the canvas) to find it, besides its display name and id.

Applied to the node classes where they are registered (``nodes/__init__.py``, via
:func:`nodes.schema_util.apply_search_aliases`); each node's ``/object_info`` entry then carries them
as ``search_aliases``. Frontends that index that field (ComfyUI frontend PR #8223, January 2026) find
the node by them; frontend 1.32.9 searches only the id and the display name (see
``nodes/schema_util.py``). Every id already starts with ``FooocusInpaint_``, so "fooocus" finds every
node without an alias. Keep aliases short (at most 30 characters) and lower case, and list Fooocus's
own UI words first (``inpaint respective field``, ``inpaint engine``...).
"""
from __future__ import annotations

SEARCH_ALIASES: dict[str, tuple[str, ...]] = {
    # inpaint/fooocus
    "FooocusInpaint_ApplyToModel": (
        "inpaint patch", "apply inpaint patch", "inpaint model", "inpaint ksampler", "patch model"),
    "FooocusInpaint_Loader": (
        "inpaint patch", "inpaint head", "inpaint engine", "load inpaint model", "inpaint_v26",
        "fooocus_inpaint_head"),
    "FooocusInpaint_PasteBack": ("paste back", "blend back", "stitch", "uncrop", "composite inpaint"),
    "FooocusInpaint_Sampler": (
        "inpaint", "outpaint", "inpaint sampler", "ksampler", "sampler", "improve detail", "modify content"),
    "FooocusInpaint_InpaintConditioning": (
        "respective field", "inpaint respective field", "inpaint crop", "fooocus fill", "inpaint fill",
        "denoising strength", "vae encode inpaint"),
    "FooocusInpaint_UpscalerLoader": ("upscaler", "upscale model", "esrgan", "fooocus upscaler"),
    "FooocusInpaint_MaskErodeDilate": (
        "erode", "dilate", "grow mask", "shrink mask", "expand mask", "invert mask"),
    "FooocusInpaint_MaskFromUpload": ("mask upload", "mask image", "load mask", "image to mask"),
    "FooocusInpaint_OutpaintPad": (
        "outpaint", "outpainting", "extend image", "expand canvas", "pad image", "uncrop"),
    # inpaint/fooocus/image prompt
    "FooocusInpaint_IPAdapterLoader": ("ip-adapter", "ipadapter", "image prompt", "faceswap"),
    "FooocusInpaint_ImagePromptControlNet": ("image prompt", "pyracanny", "canny", "cpds", "controlnet"),
    "FooocusInpaint_ImagePromptIPAdapter": (
        "image prompt", "ip-adapter", "ipadapter", "faceswap", "face swap", "image reference"),
    # inpaint/fooocus/output
    "FooocusInpaint_SafetyChecker": ("nsfw", "safety checker", "nsfw filter", "censor"),
    "FooocusInpaint_SaveImage": ("save image", "save", "output image", "jpeg", "webp"),
    # inpaint/fooocus/prompt
    "FooocusInpaint_Prompt": ("prompt", "styles", "fooocus v2", "prompt expansion", "style selection"),
    "FooocusInpaint_PromptEncode": ("clip text encode", "encode prompt", "text encode", "conditioning"),
    # inpaint/fooocus/sampling
    "FooocusInpaint_Guidance": ("sharpness", "adaptive cfg", "adm guidance", "cfg mimicking"),
    "FooocusInpaint_LoraStack": ("lora", "loras", "load lora", "lora loader", "lora stack"),
    "FooocusInpaint_Performance": (
        "performance", "speed", "quality", "extreme speed", "lightning", "hyper-sd", "lcm"),
    "FooocusInpaint_Refiner": ("refiner", "sdxl refiner", "refiner switch", "model switch"),
    "FooocusInpaint_SamplerSD15Refiner": ("sd1.5 refiner", "sd15 refiner", "refiner", "vae swap"),
}
