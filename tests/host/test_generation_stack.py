"""Fooocus Guidance / Performance / LoRA Stack on the tiny SDXL model (in-process host, one server test)."""
from __future__ import annotations

import logging
import math
import sys
import types

import numpy as np
import pytest
import torch

from inpaint_support import WORKFLOWS, decode, far_from_mask, load_api_workflow, node_defaults, with_tiny

LCM_SIGMAS_8 = [14.61, 7.39, 4.17, 2.56, 1.67, 1.11, 0.73, 0.44, 0.0]  # comfy-hooks.md §7
PERF_LORAS = {"Extreme Speed": ("sdxl_lcm_lora.safetensors", 1.0),
              "Lightning": ("sdxl_lightning_4step_lora.safetensors", 1.0),
              "Hyper-SD": ("sdxl_hyper_sd_4step_lora.safetensors", 0.8)}
USER_LORAS = ["tiny_style_lora.safetensors", "sd_xl_offset_example-lora_1.0.safetensors", "sdxl_lcm_lora.safetensors",
              "sdxl_lightning_4step_lora.safetensors", "sdxl_hyper_sd_4step_lora.safetensors"]


# -- helpers -----------------------------------------------------------------------------------------
def _pack():
    return next(m for name, m in sys.modules.items()
                if name.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))


@pytest.fixture(scope="module")
def tiny(inprocess_host):
    import nodes

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[:3]
    return model, clip, vae


@pytest.fixture(scope="module")
def gen(inprocess_host):
    return _pack().nodes.generation_nodes


@pytest.fixture(scope="module")
def hooks(inprocess_host):
    return _pack().nodes.guidance_hooks


def _node_inputs(cls, **given) -> dict:
    """Every widget of a V3 node at its default, overridden by ``given``."""
    return node_defaults(cls.INPUT_TYPES(), **given)


def _run(cls, **kw):
    return cls.execute(**_node_inputs(cls, **kw)).result


def _lora_patch_keys(name: str, model, clip) -> tuple[set, set]:
    """The model / CLIP weight keys ComfyUI's own LoraLoader patches for ``name``."""
    import nodes

    m, c = nodes.LoraLoader().load_lora(model, clip, name, 1.0, 1.0)
    return set(m.patches) - set(model.patches), set(c.patcher.patches) - set(clip.patcher.patches)


