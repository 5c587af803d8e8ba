"""``python -m <pack> download``: fetch the model files the pack needs into ComfyUI's models folder.

What it does, per file of the manifest (:mod:`..engine.model_manifest`) that is selected and missing:

- downloads to ``<models>/<folder>/<name>.part``; an existing ``.part`` (an earlier interrupted run) is
  **resumed** with an HTTP ``Range`` request (a server that ignores ``Range`` makes it start over);
- shows a progress bar on stderr (bytes, percentage, speed);
- verifies the result: the **size** when the manifest knows it and the **SHA-256** when it knows it
  (most big files have no published checksum: those are checked by size only -- see the manifest);
- on success renames ``.part`` to the final name atomically (``os.replace``), so a half-written file
  never has the real name;
- on a **checksum or size mismatch** it deletes the ``.part`` file (resuming bad bytes cannot fix it) and
  reports the error; on a network error or Ctrl-C the ``.part`` file is **kept** for the next run to resume.

A file that already exists with the right size (or any size when unknown) is left alone;
``--verify`` also checks the SHA-256 of existing files (slow for multi-GB files).

Selection: by default every file except the optional preview approximations; ``--only NAME`` (repeatable;
a file name, ``folder/name``, or a group: base, inpaint, performance, prompt, output, refiner,
image_prompt, preview); ``--for-request request.json`` for exactly what one request needs.

Sources: the official URLs of the manifest, or a mirror laid out like a ComfyUI models folder
(``<mirror>/<folder>/<name>``) given with ``--mirror URL`` or the ``FOOOCUS_MODELS_MIRROR`` environment
variable (tests point it at a local HTTP server).

Exit status: 0 when every selected file is present and verified, 1 otherwise, 2 bad arguments, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..engine import model_manifest as mm

log = logging.getLogger("fooocus_headless.download")

__all__ = ["DownloadError", "MIRROR_ENV", "Result", "default_models_dir", "download_file", "main", "source_url"]

MIRROR_ENV = "FOOOCUS_MODELS_MIRROR"
MODELS_DIR_ENV = "COMFYUI_MODELS_DIR"
CHUNK = 1 << 20
REPO = Path(__file__).resolve().parents[1]


class DownloadError(RuntimeError):
    """A file could not be downloaded or did not verify; the message says which and why."""


@dataclass
class Result:
    file: mm.ModelFile
    status: str          # "present", "downloaded", "failed", "skipped" (dry run)
    message: str = ""


def default_models_dir() -> Path | None:
    """``$COMFYUI_MODELS_DIR``, else ``ComfyUI/models`` when the pack sits in ``ComfyUI/custom_nodes/``."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    guess = REPO.parent.parent / "models"
    if REPO.parent.name == "custom_nodes" and guess.is_dir():
        return guess
    return None


def source_url(f: mm.ModelFile, mirror: str | None) -> str:
    """The URL to fetch ``f`` from: ``<mirror>/<folder>/<name>`` or the manifest's official URL."""
    return f"{mirror.rstrip('/')}/{f.relpath}" if mirror else f.url


