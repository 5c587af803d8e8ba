"""engine.fal_queue: the fal queue / storage protocol pieces of the drop-in (no server needed)."""
from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest

from engine import fal_queue as fq

Q = "https://queue.fal.run"
RID = "2f1b6c7e-4f0a-4c39-9d0e-1a2b3c4d5e6f"


# -- target URLs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("url,method,action,endpoint,rid", [
    (f"{Q}/fal-ai/fooocus/inpaint", "POST", "submit", "fal-ai/fooocus/inpaint", None),
    (f"{Q}/fal-ai/fooocus/inpaint?fal_webhook=https%3A%2F%2Fx", "post", "submit", "fal-ai/fooocus/inpaint", None),
    (f"{Q}/fal-ai/fooocus/requests/{RID}/status?logs=1", "GET", "status", "fal-ai/fooocus", RID),
    (f"{Q}/fal-ai/fooocus/requests/{RID}/status/stream?logs=0", "GET", "status_stream", "fal-ai/fooocus", RID),
    (f"{Q}/fal-ai/fooocus/requests/{RID}", "GET", "result", "fal-ai/fooocus", RID),
    (f"{Q}/fal-ai/fooocus/requests/{RID}/cancel", "PUT", "cancel", "fal-ai/fooocus", RID),
    (f"{Q}/fal-ai/fooocus/inpaint/requests/{RID}/status", "GET", "status", "fal-ai/fooocus/inpaint", RID),
    ("https://fal.run/fal-ai/fooocus/inpaint", "POST", "run", "fal-ai/fooocus/inpaint", None),
    ("https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3", "POST", "storage_initiate", None, None),
    ("https://rest.alpha.fal.ai/storage/upload/initiate", "POST", "storage_initiate", None, None),
])
def test_parse_target_url(url, method, action, endpoint, rid):
    t = fq.parse_target_url(url, method)
    assert (t.action, t.endpoint_id, t.request_id, t.url) == (action, endpoint, rid, url)
    assert t.action in fq.ACTIONS


def test_parse_target_url_query_and_logs_flag():
    assert fq.parse_target_url(f"{Q}/fal-ai/fooocus/requests/{RID}/status?logs=1", "GET").logs is True
    assert fq.parse_target_url(f"{Q}/fal-ai/fooocus/requests/{RID}/status?logs=0", "GET").logs is False
    assert fq.parse_target_url(f"{Q}/fal-ai/fooocus/requests/{RID}/status", "GET").logs is False
    t = fq.parse_target_url("https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3", "POST")
    assert t.query == {"storage_type": "fal-cdn-v3"}


@pytest.mark.parametrize("url,method,status,fragment", [
    ("", "POST", 400, "x-fal-target-url"),
    ("   ", "GET", 400, "x-fal-target-url"),
    ("ftp://queue.fal.run/fal-ai/fooocus/inpaint", "POST", 400, "https URL"),
    ("not a url", "POST", 400, "https URL"),
    ("https://api.openai.com/v1/chat/completions", "POST", 404, "api.openai.com"),
    ("https://evil.example/fal-ai/fooocus/inpaint", "POST", 404, "not served"),
    (f"{Q}/fal-ai", "POST", 404, "no endpoint id"),
    ("https://fal.run/x", "POST", 404, "no endpoint id"),
    (f"{Q}/fal-ai/fooocus/inpaint", "GET", 405, "POST"),
    ("https://fal.run/fal-ai/fooocus/inpaint", "GET", 405, "POST"),
    (f"{Q}/fal-ai/fooocus/requests/{RID}", "POST", 405, "GET"),
    (f"{Q}/fal-ai/fooocus/requests/{RID}/status", "DELETE", 405, "GET"),
    (f"{Q}/fal-ai/fooocus/requests/{RID}/cancel", "GET", 405, "PUT"),
    (f"{Q}/fal-ai/fooocus/requests/{RID}/logs", "GET", 404, "/logs"),
    (f"{Q}/fooocus/requests/{RID}", "GET", 404, "app id"),
    (f"{Q}/fal-ai/fooocus/requests/..%2F..%2Fetc/status", "GET", 400, "request id"),
    ("https://rest.fal.ai/storage/upload/initiate-multipart", "POST", 404, "Multipart"),
    ("https://rest.fal.ai/storage/upload/initiate", "GET", 405, "POST"),
    ("https://rest.fal.ai/billing", "GET", 404, "only storage"),
])
def test_parse_target_url_errors(url, method, status, fragment):
    with pytest.raises(fq.FalError) as ei:
        fq.parse_target_url(url, method)
    assert ei.value.status == status
    assert isinstance(ei.value.body["detail"], str) and fragment in ei.value.body["detail"]


