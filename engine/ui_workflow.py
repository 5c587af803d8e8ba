"""Convert an API-format graph into a UI-format ("save") workflow the ComfyUI editor loads.

The UI format (LiteGraph, ``version`` 0.4) stores widget values *positionally*, so the converter
reads each node's widget order from the server's ``/object_info`` (passed in as a dict): the inputs
in ``input_order`` (required, then optional) that are widgets (INT, FLOAT, STRING, BOOLEAN, COMBO or
an options list, without ``forceInput``; a widget fed by a link keeps its default value and gets an
input slot ``{"widget": {"name": ...}}`` after the sockets, as the editor saves it), plus the extra value the editor keeps after a widget with
``control_after_generate`` and the trailing ``upload`` value of image-upload nodes. Everything else
is a socket. Layout: one column per ``Graph.groups`` title, left to right in graph order, with an
optional Note node below.
"""
from __future__ import annotations

from collections import defaultdict

from .api_graph import Graph

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY_NODES = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
COL_W, GAP_X, GAP_Y, ROW_H, HEAD_H, PREVIEW_H = 360, 60, 50, 26, 36, 260
GROUP_COLORS = ["#3f789e", "#8A8", "#b58b2a", "#a1309b", "#88A", "#b06634"]


def _spec(info: dict, name: str):
    for part in ("required", "optional"):
        if name in info.get("input", {}).get(part, {}):
            return info["input"][part][name]
    return None


def input_layout(info: dict) -> tuple[list[tuple[str, str]], list[tuple[str, dict]]]:
    """``(sockets, widgets)`` of a node from its ``/object_info`` entry: sockets as (name, type),
    widgets as (name, options) in the editor's positional order."""
    sockets, widgets = [], []
    order = info.get("input_order") or {p: list(info.get("input", {}).get(p, {})) for p in ("required", "optional")}
    for part in ("required", "optional"):
        for name in order.get(part, []):
            spec = _spec(info, name)
            if spec is None:
                continue
            typ = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            is_widget = (isinstance(typ, list) or typ in WIDGET_TYPES) and not opts.get("forceInput")
            if is_widget:
                widgets.append((name, opts))
            else:
                sockets.append((name, typ))
    return sockets, widgets


def _depths(api: dict) -> dict[str, int]:
    memo: dict[str, int] = {}

    def depth(nid: str, seen=()) -> int:
        if nid in memo:
            return memo[nid]
        if nid in seen:
            raise ValueError(f"graph: cycle through node {nid}")
        srcs = [v[0] for v in api[nid]["inputs"].values() if isinstance(v, list) and len(v) == 2 and v[0] in api]
        memo[nid] = 1 + max((depth(s, seen + (nid,)) for s in srcs), default=-1)
        return memo[nid]

    for nid in api:
        depth(nid)
    return memo


