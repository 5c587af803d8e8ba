"""Fooocus image prompts on the real tiny SDXL, in-process: ControlNet (PyraCanny/CPDS) with softness and
the IP-Adapter attention (ImagePrompt/FaceSwap) through attn2_replace."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

try:
    import cv2  # noqa: F401
    HAVE_CV2 = True
except ImportError:
    HAVE_CV2 = False
# the ControlNet image prompts need OpenCV for their preprocessors; the IP-Adapter ones do not
needs_cv2 = pytest.mark.skipif(not HAVE_CV2, reason="opencv-python-headless is not installed (optional "
                                                    "dependency of the PyraCanny/CPDS preprocessors)")

SIZE = 64  # pixels; latent 8x8


def _pack():
    return next(m for name, m in sys.modules.items()
                if name.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))


@pytest.fixture(scope="module")
def tiny(inprocess_host):
    import nodes

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sdxl.safetensors")[:3]
    pos = nodes.CLIPTextEncode().encode(clip, "a red house")[0]
    neg = nodes.CLIPTextEncode().encode(clip, "blurry")[0]
    return model, clip, vae, pos, neg


def _image(seed=0, size=SIZE):
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = rng.integers(40, 200, 3)
    img[size // 4: 3 * size // 4, size // 3: 2 * size // 3] = rng.integers(0, 255, 3)
    img[::7] = 255
    return torch.tensor(img, dtype=torch.float32)[None] / 255.0


def _sample(model, pos, neg, steps=2, seed=3):
    import nodes

    latent = {"samples": torch.zeros(1, 4, SIZE // 8, SIZE // 8)}
    return nodes.common_ksampler(model, seed, steps, 4.0, "euler", "normal", pos, neg, latent, denoise=1.0)[0]["samples"]


@pytest.fixture(scope="module")
def controlnet(inprocess_host):
    import nodes

    return nodes.ControlNetLoader().load_controlnet("control-lora-canny-rank128.safetensors")[0]


# -- ControlNet ----------------------------------------------------------------------------------------
def test_softness_factors_and_soften_control(inprocess_host):
    ipg = _pack().nodes.image_prompt
    f = ipg.softness_factors(10, 0.25)
    assert f[0] == 0.75 and f[9] == 1.0 and abs(f[3] - (1 - 0.25 * (1 - 3 / 9))) < 1e-12
    outs = [torch.ones(1, 2) for _ in range(9)]
    ctrl = {"output": outs, "middle": [torch.ones(1, 2)], "input": [torch.ones(1)]}
    soft = ipg.soften_control(ctrl, 0.25)
    assert [float(x[0, 0]) for x in soft["output"]] == pytest.approx(f[:9])
    assert float(soft["middle"][0][0, 0]) == 1.0 and soft["input"] is ctrl["input"]
    assert all(float(x[0, 0]) == 1.0 for x in outs)  # not in place
    assert ipg.soften_control(ctrl, 0.0) is ctrl


@needs_cv2
def test_controlnet_node_conds_and_hint(tiny, controlnet):
    pack = _pack()
    model, _, _, pos, neg = tiny
    node = pack.nodes.image_prompt_nodes.FooocusImagePromptControlNet
    img = _image()
    m, p2, n2, hint = node.execute(model, pos, neg, controlnet, img, "PyraCanny", 0.8, 0.4, SIZE, SIZE).result
    u8 = pack.nodes.convert.image_to_u8(img)
    expect = pack.engine.preprocessors.canny_pyramid(pack.engine.preprocessors.resize_image(u8, SIZE, SIZE, 1))
    np.testing.assert_array_equal(pack.nodes.convert.image_to_u8(hint)[..., 0], expect)
    for conds in (p2, n2):
        c = conds[0][1]["control"]
        assert c.strength == 0.8 and c.timestep_percent_range == (0.0, 0.4)
        assert conds[0][1]["control_apply_to_uncond"] is False
    assert "control" not in pos[0][1]  # inputs untouched
    assert m is not model
    # weight 0: conditioning returned unchanged (ComfyUI's rule)
    _, p0, _, _ = node.execute(model, pos, neg, controlnet, img, "CPDS", 0.0, 0.4, SIZE, SIZE).result
    assert p0 is pos


@needs_cv2
def test_controlnet_softness_reaches_the_unet(tiny, controlnet):
    from comfy.patcher_extension import WrappersMP

    pack = _pack()
    model, _, _, pos, neg = tiny
    node = pack.nodes.image_prompt_nodes.FooocusImagePromptControlNet
    seen = {}
    for soft in (0.0, 0.25):
        m, p2, n2, _ = node.execute(model, pos, neg, controlnet, _image(), "CPDS", 1.0, 1.0, SIZE, SIZE, soft).result
        m = m.clone()
        rec = []

        def spy(executor, x, timesteps, context, y, control, transformer_options, *a, **k):
            rec.append(([o.clone() for o in control["output"] if o is not None], transformer_options))
            return executor(x, timesteps, context, y, control, transformer_options, *a, **k)

        m.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, "test_spy", spy)
        _sample(m, p2, n2, steps=1)
        seen[soft] = rec[0]
    outs0, opts = seen[0.0]
    outs1, _ = seen[0.25]
    n = len(outs0) + 1
    for i, (a, b) in enumerate(zip(outs0, outs1)):
        torch.testing.assert_close(b, a * (1 - 0.25 * (1 - i / (n - 1))), rtol=1e-5, atol=1e-6)
    assert 0.0 <= opts["fooocus_progress"] <= 1.0


@needs_cv2
def test_controlnet_changes_output_with_weight_and_stop(tiny, controlnet):
    pack = _pack()
    model, _, _, pos, neg = tiny
    node = pack.nodes.image_prompt_nodes.FooocusImagePromptControlNet
    base = _sample(model, pos, neg)

    def run(weight, stop):
        m, p2, n2, _ = node.execute(model, pos, neg, controlnet, _image(), "PyraCanny", weight, stop, SIZE, SIZE).result
        return _sample(m, p2, n2)

    on = run(1.0, 1.0)
    assert not torch.equal(on, base)
    torch.testing.assert_close(run(0.0, 1.0), base)
    assert not torch.equal(run(1.0, 0.0), on)


# -- IP-Adapter ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_vision(inprocess_host):
    """The tiny CLIP vision model from models/clip_vision, through the test extension's loader."""
    import nodes

    return nodes.NODE_CLASS_MAPPINGS["TinyCLIPVisionLoader"]().load_clip("clip_vision_vit_h.safetensors")[0]


