"""fal ``fooocus/inpaint`` request model: defaults, validation, mode presets, round trip, schema, response."""
from __future__ import annotations

import dataclasses
import logging
import math
import random

import numpy as np
import pytest

from conftest import load_json
from engine import request as rq
from engine.request import (
    ImagePrompt,
    ImageResult,
    InpaintRequest,
    LoraWeight,
    RequestValidationError,
    build_response,
    classify_image_ref,
    content_type_for,
    default_request_dict,
    effective_inpaint_options,
    needs_inpaint,
    parse_request,
    request_json_schema,
    resolve_seed,
    to_dict,
)

IMG = "https://example.com/in.png"
OFFSET_LORA = ("https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/"
               "sd_xl_offset_example-lora_1.0.safetensors")
DETAIL = "Improve Detail (face, hand, eyes, etc.)"
MODIFY = "Modify Content (add objects, change background, etc.)"
DEFAULT_MODE = "Inpaint or Outpaint (default)"

# fal's documented defaults (fal-schema.md §1), written out literally.
FAL_DEFAULTS = {
    "prompt": "",
    "negative_prompt": "",
    "styles": ["Fooocus Enhance", "Fooocus V2", "Fooocus Sharp"],
    "performance": "Extreme Speed",
    "guidance_scale": 4.0,
    "sharpness": 2.0,
    "aspect_ratio": "1024x1024",
    "num_images": 1,
    "loras": [{"path": OFFSET_LORA, "scale": 0.1}],
    "refiner_model": "None",
    "refiner_switch": 0.8,
    "output_format": "jpeg",
    "sync_mode": False,
    "seed": None,
    "mask_image_url": None,
    "inpaint_mode": DEFAULT_MODE,
    "inpaint_additional_prompt": "",
    "outpaint_selections": [],
    "override_inpaint_options": False,
    "inpaint_disable_initial_latent": False,
    "inpaint_engine": "v2.6",
    "inpaint_strength": 1.0,
    "inpaint_respective_field": 0.618,
    "inpaint_erode_or_dilate": 0,
    "invert_mask": False,
    "image_prompt_1": None,
    "image_prompt_2": None,
    "image_prompt_3": None,
    "image_prompt_4": None,
    "mixing_image_prompt_and_inpaint": False,
    "enable_safety_checker": True,
}


def req(**kw) -> InpaintRequest:
    return parse_request({"inpaint_image_url": IMG, **kw})


def errors_of(data, **kw) -> list[dict]:
    with pytest.raises(RequestValidationError) as ei:
        parse_request(data, **kw)
    return ei.value.errors


def only_error(field_value: dict, **kw) -> dict:
    errs = errors_of({"inpaint_image_url": IMG, **field_value}, **kw)
    assert len(errs) == 1, errs
    return errs[0]


# ---------------------------------------------------------------------------------------- defaults
def test_field_list_is_fal_order_and_32_long():
    assert len(rq.FIELD_NAMES) == 32
    expected = list(FAL_DEFAULTS)
    expected.insert(expected.index("mask_image_url"), "inpaint_image_url")
    assert list(rq.FIELD_NAMES) == expected


def test_defaults_equal_fal_documented_defaults():
    r = req()
    d = to_dict(r)
    assert d == {**FAL_DEFAULTS, "inpaint_image_url": IMG}
    assert default_request_dict() == FAL_DEFAULTS
    assert "inpaint_image_url" not in default_request_dict()
    assert default_request_dict(IMG) == d
    # exact style order and the offset LoRA default
    assert r.styles == ("Fooocus Enhance", "Fooocus V2", "Fooocus Sharp")
    assert r.loras == (LoraWeight(OFFSET_LORA, 0.1),)
    assert r.performance == "Extreme Speed" and r.guidance_scale == 4 and r.sharpness == 2
    assert r.width_height == (1024, 1024)
    assert r.image_prompts == (None, None, None, None)


def test_nested_defaults():
    r = req(image_prompt_2={}, loras=[{"path": "my.safetensors"}])
    assert r.image_prompt_2 == ImagePrompt(type="ImagePrompt", image_url=None, stop_at=0.5, weight=1.0)
    assert r.loras == (LoraWeight("my.safetensors", 0.1),)
    assert r.image_prompts == (None, ImagePrompt(), None, None)


