"""The Fooocus generation stack end to end through a real ComfyUI server (HTTP API, tiny models).

Inpaint graphs are made of the pack's nodes only::

    CheckpointLoaderSimple (tiny SDXL) -> Fooocus LoRA Stack -> Fooocus Performance (steps_override 4)
        -> Fooocus Prompt (clip of Performance) -> [Fooocus Refiner] -> Fooocus Sampler (steps, cfg, sampler,
        scheduler from Performance; Fooocus Inpaint Patch Loader; Inpaint Conditioning) -> SaveImage
    (or Fooocus Sampler (SD1.5 refiner) with the tiny SD1.5 checkpoint and the XL->v1 interposer)

plus ``PreviewAny`` nodes on Performance's steps / cfg / sampler_name / scheduler outputs, so that the
values the preset forces are read back from ``/history``.

Runs (each inpaint run costs ~10 s of CPU: the working size is ~1024² and the VAE dominates), shared between
tests through a module-level memo so that each graph runs once:

- Speed, 0 LoRAs (also the "without refiner" reference); Speed, 1 LoRA; Quality, 5 LoRAs, num_images 3
  (also the Quality preset run; Quality and Speed differ only in their step count, overridden to 4 here, which
  ``test_lora_presets_equal_their_lora_and_forced_settings`` shows bit-exactly); the same request again; Quality,
  5 LoRAs, num_images 1 at seed + 2; Extreme Speed; Lightning; Hyper-SD; Speed + SDXL refiner; Speed + SD1.5 refiner.

Where the inpaint crop does not matter, cheaper 64x64 text-to-image graphs (Fooocus nodes + KSampler) are used:
that each LoRA preset is exactly "its LoRA at its weight + its forced settings" (and differs without the LoRA;
the forced ADM 1/1/0 shows there; sharpness and adaptive cfg cannot act at the forced cfg 1, the in-process
tests check their values),
that Quality equals Speed at the same steps, the presets' own step counts (no override), and that a LoRA for
another model is skipped and reported in the server log. A null seed is covered through the headless CLI
(the only place it exists: ``engine.request.resolve_seed`` in ``headless/cli.py``; graphs take an int).

One in-process regression test covers the SD1.5-refiner sampler's per-image prompt (image_index, ControlNets).

A stock graph (CheckpointLoaderSimple + CLIPTextEncode + KSampler + VAEDecode + SaveImage, 64x64, 2 steps) runs
before the first test and after every test; the last test checks that all of its outputs are bit-identical.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.api_graph import Graph
from inpaint_support import TINY_CKPT, WORKFLOWS, decode, far_from_mask, node_defaults

REPO = Path(__file__).resolve().parents[2]
IMAGE = (WORKFLOWS / "input" / "fooocus_inpaint_example.png").read_bytes()
MASK = (WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png").read_bytes()
IMAGE_NAME, MASK_NAME = "gen_e2e_image.png", "gen_e2e_mask.png"
SEED = 4242
STEPS = 4
TIMEOUT = 900
PROMPT = "a cozy wooden cabin, detailed"
NEGATIVE = "blurry"
FIVE_LORAS = [("tiny_style_lora.safetensors", 0.6), ("sd_xl_offset_example-lora_1.0.safetensors", 0.5),
              ("sdxl_lcm_lora.safetensors", -0.4), ("sdxl_lightning_4step_lora.safetensors", 0.3),
              ("sdxl_hyper_sd_4step_lora.safetensors", 0.7)]   # five distinct tiny LoRAs
ONE_LORA = [("tiny_style_lora.safetensors", 0.8)]
# user settings given to the LoRA presets, which must be overridden by the forced ones
JUNK_USER = {"cfg": 7.0, "sampler_name": "euler_ancestral", "scheduler": "normal", "sharpness": 30.0,
             "adaptive_cfg": 3.0, "adm_positive": 2.0, "adm_negative": 0.5, "adm_end": 0.9}
# preset -> (steps, cfg, sampler, scheduler) reported with steps_override 4 and JUNK_USER (LoRA presets) /
# the Fooocus defaults (Speed, Quality)
REPORTED = {"Speed": (STEPS, 4.0, "dpmpp_2m_sde_gpu", "karras"),
            "Quality": (STEPS, 4.0, "dpmpp_2m_sde_gpu", "karras"),
            "Extreme Speed": (STEPS, 1.0, "lcm", "sgm_uniform"),
            "Lightning": (STEPS, 1.0, "euler", "sgm_uniform"),
            "Hyper-SD": (STEPS, 1.0, "dpmpp_sde_gpu", "karras")}
PRESET_STEPS = {"Speed": 30, "Quality": 60, "Extreme Speed": 8, "Lightning": 4, "Hyper-SD": 4}
# preset -> (its LoRA file, weight, forced settings as Performance inputs)
FORCED = {"sharpness": 0.0, "adaptive_cfg": 1.0, "adm_positive": 1.0, "adm_negative": 1.0, "adm_end": 0.0, "cfg": 1.0}
LORA_PRESETS = {
    "Extreme Speed": ("sdxl_lcm_lora.safetensors", 1.0, {**FORCED, "sampler_name": "lcm", "scheduler": "sgm_uniform"}),
    "Lightning": ("sdxl_lightning_4step_lora.safetensors", 1.0,
                  {**FORCED, "sampler_name": "euler", "scheduler": "sgm_uniform"}),
    "Hyper-SD": ("sdxl_hyper_sd_4step_lora.safetensors", 0.8,
                 {**FORCED, "sampler_name": "dpmpp_sde_gpu", "scheduler": "karras"}),
}


# ------------------------------------------------------------------------------------------------ helpers
class Server:
    """The session server's client, the node infos, and a memo of the inpaint runs of this module."""

    def __init__(self, comfy_server):
        self.server = comfy_server
        self.comfy = comfy_server.client()
        self._info: dict = {}
        self.runs: dict = {}

    def inputs(self, class_type: str, **given) -> dict:
        if class_type not in self._info:
            self._info[class_type] = self.comfy.object_info(class_type)[class_type]["input"]
        return node_defaults(self._info[class_type], **given)

    def add(self, g: Graph, class_type: str, **given):
        return g.add(class_type, **self.inputs(class_type, **given))

    def run(self, api: dict, must_execute: tuple[str, ...] = ()):
        res = self.comfy.run(api, timeout=TIMEOUT)
        assert res.status == "success", res.error
        cached = {n for e, d in res.events if e == "execution_cached" for n in d.get("nodes", [])}
        for class_type in must_execute:
            ids = {k for k, v in api.items() if v["class_type"] == class_type}
            assert ids and not (ids & cached), f"{class_type} was answered from the cache"
        return res


