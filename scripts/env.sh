# Shared set-up for scripts/*.sh (sourced, not run): finds or fetches the host ComfyUI, picks the
# Python to use, and installs what a tier needs. One mechanism for the tests, the demo and CI.
#
# ComfyUI: found as headless/discovery.py says ($COMFYUI_DIR, the ComfyUI this pack is installed
# in, ../ComfyUI, ~/ComfyUI, a pinned copy fetched earlier into .comfyui/); else the pinned copy is
# fetched into .comfyui/: from the archive in $COMFYUI_ARCHIVE when given (no network needed; CI
# points it at ../shared/vendor), else `git clone` of the pinned commit.
# Python, first found wins:
#   1. $EMS_PYTHON
#   2. ComfyUI's own environment (ComfyUI/venv, ComfyUI/.venv, or the active virtualenv/conda env
#      when the pack sits in that ComfyUI) if it already has torch and torchvision: nothing is
#      installed into it; test-only tools go to .cache/pytools
#   3. .venv of this project, created and filled here
EMS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMFYUI_PIN_COMMIT="a125cd84b054a57729b5eecab930ca9408719832"
COMFYUI_PIN_VERSION="0.3.64"
COMFYUI_PIN_SHA256="7f96ec61281593e9a68b51598f5c2ab075664dc3e1db93374ead5bd3d04d3122"
COMFYUI_PIN_DIR="$EMS_ROOT/.comfyui/ComfyUI-${COMFYUI_PIN_COMMIT:0:8}"
COMFYUI_REPO_URL="https://github.com/Comfy-Org/ComfyUI.git"
# torch/torchvision: the unit tier uses the CPU build of torch alone; real ComfyUI imports
# torchvision, whose only PyPI builds are CUDA ones (they run on the CPU too).
EMS_TORCH_UNIT="torch==2.13.0"
EMS_TORCH_COMFY="torch==2.15.0 torchvision==0.29.2"

ems_say() { echo "== $*"; }

ems_is_comfyui() { [ -f "$1/main.py" ] && [ -d "$1/comfy" ]; }

# Sets COMFYUI_DIR (exported) and EMS_COMFY_HOW; returns 1 when none is found, 2 when the given
# one is wrong. The rule itself is headless/discovery.py (standard library only, any python3), the
# same one the headless runner applies.
ems_find_comfyui() {
  local out rc=0
  out="$(python3 "$EMS_ROOT/headless/discovery.py")" || rc=$?
  [ "$rc" = 0 ] || return "$rc"
  COMFYUI_DIR="${out%%$'\n'*}"; EMS_COMFY_HOW="${out#*$'\n'}"; export COMFYUI_DIR
}

# Gets ComfyUI $COMFYUI_PIN_VERSION into .comfyui/ (ignored by git). Returns 1 when it cannot.
ems_fetch_comfyui() {
  local tmp="$COMFYUI_PIN_DIR.partial"
  rm -rf "$tmp"; mkdir -p "$EMS_ROOT/.comfyui"
  if [ -n "${COMFYUI_ARCHIVE:-}" ]; then
    [ -f "$COMFYUI_ARCHIVE" ] || { echo "COMFYUI_ARCHIVE=$COMFYUI_ARCHIVE does not exist" >&2; return 1; }
    local sum; sum="$(sha256sum "$COMFYUI_ARCHIVE" | cut -d' ' -f1)"
    if [ "$sum" != "$COMFYUI_PIN_SHA256" ]; then
      echo "COMFYUI_ARCHIVE=$COMFYUI_ARCHIVE is not the pinned ComfyUI $COMFYUI_PIN_VERSION (sha256 $sum)" >&2; return 1
    fi
    ems_say "unpacking ComfyUI $COMFYUI_PIN_VERSION from $COMFYUI_ARCHIVE into $COMFYUI_PIN_DIR"
    mkdir -p "$tmp" && tar -xzf "$COMFYUI_ARCHIVE" -C "$tmp" || { rm -rf "$tmp"; return 1; }
    mv "$tmp/ComfyUI-${COMFYUI_PIN_COMMIT:0:8}" "$COMFYUI_PIN_DIR" && rm -rf "$tmp"
  else
    ems_say "cloning ComfyUI $COMFYUI_PIN_VERSION (commit ${COMFYUI_PIN_COMMIT:0:8}) into $COMFYUI_PIN_DIR"
    if ! { git init -q "$tmp" && GIT_TERMINAL_PROMPT=0 timeout 600 git -C "$tmp" fetch -q --depth 1 "$COMFYUI_REPO_URL" "$COMFYUI_PIN_COMMIT" \
           && git -C "$tmp" checkout -q FETCH_HEAD; }; then
      rm -rf "$tmp"
      echo "could not clone ComfyUI (no network?); set COMFYUI_DIR to a ComfyUI checkout or COMFYUI_ARCHIVE to its source archive" >&2
      return 1
    fi
    mv "$tmp" "$COMFYUI_PIN_DIR"
  fi
  ems_is_comfyui "$COMFYUI_PIN_DIR" || return 1
  COMFYUI_DIR="$COMFYUI_PIN_DIR"; EMS_COMFY_HOW="fetched (pinned $COMFYUI_PIN_VERSION)"; export COMFYUI_DIR
}

