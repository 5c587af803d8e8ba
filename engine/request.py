"""The ``fal-ai/fooocus/inpaint`` request and response, as plain dataclasses.

This module models the hosted API's input (32 fields, fal-schema.md §1) and output (§1.4) without
pydantic: :func:`parse_request` validates a JSON-like ``dict`` and returns a frozen
:class:`InpaintRequest`, collecting *every* problem into one :class:`RequestValidationError` whose
``errors`` list is shaped like fal's HTTP 422 ``detail`` (``{"loc": ["body", field, ...], "msg", "type"}``).

It also holds the pure decision logic that sits between the request and the Fooocus pipeline:

- :func:`effective_inpaint_options` -- the ``inpaint_mode`` presets of the Fooocus UI
  (``webui.py inpaint_mode_change``), ``override_inpaint_options``, and the outpaint rules;
- :func:`needs_inpaint` -- Fooocus's gate ``np.any(mask > 127) or outpaint`` (``async_worker.py``);
- :func:`resolve_seed` -- ``seed=None`` means "draw one" (Fooocus: ``random.randint(MIN_SEED, MAX_SEED)``).

Decisions where fal's public schema is silent (each is repeated where it applies):

1. **Unknown fields.** fal's schema publishes no ``additionalProperties`` rule, and its service code is
   not public. pydantic (which fal apps use) *ignores* unknown fields by default, but a silently ignored
   typo such as ``mask_url`` (a mistake seen in community code, fal-schema.md §1.3) produces a wrong
   image, so this module is **strict by default**: unknown keys are reported as ``extra_forbidden``.
   ``parse_request(..., allow_unknown=True)`` drops them instead (logged at WARNING), mimicking pydantic.
2. **LoRA scale** is accepted in ``-2..2`` (the Fooocus UI slider), default 0.1: fal-js's shared
   ``LoraWeight`` (0..4, default 1) belongs to other endpoints (fal-schema.md §1.2). At most 5 LoRAs
   (fal documents "up to 5"; Fooocus has 5 slots).
3. **Performance** accepts fal's four values plus ``"Hyper-SD"`` (a Fooocus 2.5 preset fal does not
   offer) as an extension.
4. **aspect_ratio** must match ``^[0-9]+x[0-9]+$`` with both sides multiples of 8 and within
   ``[ASPECT_MIN_SIDE, ASPECT_MAX_SIDE]`` = [64, 4096] (one latent is at least 8x8; 4096 is twice the
   largest Fooocus SDXL preset side). Fooocus takes the inpaint size from the source image, so the value
   hardly matters for /inpaint (fal-schema.md §3.3).
5. **Empty strings** for the optional ``mask_image_url`` and ``ImagePrompt.image_url`` mean "none" and
   are stored as ``None``. ``inpaint_image_url`` must be a non-empty string.
6. **Styles** may repeat (fal's schema has no ``uniqueItems``; Fooocus applies each entry in order);
   ``outpaint_selections`` may not (the UI offers each direction once).
7. **inpaint_mode vs outpaint.** In the Fooocus UI the outpaint boxes exist only in the default mode;
   choosing Improve Detail or Modify Content resets them to ``[]`` (fooocus-pipeline.md §2-3). A fal
   request can still combine them; we accept it and follow the UI: the directions are *dropped* (listed in
   :attr:`InpaintOptions.outpaint_dropped`, logged at WARNING). The additional prompt, which the UI hides
   in the default mode, is kept in every mode because fal documents it as a standalone field.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import random
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "ASPECT_MAX_SIDE", "ASPECT_MIN_SIDE", "DEFAULT_LORA_URL", "DEFAULT_STYLES", "FAL_PERFORMANCES",
    "FIELD_NAMES", "IMAGE_PROMPT_TYPES", "INPAINT_ENGINES", "INPAINT_MODES", "MAX_LORAS", "MAX_SEED",
    "MODE_DEFAULT", "MODE_DETAIL", "MODE_MODIFY", "MODE_PRESETS", "OUTPAINT_DIRECTIONS", "OUTPUT_FORMATS",
    "PERFORMANCES", "REFINER_MODELS", "RESTRICTED_PERFORMANCES", "SYNTHETIC_REFINER_SWITCH",
    "ALWAYS_ALLOWED_STYLES", "ImagePrompt", "ImageResult", "InpaintOptions", "InpaintRequest",
    "LoraWeight", "RequestValidationError", "build_response", "classify_image_ref", "content_type_for",
    "default_request_dict", "effective_inpaint_options", "needs_inpaint", "parse_request",
    "request_json_schema", "resolve_seed", "to_dict",
]

# --------------------------------------------------------------------------------------------------
# Enumerations and limits (fal-schema.md §1, §3.2)
# --------------------------------------------------------------------------------------------------
FAL_PERFORMANCES: tuple[str, ...] = ("Speed", "Quality", "Extreme Speed", "Lightning")
#: fal's four presets plus Fooocus's ``Hyper-SD`` (accepted as an extension; fal does not offer it).
PERFORMANCES: tuple[str, ...] = FAL_PERFORMANCES + ("Hyper-SD",)
#: Presets that load a performance LoRA and force ``refiner = None`` (fooocus-pipeline.md §4).
RESTRICTED_PERFORMANCES: frozenset[str] = frozenset({"Extreme Speed", "Lightning", "Hyper-SD"})
REFINER_MODELS: tuple[str, ...] = ("None", "realisticVisionV60B1_v51VAE.safetensors")
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp")
MODE_DEFAULT = "Inpaint or Outpaint (default)"
MODE_DETAIL = "Improve Detail (face, hand, eyes, etc.)"
MODE_MODIFY = "Modify Content (add objects, change background, etc.)"
INPAINT_MODES: tuple[str, ...] = (MODE_DEFAULT, MODE_DETAIL, MODE_MODIFY)
INPAINT_ENGINES: tuple[str, ...] = ("None", "v1", "v2.5", "v2.6")
#: The UI's order; Fooocus applies padding in the fixed order top, bottom, left, right.
OUTPAINT_DIRECTIONS: tuple[str, ...] = ("Left", "Right", "Top", "Bottom")
_OUTPAINT_APPLY_ORDER: tuple[str, ...] = ("Top", "Bottom", "Left", "Right")
IMAGE_PROMPT_TYPES: tuple[str, ...] = ("ImagePrompt", "PyraCanny", "CPDS", "FaceSwap")

#: Names accepted in ``styles`` whatever style files are loaded (Fooocus ``legal_style_names`` prefix).
ALWAYS_ALLOWED_STYLES: tuple[str, ...] = ("Fooocus V2", "Random Style")
DEFAULT_STYLES: tuple[str, ...] = ("Fooocus Enhance", "Fooocus V2", "Fooocus Sharp")
DEFAULT_LORA_URL = ("https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/"
                    "sd_xl_offset_example-lora_1.0.safetensors")
MAX_LORAS = 5
LORA_SCALE_MIN, LORA_SCALE_MAX = -2.0, 2.0
MAX_SEED = 2**63 - 1
ASPECT_MIN_SIDE, ASPECT_MAX_SIDE = 64, 4096
NUM_IMAGES_MIN, NUM_IMAGES_MAX = 1, 4
ERODE_DILATE_LIMIT = 64
#: Fooocus's synthetic-refiner switch when an inpaint engine is used without a refiner (since v2.3.0).
SYNTHETIC_REFINER_SWITCH = 0.8

#: ``inpaint_mode`` -> (disable_initial_latent, engine, strength, respective_field); Fooocus
#: ``webui.py inpaint_mode_change`` (fooocus-pipeline.md §3). The default engine is v2.6.
MODE_PRESETS: dict[str, tuple[bool, str, float, float]] = {
    MODE_DEFAULT: (False, "v2.6", 1.0, 0.618),
    MODE_DETAIL: (False, "None", 0.5, 0.0),
    MODE_MODIFY: (True, "v2.6", 1.0, 0.0),
}

_ASPECT_RE = re.compile(r"[0-9]+x[0-9]+")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+)://")
_MAX_EXACT_FLOAT_INT = 2**53


# --------------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImagePrompt:
    """One ``image_prompt_N`` slot (fal ``ImagePrompt``; Fooocus ``cn_img/cn_stop/cn_weight/cn_type``).

    ``type`` is one of :data:`IMAGE_PROMPT_TYPES`; ``image_url`` is ``None`` when absent (fal makes it
    optional; the slot is then unused); ``stop_at`` in [0, 1] (default 0.5) and ``weight`` in [0, 2]
    (default 1.0). NB fal's defaults are the same for every type, unlike Fooocus
    ``flags.default_parameters``.
    """

    type: str = "ImagePrompt"
    image_url: str | None = None
    stop_at: float = 0.5
    weight: float = 1.0


@dataclass(frozen=True)
class LoraWeight:
    """One entry of ``loras`` (fal ``LoraWeight``; Fooocus LoRA slot ``(name, weight)``).

    ``path``: URL or local path, required, non-empty. ``scale``: float in [-2, 2] (Fooocus UI slider
    range, see module note 2), default 0.1.
    """

    path: str
    scale: float = 0.1


@dataclass(frozen=True, kw_only=True)
class InpaintRequest:
    """A validated ``fal-ai/fooocus/inpaint`` input (fal-schema.md §1), field for field.

    Build it with :func:`parse_request` (which validates); sequences are stored as tuples so the
    object is immutable and hashable. Field order is fal's documentation order (see :data:`FIELD_NAMES`).
    """

    prompt: str = ""
    negative_prompt: str = ""
    styles: tuple[str, ...] = DEFAULT_STYLES
    performance: str = "Extreme Speed"
    guidance_scale: float = 4.0
    sharpness: float = 2.0
    aspect_ratio: str = "1024x1024"
    num_images: int = 1
    loras: tuple[LoraWeight, ...] = (LoraWeight(DEFAULT_LORA_URL, 0.1),)
    refiner_model: str = "None"
    refiner_switch: float = 0.8
    output_format: str = "jpeg"
    sync_mode: bool = False
    seed: int | None = None
    inpaint_image_url: str
    mask_image_url: str | None = None
    inpaint_mode: str = MODE_DEFAULT
    inpaint_additional_prompt: str = ""
    outpaint_selections: tuple[str, ...] = ()
    override_inpaint_options: bool = False
    inpaint_disable_initial_latent: bool = False
    inpaint_engine: str = "v2.6"
    inpaint_strength: float = 1.0
    inpaint_respective_field: float = 0.618
    inpaint_erode_or_dilate: int = 0
    invert_mask: bool = False
    image_prompt_1: ImagePrompt | None = None
    image_prompt_2: ImagePrompt | None = None
    image_prompt_3: ImagePrompt | None = None
    image_prompt_4: ImagePrompt | None = None
    mixing_image_prompt_and_inpaint: bool = False
    enable_safety_checker: bool = True

    @property
    def width_height(self) -> tuple[int, int]:
        """``aspect_ratio`` as ``(width, height)`` ints (fal ``"WxH"``; Fooocus ``"W*H"``)."""
        w, h = self.aspect_ratio.split("x")
        return int(w), int(h)

    @property
    def image_prompts(self) -> tuple[ImagePrompt | None, ...]:
        """The four ``image_prompt_N`` slots in order (``None`` = absent)."""
        return (self.image_prompt_1, self.image_prompt_2, self.image_prompt_3, self.image_prompt_4)


#: The 32 fal input fields, in fal's documentation order (= :class:`InpaintRequest` field order).
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(InpaintRequest))
assert len(FIELD_NAMES) == 32


class RequestValidationError(ValueError):
    """All problems found in one request, shaped like fal's HTTP 422 body.

    ``errors`` is a list of ``{"loc": ["body", field, (index|key)...], "msg": str, "type": str}``; every
    ``msg`` starts with the dotted field path (``loras[0].scale: ...``). ``detail()`` returns
    ``{"detail": errors}``, the JSON body fal (FastAPI) sends with status 422.
    """

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        lines = "\n".join(f"  - {e['msg']}" for e in errors)
        super().__init__(f"{len(errors)} invalid field(s) in the fooocus/inpaint request:\n{lines}")

    def detail(self) -> dict[str, Any]:
        """The 422 response body ``{"detail": [...]}``."""
        return {"detail": [dict(e, loc=list(e["loc"])) for e in self.errors]}


# --------------------------------------------------------------------------------------------------
# Low-level checkers. Each returns the converted value or _BAD after recording an error.
# --------------------------------------------------------------------------------------------------
class _Bad:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<invalid>"


_BAD: Any = _Bad()


def _path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Collector:
    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def add(self, loc: Sequence[str | int], msg: str, type_: str) -> Any:
        name = _path(loc) or "request body"
        self.errors.append({"loc": ["body", *loc], "msg": f"{name}: {msg}", "type": type_})
        return _BAD


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    if _is_number(value):
        return "a number"
    return type(value).__name__


def _check_str(c: _Collector, loc: list, value: Any) -> Any:
    if not isinstance(value, str):
        return c.add(loc, f"Input should be a valid string, got {_type_name(value)} ({_show(value)})",
                     "string_type")
    return value


def _check_bool(c: _Collector, loc: list, value: Any) -> Any:
    if not isinstance(value, bool):
        return c.add(loc, f"Input should be a valid boolean (true or false), got {_type_name(value)} "
                          f"({_show(value)})", "bool_type")
    return value


def _check_range(c: _Collector, loc: list, value: float, lo: float, hi: float) -> Any:
    if value < lo:
        return c.add(loc, f"Input should be greater than or equal to {lo:g} (got {value!r})",
                     "greater_than_equal")
    if value > hi:
        return c.add(loc, f"Input should be less than or equal to {hi:g} (got {value!r})",
                     "less_than_equal")
    return value


def _check_float(c: _Collector, loc: list, value: Any, lo: float, hi: float) -> Any:
    if not _is_number(value):
        return c.add(loc, f"Input should be a valid number in [{lo:g}, {hi:g}], got {_type_name(value)} "
                          f"({_show(value)})", "float_type")
    if isinstance(value, int):
        if abs(value) > _MAX_EXACT_FLOAT_INT:
            return c.add(loc, f"Input should be a number in [{lo:g}, {hi:g}] (got {value})",
                         "less_than_equal" if value > 0 else "greater_than_equal")
        value = float(value)
    if not math.isfinite(value):
        return c.add(loc, f"Input should be a finite number in [{lo:g}, {hi:g}] (got {value!r})",
                     "finite_number")
    return _check_range(c, loc, value, lo, hi)


def _check_int(c: _Collector, loc: list, value: Any, lo: int | None, hi: int | None,
               what: str = "integer") -> Any:
    """Integers; integral floats (``2.0``) are accepted like pydantic's lax mode, fractional ones not."""
    bounds = f" in [{lo}, {hi}]" if lo is not None and hi is not None else ""
    if not _is_number(value):
        return c.add(loc, f"Input should be a valid {what}{bounds}, got {_type_name(value)} ({_show(value)})",
                     "int_type")
    if isinstance(value, float):
        if not math.isfinite(value):
            return c.add(loc, f"Input should be a finite {what}{bounds} (got {value!r})", "finite_number")
        if value != int(value):
            return c.add(loc, f"Input should be a valid {what}{bounds}, got a number with a fractional "
                              f"part ({value!r})", "int_from_float")
        if abs(value) > _MAX_EXACT_FLOAT_INT:
            return c.add(loc, f"Input should be an exact {what}{bounds}; {value!r} is a float too large to "
                              "be exact, send it as a JSON integer", "int_from_float")
        value = int(value)
    if lo is not None and value < lo:
        return c.add(loc, f"Input should be a {what} greater than or equal to {lo} (got {value})",
                     "greater_than_equal")
    if hi is not None and value > hi:
        return c.add(loc, f"Input should be a {what} less than or equal to {hi} (got {value})",
                     "less_than_equal")
    return value


