"""The main job: run the shipped default Fooocus inpaint workflow through a real local ComfyUI.

Usage (after scripts/setup_host.sh; scripts/demo.sh does both):
    .host/venv/bin/python scripts/run_main.py [--models DIR] [--image PNG --mask PNG] [--workflow NAME]
                                              [--steps N] [--seed N] [--out DIR]

With ``--models`` (or ``FOOOCUS_MODELS_DIR``) pointing at a ComfyUI ``models`` folder holding an SDXL
checkpoint and models/inpaint/{fooocus_inpaint_head.pth,inpaint_v26.fooocus.patch}, it runs on those
weights. Without real weights it runs on the project's tiny random-weight SDXL models (the output
is then noise inside the repainted area: it proves the pipeline, not the art) and says so.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "harness")]

import comfy_host  # noqa: E402
import tiny_models  # noqa: E402

log = logging.getLogger("run_main")


def pick_checkpoint(models: Path, wanted: str) -> str | None:
    ckpts = sorted(p.relative_to(models / "checkpoints").as_posix()
                   for p in (models / "checkpoints").rglob("*") if p.suffix in (".safetensors", ".ckpt"))
    if wanted in ckpts:
        return wanted
    return ckpts[0] if ckpts else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the default Fooocus inpaint workflow on a local ComfyUI host.")
    ap.add_argument("--models", type=Path, default=os.environ.get("FOOOCUS_MODELS_DIR"),
                    help="a ComfyUI models folder with real SDXL weights (default: tiny built-in models)")
    ap.add_argument("--workflow", default="fooocus_inpaint_default", help="name of a workflow in workflows/api/")
    ap.add_argument("--image", type=Path, default=REPO / "workflows" / "input" / "fooocus_inpaint_example.png")
    ap.add_argument("--mask", type=Path, default=REPO / "workflows" / "input" / "fooocus_inpaint_example_mask.png")
    ap.add_argument("--steps", type=int, default=None, help="override the workflow's steps (tiny models: 8)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "output")
    ns = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    api = json.loads((REPO / "workflows" / "api" / f"{ns.workflow}.json").read_text())
    ckpt_node = next(n for n in api.values() if n["class_type"] == "CheckpointLoaderSimple")
    model_dirs = []
    tiny = True
    if ns.models:
        ns.models = ns.models.expanduser().resolve()
        ckpt = pick_checkpoint(ns.models, ckpt_node["inputs"]["ckpt_name"])
        if ckpt is None:
            log.error("no checkpoint in %s/checkpoints", ns.models)
            return 2
        missing = [f for f in ("fooocus_inpaint_head.pth", "inpaint_v26.fooocus.patch")
                   if not (ns.models / "inpaint" / f).is_file()]
        if missing:
            log.error("missing in %s/inpaint: %s (Fooocus's inpaint files)", ns.models, ", ".join(missing))
            return 2
        ckpt_node["inputs"]["ckpt_name"] = ckpt
        model_dirs = [ns.models]
        tiny = False
        print(f"Using real weights from {ns.models} (checkpoint {ckpt}).")
    else:
        cache = comfy_host.HOST / "cache" / tiny_models.VERSION
        subprocess.run([sys.executable, str(REPO / "tests" / "harness" / "tiny_models.py"), "--out", str(cache)],
                       check=True, stdout=subprocess.DEVNULL)
        model_dirs = [cache]
        ckpt_node["inputs"]["ckpt_name"] = "tiny_sdxl.safetensors"
        print("No real SDXL weights given (--models DIR): using the project's tiny random-weight SDXL models. "
              "The pipeline is real; the repainted area will look like noise.")
    for node in api.values():
        if node["class_type"] == "FooocusInpaint_Sampler":
            if ns.steps or tiny:
                node["inputs"]["steps"] = ns.steps or 8
            if ns.seed is not None:
                node["inputs"]["seed"] = ns.seed
        if node["class_type"] == "LoadImage":
            node["inputs"]["image"] = ns.image.name
        if node["class_type"] == "LoadImageMask":
            node["inputs"]["image"] = ns.mask.name

    extra = comfy_host.TINY_EXTS if tiny else []
    with tempfile.TemporaryDirectory(prefix="fooocus_host_") as tmp:
        base = comfy_host.make_base_dir(Path(tmp), model_dirs, extra)
        t0 = time.monotonic()
        with comfy_host.ComfyServer(base) as server:
            print(f"ComfyUI 0.3.75 started at {server.url} in {time.monotonic() - t0:.1f}s")
            client = server.client()
            client.upload(ns.image.read_bytes(), ns.image.name)
            client.upload(ns.mask.read_bytes(), ns.mask.name)

            def progress(event, data):
                if event == "progress":
                    print(f"\r  sampling step {data['value']}/{data['max']}", end="", flush=True)

            t1 = time.monotonic()
            res = client.run(api, on_event=progress)
            print()
            if res.status != "success":
                print(f"workflow failed: {json.dumps(res.error)[:2000]}\n{server.log_tail()}")
                return 1
        ns.out.mkdir(parents=True, exist_ok=True)
        paths = []
        for _, name, data in res.images:
            p = ns.out / name
            p.write_bytes(data)
            paths.append(p)
    print(f"Workflow {ns.workflow} ran in {time.monotonic() - t1:.1f}s; output written to: "
          + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
