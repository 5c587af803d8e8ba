"""ComfyUI nodes of the pack (V3 schema). Each ``nodes/*_nodes.py`` module holds a few thin node
classes that translate between ComfyUI types and the pure functions in ``engine``, and lists them in
a module-level ``NODES``; its ``MENU_ORDER`` (default 100) orders the modules. Search aliases
(``search_aliases.py``) are added to the node classes here, so node modules need not list them."""
from __future__ import annotations

import importlib
import pkgutil

from comfy_api.latest import ComfyExtension, io

from .schema_util import apply_search_aliases
from .search_aliases import SEARCH_ALIASES


def all_nodes() -> list[type[io.ComfyNode]]:
    """Every node class the pack provides, in menu order (imported on first call, not at import)."""
    modules = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.endswith("_nodes"):
            modules.append(importlib.import_module(f".{info.name}", __name__))
    modules.sort(key=lambda m: (getattr(m, "MENU_ORDER", 100), m.__name__))
    nodes: list[type[io.ComfyNode]] = []
    for m in modules:
        nodes.extend(getattr(m, "NODES", []))
    ids = [n.define_schema().node_id for n in nodes]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise RuntimeError(f"duplicate node ids: {sorted(dup)}")
    apply_search_aliases(nodes, SEARCH_ALIASES)
    return nodes


class FooocusInpaintExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()


async def comfy_entrypoint() -> FooocusInpaintExtension:
    return FooocusInpaintExtension()
