#!/usr/bin/env bash
# Install headless Chromium for the editor tests (tests/browser/): Debian's `chromium` package only.
# The tests drive it over the Chrome DevTools Protocol with aiohttp (already in the host venv), so no
# chromedriver, Node or browser download is needed. Idempotent: returns at once when a Chromium is found.
# Set FOOOCUS_CHROMIUM to use another binary (it is then only checked, nothing is installed).
set -euo pipefail

find_chromium() {
    if [[ -n "${FOOOCUS_CHROMIUM:-}" ]]; then
        [[ -x "$FOOOCUS_CHROMIUM" ]] && echo "$FOOOCUS_CHROMIUM"
        return
    fi
    command -v chromium || command -v chromium-browser || command -v google-chrome || true
}

found="$(find_chromium)"
if [[ -n "$found" ]]; then
    echo "install_browser: using $found"
    exit 0
fi
if [[ -n "${FOOOCUS_CHROMIUM:-}" ]]; then
    echo "install_browser: FOOOCUS_CHROMIUM=$FOOOCUS_CHROMIUM is not an executable" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "install_browser: no Chromium and no apt-get: the browser tests will be skipped" >&2
    exit 0
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_browser: not root and no password-less sudo: the browser tests will be skipped" >&2
        exit 0
    fi
fi
echo "install_browser: installing Debian's chromium (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
    echo "install_browser: apt-get could not install chromium: the browser tests will be skipped" >&2
    exit 0
fi
found="$(find_chromium)"
if [[ -z "$found" ]]; then
    echo "install_browser: apt-get installed chromium but no binary was found" >&2
    exit 1
fi
echo "install_browser: installed $found ($("$found" --version 2>/dev/null | head -1))"
