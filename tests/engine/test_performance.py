"""engine.performance: Fooocus's performance presets and the effective sampling settings."""
from __future__ import annotations

import dataclasses

import pytest

from engine import performance as P

REQUEST = dict(
    cfg=6.5, sharpness=3.0, sampler="dpmpp_2m_sde_gpu", scheduler="karras", adaptive_cfg=5.0,
    adm_pos=1.4, adm_neg=0.9, adm_end=0.4, refiner="some_refiner.safetensors", refiner_switch=0.6,
)


def test_constants():
    assert P.DEFAULT_SAMPLER == "dpmpp_2m_sde_gpu" and P.DEFAULT_SCHEDULER == "karras"
    assert P.DEFAULT_SHARPNESS == 2.0 and P.DEFAULT_ADAPTIVE_CFG == 7.0
    assert (P.DEFAULT_ADM_POSITIVE, P.DEFAULT_ADM_NEGATIVE, P.DEFAULT_ADM_END) == (1.5, 0.8, 0.3)
    assert P.DEFAULT_CONTROLNET_SOFTNESS == 0.25
    assert P.SYNTHETIC_REFINER_SWITCH == 0.8 and P.DEFAULT_CFG == 4.0
    assert P.PERFORMANCE_NAMES == ("Quality", "Speed", "Extreme Speed", "Lightning", "Hyper-SD")


def test_preset_table():
    t = P.PERFORMANCE_PRESETS
    assert {n: p.steps for n, p in t.items()} == {
        "Quality": 60, "Speed": 30, "Extreme Speed": 8, "Lightning": 4, "Hyper-SD": 4}
    assert {n: p.steps_uov for n, p in t.items()} == {
        "Quality": 36, "Speed": 18, "Extreme Speed": 8, "Lightning": 4, "Hyper-SD": 4}
    assert t["Quality"].lora is None and t["Speed"].lora is None
    assert not t["Quality"].restricted and not t["Speed"].restricted
    assert t["Extreme Speed"].lora == P.PerformanceLora("sdxl_lcm_lora.safetensors", 1.0)
    assert t["Lightning"].lora == P.PerformanceLora("sdxl_lightning_4step_lora.safetensors", 1.0)
    assert t["Hyper-SD"].lora == P.PerformanceLora("sdxl_hyper_sd_4step_lora.safetensors", 0.8)
    assert t["Extreme Speed"].model_sampling == "lcm"
    assert t["Lightning"].model_sampling is None and t["Hyper-SD"].model_sampling is None
    assert (t["Extreme Speed"].forced.sampler, t["Extreme Speed"].forced.scheduler) == ("lcm", "lcm")
    assert (t["Lightning"].forced.sampler, t["Lightning"].forced.scheduler) == ("euler", "sgm_uniform")
    assert (t["Hyper-SD"].forced.sampler, t["Hyper-SD"].forced.scheduler) == ("dpmpp_sde_gpu", "karras")
    for name in ("Extreme Speed", "Lightning", "Hyper-SD"):
        f = t[name].forced
        assert (f.cfg, f.sharpness, f.adaptive_cfg) == (1.0, 0.0, 1.0)
        assert (f.adm_positive, f.adm_negative, f.adm_end) == (1.0, 1.0, 0.0)
        assert f.refiner_switch == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        t["Speed"].steps = 1  # type: ignore[misc]


def test_get_performance_unknown_lists_names():
    assert P.get_performance("Speed") is P.PERFORMANCE_PRESETS["Speed"]
    for bad in ("speed", "Turbo", "", None, 3):
        with pytest.raises(ValueError) as e:
            P.get_performance(bad)
        msg = str(e.value)
        assert "performance" in msg and all(n in msg for n in P.PERFORMANCE_NAMES)
    with pytest.raises(ValueError, match="Hyper-SD"):
        P.resolve_sampling_settings("LCM", **REQUEST)


@pytest.mark.parametrize("name,steps", [("Speed", 30), ("Quality", 60)])
def test_unrestricted_presets_pass_request_through(name, steps):
    s = P.resolve_sampling_settings(name, **REQUEST)
    assert s.performance == name and s.steps == steps
    assert (s.cfg, s.sharpness, s.adaptive_cfg) == (6.5, 3.0, 5.0)
    assert (s.adm_positive, s.adm_negative, s.adm_end) == (1.4, 0.9, 0.4)
    assert (s.sampler, s.scheduler, s.final_scheduler, s.model_sampling) == (
        "dpmpp_2m_sde_gpu", "karras", "karras", None)
    assert s.refiner == "some_refiner.safetensors" and not s.use_synthetic_refiner
    assert s.refiner_switch == 0.6 and s.switch == int(round(steps * 0.6))
    assert s.loras == ()
    # the inpaint engine does not touch a real refiner
    s2 = P.resolve_sampling_settings(name, **REQUEST, inpaint_engine="v2.6")
    assert s2.refiner_switch == 0.6 and not s2.use_synthetic_refiner


