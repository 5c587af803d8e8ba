"""Fooocus V2 prompt expansion (GPT-2 with a restricted vocabulary), without bundling any weights.

Fooocus counterpart (2.5.5): ``extras/expansion.py`` (``safe_str`` :24, ``FooocusExpansion.__init__`` :38 with the
logits-bias construction :41-51, ``logits_processor`` :83, ``__call__`` :95). See spec ``fooocus-pipeline.md`` §6.

Mechanics: line 1 + ``","`` is tokenised with GPT-2's tokenizer; the model samples (``top_k=100``,
``do_sample=True``, model defaults otherwise) up to the next multiple of 75 tokens. A logits bias allows only
``'Ġ' + word.lower()`` for the 642 words of ``positive.txt`` (bias 0; everything else −8192), forbids any token
already in the sequence (−8192) and always allows ``','`` (id 11). The result is the decoded full sequence
(prompt included) through ``safe_str``.

``transformers`` is imported lazily, only inside the functions that need a tokenizer or a model.
"""
from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .prompt import safe_str

__all__ = [
    "NEG_INF",
    "COMMA_TOKEN_ID",
    "TOP_K",
    "SEED_LIMIT",
    "CHUNK_TOKENS",
    "load_positive_words",
    "build_logits_bias",
    "allowed_token_ids",
    "apply_bias",
    "max_new_tokens",
    "expansion_seed",
    "seed_everything",
    "load_tokenizer",
    "clean_up_tokenization",
    "generate_expansion_ids",
    "expand_prompt",
]

logger = logging.getLogger(__name__)

#: Bias of a forbidden token (Fooocus ``neg_inf``).
NEG_INF = -8192.0
#: GPT-2 id of ``','``: always allowed.
COMMA_TOKEN_ID = 11
#: ``generate(top_k=...)``.
TOP_K = 100
#: Expansion seeds are taken modulo 2**32 (Fooocus ``SEED_LIMIT_NUMPY``).
SEED_LIMIT = 2**32
#: Generation fills the sequence up to a multiple of this many tokens.
CHUNK_TOKENS = 75


