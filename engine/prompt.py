"""Fooocus prompt assembly: line splitting, inline LoRAs, wildcards/arrays, styles and the per-image text lists.

Fooocus counterparts (2.5.5): ``modules/async_worker.py`` ``process_prompt`` (641-755) and the inpaint
additional-prompt rule (909-913); ``modules/util.py`` ``remove_empty_str``, ``parse_lora_references_from_prompt``,
``cleanup_prompt``, ``apply_wildcards``; ``extras/expansion.py`` ``safe_str``. See spec ``fooocus-pipeline.md``
§1.1 step 7 and §6.

Prompt weighting (A1111 ``(word:1.2)``) is *not* parsed here: Fooocus encodes with its copy of ComfyUI's
``sd1_clip`` tokenizer (``token_weights``/``parse_parentheses``), so the ComfyUI node passes each text to
ComfyUI's own ``clip.tokenize`` and gets Fooocus's weights unchanged (``(a)`` = 1.1, ``(a:w)`` = w, ``\\(`` and
``\\)`` literal; ``[a]`` is *not* a de-emphasis in Fooocus either).
"""
from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import NamedTuple, Optional

from .styles import FOOOCUS_V2, RANDOM_STYLE, apply_arrays, apply_style, missing_style_error, random_style
from .wildcards import WILDCARDS_MAX_DEPTH, apply_wildcards

__all__ = [
    "SEED_MODULUS",
    "MAX_LORAS",
    "WILDCARDS_MAX_DEPTH",
    "safe_str",
    "remove_empty",
    "split_lines",
    "combine_additional_prompt",
    "cleanup_prompt",
    "InlineLoras",
    "parse_inline_loras",
    "apply_wildcards",
    "LoraToken",
    "find_lora_tokens",
    "line_one",
    "inline_loras_to_apply",
    "task_seed_for",
    "PromptTask",
    "assemble_prompts",
]

logger = logging.getLogger(__name__)

#: Task seeds live in [0, 2**63) (Fooocus ``constants.MAX_SEED + 1``).
SEED_MODULUS = 2**63
#: Fooocus ``config.default_max_lora_number``.
MAX_LORAS = 5
_LORA_RE = re.compile(r"(<lora:([^:]+):([+-]?(?:\d+(?:\.\d*)?|\.\d+))>)")


def safe_str(x: object) -> str:
    """``str(x)``, then 16 passes of replacing ``"  "`` by ``" "``, then strip ``",. \\r\\n"`` from both ends.

    Only ASCII spaces are collapsed, and only those characters are stripped (tabs and other whitespace stay).
    Fooocus: ``extras/expansion.py`` ``safe_str``.
    """
    s = str(x)
    for _ in range(16):
        s = s.replace("  ", " ")
    return s.strip(",. \r\n")


def remove_empty(items: Iterable[str], default: Optional[str] = None) -> list[str]:
    """Drop the ``""`` items; if none remain and ``default`` is not ``None``, return ``[default]``.

    Fooocus: ``modules/util.py`` ``remove_empty_str``.
    """
    out = [x for x in items if x != ""]
    if not out and default is not None:
        return [default]
    return out


def split_lines(text: str) -> list[str]:
    """Split a prompt into lines (``str.splitlines``), ``safe_str`` each, drop empty ones; never empty (``[""]``).

    Element 0 is "line 1" (the styled, expanded line); the rest are extra prompts.
    Fooocus: ``async_worker.process_prompt`` (``remove_empty_str([safe_str(p) for p in ...], default='')``).

    Raises:
        ValueError: ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise ValueError(f"text: expected a str, got {type(text).__name__}")
    return remove_empty([safe_str(p) for p in text.splitlines()], default="")


def combine_additional_prompt(prompt: str, additional: str) -> str:
    """Inpaint "additional prompt": it becomes line 1, the user's prompt follows on the next lines.

    ``additional == ""`` → ``prompt``; ``prompt == ""`` → ``additional``; else ``additional + "\\n" + prompt``
    (exact string comparisons, no stripping).
    Fooocus: ``modules/async_worker.py`` :909-913 (``inpaint_additional_prompt``).

    Raises:
        ValueError: an argument is not a str.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt: expected a str, got {type(prompt).__name__}")
    if not isinstance(additional, str):
        raise ValueError(f"additional: expected a str, got {type(additional).__name__}")
    if additional == "":
        return prompt
    if prompt == "":
        return additional
    return additional + "\n" + prompt