def test_tiny_clip_vision_loader_has_clip_vision_loaders_interface(inprocess_host, clip_vision):
    import comfy.clip_vision
    import nodes

    tiny, stock = nodes.NODE_CLASS_MAPPINGS["TinyCLIPVisionLoader"], nodes.NODE_CLASS_MAPPINGS["CLIPVisionLoader"]
    assert tiny.INPUT_TYPES() == stock.INPUT_TYPES()
    assert "clip_vision_vit_h.safetensors" in tiny.INPUT_TYPES()["required"]["clip_name"][0]
    assert tiny.RETURN_TYPES == stock.RETURN_TYPES == ("CLIP_VISION",)
    assert isinstance(clip_vision, comfy.clip_vision.ClipVisionModel)
    out = clip_vision.encode_image(torch.rand(1, 224, 224, 3), crop=False)
    assert out["penultimate_hidden_states"].shape == (1, 50, 64)  # 7x7 patches + class token, width 64
    with pytest.raises(Exception, match="not_there"):
        tiny().load_clip("not_there.safetensors")


@pytest.fixture(scope="module")
def ip_adapter(inprocess_host):
    loader = _pack().nodes.image_prompt_nodes.FooocusIPAdapterLoader
    return loader.execute("ip-adapter-plus_sdxl_vit-h.bin", "fooocus_ip_negative.safetensors").result[0]


def _ip_model(model, ip_adapter, clip_vision, weight=0.6, stop=0.5, kind="ImagePrompt", seed=0):
    node = _pack().nodes.image_prompt_nodes.FooocusImagePromptIPAdapter
    return node.execute(model, ip_adapter, clip_vision, _image(seed), kind, weight, stop).result[0]


def test_ip_adapter_loads_in_real_layout(tiny, ip_adapter):
    ipg = _pack().nodes.image_prompt
    keys = ipg.cross_attention_keys(tiny[0])
    assert len(ip_adapter.kv_weights) == 2 * len(keys) and keys
    assert ip_adapter.negative.shape == (1, 16, 2048)
    assert ip_adapter.shape.queries == 16 and ip_adapter.shape.output_dim == 2048