def load_positive_words(path: str | os.PathLike) -> list[str]:
    """Read ``positive.txt``: its lines (``str.splitlines``, UTF-8) without the empty ones, unchanged otherwise.

    Fooocus: ``FooocusExpansion.__init__`` (``positive.txt`` read).

    Raises:
        ValueError: the file is missing or unreadable (the message names it).
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"path: cannot read the Fooocus V2 word list {p} ({exc})") from exc
    return [x for x in lines if x != ""]


def build_logits_bias(tokenizer_vocab: Mapping[str, int], positive_words: Iterable[str],
                      vocab_size: Optional[int] = None) -> torch.Tensor:
    """The static expansion bias: 0 for the ids of ``'Ġ' + word.lower()``, −8192 for every other id.

    Fooocus: ``FooocusExpansion.__init__`` :41-51 (its tensor is ``[1, V]``; this one is ``[V]``).

    Args:
        tokenizer_vocab: token string → id (``tokenizer.vocab``; GPT-2: 50257 entries).
        positive_words: the words (:func:`load_positive_words`).
        vocab_size: length of the bias; default ``len(tokenizer_vocab)`` (Fooocus's choice).
    Returns:
        float32 tensor ``[vocab_size]`` with values in {0, −8192}.
    Raises:
        ValueError: a vocab id falls outside ``[0, vocab_size)`` for an allowed token, or bad types.
    """
    if not isinstance(tokenizer_vocab, Mapping):
        raise ValueError(
            f"tokenizer_vocab: expected a mapping token -> id, got {type(tokenizer_vocab).__name__}"
        )
    if vocab_size is None:
        vocab_size = len(tokenizer_vocab)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= COMMA_TOKEN_ID:
        raise ValueError(f"vocab_size: expected an int > {COMMA_TOKEN_ID}, got {vocab_size!r}")
    wanted = {"\u0120" + str(w).lower() for w in positive_words if w != ""}
    bias = torch.full((vocab_size,), NEG_INF, dtype=torch.float32)
    for token, idx in tokenizer_vocab.items():
        if token in wanted:
            if not 0 <= int(idx) < vocab_size:
                raise ValueError(f"tokenizer_vocab: id {idx} of {token!r} is outside [0, {vocab_size})")
            bias[int(idx)] = 0.0
    return bias


def allowed_token_ids(bias: torch.Tensor) -> list[int]:
    """Sorted ids whose bias is 0 (the vocabulary the expansion may add, besides ``','``)."""
    return torch.nonzero(bias.reshape(-1) == 0).reshape(-1).tolist()


def apply_bias(input_ids: torch.Tensor, scores: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The expansion logits processor: ``scores + b`` where ``b`` is ``bias`` with every id present in
    ``input_ids`` set to −8192 and id 11 (``','``) set to 0.

    Fooocus: ``FooocusExpansion.logits_processor`` (batch of one only, as there).

    Args:
        input_ids: integer tensor ``[1, L]`` (or ``[L]``), the sequence so far.
        scores: float tensor ``[1, V]``, next-token logits.
        bias: tensor ``[V]`` or ``[1, V]`` from :func:`build_logits_bias`; cast to ``scores``' dtype/device.
    Returns:
        A new tensor like ``scores``.
    Raises:
        ValueError: shapes other than the above.
    """
    if scores.ndim != 2 or scores.shape[0] != 1:
        raise ValueError(f"scores: expected shape [1, V], got {tuple(scores.shape)}")
    ids = input_ids.reshape(-1) if input_ids.ndim == 1 else input_ids
    if ids.ndim == 2:
        if ids.shape[0] != 1:
            raise ValueError(f"input_ids: expected shape [1, L] or [L], got {tuple(input_ids.shape)}")
        ids = ids[0]
    elif ids.ndim != 1:
        raise ValueError(f"input_ids: expected shape [1, L] or [L], got {tuple(input_ids.shape)}")
    b = bias.reshape(-1)
    if b.shape[0] != scores.shape[1]:
        raise ValueError(f"bias: expected {scores.shape[1]} entries (scores' vocab), got {b.shape[0]}")
    b = b.to(device=scores.device, dtype=scores.dtype).clone()
    b[ids.to(b.device).long()] = NEG_INF
    b[COMMA_TOKEN_ID] = 0
    return scores + b.unsqueeze(0)


def max_new_tokens(token_count: int) -> int:
    """Tokens to generate: ``75 * ceil(n / 75) - n`` (0 for ``n`` = 0 or a multiple of 75: no generation).

    Fooocus: ``FooocusExpansion.__call__`` :111-116.
    """
    if isinstance(token_count, bool) or not isinstance(token_count, int) or token_count < 0:
        raise ValueError(f"token_count: expected an int >= 0, got {token_count!r}")
    return CHUNK_TOKENS * int(math.ceil(token_count / CHUNK_TOKENS)) - token_count


def expansion_seed(seed: int) -> int:
    """``int(seed) % 2**32``: the seed the expansion sets (Fooocus ``seed % SEED_LIMIT_NUMPY``)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an int, got {type(seed).__name__}")
    return int(seed) % SEED_LIMIT


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and all CUDA devices) with ``seed``.

    Same effect as ``transformers.set_seed(seed)`` (what Fooocus calls) for these libraries.
    ``seed`` must be in ``[0, 2**32)`` (numpy's limit).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed: expected an int in [0, 2**32), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def load_tokenizer(folder: str | os.PathLike) -> Any:
    """Load the GPT-2 tokenizer of the expansion from a folder (offline, ``local_files_only``).

    The folder is Fooocus's ``models/prompt_expansion/fooocus_expansion`` (``tokenizer.json``, ``vocab.json``,
    ``merges.txt``, ...). Imports ``transformers`` lazily.

    Raises:
        ValueError: the folder does not exist or holds no loadable tokenizer.
    """
    p = Path(folder)
    if not p.is_dir():
        raise ValueError(f"folder: the Fooocus V2 tokenizer folder {p} does not exist")
    from transformers import AutoTokenizer  # lazy: only when the expansion is used

    try:
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"folder: cannot load a GPT-2 tokenizer from {p} ({exc})") from exc


_CLEAN_UP_PAIRS = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)


def clean_up_tokenization(text: str) -> str:
    """The decode clean-up Fooocus gets: remove the space before ``. ? ! ,`` and English contractions.

    Fooocus 2.5.5 pins transformers 4.42.4, whose ``decode`` defaults to ``clean_up_tokenization_spaces=True``
    when the tokenizer config does not set it (Fooocus's does not); transformers >= 4.45 defaults to False and
    5.x refuses it for BPE tokenizers. So the expansion decodes without clean-up and applies these replacements
    (in this order) itself: ``" ."→"."``, ``" ?"→"?"``, ``" !"→"!"``, ``" ,"→","``, ``" ' "→"'"``, ``" n't"``,
    ``" 'm"``, ``" 's"``, ``" 've"``, ``" 're"`` (space dropped).
    """
    for old, new in _CLEAN_UP_PAIRS:
        text = text.replace(old, new)
    return text


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _default_bias(tokenizer: Any) -> torch.Tensor:
    folder = getattr(tokenizer, "name_or_path", None)
    words_file = Path(folder) / "positive.txt" if folder else None
    if words_file is None or not words_file.is_file():
        raise ValueError(
            "logits_bias: not given, and no positive.txt beside the tokenizer "
            f"({folder!r}); build it with build_logits_bias(tokenizer.vocab, load_positive_words(...))"
        )
    return build_logits_bias(tokenizer.vocab, load_positive_words(words_file))


def generate_expansion_ids(prompt: str, seed: int, tokenizer: Any, model: Any,
                           logits_bias: Optional[torch.Tensor] = None,
                           *, top_k: int = TOP_K) -> tuple[list[int], list[int]]:
    """Run the expansion sampling and return token ids ``(input_ids, full_sequence)``.

    The global RNGs are seeded with :func:`expansion_seed` (:func:`seed_everything`, as Fooocus's ``set_seed``),
    ``prompt`` is ``safe_str``-ed and ``","`` appended, then tokenised. If :func:`max_new_tokens` of its length
    is 0 nothing is generated (``full_sequence == input_ids``). Otherwise ``model.generate(input_ids,
    attention_mask, top_k=top_k, max_new_tokens=..., do_sample=True, logits_processor=[bias processor])`` runs
    under ``torch.inference_mode`` (the bias is applied before transformers' top-k warper, as in Fooocus).

    Note: transformers >= 4.45 casts the next-token logits to float32 before the processors; Fooocus's pinned
    4.42 kept the model dtype. With an fp16 model the sampled tokens can therefore differ from Fooocus's.

    Args:
        prompt: line 1 (non-empty; :func:`expand_prompt` handles ``""``).
        seed: the task seed (any int; reduced modulo 2**32).
        tokenizer: a GPT-2 tokenizer (``__call__`` with ``return_tensors="pt"``).
        model: a causal LM with ``generate`` (e.g. ``GPT2LMHeadModel``), already on its device/dtype.
        logits_bias: :func:`build_logits_bias` result (``[V]``); ``None`` builds it from the ``positive.txt``
            in the tokenizer's folder (``tokenizer.name_or_path``).
    Returns:
        ``(input_ids, full_sequence)`` as lists of ints.
    """
    from transformers import LogitsProcessor, LogitsProcessorList  # lazy

    class _FooocusBias(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            return apply_bias(input_ids, scores, logits_bias)

    if logits_bias is None:
        logits_bias = _default_bias(tokenizer)
    seed_everything(expansion_seed(seed))
    text = safe_str(prompt) + ","
    encoded = tokenizer(text, return_tensors="pt")
    input_ids = encoded["input_ids"]
    ids_list = input_ids[0].tolist()
    n_new = max_new_tokens(len(ids_list))
    if n_new == 0:
        return ids_list, list(ids_list)
    device = _model_device(model)
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=encoded["attention_mask"].to(device),
            top_k=top_k,
            max_new_tokens=n_new,
            do_sample=True,
            logits_processor=LogitsProcessorList([_FooocusBias()]),
        )
    return ids_list, out[0].tolist()


def expand_prompt(prompt: str, seed: int, tokenizer: Any, model: Any,
                  logits_bias: Optional[torch.Tensor] = None, *, top_k: int = TOP_K) -> str:
    """Fooocus V2: expand line 1 with the GPT-2 model; returns ``safe_str(decode(full sequence))``.

    ``""`` gives ``""`` (nothing tokenised). When the tokenised ``safe_str(prompt) + ","`` is already a multiple
    of 75 tokens, returns ``safe_str(prompt)``. Otherwise see :func:`generate_expansion_ids`; the full sequence
    is decoded with ``skip_special_tokens=True`` and :func:`clean_up_tokenization` (transformers 4.42's default).

    Fooocus: ``FooocusExpansion.__call__`` (``seed`` is the task seed; fp16/device placement is the caller's).
    Pass ``logits_bias`` (:func:`build_logits_bias`) to avoid rebuilding it on every call.

    Raises:
        ValueError: ``prompt`` is not a str or ``seed`` not an int.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt: expected a str, got {type(prompt).__name__}")
    expansion_seed(seed)  # validates
    if prompt == "":
        return ""
    input_ids, full = generate_expansion_ids(prompt, seed, tokenizer, model, logits_bias, top_k=top_k)
    if max_new_tokens(len(input_ids)) == 0:
        return safe_str(prompt)  # Fooocus returns the prompt without the ',' it appended, undecoded
    text = tokenizer.decode(full, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return safe_str(clean_up_tokenization(text))
