"""Prompt assembly (spec fooocus-pipeline.md §1.1 step 7 and §6): safe_str, lines, inline LoRAs, wildcards,
styles and the per-image positive/negative lists."""
from __future__ import annotations

import random

import pytest
from conftest import FOOOCUS_DATA, load_json

from engine import prompt as P
from engine import styles as S

DEFAULT_STYLES = ["Fooocus V2", "Fooocus Enhance", "Fooocus Sharp"]


@pytest.fixture(scope="module")
def table():
    d = FOOOCUS_DATA / "sdxl_styles"
    if not d.is_dir():
        pytest.skip(f"Fooocus style files not found at {d}")
    return S.load_styles(d)


@pytest.fixture(scope="module")
def style_oracle(oracle_dir):
    return load_json("styles.json")


def _case(oracle, style, prompt):
    return next(c for c in oracle["apply_style_cases"] if c["style"] == style and c["prompt"] == prompt)


# ---------------------------------------------------------------- safe_str / lines


def test_safe_str_oracle_cases(oracle_dir):
    cases = load_json("expansion.json")["safe_str_cases"]
    assert len(cases) == 21
    n_built = 0
    for c in cases:
        if "in_built_as" in c:
            assert c["in_built_as"] == "'x' + ' ' * 70000 + 'y'"
            x = "x" + " " * 70000 + "y"
            n_built += 1
        else:
            x = c["in"]
        assert P.safe_str(x) == c["out"], repr(c["in"])
    assert n_built == 1


def test_remove_empty_and_split_lines():
    assert P.remove_empty(["", "a", "", "b"]) == ["a", "b"]
    assert P.remove_empty(["", ""]) == []
    assert P.remove_empty([], default="") == [""]
    assert P.remove_empty(["", ""], default="x") == ["x"]
    assert P.split_lines("") == [""]
    assert P.split_lines("\n\n  \n") == [""]
    assert P.split_lines("a cat.\n\n  second  line ,\r\nthird") == ["a cat", "second line", "third"]
    assert P.split_lines("\nonly later") == ["only later"]
    with pytest.raises(ValueError, match="text"):
        P.split_lines(None)


def test_combine_additional_prompt():
    assert P.combine_additional_prompt("a cat", "") == "a cat"
    assert P.combine_additional_prompt("", "a hat") == "a hat"
    assert P.combine_additional_prompt("a cat", "a hat") == "a hat\na cat"
    assert P.combine_additional_prompt(" ", "a hat") == "a hat\n "  # exact comparison, no stripping
    assert P.combine_additional_prompt("", "") == ""
    with pytest.raises(ValueError, match="additional"):
        P.combine_additional_prompt("a", None)
    with pytest.raises(ValueError, match="prompt"):
        P.combine_additional_prompt(1, "a")


# ---------------------------------------------------------------- inline LoRAs

LORAS = ["foo.safetensors", "sub/bar-v2.safetensors", "win\\dir\\baz.ckpt", "other.safetensors"]


def test_cleanup_prompt():
    assert P.cleanup_prompt("a,b") == "a, b"
    assert P.cleanup_prompt(" a ,, b,,,   c  d ,") == "a, b, c d"
    assert P.cleanup_prompt("") == ""
    assert P.cleanup_prompt(",,, ,") == ""


def test_inline_loras_basic():
    r = P.parse_inline_loras("a cat, <lora:foo:0.5>, sitting   <lora:bar-v2:-1.25>", LORAS)
    assert r.prompt == "a cat, sitting"
    assert r.loras == [("foo.safetensors", 0.5), ("sub/bar-v2.safetensors", -1.25)]
    r = P.parse_inline_loras("<lora:baz:.5><lora:foo:+2>x", LORAS)
    assert r.prompt == "x"
    assert r.loras == [("win\\dir\\baz.ckpt", 0.5), ("foo.safetensors", 2.0)]


def test_inline_loras_cleanup_without_tokens():
    assert P.parse_inline_loras("a,b,,  c", LORAS) == ("a, b, c", [])
    assert P.parse_inline_loras("", LORAS) == ("", [])