def _fake_args(t: float, cfg: float, seed: int = 0, shape=(2, 4, 16, 16)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3
    cond_d = torch.randn(shape, generator=g)
    uncond_d = torch.randn(shape, generator=g)
    ms = types.SimpleNamespace(timestep=lambda sigma: torch.full_like(sigma, float(t)))
    sigma = torch.full((shape[0],), 5.0)
    return {"cond": x - cond_d, "uncond": x - uncond_d, "cond_denoised": cond_d, "uncond_denoised": uncond_d,
            "input": x, "sigma": sigma, "timestep": sigma, "cond_scale": cfg,
            "model": types.SimpleNamespace(model_sampling=ms), "model_options": {}}


# -- 1. the cfg function ---------------------------------------------------------------------------
def test_cfg1_returns_the_cond_eps_itself(hooks):
    fn = hooks.make_cfg_function(hooks.GuidanceSettings(sharpness=30.0, adaptive_cfg=1.0))
    args = _fake_args(t=300, cfg=1.0)
    args["uncond"] = torch.full_like(args["cond"], float("nan"))  # ComfyUI did not evaluate it
    assert fn(args) is args["cond"]


def test_sharpness0_below_adaptive_is_comfy_cfg(hooks):
    from engine.guidance import fooocus_cfg

    fn = hooks.make_cfg_function(hooks.GuidanceSettings(sharpness=0.0, adaptive_cfg=7.0))
    for t in (999, 500, 0):
        args = _fake_args(t=t, cfg=4.0, seed=t)
        eps = fn(args)
        comfy_x0 = args["uncond_denoised"] + (args["cond_denoised"] - args["uncond_denoised"]) * 4.0
        assert torch.allclose(args["input"] - eps, comfy_x0, atol=1e-5)
        assert torch.equal(eps, fooocus_cfg(args["cond"], args["uncond"], 4.0, 7.0, 1 - t / 999))


def test_cfg_above_adaptive_blends_by_progress(hooks):
    fn = hooks.make_cfg_function(hooks.GuidanceSettings(sharpness=0.0, adaptive_cfg=7.0))

    def plain(args, scale):
        return args["uncond"] + scale * (args["cond"] - args["uncond"])

    a = _fake_args(t=999, cfg=10.0)
    assert torch.allclose(fn(a), plain(a, 7.0), atol=1e-5)       # progress 0: mimicked cfg only
    a = _fake_args(t=0, cfg=10.0)
    assert torch.allclose(fn(a), plain(a, 10.0), atol=1e-5)      # progress 1: the real cfg
    a = _fake_args(t=333, cfg=10.0)
    p = 1 - 333 / 999
    assert torch.allclose(fn(a), plain(a, 10.0) * p + plain(a, 7.0) * (1 - p), atol=1e-5)


@pytest.mark.parametrize("t,cfg,sharp,acfg", [(500, 4.0, 2.0, 7.0), (100, 12.0, 10.0, 7.0), (900, 3.0, 30.0, 2.5)])
def test_cfg_function_equals_engine_guidance(hooks, t, cfg, sharp, acfg):
    from engine.guidance import fooocus_guided_eps

    fn = hooks.make_cfg_function(hooks.GuidanceSettings(sharpness=sharp, adaptive_cfg=acfg))
    args = _fake_args(t=t, cfg=cfg, seed=t)
    expect = fooocus_guided_eps(args["cond"], args["uncond"], args["cond_denoised"], cfg=cfg, sharpness=sharp,
                                adaptive_cfg=acfg, progress=1 - t / 999)
    got = fn(args)
    assert torch.equal(got, expect)
    no_sharp = hooks.make_cfg_function(hooks.GuidanceSettings(sharpness=0.0, adaptive_cfg=acfg))(args)
    assert not torch.equal(got, no_sharp)


def test_cfg_function_uses_the_models_lcm_timestep(hooks, tiny, gen):
    """With Extreme Speed's LCM model sampling the distilled t (index*20+19) gives the progress."""
    import comfy.samplers
    from engine.guidance import fooocus_guided_eps

    model = gen.FooocusPerformance.execute(**_node_inputs(gen.FooocusPerformance, model=tiny[0], clip=tiny[1],
                                                          performance="Extreme Speed")).result[0]
    ms = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "sgm_uniform", 8)
    sig = sigmas[3:4].repeat(2)
    t = float(ms.timestep(sig)[0])
    assert t == 639.0
    fn = hooks.make_cfg_function(hooks.GuidanceSettings(sharpness=5.0, adaptive_cfg=2.0))
    args = _fake_args(t=0, cfg=4.0, seed=3)
    args["sigma"] = args["timestep"] = sig
    args["model"] = types.SimpleNamespace(model_sampling=ms)
    expect = fooocus_guided_eps(args["cond"], args["uncond"], args["cond_denoised"], cfg=4.0, sharpness=5.0,
                                adaptive_cfg=2.0, progress=1 - 639 / 999)
    assert torch.equal(fn(args), expect)


def test_guidance_settings_validation(hooks):
    with pytest.raises(ValueError, match="sharpness"):
        hooks.GuidanceSettings(sharpness=-1.0)
    with pytest.raises(ValueError, match="adm_end"):
        hooks.GuidanceSettings(adm_end=1.5)
    with pytest.raises(ValueError, match="adm_positive"):
        hooks.GuidanceSettings(adm_positive=0.0)
    with pytest.raises(ValueError, match="adaptive_cfg"):
        hooks.GuidanceSettings(adaptive_cfg=float("nan"))


