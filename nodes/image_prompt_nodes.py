"""Fooocus image prompts as nodes: PyraCanny / CPDS ControlNets and ImagePrompt / FaceSwap IP-Adapters."""
from __future__ import annotations

import logging
import os

import folder_paths
from comfy_api.latest import io

from ..engine import preprocessors as pp
from ..engine.masks import hwc3
from . import face_detect
from . import image_prompt as ipg
from .convert import image_to_u8, u8_to_image
from .schema_util import advanced
from .types import FooocusInpaintData, InpaintDataIO

log = logging.getLogger(__name__)

CATEGORY = "inpaint/fooocus/image prompt"
IPAdapterIO = io.Custom("FOOOCUS_IP_ADAPTER")
_CACHE: dict = {}

# Fooocus flags.py: (stop_at, weight) defaults per type
DEFAULTS = {"ImagePrompt": (0.5, 0.6), "FaceSwap": (0.9, 0.75), "PyraCanny": (0.5, 1.0), "CPDS": (0.5, 1.0)}


def _controlnet_files() -> list[str]:
    try:
        return sorted(folder_paths.get_filename_list("controlnet"))
    except KeyError:
        return []


def preprocess_hint(image_u8, kind: str, width: int, height: int, skip: bool = False,
                    canny_low: int = 64, canny_high: int = 128):
    """Fooocus ``apply_control_nets`` for one PyraCanny/CPDS image: fill+crop to the size, then the hint."""
    img = pp.controlnet_image(image_u8, width, height)
    if skip:
        return img
    if kind == "PyraCanny":
        return pp.hint_to_rgb(pp.canny_pyramid(img, canny_low, canny_high))
    if kind == "CPDS":
        return pp.hint_to_rgb(pp.cpds(img))
    raise ValueError(f"type must be PyraCanny or CPDS, got {kind!r}")