def test_ip_patches_every_cross_attention_block(tiny, ip_adapter, clip_vision):
    pack = _pack()
    model = tiny[0]
    m = _ip_model(model, ip_adapter, clip_vision)
    attn2 = m.model_options["transformer_options"]["patches_replace"]["attn2"]
    keys = pack.nodes.image_prompt.cross_attention_keys(model)
    assert set(attn2) == set(keys)
    assert all(getattr(f, pack.nodes.image_prompt.IP_PATCH_MARK) for f in attn2.values())
    assert "patches_replace" not in model.model_options.get("transformer_options", {})  # original untouched
    # chaining a second image prompt adds to the same softmax
    m2 = _ip_model(m, ip_adapter, clip_vision, seed=1)
    f2 = m2.model_options["transformer_options"]["patches_replace"]["attn2"][keys[0]]
    assert len(f2.prompts) == 2
    mo = pack.nodes.image_prompt.strip_ip_patches(__import__("comfy.model_patcher").model_patcher
                                                   .create_model_options_clone(m2.model_options))
    assert not mo["transformer_options"]["patches_replace"]["attn2"]


def test_ip_attention_equals_softmax_over_text_and_ip_tokens(tiny, ip_adapter, clip_vision):
    pack = _pack()
    ipa = pack.engine.ip_adapter
    model = tiny[0]
    m = _ip_model(model, ip_adapter, clip_vision, weight=0.8, stop=0.7)
    key = pack.nodes.image_prompt.cross_attention_keys(model)[0]
    fn = m.model_options["transformer_options"]["patches_replace"]["attn2"][key]
    p = fn.prompts[0]
    (kc, vc), (ku, vu) = p.cond[0], p.uncond[0]
    c = kc.shape[2]
    heads = c // 64 or 1
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(4, 10, c, generator=g) for _ in range(3))
    opts = {"n_heads": heads, "attn_precision": None, "cond_or_uncond": [1, 0], "fooocus_progress": 0.2}
    out = fn(q, k, v, opts)
    k_ip = torch.cat([ku.expand(2, -1, -1), kc.expand(2, -1, -1)])
    v_ip = torch.cat([vu.expand(2, -1, -1), vc.expand(2, -1, -1)])
    k_ip, v_ip = ipa.scale_ip_kv(k_ip, v_ip, 0.8)
    torch.testing.assert_close(out, ipa.ip_attention(q, k, v, [k_ip], [v_ip], heads), rtol=1e-4, atol=1e-5)
    # after stop_at: plain attention over the text tokens only
    out2 = fn(q, k, v, {**opts, "fooocus_progress": 0.7})
    torch.testing.assert_close(out2, ipa.ip_attention(q, k, v, [], [], heads), rtol=1e-4, atol=1e-5)


def test_ip_changes_output_with_weight_and_stop(tiny, ip_adapter, clip_vision):
    model, _, _, pos, neg = tiny
    base = _sample(model, pos, neg)
    on = _sample(_ip_model(model, ip_adapter, clip_vision, weight=1.0, stop=1.0), pos, neg)
    assert not torch.equal(on, base)
    w0 = _sample(_ip_model(model, ip_adapter, clip_vision, weight=0.0, stop=1.0), pos, neg)
    assert not torch.equal(w0, on)
    # stop_at 0: never active, identical to the model without image prompts
    torch.testing.assert_close(_sample(_ip_model(model, ip_adapter, clip_vision, weight=1.0, stop=0.0), pos, neg),
                               base)


@needs_cv2
def test_four_mixed_image_prompts_together(tiny, controlnet, ip_adapter, clip_vision):
    import nodes

    pack = _pack()
    model, _, _, pos, neg = tiny
    cn_node = pack.nodes.image_prompt_nodes.FooocusImagePromptControlNet
    cpds_net = nodes.ControlNetLoader().load_controlnet("fooocus_xl_cpds_128.safetensors")[0]
    face = pack.nodes.image_prompt_nodes.FooocusIPAdapterLoader.execute(
        "ip-adapter-plus-face_sdxl_vit-h.bin", "fooocus_ip_negative.safetensors").result[0]
    m, p, n, _ = cn_node.execute(model, pos, neg, controlnet, _image(1), "PyraCanny", 1.0, 0.5, SIZE, SIZE).result
    m, p, n, _ = cn_node.execute(m, p, n, cpds_net, _image(2), "CPDS", 1.0, 0.5, SIZE, SIZE).result
    m = _ip_model(m, ip_adapter, clip_vision, 0.6, 0.5, "ImagePrompt", seed=3)
    m = _ip_model(m, face, clip_vision, 0.75, 0.9, "FaceSwap", seed=4)
    assert p[0][1]["control"].previous_controlnet is not None
    out = _sample(m, p, n)
    assert torch.isfinite(out).all()
    assert not torch.equal(out, _sample(model, pos, neg))


