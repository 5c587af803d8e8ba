"""An asyncio client of one ComfyUI server: upload, queue, follow ``/ws``, cancel, fetch results.

Only ComfyUI's public HTTP API is used (``/upload/image``, ``/prompt``, ``/queue``, ``/interrupt``,
``/history/{id}``, ``/view``, ``/ws``), with ``aiohttp`` (a ComfyUI dependency). The prompt id is chosen
by the client and sent with the prompt, so a job interrupted while its ``POST /prompt`` is in flight can
still be found and cancelled.

:class:`Dispatcher` spreads jobs over several servers by queue length (``GET /queue`` running + pending,
plus the jobs this process has picked a server for but not yet queued).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

__all__ = ["ComfyError", "ComfyServerClient", "Dispatcher", "GraphRejected", "RunOutcome", "ServerUnreachable"]

DONE_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


class ComfyError(RuntimeError):
    """A ComfyUI server answered with an error."""


class ServerUnreachable(ComfyError):
    """No answer from the server (connection refused, timeout...)."""


class GraphRejected(ComfyError):
    """``POST /prompt`` answered 400: the graph did not validate. ``body`` is ComfyUI's JSON answer."""

    def __init__(self, url: str, body: Any):
        self.body = body
        err = body.get("error", {}) if isinstance(body, dict) else {}
        details = []
        if isinstance(body, dict):
            for nid, ne in (body.get("node_errors") or {}).items():
                for e in ne.get("errors", []):
                    details.append(f"node {nid} ({ne.get('class_type')}): {e.get('message')}: {e.get('details')}")
        msg = err.get("message", "invalid graph") if isinstance(err, dict) else str(err)
        super().__init__(f"{url} rejected the graph: {msg}" + ("".join(f"\n  - {d}" for d in details)))


@dataclass
class RunOutcome:
    """How one queued prompt ended.

    ``status``: ``"success"``, ``"error"`` or ``"interrupted"``; ``events``: ``(type, data)`` of this
    prompt's ``/ws`` messages; ``t_queued``/``t_started``/``t_finished``: ``time.monotonic()`` when
    ``POST /prompt`` returned, when ``execution_start`` arrived and when the prompt ended;
    ``t_first_progress``: the first ``progress`` event (None if none); ``error``: the
    ``execution_error``/``execution_interrupted`` payload; ``history``: ``/history/{id}`` entry.
    """

    prompt_id: str
    status: str
    events: list = field(default_factory=list)
    t_queued: float = 0.0
    t_started: float | None = None
    t_finished: float = 0.0
    t_first_progress: float | None = None
    error: dict | None = None
    history: dict = field(default_factory=dict)


