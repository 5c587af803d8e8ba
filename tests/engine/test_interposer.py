"""engine.interposer: layout, loader and forward of the XL->v1 latent interposer."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from engine.interposer import (LatentInterposer, interpose, interposer_from_state_dict, layout_of,
                               load_interposer)


def _state(hidden=8, blocks=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, o, i):
        sd[name + ".weight"] = torch.randn(o, i, 3, 3, generator=g) / (i * 9) ** 0.5
        sd[name + ".bias"] = torch.randn(o, generator=g) * 0.1

    conv("head_short", hidden, 4)
    conv("head_long.0", hidden, 4)
    conv("head_long.2", hidden, hidden)
    conv("head_long.4", hidden, hidden)
    for b in range(blocks):
        for j in (0, 2, 4):
            conv(f"core.{b}.long.{j}", hidden, hidden)
    conv("tail.1", 4, hidden)
    return sd


def _reference(sd, x, blocks):
    """The published network written out with nn.Sequential-free functional calls."""
    def c(n, t):
        return F.conv2d(t, sd[n + ".weight"], sd[n + ".bias"], padding=1)

    def lrelu(t):
        return torch.where(t >= 0, t, t * 0.1)

    long = c("head_long.4", lrelu(c("head_long.2", lrelu(c("head_long.0", x)))))
    y = torch.clamp(long + c("head_short", x), min=0)
    for b in range(blocks):
        p = f"core.{b}.long"
        y = torch.clamp(c(p + ".4", lrelu(c(p + ".2", lrelu(c(p + ".0", y))))) + y, min=0)
    return c("tail.1", torch.clamp(y, min=0))


def test_layout_and_forward_match_the_reference():
    sd = _state(8, 2)
    assert layout_of(sd) == (8, 2)
    m = interposer_from_state_dict(sd)
    x = torch.randn(2, 4, 9, 7, generator=torch.Generator().manual_seed(3)) * 3
    out = interpose(m, x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.allclose(out, _reference(sd, x, 2), atol=1e-5, rtol=1e-5)
    assert torch.equal(m.file_state_dict()["core.1.long.2.weight"], sd["core.1.long.2.weight"])


def test_fooocus_default_size_and_file_round_trip(tmp_path):
    m = LatentInterposer()
    assert (m.hidden, m.blocks) == (128, 3)
    sd = _state(16, 3, seed=1)
    save_file(sd, str(tmp_path / "i.safetensors"))
    loaded = load_interposer(tmp_path / "i.safetensors")
    x = torch.randn(1, 4, 8, 8)
    assert torch.allclose(loaded(x), _reference(sd, x, 3), atol=1e-5)
    half = load_interposer(tmp_path / "i.safetensors", dtype=torch.float64)
    assert half(x).dtype == torch.float32  # output in the input's dtype


def test_bad_inputs():
    sd = _state(8, 1)
    with pytest.raises(ValueError, match="head_short"):
        layout_of({"core.0.long.0.weight": torch.zeros(1)})
    bad = dict(sd)
    bad.pop("tail.1.bias")
    with pytest.raises(ValueError, match="missing"):
        interposer_from_state_dict(bad)
    bad = dict(sd)
    bad["tail.1.weight"] = torch.zeros(4, 8, 1, 1)
    with pytest.raises(ValueError, match="shape"):
        interposer_from_state_dict(bad)
    bad = dict(sd)
    for j in (0, 2, 4):
        bad[f"core.2.long.{j}.weight"] = torch.zeros(8, 8, 3, 3)
        bad[f"core.2.long.{j}.bias"] = torch.zeros(8)
    with pytest.raises(ValueError, match="contiguous"):
        layout_of(bad)
    m = interposer_from_state_dict(sd)
    with pytest.raises(ValueError, match="x: expected"):
        m(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="latent"):
        interpose(m, [1, 2])
    with pytest.raises(ValueError, match="path"):
        load_interposer("/nonexistent/x.safetensors")
    with pytest.raises(ValueError, match="hidden"):
        LatentInterposer(0, 1)
