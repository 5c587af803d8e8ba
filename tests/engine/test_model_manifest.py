"""engine.model_manifest: the model file table, per-request requirements and the missing-model message."""
from __future__ import annotations

import hashlib

import pytest

from conftest import FOOOCUS_DATA
from engine import model_manifest as mm
from engine.request import parse_request


def _req(**fields):
    return parse_request({"inpaint_image_url": "a.png", **fields})


def test_table_is_consistent():
    rels = [f.relpath for f in mm.MANIFEST]
    assert len(rels) == len(set(rels))
    groups = {f.group for f in mm.MANIFEST}
    assert groups == {"base", "inpaint", "performance", "prompt", "output", "refiner", "image_prompt", "preview"}
    for f in mm.MANIFEST:
        assert f.url.startswith("https://")
        assert f.size is None or f.size > 0
    # the spec's table (fooocus-pipeline.md §10) sizes
    assert mm.by_name("inpaint_v26.fooocus.patch").size == 1_323_362_033
    assert mm.by_name("fooocus_inpaint_head.pth").size == 52_602
    assert mm.by_name("stable-diffusion-safety-checker.bin").folder == "safety_checker"
    assert mm.by_name("fooocus_expansion.bin").relpath == "prompt_expansion/fooocus_expansion/pytorch_model.bin"
    assert mm.by_name("juggernautXL_v8Rundiffusion.safetensors").size is None  # unverified in the spec


@pytest.mark.parametrize("sub", ["prompt_expansion/fooocus_expansion", "sdxl_styles"])
def test_checksums_of_fooocus_data_files(sub):
    """The small Fooocus files' sizes and SHA-256 match the copies taken from Fooocus 2.5.5."""
    folder = FOOOCUS_DATA / sub
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    entries = [f for f in mm.MANIFEST if f.folder == ("styles" if sub == "sdxl_styles" else sub)
               and f.name != "pytorch_model.bin"]  # the weights are not in the shared data
    assert {f.name for f in entries} == {p.name for p in folder.iterdir()}
    for f in entries:
        data = (folder / f.name).read_bytes()
        assert len(data) == f.size, f.name
        assert hashlib.sha256(data).hexdigest() == f.sha256, f.name


def test_model_file_validation():
    with pytest.raises(ValueError, match="name"):
        mm.ModelFile("a/b", "loras", "https://x/y", None, None, "base", "")
    with pytest.raises(ValueError, match="folder"):
        mm.ModelFile("a", "../x", "https://x/y", None, None, "base", "")
    with pytest.raises(ValueError, match="sha256"):
        mm.ModelFile("a", "loras", "https://x/y", None, "ABC", "base", "")
    with pytest.raises(ValueError, match="url"):
        mm.ModelFile("a", "loras", "http://x/y", None, None, "base", "")
    with pytest.raises(ValueError, match="size"):
        mm.ModelFile("a", "loras", "https://x/y", -1, None, "base", "")


def test_by_name_and_select():
    assert mm.by_name("styles/sdxl_styles_sai.json").name == "sdxl_styles_sai.json"
    with pytest.raises(ValueError, match="not a file of the model manifest"):
        mm.by_name("nope.bin")
    with pytest.raises(ValueError, match="model file name"):
        mm.by_name(3)
    default = mm.select()
    assert all(f.group != "preview" for f in default) and len(default) == len(mm.MANIFEST) - 2
    perf = mm.select(["performance"])
    assert [f.name for f in perf] == ["sdxl_lcm_lora.safetensors", "sdxl_lightning_4step_lora.safetensors",
                                      "sdxl_hyper_sd_4step_lora.safetensors"]
    two = mm.select(["inpaint_v26.fooocus.patch", "fooocus_inpaint_head.pth", "fooocus_inpaint_head.pth"])
    assert [f.name for f in two] == ["fooocus_inpaint_head.pth", "inpaint_v26.fooocus.patch"]  # manifest order
    assert len(mm.select(groups=["preview"])) == 2
    with pytest.raises(ValueError, match="groups"):
        mm.select(groups=["bogus"])