# -- 2. ADM guidance ---------------------------------------------------------------------------------
def _sample_capturing_y(model, clip, steps=6, cfg=4.0, sampler="euler", scheduler="karras", size=64):
    """Run the KSampler node's logic on a copy of ``model`` with an APPLY_MODEL wrapper recording
    (t, y, extra kwargs) for every UNet call. Returns (records, positive, negative)."""
    import nodes
    from comfy.patcher_extension import WrappersMP

    pos = nodes.CLIPTextEncode().encode(clip, "a house")[0]
    neg = nodes.CLIPTextEncode().encode(clip, "blurry")[0]
    records = []
    m = model.clone()

    def capture(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kw):
        ms = executor.class_obj.model_sampling
        records.append((float(ms.timestep(t)[0]), kw["y"].detach().clone(), sorted(kw)))
        return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kw)

    m.add_wrapper_with_key(WrappersMP.APPLY_MODEL, "test_capture", capture)
    latent = nodes.EmptyLatentImage().generate(size, size, 1)[0]
    out = nodes.KSampler().sample(m, 7, steps, cfg, sampler, scheduler, pos, neg, latent)[0]
    return records, pos, neg, out


def _expected_rows(model, cond, width, height, target):
    pooled = cond[0][1]["pooled_output"]
    return model.model.encode_adm(pooled_output=pooled, width=width, height=height, target_width=target,
                                  target_height=target)[0]


def _which(row, table):
    hits = [k for k, v in table.items() if torch.allclose(row, v, atol=1e-5)]
    assert len(hits) == 1, hits
    return hits[0]


def test_adm_scaled_early_and_plain_late(tiny, gen):
    model, clip, _ = tiny
    guided = _run(gen.FooocusGuidance, model=model)[0]
    records, pos, neg, _ = _sample_capturing_y(guided, clip)
    table = {"pos_scaled": _expected_rows(model, pos, 96, 96, 64), "neg_scaled": _expected_rows(model, neg, 51, 51, 64),
             "pos_plain": _expected_rows(model, pos, 64, 64, 64), "neg_plain": _expected_rows(model, neg, 64, 64, 64)}
    ts = [t for t, _, _ in records]
    assert len(records) == 6 and ts[0] == 999.0
    assert any(t > 699.3 for t in ts) and any(t <= 699.3 for t in ts)
    for t, y, kwargs in records:
        assert y.shape == (2, 2816)
        assert "fooocus_adm_plain" not in kwargs
        got = {_which(row, table) for row in y}
        assert got == ({"pos_scaled", "neg_scaled"} if t > 699.3 else {"pos_plain", "neg_plain"}), t
    # the caller's conditioning was not touched
    for c in (pos, neg):
        assert set(c[0][1]) == {"pooled_output"}


def test_adm_end_zero_never_scales_and_without_guidance_y_is_comfys(tiny, gen):
    model, clip, _ = tiny
    guided = _run(gen.FooocusGuidance, model=model, adm_end=0.0)[0]
    records, pos, neg, _ = _sample_capturing_y(guided, clip, steps=4)
    plain = {"pos": _expected_rows(model, pos, 64, 64, 64), "neg": _expected_rows(model, neg, 64, 64, 64)}
    assert all({_which(row, plain) for row in y} == {"pos", "neg"} for _, y, _ in records)
    # no guidance: ComfyUI's own y (latent size, target = size) for a 64x64 latent is the same vector
    base_records, _, _, _ = _sample_capturing_y(model, clip, steps=4)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(records, base_records))


def test_adm_cfg1_runs_cond_only_with_plain_y_for_lcm(tiny, gen):
    """Extreme Speed: cfg 1 (batch of 1), ADM 1/1/0 -> unscaled y; distilled timesteps."""
    import comfy.samplers

    model, clip, _ = tiny
    m, c, steps, cfg, sampler, scheduler = _run(gen.FooocusPerformance, model=model, clip=clip,
                                                performance="Extreme Speed")
    records, pos, _, out = _sample_capturing_y(m, c, steps=steps, cfg=cfg, sampler=sampler, scheduler=scheduler)
    ms = m.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "sgm_uniform", 8)
    expect_t = [float(v) for v in ms.timestep(sigmas[:-1])]
    assert [t for t, _, _ in records] == expect_t
    assert expect_t[:4] == [999.0, 879.0, 759.0, 639.0] and all(t % 20 == 19 for t in expect_t)
    plain = _expected_rows(m, pos, 64, 64, 64)
    assert all(y.shape == (1, 2816) and torch.allclose(y[0], plain, atol=1e-5) for _, y, _ in records)
    assert torch.isfinite(out["samples"]).all()


