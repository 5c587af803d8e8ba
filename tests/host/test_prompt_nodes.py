"""Fooocus Prompt / Prompt Encode on the real tiny SDXL CLIP, in-process (ComfyUI imported here)."""
from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import pytest
import torch

from conftest import FOOOCUS_DATA

STYLES_DATA = FOOOCUS_DATA / "sdxl_styles"
EXPANSION_DATA = FOOOCUS_DATA / "prompt_expansion" / "fooocus_expansion"
# 69 GPT-2 tokens with the ',' the expansion appends: only 6 tokens to sample (keeps the CPU tests fast)
LONG = "a cozy wooden cabin, " + ", ".join(["tall pine tree"] * 16)
needs_styles = pytest.mark.skipif(not STYLES_DATA.is_dir(), reason=f"Fooocus style files not found at {STYLES_DATA}")


def _pack():
    return next(m for name, m in sys.modules.items()
                if name.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))


@pytest.fixture(scope="module")
def env(inprocess_host):
    """(prompt_nodes module, tiny CLIP); the style files are copied into the host's styles folder."""
    import folder_paths
    import nodes

    styles_dir = Path(folder_paths.get_folder_paths("styles")[0])
    styles_dir.mkdir(parents=True, exist_ok=True)
    if STYLES_DATA.is_dir():
        for f in STYLES_DATA.glob("*.json"):
            shutil.copyfile(f, styles_dir / f.name)
    clip = nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[1]
    return _pack().nodes.prompt_nodes, clip


def _expansion_ready() -> bool:
    import folder_paths

    return any((Path(p) / "fooocus_expansion" / "tokenizer.json").is_file()
               for p in folder_paths.get_folder_paths("prompt_expansion"))


def plain_encode(clip, text):
    """ComfyUI's own encoding of one text (CLIPTextEncode's path)."""
    return clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)


def test_parse_and_resolve_style_names(env):
    pn, _ = env
    assert pn.parse_style_list(" Fooocus Enhance, Fooocus V2 ,\nFooocus Sharp\n\n,") == [
        "Fooocus Enhance", "Fooocus V2", "Fooocus Sharp"]
    assert pn.parse_style_list("") == []
    table = {"SAI Anime": ("{prompt}", ""), "Fooocus Sharp": ("", "")}
    assert pn.resolve_style_names(["sai-anime", "fooocus v2", "FOOOCUS SHARP", "random style", "nope"], table) == [
        "SAI Anime", "Fooocus V2", "Fooocus Sharp", "Random Style", "nope"]
    with pytest.raises(ValueError, match="styles"):
        pn.parse_style_list(["a"])


@needs_styles
def test_style_table_is_fooocus_order(env):
    pn, _ = env
    table = pn.load_style_table()
    assert len(table) == 277
    assert list(table)[:3] == ["Fooocus Enhance", "Fooocus Semi Realistic", "Fooocus Sharp"]