def _images(res, node_id: str) -> list[np.ndarray]:
    return [decode(data) for nid, _, data in res.images if nid == node_id]


def _text(res, node_id: str) -> str:
    (value,) = res.history["outputs"][node_id]["text"]
    return value


def _stack(srv: Server, g: Graph, ckpt, loras) -> object:
    slots = {}
    for i in range(1, 6):
        name, weight = loras[i - 1] if i <= len(loras) else ("None", 1.0)
        slots[f"lora_{i}"], slots[f"weight_{i}"] = name, weight
    return srv.add(g, "FooocusInpaint_LoraStack", model=ckpt.out(0), clip=ckpt.out(1), **slots)


def _performance(srv: Server, g: Graph, model: list, clip: list, preset: str, steps: int = STEPS, **user):
    return srv.add(g, "FooocusInpaint_Performance", model=model, clip=clip, performance=preset, steps_override=steps,
                   **user)


def _report(srv: Server, g: Graph, perf) -> dict:
    """PreviewAny on Performance's steps / cfg / sampler / scheduler outputs: {what: node id}."""
    return {what: g.add("PreviewAny", source=perf.out(slot)).node_id
            for what, slot in (("steps", 2), ("cfg", 3), ("sampler", 4), ("scheduler", 5))}


def inpaint_graph(srv: Server, *, preset="Speed", loras=(), seed=SEED, num_images=1, refiner=None, prefix="gen_e2e",
                  user=None):
    """The inpaint graph described in the module docstring. Returns (api, save id, report ids, sampler id)."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=TINY_CKPT)
    stack = _stack(srv, g, ckpt, list(loras))
    perf = _performance(srv, g, stack.out(0), stack.out(1), preset, **dict(user or {}))
    prompt = srv.add(g, "FooocusInpaint_Prompt", clip=perf.out(1), prompt=PROMPT, negative_prompt=NEGATIVE, styles="")
    loader = g.add("FooocusInpaint_Loader", head="fooocus_inpaint_head.pth", patch="inpaint_v26.fooocus.patch")
    image = g.add("LoadImage", image=IMAGE_NAME)
    mask = g.add("LoadImageMask", image=MASK_NAME, channel="red")
    cond = srv.add(g, "FooocusInpaint_InpaintConditioning", image=image.out(0), mask=mask.out(0), vae=ckpt.out(2))
    common = dict(vae=ckpt.out(2), inpaint=cond.out(0), seed=seed, steps=perf.out(2), cfg=perf.out(3),
                  sampler_name=perf.out(4), scheduler=perf.out(5), inpaint_patch=loader.out(0), prompt=prompt.out(0),
                  num_images=num_images)
    if refiner == "sd15":
        sd15 = g.add("CheckpointLoaderSimple", ckpt_name="tiny_sd15.safetensors")
        sampler = srv.add(g, "FooocusInpaint_SamplerSD15Refiner", model=perf.out(0), clip=perf.out(1),
                          refiner=sd15.out(0), refiner_vae=sd15.out(2), refiner_switch=0.5,
                          interposer="xl-to-v1_interposer-v4.0.safetensors", **common)
    else:
        model = perf.out(0)
        if refiner == "sdxl":
            ref = g.add("CheckpointLoaderSimple", ckpt_name="tiny_sdxl_refiner.safetensors")
            model = g.add("FooocusInpaint_Refiner", model=perf.out(0), refiner=ref.out(0), refiner_switch=0.5).out(0)
        sampler = srv.add(g, "FooocusInpaint_Sampler", model=model, **common)
    save = g.add("SaveImage", images=sampler.out(0), filename_prefix=prefix)
    report = _report(srv, g, perf)
    return g.api(), save.node_id, report, sampler.node_id


SPECS = {
    "speed": dict(preset="Speed"),
    "speed_1lora": dict(preset="Speed", loras=ONE_LORA),
    "quality_5loras_x3": dict(preset="Quality", loras=FIVE_LORAS, num_images=3),
    "quality_5loras_seed+2": dict(preset="Quality", loras=FIVE_LORAS, seed=SEED + 2),
    "extreme_speed": dict(preset="Extreme Speed", user=JUNK_USER),
    "lightning": dict(preset="Lightning", user=JUNK_USER),
    "hyper_sd": dict(preset="Hyper-SD", user=JUNK_USER),
    "speed_sdxl_refiner": dict(preset="Speed", refiner="sdxl"),
    "speed_sd15_refiner": dict(preset="Speed", refiner="sd15"),
}


def inpaint_run(srv: Server, name: str) -> dict:
    """Run SPECS[name] once per module; {"images", "report", "progress", "res", "api"}."""
    if name not in srv.runs:
        api, save, report, sampler = inpaint_graph(srv, prefix=f"gen_e2e_{name}", **SPECS[name])
        res = srv.run(api)
        srv.runs[name] = {"images": _images(res, save), "report": {k: _text(res, v) for k, v in report.items()},
                          "progress": [p for p in res.progress()], "res": res, "api": api, "sampler": sampler}
    return srv.runs[name]


def plain_graph(prefix: str) -> dict:
    """Stock nodes only: 64x64, 2 steps."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_CKPT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                    "latent_image": ["4", 0], "seed": 5, "steps": 2, "cfg": 4.0,
                                                    "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def run_plain(srv: Server) -> np.ndarray:
    """The plain graph's image; its KSampler really runs (when the previous prompt was this same graph, another
    graph runs first so that ComfyUI's cache drops it)."""
    res = srv.run(plain_graph("gen_e2e_plain"))
    cached = {n for e, d in res.events if e == "execution_cached" for n in d.get("nodes", [])}
    if "5" in cached:
        srv.run({"1": {"class_type": "LoadImage", "inputs": {"image": MASK_NAME}},
                 "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})
        res = srv.run(plain_graph("gen_e2e_plain"), must_execute=("KSampler",))
    (img,) = _images(res, "7")
    return img


def check_inpaint_output(out: np.ndarray, image: np.ndarray, mask: np.ndarray) -> None:
    assert out.shape == image.shape
    far = far_from_mask(mask)
    assert far.any()
    assert np.array_equal(out[far], image[far]), "pixels > 32 px from the repaint area changed"
    assert not np.array_equal(out[~far], image[~far]), "nothing was repainted"


def differ(a: np.ndarray, b: np.ndarray) -> bool:
    assert a.shape == b.shape
    return not np.array_equal(a, b)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def srv(comfy_server):
    s = Server(comfy_server)
    s.comfy.upload(IMAGE, IMAGE_NAME)
    s.comfy.upload(MASK, MASK_NAME)
    return s


@pytest.fixture(scope="module")
def source():
    return decode(IMAGE), decode(MASK)[..., 0]


@pytest.fixture(scope="module")
def baseline(srv):
    """The plain graph's output before any test of this module ran, and the list of later outputs."""
    return {"before": run_plain(srv), "after": []}


@pytest.fixture(autouse=True)
def _plain_after_each_test(request, srv, baseline):
    yield
    if request.node.name != "test_plain_graph_unaffected_after_every_run":
        baseline["after"].append((request.node.name, run_plain(srv)))


# ------------------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("preset,name", [("Speed", "speed"), ("Quality", "quality_5loras_x3"),
                                         ("Extreme Speed", "extreme_speed"), ("Lightning", "lightning"),
                                         ("Hyper-SD", "hyper_sd")])