# -- 3. isolation ------------------------------------------------------------------------------------
def _options_snapshot(model):
    import copy

    mo = model.model_options
    return (sorted(mo), sorted(mo.get("transformer_options", {})),
            {k: {kk: len(vv) for kk, vv in v.items()} for k, v in mo.get("transformer_options", {}).get("wrappers", {}).items()},
            mo.get("sampler_cfg_function"), copy.copy(model.object_patches), {k: len(v) for k, v in model.patches.items()})


def test_nodes_leave_input_model_unchanged_and_twice_replaces(tiny, gen, hooks):
    from comfy.patcher_extension import WrappersMP

    model, clip, _ = tiny
    before, clip_before = _options_snapshot(model), dict(clip.patcher.patches)
    g = _run(gen.FooocusGuidance, model=model)[0]
    p = _run(gen.FooocusPerformance, model=model, clip=clip, performance="Extreme Speed")
    s = _run(gen.FooocusLoraStack, model=model, clip=clip, lora_1="tiny_style_lora.safetensors", weight_1=0.5)
    assert _options_snapshot(model) == before and dict(clip.patcher.patches) == clip_before
    assert g is not model and p[0] is not model and s[0] is not model
    # applying twice replaces: one cfg function, one wrapper per hook point
    gg = _run(gen.FooocusGuidance, model=p[0], sharpness=5.0)[0]
    for m in (g, gg):
        for wt in (WrappersMP.OUTER_SAMPLE, WrappersMP.CALC_COND_BATCH):
            assert len(m.get_wrappers(wt, hooks.GUIDANCE_KEY)) == 1
    assert hooks.current_settings(gg).sharpness == 5.0
    assert hooks.current_settings(p[0]).source == "Fooocus Performance (Extreme Speed)"


# -- 4. performance presets --------------------------------------------------------------------------
@pytest.mark.parametrize("name,steps,cfg,sampler,scheduler", [
    ("Speed", 30, 4.0, "dpmpp_2m_sde_gpu", "karras"),
    ("Quality", 60, 4.0, "dpmpp_2m_sde_gpu", "karras"),
    ("Extreme Speed", 8, 1.0, "lcm", "sgm_uniform"),
    ("Lightning", 4, 1.0, "euler", "sgm_uniform"),
    ("Hyper-SD", 4, 1.0, "dpmpp_sde_gpu", "karras"),
])
def test_performance_outputs(tiny, gen, hooks, name, steps, cfg, sampler, scheduler):
    model, clip, _ = tiny
    m, c, *rest = _run(gen.FooocusPerformance, model=model, clip=clip, performance=name)
    assert list(rest) == [steps, cfg, sampler, scheduler]
    settings = hooks.current_settings(m)
    if name in PERF_LORAS:
        file, weight = PERF_LORAS[name]
        mkeys, ckeys = _lora_patch_keys(file, model, clip)
        assert mkeys and ckeys
        assert mkeys <= set(m.patches) and ckeys <= set(c.patcher.patches)
        k = next(iter(mkeys))
        assert m.patches[k][-1][0] == pytest.approx(weight)
        assert (settings.sharpness, settings.adaptive_cfg, settings.adm_positive, settings.adm_negative,
                settings.adm_end) == (0.0, 1.0, 1.0, 1.0, 0.0)
    else:
        assert m.patches == model.patches and c is clip
        assert (settings.sharpness, settings.adaptive_cfg, settings.adm_positive, settings.adm_negative,
                settings.adm_end) == (2.0, 7.0, 1.5, 0.8, 0.3)
    has_lcm = "model_sampling" in m.object_patches
    assert has_lcm == (name == "Extreme Speed")