class ComfyServerClient:
    """One ComfyUI server. ``session``: a shared ``aiohttp.ClientSession``; ``timeout``: seconds per HTTP call."""

    def __init__(self, url: str, session: aiohttp.ClientSession, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"ComfyServerClient({self.url!r})"

    async def _call(self, method: str, path: str, *, json_body: Any = None, data: Any = None,
                    expect_json: bool = True) -> Any:
        try:
            async with self.session.request(method, self.url + path, json=json_body, data=data,
                                            timeout=self.timeout) as resp:
                body = await resp.read()
                if resp.status == 400 and path == "/prompt":
                    try:
                        raise GraphRejected(self.url, json.loads(body))
                    except json.JSONDecodeError:
                        raise ComfyError(f"{self.url}/prompt answered 400: {body[:500]!r}") from None
                if resp.status >= 400:
                    raise ComfyError(f"{method} {self.url}{path} answered HTTP {resp.status}: {body[:500]!r}")
                if not expect_json:
                    return body
                return json.loads(body) if body else None
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as e:
            raise ServerUnreachable(f"cannot reach ComfyUI at {self.url} ({type(e).__name__}: {e})") from None

    # -- plain calls ---------------------------------------------------------------------------------
    async def system_stats(self) -> dict:
        return await self._call("GET", "/system_stats")

    async def queue(self) -> tuple[list[str], list[str]]:
        """Prompt ids ``(running, pending)`` from ``GET /queue``."""
        q = await self._call("GET", "/queue")
        return ([item[1] for item in q.get("queue_running", [])], [item[1] for item in q.get("queue_pending", [])])

    async def queue_length(self) -> int:
        """Running + pending prompts."""
        running, pending = await self.queue()
        return len(running) + len(pending)

    async def upload_image(self, data: bytes, filename: str, subfolder: str = "fooocus_headless") -> str:
        """``POST /upload/image`` (type input, overwrite): returns the name LoadImage takes (``sub/name``)."""
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type="application/octet-stream")
        form.add_field("overwrite", "true")
        form.add_field("type", "input")
        form.add_field("subfolder", subfolder)
        info = await self._call("POST", "/upload/image", data=form)
        return (info["subfolder"] + "/" if info.get("subfolder") else "") + info["name"]

    async def queue_prompt(self, graph: dict, client_id: str, prompt_id: str) -> str:
        """``POST /prompt`` with our own ``prompt_id``; raises :class:`GraphRejected` on a 400."""
        body = await self._call("POST", "/prompt", json_body={"prompt": graph, "client_id": client_id,
                                                              "prompt_id": prompt_id})
        return body["prompt_id"]

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """``POST /interrupt``; with ``prompt_id`` only that prompt is interrupted, and only if running."""
        await self._call("POST", "/interrupt", json_body={"prompt_id": prompt_id} if prompt_id else {},
                         expect_json=False)

    async def delete_pending(self, prompt_ids: Sequence[str]) -> None:
        """``POST /queue {"delete": [...]}``: drop prompts that have not started."""
        await self._call("POST", "/queue", json_body={"delete": list(prompt_ids)}, expect_json=False)

    async def history(self, prompt_id: str) -> dict:
        return (await self._call("GET", f"/history/{prompt_id}")).get(prompt_id, {})

    def view_url(self, filename: str, subfolder: str = "", kind: str = "output") -> str:
        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
        return f"{self.url}/view?{q}"

    async def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
        return await self._call("GET", f"/view?{q}", expect_json=False)

    async def cancel(self, prompt_id: str, wait: float = 10.0) -> str:
        """Stop a prompt wherever it is: delete it if pending, interrupt it if running.

        Returns ``"pending"`` (removed before it started), ``"running"`` (interrupted), or ``"gone"`` (not
        queued: already finished or never arrived). The targeted interrupt cannot hit another prompt.
        """
        running, pending = await self.queue()
        state = "running" if prompt_id in running else "pending" if prompt_id in pending else "gone"
        await self.delete_pending([prompt_id])
        await self.interrupt(prompt_id)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            running, pending = await self.queue()
            if prompt_id not in running and prompt_id not in pending:
                break
            if prompt_id in pending:
                await self.delete_pending([prompt_id])
                state = "pending" if state == "gone" else state
            else:
                await self.interrupt(prompt_id)
                state = "running"
            await asyncio.sleep(0.1)
        return state

    # -- one job ------------------------------------------------------------------------------------
    async def run(self, graph: dict | Callable[[], Awaitable[dict]], *, timeout: float = 3600.0,
                  on_event: Callable[[str, dict], None] | None = None,
                  on_queued: Callable[[str], None] | None = None) -> RunOutcome:
        """Connect ``/ws``, queue ``graph``, follow its events until it ends, then read ``/history``.

        ``graph``: an API-format graph, or a coroutine function returning one, awaited once the socket is
        open (the CLI uploads the input images there, so the graph can name them). ``on_queued(prompt_id)``
        is called right after ``POST /prompt`` returned. Cancelling the task (Ctrl-C) cancels the prompt on
        the server (:meth:`cancel`) before re-raising. If the socket drops, ``/history`` is polled instead.
        """
        client_id = uuid.uuid4().hex
        prompt_id = str(uuid.uuid4())
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
        out = RunOutcome(prompt_id, "error")
        posted = False
        try:
            try:
                ws = await self.session.ws_connect(ws_url, max_msg_size=0, heartbeat=30)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                raise ServerUnreachable(f"cannot open {ws_url} ({type(e).__name__}: {e})") from None
            async with ws:
                if callable(graph):
                    graph = await graph()
                posted = True
                await self.queue_prompt(graph, client_id, prompt_id)
                out.t_queued = time.monotonic()
                if on_queued is not None:
                    on_queued(prompt_id)
                deadline = out.t_queued + timeout
                done = await self._follow(ws, out, deadline, on_event)
            if done is None:  # socket dropped: fall back to polling
                done = await self._poll_until_done(out, deadline)
        except asyncio.CancelledError:
            if posted:
                try:
                    state = await asyncio.wait_for(self.cancel(prompt_id), 20)
                    log.warning("cancelled prompt %s on %s (%s)", prompt_id, self.url, state)
                except Exception as e:  # noqa: BLE001 - best effort while shutting down
                    log.warning("could not cancel prompt %s on %s: %s", prompt_id, self.url, e)
            raise
        out.t_finished = time.monotonic()
        out.status = {"execution_success": "success", "execution_interrupted": "interrupted"}.get(done, "error")
        out.error = next((d for e, d in out.events if e in ("execution_error", "execution_interrupted")), out.error)
        out.history = await self._wait_history(prompt_id)
        return out

    async def _follow(self, ws, out: RunOutcome, deadline: float, on_event) -> str | None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"prompt {out.prompt_id} on {self.url} did not finish in time")
            try:
                msg = await ws.receive(timeout=min(remaining, 5.0))
            except asyncio.TimeoutError:
                # quiet socket: make sure the prompt has not finished unseen
                h = await self.history(out.prompt_id)
                if h.get("status", {}).get("completed") is not None:
                    return "execution_success" if h["status"].get("status_str") == "success" else "execution_error"
                continue
            if msg.type == aiohttp.WSMsgType.BINARY:
                continue  # latent preview frames
            if msg.type != aiohttp.WSMsgType.TEXT:
                return None  # closed / error
            data = json.loads(msg.data)
            event, payload = data.get("type"), data.get("data") or {}
            pid = payload.get("prompt_id")
            if pid is not None and pid != out.prompt_id:
                continue
            if pid is None and event not in ("progress",):
                continue  # status broadcasts etc.
            now = time.monotonic()
            if event == "execution_start" and out.t_started is None:
                out.t_started = now
            if event == "progress" and out.t_first_progress is None:
                out.t_first_progress = now
            out.events.append((event, payload))
            if on_event is not None:
                on_event(event, payload)
            if event in DONE_EVENTS:
                return event

    async def _poll_until_done(self, out: RunOutcome, deadline: float) -> str:
        while time.monotonic() < deadline:
            h = await self.history(out.prompt_id)
            st = h.get("status", {})
            if st.get("completed") is not None:
                for msg in st.get("messages", []):
                    if msg[0] in DONE_EVENTS:
                        if msg[0] != "execution_success":
                            out.error = msg[1]
                        return msg[0]
                return "execution_success" if st.get("status_str") == "success" else "execution_error"
            await asyncio.sleep(0.2)
        raise TimeoutError(f"prompt {out.prompt_id} on {self.url} did not finish in time")

    async def _wait_history(self, prompt_id: str, wait: float = 30.0) -> dict:
        deadline = time.monotonic() + wait
        while True:
            h = await self.history(prompt_id)
            if h.get("status", {}).get("completed") is not None or h.get("outputs") or time.monotonic() > deadline:
                return h
            await asyncio.sleep(0.05)