def test_preset_inpaint_run(srv, source, preset, name):
    """One inpaint run per preset (steps_override 4): the forced cfg / sampler / scheduler are what Performance
    reports and what the sampler ran (4 progress steps), far pixels are kept, and the LoRA presets differ from
    Speed and from each other."""
    image, mask = source
    run = inpaint_run(srv, name)
    steps, cfg, sampler, scheduler = REPORTED[preset]
    assert run["report"] == {"steps": str(steps), "cfg": str(cfg), "sampler": sampler, "scheduler": scheduler}
    assert run["progress"][-1] == (steps, steps)
    for out in run["images"]:
        check_inpaint_output(out, image, mask)
    if preset in LORA_PRESETS:
        assert differ(run["images"][0], inpaint_run(srv, "speed")["images"][0])
        others = [n for p, n in (("Extreme Speed", "extreme_speed"), ("Lightning", "lightning"),
                                 ("Hyper-SD", "hyper_sd")) if p != preset]
        for other in others:
            if other in srv.runs:
                assert differ(run["images"][0], srv.runs[other]["images"][0])


def _txt2img_branch(srv: Server, g: Graph, ckpt, *, loras=(), preset="Speed", lcm_sampling=False, seed=SEED,
                    prefix="gen_e2e_t2i", **user):
    """[LoRA Stack] -> [ModelSamplingDiscrete lcm] -> Performance -> Fooocus Prompt (+ Encode) -> KSampler 64x64
    -> VAEDecode -> SaveImage. Returns the SaveImage id."""
    stack = _stack(srv, g, ckpt, list(loras))
    model = stack.out(0)
    if lcm_sampling:
        model = g.add("ModelSamplingDiscrete", model=model, sampling="lcm", zsnr=False).out(0)
    perf = _performance(srv, g, model, stack.out(1), preset, steps=3, **user)
    prompt = srv.add(g, "FooocusInpaint_Prompt", clip=perf.out(1), prompt=PROMPT, negative_prompt=NEGATIVE, styles="")
    enc = srv.add(g, "FooocusInpaint_PromptEncode", prompt=prompt.out(0), seed=seed)
    latent = g.add("EmptyLatentImage", width=64, height=64, batch_size=1)
    ks = g.add("KSampler", model=perf.out(0), positive=enc.out(0), negative=enc.out(1), latent_image=latent.out(0),
               seed=seed, steps=perf.out(2), cfg=perf.out(3), sampler_name=perf.out(4), scheduler=perf.out(5),
               denoise=1.0)
    dec = g.add("VAEDecode", samples=ks.out(0), vae=ckpt.out(2))
    return g.add("SaveImage", images=dec.out(0), filename_prefix=prefix).node_id