def test_speed_passes_request_values_and_steps_override(tiny, gen):
    model, clip, _ = tiny
    out = _run(gen.FooocusPerformance, model=model, clip=clip, performance="Quality", cfg=6.5, sampler_name="euler_ancestral",
               scheduler="normal", steps_override=12)
    assert list(out[2:]) == [12, 6.5, "euler_ancestral", "normal"]
    forced = _run(gen.FooocusPerformance, model=model, clip=clip, performance="Lightning", cfg=6.5,
                  sampler_name="euler_ancestral", scheduler="normal")
    assert list(forced[2:]) == [4, 1.0, "euler", "sgm_uniform"]


def test_extreme_speed_lcm_sigmas(tiny, gen):
    import comfy.samplers

    model, clip, _ = tiny
    m = _run(gen.FooocusPerformance, model=model, clip=clip, performance="Extreme Speed")[0]
    sig = comfy.samplers.calculate_sigmas(m.get_model_object("model_sampling"), "sgm_uniform", 8)
    assert np.allclose(sig.numpy(), LCM_SIGMAS_8, atol=1e-2)
    plain = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "sgm_uniform", 8)
    assert not np.allclose(plain.numpy(), LCM_SIGMAS_8, atol=1e-2)


def test_missing_performance_lora_names_file_and_folder(tiny, gen):
    import folder_paths

    model, clip, _ = tiny
    with pytest.raises(ValueError) as e:
        _run(gen.FooocusPerformance, model=model, clip=clip, performance="Lightning", lightning_lora="nope_lora.safetensors")
    msg = str(e.value)
    assert "nope_lora.safetensors" in msg and folder_paths.get_folder_paths("loras")[0] in msg
    # Speed needs no LoRA file at all
    _run(gen.FooocusPerformance, model=model, clip=clip, performance="Speed", lightning_lora="nope_lora.safetensors")


def test_combo_outputs_link_to_v1_and_v3_combo_inputs(gen):
    import asyncio

    import comfy.samplers
    import execution

    opts = gen.SAMPLER_OPTIONS
    assert not (opts != "COMBO") and not (opts != list(comfy.samplers.KSampler.SAMPLERS))
    assert opts != "INT" and opts != ["euler"] and opts != 3
    perf = {"class_type": "FooocusInpaint_Performance",
            "inputs": _node_inputs(gen.FooocusPerformance, model=["1", 0], clip=["1", 1])}
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sdxl.safetensors"}}, "p": perf,
             "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["p", 1]}},
             "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "5": {"class_type": "KSampler", "inputs": {"model": ["p", 0], "positive": ["2", 0], "negative": ["2", 0],
                                                         "latent_image": ["4", 0], "seed": 1, "steps": ["p", 2],
                                                         "cfg": ["p", 3], "sampler_name": ["p", 4],
                                                         "scheduler": ["p", 5], "denoise": 1.0}},
             "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}}}
    valid, err, _, node_errors = asyncio.run(execution.validate_prompt("combo-check", graph, None))
    assert valid, (err, node_errors)


# -- 5. LoRA stack -----------------------------------------------------------------------------------
def test_lora_stack_none_and_zero_are_no_ops(tiny, gen):
    model, clip, _ = tiny
    none = _run(gen.FooocusLoraStack, model=model, clip=clip, **{f"lora_{i}": "None" for i in range(1, 6)})
    assert none[0] is model and none[1] is clip
    zero = _run(gen.FooocusLoraStack, model=model, clip=clip, lora_1="tiny_style_lora.safetensors", weight_1=0.0,
                **{f"lora_{i}": "None" for i in range(2, 6)})
    assert zero[0].patches == model.patches and zero[1].patcher.patches == clip.patcher.patches


