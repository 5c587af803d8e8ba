"""Shared pytest set-up.

The engine is imported as the top-level package ``engine`` (the repo root is put on ``sys.path``);
node modules are only ever imported by a real ComfyUI host (see ``tests/host/``).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# appended, not prepended: in-process host tests import ComfyUI, whose top-level ``nodes`` module must
# not be shadowed by this repo's ``nodes`` package
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))
HARNESS = Path(__file__).resolve().parent / "harness"
if str(HARNESS) not in sys.path:
    sys.path.append(str(HARNESS))

SHARED = Path(os.environ.get("FOOOCUS_SHARED", REPO.parent / "shared")).resolve()
ORACLE = SHARED / "oracle"
FOOOCUS_DATA = SHARED / "fooocus-data"


@pytest.fixture(scope="session")
def oracle_dir() -> Path:
    if not ORACLE.is_dir():
        pytest.skip(f"oracle fixtures not found at {ORACLE} (set FOOOCUS_SHARED)")
    return ORACLE


def load_npz(name: str) -> dict[str, np.ndarray]:
    """Load an oracle ``.npz`` fully into memory (no pickle)."""
    with np.load(ORACLE / name, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_json(name: str):
    return json.loads((ORACLE / name).read_text(encoding="utf-8"))


# -- real ComfyUI host fixtures ----------------------------------------------------------------------
def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (full-size models)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow test: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_models_dir() -> Path:
    """The tiny models (see tests/harness/tiny_models.py), generated once and cached in the host dir."""
    import subprocess

    import comfy_host
    import tiny_models

    if not (comfy_host.COMFY_DIR / "main.py").is_file():
        pytest.fail(f"no ComfyUI host at {comfy_host.COMFY_DIR}: run scripts/setup_host.sh first")
    out = comfy_host.HOST / "cache" / tiny_models.VERSION
    if not ((out / "VERSION").is_file() and (out / "VERSION").read_text() == tiny_models.VERSION):
        subprocess.run([sys.executable, str(HARNESS / "tiny_models.py"), "--out", str(out)], check=True,
                       stdout=subprocess.DEVNULL)
        import shutil

        for old in out.parent.glob("tiny-models-*"):  # earlier versions of the generators
            if old != out:
                shutil.rmtree(old, ignore_errors=True)
    return out


def _install_fooocus_styles(base: Path) -> None:
    """Fooocus's style files (from ../shared, never committed) into the server's ``models/styles``, as a user
    who installed them has: the shipped fal workflows use the fal default styles."""
    import shutil

    styles = FOOOCUS_DATA / "sdxl_styles"
    if styles.is_dir():
        (base / "models" / "styles").mkdir(parents=True, exist_ok=True)
        for f in styles.glob("*.json"):
            shutil.copyfile(f, base / "models" / "styles" / f.name)


@pytest.fixture(scope="session")
def comfy_server(tiny_models_dir, tmp_path_factory):
    """A real ComfyUI server (subprocess, 127.0.0.1, free port, --cpu) with this pack and the tiny
    models; yields the :class:`comfy_host.ComfyServer`."""
    import comfy_host

    base = comfy_host.make_base_dir(tmp_path_factory.mktemp("comfy_base"), [tiny_models_dir], comfy_host.TINY_EXTS)
    _install_fooocus_styles(base)
    server = comfy_host.ComfyServer(base, extra_args=["--preview-method", "latent2rgb"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def comfy(comfy_server):
    """A client of the session's server; fails the test if the server died."""
    if not comfy_server.alive():
        pytest.fail("the ComfyUI server died:\n" + comfy_server.log_tail())
    return comfy_server.client()


@pytest.fixture(scope="session")
def inprocess_host(tiny_models_dir, tmp_path_factory):
    """ComfyUI imported into the test process (no HTTP), with this pack and the tiny models."""
    import comfy_host

    base = comfy_host.make_base_dir(tmp_path_factory.mktemp("comfy_inproc"), [tiny_models_dir], comfy_host.TINY_EXTS)
    return comfy_host.InProcessHost(base)


@pytest.fixture(autouse=True)
def _torch_threads_unchanged(request):
    """Fail a test that changes torch's global thread count and does not restore it (results of
    in-process runs depend on it)."""
    import torch

    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    if after != before:
        torch.set_num_threads(before)
        pytest.fail(f"{request.node.nodeid} left torch.get_num_threads() at {after} (was {before})")
