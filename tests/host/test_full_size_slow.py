"""Opt-in (--run-slow): the real SDXL UNet size. Builds ComfyUI's own full SDXL UNet (2.57 B
parameters, random bf16 weights), applies a uint8 patch with the real key set and shapes through
ModelPatcher, and checks that a 320-wide head feeds input block 0."""
from __future__ import annotations

import sys
import time

import pytest
import torch

pytestmark = pytest.mark.slow


def test_full_size_patch_and_head(inprocess_host):
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models

    pack = next(m for n, m in sys.modules.items() if n.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))
    t0 = time.monotonic()
    cfg = dict(comfy.supported_models.SDXL.unet_config)
    cfg.update({"use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
                "use_spatial_transformer": True, "legacy": False, "num_classes": "sequential",
                "num_res_blocks": [2, 2, 2], "channel_mult": [1, 2, 4], "transformer_depth_middle": 10,
                "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10], "num_head_channels": 64,
                "use_temporal_resblock": False})
    mc = comfy.supported_models.SDXL(cfg)
    mc.set_inference_dtype(torch.bfloat16, None)
    base = mc.get_model({})
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in base.diffusion_model.parameters():
            p.copy_((torch.randn(p.shape, generator=gen) * 0.02).to(p.dtype))
    model = comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
    n_params = sum(p.numel() for p in base.diffusion_model.parameters())
    assert n_params > 2.5e9
    t_build = time.monotonic() - t0

    shapes = {k: tuple(v.shape) for k, v in base.state_dict().items() if k.startswith("diffusion_model.")}
    patch = pack.engine.inpaint_patch.make_random_patch(shapes, seed=1)
    matched, unmatched = pack.engine.inpaint_patch.match_keys(patch.keys(), base.state_dict().keys())
    assert unmatched == [] and len(matched) == len(shapes)
    probe = "diffusion_model.input_blocks.0.0.weight"
    before = base.state_dict()[probe].float().clone()
    t1 = time.monotonic()
    patched = pack.nodes.patching.add_inpaint_patch(model, patch)
    mm.load_models_gpu([patched], force_full_load=True)
    t_patch = time.monotonic() - t1
    expect = (before + pack.engine.inpaint_patch.decode_delta(patch[probe], "cpu")).to(torch.bfloat16)
    assert torch.equal(base.state_dict()[probe], expect)
    del patch, patched

    head = pack.engine.inpaint_head.make_random_head(320, seed=2)
    pack.engine.inpaint_head.check_head_width(head, 320)
    h = w = 32
    lmask = torch.zeros(1, 1, h, w)
    lmask[..., 8:24, 8:24] = 1
    lat = torch.randn(1, 4, h, w, generator=gen)
    m = pack.nodes.patching.add_head_feature(model, head, lmask, lat)
    fn = m.model_options["transformer_options"]["patches"]["input_block_patch"][0]
    unet = base.diffusion_model
    seen = {}
    hooks = [unet.input_blocks[0][0].register_forward_hook(lambda mod, i, o: seen.__setitem__("out0", o.float())),
             unet.input_blocks[1][0].register_forward_pre_hook(lambda mod, i: seen.__setitem__("in1", i[0].float()))]
    try:
        with torch.no_grad():
            unet(torch.randn(1, 4, h, w).to(torch.bfloat16), timesteps=torch.tensor([500.0]),
                 context=torch.randn(1, 77, 2048).to(torch.bfloat16), y=torch.randn(1, 2816).to(torch.bfloat16),
                 transformer_options={"patches": {"input_block_patch": [fn]}})
    finally:
        for hk in hooks:
            hk.remove()
    feat = pack.engine.inpaint_head.head_feature(head.to(torch.bfloat16), lmask.to(torch.bfloat16), lat.to(torch.bfloat16))
    assert seen["out0"].shape[1] == 320
    assert torch.allclose(seen["in1"], (seen["out0"].to(torch.bfloat16) + feat).float(), atol=1e-2)
    print(f"\nfull-size: build+init {t_build:.1f}s, {len(shapes)} keys / {n_params / 1e9:.2f} B params, "
          f"patch apply {t_patch:.1f}s, total {time.monotonic() - t0:.1f}s")