def test_lora_presets_equal_their_lora_and_forced_settings(srv):
    """Text-to-image 64x64 (the inpaint crop plays no part in which LoRA and settings a preset applies): each
    LoRA preset given junk user settings == Speed with the preset's forced settings and its LoRA (at its weight,
    plus LCM model sampling for Extreme Speed) in the LoRA Stack, bit-exactly; without the LoRA it differs.
    Quality == Speed at the same steps."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=TINY_CKPT)
    saves = {}
    for preset, (lora, weight, forced) in LORA_PRESETS.items():
        lcm = preset == "Extreme Speed"
        saves[preset] = _txt2img_branch(srv, g, ckpt, preset=preset, **JUNK_USER)
        saves[preset + " as Speed"] = _txt2img_branch(srv, g, ckpt, loras=[(lora, weight)], lcm_sampling=lcm, **forced)
        saves[preset + " without LoRA"] = _txt2img_branch(srv, g, ckpt, lcm_sampling=lcm, **forced)
    saves["Speed"] = _txt2img_branch(srv, g, ckpt, preset="Speed")
    saves["Quality"] = _txt2img_branch(srv, g, ckpt, preset="Quality")
    res = srv.run(g.api())
    out = {k: _images(res, v) for k, v in saves.items()}
    assert all(len(v) == 1 and v[0].shape == (64, 64, 3) for v in out.values())
    out = {k: v[0] for k, v in out.items()}
    for preset in LORA_PRESETS:
        assert np.array_equal(out[preset], out[preset + " as Speed"]), preset
        assert differ(out[preset], out[preset + " without LoRA"]), preset
    assert np.array_equal(out["Speed"], out["Quality"])
    distinct = ["Speed", *LORA_PRESETS, *(p + " without LoRA" for p in LORA_PRESETS)]
    assert len({out[k].tobytes() for k in distinct}) == len(distinct)


def test_preset_step_counts_reported_without_override(srv):
    """Performance's outputs for every preset with steps_override 0 (only the Performance nodes run)."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=TINY_CKPT)
    reports = {}
    for preset in PRESET_STEPS:
        perf = srv.add(g, "FooocusInpaint_Performance", model=ckpt.out(0), clip=ckpt.out(1), performance=preset,
                       steps_override=0, **(JUNK_USER if preset in LORA_PRESETS else {}))
        reports[preset] = _report(srv, g, perf)
    res = srv.run(g.api())
    for preset, ids in reports.items():
        got = {k: _text(res, v) for k, v in ids.items()}
        _, cfg, sampler, scheduler = REPORTED[preset]
        assert got == {"steps": str(PRESET_STEPS[preset]), "cfg": str(cfg), "sampler": sampler,
                       "scheduler": scheduler}, preset


