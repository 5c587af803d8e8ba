"""Output nodes: Fooocus's safety checker (NSFW black-out) and saving in Fooocus's/fal's formats (png/jpeg/webp)."""
from __future__ import annotations

import io as _io
import json
import logging
import os

import folder_paths
import numpy as np
from comfy.cli_args import args
from comfy_api.latest import io
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from . import safety_checker
from .convert import image_to_u8

log = logging.getLogger(__name__)

CATEGORY = "inpaint/fooocus/output"
FORMATS = ["png", "jpeg", "webp"]
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
_JPEG_EXIF_LIMIT = 65000  # a JPEG APP1 segment holds at most 64 KiB


def parse_flags(text: str | None, count: int) -> list[bool]:
    """``has_nsfw_concepts`` JSON (``"[true, false]"``) → ``count`` bools; ``None``/``""`` → all False."""
    if text is None or text.strip() == "":
        return [False] * count
    try:
        flags = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"has_nsfw_concepts: expected a JSON list of booleans, got {text[:80]!r} ({exc})") from None
    if isinstance(flags, bool):
        flags = [flags] * count
    if not isinstance(flags, list) or not all(isinstance(f, bool) for f in flags) or len(flags) != count:
        raise ValueError(f"has_nsfw_concepts: expected a JSON list of {count} booleans (one per image), got {text[:80]!r}")
    return flags


class SafetyCheckerNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        names = safety_checker.checker_names()
        default = safety_checker.DEFAULT_CHECKER if safety_checker.DEFAULT_CHECKER in names else (names[0] if names else safety_checker.DEFAULT_CHECKER)
        options = names if default in names else [default] + names
        return io.Schema(
            node_id="FooocusInpaint_SafetyChecker",
            display_name="Fooocus Safety Checker",
            category=CATEGORY,
            description=(
                "Fooocus's / fal's safety checker (Stable Diffusion's NSFW concept detector: a CLIP ViT-L/14 image "
                "embedding compared with 17 concept and 3 special-care embeddings). Flagged images are replaced by "
                "black images of the same size, as Fooocus does; the flags come out as fal's has_nsfw_concepts."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The images to check (a batch is checked image by image)."),
                io.Boolean.Input("enabled", default=True,
                                 tooltip="fal 'enable_safety_checker' (default on). Off: images pass through, flags all false."),
                io.Combo.Input("checker", options=options, default=default,
                               tooltip="Checker weights in models/safety_checker: Fooocus's "
                                       "stable-diffusion-safety-checker.bin, or a diffusers folder (config.json + weights)."),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="The images, flagged ones blacked out (same size)."),
                io.String.Output(display_name="has_nsfw_concepts",
                                 tooltip="JSON list of booleans, one per image (fal's has_nsfw_concepts)."),
                io.Boolean.Output(display_name="any_nsfw", tooltip="True if any image was flagged."),
            ],
        )

    @classmethod
    def execute(cls, images, enabled=True, checker=safety_checker.DEFAULT_CHECKER) -> io.NodeOutput:
        if images.ndim != 4:
            raise ValueError(f"images: expected an IMAGE batch [B,H,W,C], got shape {tuple(images.shape)}")
        n = images.shape[0]
        if not enabled:
            return io.NodeOutput(images, json.dumps([False] * n), False)
        loaded = safety_checker.get_checker(checker)
        u8 = np.stack([image_to_u8(images, i)[..., :3] for i in range(n)])
        flags, _ = loaded.check(u8)
        out = images.clone()
        for i, f in enumerate(flags):
            if f:
                out[i] = 0.0
        if any(flags):
            log.info("safety checker: %d of %d images flagged and blacked out", sum(flags), n)
        return io.NodeOutput(out, json.dumps(flags), any(flags))


def _exif(img: Image.Image, prompt, extra_pnginfo, limit: int | None) -> bytes | None:
    """ComfyUI's WebP-style EXIF metadata (0x0110 ``prompt:…``, 0x010F… ``key:…``), dropped if over ``limit``."""
    if args.disable_metadata or (prompt is None and not extra_pnginfo):
        return None
    for with_extra in (True, False):
        exif = img.getexif()
        if prompt is not None:
            exif[0x0110] = "prompt:{}".format(json.dumps(prompt))
        if with_extra and extra_pnginfo:
            tag = 0x010F
            for key, value in extra_pnginfo.items():
                exif[tag] = "{}:{}".format(key, json.dumps(value))
                tag -= 1
        data = exif.tobytes()
        if limit is None or len(data) <= limit:
            return data
    log.info("Fooocus Save Image: metadata too large for JPEG EXIF; saved without it")
    return None


