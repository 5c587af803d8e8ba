"""Fooocus style table: loading ``sdxl_styles_*.json`` files, name normalisation and template application.

Fooocus counterpart (2.5.5): ``modules/sdxl_styles.py`` (``normalize_key`` :13, table build :25-53,
``get_random_style`` :56, ``apply_style`` :60, ``apply_arrays`` :77). See spec ``fooocus-pipeline.md`` §6 and
``fal-schema.md`` §3.1.

The style JSON files are GPL-3.0 data from the Fooocus repository. This module ships none of their text: it
reads the user's files at run time from the folders it is given (for the ComfyUI nodes, ``models/styles``).

File format: a JSON list of objects ``{"name": str, "prompt": str, "negative_prompt": str}``; ``prompt`` and
``negative_prompt`` may be missing (they then count as ``""``). ``{prompt}`` in a positive template is replaced
by the user's line 1.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Union

__all__ = [
    "FOOOCUS_V2",
    "RANDOM_STYLE",
    "FOOOCUS_STYLE_FILES",
    "STYLE_PROVIDER_FILES",
    "STYLES_FOLDER_HINT",
    "StyleTable",
    "normalize_style_name",
    "load_styles",
    "legal_style_names",
    "apply_style",
    "random_style",
    "apply_arrays",
    "style_provider_file",
    "missing_style_error",
]

logger = logging.getLogger(__name__)

#: The "style" that switches on the GPT-2 prompt expansion; it is not a template (Fooocus ``fooocus_expansion``).
FOOOCUS_V2 = "Fooocus V2"
#: The "style" that picks one template per image with the image's RNG (Fooocus ``random_style_name``).
RANDOM_STYLE = "Random Style"

#: Fooocus's own style files, in the order Fooocus loads them (after any other, user-supplied, files).
FOOOCUS_STYLE_FILES: tuple[str, ...] = (
    "sdxl_styles_fooocus.json",
    "sdxl_styles_sai.json",
    "sdxl_styles_mre.json",
    "sdxl_styles_twri.json",
    "sdxl_styles_diva.json",
    "sdxl_styles_marc_k3nt3l.json",
)

#: Which Fooocus file provides a style, told by the (normalised) name's leading word(s). Only used to word the
#: error for a style that is missing; for loaded styles ``StyleTable.sources`` is exact. The diva and
#: marc_k3nt3l sets also hold names without a common prefix (e.g. "Pebble Art" is in marc_k3nt3l), so a name
#: matching no prefix below is reported as "probably diva or marc_k3nt3l".
STYLE_PROVIDER_FILES: dict[str, tuple[str, ...]] = {
    "sdxl_styles_fooocus.json": ("Fooocus ",),
    "sdxl_styles_sai.json": ("SAI ",),
    "sdxl_styles_mre.json": ("MRE ",),
    "sdxl_styles_twri.json": ("Ads ", "Artstyle ", "Futuristic ", "Game ", "Misc ", "Papercraft ", "Photo "),
    "sdxl_styles_marc_k3nt3l.json": ("Mk ",),
    "sdxl_styles_diva.json": (),
}

#: Where the user gets the style files and where they go.
STYLES_FOLDER_HINT = (
    "Fooocus's style files sdxl_styles_*.json (from the Fooocus repository, folder sdxl_styles/, GPL-3.0) "
    "go in ComfyUI/models/styles"
)

PathLike = Union[str, os.PathLike]


class StyleTable(dict):
    """Ordered ``name -> (positive_template, negative_template)`` table, as Fooocus's ``styles`` dict.

    Extra attributes (not part of the mapping):

    - ``sources``: ``name -> Path`` of the file that gave the (final) value of each style;
    - ``files``: the files read, in load order;
    - ``searched``: the folders/files that were searched (for error messages).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sources: dict[str, Path] = {}
        self.files: list[Path] = []
        self.searched: list[Path] = []


def normalize_style_name(name: str) -> str:
    """Normalise a style name exactly as Fooocus does.

    ``-`` becomes a space; every space-separated word gets its first character upper-cased and the rest
    lower-cased (empty words are kept, so runs of spaces survive); then the substrings ``3d``, ``Sai``, ``Mre``
    and ``(s`` are replaced by ``3D``, ``SAI``, ``MRE`` and ``(S`` (plain substring replacement, in that order).

    Fooocus: ``modules/sdxl_styles.py`` ``normalize_key``.

    Args:
        name: the raw ``name`` field of a style entry.
    Returns:
        The normalised name (``str``).
    Raises:
        ValueError: ``name`` is not a ``str``.
    """
    if not isinstance(name, str):
        raise ValueError(f"name: expected a str, got {type(name).__name__}")
    words = name.replace("-", " ").split(" ")
    out = " ".join(w[:1].upper() + w[1:].lower() for w in words)
    for old, new in (("3d", "3D"), ("Sai", "SAI"), ("Mre", "MRE"), ("(s", "(S")):
        out = out.replace(old, new)
    return out