# ------------------------------------------------------------------------------------------------ LoRAs
def test_zero_one_five_loras_differ(srv, source):
    """0, 1 and 5 LoRAs through the inpaint pipeline: three different results (Speed / Speed / Quality at the
    same 4 steps, which behave the same: see the text-to-image test)."""
    image, mask = source
    zero = inpaint_run(srv, "speed")["images"][0]
    one = inpaint_run(srv, "speed_1lora")["images"][0]
    five = inpaint_run(srv, "quality_5loras_x3")["images"][0]
    for out in (one, five):
        check_inpaint_output(out, image, mask)
    assert differ(zero, one) and differ(zero, five) and differ(one, five)


def _write_mismatched_lora(srv: Server, name: str) -> None:
    """tiny_style_lora plus 13 keys no model has (Fooocus's limit is 12) in the server's loras folder."""
    import torch
    from safetensors.torch import load_file, save_file

    folder = srv.server.base_dir / "models" / "loras"
    sd = load_file(str((folder / "tiny_style_lora.safetensors").resolve()))
    for i in range(13):
        sd[f"lora_unet_not_a_layer_{i}.lora_down.weight"] = torch.zeros(2, 2, dtype=torch.float16)
    save_file(sd, str(folder / name))


def test_lora_for_another_model_is_skipped_and_reported(srv):
    """Text-to-image 64x64: a LoRA whose keys mostly match nothing is skipped (the image equals the no-LoRA one)
    and the server log names it; a good LoRA in the next slot still applies."""
    name = "gen_e2e_mismatched_lora.safetensors"
    _write_mismatched_lora(srv, name)
    try:
        log_before = srv.server.log_path.read_text(errors="replace")
        g = Graph()
        ckpt = g.add("CheckpointLoaderSimple", ckpt_name=TINY_CKPT)
        none = _txt2img_branch(srv, g, ckpt)
        bad = _txt2img_branch(srv, g, ckpt, loras=[(name, 1.0)])
        good = _txt2img_branch(srv, g, ckpt, loras=ONE_LORA)
        bad_then_good = _txt2img_branch(srv, g, ckpt, loras=[(name, 1.0)] + ONE_LORA)
        res = srv.run(g.api())
    finally:  # later modules share the server: leave its loras folder as it was
        (srv.server.base_dir / "models" / "loras" / name).unlink(missing_ok=True)
    (a,), (b,), (c,), (d,) = (_images(res, n) for n in (none, bad, good, bad_then_good))
    assert np.array_equal(a, b)
    assert differ(a, c) and np.array_equal(c, d)
    log = srv.server.log_path.read_text(errors="replace")[len(log_before):]
    lines = [line for line in log.splitlines() if name in line and "skipped" in line]
    assert lines, log[-3000:]
    assert "Fooocus LoRA Stack (slot 1)" in lines[0] and "13 of its" in lines[0]


