"""Loading the Fooocus inpaint head and patch from the ``inpaint`` model folder."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict

import folder_paths
from comfy_api.latest import io

from ..engine.inpaint_head import load_inpaint_head
from ..engine.inpaint_patch import engine_version_from_filename, load_inpaint_patch
from ..engine.model_manifest import missing_model_message
from .types import FooocusInpaintPatch, InpaintPatchIO

log = logging.getLogger(__name__)

CATEGORY = "inpaint/fooocus"
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 2


def _inpaint_files(suffixes: tuple[str, ...]) -> list[str]:
    try:
        names = folder_paths.get_filename_list("inpaint")
    except KeyError:
        return []
    return sorted(n for n in names if n.lower().endswith(suffixes))


def _cached(kind: str, path: str, loader):
    st = os.stat(path)
    key = (kind, path, st.st_mtime_ns, st.st_size)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = loader(path)
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE * 2:
        _CACHE.popitem(last=False)
    return value


def _resolve(name: str, what: str) -> str:
    path = folder_paths.get_full_path("inpaint", name) if name else None
    if path is None:
        raise ValueError(f"{what}: " + missing_model_message(name, folder_paths.get_folder_paths("inpaint")))
    return path


class FooocusInpaintLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        heads = _inpaint_files((".pth", ".pt", ".safetensors"))
        patches = _inpaint_files((".patch", ".safetensors"))
        return io.Schema(
            node_id="FooocusInpaint_Loader",
            display_name="Fooocus Inpaint Patch Loader",
            category=CATEGORY,
            description=(
                "Loads Fooocus's inpaint model: the small head (fooocus_inpaint_head.pth) that feeds the mask and "
                "masked image into the UNet, and the inpaint patch (inpaint_v26.fooocus.patch, engine v2.6; "
                "inpaint_v25 / inpaint for v2.5 / v1), a dense uint8 weight delta for SDXL. Files come from "
                "models/inpaint. Files are loaded without running pickle code, and the patch stays uint8 in memory."
            ),
            inputs=[
                io.Combo.Input("head", options=heads or ["fooocus_inpaint_head.pth"],
                               default="fooocus_inpaint_head.pth" if "fooocus_inpaint_head.pth" in heads else None,
                               tooltip="The inpaint head file (Fooocus: fooocus_inpaint_head.pth) in models/inpaint."),
                io.Combo.Input("patch", options=patches or ["inpaint_v26.fooocus.patch"],
                               default="inpaint_v26.fooocus.patch" if "inpaint_v26.fooocus.patch" in patches else None,
                               tooltip="The inpaint patch file in models/inpaint. Fooocus's 'inpaint engine': "
                                       "inpaint_v26.fooocus.patch = v2.6 (default), inpaint_v25.fooocus.patch = v2.5, "
                                       "inpaint.fooocus.patch = v1."),
            ],
            outputs=[InpaintPatchIO.Output(display_name="inpaint_patch",
                                           tooltip="Head + patch, for Fooocus Sampler or Apply Fooocus Inpaint.")],
        )

    @classmethod
    def execute(cls, head: str, patch: str) -> io.NodeOutput:
        head_path = _resolve(head, "head")
        patch_path = _resolve(patch, "patch")
        head_w = _cached("head", head_path, load_inpaint_head)
        patch_sd = _cached("patch", patch_path, lambda p: load_inpaint_patch(p, mmap=True))
        engine = engine_version_from_filename(patch) or "custom"
        log.info("Fooocus inpaint: loaded head %s (%d channels) and patch %s (engine %s, %d weights)",
                 head, head_w.shape[0], patch, engine, len(patch_sd))
        return io.NodeOutput(FooocusInpaintPatch(head_w, patch_sd, engine, head, patch))


MENU_ORDER = 10
NODES = [FooocusInpaintLoader]