def test_parse_target_url_bad_arguments():
    with pytest.raises(fq.FalError):
        fq.parse_target_url(None, "GET")
    with pytest.raises(ValueError, match="method"):
        fq.parse_target_url(f"{Q}/fal-ai/fooocus/inpaint", "")


def test_request_key_matches_fal_js_parse_endpoint_id():
    assert fq.request_key("fal-ai/fooocus/inpaint") == "fal-ai/fooocus"
    assert fq.request_key("fal-ai/fooocus") == "fal-ai/fooocus"
    assert fq.request_key("workflows/me/flow/x") == "workflows/me/flow"
    for bad in ("fooocus", "", "workflows/me"):
        with pytest.raises(ValueError, match="endpoint_id"):
            fq.request_key(bad)
    with pytest.raises(ValueError, match="endpoint_id"):
        fq.request_key(3)


# -- bodies --------------------------------------------------------------------------------------------
def test_error_bodies():
    assert fq.error_body("nope") == {"detail": "nope"}
    assert fq.error_body("done", status="ALREADY_COMPLETED") == {"detail": "done", "status": "ALREADY_COMPLETED"}
    errs = [{"loc": ("body", "guidance_scale"), "msg": "guidance_scale: too big", "type": "less_than_equal"}]
    assert fq.error_body(errs) == {"detail": [{"loc": ["body", "guidance_scale"], "msg": "guidance_scale: too big",
                                               "type": "less_than_equal"}]}
    e = fq.validation_error(errs)
    assert e.status == 422 and e.body["detail"][0]["loc"] == ["body", "guidance_scale"]
    assert str(e) == "guidance_scale: too big"
    with pytest.raises(ValueError, match="detail"):
        fq.error_body([{"msg": "no loc"}])
    with pytest.raises(ValueError, match="detail"):
        fq.error_body(42)
    with pytest.raises(ValueError, match="errors"):
        fq.validation_error([])
    with pytest.raises(ValueError, match="status"):
        fq.FalError(200, "ok")
    with pytest.raises(ValueError, match="status"):
        fq.FalError(True, "x")


def test_validation_error_takes_request_module_errors():
    from engine.request import RequestValidationError, parse_request

    with pytest.raises(RequestValidationError) as ei:
        parse_request({"inpaint_image_url": "a.png", "guidance_scale": 99, "num_images": 0})
    e = fq.validation_error(ei.value.errors)
    assert e.body == ei.value.detail()
    assert [d["loc"] for d in e.body["detail"]] == [["body", "guidance_scale"], ["body", "num_images"]]


def test_request_ids_and_tokens():
    ids = {fq.new_request_id() for _ in range(50)}
    assert len(ids) == 50
    for i in ids:
        assert uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i
    tokens = {fq.new_upload_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) == 32 and int(t, 16) >= 0 for t in tokens)


def test_queue_urls_use_owner_alias_only():
    assert fq.queue_urls(RID) == {
        "status_url": f"{Q}/fal-ai/fooocus/requests/{RID}/status",
        "response_url": f"{Q}/fal-ai/fooocus/requests/{RID}",
        "cancel_url": f"{Q}/fal-ai/fooocus/requests/{RID}/cancel",
    }
    # and they parse back to the right actions
    urls = fq.queue_urls(RID)
    assert fq.parse_target_url(urls["status_url"], "GET").action == "status"
    assert fq.parse_target_url(urls["response_url"], "GET").action == "result"
    assert fq.parse_target_url(urls["cancel_url"], "PUT").action == "cancel"
    assert fq.queue_urls(RID, base="http://x/")["response_url"] == f"http://x/fal-ai/fooocus/requests/{RID}"
    for bad in ("", "a/b", "../x", None, "x" * 200):
        with pytest.raises(ValueError, match="request_id"):
            fq.queue_urls(bad)


