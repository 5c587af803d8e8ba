"""engine.guidance: Fooocus's sharpness blend, adaptive CFG, ADM sizes, denoise truncation, switch step."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import load_npz
from engine import guidance as G
from engine.anisotropic import adaptive_anisotropic_filter


def _t(*vals):
    return torch.tensor(vals, dtype=torch.float32).reshape(1, len(vals), 1, 1)


# ---------------------------------------------------------------- progress
def test_progress_from_timestep():
    assert G.progress_from_timestep(999) == 0.0
    assert G.progress_from_timestep(0) == 1.0
    assert G.progress_from_timestep(499.5) == pytest.approx(0.5)
    assert G.progress_from_timestep(837) == 1.0 - 837 / 999.0
    t = torch.tensor([999.0, 0.0])
    assert torch.equal(G.progress_from_timestep(t), torch.tensor([0.0, 1.0]))
    assert G.progress_from_timestep(torch.tensor([999])).dtype == torch.float32
    for bad in (-1, 1000, float("nan"), "5", None):
        with pytest.raises(ValueError, match="t must"):
            G.progress_from_timestep(bad)


# ---------------------------------------------------------------- sharpness
def test_sharpen_alpha_zero_is_identity():
    eps = torch.randn(1, 4, 16, 16)
    x0 = torch.randn(1, 4, 16, 16)
    assert G.sharpen_positive_eps(eps, x0, 0.0, 0.7) is eps
    assert G.sharpen_positive_eps(eps, x0, 2.0, 0.0) is eps
    # tiny latents are fine when the filter is skipped
    small = torch.randn(1, 4, 3, 3)
    assert G.sharpen_positive_eps(small, small, 2.0, 0.0) is small


def test_sharpen_blend_matches_formula(oracle_dir):
    z = load_npz("anisotropic.npz")
    eps = torch.from_numpy(z["a00_x"])
    x0 = torch.from_numpy(z["a00_g"])
    sharp, prog = 2.0, 0.75
    alpha = 0.001 * sharp * prog
    assert G.sharpness_alpha(sharp, prog) == alpha
    got = G.sharpen_positive_eps(eps, x0, sharp, prog)
    want = torch.from_numpy(z["a00_y"]) * alpha + eps * (1.0 - alpha)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got, adaptive_anisotropic_filter(eps, x0) * alpha + eps * (1 - alpha))


def test_sharpen_errors():
    eps = torch.randn(1, 4, 16, 16)
    with pytest.raises(ValueError, match="x0_pos must have the shape"):
        G.sharpen_positive_eps(eps, eps[:, :3], 2.0, 0.5)
    with pytest.raises(ValueError, match="sharpness"):
        G.sharpen_positive_eps(eps, eps, float("inf"), 0.5)


# ---------------------------------------------------------------- adaptive cfg
def test_cfg_real_when_cfg_not_above_adaptive():
    pos, neg = _t(1.0, 2.0), _t(0.5, -1.0)
    # real = neg + 4*(pos-neg): 0.5+4*0.5 = 2.5 ; -1+4*3 = 11
    for prog in (0.0, 0.3, 1.0):
        assert torch.equal(G.fooocus_cfg(pos, neg, 4.0, 7.0, prog), _t(2.5, 11.0))
    # cfg == adaptive -> still real
    assert torch.equal(G.fooocus_cfg(pos, neg, 7.0, 7.0, 0.0), _t(0.5 + 7 * 0.5, -1.0 + 7 * 3.0))


def test_cfg_mimicked_when_cfg_above_adaptive():
    pos, neg = _t(1.0, 2.0), _t(0.5, -1.0)
    # cfg 10, m 7: real = (5.5, 29), mimic = (4.0, 20)
    assert torch.equal(G.fooocus_cfg(pos, neg, 10.0, 7.0, 0.0), _t(4.0, 20.0))
    assert torch.equal(G.fooocus_cfg(pos, neg, 10.0, 7.0, 1.0), _t(5.5, 29.0))
    torch.testing.assert_close(G.fooocus_cfg(pos, neg, 10.0, 7.0, 0.25), _t(4.375, 22.25))
    # per-sample progress tensor
    pos2, neg2 = torch.cat([pos, pos]), torch.cat([neg, neg])
    got = G.fooocus_cfg(pos2, neg2, 10.0, 7.0, torch.tensor([0.0, 1.0]))
    assert torch.equal(got, torch.cat([_t(4.0, 20.0), _t(5.5, 29.0)]))
    assert torch.equal(G.fooocus_cfg(pos, neg, 10.0, 7.0, torch.tensor(1.0)), _t(5.5, 29.0))


def test_cfg_errors():
    a = torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match="eps_neg must have the shape"):
        G.fooocus_cfg(a, torch.zeros(2, 4, 8, 8), 4.0, 7.0, 0.5)
    with pytest.raises(ValueError, match="cfg"):
        G.fooocus_cfg(a, a, float("nan"), 7.0, 0.5)
    with pytest.raises(ValueError, match="progress"):
        G.fooocus_cfg(a, a, 8.0, 7.0, torch.zeros(2, 2))


def test_guided_eps():
    gen = torch.Generator().manual_seed(0)
    pos, neg, x0 = (torch.randn(1, 4, 16, 16, generator=gen) for _ in range(3))
    # cfg 1 fast path: cond only (no sharpness, no mimicking); neg may be garbage
    assert G.fooocus_guided_eps(pos, torch.full_like(neg, float("nan")), x0,
                                cfg=1.0, sharpness=2.0, adaptive_cfg=1.0, progress=0.5) is pos
    got = G.fooocus_guided_eps(pos, neg, x0, cfg=10.0, sharpness=2.0, adaptive_cfg=7.0, progress=0.4)
    want = G.fooocus_cfg(G.sharpen_positive_eps(pos, x0, 2.0, 0.4), neg, 10.0, 7.0, 0.4)
    assert torch.equal(got, want)


# ---------------------------------------------------------------- ADM
def test_round_to_64():
    assert [G.round_to_64(v) for v in (0, 31, 32, 33, 95, 96, 97, 160, 1000, 1024, 1100)] == [
        0, 0, 0, 64, 64, 128, 128, 128, 1024, 1024, 1088]
    assert G.round_to_64(1152.0) == 1152 and isinstance(G.round_to_64(1152.0), int)


@pytest.mark.parametrize(
    "w,h,scale,want",
    [
        (1024, 1024, 1.5, (1536, 1536, 1024, 1024)),
        (1024, 1024, 0.8, (819, 819, 1024, 1024)),
        (1024, 1024, 1.0, (1024, 1024, 1024, 1024)),
        (1152, 896, 1.5, (1728, 1344, 1152, 896)),
        (1152, 896, 0.8, (921, 716, 1152, 896)),
        (1000, 744, 1.5, (1500, 1116, 1024, 768)),
        (1000, 744, 0.8, (800, 595, 1024, 768)),
        (1096, 1352, 1.5, (1644, 2028, 1088, 1344)),  # 1096/64 = 17.125 ; 1352/64 = 21.125
        (96, 160, 1.0, (96, 160, 128, 128)),  # ties to even: 1.5 -> 2, 2.5 -> 2
    ],
)
def test_adm_sizes(w, h, scale, want):
    got = G.adm_sizes(w, h, scale)
    assert got == want and all(isinstance(v, int) for v in got)


def test_adm_sizes_errors():
    with pytest.raises(ValueError, match="width"):
        G.adm_sizes(0, 64, 1.5)
    with pytest.raises(ValueError, match="height"):
        G.adm_sizes(64, 64.0, 1.5)
    with pytest.raises(ValueError, match="scale"):
        G.adm_sizes(64, 64, 0)


def test_use_scaled_adm_boundaries():
    assert G.use_scaled_adm(700, 0.3) is True
    assert G.use_scaled_adm(699.3, 0.3) is (699.3 > 999 * (1 - 0.3))
    assert G.use_scaled_adm(699, 0.3) is False
    assert G.use_scaled_adm(999, 0.3) is True
    assert G.use_scaled_adm(0, 0.3) is False
    assert G.use_scaled_adm(torch.tensor([837.0, 837.0]), 0.3) is True
    for t in (0, 500, 998, 999):
        assert G.use_scaled_adm(t, 0.0) is False  # presets: never scaled
    assert G.use_scaled_adm(0.5, 1.0) is True and G.use_scaled_adm(0, 1.0) is False
    with pytest.raises(ValueError, match="adm_scaler_end"):
        G.use_scaled_adm(500, 1.5)


# ---------------------------------------------------------------- sigmas
def linear_schedule(n: int) -> torch.Tensor:
    """n+1 sigmas: n, n-1, ..., 1, 0 (sigma value == remaining steps of an n-step schedule)."""
    return torch.arange(n, -1, -1, dtype=torch.float32)


def test_sigma_plan_counts():
    p = G.truncated_sigma_count(30, 0.5, "dpmpp_2m_sde_gpu")
    assert p == G.SigmaPlan(new_steps=60, schedule_steps=60, drop_penultimate=False, truncated=True, keep=31)
    assert G.truncated_sigma_count(30, 1.0, "euler") == G.SigmaPlan(30, 30, False, False, 31)
    assert G.truncated_sigma_count(30, None, "euler") == G.SigmaPlan(30, 30, False, False, 31)
    assert G.truncated_sigma_count(30, 0.99995, "euler").truncated is False
    assert G.truncated_sigma_count(30, 0.9999, "euler") == G.SigmaPlan(30, 30, False, True, 31)
    assert G.truncated_sigma_count(30, 0.3, "euler").new_steps == int(30 / 0.3)
    assert G.truncated_sigma_count(8, 0.7, "lcm").new_steps == 11  # int(11.43)
    assert G.truncated_sigma_count(30, 0.5, "dpm_2") == G.SigmaPlan(60, 61, True, True, 31)
    assert G.truncated_sigma_count(30, 1.0, "dpm_2_ancestral") == G.SigmaPlan(30, 31, True, False, 31)


def test_truncate_sigmas_linear():
    s = G.truncate_sigmas(linear_schedule, 30, 0.5, "dpmpp_2m_sde_gpu")
    assert torch.equal(s, torch.arange(30, -1, -1, dtype=torch.float32))
    s = G.truncate_sigmas(linear_schedule, 4, 1.0, "euler")
    assert torch.equal(s, torch.tensor([4.0, 3, 2, 1, 0]))
    # dpm_2 full: schedule of 5 -> [5,4,3,2,1,0] -> drop penultimate -> [5,4,3,2,0]
    s = G.truncate_sigmas(linear_schedule, 4, 1.0, "dpm_2")
    assert torch.equal(s, torch.tensor([5.0, 4, 3, 2, 0]))
    # dpm_2 truncated: new_steps 8 -> schedule 9 -> [9..1,0] drop 1 -> [9..2,0] -> last 5 = [5,4,3,2,0]
    s = G.truncate_sigmas(linear_schedule, 4, 0.5, "dpm_2_ancestral")
    assert torch.equal(s, torch.tensor([5.0, 4, 3, 2, 0]))
    calls = []
    G.truncate_sigmas(lambda n: calls.append(n) or linear_schedule(n), 30, 0.5, "dpm_2")
    assert calls == [61]
    # a list is accepted too
    assert torch.equal(G.truncate_sigmas(lambda n: list(range(n, -1, -1)), 2, 1.0, "euler"),
                       torch.tensor([2, 1, 0]))


def test_truncate_sigmas_errors():
    with pytest.raises(ValueError, match="steps"):
        G.truncated_sigma_count(0, 1.0, "euler")
    with pytest.raises(ValueError, match="denoise"):
        G.truncated_sigma_count(30, 0.0, "euler")
    with pytest.raises(ValueError, match="denoise"):
        G.truncated_sigma_count(30, 1.5, "euler")
    with pytest.raises(ValueError, match="sampler_name"):
        G.truncated_sigma_count(30, 1.0, None)
    with pytest.raises(ValueError, match="must return a 1-D tensor of 31"):
        G.truncate_sigmas(lambda n: torch.zeros(n), 30, 1.0, "euler")
    with pytest.raises(ValueError, match="callable"):
        G.truncate_sigmas(None, 30, 1.0, "euler")


# ---------------------------------------------------------------- switch
def test_switch_step():
    assert G.switch_step(8, 0.8) == 6
    assert G.switch_step(4, 0.8) == 3
    assert G.switch_step(30, 0.8) == 24
    assert G.switch_step(60, 0.8) == 48
    assert G.switch_step(30, 0.5) == 15
    assert G.switch_step(5, 0.5) == 2  # round(2.5) == 2 (ties to even)
    assert G.switch_step(7, 0.5) == 4  # round(3.5) == 4
    assert G.switch_step(4, 1.0) == 4 and G.switch_step(4, 0.0) == 0
    assert G.switch_step(30, 0.8) == int(round(30 * 0.8))
    with pytest.raises(ValueError, match="refiner_switch"):
        G.switch_step(30, 1.2)
    with pytest.raises(ValueError, match="steps"):
        G.switch_step(-1, 0.8)
    assert math.isclose(G.MAX_TIMESTEP, 999.0)