def _check_enum(c: _Collector, loc: list, value: Any, choices: Sequence[str]) -> Any:
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(x) for x in choices)
        return c.add(loc, f"Input should be one of {allowed} (got {_show(value)})", "enum")
    return value


def _check_list(c: _Collector, loc: list, value: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        return c.add(loc, f"Input should be a valid array, got {_type_name(value)} ({_show(value)})",
                     "list_type")
    return value


def _check_object(c: _Collector, loc: list, value: Any, what: str) -> Any:
    if not isinstance(value, Mapping):
        return c.add(loc, f"Input should be a valid {what} object, got {_type_name(value)} ({_show(value)})",
                     "model_type")
    return value


def _check_extra(c: _Collector, loc: list, data: Mapping, known: Collection[str],
                 allow_unknown: bool) -> None:
    for key in data:
        if key in known:
            continue
        if allow_unknown:
            log.warning("ignoring unknown request field %s", _path([*loc, str(key)]))
        else:
            c.add([*loc, str(key)], "Extra inputs are not permitted (unknown field; check the spelling "
                                    "against the fooocus/inpaint schema)", "extra_forbidden")


def classify_image_ref(ref: str) -> str:
    """Classify an image reference string without any I/O.

    Returns ``"url"`` (``http://`` / ``https://``, case-insensitive), ``"data"`` (a ``data:`` URI with a
    ``,`` separating header and payload) or ``"path"`` (anything else: a local file path; a Windows drive
    letter ``C:\\...`` is a path). Raises ``ValueError`` for a non-string, an empty/blank string, a NUL
    character, a ``data:`` URI without ``,``, an URL with nothing after ``://`` or another URL scheme
    (``ftp://``, ``s3://``...). fal accepts URLs and data URIs for every ``*_url`` field
    (fal-schema.md §5.3); local paths are this pack's extension.
    """
    if not isinstance(ref, str):
        raise ValueError(f"image reference: expected a string, got {type(ref).__name__}")
    if not ref.strip():
        raise ValueError("image reference: expected a non-empty URL, data URI or path, got an empty string")
    if "\x00" in ref:
        raise ValueError("image reference: contains a NUL character")
    if ref[:5].lower() == "data:":
        if "," not in ref:
            raise ValueError("image reference: a data URI needs 'data:<mediatype>[;base64],<payload>'")
        return "data"
    m = _SCHEME_RE.match(ref)
    if m:
        scheme = m.group(1).lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"image reference: unsupported URL scheme {scheme!r} (use http(s), a data URI "
                             "or a local path)")
        if len(ref) == m.end():
            raise ValueError("image reference: URL has no host")
        return "url"
    return "path"