@needs_cv2
def test_reapply_controlnets_and_inpaint_working_size(tiny, controlnet):
    """The ControlNet prompt is recorded on the model clone (for per-image conds), and an inpaint input
    makes the hint at the inpaint working size."""
    pack = _pack()
    model, _, vae, pos, neg = tiny
    ipg = pack.nodes.image_prompt
    img = np.zeros((80, 96, 3), np.uint8)
    img[:, 40:] = 200
    mask = np.zeros((80, 96), np.uint8)
    mask[30:50, 40:70] = 255
    data = pack.nodes.inpaint_nodes.InpaintConditioning.execute(
        pack.nodes.convert.u8_to_image(img), pack.nodes.convert.u8_to_mask(mask), vae, 0.618, 1.0, "auto").result[0]
    node = pack.nodes.image_prompt_nodes.FooocusImagePromptControlNet
    m, p2, _, hint = node.execute(model, pos, neg, controlnet, _image(), "CPDS", 0.9, 0.5, 64, 64,
                                  inpaint=data).result
    assert tuple(hint.shape[1:3]) == data.prep.working_hw
    recorded = m.attachments[ipg.CONTROLNET_ATTACHMENT]
    assert len(recorded) == 1 and recorded[0].weight == 0.9
    rp, rn = ipg.reapply_controlnets(m, pos, neg)
    assert rp[0][1]["control"].strength == 0.9 and rn[0][1]["control"].timestep_percent_range == (0.0, 0.5)
    assert ipg.reapply_controlnets(model, pos, neg) == (pos, neg)
    with pytest.raises(ValueError, match="inpaint"):
        node.execute(model, pos, neg, controlnet, _image(), "CPDS", 0.9, 0.5, 64, 64, inpaint=object())


# -- FaceSwap face crop (nodes/face_detect.py) ---------------------------------------------------------
def _face_image():
    """A 300x400 image and landmarks of a 'face' (the FFHQ template scaled 0.4, shifted)."""
    fa = _pack().engine.face_align
    rng = np.random.default_rng(11)
    img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    lm = fa.FFHQ_TEMPLATE_512 * 0.4 + np.array([120.0, 40.0])
    return img, lm


def test_crop_face_aligns_with_a_detector_and_falls_back(inprocess_host, caplog):
    pack = _pack()
    fd, fa = pack.nodes.face_detect, pack.engine.face_align
    img, lm = _face_image()
    seen = []

    def detect(rgb):
        seen.append(rgb)
        return lm

    face = fd.crop_face(img, fd.FaceDetector("fake", "", detect))
    np.testing.assert_array_equal(face, fa.align_face(img, lm)[0])
    assert face.shape == (512, 512, 3) and seen[0] is img
    # no face found: the whole image, with a warning
    with caplog.at_level("WARNING"):
        assert fd.crop_face(img, fd.FaceDetector("fake", "", lambda rgb: None)) is img
    assert "found no face" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert fd.crop_face(img, fd.FaceDetector("fake", "", lambda rgb: np.ones((5, 2)))) is img
    assert "unusable landmarks" in caplog.text
    with pytest.raises(ValueError, match="image"):
        fd.crop_face(img[..., 0], fd.FaceDetector("fake", "", detect))


def test_no_detector_warns_with_what_to_install(inprocess_host, caplog, monkeypatch):
    fd = _pack().nodes.face_detect
    monkeypatch.setattr(fd, "_facexlib_importable", lambda: False)
    monkeypatch.setattr(fd, "find_model_file", lambda folders, accept: None)
    img, _ = _face_image()
    with caplog.at_level("WARNING"):
        assert fd.crop_face(img) is img
    msg = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(msg) == 1 and "\n" not in msg[0]
    assert "facexlib" in msg[0] and "detection_Resnet50_Final.pth" in msg[0] and "models/controlnet" in msg[0]
    assert "YuNet" in msg[0] and "models/facedetection" in msg[0]