class Dispatcher:
    """Picks the server with the shortest queue for each job.

    Load of a server = running + pending prompts (``GET /queue``) + jobs this dispatcher assigned to it
    that are not queued yet (:meth:`release` is called once the job's ``POST /prompt`` returned). Ties go
    to the server that got the fewest jobs from this dispatcher, then to the first listed. Servers that
    do not answer are skipped; :class:`ServerUnreachable` when none answers.
    """

    def __init__(self, clients: Sequence[ComfyServerClient]):
        if not clients:
            raise ValueError("clients: expected at least one ComfyUI server")
        self.clients = list(clients)
        self._reserved = [0] * len(self.clients)
        self._assigned = [0] * len(self.clients)
        self._lock = asyncio.Lock()

    async def acquire(self) -> ComfyServerClient:
        async with self._lock:
            loads = await asyncio.gather(*(c.queue_length() for c in self.clients), return_exceptions=True)
            best = None
            for i, load in enumerate(loads):
                if isinstance(load, BaseException):
                    if not isinstance(load, ComfyError):
                        raise load
                    log.warning("%s", load)
                    continue
                key = (load + self._reserved[i], self._assigned[i], i)
                if best is None or key < best:
                    best = key
            if best is None:
                raise ServerUnreachable("no ComfyUI server answered: " + ", ".join(c.url for c in self.clients))
            i = best[2]
            self._reserved[i] += 1
            self._assigned[i] += 1
            return self.clients[i]

    def release(self, client: ComfyServerClient) -> None:
        i = self.clients.index(client)
        self._reserved[i] = max(0, self._reserved[i] - 1)

    @property
    def assigned(self) -> dict[str, int]:
        """Jobs handed to each server so far (url -> count)."""
        return {c.url: n for c, n in zip(self.clients, self._assigned)}
