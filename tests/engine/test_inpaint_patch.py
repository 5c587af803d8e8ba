"""Fooocus inpaint patch files (engine/inpaint_patch.py)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from engine.inpaint_patch import (
    ENGINE_FILENAMES,
    InvalidInpaintPatch,
    PatchEntry,
    apply_delta_,
    decode_delta,
    engine_version_from_filename,
    filename_for_engine_version,
    load_inpaint_patch,
    make_random_patch,
    match_keys,
    patch_numel,
    save_inpaint_patch,
    validate_patch,
)
from engine.safe_pickle import CorruptModelFile, UnsafeModelFile, UnsafeOrCorruptModelFile

SHAPES = {
    "diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "diffusion_model.input_blocks.0.0.bias": (320,),
    "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight": (64, 64),
    "diffusion_model.out.2.weight": (4, 320, 3, 3),
}


def _reference_delta(u8: torch.Tensor, lo: float, hi: float) -> np.ndarray:
    """Hand-written float32 formula: (u8/255) * (hi - lo) + lo, each step rounded to float32."""
    a = u8.numpy().astype(np.float32)
    lo32, hi32 = np.float32(lo), np.float32(hi)
    rng = np.float32(hi32 - lo32)
    return (a / np.float32(255.0)).astype(np.float32) * rng + lo32


def test_make_random_patch_deterministic():
    a = make_random_patch(SHAPES, seed=3)
    b = make_random_patch(SHAPES, seed=3)
    c = make_random_patch(SHAPES, seed=4)
    assert list(a) == list(SHAPES)
    for k, shape in SHAPES.items():
        assert a[k][0].dtype == torch.uint8 and tuple(a[k][0].shape) == shape
        assert a[k][1].dim() == 0 and a[k][1].dtype == torch.float32 and a[k][1] < 0 < a[k][2]
        for x, y in zip(a[k], b[k]):
            assert torch.equal(x, y)
    assert not torch.equal(a["diffusion_model.out.2.weight"][0], c["diffusion_model.out.2.weight"][0])
    assert patch_numel(a) == sum(int(np.prod(s)) for s in SHAPES.values())


@pytest.mark.parametrize("suffix", [".patch", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    state = make_random_patch(SHAPES, seed=1)
    p = tmp_path / f"inpaint_v26.fooocus{suffix}"
    save_inpaint_patch(p, state)
    out = load_inpaint_patch(p)
    assert list(out) == list(state) if suffix == ".patch" else set(out) == set(state)
    for k, (u8, lo, hi) in state.items():
        e = out[k]
        assert isinstance(e, PatchEntry) and e.u8.dtype == torch.uint8
        assert torch.equal(e.u8, u8) and e.shape == u8.shape
        assert float(e.w_min) == float(lo) and float(e.w_max) == float(hi)
        assert torch.equal(decode_delta(e), decode_delta((u8, lo, hi)))


def test_saved_pickle_is_the_fooocus_format(tmp_path):
    state = make_random_patch(SHAPES, seed=1)
    p = tmp_path / "x.patch"
    save_inpaint_patch(p, state)
    raw = torch.load(p, weights_only=True)
    assert type(raw) is dict and list(raw) == list(SHAPES)
    for k, v in raw.items():
        assert type(v) is tuple and len(v) == 3 and v[0].dtype == torch.uint8


def test_mmap_load(tmp_path):
    state = make_random_patch(SHAPES, seed=2)
    p = tmp_path / "m.patch"
    save_inpaint_patch(p, state)
    out = load_inpaint_patch(p, mmap=True)
    for k in SHAPES:
        assert torch.equal(out[k].u8, state[k][0])


def test_decode_exact_values():
    u8 = torch.arange(256, dtype=torch.uint8).reshape(16, 16)
    lo, hi = -0.0123456789, 0.0456789
    for lo_t, hi_t in [
        (torch.tensor(lo), torch.tensor(hi)),
        (torch.tensor([lo]), torch.tensor([hi])),
        (lo, hi),  # python floats: converted to float32 first
    ]:
        d = decode_delta((u8, lo_t, hi_t))
        assert d.dtype == torch.float32 and d.shape == u8.shape
        np.testing.assert_array_equal(d.numpy(), _reference_delta(u8, lo, hi))
    d = decode_delta((u8, torch.tensor(lo), torch.tensor(hi)))
    assert float(d[0, 0]) == np.float32(lo)
    # the same expression written the torch way, out of place
    ref = (u8.to(torch.float32) / 255.0) * (torch.tensor(hi) - torch.tensor(lo)) + torch.tensor(lo)
    assert torch.equal(d, ref)
    # float16 min/max are widened to float32 before the subtraction
    lo16, hi16 = torch.tensor(lo, dtype=torch.float16), torch.tensor(hi, dtype=torch.float16)
    d16 = decode_delta((u8, lo16, hi16))
    np.testing.assert_array_equal(d16.numpy(), _reference_delta(u8, float(lo16), float(hi16)))
    # output dtype cast happens after the float32 arithmetic
    assert torch.equal(decode_delta((u8, lo, hi), dtype=torch.float16), d.to(torch.float16))


def test_decode_per_channel_minmax():
    u8 = torch.randint(0, 256, (3, 5), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    lo = torch.tensor([[-1.0], [-0.5], [0.0]])
    hi = torch.tensor([[1.0], [0.5], [0.25]])
    d = decode_delta((u8, lo, hi))
    ref = (u8.float() / 255.0) * (hi - lo) + lo
    assert torch.equal(d, ref)


def test_min_equals_max():
    u8 = torch.randint(0, 256, (7, 9), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    d = decode_delta((u8, torch.tensor(0.003), torch.tensor(0.003)))
    assert torch.equal(d, torch.full((7, 9), np.float32(0.003)))
    w = torch.ones(7, 9)
    apply_delta_(w, (u8, 0.0, 0.0), 1.0)
    assert torch.equal(w, torch.ones(7, 9))


def test_apply_delta_in_place_and_strength():
    state = make_random_patch({"k": (8, 6)}, seed=9)
    e = state["k"]
    w0 = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    w = w0.clone()
    out = apply_delta_(w, e, 1.0)
    assert out is w
    assert torch.equal(w, w0 + decode_delta(e))
    w = w0.clone()
    apply_delta_(w, e, 0.7)
    assert torch.equal(w, w0 + 0.7 * decode_delta(e))
    w = w0.clone()
    apply_delta_(w, e, 0.0)
    assert torch.equal(w, w0)
    # non-float32 weight: decode in float32, cast, then multiply-add in the weight dtype (Fooocus order)
    w16 = w0.to(torch.float16)
    ref16 = w16 + 0.5 * decode_delta(e).to(torch.float16)
    apply_delta_(w16, e, 0.5)
    assert torch.equal(w16, ref16)


def test_apply_delta_shape_mismatch(caplog):
    e = make_random_patch({"k": (4, 4)}, seed=0)["k"]
    w = torch.zeros(4, 5)
    with caplog.at_level(logging.WARNING, logger="engine.inpaint_patch"):
        out = apply_delta_(w, e, 1.0, key="diffusion_model.x.weight")
    assert out is w and torch.equal(w, torch.zeros(4, 5))
    assert any("shape mismatch" in r.message and "diffusion_model.x.weight" in r.message for r in caplog.records)


def _bad(tmp_path, obj, name="bad.patch"):
    p = tmp_path / name
    torch.save(obj, p)
    return p


@pytest.mark.parametrize(
    "obj, needle",
    [
        ([1, 2, 3], "expected a dict"),
        ({}, "empty"),
        ({"a": (torch.zeros(2, dtype=torch.uint8), 0.0)}, "'a'"),
        ({"a": torch.zeros(2, dtype=torch.uint8)}, "3-tuple"),
        ({"ok": (torch.zeros(2, dtype=torch.uint8), 0.0, 1.0), "b": (torch.zeros(2), 0.0, 1.0)}, "'b': w_u8 must be a torch.uint8"),
        ({"c": (torch.zeros(2, dtype=torch.uint8), float("nan"), 1.0)}, "'c': w_min is not finite"),
        ({"d": (torch.zeros(2, dtype=torch.uint8), 0.0, torch.tensor(float("inf")))}, "'d': w_max is not finite"),
        ({"e": (torch.zeros(2, dtype=torch.uint8), "x", 1.0)}, "'e': w_min must be"),
        ({"f": (torch.zeros(2, dtype=torch.uint8), torch.tensor(0, dtype=torch.int32), 1.0)}, "'f': w_min must be a float"),
        ({"g": (torch.zeros(2, 3, dtype=torch.uint8), torch.zeros(4), 1.0)}, "'g': w_min has shape"),
        ({3: (torch.zeros(2, dtype=torch.uint8), 0.0, 1.0)}, "str keys"),
    ],
)
def test_invalid_structure(tmp_path, obj, needle):
    p = _bad(tmp_path, obj)
    with pytest.raises(InvalidInpaintPatch) as ei:
        load_inpaint_patch(p)
    assert needle in str(ei.value) and str(p) in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_validate_accepts_lists_and_python_floats():
    out = validate_patch({"k": [torch.zeros(3, dtype=torch.uint8), -1, 2.5]})
    assert out["k"].w_min.dtype == torch.float32 and float(out["k"].w_min) == -1.0 and float(out["k"].w_max) == 2.5


def test_file_errors(tmp_path):
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil.patch"
    torch.save({"diffusion_model.x": (torch.zeros(1, dtype=torch.uint8), Evil(), 1.0)}, p)
    with pytest.raises(UnsafeModelFile) as ei:
        load_inpaint_patch(p)
    assert not marker.exists() and "inpaint patch" in str(ei.value)
    good = tmp_path / "good.patch"
    save_inpaint_patch(good, make_random_patch(SHAPES, 0))
    tr = tmp_path / "trunc.patch"
    tr.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CorruptModelFile, match="trunc.patch"):
        load_inpaint_patch(tr)
    junk = tmp_path / "junk.patch"
    junk.write_bytes(b"Entry not found")
    with pytest.raises(UnsafeOrCorruptModelFile, match="junk.patch"):
        load_inpaint_patch(junk)


def test_safetensors_layout_errors(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "a.safetensors"
    save_file({"k.u8": torch.zeros(2, dtype=torch.uint8), "k.min": torch.zeros(1)}, p)
    with pytest.raises(InvalidInpaintPatch, match="k.max"):
        load_inpaint_patch(p)
    save_file({"k.weight": torch.zeros(2)}, p)
    with pytest.raises(InvalidInpaintPatch, match="k.weight"):
        load_inpaint_patch(p)
    save_file({"k.u8": torch.zeros(2, dtype=torch.uint8), "k.min": torch.zeros(1), "k.max": torch.ones(1)}, p,
              metadata={"format": "something-else"})
    with pytest.raises(InvalidInpaintPatch, match="something-else"):
        load_inpaint_patch(p)


def test_match_keys_comfy_names():
    patch = list(SHAPES) + ["diffusion_model.not_in_model.weight"]
    comfy = [k for k in SHAPES] + ["diffusion_model.time_embed.0.weight"]  # BaseModel.state_dict() names
    matched, unmatched = match_keys(patch, comfy)
    assert matched == {k: k for k in SHAPES}
    assert unmatched == ["diffusion_model.not_in_model.weight"]
    bare = [k[len("diffusion_model."):] for k in SHAPES]  # UNetModel.state_dict() names
    matched, unmatched = match_keys(patch, bare)
    assert matched == {k: k[len("diffusion_model."):] for k in SHAPES} and len(unmatched) == 1
    ckpt = ["model." + k for k in SHAPES]  # checkpoint file names
    matched, _ = match_keys(patch, ckpt)
    assert matched == {k: "model." + k for k in SHAPES}
    # bare patch keys against ComfyUI names
    matched, unmatched = match_keys(bare, comfy)
    assert matched == dict(zip(bare, SHAPES)) and unmatched == []
    # a verbatim match wins over a prefix match
    m, _ = match_keys(["diffusion_model.a"], ["a", "diffusion_model.a"])
    assert m == {"diffusion_model.a": "diffusion_model.a"}


def test_engine_version_from_filename():
    assert engine_version_from_filename("inpaint.fooocus.patch") == "v1"
    assert engine_version_from_filename("inpaint_v25.fooocus.patch") == "v2.5"
    assert engine_version_from_filename("/models/inpaint/inpaint_v26.fooocus.patch") == "v2.6"
    assert engine_version_from_filename("INPAINT_V26.FOOOCUS.PATCH") == "v2.6"
    assert engine_version_from_filename("inpaint_v26.fooocus.safetensors") == "v2.6"
    assert engine_version_from_filename("fooocus_inpaint_head.pth") is None
    assert engine_version_from_filename("my_inpaint.patch") is None
    for v, name in ENGINE_FILENAMES.items():
        assert filename_for_engine_version(v) == name and engine_version_from_filename(name) == v
    with pytest.raises(ValueError, match="version"):
        filename_for_engine_version("None")
