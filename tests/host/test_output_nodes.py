"""Fooocus Safety Checker and Fooocus Save Image: in-process on the tiny checker, and the full inpaint graph with
Fooocus Prompt -> Fooocus Sampler -> Safety Checker -> Save Image through a real ComfyUI server."""
from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FOOOCUS_DATA
from inpaint_support import WORKFLOWS, decode, load_api_workflow, with_tiny

IMAGES = torch.from_numpy((np.random.default_rng(3).random((2, 120, 90, 3)) * 255).astype(np.uint8)).float() / 255


def _pack():
    return next(m for name, m in sys.modules.items()
                if name.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))


@pytest.fixture(scope="module")
def on(inprocess_host):
    """(output_nodes module, safety_checker folder, output folder)."""
    import folder_paths

    return (_pack().nodes.output_nodes, Path(folder_paths.get_folder_paths("safety_checker")[0]),
            Path(folder_paths.get_output_directory()))


def _write_checker(folder: Path, name: str, threshold: float) -> str:
    import tiny_extra_prompt

    torch.save(tiny_extra_prompt.tiny_safety_state_dict(threshold=threshold), folder / name)
    return name


# ------------------------------------------------------------------------------------------ safety checker
def test_checker_lists_both_layouts(on):
    out, sc, _ = on
    names = out.safety_checker.checker_names()
    assert "stable-diffusion-safety-checker.bin" in names and "tiny_safety_checker" in names
    schema = out.SafetyCheckerNode.define_schema()
    assert [i for i in schema.inputs if i.id == "checker"][0].default == "stable-diffusion-safety-checker.bin"


def test_not_flagged_passes_images_unchanged(on):
    out, _, _ = on
    for checker in ("stable-diffusion-safety-checker.bin", "tiny_safety_checker"):
        images, flags, anyf = out.SafetyCheckerNode.execute(IMAGES, True, checker).result
        assert json.loads(flags) == [False, False] and anyf is False
        assert torch.equal(images, IMAGES)


def test_flagged_images_are_black_same_size(on):
    out, sc, _ = on
    name = _write_checker(sc, "flag_all.bin", -2.0)
    images, flags, anyf = out.SafetyCheckerNode.execute(IMAGES, True, name).result
    assert json.loads(flags) == [True, True] and anyf is True
    assert images.shape == IMAGES.shape and not images.any()
    assert IMAGES.any()  # input not modified


def test_one_of_two_flagged(on):
    out, sc, _ = on
    pack = _pack()
    checker = out.safety_checker.get_checker("stable-diffusion-safety-checker.bin").patcher.model
    u8 = np.stack([pack.nodes.convert.image_to_u8(IMAGES, i) for i in range(2)])
    cos = pack.engine.safety.cosine_similarity(checker.embed(pack.engine.safety.preprocess(u8)), checker.concept_embeds)
    lo, hi = sorted(cos[:, 0].tolist())
    import tiny_extra_prompt

    sd = tiny_extra_prompt.tiny_safety_state_dict(threshold=2.0)
    sd["concept_embeds_weights"][0] = round((lo + hi) / 2, 3)
    torch.save(sd, sc / "flag_one.bin")
    images, flags, _ = out.SafetyCheckerNode.execute(IMAGES, True, "flag_one.bin").result
    flags = json.loads(flags)
    k = int(torch.argmax(cos[:, 0]))
    assert flags[k] is True and flags[1 - k] is False
    assert not images[k].any() and torch.equal(images[1 - k], IMAGES[1 - k])


def test_disabled_passes_through_without_weights(on):
    out, _, _ = on
    images, flags, anyf = out.SafetyCheckerNode.execute(IMAGES, False, "does-not-exist.bin").result
    assert images is IMAGES and json.loads(flags) == [False, False] and anyf is False