def test_default_request_dict_is_fresh_and_complete_with_url():
    a = default_request_dict()
    a["styles"].append("x")
    assert default_request_dict()["styles"] == FAL_DEFAULTS["styles"]
    with pytest.raises(RequestValidationError):
        default_request_dict("")


# ------------------------------------------------------------------------------------ valid values
def test_valid_full_request_and_conversions():
    r = req(prompt="a cat", negative_prompt="dog", styles=[], performance="Hyper-SD", guidance_scale=30,
            sharpness=0, aspect_ratio="1152x896", num_images=4.0, loras=[],
            refiner_model=rq.REFINER_MODELS[1],
            refiner_switch=0, output_format="webp", sync_mode=True, seed=rq.MAX_SEED,
            mask_image_url="data:image/png;base64,AAAA", inpaint_mode=DETAIL,
            inpaint_additional_prompt="eyes",
            outpaint_selections=["Bottom", "Left"], override_inpaint_options=True,
            inpaint_disable_initial_latent=True, inpaint_engine="None", inpaint_strength=0,
            inpaint_respective_field=1, inpaint_erode_or_dilate=-64.0, invert_mask=True,
            image_prompt_1={"type": "FaceSwap", "image_url": "/tmp/face.png", "stop_at": 1, "weight": 2},
            image_prompt_4={"type": "CPDS", "image_url": "", "stop_at": 0.0, "weight": 0},
            mixing_image_prompt_and_inpaint=True, enable_safety_checker=False)
    assert r.num_images == 4 and type(r.num_images) is int
    assert r.inpaint_erode_or_dilate == -64 and type(r.inpaint_erode_or_dilate) is int
    assert type(r.guidance_scale) is float and type(r.inpaint_strength) is float
    assert r.seed == 2**63 - 1
    assert r.outpaint_selections == ("Bottom", "Left")
    assert r.image_prompt_4.image_url is None  # "" means none
    assert r.image_prompt_1 == ImagePrompt("FaceSwap", "/tmp/face.png", 1.0, 2.0)
    assert r.width_height == (1152, 896)


@pytest.mark.parametrize("perf", ["Speed", "Quality", "Extreme Speed", "Lightning", "Hyper-SD"])
def test_all_performances_accepted(perf):
    assert req(performance=perf).performance == perf


def test_empty_mask_string_means_none():
    assert req(mask_image_url="").mask_image_url is None
    assert req(mask_image_url=None).mask_image_url is None


def test_duplicate_styles_allowed():
    assert req(styles=["Fooocus V2", "Fooocus V2"]).styles == ("Fooocus V2", "Fooocus V2")


