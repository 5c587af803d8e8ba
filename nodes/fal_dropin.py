"""fal drop-in: serve ``fal-ai/fooocus/inpaint`` from this ComfyUI to fal's own clients.

A team using the official JS client switches to the local server with one line::

    fal.config({ proxyUrl: { url: "http://127.0.0.1:8188/fooocus_inpaint/fal", when: "always" } })

The client then sends every call (queue submit, status, result, cancel, storage upload initiate) to
``POST|GET|PUT /fooocus_inpaint/fal`` with the real fal URL in ``x-fal-target-url``; the protocol pieces
are in :mod:`..engine.fal_queue`, the user doc in ``docs/fal_dropin.md``. Requests become graphs
(:func:`..engine.fal_graph.build_graph`) queued on ComfyUI's own prompt queue exactly like
``POST /prompt`` (validated with ``execution.validate_prompt``, numbered like /prompt), so they
interleave with the editor's work and show up in its queue. The fal request id *is* the ComfyUI
prompt id. Progress logs come from a progress sink registered in ``PromptServer.sockets`` under the
client id the drop-in's prompts carry (the way a websocket client receives them); nothing of
ComfyUI is replaced. Nothing is ever sent to fal: unknown targets get fal's error shape.

Routes (one prefix, :data:`PREFIX`), registered by :func:`register_routes` from the pack's
``__init__`` when it loads inside ComfyUI:

- ``<PREFIX>`` any method: the proxy endpoint (``x-fal-target-url``; ``Authorization: Key <key>`` when
  a key is configured);
- ``PUT <PREFIX>/storage/put/<token>``: the ``upload_url`` of a storage upload (the token issued by an
  authorised ``initiate`` is the credential: fal-js PUTs there without headers);
- ``GET <PREFIX>/files/<name>``: the ``file_url`` of an upload (public, like fal's CDN; unguessable names).

Configuration: ``<ComfyUI user dir>/fooocus_inpaint_fal.json`` (outside ``user/default``, which the
frontend's userdata API serves) and the environment variables ``FOOOCUS_FAL_KEY`` and
``FOOOCUS_FAL_MODELS`` (a JSON file of ``ModelNames`` fields); see :func:`current_config`.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import mimetypes
import os
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..engine import fal_queue as fq
from ..engine.model_manifest import missing_model_message

log = logging.getLogger(__name__)

__all__ = ["CONFIG_FILE_NAME", "PREFIX", "SINK_CLIENT_ID", "current_config", "register_routes"]

#: URL prefix of every route of the drop-in.
PREFIX = "/fooocus_inpaint/fal"
#: Config file name in ComfyUI's user directory.
CONFIG_FILE_NAME = "fooocus_inpaint_fal.json"
#: ``client_id`` of the drop-in's prompts; its progress sink sits in ``PromptServer.sockets`` under it.
SINK_CLIENT_ID = "fooocus_inpaint_fal_dropin"
#: Subfolder of ComfyUI's input folder holding storage uploads.
UPLOAD_SUBFOLDER = "fal_uploads"
_MAX_JOBS = 2000            # finished jobs kept for status/result (ComfyUI's history keeps the outputs)
_MAX_LOGS = 400             # log lines kept per job
_UPLOAD_TTL = 3600.0        # seconds an upload token stays valid
_MAX_PENDING_UPLOADS = 1000
_MAX_INITIATE_BYTES = 64 * 1024
_CHUNK = 1 << 16


# --------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------
@dataclass
class _Job:
    request_id: str
    sync_mode: bool
    seed: int
    submitted: float
    titles: dict[str, str] = field(default_factory=dict)   # node id -> title, for logs
    logs: list[dict[str, str]] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None
    cancelled: bool = False
    last_step: tuple | None = None

    def add_log(self, message: str, level: str = "INFO") -> None:
        if len(self.logs) >= _MAX_LOGS:
            del self.logs[1:len(self.logs) - _MAX_LOGS + 2]
        self.logs.append(fq.log_entry(message, level))


_jobs: "OrderedDict[str, _Job]" = OrderedDict()
_uploads: dict[str, dict[str, Any]] = {}
_config_cache: dict[str, Any] = {"sig": None, "cfg": None}
_registered_for: set[int] = set()


class _ProgressSink:
    """Stands in ``PromptServer.sockets[SINK_CLIENT_ID]``: receives the execution events of the drop-in's
    prompts (``send_json`` gets ``{"type", "data"}`` like a websocket) and turns them into fal logs."""

    closed = False

    async def send_json(self, message: dict) -> None:
        try:
            _on_event(message.get("type"), message.get("data") or {})
        except Exception:  # never break ComfyUI's publish loop
            log.exception("fal drop-in: progress event failed")

    async def send_bytes(self, data) -> None:  # latent previews: not reported
        return None

    async def send_str(self, data) -> None:
        return None


def _on_event(event: str | None, data: dict) -> None:
    job = _jobs.get(data.get("prompt_id")) if isinstance(data, dict) else None
    if job is None:
        return
    now = time.time()
    if event == "execution_start":
        job.started = now
        job.add_log(f"Request {job.request_id} started (seed {job.seed})")
    elif event == "executing":
        node = data.get("node")
        if node is not None:
            job.add_log(f"Running {job.titles.get(str(node), node)}")
    elif event == "progress":
        value, maximum = data.get("value"), data.get("max")
        step = (data.get("node"), value, maximum)
        if step != job.last_step and isinstance(maximum, (int, float)) and maximum > 0:
            job.last_step = step
            job.add_log(fq.progress_message(value, maximum, job.titles.get(str(data.get("node")))))
    elif event == "execution_success":
        job.finished = now
        job.add_log("Completed")
    elif event == "execution_error":
        job.finished = now
        job.add_log(f"Error in {data.get('node_type')}: {data.get('exception_message', '').strip()}", "ERROR")
    elif event == "execution_interrupted":
        job.finished = now
        job.add_log("Cancelled" if job.cancelled else "Interrupted", "WARN")


def _server():
    from server import PromptServer

    return PromptServer.instance


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
def _mtime(p: Path | None) -> float | None:
    try:
        return p.stat().st_mtime_ns if p is not None else None
    except OSError:
        return None


def current_config() -> fq.DropinConfig:
    """The drop-in's settings, re-read when the config file, ``FOOOCUS_FAL_MODELS`` or its file change.

    Sources: ``<user dir>/fooocus_inpaint_fal.json`` (``key``, ``models``, ``max_json_bytes``,
    ``max_upload_bytes``, ``fetch_remote_urls``), env ``FOOOCUS_FAL_KEY`` (wins over the file's key) and
    env ``FOOOCUS_FAL_MODELS`` = path of a JSON object of ``engine.fal_graph.ModelNames`` fields.
    Raises :class:`fq.FalError` (500) when a source is invalid.
    """
    import folder_paths

    path = Path(folder_paths.get_user_directory()) / CONFIG_FILE_NAME
    models_env = os.environ.get("FOOOCUS_FAL_MODELS") or None
    models_path = Path(models_env).expanduser() if models_env else None
    sig = (_mtime(path), str(models_path), _mtime(models_path), os.environ.get("FOOOCUS_FAL_KEY"))
    if _config_cache["sig"] == sig and _config_cache["cfg"] is not None:
        return _config_cache["cfg"]
    try:
        file_data = fq.load_json_object(path.read_text(encoding="utf-8"), str(path)) if sig[0] is not None else None
        models_data = None
        if models_path is not None:
            try:
                models_data = fq.load_json_object(models_path.read_text(encoding="utf-8"), str(models_path))
            except OSError as e:
                raise ValueError(f"FOOOCUS_FAL_MODELS: cannot read {models_path}: {e.strerror or e}") from None
        cfg = fq.parse_config(file_data, os.environ, models_data, _model_fields())
    except (OSError, ValueError) as e:
        raise fq.FalError(500, f"fooocus fal drop-in configuration: {e}") from None
    _config_cache.update(sig=sig, cfg=cfg)
    return cfg


def _model_fields() -> list[str]:
    from ..engine.fal_graph import ModelNames

    return [f.name for f in dataclasses.fields(ModelNames)]


# --------------------------------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------------------------------
def _json(body: Any, status: int = 200, request_id: str | None = None) -> web.Response:
    headers = {"x-fal-request-id": request_id} if request_id else None
    return web.json_response(body, status=status, headers=headers)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _read_body(request: web.Request, limit: int, what: str) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise fq.FalError(413, f"{what} is {length:,} bytes, over this server's {limit:,}-byte limit")
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise fq.FalError(413, f"{what} is over this server's {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_json(request: web.Request, limit: int) -> Any:
    raw = await _read_body(request, limit, "The request body")
    try:
        return json.loads(raw.decode("utf-8") if raw else "null")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        pos = getattr(e, "pos", getattr(e, "start", 0))
        raise fq.FalError(422, [{"loc": ["body", pos], "msg": f"JSON decode error: {e}", "type": "json_invalid"}]) \
            from None


def _check_endpoint(endpoint_id: str | None, full: bool) -> None:
    ok = endpoint_id == fq.ENDPOINT_ID if full else endpoint_id in (fq.APP_ID, fq.ENDPOINT_ID)
    if not ok:
        raise fq.FalError(404, f"Application {endpoint_id!r} not found: this local server only serves "
                               f"{fq.ENDPOINT_ID} (nothing is forwarded to fal)")


# --------------------------------------------------------------------------------------------------
# Submit
# --------------------------------------------------------------------------------------------------
def _style_names() -> list[str] | None:
    try:
        from ..engine.styles import legal_style_names
        from .prompt_nodes import load_style_table

        table = load_style_table()
    except Exception as e:  # no style files: names are checked when the graph runs
        log.debug("fal drop-in: no style table (%s)", e)
        return None
    return legal_style_names(table) if len(table) else None


def _input_dir() -> Path:
    import folder_paths

    return Path(folder_paths.get_input_directory()).resolve()


def _own_upload(url: str, request: web.Request) -> Path | None:
    """The local file behind a ``file_url`` this server issued (same host, ``<PREFIX>/files/<name>``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.netloc.lower() != request.host.lower():
        return None
    path = urllib.parse.unquote(parts.path)
    for prefix in (PREFIX + "/files/", "/api" + PREFIX + "/files/"):
        if path.startswith(prefix):
            name = path[len(prefix):]
            if name and name == fq.sanitize_file_name(name, max_len=200):
                return _input_dir() / UPLOAD_SUBFOLDER / name
    return None


async def _load(field_name: str, ref: str, request: web.Request, cfg: fq.DropinConfig):
    from ..engine.request import classify_image_ref
    from ..headless import images

    kind = classify_image_ref(ref)
    kw = {"max_bytes": cfg.max_upload_bytes}
    if kind == "url":
        own = _own_upload(ref, request)
        if own is not None:
            if not own.is_file():
                raise images.ImageInputError(field_name, f"{ref} is not (or no longer) stored on this server")
            return await images.load_image_ref_async(field_name, str(own), **kw)
        if not cfg.fetch_remote_urls:
            raise images.ImageInputError(field_name, "URLs of other hosts are disabled on this server "
                                                     "(fetch_remote_urls); upload the file or send a data URI")
        return await images.load_image_ref_async(field_name, ref, **kw)
    if kind == "data":
        return await images.load_image_ref_async(field_name, ref, **kw)
    base = _input_dir()
    p = (base / ref).resolve()
    if Path(ref).is_absolute() or not p.is_relative_to(base):
        raise images.ImageInputError(field_name, "local paths must be file names inside ComfyUI's input folder "
                                                 f"(got {ref[:120]!r}); send an URL or a data URI otherwise")
    return await images.load_image_ref_async(field_name, str(p), **kw)


def _store(loaded) -> str:
    target = _input_dir() / loaded.upload_name
    if not target.is_file():
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(loaded.data)
        os.replace(tmp, target)
    return loaded.upload_name


def _field_of(message: str) -> list[str]:
    head = message.split(":", 1)[0].strip()
    return [int(p) if p.isdigit() else p for p in head.replace("[", ".").replace("]", "").split(".") if p] \
        if head and " " not in head else []


def _unsupported(e: Exception) -> fq.FalError:
    return fq.FalError(422, [{"loc": ["body", *_field_of(str(e))], "msg": str(e), "type": "unsupported"}])


async def _submit(request: web.Request, body: Any, cfg: fq.DropinConfig) -> tuple[str, int]:
    import execution

    from ..engine import fal_graph
    from ..engine.request import RequestValidationError, parse_request, resolve_seed
    from ..headless.images import ImageInputError

    try:
        req = parse_request(body, style_names=_style_names())
    except RequestValidationError as e:
        raise fq.validation_error(e.errors) from None
    try:
        fal_graph.check_supported(req)   # before any image is fetched; build_graph checks again with the inputs
    except fal_graph.UnsupportedRequestError as e:
        raise _unsupported(e) from None
    refs = [("inpaint_image_url", req.inpaint_image_url)]
    if req.mask_image_url:
        refs.append(("mask_image_url", req.mask_image_url))
    for slot in fal_graph.image_prompts_used(req):   # only slots Fooocus would use (mixing on, with an image)
        refs.append((f"image_prompt_{slot}.image_url", req.image_prompts[slot - 1].image_url))
    results = await asyncio.gather(*(_load(f, r, request, cfg) for f, r in refs), return_exceptions=True)
    errors, loaded = [], {}
    for (f, _), res in zip(refs, results):
        if isinstance(res, (ImageInputError, ValueError)):
            errors.append({"loc": ["body", *f.split(".")], "msg": str(res), "type": "image_input"})
        elif isinstance(res, BaseException):
            raise res
        else:
            loaded[f] = res
    if errors:
        raise fq.validation_error(errors)
    names = {f: await asyncio.to_thread(_store, li) for f, li in loaded.items()}
    try:
        models = fal_graph.ModelNames(**cfg.models)
    except TypeError as e:
        raise fq.FalError(500, f"fooocus fal drop-in configuration: models: {e}") from None
    seed = resolve_seed(req)
    prompts = {int(f.split(".")[0].rsplit("_", 1)[1]): n for f, n in names.items() if f.startswith("image_prompt_")}
    inputs = fal_graph.GraphInputs(image=names["inpaint_image_url"], mask=names.get("mask_image_url"),
                                   image_prompts=prompts)
    try:
        graph = fal_graph.build_graph(req, inputs, seed=seed, models=models)
    except fal_graph.UnsupportedRequestError as e:
        raise _unsupported(e) from None
    except ValueError as e:
        raise fq.FalError(500, f"could not build the ComfyUI graph: {e}") from None
    request_id = fq.new_request_id()
    valid = await execution.validate_prompt(request_id, graph, None)
    if not valid[0]:
        raise _graph_rejected(graph, valid)
    server = _server()
    number = server.number            # the same numbering as POST /prompt
    server.number += 1
    job = _Job(request_id, bool(req.sync_mode), seed, time.time(),
               titles={k: v.get("_meta", {}).get("title", v["class_type"]) for k, v in graph.items()})
    _remember(job)
    extra_data = {"client_id": SINK_CLIENT_ID, "create_time": int(time.time() * 1000),
                  "fooocus_fal": {"request_id": request_id, "seed": seed}}
    server.prompt_queue.put((number, request_id, graph, extra_data, valid[2], {}))
    job.add_log(f"Queued as ComfyUI prompt {request_id} (number {number})")
    running, pending = server.prompt_queue.get_current_queue_volatile()
    pos = fq.queue_position(((it[0], it[1]) for it in pending), request_id)
    return request_id, pos if pos is not None else 0


def _missing_model_file(error: dict) -> str | None:
    """The file name of a ``value_not_in_list`` validation error on a model-file input, else None."""
    value = (error.get("extra_info") or {}).get("received_value")
    if error.get("type") != "value_not_in_list" or not isinstance(value, str):
        return None
    return value if value.lower().endswith((".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".patch", ".onnx")) \
        else None


def _graph_rejected(graph: dict, valid: tuple) -> fq.FalError:
    err = valid[1] or {}
    lines = [f"{err.get('message', 'invalid graph')}: {err.get('details', '')}".strip(": ")]
    lora_problem = False
    for nid, ne in (valid[3] or {}).items():
        cls = ne.get("class_type") or graph.get(nid, {}).get("class_type")
        lora_problem |= cls == "FooocusInpaint_LoraStack"
        for e in ne.get("errors", []):
            lines.append(f"{graph.get(nid, {}).get('_meta', {}).get('title', cls)}: {e.get('message')} "
                         f"({e.get('details', '')})")
            missing = _missing_model_file(e)
            if missing:
                lines.append(missing_model_message(missing))
    msg = "ComfyUI rejected the graph for this request: " + "; ".join(lines)
    log.warning("fal drop-in: %s", msg)
    if lora_problem:
        return fq.FalError(422, [{"loc": ["body", "loras"], "msg": "loras: " + msg, "type": "value_error"}])
    return fq.FalError(500, msg + " (check the model files and FOOOCUS_FAL_MODELS / the drop-in config)")


def _remember(job: _Job) -> None:
    _jobs[job.request_id] = job
    while len(_jobs) > _MAX_JOBS:
        _jobs.popitem(last=False)


# --------------------------------------------------------------------------------------------------
# Status, result, cancel
# --------------------------------------------------------------------------------------------------
def _job(request_id: str) -> _Job:
    job = _jobs.get(request_id)
    if job is None:
        raise fq.FalError(404, f"Request {request_id!r} not found on this local server")
    return job


def _history(request_id: str) -> dict | None:
    hist = _server().prompt_queue.get_history(prompt_id=request_id, map_function=lambda p: p)
    return hist.get(request_id)


def _state(job: _Job) -> tuple[str, int | None, dict | None]:
    """(IN_QUEUE | IN_PROGRESS | COMPLETED, queue position, history entry)."""
    queue = _server().prompt_queue
    running, pending = queue.get_current_queue_volatile()
    if any(it[1] == job.request_id for it in running):
        return "IN_PROGRESS", None, None
    pos = fq.queue_position(((it[0], it[1]) for it in pending), job.request_id)
    if pos is not None:
        return "IN_QUEUE", pos, None
    return "COMPLETED", None, _history(job.request_id)


def _outcome_error(job: _Job, hist: dict | None) -> tuple[int, str] | None:
    """``None`` for a successful run, else (HTTP status, message) for the result call."""
    if hist is None:
        if job.cancelled:
            return 400, "Request was cancelled"
        return 400, "Request was removed from ComfyUI's queue before it ran"
    status = hist.get("status") or {}
    if status.get("status_str") == "success" or (not status and hist.get("outputs")):
        return None
    for event, data in status.get("messages", []):
        if event == "execution_interrupted":
            return 400, "Request was cancelled" if job.cancelled else "Request was interrupted on the ComfyUI server"
        if event == "execution_error":
            return 500, (f"{data.get('exception_type', 'Error')} in {data.get('node_type')}: "
                         f"{str(data.get('exception_message', '')).strip()}")
    return 500, "The run failed on the ComfyUI server"


def _times(job: _Job, hist: dict | None) -> tuple[float | None, float | None]:
    start = end = None
    for event, data in ((hist or {}).get("status") or {}).get("messages", []):
        ts = data.get("timestamp") if isinstance(data, dict) else None
        if ts is None:
            continue
        if event == "execution_start":
            start = ts / 1000.0
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            end = ts / 1000.0
    return start or job.started, end or job.finished


def _status_body(job: _Job, logs: bool) -> dict:
    state, pos, hist = _state(job)
    if state == "IN_QUEUE":
        return fq.in_queue_status(job.request_id, pos or 0)
    if state == "IN_PROGRESS":
        return fq.in_progress_status(job.request_id, list(job.logs) if logs else None)
    start, end = _times(job, hist)
    err = _outcome_error(job, hist)
    return fq.completed_status(job.request_id, list(job.logs) if logs else None,
                               max(0.0, end - start) if start and end else None,
                               error=err[1] if err else None)


def _read_output(filename: str, subfolder: str, kind: str) -> bytes:
    import folder_paths

    base = Path(folder_paths.get_directory_by_type(kind) or folder_paths.get_output_directory()).resolve()
    p = (base / subfolder / filename).resolve()
    if not p.is_relative_to(base):
        raise ValueError(f"output file outside the {kind} folder: {p}")
    return p.read_bytes()


async def _result_body(job: _Job, request: web.Request) -> tuple[int, dict]:
    from ..engine import fal_graph
    from ..engine.request import build_response

    state, _, hist = _state(job)
    if state != "COMPLETED":
        return 400, fq.error_body("Request is still in progress", status=state)
    err = _outcome_error(job, hist)
    if err is not None:
        return err[0], fq.error_body(err[1])
    out = (hist.get("outputs") or {}).get(fal_graph.SAVE_NODE_ID) or {}
    entries = [e for e in out.get("images", []) if e.get("type", "output") == "output"]
    infos = out.get("image_info") or []
    flags = out.get("has_nsfw_concepts") or [False] * len(entries)
    if not entries or len(infos) != len(entries):
        return 500, fq.error_body("The run finished without the save node's images")
    images = []
    for entry, info in zip(entries, infos):
        filename, subfolder, kind = entry["filename"], entry.get("subfolder", ""), entry.get("type", "output")
        if job.sync_mode:
            data = await asyncio.to_thread(_read_output, filename, subfolder, kind)
            url = f"data:{info['content_type']};base64," + base64.b64encode(data).decode("ascii")
        else:
            q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
            url = f"{_base_url(request)}/view?{q}"
        images.append({"url": url, **{k: info[k] for k in ("content_type", "file_name", "file_size", "width",
                                                             "height")}})
    start, end = _times(job, hist)
    timings = {}
    if start:
        timings["queue"] = max(0.0, start - job.submitted)
    if start and end:
        timings["inference"] = max(0.0, end - start)
    if end:
        timings["total"] = max(0.0, end - job.submitted)
    return 200, build_response(images, timings, [bool(f) for f in flags])


def _cancel(job: _Job) -> tuple[int, dict]:
    import comfy.model_management

    queue = _server().prompt_queue
    if queue.delete_queue_item(lambda item: item[1] == job.request_id):
        job.cancelled = True
        job.finished = time.time()
        job.add_log("Cancelled while in the queue", "WARN")
        return 202, {"status": "CANCELLATION_REQUESTED"}
    running, _ = queue.get_current_queue_volatile()
    if any(it[1] == job.request_id for it in running):
        job.cancelled = True
        job.add_log("Cancellation requested while running", "WARN")
        comfy.model_management.interrupt_current_processing(True)
        return 202, {"status": "CANCELLATION_REQUESTED"}
    return 400, fq.error_body("Request is already completed", status="ALREADY_COMPLETED")


async def _wait_done(job: _Job, poll: float = 0.1) -> None:
    while _state(job)[0] != "COMPLETED":
        await asyncio.sleep(poll)


# --------------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------------
async def _initiate(request: web.Request) -> dict:
    body = await _read_json(request, _MAX_INITIATE_BYTES)
    if not isinstance(body, dict):
        raise fq.FalError(422, [{"loc": ["body"], "msg": "expected a JSON object {content_type, file_name}",
                                 "type": "model_type"}])
    ctype = body.get("content_type") or "application/octet-stream"
    if not isinstance(ctype, str) or len(ctype) > 200:
        raise fq.FalError(422, [{"loc": ["body", "content_type"], "msg": "content_type: expected a MIME type string",
                                 "type": "string_type"}])
    ext = (mimetypes.guess_extension(ctype.split(";")[0].strip()) or ".bin").lstrip(".")
    now = time.time()
    for t in [t for t, u in _uploads.items() if u["expires"] < now]:
        del _uploads[t]
    if len(_uploads) >= _MAX_PENDING_UPLOADS:
        raise fq.FalError(429, "Too many pending uploads; try again later")
    token = fq.new_upload_token()
    name = f"{token}_{fq.sanitize_file_name(body.get('file_name'), default_ext=ext)}"
    _uploads[token] = {"name": name, "content_type": ctype, "expires": now + _UPLOAD_TTL}
    base = _base_url(request) + PREFIX
    return {"upload_url": f"{base}/storage/put/{token}", "file_url": f"{base}/files/{urllib.parse.quote(name)}"}


def _write_upload(name: str, data: bytes) -> None:
    folder = _input_dir() / UPLOAD_SUBFOLDER
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / name)


async def _put_upload(request: web.Request, token: str, cfg: fq.DropinConfig) -> web.Response:
    upload = _uploads.get(token)
    if upload is None or upload["expires"] < time.time():
        raise fq.FalError(404, "Unknown or expired upload URL")
    data = await _read_body(request, cfg.max_upload_bytes, "The uploaded file")
    if _uploads.pop(token, None) is None:   # single use (a concurrent PUT won)
        raise fq.FalError(404, "Unknown or expired upload URL")
    await asyncio.to_thread(_write_upload, upload["name"], data)
    log.info("fal drop-in: stored upload %s (%d bytes)", upload["name"], len(data))
    return _json({})


def _serve_file(name: str) -> web.StreamResponse:
    if not name or name != fq.sanitize_file_name(name, max_len=200):
        raise fq.FalError(404, "File not found")
    p = _input_dir() / UPLOAD_SUBFOLDER / name
    if not p.is_file():
        raise fq.FalError(404, "File not found")
    return web.FileResponse(p)


# --------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------
async def _dispatch(request: web.Request) -> web.StreamResponse:
    tail = request.match_info.get("tail", "").strip("/")
    method = request.method.upper()
    cfg = current_config()
    if tail.startswith("files/") and method in ("GET", "HEAD"):
        return _serve_file(urllib.parse.unquote(tail[len("files/"):]))
    if tail.startswith("storage/put/") and method == "PUT":
        return await _put_upload(request, tail[len("storage/put/"):], cfg)
    if tail:
        raise fq.FalError(404, f"Not found: {request.path}")
    if not fq.check_key(request.headers.get("Authorization"), cfg.key):
        raise fq.FalError(401, "Unauthorized: send 'Authorization: Key <key>' with this server's key "
                               "(fal.config({credentials: ...}))")
    target = fq.parse_target_url(request.headers.get(fq.TARGET_URL_HEADER, ""), method)
    if target.action == "storage_initiate":
        return _json(await _initiate(request))
    if target.action in ("submit", "run"):
        _check_endpoint(target.endpoint_id, full=True)
        body = await _read_json(request, cfg.max_json_bytes)
        request_id, pos = await _submit(request, body, cfg)
        if target.action == "submit":
            return _json(fq.submit_body(request_id, pos), request_id=request_id)
        job = _jobs[request_id]
        try:
            await _wait_done(job)
        except asyncio.CancelledError:   # the caller hung up: as fal does for direct connections
            _cancel(job)
            raise
        status, body = await _result_body(job, request)
        return _json(body, status, request_id)
    _check_endpoint(target.endpoint_id, full=False)
    job = _job(target.request_id)
    if target.action == "status":
        return _json(_status_body(job, target.logs), request_id=job.request_id)
    if target.action == "status_stream":
        return await _stream_status(request, job, target.logs)
    if target.action == "result":
        status, body = await _result_body(job, request)
        return _json(body, status, job.request_id)
    if target.action == "cancel":
        status, body = _cancel(job)
        return _json(body, status, job.request_id)
    raise fq.FalError(404, f"Not found: {target.action}")  # pragma: no cover


async def _stream_status(request: web.Request, job: _Job, logs: bool) -> web.StreamResponse:
    """``.../status/stream``: server-sent events, one status object per change, until COMPLETED."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "x-fal-request-id": job.request_id})
    await resp.prepare(request)
    last = None
    while True:
        body = _status_body(job, logs)
        text = json.dumps(body)
        if text != last:
            await resp.write(f"data: {text}\n\n".encode("utf-8"))
            last = text
        if body["status"] == "COMPLETED":
            break
        await asyncio.sleep(0.25)
    await resp.write_eof()
    return resp


async def _handle(request: web.Request) -> web.StreamResponse:
    try:
        return await _dispatch(request)
    except fq.FalError as e:
        if e.status >= 500:
            log.error("fal drop-in: %s %s -> %d %s", request.method, request.headers.get(fq.TARGET_URL_HEADER),
                      e.status, e)
        return _json(e.body, e.status)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        log.exception("fal drop-in: %s %s failed", request.method, request.headers.get(fq.TARGET_URL_HEADER))
        return _json(fq.error_body(f"Internal error of the local fooocus server: {type(e).__name__}: {e}"), 500)


def register_routes() -> bool:
    """Add the drop-in's routes to ComfyUI's route table and its progress sink to the server's sockets.

    Called from the pack's ``__init__`` inside ComfyUI (before ComfyUI builds its app from
    ``PromptServer.instance.routes``). Cheap: no model or torch import, and ``server`` is not imported
    here. Returns False (and does nothing) when no ``PromptServer`` exists (ComfyUI imported without
    its server, e.g. in-process tests); idempotent.
    """
    import sys

    server_mod = sys.modules.get("server")  # main.py imports it before loading custom nodes
    prompt_server = getattr(server_mod, "PromptServer", None)
    server = getattr(prompt_server, "instance", None)
    if server is None:
        return False
    if id(server) in _registered_for:
        return True
    server.routes.route("*", PREFIX)(_handle)
    server.routes.route("*", PREFIX + "/{tail:.*}")(_handle)
    server.sockets[SINK_CLIENT_ID] = _ProgressSink()
    server.sockets_metadata[SINK_CLIENT_ID] = {"feature_flags": {}}
    _registered_for.add(id(server))
    log.info("fal drop-in for fal-ai/fooocus/inpaint at %s", PREFIX)
    return True
