"""engine.fal_graph against a real ComfyUI server: built graphs validate against /object_info, and the fal page's
example request (and a text-to-image request) run end to end on the tiny models."""
from __future__ import annotations

import random
import shutil

import numpy as np
import pytest

from conftest import FOOOCUS_DATA
from engine import fal_graph as fg
from engine.masks import threshold_upload_mask
from engine.request import parse_request, resolve_seed
from inpaint_support import TINY_CKPT, TINY_SD15, WORKFLOWS, decode, far_from_mask, png_bytes, with_tiny

IMAGE = (WORKFLOWS / "input" / "fooocus_inpaint_example.png").read_bytes()
MASK = (WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png").read_bytes()
IMAGE_URL = "https://storage.googleapis.com/falserverless/model_tests/fooocus/fooocus_inpaint_image.png"
MASK_URL = "https://storage.googleapis.com/falserverless/model_tests/fooocus/fooocus_inpaint_mask.png"
RV = "realisticVisionV60B1_v51VAE.safetensors"
TINY = fg.ModelNames(checkpoint=TINY_CKPT, loras={"b.safetensors": "tiny_style_lora.safetensors"},
                     refiners={RV: TINY_SD15})
IP_URL = "https://example.com/ip.png"
FOUR_PROMPTS = {"mixing_image_prompt_and_inpaint": True,
                "image_prompt_1": {"image_url": IP_URL, "type": "PyraCanny"},
                "image_prompt_2": {"image_url": IP_URL, "type": "ImagePrompt", "weight": 0.6},
                "image_prompt_3": {"image_url": IP_URL, "type": "CPDS", "stop_at": 0.4},
                "image_prompt_4": {"image_url": IP_URL, "type": "FaceSwap", "weight": 0.75, "stop_at": 0.9}}

# Requests covering every graph shape and every non-default widget value the builder can emit.
VARIANTS = [
    {},
    {"mask_image_url": None},                                           # text-to-image
    {"mask_image_url": None, "num_images": 3, "aspect_ratio": "1152x896"},
    {"mask_image_url": None, "outpaint_selections": ["Left", "Right", "Top", "Bottom"]},
    {"mask_image_url": None, "invert_mask": True},
    {"inpaint_mode": "Improve Detail (face, hand, eyes, etc.)"},
    {"inpaint_mode": "Modify Content (add objects, change background, etc.)"},
    {"override_inpaint_options": True, "inpaint_engine": "v1", "inpaint_strength": 0.3,
     "inpaint_respective_field": 0.0, "inpaint_erode_or_dilate": -64, "inpaint_disable_initial_latent": True},
    {"override_inpaint_options": True, "inpaint_engine": "v2.5", "inpaint_erode_or_dilate": 64},
    {"override_inpaint_options": True, "inpaint_engine": "None"},
    {"performance": "Speed", "guidance_scale": 30, "sharpness": 30, "num_images": 4, "output_format": "webp"},
    {"performance": "Quality", "guidance_scale": 1, "sharpness": 0, "output_format": "png"},
    {"performance": "Lightning", "refiner_model": RV, "refiner_switch": 0.1},
    {"performance": "Hyper-SD", "enable_safety_checker": False, "sync_mode": True, "seed": 2**63 - 1},
    {"loras": [{"path": "/x/b.safetensors", "scale": 2}, {"path": "sdxl_lcm_lora.safetensors", "scale": -2},
               *[{"path": "tiny_style_lora.safetensors", "scale": 0.5}] * 3]},
    {"loras": [], "styles": [], "prompt": "(cat:1.3)\nsecond line", "negative_prompt": "blurry",
     "inpaint_additional_prompt": "detailed face"},
    {"image_prompt_1": {"image_url": "https://x/ip.png", "type": "FaceSwap"}},  # ignored without mixing
    {"performance": "Speed", "refiner_model": RV, "refiner_switch": 0.6},
    {"performance": "Quality", "refiner_model": RV, "num_images": 2, **FOUR_PROMPTS},
    {**FOUR_PROMPTS, "num_images": 2},
    {**FOUR_PROMPTS, "mask_image_url": None, "aspect_ratio": "1152x896"},  # text-to-image with image prompts
]


def _req(fields: dict):
    data = {"inpaint_image_url": IMAGE_URL, "mask_image_url": MASK_URL, **fields}
    return parse_request({k: v for k, v in data.items() if v is not None})


@pytest.fixture(scope="module")
def served(comfy_server):
    """The client, with the example image/mask uploaded and Fooocus's style files in models/styles."""
    comfy = comfy_server.client()
    image = comfy.upload(IMAGE, "fal_example.png")
    mask = comfy.upload(MASK, "fal_example_mask.png")
    rng = np.random.default_rng(3)
    ip = np.zeros((96, 128, 3), np.uint8)
    ip[:] = rng.integers(40, 200, 3)
    ip[20:70, 30:90] = rng.integers(0, 255, 3)
    ip[::9] = 255
    comfy.upload(png_bytes(ip), "fal_ip.png")
    styles = FOOOCUS_DATA / "sdxl_styles"
    if styles.is_dir():
        for f in styles.glob("*.json"):
            shutil.copyfile(f, comfy_server.base_dir / "models" / "styles" / f.name)
    return comfy, image, mask


@pytest.fixture(scope="module")
def object_info(served):
    return served[0].object_info()  # after the uploads, so LoadImage lists them


@pytest.mark.parametrize("fields", VARIANTS, ids=[",".join(sorted(v)) or "default" for v in VARIANTS])
def test_built_graph_validates_against_object_info(served, object_info, fields):
    _, image, mask = served
    req = _req(fields)
    inputs = fg.GraphInputs(image=image, mask=mask if req.mask_image_url else None,
                            image_prompts={i: "fal_ip.png" for i in fg.image_prompts_used(req)})
    api = fg.build_graph(req, inputs, seed=resolve_seed(req, random.Random(0)), models=TINY)
    assert fg.check_against_object_info(api, object_info) == []


def test_mask_from_upload_node_is_fooocus_upload_path(inprocess_host):
    """Mask From Upload = engine.masks.threshold_upload_mask (LANCZOS to the image size, mean RGB > 127)."""
    import sys

    import torch

    pack = next(m for name, m in sys.modules.items()
                if name.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))
    node = pack.nodes.fal_nodes.MaskFromUpload
    rng = np.random.default_rng(5)
    upload = (rng.random((37, 53, 3)) * 255).astype(np.uint8)
    image = torch.zeros((1, 80, 120, 3))
    (out,) = node.execute(image, torch.from_numpy(upload).float()[None] / 255).result
    expected = threshold_upload_mask(upload, 80, 120)
    assert out.shape == (1, 80, 120) and np.array_equal((out[0].numpy() * 255).round().astype(np.uint8), expected)
    assert 0 < expected.mean() < 255
    (empty,) = node.execute(image).result
    assert empty.shape == (1, 80, 120) and not empty.any()
    with pytest.raises(ValueError, match="mask_image"):
        node.execute(image, torch.zeros((80, 120)))