def test_missing_checker_error(on):
    out, sc, _ = on
    with pytest.raises(ValueError, match="stable-diffusion-safety-checker.bin") as e:
        out.SafetyCheckerNode.execute(IMAGES, True, "does-not-exist.bin")
    assert "safety_checker" in str(e.value)
    (sc / "empty_folder").mkdir(exist_ok=True)
    with pytest.raises(ValueError, match="model.safetensors or pytorch_model.bin"):
        out.SafetyCheckerNode.execute(IMAGES, True, "empty_folder")


def test_unsafe_checker_file_refused(on):
    out, sc, _ = on

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Boom()}, sc / "evil.bin")
    with pytest.raises(ValueError, match="refused"):
        out.SafetyCheckerNode.execute(IMAGES, True, "evil.bin")


# ------------------------------------------------------------------------------------------------- saving
@pytest.mark.parametrize("fmt,pil_format,ctype", [("png", "PNG", "image/png"), ("jpeg", "JPEG", "image/jpeg"),
                                                  ("webp", "WEBP", "image/webp")])
def test_save_formats(on, fmt, pil_format, ctype):
    out, _, outdir = on
    res = out.FooocusSaveImage.execute(IMAGES, fmt, f"fmt_{fmt}", json.dumps([True, False]))
    ui = res.ui
    assert [r["type"] for r in ui["images"]] == ["output", "output"]
    assert ui["has_nsfw_concepts"] == [True, False] and ui["output_format"] == [fmt]
    for r, info in zip(ui["images"], ui["image_info"]):
        path = outdir / r["subfolder"] / r["filename"]
        data = path.read_bytes()
        img = Image.open(io.BytesIO(data))
        assert img.format == pil_format and img.size == (90, 120)
        assert info == {"file_name": r["filename"], "content_type": ctype, "file_size": len(data),
                        "width": 90, "height": 120}
    u8 = (IMAGES[0].numpy() * 255).round().astype(np.uint8)
    saved = (outdir / ui["images"][0]["filename"]).read_bytes()
    if fmt == "png":
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(saved)).convert("RGB")), u8)
    else:  # Fooocus private_logger settings (no metadata when called outside the executor)
        buf = io.BytesIO()
        kw = {"quality": 95, "optimize": True, "progressive": True} if fmt == "jpeg" else {"quality": 95, "lossless": False}
        Image.fromarray(u8).save(buf, format=pil_format, **kw)
        assert saved == buf.getvalue()


def test_save_counter_and_flag_errors(on):
    out, _, _ = on
    a = out.FooocusSaveImage.execute(IMAGES[:1], "png", "sub/ctr").ui["images"][0]
    b = out.FooocusSaveImage.execute(IMAGES[:1], "jpeg", "sub/ctr").ui["images"][0]
    assert a["subfolder"] == "sub" and a["filename"].endswith("_.png") and b["filename"].endswith("_.jpg")
    assert a["filename"] != b["filename"]
    assert out.FooocusSaveImage.execute(IMAGES, "png", "noflags").ui["has_nsfw_concepts"] == [False, False]
    with pytest.raises(ValueError, match="has_nsfw_concepts"):
        out.FooocusSaveImage.execute(IMAGES, "png", "x", "[true]")
    with pytest.raises(ValueError, match="has_nsfw_concepts"):
        out.FooocusSaveImage.execute(IMAGES, "png", "x", "nope")
    with pytest.raises(ValueError, match="format"):
        out.FooocusSaveImage.execute(IMAGES, "gif", "x")


