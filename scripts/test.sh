#!/usr/bin/env bash
# Set up and run every test tier from a fresh clone.
#
#   bash scripts/test.sh [pytest args]
#
# Unit tier: always (CPU torch, no ComfyUI). Integration tier: against a real ComfyUI checkout,
# found through COMFYUI_DIR (or ../ComfyUI, ../comfyui, /work/comfyui). Without one it is
# reported as SKIPPED, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ems_prepare
[ -n "${COMFYUI_DIR:-}" ] && { ems_install_chromium || true; }
exec "$EMS_PY" -m pytest "$@"
