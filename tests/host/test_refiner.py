"""Fooocus Refiner (joint swap) on the tiny models, in-process; one end-to-end inpaint run."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from inpaint_support import WORKFLOWS, decode, far_from_mask, load_api_workflow, with_tiny

STEPS = 6


def _pack():
    return next(m for name, m in sys.modules.items()
                if name.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))


@pytest.fixture(scope="module")
def tiny(inprocess_host):
    import nodes

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[:3]
    return model, clip, vae


@pytest.fixture(scope="module")
def other_sdxl(inprocess_host):
    import nodes

    return nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl_refiner.safetensors")[0]


@pytest.fixture(scope="module")
def same_weights_copy(inprocess_host):
    """The base checkpoint loaded a second time: its own BaseModel with identical weights."""
    import comfy.sd
    import folder_paths

    path = folder_paths.get_full_path("checkpoints", "tiny_sdxl.safetensors")
    return comfy.sd.load_checkpoint_guess_config(path, output_vae=False, output_clip=False)[0]


@pytest.fixture(scope="module")
def sdxl_refiner_model(inprocess_host):
    """A tiny real ``SDXLRefiner`` (1280-wide cross-attention, 2560-wide ADM), random weights."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models
    import tiny_models
    from tiny_sdxl_ext import TINY_UNET_FULL_CONFIG

    cfg = {**TINY_UNET_FULL_CONFIG, "context_dim": 1280, "adm_in_channels": 2560}
    mc = comfy.supported_models.SDXLRefiner(cfg)
    mc.set_inference_dtype(torch.float32, None)
    bm = mc.get_model({})
    tiny_models._randomize(bm.diffusion_model, 9)
    with torch.no_grad():
        bm.diffusion_model.out[2].weight.mul_(0.2)
    return comfy.model_patcher.ModelPatcher(bm, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


@pytest.fixture(scope="module")
def conds(tiny):
    import nodes

    clip = tiny[1]
    pos = nodes.CLIPTextEncode().encode(clip, "a red house")[0]
    neg = nodes.CLIPTextEncode().encode(clip, "blurry")[0]
    return pos, neg


def _sample(model, conds, sampler="dpmpp_2m_sde_gpu", seed=7, steps=STEPS, latent=None):
    import comfy.sample

    latent = torch.zeros(1, 4, 8, 8) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, 4.0, sampler, "karras", conds[0], conds[1], latent,
                               denoise=1.0, disable_pbar=True, seed=seed)


class _Counter:
    """Counts UNet forwards per BaseModel and records what each one saw."""

    def __init__(self, **models):
        self.calls = []
        self.handles = []
        for name, mp in models.items():
            self.handles.append(mp.model.diffusion_model.register_forward_pre_hook(self._hook(name), with_kwargs=True))

    def _hook(self, name):
        def hook(module, args, kwargs):
            to = kwargs.get("transformer_options", {})
            ctx = kwargs.get("context")
            y = kwargs.get("y")
            self.calls.append({"model": name, "patches": set(to.get("patches", {})), "ibp": list(to.get("patches", {}).get("input_block_patch", [])),
                               "context": None if ctx is None else ctx.detach().clone(),
                               "y": None if y is None else y.detach().clone(),
                               "conv_in": float(module.input_blocks[0][0].weight.detach().double().sum())})
        return hook

    def names(self):
        return [c["model"] for c in self.calls]

    def close(self):
        for h in self.handles:
            h.remove()


# -- switch position ------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler,switch,expect", [
    ("dpmpp_2m_sde_gpu", 0.5, (4, 2)),     # 1 eval per step: base steps 0..3, refiner 4..5
    ("dpmpp_2m_sde_gpu", 0.8, (6, 0)),     # round(4.8) = 5: refiner would start after the last step
    ("dpmpp_2m_sde_gpu", 0.3, (3, 3)),     # round(1.8) = 2
    ("heun", 0.5, (7, 4)),                 # 2 evals per step (1 on the last): base 3*2 + 1, refiner 2*2
])
def test_switch_happens_after_the_callback_of_step_k(tiny, other_sdxl, conds, sampler, switch, expect):
    refiner = _pack().nodes.refiner
    m = refiner.add_refiner(tiny[0], other_sdxl, switch)
    c = _Counter(base=tiny[0], refiner=other_sdxl)
    try:
        _sample(m, conds, sampler)
    finally:
        c.close()
    names = c.names()
    assert (names.count("base"), names.count("refiner")) == expect
    assert names == ["base"] * expect[0] + ["refiner"] * expect[1]


