"""Fooocus's ESRGAN file layout loads and is used for small crops."""
from __future__ import annotations

import numpy as np

from inpaint_support import decode, far_from_mask, load_api_workflow, png_bytes, with_tiny


def test_fooocus_upscaler_loads_and_runs_in_inpaint(comfy):
    img = np.zeros((96, 96, 3), np.uint8)
    img[..., 0] = np.arange(96, dtype=np.uint8)[None] * 2
    mask = np.zeros((96, 96), np.uint8)
    mask[40:56, 40:56] = 255
    comfy.upload(png_bytes(img), "ups.png")
    comfy.upload(png_bytes(mask), "ups_mask.png")
    g = with_tiny(load_api_workflow("fooocus_inpaint_default"), LoadImage={"image": "ups.png"},
                  LoadImageMask={"image": "ups_mask.png"}, FooocusInpaint_Sampler={"steps": 1})
    g["90"] = {"class_type": "FooocusInpaint_UpscalerLoader", "inputs": {"model_name": "fooocus_upscaler_s409985e5.bin"}}
    cond = next(k for k, v in g.items() if v["class_type"] == "FooocusInpaint_InpaintConditioning")
    g[cond]["inputs"]["upscale_model"] = ["90", 0]
    res = comfy.run(g)
    assert res.status == "success", res.error
    out = decode(res.images[0][2])
    far = far_from_mask(mask)
    assert np.array_equal(out[far], img[far])


def test_small_crops_go_through_the_upscaler(inprocess_host):
    import sys

    pack = next(m for n, m in sys.modules.items() if n.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))
    model = pack.nodes.upscaler_nodes.FooocusUpscalerLoader.execute("fooocus_upscaler_s409985e5.bin").result[0]
    assert model.scale == 4 and model.architecture.name == "ESRGAN"
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    prep = pack.engine.inpaint_prep.prepare_inpaint
    plain = prep(img, mask, 0.0, False, upscale=None)
    ups = prep(img, mask, 0.0, False, upscale=pack.nodes.inpaint_nodes._upscaler(model))
    assert plain.upscaler_called and ups.upscaler_called
    assert plain.interested_image.shape == ups.interested_image.shape
    assert not np.array_equal(plain.interested_image, ups.interested_image)