# ------------------------------------------------------------------------------------------------ num_images
def test_num_images_3_distinct_reproducible_and_seed_plus_i(srv, source, baseline):
    """num_images 3: three distinct images; the same request again (after another graph, so the sampler really
    runs again) gives the same bytes; image i is the num_images 1 run at seed + i (Fooocus Sampler: image i uses
    seed + i for its noise and its prompt)."""
    image, mask = source
    first = inpaint_run(srv, "quality_5loras_x3")
    imgs = first["images"]
    assert len(imgs) == 3
    assert len({x.tobytes() for x in imgs}) == 3
    for out in imgs:
        check_inpaint_output(out, image, mask)
    baseline["after"].append(("the first num_images 3 run", run_plain(srv)))  # evicts the sampler from the cache
    api = json.loads(json.dumps(first["api"]))
    res = srv.run(api, must_execute=("FooocusInpaint_Sampler",))
    save = next(k for k, v in api.items() if v["class_type"] == "SaveImage")
    again = _images(res, save)
    assert [x.tobytes() for x in again] == [x.tobytes() for x in imgs]
    single = inpaint_run(srv, "quality_5loras_seed+2")["images"]
    assert len(single) == 1 and np.array_equal(single[0], imgs[2])


# ------------------------------------------------------------------------------------------------ refiners
def test_sdxl_refiner_changes_the_result(srv, source):
    """Fooocus Refiner (tiny SDXL refiner checkpoint, switch 0.5 of 4 steps) vs the same run without it."""
    image, mask = source
    with_ref = inpaint_run(srv, "speed_sdxl_refiner")
    (out,) = with_ref["images"]
    check_inpaint_output(out, image, mask)
    assert differ(out, inpaint_run(srv, "speed")["images"][0])
    assert with_ref["progress"][-1] == (STEPS, STEPS)


def test_sd15_refiner_changes_the_result(srv, source):
    """Fooocus Sampler (SD1.5 refiner): tiny SDXL base for 2 of 4 steps, the interposer, tiny SD1.5 for the rest,
    decoded by the SD1.5 VAE; vs the same run without a refiner and vs the SDXL refiner."""
    image, mask = source
    (out,) = inpaint_run(srv, "speed_sd15_refiner")["images"]
    check_inpaint_output(out, image, mask)
    assert differ(out, inpaint_run(srv, "speed")["images"][0])
    assert differ(out, inpaint_run(srv, "speed_sdxl_refiner")["images"][0])