def test_inline_loras_unmatched_and_invalid():
    # an unknown name is removed from the text but gives no LoRA
    assert P.parse_inline_loras("a, <lora:nope:1>", LORAS) == ("a", [])
    # not tokens: bad weights stay in the text
    text = "<lora:foo:1..2>, <lora:foo:.>, <test:1.0>, <lora:foo:+> and <lora:foo:>"
    assert P.parse_inline_loras(text, LORAS) == (text, [])
    # matching is on the stem only (no extension, no folder)
    assert P.parse_inline_loras("<lora:foo.safetensors:1>", LORAS).loras == []
    assert P.parse_inline_loras("<lora:sub/bar-v2:1>", LORAS).loras == []


def test_inline_loras_dedup_and_cap():
    user = [("other.safetensors", 0.3)]
    r = P.parse_inline_loras("x <lora:foo:0.4><lora:foo:0.4><lora:other:1>", LORAS, 5, user)
    # the user's weight wins, the exact repeat is dropped
    assert r.loras == [("other.safetensors", 0.3), ("foo.safetensors", 0.4)]
    # the same file with another weight is not a repeat
    r = P.parse_inline_loras("<lora:foo:0.4>, <lora:foo:0.5>", LORAS)
    assert r.loras == [("foo.safetensors", 0.4), ("foo.safetensors", 0.5)]
    many = [f"l{i}.safetensors" for i in range(8)]
    text = "p, " + ", ".join(f"<lora:l{i}:0.{i}>" for i in range(8))
    r = P.parse_inline_loras(text, many, 5, [("u.safetensors", 1.0)])
    assert r.prompt == "p"
    assert r.loras == [("u.safetensors", 1.0)] + [(f"l{i}.safetensors", float(f"0.{i}")) for i in range(4)]
    # nothing new: the user list comes back unchanged (not capped, "None" kept)
    six = [(f"u{i}", 1.0) for i in range(6)] + [("None", 1.0)]
    assert P.parse_inline_loras("p", many, 5, six).loras == six
    # something new: "None" entries dropped, then capped
    r = P.parse_inline_loras("<lora:l0:1>", many, 3, [("None", 1.0), ("u", 1.0)])
    assert r.loras == [("u", 1.0), ("l0.safetensors", 1.0)]
    r = P.parse_inline_loras("<lora:l0:1>", many, 0)
    assert r.loras == []


def test_inline_loras_errors():
    with pytest.raises(ValueError, match="prompt"):
        P.parse_inline_loras(None, LORAS)
    with pytest.raises(ValueError, match="available_lora_names"):
        P.parse_inline_loras("a", "foo.safetensors")
    with pytest.raises(ValueError, match="max_loras"):
        P.parse_inline_loras("a", LORAS, -1)
    with pytest.raises(ValueError, match="existing_loras"):
        P.parse_inline_loras("a", LORAS, 5, [("a", 1.0, 2)])


def test_find_lora_tokens_and_match():
    toks = P.find_lora_tokens("a, <lora:foo:0.5>x<lora:bar-v2:-1>, <lora:foo>, <lora:a,b:1>, <lora:sub/baz:.25>")
    assert toks == [("<lora:foo:0.5>", "foo", 0.5), ("<lora:bar-v2:-1>", "bar-v2", -1.0),
                    ("<lora:sub/baz:.25>", "sub/baz", 0.25)]
    # one line at a time: splitting lines is line_one's job
    assert P.find_lora_tokens(P.line_one("line 1 only\n<lora:foo:1>")) == []
    assert P.match_lora_name("foo", LORAS) == "foo.safetensors"
    assert P.match_lora_name("baz", LORAS) == "win\\dir\\baz.ckpt"
    assert P.match_lora_name("Foo", LORAS) is None  # case-sensitive
    assert P.match_lora_name("foo.safetensors", LORAS) is None  # stem only: no extension
    assert P.match_lora_name("sub/bar-v2", LORAS) is None  # stem only: no folder
    # the first file with that stem wins
    assert P.match_lora_name("foo", ["a/foo.ckpt", "foo.safetensors"]) == "a/foo.ckpt"
    with pytest.raises(ValueError, match="prompt"):
        P.find_lora_tokens(None)


