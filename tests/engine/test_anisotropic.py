"""engine.anisotropic against Fooocus's modules/anisotropic.py (oracle: anisotropic.npz)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import load_npz
from engine import anisotropic as A

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def oracle(oracle_dir):
    return load_npz("anisotropic.npz")


def _close(got: torch.Tensor, want: np.ndarray) -> None:
    assert got.dtype == torch.float32
    assert tuple(got.shape) == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=RTOL, atol=ATOL)


def _naive(x, g, k=13, sc=3.0, ss=3.0, border="reflect", dist="l1"):
    """Direct all-neighbours formula (kornia-style full unfold), for modes the oracle does not cover."""
    p = k // 2
    xp = F.pad(x, (p, p, p, p), mode=border)
    gp = F.pad(g, (p, p, p, p), mode=border)
    xu = xp.unfold(2, k, 1).unfold(3, k, 1).flatten(-2)
    gu = gp.unfold(2, k, 1).unfold(3, k, 1).flatten(-2)
    diff = gu - g.unsqueeze(-1)
    d2 = diff.abs().sum(1, keepdim=True).square() if dist == "l1" else diff.square().sum(1, keepdim=True)
    w = torch.exp(-0.5 / sc**2 * d2) * A.gaussian_kernel2d(k, ss).flatten()
    return (xu * w).sum(-1) / w.sum(-1)


def test_gaussian_kernels(oracle):
    _close(A.gaussian_kernel2d((13, 13), 3.0), oracle["gaussian_kernel2d_13_s3"])
    _close(A.gaussian_kernel2d((5, 5), 1.5), oracle["gaussian_kernel2d_5_s1p5"])
    _close(A.gaussian_kernel2d(13, 3.0), oracle["gaussian_kernel2d_13_s3"])
    k1 = A.gaussian_kernel1d(13, 3.0)
    assert k1.shape == (13,) and abs(float(k1.sum()) - 1.0) < 1e-6
    assert torch.equal(k1, k1.flip(0))


@pytest.mark.parametrize("case", ["a00", "a01", "a02", "a03"])
def test_adaptive_filter_matches_oracle(oracle, case):
    assert case in list(oracle["cases"])
    x = torch.from_numpy(oracle[f"{case}_x"])
    g = torch.from_numpy(oracle[f"{case}_g"])
    _close(A.adaptive_anisotropic_filter(x, g), oracle[f"{case}_y"])
    _close(A.adaptive_anisotropic_filter(x), oracle[f"{case}_y_self"])
    _close(A.adaptive_anisotropic_filter(x, None), oracle[f"{case}_y_self"])


def test_oracle_case_list(oracle):
    assert list(oracle["cases"]) == ["a00", "a01", "a02", "a03"]


@pytest.mark.parametrize("case", ["a00", "a01"])
def test_bilateral_and_joint_raw_match_oracle(oracle, case):
    x = torch.from_numpy(oracle[f"{case}_x"])
    g = torch.from_numpy(oracle[f"{case}_g"])
    _close(A.bilateral_blur(x, (13, 13), 3.0, 3.0, "reflect", "l1"), oracle[f"{case}_bilateral"])
    _close(A.bilateral_blur(x), oracle[f"{case}_bilateral"])
    _close(A.joint_bilateral_blur(x, g, (13, 13), 3.0, 3.0, "reflect", "l1"), oracle[f"{case}_joint_raw"])
    _close(A.joint_bilateral_blur(x, g), oracle[f"{case}_joint_raw"])


@pytest.mark.parametrize("border", ["reflect", "replicate", "circular", "constant"])
@pytest.mark.parametrize("dist", ["l1", "l2"])
def test_row_walk_equals_full_unfold(border, dist):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 11, 9, generator=gen, dtype=torch.float64)
    g = torch.randn(2, 2, 11, 9, generator=gen, dtype=torch.float64)
    got = A.joint_bilateral_blur(x, g, 5, 1.5, 2.0, border, dist)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, _naive(x, g, 5, 1.5, 2.0, border, dist), rtol=1e-12, atol=1e-12)


def test_standardize_guide_is_unbiased():
    g = torch.arange(2 * 4 * 8 * 8, dtype=torch.float32).reshape(2, 4, 8, 8)
    s = A.standardize_guide(g)
    per = g.reshape(2, -1)
    want = (per - per.mean(1, keepdim=True)) / (per.std(1, unbiased=True, keepdim=True) + 1e-5)
    torch.testing.assert_close(s.reshape(2, -1), want)
    # the filter is invariant to an affine change of the guide (it is standardised)
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    gg = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        A.adaptive_anisotropic_filter(x, gg), A.adaptive_anisotropic_filter(x, gg * 5.0 + 2.0),
        rtol=1e-4, atol=1e-5,
    )


def test_constant_input_is_fixed_point_and_half_dtype_kept():
    x = torch.full((1, 4, 10, 12), 0.25)
    g = torch.randn(1, 4, 10, 12, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(A.adaptive_anisotropic_filter(x, g), x)
    xh = torch.randn(1, 4, 10, 12, generator=torch.Generator().manual_seed(2)).half()
    yh = A.adaptive_anisotropic_filter(xh, g.half())
    assert yh.dtype == torch.float16 and yh.shape == xh.shape
    y32 = A.adaptive_anisotropic_filter(xh.float(), g.half().float())
    torch.testing.assert_close(yh.float(), y32, rtol=2e-3, atol=2e-3)


def test_errors():
    x = torch.randn(1, 4, 16, 16)
    with pytest.raises(ValueError, match="x must be a 4-D"):
        A.adaptive_anisotropic_filter(x[0])
    with pytest.raises(ValueError, match="floating-point"):
        A.adaptive_anisotropic_filter(torch.zeros(1, 4, 16, 16, dtype=torch.int64))
    with pytest.raises(ValueError, match="guide must have the batch and spatial size"):
        A.joint_bilateral_blur(x, torch.randn(1, 4, 16, 15))
    with pytest.raises(ValueError, match="reflect padding"):
        A.adaptive_anisotropic_filter(torch.randn(1, 4, 6, 16))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        A.bilateral_blur(x, (4, 4))
    with pytest.raises(ValueError, match="sigma_color"):
        A.bilateral_blur(x, 5, 0.0)
    with pytest.raises(ValueError, match="border_type"):
        A.bilateral_blur(x, 5, 1.0, 1.0, "mirror")
    with pytest.raises(ValueError, match="color_distance_type"):
        A.bilateral_blur(x, 5, 1.0, 1.0, "reflect", "l3")
    with pytest.raises(ValueError, match="ksize"):
        A.gaussian_kernel2d(0, 1.0)
    with pytest.raises(ValueError, match="x must be a torch.Tensor"):
        A.adaptive_anisotropic_filter(np.zeros((1, 4, 16, 16), np.float32))
    # 7x7 is the smallest latent reflect padding 6 accepts
    assert A.adaptive_anisotropic_filter(torch.randn(1, 4, 7, 7)).shape == (1, 4, 7, 7)


def test_speed_128():
    """[2,4,128,128] on CPU: ~22 ms on 2 cores (the naive 169-neighbour unfold takes ~450 ms)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 128, 128, generator=gen)
    g = torch.randn(2, 4, 128, 128, generator=gen)
    A.adaptive_anisotropic_filter(x, g)
    best = min(_timed(A.adaptive_anisotropic_filter, x, g) for _ in range(3))
    assert best < 0.5, f"adaptive_anisotropic_filter took {best:.3f} s for [2,4,128,128]"


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0
