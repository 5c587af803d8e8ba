"""Which keys of a LoRA file the model has no place for, and Fooocus's "model mismatch" rule.

Fooocus (2.5.5): ``modules/core.py`` ``StableDiffusionModel.refresh_loras`` (about line 100) matches each
LoRA against the UNet and then the CLIP key maps (``modules/lora.py`` ``match_lora``) and skips the
whole LoRA, with a message, when more than 12 of its keys are left unmatched. Spec
``fooocus-pipeline.md`` §1.7 ("A LoRA with more than 12 unmatched keys is skipped as a model mismatch")
and §7 (LoRAs).

A LoRA file's keys are ``<target>.<tensor>`` (``lora_unet_x.lora_down.weight``, ``lora_te1_y.alpha``,
``unet.down_blocks.0....lora_A.weight``...), where ``<target>`` itself may contain dots (diffusers
names). ``target_names`` is the set of target names the host knows for the model and its text encoder
(ComfyUI: the keys of ``comfy.lora.model_lora_keys_unet`` / ``model_lora_keys_clip``). A key is matched
when one of its dot-prefixes is such a target name.
"""
from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

__all__ = ["MAX_UNMATCHED_KEYS", "unmatched_lora_keys", "is_model_mismatch"]

logger = logging.getLogger(__name__)

#: More unmatched keys than this means the LoRA is for another model (``core.py`` ``> 12``).
MAX_UNMATCHED_KEYS: int = 12


def _is_matched(key: str, target_names: Collection[str]) -> bool:
    end = key.find(".")
    while end != -1:
        if key[:end] in target_names:
            return True
        end = key.find(".", end + 1)
    return False


def unmatched_lora_keys(lora_keys: Iterable[str], target_names: Collection[str]) -> list[str]:
    """The keys of a LoRA state dict that no model/text-encoder target accounts for, in input order.

    ``lora_keys``: the LoRA file's tensor names (str); ``target_names``: the LoRA target names the model
    accepts (a set for speed; e.g. ``{"lora_unet_input_blocks_1_0_in_layers_2", ...}``). A key is matched
    when any prefix of it that ends right before a ``.`` is in ``target_names`` (``"a.b.lora_up.weight"``
    is matched by ``"a"``, ``"a.b"`` or ``"a.b.lora_up"``). Keys without a dot are never matched.
    Fooocus: ``modules/lora.py`` ``match_lora`` (the ``loaded`` leftovers counted in ``core.py``).
    """
    if isinstance(lora_keys, (str, bytes)):
        raise ValueError("lora_keys must be an iterable of str, not a single str")
    names = target_names if isinstance(target_names, (set, frozenset, dict)) else set(target_names)
    out: list[str] = []
    for k in lora_keys:
        if not isinstance(k, str):
            raise ValueError(f"lora_keys must contain str, got {type(k).__name__}")
        if not _is_matched(k, names):
            out.append(k)
    return out


def is_model_mismatch(unmatched_count: int) -> bool:
    """True when a LoRA with ``unmatched_count`` unmatched keys must be skipped (``> 12``).

    ``unmatched_count``: int >= 0. Fooocus: ``modules/core.py`` ``refresh_loras``
    (``if len(lora_unmatch) > 12: ... continue``).
    """
    if isinstance(unmatched_count, bool) or not isinstance(unmatched_count, int) or unmatched_count < 0:
        raise ValueError(f"unmatched_count must be an int >= 0, got {unmatched_count!r}")
    return unmatched_count > MAX_UNMATCHED_KEYS
