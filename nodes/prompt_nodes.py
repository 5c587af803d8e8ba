"""Fooocus prompt nodes: styles, Fooocus V2 expansion and Fooocus's multi-text CLIP encoding, per image.

"Fooocus Prompt" makes a FOOOCUS_PROMPT object (``conditioning(seed)``) that Fooocus Sampler calls once per image
with that image's seed, as Fooocus builds each image's texts (Random Style, expansion) from its own seed.
"Fooocus Prompt Encode" turns it into plain CONDITIONING for ComfyUI's own samplers.
The text assembly is :mod:`engine.prompt` (wildcards :mod:`engine.wildcards`); the weighting maths
:mod:`engine.clip_weights`; ComfyUI glue (CLIP calls, model folders, wildcard files, inline LoRAs through
ComfyUI's LoRA loader, the GPT-2 on ComfyUI's devices) lives here.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import comfy.sd1_clip
import comfy.lora
import comfy.lora_convert
import comfy.sd
import comfy.sdxl_clip
import folder_paths
import numpy as np
import torch
from comfy_api.latest import io

from ..engine import clip_weights, expansion, expansion_model
from ..engine.lora_match import unmatched_lora_keys
from ..engine.prompt import (MAX_LORAS, PromptTask, assemble_prompts, combine_additional_prompt, find_lora_tokens,
                             inline_loras_to_apply, line_one, match_lora_name)
from ..engine.wildcards import wildcard_lines
from .generation_nodes import apply_lora, load_lora_file, lora_files
from ..engine.styles import (FOOOCUS_V2, RANDOM_STYLE, STYLES_FOLDER_HINT, StyleTable, load_styles,
                             normalize_style_name)
from .schema_util import advanced
from .types import PromptIO

log = logging.getLogger(__name__)

CATEGORY = "inpaint/fooocus/prompt"
#: fal's default ``styles`` (fooocus/inpaint), in fal's order.
DEFAULT_STYLES = "Fooocus Enhance, Fooocus V2, Fooocus Sharp"
DEFAULT_CLIP_SKIP = 2

STYLES_TOOLTIP = (
    "Style names, separated by commas or new lines, applied in this order (fal/Fooocus default: "
    f"'{DEFAULT_STYLES}'). 'Fooocus V2' switches on the GPT-2 prompt expansion; 'Random Style' picks one style per "
    "image from that image's seed. The other names are the 'name' entries of the style files in "
    "ComfyUI/models/styles (Fooocus's sdxl_styles_*.json: Fooocus Sharp, SAI Anime, MRE Manga, Artstyle Pop Art, "
    "Mk Van Gogh...; 277 in Fooocus 2.5.5; matched ignoring case and '-'). Leave empty for no style."
)


# ------------------------------------------------------------------------------------------ styles
def parse_style_list(text: str) -> list[str]:
    """``"a, b\\nc"`` → ``["a", "b", "c"]`` (commas and line breaks separate; blanks dropped; order kept)."""
    if not isinstance(text, str):
        raise ValueError(f"styles: expected a string of style names, got {type(text).__name__}")
    out = []
    for line in text.replace("\r", "\n").split("\n"):
        out.extend(s.strip() for s in line.split(","))
    return [s for s in out if s]


def resolve_style_names(names: list[str], table: StyleTable) -> list[str]:
    """Map user-typed names to the table's names: exact, then Fooocus's ``normalize_key``, then case-insensitive.
    Unknown names are returned unchanged (``assemble_prompts`` then raises the missing-style error)."""
    folded = {k.casefold(): k for k in table}
    specials = {FOOOCUS_V2.casefold(): FOOOCUS_V2, RANDOM_STYLE.casefold(): RANDOM_STYLE}
    out = []
    for name in names:
        if name in table or name in (FOOOCUS_V2, RANDOM_STYLE):
            out.append(name)
            continue
        norm = normalize_style_name(name)
        key = name.casefold()
        out.append(specials.get(key) or (norm if norm in table else None) or folded.get(key)
                   or folded.get(norm.casefold()) or name)
    return out


_STYLE_CACHE: dict = {}


def _style_files_signature() -> tuple:
    sig = []
    for folder in folder_paths.get_folder_paths("styles"):
        p = Path(folder)
        if p.is_dir():
            for f in sorted(p.glob("*.json")):
                st = f.stat()
                sig.append((str(f), st.st_mtime_ns, st.st_size))
        else:
            sig.append((str(p), None, None))
    return tuple(sig)


def load_style_table() -> StyleTable:
    """The styles of ComfyUI's ``styles`` model folders (Fooocus load order), cached until a file changes."""
    sig = _style_files_signature()
    table = _STYLE_CACHE.get(sig)
    if table is None:
        table = load_styles(folder_paths.get_folder_paths("styles"))
        _STYLE_CACHE.clear()
        _STYLE_CACHE[sig] = table
        log.info("Fooocus styles: %d styles from %d files", len(table), len(table.files))
    return table


