#!/usr/bin/env bash
# The main job from one command: EMS through a real ComfyUI's execution engine, headless.
#
#   bash scripts/run.sh --demo                       # toy world: a trained toy SD3, no download
#   bash scripts/run.sh --checkpoint sd3_medium_incl_clips_t5xxlfp8.safetensors \
#        --image photo.png --instruction "make the suit red"
#   bash scripts/run.sh --help
#
# Finds (or fetches) ComfyUI and picks the Python exactly like scripts/test.sh (see scripts/env.sh).
# Paths on the command line are read from the folder you run it in; results go to ./out/ there
# (or --output). If something is missing, the runner says exactly what.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

ems_prepare run >&2 || exit $?
export PYTHONPATH="$EMS_ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$EMS_PY" -m headless "$@"
