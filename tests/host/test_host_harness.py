"""The harness itself: a real ComfyUI server and the in-process executor on the tiny SDXL."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def txt2img_graph(seed: int = 7, size: int = 64, steps: int = 4, prefix: str = "harness") -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sdxl.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red apple on a table", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_http_txt2img_on_tiny_sdxl(comfy):
    res = comfy.run(txt2img_graph(seed=7))
    assert res.status == "success", res.error
    assert res.progress() == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(res.images) == 1
    px = _pixels(res.images[0][2])
    assert px.shape == (64, 64, 3)
    assert px.std() > 1.0, "image is constant"
    # deterministic for a fixed seed, different for another
    again = _pixels(comfy.run(txt2img_graph(seed=7, prefix="again")).images[0][2])
    assert np.array_equal(px, again)
    other = _pixels(comfy.run(txt2img_graph(seed=8, prefix="other")).images[0][2])
    assert not np.array_equal(px, other)


def test_tiny_checkpoint_is_the_sdxl_code_path(inprocess_host):
    import comfy.model_base
    import nodes

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[:3]
    assert type(model.model) is comfy.model_base.SDXL
    (cond,) = nodes.CLIPTextEncode().encode(clip, "a photo")
    assert cond[0][0].shape == (1, 77, 2048)
    assert cond[0][1]["pooled_output"].shape == (1, 1280)
    adm = model.model.encode_adm(pooled_output=cond[0][1]["pooled_output"], width=64, height=64)
    assert adm.shape == (1, 2816)
    (latent,) = nodes.EmptyLatentImage().generate(64, 64, 1)
    assert latent["samples"].shape == (1, 4, 8, 8)
    img = vae.decode(latent["samples"])
    assert img.shape[-3:] == (64, 64, 3)


def test_inprocess_matches_http(comfy, inprocess_host):
    outputs = inprocess_host.run(txt2img_graph(seed=7, prefix="inproc"))
    info = outputs["7"]["images"][0]
    import folder_paths

    from pathlib import Path

    local = _pixels(Path(folder_paths.get_output_directory(), info["subfolder"], info["filename"]).read_bytes())
    remote = _pixels(comfy.run(txt2img_graph(seed=7, prefix="remote")).images[0][2])
    assert np.array_equal(local, remote)


def test_server_lists_pack_and_model_folders(comfy):
    info = comfy.object_info()
    assert "CheckpointLoaderSimple" in info
    stats = comfy.get_json("/system_stats")
    assert stats["system"]["comfyui_version"] == "0.3.75"
