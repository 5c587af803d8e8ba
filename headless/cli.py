"""Command-line client: run ``fal-ai/fooocus/inpaint`` requests on ComfyUI servers; download the models.

Run from the folder that holds the pack (``ComfyUI/custom_nodes``)::

    python -m <pack folder> run request.json [--server URL ...] [--out DIR] [--models-dir DIR]
    python -m <pack folder> batch a.json b.json ... [--server URL ...] [--out DIR] [--jobs N]
    python -m <pack folder> download [--models-dir DIR] [--only NAME ...] [--mirror URL]

``run`` validates the request like fal (an invalid one prints fal's 422 body ``{"detail": [...]}`` on stdout
and exits 2), reads its images (http(s) URL, data URI or local path; each must decode), draws the seed when
it is null, uploads the images, builds the graph (``engine.fal_graph.build_graph``), queues it, shows the
progress on stderr, then writes fal's output JSON (``images``, ``timings``, ``has_nsfw_concepts``) to stdout,
or to ``DIR/response.json`` with the images beside it when ``--out`` is given.

Image ``url`` fields: with ``sync_mode`` a ``data:`` URI (fal's newer semantics); otherwise the ``file://``
URI of the saved copy when ``--out`` is given, else the server's ``/view`` URL (the stand-in for fal's
CDN). ``timings`` (seconds): ``upload`` (input images to the server), ``queue`` (queued -> execution
started), ``inference`` (execution), ``total`` (the whole job in this client, reading the request to the
last image fetched).

The seed: fal's Fooocus output has **no** ``seed`` key (fal-schema.md §1.4), so the response has none; the
seed used is logged on stderr, and ``--include-seed`` adds a top-level ``"seed"`` for callers who send
``seed: null`` and need the drawn value to reproduce the run (an extension, off by default to keep
the output byte-compatible with fal's schema).

Several ``--server`` values: each job goes to the server with the shortest queue (running + pending).
With no ``--server`` the pack's own test host is started (``tests/harness/comfy_host.py`` and the
pinned ComfyUI in ``.host/`` from ``scripts/setup_host.sh``): that mode works only in a checkout of the
repository, not in an installed copy. ``--tiny`` runs it on the repo's tiny test models.

Ctrl-C: a running prompt is interrupted (``POST /interrupt`` with its id), a pending one is removed from the
queue (``POST /queue {"delete": [id]}``); exit status 130.

Exit status: 0 done; 2 invalid request or input image; 3 model files missing (``--models-dir`` check);
4 the server rejected the graph or the run failed; 5 no server reachable; 1 other errors (and, in
``batch``, any failed request); 130 interrupted.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import importlib
import io
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import model_manifest
from ..engine.request import (InpaintRequest, RequestValidationError, build_response, content_type_for,
                              parse_request, resolve_seed)
from . import images as images_mod
from .comfy_client import ComfyError, ComfyServerClient, Dispatcher, GraphRejected, RunOutcome, ServerUnreachable

log = logging.getLogger("fooocus_headless")

__all__ = ["EXIT_BAD_REQUEST", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_MODELS", "EXIT_UNREACHABLE", "JobError",
           "JobResult", "RunOptions", "main", "run_requests"]

EXIT_OK, EXIT_OTHER, EXIT_BAD_REQUEST, EXIT_MODELS, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130
REPO = Path(__file__).resolve().parents[1]
DEFAULT_SAVE_NODE_ID = "save"


class JobError(Exception):
    """A request that could not be served: ``code`` (exit status) and ``detail`` (fal 422-style list)."""

    def __init__(self, code: int, message: str, detail: list[dict] | None = None):
        super().__init__(message)
        self.code = code
        self.detail = detail if detail is not None else [{"loc": ["body"], "msg": message, "type": "error"}]


@dataclass
class RunOptions:
    """Everything a job needs besides the request file (see ``--help`` for each)."""

    out: Path | None = None
    models_dir: Path | None = None
    timeout: float = 3600.0
    image_timeout: float = images_mod.DEFAULT_TIMEOUT
    max_image_bytes: int = images_mod.DEFAULT_MAX_BYTES
    include_seed: bool = False
    allow_unknown: bool = False
    graph_factory: str | None = None
    model_overrides: dict[str, str] = field(default_factory=dict)
    progress: bool = True
    per_request_dirs: bool = False   # batch: DIR/<request stem>/
    on_event: Callable[[str, str, dict], None] | None = None  # (request name, event, data), for tests


@dataclass
class JobResult:
    request: str
    response: dict | None = None
    error: JobError | None = None
    server: str | None = None
    prompt_id: str | None = None
    seed: int | None = None
    outcome: RunOutcome | None = None

    @property
    def code(self) -> int:
        return EXIT_OK if self.error is None else self.error.code


# ----------------------------------------------------------------------------------------------------
# graph builder
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _FallbackGraphInputs:
    """Same fields as ``engine.fal_graph.GraphInputs`` (used only while that module is unavailable)."""

    image: str
    mask: str | None = None
    image_prompts: dict = field(default_factory=dict)


def _graph_api(factory_spec: str | None, need_models: bool = False):
    """(build_graph, GraphInputs class, ModelNames class or None, save node id).

    With a custom factory ``engine.fal_graph`` is imported only when ``need_models`` (``--model`` given):
    it pulls in torch (through ``engine.performance``), seconds of start-up a stub graph does not need.
    The factory then gets a same-field stand-in for ``GraphInputs`` and no ``models`` argument.
    """
    fal_graph = None
    if factory_spec is None or need_models:
        try:
            from ..engine import fal_graph  # type: ignore[no-redef]
        except ImportError as e:
            raise JobError(EXIT_OTHER, f"the graph builder engine/fal_graph.py is not available ({e})") from None
    if factory_spec:
        mod_name, _, fn_name = factory_spec.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), fn_name or "build_graph")
        except (ImportError, AttributeError) as e:
            raise JobError(EXIT_OTHER, f"--graph-factory {factory_spec!r}: {e}") from None
    else:
        factory = fal_graph.build_graph
    inputs_cls = getattr(fal_graph, "GraphInputs", _FallbackGraphInputs)
    models_cls = getattr(fal_graph, "ModelNames", None)
    save_id = getattr(fal_graph, "SAVE_NODE_ID", DEFAULT_SAVE_NODE_ID)
    return factory, inputs_cls, models_cls, save_id


def _model_names(models_cls, overrides: dict[str, str]):
    if models_cls is None:
        return None
    names = models_cls()
    if overrides:
        known = {f.name for f in dataclasses.fields(models_cls)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise JobError(EXIT_OTHER, f"--model: unknown key(s) {bad}; expected some of {sorted(known)}")
        names = dataclasses.replace(names, **overrides)
    return names


# ----------------------------------------------------------------------------------------------------
# progress on stderr
# ----------------------------------------------------------------------------------------------------
class Progress:
    """Live progress of one job on ``stream``: nodes done, sampler step and percentage.

    On a terminal the line is redrawn in place; otherwise one line per step is written (logs stay readable).
    """

    def __init__(self, label: str, total_nodes: int, stream=None, enabled: bool = True):
        self.label = label
        self.total_nodes = max(1, total_nodes)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.nodes_done = 0
        self._open = False

    def _write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def event(self, event: str, data: dict) -> None:
        if event == "execution_cached":
            self.nodes_done += len(data.get("nodes") or [])
        elif event == "executed":
            self.nodes_done += 1
        elif event == "executing" and data.get("node") is not None:
            pass
        elif event == "progress":
            value, total = int(data.get("value", 0)), max(1, int(data.get("max", 1)))
            pct = 100 * value // total
            width = 24
            fill = width * value // total
            self._write(f"{self.label} [{'#' * fill}{'.' * (width - fill)}] step {value}/{total} {pct:3d}% "
                        f"(node {data.get('node')}, {min(self.nodes_done, self.total_nodes)}/{self.total_nodes} "
                        f"nodes done)")
        elif event == "execution_start":
            self._write(f"{self.label} started")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            word = {"execution_success": "done", "execution_error": "failed"}.get(event, "interrupted")
            self._write(f"{self.label} {word}")
            self.close()

    def close(self) -> None:
        if self._open and self.enabled:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


# ----------------------------------------------------------------------------------------------------
# one job
# ----------------------------------------------------------------------------------------------------
def _read_request(path: Path, allow_unknown: bool) -> InpaintRequest:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise JobError(EXIT_BAD_REQUEST, f"cannot read request file {path}: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"request body: invalid JSON in {path} (line {e.lineno}, column {e.colno}: {e.msg})"
        raise JobError(EXIT_BAD_REQUEST, msg, [{"loc": ["body", e.pos], "msg": msg, "type": "json_invalid"}]) from None
    try:
        return parse_request(data, allow_unknown=allow_unknown)
    except RequestValidationError as e:
        raise JobError(EXIT_BAD_REQUEST, str(e), e.detail()["detail"]) from None


async def _load_images(req: InpaintRequest, base_dir: Path, opts: RunOptions) -> dict[str, images_mod.LoadedImage]:
    refs: list[tuple[str, str]] = [("inpaint_image_url", req.inpaint_image_url)]
    if req.mask_image_url:
        refs.append(("mask_image_url", req.mask_image_url))
    for i, ip in enumerate(req.image_prompts, start=1):
        if ip is not None and ip.image_url:
            refs.append((f"image_prompt_{i}.image_url", ip.image_url))
    results = await asyncio.gather(*(images_mod.load_image_ref_async(
        f, r, timeout=opts.image_timeout, max_bytes=opts.max_image_bytes, base_dir=base_dir) for f, r in refs),
        return_exceptions=True)
    errors, loaded = [], {}
    for (f, _), res in zip(refs, results):
        if isinstance(res, images_mod.ImageInputError):
            errors.append({"loc": ["body", *f.split(".")], "msg": str(res), "type": "image_input"})
        elif isinstance(res, BaseException):
            raise res
        else:
            loaded[f] = res
    if errors:
        raise JobError(EXIT_BAD_REQUEST, "\n".join(e["msg"] for e in errors), errors)
    return loaded


def _check_models(req: InpaintRequest, models_dir: Path) -> None:
    missing = model_manifest.missing_files(model_manifest.required_files(req), models_dir)
    if missing:
        lines = [model_manifest.missing_model_message(f, [models_dir / f.folder]) for f in missing]
        raise JobError(EXIT_MODELS, f"{len(missing)} model file(s) missing under {models_dir}:\n" + "\n".join(lines),
                       [{"loc": ["models", f.relpath], "msg": m, "type": "model_missing"} for f, m in zip(missing, lines)])


def _image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


async def _collect(client: ComfyServerClient, outcome: RunOutcome, req: InpaintRequest, save_id: str,
                   out_dir: Path | None) -> tuple[list[dict], list[bool]]:
    outputs = outcome.history.get("outputs", {})
    node_ids = [save_id] if save_id in outputs else sorted(outputs, key=lambda s: (len(s), s))
    images, flags = [], []
    for nid in node_ids:
        out = outputs[nid]
        entries = [e for e in out.get("images", []) if e.get("type", "output") == "output"]
        infos = out.get("image_info") or [None] * len(entries)
        node_flags = out.get("has_nsfw_concepts") or [False] * len(entries)
        for entry, info, flag in zip(entries, infos, node_flags):
            data = await client.view(entry["filename"], entry.get("subfolder", ""), entry.get("type", "output"))
            if info is None:
                w, h = _image_size(data)
                ext = entry["filename"].rsplit(".", 1)[-1].lower()
                fmt = {"jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}.get(ext, "png")
                info = {"file_name": entry["filename"], "content_type": content_type_for(fmt), "width": w, "height": h}
            name = info.get("file_name") or entry["filename"]
            ctype = info.get("content_type") or "application/octet-stream"
            if req.sync_mode:
                url = f"data:{ctype};base64," + base64.b64encode(data).decode("ascii")
            else:
                url = client.view_url(entry["filename"], entry.get("subfolder", ""), entry.get("type", "output"))
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                target = out_dir / name
                await asyncio.to_thread(target.write_bytes, data)
                if not req.sync_mode:
                    url = target.resolve().as_uri()
            images.append({"url": url, "content_type": ctype, "file_name": name, "file_size": len(data),
                           "width": int(info["width"]), "height": int(info["height"])})
            flags.append(bool(flag))
    return images, flags


async def run_job(path: Path, dispatcher: Dispatcher, opts: RunOptions, *, label: str | None = None) -> JobResult:
    """Serve one request file end to end; never raises for request-level problems (see ``JobResult.error``)."""
    t0 = time.monotonic()
    label = label or path.name
    res = JobResult(str(path))
    client = None
    released = True
    try:
        req = _read_request(path, opts.allow_unknown)
        if opts.models_dir is not None:
            _check_models(req, opts.models_dir)
        factory, inputs_cls, models_cls, save_id = _graph_api(opts.graph_factory, bool(opts.model_overrides))
        models = _model_names(models_cls, opts.model_overrides)
        loaded = await _load_images(req, path.parent, opts)
        seed = resolve_seed(req)
        res.seed = seed
        log.info("%s: seed %d%s", label, seed, " (drawn at random)" if req.seed is None else "")
        client = await dispatcher.acquire()
        released = False
        res.server = client.url
        log.info("%s: sending to %s", label, client.url)
        timings: dict[str, float] = {}
        holder: dict[str, Any] = {}

        async def build() -> dict:
            t = time.monotonic()
            names = dict(zip(loaded, await asyncio.gather(*(client.upload_image(li.data, li.upload_name)
                                                             for li in loaded.values()))))
            timings["upload"] = time.monotonic() - t
            ips = {int(f.split("_")[2].split(".")[0]): n for f, n in names.items() if f.startswith("image_prompt_")}
            inputs = inputs_cls(image=names["inpaint_image_url"], mask=names.get("mask_image_url"), image_prompts=ips)
            kwargs = {"seed": seed} if models is None else {"seed": seed, "models": models}
            graph = factory(req, inputs, **kwargs)
            holder["nodes"] = len(graph)
            progress.total_nodes = max(1, len(graph))
            return graph

        def queued(prompt_id: str) -> None:
            nonlocal released
            res.prompt_id = prompt_id
            if not released:
                dispatcher.release(client)
                released = True
            log.info("%s: queued as %s on %s", label, prompt_id, client.url)

        progress = Progress(label, 1, enabled=opts.progress)

        def on_event(event: str, data: dict) -> None:
            progress.event(event, data)
            if opts.on_event is not None:
                opts.on_event(label, event, data)

        try:
            outcome = await client.run(build, timeout=opts.timeout, on_event=on_event, on_queued=queued)
        finally:
            progress.close()
        res.outcome = outcome
        if outcome.status != "success":
            err = outcome.error or {}
            what = err.get("exception_message") or err.get("exception_type") or outcome.status
            node = f" in node {err.get('node_id')} ({err.get('node_type')})" if err.get("node_id") else ""
            raise JobError(EXIT_FAILED, f"the run {outcome.status}{node}: {str(what).strip()}")
        out_dir = None
        if opts.out is not None:
            out_dir = opts.out / path.stem if opts.per_request_dirs else opts.out
        imgs, flags = await _collect(client, outcome, req, save_id, out_dir)
        if not imgs:
            raise JobError(EXIT_FAILED, f"the run finished but produced no output image (node {save_id!r} missing)")
        started = outcome.t_started or outcome.t_finished
        timings["queue"] = max(0.0, started - outcome.t_queued)
        timings["inference"] = max(0.0, outcome.t_finished - started)
        timings["total"] = time.monotonic() - t0
        response = build_response(imgs, timings, flags)
        if opts.include_seed:
            response["seed"] = seed
        res.response = response
        if out_dir is not None:
            (out_dir / "response.json").write_text(json.dumps(response, indent=2) + "\n", encoding="utf-8")
    except JobError as e:
        res.error = e
    except GraphRejected as e:
        res.error = JobError(EXIT_FAILED, str(e))
    except ServerUnreachable as e:
        res.error = JobError(EXIT_UNREACHABLE, str(e))
    except (ComfyError, TimeoutError) as e:
        res.error = JobError(EXIT_FAILED, str(e))
    finally:
        if client is not None and not released:
            dispatcher.release(client)
    if res.error is not None:
        log.error("%s: %s", label, res.error)
    return res


async def run_requests(paths: Sequence[Path], servers: Sequence[str], opts: RunOptions, jobs: int = 8) -> list[JobResult]:
    """Run request files concurrently (at most ``jobs`` at a time) over ``servers``; results in input order."""
    import aiohttp

    sem = asyncio.Semaphore(max(1, jobs))
    async with aiohttp.ClientSession() as session:
        dispatcher = Dispatcher([ComfyServerClient(u, session) for u in servers])

        async def one(p: Path) -> JobResult:
            async with sem:
                return await run_job(p, dispatcher, opts, label=p.name if len(paths) > 1 else "fooocus")

        return list(await asyncio.gather(*(one(p) for p in paths)))


# ----------------------------------------------------------------------------------------------------
# local host (repo checkout only)
# ----------------------------------------------------------------------------------------------------
@contextmanager
def local_server(models_dir: Path | None, tiny: bool):
    """Start the pack's own ComfyUI host (``tests/harness/comfy_host.py`` + ``.host/``); yields its URL."""
    harness = REPO / "tests" / "harness"
    if not (harness / "comfy_host.py").is_file():
        raise JobError(EXIT_OTHER, "no --server given and this copy of the pack has no tests/harness/comfy_host.py: "
                                   "the built-in local host works only in a checkout of the repository; "
                                   "pass --server http://HOST:PORT of a running ComfyUI")
    if str(harness) not in sys.path:
        sys.path.append(str(harness))
    import tempfile

    import comfy_host  # type: ignore[import-not-found]

    if not (comfy_host.COMFY_DIR / "main.py").is_file():
        raise JobError(EXIT_OTHER, f"no ComfyUI host at {comfy_host.COMFY_DIR}: run scripts/setup_host.sh first, "
                                   "or pass --server URL")
    extra = []
    if tiny:
        import subprocess

        import tiny_models  # type: ignore[import-not-found]

        cache = comfy_host.HOST / "cache" / tiny_models.VERSION
        if not (cache / "VERSION").is_file():
            subprocess.run([sys.executable, str(harness / "tiny_models.py"), "--out", str(cache)], check=True,
                           stdout=subprocess.DEVNULL)
        dirs, extra = [cache], [comfy_host.TINY_EXT]
    else:
        dirs = [models_dir or Path(os.environ.get("FOOOCUS_MODELS_DIR", comfy_host.COMFY_DIR / "models"))]
    python = comfy_host.HOST / "venv" / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="fooocus_headless_") as tmp:
        base = comfy_host.make_base_dir(Path(tmp), dirs, extra)
        server = comfy_host.ComfyServer(base, python=str(python) if python.exists() else None)
        log.info("starting a local ComfyUI (%s) with models from %s ...", comfy_host.COMFY_DIR, ", ".join(map(str, dirs)))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