# -------------------------------------------------------------------------------------- bad values
BAD_CASES = [
    # field, bad value, expected error type, extra loc
    ("prompt", None, "string_type", ()),
    ("prompt", 5, "string_type", ()),
    ("negative_prompt", ["x"], "string_type", ()),
    ("inpaint_additional_prompt", False, "string_type", ()),
    ("styles", "Fooocus V2", "list_type", ()),
    ("styles", None, "list_type", ()),
    ("styles", ["Fooocus V2", 3], "string_type", (1,)),
    ("performance", "speed", "enum", ()),
    ("performance", "Turbo", "enum", ()),
    ("performance", None, "enum", ()),
    ("guidance_scale", 0.5, "greater_than_equal", ()),
    ("guidance_scale", 30.01, "less_than_equal", ()),
    ("guidance_scale", "4", "float_type", ()),
    ("guidance_scale", True, "float_type", ()),
    ("guidance_scale", float("nan"), "finite_number", ()),
    ("guidance_scale", None, "float_type", ()),
    ("sharpness", -0.1, "greater_than_equal", ()),
    ("sharpness", 31, "less_than_equal", ()),
    ("sharpness", float("inf"), "finite_number", ()),
    ("aspect_ratio", "1024*1024", "string_pattern_mismatch", ()),
    ("aspect_ratio", "1024X1024", "string_pattern_mismatch", ()),
    ("aspect_ratio", " 1024x1024", "string_pattern_mismatch", ()),
    ("aspect_ratio", "1024x1024\n", "string_pattern_mismatch", ()),
    ("aspect_ratio", "١٠٢٤x1024", "string_pattern_mismatch", ()),  # non-ASCII digits
    ("aspect_ratio", "1020x1024", "multiple_of", ()),
    ("aspect_ratio", "1024x1025", "multiple_of", ()),
    ("aspect_ratio", "56x1024", "value_error", ()),
    ("aspect_ratio", "1024x4104", "value_error", ()),
    ("aspect_ratio", 1024, "string_type", ()),
    ("num_images", 0, "greater_than_equal", ()),
    ("num_images", 5, "less_than_equal", ()),
    ("num_images", True, "int_type", ()),
    ("num_images", "2", "int_type", ()),
    ("num_images", 1.5, "int_from_float", ()),
    ("loras", {"path": "a"}, "list_type", ()),
    ("loras", [{"path": "a"}] * 6, "too_long", ()),
    ("loras", ["a.safetensors"], "model_type", (0,)),
    ("loras", [{"scale": 0.5}], "missing", (0, "path")),
    ("loras", [{"path": ""}], "string_too_short", (0, "path")),
    ("loras", [{"path": 3}], "string_type", (0, "path")),
    ("loras", [{"path": "a", "scale": 2.5}], "less_than_equal", (0, "scale")),
    ("loras", [{"path": "a", "scale": -2.01}], "greater_than_equal", (0, "scale")),
    ("loras", [{"path": "a", "scale": "1"}], "float_type", (0, "scale")),
    ("loras", [{"path": "a", "weight": 1}], "extra_forbidden", (0, "weight")),
    ("refiner_model", "juggernaut.safetensors", "enum", ()),
    ("refiner_switch", 1.0001, "less_than_equal", ()),
    ("refiner_switch", -0.1, "greater_than_equal", ()),
    ("output_format", "jpg", "enum", ()),
    ("output_format", "PNG", "enum", ()),
    ("sync_mode", 1, "bool_type", ()),
    ("sync_mode", "true", "bool_type", ()),
    ("seed", -1, "greater_than_equal", ()),
    ("seed", 2**63, "less_than_equal", ()),
    ("seed", "123", "int_type", ()),
    ("seed", 12.5, "int_from_float", ()),
    ("seed", 1e18, "int_from_float", ()),
    ("seed", False, "int_type", ()),
    ("inpaint_image_url", "", "string_too_short", ()),
    ("inpaint_image_url", "   ", "string_too_short", ()),
    ("inpaint_image_url", None, "string_type", ()),
    ("inpaint_image_url", "ftp://host/x.png", "url_parsing", ()),
    ("inpaint_image_url", "data:image/png;base64", "url_parsing", ()),
    ("inpaint_image_url", "https://", "url_parsing", ()),
    ("mask_image_url", 7, "string_type", ()),
    ("mask_image_url", "s3://bucket/m.png", "url_parsing", ()),
    ("inpaint_mode", "Inpaint or Outpaint", "enum", ()),
    ("inpaint_mode", "Improve Detail", "enum", ()),
    ("outpaint_selections", "Left", "list_type", ()),
    ("outpaint_selections", ["left"], "enum", (0,)),
    ("outpaint_selections", ["Left", "Up"], "enum", (1,)),
    ("outpaint_selections", ["Left", "Left"], "value_error", (1,)),
    ("override_inpaint_options", "yes", "bool_type", ()),
    ("inpaint_disable_initial_latent", 0, "bool_type", ()),
    ("inpaint_engine", "v2", "enum", ()),
    ("inpaint_engine", None, "enum", ()),
    ("inpaint_engine", "none", "enum", ()),
    ("inpaint_strength", 1.01, "less_than_equal", ()),
    ("inpaint_strength", -0.01, "greater_than_equal", ()),
    ("inpaint_respective_field", 1.5, "less_than_equal", ()),
    ("inpaint_respective_field", -1, "greater_than_equal", ()),
    ("inpaint_erode_or_dilate", 65, "less_than_equal", ()),
    ("inpaint_erode_or_dilate", -65.0, "greater_than_equal", ()),
    ("inpaint_erode_or_dilate", 2.5, "int_from_float", ()),
    ("inpaint_erode_or_dilate", "3", "int_type", ()),
    ("invert_mask", None, "bool_type", ()),
    ("image_prompt_1", "https://x/y.png", "model_type", ()),
    ("image_prompt_2", {"type": "Canny"}, "enum", ("type",)),
    ("image_prompt_3", {"stop_at": 1.1}, "less_than_equal", ("stop_at",)),
    ("image_prompt_4", {"weight": -0.1}, "greater_than_equal", ("weight",)),
    ("image_prompt_4", {"weight": "1"}, "float_type", ("weight",)),
    ("image_prompt_1", {"image_url": 5}, "string_type", ("image_url",)),
    ("image_prompt_1", {"image_url": "gs://b/x.png"}, "url_parsing", ("image_url",)),
    ("image_prompt_1", {"cn_img": "x"}, "extra_forbidden", ("cn_img",)),
    ("mixing_image_prompt_and_inpaint", "false", "bool_type", ()),
    ("enable_safety_checker", None, "bool_type", ()),
]