def test_bad_yunet_file_is_reported_and_whole_image_used(inprocess_host, caplog, monkeypatch, tmp_path):
    pytest.importorskip("cv2")
    fd = _pack().nodes.face_detect
    bad = tmp_path / "face_detection_yunet_2023mar.onnx"
    bad.write_bytes(b"not an onnx model")
    monkeypatch.setattr(fd, "_facexlib_importable", lambda: False)
    monkeypatch.setattr(fd, "_folder_dirs", lambda folder: [str(tmp_path)] if folder == "facedetection" else [])
    det, why = fd.find_detector()
    assert det is None and "YuNet could not be loaded" in why and str(bad) in why
    img, _ = _face_image()
    with caplog.at_level("WARNING"):
        assert fd.crop_face(img) is img
    assert "YuNet could not be loaded" in caplog.text


def test_facexlib_detector_is_loaded_safely_from_models_controlnet(inprocess_host, monkeypatch, tmp_path):
    """With facexlib importable, RetinaFace weights are read from the controlnet folder with the safe
    loader ('module.' prefixes dropped) and the first detection's landmarks are aligned (BGR input, 0.97)."""
    import types

    fd = _pack().nodes.face_detect
    img, lm = _face_image()
    calls = {}

    class FakeRetinaFace(torch.nn.Module):
        def __init__(self, network_name, half, device=None):
            super().__init__()
            calls["init"] = (network_name, half, device)
            self.body = torch.nn.Linear(2, 2)
            self.device = "cuda"

        def detect_faces(self, bgr, threshold):
            calls["detect"] = (bgr, threshold)
            row = np.concatenate([[0, 0, 10, 10, 0.99], lm.reshape(-1)])
            return np.stack([row, row * 0 + 1])

    mods = {"facexlib": types.ModuleType("facexlib"), "facexlib.detection": types.ModuleType("facexlib.detection"),
            "facexlib.detection.retinaface": types.ModuleType("facexlib.detection.retinaface")}
    mods["facexlib.detection.retinaface"].RetinaFace = FakeRetinaFace
    for k, v in mods.items():
        monkeypatch.setitem(sys.modules, k, v)
    weights = {"module." + k: v for k, v in FakeRetinaFace("x", False).state_dict().items()}
    weights = {k: torch.full_like(v, 0.5) for k, v in weights.items()}
    torch.save(weights, tmp_path / "detection_Resnet50_Final.pth")
    monkeypatch.setattr(fd, "_facexlib_importable", lambda: True)
    monkeypatch.setattr(fd, "_folder_dirs", lambda folder: [str(tmp_path)] if folder == "controlnet" else [])
    monkeypatch.setattr(fd, "_CACHE", {})
    det, why = fd.find_detector()
    assert det is not None and det.name == "facexlib RetinaFace" and not why
    assert calls["init"][:2] == ("resnet50", False)
    face = fd.crop_face(img)
    bgr, thr = calls["detect"]
    np.testing.assert_array_equal(bgr, img[:, :, ::-1])
    assert thr == 0.97
    np.testing.assert_array_equal(face, _pack().engine.face_align.align_face(img, lm)[0])
    assert fd.find_detector()[0] is det  # cached


def test_faceswap_node_crops_unless_skipped(tiny, ip_adapter, clip_vision, monkeypatch):
    pack = _pack()
    fd, node = pack.nodes.face_detect, pack.nodes.image_prompt_nodes.FooocusImagePromptIPAdapter
    seen = []
    monkeypatch.setattr(fd, "crop_face", lambda img: (seen.append(img.shape), np.zeros((512, 512, 3), np.uint8))[1])
    model = tiny[0]
    m_face = node.execute(model, ip_adapter, clip_vision, _image(0), "FaceSwap", 0.75, 0.9).result[0]
    assert seen == [(SIZE, SIZE, 3)]
    node.execute(model, ip_adapter, clip_vision, _image(0), "FaceSwap", 0.75, 0.9, skip_preprocessor=True)
    node.execute(model, ip_adapter, clip_vision, _image(0), "ImagePrompt", 0.75, 0.9)
    assert len(seen) == 1
    # the cropped (here: black) image is what the IP-Adapter encodes
    m_black = node.execute(model, ip_adapter, clip_vision, torch.zeros(1, 8, 8, 3), "ImagePrompt", 0.75, 0.9,
                           skip_preprocessor=True).result[0]
    key = pack.nodes.image_prompt.cross_attention_keys(model)[0]
    p_face = m_face.model_options["transformer_options"]["patches_replace"]["attn2"][key].prompts[0]
    p_black = m_black.model_options["transformer_options"]["patches_replace"]["attn2"][key].prompts[0]
    torch.testing.assert_close(p_face.cond[0][0], p_black.cond[0][0])