class FooocusImagePromptControlNet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_ImagePromptControlNet",
            display_name="Fooocus Image Prompt (ControlNet)",
            category=CATEGORY,
            description=(
                "Fooocus's PyraCanny / CPDS image prompt: the image is filled and centre-cropped to the generation "
                "size (for inpaint, the inpaint working size), turned into a multi-scale Canny edge map (PyraCanny) "
                "or a contrast-preserving decolourised map (CPDS), and applied with a ControlNet (Fooocus: "
                "control-lora-canny-rank128 / fooocus_xl_cpds_128) to the positive and negative conditioning with "
                "strength = weight from 0 to stop_at. The returned model softens the ControlNet residuals as "
                "Fooocus does (shallow layers x0.75 at softness 0.25). Needs opencv-python-headless."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with; a clone with ControlNet softness is returned."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                io.ControlNet.Input("control_net", tooltip="The ControlNet or control-LoRA (Load ControlNet Model)."),
                io.Image.Input("image", tooltip="The image prompt (first image of the batch is used)."),
                io.Combo.Input("type", options=["PyraCanny", "CPDS"], default="PyraCanny",
                               tooltip="Fooocus image prompt type: PyraCanny (edges) or CPDS (structure)."),
                io.Float.Input("weight", default=1.0, min=0.0, max=2.0, step=0.01,
                               tooltip="ControlNet strength (Fooocus default 1.0). 0 disables it."),
                io.Float.Input("stop_at", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the sampling after which the ControlNet stops (Fooocus 0.5)."),
                io.Int.Input("width", default=1024, min=8, max=16384, step=8,
                             tooltip="Generation width the hint is made at (for inpaint: the working crop width)."),
                io.Int.Input("height", default=1024, min=8, max=16384, step=8,
                             tooltip="Generation height the hint is made at (for inpaint: the working crop height)."),
                advanced(io.Float.Input("softness", default=0.25, min=0.0, max=1.0, step=0.01,
                                        tooltip="Fooocus ControlNet softness (default 0.25): residual i of n is "
                                                "scaled by 1 - softness*(1 - i/(n-1)).")),
                advanced(io.Boolean.Input("skip_preprocessor", default=False,
                                          tooltip="Use the image itself as the hint (Fooocus 'skip preprocessors').")),
                advanced(io.Int.Input("canny_low", default=64, min=0, max=255,
                                      tooltip="PyraCanny low threshold (Fooocus default 64).")),
                advanced(io.Int.Input("canny_high", default=128, min=0, max=255,
                                      tooltip="PyraCanny high threshold (Fooocus default 128).")),
                InpaintDataIO.Input("inpaint", optional=True,
                                    tooltip="From Inpaint Conditioning (Fooocus): when connected, the hint is made at "
                                            "the inpaint working size and width/height are ignored."),
                io.Vae.Input("vae", optional=True, tooltip="Only for ControlNets that need a VAE (not the Fooocus ones)."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The model with Fooocus ControlNet softness."),
                io.Conditioning.Output(display_name="positive", tooltip="Positive conditioning with the ControlNet."),
                io.Conditioning.Output(display_name="negative", tooltip="Negative conditioning with the ControlNet."),
                io.Image.Output(display_name="hint", tooltip="The preprocessed hint image the ControlNet sees."),
            ],
        )

    @classmethod
    def execute(cls, model, positive, negative, control_net, image, type, weight, stop_at, width, height,  # noqa: A002
                softness=0.25, skip_preprocessor=False, canny_low=64, canny_high=128, inpaint=None,
                vae=None) -> io.NodeOutput:
        if control_net is None:
            raise ValueError("control_net: no ControlNet given (load Fooocus's control-lora-canny-rank128 or "
                             "fooocus_xl_cpds_128 with Load ControlNet Model)")
        if inpaint is not None:
            if not isinstance(inpaint, FooocusInpaintData):
                raise ValueError("inpaint: expected the output of Inpaint Conditioning (Fooocus)")
            if inpaint.active:
                height, width = inpaint.prep.working_hw
        hint_u8 = preprocess_hint(image_to_u8(image), type, int(width), int(height), bool(skip_preprocessor),
                                  int(canny_low), int(canny_high))
        hint = u8_to_image(hint_u8)
        pos, neg = ipg.apply_controlnet(positive, negative, control_net, hint, float(weight), float(stop_at), vae)
        m = ipg.add_image_prompt_wrapper(model, float(softness))
        if float(weight) != 0:
            ipg.remember_controlnet(m, ipg.ControlNetPrompt(control_net, hint, float(weight), float(stop_at), vae))
        return io.NodeOutput(m, pos, neg, hint)


class FooocusIPAdapterLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = _controlnet_files()
        ips = [f for f in files if "ip-adapter" in f.lower() or "ip_adapter" in f.lower()] or files
        negs = [f for f in files if "negative" in f.lower()] or files

        def pick(opts, want):
            return want if want in opts else (opts[0] if opts else None)

        return io.Schema(
            node_id="FooocusInpaint_IPAdapterLoader",
            display_name="Fooocus IP-Adapter Loader",
            category=CATEGORY,
            description=(
                "Loads an IP-Adapter plus for SDXL (Fooocus: ip-adapter-plus_sdxl_vit-h.bin for ImagePrompt, "
                "ip-adapter-plus-face_sdxl_vit-h.bin for FaceSwap) and Fooocus's negative image tokens "
                "(fooocus_ip_negative.safetensors) from models/controlnet, where Fooocus keeps them. Pickle files "
                "are loaded without running code."
            ),
            inputs=[
                io.Combo.Input("ip_adapter", options=ips or ["ip-adapter-plus_sdxl_vit-h.bin"],
                               default=pick(ips, "ip-adapter-plus_sdxl_vit-h.bin"),
                               tooltip="The IP-Adapter plus file (models/controlnet)."),
                io.Combo.Input("negative", options=negs or ["fooocus_ip_negative.safetensors"],
                               default=pick(negs, "fooocus_ip_negative.safetensors"),
                               tooltip="Fooocus's negative image tokens (fooocus_ip_negative.safetensors)."),
            ],
            outputs=[IPAdapterIO.Output(display_name="ip_adapter", tooltip="For Fooocus Image Prompt (IP-Adapter).")],
        )

    @classmethod
    def execute(cls, ip_adapter: str, negative: str) -> io.NodeOutput:
        paths = []
        for name, what in ((ip_adapter, "ip_adapter"), (negative, "negative")):
            p = folder_paths.get_full_path("controlnet", name) if name else None
            if p is None:
                raise ValueError(f"{what}: file {name!r} not found in the 'controlnet' model folder")
            paths.append(p)
        key = tuple((p, os.stat(p).st_mtime_ns) for p in paths)
        if key not in _CACHE:
            _CACHE.clear()
            _CACHE[key] = ipg.load_ip_adapter(paths[0], paths[1], name=ip_adapter)
        return io.NodeOutput(_CACHE[key])


class FooocusImagePromptIPAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_ImagePromptIPAdapter",
            display_name="Fooocus Image Prompt (IP-Adapter)",
            category=CATEGORY,
            description=(
                "Fooocus's ImagePrompt / FaceSwap: the image is stretched to 224x224, encoded by CLIP-ViT-H "
                "(penultimate hidden states), turned into 16 tokens by the IP-Adapter's Resampler, and projected "
                "to keys/values that are concatenated to the text keys/values of every cross-attention layer "
                "(one softmax; Fooocus's formulation, not the additive one). The negative uses Fooocus's "
                "precomputed negative tokens. Active while the sampling progress is below stop_at. Chaining "
                "several of these nodes adds the image prompts together, as Fooocus does. FaceSwap first crops "
                "and aligns the face to 512x512 like Fooocus when a face detector is available (facexlib with "
                "detection_Resnet50_Final.pth in models/controlnet, or an OpenCV YuNet .onnx in "
                "models/facedetection); otherwise, or when no face is found, the whole image is used."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model; a clone with the IP-Adapter attention is returned."),
                IPAdapterIO.Input("ip_adapter", tooltip="From Fooocus IP-Adapter Loader."),
                io.ClipVision.Input("clip_vision", tooltip="CLIP-ViT-H (Fooocus: clip_vision_vit_h.safetensors)."),
                io.Image.Input("image", tooltip="The image prompt (first image of the batch is used)."),
                io.Combo.Input("type", options=["ImagePrompt", "FaceSwap"], default="ImagePrompt",
                               tooltip="ImagePrompt (Fooocus default weight 0.6, stop 0.5) or FaceSwap (use the "
                                       "face IP-Adapter; 0.75, 0.9). FaceSwap crops and aligns the most "
                                       "confident face first (needs facexlib or an OpenCV YuNet model; without "
                                       "one, or with no face found, the whole image is used)."),
                io.Float.Input("weight", default=0.6, min=0.0, max=2.0, step=0.01,
                               tooltip="Image prompt weight (k_ip and the mean of v_ip scaled by weight*C/1280)."),
                io.Float.Input("stop_at", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Active while progress = 1 - t/999 is below this."),
                advanced(io.Boolean.Input("skip_preprocessor", default=False, optional=True,
                                          tooltip="FaceSwap: use the whole image, no face crop (Fooocus 'skip "
                                                  "preprocessors'). No effect on ImagePrompt.")),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The model with the image prompt attention.")],
        )

    @classmethod
    def execute(cls, model, ip_adapter, clip_vision, image, type, weight, stop_at,  # noqa: A002
                skip_preprocessor=False) -> io.NodeOutput:
        img = image_to_u8(image)
        if type == "FaceSwap" and not skip_preprocessor:
            img = face_detect.crop_face(hwc3(img))
        px = pp.clip_vision_image(img)
        out = clip_vision.encode_image(u8_to_image(px), crop=False)
        enc = ipg.encode_ip(ip_adapter, out, float(stop_at), float(weight))
        return io.NodeOutput(ipg.add_ip_adapters(model, [enc]))


MENU_ORDER = 60
NODES = [FooocusImagePromptControlNet, FooocusIPAdapterLoader, FooocusImagePromptIPAdapter]
