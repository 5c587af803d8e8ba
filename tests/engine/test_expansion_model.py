"""Loading the Fooocus V2 GPT-2 folder (engine.expansion_model) with the tiny test weights."""
from __future__ import annotations

import shutil

import pytest
import torch

from conftest import FOOOCUS_DATA
from engine import expansion_model as EM
from engine.expansion import expand_prompt

DATA = FOOOCUS_DATA / "prompt_expansion" / "fooocus_expansion"

@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run faster on one thread on a busy 2-core machine; restored afterwards so later
    tests (e.g. in-process vs HTTP comparisons) see the process default."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_tiny(folder):
    import tiny_extra_prompt

    tiny_extra_prompt.generate(folder.parent.parent)  # writes prompt_expansion/fooocus_expansion + safety_checker
    return folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    if not (DATA / "tokenizer.json").is_file():
        pytest.skip(f"Fooocus tokenizer files not found at {DATA} (set FOOOCUS_SHARED)")
    root = tmp_path_factory.mktemp("exp")
    return _write_tiny(root / "prompt_expansion" / "fooocus_expansion")


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        EM.find_expansion_files(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError) as e:
        EM.find_expansion_files(tmp_path / "x")
    msg = str(e.value)
    for part in ("config.json", "positive.txt", "tokenizer.json", "pytorch_model.bin", "fooocus_expansion"):
        assert part in msg


def test_normalize_state_dict():
    wte = torch.zeros(10, 4)
    sd = EM.normalize_gpt2_state_dict({"wte.weight": wte, "h.0.attn.bias": torch.ones(1), "h.0.ln_1.weight": torch.ones(4)})
    assert set(sd) == {"transformer.wte.weight", "transformer.h.0.ln_1.weight", "lm_head.weight"}
    assert sd["lm_head.weight"] is wte
    sd2 = EM.normalize_gpt2_state_dict({"transformer.wte.weight": wte, "lm_head.weight": wte + 1})
    assert torch.equal(sd2["lm_head.weight"], wte + 1)
    with pytest.raises(ValueError, match="wte"):
        EM.normalize_gpt2_state_dict({"foo": wte})
    with pytest.raises(ValueError, match="dict of tensors"):
        EM.normalize_gpt2_state_dict({"foo": 1})


def test_load_and_expand_deterministic(tiny_folder):
    m = EM.load_expansion_model(tiny_folder)
    assert m.model.config.n_layer == 1 and m.model.dtype == torch.float32
    assert int((m.logits_bias == 0).sum()) > 500  # the positive.txt words
    # the lm head is tied back to the token embeddings
    assert torch.equal(m.model.lm_head.weight, m.model.transformer.wte.weight)
    a = expand_prompt("a cozy wooden cabin", 1, m.tokenizer, m.model, m.logits_bias)
    b = expand_prompt("a cozy wooden cabin", 2, m.tokenizer, m.model, m.logits_bias)
    assert a.startswith("a cozy wooden cabin,") and a != b
    assert a == expand_prompt("a cozy wooden cabin", 1, m.tokenizer, m.model, m.logits_bias)


def test_weights_that_do_not_fit(tiny_folder, tmp_path):
    bad = tmp_path / "fooocus_expansion"
    shutil.copytree(tiny_folder, bad)
    torch.save({"wte.weight": torch.zeros(5, 3)}, bad / "pytorch_model.bin")
    with pytest.raises(ValueError, match="do not fit"):
        EM.load_expansion_model(bad)
