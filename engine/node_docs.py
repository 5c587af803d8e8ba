"""Per-node reference (``docs/nodes.md``) rendered from a server's ``/object_info``, so the
documentation is the node definitions themselves (regenerated with ``scripts/build_workflows.py``
and checked by a test)."""
from __future__ import annotations

PREFIX = "FooocusInpaint_"


def _fmt_type(spec) -> str:
    typ = spec[0]
    if isinstance(typ, list):
        return "COMBO"
    return str(typ)


def _fmt_range(opts: dict) -> str:
    parts = []
    if "default" in opts and not isinstance(opts["default"], (list, dict)):
        d = opts["default"]
        parts.append(f"default `{d}`" if d != "" else "default empty")
    if "min" in opts or "max" in opts:
        parts.append(f"{opts.get('min', '')} … {opts.get('max', '')}")
    if opts.get("advanced"):
        parts.append("advanced")
    if opts.get("optional"):
        parts.append("optional")
    return ", ".join(str(p) for p in parts)


def render_node_docs(object_info: dict) -> str:
    """Markdown for every node whose id starts with ``FooocusInpaint_``, grouped by category."""
    nodes = {k: v for k, v in object_info.items() if k.startswith(PREFIX)}
    lines = ["# Node reference", "",
             "Generated from the node definitions (`/object_info` of ComfyUI 0.3.75) by `scripts/build_workflows.py`.",
             "Every input and output carries the tooltip shown in the editor.", ""]
    for cat in sorted({v.get("category", "") for v in nodes.values()}):
        lines += [f"## {cat}", ""]
        for node_id, info in sorted(((k, v) for k, v in nodes.items() if v.get("category", "") == cat),
                                    key=lambda kv: kv[1].get("display_name", kv[0])):
            lines += [f"### {info.get('display_name', node_id)} (`{node_id}`)", "", info.get("description", "").strip(), ""]
            lines += ["| input | type | | tooltip |", "|---|---|---|---|"]
            for part in ("required", "optional"):
                for name in (info.get("input_order", {}).get(part) or list(info.get("input", {}).get(part, {}))):
                    spec = info["input"][part][name]
                    opts = dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
                    if part == "optional":
                        opts["optional"] = True
                    tip = str(opts.get("tooltip", "")).replace("|", "\\|").replace("\n", " ")
                    lines.append(f"| `{name}` | {_fmt_type(spec)} | {_fmt_range(opts)} | {tip} |")
            lines += ["", "| output | type | tooltip |", "|---|---|---|"]
            tips = info.get("output_tooltips") or [""] * len(info.get("output", []))
            for name, typ, tip in zip(info.get("output_name", []), info.get("output", []), tips):
                t = typ if isinstance(typ, str) else "COMBO"
                lines.append(f"| `{name}` | {t} | {str(tip or '').replace('|', chr(92) + '|')} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