def test_line_one():
    assert P.line_one("  a cat, <lora:foo:1> .\nsecond <lora:bar-v2:1>") == "a cat, <lora:foo:1>"
    assert P.line_one("\n\n") == ""
    assert P.line_one("\nfirst non-empty") == "first non-empty"


def test_inline_loras_to_apply():
    # line 1 only; the tokens of line 2 are text
    assert P.inline_loras_to_apply("a <lora:foo:0.5>\nb <lora:other:1>", LORAS) == [("foo.safetensors", 0.5)]
    assert P.inline_loras_to_apply("no tokens", LORAS) == []
    assert P.inline_loras_to_apply("<lora:nope:1>", LORAS) == []  # unmatched: left out
    # upstream (the user's LoRA slots) wins over an inline token of the same file; "None" slots ignored
    assert P.inline_loras_to_apply("<lora:foo:0.5>, <lora:other:1>", LORAS, ["foo.safetensors", "None"]) == [
        ("other.safetensors", 1.0)]
    assert P.inline_loras_to_apply("<lora:foo:0.5>", LORAS, ["foo.safetensors"]) == []
    # exact repeats dropped; the same file at another weight is kept (Fooocus applies both)
    assert P.inline_loras_to_apply("<lora:foo:0.5><lora:foo:0.5><lora:foo:1>", LORAS) == [
        ("foo.safetensors", 0.5), ("foo.safetensors", 1.0)]
    # the limit of 5 counts the upstream ones first
    many = [f"l{i}.safetensors" for i in range(8)]
    text = ", ".join(f"<lora:l{i}:1>" for i in range(8))
    assert P.inline_loras_to_apply(text, many) == [(f"l{i}.safetensors", 1.0) for i in range(5)]
    assert P.inline_loras_to_apply(text, many, ["u1", "u2", "u3"]) == [("l0.safetensors", 1.0),
                                                                         ("l1.safetensors", 1.0)]
    assert P.inline_loras_to_apply(text, many, [f"u{i}" for i in range(5)]) == []
    assert P.inline_loras_to_apply(text, many, [f"u{i}" for i in range(7)]) == []
    assert P.inline_loras_to_apply(text, many, [], max_loras=2) == [("l0.safetensors", 1.0), ("l1.safetensors", 1.0)]
    with pytest.raises(ValueError, match="upstream_loras"):
        P.inline_loras_to_apply("a", LORAS, "foo.safetensors")
    with pytest.raises(ValueError, match="max_loras"):
        P.inline_loras_to_apply("a", LORAS, [], -1)
    with pytest.raises(ValueError, match="available_lora_names"):
        P.inline_loras_to_apply("a", "foo")


def test_prompt_reexports_wildcards():
    from engine import wildcards as W

    assert P.apply_wildcards is W.apply_wildcards and P.WILDCARDS_MAX_DEPTH == W.WILDCARDS_MAX_DEPTH == 64


# ---------------------------------------------------------------- seeds


def test_task_seed():
    assert P.task_seed_for(10, 0) == 10
    assert P.task_seed_for(10, 3) == 13
    assert P.task_seed_for(10, 3, disable_seed_increment=True) == 10
    assert P.task_seed_for(2**63 - 1, 1) == 0
    assert P.task_seed_for(2**63 + 5, 0, True) == 5
    assert P.task_seed_for(-1, 0) == 2**63 - 1
    with pytest.raises(ValueError, match="seed"):
        P.task_seed_for(1.5, 0)
    with pytest.raises(ValueError, match="seed"):
        P.task_seed_for(True, 0)
    with pytest.raises(ValueError, match="image_index"):
        P.task_seed_for(1, -1)


# ---------------------------------------------------------------- assemble_prompts