def test_lora_stack_one_equals_comfy_lora_loader(tiny, gen):
    import nodes

    model, clip, _ = tiny
    m, c = _run(gen.FooocusLoraStack, model=model, clip=clip, lora_1="None", lora_2="tiny_style_lora.safetensors",
                weight_2=-0.7, **{f"lora_{i}": "None" for i in (3, 4, 5)})
    rm, rc = nodes.LoraLoader().load_lora(model, clip, "tiny_style_lora.safetensors", -0.7, -0.7)
    assert set(m.patches) == set(rm.patches) and set(c.patcher.patches) == set(rc.patcher.patches)
    assert all(m.patches[k][-1][0] == rm.patches[k][-1][0] == -0.7 for k in rm.patches)
    assert len(m.patches) > 10


def test_lora_stack_five_in_order(tiny, gen):
    model, clip, _ = tiny
    weights = [0.1, 0.2, -0.3, 0.4, 1.5]
    kw = {}
    for i, (name, w) in enumerate(zip(USER_LORAS, weights), 1):
        kw[f"lora_{i}"], kw[f"weight_{i}"] = name, w
    m, c = _run(gen.FooocusLoraStack, model=model, clip=clip, **kw)
    common = set.intersection(*[_lora_patch_keys(n, model, clip)[0] for n in USER_LORAS])
    assert common
    for k in common:
        assert [p[0] for p in m.patches[k][-5:]] == pytest.approx(weights)
    ck = next(iter(set.intersection(*[_lora_patch_keys(n, model, clip)[1] for n in USER_LORAS])))
    assert [p[0] for p in c.patcher.patches[ck][-5:]] == pytest.approx(weights)


def _write_lora(name: str, base_file: str, bogus: int):
    """A copy of ``base_file`` with ``bogus`` extra keys no model has, in the host's loras folder."""
    import comfy.utils
    import folder_paths

    sd = comfy.utils.load_torch_file(folder_paths.get_full_path("loras", base_file), safe_load=True)
    for i in range(bogus):
        sd[f"lora_unet_not_a_layer_{i}.lora_down.weight"] = torch.zeros(2, 2)
    path = f"{folder_paths.get_folder_paths('loras')[0]}/{name}"
    comfy.utils.save_torch_file(sd, path)
    return name


