"""Regenerate workflows/*.json (UI format), workflows/api/*.json (API format) and docs/nodes.md from
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