def test_default_example_spec_section6(table, style_oracle):
    """Defaults [Fooocus V2, Fooocus Enhance, Fooocus Sharp], empty negative (spec §6)."""
    sharp_pos, sharp_neg = table["Fooocus Sharp"]
    enhance_pos, enhance_neg = table["Fooocus Enhance"]
    assert enhance_pos == "" and "{prompt}" in sharp_pos
    for styles in (DEFAULT_STYLES, ["Fooocus Enhance", "Fooocus V2", "Fooocus Sharp"]):  # fal's order
        t = P.assemble_prompts("a cat", "", styles, table, seed=123, image_index=0)
        assert t.task_seed == 123
        assert t.use_expansion is True
        assert t.line1 == "a cat"
        assert t.positives == [sharp_pos.replace("{prompt}", "a cat")]
        assert t.negatives == [enhance_neg, sharp_neg]  # the empty user negative is removed
        assert (t.positive_top_k, t.negative_top_k) == (1, 2)
        assert t.styles == ["Fooocus Enhance", "Fooocus Sharp"]
        assert t.final_positives("a cat, expanded") == [t.positives[0], "a cat, expanded"]
    # the same with the oracle's own apply_style strings (empty prompt: expansion off)
    t = P.assemble_prompts("", "", DEFAULT_STYLES, table, seed=0, image_index=0)
    assert t.use_expansion is False
    assert t.positives == _case(style_oracle, "Fooocus Sharp", "")["positive"]
    assert t.negatives == (_case(style_oracle, "Fooocus Enhance", "a cat")["negative"]
                           + _case(style_oracle, "Fooocus Sharp", "")["negative"])
    assert t.final_positives("ignored") == t.positives


def test_no_placeholder_style_prepends_line1(table):
    t = P.assemble_prompts("a cat", "blurry", ["Fooocus Enhance"], table, 1, 0)
    assert t.positives == ["a cat"]
    assert t.negatives == [table["Fooocus Enhance"][1], "blurry"]
    assert t.use_expansion is False
    # Fooocus Negative has an empty positive template too
    t = P.assemble_prompts("a cat", "", ["Fooocus Negative", "Fooocus Enhance"], table, 1, 0)
    assert t.positives == ["a cat"]
    # one placeholder style is enough to stop the prepend
    t = P.assemble_prompts("a cat", "", ["Fooocus Enhance", "SAI Anime"], table, 1, 0)
    assert t.positives == [table["SAI Anime"][0].replace("{prompt}", "a cat")]


def test_no_style_and_extra_lines(table):
    t = P.assemble_prompts("a cat.\nsecond line\n\n third ", "neg one\nneg two", [], table, 5, 2)
    assert t.task_seed == 7
    assert t.positives == ["a cat", "second line", "third"]
    assert t.negatives == ["neg one", "neg two"]
    assert (t.positive_top_k, t.negative_top_k) == (3, 2)
    assert t.extra_positives == ["second line", "third"] and t.extra_negatives == ["neg two"]
    # styles apply to line 1 only; extra lines follow the style lines unstyled
    t = P.assemble_prompts("a cat\nsecond", "n1\nn2", ["Fooocus V2", "SAI Anime"], table, 5, 0)
    anime_pos, anime_neg = table["SAI Anime"]
    assert t.positives == anime_pos.replace("{prompt}", "a cat").splitlines() + ["second"]
    assert t.negatives == anime_neg.splitlines() + ["n1", "n2"]
    assert t.use_expansion and t.line1 == "a cat"


def test_all_empty_keeps_one_empty_text(table):
    t = P.assemble_prompts("", "", [], table, 0, 0)
    assert t.positives == [""] and t.negatives == [""]
    assert (t.positive_top_k, t.negative_top_k) == (1, 1)
    t = P.assemble_prompts("\n\n", " , ", ["Fooocus V2"], table, 0, 0)
    assert t.positives == [""] and t.negatives == [""] and t.use_expansion is False


def test_additional_prompt_becomes_line1(table):
    prompt = P.combine_additional_prompt("a red fox\nsnow", "a hat")
    t = P.assemble_prompts(prompt, "", ["Fooocus V2", "Fooocus Sharp"], table, 9, 0)
    assert t.line1 == "a hat"
    assert t.positives == [table["Fooocus Sharp"][0].replace("{prompt}", "a hat"), "a red fox", "snow"]
    assert t.positive_top_k == 3


