"""Run a real ComfyUI (the pinned host from ``scripts/setup_host.sh``) for tests, the demo and the CLI.

Two ways in:

- :class:`ComfyServer` starts ``main.py`` as a subprocess on 127.0.0.1 with a private base directory
  (``custom_nodes`` holding this pack and any extra test extensions, ``models`` linked to a models
  folder) and :class:`ComfyClient` talks to it over HTTP and the ``/ws`` socket, exactly as a user's
  script would;
- :func:`inprocess_executor` imports ComfyUI into the current interpreter and runs API-format graphs
  through ``execution.PromptExecutor`` (no HTTP), for fast node-level tests.

Standard library plus ``aiohttp`` (a ComfyUI dependency) only.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
HOST = Path(os.environ.get("FOOOCUS_HOST_DIR", REPO / ".host"))
COMFY_DIR = HOST / "ComfyUI"
PACK_LINK_NAME = "comfyui-fooocus-inpaint"
TINY_EXT = Path(__file__).resolve().parent / "tiny_sdxl_ext"
TINY_SD15_EXT = Path(__file__).resolve().parent / "tiny_sd15_ext"
TINY_EXTS = [TINY_EXT, TINY_SD15_EXT]  # test-only model configs (tiny SDXL, tiny SD1.5)
MODEL_SUBDIRS = ("checkpoints", "inpaint", "loras", "upscale_models", "controlnet", "clip_vision", "vae_approx",
                 "styles", "prompt_expansion", "safety_checker", "wildcards")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_base_dir(base: Path, models_dirs: list[Path], extra_nodes: list[Path] = ()) -> Path:
    """Create a ComfyUI base directory: this pack (+ ``extra_nodes``) in ``custom_nodes`` and every
    file of the given models folders linked into ``models/<sub>/`` (later folders win)."""
    base = Path(base)
    for sub in ("custom_nodes", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for src, name in [(REPO, PACK_LINK_NAME)] + [(Path(p), Path(p).name) for p in extra_nodes]:
        link = base / "custom_nodes" / name
        if not link.exists():
            link.symlink_to(src, target_is_directory=True)
    for models in models_dirs:
        models = Path(models)
        for sub_dir in sorted(p for p in models.iterdir() if p.is_dir()):
            dest = base / "models" / sub_dir.name
            dest.mkdir(parents=True, exist_ok=True)
            for f in sub_dir.rglob("*"):
                if f.is_file():
                    target = dest / f.relative_to(sub_dir)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.is_symlink() or target.exists():
                        target.unlink()
                    target.symlink_to(f)
    for sub in MODEL_SUBDIRS:
        (base / "models" / sub).mkdir(parents=True, exist_ok=True)
    return base


class ComfyServer:
    """A ComfyUI server subprocess. Use as a context manager; ``client`` talks to it."""

    def __init__(self, base_dir: Path, port: int | None = None, extra_args: list[str] = (),
                 python: str | None = None, log_path: Path | None = None):
        self.base_dir = Path(base_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.python = python or sys.executable
        self.log_path = Path(log_path or self.base_dir / "server.log")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> "ComfyServer":
        cmd = [self.python, str(COMFY_DIR / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base_dir), "--database-url", "sqlite:///:memory:",
               "--disable-auto-launch", *self.extra_args]
        self._log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, cwd=str(COMFY_DIR), stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        client = self.client()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                client.get_json("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout}s; log:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def client(self) -> "ComfyClient":
        return ComfyClient(self.url)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@dataclass
class RunResult:
    prompt_id: str
    status: str                      # "success" or "error"
    history: dict
    events: list = field(default_factory=list)
    images: list = field(default_factory=list)   # [(node_id, filename, png/jpeg bytes)]
    error: dict | None = None
    previews: int = 0                            # binary /ws frames (latent previews) received

    def progress(self) -> list[tuple[int, int]]:
        return [(d["value"], d["max"]) for e, d in self.events if e == "progress"]


class PromptRejected(RuntimeError):
    """``POST /prompt`` answered 400: the graph did not validate. ``body`` is ComfyUI's answer."""

    def __init__(self, body: dict):
        self.body = body
        super().__init__(json.dumps(body)[:2000])