def cleanup_prompt(prompt: str) -> str:
    """Collapse runs of spaces and of commas, split on ``,``, strip each piece, drop empty ones, join with ``", "``.

    Fooocus: ``modules/util.py`` ``cleanup_prompt`` (run on line 1 by the inline-LoRA parser, always).
    """
    prompt = re.sub(" +", " ", prompt)
    prompt = re.sub(",+", ",", prompt)
    return ", ".join(t.strip() for t in prompt.split(",") if t.strip() != "")


class InlineLoras(NamedTuple):
    """Result of :func:`parse_inline_loras`."""

    prompt: str
    """Line 1 with the ``<lora:...>`` tokens removed and cleaned up (:func:`cleanup_prompt`)."""
    loras: list[tuple[str, float]]
    """``existing_loras`` followed by the new inline ones (capped, see :func:`parse_inline_loras`)."""


class LoraToken(NamedTuple):
    """One ``<lora:NAME:WEIGHT>`` token found by :func:`find_lora_tokens`."""

    text: str
    """The token as written (``"<lora:foo:0.5>"``)."""
    name: str
    """NAME: matched to a LoRA file stem (no folder, no extension)."""
    weight: float
    """WEIGHT as a float (applied to the model and the CLIP alike)."""


def find_lora_tokens(prompt: str) -> list[LoraToken]:
    """The ``<lora:NAME:WEIGHT>`` tokens of one prompt line, left to right (grammar: :func:`parse_inline_loras`).

    The line is split on ``,`` first, so a token never contains a comma. WEIGHT is required (``<lora:foo>``
    is not a token and stays in the text). Fooocus: the token search of ``modules/util.py``
    ``parse_lora_references_from_prompt``.

    Raises:
        ValueError: ``prompt`` is not a str.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt: expected a str, got {type(prompt).__name__}")
    return [LoraToken(full, name, float(weight))
            for piece in prompt.split(",") for full, name, weight in _LORA_RE.findall(piece)]


def _stem(filename: str) -> str:
    return PurePosixPath(filename.replace("\\", "/")).stem


def match_lora_name(name: str, available_lora_names: Sequence[str]) -> Optional[str]:
    """The first of ``available_lora_names`` whose file stem (no folders, no extension) equals ``name``, or None.

    Exact, case-sensitive comparison; ``"foo.safetensors"`` does not match ``foo.safetensors`` (its stem is
    ``foo``). Fooocus: ``modules/util.py`` ``get_filname_by_stem``.
    """
    return next((f for f in available_lora_names if _stem(f) == name), None)


def parse_inline_loras(
    prompt: str,
    available_lora_names: Sequence[str],
    max_loras: int = MAX_LORAS,
    existing_loras: Sequence[tuple[str, float]] = (),
) -> InlineLoras:
    """Extract ``<lora:name:weight>`` tokens from line 1 and match them to LoRA files.

    Grammar: ``<lora:NAME:WEIGHT>`` with NAME any run of characters other than ``:`` (and, because the prompt
    is first split on ``,``, without commas) and WEIGHT ``[+-]`` then ``digits[.digits]`` or ``.digits``
    (``1..2``, ``.``, ``+`` or an empty weight are not tokens and stay in the text). NAME is matched to the
    first entry of ``available_lora_names`` whose file stem (name without folders and extension) equals it;
    unmatched tokens are dropped from the text but give no LoRA. The prompt is split on ``,``, tokens are
    removed, and the pieces are re-joined and cleaned with :func:`cleanup_prompt` (also when there is no token,
    so ``"a,b"`` becomes ``"a, b"``).

    De-duplication: a found LoRA whose file is already in ``existing_loras`` is skipped (the user's weight
    wins), and so is an exact ``(file, weight)`` repeat. If nothing new was found, ``existing_loras`` is
    returned as is; otherwise ``existing + new``, without entries named ``"None"``, cut to ``max_loras``.

    Fooocus: ``modules/util.py`` ``parse_lora_references_from_prompt`` (with ``prompt_cleanup`` and
    ``deduplicate_loras`` on, as ``process_prompt`` calls it); the caller removes the performance LoRA from
    ``available_lora_names`` as Fooocus does.

    Args:
        prompt: line 1 (after :func:`split_lines`).
        available_lora_names: LoRA file names (may include sub-folders, ``/`` or ``\\``).
        max_loras: cap on the total count (Fooocus 5).
        existing_loras: the user's LoRAs ``[(file_name, weight)]``.
    Returns:
        :class:`InlineLoras` ``(prompt, loras)``.
    Raises:
        ValueError: wrong argument types or ``max_loras < 0``.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt: expected a str, got {type(prompt).__name__}")
    if isinstance(available_lora_names, str) or not all(isinstance(n, str) for n in available_lora_names):
        raise ValueError("available_lora_names: expected a sequence of str file names")
    if isinstance(max_loras, bool) or not isinstance(max_loras, int) or max_loras < 0:
        raise ValueError(f"max_loras: expected an int >= 0, got {max_loras!r}")
    existing: list[tuple[str, float]] = []
    for item in existing_loras:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"existing_loras: expected (file_name, weight) pairs, got {item!r}")
        existing.append((item[0], float(item[1])))

    found: list[tuple[str, float]] = []
    pieces: list[str] = []
    for token in prompt.split(","):
        for full, name, weight in _LORA_RE.findall(token):
            match = match_lora_name(name, available_lora_names)
            if match is not None:
                found.append((match, float(weight)))
            else:
                logger.warning("inline LoRA %r: no LoRA file with that name; ignored", name)
            token = token.replace(full, "")
        pieces.append(token)
    cleaned = cleanup_prompt(", ".join(pieces))

    existing_names = {n for n, _ in existing}
    new: list[tuple[str, float]] = []
    for lora in found:
        if lora[0] in existing_names or lora in new:
            continue
        new.append(lora)
    if not new:
        return InlineLoras(cleaned, existing)
    merged = [lora for lora in existing + new if lora[0] != "None"]
    return InlineLoras(cleaned, merged[:max_loras])