def _check_image_ref(c: _Collector, loc: list, value: Any, optional: bool) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        what = "a URL, data URI or path string" + (" or null" if optional else "")
        return c.add(loc, f"Input should be {what}, got {_type_name(value)} ({_show(value)})", "string_type")
    if value == "" and optional:
        return None
    try:
        classify_image_ref(value)
    except ValueError as exc:
        kind = "string_too_short" if not value.strip() else "url_parsing"
        return c.add(loc, str(exc).replace("image reference: ", ""), kind)
    return value


# --------------------------------------------------------------------------------------------------
# Field validators
# --------------------------------------------------------------------------------------------------
_FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "guidance_scale": (1.0, 30.0),
    "sharpness": (0.0, 30.0),
    "refiner_switch": (0.0, 1.0),
    "inpaint_strength": (0.0, 1.0),
    "inpaint_respective_field": (0.0, 1.0),
}
_BOOL_FIELDS = ("sync_mode", "override_inpaint_options", "inpaint_disable_initial_latent", "invert_mask",
                "mixing_image_prompt_and_inpaint", "enable_safety_checker")
_STR_FIELDS = ("prompt", "negative_prompt", "inpaint_additional_prompt")
_ENUM_FIELDS: dict[str, tuple[str, ...]] = {
    "performance": PERFORMANCES,
    "refiner_model": REFINER_MODELS,
    "output_format": OUTPUT_FORMATS,
    "inpaint_mode": INPAINT_MODES,
    "inpaint_engine": INPAINT_ENGINES,
}


