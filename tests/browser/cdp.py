"""A minimal headless-Chromium driver over the Chrome DevTools Protocol (CDP), for the editor tests.

Only the standard library and ``aiohttp`` (a ComfyUI dependency, so already in the host venv): no
chromedriver, Node, Playwright or Selenium. :class:`Chromium` starts the browser with a fresh profile
and a DevTools port; :class:`Page` is one tab: evaluate JavaScript, wait for a condition, take a
screenshot, and record every console message, uncaught exception and browser log entry.

Install the browser with ``scripts/install_browser.sh`` (Debian's ``chromium`` package).
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# flags for a quiet, deterministic headless run: no GPU, no sandbox (root in CI), no first-run UI and no
# background traffic to Google services (the machine has no internet; those requests would only add noise)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--password-store=basic", "--use-mock-keychain",
         "--lang=en-US")


def find_chromium() -> str | None:
    """The Chromium binary: ``$FOOOCUS_CHROMIUM`` if set, else the first of :data:`CANDIDATES` on PATH."""
    env = os.environ.get("FOOOCUS_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class ConsoleEntry:
    """One console message, uncaught exception or browser log entry seen by a :class:`Page`."""
    source: str          # "console", "exception" or "log" (Log.entryAdded: network, security, ...)
    level: str           # "error", "warning", "info", "log", "debug", ...
    text: str
    url: str = ""        # the script or resource it came from, when known

    def __str__(self) -> str:
        return f"[{self.source}:{self.level}] {self.text}" + (f" ({self.url})" if self.url else "")


class CDPError(RuntimeError):
    """A DevTools command failed, or page JavaScript threw."""


class Page:
    """One browser tab over its DevTools websocket. Use :meth:`connect`, then :meth:`close`."""

    def __init__(self, ws_url: str):
        self.ws_url = ws_url
        self.console: list[ConsoleEntry] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._session = None
        self._ws = None
        self._reader: asyncio.Task | None = None

    async def connect(self) -> "Page":
        import aiohttp

        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.ws_url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        for domain in ("Runtime", "Log", "Page"):
            await self.send(f"{domain}.enable")
        return self

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        import aiohttp

        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut and not fut.done():
                    if "error" in data:
                        fut.set_exception(CDPError(f"{data['error'].get('message')}: {data['error'].get('data', '')}"))
                    else:
                        fut.set_result(data.get("result", {}))
            else:
                self._on_event(data.get("method", ""), data.get("params", {}))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the DevTools websocket closed"))

    def _on_event(self, method: str, params: dict) -> None:
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_describe(a) for a in params.get("args", []))
            frames = (params.get("stackTrace") or {}).get("callFrames") or [{}]
            self.console.append(ConsoleEntry("console", params.get("type", "log"), text, frames[0].get("url", "")))
        elif method == "Runtime.exceptionThrown":
            det = params.get("exceptionDetails", {})
            exc = det.get("exception") or {}
            text = exc.get("description") or det.get("text", "")
            self.console.append(ConsoleEntry("exception", "error", text, det.get("url", "")))
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            self.console.append(ConsoleEntry("log", e.get("level", ""), e.get("text", ""), e.get("url", "")))

    async def send(self, method: str, _timeout: float = 60, **params) -> dict:
        """Send one DevTools command and return its result."""
        cid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        await self._ws.send_str(json.dumps({"id": cid, "method": method, "params": params}))
        return await asyncio.wait_for(fut, _timeout)

    async def evaluate(self, expression: str, timeout: float = 60):
        """Evaluate JavaScript in the page (awaiting a returned promise) and return its JSON value;
        raises :class:`CDPError` with the JavaScript stack when it throws."""
        res = await self.send("Runtime.evaluate", _timeout=timeout + 5, expression=expression, awaitPromise=True,
                              returnByValue=True, userGesture=True, timeout=int(timeout * 1000))
        if "exceptionDetails" in res:
            det = res["exceptionDetails"]
            raise CDPError((det.get("exception") or {}).get("description") or det.get("text") or json.dumps(det))
        return res.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 60, interval: float = 0.2, what: str = ""):
        """Poll ``expression`` until it is truthy and return its value; TimeoutError names ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or expression}")
            await asyncio.sleep(interval)

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of the viewport to ``path``."""
        res = await self.send("Page.captureScreenshot", format="png")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(res["data"]))
        return path


def _describe(arg: dict) -> str:
    if "value" in arg:
        return str(arg["value"])
    return arg.get("description") or arg.get("unserializableValue") or arg.get("type", "")


class Chromium:
    """A headless Chromium process with a new empty profile in ``profile_dir``."""

    def __init__(self, binary: str, profile_dir: Path, width: int = 1600, height: int = 1000):
        self.binary = binary
        self.profile_dir = Path(profile_dir)
        self.width, self.height = width, height
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_path = self.profile_dir.parent / (self.profile_dir.name + ".chromium.log")

    def start(self, timeout: float = 30) -> "Chromium":
        shutil.rmtree(self.profile_dir, ignore_errors=True)
        self.profile_dir.mkdir(parents=True)
        cmd = [self.binary, *FLAGS, f"--user-data-dir={self.profile_dir}", "--remote-debugging-port=0",
               "--remote-debugging-address=127.0.0.1", f"--window-size={self.width},{self.height}", "about:blank"]
        self._log = open(self.log_path, "ab")
        env = {**os.environ, "LANG": "en_US.UTF-8", "LANGUAGE": "en_US"}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        port_file = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: {self.log_tail()}")
            if port_file.is_file():
                lines = port_file.read_text().split()
                if lines:
                    self.port = int(lines[0])
                    return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"chromium did not open its DevTools port within {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    async def first_page(self) -> Page:
        """Connect to the tab the browser opened with (``about:blank``)."""
        import aiohttp

        async with aiohttp.ClientSession() as s:
            for _ in range(50):
                async with s.get(f"http://127.0.0.1:{self.port}/json/list") as r:
                    targets = [t for t in await r.json(content_type=None) if t.get("type") == "page"]
                if targets:
                    break
                await asyncio.sleep(0.1)
        if not targets:
            raise RuntimeError("chromium has no page target")
        page = await Page(targets[0]["webSocketDebuggerUrl"]).connect()
        await page.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                        deviceScaleFactor=1, mobile=False)
        return page

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        shutil.rmtree(self.profile_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