def encode_image(img_u8: np.ndarray, fmt: str, prompt=None, extra_pnginfo=None) -> bytes:
    """Encode one ``H x W x 3`` uint8 image as Fooocus's ``private_logger`` does.

    png: PNG with ComfyUI's text chunks (``prompt``, workflow…), compress level 4 like Save Image;
    jpeg: quality 95, optimize, progressive; webp: quality 95, lossy. JPEG/WebP carry the same metadata in EXIF
    (as ComfyUI's WebP savers).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    img = Image.fromarray(img_u8)
    buf = _io.BytesIO()
    if fmt == "png":
        meta = None
        if not args.disable_metadata and (prompt is not None or extra_pnginfo):
            meta = PngInfo()
            if prompt is not None:
                meta.add_text("prompt", json.dumps(prompt))
            for k, v in (extra_pnginfo or {}).items():
                meta.add_text(k, json.dumps(v))
        img.save(buf, format="PNG", pnginfo=meta, compress_level=4)
    elif fmt == "jpeg":
        exif = _exif(img, prompt, extra_pnginfo, _JPEG_EXIF_LIMIT)
        kw = {"exif": exif} if exif else {}
        img.save(buf, format="JPEG", quality=95, optimize=True, progressive=True, **kw)
    else:
        exif = _exif(img, prompt, extra_pnginfo, None)
        kw = {"exif": exif} if exif else {}
        img.save(buf, format="WEBP", quality=95, lossless=False, **kw)
    return buf.getvalue()


class FooocusSaveImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_SaveImage",
            display_name="Fooocus Save Image",
            category=CATEGORY,
            description=(
                "Saves images to ComfyUI's output folder as png, jpeg (quality 95, progressive; fal's default) or webp "
                "(quality 95), like Fooocus. The node's output (in /history) lists the files like Save Image and adds "
                "has_nsfw_concepts and image_info (content_type, file_size, width, height) for fal-style responses."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The images to save."),
                io.Combo.Input("format", options=FORMATS, default="jpeg",
                               tooltip="fal 'output_format': jpeg (default), png (keeps ComfyUI's workflow metadata) or webp."),
                io.String.Input("filename_prefix", default="fooocus",
                                tooltip="File name prefix; may contain a subfolder and %date:…% style fields like Save Image."),
                io.String.Input("has_nsfw_concepts", optional=True, force_input=True,
                                tooltip="From Fooocus Safety Checker: reported with the files (not used to filter)."),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, format="jpeg", filename_prefix="fooocus", has_nsfw_concepts=None) -> io.NodeOutput:
        if format not in FORMATS:
            raise ValueError(f"format: expected one of {FORMATS}, got {format!r}")
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(f"images: expected a non-empty IMAGE batch [B,H,W,C], got shape {tuple(images.shape)}")
        n = images.shape[0]
        flags = parse_flags(has_nsfw_concepts, n)
        prompt = cls.hidden.prompt if cls.hidden is not None else None
        extra = cls.hidden.extra_pnginfo if cls.hidden is not None else None
        out_dir = folder_paths.get_output_directory()
        full_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, out_dir, images.shape[2], images.shape[1])
        results, info = [], []
        for i in range(n):
            u8 = image_to_u8(images, i)[..., :3]
            data = encode_image(np.ascontiguousarray(u8), format, prompt, extra)
            name = f"{filename.replace('%batch_num%', str(i))}_{counter:05}_.{EXTENSIONS[format]}"
            with open(os.path.join(full_folder, name), "wb") as fh:
                fh.write(data)
            results.append({"filename": name, "subfolder": subfolder, "type": "output"})
            info.append({"file_name": name, "content_type": CONTENT_TYPES[format], "file_size": len(data),
                         "width": int(u8.shape[1]), "height": int(u8.shape[0])})
            counter += 1
        ui = {"images": results, "has_nsfw_concepts": flags, "image_info": info, "output_format": [format]}
        return io.NodeOutput(ui=ui)


MENU_ORDER = 80
NODES = [SafetyCheckerNode, FooocusSaveImage]
