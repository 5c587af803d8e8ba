"""Fooocus Prompt / Prompt Encode on the real tiny SDXL CLIP, in-process (ComfyUI imported here)."""
from __future__ import annotations

import logging
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


# ------------------------------------------------------------------ inline LoRAs (spec §6 "Line splitting", §7)
STYLE_LORA = "tiny_style_lora.safetensors"


@pytest.fixture(scope="module")
def tiny_model(env):
    import nodes

    return nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[0]


def _gen():
    return _pack().nodes.generation_nodes


def _patched_weights(model) -> dict:
    """Every patched UNet weight as the model would compute it (ComfyUI's calculate_weight, float32)."""
    import comfy.lora

    sd = model.model.state_dict()
    out = {}
    for key, patches in model.patches.items():
        out[key] = comfy.lora.calculate_weight(patches, sd[key].clone().float(), key)
    return out


def _cond_equal(a, b):
    assert torch.equal(a[0][0], b[0][0])
    assert torch.equal(a[0][1]["pooled_output"], b[0][1]["pooled_output"])


def test_prompt_lora_equals_lora_stack(env, tiny_model):
    pn, clip = env
    model = tiny_model
    p = pn.make_prompt(clip, "a cabin, <lora:tiny_style_lora:0.5> ,red roof", "", "", model=model)
    assert p.loras == [(STYLE_LORA, 0.5)] and p.texts(0)["loras"] == [[STYLE_LORA, 0.5]]
    assert p.texts(0)["positive"] == ["a cabin, red roof"]  # token removed, line cleaned up
    gen = _gen()
    s_model, s_clip = gen.FooocusLoraStack.execute(model=model, clip=clip, lora_1=STYLE_LORA, weight_1=0.5).result
    # the model: same patched keys, bit-identical weights
    assert p.model is not model and not model.patches
    assert set(p.model.patches) == set(s_model.patches) and len(p.model.patches) > 0
    ours, theirs = _patched_weights(p.model), _patched_weights(s_model)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    # the CLIP: bit-identical conditioning to encoding with the LoRA Stack's CLIP
    ref = pn.FooocusTextEncoder(s_clip)
    pos, neg = p.conditioning(3)
    _cond_equal(pos, ref.conditioning(["a cabin, red roof"], 1))
    _cond_equal(neg, ref.conditioning([""], 1))
    plain = pn.FooocusTextEncoder(clip).conditioning(["a cabin, red roof"], 1)
    assert not torch.equal(pos[0][0], plain[0][0])  # the LoRA changed the encoding
    assert not clip.patcher.patches  # the input CLIP is untouched


def test_prompt_without_tokens_leaves_model_untouched(env, tiny_model):
    pn, clip = env
    out = pn.FooocusPromptNode.execute(clip, "a cabin, <lora:x>", "", "", model=tiny_model).result
    assert len(out) == 2
    prompt, model = out
    assert isinstance(prompt, pn.FooocusPrompt) and prompt.loras == []
    assert model is not tiny_model and not model.patches and model.is_clone(tiny_model)
    assert prompt.texts(0)["positive"] == ["a cabin, <lora:x>"]  # no weight: not a token
    _cond_equal(prompt.conditioning(0)[0], pn.FooocusTextEncoder(clip).conditioning(["a cabin, <lora:x>"], 1))
    # no model connected: the model output is empty
    assert pn.FooocusPromptNode.execute(clip, "a cabin", "", "").result[1] is None


def test_prompt_lora_without_model_patches_clip_only(env, tiny_model, caplog):
    pn, clip = env
    with caplog.at_level(logging.WARNING):
        p = pn.make_prompt(clip, "<lora:tiny_style_lora:0.7>, a cabin", "", "")
    assert p.model is None and p.loras == [(STYLE_LORA, 0.7)]
    assert "CLIP only" in caplog.text and "'model' input" in caplog.text
    assert "not loaded" not in caplog.text  # the UNet keys are left out, not reported key by key
    _, s_clip = _gen().FooocusLoraStack.execute(model=tiny_model, clip=clip, lora_1=STYLE_LORA, weight_1=0.7).result
    _cond_equal(p.conditioning(1)[0], pn.FooocusTextEncoder(s_clip).conditioning(["a cabin"], 1))


def test_prompt_lora_dedup_limit_and_line_one(env, tiny_model):
    pn, clip = env
    # a file already in the LoRA Stack: skipped (the slot's weight wins), CLIP and model unchanged
    p = pn.make_prompt(clip, "a cabin <lora:tiny_style_lora:1>", "", "", model=tiny_model,
                       upstream_loras=f"{STYLE_LORA}, None")
    assert p.loras == [] and not p.model.patches
    assert p.texts(0)["positive"] == ["a cabin"]
    # five upstream LoRAs: the limit is reached, the token is only removed
    five = ", ".join(f"u{i}.safetensors" for i in range(5))
    p = pn.make_prompt(clip, "a cabin <lora:tiny_style_lora:1>", "", "", model=tiny_model, upstream_loras=five)
    assert p.loras == [] and not p.model.patches
    # tokens on line 2 are text, not LoRAs
    p = pn.make_prompt(clip, "a cabin\n<lora:tiny_style_lora:1>", "", "", model=tiny_model)
    assert p.loras == [] and p.texts(0)["positive"] == ["a cabin", "<lora:tiny_style_lora:1>"]
    # two inline LoRAs, in order
    p = pn.make_prompt(clip, "<lora:tiny_style_lora:0.5>,<lora:sd_xl_offset_example-lora_1.0:0.1>", "", "",
                       model=tiny_model)
    assert p.loras == [(STYLE_LORA, 0.5), ("sd_xl_offset_example-lora_1.0.safetensors", 0.1)]