# ---------------------------------------------------------------------------------------- wildcards
WILDCARDS_FOLDER = "wildcards"


def wildcard_folders() -> list[str]:
    """The ``wildcards`` model folders (``models/wildcards`` when the pack has not registered the name)."""
    try:
        return list(folder_paths.get_folder_paths(WILDCARDS_FOLDER))
    except KeyError:
        return [os.path.join(folder_paths.models_dir, WILDCARDS_FOLDER)]


def wildcard_files() -> dict[str, Path]:
    """``{stem: path}`` of the ``*.txt`` files (sub-folders included) of the wildcards folders.

    Folders in ``folder_paths`` order, files sorted case-insensitively by relative path; the first file with
    a given stem wins (Fooocus matches the placeholder to the file stem, case-sensitive).
    """
    out: dict[str, Path] = {}
    for folder in wildcard_folders():
        root = Path(folder)
        if not root.is_dir():
            continue
        files = [f for f in root.rglob("*") if f.suffix.lower() == ".txt" and f.is_file()]
        for f in sorted(files, key=lambda f: f.relative_to(root).as_posix().casefold()):
            out.setdefault(f.stem, f)
    return out


def _wildcard_files_signature() -> tuple:
    return tuple((name, str(f), f.stat().st_mtime_ns, f.stat().st_size)
                 for name, f in sorted(wildcard_files().items()))


