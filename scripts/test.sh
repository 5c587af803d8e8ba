#!/usr/bin/env bash
# Run the test suite: sets up the pinned ComfyUI host first (cached after the first run), then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k outpaint` or `--run-slow`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="${FOOOCUS_HOST_DIR:-$REPO/.host}"
bash "$REPO/scripts/setup_host.sh"
cd "$REPO"
exec "$HOST/venv/bin/python" -m pytest tests "$@"
