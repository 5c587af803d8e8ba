"""engine.lora_match: unmatched LoRA keys and Fooocus's > 12 model-mismatch rule."""
from __future__ import annotations

import pytest

from engine.lora_match import MAX_UNMATCHED_KEYS, is_model_mismatch, unmatched_lora_keys

TARGETS = {"lora_unet_in_0", "lora_te1_layer_0", "unet.down_blocks.0.attn.to_q"}


def test_matched_by_any_dot_prefix_and_order_kept():
    keys = ["lora_unet_in_0.lora_down.weight", "lora_unet_in_0.alpha", "zzz.lora_up.weight",
            "unet.down_blocks.0.attn.to_q.lora_A.weight", "lora_te1_layer_0.lora_up.weight",
            "unet.down_blocks.0.attn.lora_A.weight", "noprefix", "lora_unet_in_00.alpha"]
    assert unmatched_lora_keys(keys, TARGETS) == ["zzz.lora_up.weight", "unet.down_blocks.0.attn.lora_A.weight",
                                                  "noprefix", "lora_unet_in_00.alpha"]


def test_accepts_any_collection_of_targets():
    assert unmatched_lora_keys(["a.b"], ["a"]) == []
    assert unmatched_lora_keys(iter(["a.b", "c.d"]), {"a": 1}) == ["c.d"]
    assert unmatched_lora_keys([], TARGETS) == []


def test_mismatch_rule_is_more_than_12():
    assert MAX_UNMATCHED_KEYS == 12
    assert not is_model_mismatch(0)
    assert not is_model_mismatch(12)
    assert is_model_mismatch(13)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_mismatch_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="unmatched_count"):
        is_model_mismatch(bad)


def test_rejects_bad_keys():
    with pytest.raises(ValueError, match="lora_keys"):
        unmatched_lora_keys("a.b", TARGETS)
    with pytest.raises(ValueError, match="lora_keys"):
        unmatched_lora_keys([1], TARGETS)