class WildcardFiles(Mapping):
    """Lazy ``{name: lines}`` over the wildcard files: a file is read (UTF-8) the first time its name is used."""

    def __init__(self, files: dict[str, Path]):
        self._files = dict(files)
        self._lines: dict[str, list[str]] = {}

    def __getitem__(self, name: str) -> list[str]:
        if name not in self._lines:
            path = self._files[name]
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"wildcard __{name}__: cannot read {path} as UTF-8 text ({exc})") from exc
            self._lines[name] = wildcard_lines(text)
        return self._lines[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


# ------------------------------------------------------------------------------------ inline LoRAs
def _lora_folder_list() -> str:
    try:
        return ", ".join(folder_paths.get_folder_paths("loras"))
    except KeyError:
        return os.path.join(folder_paths.models_dir, "loras")


def parse_lora_names(text: str) -> list[str]:
    """``"a.safetensors, b.safetensors\nNone"`` → ``["a.safetensors", "b.safetensors"]`` ("None" and blanks dropped)."""
    if not isinstance(text, str):
        raise ValueError(f"upstream_loras: expected a string of LoRA file names, got {type(text).__name__}")
    names = []
    for line in text.replace("\r", "\n").split("\n"):
        names.extend(n.strip() for n in line.split(","))
    return [n for n in names if n and n != "None"]


def prompt_loras(prompt: str, upstream: list[str] = ()) -> list[tuple[str, float]]:
    """The inline ``<lora:name:weight>`` LoRAs of the prompt's line 1 to apply, as ``[(file, weight)]``.

    Names are matched to the file stems of ComfyUI's ``loras`` folder; a name with no file is an error naming
    the token and the folders (Fooocus drops such a token silently). Files in ``upstream`` (already applied by
    the LoRA Stack) are skipped and count towards Fooocus's limit of 5 LoRAs.
    """
    available = lora_files()
    for token in find_lora_tokens(line_one(prompt)):
        if match_lora_name(token.name, available) is None:
            raise ValueError(
                f"prompt: inline LoRA {token.text!r}: no file named {token.name!r} (+ .safetensors or another "
                f"extension) in the loras folder ({_lora_folder_list()}). Inline LoRAs are matched by the file "
                f"name without extension or sub-folder, e.g. <lora:my_lora:0.8> for my_lora.safetensors; "
                f"{len(available)} LoRA files are available."
            )
    return inline_loras_to_apply(prompt, available, upstream, MAX_LORAS)


def apply_lora_to_clip(clip, name: str, weight: float, what: str):
    """The CLIP with LoRA ``name`` at ``weight`` on its text-encoder keys only (no model to patch).

    The UNet keys are left out before ComfyUI's ``load_lora_for_models`` so that they are not reported as
    "not loaded". Without the model, Fooocus's "more than 12 unmatched keys" check cannot be made; a LoRA with
    no text-encoder key leaves the CLIP unchanged (logged).
    """
    if weight == 0:
        return clip
    lora = comfy.lora_convert.convert_lora(load_lora_file(name, what))
    key_map: dict = {}
    comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    unmatched = set(unmatched_lora_keys(lora.keys(), key_map))
    clip_part = {k: v for k, v in lora.items() if k not in unmatched}
    if not clip_part:
        log.warning("%s: LoRA %s has no text-encoder keys; the CLIP is unchanged", what, name)
        return clip
    _, new_clip = comfy.sd.load_lora_for_models(None, clip, clip_part, 0.0, weight)
    log.info("%s: applied LoRA %s at %g to the CLIP only", what, name, weight)
    return new_clip


def apply_prompt_loras(model, clip, loras: list[tuple[str, float]]):
    """``(model, clip)`` with the inline LoRAs applied in order, exactly as Fooocus LoRA Stack applies LoRAs.

    ``model`` may be None (CLIP only, with a warning). The model comes back as a clone even without LoRAs.
    Fooocus: user + inline LoRAs patch the base UNet and CLIP with the same weight (spec §7).
    """
    what = "Fooocus Prompt (inline LoRA)"
    if model is not None:
        model = model.clone()
        for name, weight in loras:
            model, clip = apply_lora(model, clip, name, weight, what)
        return model, clip
    if loras:
        log.warning("Fooocus Prompt: inline LoRAs %s are applied to the CLIP only: connect the model to the "
                    "'model' input and use the node's 'model' output to apply them to the model too",
                    [f"{n}:{w:g}" for n, w in loras])
    for name, weight in loras:
        clip = apply_lora_to_clip(clip, name, weight, what)
    return None, clip


# ------------------------------------------------------------------------------ Fooocus V2 expansion
def expansion_model_names() -> list[str]:
    """Sub-folders of the ``prompt_expansion`` model folders (Fooocus: ``fooocus_expansion``)."""
    names = set()
    for folder in folder_paths.get_folder_paths("prompt_expansion"):
        p = Path(folder)
        if p.is_dir():
            names.update(c.name for c in p.iterdir() if c.is_dir())
    return sorted(names)


def resolve_expansion_folder(name: str) -> Path:
    """The first ``prompt_expansion/<name>`` folder; a clear error naming the searched folders if none."""
    folders = folder_paths.get_folder_paths("prompt_expansion")
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"expansion_model: expected a folder name inside models/prompt_expansion, got {name!r}")
    for folder in folders:
        p = Path(folder) / name
        if p.is_dir():
            return p
    raise ValueError(
        f"expansion_model: no folder {name!r} in the prompt_expansion model folders ({', '.join(folders)}). "
        "Fooocus V2 needs models/prompt_expansion/fooocus_expansion with config.json, positive.txt, the GPT-2 "
        "tokenizer files and pytorch_model.bin; or remove 'Fooocus V2' from the styles."
    )


