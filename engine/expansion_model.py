"""Loading the Fooocus V2 expansion model (GPT-2) from its folder, safely and offline.

Fooocus counterpart (2.5.5): ``extras/expansion.py`` ``FooocusExpansion.__init__`` (tokenizer and model from
``models/prompt_expansion/fooocus_expansion``; the weights ``pytorch_model.bin`` come from
``lllyasviel/misc/fooocus_expansion.bin``). See spec ``fooocus-pipeline.md`` §6 and §10.

The folder holds the GPT-2 tokenizer files, ``config.json``, ``positive.txt`` and the weights. Weights are read
with :mod:`engine.safe_pickle` (no pickle code runs) or from safetensors, then loaded into a
``transformers.GPT2LMHeadModel`` built from ``config.json``. ``transformers`` is imported lazily.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .expansion import build_logits_bias, load_positive_words, load_tokenizer
from .safe_pickle import load_model_file

__all__ = [
    "EXPANSION_FOLDER_NAME",
    "WEIGHT_FILE_NAMES",
    "TOKENIZER_FILES",
    "REQUIRED_FILES",
    "find_expansion_files",
    "normalize_gpt2_state_dict",
    "ExpansionModel",
    "load_expansion_model",
]

logger = logging.getLogger(__name__)

#: The folder name Fooocus uses under ``models/prompt_expansion``.
EXPANSION_FOLDER_NAME = "fooocus_expansion"
#: Accepted weight file names, in order of preference.
WEIGHT_FILE_NAMES = ("model.safetensors", "pytorch_model.bin", "fooocus_expansion.bin")
#: Tokenizer files (``tokenizer.json`` alone is enough; ``vocab.json`` + ``merges.txt`` are the alternative).
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
#: Files that must be present besides the weights.
REQUIRED_FILES = ("config.json", "positive.txt")

_HINT = (
    "Fooocus V2 needs the folder models/prompt_expansion/fooocus_expansion of a Fooocus install: config.json, "
    "positive.txt, the GPT-2 tokenizer files (tokenizer.json or vocab.json + merges.txt, tokenizer_config.json, "
    "special_tokens_map.json) from Fooocus's repository, and the weights pytorch_model.bin "
    "(lllyasviel/misc fooocus_expansion.bin, 351 MB); or remove 'Fooocus V2' from the styles"
)


def find_expansion_files(folder: str | os.PathLike) -> Path:
    """Check an expansion folder and return its weight file.

    Raises:
        ValueError: the folder or any required file is missing; the message lists what is missing and what the
            folder must hold.
    """
    p = Path(folder)
    if not p.is_dir():
        raise ValueError(f"expansion model: folder {p} does not exist. {_HINT}.")
    missing = [f for f in REQUIRED_FILES if not (p / f).is_file()]
    if not (p / "tokenizer.json").is_file() and not ((p / "vocab.json").is_file() and (p / "merges.txt").is_file()):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    weights = next((p / n for n in WEIGHT_FILE_NAMES if (p / n).is_file()), None)
    if weights is None:
        missing.append(" or ".join(WEIGHT_FILE_NAMES))
    if missing:
        raise ValueError(f"expansion model: {p} lacks {', '.join(missing)}. {_HINT}.")
    return weights


_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def normalize_gpt2_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bring a GPT-2 state dict to ``GPT2LMHeadModel``'s key names.

    Accepts the ``GPT2LMHeadModel`` layout (``transformer.*``, ``lm_head.weight``) and the bare ``GPT2Model``
    layout (``wte.weight``, ``h.0...``), to which ``transformer.`` is prefixed. Old causal-mask buffers
    (``attn.bias``, ``attn.masked_bias``) are dropped; a missing ``lm_head.weight`` is tied to ``wte``.

    Raises:
        ValueError: not a dict of tensors, or no ``wte.weight``.
    """
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("expansion weights: expected a dict of tensors (a GPT-2 state dict)")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.endswith(_IGNORED_SUFFIXES):
            continue
        if not (k.startswith("transformer.") or k.startswith("lm_head.")):
            k = "transformer." + k
        out[k] = v
    if "transformer.wte.weight" not in out:
        raise ValueError("expansion weights: no wte.weight (token embeddings); not a GPT-2 state dict")
    out.setdefault("lm_head.weight", out["transformer.wte.weight"])
    return out


class ExpansionModel(NamedTuple):
    """What :func:`~engine.expansion.expand_prompt` needs: tokenizer, model (CPU, float32, eval) and bias."""

    tokenizer: Any
    model: Any
    logits_bias: torch.Tensor
    folder: Path


def load_expansion_model(folder: str | os.PathLike) -> ExpansionModel:
    """Load the tokenizer, ``positive.txt`` bias and GPT-2 weights of a Fooocus V2 folder (CPU, float32).

    Fooocus: ``extras/expansion.py`` ``FooocusExpansion.__init__`` (device/fp16 placement is the caller's).

    Raises:
        ValueError: missing files (see :func:`find_expansion_files`), unsafe/corrupt weights, or weights that do
            not fit ``config.json``.
    """
    weights = find_expansion_files(folder)
    p = Path(folder)
    tokenizer = load_tokenizer(p)
    bias = build_logits_bias(tokenizer.vocab, load_positive_words(p / "positive.txt"))
    obj, _, _ = load_model_file(weights, what="Fooocus V2 expansion weights", expected="a GPT-2 state dict")
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    sd = normalize_gpt2_state_dict(obj)

    from transformers import GPT2Config, GPT2LMHeadModel  # lazy

    config = GPT2Config.from_json_file(str(p / "config.json"))
    model = GPT2LMHeadModel(config)
    sd = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in sd.items()}
    try:
        result = model.load_state_dict(sd, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"expansion weights {weights} do not fit {p / 'config.json'}: {str(exc)[:400]}") from None
    missing = [k for k in result.missing_keys if not k.endswith(_IGNORED_SUFFIXES)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"expansion weights {weights} do not fit {p / 'config.json'}: missing {missing[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]}"
        )
    model.eval()
    logger.info("Fooocus V2 expansion loaded from %s (%d layers)", p, config.n_layer)
    return ExpansionModel(tokenizer, model, bias, p)