# -- end to end through the server (Fooocus Sampler, inpaint) -------------------------------------------
IP_FILES = {"ImagePrompt": "ip-adapter-plus_sdxl_vit-h.bin", "FaceSwap": "ip-adapter-plus-face_sdxl_vit-h.bin"}
CN_FILES = {"PyraCanny": "control-lora-canny-rank128.safetensors", "CPDS": "fooocus_xl_cpds_128.safetensors"}


def _inpaint_graph(prompts: list[tuple[str, float, float]]) -> dict:
    """The default inpaint workflow (2 steps) with image prompts ``(type, weight, stop_at)`` chained in order;
    the graph names ComfyUI's CLIPVisionLoader, which ``with_tiny`` swaps for TinyCLIPVisionLoader."""
    from inpaint_support import load_api_workflow, with_tiny

    g = load_api_workflow("fooocus_inpaint_default")
    g["20"] = {"class_type": "LoadImage", "inputs": {"image": "ip_example.png"}}
    g["21"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "clip_vision_vit_h.safetensors"}}
    model, pos, neg = ["1", 0], ["3", 0], ["4", 0]
    for i, (kind, weight, stop) in enumerate(prompts):
        if kind in CN_FILES:
            g[f"3{i}"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CN_FILES[kind]}}
            g[f"4{i}"] = {"class_type": "FooocusInpaint_ImagePromptControlNet", "inputs": {
                "model": model, "positive": pos, "negative": neg, "control_net": [f"3{i}", 0], "image": ["20", 0],
                "type": kind, "weight": weight, "stop_at": stop, "width": 1024, "height": 1024, "softness": 0.25,
                "skip_preprocessor": False, "canny_low": 64, "canny_high": 128, "inpaint": ["9", 0]}}
            model, pos, neg = [f"4{i}", 0], [f"4{i}", 1], [f"4{i}", 2]
        else:
            g[f"3{i}"] = {"class_type": "FooocusInpaint_IPAdapterLoader", "inputs": {
                "ip_adapter": IP_FILES[kind], "negative": "fooocus_ip_negative.safetensors"}}
            g[f"4{i}"] = {"class_type": "FooocusInpaint_ImagePromptIPAdapter", "inputs": {
                "model": model, "ip_adapter": [f"3{i}", 0], "clip_vision": ["21", 0], "image": ["20", 0],
                "type": kind, "weight": weight, "stop_at": stop}}
            model = [f"4{i}", 0]
    g["10"]["inputs"].update(model=model, positive=pos, negative=neg)
    return with_tiny(g, FooocusInpaint_Sampler={"steps": 2})


def _upload_inputs(comfy):
    from inpaint_support import WORKFLOWS, png_bytes

    comfy.upload((WORKFLOWS / "input" / "fooocus_inpaint_example.png").read_bytes(), "fooocus_inpaint_example.png")
    comfy.upload((WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png").read_bytes(),
                 "fooocus_inpaint_example_mask.png")
    comfy.upload(png_bytes((_image(5, 96)[0].numpy() * 255).astype(np.uint8)), "ip_example.png")


def _run(comfy, prompts) -> np.ndarray:
    from inpaint_support import decode

    res = comfy.run(_inpaint_graph(prompts))
    assert res.status == "success", res.error
    assert len(res.images) == 1
    out = decode(res.images[0][2])
    assert out.ndim == 3 and out.shape[2] == 3
    return out


@needs_cv2
def test_server_inpaint_with_four_mixed_image_prompts(comfy):
    """Fooocus's 4 slots, one of each type (FaceSwap without a detector in the test host: whole image)."""
    _upload_inputs(comfy)
    _run(comfy, [("ImagePrompt", 0.6, 0.5), ("FaceSwap", 0.75, 0.9), ("PyraCanny", 1.0, 0.5), ("CPDS", 1.0, 0.5)])


def test_server_inpaint_ip_adapter_weight_and_stop_at_matter(comfy):
    """One ImagePrompt through the server; weight 0 and stop_at 0 each change the result."""
    _upload_inputs(comfy)
    on = _run(comfy, [("ImagePrompt", 1.0, 1.0)])
    assert not np.array_equal(on, _run(comfy, [("ImagePrompt", 0.0, 1.0)]))
    assert not np.array_equal(on, _run(comfy, [("ImagePrompt", 1.0, 0.0)]))