class _Holder(torch.nn.Module):
    """Plain module around the transformers model so ModelPatcher can set ``.device`` on it."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner


class LoadedExpansion:
    """The GPT-2 of Fooocus V2 under ComfyUI's memory management (a ModelPatcher on the text encoder device)."""

    def __init__(self, loaded: expansion_model.ExpansionModel):
        self.tokenizer = loaded.tokenizer
        self.logits_bias = loaded.logits_bias
        self.folder = loaded.folder
        load_device = comfy.model_management.text_encoder_device()
        offload_device = comfy.model_management.text_encoder_offload_device()
        model = loaded.model
        if comfy.model_management.should_use_fp16(device=load_device):
            model = model.half()  # Fooocus runs the expansion in fp16 where supported
        self.patcher = comfy.model_patcher.ModelPatcher(_Holder(model), load_device=load_device,
                                                        offload_device=offload_device)

    def __call__(self, text: str, seed: int) -> str:
        """Fooocus V2 text for line 1 ``text`` and the image's task seed (global RNG states are restored)."""
        if text == "":
            return ""
        comfy.model_management.load_models_gpu([self.patcher])
        with _preserved_global_rng():
            return expansion.expand_prompt(text, seed, self.tokenizer, self.patcher.model.inner, self.logits_bias)


@contextlib.contextmanager
def _preserved_global_rng():
    """Restore Python's, numpy's and torch's global RNG states afterwards (the expansion seeds them all, and
    building a transformers model draws from them), so other nodes see no side effect."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


_EXPANSION_CACHE: OrderedDict = OrderedDict()


def get_expansion(name: str) -> LoadedExpansion:
    """Load (once, cached while the weight file is unchanged) the expansion model of ``prompt_expansion/<name>``."""
    folder = resolve_expansion_folder(name)
    weights = expansion_model.find_expansion_files(folder)
    st = weights.stat()
    key = (str(folder), str(weights), st.st_mtime_ns, st.st_size)
    if key not in _EXPANSION_CACHE:
        _EXPANSION_CACHE.clear()  # one expansion model at a time (351 MB)
        with _preserved_global_rng():
            _EXPANSION_CACHE[key] = LoadedExpansion(expansion_model.load_expansion_model(folder))
    return _EXPANSION_CACHE[key]


# ---------------------------------------------------------------------------------- CLIP encoding
def _encoder_layout(clip, token_keys: list[str], width: int) -> list[tuple[str, int]] | None:
    """``[(token key, feature width)]`` in the order the encoders' features are concatenated, or None."""
    csm = clip.cond_stage_model
    if isinstance(csm, comfy.sdxl_clip.SDXLClipModel) and set(token_keys) == {"l", "g"}:
        try:
            wl = csm.clip_l.transformer.get_input_embeddings().embedding_dim
            wg = csm.clip_g.transformer.get_input_embeddings().embedding_dim
        except AttributeError:
            return None
        return [("l", wl), ("g", wg)] if wl + wg == width else None
    if len(token_keys) == 1:
        return [(token_keys[0], width)]
    return None


def _encoder_for(clip, key: str):
    csm = clip.cond_stage_model
    enc = getattr(csm, f"clip_{key}", None)
    if enc is None and getattr(csm, "clip_name", None) == key:
        enc = getattr(csm, getattr(csm, "clip", ""), None)
    return enc