def to_ui_workflow(graph: Graph, object_info: dict, note: str | None = None) -> dict:
    """The UI-format workflow of ``graph``; raises ``ValueError`` for node types or inputs that the
    given ``object_info`` does not know (so a stale workflow cannot be generated)."""
    api = graph.api()
    depths = _depths(api)
    links, node_out_links = [], defaultdict(list)
    ui_nodes = []
    # first pass: links (id order follows node and input order, so output is deterministic)
    node_ids = sorted(api, key=int)
    layouts = {}
    for nid in node_ids:
        node = api[nid]
        info = object_info.get(node["class_type"])
        if info is None:
            raise ValueError(f"node {nid}: type {node['class_type']!r} is not in object_info")
        sockets, widgets = input_layout(info)
        known = {n for n, _ in sockets} | {n for n, _ in widgets}
        unknown = set(node["inputs"]) - known
        if unknown:
            raise ValueError(f"node {nid} ({node['class_type']}): unknown inputs {sorted(unknown)}")
        layouts[nid] = (info, sockets, widgets)
    def is_link(v) -> bool:
        return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)

    # widgets fed by a link become extra input slots after the sockets ({"widget": {"name": ...}})
    linked_widgets = {nid: [(n, o) for n, o in layouts[nid][2] if is_link(api[nid]["inputs"].get(n))]
                      for nid in node_ids}
    for nid in node_ids:
        info, sockets, widgets = layouts[nid]
        slots = [(n, t) for n, t in sockets] + [(n, None) for n, _ in linked_widgets[nid]]
        for slot, (name, typ) in enumerate(slots):
            v = api[nid]["inputs"].get(name)
            if is_link(v):
                src, src_slot = v
                out_type = object_info[api[src]["class_type"]]["output"][src_slot]
                out_type = "COMBO" if isinstance(out_type, list) else out_type  # the editor's name for it
                link_id = len(links) + 1
                links.append([link_id, int(src), src_slot, int(nid), slot, out_type])
                node_out_links[(src, src_slot)].append(link_id)
    link_by_target = {(l[3], l[4]): l[0] for l in links}

    # layout: one column per group (ordered by the group's shallowest node, then first id), nodes stacked
    # in id order inside it; ungrouped nodes get a column per graph depth after the groups
    blocks: dict[str, list[str]] = defaultdict(list)
    for nid in node_ids:
        blocks[graph.groups.get(nid) or f"\0depth{depths[nid]:04d}"].append(nid)
    block_order = sorted(blocks, key=lambda b: (b.startswith("\0"), min(depths[n] for n in blocks[b]),
                                                min(int(n) for n in blocks[b])))
    pos, size = {}, {}
    for col, block in enumerate(block_order):
        y = 0
        for nid in blocks[block]:
            info, sockets, widgets = layouts[nid]
            rows = max(len(sockets), len(info.get("output", []))) + len(widgets)
            h = HEAD_H + ROW_H * max(rows, 1) + 20
            if any(o.get("image_upload") for _, o in widgets) or info.get("output_node"):
                h += PREVIEW_H  # the editor shows the loaded / saved image inside the node
            pos[nid] = [col * (COL_W + GAP_X), y]
            size[nid] = [COL_W - 20, h]
            y += h + GAP_Y

    order = {nid: i for i, nid in enumerate(sorted(node_ids, key=lambda n: (depths[n], int(n))))}
    for nid in node_ids:
        node = api[nid]
        info, sockets, widgets = layouts[nid]
        inputs = [{"name": name, "type": typ if isinstance(typ, str) else "COMBO",
                   "link": link_by_target.get((int(nid), slot))} for slot, (name, typ) in enumerate(sockets)]
        for k, (name, _) in enumerate(linked_widgets[nid]):
            link_id = link_by_target[(int(nid), len(sockets) + k)]
            inputs.append({"name": name, "type": links[link_id - 1][5], "widget": {"name": name}, "link": link_id})
        outputs = []
        for slot, typ in enumerate(info.get("output", [])):
            names = info.get("output_name") or info.get("output")
            outputs.append({"name": names[slot], "type": "COMBO" if isinstance(typ, list) else typ, "links": node_out_links.get((nid, slot), []),
                            "slot_index": slot})
        values = []
        upload = False
        for name, opts in widgets:
            value = node["inputs"].get(name, opts.get("default"))
            values.append(opts.get("default") if is_link(value) else value)
            if opts.get("control_after_generate"):
                values.append("fixed")
            upload = upload or bool(opts.get("image_upload"))
        if upload:
            values.append("image")
        ui = {"id": int(nid), "type": node["class_type"], "pos": pos[nid], "size": size[nid], "flags": {},
              "order": order[nid], "mode": 0, "inputs": inputs, "outputs": outputs,
              "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": values}
        title = node.get("_meta", {}).get("title")
        if title and title != info.get("display_name", node["class_type"]):
            ui["title"] = title
        ui_nodes.append(ui)

    groups = []
    members = defaultdict(list)
    for nid, gname in graph.groups.items():
        members[gname].append(nid)
    for i, (gname, nids) in enumerate(members.items()):
        x0 = min(pos[n][0] for n in nids) - 15
        y0 = min(pos[n][1] for n in nids) - 50
        x1 = max(pos[n][0] + size[n][0] for n in nids) + 15
        y1 = max(pos[n][1] + size[n][1] for n in nids) + 15
        groups.append({"title": gname, "bounding": [x0, y0, x1 - x0, y1 - y0],
                       "color": GROUP_COLORS[i % len(GROUP_COLORS)], "font_size": 24, "flags": {}})
    last_id = max(int(n) for n in node_ids)
    if note:
        last_id += 1
        bottom = max(p[1] + size[n][1] for n, p in pos.items())
        ui_nodes.append({"id": last_id, "type": "Note", "pos": [0, bottom + 80], "size": [COL_W * 2, 160],
                         "flags": {}, "order": len(ui_nodes), "mode": 0, "inputs": [], "outputs": [],
                         "properties": {}, "widgets_values": [note], "title": "About this workflow",
                         "color": "#432", "bgcolor": "#653"})
    return {"last_node_id": last_id, "last_link_id": len(links), "nodes": ui_nodes, "links": links,
            "groups": groups, "config": {}, "extra": {"ds": {"scale": 0.75, "offset": [40, 60]}}, "version": 0.4}