def test_random_style_uses_task_seed_rng(table, style_oracle):
    cases = {c["seed"]: c["style"] for c in style_oracle["get_random_style_cases"]}
    # seed 40 + image 2 → task seed 42
    t = P.assemble_prompts("a cat", "", ["Random Style"], table, 40, 2)
    assert t.task_seed == 42
    assert t.styles == [cases[42]]
    pos, neg, _ = S.apply_style(table, cases[42], "a cat")
    assert t.positives == pos and t.negatives == neg
    t = P.assemble_prompts("a cat", "", ["Random Style"], table, 12345, 7, disable_seed_increment=True)
    assert t.styles == [cases[12345]]
    # two random styles are two draws from the same rng
    rng = random.Random(3)
    expect = [S.random_style(table, rng), "Fooocus Sharp", S.random_style(table, rng)]
    t = P.assemble_prompts("a cat", "", ["Random Style", "Fooocus Sharp", "Random Style"], table, 3, 0)
    assert t.styles == expect


def test_random_style_after_wildcards_share_rng(table):
    wc = {"animal": ["cat", "dog", "fox", "owl"]}
    rng = random.Random(11)
    animal = rng.choice(wc["animal"])
    style = S.random_style(table, rng)
    t = P.assemble_prompts("a __animal__", "", ["Random Style"], table, 11, 0, wildcards=wc)
    assert t.line1 == f"a {animal}" and t.styles == [style]


def test_arrays_line1_only_by_image_index(table):
    # Fooocus cleans line 1 up (", " after every comma) before expanding arrays, so options after the
    # first keep a leading space: "a  green car".
    for i, word in enumerate(["red", " green", " blue", "red"]):
        t = P.assemble_prompts("a [[red,green,blue]] car\n[[x,y]]", "[[n,m]]", [], table, 0, i)
        assert t.line1 == f"a {word} car"
        assert t.positives == [t.line1, "[[x,y]]"]
        assert t.negatives == ["[[n,m]]"]


def test_inline_loras_in_assembly(table):
    loras = ["foo.safetensors"]
    t = P.assemble_prompts("a cat,<lora:foo:0.7>", "", ["Fooocus V2", "Fooocus Sharp"], table, 0, 0,
                           available_lora_names=loras, user_loras=[("user.safetensors", 0.1)])
    assert t.line1 == "a cat"
    assert t.loras == [("user.safetensors", 0.1), ("foo.safetensors", 0.7)]
    assert t.positives == [table["Fooocus Sharp"][0].replace("{prompt}", "a cat")]
    # line 1 made only of a LoRA token: the expansion stays on (decided before the clean-up), with text ""
    t = P.assemble_prompts("<lora:foo:1>", "", ["Fooocus V2"], table, 0, 0, available_lora_names=loras)
    assert t.line1 == "" and t.use_expansion is True and t.positives == [""]
    # the clean-up applies to line 1 even without LoRA files
    t = P.assemble_prompts("a,b", "", [], table, 0, 0)
    assert t.line1 == "a, b"


def test_assemble_errors(table):
    with pytest.raises(ValueError, match="Nope Style.*ComfyUI/models/styles"):
        P.assemble_prompts("a", "", ["Nope Style"], table, 0, 0)
    with pytest.raises(ValueError, match="styles_selected"):
        P.assemble_prompts("a", "", "Fooocus Sharp", table, 0, 0)
    with pytest.raises(ValueError, match="prompt"):
        P.assemble_prompts(None, "", [], table, 0, 0)
    with pytest.raises(ValueError, match="negative_prompt"):
        P.assemble_prompts("a", 3, [], table, 0, 0)
    with pytest.raises(ValueError, match="seed"):
        P.assemble_prompts("a", "", [], table, "1", 0)
    with pytest.raises(ValueError, match="image_index"):
        P.assemble_prompts("a", "", [], table, 1, -2)
    with pytest.raises(ValueError, match="Random Style"):
        P.assemble_prompts("a", "", ["Random Style"], {}, 0, 0)


def test_v2_twice_and_only_v2(table):
    t = P.assemble_prompts("a cat", "", ["Fooocus V2", "Fooocus V2"], table, 0, 0)
    assert t.use_expansion and t.positives == ["a cat"] and t.styles == []
