"""The fal drop-in (nodes/fal_dropin.py) driven by fal's own JS client, @fal-ai/client, against a real ComfyUI.

The client is configured with the documented one-line switch (``proxyUrl`` with ``when: "always"``) and runs
tests/fal_client/dropin.mjs: storage upload, fal.subscribe with logs and queue updates, queue submit / status /
result, cancel (queued and running), fal.run with sync_mode, and bad requests (unknown endpoint, invalid and
unsupported fields, broken image, oversized body, wrong or missing key). The client is installed with npm into
``<host dir>/npm`` (reused afterwards); the test skips when node/npm are missing or the registry is unreachable.
The server gets its settings the two documented ways: the key from ``<user dir>/fooocus_inpaint_fal.json`` and
the tiny model names from ``FOOOCUS_FAL_MODELS``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from engine import fal_graph as fg
from engine.request import parse_request
from inpaint_support import TINY_CKPT, WORKFLOWS, decode

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "fal_client", "dropin.mjs")
CLIENT_SPEC = "@fal-ai/client@1"
KEY = "local-test-key-123"
PREFIX = "/fooocus_inpaint/fal"
IMAGE = WORKFLOWS / "input" / "fooocus_inpaint_example.png"
MASK = WORKFLOWS / "input" / "fooocus_inpaint_example_mask.png"


def _fal_client_dir() -> str:
    """``<host>/npm`` with @fal-ai/client installed (npm install once, reused)."""
    import comfy_host

    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not found on PATH: the fal JS client test needs Node.js >= 18")
    folder = comfy_host.HOST / "npm"
    if (folder / "node_modules" / "@fal-ai" / "client" / "package.json").is_file():
        return str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--loglevel=error",
                               CLIENT_SPEC], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm install {CLIENT_SPEC} timed out (registry unreachable?)")
    if proc.returncode != 0:
        pytest.skip(f"npm install {CLIENT_SPEC} failed (registry unreachable?): {proc.stderr.strip()[-500:]}")
    return str(folder)


@pytest.fixture(scope="module")
def dropin_server(tiny_models_dir, tmp_path_factory):
    """A ComfyUI server of its own: key in the user-dir config file, tiny model names via FOOOCUS_FAL_MODELS."""
    import comfy_host

    tmp = tmp_path_factory.mktemp("fal_dropin")
    base = comfy_host.make_base_dir(tmp / "base", [tiny_models_dir], comfy_host.TINY_EXTS)
    (base / "user" / "fooocus_inpaint_fal.json").write_text(json.dumps({"key": KEY}))
    models = tmp / "models.json"
    models.write_text(json.dumps({"checkpoint": TINY_CKPT}))
    server = comfy_host.ComfyServer(base)
    with pytest.MonkeyPatch.context() as mp:   # ComfyServer passes os.environ to the subprocess
        mp.setenv("FOOOCUS_FAL_MODELS", str(models))
        mp.delenv("FOOOCUS_FAL_KEY", raising=False)
        server.start()
    yield server
    server.stop()


def _raw(server, method: str, target: str | None, body: bytes | None = None, key: str | None = KEY,
         path: str = PREFIX) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if target:
        headers["x-fal-target-url"] = target
    if key:
        headers["Authorization"] = f"Key {key}"
    req = urllib.request.Request(server.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_raw_protocol_errors(dropin_server):
    """Plain HTTP, no client: errors come in fal's shape and nothing is forwarded anywhere."""
    q = "https://queue.fal.run/fal-ai/fooocus/inpaint"
    status, body = _raw(dropin_server, "POST", None, b"{}")
    assert status == 400 and "x-fal-target-url" in body["detail"]
    status, body = _raw(dropin_server, "POST", "https://api.openai.com/v1/chat", b"{}")
    assert status == 404 and "not served" in body["detail"]
    status, body = _raw(dropin_server, "GET", q)
    assert status == 405 and isinstance(body["detail"], str)
    status, body = _raw(dropin_server, "POST", q, b"{not json")
    assert status == 422 and body["detail"][0]["type"] == "json_invalid"
    status, body = _raw(dropin_server, "POST", q, b"{}", key=None)
    assert status == 401 and "Key" in body["detail"]
    status, body = _raw(dropin_server, "POST", "https://rest.fal.ai/storage/upload/initiate-multipart", b"{}")
    assert status == 404
    status, body = _raw(dropin_server, "GET", None, path=PREFIX + "/files/nothing_here.png")
    assert status == 404
    status, body = _raw(dropin_server, "PUT", None, b"abc", path=PREFIX + "/storage/put/" + "0" * 32)
    assert status == 404 and "upload" in body["detail"]



