"""Fooocus wildcards: ``__name__`` in a prompt becomes one line of the wildcard file ``name.txt``.

Pure text functions (no file IO): the caller passes a mapping ``{name: lines}`` (the ComfyUI node reads the
``wildcards`` model folder; file stem = name) and a seed or a ``random.Random``.

Rules (spec ``fooocus-pipeline.md`` §6 "Per image i" and §9; Fooocus 2.5.5 ``modules/util.py``
``apply_wildcards``, called from ``async_worker.process_prompt``):

- Placeholders are ``__NAME__`` with NAME made of word characters and ``-`` (regex ``__([\\w-]+)__``); the
  name is matched to a file stem exactly (case-sensitive).
- Breadth-first: each pass finds all placeholders of the current text, left to right, and replaces the first
  remaining occurrence of each by ``rng.choice(lines)`` (or ``lines[image_index % len(lines)]`` with
  ``read_wildcards_in_order``), where ``lines`` are the file's non-empty lines (not stripped). Chosen lines may
  contain placeholders themselves; passes repeat up to :data:`WILDCARDS_MAX_DEPTH` (64) times, after which the
  text is returned as it is.
- A name with no file, or whose file has no non-empty line, is replaced everywhere by the bare name (a
  warning is logged), as Fooocus does ("using it as a normal word").
- The random generator is the image's ``random.Random(task_seed)`` (``task_seed = (seed + i) % 2**63``), shared
  in this order by the prompt's line 1, the negative line 1, the extra positive lines, the extra negative
  lines, and then by "Random Style". Text without placeholders draws nothing.
"""
from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from typing import Optional

__all__ = [
    "WILDCARDS_MAX_DEPTH",
    "WILDCARD_PATTERN",
    "find_wildcards",
    "wildcard_lines",
    "apply_wildcards",
    "resolve_wildcards",
]

logger = logging.getLogger(__name__)

#: Fooocus ``modules/config.py`` ``wildcards_max_bfs_depth``.
WILDCARDS_MAX_DEPTH = 64
#: A placeholder ``__name__`` (Fooocus's pattern).
WILDCARD_PATTERN = re.compile(r"__([\w-]+)__")


def find_wildcards(text: str) -> list[str]:
    """The placeholder names in ``text``, left to right, with repeats (``"__a__ __b__ __a__"`` → ``[a, b, a]``).

    Fooocus: the ``re.findall`` at the top of each pass of ``modules/util.py`` ``apply_wildcards``.

    Raises:
        ValueError: ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise ValueError(f"text: expected a str, got {type(text).__name__}")
    return WILDCARD_PATTERN.findall(text)


def wildcard_lines(content: str) -> list[str]:
    """A wildcard file's text → its candidate lines: ``str.splitlines`` then drop the empty ones (no stripping).

    Fooocus: ``open(...).read().splitlines()`` filtered by ``x != ''`` in ``util.apply_wildcards``.

    Raises:
        ValueError: ``content`` is not a str.
    """
    if not isinstance(content, str):
        raise ValueError(f"content: expected a str (the file's text), got {type(content).__name__}")
    return [x for x in content.splitlines() if x != ""]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def apply_wildcards(
    text: str,
    rng: random.Random,
    image_index: int,
    wildcards: Optional[Mapping[str, Sequence[str]]] = None,
    read_in_order: bool = False,
    max_depth: int = WILDCARDS_MAX_DEPTH,
) -> str:
    """Resolve the ``__name__`` placeholders of ``text`` with ``rng`` (breadth-first, see the module rules).

    Args:
        text: the prompt line.
        rng: the image's ``random.Random(task_seed)``; advanced by one ``choice`` per replaced placeholder
            (not when ``read_in_order``, not for missing names).
        image_index: ``i`` of the image in the batch (int >= 0), used only with ``read_in_order``.
        wildcards: ``{name: lines}``; each value's empty strings are ignored. ``None`` = no wildcard files.
            Any ``Mapping`` works (a lazy one is only asked for the names that occur).
        read_in_order: Fooocus ``read_wildcards_in_order``: line ``image_index % len(lines)`` instead of random.
        max_depth: number of passes (Fooocus 64).
    Returns:
        The text with the placeholders replaced (placeholders still left after ``max_depth`` passes stay).
    Raises:
        ValueError: wrong argument types.

    Fooocus: ``modules/util.py`` ``apply_wildcards``.
    """
    if not isinstance(text, str):
        raise ValueError(f"text: expected a str, got {type(text).__name__}")
    if not isinstance(rng, random.Random):
        raise ValueError(f"rng: expected a random.Random, got {type(rng).__name__}")
    _check_int("image_index", image_index, 0)
    _check_int("max_depth", max_depth, 0)
    if wildcards is not None and not isinstance(wildcards, Mapping):
        raise ValueError(f"wildcards: expected a mapping name -> lines, got {type(wildcards).__name__}")
    wildcards = wildcards if wildcards is not None else {}
    for _ in range(max_depth):
        placeholders = WILDCARD_PATTERN.findall(text)
        if not placeholders:
            return text
        for name in placeholders:
            lines = wildcards.get(name) or ()
            if isinstance(lines, str):
                raise ValueError(f"wildcards[{name!r}]: expected a sequence of lines, got a str")
            words = [w for w in lines if w != ""]
            if not words:
                logger.warning("wildcard __%s__: no file %s.txt in the wildcards folder (or it has no line); "
                               "using %r as a normal word", name, name, name)
                text = text.replace(f"__{name}__", name)
            elif read_in_order:
                text = text.replace(f"__{name}__", words[image_index % len(words)], 1)
            else:
                text = text.replace(f"__{name}__", rng.choice(words), 1)
    if WILDCARD_PATTERN.search(text):
        logger.warning("wildcards: nesting depth %d reached; text left as %r", max_depth, text)
    return text


def resolve_wildcards(
    text: str,
    wildcards: Optional[Mapping[str, Sequence[str]]],
    seed: int,
    image_index: int = 0,
    read_in_order: bool = False,
) -> str:
    """One text with a fresh ``random.Random(seed)``: :func:`apply_wildcards` for a single prompt line.

    ``seed`` is the image's task seed (int; Python's ``random.Random`` accepts any int). Deterministic: equal
    arguments give equal text. For a whole prompt (several lines sharing one generator) use
    :func:`engine.prompt.assemble_prompts`.
    Fooocus: ``random.Random(task_seed)`` + ``util.apply_wildcards`` in ``async_worker.process_prompt``.

    Raises:
        ValueError: wrong argument types.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an int, got {type(seed).__name__}")
    return apply_wildcards(text, random.Random(seed), image_index, wildcards, read_in_order)
