"""Key layout of Fooocus's ESRGAN upscaler file.

``fooocus_upscaler_s409985e5.bin`` is a torch state dict of an old-layout ESRGAN (RRDBNet,
``model.0``, ``model.1.sub.<i>.RDB<j>.conv<k>.0``, ...) whose dense blocks are named
``residual_block_<j>`` instead of ``RDB<j>``. Fooocus renames them before loading
(``modules/upscaler.py``: ``k.replace('residual_block_', 'RDB')``); after that the dict is a standard
ESRGAN that ComfyUI's upscaler loader (spandrel) recognises.
"""
from __future__ import annotations

from collections.abc import Mapping

FOOOCUS_BLOCK_NAME = "residual_block_"
ESRGAN_BLOCK_NAME = "RDB"


def is_fooocus_upscaler(state_dict: Mapping[str, object]) -> bool:
    """True when the keys use Fooocus's ``residual_block_`` naming."""
    return any(FOOOCUS_BLOCK_NAME in k for k in state_dict)


def rename_fooocus_upscaler_keys(state_dict: Mapping[str, object]) -> dict:
    """Return a new dict with ``residual_block_`` replaced by ``RDB`` in every key (values shared).

    Fooocus counterpart: ``modules/upscaler.py perform_upscale`` (the key renaming before
    ``RRDBNet.load_state_dict``).
    """
    return {k.replace(FOOOCUS_BLOCK_NAME, ESRGAN_BLOCK_NAME): v for k, v in state_dict.items()}