def test_refiner_is_loaded_with_the_base_as_an_additional_model(tiny, other_sdxl):
    refiner = _pack().nodes.refiner
    m = refiner.add_refiner(tiny[0], other_sdxl, 0.5)
    assert refiner.has_refiner(m) and not refiner.has_refiner(tiny[0])
    assert refiner.attached_refiner(m) is other_sdxl
    assert refiner.attached_refiner(m.clone()) is not None
    same = refiner.add_refiner(tiny[0], tiny[0].clone(), 0.5)
    assert refiner.attached_refiner(same) is None  # a clone sharing the BaseModel is loaded only at the switch


@pytest.mark.parametrize("sampler", ["dpmpp_2m_sde_gpu", "heun"])
def test_switch_to_identical_model_is_bit_identical(tiny, same_weights_copy, conds, sampler):
    refiner = _pack().nodes.refiner
    plain = _sample(tiny[0], conds, sampler)
    via_clone = _sample(refiner.add_refiner(tiny[0], tiny[0].clone(), 0.5), conds, sampler)
    via_copy = _sample(refiner.add_refiner(tiny[0], same_weights_copy, 0.5), conds, sampler)
    assert torch.equal(plain, via_clone)
    assert torch.equal(plain, via_copy)


def test_other_refiner_changes_the_result_and_switch_1_is_off(tiny, other_sdxl, conds):
    refiner = _pack().nodes.refiner
    plain = _sample(tiny[0], conds)
    assert not torch.equal(plain, _sample(refiner.add_refiner(tiny[0], other_sdxl, 0.5), conds))
    assert torch.equal(plain, _sample(refiner.add_refiner(tiny[0], other_sdxl, 1.0), conds))


def test_sdxl_refiner_gets_clip_g_context_and_its_own_adm(tiny, sdxl_refiner_model, conds):
    refiner = _pack().nodes.refiner
    assert refiner.refiner_kind(tiny[0], sdxl_refiner_model) == refiner.KIND_SDXL_REFINER
    m = refiner.add_refiner(tiny[0], sdxl_refiner_model, 0.5)
    c = _Counter(base=tiny[0], refiner=sdxl_refiner_model)
    try:
        out = _sample(m, conds)
    finally:
        c.close()
    assert torch.isfinite(out).all()
    base_calls = [x for x in c.calls if x["model"] == "base"]
    ref_calls = [x for x in c.calls if x["model"] == "refiner"]
    assert len(base_calls) == 4 and len(ref_calls) == 2
    assert base_calls[0]["context"].shape[-1] == 2048 and base_calls[0]["y"].shape[-1] == 2816
    ctx, y = ref_calls[0]["context"], ref_calls[0]["y"]
    assert ctx.shape[-1] == 1280 and y.shape[-1] == 2560
    # batch order in ComfyUI: the cond/uncond chunks; every row is the last 1280 dims of one of the SDXL conds
    full = [conds[0][0][0], conds[1][0][0]]
    for row in ctx:
        assert any(torch.equal(row, f[0, :, -1280:].to(row)) for f in full)
    # ADM: pooled (1280) + 5 x 256 size/aesthetic embeddings; positive 6 vs negative 2.5 differ
    ms = sdxl_refiner_model.model
    expect = {prompt: ms.encode_adm(pooled_output=cc[0][1]["pooled_output"], width=64, height=64,
                                    prompt_type=prompt) for prompt, cc in (("positive", conds[0]), ("negative", conds[1]))}
    rows = {tuple(r.tolist()) for r in y}
    assert rows == {tuple(v[0].tolist()) for v in expect.values()}