# ----------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", action="append", default=[], metavar="URL",
                   help="ComfyUI server (repeat for several; jobs go to the shortest queue). "
                        "Default: start the repo's own local host (repository checkout only)")
    p.add_argument("--out", type=Path, help="write response.json and the images here (batch: one sub-folder per "
                                            "request); default: the response on stdout, images left on the server")
    p.add_argument("--models-dir", type=Path, help="check that the ComfyUI models folder has every file the "
                                                   "request needs before queueing (exit 3 naming them); "
                                                   "local host: the models it serves")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for one run (default 3600)")
    p.add_argument("--image-timeout", type=float, default=images_mod.DEFAULT_TIMEOUT,
                   help=f"seconds for downloading an input image (default {images_mod.DEFAULT_TIMEOUT:g})")
    p.add_argument("--max-image-mb", type=float, default=images_mod.DEFAULT_MAX_BYTES / 2**20,
                   help="size limit of one input image in MiB (default 64)")
    p.add_argument("--include-seed", action="store_true",
                   help="add the seed used as a top-level 'seed' key (not in fal's output schema)")
    p.add_argument("--allow-unknown-fields", action="store_true",
                   help="ignore unknown request fields instead of rejecting them (pydantic's default)")
    p.add_argument("--graph-factory", metavar="MODULE:FUNCTION",
                   help="build the graph with this function instead of engine.fal_graph.build_graph "
                        "(same signature; for custom pipelines and tests)")
    p.add_argument("--model", action="append", default=[], metavar="KEY=FILE",
                   help="override a model file name of fal_graph.ModelNames (e.g. checkpoint=my.safetensors)")
    p.add_argument("--tiny", action="store_true", help="local host only: use the repo's tiny test models")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or info on stderr")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m " + REPO.name,
                                 description="Fooocus inpaint (fal-ai/fooocus/inpaint) on ComfyUI, headless.")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one request JSON file")
    run.add_argument("request", type=Path)
    _add_common(run)
    batch = sub.add_parser("batch", help="run several request files concurrently")
    batch.add_argument("requests", type=Path, nargs="+")
    batch.add_argument("--jobs", type=int, default=8, help="requests in flight at once (default 8)")
    _add_common(batch)
    sub.add_parser("download", help="download missing model files (see 'download --help')", add_help=False)
    return ap


