"""Small helpers for V3 schemas: expert widgets (``advanced``) and node search aliases.

Both put a field into the node definition the server sends to the editor (``/object_info``), in the
place and under the name that ComfyUI itself later adopted, without touching anything of ComfyUI's:

- ``advanced``: the input option ``"advanced": true`` (what ComfyUI's own ``advanced=`` keyword of
  ``io`` inputs emits since January 2026, ComfyUI PR #11939; 0.3.75's ``io`` has no such keyword, so
  it goes through ``extra_dict``).
  The frontend copies it to ``widget.options.advanced``. Frontend 1.32.9 stops there (nothing reads
  it, every widget stays visible); later frontends fold such widgets into an "advanced" section.
- ``search_aliases``: a list of alternative names at the top level of the node's ``/object_info``
  entry (ComfyUI's ``Schema.search_aliases`` / ``SEARCH_ALIASES``, PR #12010, January 2026). Frontends that
  know the field add it to the node search; frontend 1.32.9 searches only the node id (``name``) and
  ``display_name``, so there the aliases are carried but not searched.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from comfy_api.latest import io

log = logging.getLogger(__name__)

SEARCH_ALIASES_KEY = "search_aliases"
# The editor's fuzzy node search only matches words that start within about the first 30 characters
# of a field (Fuse.js: location 0, distance 100, threshold 0.3), so aliases are kept short.
MAX_ALIAS_LENGTH = 30


def advanced(inp):
    """Mark a widget input as an expert setting: its ``/object_info`` options get ``"advanced": true``
    (the input spec field the frontend reads into ``widget.options.advanced``). Returns ``inp``."""
    extra = getattr(inp, "extra_dict", None)
    if not isinstance(extra, dict):
        raise ValueError(f"inp: expected a comfy_api io Input with an extra_dict, got {type(inp).__name__}")
    extra["advanced"] = True
    return inp


def clean_aliases(aliases: Iterable[str], what: str = "aliases") -> list[str]:
    """The aliases as a list of stripped, unique strings (order kept); ``ValueError`` for an empty,
    non-string or over-long (> :data:`MAX_ALIAS_LENGTH` characters) alias."""
    if isinstance(aliases, str):
        raise ValueError(f"{what}: expected a list of strings, got the string {aliases!r}")
    out: list[str] = []
    for a in aliases:
        if not isinstance(a, str) or not a.strip():
            raise ValueError(f"{what}: expected non-empty strings, got {a!r}")
        a = " ".join(a.split())
        if len(a) > MAX_ALIAS_LENGTH:
            raise ValueError(f"{what}: alias {a!r} is longer than {MAX_ALIAS_LENGTH} characters")
        if a.lower() not in (o.lower() for o in out):
            out.append(a)
    return out


def _node_info_v1_with_aliases(cls) -> dict[str, Any]:
    """``GET_NODE_INFO_V1`` of ComfyUI, plus ``search_aliases`` (merged with any the host already
    emits, for ComfyUI versions whose schema has the field)."""
    info = io.ComfyNode.GET_NODE_INFO_V1.__func__(cls)
    own = list(getattr(cls, "SEARCH_ALIASES", ()) or ())
    native = list(info.get(SEARCH_ALIASES_KEY) or [])
    info[SEARCH_ALIASES_KEY] = native + [a for a in own if a.lower() not in (n.lower() for n in native)]
    return info


def add_search_aliases(node_cls: type[io.ComfyNode], aliases: Iterable[str]) -> type[io.ComfyNode]:
    """Give one of this pack's node classes search aliases: sets ``node_cls.SEARCH_ALIASES`` and makes
    its ``/object_info`` entry carry them as ``search_aliases``. Only ``node_cls`` changes (its own V1
    node-info classmethod), nothing in ComfyUI. Calling it again replaces the aliases. Returns
    ``node_cls``."""
    if not (isinstance(node_cls, type) and issubclass(node_cls, io.ComfyNode)):
        raise ValueError(f"node_cls: expected a comfy_api io.ComfyNode subclass, got {node_cls!r}")
    node_cls.SEARCH_ALIASES = clean_aliases(aliases, f"aliases of {node_cls.__name__}")
    if node_cls.__dict__.get("GET_NODE_INFO_V1") is None:
        node_cls.GET_NODE_INFO_V1 = classmethod(_node_info_v1_with_aliases)
    return node_cls


def apply_search_aliases(nodes: Iterable[type[io.ComfyNode]], table: Mapping[str, Iterable[str]],
                         prefix: str = "FooocusInpaint_") -> None:
    """:func:`add_search_aliases` for every node class whose id is in ``table`` (node id -> aliases).
    Logs a warning for a node id starting with ``prefix`` that ``table`` lacks and for an entry of
    ``table`` that names no node (a renamed or removed node): the pack still loads."""
    seen = set()
    for cls in nodes:
        node_id = cls.define_schema().node_id
        if node_id in table:
            add_search_aliases(cls, table[node_id])
            seen.add(node_id)
        elif node_id.startswith(prefix):
            log.warning("node %s has no search aliases (nodes/search_aliases.py)", node_id)
    stale = sorted(set(table) - seen)
    if stale:
        log.warning("search aliases for unknown node ids %s (nodes/search_aliases.py)", stale)