def line_one(prompt: str) -> str:
    """Line 1 of a prompt as Fooocus parses inline LoRAs from it: ``split_lines(prompt)[0]`` (``""`` if none).

    Only this line is searched for ``<lora:...>`` tokens; tokens on extra lines stay text (Fooocus
    ``process_prompt`` passes ``prompts[0]`` to ``parse_lora_references_from_prompt``). Pass the prompt
    after :func:`combine_additional_prompt`.
    """
    return split_lines(prompt)[0]


def inline_loras_to_apply(
    prompt: str,
    available_lora_names: Sequence[str],
    upstream_loras: Sequence[str] = (),
    max_loras: int = MAX_LORAS,
) -> list[tuple[str, float]]:
    """The inline LoRAs of ``prompt``'s line 1 that still have to be applied, ``[(file_name, weight)]`` in order.

    These are the entries :func:`parse_inline_loras` adds after the user's LoRAs: tokens whose name matches
    no file are left out (the caller decides whether that is an error, see :func:`find_lora_tokens` and
    :func:`match_lora_name`), a file already in ``upstream_loras`` (the user's LoRAs, applied before) is
    skipped, exact ``(file, weight)`` repeats are dropped, and the total ``len(upstream) + len(result)`` is
    capped at ``max_loras`` (upstream ones first, so they are never cut here). Independent of the seed and
    the image: Fooocus parses LoRAs once per request, before wildcards (§6 "Line splitting").

    Args:
        prompt: the full prompt (lines; the additional prompt already combined).
        available_lora_names: LoRA file names (sub-folders allowed) of the ``loras`` folder.
        upstream_loras: file names of the LoRAs already applied upstream (the LoRA Stack's slots).
        max_loras: Fooocus ``default_max_lora_number`` (5).
    Returns:
        ``[(file_name, weight)]`` to apply to the model and the CLIP, in token order.
    Raises:
        ValueError: wrong argument types or ``max_loras < 0``.

    Fooocus: ``modules/util.py`` ``parse_lora_references_from_prompt`` as called by
    ``async_worker.process_prompt`` (spec fooocus-pipeline.md §6, §7 "Order of weight patches").
    """
    if isinstance(upstream_loras, str) or not all(isinstance(n, str) for n in upstream_loras):
        raise ValueError("upstream_loras: expected a sequence of str file names")
    upstream = [n for n in upstream_loras if n != "None"]
    loras = parse_inline_loras(line_one(prompt), available_lora_names, max_loras,
                               [(n, 0.0) for n in upstream]).loras
    if len(loras) <= len(upstream):  # nothing new (or only upstream ones, possibly cut by a tiny cap)
        return []
    return [(n, w) for n, w in loras[len(upstream):]]


