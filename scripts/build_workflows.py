"""Regenerate workflows/*.json (UI format), workflows/api/*.json (API format), docs/nodes.md and the README's
fal mapping table from
engine/workflow_graphs.py and the node definitions of a real ComfyUI server (the tiny-model test
host). Run: .host/venv/bin/python scripts/build_workflows.py  (``--check`` only compares)."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "harness")]

import comfy_host  # noqa: E402
import tiny_models  # noqa: E402
from engine.workflow_graphs import render_workflow_files  # noqa: E402


MAPPING_START = "<!-- fal-mapping:start"
MAPPING_END = "<!-- fal-mapping:end -->"


def readme_with_mapping(readme: str, table: str) -> str:
    """``readme`` with the text between the fal-mapping markers replaced by ``table``."""
    head, rest = readme.split(MAPPING_START, 1)
    marker_line, _ = rest.split("\n", 1)
    _, tail = rest.split(MAPPING_END, 1)
    return f"{head}{MAPPING_START}{marker_line}\n{table}{MAPPING_END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if any file differs; write nothing")
    ns = ap.parse_args(argv)
    import subprocess

    cache = comfy_host.HOST / "cache" / tiny_models.VERSION
    subprocess.run([sys.executable, str(REPO / "tests" / "harness" / "tiny_models.py"), "--out", str(cache)],
                   check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        base = comfy_host.make_base_dir(Path(tmp), [cache], comfy_host.TINY_EXTS)
        with comfy_host.ComfyServer(base) as server:
            info = server.client().object_info()
    files = render_workflow_files(info)
    from engine.node_docs import render_node_docs

    files["../docs/nodes.md"] = render_node_docs(info)
    from engine.fal_graph import render_mapping_table

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    files["../README.md"] = readme_with_mapping(readme, render_mapping_table())
    stale = []
    for rel, text in sorted(files.items()):
        path = REPO / "workflows" / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(rel)
            if not ns.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    print(("stale: " if ns.check else "written: ") + (", ".join(stale) or "none"))
    return 1 if (ns.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
