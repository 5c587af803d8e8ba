"""headless/download.py against a local HTTP server (127.0.0.1, a thread) serving small fake model files:
fresh download, resume with Range, interrupted transfer, server ignoring Range, checksum/size mismatch,
404, and the command line (selection, --list, --dry-run, mirror from the environment)."""
from __future__ import annotations

import hashlib
import importlib
import os
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _pack():
    """Import the repo as a package named ``fooocus_pack`` without running its ``__init__`` (which would
    register nodes when ComfyUI is importable), so ``headless``'s relative imports resolve."""
    if "fooocus_pack" not in sys.modules:
        mod = types.ModuleType("fooocus_pack")
        mod.__path__ = [str(REPO)]
        sys.modules["fooocus_pack"] = mod
    return importlib.import_module("fooocus_pack.headless.download"), importlib.import_module(
        "fooocus_pack.engine.model_manifest")


dl, mm = _pack()


class FakeHub:
    """Files by URL path; records requests; can cut a response short or ignore Range."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None   # close the connection after this many body bytes (once)
        self.ignore_range = False

    def handler(self):
        hub = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                hub.requests.append((self.path, rng))
                data = hub.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and not hub.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if hub.cut_after is not None:
                    self.wfile.write(body[:hub.cut_after])
                    hub.cut_after = None
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return H


@pytest.fixture
def hub():
    h = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), h.handler())
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    h.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield h
    server.shutdown()
    server.server_close()


def _entry(name: str, data: bytes, sha: bool = True, size: bool = True) -> "mm.ModelFile":
    return mm.ModelFile(name, "inpaint", f"https://example.invalid/{name}", len(data) if size else None,
                        hashlib.sha256(data).hexdigest() if sha else None, "inpaint", "test file")


DATA = bytes(range(256)) * 4096 + b"tail"   # ~1 MiB + 4


def test_fresh_download_is_verified_and_atomic(hub, tmp_path):
    f = _entry("a.bin", DATA)
    hub.files["/inpaint/a.bin"] = DATA
    path = dl.download_file(f, tmp_path, mirror=hub.url, progress=False)
    assert path == tmp_path / "inpaint" / "a.bin" and path.read_bytes() == DATA
    assert not (tmp_path / "inpaint" / "a.bin.part").exists()
    assert hub.requests == [("/inpaint/a.bin", None)]


def test_resume_partial_file_with_range(hub, tmp_path):
    f = _entry("a.bin", DATA)
    hub.files["/inpaint/a.bin"] = DATA
    part = tmp_path / "inpaint" / "a.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:300_000])
    dl.download_file(f, tmp_path, mirror=hub.url, progress=False)
    assert hub.requests == [("/inpaint/a.bin", "bytes=300000-")]
    assert (tmp_path / "inpaint" / "a.bin").read_bytes() == DATA and not part.exists()


def test_interrupted_transfer_keeps_part_and_next_run_resumes(hub, tmp_path):
    f = _entry("a.bin", DATA)
    hub.files["/inpaint/a.bin"] = DATA
    hub.cut_after = 123_456
    with pytest.raises(dl.DownloadError, match="partial file .* is kept"):
        dl.download_file(f, tmp_path, mirror=hub.url, retries=0, progress=False)
    part = tmp_path / "inpaint" / "a.bin.part"
    assert part.stat().st_size == 123_456 and not (tmp_path / "inpaint" / "a.bin").exists()
    dl.download_file(f, tmp_path, mirror=hub.url, retries=0, progress=False)
    assert hub.requests[-1] == ("/inpaint/a.bin", "bytes=123456-")
    assert (tmp_path / "inpaint" / "a.bin").read_bytes() == DATA


def test_retry_resumes_within_one_call(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)
    f = _entry("a.bin", DATA)
    hub.files["/inpaint/a.bin"] = DATA
    hub.cut_after = 5000
    dl.download_file(f, tmp_path, mirror=hub.url, retries=2, progress=False)
    assert [r for _, r in hub.requests] == [None, "bytes=5000-"]
    assert (tmp_path / "inpaint" / "a.bin").read_bytes() == DATA


def test_server_ignoring_range_starts_over(hub, tmp_path):
    f = _entry("a.bin", DATA)
    hub.files["/inpaint/a.bin"] = DATA
    hub.ignore_range = True
    part = tmp_path / "inpaint" / "a.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:1000])
    dl.download_file(f, tmp_path, mirror=hub.url, progress=False)
    assert (tmp_path / "inpaint" / "a.bin").read_bytes() == DATA


def test_complete_part_file_gets_416_and_is_committed(hub, tmp_path):
    f = _entry("a.bin", DATA)
    hub.files["/inpaint/a.bin"] = DATA
    part = tmp_path / "inpaint" / "a.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA)
    dl.download_file(f, tmp_path, mirror=hub.url, progress=False)
    assert (tmp_path / "inpaint" / "a.bin").read_bytes() == DATA


def test_checksum_mismatch_is_an_error_and_deletes_the_download(hub, tmp_path):
    f = _entry("a.bin", DATA)
    hub.files["/inpaint/a.bin"] = DATA[:-4] + b"TAIL"   # same size, other bytes
    with pytest.raises(dl.DownloadError, match="SHA-256 mismatch.*deleted"):
        dl.download_file(f, tmp_path, mirror=hub.url, progress=False)
    assert not (tmp_path / "inpaint" / "a.bin").exists()
    assert not (tmp_path / "inpaint" / "a.bin.part").exists()


def test_size_mismatch_without_checksum(hub, tmp_path):
    f = _entry("a.bin", DATA, sha=False)
    hub.files["/inpaint/a.bin"] = DATA[:1000]
    with pytest.raises(dl.DownloadError, match="got 1,000 bytes, expected"):
        dl.download_file(f, tmp_path, mirror=hub.url, progress=False)
    assert not list((tmp_path / "inpaint").iterdir())
    hub.files["/inpaint/a.bin"] = DATA + b"more"      # longer than expected
    with pytest.raises(dl.DownloadError, match="expected"):
        dl.download_file(f, tmp_path, mirror=hub.url, progress=False)
    assert not list((tmp_path / "inpaint").iterdir())


def test_unknown_size_and_checksum_accepts_what_arrives(hub, tmp_path):
    f = _entry("a.bin", DATA, sha=False, size=False)
    hub.files["/inpaint/a.bin"] = DATA
    assert dl.download_file(f, tmp_path, mirror=hub.url, progress=False).read_bytes() == DATA


def test_404_names_the_url(hub, tmp_path):
    f = _entry("gone.bin", DATA)
    with pytest.raises(dl.DownloadError, match=r"gone\.bin answered HTTP 404"):
        dl.download_file(f, tmp_path, mirror=hub.url, progress=False)


def test_unreachable_mirror(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = _entry("a.bin", DATA)
    with pytest.raises(dl.DownloadError, match="failed after 1 attempt"):
        dl.download_file(f, tmp_path, mirror=f"http://127.0.0.1:{port}", retries=0, timeout=5, progress=False)


def test_command_line(hub, tmp_path, monkeypatch, capsys):
    neg = mm.by_name("fooocus_ip_negative.safetensors")        # size known, no checksum
    head = mm.by_name("fooocus_inpaint_head.pth")               # size and checksum known
    hub.files["/controlnet/fooocus_ip_negative.safetensors"] = os.urandom(neg.size)
    hub.files["/inpaint/fooocus_inpaint_head.pth"] = b"\0" * head.size   # right size, wrong checksum
    models = tmp_path / "models"
    monkeypatch.setenv(dl.MIRROR_ENV, hub.url)
    args = ["--models-dir", str(models), "-q"]
    assert dl.main(args + ["--only", neg.name, "--dry-run"]) == 0
    assert not models.exists() or not any(models.rglob("*.safetensors"))
    assert dl.main(args + ["--only", neg.name]) == 0
    assert (models / "controlnet" / neg.name).read_bytes() == hub.files["/controlnet/" + neg.name]
    n = len(hub.requests)
    assert dl.main(args + ["--only", neg.name]) == 0            # present: nothing fetched
    assert len(hub.requests) == n
    assert dl.main(args + ["--only", head.name]) == 1           # checksum mismatch
    assert not (models / "inpaint" / head.name).exists()
    capsys.readouterr()
    assert dl.main(["--models-dir", str(models), "--list", "--only", "performance", "--only", neg.name]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 4   # manifest order: the three performance LoRAs, then the IP negative
    assert listing[3].startswith("present") and listing[3].endswith("controlnet/fooocus_ip_negative.safetensors")
    assert all(line.startswith("missing") for line in listing[:3])
    assert dl.main(args + ["--only", "nope.bin"]) == 2
    monkeypatch.delenv(dl.MODELS_DIR_ENV, raising=False)
    assert dl.main(["--only", neg.name]) == 2 or dl.default_models_dir() is not None


def test_for_request_selects_what_the_request_needs(tmp_path, capsys):
    req = tmp_path / "r.json"
    req.write_text('{"inpaint_image_url": "a.png", "loras": [], "styles": [], "performance": "Lightning", '
                   '"enable_safety_checker": false}')
    assert dl.main(["--models-dir", str(tmp_path), "--for-request", str(req), "--list"]) == 0
    names = [line.split()[-1] for line in capsys.readouterr().out.splitlines()]
    assert names == ["checkpoints/juggernautXL_v8Rundiffusion.safetensors", "inpaint/fooocus_inpaint_head.pth",
                     "inpaint/inpaint_v26.fooocus.patch", "upscale_models/fooocus_upscaler_s409985e5.bin",
                     "loras/sdxl_lightning_4step_lora.safetensors"]
    req.write_text('{"inpaint_image_url": 3}')
    assert dl.main(["--models-dir", str(tmp_path), "--for-request", str(req), "--list"]) == 2


def test_python_dash_m_entry_point(tmp_path):
    """``python -m <repo folder> download --list`` works from the folder above the repo."""
    import subprocess

    r = subprocess.run([sys.executable, "-m", REPO.name, "download", "--models-dir", str(tmp_path), "--list",
                        "--only", "inpaint"], cwd=REPO.parent, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 5 and "inpaint/inpaint_v26.fooocus.patch" in r.stdout