def _parse_aspect(c: _Collector, loc: list, value: Any) -> Any:
    if not isinstance(value, str):
        return c.add(loc, f"Input should be a string 'WIDTHxHEIGHT' such as '1024x1024', got "
                          f"{_type_name(value)} ({_show(value)})", "string_type")
    if not _ASPECT_RE.fullmatch(value):
        return c.add(loc, f"Input should match '^[0-9]+x[0-9]+$' (e.g. '1024x1024', lowercase x) "
                          f"(got {_show(value)})", "string_pattern_mismatch")
    w, h = (int(x) for x in value.split("x"))
    for side, name in ((w, "width"), (h, "height")):
        if side % 8:
            return c.add(loc, f"{name} {side} should be a multiple of 8 (got {value!r})", "multiple_of")
        if not ASPECT_MIN_SIDE <= side <= ASPECT_MAX_SIDE:
            return c.add(loc, f"{name} {side} should be between {ASPECT_MIN_SIDE} and {ASPECT_MAX_SIDE} "
                              f"(got {value!r})", "value_error")
    return value


def _parse_styles(c: _Collector, loc: list, value: Any, style_names: frozenset[str] | None) -> Any:
    if _check_list(c, loc, value) is _BAD:
        return _BAD
    out, ok = [], True
    for i, item in enumerate(value):
        if not isinstance(item, str):
            c.add([*loc, i], f"Input should be a style name string, got {_type_name(item)} ({_show(item)})",
                  "string_type")
            ok = False
        elif style_names is not None and item not in style_names:
            c.add([*loc, i], f"Input should be a known style name ('Fooocus V2', 'Random Style' or a loaded "
                             f"style template name) (got {item!r})", "enum")
            ok = False
        else:
            out.append(item)
    return tuple(out) if ok else _BAD


def _parse_outpaint(c: _Collector, loc: list, value: Any) -> Any:
    if _check_list(c, loc, value) is _BAD:
        return _BAD
    out, ok = [], True
    for i, item in enumerate(value):
        got = _check_enum(c, [*loc, i], item, OUTPAINT_DIRECTIONS)
        if got is _BAD:
            ok = False
        elif got in out:
            c.add([*loc, i], f"duplicate direction {got!r}; each of Left, Right, Top, Bottom may appear once",
                  "value_error")
            ok = False
        else:
            out.append(got)
    return tuple(out) if ok else _BAD


def _parse_lora(c: _Collector, loc: list, value: Any, allow_unknown: bool) -> Any:
    if _check_object(c, loc, value, "LoraWeight") is _BAD:
        return _BAD
    _check_extra(c, loc, value, ("path", "scale"), allow_unknown)
    if "path" not in value:
        path = c.add([*loc, "path"], "Field required (URL or path of the LoRA weights)", "missing")
    else:
        path = _check_str(c, [*loc, "path"], value["path"])
        if path is not _BAD and not path.strip():
            path = c.add([*loc, "path"], "Input should be a non-empty URL or path", "string_too_short")
    scale = _check_float(c, [*loc, "scale"], value.get("scale", 0.1), LORA_SCALE_MIN, LORA_SCALE_MAX)
    if path is _BAD or scale is _BAD:
        return _BAD
    return LoraWeight(path=path, scale=scale)


def _parse_loras(c: _Collector, loc: list, value: Any, allow_unknown: bool) -> Any:
    if _check_list(c, loc, value) is _BAD:
        return _BAD
    ok = True
    if len(value) > MAX_LORAS:
        c.add(loc, f"List should have at most {MAX_LORAS} items (got {len(value)})", "too_long")
        ok = False
    items = [_parse_lora(c, [*loc, i], v, allow_unknown) for i, v in enumerate(value)]
    if not ok or any(x is _BAD for x in items):
        return _BAD
    return tuple(items)


def _parse_image_prompt(c: _Collector, loc: list, value: Any, allow_unknown: bool) -> Any:
    if value is None:
        return None
    if _check_object(c, loc, value, "ImagePrompt (or null)") is _BAD:
        return _BAD
    _check_extra(c, loc, value, ("type", "image_url", "stop_at", "weight"), allow_unknown)
    got = ImagePrompt(
        type=_check_enum(c, [*loc, "type"], value.get("type", "ImagePrompt"), IMAGE_PROMPT_TYPES),
        image_url=_check_image_ref(c, [*loc, "image_url"], value.get("image_url"), optional=True),
        stop_at=_check_float(c, [*loc, "stop_at"], value.get("stop_at", 0.5), 0.0, 1.0),
        weight=_check_float(c, [*loc, "weight"], value.get("weight", 1.0), 0.0, 2.0),
    )
    return _BAD if any(getattr(got, f.name) is _BAD for f in dataclasses.fields(got)) else got


