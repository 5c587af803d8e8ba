"""fal queue / storage protocol pieces for serving ``fal-ai/fooocus/inpaint`` from a local ComfyUI.

The official JS client (``@fal-ai/client``) configured with
``fal.config({proxyUrl: {url: "http://HOST:PORT/fooocus_inpaint/fal", when: "always"}})`` sends every
call to that one URL, with the same method and body, and the URL it would have called in the
``x-fal-target-url`` header (fal-js ``middleware.ts withProxy``). This module turns such a target URL
into an action (:func:`parse_target_url`), builds the JSON bodies fal answers with (submit, status,
errors) and holds the small decisions of the drop-in (request ids, log entries, queue positions,
sanitised upload names, the drop-in's configuration). Standard library only: no HTTP server, no
ComfyUI; ``nodes/fal_dropin.py`` is the glue.

Protocol (fal-schema.md §5; fal-js 1.10 ``queue.ts``, ``storage.ts``, ``response.ts``):

- submit: ``POST https://queue.fal.run/fal-ai/fooocus/inpaint`` -> ``{request_id, response_url,
  status_url, cancel_url, status: "IN_QUEUE", queue_position}``; status/result/cancel URLs carry only
  ``owner/alias`` (``https://queue.fal.run/fal-ai/fooocus/requests/{id}/status``);
- status: ``GET .../requests/{id}/status?logs=0|1`` -> ``IN_QUEUE`` (+ ``queue_position``),
  ``IN_PROGRESS`` (+ ``logs``), ``COMPLETED`` (+ ``logs``, ``metrics``); a failed run is COMPLETED too
  and its result call returns the error;
- result: ``GET .../requests/{id}`` -> the endpoint output; cancel: ``PUT .../requests/{id}/cancel``;
- sync run: ``POST https://fal.run/fal-ai/fooocus/inpaint`` -> the output directly;
- storage: ``POST https://rest.fal.ai/storage/upload/initiate?storage_type=...`` with
  ``{content_type, file_name}`` -> ``{upload_url, file_url}``, then a plain ``PUT`` of the bytes to
  ``upload_url`` (not proxied: fal-js calls ``fetch(upload_url)`` directly);
- errors: JSON ``{"detail": str}`` or, for 422, FastAPI's ``{"detail": [{loc, msg, type}]}``.
"""
from __future__ import annotations

import datetime as _dt
import hmac
import json
import logging
import math
import re
import secrets
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "ACTIONS", "APP_ID", "DEFAULT_MAX_JSON_BYTES", "DEFAULT_MAX_UPLOAD_BYTES", "DropinConfig", "ENDPOINT_ID",
    "FalError", "QUEUE_BASE", "TARGET_URL_HEADER", "Target", "check_key", "completed_status", "error_body",
    "in_progress_status", "in_queue_status", "load_json_object", "log_entry", "new_request_id", "new_upload_token",
    "parse_config", "parse_target_url", "progress_message", "queue_position", "queue_urls",
    "request_key", "sanitize_file_name", "submit_body", "validation_error",
]

#: The header fal-js's proxy middleware puts the original URL in.
TARGET_URL_HEADER = "x-fal-target-url"
#: The one endpoint served (fal-schema.md §1).
ENDPOINT_ID = "fal-ai/fooocus/inpaint"
#: ``owner/alias`` of that endpoint: the app part status/result/cancel URLs use.
APP_ID = "fal-ai/fooocus"
QUEUE_HOST = "queue.fal.run"
RUN_HOST = "fal.run"
REST_HOSTS = frozenset({"rest.fal.ai", "rest.alpha.fal.ai"})
QUEUE_BASE = f"https://{QUEUE_HOST}"
DEFAULT_MAX_JSON_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: Every action :func:`parse_target_url` can return.
ACTIONS = ("submit", "run", "status", "status_stream", "result", "cancel", "storage_initiate")
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_NAMESPACES = ("workflows", "comfy")  # fal-js utils.ts ENDPOINT_NAMESPACES
_LOG_LEVELS = ("STDERR", "STDOUT", "ERROR", "INFO", "WARN", "DEBUG")


class FalError(Exception):
    """An HTTP error to answer in fal's shape: ``status`` (int) and ``body`` (JSON-ready ``dict``).

    ``str(e)`` is the human message. Build one with :func:`error_body` / :func:`validation_error`.
    """

    def __init__(self, status: int, detail: str | list[dict[str, Any]], **extra: Any):
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise ValueError(f"status: expected an HTTP error status 400..599, got {status!r}")
        self.status = status
        self.body = error_body(detail, **extra)
        msg = detail if isinstance(detail, str) else "; ".join(str(e.get("msg", e)) for e in detail)
        super().__init__(msg)


