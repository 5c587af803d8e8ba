"""Fooocus wildcards (spec fooocus-pipeline.md §6 "Per image i", §9): ``__name__`` → a line of ``name.txt``,
random per image seed or in order, breadth-first nesting up to 64, missing → bare name."""
from __future__ import annotations

import logging
import random

import pytest

from engine import prompt as P
from engine import wildcards as W

WC = {"animal": ["cat", "", "dog", "fox"], "color": ["red __shade__"], "shade": ["dark"], "empty": [""],
      "Animal": ["CAT"], "two-words_9": ["ok"]}


def test_find_wildcards_and_lines():
    assert W.find_wildcards("__a__ x __b-c_1__ __a__ _d_ ___e___ __ __f g__") == ["a", "b-c_1", "a", "_e_"]
    assert W.find_wildcards("no placeholders") == []
    assert W.wildcard_lines("cat\n\ndog\r\n  \nfox") == ["cat", "dog", "  ", "fox"]  # not stripped
    assert W.wildcard_lines("") == []
    with pytest.raises(ValueError, match="text"):
        W.find_wildcards(None)
    with pytest.raises(ValueError, match="content"):
        W.wildcard_lines(b"x")


def test_random_choice_breadth_first_and_rng_use():
    rng = random.Random(7)
    replay = random.Random(7)
    first = replay.choice(["cat", "dog", "fox"])
    second = replay.choice(["cat", "dog", "fox"])
    replay.choice(["red __shade__"])  # a one-line file still draws
    replay.choice(["dark"])  # second pass
    text = "__animal__ and __animal__, __color__, __missing__ __missing__, __empty__"
    out = W.apply_wildcards(text, rng, 0, WC)
    assert out == f"{first} and {second}, red dark, missing missing, empty"
    assert rng.getstate() == replay.getstate()
    # pinned values for seed 7 (Python's Mersenne Twister is stable across versions)
    assert (first, second) == ("dog", "cat")


def test_exact_outputs_per_seed():
    outs = [W.resolve_wildcards("a __animal__ in __color__", WC, seed) for seed in range(6)]
    assert outs == ["a dog in red dark", "a cat in red dark", "a cat in red dark", "a cat in red dark",
                    "a cat in red dark", "a fox in red dark"]
    assert [W.resolve_wildcards("a __animal__", WC, s) for s in range(6)] == [o[:5].rstrip() for o in outs]
    # deterministic: equal arguments, equal text; big task seeds are fine
    assert W.resolve_wildcards("__animal__", WC, 2**63 - 1) == W.resolve_wildcards("__animal__", WC, 2**63 - 1)


def test_case_sensitive_names_and_characters():
    rng = random.Random(0)
    assert W.apply_wildcards("__Animal__ __two-words_9__", rng, 0, WC) == "CAT ok"
    assert W.apply_wildcards("__ANIMAL__", random.Random(0), 0, WC) == "ANIMAL"  # no such file: bare name


def test_read_in_order_uses_image_index():
    got = [W.apply_wildcards("__animal__/__animal__", random.Random(0), i, WC, read_in_order=True)
           for i in range(4)]
    assert got == ["cat/cat", "dog/dog", "fox/fox", "cat/cat"]  # empty lines skipped, i % 3
    rng = random.Random(5)
    W.apply_wildcards("__animal__", rng, 1, WC, read_in_order=True)
    assert rng.getstate() == random.Random(5).getstate()  # no randomness used


def test_missing_and_empty_files_warn_and_use_the_name(caplog):
    rng = random.Random(3)
    with caplog.at_level(logging.WARNING, logger="engine.wildcards"):
        assert W.apply_wildcards("__nope__, __empty__", rng, 0, WC) == "nope, empty"
        assert W.apply_wildcards("__x__", rng, 0, None) == "x"
    assert "nope.txt" in caplog.text and "normal word" in caplog.text
    assert rng.getstate() == random.Random(3).getstate()
    assert W.apply_wildcards("plain _x_ text", rng, 0, WC) == "plain _x_ text"