def _parse_field(c: _Collector, name: str, value: Any, style_names: frozenset[str] | None,
                 allow_unknown: bool) -> Any:
    loc = [name]
    if name in _STR_FIELDS:
        return _check_str(c, loc, value)
    if name in _BOOL_FIELDS:
        return _check_bool(c, loc, value)
    if name in _FLOAT_RANGES:
        return _check_float(c, loc, value, *_FLOAT_RANGES[name])
    if name in _ENUM_FIELDS:
        return _check_enum(c, loc, value, _ENUM_FIELDS[name])
    if name == "styles":
        return _parse_styles(c, loc, value, style_names)
    if name == "aspect_ratio":
        return _parse_aspect(c, loc, value)
    if name == "num_images":
        return _check_int(c, loc, value, NUM_IMAGES_MIN, NUM_IMAGES_MAX)
    if name == "loras":
        return _parse_loras(c, loc, value, allow_unknown)
    if name == "seed":
        if value is None:
            return None
        return _check_int(c, loc, value, 0, MAX_SEED, what="integer seed (or null for a random one)")
    if name == "inpaint_image_url":
        return _check_image_ref(c, loc, value, optional=False)
    if name == "mask_image_url":
        return _check_image_ref(c, loc, value, optional=True)
    if name == "outpaint_selections":
        return _parse_outpaint(c, loc, value)
    if name == "inpaint_erode_or_dilate":
        return _check_int(c, loc, value, -ERODE_DILATE_LIMIT, ERODE_DILATE_LIMIT,
                          what="whole number of pixels")
    if name.startswith("image_prompt_"):
        return _parse_image_prompt(c, loc, value, allow_unknown)
    raise AssertionError(f"no validator for {name}")  # pragma: no cover


def parse_request(data: Mapping[str, Any], *, style_names: Collection[str] | None = None,
                  allow_unknown: bool = False) -> InpaintRequest:
    """Validate a fal ``fooocus/inpaint`` JSON body and return an :class:`InpaintRequest`.

    ``data``: the decoded JSON object (``dict``; tuples are accepted where arrays are expected). Missing
    fields take fal's defaults; only ``inpaint_image_url`` is required. Checks: exact JSON types (a bool
    is not a number, ``"4"`` is not a number, ``null`` only where fal allows it: ``seed``,
    ``mask_image_url``, ``image_prompt_N``, ``ImagePrompt.image_url``), enums, ranges, ``aspect_ratio``
    format, list lengths, nested ``LoraWeight`` / ``ImagePrompt`` objects.

    ``style_names``: the loaded template names (Fooocus ``style_keys``); when given each style must be one
    of them or ``"Fooocus V2"`` / ``"Random Style"``; when ``None`` names are not checked here.
    ``allow_unknown``: ``False`` (default) reports unknown keys as ``extra_forbidden``; ``True`` ignores
    them like pydantic's default (see module note 1).

    Raises :class:`RequestValidationError` (a ``ValueError``) listing every invalid field at once.
    Fooocus counterpart: the Gradio/worker argument list of ``modules/async_worker.py AsyncTask``.
    """
    c = _Collector()
    if not isinstance(data, Mapping):
        c.add([], f"Input should be a JSON object with the request fields, got {_type_name(data)}",
              "model_type")
        raise RequestValidationError(c.errors)
    names: frozenset[str] | None = None
    if style_names is not None:
        if isinstance(style_names, str):
            raise ValueError("style_names: expected a collection of style name strings, not one string")
        names = frozenset(style_names) | frozenset(ALWAYS_ALLOWED_STYLES)
    _check_extra(c, [], data, FIELD_NAMES, allow_unknown)
    defaults = {f.name: f.default for f in dataclasses.fields(InpaintRequest)}
    values: dict[str, Any] = {}
    for name in FIELD_NAMES:
        if name not in data:
            if name == "inpaint_image_url":
                values[name] = c.add([name], "Field required (URL, data URI or path of the image to inpaint)",
                                     "missing")
            else:
                values[name] = defaults[name]
            continue
        values[name] = _parse_field(c, name, data[name], names, allow_unknown)
    if c.errors:
        raise RequestValidationError(c.errors)
    return InpaintRequest(**values)


# --------------------------------------------------------------------------------------------------
# Serialisation
# --------------------------------------------------------------------------------------------------
def to_dict(req: InpaintRequest) -> dict[str, Any]:
    """The request as a JSON-ready ``dict`` with all 32 fields (tuples become lists, objects dicts).

    ``parse_request(to_dict(r)) == r`` for every valid ``r``. Optional absent values are ``None``
    (JSON ``null``), which fal accepts for ``seed``, ``mask_image_url`` and ``image_prompt_N``.
    """
    if not isinstance(req, InpaintRequest):
        raise ValueError(f"req: expected an InpaintRequest, got {type(req).__name__}")
    out: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = getattr(req, name)
        if name == "loras":
            value = [{"path": x.path, "scale": x.scale} for x in value]
        elif isinstance(value, ImagePrompt):
            value = dataclasses.asdict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def default_request_dict(inpaint_image_url: str | None = None) -> dict[str, Any]:
    """fal's documented defaults for the 31 optional fields, as a JSON-ready ``dict``.

    The required ``inpaint_image_url`` has no default: it is included only when given (then the result
    is a complete, valid request).
    """
    if inpaint_image_url is not None:
        return to_dict(parse_request({"inpaint_image_url": inpaint_image_url}))
    out = to_dict(InpaintRequest(inpaint_image_url="placeholder.png"))
    del out["inpaint_image_url"]
    return out