def test_real_refiner_replaces_the_synthetic_one_and_never_has_the_inpaint_patch(tiny, other_sdxl, conds):
    """Inpaint model (patch + head + synthetic refiner) on top of / under the Fooocus Refiner MODEL."""
    pack = _pack()
    g = torch.Generator().manual_seed(4)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 3:7] = 1.0
    data = pack.nodes.types.FooocusInpaintData(prep=None, active=True, latent_fill=torch.randn(1, 4, 8, 8, generator=g),
                                               latent_inpaint=torch.randn(1, 4, 8, 8, generator=g), latent_mask=mask)
    patch = pack.nodes.loader_nodes.FooocusInpaintLoader.execute("fooocus_inpaint_head.pth",
                                                                 "inpaint_v26.fooocus.patch").result[0]
    base_conv = float(tiny[0].model.diffusion_model.input_blocks[0][0].weight.detach().double().sum())
    ref_conv = float(other_sdxl.model.diffusion_model.input_blocks[0][0].weight.detach().double().sum())
    latent = data.latent_fill
    for order in ("refiner_first", "inpaint_first"):
        if order == "refiner_first":
            m = pack.nodes.inpaint_model.fooocus_inpaint_model(pack.nodes.refiner.add_refiner(tiny[0], other_sdxl, 0.5),
                                                               data, patch, 0.8)
        else:
            m = pack.nodes.refiner.add_refiner(pack.nodes.inpaint_model.fooocus_inpaint_model(tiny[0], data, patch, 0.8),
                                               other_sdxl, 0.5)
        c = _Counter(base=tiny[0], refiner=other_sdxl)
        try:
            out = _sample(m, conds, latent=latent)
        finally:
            c.close()
        assert torch.isfinite(out).all()
        assert c.names() == ["base"] * 4 + ["refiner"] * 2, order  # not the synthetic refiner at 0.8
        for call in c.calls:
            if call["model"] == "base":
                assert len(call["ibp"]) == 1 and call["conv_in"] != pytest.approx(base_conv, abs=0)  # head + patch
            else:
                assert call["patches"] == set() and call["conv_in"] == ref_conv  # no head, no patch
    # the base weights are restored for other graphs
    import comfy.model_management

    comfy.model_management.unload_all_models()
    assert float(tiny[0].model.diffusion_model.input_blocks[0][0].weight.detach().double().sum()) == base_conv


def test_plain_model_unaffected(tiny, other_sdxl, conds):
    refiner = _pack().nodes.refiner
    before = _sample(tiny[0], conds)
    _sample(refiner.add_refiner(tiny[0], other_sdxl, 0.5), conds)
    assert torch.equal(before, _sample(tiny[0], conds))
    assert not refiner.has_refiner(tiny[0])
    assert refiner.REFINER_KEY not in tiny[0].additional_models


def test_bad_inputs(tiny, other_sdxl):
    pack = _pack()
    refiner = pack.nodes.refiner
    with pytest.raises(ValueError, match="refiner_switch"):
        refiner.add_refiner(tiny[0], other_sdxl, 1.5)
    with pytest.raises(ValueError, match="refiner_switch"):
        pack.nodes.refiner_nodes.FooocusRefiner.execute(tiny[0], other_sdxl, -0.1)
    with pytest.raises(ValueError, match="refiner: expected a MODEL"):
        refiner.add_refiner(tiny[0], "juggernaut", 0.5)
    with pytest.raises(ValueError, match="SD1.5"):
        import comfy.latent_formats
        import comfy.model_base

        fake = tiny[0].clone()
        fake.model = comfy.model_base.BaseModel.__new__(comfy.model_base.BaseModel)
        fake.model.latent_format = comfy.latent_formats.SD15()
        refiner.add_refiner(tiny[0], fake, 0.5)