def task_seed_for(seed: int, image_index: int, disable_seed_increment: bool = False) -> int:
    """Seed of image ``image_index``: ``(seed + i) % 2**63``, or ``seed % 2**63`` when increments are off.

    Fooocus: ``async_worker.process_prompt`` (``task_seed``).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an int, got {type(seed).__name__}")
    if isinstance(image_index, bool) or not isinstance(image_index, int) or image_index < 0:
        raise ValueError(f"image_index: expected an int >= 0, got {image_index!r}")
    if disable_seed_increment:
        return seed % SEED_MODULUS
    return (seed + image_index) % SEED_MODULUS


@dataclass
class PromptTask:
    """The texts of one image, as Fooocus's ``tasks[i]`` dict before expansion and encoding.

    ``positives``/``negatives`` are encoded text by text and concatenated; the pooled output is the **sum** over
    the first ``positive_top_k``/``negative_top_k`` texts. When ``use_expansion``, the Fooocus V2 text (from
    ``line1`` and ``task_seed``) is appended to ``positives`` *after* the top-k counts were taken
    (:meth:`final_positives`).
    """

    task_seed: int
    line1: str
    """Line 1 after LoRA clean-up, wildcards and arrays: the ``{prompt}`` text and the expansion input."""
    negative_line1: str
    positives: list[str]
    negatives: list[str]
    positive_top_k: int
    negative_top_k: int
    use_expansion: bool
    styles: list[str] = field(default_factory=list)
    """The template styles applied, in order, with "Random Style" resolved and "Fooocus V2" removed."""
    extra_positives: list[str] = field(default_factory=list)
    extra_negatives: list[str] = field(default_factory=list)
    loras: list[tuple[str, float]] = field(default_factory=list)
    """User LoRAs plus inline ``<lora:...>`` ones (see :func:`parse_inline_loras`)."""

    def final_positives(self, expansion: str) -> list[str]:
        """``positives + [expansion]`` when ``use_expansion``, else a copy of ``positives``."""
        return list(self.positives) + ([expansion] if self.use_expansion else [])


def assemble_prompts(
    prompt: str,
    negative_prompt: str,
    styles_selected: Sequence[str],
    styles_table: Mapping[str, tuple[str, str]],
    seed: int,
    image_index: int,
    disable_seed_increment: bool = False,
    *,
    available_lora_names: Sequence[str] = (),
    user_loras: Sequence[tuple[str, float]] = (),
    max_loras: int = MAX_LORAS,
    wildcards: Optional[Mapping[str, Sequence[str]]] = None,
    read_wildcards_in_order: bool = False,
) -> PromptTask:
    """Build image ``image_index``'s positive and negative text lists exactly as Fooocus does.

    Steps (Fooocus ``process_prompt``):

    1. ``prompt``/``negative_prompt`` → :func:`split_lines`; line 1 and extra lines. "Fooocus V2" in
       ``styles_selected`` switches the expansion on (all its occurrences are removed from the style list);
       an empty line 1 switches it off.
    2. Inline LoRAs are parsed from line 1 (:func:`parse_inline_loras`, which also cleans line 1 up).
    3. ``task_seed`` (:func:`task_seed_for`), ``rng = random.Random(task_seed)``; wildcards are resolved in
       line 1, negative line 1, extra positives, extra negatives (that order, same rng); then ``[[a,b]]``
       arrays in line 1 only (:func:`~engine.styles.apply_arrays`).
    4. Styles in the user's order: "Random Style" draws ``rng.choice`` over the table; each template gives
       positive and negative lines. If no selected style has ``{prompt}`` in its positive template, line 1 is
       put first; with no style at all, positives = [line 1].
    5. Positives = style lines + extra positives; negatives = style negative lines + negative line 1 + extra
       negatives; empty strings removed (an all-empty list becomes ``[line 1]`` / ``[negative line 1]``).
       ``positive_top_k``/``negative_top_k`` are these lengths.

    Args:
        prompt, negative_prompt: the request texts (``str``; the inpaint additional prompt already combined,
            :func:`combine_additional_prompt`).
        styles_selected: style names (``"Fooocus V2"``, ``"Random Style"`` or names in ``styles_table``).
        styles_table: :func:`~engine.styles.load_styles` result.
        seed: request seed (``int``); image_index: ``int >= 0``.
        disable_seed_increment: every image uses ``seed`` (Fooocus's "disable seed increment").
        available_lora_names, user_loras, max_loras: see :func:`parse_inline_loras`.
        wildcards, read_wildcards_in_order: see :func:`apply_wildcards` (``None`` = no wildcard files).
    Returns:
        :class:`PromptTask`.
    Raises:
        ValueError: wrong types, or a style name not in the table (message from
            :func:`~engine.styles.missing_style_error`).
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt: expected a str, got {type(prompt).__name__}")
    if not isinstance(negative_prompt, str):
        raise ValueError(f"negative_prompt: expected a str, got {type(negative_prompt).__name__}")
    if isinstance(styles_selected, str) or not all(isinstance(s, str) for s in styles_selected):
        raise ValueError("styles_selected: expected a sequence of style names (str)")
    task_seed = task_seed_for(seed, image_index, disable_seed_increment)
    for s in styles_selected:
        if s not in (FOOOCUS_V2, RANDOM_STYLE) and s not in styles_table:
            raise missing_style_error(s, getattr(styles_table, "searched", None), styles_table)

    use_expansion = FOOOCUS_V2 in styles_selected
    styles = [s for s in styles_selected if s != FOOOCUS_V2]

    prompts = split_lines(prompt)
    negatives_in = split_lines(negative_prompt)
    line1, negative_line1 = prompts[0], negatives_in[0]
    if line1 == "":
        use_expansion = False
    extra_positives = prompts[1:]
    extra_negatives = negatives_in[1:]

    line1, loras = parse_inline_loras(line1, available_lora_names, max_loras, user_loras)

    rng = random.Random(task_seed)
    line1 = apply_wildcards(line1, rng, image_index, wildcards, read_wildcards_in_order)
    line1 = apply_arrays(line1, image_index)
    negative_line1 = apply_wildcards(negative_line1, rng, image_index, wildcards, read_wildcards_in_order)
    extra_positives = [
        apply_wildcards(p, rng, image_index, wildcards, read_wildcards_in_order) for p in extra_positives
    ]
    extra_negatives = [
        apply_wildcards(p, rng, image_index, wildcards, read_wildcards_in_order) for p in extra_negatives
    ]

    positives: list[str] = []
    negatives: list[str] = []
    resolved: list[str] = []
    if styles:
        placeholder_used = False
        for s in styles:
            if s == RANDOM_STYLE:
                s = random_style(styles_table, rng)
            resolved.append(s)
            p, n, has_placeholder = apply_style(styles_table, s, line1)
            placeholder_used = placeholder_used or has_placeholder
            positives += p
            negatives += n
        if not placeholder_used:
            positives = [line1] + positives
    else:
        positives.append(line1)
    negatives.append(negative_line1)

    positives = remove_empty(positives + extra_positives, default=line1)
    negatives = remove_empty(negatives + extra_negatives, default=negative_line1)

    return PromptTask(
        task_seed=task_seed,
        line1=line1,
        negative_line1=negative_line1,
        positives=positives,
        negatives=negatives,
        positive_top_k=len(positives),
        negative_top_k=len(negatives),
        use_expansion=use_expansion,
        styles=resolved,
        extra_positives=extra_positives,
        extra_negatives=extra_negatives,
        loras=list(loras),
    )