# --------------------------------------------------------------------------------------------------
# Effective inpaint options (mode presets, override, outpaint)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InpaintOptions:
    """What the pipeline actually uses after the mode presets, override and outpaint rules.

    - ``mode``: the request's ``inpaint_mode`` string.
    - ``disable_initial_latent`` (bool), ``engine`` (``'None'|'v1'|'v2.5'|'v2.6'``), ``strength`` and
      ``respective_field`` (floats in [0, 1]), ``erode_or_dilate`` (int in [-64, 64]; >0 dilate, <0 erode),
      ``invert_mask`` (bool; never touched by the mode).
    - ``outpaint_selections``: effective directions, capitalised, in Fooocus's application order
      (Top, Bottom, Left, Right); ``outpaint_dropped``: requested directions the mode discarded.
    - ``additional_prompt``: ``inpaint_additional_prompt`` (kept in every mode, module note 7).
    - ``use_inpaint_patch``: engine != 'None' -> load the Fooocus inpaint head + patch LoRA.
    - ``use_synthetic_refiner``: engine != 'None' and no refiner after the performance override -> the
      base model acts as refiner from :data:`SYNTHETIC_REFINER_SWITCH` (0.8) (async_worker.py 900-905).
    """

    mode: str
    disable_initial_latent: bool
    engine: str
    strength: float
    respective_field: float
    erode_or_dilate: int
    invert_mask: bool
    outpaint_selections: tuple[str, ...]
    outpaint_dropped: tuple[str, ...]
    additional_prompt: str
    use_inpaint_patch: bool
    use_synthetic_refiner: bool

    @property
    def use_fill(self) -> bool:
        """Fooocus ``InpaintWorker(use_fill=strength > 0.99)`` -- whether fooocus_fill pre-fills the crop."""
        return self.strength > 0.99

    @property
    def outpaint_directions_lower(self) -> tuple[str, ...]:
        """Effective directions lower-cased, as Fooocus's ``apply_outpaint`` compares them."""
        return tuple(d.lower() for d in self.outpaint_selections)


def effective_inpaint_options(req: InpaintRequest) -> InpaintOptions:
    """Resolve the inpaint settings the Fooocus pipeline would run with.

    1. ``override_inpaint_options`` false: the :data:`MODE_PRESETS` row of ``inpaint_mode`` (Fooocus UI
       ``webui.py inpaint_mode_change``: default (False, v2.6, 1.0, 0.618), Improve Detail
       (False, None, 0.5, 0.0), Modify Content (True, v2.6, 1.0, 0.0)) and erode_or_dilate 0; the user's
       five advanced values are ignored (fal: "otherwise, the default values will be used"; the per-mode
       reading is inferred, fooocus-pipeline.md §3). True: the user's five values are used as given.
    2. Outpaint directions are kept only in the default mode; Improve Detail / Modify Content drop them,
       as the Fooocus UI resets the outpaint boxes to [] for those modes (module note 7). This happens
       with or without override, since the UI offers no way to combine them.
    3. Outpaint forcing: if directions remain, strength and respective_field become 1.0, as fal documents
       ("ignored for outpaint, forced 1.0") and as Fooocus <= 2.4 did. NB Fooocus 2.5.x sets these on
       ``async_task`` *after* ``apply_inpaint`` has received them, so 2.5.x actually ignores the forcing
       (fooocus-pipeline.md §2); we follow fal / Fooocus <= 2.4.
    4. Engine 'None' -> ``use_inpaint_patch`` False (no head, no patch, no synthetic refiner).

    Fooocus counterpart: ``webui.py inpaint_mode_change`` + ``async_worker.py`` 862-914 and
    ``apply_outpaint``.
    """
    if not isinstance(req, InpaintRequest):
        raise ValueError(f"req: expected an InpaintRequest, got {type(req).__name__}")
    if req.inpaint_mode not in MODE_PRESETS:
        raise ValueError(f"req.inpaint_mode: expected one of {list(INPAINT_MODES)}, got {req.inpaint_mode!r}")
    if req.override_inpaint_options:
        disable, engine = req.inpaint_disable_initial_latent, req.inpaint_engine
        strength, field_k = float(req.inpaint_strength), float(req.inpaint_respective_field)
        erode = int(req.inpaint_erode_or_dilate)
    else:
        disable, engine, strength, field_k = MODE_PRESETS[req.inpaint_mode]
        erode = 0
    requested = tuple(d for d in _OUTPAINT_APPLY_ORDER if d in req.outpaint_selections)
    if req.inpaint_mode == MODE_DEFAULT:
        directions, dropped = requested, ()
    else:
        directions, dropped = (), requested
        if dropped:
            log.warning("inpaint_mode %r does not outpaint (the Fooocus UI clears the outpaint boxes); "
                        "ignoring outpaint_selections %s", req.inpaint_mode, list(req.outpaint_selections))
    if directions:
        strength, field_k = 1.0, 1.0
    use_patch = engine != "None"
    refiner = "None" if req.performance in RESTRICTED_PERFORMANCES else req.refiner_model
    return InpaintOptions(
        mode=req.inpaint_mode,
        disable_initial_latent=bool(disable),
        engine=engine,
        strength=float(strength),
        respective_field=float(field_k),
        erode_or_dilate=erode,
        invert_mask=req.invert_mask,
        outpaint_selections=directions,
        outpaint_dropped=dropped,
        additional_prompt=req.inpaint_additional_prompt,
        use_inpaint_patch=use_patch,
        use_synthetic_refiner=use_patch and refiner == "None",
    )


def needs_inpaint(mask_has_repaint: bool, req: InpaintRequest) -> bool:
    """Fooocus's inpaint gate: ``np.any(mask > 127) or len(outpaint_selections) > 0``.

    ``mask_has_repaint``: Python or numpy bool, whether the *processed* mask (after resampling,
    threshold, erode/dilate and invert) has any pixel > 127. Outpaint counts only for directions that
    survive :func:`effective_inpaint_options` (dropped in non-default modes). When False Fooocus silently
    runs plain text-to-image (fooocus-pipeline.md §1.1 step 5). Fooocus: ``async_worker.py`` ~870.
    """
    if not isinstance(mask_has_repaint, (bool, np.bool_)):
        raise ValueError(f"mask_has_repaint: expected a bool, got {type(mask_has_repaint).__name__}")
    return bool(mask_has_repaint) or bool(effective_inpaint_options(req).outpaint_selections)


