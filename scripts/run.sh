#!/usr/bin/env bash
# The main job from one command: EMS through a real ComfyUI's execution engine, headless.
#
#   bash scripts/run.sh --demo                       # no weights needed; outputs are noise
#   bash scripts/run.sh --checkpoint sd3_medium_incl_clips_t5xxlfp8.safetensors \
#        --image photo.png --instruction "make the suit red"
#   bash scripts/run.sh --help
#
# Sets up .venv like scripts/test.sh and finds ComfyUI the same way (COMFYUI_DIR, ../ComfyUI,
# ../comfyui, ~/ComfyUI). If something is missing, the runner says exactly what.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ems_prepare >&2
exec "$EMS_PY" -m ems.headless "$@"