@pytest.mark.parametrize(
    "name,steps,sampler,scheduler,final_scheduler,model_sampling,lora",
    [
        ("Extreme Speed", 8, "lcm", "lcm", "sgm_uniform", "lcm", ("sdxl_lcm_lora.safetensors", 1.0)),
        ("Lightning", 4, "euler", "sgm_uniform", "sgm_uniform", None,
         ("sdxl_lightning_4step_lora.safetensors", 1.0)),
        ("Hyper-SD", 4, "dpmpp_sde_gpu", "karras", "karras", None,
         ("sdxl_hyper_sd_4step_lora.safetensors", 0.8)),
    ],
)
def test_restricted_presets_force_values(
    name, steps, sampler, scheduler, final_scheduler, model_sampling, lora
):
    s = P.resolve_sampling_settings(name, **REQUEST)
    assert s.steps == steps
    assert (s.sampler, s.scheduler, s.final_scheduler, s.model_sampling) == (
        sampler, scheduler, final_scheduler, model_sampling)
    assert (s.cfg, s.sharpness, s.adaptive_cfg) == (1.0, 0.0, 1.0)
    assert (s.adm_positive, s.adm_negative, s.adm_end) == (1.0, 1.0, 0.0)
    assert s.refiner is None and not s.use_synthetic_refiner
    assert s.refiner_switch == 1.0 and s.switch == steps
    assert s.loras == (P.PerformanceLora(*lora),)


@pytest.mark.parametrize(
    "name,switch", [("Extreme Speed", 6), ("Lightning", 3), ("Hyper-SD", 3), ("Speed", 24), ("Quality", 48)]
)
def test_inpaint_engine_synthetic_refiner(name, switch):
    req = dict(REQUEST, refiner=None)
    s = P.resolve_sampling_settings(name, **req, inpaint_engine="v2.6")
    assert s.use_synthetic_refiner and s.refiner is None
    assert s.refiner_switch == 0.8 and s.switch == switch
    # restricted presets force the refiner to None first, so a requested refiner is dropped
    # and the synthetic refiner is used anyway
    if P.PERFORMANCE_PRESETS[name].restricted:
        s2 = P.resolve_sampling_settings(name, **REQUEST, inpaint_engine="v2.6")
        assert s2.use_synthetic_refiner and s2.switch == switch and s2.refiner is None
    # 'None' strings mean none
    s3 = P.resolve_sampling_settings(name, **dict(req, refiner="None"), inpaint_engine="None")
    assert not s3.use_synthetic_refiner and s3.refiner is None


def test_overrides_and_defaults():
    s = P.resolve_sampling_settings("Speed")
    assert (s.cfg, s.sharpness, s.adaptive_cfg, s.sampler, s.scheduler) == (
        4.0, 2.0, 7.0, "dpmpp_2m_sde_gpu", "karras")
    assert (s.adm_positive, s.adm_negative, s.adm_end, s.controlnet_softness) == (1.5, 0.8, 0.3, 0.25)
    assert s.refiner is None and s.refiner_switch == 0.8 and s.switch == 24
    s = P.resolve_sampling_settings("Speed", steps_override=20, inpaint_engine="v2.6")
    assert s.steps == 20 and s.switch == 16
    s = P.resolve_sampling_settings("Extreme Speed", steps_override=10, inpaint_engine="v1")
    assert s.steps == 10 and s.switch == 8
    # overwrite_step <= 0 means "not set" (Fooocus default -1)
    assert P.resolve_sampling_settings("Speed", steps_override=-1).steps == 30
    assert P.resolve_sampling_settings("Speed", steps_override=0).steps == 30
    assert P.resolve_sampling_settings("Speed", switch_override=5).switch == 5
    assert P.resolve_sampling_settings("Speed", switch_override=-1).switch == 24
    # user scheduler 'lcm' on Speed: patch_samplers still swaps it
    s = P.resolve_sampling_settings("Speed", sampler="lcm", scheduler="lcm")
    assert (s.final_scheduler, s.model_sampling) == ("sgm_uniform", "lcm")
    s = P.resolve_sampling_settings("Speed", scheduler="tcd")
    assert (s.final_scheduler, s.model_sampling) == ("sgm_uniform", "tcd")


def test_resolve_errors():
    with pytest.raises(ValueError, match="cfg"):
        P.resolve_sampling_settings("Speed", cfg="7")
    with pytest.raises(ValueError, match="refiner_switch"):
        P.resolve_sampling_settings("Speed", refiner_switch=1.5)
    with pytest.raises(ValueError, match="adm_end"):
        P.resolve_sampling_settings("Speed", adm_end=-0.1)
    with pytest.raises(ValueError, match="sharpness"):
        P.resolve_sampling_settings("Speed", sharpness=float("nan"))
    with pytest.raises(ValueError, match="sampler"):
        P.resolve_sampling_settings("Speed", sampler="")
    with pytest.raises(ValueError, match="steps_override"):
        P.resolve_sampling_settings("Speed", steps_override=3.0)
    with pytest.raises(ValueError, match="refiner"):
        P.resolve_sampling_settings("Speed", refiner=1)
    with pytest.raises(ValueError, match="inpaint_engine"):
        P.resolve_sampling_settings("Speed", inpaint_engine=2.6)