def test_inpaint_graph_with_refiner_node_keeps_far_pixels(inprocess_host):
    import folder_paths
    import shutil

    for name in ("fooocus_inpaint_example.png", "fooocus_inpaint_example_mask.png"):
        shutil.copy(WORKFLOWS / "input" / name, folder_paths.get_input_directory())
    graph = with_tiny(load_api_workflow("fooocus_inpaint_default"), FooocusInpaint_Sampler={"steps": 4})
    graph["20"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sdxl_refiner.safetensors"}}
    graph["21"] = {"class_type": "FooocusInpaint_Refiner",
                   "inputs": {"model": ["1", 0], "refiner": ["20", 0], "refiner_switch": 0.5}}
    graph["10"]["inputs"]["model"] = ["21", 0]
    out = inprocess_host.run(graph)
    img = out["11"]["images"][0]
    result = decode((__import__("pathlib").Path(folder_paths.get_output_directory()) / img["subfolder"] / img["filename"]).read_bytes())
    image = decode((WORKFLOWS / "input" / "fooocus_inpaint_example.png").read_bytes())
    mask = decode((WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png").read_bytes())[..., 0]
    far = far_from_mask(mask)
    assert result.shape == image.shape
    assert np.array_equal(result[far], image[far])
    assert not np.array_equal(result[~far], image[~far])


# -- SD1.5 refiner (VAE swap) ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def sd15(inprocess_host):
    import tiny_sd15_ext  # noqa: F401  registers the tiny SD1.5 config with ComfyUI's model detection
    import nodes

    return nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sd15.safetensors")[:3]


@pytest.mark.parametrize("steps,switch,denoise,plan", [
    (30, 24, 1.0, "vae_swap"), (30, 24, 0.91, "vae_swap"), (30, 24, 0.9, "base_only"),
    (30, 24, 0.27, "base_only"), (30, 24, 0.26, "refiner_only"),   # (6/30)^0.834 = 0.2616
    (30, 30, 0.05, "base_only"), (4, 2, 0.5, "refiner_only"),       # (2/4)^0.834 = 0.561
])
def test_sd15_plan(inprocess_host, steps, switch, denoise, plan):
    assert _pack().nodes.refiner.sd15_plan(steps, switch, denoise) == plan


def test_sd15_conditioning_is_clip_l_through_final_layer_norm(tiny, conds):
    refiner = _pack().nodes.refiner
    out = refiner.sd15_conditioning(conds[0], tiny[1])
    c, d = conds[0][0]
    norm = tiny[1].cond_stage_model.clip_l.transformer.text_model.final_layer_norm
    expect = torch.nn.functional.layer_norm(c[..., :768].float(), (768,), norm.weight.float(), norm.bias.float(), norm.eps)
    assert out[0][0].shape == (1, 77, 768) and torch.equal(out[0][0], expect)
    assert "pooled_output" not in out[0][1] and "pooled_output" in d
    with pytest.raises(ValueError, match="clip"):
        refiner.sd15_conditioning(conds[0], object())


def test_vae_swap_runs_base_then_sd15_with_scaled_sigmas(tiny, sd15, conds):
    import comfy.sample
    import comfy.samplers
    from engine.interposer import load_interposer
    import folder_paths

    pack = _pack()
    refiner = pack.nodes.refiner
    assert refiner.refiner_kind(tiny[0], sd15[0]) == refiner.KIND_SD15
    with pytest.raises(ValueError, match="SD1.5"):
        refiner.add_refiner(tiny[0], sd15[0], 0.5)
    interp = load_interposer(folder_paths.get_full_path("vae_approx", "xl-to-v1_interposer-v4.0.safetensors"))
    latent = torch.zeros(1, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, 5)
    c = _Counter(base=tiny[0], refiner=sd15[0])
    seen_sigmas = []
    ref = sd15[0].clone()
    ref.add_wrapper_with_key("predict_noise", "t", lambda ex, x, t, mo, s: (seen_sigmas.append(float(t[0])), ex(x, t, mo, s))[1])
    pos15, neg15 = (refiner.sd15_conditioning(x, tiny[1]) for x in conds)
    try:
        out = refiner.vae_swap_sample(tiny[0], ref, interp, noise, latent, 6, 4, 4.0, "dpmpp_2m_sde_gpu", "karras",
                                      conds[0], conds[1], pos15, neg15, 1.0, 5)
    finally:
        c.close()
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()
    assert c.names() == ["base"] * 4 + ["refiner"] * 2
    assert all(x["context"].shape[-1] == 768 and x["y"] is None for x in c.calls if x["model"] == "refiner")
    expect = comfy.samplers.KSampler(sd15[0], steps=6, device="cpu", sampler="dpmpp_2m_sde_gpu", scheduler="karras",
                                     denoise=1.0).sigmas[4:] * 1.4
    assert seen_sigmas == pytest.approx([float(s) for s in expect[:-1]], rel=1e-6)


def test_sd15_refiner_node_end_to_end_keeps_far_pixels(inprocess_host, sd15):
    import folder_paths
    import shutil
    from pathlib import Path

    for name in ("fooocus_inpaint_example.png", "fooocus_inpaint_example_mask.png"):
        shutil.copy(WORKFLOWS / "input" / name, folder_paths.get_input_directory())
    graph = with_tiny(load_api_workflow("fooocus_inpaint_default"))
    s = graph.pop("10")["inputs"]
    graph["20"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd15.safetensors"}}
    graph["10"] = {"class_type": "FooocusInpaint_SamplerSD15Refiner", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "refiner": ["20", 0], "refiner_vae": ["20", 2],
        "inpaint": s["inpaint"], "positive": s["positive"], "negative": s["negative"], "seed": 3, "steps": 4,
        "cfg": 4.0, "sampler_name": "dpmpp_2m_sde_gpu", "scheduler": "karras", "inpaint_patch": s["inpaint_patch"],
        "refiner_switch": 0.5, "interposer": "xl-to-v1_interposer-v4.0.safetensors", "num_images": 1}}
    out = inprocess_host.run(graph)
    img = out["11"]["images"][0]
    result = decode((Path(folder_paths.get_output_directory()) / img["subfolder"] / img["filename"]).read_bytes())
    image = decode((WORKFLOWS / "input" / "fooocus_inpaint_example.png").read_bytes())
    mask = decode((WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png").read_bytes())[..., 0]
    far = far_from_mask(mask)
    assert np.array_equal(result[far], image[far])
    assert not np.array_equal(result[~far], image[~far])


def test_node_schemas_have_tooltips_and_descriptions(inprocess_host):
    mod = _pack().nodes.refiner_nodes
    assert [c.define_schema().node_id for c in mod.NODES] == ["FooocusInpaint_Refiner", "FooocusInpaint_SamplerSD15Refiner"]
    for cls in mod.NODES:
        schema = cls.define_schema()
        assert schema.description and schema.category.startswith("inpaint/fooocus")
        for item in list(schema.inputs) + list(schema.outputs):
            assert item.tooltip, (schema.node_id, item.id if hasattr(item, "id") else item)


def test_sd15_node_bad_inputs(tiny, sd15, other_sdxl):
    mod = _pack().nodes.refiner_nodes
    data = _pack().nodes.types.FooocusInpaintData(prep=None, active=False, meta={"full_image": np.zeros((8, 8, 3), np.uint8)})
    kw = dict(model=tiny[0], clip=tiny[1], vae=tiny[2], refiner=sd15[0], refiner_vae=sd15[2], inpaint=data, seed=0,
              steps=4, cfg=4.0, sampler_name="euler", scheduler="karras", positive=[], negative=[])
    with pytest.raises(ValueError, match="inpaint"):
        mod.FooocusSamplerSD15Refiner.execute(**{**kw, "inpaint": None})
    with pytest.raises(ValueError, match="positive/negative"):
        mod.FooocusSamplerSD15Refiner.execute(**{**kw, "positive": None})
    with pytest.raises(ValueError, match="refiner: expected an SD1.5"):
        mod.FooocusSamplerSD15Refiner.execute(**{**kw, "refiner": other_sdxl})
    with pytest.raises(ValueError, match="refiner_switch"):
        mod.FooocusSamplerSD15Refiner.execute(**{**kw, "refiner_switch": 2.0})
    with pytest.raises(ValueError, match="interposer"):
        mod._interposer("missing.safetensors")
    out = mod.FooocusSamplerSD15Refiner.execute(**kw).result  # nothing to repaint: the image comes back
    assert out[0].shape == (1, 8, 8, 3)
