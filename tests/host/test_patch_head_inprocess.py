"""The inpaint patch and head on the real tiny SDXL model, in-process (ComfyUI imported here)."""
from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def tiny(inprocess_host):
    import nodes

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[:3]
    return model, clip, vae


def _pack():
    import sys

    mod = next(m for name, m in sys.modules.items() if name.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))
    return mod


_DATA = {}


def _data(vae):
    if "d" in _DATA:
        return _DATA["d"]
    pack = _pack()
    from PIL import Image

    img = np.asarray(Image.new("RGB", (96, 80), (120, 140, 90)))
    mask = np.zeros((80, 96), np.uint8)
    mask[30:50, 40:70] = 255
    cond = pack.nodes.inpaint_nodes.InpaintConditioning.execute(
        pack.nodes.convert.u8_to_image(img), pack.nodes.convert.u8_to_mask(mask), vae, 0.618, 1.0, "auto")
    _DATA["d"] = cond.result[0]
    return _DATA["d"]


def test_patch_changes_each_weight_by_exactly_the_decoded_delta(tiny):
    import comfy.model_management as mm

    pack = _pack()
    model, _, vae = tiny
    loaded = pack.nodes.loader_nodes.FooocusInpaintLoader.execute("fooocus_inpaint_head.pth", "inpaint_v26.fooocus.patch").result[0]
    original = {k: v.detach().clone() for k, v in model.model.state_dict().items()}
    patched = pack.nodes.patching.add_inpaint_patch(model, loaded.patch)
    mm.load_models_gpu([patched], force_full_load=True)
    after = patched.model.state_dict()
    decode = pack.engine.inpaint_patch.decode_delta
    n = 0
    for key, entry in loaded.patch.items():
        expect = (original[key].float() + decode(entry, "cpu")).to(original[key].dtype)
        assert torch.equal(after[key], expect), key
        n += 1
    assert n == len(loaded.patch) > 10
    untouched = [k for k in original if k not in loaded.patch and k.startswith("diffusion_model.")]
    assert untouched and all(torch.equal(after[k], original[k]) for k in untouched)
    # unpatching restores the shared weights exactly (other graphs see the plain model)
    mm.load_models_gpu([model], force_full_load=True)
    plain = model.model.state_dict()
    assert all(torch.equal(plain[k], original[k]) for k in original)


def test_head_feature_added_once_after_input_block_0(tiny):
    pack = _pack()
    model, _, vae = tiny
    loaded = pack.nodes.loader_nodes.FooocusInpaintLoader.execute("fooocus_inpaint_head.pth", "inpaint_v26.fooocus.patch").result[0]
    data = _data(vae)
    m = pack.nodes.patching.add_head_feature(model, loaded.head, data.latent_mask, data.latent_inpaint)
    unet = m.model.diffusion_model
    seen = {}
    # UNetModel calls the layers inside each input block directly, so hook the first layers
    hooks = [unet.input_blocks[0][0].register_forward_hook(lambda mod, i, o: seen.__setitem__("out0", o.detach().clone())),
             unet.input_blocks[1][0].register_forward_pre_hook(lambda mod, i: seen.__setitem__("in1", i[0].detach().clone()))]
    calls = []
    patch_fn = m.model_options["transformer_options"]["patches"]["input_block_patch"][0]

    def counting(h, to):
        calls.append(to["block"])
        return patch_fn(h, to)

    try:
        h, w = data.latent_fill.shape[-2:]
        x = torch.randn(2, 4, h, w)
        t = torch.tensor([500.0, 500.0])
        ctx = torch.randn(2, 77, 2048)
        y = torch.randn(2, 2816)
        with torch.no_grad():
            unet(x, timesteps=t, context=ctx, y=y,
                 transformer_options={"patches": {"input_block_patch": [counting]}})
    finally:
        for hk in hooks:
            hk.remove()
    feature = pack.engine.inpaint_head.head_feature(loaded.head, data.latent_mask, data.latent_inpaint)
    assert calls[0] == ("input", 0) and len(calls) == len(unet.input_blocks)
    assert torch.allclose(seen["in1"], seen["out0"] + feature, atol=1e-6)
    assert not torch.allclose(seen["in1"], seen["out0"])


def test_head_for_another_width_is_refused(tiny):
    pack = _pack()
    model, _, vae = tiny
    data = _data(vae)
    wrong = pack.engine.inpaint_patch
    head = torch.zeros(320, 5, 3, 3)
    bad = pack.nodes.types.FooocusInpaintPatch(head, {}, "v2.6", "x.pth", "y.patch")
    with pytest.raises(ValueError, match="320"):
        pack.nodes.inpaint_model.fooocus_inpaint_model(model, data, bad)