@pytest.mark.parametrize("field,value,etype,sub", BAD_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CASES)])
def test_bad_value(field, value, etype, sub):
    e = only_error({field: value})
    assert e["type"] == etype
    assert e["loc"] == ["body", field, *sub]
    assert set(e) == {"loc", "msg", "type"}
    # the message names the field (dotted path) first
    path = field + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in sub)
    assert e["msg"].startswith(path + ": "), e["msg"]


def test_every_field_has_a_bad_value_case():
    assert {c[0] for c in BAD_CASES} == set(rq.FIELD_NAMES)


def test_messages_say_what_was_expected():
    assert "less than or equal to 30" in only_error({"guidance_scale": 31})["msg"]
    assert "'Speed', 'Quality', 'Extreme Speed', 'Lightning'" in only_error({"performance": "x"})["msg"]
    assert "multiple of 8" in only_error({"aspect_ratio": "1000x1001"})["msg"]
    assert "null for a random" in only_error({"seed": -1})["msg"]
    assert "at most 5" in only_error({"loras": [{"path": "a"}] * 6})["msg"]
    assert "fractional" in only_error({"inpaint_erode_or_dilate": 0.5})["msg"]
    assert "got a string" in only_error({"sharpness": "2"})["msg"]
    assert "got a boolean" in only_error({"num_images": False})["msg"]


def test_bad_value_is_a_value_error_with_422_detail():
    with pytest.raises(ValueError) as ei:
        parse_request({"inpaint_image_url": IMG, "num_images": 9})
    err = ei.value
    assert isinstance(err, RequestValidationError)
    assert err.detail() == {"detail": err.errors}
    assert "num_images" in str(err)


def test_several_bad_fields_reported_together():
    data = {"guidance_scale": "4", "num_images": True, "styles": ["nope"], "performance": "Fast",
            "aspect_ratio": "1023x1024", "seed": -5, "outpaint_selections": ["Left", "Left"],
            "loras": [{"path": "a", "scale": 9}], "image_prompt_1": {"type": "X", "weight": 3},
            "mask_url": "m.png"}
    errs = errors_of(data, style_names=["Fooocus Sharp"])
    got = {tuple(e["loc"][1:]): e["type"] for e in errs}
    assert got == {
        ("mask_url",): "extra_forbidden",
        ("styles", 0): "enum",
        ("performance",): "enum",
        ("guidance_scale",): "float_type",
        ("aspect_ratio",): "multiple_of",
        ("num_images",): "int_type",
        ("loras", 0, "scale"): "less_than_equal",
        ("seed",): "greater_than_equal",
        ("inpaint_image_url",): "missing",
        ("outpaint_selections", 1): "value_error",
        ("image_prompt_1", "type"): "enum",
        ("image_prompt_1", "weight"): "less_than_equal",
    }
    assert len(errs) == 12


def test_required_and_body_type():
    e = errors_of({})
    assert e == [{"loc": ["body", "inpaint_image_url"], "type": "missing",
                  "msg": e[0]["msg"]}] and e[0]["msg"].startswith("inpaint_image_url: Field required")
    for body in (None, [], "x", 3):
        errs = errors_of(body)
        assert errs[0]["loc"] == ["body"] and errs[0]["type"] == "model_type"


# ---------------------------------------------------------------------------------- unknown fields
def test_unknown_fields_strict_by_default():
    errs = errors_of({"inpaint_image_url": IMG, "image_url": "x", "mask_growth": 3})
    assert [(e["loc"], e["type"]) for e in errs] == [
        (["body", "image_url"], "extra_forbidden"), (["body", "mask_growth"], "extra_forbidden")]


def test_unknown_fields_ignored_when_allowed(caplog):
    with caplog.at_level(logging.WARNING, logger="engine.request"):
        r = parse_request({"inpaint_image_url": IMG, "mask_url": "m.png",
                           "loras": [{"path": "a", "enabled": True}],
                           "image_prompt_1": {"cn_img": "x"}}, allow_unknown=True)
    assert r == req(loras=[{"path": "a"}], image_prompt_1={})
    text = caplog.text
    assert "mask_url" in text and "loras[0].enabled" in text and "image_prompt_1.cn_img" in text


