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

ems_find_comfyui || true
ems_venv
if [ -n "${COMFYUI_DIR:-}" ]; then
  echo "== integration tier: ComfyUI at $COMFYUI_DIR"
  ems_install_comfy_requirements
  ems_install_chromium || true
else
  echo "== integration tier: SKIPPED (no ComfyUI checkout; set COMFYUI_DIR to enable)"
  ems_install_unit_requirements
fi
export COMFYUI_DIR="${COMFYUI_DIR:-}"
exec "$EMS_PY" -m pytest "$@"
