"""Shipped workflows: generated from one source, valid against the running server's node definitions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from inpaint_support import WORKFLOWS

UI_FILES = sorted(WORKFLOWS.glob("*.json"))
FRONTEND_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}


def test_every_workflow_has_an_api_twin():
    assert UI_FILES, "no UI workflows shipped"
    assert {p.stem for p in UI_FILES} == {p.stem for p in (WORKFLOWS / "api").glob("*.json")}


def test_node_reference_is_up_to_date(comfy):
    from engine.node_docs import render_node_docs

    doc = WORKFLOWS.parent / "docs" / "nodes.md"
    assert doc.read_text(encoding="utf-8") == render_node_docs(comfy.object_info()), \
        "regenerate docs/nodes.md with scripts/build_workflows.py"


def test_every_workflow_has_a_thumbnail():
    from PIL import Image

    for p in UI_FILES:
        thumb = p.with_suffix(".jpg")
        assert thumb.is_file(), f"no template-browser thumbnail for {p.name}"
        with Image.open(thumb) as im:
            assert im.format == "JPEG" and min(im.size) >= 128


def test_generated_files_are_up_to_date(comfy):
    from engine.workflow_graphs import render_workflow_files

    files = render_workflow_files(comfy.object_info())
    stale = [rel for rel, text in files.items() if (WORKFLOWS / rel).read_text(encoding="utf-8") != text]
    assert not stale, f"regenerate with scripts/build_workflows.py: {stale}"
    assert set(files) == {p.name for p in UI_FILES} | {f"api/{p.name}" for p in (WORKFLOWS / 'api').glob('*.json')}


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_validates_against_object_info(comfy, path):
    from engine.ui_workflow import input_layout

    info = comfy.object_info()
    wf = json.loads(path.read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert wf["last_node_id"] >= max(nodes)
    for n in wf["nodes"]:
        if n["type"] in FRONTEND_ONLY:
            continue
        assert n["type"] in info, f"{path.name}: unknown node type {n['type']}"
        sockets, widgets = input_layout(info[n["type"]])
        extra = sum(1 for _, o in widgets if o.get("control_after_generate")) + any(o.get("image_upload") for _, o in widgets)
        assert len(n["widgets_values"]) == len(widgets) + extra, f"{path.name}: widget count of {n['type']}"
        values = iter(n["widgets_values"])
        for name, opts in widgets:
            value = next(values)
            if opts.get("control_after_generate"):
                assert next(values) in ("fixed", "randomize", "increment", "decrement")
            spec = info[n["type"]]["input"].get("required", {}).get(name) or info[n["type"]]["input"]["optional"][name]
            options = spec[0] if isinstance(spec[0], list) else (spec[1].get("options") if spec[0] == "COMBO" else None)
            if options is not None and name not in ("ckpt_name", "image", "head", "patch"):
                assert value in options, f"{path.name}: {n['type']}.{name}={value!r} not in its options"
        required = {k for k, s in info[n["type"]]["input"].get("required", {}).items()
                    if k in {s_name for s_name, _ in sockets}}
        linked = {i["name"] for i in n["inputs"] if i.get("link") is not None}
        assert required <= linked, f"{path.name}: {n['type']} has unconnected required inputs {required - linked}"
    for link_id, src, src_slot, dst, dst_slot, typ in wf["links"]:
        out_type = info[nodes[src]["type"]]["output"][src_slot]
        assert ("COMBO" if isinstance(out_type, list) else out_type) == typ
        target = nodes[dst]["inputs"][dst_slot]
        assert target["link"] == link_id and target["type"] == typ, f"{path.name}: link {link_id} type mismatch"
    assert len(wf["links"]) == wf["last_link_id"]


def test_template_browser_lists_the_workflows(comfy):
    listed = comfy.get_json("/workflow_templates")
    names = next(v for k, v in listed.items() if "fooocus" in k.lower())
    assert sorted(names) == sorted(p.stem for p in UI_FILES)


# -- every API workflow runs on the tiny models --------------------------------------------------------------
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
RUN_STEPS = 3  # keep each run cheap: one inpaint run (~10 s of CPU at the ~1024² working size) per workflow
STEP_OVERRIDES = {"FooocusInpaint_Sampler": {"steps": RUN_STEPS},
                  "FooocusInpaint_SamplerSD15Refiner": {"steps": RUN_STEPS},
                  "FooocusInpaint_Performance": {"steps_override": RUN_STEPS}}


@pytest.fixture(scope="module")
def workflow_server(comfy_server):
    """The client, with the example image and mask uploaded and Fooocus's style files in models/styles."""
    import shutil

    from conftest import FOOOCUS_DATA

    client = comfy_server.client()
    for name in ("fooocus_inpaint_example.png", "fooocus_inpaint_example_mask.png"):
        client.upload((WORKFLOWS / "input" / name).read_bytes(), name)
    styles = FOOOCUS_DATA / "sdxl_styles"
    if styles.is_dir():
        for f in styles.glob("*.json"):
            shutil.copyfile(f, comfy_server.base_dir / "models" / "styles" / f.name)
    return client, styles.is_dir()