# ------------------------------------------------------------------------------------------ styles
def test_style_names_check():
    names = ["Fooocus Enhance", "Fooocus Sharp"]
    assert req(styles=["Fooocus V2", "Random Style", "Fooocus Sharp"]).styles[1] == "Random Style"
    ok = parse_request({"inpaint_image_url": IMG, "styles": ["Random Style", "Fooocus V2"]},
                       style_names=names)
    assert ok.styles == ("Random Style", "Fooocus V2")
    parse_request({"inpaint_image_url": IMG}, style_names=names)  # fal's defaults pass
    e = errors_of({"inpaint_image_url": IMG, "styles": ["Fooocus Enhance", "SAI Anime", "fooocus sharp"]},
                  style_names=names)
    assert [x["loc"] for x in e] == [["body", "styles", 1], ["body", "styles", 2]]
    assert all(x["type"] == "enum" for x in e)
    # without style_names any string passes (checked later against the loaded files)
    assert req(styles=["Whatever"]).styles == ("Whatever",)
    with pytest.raises(ValueError, match="style_names"):
        parse_request({"inpaint_image_url": IMG}, style_names="Fooocus Sharp")


def test_fal_default_styles_are_legal_fooocus_names(oracle_dir):
    styles = load_json("styles.json")
    r = parse_request({"inpaint_image_url": IMG}, style_names=styles["style_keys"])
    assert set(r.styles) <= set(styles["legal_style_names"])
    assert list(rq.ALWAYS_ALLOWED_STYLES) == styles["legal_style_names"][:2]
    everything = parse_request({"inpaint_image_url": IMG, "styles": styles["legal_style_names"]},
                               style_names=styles["style_keys"])
    assert len(everything.styles) == len(styles["legal_style_names"])


# -------------------------------------------------------------------------------------- image refs
@pytest.mark.parametrize("ref,kind", [
    ("https://v3.fal.media/files/x.png", "url"), ("HTTP://a/b", "url"), ("http://localhost:8000/x", "url"),
    ("data:image/png;base64,iVBORw0KGgo=", "data"), ("DATA:,abc", "data"), ("data:image/jpeg,xx", "data"),
    ("/tmp/a.png", "path"), ("input/a b.png", "path"), ("C:\\img\\a.png", "path"), ("a.png", "path"),
])
def test_classify_image_ref(ref, kind):
    assert classify_image_ref(ref) == kind
    assert req(inpaint_image_url=ref).inpaint_image_url == ref


@pytest.mark.parametrize("ref", ["", " ", "ftp://x/y", "file:///tmp/a.png", "data:abc", "https://",
                                 "a\x00b", 3])
def test_classify_image_ref_rejects(ref):
    with pytest.raises(ValueError, match="image reference"):
        classify_image_ref(ref)


# ------------------------------------------------------------------------------- effective options
MODE_ROWS = {
    DEFAULT_MODE: (False, "v2.6", 1.0, 0.618),
    DETAIL: (False, "None", 0.5, 0.0),
    MODIFY: (True, "v2.6", 1.0, 0.0),
}
USER_ADVANCED = dict(inpaint_disable_initial_latent=True, inpaint_engine="v1", inpaint_strength=0.3,
                     inpaint_respective_field=0.25, inpaint_erode_or_dilate=-7, invert_mask=True)


@pytest.mark.parametrize("mode", list(MODE_ROWS))
def test_mode_presets_without_override(mode):
    o = effective_inpaint_options(req(inpaint_mode=mode, **USER_ADVANCED))
    assert (o.disable_initial_latent, o.engine, o.strength, o.respective_field) == MODE_ROWS[mode]
    assert o.erode_or_dilate == 0  # the user's value is ignored without override
    assert o.invert_mask is True  # invert is not an advanced option, never touched by the mode
    assert o.mode == mode
    assert o.use_inpaint_patch == (MODE_ROWS[mode][1] != "None")
    assert o.use_fill == (MODE_ROWS[mode][2] > 0.99)


@pytest.mark.parametrize("mode", list(MODE_ROWS))
def test_override_uses_user_values(mode):
    o = effective_inpaint_options(req(inpaint_mode=mode, override_inpaint_options=True, **USER_ADVANCED))
    assert (o.disable_initial_latent, o.engine, o.strength, o.respective_field, o.erode_or_dilate) == (
        True, "v1", 0.3, 0.25, -7)
    assert o.use_inpaint_patch and not o.use_fill