def error_body(detail: str | list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """fal's / FastAPI's error JSON: ``{"detail": detail, **extra}``.

    ``detail``: a message string, or a 422 list of ``{"loc": [...], "msg": str, "type": str}`` dicts
    (checked: each needs those three keys, ``loc`` a list). ``extra``: more keys (e.g. ``status``).
    fal-js ``ValidationError.fieldErrors`` reads a string ``detail`` as one ``["body"]`` error.
    """
    if isinstance(detail, str):
        return {"detail": detail, **extra}
    if isinstance(detail, (list, tuple)):
        out = []
        for i, e in enumerate(detail):
            if not isinstance(e, Mapping) or not {"loc", "msg", "type"} <= set(e) \
                    or not isinstance(e["loc"], (list, tuple)):
                raise ValueError(f"detail[{i}]: expected {{'loc': [...], 'msg': str, 'type': str}}, got {e!r}")
            out.append({**e, "loc": list(e["loc"])})
        return {"detail": out, **extra}
    raise ValueError(f"detail: expected a message string or a list of 422 errors, got {type(detail).__name__}")


def validation_error(errors: Sequence[Mapping[str, Any]]) -> FalError:
    """A 422 :class:`FalError` from FastAPI-style errors (``engine.request.RequestValidationError.errors``)."""
    if not errors:
        raise ValueError("errors: expected at least one validation error")
    return FalError(422, list(errors))


# --------------------------------------------------------------------------------------------------
# Target URLs
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What one proxied call asks for.

    ``action``: one of :data:`ACTIONS`; ``endpoint_id``: full id for submit/run (``fal-ai/fooocus/inpaint``),
    the ``owner/alias`` app id for the request actions, ``None`` for storage; ``request_id`` for
    status/status_stream/result/cancel; ``query``: the target's query parameters (last value wins);
    ``url``: the target URL as received.
    """

    action: str
    endpoint_id: str | None
    request_id: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    url: str = ""

    @property
    def logs(self) -> bool:
        """``?logs=1`` (or ``true``) on a status call."""
        return str(self.query.get("logs", "0")).lower() in ("1", "true", "yes")


def _expect_method(method: str, allowed: tuple[str, ...], what: str) -> None:
    if method not in allowed:
        raise FalError(405, f"Method {method} not allowed for {what}; use {' or '.join(allowed)}")


def parse_target_url(url: str, method: str) -> Target:
    """Parse the ``x-fal-target-url`` of one proxied call into a :class:`Target`.

    ``url``: e.g. ``https://queue.fal.run/fal-ai/fooocus/inpaint``,
    ``https://queue.fal.run/fal-ai/fooocus/requests/<id>/status?logs=1``,
    ``https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3``; ``method``: the HTTP method
    (any case). Recognised: ``POST`` queue submit, ``GET`` status / status stream / result, ``PUT``
    cancel (``POST`` accepted too), ``POST`` sync run on ``fal.run``, ``POST`` storage initiate. The
    endpoint is *not* checked here (see :func:`request_key` and the glue).

    Raises :class:`FalError`: 400 for a missing/malformed URL or request id, 404 for an unknown host or
    path (including ``initiate-multipart``: uploads over ~90 MB are refused), 405 for a wrong method.
    fal counterpart: the routing of ``queue.fal.run`` / ``fal.run`` / ``rest.fal.ai``.
    """
    if not isinstance(url, str) or not url.strip():
        raise FalError(400, f"Missing {TARGET_URL_HEADER} header: configure the fal client with "
                            "proxyUrl pointing at this route")
    if not isinstance(method, str) or not method:
        raise ValueError(f"method: expected an HTTP method string, got {method!r}")
    method = method.upper()
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FalError(400, f"{TARGET_URL_HEADER}: expected an https URL of a fal host, got {url[:200]!r}")
    host = parts.hostname.lower()
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    segs = [urllib.parse.unquote(s) for s in parts.path.split("/") if s]
    if host in REST_HOSTS:
        if segs == ["storage", "upload", "initiate"]:
            _expect_method(method, ("POST",), "storage upload initiate")
            return Target("storage_initiate", None, None, query, url)
        if segs == ["storage", "upload", "initiate-multipart"]:
            raise FalError(404, "Multipart uploads are not supported by this local server (files over about "
                                "90 MB); upload a smaller file")
        raise FalError(404, f"Not found: {parts.path or '/'} on {host} is not served by this local server "
                            "(only storage uploads are)")
    if host == RUN_HOST:
        if len(segs) < 2:
            raise FalError(404, f"Not found: no endpoint id in {url[:200]!r}")
        _expect_method(method, ("POST",), "a synchronous run")
        return Target("run", "/".join(segs), None, query, url)
    if host != QUEUE_HOST:
        raise FalError(404, f"Not found: host {host!r} is not served by this local server (only "
                            f"{QUEUE_HOST}, {RUN_HOST} and rest.fal.ai storage uploads are)")
    if "requests" in segs[:-1]:
        i = segs.index("requests")
        app, rid, rest = segs[:i], segs[i + 1], segs[i + 2:]
        if len(app) < 2:
            raise FalError(404, f"Not found: no app id before /requests/ in {url[:200]!r}")
        if not _REQUEST_ID_RE.fullmatch(rid):
            raise FalError(400, f"Invalid request id {rid[:80]!r}")
        endpoint = "/".join(app)
        if rest == []:
            _expect_method(method, ("GET",), "a request result")
            return Target("result", endpoint, rid, query, url)
        if rest == ["status"]:
            _expect_method(method, ("GET",), "a request status")
            return Target("status", endpoint, rid, query, url)
        if rest == ["status", "stream"]:
            _expect_method(method, ("GET",), "a request status stream")
            return Target("status_stream", endpoint, rid, query, url)
        if rest == ["cancel"]:
            _expect_method(method, ("PUT", "POST"), "a request cancel")
            return Target("cancel", endpoint, rid, query, url)
        raise FalError(404, f"Not found: /{'/'.join(rest)} after the request id in {url[:200]!r}")
    if len(segs) < 2:
        raise FalError(404, f"Not found: no endpoint id in {url[:200]!r}")
    _expect_method(method, ("POST",), "a queue submit")
    return Target("submit", "/".join(segs), None, query, url)


def request_key(endpoint_id: str) -> str:
    """The ``owner/alias`` app id of an endpoint id, as fal-js ``parseEndpointId`` splits it.

    ``fal-ai/fooocus/inpaint`` -> ``fal-ai/fooocus``; namespaced ids (``workflows/o/a/x``) keep the
    namespace (``workflows/o/a``). Raises ``ValueError`` for ids with fewer than two parts.
    """
    if not isinstance(endpoint_id, str):
        raise ValueError(f"endpoint_id: expected a string, got {type(endpoint_id).__name__}")
    parts = [p for p in endpoint_id.split("/") if p]
    n = 3 if parts and parts[0] in _NAMESPACES else 2
    if len(parts) < n:
        raise ValueError(f"endpoint_id: expected 'owner/alias[/path]', got {endpoint_id!r}")
    return "/".join(parts[:n])


# --------------------------------------------------------------------------------------------------
# Ids, URLs and bodies
# --------------------------------------------------------------------------------------------------
def new_request_id() -> str:
    """A fresh request id: a random UUID4 string (fal's ids look the same). It is also the ComfyUI prompt id."""
    return str(uuid.uuid4())


def new_upload_token() -> str:
    """An unguessable token (32 hex digits) naming one storage upload; the upload URL's only credential."""
    return secrets.token_hex(16)


def queue_urls(request_id: str, app_id: str = APP_ID, base: str = QUEUE_BASE) -> dict[str, str]:
    """``status_url``, ``response_url`` and ``cancel_url`` for a request, as fal builds them.

    They point at fal's queue host (``https://queue.fal.run/<app_id>/requests/<id>[/status|/cancel]``);
    a client behind the proxy sends them back through it in ``x-fal-target-url``. ``app_id`` is the
    ``owner/alias`` part only (fal-schema.md §5.1). Raises ``ValueError`` for an invalid id.
    """
    if not isinstance(request_id, str) or not _REQUEST_ID_RE.fullmatch(request_id):
        raise ValueError(f"request_id: expected a request id (letters, digits, '-', '_', '.'), got {request_id!r}")
    root = f"{base.rstrip('/')}/{app_id.strip('/')}/requests/{request_id}"
    return {"status_url": f"{root}/status", "response_url": root, "cancel_url": f"{root}/cancel"}


def submit_body(request_id: str, queue_position: int, app_id: str = APP_ID) -> dict[str, Any]:
    """fal's queue submit answer: ``{status: "IN_QUEUE", request_id, response_url, status_url,
    cancel_url, queue_position, gateway_request_id}`` (``queue_position`` >= 0: requests ahead)."""
    return {"status": "IN_QUEUE", "request_id": request_id, **queue_urls(request_id, app_id),
            "queue_position": _position(queue_position), "gateway_request_id": request_id}


def _position(p: Any) -> int:
    if isinstance(p, bool) or not isinstance(p, int) or p < 0:
        raise ValueError(f"queue_position: expected an int >= 0, got {p!r}")
    return p


def in_queue_status(request_id: str, queue_position: int, app_id: str = APP_ID) -> dict[str, Any]:
    """Status body while queued: ``{status: "IN_QUEUE", request_id, queue_position, response_url,
    status_url, cancel_url}``."""
    return {"status": "IN_QUEUE", "request_id": request_id, "queue_position": _position(queue_position),
            **queue_urls(request_id, app_id)}


def in_progress_status(request_id: str, logs: Sequence[Mapping[str, Any]] | None,
                       app_id: str = APP_ID) -> dict[str, Any]:
    """Status body while running: ``{status: "IN_PROGRESS", request_id, logs, ...urls}``; ``logs`` is
    ``None`` when the caller did not ask for them (``?logs=0``; fal then sends ``null``)."""
    return {"status": "IN_PROGRESS", "request_id": request_id,
            "logs": None if logs is None else [dict(x) for x in logs], **queue_urls(request_id, app_id)}


def completed_status(request_id: str, logs: Sequence[Mapping[str, Any]] | None,
                     inference_time: float | None, app_id: str = APP_ID,
                     error: str | None = None) -> dict[str, Any]:
    """Status body when done (also after a failure or a cancel): ``{status: "COMPLETED", request_id,
    logs, metrics: {inference_time}, ...urls}``; ``error`` (a message) adds ``error`` and
    ``error_type: "RequestError"`` so a poller can tell without fetching the result."""
    metrics: dict[str, float] = {}
    if inference_time is not None:
        if not isinstance(inference_time, (int, float)) or isinstance(inference_time, bool) \
                or not math.isfinite(inference_time) or inference_time < 0:
            raise ValueError(f"inference_time: expected seconds >= 0 or None, got {inference_time!r}")
        metrics["inference_time"] = float(inference_time)
    body: dict[str, Any] = {"status": "COMPLETED", "request_id": request_id,
                            "logs": None if logs is None else [dict(x) for x in logs], "metrics": metrics,
                            **queue_urls(request_id, app_id)}
    if error is not None:
        body["error"] = str(error)
        body["error_type"] = "RequestError"
    return body


def log_entry(message: str, level: str = "INFO", timestamp: float | None = None) -> dict[str, str]:
    """One fal log line: ``{message, level, source: "USER", timestamp}`` (ISO 8601 UTC).

    ``level``: one of STDERR, STDOUT, ERROR, INFO, WARN, DEBUG; ``timestamp``: POSIX seconds, ``None`` = now.
    """
    if level not in _LOG_LEVELS:
        raise ValueError(f"level: expected one of {list(_LOG_LEVELS)}, got {level!r}")
    when = _dt.datetime.now(_dt.timezone.utc) if timestamp is None \
        else _dt.datetime.fromtimestamp(float(timestamp), _dt.timezone.utc)
    return {"message": str(message), "level": level, "source": "USER",
            "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z")}


def progress_message(value: int, maximum: int, node_title: str | None = None) -> str:
    """Log text for one sampler step: ``"Fooocus Sampler: step 3/8 (38%)"`` (title omitted when ``None``)."""
    if isinstance(value, bool) or isinstance(maximum, bool) or not isinstance(value, (int, float)) \
            or not isinstance(maximum, (int, float)) or maximum <= 0:
        raise ValueError(f"value/maximum: expected numbers with maximum > 0, got {value!r}/{maximum!r}")
    pct = int(round(100 * float(value) / float(maximum)))
    head = f"{node_title}: " if node_title else ""
    return f"{head}step {int(value)}/{int(maximum)} ({pct}%)"


def queue_position(pending: Iterable[tuple[float, str]], request_id: str) -> int | None:
    """How many pending ComfyUI queue items run before ``request_id``.

    ``pending``: ``(number, prompt_id)`` pairs of ``PromptQueue`` items not yet running (any order; lower
    ``number`` runs first, like ComfyUI's heap). Returns ``None`` when ``request_id`` is not pending.
    """
    items = sorted(pending, key=lambda t: t[0])
    for i, (_, pid) in enumerate(items):
        if pid == request_id:
            return i
    return None


# --------------------------------------------------------------------------------------------------
# Auth, upload names, configuration
# --------------------------------------------------------------------------------------------------
def check_key(authorization: str | None, expected: str | None) -> bool:
    """Whether an ``Authorization`` header carries the drop-in's key.

    ``expected`` ``None``/empty: no key configured -> always True. Otherwise the header must be
    ``Key <expected>`` (fal's scheme; ``Bearer`` accepted too), compared in constant time.
    """
    if not expected:
        return True
    if not isinstance(authorization, str):
        return False
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() not in ("key", "bearer"):
        return False
    return hmac.compare_digest(value.strip().encode("utf-8"), expected.encode("utf-8"))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_file_name(name: Any, default_ext: str = "bin", max_len: int = 80) -> str:
    """A safe single-component file name from a client-supplied one.

    Keeps the last path component, replaces runs of characters other than ``A-Z a-z 0-9 . _ -`` by
    ``_``, strips leading dots/underscores, cuts the stem so the result fits ``max_len``; an empty
    result becomes ``upload.<default_ext>``. Never returns ``.``/``..``, a path separator or a
    hidden file name.
    """
    if not isinstance(max_len, int) or max_len < 16:
        raise ValueError(f"max_len: expected an int >= 16, got {max_len!r}")
    text = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text).lstrip("._-")
    if not text:
        text = f"upload.{re.sub(r'[^A-Za-z0-9]', '', str(default_ext))[:10] or 'bin'}"
    if len(text) > max_len:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            text = stem[:max_len - len(ext) - 1] + "." + ext
        else:
            text = text[:max_len]
    return text


