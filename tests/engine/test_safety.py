"""The safety checker maths, preprocessing and weight layout (engine.safety) on hand examples and a tiny model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine import safety
from engine.safety import SafetyCheckerWeights, nsfw_scores


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run faster on one thread on a busy 2-core machine; restored afterwards so later
    tests (e.g. in-process vs HTTP comparisons) see the process default."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _head(concept, concept_thr, special, special_thr):
    p = len(concept[0])
    return SafetyCheckerWeights(torch.eye(p), torch.tensor(concept, dtype=torch.float32),
                                torch.tensor(special, dtype=torch.float32),
                                torch.tensor(concept_thr, dtype=torch.float32),
                                torch.tensor(special_thr, dtype=torch.float32))


def test_scores_threshold_and_flag():
    head = _head([[1, 0], [0, 1]], [0.5, 0.5], [[0, 1]], [0.0])
    flags, d = nsfw_scores(torch.tensor([[2.0, 0.0], [-1.0, 0.0]]), head)
    assert flags == [True, False]
    assert d[0]["concept_scores"] == [0.5, -0.5] and d[0]["bad_concepts"] == [0]
    assert d[0]["special_scores"] == [0.0] and d[0]["special_care"] == []  # 0 is not > 0: no adjustment
    assert d[1]["concept_scores"] == [-1.5, -0.5]


def test_special_care_adds_001_to_concepts():
    # concept score 1 - 1.005 = -0.005 alone; with a special-care hit +0.01 -> 0.005 > 0
    no_hit = _head([[1, 0]], [1.005], [[0, 1]], [0.5])
    hit = _head([[1, 0]], [1.005], [[1, 0]], [0.9])
    e = torch.tensor([[1.0, 0.0]])
    f0, d0 = nsfw_scores(e, no_hit)
    f1, d1 = nsfw_scores(e, hit)
    assert f0 == [False] and d0[0]["concept_scores"] == [-0.005]
    assert f1 == [True] and d1[0]["special_care"] == [0] and d1[0]["concept_scores"] == [0.005]


def test_adjustment_applies_to_later_special_scores_too():
    head = _head([[1, 0]], [2.0], [[1, 0], [1, 0]], [0.9, 1.005])
    _, d = nsfw_scores(torch.tensor([[1.0, 0.0]]), head)
    assert d[0]["special_scores"] == [0.1, 0.005]  # the second got +0.01 from the first hit
    assert d[0]["special_care"] == [0, 1]


def test_scores_rounded_to_3_decimals():
    head = _head([[1, 0]], [0.9996], [[0, 1]], [0.5])
    flags, d = nsfw_scores(torch.tensor([[1.0, 0.0]]), head)
    assert d[0]["concept_scores"] == [0.0] and flags == [False]  # 0.0004 rounds to 0, not > 0


def test_cosine_similarity():
    a = torch.tensor([[3.0, 4.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, -4.0]])
    torch.testing.assert_close(safety.cosine_similarity(a, b), torch.tensor([[0.6, 0.8, -1.0]]))
    with pytest.raises(ValueError):
        safety.cosine_similarity(a, torch.zeros(2, 3))


@pytest.mark.parametrize("shape", [(300, 451), (451, 300), (224, 224), (97, 333), (1000, 225), (64, 64)])
def test_preprocess_matches_transformers_pil_processor(shape):
    pil_mod = pytest.importorskip("transformers.models.clip.image_processing_pil_clip")
    proc = pil_mod.CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    img = (np.random.default_rng(sum(shape)).random(shape + (3,)) * 255).astype(np.uint8)
    ref = proc([img], return_tensors="pt").pixel_values
    out = safety.preprocess(img)
    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_preprocess_batch_and_errors():
    imgs = np.zeros((2, 50, 80, 3), np.uint8)
    imgs[1] = 255
    out = safety.preprocess(imgs, size=32)
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out[1, :, 0, 0], (1 - torch.tensor(safety.CLIP_MEAN)) / torch.tensor(safety.CLIP_STD))
    with pytest.raises(ValueError, match="images_u8"):
        safety.preprocess(np.zeros((2, 50, 80, 3), np.float32))
    with pytest.raises(ValueError, match="size"):
        safety.preprocess(imgs, size=0)


def _tiny_sd(threshold=2.0):
    import tiny_extra_prompt

    return tiny_extra_prompt.tiny_safety_state_dict(threshold=threshold)


def test_split_state_dict_layouts():
    sd = _tiny_sd()
    vision, head = safety.split_state_dict(sd)
    assert all(not k.startswith("vision_model.") for k in vision)
    assert "embeddings.patch_embedding.weight" in vision
    assert head.concept_embeds.shape == (17, 16) and head.special_care_embeds.shape == (3, 16)
    # a tower saved without the outer prefix, with an old position_ids buffer, gives the same dict
    flat = {("vision_model." + k[len("vision_model.vision_model."):] if k.startswith("vision_model.vision_model.") else k): v
            for k, v in sd.items()}
    flat["vision_model.embeddings.position_ids"] = torch.arange(50)[None]
    vision2, _ = safety.split_state_dict(flat)
    assert vision2.keys() == vision.keys()
    bad = dict(sd)
    del bad["concept_embeds"]
    with pytest.raises(ValueError, match="concept_embeds"):
        safety.split_state_dict(bad)
    with pytest.raises(ValueError, match="vision_model"):
        safety.split_state_dict({k: v for k, v in sd.items() if not k.startswith("vision_model.")})
    bad = dict(sd)
    bad["concept_embeds"] = torch.zeros(17, 5)
    with pytest.raises(ValueError, match="projection"):
        safety.split_state_dict(bad)


def test_vision_config_inferred_and_from_json(tmp_path):
    import tiny_extra_prompt

    vision, head = safety.split_state_dict(_tiny_sd())
    cfg = safety.vision_config_from_state_dict(vision, head.visual_projection.shape[0])
    assert cfg == tiny_extra_prompt.SAFETY_VISION
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"projection_dim": 16, "vision_config": {"hidden_size": 64, "patch_size": 32, "foo": 1}}))
    assert safety.vision_config_from_json(p) == {"hidden_size": 64, "patch_size": 32, "projection_dim": 16}
    p.write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2}))
    assert safety.vision_config_from_json(p) == {"hidden_size": 64, "num_hidden_layers": 2}
    p.write_text("[1]")
    with pytest.raises(ValueError, match="config"):
        safety.vision_config_from_json(p)
    with pytest.raises(ValueError, match="config"):
        safety.vision_config_from_json(tmp_path / "nope.json")


def _checker(threshold=2.0, concept_thr=None):
    sd = _tiny_sd(threshold)
    if concept_thr is not None:
        sd["concept_embeds_weights"] = torch.as_tensor(concept_thr, dtype=torch.float32)
    vision, head = safety.split_state_dict(sd)
    cfg = safety.vision_config_from_state_dict(vision, 16)
    return safety.SafetyChecker(safety.build_vision_model(cfg, vision), head)


IMAGES = (np.random.default_rng(3).random((2, 120, 90, 3)) * 255).astype(np.uint8)


def test_tiny_checker_flags_with_forced_thresholds():
    assert _checker(2.0).check(IMAGES)[0] == [False, False]
    assert _checker(-2.0).check(IMAGES)[0] == [True, True]
    c = _checker(2.0)
    cos = safety.cosine_similarity(c.embed(safety.preprocess(IMAGES)), c.concept_embeds)
    # a threshold on concept 0 between the two images' cosines flags exactly one image
    lo, hi = sorted(cos[:, 0].tolist())
    thr = [2.0] * 17
    thr[0] = round((lo + hi) / 2, 3)
    flags, d = _checker(2.0, thr).check(IMAGES)
    assert sorted(flags) == [False, True]
    assert flags[int(torch.argmax(cos[:, 0]))] is True
    assert d[flags.index(True)]["bad_concepts"] == [0]


def test_build_rejects_weights_that_do_not_fit():
    vision, _ = safety.split_state_dict(_tiny_sd())
    cfg = safety.vision_config_from_state_dict(vision, 16)
    cfg["num_hidden_layers"] = 3
    with pytest.raises(ValueError, match="do not fit"):
        safety.build_vision_model(cfg, vision)


def test_black_out():
    out = safety.black_out(IMAGES, [True, False])
    assert out.shape == IMAGES.shape and out.dtype == np.uint8
    assert not out[0].any() and np.array_equal(out[1], IMAGES[1])
    assert IMAGES[0].any()  # input untouched
    with pytest.raises(ValueError, match="flags"):
        safety.black_out(IMAGES, [True])
