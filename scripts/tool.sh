#!/usr/bin/env bash
# Run a tool of this repository with the host ComfyUI importable — the entry point for the bench,
# toy-world training, workflow building and thumbnails (the Makefile calls it):
#
#   bash scripts/tool.sh -m bench --help          # the cost bench; the other studies: bench.paper,
#                                                 # bench.toy, bench.toy.front, bench.latent (bench/README.md)
#   bash scripts/tool.sh -m comfyui_ems.toyworld.train --help
#   bash scripts/tool.sh -m scripts.build_workflows
#
# Finds (or fetches) ComfyUI and picks the Python exactly like scripts/test.sh (scripts/env.sh), then
# runs that Python in the repository root with the repository, tests/ (test support: tiny models, the
# browser driver) and ComfyUI on PYTHONPATH. No tool edits sys.path itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

ems_prepare >&2
[ -n "${COMFYUI_DIR:-}" ] || { echo "no ComfyUI: set COMFYUI_DIR (or COMFYUI_ARCHIVE to its source archive)" >&2; exit 2; }
cd "$EMS_ROOT"
export PYTHONPATH="$EMS_ROOT:$EMS_ROOT/tests:$COMFYUI_DIR${PYTHONPATH:+:$PYTHONPATH}"
exec "$EMS_PY" "$@"