def test_override_with_fal_defaults_equals_default_mode():
    a = effective_inpaint_options(req(override_inpaint_options=True))
    b = effective_inpaint_options(req())
    assert a == b


def test_engine_none_flags():
    o = effective_inpaint_options(req(override_inpaint_options=True, inpaint_engine="None"))
    assert not o.use_inpaint_patch and not o.use_synthetic_refiner
    o = effective_inpaint_options(req(inpaint_mode=DETAIL))
    assert o.engine == "None" and not o.use_inpaint_patch and not o.use_synthetic_refiner


@pytest.mark.parametrize("perf,refiner,synthetic", [
    ("Speed", "None", True), ("Quality", "None", True),
    ("Speed", "realisticVisionV60B1_v51VAE.safetensors", False),
    ("Quality", "realisticVisionV60B1_v51VAE.safetensors", False),
    # restricted presets force refiner None first, so the synthetic refiner is used
    ("Extreme Speed", "realisticVisionV60B1_v51VAE.safetensors", True),
    ("Lightning", "realisticVisionV60B1_v51VAE.safetensors", True),
    ("Hyper-SD", "None", True),
])
def test_synthetic_refiner(perf, refiner, synthetic):
    o = effective_inpaint_options(req(performance=perf, refiner_model=refiner))
    assert o.use_synthetic_refiner is synthetic
    assert rq.SYNTHETIC_REFINER_SWITCH == 0.8


@pytest.mark.parametrize("override", [False, True])
def test_outpaint_forces_strength_and_field(override):
    o = effective_inpaint_options(req(outpaint_selections=["Right", "Top"], override_inpaint_options=override,
                                      inpaint_strength=0.4, inpaint_respective_field=0.2))
    assert o.strength == 1.0 and o.respective_field == 1.0 and o.use_fill
    assert o.outpaint_selections == ("Top", "Right")  # Fooocus's application order
    assert o.outpaint_directions_lower == ("top", "right")
    assert o.outpaint_dropped == ()
    all4 = effective_inpaint_options(req(outpaint_selections=["Right", "Left", "Bottom", "Top"]))
    assert all4.outpaint_selections == ("Top", "Bottom", "Left", "Right")


def test_no_outpaint_keeps_user_strength():
    o = effective_inpaint_options(req(override_inpaint_options=True, inpaint_strength=0.4,
                                      inpaint_respective_field=0.2))
    assert (o.strength, o.respective_field) == (0.4, 0.2)


@pytest.mark.parametrize("mode", [DETAIL, MODIFY])
@pytest.mark.parametrize("override", [False, True])
def test_non_default_modes_drop_outpaint(mode, override, caplog):
    r = req(inpaint_mode=mode, outpaint_selections=["Left", "Bottom"], override_inpaint_options=override,
            inpaint_strength=0.4, inpaint_respective_field=0.2)
    with caplog.at_level(logging.WARNING, logger="engine.request"):
        o = effective_inpaint_options(r)
    assert o.outpaint_selections == () and o.outpaint_dropped == ("Bottom", "Left")
    assert "outpaint" in caplog.text
    # no forcing, the mode/user values stand
    expected = (0.4, 0.2) if override else MODE_ROWS[mode][2:]
    assert (o.strength, o.respective_field) == expected


def test_additional_prompt_kept_in_every_mode():
    for mode in MODE_ROWS:
        assert effective_inpaint_options(req(inpaint_mode=mode, inpaint_additional_prompt="eyes")
                                         ).additional_prompt == "eyes"


def test_effective_options_rejects_bad_input():
    with pytest.raises(ValueError, match="req"):
        effective_inpaint_options({"inpaint_image_url": IMG})
    with pytest.raises(ValueError, match="inpaint_mode"):
        effective_inpaint_options(dataclasses.replace(req(), inpaint_mode="x"))


def test_needs_inpaint_gate():
    plain = req()
    assert needs_inpaint(True, plain) is True
    assert needs_inpaint(False, plain) is False
    assert needs_inpaint(np.bool_(True), plain) is True
    assert needs_inpaint(np.any(np.zeros((4, 4), np.uint8) > 127), plain) is False
    assert needs_inpaint(False, req(outpaint_selections=["Left"])) is True
    assert needs_inpaint(False, req(inpaint_mode=MODIFY, outpaint_selections=["Left"])) is False
    for bad in (1, 0, None, "yes", np.array([True])):
        with pytest.raises(ValueError, match="mask_has_repaint"):
            needs_inpaint(bad, plain)