def _collect_style_files(paths: Iterable[PathLike]) -> tuple[list[Path], list[Path]]:
    """Return (files in Fooocus load order, searched paths)."""
    searched: list[Path] = []
    found: list[tuple[int, Path]] = []  # (order of the folder/file argument, path)
    for order, raw in enumerate(paths):
        if not isinstance(raw, (str, os.PathLike)):
            raise ValueError(
                f"paths: expected folders or files (str or os.PathLike), got {type(raw).__name__}"
            )
        p = Path(raw)
        searched.append(p)
        if p.is_dir():
            for child in p.iterdir():
                if child.suffix.lower() == ".json" and child.is_file():
                    found.append((order, child))
        elif p.is_file():
            found.append((order, p))
        else:
            logger.info("style path %s does not exist; skipped", p)

    seen: set[Path] = set()
    unique: list[tuple[int, Path]] = []
    for order, f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((order, f))

    builtin_rank = {name: i for i, name in enumerate(FOOOCUS_STYLE_FILES)}
    user = [(o, f) for o, f in unique if f.name not in builtin_rank]
    builtin = [(o, f) for o, f in unique if f.name in builtin_rank]
    # Fooocus: files of the folder sorted by casefold, then its six files moved to the end in fixed order.
    user.sort(key=lambda of: (of[1].name.casefold(), of[1].name, of[0]))
    builtin.sort(key=lambda of: (builtin_rank[of[1].name], of[0]))
    return [f for _, f in user] + [f for _, f in builtin], searched


def _read_style_file(path: Path) -> list[tuple[str, str, str]]:
    """Read one style file; return ``[(raw_name, prompt, negative_prompt)]``; raise ValueError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"style file {path}: cannot be read as UTF-8 text ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"style file {path}: malformed JSON ({exc})") from exc
    if not isinstance(data, list):
        raise ValueError(
            f"style file {path}: expected a JSON list of {{name, prompt, negative_prompt}} objects, "
            f"got a JSON {type(data).__name__}"
        )
    entries = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ValueError(f"style file {path}: entry {i} is a {type(entry).__name__}, expected an object")
        name = entry.get("name")
        if not isinstance(name, str):
            raise ValueError(f"style file {path}: entry {i} has no string 'name'")
        prompt = entry.get("prompt", "")
        negative = entry.get("negative_prompt", "")
        for key, value in (("prompt", prompt), ("negative_prompt", negative)):
            if not isinstance(value, str):
                raise ValueError(
                    f"style file {path}: entry {i} ({name!r}) has a non-string '{key}' "
                    f"({type(value).__name__})"
                )
        entries.append((name, prompt, negative))
    return entries


def load_styles(paths: PathLike | Iterable[PathLike]) -> StyleTable:
    """Build the Fooocus style table from style files and/or folders holding them.

    Files are collected from every folder given (its ``*.json`` files, not recursive) and every file given.
    Load order is Fooocus's: all files that are not one of Fooocus's six, sorted by name (casefolded), then
    ``sdxl_styles_fooocus/sai/mre/twri/diva/marc_k3nt3l.json`` in that order (identified by file name). Names
    go through :func:`normalize_style_name`. A name seen again later keeps its first position in the order but
    takes the later file's templates (Fooocus's plain ``dict`` assignment). Paths that do not exist are skipped.

    Fooocus: ``modules/sdxl_styles.py`` :25-53 (Fooocus prints and skips a broken file; here it is an error).

    Args:
        paths: one folder/file or an iterable of them.
    Returns:
        A :class:`StyleTable` (an ordered ``dict`` ``name -> (positive_template, negative_template)``),
        possibly empty.
    Raises:
        ValueError: a path is not str/PathLike, or a file is unreadable, not valid JSON, or not a list of
            ``{name, prompt, negative_prompt}`` objects with string fields; the message names the file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files, searched = _collect_style_files(paths)
    table = StyleTable()
    table.searched = searched
    for f in files:
        for raw_name, prompt, negative in _read_style_file(f):
            name = normalize_style_name(raw_name)
            if name in table:
                logger.info("style %r from %s replaces the one from %s", name, f, table.sources[name])
            table[name] = (prompt, negative)
            table.sources[name] = f
        table.files.append(f)
    logger.debug("loaded %d styles from %d files", len(table), len(table.files))
    return table


def legal_style_names(styles: Mapping[str, tuple[str, str]]) -> list[str]:
    """All names a request may select: ``["Fooocus V2", "Random Style"] + list(styles)``.

    Fooocus: ``modules/sdxl_styles.py`` ``legal_style_names``.
    """
    return [FOOOCUS_V2, RANDOM_STYLE] + list(styles.keys())