def test_submit_and_status_bodies():
    sub = fq.submit_body(RID, 2)
    assert sub == {"status": "IN_QUEUE", "request_id": RID, "queue_position": 2, "gateway_request_id": RID,
                   **fq.queue_urls(RID)}
    assert fq.in_queue_status(RID, 0) == {"status": "IN_QUEUE", "request_id": RID, "queue_position": 0,
                                          **fq.queue_urls(RID)}
    logs = [fq.log_entry("step 1/4 (25%)", timestamp=0)]
    ip = fq.in_progress_status(RID, logs)
    assert ip["status"] == "IN_PROGRESS" and ip["logs"] == logs and ip["logs"] is not logs
    assert fq.in_progress_status(RID, None)["logs"] is None
    done = fq.completed_status(RID, logs, 1.5)
    assert done["status"] == "COMPLETED" and done["metrics"] == {"inference_time": 1.5} and done["logs"] == logs
    assert "error" not in done
    assert fq.completed_status(RID, None, None)["metrics"] == {}
    failed = fq.completed_status(RID, None, 0.2, error="boom")
    assert failed["error"] == "boom" and failed["error_type"] == "RequestError"
    for bad in (-1, True, 1.5, None):
        with pytest.raises(ValueError, match="queue_position"):
            fq.submit_body(RID, bad)
    for bad in (-0.1, float("nan"), "1"):
        with pytest.raises(ValueError, match="inference_time"):
            fq.completed_status(RID, None, bad)


def test_log_entry_shape():
    e = fq.log_entry("hello", "WARN", timestamp=1_700_000_000.25)
    assert e == {"message": "hello", "level": "WARN", "source": "USER", "timestamp": "2023-11-14T22:13:20.250Z"}
    now = fq.log_entry("x")
    parsed = dt.datetime.fromisoformat(now["timestamp"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.timezone.utc) - parsed).total_seconds()) < 5
    with pytest.raises(ValueError, match="level"):
        fq.log_entry("x", "LOUD")


def test_progress_message():
    assert fq.progress_message(3, 8, "Fooocus Sampler") == "Fooocus Sampler: step 3/8 (38%)"
    assert fq.progress_message(4, 4) == "step 4/4 (100%)"
    for v, m in ((1, 0), (True, 4), ("1", 4), (1, None)):
        with pytest.raises(ValueError, match="maximum"):
            fq.progress_message(v, m)


def test_queue_position_counts_pending_items_before_mine():
    pending = [(5, "e"), (2, "b"), (9, "z"), (3, "c")]
    random.Random(0).shuffle(pending)
    assert fq.queue_position(pending, "b") == 0
    assert fq.queue_position(pending, "c") == 1
    assert fq.queue_position(pending, "z") == 3
    assert fq.queue_position(pending, "missing") is None
    assert fq.queue_position([(-4, "front"), (1, "x")], "x") == 1   # /prompt "front" items use negative numbers
    assert fq.queue_position([], "x") is None


# -- auth, names, config -------------------------------------------------------------------------------
def test_check_key():
    assert fq.check_key(None, None) and fq.check_key("anything", "")
    assert fq.check_key("Key s3cret", "s3cret") and fq.check_key("key  s3cret ", "s3cret")
    assert fq.check_key("Bearer s3cret", "s3cret")
    for header in (None, "", "s3cret", "Key", "Key s3cre", "Key s3cret2", "Basic s3cret", 5):
        assert not fq.check_key(header, "s3cret"), header