def _options(ns) -> RunOptions:
    overrides = {}
    for item in ns.model:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"--model: expected KEY=FILE, got {item!r}")
        overrides[key] = value
    return RunOptions(out=ns.out, models_dir=ns.models_dir if ns.server else None, timeout=ns.timeout,
                      image_timeout=ns.image_timeout, max_image_bytes=int(ns.max_image_mb * 2**20),
                      include_seed=ns.include_seed, allow_unknown=ns.allow_unknown_fields,
                      graph_factory=ns.graph_factory, model_overrides=overrides, progress=not ns.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m <pack>``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "download":
        from . import download

        return download.main(argv[1:])
    ns = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING if ns.quiet else logging.INFO, format="%(message)s",
                            stream=sys.stderr)
    log.setLevel(logging.WARNING if ns.quiet else logging.INFO)
    if threading_is_main():
        # a shell that starts us in the background ignores SIGINT; Ctrl-C / kill -INT must still cancel
        signal.signal(signal.SIGINT, signal.default_int_handler)
    opts = _options(ns)
    paths = [ns.request] if ns.command == "run" else list(ns.requests)
    if ns.command == "batch":
        opts.per_request_dirs = ns.out is not None
    try:
        if ns.server:
            results = asyncio.run(run_requests(paths, ns.server, opts, getattr(ns, "jobs", 1)))
        else:
            out = opts.out
            if out is None:
                opts.out = Path("fooocus-headless-output")
                log.info("local host: images go to %s (the server stops when done)", opts.out.resolve())
            with local_server(ns.models_dir, ns.tiny) as url:
                results = asyncio.run(run_requests(paths, [url], opts, getattr(ns, "jobs", 1)))
    except KeyboardInterrupt:
        log.error("interrupted: queued prompts were cancelled on the server")
        return EXIT_INTERRUPTED
    except JobError as e:
        log.error("%s", e)
        return e.code
    if ns.command == "run":
        r = results[0]
        if r.error is not None:
            if r.error.code == EXIT_BAD_REQUEST:
                sys.stdout.write(json.dumps({"detail": r.error.detail}, indent=2) + "\n")
            return r.error.code
        if opts.out is None:
            sys.stdout.write(json.dumps(r.response, indent=2) + "\n")
        else:
            log.info("response written to %s", (opts.out / "response.json").resolve())
        return EXIT_OK
    summary = []
    for r in results:
        item: dict[str, Any] = {"request": r.request, "server": r.server, "prompt_id": r.prompt_id}
        if r.error is None:
            item["response"] = r.response
        else:
            item["error"] = {"exit_code": r.error.code, "detail": r.error.detail}
        summary.append(item)
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return EXIT_OK if all(r.error is None for r in results) else EXIT_OTHER


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