def test_prompt_lora_missing_file_error(env, tiny_model):
    import folder_paths

    pn, clip = env
    with pytest.raises(ValueError, match="no file named 'nope'") as e:
        pn.make_prompt(clip, "a cabin, <lora:nope:0.5>", "", "", model=tiny_model)
    msg = str(e.value)
    assert "<lora:nope:0.5>" in msg and folder_paths.get_folder_paths("loras")[0] in msg
    # with the extension: Fooocus matches the stem only
    with pytest.raises(ValueError, match="without extension"):
        pn.make_prompt(clip, "<lora:tiny_style_lora.safetensors:0.5>", "", "", model=tiny_model)


def test_prompt_node_schema_keeps_output_order(env):
    pn, _ = env
    schema = pn.FooocusPromptNode.define_schema()
    assert [o.display_name for o in schema.outputs] == ["prompt", "model"]
    assert [o.get_io_type() for o in schema.outputs] == ["FOOOCUS_PROMPT", "MODEL"]
    names = [i.id for i in schema.inputs]
    assert names[:7] == ["clip", "prompt", "negative_prompt", "styles", "inpaint_additional_prompt",
                         "expansion_model", "clip_skip"]
    model_input = next(i for i in schema.inputs if i.id == "model")
    assert model_input.optional


# ------------------------------------------------------------------ wildcards (spec §6 "Per image i", §9)
@pytest.fixture()
def wildcards_dir(env):
    pn, _ = env
    folder = Path(pn.wildcard_folders()[0])
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "animal.txt").write_text("cat\n\ndog\nfox\nowl\n", encoding="utf-8")
    (folder / "sub" / "color.txt").write_text("red __shade__\r\nblue __shade__", encoding="utf-8")
    (folder / "shade.txt").write_text("dark", encoding="utf-8")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_wildcards_per_image_seed(env, wildcards_dir):
    pn, clip = env
    p = pn.make_prompt(clip, "a __animal__, __color__\nextra __animal__", "no __animal__", "")
    animals, colors = ["cat", "dog", "fox", "owl"], ["red __shade__", "blue __shade__"]
    seen = set()
    for seed in range(6):
        rng = random.Random(seed)  # one generator per image: line 1, negative, extra lines, in that order
        a1, c1, sh = rng.choice(animals), rng.choice(colors), rng.choice(["dark"])
        neg, extra = rng.choice(animals), rng.choice(animals)
        t = p.texts(seed)
        assert t["positive"] == [f"a {a1}, {c1.replace('__shade__', sh)}", f"extra {extra}"]
        assert t["negative"] == [f"no {neg}"]
        assert p.texts(seed) == t  # deterministic
        seen.add(a1)
    assert len(seen) > 1
    # the conditioning encodes the resolved texts
    _cond_equal(p.conditioning(4)[0], pn.FooocusTextEncoder(clip).conditioning(p.texts(4)["positive"], 2))


def test_wildcards_in_order_missing_and_random_style(env, wildcards_dir):
    pn, clip = env
    p = pn.FooocusPromptNode.execute(clip, "__animal__ __nope__", "", "", read_wildcards_in_order=True).result[0]
    assert [p.texts(99, i)["positive"][0] for i in range(5)] == ["cat nope", "dog nope", "fox nope", "owl nope",
                                                                 "cat nope"]
    if STYLES_DATA.is_dir():
        p = pn.make_prompt(clip, "a __animal__", "", "Random Style")
        table = pn.load_style_table()
        for seed in (0, 5):
            rng = random.Random(seed)
            animal = rng.choice(["cat", "dog", "fox", "owl"])
            t = p.texts(seed)
            assert t["styles"] == [rng.choice(list(table))]  # Random Style draws after the wildcards
            assert animal in t["positive"][0]


def test_wildcard_file_errors_and_fingerprint(env, wildcards_dir):
    pn, clip = env
    before = pn.FooocusPromptNode.fingerprint_inputs()
    (wildcards_dir / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    assert pn.FooocusPromptNode.fingerprint_inputs() != before  # a changed folder re-runs the node
    with pytest.raises(ValueError, match="bad.txt"):
        pn.make_prompt(clip, "__bad__", "", "")
    # files not used are never read
    assert pn.make_prompt(clip, "__animal__", "", "").texts(0)["positive"][0] in ("cat", "dog", "fox", "owl")
