"""Build ComfyUI API-format graphs ("prompt" JSON) in Python.

An API graph is ``{node_id: {"class_type": str, "inputs": {name: value | [src_id, slot]}, "_meta":
{"title": str}}}``. :class:`Graph` hands out string ids in insertion order and returns
:class:`Ref` handles whose ``out(i)`` is the link ``[id, i]``. Layout hints (``group``) are kept
beside the graph for the UI-format converter (:mod:`.ui_workflow`).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ref:
    node_id: str

    def out(self, slot: int = 0) -> list:
        return [self.node_id, slot]


@dataclass
class Graph:
    nodes: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)   # node_id -> group title (layout only)
    notes: list = field(default_factory=list)    # (group title, text) notes for the UI format

    def add(self, class_type: str, title: str | None = None, group: str | None = None, **inputs) -> Ref:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type,
                               "inputs": {k: (v.out() if isinstance(v, Ref) else v) for k, v in inputs.items()},
                               "_meta": {"title": title or class_type}}
        if group:
            self.groups[node_id] = group
        return Ref(node_id)

    def api(self) -> dict:
        """The API-format dict (what ``POST /prompt`` takes)."""
        return {k: {"class_type": v["class_type"], "inputs": dict(v["inputs"]), "_meta": dict(v["_meta"])}
                for k, v in self.nodes.items()}


def find_nodes(api: dict, class_type: str) -> list[str]:
    """Ids of the nodes of ``class_type`` in an API graph, in id order."""
    return sorted((k for k, v in api.items() if v.get("class_type") == class_type), key=lambda s: (len(s), s))


def set_input(api: dict, class_type: str, name: str, value, only_one: bool = True) -> dict:
    """Set input ``name`` on the node(s) of ``class_type`` in place; raises if there is none (or
    several when ``only_one``). Returns ``api``."""
    ids = find_nodes(api, class_type)
    if not ids or (only_one and len(ids) > 1):
        raise ValueError(f"graph: expected {'one' if only_one else 'a'} {class_type} node, found {len(ids)}")
    for i in ids:
        api[i]["inputs"][name] = value
    return api
