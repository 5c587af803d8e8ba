#!/usr/bin/env bash
# The main job: set up the pinned ComfyUI host (cached) and run the default Fooocus inpaint workflow
# on it. Arguments go to scripts/run_main.py (e.g. --models /path/to/ComfyUI/models).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="${FOOOCUS_HOST_DIR:-$REPO/.host}"
bash "$REPO/scripts/setup_host.sh"
exec "$HOST/venv/bin/python" "$REPO/scripts/run_main.py" "$@"