class ComfyClient:
    """Minimal client of ComfyUI's HTTP API and ``/ws`` progress socket."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.client_id = uuid.uuid4().hex

    # -- plain HTTP ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 60):
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()

    def get_json(self, path: str, timeout: float = 60):
        return json.loads(self._request("GET", path, timeout=timeout)[1])

    def post_json(self, path: str, payload, timeout: float = 60):
        status, body = self._request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"},
                                     timeout=timeout)
        return json.loads(body) if body else None

    def get_bytes(self, path: str, timeout: float = 60) -> bytes:
        return self._request("GET", path, timeout=timeout)[1]

    def object_info(self, node: str | None = None) -> dict:
        return self.get_json("/object_info" + (f"/{node}" if node else ""))

    def upload(self, data: bytes, filename: str, kind: str = "image", overwrite: bool = True) -> str:
        """Upload to ``/upload/image`` (kind "image") or ``/upload/mask``; returns the stored name."""
        boundary = uuid.uuid4().hex
        parts = [(b'Content-Disposition: form-data; name="image"; filename="' + filename.encode() + b'"\r\n'
                  b"Content-Type: application/octet-stream\r\n\r\n" + data),
                 b'Content-Disposition: form-data; name="overwrite"\r\n\r\n' + (b"true" if overwrite else b"false")]
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary.encode() + b"--\r\n"
        _, resp = self._request("POST", f"/upload/{kind}", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        info = json.loads(resp)
        return (info["subfolder"] + "/" if info.get("subfolder") else "") + info["name"]

    def queue_prompt(self, prompt: dict) -> str:
        try:
            return self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id})["prompt_id"]
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                raise PromptRejected(json.loads(body)) from None
            except json.JSONDecodeError:
                raise RuntimeError(f"/prompt answered {e.code}: {body[:500]!r}") from None

    def interrupt(self) -> None:
        self.post_json("/interrupt", {})

    def history(self, prompt_id: str) -> dict:
        return self.get_json(f"/history/{prompt_id}").get(prompt_id, {})

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
        return self.get_bytes(f"/view?{q}")

    # -- run a graph, following /ws ----------------------------------------------------------------
    def run(self, prompt: dict, timeout: float = 300, on_event=None, fetch_images: bool = True) -> RunResult:
        """Queue an API-format graph, follow its ``/ws`` events until it finishes, then read
        ``/history`` and download the output images. ``on_event(event, data)`` sees each message."""
        return asyncio.run(self._run(prompt, timeout, on_event, fetch_images))

    async def _run(self, prompt, timeout, on_event, fetch_images) -> RunResult:
        import aiohttp

        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        events = []
        previews = 0
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(ws_url, max_msg_size=0) as ws:
                prompt_id = await asyncio.to_thread(self.queue_prompt, prompt)
                deadline = time.monotonic() + timeout
                done = None
                while done is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout}s")
                    msg = await ws.receive(timeout=remaining)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            raise ConnectionError("ComfyUI closed the websocket")
                        if msg.type == aiohttp.WSMsgType.BINARY:
                            previews += 1  # latent preview frames
                        continue
                    data = json.loads(msg.data)
                    event, payload = data.get("type"), data.get("data", {})
                    if payload.get("prompt_id", prompt_id) != prompt_id:
                        continue
                    events.append((event, payload))
                    if on_event:
                        on_event(event, payload)
                    if event in ("execution_success", "execution_error", "execution_interrupted"):
                        done = event
        hist = await asyncio.to_thread(self._wait_history, prompt_id)
        status = "success" if done == "execution_success" else "error"
        error = next((d for e, d in events if e in ("execution_error", "execution_interrupted")), None)
        images = []
        if fetch_images:
            for node_id, out in hist.get("outputs", {}).items():
                for img in out.get("images", []):
                    data = await asyncio.to_thread(self.view, img["filename"], img.get("subfolder", ""), img.get("type", "output"))
                    images.append((node_id, img["filename"], data))
        return RunResult(prompt_id, status, hist, events, images, error, previews)

    def _wait_history(self, prompt_id: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.history(prompt_id)
            if h.get("status", {}).get("completed") is not None or h.get("outputs"):
                return h
            time.sleep(0.05)
        return self.history(prompt_id)


# -- in-process execution ---------------------------------------------------------------------------
class InProcessHost:
    """ComfyUI imported into this interpreter; :meth:`run` executes an API-format graph."""

    def __init__(self, base_dir: Path):
        self.base_dir = Path(base_dir)
        if str(COMFY_DIR) not in sys.path:
            sys.path.insert(0, str(COMFY_DIR))
        from comfy.cli_args import args

        args.cpu = True
        args.base_directory = str(self.base_dir)
        if "folder_paths" in sys.modules and sys.modules["folder_paths"].base_path != str(self.base_dir):
            raise RuntimeError("ComfyUI's folder_paths was already imported with another base directory")
        import folder_paths  # reads args.base_directory at import: models, custom_nodes, input, output

        assert folder_paths.base_path == str(self.base_dir), folder_paths.base_path
        # ComfyUI's nodes.py puts ComfyUI/comfy first on sys.path, after which ``utils`` would resolve to
        # comfy/utils.py; main.py imports the top-level ``utils`` package before that, so do the same.
        import utils.install_util  # noqa: F401
        import execution
        import nodes

        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        self.nodes = nodes
        self.execution = execution
        self.events: list = []
        host = self

        class _Server:  # everything PromptExecutor touches
            client_id = None
            last_node_id = None
            last_prompt_id = None

            def send_sync(self, event, data, sid=None):
                host.events.append((event, data))

        self.server = _Server()
        import comfy.utils

        comfy.utils.set_progress_bar_global_hook(
            lambda value, total, preview, prompt_id=None, node_id=None: self.events.append(
                ("progress", {"value": value, "max": total, "node": node_id})))
        self.executor = execution.PromptExecutor(self.server, cache_type=execution.CacheType.CLASSIC,
                                                 cache_args={"lru": 0, "ram": 0})

    def run(self, prompt: dict, prompt_id: str | None = None) -> dict:
        """Validate and execute; return the outputs dict (as ``/history`` has it). Raises on errors."""
        prompt_id = prompt_id or uuid.uuid4().hex
        self.events.clear()
        valid, err, outputs, node_errors = asyncio.run(self.execution.validate_prompt(prompt_id, prompt, None))
        if not valid:
            raise PromptRejected({"error": err, "node_errors": node_errors})
        self.executor.execute(prompt, prompt_id, {"client_id": None}, outputs)
        if not self.executor.success:
            msgs = [d for e, d in self.events if e in ("execution_error", "execution_interrupted")]
            raise RuntimeError(f"execution failed: {json.dumps(msgs, default=str)[:3000]}")
        return self.executor.history_result["outputs"]


def clear_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