def apply_style(
    styles: Mapping[str, tuple[str, str]], name: str, prompt: str
) -> tuple[list[str], list[str], bool]:
    """Apply one style template to a prompt (line 1).

    The positive template has every ``{prompt}`` replaced by ``prompt`` and is split with ``str.splitlines``;
    the negative template is split the same way (an empty template gives ``[]``).

    Fooocus: ``modules/sdxl_styles.py`` ``apply_style``.

    Args:
        styles: the style table (:func:`load_styles`).
        name: a normalised style name present in ``styles`` (not "Fooocus V2"/"Random Style").
        prompt: the text put in place of ``{prompt}``.
    Returns:
        ``(positive_lines, negative_lines, has_prompt_placeholder)``; the flag says whether the positive
        template contained ``{prompt}``.
    Raises:
        ValueError: ``name`` is not in ``styles`` (see :func:`missing_style_error`), or ``prompt`` is not a str.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt: expected a str, got {type(prompt).__name__}")
    if not isinstance(name, str) or name not in styles:
        raise missing_style_error(name, getattr(styles, "searched", None), styles)
    positive, negative = styles[name]
    return positive.replace("{prompt}", prompt).splitlines(), negative.splitlines(), "{prompt}" in positive


def random_style(styles: Mapping[str, tuple[str, str]], rng: random.Random) -> str:
    """Pick a style name with ``rng.choice`` over the table in its order (one draw from ``rng``).

    Fooocus: ``modules/sdxl_styles.py`` ``get_random_style`` (``rng.choice(list(styles.items()))[0]``; choosing
    from the keys consumes the RNG identically).

    Raises:
        ValueError: ``rng`` is not a ``random.Random``, or the table is empty.
    """
    if not isinstance(rng, random.Random):
        raise ValueError(f"rng: expected a random.Random, got {type(rng).__name__}")
    if len(styles) == 0:
        raise ValueError(f"styles: '{RANDOM_STYLE}' needs at least one loaded style; {STYLES_FOLDER_HINT}")
    return rng.choice(list(styles.keys()))


_ARRAY_RE = re.compile(r"\[\[(.*?)\]\]")


def apply_arrays(text: str, index: int) -> str:
    """Expand ``[[a,b,c]]`` arrays in a prompt for image ``index``.

    All arrays are found (non-greedy ``[[...]]``), their options split on ``,`` (not stripped). ``index`` is
    reduced modulo the product of the option counts and read as a mixed-radix number whose least significant
    digit is the first array; each array occurrence (left to right) is replaced by its chosen option. Text
    without arrays is returned unchanged.

    Fooocus: ``modules/sdxl_styles.py`` ``apply_arrays`` / ``get_words`` (applied to line 1 only).

    Args:
        text: the prompt line.
        index: the image index (``int``, ``>= 0`` in Fooocus; any int is reduced modulo the product).
    Raises:
        ValueError: wrong argument types.
    """
    if not isinstance(text, str):
        raise ValueError(f"text: expected a str, got {type(text).__name__}")
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"index: expected an int, got {type(index).__name__}")
    arrays = _ARRAY_RE.findall(text)
    if not arrays:
        return text
    options = [a.split(",") for a in arrays]
    total = 1
    for opts in options:
        total *= len(opts)
    rest = index % total
    for arr, opts in zip(arrays, options):
        word = opts[rest % len(opts)]
        rest //= len(opts)
        text = text.replace(f"[[{arr}]]", word, 1)
    return text


def style_provider_file(name: str) -> str | None:
    """The Fooocus style file that (by its name prefix) provides style ``name``, or ``None`` if no prefix fits.

    A heuristic for error messages only (see :data:`STYLE_PROVIDER_FILES`).
    """
    for file_name, prefixes in STYLE_PROVIDER_FILES.items():
        if any(name.startswith(p) for p in prefixes):
            return file_name
    return None


def missing_style_error(
    name: object,
    searched_folders: Sequence[PathLike] | None,
    styles: Mapping[str, tuple[str, str]] | None = None,
) -> ValueError:
    """Build (not raise) the ``ValueError`` for a style name that is not in the table.

    The message names the style, the searched folders, the Fooocus file that probably provides it (when that
    file is not among the loaded ones), close matches among the loaded names, and where the files go.

    Args:
        name: the requested style name.
        searched_folders: the folders/files searched (``StyleTable.searched``), or ``None`` if unknown.
        styles: the loaded table, if any (used for close matches and to know which files were loaded).
    Returns:
        The ``ValueError`` to raise.
    """
    if searched_folders:
        where = ", ".join(str(p) for p in searched_folders)
    else:
        where = "the loaded style table"
    n_loaded = len(styles) if styles is not None else 0
    msg = f"styles: style {name!r} not found in {where} ({n_loaded} styles loaded)"
    loaded_files = {Path(f).name for f in getattr(styles, "files", [])}
    if isinstance(name, str):
        provider = style_provider_file(name)
        if provider is not None and provider not in loaded_files:
            msg += f"; it is provided by Fooocus's {provider}, which was not found there"
        elif provider is None:
            candidates = ("sdxl_styles_diva.json", "sdxl_styles_marc_k3nt3l.json")
            absent = [f for f in candidates if f not in loaded_files]
            if absent:
                files = " or ".join(absent)
                msg += f"; it is probably provided by Fooocus's {files}, which was not found there"
        if styles:
            close = difflib.get_close_matches(name, list(styles.keys()), n=3, cutoff=0.75)
            if close:
                msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
    sep = " " if msg.endswith("?") else ". "
    return ValueError(f"{msg}{sep}{STYLES_FOLDER_HINT}.")