class FooocusTextEncoder:
    """Encodes texts one by one as Fooocus does (A1111 weights with the per-chunk mean rescale), cached per text."""

    def __init__(self, clip, clip_skip: int = DEFAULT_CLIP_SKIP):
        if clip is None:
            raise ValueError("clip: connect a CLIP model (e.g. from Load Checkpoint)")
        self.clip = clip.clone()
        self.clip.clip_layer(-int(clip_skip))  # Fooocus: clip_layer(-clip_skip); 2 is SDXL's own default
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor, dict]] = {}
        self._empty: torch.Tensor | None = None
        self._warned = False

    def _empty_cond(self, tokens: dict) -> torch.Tensor:
        if self._empty is None:
            empty = {}
            for key, chunks in tokens.items():
                length = len(chunks[0]) if chunks else 77
                enc = _encoder_for(self.clip, key)
                special = getattr(enc, "special_tokens", None)
                if special is not None:
                    ids = comfy.sd1_clip.gen_empty_tokens(special, length)
                else:
                    ids = [t[0] for t in self.clip.tokenize("")[key][0]]
                empty[key] = [[(i, 1.0) for i in ids]]
            self._empty = self.clip.encode_from_tokens(empty, return_pooled=True, return_dict=True)["cond"]
        return self._empty

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """``text`` → ``(cond [1, 77*chunks, D], pooled [1, P], extra dict)``."""
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        tokens = self.clip.tokenize(text)
        flat = {k: [[(t[0], 1.0) + tuple(t[2:]) for t in chunk] for chunk in chunks] for k, chunks in tokens.items()}
        weights = {k: torch.tensor([[float(t[1]) for t in chunk] for chunk in chunks], dtype=torch.float32)
                   for k, chunks in tokens.items()}
        out = self.clip.encode_from_tokens(flat, return_pooled=True, return_dict=True)
        cond, pooled = out.pop("cond"), out.pop("pooled_output")
        if any(bool((w != 1.0).any()) for w in weights.values()):
            cond = self._weighted(cond, tokens, weights)
        self._cache[text] = (cond, pooled, out)
        return cond, pooled, out

    def _weighted(self, cond: torch.Tensor, tokens: dict, weights: dict) -> torch.Tensor:
        empty = self._empty_cond(tokens).to(cond.device, cond.dtype)
        keys = list(tokens.keys())
        layout = _encoder_layout(self.clip, keys, cond.shape[-1])
        n_tokens = cond.shape[1]
        t = empty.shape[1]
        if layout is None:
            if not self._warned:
                log.warning("Fooocus weighting: unknown text encoder layout (%s); the mean rescale is applied over "
                            "all features at once", type(self.clip.cond_stage_model).__name__)
                self._warned = True
            layout = [(keys[0], cond.shape[-1])]
        ws = [weights[k][: n_tokens // t] for k, _ in layout]
        return clip_weights.apply_fooocus_weights(cond, empty, ws, [w for _, w in layout])

    def conditioning(self, texts: list[str], pool_top_k: int) -> list:
        """Fooocus ``clip_encode``: ComfyUI CONDITIONING ``[[cond (tokens concatenated), {"pooled_output": sum}]]``."""
        encoded = [self.encode(t) for t in texts]
        cond, pooled = clip_weights.concat_conditioning([e[0] for e in encoded], [e[1] for e in encoded], pool_top_k)
        extra = dict(encoded[0][2])
        extra["pooled_output"] = pooled
        return [[cond, extra]]


# --------------------------------------------------------------------------------- the prompt object
class FooocusPrompt:
    """The FOOOCUS_PROMPT object: everything needed to build any image's conditioning from its seed."""

    def __init__(self, encoder: FooocusTextEncoder, prompt: str, negative_prompt: str, styles: list[str],
                 table: StyleTable, expansion_name: str, lora_names: list[str] = (), *,
                 wildcards: Mapping | None = None, read_wildcards_in_order: bool = False,
                 upstream_loras: list[str] = (), loras: list[tuple[str, float]] = (), model=None):
        self.encoder = encoder
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.styles = styles
        self.table = table
        self.expansion_name = expansion_name
        self.lora_names = list(lora_names)
        self.wildcards = wildcards
        self.read_wildcards_in_order = bool(read_wildcards_in_order)
        self.upstream_loras = list(upstream_loras)
        self.loras = list(loras)
        """The inline LoRAs applied to ``encoder``'s CLIP (and to ``model`` when one was given)."""
        self.model = model
        """The input model with :attr:`loras` applied (a clone), or None when no model was given."""
        self._expansions: dict[tuple[str, int], str] = {}

    def __repr__(self) -> str:
        return f"FooocusPrompt(styles={self.styles!r}, prompt={self.prompt[:40]!r})"

    def task(self, seed: int, image_index: int = 0) -> PromptTask:
        """The engine's per-image text lists (Fooocus ``tasks[i]`` before expansion) for this task seed.

        Wildcards and Random Style draw from ``random.Random(seed)`` (the image's own seed, as Fooocus's
        ``task_seed``); ``image_index`` picks ``[[a,b]]`` array items and in-order wildcard lines.
        """
        return assemble_prompts(self.prompt, self.negative_prompt, self.styles, self.table, int(seed), image_index,
                                disable_seed_increment=True, available_lora_names=self.lora_names,
                                user_loras=[(n, 0.0) for n in self.upstream_loras], wildcards=self.wildcards,
                                read_wildcards_in_order=self.read_wildcards_in_order)

    def expansion(self, task: PromptTask) -> str:
        if not task.use_expansion:
            return ""
        key = (task.line1, task.task_seed)
        if key not in self._expansions:
            self._expansions[key] = get_expansion(self.expansion_name)(task.line1, task.task_seed)
        return self._expansions[key]

    def texts(self, seed: int, image_index: int = 0) -> dict:
        """The texts that are encoded for one image, and how many are pooled."""
        task = self.task(seed, image_index)
        exp = self.expansion(task)
        return {"seed": task.task_seed, "styles": task.styles, "positive": task.final_positives(exp),
                "negative": list(task.negatives), "positive_top_k": task.positive_top_k,
                "negative_top_k": task.negative_top_k, "expansion": exp if task.use_expansion else None,
                "loras": [[n, w] for n, w in self.loras]}

    def conditioning(self, seed: int, image_index: int = 0) -> tuple[list, list]:
        """``(positive, negative)`` ComfyUI CONDITIONING for the image with task seed ``seed``.

        Fooocus: ``async_worker.process_prompt`` per task + ``default_pipeline.clip_encode``. ``seed`` is the
        image's own seed (Fooocus Sampler passes ``seed + i``); ``image_index`` only matters for ``[[a,b]]``
        arrays in the prompt.
        """
        t = self.texts(seed, image_index)
        positive = self.encoder.conditioning(t["positive"], t["positive_top_k"])
        negative = self.encoder.conditioning(t["negative"], t["negative_top_k"])
        return positive, negative


def make_prompt(clip, prompt: str, negative_prompt: str, styles: str, inpaint_additional_prompt: str = "",
                expansion_model_name: str = expansion_model.EXPANSION_FOLDER_NAME,
                clip_skip: int = DEFAULT_CLIP_SKIP, *, model=None, read_wildcards_in_order: bool = False,
                upstream_loras: str = "") -> FooocusPrompt:
    """Validate the inputs (style names, expansion files, inline LoRA files), apply the prompt's inline LoRAs to
    the CLIP (and to ``model`` if given) and build the :class:`FooocusPrompt` (its ``model`` attribute is the
    patched model clone, or None without ``model``)."""
    for name, value in (("prompt", prompt), ("negative_prompt", negative_prompt),
                        ("inpaint_additional_prompt", inpaint_additional_prompt)):
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
    if isinstance(clip_skip, bool) or not isinstance(clip_skip, int) or not 1 <= clip_skip <= 24:
        raise ValueError(f"clip_skip: expected an int in [1, 24], got {clip_skip!r}")
    if clip is None:
        raise ValueError("clip: connect a CLIP model (e.g. from Load Checkpoint)")
    names = parse_style_list(styles)
    templates = [n for n in names if n.casefold() not in (FOOOCUS_V2.casefold(),)]
    table = load_style_table() if templates else StyleTable()
    if RANDOM_STYLE.casefold() in (n.casefold() for n in names) and len(table) == 0:
        raise ValueError(f"styles: 'Random Style' needs style files, but none were found. {STYLES_FOLDER_HINT}.")
    resolved = resolve_style_names(names, table)
    full_prompt = combine_additional_prompt(prompt, inpaint_additional_prompt)
    upstream = parse_lora_names(upstream_loras)
    loras = prompt_loras(full_prompt, upstream)
    model, clip = apply_prompt_loras(model, clip, loras)
    result = FooocusPrompt(FooocusTextEncoder(clip, clip_skip), full_prompt, negative_prompt, resolved, table,
                           expansion_model_name, lora_files(), wildcards=WildcardFiles(wildcard_files()),
                           read_wildcards_in_order=read_wildcards_in_order, upstream_loras=upstream, loras=loras,
                           model=model)
    check = result.task(0)  # raises the missing-style error now, not inside the sampler
    if check.use_expansion:
        expansion_model.find_expansion_files(resolve_expansion_folder(expansion_model_name))
    return result


class FooocusPromptNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        names = expansion_model_names()
        default_exp = expansion_model.EXPANSION_FOLDER_NAME
        options = names if default_exp in names else [default_exp] + names
        return io.Schema(
            node_id="FooocusInpaint_Prompt",
            display_name="Fooocus Prompt",
            category=CATEGORY,
            description=(
                "Fooocus's prompt handling, per image: line 1 of the prompt is styled and (with 'Fooocus V2') "
                "expanded by Fooocus's GPT-2, extra lines are added as extra prompts, the style negatives are joined "
                "with the negative prompt; every text is encoded separately with Fooocus's (word:1.2) weighting and "
                "the token embeddings are concatenated, pooled = sum over the style texts (not the expansion). "
                "Connect to Fooocus Sampler's 'prompt' (each image uses its own seed for Random Style, wildcards "
                "and the expansion) or to Fooocus Prompt Encode. Inline <lora:name:weight> tokens in line 1 are "
                "applied to the CLIP and to the optional model (use the 'model' output for sampling); "
                "__name__ wildcards pick a line of models/wildcards/name.txt per image."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The SDXL CLIP (from the checkpoint, after any LoRAs)."),
                io.String.Input("prompt", multiline=True, default="", dynamic_prompts=False,
                                tooltip="Positive prompt. Line 1 is styled and expanded; each further line is an extra "
                                        "prompt. (word:1.2) weights as in Fooocus; [[a,b]] picks by image index."),
                io.String.Input("negative_prompt", multiline=True, default="", dynamic_prompts=False,
                                tooltip="Negative prompt (each line encoded separately), added after the styles' negatives."),
                io.String.Input("styles", default=DEFAULT_STYLES, dynamic_prompts=False, tooltip=STYLES_TOOLTIP),
                io.String.Input("inpaint_additional_prompt", multiline=True, default="", dynamic_prompts=False,
                                tooltip="Fooocus/fal 'inpaint additional prompt': becomes line 1 and the prompt follows "
                                        "on the next lines (or it replaces an empty prompt)."),
                advanced(io.Combo.Input("expansion_model", options=options, default=default_exp,
                                        tooltip="Folder in models/prompt_expansion with the Fooocus V2 GPT-2 "
                                                "(config.json, positive.txt, tokenizer files, pytorch_model.bin). "
                                                "Only used when 'Fooocus V2' is among the styles.")),
                advanced(io.Int.Input("clip_skip", default=DEFAULT_CLIP_SKIP, min=1, max=12,
                                      tooltip="Fooocus 'CLIP skip' (default 2 = the penultimate layer, which is "
                                              "stock SDXL; 1 = the last layer).")),
                io.Model.Input("model", optional=True,
                               tooltip="Optional SDXL model (after the LoRA Stack / Performance): the prompt's inline "
                                       "<lora:name:weight> LoRAs are applied to it; take it from the 'model' output. "
                                       "Without it the inline LoRAs patch the CLIP only."),
                advanced(io.Boolean.Input("read_wildcards_in_order", default=False, optional=True,
                                          tooltip="Fooocus 'Read wildcards in order': image i of a batch takes line "
                                                  "i (modulo the line count) of each wildcard file instead of a "
                                                  "random line from its seed.")),
                advanced(io.String.Input("upstream_loras", default="", dynamic_prompts=False, optional=True,
                                         tooltip="LoRA files already applied upstream (the LoRA Stack's slots), "
                                                 "comma-separated. As in Fooocus, an inline <lora:...> naming one "
                                                 "of them is skipped (the slot's weight wins), and they count "
                                                 "towards the limit of 5 LoRAs.")),
            ],
            outputs=[
                PromptIO.Output(display_name="prompt",
                                tooltip="Fooocus prompt: connect to Fooocus Sampler 'prompt' or Fooocus Prompt Encode."),
                io.Model.Output(display_name="model",
                                tooltip="The input model with the prompt's inline LoRAs (a copy; unchanged without "
                                        "tokens). Empty when no model is connected."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return _style_files_signature(), _wildcard_files_signature(), tuple(lora_files())

    @classmethod
    def execute(cls, clip, prompt, negative_prompt, styles, inpaint_additional_prompt="",
                expansion_model=expansion_model.EXPANSION_FOLDER_NAME, clip_skip=DEFAULT_CLIP_SKIP, model=None,
                read_wildcards_in_order=False, upstream_loras="") -> io.NodeOutput:
        result = make_prompt(clip, prompt, negative_prompt, styles, inpaint_additional_prompt, expansion_model,
                             clip_skip, model=model, read_wildcards_in_order=read_wildcards_in_order,
                             upstream_loras=upstream_loras)
        return io.NodeOutput(result, result.model)


class FooocusPromptEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_PromptEncode",
            display_name="Fooocus Prompt Encode",
            category=CATEGORY,
            description=(
                "Encodes a Fooocus Prompt for one image seed into plain positive/negative CONDITIONING, for "
                "ComfyUI's own samplers (KSampler, SamplerCustom...). Use the same seed as the sampler; image i of a "
                "Fooocus batch uses seed + i. Also outputs the texts that were encoded."
            ),
            inputs=[
                PromptIO.Input("prompt", tooltip="From Fooocus Prompt."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="The image's seed: picks the Random Style and seeds the Fooocus V2 expansion."),
                advanced(io.Int.Input("image_index", default=0, min=0, max=4096,
                                      tooltip="Index of the image in a Fooocus batch (only for [[a,b]] arrays).")),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="Positive conditioning (texts concatenated)."),
                io.Conditioning.Output(display_name="negative", tooltip="Negative conditioning."),
                io.String.Output(display_name="texts", tooltip="JSON of the encoded texts (positives incl. the "
                                                             "expansion, negatives, pooled counts, styles)."),
            ],
        )

    @classmethod
    def execute(cls, prompt, seed, image_index=0) -> io.NodeOutput:
        if not isinstance(prompt, FooocusPrompt):
            raise ValueError("prompt: expected the output of Fooocus Prompt")
        texts = prompt.texts(seed, image_index)
        positive, negative = prompt.conditioning(seed, image_index)
        return io.NodeOutput(positive, negative, json.dumps(texts, ensure_ascii=False))


MENU_ORDER = 22
NODES = [FooocusPromptNode, FooocusPromptEncode]
