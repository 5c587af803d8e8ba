"""Safe loading of untrusted torch / safetensors files (engine/safe_pickle.py)."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from engine.safe_pickle import (
    CorruptModelFile,
    ModelFileMissing,
    UnsafeModelFile,
    UnsafeOrCorruptModelFile,
    load_model_file,
    load_safetensors,
    safe_torch_load,
    sniff_format,
)


class _Evil:
    """Pickles to ``os.system("touch <marker>")``: must never run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvilEval:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').write('x')",))


def _patch_like() -> dict:
    return {
        "diffusion_model.input_blocks.0.0.weight": (
            torch.arange(320 * 4 * 9, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(320, 4, 3, 3),
            torch.tensor(-0.01),
            torch.tensor([0.02]),
        ),
        "diffusion_model.out.2.bias": (torch.zeros(4, dtype=torch.uint8), torch.tensor(0.0, dtype=torch.float16), 0.5),
    }


def test_real_formats_load_weights_only(tmp_path):
    d = _patch_like()
    p = tmp_path / "inpaint_v26.fooocus.patch"
    torch.save(d, p)
    assert sniff_format(p) == "torch_zip"
    out = safe_torch_load(p)
    assert list(out) == list(d)
    for k in d:
        assert isinstance(out[k], tuple) and len(out[k]) == 3
        assert torch.equal(out[k][0], d[k][0]) and out[k][0].dtype == torch.uint8
    assert out["diffusion_model.out.2.bias"][2] == 0.5  # python float survives
    h = tmp_path / "fooocus_inpaint_head.pth"
    torch.save({"head": torch.ones(320, 5, 3, 3)}, h)
    assert torch.equal(safe_torch_load(h)["head"], torch.ones(320, 5, 3, 3))


def test_legacy_format_and_mmap(tmp_path):
    d = _patch_like()
    p = tmp_path / "legacy.patch"
    torch.save(d, p, _use_new_zipfile_serialization=False)
    assert sniff_format(p) == "torch_legacy"
    out = safe_torch_load(p, mmap=True)  # mmap silently ignored for the legacy format
    assert torch.equal(out["diffusion_model.input_blocks.0.0.weight"][0], d["diffusion_model.input_blocks.0.0.weight"][0])
    z = tmp_path / "zip.patch"
    torch.save(d, z)
    outm = safe_torch_load(z, mmap=True)
    assert torch.equal(outm["diffusion_model.input_blocks.0.0.weight"][0], d["diffusion_model.input_blocks.0.0.weight"][0])


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("evil_cls", [_Evil, _EvilEval])
def test_malicious_pickle_refused_and_not_run(tmp_path, legacy, evil_cls):
    marker = tmp_path / "PWNED"
    p = tmp_path / "evil.pth"
    torch.save({"head": evil_cls(str(marker))}, p, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeModelFile) as ei:
        safe_torch_load(p, what="inpaint head")
    assert not marker.exists()
    msg = str(ei.value)
    assert str(p) in msg and "refused" in msg and "inpaint head" in msg
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, UnsafeOrCorruptModelFile)
    with pytest.raises(UnsafeModelFile):
        load_model_file(p)
    assert not marker.exists()


def test_raw_pickle_with_reduce_refused(tmp_path):
    marker = tmp_path / "PWNED"
    p = tmp_path / "raw.bin"
    p.write_bytes(pickle.dumps({"k": _Evil(str(marker))}, protocol=2))
    with pytest.raises(UnsafeOrCorruptModelFile) as ei:
        safe_torch_load(p)
    assert not marker.exists()
    assert str(p) in str(ei.value)


def test_not_a_model_file(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(b"hello, this is not a model file at all")
    with pytest.raises(CorruptModelFile) as ei:
        safe_torch_load(p)
    assert str(p) in str(ei.value) and "neither a torch.save file" in str(ei.value)
    html = tmp_path / "inpaint_v26.fooocus.patch"
    html.write_bytes(b"<!DOCTYPE html><html>404 Not Found</html>")
    with pytest.raises(CorruptModelFile, match="neither"):
        load_model_file(html)


def test_empty_and_missing(tmp_path):
    p = tmp_path / "empty.patch"
    p.write_bytes(b"")
    with pytest.raises(CorruptModelFile, match="is empty"):
        safe_torch_load(p)
    missing = tmp_path / "nope.pth"
    with pytest.raises(ModelFileMissing) as ei:
        safe_torch_load(missing)
    assert isinstance(ei.value, FileNotFoundError) and isinstance(ei.value, ValueError)
    assert str(missing) in str(ei.value)
    with pytest.raises(ModelFileMissing):
        safe_torch_load(tmp_path)  # a directory


@pytest.mark.parametrize("frac", [0.1, 0.5, 0.9, 0.999])
def test_truncated_zip(tmp_path, frac):
    full = tmp_path / "full.patch"
    torch.save(_patch_like(), full)
    data = full.read_bytes()
    p = tmp_path / "trunc.patch"
    p.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(CorruptModelFile) as ei:
        safe_torch_load(p, what="inpaint patch")
    assert str(p) in str(ei.value) and "inpaint patch" in str(ei.value)


@pytest.mark.parametrize("frac", [0.05, 0.5, 0.95])
def test_truncated_legacy(tmp_path, frac):
    full = tmp_path / "full.patch"
    torch.save(_patch_like(), full, _use_new_zipfile_serialization=False)
    data = full.read_bytes()
    p = tmp_path / "trunc.patch"
    p.write_bytes(data[: int(len(data) * frac)])
    # a pickle cut inside a GLOBAL opcode names a bogus global ("torch.Ha"): refused as unsafe,
    # which is still the common base class
    with pytest.raises(UnsafeOrCorruptModelFile) as ei:
        safe_torch_load(p)
    assert str(p) in str(ei.value)


def test_foreign_zip(tmp_path):
    import zipfile

    p = tmp_path / "other.pth"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("readme.txt", "not torch")
    with pytest.raises(CorruptModelFile) as ei:
        safe_torch_load(p)
    assert str(p) in str(ei.value)


def test_safetensors(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "head.safetensors"
    save_file({"head": torch.full((320, 5, 3, 3), 0.5)}, p, metadata={"a": "b"})
    assert sniff_format(p) == "safetensors"
    t, meta = load_safetensors(p)
    assert meta == {"a": "b"} and torch.equal(t["head"], torch.full((320, 5, 3, 3), 0.5))
    obj, meta2, fmt = load_model_file(p)
    assert fmt == "safetensors" and meta2 == {"a": "b"} and set(obj) == {"head"}
    with pytest.raises(CorruptModelFile, match="safetensors file, not a torch"):
        safe_torch_load(p)
    # truncated data section
    data = p.read_bytes()
    q = tmp_path / "trunc.safetensors"
    q.write_bytes(data[: len(data) - 100])
    with pytest.raises(CorruptModelFile) as ei:
        load_model_file(q)
    assert str(q) in str(ei.value)
    # a torch file named .safetensors is still read by content, safely
    r = tmp_path / "really_a_pickle.safetensors"
    torch.save({"head": torch.zeros(1)}, r)
    with pytest.raises(CorruptModelFile, match="not safetensors"):
        load_safetensors(r)
    assert load_model_file(r)[2] == "torch_zip"
