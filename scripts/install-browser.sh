#!/usr/bin/env bash
# Install Debian's Chromium for the frontend tests (tests/integration/test_frontend.py) and the
# workflow thumbnails (scripts/render_thumbnails.py). An explicit step: scripts/test.sh never
# installs system packages. Needs apt-get and root (or sudo).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  echo "== Chromium already installed: $(command -v chromium || command -v chromium-browser)"; exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "no apt-get: install Chromium with your package manager (or set CHROMIUM=/path/to/chrome)" >&2; exit 1; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "== installing Debian packages chromium and fonts-dejavu-core (apt-get, as $( [ -n "$SUDO" ] && echo "sudo" || echo root))"
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium fonts-dejavu-core
echo "== installed: $(command -v chromium)"