@needs_styles
def test_two_positive_texts_concatenate_and_pool_sum(env):
    pn, clip = env
    p = pn.make_prompt(clip, "a cabin\nred roof", "", "Fooocus Sharp")
    texts = p.texts(5)
    sharp = pn.load_style_table()["Fooocus Sharp"][0].replace("{prompt}", "a cabin")
    assert texts["positive"] == [sharp, "red roof"] and texts["positive_top_k"] == 2
    assert texts["negative"] == [pn.load_style_table()["Fooocus Sharp"][1]] and texts["negative_top_k"] == 1
    pos, neg = p.conditioning(5)
    cond, extra = pos[0]
    assert cond.shape == (1, 154, 2048)
    c1, p1 = plain_encode(clip, sharp)
    c2, p2 = plain_encode(clip, "red roof")
    torch.testing.assert_close(cond, torch.cat([c1, c2], 1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(extra["pooled_output"], p1 + p2, rtol=1e-5, atol=1e-5)
    assert neg[0][0].shape[1] % 77 == 0 and neg[0][1]["pooled_output"].shape == (1, 1280)


def test_no_style_single_text_equals_clip_text_encode(env):
    pn, clip = env
    p = pn.make_prompt(clip, "a photo of a cat", "blurry", "")
    (pos, neg) = p.conditioning(0)
    c, pooled = plain_encode(clip, "a photo of a cat")
    # clip_skip 2 = SDXL's default layer, no weights: identical to ComfyUI's own encoding
    torch.testing.assert_close(pos[0][0], c, rtol=0, atol=0)
    torch.testing.assert_close(pos[0][1]["pooled_output"], pooled, rtol=0, atol=0)
    other = pn.make_prompt(clip, "a photo of a cat", "blurry", "", clip_skip=1).conditioning(0)[0]
    assert not torch.allclose(other[0][0], c)


def test_weighting_is_comfyui_formula_plus_fooocus_mean_rescale(env):
    pn, clip = env
    text = "a (red:1.5) house, (blue sky:0.6), " + ", ".join(["tree"] * 60)  # 2 chunks, weights in chunk 1
    enc = pn.FooocusTextEncoder(clip)
    ours = enc.encode(text)[0]
    tokens = clip.tokenize(text)
    comfy_weighted = clip.encode_from_tokens(tokens)  # ComfyUI: (z - z_empty) * w + z_empty, no rescale
    flat = {k: [[(t[0], 1.0) for t in ch] for ch in chunks] for k, chunks in tokens.items()}
    plain = clip.encode_from_tokens(flat)
    assert ours.shape == plain.shape == (1, 154, 2048)
    expect = torch.empty_like(plain)
    for a, b in ((0, 768), (768, 2048)):  # CLIP-L then CLIP-G features, each rescaled on its own
        for c in range(2):
            s = slice(77 * c, 77 * (c + 1))
            zw, z0 = comfy_weighted[0, s, a:b], plain[0, s, a:b]
            expect[0, s, a:b] = zw * (z0.mean() / zw.mean())
    torch.testing.assert_close(ours, expect, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours, comfy_weighted, rtol=1e-4, atol=1e-4)
    # the empty-prompt encoding used is ComfyUI's gen_empty_tokens one (what its own weighting uses)
    assert enc.encode(text)[0] is ours  # cached per text


@needs_styles
def test_random_style_is_seeded_per_image(env):
    pn, clip = env
    p = pn.make_prompt(clip, "a cabin", "", "Random Style")
    table = pn.load_style_table()
    seen = set()
    for seed in range(12):
        t = p.texts(seed)
        assert t["styles"] == [random.Random(seed).choice(list(table))]
        assert p.texts(seed)["styles"] == t["styles"]
        seen.add(t["styles"][0])
    assert len(seen) > 3


@needs_styles
def test_missing_style_error(env):
    pn, clip = env
    with pytest.raises(ValueError, match="not found") as e:
        pn.make_prompt(clip, "a cabin", "", "Fooocus Sharp, Fooocus Sharpp")
    assert "did you mean 'Fooocus Sharp'" in str(e.value) and "models/styles" in str(e.value)


def test_missing_style_files_error(env, monkeypatch):
    pn, clip = env
    monkeypatch.setattr(pn, "load_style_table", lambda: pn.StyleTable())
    with pytest.raises(ValueError, match="not found"):
        pn.make_prompt(clip, "a cabin", "", "SAI Anime")
    with pytest.raises(ValueError, match="Random Style"):
        pn.make_prompt(clip, "a cabin", "", "Random Style")


def test_missing_expansion_model_errors(env, tmp_path):
    import folder_paths

    pn, clip = env
    with pytest.raises(ValueError, match="no folder 'nope'"):
        pn.make_prompt(clip, "a cabin", "", "Fooocus V2", expansion_model_name="nope")
    empty = Path(folder_paths.get_folder_paths("prompt_expansion")[0]) / "empty_expansion"
    empty.mkdir(parents=True, exist_ok=True)
    with pytest.raises(ValueError, match="pytorch_model.bin") as e:
        pn.make_prompt(clip, "a cabin", "", "Fooocus V2", expansion_model_name="empty_expansion")
    assert "positive.txt" in str(e.value) and "tokenizer" in str(e.value)
    # an empty line 1 switches Fooocus V2 off: no model needed
    assert pn.make_prompt(clip, "", "", "Fooocus V2", expansion_model_name="empty_expansion").texts(0)["expansion"] is None


def test_fooocus_v2_with_tiny_gpt2(env):
    pn, clip = env
    if not _expansion_ready():
        pytest.skip("tiny expansion has no tokenizer files (../shared/fooocus-data was absent when it was generated)")
    p = pn.make_prompt(clip, LONG, "", "Fooocus V2")
    state = torch.get_rng_state()
    a, b = p.texts(1), p.texts(2)
    assert torch.equal(state, torch.get_rng_state())  # global RNGs restored
    assert a["expansion"].startswith(LONG + ",") and a["expansion"] != b["expansion"]
    assert a["positive"] == [LONG, a["expansion"]] and a["positive_top_k"] == 1
    fresh = pn.make_prompt(clip, LONG, "", "Fooocus V2")
    assert fresh.texts(1)["expansion"] == a["expansion"]  # deterministic per seed
    pos, _ = p.conditioning(1)
    enc = pn.FooocusTextEncoder(clip)
    c1, p1 = enc.encode(LONG)[:2]
    ce = enc.encode(a["expansion"])[0]
    torch.testing.assert_close(pos[0][0], torch.cat([c1, ce], 1))
    torch.testing.assert_close(pos[0][1]["pooled_output"], p1)  # the expansion is not pooled


@needs_styles
def test_fal_default_styles(env):
    pn, clip = env
    if not _expansion_ready():
        pytest.skip("tiny expansion has no tokenizer files")
    table = pn.load_style_table()
    p = pn.make_prompt(clip, LONG, "", pn.DEFAULT_STYLES)
    t = p.texts(7)
    assert t["positive"] == [table["Fooocus Sharp"][0].replace("{prompt}", LONG), t["expansion"]]
    assert t["negative"] == [table["Fooocus Enhance"][1], table["Fooocus Sharp"][1]]
    pos, neg = p.conditioning(7)
    enc = pn.FooocusTextEncoder(clip)
    e1, e2 = enc.encode(t["negative"][0]), enc.encode(t["negative"][1])
    assert neg[0][0].shape[1] == e1[0].shape[1] + e2[0].shape[1]
    torch.testing.assert_close(neg[0][1]["pooled_output"], e1[1] + e2[1])
    torch.testing.assert_close(pos[0][1]["pooled_output"], enc.encode(t["positive"][0])[1])


def test_additional_prompt_is_line_one(env):
    pn, clip = env
    t = pn.make_prompt(clip, "a cabin", "", "", inpaint_additional_prompt="a red door").texts(0)
    assert t["positive"] == ["a red door", "a cabin"]
    t = pn.make_prompt(clip, "", "", "", inpaint_additional_prompt="a red door").texts(0)
    assert t["positive"] == ["a red door"]


def test_prompt_encode_node(env):
    import json

    pn, clip = env
    p = pn.FooocusPromptNode.execute(clip, "a cabin", "ugly", "").result[0]
    out = pn.FooocusPromptEncode.execute(p, 3).result
    assert out[0][0][0].shape == (1, 77, 2048) and out[1][0][0].shape == (1, 77, 2048)
    assert json.loads(out[2])["negative"] == ["ugly"]
    with pytest.raises(ValueError, match="prompt"):
        pn.FooocusPromptEncode.execute("x", 3)


def test_bad_arguments(env):
    pn, clip = env
    with pytest.raises(ValueError, match="clip_skip"):
        pn.make_prompt(clip, "a", "", "", clip_skip=0)
    with pytest.raises(ValueError, match="prompt"):
        pn.make_prompt(clip, None, "", "")
    with pytest.raises(ValueError, match="clip"):
        pn.make_prompt(None, "a", "", "")