def resolve_seed(req: InpaintRequest, rng: random.Random | None = None) -> int:
    """The request's seed, or a fresh one in ``[0, 2**63-1]`` when ``req.seed`` is ``None``.

    ``rng``: a ``random.Random`` (seeded for reproducible tests); ``None`` uses ``random.SystemRandom``.
    Fooocus: ``random.randint(constants.MIN_SEED, constants.MAX_SEED)`` in the UI; image ``i`` then uses
    ``(seed + i) % 2**63`` (fooocus-pipeline.md §9).
    """
    if not isinstance(req, InpaintRequest):
        raise ValueError(f"req: expected an InpaintRequest, got {type(req).__name__}")
    if req.seed is not None:
        return req.seed
    if rng is None:
        rng = random.SystemRandom()
    if not hasattr(rng, "randint"):
        raise ValueError(f"rng: expected a random.Random, got {type(rng).__name__}")
    return rng.randint(0, MAX_SEED)


# --------------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------------
def _num(default: float, lo: float, hi: float, desc: str) -> dict[str, Any]:
    return {"type": "number", "minimum": lo, "maximum": hi, "default": default, "description": desc}


def request_json_schema(style_names: Sequence[str] | None = None) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) ``dict`` describing the request :func:`parse_request` accepts.

    32 properties with types, enums, ranges and defaults, ``required: ["inpaint_image_url"]``,
    ``additionalProperties: false`` (the strict default), ``$defs`` for ``ImagePrompt`` and ``LoraWeight``.
    ``style_names``: when given, ``styles.items.enum`` is ``"Fooocus V2"``, the names in order, then
    ``"Random Style"`` (duplicates removed); otherwise items are free strings. Rules JSON Schema cannot
    express (aspect sides multiple of 8 and in range, integral erode/dilate accepted as floats) are stated
    in the descriptions and enforced by :func:`parse_request`.
    """
    if isinstance(style_names, str):
        raise ValueError("style_names: expected a sequence of style names, not one string")
    style_item: dict[str, Any] = {"type": "string"}
    if style_names is not None:
        style_item["enum"] = list(dict.fromkeys(["Fooocus V2", *style_names, "Random Style"]))
    image_prompt_ref = {"anyOf": [{"$ref": "#/$defs/ImagePrompt"}, {"type": "null"}], "default": None,
                        "description": "Optional image prompt (IP-Adapter / ControlNet) slot."}
    props: dict[str, Any] = {
        "prompt": {"type": "string", "default": "", "description": "Positive prompt."},
        "negative_prompt": {"type": "string", "default": "", "description": "Negative prompt."},
        "styles": {"type": "array", "items": style_item, "default": list(DEFAULT_STYLES),
                   "description": "Fooocus styles applied in order; 'Fooocus V2' = prompt expansion."},
        "performance": {"type": "string", "enum": list(PERFORMANCES), "default": "Extreme Speed",
                        "description": "Fooocus performance preset; 'Hyper-SD' is an extension fal does "
                                       "not offer."},
        "guidance_scale": _num(4.0, 1.0, 30.0, "CFG scale."),
        "sharpness": _num(2.0, 0.0, 30.0, "Fooocus sharpness (anisotropic filter weight)."),
        "aspect_ratio": {"type": "string", "pattern": "^[0-9]+x[0-9]+$", "default": "1024x1024",
                         "description": f"'WIDTHxHEIGHT'; both sides multiples of 8 in "
                                        f"[{ASPECT_MIN_SIDE}, {ASPECT_MAX_SIDE}]."},
        "num_images": {"type": "integer", "minimum": NUM_IMAGES_MIN, "maximum": NUM_IMAGES_MAX, "default": 1,
                       "description": "Number of images (seed, seed+1, ...)."},
        "loras": {"type": "array", "items": {"$ref": "#/$defs/LoraWeight"}, "maxItems": MAX_LORAS,
                  "default": [{"path": DEFAULT_LORA_URL, "scale": 0.1}],
                  "description": f"Up to {MAX_LORAS} LoRAs merged into the base model."},
        "refiner_model": {"type": "string", "enum": list(REFINER_MODELS), "default": "None",
                          "description": "Refiner checkpoint."},
        "refiner_switch": _num(0.8, 0.0, 1.0, "Fraction of steps before switching to the refiner."),
        "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS), "default": "jpeg",
                          "description": "Encoding of the output images."},
        "sync_mode": {"type": "boolean", "default": False,
                      "description": "Return images as data URIs instead of stored URLs."},
        "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SEED, "default": None,
                 "description": "Seed; null draws a random one."},
        "inpaint_image_url": {"type": "string", "minLength": 1,
                              "description": "Image to inpaint: http(s) URL, data URI or local path."},
        "mask_image_url": {"type": ["string", "null"], "default": None,
                           "description": "Mask (white = repaint); null or '' = none."},
        "inpaint_mode": {"type": "string", "enum": list(INPAINT_MODES), "default": MODE_DEFAULT,
                         "description": "Fooocus inpaint mode (selects the preset advanced options)."},
        "inpaint_additional_prompt": {"type": "string", "default": "",
                                      "description": "Prepended to the prompt as its first line."},
        "outpaint_selections": {"type": "array",
                                "items": {"type": "string", "enum": list(OUTPAINT_DIRECTIONS)},
                                "uniqueItems": True, "default": [],
                                "description": "Sides to extend by 30% (default mode only)."},
        "override_inpaint_options": {"type": "boolean", "default": False,
                                     "description": "Use the five advanced inpaint fields instead of the "
                                                    "mode preset."},
        "inpaint_disable_initial_latent": {"type": "boolean", "default": False,
                                           "description": "Start from a zero latent (needs override)."},
        "inpaint_engine": {"type": "string", "enum": list(INPAINT_ENGINES), "default": "v2.6",
                           "description": "Fooocus inpaint patch version; 'None' = no patch "
                                          "(needs override)."},
        "inpaint_strength": _num(1.0, 0.0, 1.0, "Denoising strength (needs override; 1.0 when outpainting)."),
        "inpaint_respective_field": _num(0.618, 0.0, 1.0, "Crop context: 0 = masked area, 1 = whole image "
                                                           "(needs override; 1.0 when outpainting)."),
        "inpaint_erode_or_dilate": {"type": "number", "multipleOf": 1, "minimum": -ERODE_DILATE_LIMIT,
                                    "maximum": ERODE_DILATE_LIMIT, "default": 0,
                                    "description": "Whole pixels: >0 dilates, <0 erodes the mask before "
                                                   "inversion (needs override)."},
        "invert_mask": {"type": "boolean", "default": False, "description": "Invert the mask."},
        "image_prompt_1": dict(image_prompt_ref),
        "image_prompt_2": dict(image_prompt_ref),
        "image_prompt_3": dict(image_prompt_ref),
        "image_prompt_4": dict(image_prompt_ref),
        "mixing_image_prompt_and_inpaint": {"type": "boolean", "default": False,
                                            "description": "Let image prompts act during inpainting."},
        "enable_safety_checker": {"type": "boolean", "default": True,
                                  "description": "Black out images flagged as NSFW."},
    }
    assert tuple(props) == FIELD_NAMES
    for name, prop in props.items():
        prop["title"] = name.replace("_", " ").capitalize()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "fal-ai/fooocus/inpaint/input",
        "title": "FooocusInpaintInput",
        "type": "object",
        "properties": props,
        "required": ["inpaint_image_url"],
        "additionalProperties": False,
        "$defs": {
            "ImagePrompt": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": list(IMAGE_PROMPT_TYPES), "default": "ImagePrompt"},
                    "image_url": {"type": ["string", "null"], "default": None},
                    "stop_at": {"type": "number", "minimum": 0.0, "maximum": 1.0, "default": 0.5},
                    "weight": {"type": "number", "minimum": 0.0, "maximum": 2.0, "default": 1.0},
                },
                "additionalProperties": False,
            },
            "LoraWeight": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "scale": {"type": "number", "minimum": LORA_SCALE_MIN, "maximum": LORA_SCALE_MAX,
                              "default": 0.1},
                },
                "required": ["path"],
                "additionalProperties": False,
            },
        },
    }


# --------------------------------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------------------------------
_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def content_type_for(output_format: str) -> str:
    """MIME type for an ``output_format``: png -> image/png, jpeg -> image/jpeg, webp -> image/webp."""
    try:
        return _CONTENT_TYPES[output_format]
    except (KeyError, TypeError):
        raise ValueError(f"output_format: expected one of {list(OUTPUT_FORMATS)}, "
                         f"got {output_format!r}") from None


@dataclass(frozen=True)
class ImageResult:
    """One fal output ``Image``: ``url`` (CDN URL or, with sync_mode, a data URI; required, non-empty),
    ``content_type`` (MIME), ``file_name``, ``file_size`` (bytes, >= 0), ``width``/``height`` (pixels, > 0).
    Optional fields may be ``None`` and are then omitted from :meth:`to_dict`.
    """

    url: str
    content_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise ValueError(f"ImageResult.url: expected a non-empty string, got {self.url!r}")
        for name in ("content_type", "file_name"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"ImageResult.{name}: expected a string or None, got {v!r}")
        for name, lo in (("file_size", 0), ("width", 1), ("height", 1)):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo):
                raise ValueError(f"ImageResult.{name}: expected an int >= {lo} or None, got {v!r}")
            if v is not None:
                object.__setattr__(self, name, int(v))

    def to_dict(self) -> dict[str, Any]:
        """fal ``Image`` JSON object (keys with ``None`` values left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def build_response(images: Sequence[ImageResult | Mapping[str, Any]], timings: Mapping[str, float],
                   has_nsfw_concepts: Sequence[bool]) -> dict[str, Any]:
    """fal's ``FooocusOutput``: ``{"images": [...], "timings": {str: float}, "has_nsfw_concepts": [bool]}``.

    ``images``: :class:`ImageResult` objects or dicts with its keys; ``timings``: seconds per stage (finite
    numbers, not bools); ``has_nsfw_concepts``: one bool per image. No ``seed`` key (fal's Fooocus output
    has none, fal-schema.md §1.4). Raises ``ValueError`` on bad types or a length mismatch.
    """
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise ValueError(f"images: expected a list of ImageResult, got {type(images).__name__}")
    out_images = []
    for i, img in enumerate(images):
        if isinstance(img, Mapping):
            unknown = set(img) - {f.name for f in dataclasses.fields(ImageResult)}
            if unknown:
                raise ValueError(f"images[{i}]: unknown keys {sorted(unknown)}")
            img = ImageResult(**img)
        if not isinstance(img, ImageResult):
            raise ValueError(f"images[{i}]: expected an ImageResult, got {type(img).__name__}")
        out_images.append(img.to_dict())
    if not isinstance(timings, Mapping):
        raise ValueError(f"timings: expected a dict of str -> seconds, got {type(timings).__name__}")
    out_timings: dict[str, float] = {}
    for k, v in timings.items():
        if not isinstance(k, str):
            raise ValueError(f"timings: keys must be strings, got {k!r}")
        if not (_is_number(v) or isinstance(v, (np.floating, np.integer))) or not math.isfinite(float(v)):
            raise ValueError(f"timings[{k!r}]: expected a finite number of seconds, got {v!r}")
        out_timings[k] = float(v)
    if isinstance(has_nsfw_concepts, (str, bytes)) or not isinstance(has_nsfw_concepts, Sequence):
        raise ValueError("has_nsfw_concepts: expected a list of bools")
    flags = []
    for i, f in enumerate(has_nsfw_concepts):
        if not isinstance(f, (bool, np.bool_)):
            raise ValueError(f"has_nsfw_concepts[{i}]: expected a bool, got {f!r}")
        flags.append(bool(f))
    if len(flags) != len(out_images):
        raise ValueError(f"has_nsfw_concepts: expected one flag per image ({len(out_images)}), "
                         f"got {len(flags)}")
    return {"images": out_images, "timings": out_timings, "has_nsfw_concepts": flags}