def expected_canvas(image, mask, graph):
    """The (image, mask) the sampler works on: outpaint padding applied as the graph asks."""
    from engine.outpaint import outpaint_pad

    pad = next(n for n in graph.values() if n["class_type"] == "FooocusInpaint_OutpaintPad")["inputs"]
    sides = [s for s in ("left", "right", "top", "bottom") if pad[s]]
    dist = {s: pad[f"{s}_pixels"] for s in sides if pad[f"{s}_pixels"] > 0} or None
    return outpaint_pad(image, mask, sides, dist) if sides else (image, mask)


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_api_workflow_runs_on_the_tiny_models(workflow_server, path):
    """One run per shipped API workflow, after the tiny-model substitution (``with_tiny``: checkpoints, the
    tiny CLIP vision loader) and with 3 steps: success, one image of the canvas size, latent previews and
    progress to the last step, the area around the mask repainted and pixels more than 32 px from it
    untouched (bit-exact for PNG; within JPEG/WebP q95 coding error for the lossy formats)."""
    from inpaint_support import decode, far_from_mask, with_tiny

    client, have_styles = workflow_server
    api = json.loads(path.read_text(encoding="utf-8"))
    classes = {n["class_type"] for n in api.values()}
    styled = [n for n in api.values() if n["class_type"] == "FooocusInpaint_Prompt"
              and any(s.strip() not in ("", "Fooocus V2") for s in n["inputs"].get("styles", "").split(","))]
    if styled and not have_styles:
        pytest.skip("Fooocus style files not found (the workflow's styles need them)")
    if "FooocusInpaint_ImagePromptControlNet" in classes:
        pytest.importorskip("cv2", reason="opencv-python-headless is needed by the PyraCanny/CPDS preprocessors")
    graph = with_tiny(api, **STEP_OVERRIDES)
    res = client.run(graph, timeout=600)
    assert res.status == "success", res.error
    assert res.error is None
    assert len(res.images) == 1, [i[:2] for i in res.images]
    out = decode(res.images[0][2])
    src = decode((WORKFLOWS / "input" / "fooocus_inpaint_example.png").read_bytes())
    mask = decode((WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png").read_bytes())[..., 0]
    canvas, canvas_mask = expected_canvas(src, mask, graph)
    assert out.shape == canvas.shape
    far = far_from_mask(canvas_mask)
    assert far.any()
    diff = np.abs(out.astype(np.int16) - canvas.astype(np.int16))
    if res.images[0][1].endswith(".png"):
        assert not diff[far].any(), "pixels > 32 px from the repaint area changed"
    else:   # q95 lossy coding of an unchanged area: small errors only
        assert diff[far].mean() < 2.0 and np.percentile(diff[far], 99.9) < 24, "far pixels changed"
    assert diff[~far].mean() > 4 * max(diff[far].mean(), 0.1), "nothing was repainted"
    done, total = res.progress()[-1]
    assert done == total > 0, res.progress()
    assert res.previews >= RUN_STEPS, "no latent previews during sampling"
