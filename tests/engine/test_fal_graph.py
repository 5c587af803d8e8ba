"""engine.fal_graph: fal fooocus/inpaint request -> ComfyUI API graph, field by field (all 32 fields)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import fal_graph as fg
from engine.request import DEFAULT_LORA_URL, FIELD_NAMES, parse_request

REPO = Path(__file__).resolve().parents[2]
IMAGE_URL = "https://storage.googleapis.com/falserverless/model_tests/fooocus/fooocus_inpaint_image.png"
MASK_URL = "https://storage.googleapis.com/falserverless/model_tests/fooocus/fooocus_inpaint_mask.png"
INPUTS = fg.GraphInputs(image="img.png", mask="mask.png")
SEED = 1234
RV = "realisticVisionV60B1_v51VAE.safetensors"


def req_of(**fields):
    data = {"inpaint_image_url": IMAGE_URL, "mask_image_url": MASK_URL}
    data.update(fields)
    return parse_request({k: v for k, v in data.items() if v is not None})


def build(inputs=INPUTS, models=fg.ModelNames(), **fields):
    req = req_of(**fields)
    return fg.build_graph(req, inputs, seed=req.seed if req.seed is not None else SEED, models=models)


def canon(api: dict) -> dict:
    """Graph keyed by class_type (``#n`` for the n-th repeat), links as ``("->", key, slot)``."""
    keys, seen = {}, {}
    for nid in api:
        cls = api[nid]["class_type"]
        seen[cls] = seen.get(cls, 0) + 1
        keys[nid] = cls if seen[cls] == 1 else f"{cls}#{seen[cls]}"
    out = {}
    for nid, node in api.items():
        out[keys[nid]] = {k: ("->", keys[v[0]], v[1]) if isinstance(v, list) else v for k, v in node["inputs"].items()}
    return out


def diff(a: dict, b: dict) -> dict:
    """``{"+": added node keys, "-": removed, (key, input): new value or "<absent>"}``."""
    ca, cb = canon(a), canon(b)
    out: dict = {}
    if set(cb) - set(ca):
        out["+"] = set(cb) - set(ca)
    if set(ca) - set(cb):
        out["-"] = set(ca) - set(cb)
    for key in set(ca) & set(cb):
        for name in set(ca[key]) | set(cb[key]):
            va, vb = ca[key].get(name, "<absent>"), cb[key].get(name, "<absent>")
            if va != vb:
                out[(key, name)] = vb
    return out


BASE = build()
P, PERF, S, C = "FooocusInpaint_Prompt", "FooocusInpaint_Performance", "FooocusInpaint_Sampler", \
    "FooocusInpaint_InpaintConditioning"
ED, PAD, LOADER, SAVE = "FooocusInpaint_MaskErodeDilate", "FooocusInpaint_OutpaintPad", "FooocusInpaint_Loader", \
    "FooocusInpaint_SaveImage"
NO_PATCH = {"-": {LOADER}, (S, "inpaint_patch"): "<absent>", (S, "refiner_switch"): 1.0}
S15, IPN, CNN, ENC = "FooocusInpaint_SamplerSD15Refiner", "FooocusInpaint_ImagePromptIPAdapter", \
    "FooocusInpaint_ImagePromptControlNet", "FooocusInpaint_PromptEncode"
IP_URL = "https://x/ip.png"


def sd15_refiner_diff() -> dict:
    """BASE -> Speed with the SD1.5 refiner: a refiner checkpoint + LoRA stack, SD1.5 sampler instead of Fooocus's."""
    return {(PERF, "performance"): "Speed", "-": {S},
            "+": {"CheckpointLoaderSimple#2", "FooocusInpaint_LoraStack#2", S15},
            ("FooocusInpaint_SafetyChecker", "images"): ("->", S15, 0)}


def ip_diff() -> dict:
    """BASE -> one used IP-Adapter image prompt (ImagePrompt / FaceSwap)."""
    return {"+": {"LoadImage#3", "CLIPVisionLoader", "FooocusInpaint_IPAdapterLoader", IPN},
            (S, "model"): ("->", IPN, 0)}


def cn_diff() -> dict:
    """BASE -> one used ControlNet image prompt (PyraCanny / CPDS)."""
    return {"+": {"LoadImage#3", "ControlNetLoader", ENC, CNN}, (S, "model"): ("->", CNN, 0)}

# (id, request fields, expected diff against BASE). Every one of the 32 fields appears at least once.
CASES = [
    ("prompt", {"prompt": "a cat"}, {(P, "prompt"): "a cat"}),
    ("negative_prompt", {"negative_prompt": "ugly"}, {(P, "negative_prompt"): "ugly"}),
    ("styles", {"styles": ["SAI Anime", "Fooocus V2"]}, {(P, "styles"): "SAI Anime, Fooocus V2"}),
    ("styles-empty", {"styles": []}, {(P, "styles"): ""}),
    ("performance", {"performance": "Speed"}, {(PERF, "performance"): "Speed"}),
    ("performance-lightning", {"performance": "Lightning"}, {(PERF, "performance"): "Lightning"}),
    ("guidance_scale", {"guidance_scale": 7.5}, {(PERF, "cfg"): 7.5}),
    ("sharpness", {"sharpness": 10}, {(PERF, "sharpness"): 10.0}),
    ("aspect_ratio-ignored-for-inpaint", {"aspect_ratio": "1152x896"}, {}),
    ("num_images", {"num_images": 3}, {(S, "num_images"): 3}),
    ("loras", {"loras": [{"path": "https://civit.example/dl/My%20Style.safetensors?token=1", "scale": 0.5},
                         {"path": "/models/b.safetensors", "scale": -1}]},
     {("FooocusInpaint_LoraStack", "lora_1"): "My Style.safetensors", ("FooocusInpaint_LoraStack", "weight_1"): 0.5,
      ("FooocusInpaint_LoraStack", "lora_2"): "b.safetensors", ("FooocusInpaint_LoraStack", "weight_2"): -1.0,
      (P, "upstream_loras"): "My Style.safetensors,b.safetensors"}),
    ("loras-empty", {"loras": []},
     {("FooocusInpaint_LoraStack", "lora_1"): "None", ("FooocusInpaint_LoraStack", "weight_1"): 1.0,
      (P, "upstream_loras"): ""}),
    ("refiner_model-forced-off-by-extreme-speed", {"refiner_model": RV}, {}),
    ("refiner_model-forced-off-by-lightning", {"refiner_model": RV, "performance": "Lightning"},
     {(PERF, "performance"): "Lightning"}),
    ("refiner_model-sd15", {"refiner_model": RV, "performance": "Speed"}, sd15_refiner_diff()),
    ("refiner_switch-unused-without-refiner", {"refiner_switch": 0.5}, {}),
    ("refiner_switch-with-refiner", {"refiner_model": RV, "performance": "Quality", "refiner_switch": 0.5},
     {**sd15_refiner_diff(), (PERF, "performance"): "Quality"}),
    ("output_format", {"output_format": "png"}, {(SAVE, "format"): "png"}),
    ("sync_mode-client-side", {"sync_mode": True}, {}),
    ("seed", {"seed": 42}, {(S, "seed"): 42}),
    ("inpaint_image_url-file-comes-from-inputs", {"inpaint_image_url": "https://example.com/other.png"}, {}),
    ("mask_image_url-none-with-outpaint", {"mask_image_url": None, "outpaint_selections": ["Right"]},
     {"-": {"LoadImage#2"}, ("FooocusInpaint_MaskFromUpload", "mask_image"): "<absent>", (PAD, "right"): True,
      (C, "respective_field"): 1.0}),
    ("inpaint_mode-detail", {"inpaint_mode": "Improve Detail (face, hand, eyes, etc.)"},
     {**NO_PATCH, (C, "strength"): 0.5, (C, "respective_field"): 0.0}),
    ("inpaint_mode-modify", {"inpaint_mode": "Modify Content (add objects, change background, etc.)"},
     {(S, "disable_initial_latent"): True, (C, "respective_field"): 0.0}),
    ("inpaint_mode-detail-drops-outpaint", {"inpaint_mode": "Improve Detail (face, hand, eyes, etc.)",
                                            "outpaint_selections": ["Left"]},
     {**NO_PATCH, (C, "strength"): 0.5, (C, "respective_field"): 0.0}),
    ("inpaint_additional_prompt", {"inpaint_additional_prompt": "detailed face"},
     {(P, "inpaint_additional_prompt"): "detailed face"}),
    ("outpaint_selections", {"outpaint_selections": ["Left", "Top"]},
     {(PAD, "left"): True, (PAD, "top"): True, (C, "respective_field"): 1.0}),
    ("outpaint-forces-strength-and-field", {"outpaint_selections": ["Bottom"], "override_inpaint_options": True,
                                            "inpaint_strength": 0.3, "inpaint_respective_field": 0.2},
     {(PAD, "bottom"): True, (C, "respective_field"): 1.0}),
    ("override_inpaint_options-alone", {"override_inpaint_options": True}, {}),
    ("override-beats-mode-preset", {"override_inpaint_options": True,
                                    "inpaint_mode": "Improve Detail (face, hand, eyes, etc.)"}, {}),
    ("inpaint_disable_initial_latent-needs-override", {"inpaint_disable_initial_latent": True}, {}),
    ("inpaint_disable_initial_latent", {"inpaint_disable_initial_latent": True, "override_inpaint_options": True},
     {(S, "disable_initial_latent"): True}),
    ("inpaint_engine-needs-override", {"inpaint_engine": "None"}, {}),
    ("inpaint_engine-v1", {"inpaint_engine": "v1", "override_inpaint_options": True},
     {(LOADER, "patch"): "inpaint.fooocus.patch"}),
    ("inpaint_engine-v2.5", {"inpaint_engine": "v2.5", "override_inpaint_options": True},
     {(LOADER, "patch"): "inpaint_v25.fooocus.patch"}),
    ("inpaint_engine-None", {"inpaint_engine": "None", "override_inpaint_options": True}, NO_PATCH),
    ("inpaint_strength-needs-override", {"inpaint_strength": 0.4}, {}),
    ("inpaint_strength", {"inpaint_strength": 0.4, "override_inpaint_options": True}, {(C, "strength"): 0.4}),
    ("inpaint_respective_field", {"inpaint_respective_field": 0.3, "override_inpaint_options": True},
     {(C, "respective_field"): 0.3}),
    ("inpaint_erode_or_dilate-needs-override", {"inpaint_erode_or_dilate": 5}, {}),
    ("inpaint_erode_or_dilate", {"inpaint_erode_or_dilate": -7, "override_inpaint_options": True},
     {(ED, "amount"): -7}),
    ("invert_mask", {"invert_mask": True}, {(ED, "invert"): True}),
    *[(f"image_prompt_{i}-ignored-without-mixing", {f"image_prompt_{i}": {"image_url": "https://x/ip.png"}}, {})
      for i in range(1, 5)],
    ("image_prompt_1-ImagePrompt-with-mixing", {"mixing_image_prompt_and_inpaint": True,
                                                "image_prompt_1": {"image_url": IP_URL, "weight": 0.6}},
     ip_diff()),
    ("image_prompt_2-PyraCanny-with-mixing", {"mixing_image_prompt_and_inpaint": True,
                                              "image_prompt_2": {"image_url": IP_URL, "type": "PyraCanny"}},
     cn_diff()),
    ("image_prompt_3-CPDS-with-mixing", {"mixing_image_prompt_and_inpaint": True,
                                         "image_prompt_3": {"image_url": IP_URL, "type": "CPDS", "stop_at": 0.3}},
     cn_diff()),
    ("image_prompt_4-FaceSwap-with-mixing", {"mixing_image_prompt_and_inpaint": True,
                                             "image_prompt_4": {"image_url": IP_URL, "type": "FaceSwap",
                                                                "weight": 1.5, "stop_at": 0.9}},
     ip_diff()),
    ("mixing_image_prompt_and_inpaint-without-image-prompts", {"mixing_image_prompt_and_inpaint": True,
                                                               "image_prompt_2": {"type": "CPDS"}}, {}),
    ("enable_safety_checker", {"enable_safety_checker": False}, {("FooocusInpaint_SafetyChecker", "enabled"): False}),
]


@pytest.mark.parametrize("fields,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_field_changes_graph_as_documented(fields, expected):
    ips = {i: f"ip{i}.png" for i in fg.image_prompts_used(req_of(**fields))}
    inputs = fg.GraphInputs(image="img.png", mask="mask.png" if fields.get("mask_image_url", MASK_URL) else None,
                            image_prompts=ips)
    assert diff(BASE, build(inputs=inputs, **fields)) == expected


def test_every_field_is_covered_by_the_table_and_the_mapping():
    covered = {f for _, fields, _ in CASES for f in fields}
    assert covered == set(FIELD_NAMES)
    assert tuple(fg.FIELD_MAPPING) == FIELD_NAMES
    doc = (REPO / "docs" / "fal_mapping.md").read_text(encoding="utf-8")
    missing = [f for f in FIELD_NAMES if f"`{f}`" not in doc]
    assert not missing, f"docs/fal_mapping.md does not document {missing}"


def test_default_inpaint_graph_is_the_documented_one():
    c = canon(BASE)
    assert list(c) == ["CheckpointLoaderSimple", "FooocusInpaint_LoraStack", PERF, P, "LoadImage", "LoadImage#2",
                       "FooocusInpaint_MaskFromUpload", ED, PAD, LOADER, "FooocusInpaint_UpscalerLoader", C, S,
                       "FooocusInpaint_SafetyChecker", SAVE]
    assert list(BASE)[-1] == fg.SAVE_NODE_ID and BASE["save"]["class_type"] == SAVE
    assert c["CheckpointLoaderSimple"] == {"ckpt_name": "juggernautXL_v8Rundiffusion.safetensors"}
    assert c["FooocusInpaint_LoraStack"] == {
        "model": ("->", "CheckpointLoaderSimple", 0), "clip": ("->", "CheckpointLoaderSimple", 1),
        "lora_1": "sd_xl_offset_example-lora_1.0.safetensors", "weight_1": 0.1,
        **{k: v for i in range(2, 6) for k, v in ((f"lora_{i}", "None"), (f"weight_{i}", 1.0))}}
    assert c[PERF] == {
        "model": ("->", "FooocusInpaint_LoraStack", 0), "clip": ("->", "FooocusInpaint_LoraStack", 1),
        "performance": "Extreme Speed", "cfg": 4.0, "sampler_name": "dpmpp_2m_sde_gpu", "scheduler": "karras",
        "sharpness": 2.0, "adaptive_cfg": 7.0, "adm_positive": 1.5, "adm_negative": 0.8, "adm_end": 0.3,
        "steps_override": 0, "lcm_lora": "sdxl_lcm_lora.safetensors",
        "lightning_lora": "sdxl_lightning_4step_lora.safetensors",
        "hyper_sd_lora": "sdxl_hyper_sd_4step_lora.safetensors"}
    assert c[P] == {"clip": ("->", PERF, 1), "prompt": "", "negative_prompt": "",
                    "styles": "Fooocus Enhance, Fooocus V2, Fooocus Sharp", "inpaint_additional_prompt": "",
                    "expansion_model": "fooocus_expansion", "clip_skip": 2, "model": ("->", PERF, 0),
                    "read_wildcards_in_order": False,
                    "upstream_loras": "sd_xl_offset_example-lora_1.0.safetensors"}
    assert c["LoadImage"] == {"image": "img.png"} and c["LoadImage#2"] == {"image": "mask.png"}
    assert c["FooocusInpaint_MaskFromUpload"] == {"image": ("->", "LoadImage", 0),
                                                  "mask_image": ("->", "LoadImage#2", 0)}
    assert c[ED] == {"mask": ("->", "FooocusInpaint_MaskFromUpload", 0), "amount": 0, "invert": False}
    assert c[PAD] == {"image": ("->", "LoadImage", 0), "mask": ("->", ED, 0), "left": False, "right": False,
                      "top": False, "bottom": False, "left_pixels": 0, "right_pixels": 0, "top_pixels": 0,
                      "bottom_pixels": 0}
    assert c[LOADER] == {"head": "fooocus_inpaint_head.pth", "patch": "inpaint_v26.fooocus.patch"}
    assert c["FooocusInpaint_UpscalerLoader"] == {"model_name": "fooocus_upscaler_s409985e5.bin"}
    assert c[C] == {"image": ("->", PAD, 0), "mask": ("->", PAD, 1), "vae": ("->", "CheckpointLoaderSimple", 2),
                    "respective_field": 0.618, "strength": 1.0, "fill": "auto",
                    "upscale_model": ("->", "FooocusInpaint_UpscalerLoader", 0)}
    assert c[S] == {"model": ("->", P, 1), "vae": ("->", "CheckpointLoaderSimple", 2), "inpaint": ("->", C, 0),
                    "seed": SEED, "steps": ("->", PERF, 2), "cfg": ("->", PERF, 3), "sampler_name": ("->", PERF, 4),
                    "scheduler": ("->", PERF, 5), "refiner_switch": 0.8, "prompt": ("->", P, 0), "num_images": 1,
                    "disable_initial_latent": False, "inpaint_patch": ("->", LOADER, 0)}
    assert c["FooocusInpaint_SafetyChecker"] == {"images": ("->", S, 0), "enabled": True,
                                                 "checker": "stable-diffusion-safety-checker.bin"}
    assert c[SAVE] == {"images": ("->", "FooocusInpaint_SafetyChecker", 0), "format": "jpeg",
                       "filename_prefix": fg.FILENAME_PREFIX,
                       "has_nsfw_concepts": ("->", "FooocusInpaint_SafetyChecker", 1)}


def test_default_request_without_mask_is_text_to_image_at_aspect_ratio():
    req = parse_request({"inpaint_image_url": IMAGE_URL})
    inputs = fg.GraphInputs(image="img.png")
    assert fg.is_text_to_image(req, inputs)
    c = canon(fg.build_graph(req, inputs, seed=7))
    assert list(c) == ["CheckpointLoaderSimple", "FooocusInpaint_LoraStack", PERF, P, "EmptyLatentImage",
                       "FooocusInpaint_PromptEncode", "KSampler", "VAEDecode", "FooocusInpaint_SafetyChecker", SAVE]
    assert c["EmptyLatentImage"] == {"width": 1024, "height": 1024, "batch_size": 1}
    assert c["KSampler"] == {"model": ("->", P, 1), "seed": 7, "steps": ("->", PERF, 2), "cfg": ("->", PERF, 3),
                             "sampler_name": ("->", PERF, 4), "scheduler": ("->", PERF, 5),
                             "positive": ("->", "FooocusInpaint_PromptEncode", 0),
                             "negative": ("->", "FooocusInpaint_PromptEncode", 1),
                             "latent_image": ("->", "EmptyLatentImage", 0), "denoise": 1.0}
    assert c["FooocusInpaint_SafetyChecker"]["images"] == ("->", "VAEDecode", 0)


def test_text_to_image_aspect_ratio_num_images_and_additional_prompt():
    req = parse_request({"inpaint_image_url": IMAGE_URL, "aspect_ratio": "1152x896", "num_images": 3,
                         "inpaint_additional_prompt": "extra", "seed": 2**63 - 2})
    c = canon(fg.build_graph(req, fg.GraphInputs(image="img.png"), seed=2**63 - 2))
    assert c["EmptyLatentImage"] == {"width": 1152, "height": 896, "batch_size": 1}
    seeds = [c[k]["seed"] for k in ("KSampler", "KSampler#2", "KSampler#3")]
    assert seeds == [2**63 - 2, 2**63 - 1, 0]  # image i uses (seed + i) mod 2**63, as Fooocus
    assert [c[k]["image_index"] for k in ("FooocusInpaint_PromptEncode", "FooocusInpaint_PromptEncode#2",
                                          "FooocusInpaint_PromptEncode#3")] == [0, 1, 2]
    assert c["ImageBatch#2"] == {"image1": ("->", "ImageBatch", 0), "image2": ("->", "VAEDecode#3", 0)}
    assert c["FooocusInpaint_SafetyChecker"]["images"] == ("->", "ImageBatch#2", 0)
    assert c[P]["inpaint_additional_prompt"] == ""  # Fooocus adds it only on the inpaint path


def test_no_mask_but_invert_repaints_everything_via_inpaint_graph():
    req = parse_request({"inpaint_image_url": IMAGE_URL, "invert_mask": True})
    inputs = fg.GraphInputs(image="img.png")
    assert not fg.is_text_to_image(req, inputs)
    c = canon(fg.build_graph(req, inputs, seed=1))
    assert c["FooocusInpaint_MaskFromUpload"] == {"image": ("->", "LoadImage", 0)}
    assert c[ED]["invert"] is True and "LoadImage#2" not in c


def test_graph_is_deterministic_json_and_links_resolve():
    a = build(prompt="x", num_images=2, outpaint_selections=["Left"])
    b = build(prompt="x", num_images=2, outpaint_selections=["Left"])
    assert a == b and json.loads(json.dumps(a)) == a
    for nid, node in a.items():
        for v in node["inputs"].values():
            if isinstance(v, list):
                assert v[0] in a and isinstance(v[1], int)
        assert set(node) == {"class_type", "inputs", "_meta"}


def test_model_names_override():
    models = fg.ModelNames(checkpoint="tiny_sdxl.safetensors", upscaler=None, inpaint_head="h.pth",
                           inpaint_patches={"v2.6": "p26.patch"}, safety_checker="tiny_safety_checker",
                           expansion="exp", loras={DEFAULT_LORA_URL: "offset.safetensors"}, lcm_lora="lcm.st")
    d = diff(BASE, build(models=models))
    assert d == {"-": {"FooocusInpaint_UpscalerLoader"}, (C, "upscale_model"): "<absent>",
                 ("CheckpointLoaderSimple", "ckpt_name"): "tiny_sdxl.safetensors", (LOADER, "head"): "h.pth",
                 (LOADER, "patch"): "p26.patch", ("FooocusInpaint_SafetyChecker", "checker"): "tiny_safety_checker",
                 (P, "expansion_model"): "exp", ("FooocusInpaint_LoraStack", "lora_1"): "offset.safetensors",
                 (P, "upstream_loras"): "offset.safetensors",
                 (PERF, "lcm_lora"): "lcm.st"}
    by_name = fg.ModelNames(loras={"sd_xl_offset_example-lora_1.0.safetensors": "o2.safetensors"})
    assert canon(build(models=by_name))["FooocusInpaint_LoraStack"]["lora_1"] == "o2.safetensors"
    with pytest.raises(ValueError, match="inpaint_patches.*v1"):
        build(models=fg.ModelNames(inpaint_patches={"v2.6": "x"}), inpaint_engine="v1", override_inpaint_options=True)


@pytest.mark.parametrize("path,name", [
    (DEFAULT_LORA_URL, "sd_xl_offset_example-lora_1.0.safetensors"),
    ("https://huggingface.co/a/b/resolve/main/x.safetensors?download=true#frag", "x.safetensors"),
    ("https://example.com/loras/My%20Lora.safetensors", "My Lora.safetensors"),
    ("/home/me/loras/a.safetensors", "a.safetensors"),
    ("C:\\loras\\b.safetensors", "b.safetensors"),
    ("c.safetensors", "c.safetensors"),
    ("  d.safetensors ", "d.safetensors"),
])
def test_lora_file_name(path, name):
    assert fg.lora_file_name(path) == name


@pytest.mark.parametrize("bad", ["", "   ", None, 3, "https://example.com/", "/loras/", "https://example.com"])
def test_lora_file_name_errors(bad):
    with pytest.raises(ValueError, match="path_or_url"):
        fg.lora_file_name(bad)


def test_unsupported_features_raise_clearly():
    # the only unsupported case left: a refiner on the text-to-image path
    req = parse_request({"inpaint_image_url": IMAGE_URL, "performance": "Speed", "refiner_model": RV})
    with pytest.raises(fg.UnsupportedRequestError, match="refiner_model.*not supported for text-to-image"):
        fg.build_graph(req, fg.GraphInputs(image="img.png"), seed=1)
    fg.check_supported(req)  # without inputs the path is unknown: nothing to refuse
    fg.build_graph(parse_request({"inpaint_image_url": IMAGE_URL, "performance": "Hyper-SD", "refiner_model": RV}),
                   fg.GraphInputs(image="img.png"), seed=1)  # forced off: fine
    assert fg.image_prompts_used(req_of(mixing_image_prompt_and_inpaint=True,
                                        image_prompt_2={"image_url": "https://x/a.png"},
                                        image_prompt_4={"image_url": "https://x/b.png"})) == (2, 4)
    assert fg.effective_refiner(req_of(performance="Quality", refiner_model=RV)) == RV
    assert fg.effective_refiner(req_of(performance="Hyper-SD", refiner_model=RV)) == "None"


LORA_SLOTS = {"lora_1": "sd_xl_offset_example-lora_1.0.safetensors", "weight_1": 0.1,
              **{k: v for i in range(2, 6) for k, v in ((f"lora_{i}", "None"), (f"weight_{i}", 1.0))}}


def test_sd15_refiner_graph():
    models = fg.ModelNames(refiners={RV: "rv.safetensors"}, interposer="interp.safetensors")
    c = canon(build(models=models, performance="Quality", refiner_model=RV, refiner_switch=0.6, num_images=2,
                    inpaint_mode="Improve Detail (face, hand, eyes, etc.)"))
    assert c["CheckpointLoaderSimple#2"] == {"ckpt_name": "rv.safetensors"}
    assert c["FooocusInpaint_LoraStack#2"] == {"model": ("->", "CheckpointLoaderSimple#2", 0),
                                               "clip": ("->", "CheckpointLoaderSimple#2", 1), **LORA_SLOTS}
    assert c[S15] == {"model": ("->", P, 1), "clip": ("->", PERF, 1), "vae": ("->", "CheckpointLoaderSimple", 2),
                      "refiner": ("->", "FooocusInpaint_LoraStack#2", 0),
                      "refiner_vae": ("->", "CheckpointLoaderSimple#2", 2), "inpaint": ("->", C, 0),
                      "prompt": ("->", P, 0), "seed": SEED, "steps": ("->", PERF, 2), "cfg": ("->", PERF, 3),
                      "sampler_name": ("->", PERF, 4), "scheduler": ("->", PERF, 5), "refiner_switch": 0.6,
                      "interposer": "interp.safetensors", "num_images": 2}  # engine None: no inpaint_patch
    assert S not in c and c["FooocusInpaint_SafetyChecker"]["images"] == ("->", S15, 0)
    # unmapped refiner values are used as the file name; the default mode links the inpaint patch
    c = canon(build(performance="Speed", refiner_model=RV))
    assert c["CheckpointLoaderSimple#2"] == {"ckpt_name": RV}
    assert c[S15]["inpaint_patch"] == ("->", LOADER, 0) and c[S15]["interposer"] == fg.ModelNames().interposer
    assert c[S15]["refiner_switch"] == 0.8


def _four_prompts(**extra):
    return dict(mixing_image_prompt_and_inpaint=True,
                image_prompt_1={"image_url": IP_URL, "type": "PyraCanny", "weight": 1.0, "stop_at": 0.5},
                image_prompt_2={"image_url": IP_URL, "type": "ImagePrompt", "weight": 0.6, "stop_at": 0.5},
                image_prompt_3={"image_url": IP_URL, "type": "CPDS", "weight": 0.8, "stop_at": 0.4},
                image_prompt_4={"image_url": IP_URL, "type": "FaceSwap", "weight": 0.75, "stop_at": 0.9}, **extra)


IP4 = fg.GraphInputs(image="img.png", mask="mask.png", image_prompts={i: f"ip{i}.png" for i in range(1, 5)})


def test_four_mixed_image_prompts_graph():
    c = canon(build(inputs=IP4, **_four_prompts()))
    assert [c[k]["image"] for k in ("LoadImage#3", "LoadImage#4", "LoadImage#5", "LoadImage#6")] == \
        ["ip1.png", "ip2.png", "ip3.png", "ip4.png"]
    assert c["ControlNetLoader"] == {"control_net_name": "control-lora-canny-rank128.safetensors"}
    assert c["ControlNetLoader#2"] == {"control_net_name": "fooocus_xl_cpds_128.safetensors"}
    assert c["CLIPVisionLoader"] == {"clip_name": "clip_vision_vit_h.safetensors"} and "CLIPVisionLoader#2" not in c
    assert c["FooocusInpaint_IPAdapterLoader"] == {"ip_adapter": "ip-adapter-plus_sdxl_vit-h.bin",
                                                   "negative": "fooocus_ip_negative.safetensors"}
    assert c["FooocusInpaint_IPAdapterLoader#2"]["ip_adapter"] == "ip-adapter-plus-face_sdxl_vit-h.bin"
    # IP-Adapters on the Performance model, in slot order; then the ControlNets on top
    assert c[IPN] == {"model": ("->", P, 1), "ip_adapter": ("->", "FooocusInpaint_IPAdapterLoader", 0),
                      "clip_vision": ("->", "CLIPVisionLoader", 0), "image": ("->", "LoadImage#4", 0),
                      "type": "ImagePrompt", "weight": 0.6, "stop_at": 0.5}
    assert c[IPN + "#2"]["model"] == ("->", IPN, 0) and c[IPN + "#2"]["type"] == "FaceSwap"
    assert (c[IPN + "#2"]["weight"], c[IPN + "#2"]["stop_at"]) == (0.75, 0.9)
    assert c[ENC] == {"prompt": ("->", P, 0), "seed": SEED, "image_index": 0}
    assert c[CNN] == {"model": ("->", IPN + "#2", 0), "positive": ("->", ENC, 0), "negative": ("->", ENC, 1),
                      "control_net": ("->", "ControlNetLoader", 0), "image": ("->", "LoadImage#3", 0),
                      "type": "PyraCanny", "weight": 1.0, "stop_at": 0.5, "width": 1024, "height": 1024,
                      "softness": 0.25, "skip_preprocessor": False, "canny_low": 64, "canny_high": 128,
                      "inpaint": ("->", C, 0)}
    assert c[CNN + "#2"]["model"] == ("->", CNN, 0) and c[CNN + "#2"]["positive"] == ("->", CNN, 1)
    assert c[CNN + "#2"]["type"] == "CPDS" and c[CNN + "#2"]["control_net"] == ("->", "ControlNetLoader#2", 0)
    # the sampler encodes per image itself and re-applies the recorded ControlNets
    assert c[S]["model"] == ("->", CNN + "#2", 0) and c[S]["prompt"] == ("->", P, 0)


def test_image_prompts_with_sd15_refiner_and_controlnets_sample_per_image():
    c = canon(build(inputs=IP4, performance="Speed", refiner_model=RV, num_images=2, **_four_prompts()))
    assert S not in c and {S15, S15 + "#2", "ImageBatch"} <= set(c)
    for i, (s15, enc, cn) in enumerate([(S15, ENC, CNN + "#2"), (S15 + "#2", ENC + "#2", CNN + "#4")]):
        assert c[enc] == {"prompt": ("->", P, 0), "seed": SEED + i, "image_index": i}
        assert c[s15]["seed"] == SEED + i and c[s15]["num_images"] == 1 and "prompt" not in c[s15]
        assert (c[s15]["model"], c[s15]["positive"], c[s15]["negative"]) == (("->", cn, 0), ("->", cn, 1),
                                                                             ("->", cn, 2))
    assert c["ImageBatch"] == {"image1": ("->", S15, 0), "image2": ("->", S15 + "#2", 0)}
    assert c["FooocusInpaint_SafetyChecker"]["images"] == ("->", "ImageBatch", 0)
    # IP-Adapters only: one sampler with the per-image prompt
    only_ip = {k: v for k, v in _four_prompts().items() if k not in ("image_prompt_1", "image_prompt_3")}
    c = canon(build(inputs=IP4, performance="Speed", refiner_model=RV, num_images=2, **only_ip))
    assert c[S15]["model"] == ("->", IPN + "#2", 0) and c[S15]["num_images"] == 2 and CNN not in c


def test_text_to_image_with_image_prompts():
    req = parse_request({"inpaint_image_url": IMAGE_URL, "aspect_ratio": "1152x896", "num_images": 2,
                         **_four_prompts()})
    c = canon(fg.build_graph(req, fg.GraphInputs(image="img.png", image_prompts=IP4.image_prompts), seed=3))
    assert "EmptyLatentImage" in c and S not in c
    for i, (ks, cn) in enumerate([("KSampler", CNN + "#2"), ("KSampler#2", CNN + "#4")]):
        assert c[ks]["model"] == ("->", cn, 0) and c[ks]["positive"] == ("->", cn, 1) and c[ks]["seed"] == 3 + i
        assert (c[cn]["width"], c[cn]["height"]) == (1152, 896) and "inpaint" not in c[cn]
    assert c[CNN]["model"] == ("->", IPN + "#2", 0)


def test_image_prompt_model_names_and_missing_uploads():
    models = fg.ModelNames(clip_vision="cv.safetensors", ip_adapter="ip.bin", ip_adapter_face="face.bin",
                           ip_negative="neg.safetensors", controlnet_canny="canny.st", controlnet_cpds="cpds.st")
    c = canon(build(inputs=IP4, models=models, **_four_prompts()))
    assert c["CLIPVisionLoader"]["clip_name"] == "cv.safetensors"
    assert [c[k]["ip_adapter"] for k in ("FooocusInpaint_IPAdapterLoader", "FooocusInpaint_IPAdapterLoader#2")] == \
        ["ip.bin", "face.bin"]
    assert c["FooocusInpaint_IPAdapterLoader"]["negative"] == "neg.safetensors"
    assert [c[k]["control_net_name"] for k in ("ControlNetLoader", "ControlNetLoader#2")] == ["canny.st", "cpds.st"]
    with pytest.raises(ValueError, match="inputs.image_prompts: image_prompt_3 is used"):
        build(inputs=fg.GraphInputs(image="img.png", mask="mask.png", image_prompts={1: "a.png", 2: "b.png"}),
              **_four_prompts())
    with pytest.raises(ValueError, match="type"):
        models.image_prompt_file("Canny")
    # two slots of the same type share one loader
    c = canon(build(inputs=IP4, mixing_image_prompt_and_inpaint=True,
                    image_prompt_1={"image_url": IP_URL}, image_prompt_2={"image_url": IP_URL}))
    assert "FooocusInpaint_IPAdapterLoader#2" not in c and c[IPN + "#2"]["model"] == ("->", IPN, 0)


def test_bad_arguments():
    req = req_of()
    with pytest.raises(ValueError, match="req"):
        fg.build_graph({"inpaint_image_url": IMAGE_URL}, INPUTS, seed=1)
    with pytest.raises(ValueError, match="inputs"):
        fg.build_graph(req, {"image": "a.png"}, seed=1)
    with pytest.raises(ValueError, match="models"):
        fg.build_graph(req, INPUTS, seed=1, models={})
    for seed in (-1, 2**63, True, 1.0, None):
        with pytest.raises(ValueError, match="seed"):
            fg.build_graph(req, INPUTS, seed=seed)
    with pytest.raises(ValueError, match="seed.*fixes seed 5"):
        fg.build_graph(req_of(seed=5), INPUTS, seed=6)
    with pytest.raises(ValueError, match="inputs.image"):
        fg.build_graph(req, fg.GraphInputs(image="", mask="m.png"), seed=1)
    with pytest.raises(ValueError, match="inputs.mask.*mask_image_url"):
        fg.build_graph(req, fg.GraphInputs(image="a.png"), seed=1)
    with pytest.raises(ValueError, match="inputs.mask.*no mask_image_url"):
        fg.build_graph(req_of(mask_image_url=None), INPUTS, seed=1)
    with pytest.raises(ValueError, match="inputs.image_prompts"):
        fg.build_graph(req, fg.GraphInputs(image="a.png", mask="m.png", image_prompts={5: "x.png"}), seed=1)
    with pytest.raises(ValueError, match="styles.*commas"):
        fg.build_graph(parse_request({"inpaint_image_url": IMAGE_URL, "mask_image_url": MASK_URL,
                                      "styles": ["a, b"]}), INPUTS, seed=1)


def _info(inputs: dict, outputs: list, optional: dict | None = None) -> dict:
    return {"input": {"required": inputs, "optional": optional or {}}, "output": outputs}


def test_check_against_object_info_finds_each_kind_of_problem():
    oi = {"A": _info({"n": ["INT", {"min": 0, "max": 3}], "c": [["x", "y"], {}], "b": ["BOOLEAN", {}]},
                     ["MODEL", ["x", "y"]]),
          "B": _info({"m": ["MODEL", {}]}, [], {"s": ["STRING", {}], "k": ["COMBO", {"options": ["x"]}],
                                                "f": ["FLOAT", {"min": 0.0, "max": 1.0}]})}
    good = {"1": {"class_type": "A", "inputs": {"n": 2, "c": "x", "b": True}},
            "2": {"class_type": "B", "inputs": {"m": ["1", 0], "s": "t", "f": 0.5}}}
    assert fg.check_against_object_info(good, oi) == []
    bad = {"1": {"class_type": "A", "inputs": {"n": 9, "c": "z", "b": 1, "zz": 1}},
           "2": {"class_type": "B", "inputs": {"m": ["1", 1], "s": 3, "f": 2.0, "k": ["1", 1]}},
           "3": {"class_type": "B", "inputs": {"m": ["9", 0]}},
           "4": {"class_type": "C", "inputs": {}},
           "5": {"class_type": "B", "inputs": {"m": ["1", 5]}},
           "6": {"class_type": "B", "inputs": {}}}
    problems = "\n".join(fg.check_against_object_info(bad, oi))
    for part in ("(A).n: 9 outside [0, 3]", "(A).c: 'z' not among the options", "(A).b: expected a boolean",
                 "unknown input 'zz'", "(B).m: type 'MODEL' cannot take output 1 of A", "(B).s: expected a string",
                 "(B).f: 2.0 outside", "link to missing node '9'", "unknown class_type 'C'",
                 "link to missing output", "node 6 (B): required input 'm' missing"):
        assert part in problems, part
    assert "(B).k" not in problems  # a COMBO output links to a COMBO input


def test_readme_mapping_table_is_up_to_date():
    """The README's fal field → graph table is :func:`render_mapping_table` (regenerate with
    scripts/build_workflows.py), and it has one row per fal input field."""
    from pathlib import Path

    from engine.fal_graph import FIELD_MAPPING, render_mapping_table

    repo = Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text(encoding="utf-8")
    table = render_mapping_table()
    assert table.count("\n| `") == len(FIELD_MAPPING) == 32
    start = readme.index("<!-- fal-mapping:start")
    block = readme[readme.index("\n", start) + 1:readme.index("<!-- fal-mapping:end -->")]
    assert block == table, "regenerate the README's fal mapping table with scripts/build_workflows.py"