# ------------------------------------------------------------------------------------------- seeds
def test_resolve_seed():
    assert resolve_seed(req(seed=176400)) == 176400
    assert resolve_seed(req(seed=0), random.Random(1)) == 0
    a = resolve_seed(req(), random.Random(42))
    assert a == random.Random(42).randint(0, 2**63 - 1)
    assert 0 <= resolve_seed(req()) <= rq.MAX_SEED
    with pytest.raises(ValueError, match="rng"):
        resolve_seed(req(), rng=42)
    with pytest.raises(ValueError, match="req"):
        resolve_seed({"seed": 1})


# -------------------------------------------------------------------------------------- round trip
ROUND_TRIP_CASES = [
    {},
    {"seed": 176400, "mask_image_url": "https://x/m.png", "outpaint_selections": ["Left", "Top"],
     "styles": [], "loras": [], "num_images": 3, "inpaint_erode_or_dilate": 5.0},
    {"prompt": "π ✓\nline 2", "styles": ["Random Style"], "performance": "Lightning",
     "aspect_ratio": "0896x1152",
     "loras": [{"path": "a", "scale": -2}, {"path": "b", "scale": 2}, {"path": "c"}],
     "image_prompt_1": {"type": "PyraCanny", "image_url": "data:image/png;base64,AA==", "stop_at": 0.25},
     "image_prompt_3": {"weight": 0.0}, "inpaint_mode": MODIFY, "override_inpaint_options": True,
     "inpaint_engine": "v2.5", "inpaint_strength": 0.123456789, "enable_safety_checker": False},
]


@pytest.mark.parametrize("extra", ROUND_TRIP_CASES)
def test_round_trip(extra):
    r = req(**extra)
    d = to_dict(r)
    assert parse_request(d) == r
    assert to_dict(parse_request(d)) == d
    assert list(d) == list(rq.FIELD_NAMES)
    assert hash(r) == hash(parse_request(d))
    import json
    assert parse_request(json.loads(json.dumps(d))) == r


def test_to_dict_rejects_non_request():
    with pytest.raises(ValueError, match="req"):
        to_dict({"inpaint_image_url": IMG})


# ------------------------------------------------------------------------------------- JSON schema
def test_json_schema_shape_and_enums():
    s = request_json_schema()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["type"] == "object" and s["required"] == ["inpaint_image_url"]
    assert s["additionalProperties"] is False
    props = s["properties"]
    assert len(props) == 32 and list(props) == list(rq.FIELD_NAMES)
    assert props["performance"]["enum"] == ["Speed", "Quality", "Extreme Speed", "Lightning", "Hyper-SD"]
    assert props["refiner_model"]["enum"] == ["None", "realisticVisionV60B1_v51VAE.safetensors"]
    assert props["output_format"]["enum"] == ["png", "jpeg", "webp"]
    assert props["inpaint_mode"]["enum"] == [DEFAULT_MODE, DETAIL, MODIFY]
    assert props["inpaint_engine"]["enum"] == ["None", "v1", "v2.5", "v2.6"]
    assert props["outpaint_selections"]["items"]["enum"] == ["Left", "Right", "Top", "Bottom"]
    assert props["outpaint_selections"]["uniqueItems"] is True
    assert s["$defs"]["ImagePrompt"]["properties"]["type"]["enum"] == ["ImagePrompt", "PyraCanny", "CPDS",
                                                                        "FaceSwap"]
    assert props["loras"]["maxItems"] == 5
    assert s["$defs"]["LoraWeight"]["required"] == ["path"]
    assert "enum" not in props["styles"]["items"]
    for n in (1, 2, 3, 4):
        assert props[f"image_prompt_{n}"]["anyOf"][0] == {"$ref": "#/$defs/ImagePrompt"}
    # defaults in the schema are fal's defaults
    assert {k: v["default"] for k, v in props.items() if "default" in v} == FAL_DEFAULTS
    assert "default" not in props["inpaint_image_url"]


