"""ComfyUI nodes of the pack (V3 schema). Each module holds a few thin node classes that translate
between ComfyUI types and the pure functions in ``engine``."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io


def all_nodes() -> list[type[io.ComfyNode]]:
    """Every node class the pack provides, in menu order."""
    from .inpaint_nodes import ApplyFooocusInpaint, FooocusPasteBack, FooocusSampler, InpaintConditioning
    from .loader_nodes import FooocusInpaintLoader
    from .mask_nodes import MaskErodeDilate, OutpaintPad

    return [FooocusInpaintLoader, MaskErodeDilate, OutpaintPad, InpaintConditioning, FooocusSampler,
            ApplyFooocusInpaint, FooocusPasteBack]


class FooocusInpaintExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()


async def comfy_entrypoint() -> FooocusInpaintExtension:
    return FooocusInpaintExtension()
