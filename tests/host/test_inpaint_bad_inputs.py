"""Unusual and bad inputs through the real server: each gives a result or a clear error, and the
server stays healthy."""
from __future__ import annotations

import io
import pickle
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_host import PromptRejected
from inpaint_support import decode, far_from_mask, load_api_workflow, png_bytes, with_tiny


def graph_for(comfy, image: np.ndarray, mask: np.ndarray, name: str, steps: int = 1, **over) -> dict:
    comfy.upload(png_bytes(image), f"{name}.png")
    comfy.upload(png_bytes(mask), f"{name}_mask.png")
    return with_tiny(load_api_workflow("fooocus_inpaint_default"),
                     LoadImage={"image": f"{name}.png"}, LoadImageMask={"image": f"{name}_mask.png"},
                     FooocusInpaint_Sampler={"steps": steps, **over.pop("sampler", {})},
                     SaveImage={"filename_prefix": name}, **over)


def gradient(h: int, w: int, c: int = 3) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    chans = [(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 127 // max(h + w - 2, 1))]
    if c == 4:
        chans.append(np.where(x < w // 2, 255, 128))
    return np.stack(chans[:c], -1).astype(np.uint8)


def assert_healthy(comfy):
    assert comfy.get_json("/system_stats")["system"]["comfyui_version"]
    assert comfy.get_json("/queue")["queue_running"] == []


def test_empty_mask_returns_the_image_unchanged_fast(comfy):
    img = gradient(120, 160)
    t0 = time.monotonic()
    res = comfy.run(graph_for(comfy, img, np.zeros((120, 160), np.uint8), "empty", steps=30))
    assert res.status == "success", res.error
    assert time.monotonic() - t0 < 20
    assert np.array_equal(decode(res.images[0][2]), img)
    assert not [e for e, _ in res.events if e == "progress"], "sampled although nothing was to be repainted"


CASES = {
    # name: (image, mask)
    "one_pixel": (gradient(96, 128), np.pad(np.full((1, 1), 255, np.uint8), ((40, 55), (70, 57)))),
    "border_corner": (gradient(100, 100), np.pad(np.full((20, 30), 255, np.uint8), ((0, 80), (70, 0)))),
    "not_multiple_of_8": (gradient(75, 101), np.pad(np.full((20, 20), 255, np.uint8), ((30, 25), (40, 41)))),
    "tiny_16": (gradient(16, 16), np.pad(np.full((6, 6), 255, np.uint8), ((5, 5), (5, 5)))),
    "all_white": (gradient(64, 80), np.full((64, 80), 255, np.uint8)),
    "grey_jpeg_like": (gradient(90, 90), np.clip(np.pad(np.full((30, 30), 200, np.uint8), 30) + 7, 0, 255).astype(np.uint8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_geometry_cases_run_and_keep_far_pixels(comfy, name):
    img, mask = CASES[name]
    res = comfy.run(graph_for(comfy, img, mask, name))
    assert res.status == "success", res.error
    out = decode(res.images[0][2])
    assert out.shape == img.shape
    far = far_from_mask(mask)
    assert np.array_equal(out[far], img[far])


def test_rgba_image_and_greyscale_mask_files(comfy):
    rgba = gradient(64, 64, 4)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    comfy.upload(buf.getvalue(), "rgba.png")
    buf = io.BytesIO()
    Image.fromarray(np.pad(np.full((16, 16), 255, np.uint8), 24), "L").save(buf, format="PNG")
    comfy.upload(buf.getvalue(), "grey_mask.png")
    g = with_tiny(load_api_workflow("fooocus_inpaint_default"), LoadImage={"image": "rgba.png"},
                  LoadImageMask={"image": "grey_mask.png"}, FooocusInpaint_Sampler={"steps": 1})
    res = comfy.run(g)
    assert res.status == "success", res.error
    assert decode(res.images[0][2]).shape == (64, 64, 3)


def test_mask_of_another_size_is_resized(comfy):
    img = gradient(80, 120)
    small_mask = np.pad(np.full((10, 10), 255, np.uint8), ((15, 15), (25, 25)))  # 40 x 60: half size
    res = comfy.run(graph_for(comfy, img, small_mask, "resized_mask"))
    assert res.status == "success", res.error
    assert decode(res.images[0][2]).shape == img.shape


@pytest.mark.parametrize("node,field,value", [
    ("FooocusInpaint_InpaintConditioning", "respective_field", 1.5),
    ("FooocusInpaint_InpaintConditioning", "respective_field", -0.1),
    ("FooocusInpaint_InpaintConditioning", "strength", 2.0),
    ("FooocusInpaint_MaskErodeDilate", "amount", 65),
    ("FooocusInpaint_MaskErodeDilate", "amount", -100),
])
def test_out_of_range_values_are_rejected_before_running(comfy, node, field, value):
    g = graph_for(comfy, gradient(32, 32), np.pad(np.full((8, 8), 255, np.uint8), 12), "range", **{node: {field: value}})
    with pytest.raises(PromptRejected) as exc:
        comfy.queue_prompt(g)
    assert field in str(exc.value.body)
    assert_healthy(comfy)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/fooocus_inpaint_pwned",))


def _bad_files(inpaint_dir):
    (inpaint_dir / "truncated.fooocus.patch").write_bytes((inpaint_dir / "inpaint_v26.fooocus.patch").read_bytes()[:5000])
    (inpaint_dir / "not_a_model.patch").write_bytes(b"<html>404 not found</html>")
    with open(inpaint_dir / "evil.fooocus.patch", "wb") as f:
        pickle.dump({"diffusion_model.input_blocks.0.0.weight": _Evil()}, f)
    torch.save({"head": torch.zeros(320, 5, 3, 3)}, inpaint_dir / "head_320.pth")


@pytest.mark.parametrize("head,patch,match", [
    ("fooocus_inpaint_head.pth", "truncated.fooocus.patch", "truncated.fooocus.patch"),
    ("fooocus_inpaint_head.pth", "not_a_model.patch", "not_a_model.patch"),
    ("fooocus_inpaint_head.pth", "evil.fooocus.patch", "evil.fooocus.patch"),
    ("head_320.pth", "inpaint_v26.fooocus.patch", "320"),
])
def test_bad_model_files_give_clear_errors(comfy, comfy_server, head, patch, match):
    inpaint_dir = comfy_server.base_dir / "models" / "inpaint"
    if not (inpaint_dir / "evil.fooocus.patch").exists():
        _bad_files(inpaint_dir)
    import os

    if os.path.exists("/tmp/fooocus_inpaint_pwned"):
        os.remove("/tmp/fooocus_inpaint_pwned")
    g = graph_for(comfy, gradient(32, 32), np.pad(np.full((8, 8), 255, np.uint8), 12), "badfile",
                  FooocusInpaint_Loader={"head": head, "patch": patch})
    res = comfy.run(g)
    assert res.status == "error"
    msg = res.error.get("exception_message", "")
    assert match in msg, msg
    assert not os.path.exists("/tmp/fooocus_inpaint_pwned"), "pickle code was executed"
    assert_healthy(comfy)