@pytest.mark.parametrize("name,expected", [
    ("photo.png", "photo.png"),
    ("my photo (1).png", "my_photo_1_.png"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\x\\..\\a.jpg", "a.jpg"),
    (".hidden", "hidden"),
    ("..", "upload.bin"),
    ("", "upload.bin"),
    (None, "upload.bin"),
    ("ü.png", "png"),
    ("a/b/", "upload.bin"),
    ("x" * 100 + ".jpeg", "x" * 75 + ".jpeg"),
    ("y" * 100, "y" * 80),
])
def test_sanitize_file_name(name, expected):
    assert fq.sanitize_file_name(name) == expected


def test_sanitize_file_name_default_ext_and_limits():
    assert fq.sanitize_file_name("", default_ext="png") == "upload.png"
    assert fq.sanitize_file_name("/", default_ext="../x") == "upload.x"
    with pytest.raises(ValueError, match="max_len"):
        fq.sanitize_file_name("a", max_len=3)
    out = fq.sanitize_file_name("\x00\n/..;rm -rf.png")
    assert "/" not in out and not out.startswith(".") and out.endswith(".png")


FIELDS = ["checkpoint", "upscaler", "loras"]


def test_parse_config_defaults_and_sources():
    assert fq.parse_config() == fq.DropinConfig()
    cfg = fq.parse_config({"key": "k1", "models": {"checkpoint": "a.safetensors", "upscaler": None},
                           "max_json_bytes": 4096, "fetch_remote_urls": False},
                          env={"FOOOCUS_FAL_KEY": "envkey"}, models_file_data={"checkpoint": "b.safetensors"},
                          model_fields=FIELDS)
    assert cfg.key == "envkey"                       # env wins over the file
    assert cfg.models == {"checkpoint": "b.safetensors", "upscaler": None}   # FOOOCUS_FAL_MODELS wins per field
    assert (cfg.max_json_bytes, cfg.max_upload_bytes, cfg.fetch_remote_urls) == \
        (4096, fq.DEFAULT_MAX_UPLOAD_BYTES, False)
    assert fq.parse_config({"key": "k1"}).key == "k1"
    assert fq.parse_config({"key": ""}, env={}).key is None


@pytest.mark.parametrize("data,env,models,fragment", [
    ({"kee": "x"}, None, None, "unknown setting"),
    ({"key": "with space"}, None, None, "key"),
    ({"key": 5}, None, None, "key"),
    (None, {"FOOOCUS_FAL_KEY": "a b"}, None, "key"),
    ({"models": ["x"]}, None, None, "config models"),
    (None, None, ["x"], "FOOOCUS_FAL_MODELS"),
    ({"models": {"chekpoint": "x"}}, None, None, "chekpoint"),
    (None, None, {"nope": 1}, "nope"),
    ({"max_json_bytes": 10}, None, None, "max_json_bytes"),
    ({"max_upload_bytes": True}, None, None, "max_upload_bytes"),
    ({"max_upload_bytes": "64M"}, None, None, "max_upload_bytes"),
    ({"fetch_remote_urls": "yes"}, None, None, "fetch_remote_urls"),
])
def test_parse_config_errors(data, env, models, fragment):
    with pytest.raises(ValueError, match=fragment):
        fq.parse_config(data, env, models, FIELDS)


def test_parse_config_models_accept_real_model_names_fields():
    import dataclasses

    from engine.fal_graph import ModelNames

    fields = [f.name for f in dataclasses.fields(ModelNames)]
    cfg = fq.parse_config(None, {}, {"checkpoint": "tiny.safetensors", "inpaint_patches": {"v2.6": "p.patch"}},
                          fields)
    names = ModelNames(**cfg.models)
    assert names.checkpoint == "tiny.safetensors" and names.inpaint_patches == {"v2.6": "p.patch"}


def test_load_json_object():
    assert fq.load_json_object('{"a": 1}', "f.json") == {"a": 1}
    with pytest.raises(ValueError, match=r"f\.json: invalid JSON \(line 1"):
        fq.load_json_object("{", "f.json")
    with pytest.raises(ValueError, match="expected a JSON object"):
        fq.load_json_object("[1]", "f.json")