@dataclass(frozen=True)
class DropinConfig:
    """The drop-in's settings.

    ``key``: the local API key (``None`` = no access control); ``models``: overrides of
    ``engine.fal_graph.ModelNames`` fields (field -> value); ``max_json_bytes`` / ``max_upload_bytes``:
    body limits; ``fetch_remote_urls``: whether ``*_url`` inputs on other hosts are downloaded.
    """

    key: str | None = None
    models: Mapping[str, Any] = field(default_factory=dict)
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    fetch_remote_urls: bool = True


_CONFIG_KEYS = {"key", "models", "max_json_bytes", "max_upload_bytes", "fetch_remote_urls"}


def parse_config(file_data: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                 models_file_data: Mapping[str, Any] | None = None,
                 model_fields: Iterable[str] | None = None) -> DropinConfig:
    """Merge the drop-in's configuration sources into a :class:`DropinConfig`.

    ``file_data``: the decoded config file (``{"key", "models", "max_json_bytes", "max_upload_bytes",
    "fetch_remote_urls"}``, all optional); ``env``: environment (``FOOOCUS_FAL_KEY`` wins over the
    file's key); ``models_file_data``: the decoded JSON named by ``FOOOCUS_FAL_MODELS`` (a dict of
    ModelNames fields; it wins over the file's ``models`` per field); ``model_fields``: the allowed
    field names (checked when given). Raises ``ValueError`` naming the bad setting.
    """
    data = dict(file_data or {})
    env = env or {}
    unknown = set(data) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"config: unknown setting(s) {sorted(unknown)}; expected some of {sorted(_CONFIG_KEYS)}")
    key = env.get("FOOOCUS_FAL_KEY") or data.get("key") or None
    if key is not None and (not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key)):
        raise ValueError("key: expected a non-empty string without spaces")
    models: dict[str, Any] = {}
    for src_name, src in (("config models", data.get("models")), ("FOOOCUS_FAL_MODELS", models_file_data)):
        if src is None:
            continue
        if not isinstance(src, Mapping):
            raise ValueError(f"{src_name}: expected a JSON object of ModelNames fields, got {type(src).__name__}")
        models.update(src)
    if model_fields is not None:
        bad = sorted(set(models) - set(model_fields))
        if bad:
            raise ValueError(f"models: unknown ModelNames field(s) {bad}; expected some of {sorted(model_fields)}")
    limits = {}
    for name, default in (("max_json_bytes", DEFAULT_MAX_JSON_BYTES), ("max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES)):
        v = data.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1024:
            raise ValueError(f"{name}: expected an int >= 1024 (bytes), got {v!r}")
        limits[name] = v
    fetch = data.get("fetch_remote_urls", True)
    if not isinstance(fetch, bool):
        raise ValueError(f"fetch_remote_urls: expected true or false, got {fetch!r}")
    return DropinConfig(key=key, models=models, fetch_remote_urls=fetch, **limits)


def load_json_object(text: str, what: str) -> dict[str, Any]:
    """Decode ``text`` as a JSON object; ``ValueError`` naming ``what`` (a file) otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}: invalid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data
