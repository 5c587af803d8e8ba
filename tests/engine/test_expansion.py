"""Fooocus V2 expansion mechanics against oracle/expansion.json, plus a tiny random GPT-2 end to end.

The tokenizer and positive.txt come from shared/fooocus-data (GPL data, not in the repository); tests that need
them skip when they are absent. No GPT-2 weights are used.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from conftest import FOOOCUS_DATA, load_json

from engine import expansion as E
from engine.prompt import safe_str

EXP_DIR = FOOOCUS_DATA / "prompt_expansion" / "fooocus_expansion"


@pytest.fixture(scope="module")
def oracle(oracle_dir):
    return load_json("expansion.json")


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("transformers")
    if not (EXP_DIR / "tokenizer.json").is_file():
        pytest.skip(f"Fooocus expansion tokenizer not found at {EXP_DIR}")
    return E.load_tokenizer(EXP_DIR)


@pytest.fixture(scope="module")
def words():
    if not (EXP_DIR / "positive.txt").is_file():
        pytest.skip(f"positive.txt not found at {EXP_DIR}")
    return E.load_positive_words(EXP_DIR / "positive.txt")


@pytest.fixture(scope="module")
def bias(tokenizer, words):
    return E.build_logits_bias(tokenizer.vocab, words)


# ---------------------------------------------------------------- bias


def test_allowed_tokens_match_oracle(oracle, tokenizer, words, bias):
    assert oracle["neg_inf"] == E.NEG_INF
    assert len(tokenizer.vocab) == oracle["vocab_size"] == 50257
    assert len(words) == oracle["positive_txt_nonempty_lines"]
    assert bias.shape == (50257,) and bias.dtype == torch.float32
    assert set(torch.unique(bias).tolist()) == {0.0, E.NEG_INF}
    ids = E.allowed_token_ids(bias)
    assert ids == oracle["allowed_token_ids"]
    assert len(ids) == oracle["allowed_count"]
    inv = {v: k for k, v in tokenizer.vocab.items()}
    assert sorted(inv[i] for i in ids) == sorted(oracle["allowed_tokens"])


def test_build_logits_bias_small_vocab():
    vocab = {"\u0120cat": 3, "\u0120dog": 5, "cat": 4, ",": 11, "\u0120Big": 7, "\u0120big": 8}
    b = E.build_logits_bias(vocab, ["Cat", "BIG", "", "absent"], vocab_size=16)
    assert E.allowed_token_ids(b) == [3, 8]
    assert b.shape == (16,)
    with pytest.raises(ValueError, match="vocab_size"):
        E.build_logits_bias(vocab, ["cat"])  # len(vocab) = 6 is too small to hold id 11
    with pytest.raises(ValueError, match="tokenizer_vocab"):
        E.build_logits_bias({"\u0120cat": 40}, ["cat"], vocab_size=20)
    with pytest.raises(ValueError, match="tokenizer_vocab"):
        E.build_logits_bias([("a", 1)], ["cat"], vocab_size=20)


def test_load_positive_words(tmp_path):
    f = tmp_path / "positive.txt"
    f.write_text("alpha\n\nBeta\r\n gamma \n", encoding="utf-8")
    assert E.load_positive_words(f) == ["alpha", "Beta", " gamma "]
    with pytest.raises(ValueError, match="missing.txt"):
        E.load_positive_words(tmp_path / "missing.txt")


# ---------------------------------------------------------------- logits processor


def test_logits_processor_cases(oracle, bias):
    allowed = set(oracle["allowed_token_ids"])
    cases = oracle["logits_processor_cases"]
    assert len(cases) == 4
    for c in cases:
        ids = torch.tensor([c["input_ids"]], dtype=torch.long)
        out = E.apply_bias(ids, torch.zeros(1, 50257), bias)
        assert out.shape == (1, 50257) and out.dtype == torch.float32
        zero = set(torch.nonzero(out[0] == 0).reshape(-1).tolist())
        assert len(zero) == c["zero_bias_ids_count"]
        assert sorted(allowed - zero) == c["zero_bias_ids_removed_vs_allowed"]
        assert sorted(zero - allowed) == c["zero_bias_ids_added_vs_allowed"] == [11]
        others = torch.unique(out[0][out[0] != 0]).tolist()
        assert others == c["other_values"] == [E.NEG_INF]


def test_apply_bias_adds_to_scores_and_casts():
    bias = torch.full((20,), E.NEG_INF)
    bias[[3, 4, 5]] = 0
    scores = torch.arange(20, dtype=torch.float32).reshape(1, 20)
    out = E.apply_bias(torch.tensor([4, 11, 4]), scores, bias)  # 1-D ids accepted
    expect = scores + E.NEG_INF
    expect[0, 3] = 3
    expect[0, 5] = 5
    expect[0, 11] = 11
    assert torch.equal(out, expect)
    half = E.apply_bias(torch.tensor([[4]]), scores.half(), bias)  # bias follows the scores' dtype
    assert half.dtype == torch.float16
    b = bias.clone()
    b[4] = E.NEG_INF
    b[11] = 0
    assert torch.equal(half, scores.half() + b.half())
    assert torch.equal(bias[[3, 4, 5]], torch.zeros(3))  # the static bias is not modified
    with pytest.raises(ValueError, match="scores"):
        E.apply_bias(torch.tensor([[1]]), torch.zeros(2, 20), bias)
    with pytest.raises(ValueError, match="input_ids"):
        E.apply_bias(torch.tensor([[1], [2]]), torch.zeros(1, 20), bias)
    with pytest.raises(ValueError, match="bias"):
        E.apply_bias(torch.tensor([[1]]), torch.zeros(1, 21), bias)


# ---------------------------------------------------------------- __call__ pieces


def test_max_new_tokens_rule():
    assert E.max_new_tokens(0) == 0
    assert E.max_new_tokens(1) == 74
    assert E.max_new_tokens(3) == 72
    assert E.max_new_tokens(74) == 1
    assert E.max_new_tokens(75) == 0
    assert E.max_new_tokens(76) == 74
    assert E.max_new_tokens(150) == 0
    assert E.max_new_tokens(152) == 73
    for bad in (-1, 1.0, True, None):
        with pytest.raises(ValueError, match="token_count"):
            E.max_new_tokens(bad)


def test_expansion_seed():
    assert E.expansion_seed(12345) == 12345
    assert E.expansion_seed(2**32 + 7) == 7
    assert E.expansion_seed(2**63 - 1) == 2**32 - 1
    assert E.expansion_seed(-1) == 2**32 - 1
    assert E.expansion_seed(np.int64(5)) == 5
    with pytest.raises(ValueError, match="seed"):
        E.expansion_seed(1.5)


def test_seed_everything_like_set_seed():
    E.seed_everything(1234)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1234)
    np.random.seed(1234)
    torch.manual_seed(1234)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    with pytest.raises(ValueError, match="seed"):
        E.seed_everything(2**32)


def test_clean_up_tokenization():
    assert E.clean_up_tokenization("a , b . c ? d ! e ' f do n't it 's I 'm we 've they 're") == (
        "a, b. c? d! e'f don't it's I'm we've they're"
    )
    assert E.clean_up_tokenization("a cat, new") == "a cat, new"


class _IdentityModel:
    """Stands in for GPT-2: ``generate`` returns its input ids and records the call."""

    def __init__(self):
        self.calls = []

    def generate(self, **kwargs):
        self.calls.append(kwargs)
        return kwargs["input_ids"]


def test_call_cases_with_identity_generate(oracle, tokenizer, bias):
    cases = oracle["call_cases"]
    assert {c["token_length"] for c in cases} >= {74, 75, 76, 150, 151, 152}
    for c in cases:
        model = _IdentityModel()
        result = E.expand_prompt(c["prompt"], 12345, tokenizer, model, bias)
        assert result == c["result_with_identity_generate"], c["prompt"][:40]
        if c["prompt"] == "":
            assert c["input_ids"] is None and model.calls == []
            continue
        ids = tokenizer(safe_str(c["prompt"]) + ",")["input_ids"]
        assert ids == c["input_ids"]
        assert len(ids) == c["token_length"]
        assert E.max_new_tokens(len(ids)) == c["max_new_tokens"]
        assert bool(model.calls) is c["generate_called"]
        if model.calls:
            kw = model.calls[0]
            assert kw["max_new_tokens"] == c["max_new_tokens"]
            assert kw["top_k"] == 100 and kw["do_sample"] is True
            assert kw["input_ids"][0].tolist() == ids
            assert len(kw["logits_processor"]) == 1


def test_expand_prompt_argument_errors(tokenizer, bias):
    with pytest.raises(ValueError, match="prompt"):
        E.expand_prompt(None, 1, tokenizer, _IdentityModel(), bias)
    with pytest.raises(ValueError, match="seed"):
        E.expand_prompt("a cat", "1", tokenizer, _IdentityModel(), bias)


def test_load_tokenizer_errors(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="does not exist"):
        E.load_tokenizer(tmp_path / "nope")
    with pytest.raises(ValueError, match="cannot load"):
        E.load_tokenizer(tmp_path)


# ---------------------------------------------------------------- tiny random GPT-2, real sampling

# 65 tokens with the trailing ',' → 10 new tokens (keeps the test fast)
LONG_PROMPT = ", ".join(["a red fox in the snow"] * 9) + ", forest"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny-model sampling is dominated by thread overhead on a busy machine: run it single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_gpt2(one_thread):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50257, n_positions=256)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def runs(tokenizer, tiny_gpt2, bias):
    out = {}
    for key, seed in (("a", 12345), ("a_again", 12345 + 2**32), ("b", 777)):
        out[key] = E.generate_expansion_ids(LONG_PROMPT, seed, tokenizer, tiny_gpt2, bias)
    out["text_a"] = E.expand_prompt(LONG_PROMPT, 12345, tokenizer, tiny_gpt2, bias)
    return out


def test_tiny_gpt2_deterministic_per_seed(runs):
    assert runs["a"] == runs["a_again"]  # seeds equal modulo 2**32
    assert runs["a"][1] != runs["b"][1]


def test_tiny_gpt2_token_rules(runs, oracle):
    allowed = set(oracle["allowed_token_ids"])
    for key in ("a", "b"):
        input_ids, full = runs[key]
        assert len(input_ids) == 65
        assert full[:65] == input_ids
        new = full[65:]
        assert len(new) == E.max_new_tokens(65) == 10
        for k, tok in enumerate(new):
            assert tok in allowed or tok == E.COMMA_TOKEN_ID
            if tok != E.COMMA_TOKEN_ID:
                assert tok not in full[:65 + k], "a token already in the sequence was generated"


def test_tiny_gpt2_text(runs, tokenizer):
    input_ids, full = runs["a"]
    text = runs["text_a"]
    assert text == safe_str(E.clean_up_tokenization(tokenizer.decode(full, skip_special_tokens=True)))
    assert text.startswith(safe_str(LONG_PROMPT) + ",")
    assert len(text) > len(LONG_PROMPT) + 10


def test_tiny_gpt2_short_prompt_length(tokenizer, tiny_gpt2, bias):
    ids, full = E.generate_expansion_ids("a cat", 5, tokenizer, tiny_gpt2, bias)
    assert ids == [64, 3797, 11]
    assert len(full) == 75


def test_no_generation_at_chunk_boundary(oracle, tokenizer, bias):
    case = next(c for c in oracle["call_cases"] if c["token_length"] == 75)

    class _Boom:
        def generate(self, **kwargs):
            raise AssertionError("generate must not be called")

    assert E.expand_prompt(case["prompt"], 1, tokenizer, _Boom(), bias) == safe_str(case["prompt"])
    assert E.expand_prompt("", 1, tokenizer, _Boom(), bias) == ""


def test_default_bias_from_tokenizer_folder(tokenizer, bias):
    model = _IdentityModel()
    assert E.expand_prompt("a cat", 3, tokenizer, model) == "a cat"
    proc = model.calls[0]["logits_processor"][0]
    out = proc(torch.tensor([[64]]), torch.zeros(1, 50257))
    assert torch.equal(out, E.apply_bias(torch.tensor([[64]]), torch.zeros(1, 50257), bias))

    class _NoFolder:
        name_or_path = ""
        vocab = {}

    with pytest.raises(ValueError, match="logits_bias"):
        E.generate_expansion_ids("a cat", 1, _NoFolder(), model)


def test_seeds_even_without_generation(oracle, tokenizer, bias):
    """Fooocus calls set_seed before it knows whether it will generate."""
    case = next(c for c in oracle["call_cases"] if c["token_length"] == 150)
    random.seed(999)
    E.generate_expansion_ids(case["prompt"], 2**32 + 21, tokenizer, _IdentityModel(), bias)
    got = random.random()
    random.seed(21)
    assert got == random.random()


def test_generated_text_is_decoded_with_clean_up(tokenizer, bias):
    # With generation (even an identity one) the sequence is decoded and cleaned up like transformers 4.42.
    assert E.expand_prompt("a , b . it 's", 1, tokenizer, _IdentityModel(), bias) == "a, b. it's"