def _fal_like_response(out: dict) -> dict:
    from engine.request import ImageResult, build_response

    images = [ImageResult(url=f"file://{i['file_name']}", **{k: i[k] for k in ("content_type", "file_name",
                                                                                "file_size", "width", "height")})
              for i in out["image_info"]]
    return build_response(images, {"inference": 0.0}, out["has_nsfw_concepts"])


def test_fal_page_example_runs_end_to_end(served):
    """The fal page's example (prompt, image + mask, seed 176400, everything else default: Extreme Speed 8 steps,
    styles with Fooocus V2, offset LoRA, engine v2.6, safety checker on, jpeg) on the tiny models."""
    comfy, image, mask = served
    if not (FOOOCUS_DATA / "sdxl_styles").is_dir():
        pytest.skip(f"Fooocus style files not found under {FOOOCUS_DATA} (the default styles need them)")
    req = parse_request({"prompt": "a cozy wooden cabin, detailed, sharp focus", "inpaint_image_url": IMAGE_URL,
                         "mask_image_url": MASK_URL, "seed": 176400})
    api = fg.build_graph(req, fg.GraphInputs(image=image, mask=mask), seed=resolve_seed(req), models=TINY)
    res = comfy.run(api, timeout=600)
    assert res.status == "success", res.error
    out = res.history["outputs"][fg.SAVE_NODE_ID]
    assert out["has_nsfw_concepts"] == [False]
    assert out["output_format"] == ["jpeg"]
    resp = _fal_like_response(out)
    assert resp["has_nsfw_concepts"] == [False] and len(resp["images"]) == 1
    img_info = resp["images"][0]
    assert img_info["content_type"] == "image/jpeg"
    src = decode(IMAGE)
    assert (img_info["width"], img_info["height"]) == (src.shape[1], src.shape[0])
    (node_id, _, data), = res.images
    assert node_id == fg.SAVE_NODE_ID and len(data) == img_info["file_size"]
    assert res.progress()[-1] == (8, 8)  # Extreme Speed: 8 steps
    out_img = decode(data)
    m = threshold_upload_mask(decode(MASK), src.shape[0], src.shape[1])
    far = far_from_mask(m, distance=40)  # jpeg blocks reach a few pixels further than the 32 px blend
    assert far.any() and (~far).any()
    err_far = np.abs(out_img[far].astype(int) - src[far].astype(int)).mean()
    err_near = np.abs(out_img[m > 127].astype(int) - src[m > 127].astype(int)).mean()
    assert err_far < 3.0, "pixels far from the mask changed beyond jpeg noise"
    assert err_near > err_far + 5, "the masked area was not repainted"