# Does $1 (a python) import every module named after it?
ems_py_has() { local py="$1"; shift; "$py" -c "import $(IFS=,; echo "$*")" >/dev/null 2>&1; }

# Sets EMS_PY and EMS_PY_OWNED (1 = our .venv, which we may install into). Before creating the
# .venv it says what will be installed, where and roughly how large ($EMS_PLAN, set by
# ems_prepare); EMS_NO_INSTALL=1 stops there (return 4) with the ways to avoid the download.
ems_pick_python() {
  EMS_PY_OWNED=0
  if [ -n "${EMS_PYTHON:-}" ]; then EMS_PY="$EMS_PYTHON"; EMS_PY_WHY="\$EMS_PYTHON"; return 0; fi
  if [ -n "${COMFYUI_DIR:-}" ]; then
    local c candidates=("$COMFYUI_DIR/venv/bin/python" "$COMFYUI_DIR/.venv/bin/python")
    case "$EMS_ROOT" in "$COMFYUI_DIR"/custom_nodes/*)
      [ -n "${VIRTUAL_ENV:-}" ] && candidates+=("$VIRTUAL_ENV/bin/python")
      [ -n "${CONDA_PREFIX:-}" ] && candidates+=("$CONDA_PREFIX/bin/python");;
    esac
    for c in "${candidates[@]}"; do
      if [ -x "$c" ] && ems_py_has "$c" torch torchvision; then
        EMS_PY="$c"; EMS_PY_WHY="ComfyUI's own environment (nothing is installed into it)"; return 0
      fi
    done
  fi
  EMS_VENV="${EMS_VENV:-$EMS_ROOT/.venv}"
  if [ ! -x "$EMS_VENV/bin/python" ]; then
    ems_say "no Python with torch to use here, so this will create $EMS_VENV and install ${EMS_PLAN:-torch and the requirements of this pack} into it."
    ems_say "to use an environment you already have instead: EMS_PYTHON=/path/to/its/python $0 ...; to stop here: EMS_NO_INSTALL=1"
    if [ "${EMS_NO_INSTALL:-}" = 1 ]; then ems_say "EMS_NO_INSTALL=1: stopping before installing anything."; return 4; fi
    python3 -m venv "$EMS_VENV"
  fi
  EMS_PY="$EMS_VENV/bin/python"; EMS_PY_WHY="this project's .venv"; EMS_PY_OWNED=1
}

# One retry: a pip run can fail on a transient cache or network error (seen once in a fresh clone).
ems_pip() {
  "$EMS_PY" -m pip install -q --disable-pip-version-check "$@" \
    || { ems_say "pip install failed; retrying once"; "$EMS_PY" -m pip install -q --disable-pip-version-check "$@"; }
}

# Test tools for a Python we must not change: installed into .cache/pytools, put on PYTHONPATH.
ems_pytools() {
  local missing=() spec mod
  for spec in pytest:pytest ruff:ruff scipy:scipy requests:requests; do
    mod="${spec%%:*}"; ems_py_has "$EMS_PY" "$mod" || missing+=("${spec##*:}")
  done
  export PYTHONPATH="$EMS_ROOT/.cache/pytools${PYTHONPATH:+:$PYTHONPATH}"
  if [ ${#missing[@]} -gt 0 ] && ! ems_py_has "$EMS_PY" "${missing[@]}"; then
    ems_say "installing test tools (${missing[*]}) into $EMS_ROOT/.cache/pytools"
    ems_pip --target "$EMS_ROOT/.cache/pytools" "${missing[@]}"
  fi
}

ems_install_unit_requirements() {
  ems_py_has "$EMS_PY" torch || ems_pip $EMS_TORCH_UNIT
  ems_pip -r "$EMS_ROOT/requirements.txt" -r "$EMS_ROOT/requirements-dev.txt"
}

# $1 = run: what the main job needs (no test tools).
ems_install_comfy_requirements() {
  ems_py_has "$EMS_PY" torchvision || ems_pip $EMS_TORCH_COMFY
  # ComfyUI's own requirements minus torch/torchvision/torchaudio (pinned above).
  grep -vE '^\s*(torch|torchvision|torchaudio)\s*$' "$COMFYUI_DIR/requirements.txt" > "$EMS_VENV/comfy-requirements.txt"
  local dev=(-r "$EMS_ROOT/requirements-dev.txt")
  [ "${1:-}" = run ] && dev=()
  ems_pip -r "$EMS_VENV/comfy-requirements.txt" -r "$EMS_ROOT/requirements.txt" "${dev[@]}"
}

# Find (or fetch) ComfyUI, pick the Python, install what its tier needs. Exports COMFYUI_DIR and
# COMFYUI_PYTHON, or unsets COMFYUI_DIR when there is no ComfyUI (ComfyUI tiers are then SKIPPED).
#   ems_prepare          the tests: test tools too, and without ComfyUI the unit tier alone
#   ems_prepare run      the main job (run.sh): ComfyUI is required — without one it says so in one
#                        line before installing anything (return 3) — and no test tools are installed
ems_prepare() {
  local mode="${1:-tests}" rc=0
  ems_find_comfyui || rc=$?
  [ "$rc" = 2 ] && return 2
  if [ "$rc" = 1 ]; then ems_fetch_comfyui || true; fi
  [ -n "${COMFYUI_DIR:-}" ] && ems_is_comfyui "$COMFYUI_DIR" || unset COMFYUI_DIR
  if [ "$mode" = run ] && [ -z "${COMFYUI_DIR:-}" ]; then
    echo "EMS: no ComfyUI here and none could be fetched (no network, and no COMFYUI_ARCHIVE): put this pack in ComfyUI/custom_nodes, or set COMFYUI_DIR to a ComfyUI folder (nothing was installed)." >&2
    return 3
  fi
  if [ -n "${COMFYUI_DIR:-}" ]; then
    EMS_PLAN="torch and torchvision ($EMS_TORCH_COMFY, CUDA builds: several GB to download) and ComfyUI's requirements"
  else
    EMS_PLAN="torch ($EMS_TORCH_UNIT, CPU build: about 200 MB) and the unit tier's test tools"
  fi
  [ "$mode" = tests ] && [ -n "${COMFYUI_DIR:-}" ] && EMS_PLAN="$EMS_PLAN, plus the test tools"
  rc=0; ems_pick_python || rc=$?
  [ "$rc" = 0 ] || return "$rc"
  if [ -n "${COMFYUI_DIR:-}" ]; then
    ems_say "ComfyUI: $COMFYUI_DIR ($EMS_COMFY_HOW)"
    if [ "$EMS_PY_OWNED" = 1 ]; then ems_install_comfy_requirements "$mode"; fi
  else
    ems_say "no ComfyUI found or fetched (set COMFYUI_DIR, or COMFYUI_ARCHIVE to its source archive)"
    if [ "$EMS_PY_OWNED" = 1 ]; then ems_install_unit_requirements; fi
  fi
  [ "$EMS_PY_OWNED" = 1 ] || [ "$mode" = run ] || ems_pytools
  ems_say "Python: $EMS_PY ($EMS_PY_WHY)"
  export COMFYUI_PYTHON="$EMS_PY"
}