def test_sd15_refiner_node_per_image_prompt_index_and_controlnets(inprocess_host, monkeypatch):
    """Regression (in-process, 8x8 latents; the wiring only, the maths is tested elsewhere): with a Fooocus prompt
    the SD1.5-refiner sampler encodes image i with (seed + i, image_index i), as Fooocus Sampler does, and applies
    the image-prompt ControlNets recorded on the base model to those fresh conds (it used to drop both)."""
    import types

    import nodes as comfy_nodes
    import torch

    pack = next(m for n, m in sys.modules.items() if n.endswith("comfyui-fooocus-inpaint") and hasattr(m, "comfy_entrypoint"))
    mod = pack.nodes.refiner_nodes
    import tiny_sd15_ext  # noqa: F401  (the tiny SD1.5 config)

    model, clip, vae = comfy_nodes.CheckpointLoaderSimple().load_checkpoint(TINY_CKPT)[:3]
    sd15 = comfy_nodes.CheckpointLoaderSimple().load_checkpoint("tiny_sd15.safetensors")[:3]
    pos = comfy_nodes.CLIPTextEncode().encode(clip, "a house")[0]
    neg = comfy_nodes.CLIPTextEncode().encode(clip, "")[0]
    calls, reapplied = [], []

    class Prompt:
        def conditioning(self, seed, image_index=0):
            calls.append((seed, image_index))
            return pos, neg

    def spy(m, p, n):
        reapplied.append(m)
        return p, n

    monkeypatch.setattr(mod, "reapply_controlnets", spy)
    monkeypatch.setattr(mod.inpaint_prep, "finish_inpaint", lambda prep, dec: dec)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1.0
    lat = torch.zeros(1, 4, 8, 8)
    data = pack.nodes.types.FooocusInpaintData(
        prep=types.SimpleNamespace(interested_fill=np.zeros((64, 64, 3), np.uint8)), active=True, latent_fill=lat,
        latent_inpaint=lat, latent_mask=mask, strength=0.9)
    out = mod.FooocusSamplerSD15Refiner.execute(
        model=model, clip=clip, vae=vae, refiner=sd15[0], refiner_vae=sd15[2], inpaint=data, seed=10, steps=2,
        cfg=4.0, sampler_name="euler", scheduler="karras", prompt=Prompt(), refiner_switch=1.0, num_images=3).result
    assert out[0].shape == (3, 64, 64, 3)
    assert calls == [(10, 0), (11, 1), (12, 2)]
    assert reapplied == [model] * 3


# ------------------------------------------------------------------------------------------------ null seed
def _cli(server_url: str, request: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", REPO.name, "run", str(request), "--server", server_url,
           "--model", f"checkpoint={TINY_CKPT}", *args]
    return subprocess.run(cmd, cwd=REPO.parent, env=env, capture_output=True, text=True, timeout=600)


def test_null_seed_is_drawn_reported_and_reproduces(srv, tmp_path):
    """fal's ``seed: null`` (the headless client draws it: engine.request.resolve_seed): the drawn seed is
    logged and returned with --include-seed, and sending that seed back gives the same image (the graph got it).
    Text-to-image request (no mask) at 64x64, Extreme Speed, no styles: the cheapest real fal graph."""
    body = {"inpaint_image_url": "data:image/png;base64," + base64.b64encode(IMAGE).decode(), "prompt": "a red barn",
            "styles": [], "aspect_ratio": "64x64", "output_format": "png", "enable_safety_checker": False,
            "seed": None}
    req = tmp_path / "null.json"
    req.write_text(json.dumps(body))
    r = _cli(srv.server.url, req, "--include-seed", "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    resp = json.loads((tmp_path / "a" / "response.json").read_text())
    seed = resp["seed"]
    assert isinstance(seed, int) and 0 <= seed <= 2**63 - 1
    assert f"seed {seed} (drawn at random)" in r.stderr
    (tmp_path / "fixed.json").write_text(json.dumps({**body, "seed": seed}))
    r2 = _cli(srv.server.url, tmp_path / "fixed.json", "--out", tmp_path / "b")
    assert r2.returncode == 0, r2.stderr
    assert "drawn at random" not in r2.stderr
    resp2 = json.loads((tmp_path / "b" / "response.json").read_text())
    (a,), (b,) = resp["images"], resp2["images"]
    img_a = decode((tmp_path / "a" / a["file_name"]).read_bytes())
    img_b = decode((tmp_path / "b" / b["file_name"]).read_bytes())
    assert img_a.shape == (64, 64, 3) and np.array_equal(img_a, img_b)


# ------------------------------------------------------------------------------------------------ isolation
def test_plain_graph_unaffected_after_every_run(srv, baseline):
    """The stock graph ran before this module's first test and after each test (and between the two identical
    num_images requests): bit-identical every time."""
    after = baseline["after"]
    assert after, "run the whole module: no test ran before this one"
    for label, img in after:
        assert img.tobytes() == baseline["before"].tobytes(), f"the plain graph changed after {label}"
