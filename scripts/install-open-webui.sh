#!/usr/bin/env bash
# Installs the pinned Open WebUI from PyPI into a virtual environment outside the tracked files
# (.tmp/open-webui-venv, or OPEN_WEBUI_VENV), for the end-to-end test that drives the real Open WebUI
# through the gateway. Idempotent: a no-op when that version is already installed there.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${OPEN_WEBUI_VERSION:-0.12.4}"
venv="${OPEN_WEBUI_VENV:-.tmp/open-webui-venv}"
if [ -x "$venv/bin/open-webui" ] && [ "$(cat "$venv/.open-webui-version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
# Open WebUI supports Python 3.11 and 3.12 only.
python=""
for candidate in python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null &&
    "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
    python="$candidate"
    break
  fi
done
if [ -z "$python" ]; then
  echo "Open WebUI needs Python 3.11 or 3.12; none found" >&2
  exit 1
fi
echo "installing open-webui==$version into $venv (a few minutes, once)"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --quiet --disable-pip-version-check "open-webui==$version"
echo "$version" >"$venv/.open-webui-version"