def test_required_files_default_request():
    names = [f.relpath for f in mm.required_files(_req())]
    assert names[:2] == ["checkpoints/juggernautXL_v8Rundiffusion.safetensors",
                         "loras/sd_xl_offset_example-lora_1.0.safetensors"]
    for n in ("inpaint/fooocus_inpaint_head.pth", "inpaint/inpaint_v26.fooocus.patch", "loras/sdxl_lcm_lora.safetensors",
              "prompt_expansion/fooocus_expansion/pytorch_model.bin", "styles/sdxl_styles_fooocus.json",
              "safety_checker/stable-diffusion-safety-checker.bin", "upscale_models/fooocus_upscaler_s409985e5.bin"):
        assert n in names
    assert not any("controlnet" in n or "clip_vision" in n or "realisticVision" in n for n in names)


def test_required_files_follow_the_request():
    minimal = _req(loras=[], styles=[], performance="Speed", enable_safety_checker=False,
                   inpaint_mode="Improve Detail (face, hand, eyes, etc.)")
    assert [f.name for f in mm.required_files(minimal)] == ["juggernautXL_v8Rundiffusion.safetensors",
                                                             "fooocus_upscaler_s409985e5.bin"]
    v25 = mm.required_files(_req(override_inpaint_options=True, inpaint_engine="v2.5", styles=["Fooocus V2"]))
    names = {f.name for f in v25}
    assert "inpaint_v25.fooocus.patch" in names and "inpaint_v26.fooocus.patch" not in names
    assert "tokenizer.json" in names and "sdxl_styles_fooocus.json" not in names
    rv = "realisticVisionV60B1_v51VAE.safetensors"
    assert rv in {f.name for f in mm.required_files(_req(performance="Quality", refiner_model=rv))}
    # Lightning forces refiner None
    assert rv not in {f.name for f in mm.required_files(_req(performance="Lightning", refiner_model=rv))}
    ips = _req(image_prompt_1={"type": "FaceSwap", "image_url": "f.png"}, image_prompt_2={"type": "PyraCanny"},
               image_prompt_3={"type": "CPDS", "image_url": "c.png"})
    names = {f.name for f in mm.required_files(ips)}
    assert {"ip-adapter-plus-face_sdxl_vit-h.bin", "detection_Resnet50_Final.pth", "clip_vision_vit_h.safetensors",
            "fooocus_xl_cpds_128.safetensors"} <= names
    assert "control-lora-canny-rank128.safetensors" not in names  # slot 2 has no image
    with pytest.raises(ValueError, match="req"):
        mm.required_files({"inpaint_image_url": "a.png"})


def test_missing_files(tmp_path):
    files = mm.select(["fooocus_inpaint_head.pth", "sdxl_lcm_lora.safetensors"])
    assert mm.missing_files(files, tmp_path) == files
    (tmp_path / "inpaint").mkdir()
    (tmp_path / "inpaint" / "fooocus_inpaint_head.pth").write_bytes(b"x" * 10)  # wrong size
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "sdxl_lcm_lora.safetensors").write_bytes(b"x")        # size unknown: accepted
    assert [f.name for f in mm.missing_files(files, tmp_path)] == ["fooocus_inpaint_head.pth"]
    (tmp_path / "inpaint" / "fooocus_inpaint_head.pth").write_bytes(b"x" * 52_602)
    assert mm.missing_files(files, tmp_path) == []


def test_missing_model_message():
    msg = mm.missing_model_message("inpaint_v26.fooocus.patch", ["/m/inpaint"])
    assert "'inpaint_v26.fooocus.patch'" in msg and "ComfyUI/models/inpaint/" in msg
    assert "download --only inpaint_v26.fooocus.patch" in msg and "searched: /m/inpaint" in msg
    assert "1,323,362,033 bytes" in msg and "huggingface.co/lllyasviel/fooocus_inpaint" in msg
    exp = mm.missing_model_message("fooocus_expansion.bin")
    assert "--only prompt_expansion/fooocus_expansion/pytorch_model.bin" in exp
    assert "models/prompt_expansion/fooocus_expansion/" in exp
    assert "not one of the files" in mm.missing_model_message("my_lora.safetensors")
    assert mm.missing_model_message(mm.by_name("xlvaeapp.pth")).startswith("Model file 'xlvaeapp.pth'")