def test_json_schema_styles_enum_from_names():
    s = request_json_schema(["Fooocus Enhance", "Fooocus V2", "Fooocus Sharp"])
    assert s["properties"]["styles"]["items"]["enum"] == ["Fooocus V2", "Fooocus Enhance", "Fooocus Sharp",
                                                          "Random Style"]
    with pytest.raises(ValueError, match="style_names"):
        request_json_schema("Fooocus V2")


def test_json_schema_ranges_match_parser():
    """Every numeric min/max in the schema is accepted at the bound and rejected just beyond it."""
    s = request_json_schema()
    for name, prop in s["properties"].items():
        if "minimum" not in prop:
            continue
        lo, hi = prop["minimum"], prop["maximum"]
        integral = prop["type"] in ("integer", ["integer", "null"]) or prop.get("multipleOf") == 1
        step = 1 if integral else 1e-6
        req(**{name: lo}), req(**{name: hi})
        errors_of({"inpaint_image_url": IMG, name: lo - step})
        errors_of({"inpaint_image_url": IMG, name: hi + step})
    for key, pm in (("ImagePrompt", "image_prompt_1"),):
        for fname, fp in s["$defs"][key]["properties"].items():
            if "minimum" in fp:
                req(**{pm: {fname: fp["minimum"]}}), req(**{pm: {fname: fp["maximum"]}})
                errors_of({"inpaint_image_url": IMG, pm: {fname: fp["maximum"] + 1e-6}})
    sc = s["$defs"]["LoraWeight"]["properties"]["scale"]
    assert (sc["minimum"], sc["maximum"], sc["default"]) == (-2.0, 2.0, 0.1)


# ---------------------------------------------------------------------------------------- response
def test_content_type_for():
    assert [content_type_for(f) for f in ("png", "jpeg", "webp")] == ["image/png", "image/jpeg", "image/webp"]
    for bad in ("jpg", "PNG", None, 3):
        with pytest.raises(ValueError, match="output_format"):
            content_type_for(bad)


def test_build_response_shape():
    img = ImageResult(url="https://v3.fal.media/files/z9RV14K95DvU.png", content_type="image/png",
                      file_name="z9RV14K95DvU.png", file_size=4404019, width=1024, height=1024)
    out = build_response([img, {"url": "data:image/jpeg;base64,AA", "width": np.int64(8), "height": 8}],
                         {"inference": 1.5, "total": np.float32(2.25)}, [False, np.bool_(True)])
    assert out == {
        "images": [
            {"url": "https://v3.fal.media/files/z9RV14K95DvU.png", "content_type": "image/png",
             "file_name": "z9RV14K95DvU.png", "file_size": 4404019, "width": 1024, "height": 1024},
            {"url": "data:image/jpeg;base64,AA", "width": 8, "height": 8},
        ],
        "timings": {"inference": 1.5, "total": 2.25},
        "has_nsfw_concepts": [False, True],
    }
    assert "seed" not in out
    assert type(out["images"][1]["width"]) is int and type(out["has_nsfw_concepts"][1]) is bool
    import json
    json.dumps(out)
    assert build_response([], {}, []) == {"images": [], "timings": {}, "has_nsfw_concepts": []}


@pytest.mark.parametrize("args,match", [
    (([ImageResult("u")], {}, []), "one flag per image"),
    (([ImageResult("u")], {}, [1]), r"has_nsfw_concepts\[0\]"),
    (([ImageResult("u")], {"t": "1"}, [False]), "timings"),
    (([ImageResult("u")], {"t": True}, [False]), "timings"),
    (([ImageResult("u")], {"t": math.inf}, [False]), "timings"),
    (([ImageResult("u")], {1: 1.0}, [False]), "timings"),
    (([ImageResult("u")], [1.0], [False]), "timings"),
    (("u", {}, []), "images"),
    ((["u"], {}, [False]), r"images\[0\]"),
    (([{"url": "u", "seed": 1}], {}, [False]), "unknown keys"),
    (([ImageResult("u")], {}, "0"), "has_nsfw_concepts"),
])
def test_build_response_errors(args, match):
    with pytest.raises(ValueError, match=match):
        build_response(*args)


@pytest.mark.parametrize("kw", [{"url": ""}, {"url": None}, {"url": "u", "width": 0},
                                {"url": "u", "file_size": -1},
                                {"url": "u", "height": 1.5}, {"url": "u", "width": True},
                                {"url": "u", "content_type": 3}])
def test_image_result_rejects(kw):
    with pytest.raises(ValueError, match="ImageResult"):
        ImageResult(**kw)