def test_nesting_depth_limit(caplog):
    loop = {"loop": ["__loop__"], "deep": ["__deeper__"], "deeper": ["end"]}
    assert W.apply_wildcards("__deep__", random.Random(0), 0, loop) == "end"
    with caplog.at_level(logging.WARNING, logger="engine.wildcards"):
        assert W.apply_wildcards("__loop__", random.Random(0), 0, loop, max_depth=3) == "__loop__"
    assert "depth 3" in caplog.text
    assert W.apply_wildcards("__deep__", random.Random(0), 0, loop, max_depth=1) == "__deeper__"
    assert W.apply_wildcards("__deep__", random.Random(0), 0, loop, max_depth=0) == "__deep__"
    # the default is Fooocus's 64 passes: a 64-deep chain resolves, 65 does not
    chain = {f"n{i}": [f"__n{i + 1}__"] for i in range(65)}
    chain["n65"] = ["leaf"]
    assert W.apply_wildcards("__n2__", random.Random(0), 0, chain) == "leaf"  # 64 passes
    assert W.apply_wildcards("__n1__", random.Random(0), 0, chain) == "__n65__"


def test_lazy_mapping_only_asked_for_used_names():
    asked = []

    class Lazy(dict):
        def get(self, key, default=None):
            asked.append(key)
            return super().get(key, default)

    W.apply_wildcards("__animal__ __zzz__", random.Random(0), 0, Lazy(WC))
    assert asked == ["animal", "zzz"]


def test_errors():
    rng = random.Random(0)
    with pytest.raises(ValueError, match="text"):
        W.apply_wildcards(None, rng, 0, WC)
    with pytest.raises(ValueError, match="rng"):
        W.apply_wildcards("a", 0, 0, WC)
    with pytest.raises(ValueError, match="image_index"):
        W.apply_wildcards("a", rng, -1, WC)
    with pytest.raises(ValueError, match="max_depth"):
        W.apply_wildcards("a", rng, 0, WC, max_depth=-1)
    with pytest.raises(ValueError, match="wildcards"):
        W.apply_wildcards("a", rng, 0, [("animal", ["cat"])])
    with pytest.raises(ValueError, match=r"wildcards\['s'\]"):
        W.apply_wildcards("__s__", rng, 0, {"s": "cat"})
    with pytest.raises(ValueError, match="seed"):
        W.resolve_wildcards("a", WC, 1.5)


# ------------------------------------------------ per image, in Fooocus's order (engine.prompt.assemble_prompts)


def test_assembly_order_prompt_negative_extras_share_one_rng():
    wc = {"a": ["a1", "a2", "a3", "a4", "a5"]}
    for seed in (0, 1, 12345):
        replay = random.Random(seed)
        expect = [replay.choice(wc["a"]) for _ in range(5)]
        t = P.assemble_prompts("p __a__\nx __a__\ny __a__", "n __a__\nm __a__", [], {}, seed, 0, wildcards=wc)
        assert t.line1 == f"p {expect[0]}"
        assert t.negative_line1 == f"n {expect[1]}"
        assert t.extra_positives == [f"x {expect[2]}", f"y {expect[3]}"]
        assert t.extra_negatives == [f"m {expect[4]}"]


def test_assembly_per_image_seed_and_in_order():
    wc = {"a": ["a1", "a2", "a3"]}
    # image i uses task seed seed + i (or the same seed when increments are off)
    for i in range(4):
        t = P.assemble_prompts("__a__", "", [], {}, 100, i, wildcards=wc)
        assert t.line1 == random.Random(100 + i).choice(wc["a"])
        assert P.assemble_prompts("__a__", "", [], {}, 100, i, True, wildcards=wc).line1 == \
            random.Random(100).choice(wc["a"])
        # read in order: line i % 3, whatever the seed
        t = P.assemble_prompts("__a__", "", [], {}, 999, i, wildcards=wc, read_wildcards_in_order=True)
        assert t.line1 == wc["a"][i % 3]


def test_assembly_loras_are_parsed_before_wildcards():
    # a wildcard that yields a <lora:...> token does not add a LoRA (LoRAs come from line 1 before wildcards)
    wc = {"l": ["<lora:foo:1>"]}
    t = P.assemble_prompts("x, __l__", "", [], {}, 0, 0, available_lora_names=["foo.safetensors"], wildcards=wc)
    assert t.loras == [] and t.line1 == "x, <lora:foo:1>"
    assert P.inline_loras_to_apply("x, __l__", ["foo.safetensors"]) == []