def test_text_to_image_request_runs_end_to_end(served):
    """No mask, no outpaint: Fooocus generates at aspect_ratio; two images (seed, seed+1), png, checker off."""
    comfy, image, _ = served
    req = parse_request({"inpaint_image_url": IMAGE_URL, "styles": [], "prompt": "a red barn",
                         "aspect_ratio": "256x192", "num_images": 2, "output_format": "png",
                         "enable_safety_checker": False, "performance": "Lightning", "seed": 3})
    api = fg.build_graph(req, fg.GraphInputs(image=image), seed=3, models=TINY)
    res = comfy.run(api, timeout=600)
    assert res.status == "success", res.error
    out = res.history["outputs"][fg.SAVE_NODE_ID]
    assert out["has_nsfw_concepts"] == [False, False]
    assert [(i["width"], i["height"], i["content_type"]) for i in out["image_info"]] == [(256, 192, "image/png")] * 2
    a, b = (decode(d) for _, _, d in res.images)
    assert a.shape == (192, 256, 3) and not np.array_equal(a, b)


def _repainted_keeping_far_pixels(res, n_images: int = 1):
    assert res.status == "success", res.error
    src = decode(IMAGE)
    m = threshold_upload_mask(decode(MASK), src.shape[0], src.shape[1])
    far = far_from_mask(m)
    outs = [decode(d) for _, _, d in res.images]
    assert len(outs) == n_images
    for out in outs:
        assert out.shape == src.shape
        assert np.array_equal(out[far], src[far]), "pixels far from the mask changed"
        assert not np.array_equal(out[m > 127], src[m > 127]), "the masked area was not repainted"
    return outs


def test_sd15_refiner_request_runs_end_to_end(served):
    """refiner_model realisticVision (the tiny SD1.5 here) with Speed: VAE swap after round(4 x 0.5) = 2 base
    steps (steps overridden to 4 to keep it cheap), png, no styles (no Fooocus style files needed)."""
    comfy, image, mask = served
    req = parse_request({"prompt": "a red barn", "inpaint_image_url": IMAGE_URL, "mask_image_url": MASK_URL,
                         "performance": "Speed", "refiner_model": RV, "refiner_switch": 0.5, "styles": [],
                         "output_format": "png", "seed": 11})
    api = fg.build_graph(req, fg.GraphInputs(image=image, mask=mask), seed=11, models=TINY)
    assert sum(n["class_type"] == "FooocusInpaint_SamplerSD15Refiner" for n in api.values()) == 1
    res = comfy.run(with_tiny(api, FooocusInpaint_Performance={"steps_override": 4}), timeout=600)
    _repainted_keeping_far_pixels(res)
    assert res.history["outputs"][fg.SAVE_NODE_ID]["output_format"] == ["png"]


def test_four_mixed_image_prompts_request_runs_end_to_end(served):
    """mixing_image_prompt_and_inpaint with PyraCanny + CPDS (ControlNets at the working size) and ImagePrompt +
    FaceSwap (IP-Adapters; CLIPVisionLoader swapped for the tiny loader), Lightning (4 steps)."""
    pytest.importorskip("cv2", reason="opencv-python-headless is needed by the PyraCanny/CPDS preprocessors")
    comfy, image, mask = served
    req = parse_request({"prompt": "a red barn", "inpaint_image_url": IMAGE_URL, "mask_image_url": MASK_URL,
                         "performance": "Lightning", "styles": [], "seed": 5, "output_format": "png",
                         **FOUR_PROMPTS})
    inputs = fg.GraphInputs(image=image, mask=mask, image_prompts={i: "fal_ip.png" for i in range(1, 5)})
    api = with_tiny(fg.build_graph(req, inputs, seed=5, models=TINY))
    types = [n["class_type"] for n in api.values()]
    assert types.count("FooocusInpaint_ImagePromptControlNet") == 2
    assert types.count("FooocusInpaint_ImagePromptIPAdapter") == 2 and "TinyCLIPVisionLoader" in types
    res = comfy.run(api, timeout=600)
    _repainted_keeping_far_pixels(res)