def test_png_keeps_comfy_metadata_via_executor(inprocess_host, on):
    _, _, outdir = on
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 255}},
        "2": {"class_type": "FooocusInpaint_SaveImage", "inputs": {"images": ["1", 0], "format": "png",
                                                                   "filename_prefix": "meta"}},
        "3": {"class_type": "FooocusInpaint_SaveImage", "inputs": {"images": ["1", 0], "format": "jpeg",
                                                                   "filename_prefix": "meta"}},
    }
    outputs = inprocess_host.run(graph)
    png = outputs["2"]["images"][0]
    img = Image.open(outdir / png["subfolder"] / png["filename"])
    assert json.loads(img.info["prompt"])["2"]["class_type"] == "FooocusInpaint_SaveImage"
    jpg = outputs["3"]["images"][0]
    exif = Image.open(outdir / jpg["subfolder"] / jpg["filename"]).getexif()
    assert exif[0x0110].startswith("prompt:")
    assert outputs["3"]["image_info"][0]["content_type"] == "image/jpeg"


# --------------------------------------------------------------------------------- end to end over HTTP
def test_e2e_fooocus_prompt_two_images_safety_and_save(comfy_server):
    styles = FOOOCUS_DATA / "sdxl_styles"
    exp_data = FOOOCUS_DATA / "prompt_expansion" / "fooocus_expansion"
    if not styles.is_dir() or not (exp_data / "tokenizer.json").is_file():
        pytest.skip(f"Fooocus style/tokenizer files not found under {FOOOCUS_DATA}")
    models = comfy_server.base_dir / "models"
    for f in styles.glob("*.json"):
        shutil.copyfile(f, models / "styles" / f.name)
    exp = models / "prompt_expansion" / "fooocus_expansion"
    for f in exp_data.iterdir():  # the tiny model folder may lack them if generated without ../shared
        if f.name != "config.json" and not (exp / f.name).exists():
            shutil.copyfile(f, exp / f.name)
    comfy = comfy_server.client()
    comfy.upload((WORKFLOWS / "input" / "fooocus_inpaint_example.png").read_bytes(), "fooocus_inpaint_example.png")
    comfy.upload((WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png").read_bytes(),
                 "fooocus_inpaint_example_mask.png")

    graph = with_tiny(load_api_workflow("fooocus_inpaint_default"),
                      FooocusInpaint_Sampler={"steps": 2, "num_images": 2, "seed": 5})
    clip_ref = graph["3"]["inputs"]["clip"]
    sampler = next(k for k, n in graph.items() if n["class_type"] == "FooocusInpaint_Sampler")
    save = next(k for k, n in graph.items() if n["class_type"] == "SaveImage")
    del graph["3"], graph["4"], graph[save]
    graph[sampler]["inputs"].pop("positive")
    graph[sampler]["inputs"].pop("negative")
    graph["20"] = {"class_type": "FooocusInpaint_Prompt", "inputs": {
        "clip": clip_ref, "prompt": "a cozy wooden cabin, " + ", ".join(["tall pine tree"] * 16),
        "negative_prompt": "", "styles": "Fooocus Enhance, Fooocus V2, Fooocus Sharp",
        "inpaint_additional_prompt": "", "expansion_model": "fooocus_expansion", "clip_skip": 2}}
    graph[sampler]["inputs"]["prompt"] = ["20", 0]
    graph["21"] = {"class_type": "FooocusInpaint_SafetyChecker", "inputs": {
        "images": [sampler, 0], "enabled": True, "checker": "stable-diffusion-safety-checker.bin"}}
    graph["22"] = {"class_type": "FooocusInpaint_SaveImage", "inputs": {
        "images": ["21", 0], "format": "jpeg", "filename_prefix": "fooocus_e2e", "has_nsfw_concepts": ["21", 1]}}
    res = comfy.run(graph, timeout=600)
    assert res.status == "success", res.error
    out = res.history["outputs"]["22"]
    assert out["has_nsfw_concepts"] == [False, False]
    assert [i["content_type"] for i in out["image_info"]] == ["image/jpeg", "image/jpeg"]
    imgs = [decode(data) for _, _, data in res.images]
    assert len(imgs) == 2 and imgs[0].shape == imgs[1].shape
    assert not np.array_equal(imgs[0], imgs[1])  # seeds 5 and 6 (and their expansions) differ