def test_lora_with_mismatched_keys_is_skipped(tiny, gen, caplog):
    model, clip, _ = tiny
    bad = _write_lora("mismatched_test_lora.safetensors", "tiny_style_lora.safetensors", 13)
    ok = _write_lora("few_unmatched_test_lora.safetensors", "tiny_style_lora.safetensors", 12)
    with caplog.at_level(logging.WARNING):
        m, c = _run(gen.FooocusLoraStack, model=model, clip=clip, lora_1=bad, weight_1=1.0,
                    **{f"lora_{i}": "None" for i in range(2, 6)})
    assert m is model and c is clip
    assert any(bad in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
    m2, _ = _run(gen.FooocusLoraStack, model=model, clip=clip, lora_1=ok, weight_1=1.0,
                 **{f"lora_{i}": "None" for i in range(2, 6)})
    assert set(m2.patches) == _lora_patch_keys("tiny_style_lora.safetensors", model, clip)[0] | set(model.patches)


# -- 6. end to end: synthetic refiner keeps the performance LoRA (in-process) and a server run ---------
def test_synthetic_refiner_carries_performance_lora(tiny, gen):
    pack = _pack()
    model, clip, vae = tiny
    perf_model = _run(gen.FooocusPerformance, model=model, clip=clip, performance="Extreme Speed")[0]
    # fooocus_inpaint_model only needs the latents (no pixels): small stand-ins are enough here
    lat = torch.zeros(1, 4, 8, 8)
    lat_mask = torch.zeros(1, 1, 8, 8)
    lat_mask[..., 2:5, 3:6] = 1.0
    data = pack.nodes.types.FooocusInpaintData(prep=None, active=True, latent_fill=lat, latent_inpaint=lat,
                                               latent_mask=lat_mask)
    patch = pack.nodes.loader_nodes.FooocusInpaintLoader.execute("fooocus_inpaint_head.pth",
                                                                 "inpaint_v26.fooocus.patch").result[0]
    sampler_model = pack.nodes.inpaint_model.fooocus_inpaint_model(perf_model, data, patch, 0.8)
    from comfy.model_patcher import ModelPatcher
    from comfy.patcher_extension import WrappersMP

    fn = sampler_model.get_wrappers(WrappersMP.SAMPLER_SAMPLE, pack.nodes.sampling.SWITCH_KEY)[0]
    refiners = [c.cell_contents for c in fn.__closure__ if isinstance(c.cell_contents, ModelPatcher)]
    assert len(refiners) == 1
    refiner = refiners[0]
    lcm_keys, _ = _lora_patch_keys("sdxl_lcm_lora.safetensors", model, clip)
    assert lcm_keys <= set(refiner.patches)
    assert "model_sampling" in refiner.object_patches
    u8 = pack.nodes.patching.FooocusU8Delta
    assert not any(isinstance(p[1], u8) for ps in refiner.patches.values() for p in ps)
    assert any(isinstance(p[1], u8) for ps in sampler_model.patches.values() for p in ps)
    # the guidance travels with the base and the refiner
    assert sampler_model.model_options["sampler_cfg_function"] is refiner.model_options["sampler_cfg_function"]


def _server_inputs(comfy, class_type, **given):
    info = comfy.object_info(class_type)[class_type]["input"]
    return node_defaults(info, **given)


def _txt2img(prefix):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sdxl.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                    "latent_image": ["4", 0], "seed": 3, "steps": 3, "cfg": 4.0,
                                                    "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def test_server_inpaint_extreme_speed_and_isolation(comfy):
    example = (WORKFLOWS / "input" / "fooocus_inpaint_example.png").read_bytes()
    example_mask = (WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png").read_bytes()
    comfy.upload(example, "fooocus_inpaint_example.png")
    comfy.upload(example_mask, "fooocus_inpaint_example_mask.png")
    image, mask = decode(example), decode(example_mask)[..., 0]

    res = comfy.run(_txt2img("gen_iso_before"))
    assert res.status == "success", res.error
    before = res.images[0][2]

    g = with_tiny(load_api_workflow("fooocus_inpaint_default"))
    g["20"] = {"class_type": "FooocusInpaint_LoraStack",
               "inputs": _server_inputs(comfy, "FooocusInpaint_LoraStack", model=["1", 0], clip=["1", 1],
                                        lora_1="sd_xl_offset_example-lora_1.0.safetensors", weight_1=0.1)}
    g["21"] = {"class_type": "FooocusInpaint_Performance",
               "inputs": _server_inputs(comfy, "FooocusInpaint_Performance", model=["20", 0], clip=["20", 1],
                                        performance="Extreme Speed", steps_override=4)}
    for n in ("3", "4"):
        g[n]["inputs"]["clip"] = ["21", 1]
    s = g["10"]["inputs"]
    s.update(model=["21", 0], steps=["21", 2], cfg=["21", 3], sampler_name=["21", 4], scheduler=["21", 5])
    res = comfy.run(g)
    assert res.status == "success", res.error
    out = decode(res.images[0][2])
    far = far_from_mask(mask)
    assert out.shape == image.shape and far.any()
    assert np.array_equal(out[far], image[far])
    assert not np.array_equal(out[~far], image[~far])
    assert res.progress()[-1] == (4, 4)

    after_graph = _txt2img("gen_iso_after")
    res = comfy.run(after_graph)
    assert res.status == "success", res.error
    cached = {n for e, d in res.events if e == "execution_cached" for n in d.get("nodes", [])}
    ksampler = {k for k, v in after_graph.items() if v["class_type"] == "KSampler"}
    assert ksampler and not (ksampler & cached), "the plain KSampler was answered from the cache"
    assert decode(res.images[0][2]).tobytes() == decode(before).tobytes()