def test_missing_model_file_is_named_with_its_folder_and_the_download_command(dropin_server):
    """A request whose graph needs a model file the server does not have (here fal's SD1.5 refiner, which the
    tiny-model config does not map) is refused before anything is queued, naming the file, the ComfyUI models
    folder it belongs in and the pack's download command."""
    import base64
    import io

    from PIL import Image

    def data_uri(img: Image.Image) -> str:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    req = {"inpaint_image_url": data_uri(Image.new("RGB", (64, 64), (90, 120, 150))),
           "mask_image_url": data_uri(mask.convert("RGB")), "styles": [], "performance": "Speed",
           "refiner_model": "realisticVisionV60B1_v51VAE.safetensors"}
    before = dropin_server.client().get_json("/queue")
    status, body = _raw(dropin_server, "POST", "https://queue.fal.run/fal-ai/fooocus/inpaint",
                        json.dumps(req).encode())
    assert status == 500, body
    detail = body["detail"]
    assert "realisticVisionV60B1_v51VAE.safetensors" in detail and "ComfyUI/models/checkpoints/" in detail
    assert "download --only realisticVisionV60B1_v51VAE.safetensors" in detail
    assert dropin_server.client().get_json("/queue") == before, "something was queued"


def test_fal_js_client_against_dropin(dropin_server, tmp_path):
    client_dir = _fal_client_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAL_")}
    env.update(FAL_CLIENT_DIR=client_dir, PROXY_URL=dropin_server.url + PREFIX, FAL_LOCAL_KEY=KEY,
               IMAGE_PATH=str(IMAGE), MASK_PATH=str(MASK))
    t0 = time.monotonic()
    proc = subprocess.run([shutil.which("node"), SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, f"node failed:\n{proc.stderr[-4000:]}\nserver log:\n{dropin_server.log_tail()}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    (tmp_path / "dropin_out.json").write_text(json.dumps(out, indent=1))   # kept by pytest for inspection
    base = dropin_server.url

    # storage upload: file_url on this server, public, same bytes
    assert out["upload"]["url"].startswith(base + PREFIX + "/files/") and out["upload"]["status"] == 200
    assert out["upload"]["same"] is True

    # submit answer in fal's shape; urls point at fal's queue host (the client sends them back through the proxy)
    a = out["submitA"]
    rid = a["request_id"]
    assert a["status"] == "IN_QUEUE" and a["queue_position"] == 0
    assert a["status_url"] == f"https://queue.fal.run/fal-ai/fooocus/requests/{rid}/status"
    assert a["response_url"] == f"https://queue.fal.run/fal-ai/fooocus/requests/{rid}"
    assert a["cancel_url"] == f"https://queue.fal.run/fal-ai/fooocus/requests/{rid}/cancel"

    # fal.subscribe of the inpaint request B: updates IN_QUEUE (behind A) -> IN_PROGRESS -> COMPLETED, with logs
    sub = out["subscribe"]
    states = [u["status"] for u in sub["updates"]]
    order = {"IN_QUEUE": 0, "IN_PROGRESS": 1, "COMPLETED": 2}
    assert states[0] == "IN_QUEUE" and "IN_PROGRESS" in states and states[-1] == "COMPLETED", states
    assert [order[s] for s in states] == sorted(order[s] for s in states), states
    assert any(u["queue_position"] is not None and u["queue_position"] >= 0 for u in sub["updates"]
               if u["status"] == "IN_QUEUE")
    progress_logs = [u["lastLog"] for u in sub["updates"] if u["status"] == "IN_PROGRESS" and u["lastLog"]]
    assert progress_logs, sub["updates"]
    assert any("step" in (u["lastLog"] or "") for u in sub["updates"]) or sub["updates"][-1]["nlogs"] > 3
    data = sub["data"]
    assert set(data) == {"images", "timings", "has_nsfw_concepts"}
    assert data["has_nsfw_concepts"] == [False]
    (img,) = data["images"]
    src = decode(IMAGE.read_bytes())
    assert set(img) == {"url", "content_type", "file_name", "file_size", "width", "height"}
    assert (img["width"], img["height"], img["content_type"]) == (src.shape[1], src.shape[0], "image/png")
    assert img["url"].startswith(base + "/view?")
    assert sub["download"] == {"status": 200, "size": img["file_size"], "contentType": "image/png"}
    assert sub["requestId"] and set(data["timings"]) >= {"inference"}

    # queue.status / result of A
    assert out["statusA"]["status"] == "COMPLETED" and out["statusA"]["request_id"] == rid
    assert out["statusA"]["metrics"]["inference_time"] > 0
    assert any("step 4/4" in log["message"] for log in out["statusA"]["logs"]), out["statusA"]["logs"]
    assert all(set(log) == {"message", "level", "source", "timestamp"} for log in out["statusA"]["logs"])
    assert out["statusA_nologs"]["logs"] is None
    ra = out["resultA"]
    assert ra["requestId"] == rid and len(ra["data"]["images"]) == 2
    assert [(i["width"], i["height"]) for i in ra["data"]["images"]] == [(256, 192)] * 2
    assert [d["size"] for d in ra["downloads"]] == [i["file_size"] for i in ra["data"]["images"]]

    # cancel: E while queued, D while running; both COMPLETED, their results are errors; A cannot be cancelled
    assert out["statusE_before"]["status"] == "IN_QUEUE" and out["statusE_before"]["queue_position"] >= 0
    assert out["cancelE"]["ok"] is True
    assert out["statusD_running"]["status"] == "IN_PROGRESS"
    assert out["cancelD"]["ok"] is True
    assert out["statusD_after"]["status"] == "COMPLETED" and out["statusE_after"]["status"] == "COMPLETED"
    for r in (out["resultD"], out["resultE"]):
        assert r["ok"] is False and r["error"]["status"] == 400 and "cancelled" in r["error"]["body"]["detail"]
    assert out["cancelA_done"]["ok"] is False and out["cancelA_done"]["error"]["status"] == 400
    assert out["cancelA_done"]["error"]["body"]["status"] == "ALREADY_COMPLETED"

    # fal.run with sync_mode: data URIs
    run = out["run"]
    assert run["ok"] is True, run
    (rimg,) = run["data"]["images"]
    assert rimg["url"].startswith("data:image/png;base64,") and run["download"]["size"] == rimg["file_size"]

    # bad requests, each in fal's error shape
    errs = out["errors"]
    e = errs["unknownEndpoint"]["error"]
    assert e["status"] == 404 and "fal-ai/flux/dev" in e["body"]["detail"]
    e = errs["invalidField"]["error"]
    assert e["status"] == 422 and e["name"] == "ValidationError"
    assert [f["loc"] for f in e["fieldErrors"]] == [["body", "guidance_scale"]]
    e = errs["missingImage"]["error"]
    assert e["status"] == 422 and ["body", "inpaint_image_url"] in [f["loc"] for f in e["fieldErrors"]]
    e = errs["brokenImage"]["error"]
    assert e["status"] == 422 and e["fieldErrors"][0]["loc"] == ["body", "inpaint_image_url"]
    e = errs["unsupported"]["error"]
    assert e["status"] == 422 and e["fieldErrors"][0]["loc"] == ["body", "refiner_model"]
    e = errs["oversized"]["error"]
    assert e["status"] == 413 and "limit" in e["body"]["detail"]
    e = errs["unknownRequest"]["error"]
    assert e["status"] == 404 and "not found" in e["body"]["detail"]
    for name in ("wrongKey", "noKey"):
        e = errs[name]["error"]
        assert e["status"] == 401 and "Key" in e["body"]["detail"], name

    # wall time: one small request through the client vs the same graph posted to /prompt (another seed: no cache)
    req = parse_request({"inpaint_image_url": "x.png", "prompt": "a red barn", "styles": [],
                         "aspect_ratio": "256x192", "performance": "Lightning", "output_format": "png",
                         "enable_safety_checker": False, "seed": 12})
    api = fg.build_graph(req, fg.GraphInputs(image="x.png"), seed=12, models=fg.ModelNames(checkpoint=TINY_CKPT))
    t = time.monotonic()
    res = dropin_server.client().run(api, timeout=300)
    direct_ms = (time.monotonic() - t) * 1000
    assert res.status == "success"
    print(f"\nfal drop-in wall time, 256x192 Lightning text-to-image: @fal-ai/client {out['clientVersion']} "
          f"subscribe {out['timing']['ms']} ms vs /prompt + /ws {direct_ms:.0f} ms; inpaint subscribe "
          f"(queued behind another request) {sub['ms']} ms; whole node script {wall:.1f} s")