class _Bar:
    def __init__(self, label: str, total: int | None, start: int, enabled: bool, stream=None):
        self.label, self.total, self.start, self.enabled = label, total, start, enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self.last = 0.0

    def update(self, done: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < (0.2 if self.tty else 2.0):
            return
        self.last = now
        speed = (done - self.start) / max(now - self.t0, 1e-6) / 2**20
        if self.total:
            pct = min(100, 100 * done // self.total)
            fill = 30 * pct // 100
            line = (f"{self.label} [{'#' * fill}{'.' * (30 - fill)}] {pct:3d}% "
                    f"{done / 2**20:,.1f}/{self.total / 2**20:,.1f} MiB {speed:,.1f} MiB/s")
        else:
            line = f"{self.label} {done / 2**20:,.1f} MiB {speed:,.1f} MiB/s"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _sha256_file(path: Path, h=None):
    h = h or hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h


def download_file(f: mm.ModelFile, models_dir: Path, *, mirror: str | None = None, timeout: float = 60.0,
                  retries: int = 3, progress: bool = True) -> Path:
    """Fetch one manifest file into ``models_dir`` (resume, verify, atomic rename); returns its path.

    Raises :class:`DownloadError`; the ``.part`` file is kept after network errors (resumable) and removed
    after a size/checksum mismatch.
    """
    dest = f.path(models_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    url = source_url(f, mirror)
    attempt = 0
    while True:
        attempt += 1
        have = part.stat().st_size if part.exists() else 0
        if f.size is not None and have > f.size:
            part.unlink()
            have = 0
        try:
            complete = _transfer(f, url, part, have, timeout, progress)
        except DownloadError:
            raise
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            if attempt > retries:
                raise DownloadError(f"{f.relpath}: download from {url} failed after {attempt} attempt(s): {reason}; "
                                    f"the partial file {part} is kept and the next run resumes it") from None
            log.warning("%s: %s; retrying (%d/%d)", f.relpath, reason, attempt, retries)
            time.sleep(min(2.0 * attempt, 10.0))
            continue
        if complete:
            break
    _verify_and_commit(f, part, dest)
    return dest


def _transfer(f: mm.ModelFile, url: str, part: Path, have: int, timeout: float, progress: bool) -> bool:
    """Append the rest of ``url`` to ``part``; True when the server said it sent everything."""
    headers = {"User-Agent": "fooocus-inpaint-download/1"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # nothing left to send: the part file is already complete (verified next), or longer than the file
            return True
        if e.code in (404, 403, 401, 410):
            raise DownloadError(f"{f.relpath}: {url} answered HTTP {e.code} {e.reason}") from None
        raise
    with resp:
        mode = "ab"
        start = have
        if have and resp.status != 206:
            log.info("%s: the server ignored the resume request; starting over", f.relpath)
            mode, start = "wb", 0
        elif have:
            log.info("%s: resuming at %d bytes", f.relpath, have)
        length = resp.headers.get("Content-Length")
        total = f.size if f.size is not None else (start + int(length) if length and length.isdigit() else None)
        bar = _Bar(f.relpath, total, start, progress)
        done = start
        with open(part, mode) as fh:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                fh.write(block)
                done += len(block)
                bar.update(done)
                if f.size is not None and done > f.size:
                    break
        bar.update(done, final=True)
        if length and length.isdigit() and done - start < int(length):
            raise OSError(f"connection closed after {done - start} of {int(length)} bytes")
    return True


def _verify_and_commit(f: mm.ModelFile, part: Path, dest: Path) -> None:
    size = part.stat().st_size
    if f.size is not None and size != f.size:
        part.unlink()
        raise DownloadError(f"{f.relpath}: got {size:,} bytes, expected {f.size:,}; the partial file was deleted "
                            "(run again to download it afresh)")
    if f.sha256 is not None:
        digest = _sha256_file(part).hexdigest()
        if digest != f.sha256:
            part.unlink()
            raise DownloadError(f"{f.relpath}: SHA-256 mismatch (got {digest}, expected {f.sha256}); the "
                                "downloaded file was deleted. The source may have changed or the transfer was "
                                "corrupted; run again, or use another --mirror")
    os.replace(part, dest)


def _present(f: mm.ModelFile, models_dir: Path, verify: bool) -> str | None:
    """None if ``f`` is missing; otherwise "" (ok) or an error message (present but wrong)."""
    p = f.path(models_dir)
    if not p.is_file():
        return None
    if f.size is not None and p.stat().st_size != f.size:
        return f"has {p.stat().st_size:,} bytes, expected {f.size:,}"
    if verify and f.sha256 is not None and _sha256_file(p).hexdigest() != f.sha256:
        return "SHA-256 mismatch"
    return ""


def run_downloads(files: Sequence[mm.ModelFile], models_dir: Path, *, mirror: str | None = None,
                  timeout: float = 60.0, retries: int = 3, verify: bool = False, dry_run: bool = False,
                  progress: bool = True) -> list[Result]:
    """Download every missing file of ``files`` in order; a failure does not stop the others."""
    results = []
    for f in files:
        state = _present(f, models_dir, verify)
        if state == "":
            results.append(Result(f, "present"))
            continue
        if state is not None:
            results.append(Result(f, "failed", f"{f.path(models_dir)} {state}: delete or move it, then run again"))
            continue
        if dry_run:
            results.append(Result(f, "skipped", f"would fetch {source_url(f, mirror)}"))
            continue
        try:
            download_file(f, models_dir, mirror=mirror, timeout=timeout, retries=retries, progress=progress)
            results.append(Result(f, "downloaded"))
        except DownloadError as e:
            log.error("%s", e)
            results.append(Result(f, "failed", str(e)))
    return results


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python -m {REPO.name} download",
                                 description="Download the model files of the Fooocus inpaint pack into ComfyUI's "
                                             "models folder (resumable, verified).")
    ap.add_argument("--models-dir", type=Path, help=f"ComfyUI models folder (default: ${MODELS_DIR_ENV}, or "
                                                    "../../models when the pack is in ComfyUI/custom_nodes)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="file name, folder/name or group (repeatable); default: every non-optional file")
    ap.add_argument("--for-request", type=Path, metavar="REQUEST.json",
                    help="only the files this fal request needs")
    ap.add_argument("--mirror", default=os.environ.get(MIRROR_ENV),
                    help=f"base URL laid out as <mirror>/<folder>/<name> (default: ${MIRROR_ENV} or the official URLs)")
    ap.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds (default 60)")
    ap.add_argument("--retries", type=int, default=3, help="retries after a network error (default 3)")
    ap.add_argument("--verify", action="store_true", help="also check the SHA-256 of files already present")
    ap.add_argument("--list", action="store_true", help="list the selected files and whether they are present")
    ap.add_argument("--dry-run", action="store_true", help="say what would be downloaded")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m <pack> download``; returns the exit status."""
    ns = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    models_dir = ns.models_dir or default_models_dir()
    if models_dir is None:
        log.error("no models folder: pass --models-dir <ComfyUI>/models or set %s", MODELS_DIR_ENV)
        return 2
    try:
        if ns.for_request:
            from ..engine.request import RequestValidationError, parse_request

            try:
                req = parse_request(json.loads(ns.for_request.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError, RequestValidationError) as e:
                log.error("--for-request %s: %s", ns.for_request, e)
                return 2
            files = mm.required_files(req)
            if ns.only:
                keep = {f.relpath for f in mm.select(ns.only)}
                files = [f for f in files if f.relpath in keep]
        else:
            files = mm.select(ns.only)
    except ValueError as e:
        log.error("%s", e)
        return 2
    if ns.list:
        for f in files:
            state = _present(f, models_dir, False)
            mark = "missing" if state is None else ("present" if state == "" else f"WRONG ({state})")
            size = f"{f.size:>14,}" if f.size is not None else f"{'?':>14}"
            sys.stdout.write(f"{mark:8} {size} {'sha256' if f.sha256 else 'size  '} {f.relpath}\n")
        return 0
    try:
        results = run_downloads(files, models_dir, mirror=ns.mirror, timeout=ns.timeout, retries=ns.retries,
                                verify=ns.verify, dry_run=ns.dry_run, progress=not ns.quiet)
    except KeyboardInterrupt:
        log.error("interrupted: partial downloads (*.part) are kept and resume on the next run")
        return 130
    counts = {s: sum(r.status == s for r in results) for s in ("present", "downloaded", "failed", "skipped")}
    log.info("%s: %d present, %d downloaded, %d failed%s", models_dir, counts["present"], counts["downloaded"],
             counts["failed"], f", {counts['skipped']} to download" if ns.dry_run else "")
    for r in results:
        if r.status in ("failed", "skipped"):
            log.info("  %s %s: %s", r.status, r.file.relpath, r.message)
    unverified = [r.file.relpath for r in results if r.status == "downloaded" and r.file.sha256 is None]
    if unverified:
        log.info("checked by size only (no published SHA-256): %s", ", ".join(unverified))
    return 1 if counts["failed"] else 0
