"""Fooocus inpaint end to end through a real ComfyUI server on the tiny SDXL models. (Every shipped API
workflow is run, with the far-pixel check, by tests/host/test_workflows.py.)"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inpaint_support import (WORKFLOWS, decode, far_from_mask, load_api_workflow, png_bytes, with_tiny)

EXAMPLE_IMAGE = (WORKFLOWS / "input" / "fooocus_inpaint_example.png").read_bytes()
EXAMPLE_MASK = (WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png").read_bytes()
FAST = {"FooocusInpaint_Sampler": {"steps": 4}}


@pytest.fixture(scope="module")
def uploaded(comfy_server):
    comfy = comfy_server.client()
    comfy.upload(EXAMPLE_IMAGE, "fooocus_inpaint_example.png")
    comfy.upload(EXAMPLE_MASK, "fooocus_inpaint_example_mask.png")
    return decode(EXAMPLE_IMAGE), decode(EXAMPLE_MASK)[..., 0]


def run_ok(comfy, graph, must_execute: str | None = None):
    """Run a graph; with ``must_execute`` (a class_type), assert ComfyUI really ran that node instead of
    answering from its cache (a re-queued identical node is otherwise not executed again)."""
    res = comfy.run(graph)
    assert res.status == "success", res.error
    if must_execute:
        cached = {n for e, d in res.events if e == "execution_cached" for n in d.get("nodes", [])}
        ids = {k for k, v in graph.items() if v["class_type"] == must_execute}
        assert ids and not (ids & cached), f"{must_execute} was answered from the cache"
    return res


def test_same_seed_same_bytes_and_seed_matters(comfy, uploaded):
    graph = with_tiny(load_api_workflow("fooocus_inpaint_default"), **FAST)
    a = run_ok(comfy, graph, must_execute="FooocusInpaint_Sampler").images[0][2]
    c = run_ok(comfy, with_tiny(graph, FooocusInpaint_Sampler={"seed": 1234, "steps": 4}),
               must_execute="FooocusInpaint_Sampler").images[0][2]
    assert not np.array_equal(decode(a), decode(c))
    # the same seed again (another prompt ran in between, so the sampler really runs again)
    b = run_ok(comfy, with_tiny(graph, SaveImage={"filename_prefix": "again"}),
               must_execute="FooocusInpaint_Sampler").images[0][2]
    assert decode(a).tobytes() == decode(b).tobytes()


def test_num_images_use_consecutive_seeds(comfy, uploaded):
    graph = with_tiny(load_api_workflow("fooocus_inpaint_default"), FooocusInpaint_Sampler={"steps": 4, "num_images": 2, "seed": 10})
    two = [decode(x[2]) for x in run_ok(comfy, graph).images]
    assert len(two) == 2 and not np.array_equal(two[0], two[1])
    single = with_tiny(graph, FooocusInpaint_Sampler={"steps": 4, "num_images": 1, "seed": 11})
    assert np.array_equal(decode(run_ok(comfy, single).images[0][2]), two[1])


def txt2img(seed=3, prefix="iso"):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sdxl.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                    "latent_image": ["4", 0], "seed": seed, "steps": 3, "cfg": 4.0,
                                                    "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def test_isolation_plain_ksampler_unchanged_by_inpaint(comfy, uploaded):
    before = decode(run_ok(comfy, txt2img(prefix="iso_before"), must_execute="KSampler").images[0][2])
    run_ok(comfy, with_tiny(load_api_workflow("fooocus_inpaint_default"), FooocusInpaint_Sampler={"steps": 3, "seed": 99}),
           must_execute="FooocusInpaint_Sampler")
    after = decode(run_ok(comfy, txt2img(prefix="iso_after"), must_execute="KSampler").images[0][2])
    assert np.array_equal(before, after)


def test_interrupt_leaves_server_usable(comfy, uploaded):
    graph = with_tiny(load_api_workflow("fooocus_inpaint_default"), FooocusInpaint_Sampler={"steps": 200, "seed": 5})
    timer = threading.Timer(1.5, comfy.interrupt)
    timer.start()
    res = comfy.run(graph)
    timer.cancel()
    assert res.status == "error"
    assert any(e == "execution_interrupted" for e, _ in res.events)
    run_ok(comfy, txt2img(prefix="after_interrupt"))
